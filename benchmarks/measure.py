"""Run a command in its own process and measure its wall time and peak memory."""

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Measured:
    returncode: int  # negative: killed by that signal (-9 at the time limit)
    wall_s: float
    peak_rss_mb: float  # the largest resident set of the process or of any child it waited for
    peak_tree_rss_mb: float  # the largest sum of resident sets over the process and its descendants (sampled)
    stdout: str
    stderr: str
    timed_out: bool


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that a measured child is killed before this process ends."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def thread_env(threads: int, base=None) -> dict:
    """Environment limiting BLAS/OpenMP/torch/numba threads to ``threads``."""
    env = dict(os.environ if base is None else base)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_measured(command, *, env=None, timeout_s=None, cwd=None, poll_s=0.02, tree_every=10) -> Measured:
    """Run ``command`` (argv list) to its end or to ``timeout_s`` seconds, then kill its process group.

    Peak RSS is the kernel's ``ru_maxrss`` of the reaped process (children it waited for included
    as their maximum, not their sum); the process tree's total is sampled every ``tree_every`` polls
    (workers of a process pool run at once, and a fork server's children are not waited for).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd,
            start_new_session=True,  # its own process group: a time-out kills its children too
        )
        timed_out = False
        tree_mb = 0.0
        try:
            for polls in itertools.count():
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if polls % tree_every == 0:
                    tree_mb = max(tree_mb, tree_rss_mb(process.pid))
                if timeout_s is not None and time.perf_counter() - start > timeout_s:
                    timed_out = True
                    os.killpg(process.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(poll_s)
        except BaseException:  # interrupted (Ctrl-C, or SIGTERM via stop_on_sigterm): leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            os.wait4(process.pid, 0)
            raise
        wall_s = time.perf_counter() - start
        with contextlib.suppress(ProcessLookupError):  # descendants it left behind: stop them too
            os.killpg(process.pid, signal.SIGKILL)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        peak_mb = usage.ru_maxrss / 1024
        return Measured(process.returncode, wall_s, peak_mb, max(tree_mb, peak_mb), out.read(), err.read(), timed_out)


def tree_rss_mb(root: int) -> float:
    """Sum of the resident sets (MiB) of process ``root`` and all its descendants, now (Linux /proc)."""
    children, rss_pages = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1]: parent pid
        rss_pages[pid] = int(fields[21])  # fields[21]: resident set, pages
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss_pages.get(pid, 0)
        stack += children.get(pid, [])
    return total * os.sysconf("SC_PAGE_SIZE") / 1024**2


def machine_description() -> dict:
    """CPU model, logical cores, memory, OS and package versions, for the record of a run."""
    import platform
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    versions = {}
    for package in ("singlestrip_bids", "torch", "numpy", "nipype"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "memory_gb": round(memory_gb, 1),
            "os": platform.platform(), "python": platform.python_version(), **versions}
