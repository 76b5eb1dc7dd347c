"""Train the synthetic (PUMBA-mode) model: ``python -m singlestrip_bids.cli.train_synthetic BUNDLE_DIR``.

No image is read: every training pair comes from ``synthesis.shapes``. Progress (step, loss,
steps/s, ETA) is logged every 10 steps; a resumable checkpoint is written every 100 steps to
``--checkpoint`` (default ``BUNDLE_DIR.ckpt.pt``) and ``--resume`` continues from it exactly. The
package ships the result in ``singlestrip_bids/data/synthetic_model`` (``--model synthetic``).
"""

import argparse
import logging
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m singlestrip_bids.cli.train_synthetic",
                                     description="train a brain-extraction U-Net on purely synthetic heads")
    parser.add_argument("bundle", type=Path, help="the bundle folder to write")
    parser.add_argument("--steps", type=int, default=20000, help="training steps (default 20000)")
    parser.add_argument("--checkpoint", type=Path, help="resumable checkpoint (default BUNDLE.ckpt.pt)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--init", default="scratch",
                        help="start from random weights (scratch, the default) or a bundle's U-Net "
                             "(a folder or 'synthetic')")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's rate (default 1e-3)")
    parser.add_argument("--final-learning-rate", type=float,
                        help="decay the rate along a half cosine to this at the last step (default: constant)")
    parser.add_argument("--ae-steps", type=int, default=1500, help="QC autoencoder steps (default 1500)")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--nthreads", type=int, help="torch CPU threads (default: all)")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.steps < 1 or args.ae_steps < 1 or args.random_seed < 0:
        print("error: --steps and --ae-steps must be positive, --random-seed not negative", file=sys.stderr)
        return 2
    if args.learning_rate <= 0 or (args.final_learning_rate is not None and args.final_learning_rate < 0):
        print("error: --learning-rate must be positive and --final-learning-rate not negative", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    import torch

    from singlestrip_bids.errors import UserError
    from singlestrip_bids.model.device import resolve_device
    from singlestrip_bids.training.synthetic import synthetic_config, train_synthetic

    if args.nthreads:
        torch.set_num_threads(args.nthreads)
    checkpoint = args.checkpoint or args.bundle.with_name(args.bundle.name + ".ckpt.pt")
    try:
        config = synthetic_config(steps=args.steps, seed=args.random_seed, learning_rate=args.learning_rate,
                                  final_learning_rate=args.final_learning_rate)
        path = train_synthetic(args.bundle, config, device=resolve_device(args.device), checkpoint=checkpoint,
                               resume=args.resume, ae_steps=args.ae_steps, init=args.init)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
