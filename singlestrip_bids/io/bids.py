"""Select images of a BIDS dataset (PyBIDS), find and check the labeled example's brain mask."""

import json
import re
from pathlib import Path

from singlestrip_bids.errors import UserError

NIFTI_EXTENSIONS = [".nii", ".nii.gz"]
_LABEL = re.compile(r"[0-9A-Za-z]+")
# Entities that tell two files of one subject apart; a mask must agree with its image on these.
_IDENTIFYING = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction", "direction", "run",
                "echo", "flip", "inversion", "mtransfer", "part")
_MASK_GRID_TOLERANCE_MM = 1e-3


def normalize_labels(labels, prefix: str) -> list[str] | None:
    """Labels without their ``<prefix>-`` (e.g. ``sub-01`` or ``01`` → ``01``), duplicates dropped.

    ``None`` stays ``None`` (no selection). A label that is not letters and digits only (path
    characters such as ``../x``, ``/``, ``*``) is a UserError.
    """
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    normalized = []
    for raw in labels:
        label = raw[len(prefix) + 1:] if raw.startswith(f"{prefix}-") else raw
        if not _LABEL.fullmatch(label):
            raise UserError(f"invalid {prefix}- label {raw!r}: BIDS labels are letters and digits only")
        if label not in normalized:
            normalized.append(label)
    return normalized


def load_bids_filters(path) -> dict:
    """Read a PyBIDS filter file ``{"t1w": {"acquisition": "mprage", "session": null}, ...}``.

    Keys are lower-case suffixes; each value is a dict of PyBIDS query entities whose values are
    strings, numbers, ``null`` ("entity absent"), ``"*"`` ("any value") or lists of those.
    UserError when the file is missing or malformed.
    """
    path = Path(path)
    try:
        filters = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read the BIDS filter file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(filters, dict) or not all(isinstance(query, dict) for query in filters.values()):
        raise UserError(f'{path}: expected {{"<suffix>": {{"<entity>": <value>, ...}}, ...}}')
    for suffix, query in filters.items():
        for entity, value in query.items():
            if not all(_is_filter_value(item) for item in (value if isinstance(value, list) else [value])):
                raise UserError(f"{path}: {suffix}.{entity} must be a string, a number, null or a list of "
                                f"those, not {json.dumps(value)}")
    return {key.lower(): query for key, query in filters.items()}


def _is_filter_value(value) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def unused_filter_keys(bids_filters: dict, suffixes) -> list[str]:
    """Keys of ``bids_filters`` that name none of ``suffixes`` (a typo, or a suffix not being run)."""
    wanted = {suffix.lower() for suffix in suffixes}
    return sorted(key for key in bids_filters if key not in wanted)


def _layout(bids_dir, *, derivatives: bool):
    """A PyBIDS layout without validation (the validator runs separately)."""
    from bids import BIDSLayout

    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise UserError(f"{bids_dir}: no such folder")
    if not (bids_dir / "dataset_description.json").is_file():
        raise UserError(f"{bids_dir} is not a BIDS dataset (no dataset_description.json)")
    try:
        return BIDSLayout(bids_dir, validate=False, derivatives=derivatives)
    except Exception as exc:  # pybids raises several types for malformed descriptions or derivatives
        message = " ".join(str(exc).split())[:300]
        raise UserError(f"{bids_dir}: cannot index the dataset ({message})") from None


def _query_values(query: dict) -> dict:
    """fMRIPrep-style filter values → PyBIDS: ``None`` → Query.NONE, ``"*"`` → Query.ANY."""
    from bids.layout import Query

    def convert(value):
        if value is None:
            return Query.NONE
        return Query.ANY if value == "*" else value

    return {key: convert(value) for key, value in query.items()}


def _check_known(wanted, known, what: str) -> None:
    unknown = [label for label in wanted or () if label not in known]
    if unknown:
        shown = ", ".join(sorted(known)[:10]) + (", ..." if len(known) > 10 else "")
        raise UserError(f"{what} label(s) not found: {', '.join(unknown)} (dataset has: {shown or 'none'})")


