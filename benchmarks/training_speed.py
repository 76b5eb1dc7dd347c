"""Synthesis throughput and training step time per patch size, on CPU and on CUDA when present.

    python benchmarks/training_speed.py [--data DIR] [--steps 5] [--out DIR] [--threads N]

Prints a table and writes ``training_speed.json``. Uses the shipped default model's architecture,
its patch sizes and the labeled example it was trained on (fs_training_t1/sub-01).
"""

import argparse
import json
import platform
import time
from pathlib import Path

import nibabel as nib
import torch

from singlestrip_bids.model.bundle import default_bundle_path, read_bundle_config
from singlestrip_bids.model.unet import UNet, UNetConfig
from singlestrip_bids.synthesis.generator import SynthesisConfig, Synthesizer
from singlestrip_bids.training.loop import Trainer
from singlestrip_bids.training.sl1 import TrainingConfig, prepare_source

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def measure(device: torch.device, sources, unet_config: UNetConfig, size: int, steps: int) -> dict:
    synth = Synthesizer(sources, SynthesisConfig(patch_sizes=(size,)), seed=0, device=device)
    synth.batch(1)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        synth.batch(1)
    sample_s = (time.perf_counter() - start) / steps
    trainer = Trainer(UNet(unet_config), lambda n: synth.batch(n)[:2], steps=steps, device=device)
    trainer.step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    return {"device": str(device), "patch": [size] * 3, "samples_per_s": 1 / sample_s,
            "train_step_s": step_s, "train_step_without_synthesis_s": max(step_s - sample_s, 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=Path("benchmark-results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    bundle = read_bundle_config(default_bundle_path())
    unet_config = UNetConfig(**bundle["unet"]["config"])
    training = bundle.get("training", {})
    sizes = SynthesisConfig.from_dict(training["synthesis"]).patch_sizes if "synthesis" in training else (64,)
    config = TrainingConfig(voxel_size=bundle["working_voxel_size"], unet=unet_config)
    head = args.data / "fs_training_t1" / "sub-01"
    image, mask = nib.load(head / "T1.mgz"), nib.load(head / "brainmask_bin.nii.gz")
    labels, working_mask, _, _ = prepare_source(image, mask, config, seed=0)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [measure(d, [(labels, working_mask)], unet_config, size, args.steps) for d in devices for size in sizes]
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "unet": unet_config.to_dict(), "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'device':8s} {'patch':>12s} {'samples/s':>10s} {'step s':>8s} {'net-only s':>10s}")
    for row in rows:
        print(f"{row['device']:8s} {'x'.join(map(str, row['patch'])):>12s} {row['samples_per_s']:10.2f} "
              f"{row['train_step_s']:8.2f} {row['train_step_without_synthesis_s']:10.2f}")


if __name__ == "__main__":
    main()
