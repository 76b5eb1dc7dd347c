"""Choice of the torch device."""

from singlestrip_bids.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def check_device(name: str) -> None:
    """UserError for an unknown device name or ``cuda`` without a GPU; imports torch only for ``cuda``."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r} (use {', '.join(DEVICES)})")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was requested but no CUDA GPU is available")


def resolve_device(name: str = "auto"):
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def set_thread_count(count: int) -> None:
    """Compute with ``count`` threads: torch's, and the BLAS and OpenMP pools numpy and scipy use.

    Each worker of a multiprocess run gets its share of the cores; otherwise every worker's BLAS
    (the resampling's matrix products) would start one thread per core and the workers would fight.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(count)
    threadpool_limits(limits=count)
