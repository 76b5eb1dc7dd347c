"""Warm start on the mouse folds: one-shot training from scratch, the default or the synthetic model,
held-out Dice after every N steps (the learning curves of ``--init``).

    python benchmarks/warm_start.py [--inits scratch default synthetic] [--steps 100 200 300 400 500]
                                    [--final-learning-rate LR] [--fold F ...] [--cases N] [--data DIR] [--out DIR]
                                    [--device auto|cpu|cuda] [--seed S]

Each (fold, init) runs the group level's own SL-1 stage (``training.group.train_one_shot``) on the
fold's labeled mouse, with the sizes it derives; the run is cut at every ``--steps`` value, its
bundle saved and the fold's held-out animals stripped with it (``paper.evaluate``; ``--cases N``: the
first N held-out images only). The cut is
exact: each segment resumes the previous one's checkpoint (weights, optimiser, both random streams),
so the curve is that of one uninterrupted run. Step 0 is the starting model alone (none for scratch).
``--final-learning-rate`` decays the rate along a half cosine to it (``training.loop.Trainer``); the
decay spans one run's length, so it takes a single ``--steps`` value.
Prints the mean held-out Dice per init and step; writes ``warm_start.json`` and, when matplotlib is
installed, ``warm_start.png`` under ``--out``.
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from cases import DEFAULT_DATA
from folds import make_folds
from measure import machine_description, stop_on_sigterm
from paper import Scorer, evaluate, linked_inputs, progress

HERE = Path(__file__).resolve().parent


def curve(fold, init: str, steps: list, out: Path, scorer, args) -> list:
    """Rows (init, step, image, dice, hd95_mm) of one fold's held-out animals along one training run."""
    from singlestrip_bids.model.bundle import SHIPPED_MODELS, resolve_bundle_path
    from singlestrip_bids.training.group import GroupSettings, start_group_run, train_one_shot
    from singlestrip_bids.training.qc_networks import QCNetworks
    from singlestrip_bids.training.sl1 import TrainingConfig

    test = fold.test[: args.cases]
    links = linked_inputs(test, out / "inputs")
    rows = []
    if init in SHIPPED_MODELS:
        progress(f"  {init}: step 0, the shipped model alone")
        rows += [{"init": init, "step": 0, **row}
                 for row in evaluate(resolve_bundle_path(init, None), test, links, out / init / "step-0",
                                     scorer, args.device)]
    training = TrainingConfig(seed=args.seed, final_learning_rate=args.final_learning_rate)
    settings = GroupSettings(training=training, init=init, resume=True, device=args.device)
    run = start_group_run(fold.labeled.image, fold.labeled.reference, [], out / init, out / init / "work", settings)
    (run.work_dir / "round-0.ckpt").unlink(missing_ok=True)  # a fresh run, then resumed segment by segment
    sized = run.config
    for step in steps:
        started = time.perf_counter()
        run.config = replace(sized, steps=step)
        bundle = train_one_shot(run, QCNetworks(None), folder=out / init / f"step-{step}").bundle
        progress(f"  {init}: step {step} ({time.perf_counter() - started:.0f} s), evaluating")
        rows += [{"init": init, "step": step, **row}
                 for row in evaluate(bundle, test, links, out / init / f"eval-{step}", scorer, args.device)]
    return rows


def table(rows: list) -> str:
    """Mean held-out Dice per init (rows) and step (columns), over every fold run."""
    inits = list(dict.fromkeys(row["init"] for row in rows))
    steps = sorted({row["step"] for row in rows})
    lines = ["init        " + "".join(f"{f'step {step}':>10}" for step in steps)]
    for init in inits:
        cells = []
        for step in steps:
            values = [row["dice"] for row in rows if row["init"] == init and row["step"] == step]
            cells.append(f"{np.mean(values):10.3f}" if values else f"{'-':>10}")
        lines.append(f"{init:<12}" + "".join(cells))
    return "\n".join(lines)


def plot(rows: list, path: Path) -> bool:
    """The curves as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    figure, axis = plt.subplots(figsize=(6, 4))
    for init in dict.fromkeys(row["init"] for row in rows):
        steps = sorted({row["step"] for row in rows if row["init"] == init})
        means = [np.mean([row["dice"] for row in rows if row["init"] == init and row["step"] == step])
                 for step in steps]
        axis.plot(steps, means, marker="o", label=f"--init {init}")
    axis.set_xlabel("one-shot training steps")
    axis.set_ylabel("mean Dice, held-out mice")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", nargs="+", default=["scratch", "default", "synthetic"])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 200, 300, 400, 500])
    parser.add_argument("--final-learning-rate", type=float, default=None,
                        help="decay SL-1's rate to this at the last step (one --steps value)")
    parser.add_argument("--fold", type=int, nargs="+", default=[2], help="mouse folds, 1-based (default 2)")
    parser.add_argument("--cases", type=int, default=None, help="strip the first N held-out images only (default all)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/warm-start-<UTC time>")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if sorted(set(args.steps)) != args.steps or args.steps[0] < 1:
        parser.error("--steps: increasing positive step counts")
    if args.cases is not None and args.cases < 1:
        parser.error("--cases: at least one held-out image")
    if args.final_learning_rate is not None and len(args.steps) != 1:
        parser.error("--final-learning-rate: the decay spans one run, give one --steps value")
    args.out = (args.out or HERE / "results" / time.strftime("warm-start-%Y%m%dT%H%M%SZ", time.gmtime())).resolve()
    return args


def main(argv=None) -> int:
    from singlestrip_bids.cli.progress import set_console_logging
    from singlestrip_bids.io.atomic import atomic_write_json

    args = parse_args(argv)
    stop_on_sigterm()
    set_console_logging()  # each training phase's progress on stderr, as the group level shows it
    folds = make_folds("mouse", args.data, max(args.fold))
    if len(folds) < max(args.fold):
        print(f"error: no mouse folds under {args.data}", file=sys.stderr)
        return 2
    scorer, rows, started = Scorer(), [], time.perf_counter()
    for number in args.fold:
        fold = folds[number - 1]
        progress(f"fold {number}: labeled {fold.labeled.name}, {len(fold.test[: args.cases])} held-out images")
        for init in args.inits:
            rows += [{"fold": number, "labeled": fold.labeled.name, **row}
                     for row in curve(fold, init, args.steps, args.out / f"fold-{number}", scorer, args)]
            atomic_write_json({"command": " ".join([sys.executable, *sys.argv]), "machine": machine_description(),
                               "settings": {key: str(value) for key, value in vars(args).items()},
                               "seconds": round(time.perf_counter() - started, 1), "rows": rows},
                              args.out / "warm_start.json")
    print()
    print(table(rows))
    drawn = plot(rows, args.out / "warm_start.png")
    print(f"\nwrote {args.out / 'warm_start.json'}" + (" and warm_start.png" if drawn else
                                                       " (matplotlib is not installed: no figure)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
