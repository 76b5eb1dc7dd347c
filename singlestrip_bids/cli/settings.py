"""The run's settings: built once from the parsed command line, frozen, passed to the level drivers.

Nothing below ``cli/`` sees argparse; the drivers read these fields and hand plain values down.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from singlestrip_bids.errors import UserError

_PATHS = ("bids_dir", "output_dir", "work_dir", "model", "labeled_mask", "qc_masks")


@dataclass(frozen=True)
class RunSettings:
    """Every option of one run after defaults and normalisation (see ``cli.parser`` for each one's help).

    Paths are absolute; labels have no ``sub-``/``ses-`` prefix; lists are tuples.
    """

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    verbose: int = 0
    participant_label: tuple[str, ...] | None = None
    session_label: tuple[str, ...] | None = None
    bids_filters: dict | None = None  #: lower-case suffix → PyBIDS entities (``--bids-filter-file``)
    suffix: tuple[str, ...] = ("T1w",)
    skip_bids_validation: bool = False
    work_dir: Path = Path("work_dir")
    nprocs: int | None = None
    omp_nthreads: int | None = None
    mem_gb: float | None = None  #: GB
    device: str = "auto"
    precision: str = "auto"  #: forward pass: auto, fp32 or bf16
    plugin: str = "MultiProc"
    plugin_args: dict | None = None
    random_seed: int = 0
    model: Path | None = None
    border: float = 0.0  #: mm
    qc_masks: Path | None = None
    labeled_subject: str | None = None
    labeled_mask: Path | None = None
    train_steps: int | None = None
    ssl_steps: int | None = None
    ssl_learning_rate: float | None = None
    batch_size: int | None = None
    working_voxel_size: float | str = "auto"  #: mm, or "auto"
    real_image_probability: float | None = None
    init: str | Path = "default"
    resume: bool = False
    qc_ae: str = "2d"
    qc_ae_steps: int | None = None
    top_k: int = 10
    ssl_rounds: int = 1
    ssl_ranking: str = "ae"
    qc_estimator_steps: int | None = None
    from_scratch: bool = False

    def to_dict(self) -> dict:
        """The settings as JSON-able values (paths as strings), for the run's config file."""
        return {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}


def settings_from_args(args) -> RunSettings:
    """The frozen settings of a parsed command line: absolute paths, bare labels, default suffix T1w.

    UserError for an invalid label or an option given at the wrong level.
    """
    from singlestrip_bids.io.bids import normalize_labels
    from singlestrip_bids.model.bundle import SHIPPED_MODELS

    values = {field.name: getattr(args, field.name) for field in fields(RunSettings)}
    for name in _PATHS:  # a shipped model's name (--model synthetic) stays a name
        if values[name] is not None and not (name == "model" and str(values[name]) in SHIPPED_MODELS):
            values[name] = Path(values[name]).expanduser().absolute()
    if isinstance(values["init"], Path):
        values["init"] = values["init"].expanduser().absolute()
    for name, prefix in (("participant_label", "sub"), ("session_label", "ses")):
        if values[name]:
            values[name] = tuple(normalize_labels(values[name], prefix))
    if values["labeled_subject"]:
        values["labeled_subject"] = normalize_labels([values["labeled_subject"]], "sub")[0]
    values["suffix"] = tuple(values["suffix"] or ("T1w",))
    values["plugin_args"] = dict(values["plugin_args"] or {})
    if values["qc_masks"] is not None and values["analysis_level"] != "participant":
        raise UserError("--qc-masks is a participant-level option")
    return RunSettings(**values)
