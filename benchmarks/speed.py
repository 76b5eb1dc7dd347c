"""Participant speed on CPU: pure inference vs the CLI (Nipype), 1 and 2 processes, and vs the peers.

    python benchmarks/speed.py [--subjects 10] [--data DIR] [--out DIR] [--threads N]
                               [--peers deepbet ...] [--model BUNDLE] [--repeats N] [--rounds N] [--timeout S]

Builds a BIDS dataset of ``--subjects`` 1 mm T1w heads (the fs_training_t1 heads, cycled) under
``--out``, then measures, each in its own process(es):

- pure: ``inference.strip.strip_file`` over every head in one process (model loaded once), and in
  two processes of one thread each, half the heads each;
- CLI: ``singlestrip_bids bids out participant --nprocs 1`` and ``--nprocs 2 --omp-nthreads 1``
  (validation skipped; QC, figures and reports included, as users run it);
- the pure loop and the CLI take turns ``--rounds`` times (default 3); the tables give the round of
  median wall time and list every round's;
- one head through ``benchmarks/worker.py`` for this app and each peer, ``--repeats`` times in turns:
  the per-volume ratio of the medians.

Prints the tables and the targets (inference ≤ 0.6 × deepbet's time, peak RSS ≤ 2 GB for a 1 mm
head, CLI overhead ≤ 20 % with --nprocs 2); writes ``speed.json``.
"""

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from cases import DEFAULT_DATA
from measure import machine_description, run_measured, stop_on_sigterm, thread_env
from run import PEERS, PEERS_PYTHON, WORKER
from table import format_table

HERE = Path(__file__).resolve().parent
RSS_TARGET_MB = 2048
OVERHEAD_TARGET = 0.20
INFERENCE_TARGET = 0.6  # our inference time / deepbet's, same head, same CPU


def build_dataset(data_dir: Path, root: Path, subjects: int) -> list:
    """``root``: a BIDS dataset of ``subjects`` T1w heads (fs_training_t1 cycled); returns the images."""
    from singlestrip_bids.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_nifti

    heads = sorted((data_dir / "fs_training_t1").glob("sub-*/T1.mgz"))
    if not heads:
        raise SystemExit(f"error: no fs_training_t1 heads under {data_dir}")
    atomic_write_json({"Name": "singlestrip_bids speed benchmark", "BIDSVersion": "1.10.0", "DatasetType": "raw"},
                      root / "dataset_description.json")
    atomic_write_bytes(b"1 mm T1w heads for the speed benchmark.\n", root / "README")
    labels = [f"{number:02d}" for number in range(1, subjects + 1)]
    atomic_write_bytes(("participant_id\n" + "".join(f"sub-{label}\n" for label in labels)).encode(),
                       root / "participants.tsv")
    images = []
    for number, label in enumerate(labels):
        image = root / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"
        if not image.is_file():
            head = nib.load(heads[number % len(heads)])
            atomic_write_nifti(nib.Nifti1Image(np.asanyarray(head.dataobj), head.affine), image)
        images.append(image)
    return images


def pure_inference(images, bundle, device, out_dir: Path) -> None:
    """Strip ``images`` in this process with the model loaded once; print per-volume seconds as JSON."""
    from singlestrip_bids.inference.predict import get_predictor
    from singlestrip_bids.inference.strip import strip_file

    get_predictor(bundle, device)
    seconds = []
    for image in images:
        start = time.perf_counter()
        strip_file(image, out_dir / f"{Path(image).name.split('.')[0]}_mask.nii.gz", out_dir / "brain.nii.gz",
                   bundle_path=bundle, device=device)
        seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


