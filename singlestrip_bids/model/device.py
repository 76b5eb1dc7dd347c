"""Choice of the torch device."""

from singlestrip_bids.errors import UserError


def resolve_device(name: str = "auto"):
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r} (use auto, cpu or cuda)")
    return torch.device(name)
