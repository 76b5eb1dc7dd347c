"""BIDS-Derivatives output: file names from the source's entities, sidecars, dataset_description.json,
and the output/work folder checks (files are written by ``io.atomic``).

Names (see docs/outputs.md): for ``sub-01/anat/sub-01_acq-mp_T1w.nii.gz``

- mask ``sub-01/anat/sub-01_acq-mp_desc-brain_mask.nii.gz`` (native grid, no ``space``: what
  sMRIPrep/fMRIPrep look for with ``--derivatives``); a non-T1w source adds its suffix as space:
  ``sub-01_space-T2w_desc-brain_mask.nii.gz``, ``sub-01_task-rest_space-bold_desc-brain_mask.nii.gz``;
- brain image ``sub-01_acq-mp_desc-brain_T1w.nii.gz``;
- QC JSON ``sub-01_acq-mp_desc-brain_qc.json`` (mask name with suffix ``qc``);
- figure ``sub-01/figures/sub-01_acq-mp_desc-brain_mask.png``.
"""

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from singlestrip_bids import __version__
from singlestrip_bids.errors import UserError
from singlestrip_bids.io.atomic import atomic_write_bytes, atomic_write_json

PIPELINE_NAME = "singlestrip_bids"
# Outputs that are not BIDS files (QC, figures, reports, model bundles, group tables).
BIDS_IGNORE = ("*.html", "*_qc.json", "**/figures", "/models", "/logs", "group_*")
BIDS_VERSION = "1.10.0"
NATIVE_SUFFIX = "T1w"  # the one suffix whose mask is written without a space entity
DOCKERENV = Path("/.dockerenv")


def split_bids_name(name: str) -> tuple[dict[str, str], str, str]:
    """``"sub-01_ses-1_T1w.nii.gz"`` → ``({"sub": "01", "ses": "1"}, "T1w", ".nii.gz")``; entity order kept."""
    stem, dot, rest = name.partition(".")
    parts = stem.split("_")
    entities = dict(part.split("-", 1) for part in parts[:-1] if "-" in part)
    return entities, parts[-1], dot + rest


def bids_relative_path(source, bids_dir) -> str:
    """Path of ``source`` relative to ``bids_dir`` with forward slashes; UserError if outside it.

    Folders are compared resolved, the file itself is not: annexed files are links out of the tree.
    """
    source = Path(source).absolute()
    source, bids_dir = source.parent.resolve() / source.name, Path(bids_dir).resolve()
    if bids_dir not in source.parents:
        raise UserError(f"{source} is not inside the BIDS dataset {bids_dir}")
    return source.relative_to(bids_dir).as_posix()


@dataclass(frozen=True)
class ImageOutputs:
    """Where the derivatives of one source image go, and what their sidecars say."""

    source_uri: str  # "bids:raw:sub-01/anat/sub-01_T1w.nii.gz"
    mask: Path
    brain: Path
    qc_json: Path
    figure: Path
    output_dir: Path

    @property
    def mask_json(self) -> Path:
        return self.mask.with_name(self.mask.name.replace(".nii.gz", ".json"))

    @property
    def brain_json(self) -> Path:
        return self.brain.with_name(self.brain.name.replace(".nii.gz", ".json"))

    def mask_metadata(self) -> dict:
        """Sidecar of the mask: a brain mask on the source image's own voxel grid."""
        return {
            "Description": "Brain mask predicted by singlestrip_bids, on the source image's grid",
            "Type": "Brain",
            "Sources": [self.source_uri],
            "SpatialReference": self.source_uri,
        }

    def brain_metadata(self) -> dict:
        """Sidecar of the brain-extracted image: the raw image and the mask it was multiplied by."""
        mask_uri = "bids::" + self.mask.relative_to(self.output_dir).as_posix()
        return {
            "Description": "Source image with voxels outside the brain mask set to zero",
            "SkullStripped": True,
            "Sources": [self.source_uri, mask_uri],
        }


def image_outputs(source, bids_dir, output_dir) -> ImageOutputs:
    """Derivative paths of the raw image ``source`` (inside ``bids_dir``) under ``output_dir``."""
    output_dir = Path(output_dir).absolute()
    relative = bids_relative_path(source, bids_dir)
    entities, suffix, _ = split_bids_name(Path(relative).name)
    if "sub" not in entities:
        raise UserError(f"{relative}: not a BIDS file name (no sub- entity)")
    base = {key: value for key, value in entities.items() if key not in ("space", "desc")}
    space = {} if suffix == NATIVE_SUFFIX else {"space": suffix}
    mask_stem = _join_entities({**base, **space, "desc": "brain"})
    folder = output_dir / Path(relative).parent
    return ImageOutputs(
        source_uri=f"bids:raw:{relative}",
        mask=folder / f"{mask_stem}_mask.nii.gz",
        brain=folder / f"{_join_entities({**base, 'desc': 'brain'})}_{suffix}.nii.gz",
        qc_json=folder / f"{mask_stem}_qc.json",
        figure=output_dir / f"sub-{entities['sub']}" / "figures" / f"{mask_stem}_mask.png",
        output_dir=output_dir,
    )


