"""Score this app and peer skull-strippers against reference brain masks.

    python benchmarks/run.py [--data DIR] [--out DIR] [--device cpu|cuda|auto] [--model BUNDLE ...]
                             [--methods NAME ...] [--threads N] [--timeout S] [--only TEXT ...]

Every image of ``--data`` with a reference mask (the shared test data beside the repository, or a
BIDS dataset with ``derivatives/**/…_desc-brain_mask`` files) is stripped by every method, each
(image, method) pair in its own process: Dice, HD95 (mm, native grid), seconds and peak memory.
Writes ``results.json``, ``results.csv``, ``figure.png`` and the predicted masks under ``--out``;
prints the tables last. Peers run in ``benchmarks/.venv-peers`` (see requirements-peers.txt); a
method that cannot run is listed with the reason.
"""

import argparse
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from cases import DEFAULT_DATA, discover, load_reference
from measure import machine_description, run_measured, stop_on_sigterm, thread_env
from table import report_text, write_results

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"
PEERS = ("deepbet", "hd-bet", "brainextractor", "median_otsu", "nilearn")


@dataclass
class Method:
    name: str  # as shown in the tables
    worker: str  # the worker's method name
    python: Path
    extra: list = field(default_factory=list)  # more worker arguments
    unavailable: str = ""  # why it cannot run, if so


def methods_to_run(args) -> list:
    """This app's shipped model, each ``--model`` bundle, then the peers, filtered by ``--methods``."""
    methods = [Method("singlestrip", "singlestrip", Path(sys.executable))]
    for bundle in args.model:
        methods.append(Method(f"singlestrip:{Path(bundle).name}", "singlestrip", Path(sys.executable),
                              ["--bundle", str(Path(bundle).resolve())]))
    missing = "" if args.peers_python.is_file() else (
        f"no {args.peers_python}: see benchmarks/README.md (requirements-peers.txt)")
    methods += [Method(name, name, args.peers_python, unavailable=missing) for name in PEERS]
    if args.methods:
        methods = [method for method in methods if method.name in args.methods or method.worker in args.methods]
    return methods


class References:
    """Reference masks (bool, native grid) with voxel sizes in mm and the file a figure can show, once per case."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.cache = {}

    def get(self, case):
        if case.name not in self.cache:
            from singlestrip_bids.io.atomic import atomic_write_nifti
            from singlestrip_bids.io.nifti import nifti_like

            mask, img, sizes = load_reference(case)
            path = case.reference
            if case.clean_reference:
                path = self.out_dir / "references" / f"{_file_name(case.name)}_mask.nii.gz"
                atomic_write_nifti(nifti_like(img, mask.astype(np.uint8), np.uint8), path)
            self.cache[case.name] = (mask, sizes, path)
        return self.cache[case.name]


def _file_name(case_name: str) -> str:
    return case_name.replace("/", "__")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_one(case, method, references, args) -> dict:
    """Strip ``case`` with ``method`` in a fresh process and score the mask it wrote."""
    from singlestrip_bids.metrics import dice, hd95

    reference, sizes, reference_path = references.get(case)
    mask_path = args.out / "masks" / method.name.replace(":", "_") / f"{_file_name(case.name)}_mask.nii.gz"
    row = {"image": case.name, "dataset": case.dataset, "contrast": case.contrast, "method": method.name,
           "status": "ok", "reason": "", "dice": None, "hd95_mm": None, "inference_s": None, "process_s": None,
           "load_s": None, "peak_rss_mb": None, "reference_note": case.reference_note,
           "image_path": str(case.image), "reference_path": str(reference_path), "mask_path": str(mask_path)}
    if method.unavailable:
        return {**row, "status": "unavailable", "reason": method.unavailable}
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.unlink(missing_ok=True)
    command = [str(method.python), str(WORKER), method.worker, str(case.image), str(mask_path),
               "--device", args.device, *method.extra]
    measured = run_measured(command, env=thread_env(args.threads), timeout_s=args.timeout)
    row.update(process_s=round(measured.wall_s, 3), peak_rss_mb=round(measured.peak_tree_rss_mb, 1))
    if measured.timed_out:
        return {**row, "status": "timeout", "reason": f"stopped after {args.timeout:g} s"}
    if measured.returncode < 0:
        return {**row, "status": "failed", "reason": f"crashed ({signal.Signals(-measured.returncode).name})"}
    if measured.returncode != 0 or not mask_path.is_file():
        return {**row, "status": "failed", "reason": _last_line(measured.stderr) or f"exit {measured.returncode}"}
    try:
        row.update(json.loads(_last_line(measured.stdout)))
    except ValueError:
        return {**row, "status": "failed", "reason": f"no timing line from the worker: {_last_line(measured.stdout)}"}
    predicted = np.asanyarray(nib.load(mask_path).dataobj) > 0
    if predicted.shape != reference.shape:
        return {**row, "status": "failed", "reason": f"mask shape {predicted.shape} != {reference.shape}"}
    distance = hd95(predicted, reference, sizes)
    return {**row, "dice": round(dice(predicted, reference), 4),
            "hd95_mm": round(distance, 3) if np.isfinite(distance) else None,
            "reason": "" if predicted.any() else "empty mask"}


def setup_peers(peers_python: Path) -> None:
    """Create the peers' venv beside this file and install requirements-peers.txt into it, if missing."""
    if peers_python.is_file():
        return
    venv = peers_python.parent.parent
    print(f"creating {venv} (requirements-peers.txt; a few minutes, once)", flush=True)
    for command in ([sys.executable, "-m", "venv", str(venv)],
                    [str(peers_python), "-m", "pip", "install", "--quiet", "-r", str(HERE / "requirements-peers.txt")]):
        measured = run_measured(command)
        if measured.returncode != 0:  # go on: the peers' rows will say why they did not run
            print(f"warning: {shlex.join(command)} failed: {_last_line(measured.stderr)}", flush=True)
            return


