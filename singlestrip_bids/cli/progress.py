"""The console: at participant level one line per image as it finishes and a progress bar on a
terminal; at group level one bar per training phase."""

import json
import logging
import sys
import time
from pathlib import Path

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:03`` (h:mm:ss once past an hour)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_bar(done: int, total: int, elapsed: float) -> str:
    """``[#########---------------] 3/8 images, 0:21 elapsed, ETA 0:35`` (no ETA before the first)."""
    filled = BAR_WIDTH * done // max(total, 1)
    eta = f", ETA {format_duration(elapsed / done * (total - done))}" if done else ""
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    return f"[{bar}] {done}/{total} images, {format_duration(elapsed)} elapsed{eta}"


def image_line(outputs, output_dir, since: float) -> str | None:
    """``sub-01/anat/sub-01_desc-brain_mask.nii.gz  1523 mL  QC pass`` from the image's QC JSON, or
    None when no QC JSON was written after ``since`` (epoch s): the image failed."""
    try:
        if Path(outputs.qc_json).stat().st_mtime < since:
            return None
        qc = json.loads(Path(outputs.qc_json).read_text())
    except (OSError, ValueError):
        return None
    verdict = {True: "QC pass", False: "QC flagged"}.get(qc.get("qc_pass"), "no QC")
    volume = qc.get("brain_volume_ml")
    volume_text = f"{volume:.0f} mL" if isinstance(volume, (int, float)) else "? mL"
    return f"{Path(outputs.mask).relative_to(output_dir)}  {volume_text}  {verdict}"


class ImageProgress:
    """Counts the images whose writer step ended (or failed) and tells the console.

    ``outputs_by_step``: the Nipype name of each image's writer step (``<image>_wf.write_derivatives``)
    → that image's ``io.derivatives.ImageOutputs``. Call :meth:`step_event` with each step's
    name and status (``start``, ``end``, ``exception``).
    """

    def __init__(self, outputs_by_step: dict, output_dir, stream=None, clock=time.monotonic):
        self.outputs_by_step = outputs_by_step
        self.output_dir = Path(output_dir)
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.started_wall = time.time() - 1.0  # file times have a coarse resolution on some file systems
        self.finished = set()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def total(self) -> int:
        return len(self.outputs_by_step)

    def start(self) -> None:
        """Draw the empty bar (on a terminal)."""
        if self.tty:
            self.stream.write(progress_bar(0, self.total, 0.0))
            self.stream.flush()

    @property
    def done(self) -> int:
        return len(self.finished)

    def step_event(self, step_name: str, status: str) -> None:
        """A step's status; the writer step of an image that has not finished yet counts (once)."""
        outputs = self.outputs_by_step.get(step_name)
        if outputs is None or status not in ("end", "exception") or step_name in self.finished:
            return
        self.finished.add(step_name)
        line = image_line(outputs, self.output_dir, self.started_wall) if status == "end" else None
        self._print(f"[{self.done}/{self.total}] {line or step_name.split('.')[0] + ': failed (see the log)'}")

    def _print(self, line: str) -> None:
        elapsed = self.clock() - self.started
        if self.tty:  # the line above, the bar redrawn below it
            self.stream.write(f"\r\033[K{line}\n{progress_bar(self.done, self.total, elapsed)}")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            remaining = elapsed / self.done * (self.total - self.done)
            eta = f"  (ETA {format_duration(remaining)})" if self.done < self.total else ""
            self.stream.write(f"{line}{eta}\n")
        self.stream.flush()


def training_bar(progress: dict) -> str:
    """``U-Net [######------------------] 120/500  loss 0.2310  1.20 steps/s  ETA 5:16`` from a
    ``training.loop.ProgressHook`` record's ``progress``; a phase without a loss (``loss`` None) and
    with its own ``unit`` (e.g. images/s) shows those."""
    step, steps = progress["step"], progress["steps"]
    filled = BAR_WIDTH * step // max(steps, 1)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    eta = f"ETA {format_duration(progress['eta_s'])}" if step < steps else "done"
    loss = "" if progress.get("loss") is None else f"  loss {progress['loss']:.4f}"
    rate = f"{progress['rate']:.2f} {progress.get('unit', 'steps/s')}"
    return f"{progress['name']} [{bar}] {step}/{steps}{loss}  {rate}  {eta}"


class TrainingConsole(logging.Handler):
    """The console handler of the app's logger: a training phase is one bar, redrawn in place on a
    terminal and written at every tenth of the phase elsewhere; every other record is one line.

    Training progress records are those with a ``progress`` attribute (``training.loop.ProgressHook``).
    """

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar_open = False
        self.tenths = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            progress = getattr(record, "progress", None)
            if progress is None:
                self._clear_bar()
                self.stream.write(self.format(record) + "\n")
            elif self.tty:
                last = progress["step"] >= progress["steps"]
                self.stream.write("\r\033[K" + training_bar(progress) + ("\n" if last else ""))
                self.bar_open = not last
            else:
                tenth = 10 * progress["step"] // max(progress["steps"], 1)
                key = (progress["name"], progress["steps"])
                if tenth > self.tenths.get(key, 0) or progress["step"] == progress["steps"]:
                    self.tenths[key] = 0 if progress["step"] == progress["steps"] else tenth
                    self.stream.write(training_bar(progress) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - a console problem must not stop the run (logging's rule)
            self.handleError(record)

    def _clear_bar(self) -> None:
        if self.bar_open:
            self.stream.write("\r\033[K")
            self.bar_open = False


def set_console_logging(verbose: int = 0) -> None:
    """The app's logger on the console: INFO by default, DEBUG from ``-v`` on (Nipype's own loggers keep
    their handlers); training progress as one bar per phase (:class:`TrainingConsole`), every record
    with ``-v``. The benchmarks show their trainings this way too."""
    logger = logging.getLogger("singlestrip_bids")
    handler = logging.StreamHandler() if verbose else TrainingConsole()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
