"""A grid of training pairs of the synthetic (PUMBA-mode) stream: no real image is read.

    python benchmarks/synthetic_samples.py [--out docs/figures/synthetic_samples.png] [--seed 0] [--count 8]

Row 1: the label map of each drawn head (mid slice of its grid). Rows 2–3: two pairs the stream
renders from it as the U-Net sees them (mid slice of the patch), the brain mask outlined in red.
Needs matplotlib (``pip install matplotlib``); draws from the app's own ``ShapeSynthesizer``.
"""

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/synthetic_samples.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from singlestrip_bids.synthesis.generator import render_pair
    from singlestrip_bids.synthesis.shape_stream import ShapeSynthesizer
    from singlestrip_bids.training.synthetic import SYNTHETIC_SYNTHESIS

    synth = ShapeSynthesizer(config=SYNTHETIC_SYNTHESIS, seed=args.seed)
    figure, axes = plt.subplots(3, args.count, figsize=(2 * args.count, 6.2))
    for column in range(args.count):
        first = synth.sample()
        labels, mask = first.head()
        centre = mask.nonzero().float().mean(dim=0).numpy()
        middle = int(round(centre[2]))
        axes[0, column].imshow(labels[:, :, middle].numpy().T, cmap="tab20", vmin=0, vmax=19, origin="lower",
                               interpolation="nearest")
        axes[0, column].set_title(f"r = {first.head.radius:.0f} vox", fontsize=9)
        for row, draw in ((1, first.draw), (2, synth.sample().draw)):
            image, target = render_pair(draw, labels[None], mask[None].float(), centre)
            z = image.shape[-1] // 2
            axes[row, column].imshow(image[0, :, :, z].numpy().T, cmap="gray", origin="lower", vmin=0, vmax=1)
            if target[0, :, :, z].any():
                axes[row, column].contour(target[0, :, :, z].numpy().T, [0.5], colors="r", linewidths=0.8)
    for axis in np.ravel(axes):
        axis.set_axis_off()
    figure.suptitle(f"synthetic heads (top) and training pairs drawn from them (seed {args.seed})")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=70)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
