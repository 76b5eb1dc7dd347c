"""Per-subject HTML report: one section per image with its figure, output links and QC numbers."""

import json
from html import escape
from pathlib import Path

from singlestrip_bids import __version__
from singlestrip_bids.io.atomic import atomic_write_bytes
from singlestrip_bids.io.derivatives import subject_report_path

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
section { margin-bottom: 2.5em; }
img { max-width: 100%; background: #000; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
.pass { color: #080; font-weight: bold; }
.flag { color: #b00; font-weight: bold; }
"""


def _qc_rows(qc: dict) -> str:
    rows = []
    if "brain_volume_ml" in qc:
        rows.append(("Brain volume", f"{qc['brain_volume_ml']:.1f} mL"))
    if qc.get("ae_dice") is not None:
        rows.append(("AE-QC Dice", f"{qc['ae_dice']:.3f}"))
    if qc.get("dice_estimate") is not None:
        rows.append(("Estimated Dice", f"{qc['dice_estimate']:.3f}"))
    if qc.get("session_volume_ratio") is not None:
        agrees = "" if qc.get("session_volume_consistent") else ' <span class="flag">disagrees</span>'
        rows.append(("Volume / session's other masks", f"{qc['session_volume_ratio']:.2f}×{agrees}"))
    if qc.get("qc_pass") is not None:
        verdict = '<span class="pass">pass</span>' if qc["qc_pass"] else '<span class="flag">flagged</span>'
        threshold = f" (threshold {qc['qc_threshold']:.3f})" if qc.get("qc_threshold") is not None else ""
        rows.append(("QC", verdict + threshold))
    if qc.get("nonfinite_voxels"):
        rows.append(("NaN/Inf voxels set to 0", str(qc["nonfinite_voxels"])))
    return "".join(f"<tr><th>{escape(name)}</th><td>{value}</td></tr>" for name, value in rows)


def _section(outputs, output_dir: Path) -> str:
    """HTML of one image; ``outputs`` is an ``io.derivatives.ImageOutputs``."""
    relative = {name: Path(getattr(outputs, name)).relative_to(output_dir).as_posix()
                for name in ("mask", "brain", "qc_json", "figure")}
    qc = json.loads(outputs.qc_json.read_text()) if outputs.qc_json.is_file() else None
    source = outputs.source_uri.removeprefix("bids:raw:")
    links = " · ".join(f'<a href="{escape(path)}">{escape(label)}</a>' for label, path in (
        ("mask", relative["mask"]), ("brain image", relative["brain"]), ("QC JSON", relative["qc_json"])))
    figure = (f'<img src="{escape(relative["figure"])}" alt="brain mask contour on {escape(source)}">'
              if outputs.figure.is_file() else "<p>No figure.</p>")
    table = f"<table>{_qc_rows(qc)}</table>" if qc else "<p>No QC JSON.</p>"
    return f"<section><h2>{escape(source)}</h2>{figure}{table}<p>{links}</p></section>"


def write_subject_report(output_dir, subject, entries) -> Path:
    """Write ``output_dir/sub-<subject>.html`` (atomically) and return its path.

    ``entries``: the ``io.derivatives.ImageOutputs`` of the subject's images. Numbers come from
    each image's QC JSON (``brain_volume_ml``, ``ae_dice``, ``dice_estimate``, ``session_volume_ratio``,
    ``qc_pass``, ``qc_threshold``, ``nonfinite_voxels``, each optional); links are relative, so the folder can be moved.
    """
    output_dir = Path(output_dir).absolute()
    label = str(subject).removeprefix("sub-")
    sections = "".join(_section(outputs, output_dir) for outputs in entries) or "<p>No images.</p>"
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>sub-{escape(label)}: brain masks</title><style>{STYLE}</style></head><body>"
        f"<h1>sub-{escape(label)}: brain masks</h1>"
        f"<p>singlestrip_bids {escape(__version__)}. Orange line: the brain mask's outline. "
        "Rows: sagittal, coronal, axial slices; superior up, the subject's right on the right.</p>"
        f"{sections}</body></html>\n"
    )
    return atomic_write_bytes(page.encode("utf-8"), subject_report_path(output_dir, label))
