"""One training loop for every network (U-Net, QC autoencoder), made of hooks: step, log, checkpoint, resume."""

import copy
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from singlestrip_bids.model.loss import soft_dice_loss

LOG = logging.getLogger(__name__)


class Hook:
    """Called after every step with the trainer, the step number (1-based) and the loss."""

    def after_step(self, trainer, step: int, loss: float) -> None:  # pragma: no cover - interface
        pass


def progress_record(name: str, step: int, steps: int, rate: float, *, loss: float | None = None,
                    unit: str = "steps/s") -> dict:
    """The ``progress`` of a log record that the console draws as a bar (``cli.progress.TrainingConsole``):
    ``rate`` in ``unit`` (steps or images per second), the time left in seconds as ``eta_s``."""
    return {"name": name, "step": step, "steps": steps, "loss": loss, "rate": rate, "eta_s": (steps - step) / rate,
            "unit": unit}


class ProgressHook(Hook):
    """Log step count, mean loss, steps/s and the time left every ``every`` steps.

    Each record carries ``progress`` (:func:`progress_record`; the console draws a bar from it:
    ``cli.progress.TrainingConsole``); ``name`` names the network.
    """

    def __init__(self, every: int = 10, name: str = "training"):
        self.every, self.name, self.losses, self.start = every, name, [], time.perf_counter()

    def after_step(self, trainer, step, loss):
        self.losses.append(loss)
        if step % self.every == 0 or step == trainer.steps:
            rate = len(self.losses) / max(time.perf_counter() - self.start, 1e-9)
            mean = float(np.mean(self.losses))
            progress = progress_record(self.name, step, trainer.steps, rate, loss=mean)
            left = progress["eta_s"]
            LOG.info("%s step %d/%d  loss %.4f  %.2f steps/s  ETA %d:%02d", self.name, step, trainer.steps,
                     mean, rate, left // 60, left % 60, extra={"progress": progress})
            self.losses, self.start = [], time.perf_counter()


class HistoryHook(Hook):
    """Keep every step's loss (for training curves)."""

    def __init__(self):
        self.losses = []

    def after_step(self, trainer, step, loss):
        self.losses.append(float(loss))


class CheckpointHook(Hook):
    """Save a resumable checkpoint every ``every`` steps and at the end (atomic)."""

    def __init__(self, path, every: int = 100):
        self.path, self.every = Path(path), every

    def after_step(self, trainer, step, loss):
        if step % self.every == 0 or step == trainer.steps:
            trainer.save_checkpoint(self.path, step)


class SnapshotHook(Hook):
    """Keep an eval-mode copy of the model after each of ``steps``."""

    def __init__(self, steps):
        self.steps, self.snapshots = set(steps), []

    def after_step(self, trainer, step, loss):
        if step in self.steps:
            self.snapshots.append(copy.deepcopy(trainer.model).eval())


def dice_on_logits(outputs, targets, weights=None):
    """The U-Net's loss: soft Dice of sigmoid(logits) against the target masks (voxel ``weights``:
    ``model.loss.soft_dice_loss``)."""
    return soft_dice_loss(torch.sigmoid(outputs.float()), targets, weights)


class Trainer:
    """Fit ``model`` to pairs from ``batch_fn(batch_size) -> (inputs, targets[, weights])`` with Adam.

    ``loss(outputs, targets[, weights])`` (default :func:`dice_on_logits`) and ``weight_decay`` are the parts a
    network overrides. ``rng_state``/``set_rng_state`` callables let the data stream be resumed exactly; ``precision``
    (``model.device.autocast_dtype``): the forward pass in bf16 where the device computes it natively.
    ``final_lr``: None keeps ``lr`` constant; a value decays it along a half cosine to ``final_lr`` at the last step.
    """

    def __init__(self, model, batch_fn, *, steps: int, batch_size: int = 1, lr: float = 3e-4,
                 device="cpu", hooks=(), rng_state=None, set_rng_state=None, precision: str = "auto",
                 loss=dice_on_logits, weight_decay: float = 0.0, final_lr: float | None = None):
        from singlestrip_bids.model.device import autocast_dtype

        self.model = model.to(device)
        self.batch_fn, self.steps, self.batch_size = batch_fn, steps, batch_size
        self.device = torch.device(device)
        self.lr, self.final_lr = lr, final_lr
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.loss = loss
        self.hooks = list(hooks)
        self.rng_state, self.set_rng_state = rng_state, set_rng_state
        self.start_step = 0
        self.autocast = autocast_dtype(self.device, precision)

    def learning_rate(self, step: int) -> float:
        """The rate of 1-based ``step``."""
        if self.final_lr is None or self.steps <= 1:
            return self.lr
        progress = (step - 1) / (self.steps - 1)
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1.0 + math.cos(math.pi * progress))

    def step(self) -> float:
        inputs, targets, *weights = self.batch_fn(self.batch_size)
        inputs, targets = inputs.to(self.device), targets.to(self.device)  # no copy when already there
        weights = [None if w is None else w.to(self.device) for w in weights]
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.device.type, dtype=self.autocast or torch.float32,
                            enabled=self.autocast is not None):
            outputs = self.model(inputs)
        loss = self.loss(outputs.float(), targets, *weights)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def run(self):
        self.model.train()
        for step in range(self.start_step + 1, self.steps + 1):
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(step)
            loss = self.step()
            for hook in self.hooks:
                hook.after_step(self, step, loss)
        self.model.eval()
        return self.model

    def save_checkpoint(self, path: Path, step: int) -> None:
        state = {
            "step": step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": json.dumps(self.rng_state() if self.rng_state else None),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: Path) -> None:
        """Resume from ``path`` (weights-only load: a checkpoint cannot run code)."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # run() sets the configured rate every step
        torch.set_rng_state(state["torch_rng"].cpu())
        data_rng = json.loads(state["data_rng"])
        if data_rng is not None and self.set_rng_state:
            self.set_rng_state(data_rng)
        self.start_step = int(state["step"])
        LOG.info("resumed from %s at step %d", path, self.start_step)
