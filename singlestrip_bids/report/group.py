"""Group report: QC score histogram, best and worst masks, training curves, synthetic samples."""

from html import escape
from pathlib import Path

import numpy as np

from singlestrip_bids import __version__
from singlestrip_bids.io.atomic import atomic_write_bytes, atomic_write_json
from singlestrip_bids.report.html import STYLE

MOSAIC_COUNT = 2  #: best and worst masks shown


def _svg_histogram(values, threshold=None, *, bins=20, width=420, height=160) -> str:
    """Inline SVG histogram of scores in [0, 1], with the QC threshold as a red line."""
    counts, _ = np.histogram(np.clip(values, 0, 1), bins=bins, range=(0, 1))
    top = max(int(counts.max()), 1)
    bar = width / bins
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 20 - count / top * (height - 30):.1f}" width="{bar - 1:.1f}" '
        f'height="{count / top * (height - 30):.1f}" fill="#4a7ab5"><title>{count}</title></rect>'
        for i, count in enumerate(counts))
    line = ""
    if threshold is not None:
        x = threshold * width
        line = f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 20}" stroke="#b00" stroke-width="2"/>'
    ticks = "".join(f'<text x="{t * width:.0f}" y="{height - 5}" font-size="10" text-anchor="middle">{t:.1f}</text>'
                    for t in np.linspace(0, 1, 6))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 10}" height="{height}" '
            f'viewBox="-5 0 {width + 10} {height}">{bars}{line}{ticks}</svg>')


def _svg_curve(losses, *, width=420, height=140) -> str:
    """Inline SVG of one loss curve (moving average over 1/50 of the steps), y from 0 to its maximum."""
    values = np.asarray(losses, dtype=float)
    if values.size < 2:
        return "<p>(too few steps to plot)</p>"
    window = max(1, values.size // 50)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    top = max(float(smooth.max()), 1e-6)
    x = np.linspace(0, width, smooth.size)
    y = height - 15 - smooth / top * (height - 25)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<polyline points="{points}" fill="none" stroke="#4a7ab5" stroke-width="1.5"/>'
            f'<text x="2" y="10" font-size="10">{top:.3f}</text>'
            f'<text x="{width}" y="{height - 2}" font-size="10" text-anchor="end">{values.size} steps</text></svg>')


def write_synthesis_figure(sources, config, out_png, *, seed=0, count=6) -> Path:
    """PNG of ``count`` synthetic training images with their brain outline (one column per sample).

    ``sources``: ``(labels, mask)`` working-grid pairs; ``config``: the ``TrainingConfig`` whose
    synthesis settings are drawn from. The parameters of the samples go beside the PNG (same name,
    ``.json``): ``synthesis.generator.Draw.from_dict`` replays each one.
    """
    from singlestrip_bids.report.figures import encode_png, mask_mosaic
    from singlestrip_bids.synthesis.generator import Synthesizer

    synth = Synthesizer(sources, config.synthesis, seed=seed)
    columns, draws = [], []
    for _ in range(count):
        draws.append(synth.sample())
        image, mask = synth.render(draws[-1])
        columns.append(mask_mosaic(image[0].numpy(), mask[0].numpy() > 0.5, [config.voxel_size] * 3,
                                   slices_per_view=1))
    height = max(column.shape[0] for column in columns)
    padded = [np.pad(column, ((0, height - column.shape[0]), (0, 4), (0, 0))) for column in columns]
    atomic_write_json([draw.to_dict() for draw in draws], Path(out_png).with_suffix(".json"))
    return atomic_write_bytes(encode_png(np.concatenate(padded, axis=1)), out_png)


def _mask_figure(label, out_png) -> Path:
    import nibabel as nib

    from singlestrip_bids.io.nifti import load_image
    from singlestrip_bids.report.figures import canonical_arrays, write_mask_figure

    image, mask, sizes = canonical_arrays(load_image(label.image), np.asanyarray(nib.load(label.mask).dataobj))
    return write_mask_figure(image, mask, out_png, voxel_sizes=sizes)


def _figure(path: Path, output_dir: Path, caption: str) -> str:
    return (f'<figure><img src="{escape(path.relative_to(output_dir).as_posix())}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def write_group_report(output_dir, suffix, rows, ranked, losses, synthesis_png, table, threshold,
                       estimate_threshold=None) -> Path:
    """Write ``output_dir/group_<suffix>.html`` (atomically) and the mask mosaics it shows.

    ``rows``: the group table's rows for this suffix; ``ranked``: the last round's
    ``training.self_training.PseudoLabel`` s of this suffix, best first; ``losses``: name → loss per step;
    ``synthesis_png``, ``table``: paths of the synthetic samples figure and of the group TSV;
    ``threshold``: the AE-QC pass threshold; ``estimate_threshold``: the Dice estimator's (None: no estimator).
    """
    output_dir = Path(output_dir).absolute()
    last_round = max((row["round"] for row in rows), default=0)
    last = [row for row in rows if row["round"] == last_round]
    by_ae = sorted(ranked, key=lambda label: -label.ae_dice)
    parts = [f"<h1>Group report: {escape(suffix)}</h1>",
             f"<p>singlestrip_bids {escape(__version__)}; {len(last)} unlabeled image(s); "
             f'table: <a href="{escape(Path(table).name)}">{escape(Path(table).name)}</a>.</p>']
    if last:
        parts.append(f"<h2>AE-QC scores (round {last_round})</h2>"
                     + _svg_histogram([row["ae_dice"] for row in last], threshold))
        if "tta_dice" in last[0]:
            parts.append("<h3>TTA agreement</h3>" + _svg_histogram([row["tta_dice"] for row in last]))
        if "dice_estimate" in last[0]:
            parts.append("<h3>Estimated Dice (Dice estimator)</h3>"
                         + _svg_histogram([row["dice_estimate"] for row in last], estimate_threshold))
        header = "".join(f"<th>{escape(key)}</th>" for key in last[0])
        body = "".join("<tr>" + "".join(f"<td>{escape(str(value))}</td>" for value in row.values()) + "</tr>"
                       for row in sorted(last, key=lambda row: -row["ae_dice"]))
        parts.append(f"<table><tr>{header}</tr>{body}</table>")
        chosen = [("best", by_ae[:MOSAIC_COUNT]), ("worst", by_ae[::-1][:MOSAIC_COUNT])]
        parts.append("<h2>Best and worst masks by AE-QC</h2>")
        for kind, labels in chosen:
            for position, label in enumerate(labels, 1):
                png = _mask_figure(label, output_dir / "figures" / f"group_{suffix}_{kind}-{position}.png")
                parts.append(_figure(png, output_dir, f"{kind} {position}: {label.bids_name} "
                                                      f"(AE-QC {label.ae_dice:.3f})"))
    parts.append("<h2>Training losses</h2>")
    for name, values in losses.items():
        parts.append(f"<h3>{escape(name)}</h3>" + _svg_curve(values))
    parts.append("<h2>Synthetic training samples (last round)</h2>"
                 + _figure(Path(synthesis_png), output_dir, "synthetic images with the brain outline"))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Group report: {escape(suffix)}</title><style>{STYLE}</style></head><body>"
            + "".join(parts) + "</body></html>\n")
    return atomic_write_bytes(page.encode("utf-8"), output_dir / f"group_{suffix}.html")
