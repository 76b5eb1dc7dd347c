"""One run per work folder (a second run that shares it stops with one line), and whether a process lives."""

import contextlib
import fcntl
import os
from pathlib import Path

from singlestrip_bids.errors import UserError

LOCK_NAME = ".singlestrip.lock"


@contextlib.contextmanager
def hold_work_dir(work_dir):
    """Hold an exclusive lock on ``work_dir`` (created if needed) while the block runs.

    UserError if another process holds it (its pid is in the lock file). The lock goes with the
    process (``flock``): a run that was killed leaves nothing to clean up.
    """
    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise UserError(f"work dir {folder} is in use by another run (pid {holder}); wait for it or give "
                            "this run its own --work-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
