"""Model bundles side by side on every real image with a reference mask: Dice and HD95 per image.

    python benchmarks/models.py [--models default synthetic BUNDLE ...] [--data DIR] [--out DIR] [--only TEXT ...]

Each image is stripped by each bundle (a shipped model's name or a folder) through the app's own
``inference.strip.strip_file`` on the CPU at the default precision, one after the other. Prints a
table per image and the mean Dice per contrast group, and writes ``models.json`` (date, machine,
command, rows) under ``--out``.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from cases import DEFAULT_DATA, discover, load_reference
from measure import machine_description
from table import format_table

HERE = Path(__file__).resolve().parent


def measure(case, bundles: dict, reference, voxel_mm) -> dict:
    """``{image, contrast, dice_<name>, hd95_<name>, strip_s_<name>}`` for every bundle of ``bundles``."""
    import nibabel as nib
    import numpy as np

    from singlestrip_bids.inference.strip import strip_file
    from singlestrip_bids.metrics import dice, hd95

    row = {"image": case.name, "contrast": case.contrast}
    with tempfile.TemporaryDirectory() as tmp:
        for name, bundle in bundles.items():
            mask_file, brain_file = Path(tmp) / f"{name}_mask.nii.gz", Path(tmp) / f"{name}_brain.nii.gz"
            stats = strip_file(case.image, mask_file, brain_file, bundle_path=bundle, device="cpu")
            mask = np.asanyarray(nib.load(mask_file).dataobj) > 0
            row[f"dice_{name}"] = round(dice(mask, reference), 4)
            row[f"hd95_{name}"] = round(hd95(mask, reference, voxel_mm), 1) if mask.any() else None
            row[f"strip_s_{name}"] = round(stats["seconds"], 2)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default", "synthetic"],
                        help="shipped model names or bundle folders (default: default synthetic)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=HERE / "results" / time.strftime("models-%Y%m%dT%H%M%SZ"))
    parser.add_argument("--only", nargs="+", default=None, help="keep images whose name contains one of these")
    args = parser.parse_args(argv)

    from singlestrip_bids.model.bundle import resolve_bundle_path

    bundles = {Path(model).name if Path(model).is_dir() else model: resolve_bundle_path(model, args.out)
               for model in args.models}
    cases = [case for case in discover(args.data) if not args.only or any(text in case.name for text in args.only)]
    rows = []
    for index, case in enumerate(cases, start=1):
        reference, _, voxel_mm = load_reference(case)
        rows.append(measure(case, bundles, reference, voxel_mm))
        shown = ", ".join(f"{name} {rows[-1][f'dice_{name}']:.3f}" for name in bundles)
        print(f"[{index}/{len(cases)}] {case.name}: Dice {shown}", flush=True)
    columns = ["image", *[f"{kind}_{name}" for name in bundles for kind in ("dice", "hd95")]]
    print(format_table(rows, columns))
    groups = {}
    for row in rows:
        groups.setdefault(row["contrast"], []).append(row)
    means = [{"contrast": contrast, "images": len(members),
              **{f"mean_dice_{name}": round(sum(r[f"dice_{name}"] for r in members) / len(members), 4)
                 for name in bundles}} for contrast, members in groups.items()]
    print(format_table(means, list(means[0])))
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_description(),
                "command": " ".join(["python", "benchmarks/models.py", *sys.argv[1:]]),
                "bundles": {name: str(path) for name, path in bundles.items()}, "means": means, "rows": rows}
    (args.out / "models.json").write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
