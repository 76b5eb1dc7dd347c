"""Result rows → summaries, fixed-width text tables, JSON and CSV.

A row is one (image, method) pair: ``image``, ``dataset``, ``contrast``, ``method``, ``status``
("ok", "failed", "timeout", "unavailable"), ``reason`` (why not ok), ``dice``, ``hd95_mm``,
``inference_s`` (the stripping call), ``process_s`` (the whole process: imports, model loading, I/O),
``peak_rss_mb`` and ``reference_note``. Missing numbers are None.
"""

import csv
import io
import math
import statistics

from singlestrip_bids.io.atomic import atomic_write_bytes, atomic_write_json

ROW_FIELDS = ["image", "dataset", "contrast", "method", "status", "reason", "dice", "hd95_mm",
              "inference_s", "process_s", "peak_rss_mb", "reference_note"]


def _median(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def summarize(rows, keys=("method",)) -> list:
    """One summary per distinct value of ``keys`` (in first-seen order): counts and medians."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    summaries = []
    for values, members in groups.items():
        ok = [row for row in members if row["status"] == "ok"]
        peaks = [row["peak_rss_mb"] for row in members if row["peak_rss_mb"] is not None]
        summaries.append({
            **dict(zip(keys, values)),
            "n": len(members),
            "n_ok": len(ok),
            "dice_median": _median(row["dice"] for row in ok),
            "dice_min": min((row["dice"] for row in ok), default=None),
            "hd95_median_mm": _median(row["hd95_mm"] for row in ok),
            "inference_median_s": _median(row["inference_s"] for row in ok),
            "process_median_s": _median(row["process_s"] for row in ok),
            "peak_rss_max_mb": max(peaks, default=None),
            "not_ok": sorted({f"{row['status']}: {row['reason']}" for row in members if row["status"] != "ok"}),
        })
    return summaries


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def format_table(records, columns, titles=None) -> str:
    """Fixed-width text table of ``records`` (dicts) over ``columns``; ``titles`` renames headers."""
    titles = titles or {}
    header = [titles.get(column, column) for column in columns]
    body = [[_cell(record.get(column)) for column in columns] for record in records]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def report_text(rows) -> str:
    """The three tables a benchmark prints last: per image, per method and contrast, per method."""
    per_image = format_table(
        rows, ["image", "contrast", "method", "dice", "hd95_mm", "inference_s", "process_s", "peak_rss_mb", "status",
               "reason"],
        {"hd95_mm": "hd95 mm", "inference_s": "infer s", "process_s": "process s", "peak_rss_mb": "peak MB"})
    by_contrast = format_table(
        summarize(rows, ("contrast", "method")),
        ["contrast", "method", "n_ok", "n", "dice_median", "dice_min", "hd95_median_mm"],
        {"dice_median": "Dice median", "dice_min": "Dice min", "hd95_median_mm": "HD95 median mm"})
    by_method = summarize(rows)
    for summary in by_method:
        summary["not_ok"] = "; ".join(summary["not_ok"])
    overall = format_table(
        by_method,
        ["method", "n_ok", "n", "dice_median", "dice_min", "hd95_median_mm", "inference_median_s",
         "process_median_s", "peak_rss_max_mb", "not_ok"],
        {"dice_median": "Dice median", "dice_min": "Dice min", "hd95_median_mm": "HD95 median mm",
         "inference_median_s": "infer s (median)", "process_median_s": "process s (median)",
         "peak_rss_max_mb": "peak MB (max)", "not_ok": "not ok"})
    return "\n\n".join(["Per image", per_image, "Per contrast (median over images)", by_contrast,
                        "Per method", overall])


def write_results(rows, json_path, csv_path, metadata: dict) -> None:
    """``json_path``: {metadata, rows, summary}; ``csv_path``: one line per row. Both written atomically."""
    atomic_write_json({**metadata, "rows": rows, "summary": summarize(rows)}, json_path)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(buffer.getvalue().encode(), csv_path)
