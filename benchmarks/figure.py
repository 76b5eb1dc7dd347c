"""Figure of a benchmark run: box plots per contrast and each method's worst case.

    python figure.py RESULTS_JSON OUT_PNG

Runs under the peers' interpreter (``benchmarks/.venv-peers``, which has matplotlib); reads only the
JSON written by run.py and the NIfTI files its rows point to.
"""

import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402


def _canonical(path):
    """Data (X, Y, Z) in RAS order and its voxel sizes in mm."""
    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    return (data.mean(axis=3) if data.ndim == 4 else data), img.header.get_zooms()[:3]


def box_plots(axes, rows, methods):
    contrasts = sorted({row["contrast"] for row in rows})
    width = 0.8 / len(methods)
    for ax, key, label in zip(axes, ("dice", "hd95_mm"), ("Dice", "HD95 (mm)")):
        for m, method in enumerate(methods):
            values = [[row[key] for row in rows if row["method"] == method and row["contrast"] == contrast
                       and row["status"] == "ok" and row[key] is not None] for contrast in contrasts]
            positions = [c + (m - (len(methods) - 1) / 2) * width for c in range(len(contrasts))]
            kept = [(p, v) for p, v in zip(positions, values) if v]
            if kept:
                box = ax.boxplot([v for _, v in kept], positions=[p for p, _ in kept], widths=width * 0.9,
                                 patch_artist=True, showfliers=False, medianprops={"color": "black"})
                for patch in box["boxes"]:
                    patch.set_facecolor(f"C{m}")
                    patch.set_alpha(0.5)
                for position, points in kept:  # every image as a dot: the sets are small
                    ax.scatter([position] * len(points), points, s=9, color=f"C{m}", edgecolors="black",
                               linewidths=0.3, zorder=3)
            ax.plot([], [], color=f"C{m}", linewidth=6, label=method)
        ax.set_xticks(range(len(contrasts)), contrasts)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")


def worst_case_panels(fig, grid, rows, methods):
    for m, method in enumerate(methods):
        scored = [row for row in rows if row["method"] == method and row["status"] == "ok" and row["dice"] is not None]
        if not scored:
            continue
        worst = min(scored, key=lambda row: row["dice"])
        image, sizes = _canonical(worst["image_path"])
        reference, _ = _canonical(worst["reference_path"])
        predicted, _ = _canonical(worst["mask_path"])
        centre = np.round(np.argwhere(reference > 0).mean(axis=0)).astype(int)
        low, high = np.percentile(image, [1, 99])
        for axis in range(3):
            ax = fig.add_subplot(grid[m, axis])
            take = [slice(None)] * 3
            take[axis] = centre[axis]
            shown = [a for a in range(3) if a != axis]
            aspect = sizes[shown[1]] / sizes[shown[0]]
            ax.imshow(image[tuple(take)].T, cmap="gray", origin="lower", vmin=low, vmax=high, aspect=aspect)
            ax.contour(reference[tuple(take)].T, levels=[0.5], colors="lime", linewidths=0.6)
            ax.contour(predicted[tuple(take)].T, levels=[0.5], colors="red", linewidths=0.6)
            ax.set_axis_off()
            if axis == 0:
                ax.set_title(f"{method} worst: {worst['image']}  Dice {worst['dice']:.3f}", fontsize=7, loc="left")


def main(argv=None) -> int:
    results_json, out_png = (argv or sys.argv[1:])[:2]
    rows = json.loads(Path(results_json).read_text())["rows"]
    methods = list(dict.fromkeys(row["method"] for row in rows))
    fig = plt.figure(figsize=(12, 4 + 2 * len(methods)))
    grid = fig.add_gridspec(2 + len(methods), 3, height_ratios=[2, 2] + [1.4] * len(methods))
    box_plots([fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, :])], rows, methods)
    worst_case_panels(fig, grid[2:, :].subgridspec(len(methods), 3), rows, methods)
    fig.suptitle("Reference mask: green; method: red", fontsize=9)
    fig.tight_layout()
    temporary = Path(out_png).with_name(f".tmp-{os.getpid()}-{Path(out_png).name}")
    fig.savefig(temporary, dpi=110)
    os.replace(temporary, out_png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