def run_parallel(commands, env) -> dict:
    """Run ``commands`` at once; wall seconds of the whole and the largest peak RSS of any of them."""
    results = [None] * len(commands)

    def measure_one(index):
        results[index] = run_measured(commands[index], env=env)

    threads = [threading.Thread(target=measure_one, args=(index,)) for index in range(len(commands))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    failed = [result.stderr.strip().splitlines()[-1:] for result in results if result.returncode != 0]
    if failed:
        raise SystemExit(f"error: a measured run failed: {failed}")
    per_volume = [value for result in results for value in json.loads(result.stdout.strip().splitlines()[-1])]
    # Peaks of processes that ran side by side, summed: an upper bound of their joint peak.
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(sum(r.peak_tree_rss_mb for r in results), 1),
            "per_volume_median_s": round(float(np.median(per_volume)), 3)}


def pure_runs(images, args, round_number: int = 1) -> dict:
    """Pure inference in one process (``--threads`` threads) and in two one-thread processes."""
    folder = args.out / f"pure-{round_number}"
    base = [sys.executable, str(Path(__file__).resolve()), "--bundle", str(args.model), "--device", "cpu",
            "--out", str(folder)]
    folder.mkdir(parents=True, exist_ok=True)
    one = run_parallel([[*base, "--pure", *map(str, images)]], thread_env(args.threads))
    halves = [images[0::2], images[1::2]]
    two = run_parallel([[*base, "--pure", *map(str, half)] for half in halves if half], thread_env(1))
    return {"1 process": one, "2 processes": two}


def cli_runs(root: Path, images, args, round_number: int = 1) -> dict:
    """The participant level as users run it, with --nprocs 1 and 2 (fresh output and work folders)."""
    runs = {}
    for nprocs, threads in ((1, args.threads), (2, 1)):
        out = args.out / f"derivatives-nprocs{nprocs}-{round_number}"
        command = [sys.executable, "-m", "singlestrip_bids", str(root), str(out), "participant",
                   "--nprocs", str(nprocs), "--omp-nthreads", str(threads), "--device", "cpu", "--skip-bids-validation",
                   "-w", str(args.out / f"work-nprocs{nprocs}-{round_number}"), "--model", str(args.model)]
        measured = run_measured(command, env=thread_env(threads))
        if measured.returncode != 0:
            raise SystemExit(f"error: the CLI failed: {measured.stderr.strip().splitlines()[-1:]}")
        runs[f"--nprocs {nprocs}"] = {"wall_s": round(measured.wall_s, 2),
                                      "peak_rss_mb": round(measured.peak_tree_rss_mb, 1),
                                      "per_volume_s": round(measured.wall_s / len(images), 3),
                                      "steps_s": step_breakdown(out)}
    return runs


