"""How each method's Dice changes when its masks are grown or shrunk by a uniform border.

    python benchmarks/border.py [RUN_DIR] [--borders MM ...] [--exclude TEXT ...]

Reads the masks of a finished ``run.py`` run (default: the newest ``benchmarks/results/run-*``),
moves each mask's surface by every border with the app's own ``apply_border`` (what participant
level's ``--border`` does) and scores it against the same reference. The references of the shared
data follow different conventions (see each PROVENANCE.md): FreeSurfer's watershed keeps CSF and
some dura, BET and the MS masks keep tighter to the brain. A border that raises Dice on one
reference and lowers it on another measures that difference, not an error the border could fix.

Prints Dice per image and border, then per method and contrast the mean and minimum over the
images not excluded (default: the shipped model's labeled example); writes ``border.json`` into
RUN_DIR.
"""

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from table import format_table

HERE = Path(__file__).resolve().parent
DEFAULT_BORDERS = (-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0)


def border_dice(mask, reference, voxel_sizes, borders) -> list:
    """Dice of ``mask`` moved by each border (mm; < 0 shrinks) against ``reference``.

    ``mask``, ``reference``: boolean (X, Y, Z) arrays on one grid; ``voxel_sizes``: 3 sizes in mm.
    The border moves the surface by whole voxels: along an axis whose voxels are larger than
    ``|border|`` nothing changes.
    """
    from singlestrip_bids.inference.postprocess import apply_border, box_around
    from singlestrip_bids.metrics import dice

    mask, reference = np.asarray(mask, bool), np.asarray(reference, bool)
    if mask.any():
        # Both masks lie inside the box, with room for the widest growth: the same Dice, far faster.
        margins = [int(np.ceil(max(max(borders), 0.0) / size)) + 1 for size in voxel_sizes]
        box = box_around(mask | reference, margins)
        mask, reference = mask[box], reference[box]
    return [dice(apply_border(mask, voxel_sizes, border), reference) for border in borders]


def latest_run(results_dir: Path) -> Path:
    """The newest ``run-*`` folder under ``results_dir`` that holds a ``results.json``."""
    runs = sorted(path.parent for path in results_dir.glob("run-*/results.json"))
    if not runs:
        raise SystemExit(f"error: no run.py results under {results_dir}; run benchmarks/run.py first")
    return runs[-1]


def shipped_labeled_image() -> str:
    """The image the shipped model was trained on, as the benchmark names it (e.g. fs_training_t1/sub-01)."""
    from singlestrip_bids.model.bundle import default_bundle_path

    config = json.loads((default_bundle_path() / "bundle.json").read_text())
    return config.get("training", {}).get("labeled", "")


def score_run(rows, borders) -> list:
    """One record per successful row: image, contrast, method and its Dice at each border (by ``str(border)``)."""
    from singlestrip_bids.io.nifti import voxel_sizes_mm

    records = []
    ok = [row for row in rows if row["status"] == "ok"]
    for number, row in enumerate(ok, 1):
        reference_img = nib.load(row["reference_path"])
        reference = np.asanyarray(reference_img.dataobj) > 0
        mask = np.asanyarray(nib.load(row["mask_path"]).dataobj) > 0
        scores = border_dice(mask, reference, voxel_sizes_mm(reference_img.affine), borders)
        records.append({"image": row["image"], "contrast": row["contrast"], "method": row["method"],
                        "dice": dict(zip(map(str, borders), scores))})
        print(f"[{number}/{len(ok)}] {row['image']:50s} {row['method']:15s} "
              + " ".join(f"{score:.3f}" for score in scores), flush=True)
    return records


def summarize_borders(records, borders, exclude) -> list:
    """Per (method, contrast): the mean and minimum Dice at each border over the images whose name
    contains none of the ``exclude`` texts."""
    groups = {}
    for record in records:
        if not any(text in record["image"] for text in exclude):
            groups.setdefault((record["method"], record["contrast"]), []).append(record)
    summaries = []
    for (method, contrast), members in groups.items():
        for statistic, reduce in (("mean", np.mean), ("min", np.min)):
            summaries.append({"method": method, "contrast": contrast, "n": len(members), "statistic": statistic,
                              "dice": {str(b): float(reduce([m["dice"][str(b)] for m in members])) for b in borders}})
    return summaries


def _flat(record, borders) -> dict:
    return {**{key: value for key, value in record.items() if key != "dice"},
            **{f"{b:+g} mm": record["dice"][str(b)] for b in borders}}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=None,
                        help="a run.py output folder (default: the newest under benchmarks/results)")
    parser.add_argument("--borders", nargs="+", type=float, default=list(DEFAULT_BORDERS), metavar="MM")
    parser.add_argument("--exclude", nargs="*", default=None, metavar="TEXT",
                        help="leave out of the summary the images whose name contains one of these "
                        "(default: the shipped model's labeled example)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from singlestrip_bids.io.atomic import atomic_write_json

    args = parse_args(argv)
    run_dir = args.run_dir or latest_run(HERE / "results")
    exclude = [name for name in [shipped_labeled_image()] if name] if args.exclude is None else args.exclude
    if not (run_dir / "results.json").is_file():
        raise SystemExit(f"error: {run_dir} holds no results.json from benchmarks/run.py")
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    borders = sorted(args.borders)
    print(f"{run_dir.name}: {sum(row['status'] == 'ok' for row in rows)} masks x {len(borders)} borders", flush=True)
    records = score_run(rows, borders)
    summaries = summarize_borders(records, borders, exclude)
    columns = [f"{b:+g} mm" for b in borders]
    print("\nDice per image (border: + grows, - shrinks the mask)")
    print(format_table([_flat(r, borders) for r in records], ["image", "contrast", "method", *columns]))
    print(f"\nPer method and contrast, leaving out: {', '.join(exclude) or 'nothing'}")
    print(format_table([_flat(s, borders) for s in summaries], ["method", "contrast", "n", "statistic", *columns]))
    atomic_write_json({"run": run_dir.name, "borders_mm": borders, "excluded": exclude, "images": records,
                       "summary": summaries}, run_dir / "border.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
