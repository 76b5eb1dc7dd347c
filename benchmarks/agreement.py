"""How well a QC score follows the true Dice of masks: one summary for every benchmark that asks."""

import numpy as np

GOOD_DICE = 0.9  #: a mask of true Dice below this is one QC should flag


def detection_auc(scores, truths, good_dice: float = GOOD_DICE) -> float | None:
    """Area under the ROC curve of a low score as the detector of a mask with true Dice < ``good_dice``:
    the probability that a bad mask scores below a good one (ties count half); None without both kinds."""
    scores, truths = np.asarray(scores, dtype=float), np.asarray(truths, dtype=float)
    bad, good = scores[truths < good_dice], scores[truths >= good_dice]
    if not len(bad) or not len(good):
        return None
    below = (bad[:, None] < good[None, :]).mean()
    tied = (bad[:, None] == good[None, :]).mean()
    return float(below + tied / 2)


def agreement(scores, truths, good_dice: float = GOOD_DICE) -> dict:
    """Pearson r, Spearman rank correlation, mean absolute error and :func:`detection_auc` between QC
    scores and true Dice values (correlations None where either side is constant)."""
    from scipy.stats import spearmanr

    scores, truths = np.asarray(scores, dtype=float), np.asarray(truths, dtype=float)
    varies = len(scores) > 1 and scores.std() > 0 and truths.std() > 0
    return {"pearson_r": float(np.corrcoef(scores, truths)[0, 1]) if varies else None,
            "spearman": float(spearmanr(scores, truths).statistic) if varies else None,
            "mae": float(np.mean(np.abs(scores - truths))) if len(scores) else None,
            "auc": detection_auc(scores, truths, good_dice), "n": int(len(scores))}
