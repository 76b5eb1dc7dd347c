"""Model bundles: a folder with ``bundle.json`` and the weights it describes.

``bundle.json`` carries everything needed to rebuild the networks (architecture, training and
synthesis settings, seed, package version), the sha256 of every weights file, and one ``inference``
block, the one source of inference parameters (:attr:`Bundle.inference`). Weights are plain state
dicts read with ``torch.load(weights_only=True)``, so a bundle can never run code; a file whose hash
does not match is refused.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from singlestrip_bids import __version__
from singlestrip_bids.errors import UserError

FORMAT = "singlestrip-bundle"
FORMAT_VERSION = 1
#: the input normalisation of every bundle (``model.normalize.normalize_intensity``)
NORMALIZATION = "min_p99_clip"
MASK_THRESHOLD = 0.5  #: P(brain) at or above which a voxel is brain


@dataclass
class Bundle:
    """A loaded bundle; networks are on the CPU in eval mode."""

    path: Path
    config: dict
    unet: object  #: model.unet.UNet
    qc_ae: object = None  #: qc autoencoder or None
    dice_estimator: object = None  #: model.estimator network or None

    @property
    def model_id(self) -> str:
        return bundle_model_id(self.config)

    @property
    def inference(self) -> dict:
        """``voxel_size_mm`` (working grid), ``size_multiple`` (working-grid sizes are multiples of it),
        ``head_margin_mm`` (None: the whole working volume is the input), ``normalization`` and
        ``mask_threshold``; bundles written before the block existed give the same from their keys."""
        return bundle_inference(self.config)

    @property
    def voxel_size(self) -> float:
        return float(self.inference["voxel_size_mm"])

    @property
    def size_multiple(self) -> int:
        return int(self.inference["size_multiple"])

    @property
    def mask_threshold(self) -> float:
        return float(self.inference["mask_threshold"])

    @property
    def head_margin_voxels(self) -> int | None:
        """Margin around the head in the network's input frame (working voxels), or ``None``."""
        margin_mm = self.inference["head_margin_mm"]
        return None if margin_mm is None else int(round(margin_mm / self.voxel_size))


def bundle_inference(config: dict) -> dict:
    """The ``inference`` block of a ``bundle.json`` (:attr:`Bundle.inference`), derived for old bundles."""
    if "inference" in config:
        return config["inference"]
    levels = int(config["unet"]["config"]["levels"])
    return inference_block(config["working_voxel_size"], 2 ** (levels - 1), config.get("head_margin_mm"))


def check_inference(inference: dict) -> str | None:
    """What is wrong with an ``inference`` block, or None: every value must have its type and range."""
    from singlestrip_bids.io.nifti import VOXEL_SIZE_RANGE_MM

    def number(key, low, high, *, optional=False):
        value = inference.get(key)
        if optional and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            return f"{key} must be a number in {low}-{high}, not {value!r}"
        return None

    problems = [
        number("voxel_size_mm", *VOXEL_SIZE_RANGE_MM),
        number("head_margin_mm", 0, 1000, optional=True),
        number("mask_threshold", 1e-6, 1 - 1e-6),
        None if isinstance(inference.get("size_multiple"), int) and inference["size_multiple"] >= 1
        else f"size_multiple must be a positive integer, not {inference.get('size_multiple')!r}",
        None if inference.get("normalization") == NORMALIZATION
        else f"normalization {inference.get('normalization')!r} is not {NORMALIZATION!r}",
    ]
    return next((problem for problem in problems if problem), None)


def inference_block(voxel_size: float, size_multiple: int, head_margin_mm: float | None) -> dict:
    """The ``inference`` block of ``bundle.json``."""
    return {"voxel_size_mm": float(voxel_size), "size_multiple": int(size_multiple),
            "head_margin_mm": None if head_margin_mm is None else float(head_margin_mm),
            "normalization": NORMALIZATION, "mask_threshold": MASK_THRESHOLD}


#: the models shipped inside the package, by the name ``--model`` and ``--init`` accept
SHIPPED_MODELS = {"default": "default_model", "synthetic": "synthetic_model"}


def shipped_bundle_path(name: str = "default") -> Path:
    """The folder of the shipped model ``name`` (:data:`SHIPPED_MODELS`); it may be absent."""
    return Path(resources.files("singlestrip_bids") / "data" / SHIPPED_MODELS[name])


def default_bundle_path() -> Path:
    """The model shipped inside the package (trained by the group level on one labeled head)."""
    return shipped_bundle_path("default")