def collect_images(bids_dir, *, participant_labels=None, session_labels=None, suffixes=("T1w",),
                   bids_filters=None) -> list[Path]:
    """NIfTI images of ``bids_dir`` with the given suffixes, subjects and sessions, sorted.

    ``bids_filters`` (from ``load_bids_filters``) adds entities per suffix. Derivatives are not
    searched. UserError for a folder that is not BIDS, unknown labels, or when nothing matches.
    """
    participants = normalize_labels(participant_labels, "sub")
    sessions = normalize_labels(session_labels, "ses")
    layout = _layout(bids_dir, derivatives=False)
    _check_known(participants, layout.get_subjects(), "participant")
    _check_known(sessions, layout.get_sessions(), "session")
    base = {"extension": NIFTI_EXTENSIONS, "return_type": "filename"}
    if participants:
        base["subject"] = participants
    if sessions:
        base["session"] = sessions
    filters = bids_filters or {}
    found = set()
    for suffix in suffixes:
        query = {**base, "suffix": suffix, **_query_values(filters.get(suffix.lower(), {}))}
        try:
            found.update(layout.get(**query))
        except ValueError as exc:  # an entity PyBIDS does not know
            raise UserError(f"bad BIDS filter for {suffix}: {exc}") from None
    if not found:
        described = [f"suffix {'/'.join(suffixes)}"]
        described += [f"participant {'/'.join(participants)}"] if participants else []
        described += [f"session {'/'.join(sessions)}"] if sessions else []
        used = {key: value for key, value in filters.items() if key in {s.lower() for s in suffixes}}
        described += [f"filters {json.dumps(used)}"] if used else []
        raise UserError(f"no NIfTI images in {bids_dir} match {', '.join(described)}")
    return sorted(Path(name) for name in found)


def find_labeled_mask(bids_dir, subject, suffix="T1w", bids_filters=None) -> tuple[Path, Path]:
    """The labeled subject's raw image and its brain mask under ``bids_dir/derivatives/<any>/``.

    The mask is ``*_desc-brain_mask.nii[.gz]`` with the image's identifying entities (session,
    acquisition, run, ...) and either ``space-<suffix>``, no space (also ``space-orig``/``space-T1w``
    for a T1w image), or the BIDS 1.2 form ``…_<suffix>_desc-brain_mask``. ``bids_filters`` (from
    ``load_bids_filters``) narrows the images as at participant level. UserError when there is none
    or more than one candidate (listed, with how to choose).
    """
    (label,) = normalize_labels([subject], "sub")
    layout = _layout(bids_dir, derivatives=True)
    _check_known([label], layout.get_subjects(scope="raw"), "participant")
    query = {"subject": label, "suffix": suffix, "extension": NIFTI_EXTENSIONS, "scope": "raw",
             **_query_values((bids_filters or {}).get(suffix.lower(), {}))}
    try:
        images = layout.get(**query)
    except ValueError as exc:  # an entity PyBIDS does not know
        raise UserError(f"bad BIDS filter for {suffix}: {exc}") from None
    if not images:
        raise UserError(f"sub-{label} has no {suffix} image in {bids_dir}")
    try:
        masks = layout.get(subject=label, desc="brain", suffix="mask", extension=NIFTI_EXTENSIONS,
                           scope="derivatives")
    except ValueError:  # no derivatives dataset was indexed, so PyBIDS knows no "desc" entity
        masks = []
    pairs = [(image, mask) for image in images for mask in masks
             if _identity(image) == _identity(mask) and _in_space_of(mask, suffix)]
    exact = [(image, mask) for image, mask in pairs if mask.get_entities().get("space") == suffix]
    pairs = exact or pairs  # a mask named for this image's space beats one that may be another's
    if not pairs:
        raise UserError(
            f"no brain mask for sub-{label} {suffix} under {Path(bids_dir) / 'derivatives'} "
            f"(expected a *_desc-brain_mask.nii.gz with the image's entities, in a folder with a "
            f"dataset_description.json); give one with --labeled-mask"
        )
    if len(pairs) > 1:
        names = ", ".join(Path(mask.path).name for _, mask in pairs)
        identities = [_identity(image) for image, _ in pairs]
        entity = next((key for key in _IDENTIFYING if len({str(i.get(key)) for i in identities}) > 1), None)
        example = f" such as {json.dumps({suffix.lower(): {entity: identities[0][entity]}})}" if entity else ""
        raise UserError(f"{len(pairs)} brain masks match sub-{label} {suffix}: {names}; choose one with "
                        f"--labeled-mask or a --bids-filter-file entry{example}")
    image, mask = pairs[0]
    return Path(image.path), Path(mask.path)