def subject_report_path(output_dir, subject) -> Path:
    """``output_dir/sub-<label>.html``, the subject's report (``subject`` with or without ``sub-``)."""
    return Path(output_dir) / f"sub-{str(subject).removeprefix('sub-')}.html"


def _join_entities(entities: dict) -> str:
    return "_".join(f"{key}-{value}" for key, value in entities.items())


def write_dataset_description(output_dir, bids_dir) -> Path:
    """Write or update ``output_dir/dataset_description.json`` (BIDS-Derivatives) and ``.bidsignore``.

    An existing file written by this pipeline is merged (its other keys are kept); one of another
    pipeline, or of a raw dataset, is a UserError: the output folder belongs to someone else.
    ``.bidsignore`` gains the patterns of ``BIDS_IGNORE`` so the output validates as BIDS.
    """
    output_dir, bids_dir = Path(output_dir).absolute(), Path(bids_dir).absolute()
    path = output_dir / "dataset_description.json"
    existing = _read_json(path) if path.exists() else {}
    if existing:
        _check_ours(existing, output_dir)
    raw = _read_json(bids_dir / "dataset_description.json")
    raw_uri = bids_dir.as_uri()
    source = {"URL": raw_uri}
    if raw.get("DatasetDOI"):
        source["DOI"] = raw["DatasetDOI"]
    generated_by = {"Name": PIPELINE_NAME, "Version": __version__}
    container = _container()
    if container:
        generated_by["Container"] = container
    description = {
        **existing,
        "Name": f"{PIPELINE_NAME} brain masks of {raw.get('Name', bids_dir.name)}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        "SourceDatasets": [source],
        "DatasetLinks": {**existing.get("DatasetLinks", {}), "raw": raw_uri},
    }
    _update_bidsignore(output_dir / ".bidsignore")
    if description == existing:  # as it is: leave it (array tasks of one job write it once, not N times)
        return path
    return atomic_write_json(description, path)


def _update_bidsignore(path: Path) -> None:
    lines = path.read_text().splitlines() if path.exists() else []
    missing = [pattern for pattern in BIDS_IGNORE if pattern not in lines]
    if missing:
        atomic_write_bytes("".join(f"{line}\n" for line in lines + missing).encode(), path)


def _check_ours(description: dict, output_dir: Path) -> None:
    if description.get("DatasetType", "raw") != "derivative":
        raise UserError(f"{output_dir} holds a raw BIDS dataset; choose an empty or derivatives output folder")
    generated = description.get("GeneratedBy") or [description.get("PipelineDescription", {})]
    names = [entry.get("Name") for entry in generated if isinstance(entry, dict)]
    if PIPELINE_NAME not in names:
        raise UserError(f"{output_dir} holds derivatives of another pipeline ({', '.join(map(str, names))})")


def _container() -> dict | None:
    """Container {Type, Tag} when running inside Docker or Apptainer/Singularity, else None."""
    tag = f"{PIPELINE_NAME}:{__version__}"
    if os.environ.get("APPTAINER_CONTAINER"):
        return {"Type": "apptainer", "Tag": tag}
    if os.environ.get("SINGULARITY_CONTAINER"):
        return {"Type": "singularity", "Tag": tag}
    if DOCKERENV.exists():
        return {"Type": "docker", "Tag": tag}
    return None


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(content, dict):
        raise UserError(f"{path}: expected a JSON object")
    return content


def check_output_dir(bids_dir, output_dir, work_dir=None) -> None:
    """UserError if the output (or work) folder is the input dataset or inside it, not writable, or
    holds another pipeline's dataset (checked before anything is written)."""
    bids_dir = Path(bids_dir).resolve()
    output_dir = Path(output_dir).resolve()
    if output_dir == bids_dir or bids_dir in output_dir.parents:
        raise UserError(f"output folder {output_dir} is the input BIDS dataset or inside it; choose another")
    if (output_dir / "dataset_description.json").exists():
        _check_ours(_read_json(output_dir / "dataset_description.json"), output_dir)
    if work_dir is not None:
        work_dir = Path(work_dir).resolve()
        if work_dir == bids_dir or bids_dir in work_dir.parents:
            raise UserError(f"work folder {work_dir} is inside the input BIDS dataset; choose another")
    for folder in (output_dir, work_dir):
        if folder is not None:
            _check_writable(folder)


def _check_writable(folder: Path) -> None:
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        raise UserError(f"cannot create {folder}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UserError(f"{folder} is not writable ({exc.strerror or exc})") from None