def resolve_bundle_path(model, output_dir) -> Path:
    """``--model``: a shipped model's name (:data:`SHIPPED_MODELS`) or a bundle folder; not given:
    ``output_dir/models/final`` of a group run if present, else the shipped default model."""
    if model is not None:
        if str(model) in SHIPPED_MODELS:
            path = shipped_bundle_path(str(model))
            if not (path / "bundle.json").is_file():
                raise UserError(f"the {model} model is not shipped with this version of singlestrip_bids")
            return path
        return Path(model)
    trained = Path(output_dir) / "models" / "final"
    if (trained / "bundle.json").is_file():
        return trained
    return default_bundle_path()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(path, *, name: str, unet, voxel_size: float, head_margin_mm: float | None = None, qc_ae=None,
                extra: dict | None = None, dice_estimator=None) -> Path:
    """Write a bundle folder atomically (built in a temporary sibling, then renamed into place).

    ``head_margin_mm``: inference frames the head with this margin (``inference.predict.head_frame``);
    ``None`` feeds the whole working volume.
    ``qc_ae`` is an autoencoder exposing ``.config`` (a JSON-able dict for
    ``qc.autoencoder.build_autoencoder``), ``dice_estimator`` a ``model.estimator`` network (its
    ``.config`` likewise); ``extra`` holds provenance (training, GMM, synthesis).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is read by other users (containers)
    try:
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "package_version": __version__,
            "inference": inference_block(voxel_size, unet.config.multiple, head_margin_mm),
            "orientation": "RAS",
            **(extra or {}),
        }
        nets = {"unet": (unet, unet.config.to_dict())}
        if qc_ae is not None:
            nets["qc_ae"] = (qc_ae, dict(qc_ae.config))
        if dice_estimator is not None:
            nets["dice_estimator"] = (dice_estimator, dict(dice_estimator.config))
        for key, (net, net_config) in nets.items():
            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            torch.save(state, tmp / f"{key}.pt")
            config[key] = {"config": net_config, "file": f"{key}.pt", "sha256": _sha256(tmp / f"{key}.pt")}
        (tmp / "bundle.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def add_dice_estimator(path, dice_estimator) -> Path:
    """Rewrite the bundle at ``path`` with ``dice_estimator`` added (or replaced); all else is kept."""
    bundle = load_bundle(path)
    kept = {key: value for key, value in bundle.config.items()
            if key not in ("format", "format_version", "name", "package_version", "inference", "orientation",
                           "unet", "qc_ae", "dice_estimator")}
    return save_bundle(path, name=bundle.config["name"], unet=bundle.unet, voxel_size=bundle.voxel_size,
                       head_margin_mm=bundle.inference["head_margin_mm"], qc_ae=bundle.qc_ae, extra=kept,
                       dice_estimator=dice_estimator)


WEIGHTS = {"unet": "U-Net", "qc_ae": "QC autoencoder", "dice_estimator": "Dice estimator"}  #: config key → name


def check_bundle(path) -> dict:
    """``read_bundle_config`` plus every weights file present with its sha256, without torch
    (a run's driver checks the bundle this way; its workers load it)."""
    folder = _bundle_folder(path)
    config = read_bundle_config(folder)
    for key, what in WEIGHTS.items():
        if key in config:
            _checked_weights_file(folder, config[key], what)
    return config


def bundle_model_id(config: dict) -> str:
    """The model id of a ``bundle.json``: its name and the first 12 hex digits of the U-Net's sha256."""
    return f"{config['name']}-{config['unet']['sha256'][:12]}"


def _bundle_folder(path) -> Path:
    """A bundle's folder, given it or one of its files."""
    path = Path(path)
    return path.parent if path.is_file() else path


def _checked_weights_file(folder: Path, entry: dict, what: str) -> Path:
    file = folder / entry["file"]
    if Path(entry["file"]).name != entry["file"] or not file.is_file():
        raise UserError(f"model bundle {folder}: {what} weights file {entry['file']!r} is missing")
    if _sha256(file) != entry["sha256"]:
        raise UserError(f"model bundle {folder}: {file.name} does not match its sha256 (modified or corrupt)")
    return file


def _load_weights(folder: Path, entry: dict, what: str):
    import torch

    file = _checked_weights_file(folder, entry, what)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors of a foreign file: refuse, never execute
        raise UserError(f"model bundle {folder}: {file.name} is not a plain weights file ({exc})") from None


def read_bundle_config(path) -> dict:
    """Read and check ``bundle.json`` without loading any weights."""
    folder = _bundle_folder(path)
    meta = folder / "bundle.json"
    if not meta.is_file():
        raise UserError(f"{folder} is not a model bundle (no bundle.json)")
    try:
        config = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"model bundle {folder}: unreadable bundle.json ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{folder} is not a singlestrip model bundle")
    if not isinstance(config.get("format_version", 0), int) or config.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"model bundle {folder} needs a newer singlestrip_bids (format {config['format_version']})")
    try:
        problem = check_inference(bundle_inference(config))
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"no usable inference settings ({type(exc).__name__}: {exc})"
    if problem:
        raise UserError(f"model bundle {folder}: bundle.json: {problem}")
    return config


def load_bundle(path) -> Bundle:
    """Load a bundle folder (or its ``bundle.json``); networks on the CPU in eval mode."""
    from singlestrip_bids.model.unet import UNet, UNetConfig

    folder = _bundle_folder(path)
    config = read_bundle_config(folder)
    try:
        unet = UNet(UNetConfig(**config["unet"]["config"]))
        unet.load_state_dict(_load_weights(folder, config["unet"], WEIGHTS["unet"]))
    except (KeyError, TypeError, RuntimeError) as exc:
        raise UserError(f"model bundle {folder}: U-Net does not match its config ({exc})") from None
    qc_ae = None
    if "qc_ae" in config:
        from singlestrip_bids.model.autoencoder import build_autoencoder

        try:
            qc_ae = build_autoencoder(config["qc_ae"]["config"])
            qc_ae.load_state_dict(_load_weights(folder, config["qc_ae"], WEIGHTS["qc_ae"]))
        except (KeyError, TypeError, RuntimeError) as exc:
            raise UserError(f"model bundle {folder}: QC autoencoder does not match its config ({exc})") from None
        qc_ae.eval()
    return Bundle(folder, config, unet.eval(), qc_ae, _load_estimator(folder, config))


def _load_estimator(folder: Path, config: dict):
    if "dice_estimator" not in config:
        return None
    from singlestrip_bids.model.estimator import build_estimator

    try:
        estimator = build_estimator(config["dice_estimator"]["config"])
        estimator.load_state_dict(_load_weights(folder, config["dice_estimator"], WEIGHTS["dice_estimator"]))
    except (KeyError, TypeError, RuntimeError) as exc:
        raise UserError(f"model bundle {folder}: Dice estimator does not match its config ({exc})") from None
    return estimator.eval()
