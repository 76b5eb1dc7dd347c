"""The paper's experiment as tables: models × test sets beside the paper's numbers, QC agreement, per fold.

Rows are dicts with ``model``, ``fold``, ``image``, ``dice``, ``hd95_mm`` and ``test_set``; QC rows have
``true_dice``, ``ae_dice``, ``tta_dice`` and ``dice_estimate``. Peers (rows of ``benchmarks/run.py`` for the
same test images) are shown below the paper's models.
"""

import statistics

from agreement import GOOD_DICE, agreement
from table import format_table

# The paper's results, as "Dice / HD95 mm" on its in-distribution (FSM T1w) and OOD (ASL) test sets.
PAPER = {
    "SL-1": ("0.949-0.950 / 5.0-5.5", "0.897 / 12.8"),
    "SSL-AE": ("0.950 / 5.5", "0.924 / 7.0"),
    "SSL-TTA": ("0.863 / -", "0.624 / -"),
    "SSL-T": ("0.953 / 4.8", "0.936 / 6.0"),
    "SSL-T scratch": ("0.943 / -", "0.895 / -"),
}
PAPER_QC = {"AE": (0.708, 0.067), "TTA": (-0.100, 0.107)}
#: self-training ranked by the Dice estimator (``qc.estimator``): not in the paper, built on request
ESTIMATOR_MODEL = "SSL-estimator"
MODELS = [*PAPER, ESTIMATOR_MODEL]
#: the group level's final model: SL-1 or SSL-AE, whichever scores better by mean AE-QC over the
#: fold's unlabeled images (``training.self_training.best_model``); not in the paper
QC_CHOSEN = "SL-1 or SSL-AE, QC-chosen"
PEERS = ["shipped model (human)", "deepbet", "HD-BET (fast)"]


def _mean_sd(values, spec: str) -> str:
    values = [value for value in values if value is not None]
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.fmean(values), spec)} ± {format(spread, spec)}"


def summary_tables(rows, qc_rows, dataset: str = "human") -> str:
    """Models x test sets (Dice and HD95 mean ± SD over folds and images) beside the paper, then QC
    agreement beside the paper."""
    test_sets = list(dict.fromkeys(row["test_set"] for row in rows))
    records = []
    for model in _models(rows):
        record = {"model": model}
        for name in test_sets:
            chosen = [row for row in rows if row["model"] == model and row["test_set"] == name]
            record[f"{name} dice"] = _mean_sd([row["dice"] for row in chosen], ".3f")
            record[f"{name} hd95"] = _mean_sd([row["hd95_mm"] for row in chosen], ".1f")
        record["paper FSM T1w"], record["paper ASL (OOD)"] = PAPER.get(model, ("-", "-"))
        records.append(record)
    columns = ["model", *[f"{name} {kind}" for name in test_sets for kind in ("dice", "hd95")],
               "paper FSM T1w", "paper ASL (OOD)"]
    models = format_table(records, columns, {f"{name} hd95": f"{name} HD95 mm" for name in test_sets})
    qc_records = []
    for score, key in (("AE", "ae_dice"), ("TTA", "tta_dice"), ("estimator", "dice_estimate")):
        if any(row.get(key) is None for row in qc_rows):
            continue
        result = agreement([row[key] for row in qc_rows], [row["true_dice"] for row in qc_rows])
        paper_r, paper_mae = PAPER_QC.get(score, ("-", "-"))
        qc_records.append({"score": score, **result, "paper_r": paper_r, "paper_mae": paper_mae})
    qc = format_table(qc_records, ["score", "pearson_r", "spearman", "mae", "auc", "n", "paper_r", "paper_mae"],
                      {"pearson_r": "Pearson r", "mae": "MAE", "auc": f"AUC (Dice < {GOOD_DICE})", "paper_r": "paper r",
                       "paper_mae": "paper MAE"})
    return "\n\n".join([f"{dataset}: mean ± SD over folds and test images", models,
                         "QC score vs true Dice of SL-1's masks (pooled over folds)", qc])


def per_fold_table(rows) -> str:
    """Mean Dice per fold and model (how often self-training beat SL-1); "-" where a fold lacks a model."""
    folds = sorted({row["fold"] for row in rows})
    models = _models(rows)

    def mean(fold, model):
        values = [row["dice"] for row in rows if row["fold"] == fold and row["model"] == model]
        return statistics.fmean(values) if values else None

    records = [{"fold": fold, **{model: mean(fold, model) for model in models}} for fold in folds]
    return format_table(records, ["fold", *models])


def _models(rows) -> list:
    return [model for model in [*MODELS, QC_CHOSEN, *PEERS] if any(row["model"] == model for row in rows)]
