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


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX): only then is bf16 faster."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast_dtype(device, precision: str = "auto"):
    """The autocast dtype for ``device`` (a torch.device), or ``None`` for plain fp32.

    ``auto``: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere; ``bf16``/``fp32`` force it.
    """
    import torch

    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda" or cpu_has_bf16():
        return torch.bfloat16
    return None