def make_figure(results_json: Path, out_png: Path, peers_python: Path) -> str:
    """Draw the figure with the peers' interpreter (matplotlib lives there); a one-line outcome."""
    if not peers_python.is_file():
        return f"figure skipped: no {peers_python} (matplotlib is installed there)"
    measured = run_measured([str(peers_python), str(HERE / "figure.py"), str(results_json), str(out_png)])
    if measured.returncode != 0:
        return f"figure failed: {_last_line(measured.stderr)}"
    return f"figure: {out_png}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="shared test-data folder or BIDS dataset with reference masks in derivatives/")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default benchmarks/results/run-<UTC time>)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto, for every method that can use one")
    parser.add_argument("--model", action="append", default=[], help="another model bundle (e.g. group-trained)")
    parser.add_argument("--methods", nargs="+", default=None, help=f"subset of: singlestrip {' '.join(PEERS)}")
    parser.add_argument("--only", nargs="+", default=None, help="keep images whose name contains one of these")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads per method")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per image and method")
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    parser.add_argument("--setup-peers", action="store_true",
                        help="first create benchmarks/.venv-peers from requirements-peers.txt if it is missing")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = HERE / "results" / time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime())
    args.out = args.out.resolve()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    cases = discover(args.data)
    if args.only:
        cases = [case for case in cases if any(text in case.name for text in args.only)]
    if not cases:
        print(f"error: no image with a reference mask under {args.data}", file=sys.stderr)
        return 2
    if args.setup_peers:
        setup_peers(args.peers_python)
    methods = methods_to_run(args)
    metadata = {"command": shlex.join([sys.executable, *sys.argv]),
                "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_description(),
                "device": args.device, "threads": args.threads, "timeout_s": args.timeout, "data": str(args.data)}
    print(f"{len(cases)} images x {len(methods)} methods -> {args.out}", flush=True)
    references = References(args.out)
    rows = []
    for number, case in enumerate(cases, 1):
        for method in methods:
            row = run_one(case, method, references, args)
            rows.append(row)
            print(f"[{number}/{len(cases)}] {case.name:55s} {method.name:20s} {row['status']:8s} "
                  f"Dice {row['dice'] if row['dice'] is not None else '-':<7} "
                  f"{row['inference_s'] if row['inference_s'] is not None else '-'} s {row['reason']}", flush=True)
        write_results(rows, args.out / "results.json", args.out / "results.csv", metadata)
    print(make_figure(args.out / "results.json", args.out / "figure.png", args.peers_python))
    print()
    print(report_text(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
