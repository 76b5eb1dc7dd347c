"""One head, one brain: the masks of one session's images must agree in volume.

A mask that takes in the skull, or misses part of the brain, can look like a brain to the QC
networks (the demo's inverted-contrast "T2w": its mask has the shape of a brain, 1965 mL, while the
same head's T1w mask has 1586 mL). Beside the other images of the same subject and session it
stands out. With two images the check cannot say which of the two is wrong, so both are flagged.
"""

import json
import logging
from pathlib import Path
from statistics import median

#: a mask whose volume is more than this factor above or below the median of its session's other
#: masks is flagged. Reference masks of one session agree far better: the MS patients' T1w, T2w and
#: FLAIR masks within 3 %, the six fetal stacks within 11 % of the median of the others
#: (docs/qc.md); the demo's inverted-contrast mask is 1.24x its T1w's
SESSION_VOLUME_FACTOR = 1.2
LOG = logging.getLogger(__name__)


def session_of(bids_name: str) -> tuple[str, str]:
    """``sub-01_ses-2_acq-x_T1w`` → ``("01", "2")``; no session: ``("01", "")``."""
    from singlestrip_bids.io.derivatives import split_bids_name

    entities = split_bids_name(bids_name)[0]
    return entities.get("sub", ""), entities.get("ses", "")


def session_volume_ratios(volumes: dict) -> dict:
    """Each image's brain volume over the median volume of the other images of its session.

    ``volumes``: BIDS name (``sub-01_T1w``) → brain volume in mL. Returns BIDS name → ratio, for
    the images that share their session with at least one other image with a non-empty mask.
    """
    sessions = {}
    for name in volumes:
        sessions.setdefault(session_of(name), []).append(name)
    ratios = {}
    for names in sessions.values():
        for name in names:
            others = [volumes[other] for other in names if other != name and volumes[other] > 0]
            if others:
                ratios[name] = volumes[name] / median(others)
    return ratios


def consistent(ratio: float, factor: float = SESSION_VOLUME_FACTOR) -> bool:
    """Whether a volume ratio lies within ``factor`` either way."""
    return 1.0 / factor <= ratio <= factor


def check_session_volumes(qc_files) -> list[str]:
    """Add the session check to per-image QC JSON files (rewritten atomically, so a rerun gives the same).

    Each file with a session partner gains ``session_volume_ratio`` and ``session_volume_consistent``;
    an inconsistent one gets ``qc_pass`` false (``qc_pass`` stays absent where no QC network scored it).
    Returns the BIDS names of the images flagged by this check.
    """
    from singlestrip_bids.io.atomic import atomic_write_json

    documents = {Path(path): json.loads(Path(path).read_text()) for path in qc_files}
    ratios = session_volume_ratios({doc["bids_name"]: doc["brain_volume_ml"] for doc in documents.values()})
    flagged = []
    for path, doc in documents.items():
        ratio = ratios.get(doc["bids_name"])
        if ratio is None:
            continue
        doc["session_volume_ratio"] = round(ratio, 3)
        doc["session_volume_consistent"] = consistent(ratio)
        if not doc["session_volume_consistent"]:
            flagged.append(doc["bids_name"])
            LOG.warning("%s: its brain mask (%.0f mL) is %.2fx the median of its session's other masks, beyond "
                        "%gx either way: QC flagged", doc["bids_name"], doc["brain_volume_ml"], ratio,
                        SESSION_VOLUME_FACTOR)
            if "qc_pass" in doc:
                doc["qc_pass"] = False
        atomic_write_json(doc, path)
    return flagged