def image_of_mask(images, mask_path) -> Path:
    """The one of ``images`` (paths) whose identifying entities the mask's file name carries.

    With one image, that image. UserError listing the candidates when the name does not decide.
    """
    from bids.layout import parse_file_entities

    if len(images) == 1:
        return Path(images[0])
    wanted = _identifying(parse_file_entities(str(mask_path)))
    matching = [image for image in images if _identifying(parse_file_entities(str(image))) == wanted]
    if len(matching) == 1:
        return Path(matching[0])
    names = ", ".join(Path(image).name for image in images)
    raise UserError(f"{len(images)} images could go with --labeled-mask {Path(mask_path).name}: {names}; "
                    "name the mask after its image (same entities) or narrow them with --bids-filter-file")


def _in_space_of(mask, suffix: str) -> bool:
    """Whether a derivatives mask is in the space of the ``suffix`` image with the same entities."""
    space = mask.get_entities().get("space")
    if space is not None:
        return space == suffix or (suffix == "T1w" and space in ("orig", "T1w"))
    stem = Path(mask.path).name.split("_desc-")[0]
    named = stem.rsplit("_", 1)[-1]  # BIDS 1.2 masks carry the image's suffix: sub-01_run-1_T2w_desc-brain_mask
    return named == suffix or "-" in named  # "ses-1": an entity, so the name carries no suffix


def _identity(bids_file) -> dict:
    return _identifying(bids_file.get_entities())


def _identifying(entities: dict) -> dict:
    return {key: entities[key] for key in _IDENTIFYING if key in entities}


def check_labeled_mask(image_img, mask_img):
    """The labeled mask as a uint8 (X, Y, Z) 0/1 array after checking it can teach the model.

    It must lie on the image's voxel grid (same 3D shape; voxel corners within 1e-3 mm), hold only
    0 and 1, be non-empty and be one 26-connected component. Otherwise a UserError says what is wrong.
    """
    import numpy as np
    from scipy import ndimage

    image_shape, mask_shape = tuple(image_img.shape[:3]), tuple(mask_img.shape)
    if mask_shape != image_shape:
        raise UserError(f"labeled mask shape {mask_shape} differs from the image's {image_shape}")
    corners = np.array([[i, j, k, 1] for i in (0, image_shape[0]) for j in (0, image_shape[1])
                        for k in (0, image_shape[2])], dtype=float).T
    offset_mm = np.abs((mask_img.affine - image_img.affine) @ corners)[:3].max()
    if offset_mm > _MASK_GRID_TOLERANCE_MM:
        raise UserError(f"labeled mask is not on the image's voxel grid (affines differ by up to {offset_mm:.3g} mm)")
    data = np.asanyarray(mask_img.dataobj)
    values = np.unique(data)
    if not np.all(np.isin(values, (0, 1))):
        raise UserError(f"labeled mask is not binary (values include {values[~np.isin(values, (0, 1))][:3].tolist()})")
    mask = data.astype(np.uint8)
    if not mask.any():
        raise UserError("labeled mask is empty")
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count > 1:
        sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
        raise UserError(
            f"labeled mask has {count} separate parts (voxels: {', '.join(map(str, sizes[:4]))}"
            f"{', ...' if count > 4 else ''}); keep only the brain"
        )
    return mask


def bids_metadata(bids_dir, images) -> dict:
    """Source path (str) → its BIDS entities and sidecar metadata (with inheritance), via PyBIDS."""
    from bids import BIDSLayout

    layout = BIDSLayout(bids_dir, validate=False)
    result = {}
    for image in images:
        bids_file = layout.get_file(str(image))
        result[str(image)] = {**bids_file.get_entities(metadata=False), **bids_file.get_metadata()}
    return result
