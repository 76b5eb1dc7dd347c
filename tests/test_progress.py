"""cli.progress: what the console shows while images finish."""

import io
import json

from singlestrip_bids.cli.progress import ImageProgress, format_duration, progress_bar
from singlestrip_bids.io.atomic import atomic_write_json
from singlestrip_bids.io.derivatives import image_outputs


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 725, 3723)] == ["0:00", "0:42", "12:05", "1:02:03"]


def test_progress_bar():
    assert progress_bar(0, 8, 0.0) == f"[{'-' * 24}] 0/8 images, 0:00 elapsed"
    assert progress_bar(2, 8, 20.0) == f"[{'#' * 6}{'-' * 18}] 2/8 images, 0:20 elapsed, ETA 1:00"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _outputs(tmp_path, names):
    bids, out = tmp_path / "bids", tmp_path / "out"
    outputs = {}
    for index, name in enumerate(names):
        entry = image_outputs(bids / "sub-01" / "anat" / name, bids, out)
        atomic_write_json({"brain_volume_ml": 1500.4 + index, "qc_pass": index == 0}, entry.qc_json)
        outputs[f"sub_01_{index}_wf.write_derivatives"] = entry
    return outputs, out


def test_one_line_per_finished_image_with_volume_verdict_and_eta(tmp_path):
    outputs, out = _outputs(tmp_path, ["sub-01_T1w.nii.gz", "sub-01_FLAIR.nii.gz", "sub-01_T2w.nii.gz"])
    ticks = iter([0.0, 10.0, 30.0, 31.0])
    stream = io.StringIO()
    progress = ImageProgress(outputs, out, stream=stream, clock=lambda: next(ticks))
    progress.start()
    progress.step_event("sub_01_0_wf.write_derivatives", "start")  # not finished: nothing
    progress.step_event("sub_01_0_wf.predict", "end")  # another step: nothing
    progress.step_event("sub_01_0_wf.write_derivatives", "end")
    progress.step_event("sub_01_1_wf.write_derivatives", "end")
    progress.step_event("sub_01_1_wf.write_derivatives", "end")  # told twice: counted once
    progress.step_event("sub_01_2_wf.write_derivatives", "exception")
    assert stream.getvalue().splitlines() == [
        "[1/3] sub-01/anat/sub-01_desc-brain_mask.nii.gz  1500 mL  QC pass  (ETA 0:20)",
        "[2/3] sub-01/anat/sub-01_space-FLAIR_desc-brain_mask.nii.gz  1501 mL  QC flagged  (ETA 0:15)",
        "[3/3] sub_01_2_wf: failed (see the log)",
    ]


def test_an_image_whose_step_ended_without_a_new_qc_json_failed(tmp_path):
    """Nipype reports "end" for a failed local step too; an old QC JSON from an earlier run is no proof."""
    outputs, out = _outputs(tmp_path, ["sub-01_T1w.nii.gz"])
    entry = outputs["sub_01_0_wf.write_derivatives"]
    import os

    os.utime(entry.qc_json, (1e9, 1e9))  # written in 2001
    stream = io.StringIO()
    progress = ImageProgress(outputs, out, stream=stream)
    progress.step_event("sub_01_0_wf.write_derivatives", "end")
    assert stream.getvalue() == "[1/1] sub_01_0_wf: failed (see the log)\n"


def test_on_a_terminal_the_bar_is_redrawn_below_each_line(tmp_path):
    outputs, out = _outputs(tmp_path, ["sub-01_T1w.nii.gz"])
    ticks = iter([0.0, 5.0])
    stream = _Terminal()
    progress = ImageProgress(outputs, out, stream=stream, clock=lambda: next(ticks))
    progress.start()
    progress.step_event("sub_01_0_wf.write_derivatives", "end")
    text = stream.getvalue()
    assert text.startswith(progress_bar(0, 1, 0.0) + "\r\033[K[1/1] sub-01/anat/sub-01_desc-brain_mask.nii.gz")
    assert text.endswith(progress_bar(1, 1, 5.0) + "\n")
    assert json.loads(outputs["sub_01_0_wf.write_derivatives"].qc_json.read_text())["qc_pass"] is True


def _progress_records(steps, every, name="U-Net"):
    import logging

    for step in range(every, steps + 1, every):
        progress = {"name": name, "step": step, "steps": steps, "loss": 1.0 / step, "rate": 2.0,
                    "eta_s": (steps - step) / 2.0}
        yield logging.makeLogRecord({"msg": f"step {step}", "levelno": logging.INFO, "levelname": "INFO",
                                     "progress": progress})


def test_training_bar():
    from singlestrip_bids.cli.progress import training_bar

    progress = {"name": "U-Net", "step": 120, "steps": 500, "loss": 0.231, "rate": 1.2, "eta_s": 316.0}
    assert training_bar(progress) == f"U-Net [{'#' * 5}{'-' * 19}] 120/500  loss 0.2310  1.20 steps/s  ETA 5:16"
    assert training_bar({**progress, "step": 500}).endswith("done")
    scoring = {"name": "pseudo-labels", "step": 3, "steps": 29, "loss": None, "rate": 1.5, "eta_s": 17.3,
               "unit": "images/s"}
    assert training_bar(scoring) == f"pseudo-labels [{'#' * 2}{'-' * 22}] 3/29  1.50 images/s  ETA 0:17"


def test_a_training_phase_is_ten_lines_in_a_log_and_one_redrawn_bar_on_a_terminal():
    import logging

    from singlestrip_bids.cli.progress import TrainingConsole

    stream = io.StringIO()
    console = TrainingConsole(stream)
    for record in _progress_records(500, 10):
        console.emit(record)
    console.emit(logging.makeLogRecord({"msg": "SL-1 done", "levelno": logging.INFO}))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[0].startswith("U-Net [##") and "50/500" in lines[0]
    assert lines[9].endswith("done") and lines[10] == "SL-1 done"

    terminal = _Terminal()
    console = TrainingConsole(terminal)
    records = list(_progress_records(500, 10))
    for record in records[:20]:
        console.emit(record)
    console.emit(logging.makeLogRecord({"msg": "a message mid-phase", "levelno": logging.INFO}))
    for record in records[20:]:
        console.emit(record)
    shown = terminal.getvalue()
    assert shown.count("\n") == 2  # the message, and the finished bar
    assert shown.count("\r\033[K") == 51  # each bar redrawn in place, and cleared once for the message
    assert shown.endswith("\r\033[KU-Net [" + "#" * 24 + "] 500/500  loss 0.0020  2.00 steps/s  done\n")
