"""bf16 against fp32 inference on every real image with a reference mask: Dice change and speed.

    python benchmarks/precision.py [--data DIR] [--model BUNDLE] [--out DIR] [--only TEXT ...]

Each image is stripped twice by the app's own ``inference.strip.strip_file``, once per precision,
one after the other (so that load on a shared machine hits both alike), with one thread. Prints per
image the Dice of each against the reference, their difference and the seconds of each strip
(conform, predict, post-process), and writes ``precision.json`` (date, machine, command) under
``--out``. The rule it informs: bf16 is the CPU default only if |Dice(bf16) − Dice(fp32)| ≤ 0.002
on every image.
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
TOLERANCE = 0.002


def measure(case, bundle, reference) -> dict:
    import nibabel as nib
    import numpy as np

    from singlestrip_bids.inference.strip import strip_file
    from singlestrip_bids.metrics import dice

    row = {"image": case.name}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            mask_file, brain_file = Path(tmp) / f"{precision}_mask.nii.gz", Path(tmp) / f"{precision}_brain.nii.gz"
            stats = strip_file(case.image, mask_file, brain_file, bundle_path=bundle, device="cpu",
                               precision=precision)
            mask = np.asanyarray(nib.load(mask_file).dataobj) > 0
            row[f"dice_{precision}"] = round(dice(mask, reference), 4)
            row[f"strip_s_{precision}"] = round(stats["seconds"], 2)
            row[f"mask_{precision}"] = mask
    row["dice_change"] = round(row["dice_bf16"] - row["dice_fp32"], 4)
    row["masks_dice"] = round(dice(row.pop("mask_bf16"), row.pop("mask_fp32")), 4)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=None, help="model bundle (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / time.strftime("precision-%Y%m%dT%H%M%SZ"))
    parser.add_argument("--only", nargs="+", default=None, help="keep images whose name contains one of these")
    args = parser.parse_args(argv)
    import torch

    from singlestrip_bids.model.bundle import default_bundle_path
    from singlestrip_bids.model.device import cpu_has_bf16

    torch.set_num_threads(1)
    bundle = args.model or default_bundle_path()
    cases = [case for case in discover(args.data) if not args.only or any(text in case.name for text in args.only)]
    rows = []
    for index, case in enumerate(cases, start=1):
        rows.append(measure(case, bundle, load_reference(case)[0]))
        print(f"[{index}/{len(cases)}] {case.name}: Dice fp32 {rows[-1]['dice_fp32']:.4f}, "
              f"bf16 {rows[-1]['dice_bf16']:.4f}", flush=True)
    columns = ["image", "dice_fp32", "dice_bf16", "dice_change", "masks_dice", "strip_s_fp32", "strip_s_bf16"]
    print(format_table(rows, columns))
    worst = max(abs(row["dice_change"]) for row in rows)
    speedup = sum(row["strip_s_fp32"] for row in rows) / sum(row["strip_s_bf16"] for row in rows)
    verdict = "within" if worst <= TOLERANCE else "outside"
    print(f"largest |Dice change| {worst:.4f} ({verdict} {TOLERANCE}); fp32/bf16 time {speedup:.2f}x; "
          f"native bf16: {cpu_has_bf16()}")
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_description(),
                "command": " ".join(["python", "benchmarks/precision.py", *sys.argv[1:]]), "bundle": str(bundle),
                "largest_dice_change": worst, "tolerance": TOLERANCE, "time_ratio_fp32_over_bf16": speedup,
                "rows": rows}
    (args.out / "precision.json").write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