def median_round(rounds: list) -> dict:
    """Of several rounds' ``{run: values}``, per run the values of the round with the median wall time,
    with every round's wall time under ``wall_s_rounds``."""
    merged = {}
    for name in rounds[0]:
        ordered = sorted((values[name] for values in rounds), key=lambda values: values["wall_s"])
        merged[name] = {**ordered[(len(ordered) - 1) // 2],
                        "wall_s_rounds": [values[name]["wall_s"] for values in rounds]}
    return merged


def step_breakdown(derivatives: Path) -> dict:
    """Mean seconds per head of each step of the strip node, from the QC JSONs' ``timings_s``."""
    timings = [json.loads(path.read_text())["provenance"]["timings_s"]
               for path in sorted(derivatives.rglob("*_desc-brain_qc.json"))]
    steps = list(dict.fromkeys(step for timing in timings for step in timing))
    return {step: round(float(np.mean([timing.get(step, 0.0) for timing in timings])), 3) for step in steps}


def _time_one_head(method, image: Path, args) -> dict:
    """One run of ``method`` on ``image`` in its own process: inference and process seconds, peak RSS."""
    python = Path(sys.executable) if method == "singlestrip" else args.peers_python
    if not python.is_file():
        return {"status": f"unavailable: no {python}"}
    mask = args.out / "methods" / f"{method}_mask.nii.gz"
    mask.parent.mkdir(parents=True, exist_ok=True)
    command = [str(python), str(WORKER), method, str(image), str(mask), "--device", "cpu",
               *(["--bundle", str(args.model)] if method == "singlestrip" else [])]
    measured = run_measured(command, env=thread_env(args.threads), timeout_s=args.timeout)
    if measured.timed_out or measured.returncode != 0:
        reason = f"timeout after {args.timeout:g} s" if measured.timed_out else measured.stderr.strip()[-300:]
        return {"status": f"failed: {reason}"}
    timing = json.loads(measured.stdout.strip().splitlines()[-1])
    return {"status": "ok", "inference_s": timing["inference_s"], "process_s": measured.wall_s,
            "peak_rss_mb": measured.peak_tree_rss_mb}


def per_volume_methods(image: Path, args) -> dict:
    """One head through the worker for this app and each peer, ``args.repeats`` times.

    The methods take turns (round-robin) so that a machine that speeds up or slows down during the
    benchmark weighs on all of them alike. Per method: median inference and process seconds, the
    inference range, the largest peak RSS, or the first failure's reason.
    """
    samples = {method: [] for method in ["singlestrip", *args.peers]}
    failures = {}
    for repeat in range(args.repeats):
        for method in samples:
            if method in failures:
                continue
            timing = _time_one_head(method, image, args)
            if timing["status"] != "ok":
                failures[method] = timing
            else:
                samples[method].append(timing)
        print(f"  round {repeat + 1}/{args.repeats} done", flush=True)
    results = {}
    for method, runs in samples.items():
        if method in failures:
            results[method] = failures[method]
            continue
        inference = [run["inference_s"] for run in runs]
        results[method] = {"status": "ok", "runs": len(runs), "inference_s": round(float(np.median(inference)), 3),
                           "inference_min_s": round(min(inference), 3), "inference_max_s": round(max(inference), 3),
                           "process_s": round(float(np.median([run["process_s"] for run in runs])), 2),
                           "peak_rss_mb": round(max(run["peak_rss_mb"] for run in runs), 1)}
    return results


def verdicts(pure, cli, methods) -> list:
    """The three targets of the issue, each with its measured value and pass/fail."""
    ours, deepbet = methods.get("singlestrip", {}), methods.get("deepbet", {})
    checks = []
    if "inference_s" in ours and "inference_s" in deepbet:
        checks.append({"target": f"inference per volume <= {INFERENCE_TARGET:g} x deepbet's",
                       "measured": f"{ours['inference_s']:.2f} s vs {deepbet['inference_s']:.2f} s "
                                   f"({ours['inference_s'] / deepbet['inference_s']:.2f} x)",
                       "pass": ours["inference_s"] <= INFERENCE_TARGET * deepbet["inference_s"]})
    if "peak_rss_mb" in ours:
        checks.append({"target": f"peak RSS <= {RSS_TARGET_MB} MB (1 mm head, one process)",
                       "measured": f"{ours['peak_rss_mb']:.0f} MB", "pass": ours["peak_rss_mb"] <= RSS_TARGET_MB})
    if cli and pure:
        overhead = cli["--nprocs 2"]["wall_s"] / pure["2 processes"]["wall_s"] - 1
        checks.append({"target": f"CLI overhead <= {OVERHEAD_TARGET:.0%} (--nprocs 2)",
                       "measured": f"{overhead:+.0%}", "pass": overhead <= OVERHEAD_TARGET})
    return checks


def report(result) -> str:
    pure, cli, methods = result["pure"], result["cli"], result["methods"]
    parts = []
    if pure:
        rows = [{"run": f"pure, {name}", **values} for name, values in pure.items()]
        for (name, values), pure_values in zip(cli.items(), pure.values()):
            rows.append({"run": f"CLI {name}", **values,
                         "overhead": f"{values['wall_s'] / pure_values['wall_s'] - 1:+.0%}"})
        for row in rows:
            row["rounds"] = " ".join(f"{wall:.1f}" for wall in row.get("wall_s_rounds", []))
        parts += [f"{result['subjects']} heads of 1 mm (median round)", format_table(
            rows, ["run", "wall_s", "rounds", "per_volume_median_s", "per_volume_s", "peak_rss_mb", "overhead"],
            {"wall_s": "wall s", "rounds": "wall s, every round", "per_volume_median_s": "s/volume (median call)",
             "per_volume_s": "s/volume (wall/n)", "peak_rss_mb": "peak MB", "overhead": "vs pure"})]
    for name, values in cli.items():
        if values.get("steps_s"):
            parts += [f"CLI {name}: seconds per head in the strip node (mean)", format_table(
                [{"step": step, "seconds": seconds} for step, seconds in values["steps_s"].items()],
                ["step", "seconds"])]
    ours = methods.get("singlestrip", {})
    rows = []
    for method, values in methods.items():
        ratio = (ours["inference_s"] / values["inference_s"]) if "inference_s" in ours and "inference_s" in values \
            else None
        spread = f"{values['inference_min_s']:.2f}-{values['inference_max_s']:.2f}" if "inference_min_s" in values \
            else None
        rows.append({"method": method, **values, "inference_range_s": spread, "ours_over_peer": ratio})
    parts += ["One head per method (own process)", format_table(
        rows, ["method", "runs", "inference_s", "inference_range_s", "process_s", "peak_rss_mb", "ours_over_peer",
               "status"],
        {"inference_s": "infer s (median)", "inference_range_s": "infer s (range)", "process_s": "process s (median)",
         "peak_rss_mb": "peak MB (max)",
         "ours_over_peer": "ours/peer (infer)"})]
    parts += ["Targets", format_table(result["targets"], ["target", "measured", "pass"])]
    return "\n\n".join(parts)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/speed-<UTC time>")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", nargs="*", default=list(PEERS), help="peers to time on one head")
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    parser.add_argument("--model", type=Path, default=None, help="model bundle (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method on the one head (median)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per peer run")
    parser.add_argument("--skip-participant", action="store_true", help="only time one head per method")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the pure loop and the CLI, taking turns (the tables give the median round)")
    parser.add_argument("--pure", nargs="+", type=Path, help=argparse.SUPPRESS)  # internal: a measured child
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = HERE / "results" / time.strftime("speed-%Y%m%dT%H%M%SZ", time.gmtime())
    args.out = args.out.resolve()
    if args.model is None:
        from singlestrip_bids.model.bundle import default_bundle_path

        args.model = default_bundle_path()
    return args


def main(argv=None) -> int:
    from singlestrip_bids.io.atomic import atomic_write_json

    args = parse_args(argv)
    if args.pure:
        pure_inference(args.pure, args.bundle, args.device, args.out)
        return 0
    stop_on_sigterm()
    root = args.out / "bids"
    images = build_dataset(args.data, root, args.subjects)
    result = {"command": " ".join([sys.executable, *sys.argv]),
              "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine_description(), "threads": args.threads, "subjects": len(images),
              "model": str(args.model), "pure": {}, "cli": {}}
    print(f"timing one head per method, {args.repeats} rounds ({', '.join(['singlestrip', *args.peers])})",
          flush=True)
    result["methods"] = per_volume_methods(images[0], args)
    if not args.skip_participant:
        pure, cli = [], []
        for round_number in range(1, args.rounds + 1):  # taking turns, so that a slower spell weighs on both
            print(f"round {round_number}/{args.rounds}: pure inference over {len(images)} heads in 1 and 2 "
                  "processes, then the participant CLI with --nprocs 1 and 2", flush=True)
            pure.append(pure_runs(images, args, round_number))
            cli.append(cli_runs(root, images, args, round_number))
        result["pure"], result["cli"] = median_round(pure), median_round(cli)
    result["targets"] = verdicts(result["pure"], result["cli"], result["methods"])
    atomic_write_json(result, args.out / "speed.json")
    print()
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
