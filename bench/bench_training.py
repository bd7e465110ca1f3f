"""Training throughput of MicroX in windows per second, per preset and device.

Two measurements:
- ``step``: the model's forward, backward and SGD step (the paper's optimiser) on a batch of random 10-frame
  windows of the preset's crop size, all five regions; no data loading. The `paper` preset (about 276 M
  parameters: Flatten->Dense on 58x58x64 maps) runs at a small batch. On a CUDA device also in bf16 autocast.
- ``trainer``: the real script (`training.train.main`, default preset) for a few dozen steps on a processed-clip
  dataset of random crops written to a temporary folder, so reading windows from Arrow, normalising, collating
  and the Trainer's overhead are included (`train_samples_per_second`).

    python bench/bench_training.py [--threads 2] [--presets default paper] [--steps 10]

Prints a table and writes ``bench/results/training.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import print_table, set_threads, write_results  # noqa: E402

DEFAULT_BATCH = {"default": 8, "paper": 2}


def measure_step(
    preset: str, batch_size: int, device: str, steps: int, max_seconds: float, precision: str = "fp32"
) -> dict:
    """Windows per second of training steps (after one warm-up step) for one preset on one device."""
    import torch

    from microx_hf.configuration_microx import MicroXConfig
    from microx_hf.modeling_microx import MicroXForVideoClassification

    torch.manual_seed(0)
    config = MicroXConfig.from_preset(preset)
    model = MicroXForVideoClassification(config).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    r, t, c, s = len(config.regions), config.num_frames, config.num_channels, config.image_size
    pixel_values = torch.randn(batch_size, r, t, c, s, s, device=device)  # (B, R, T, C, H, W)
    region_mask = torch.ones(batch_size, r, t, dtype=torch.bool, device=device)
    labels = torch.randint(0, config.num_labels, (batch_size,), device=device)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(pixel_values=pixel_values, region_mask=region_mask, labels=labels).loss
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, cuDNN autotuning
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    done, start = 0, time.perf_counter()
    while done < steps and (done == 0 or time.perf_counter() - start < max_seconds):
        step()
        done += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {
        "what": "step",
        "preset": preset,
        "device": device,
        "precision": precision,
        "batch": batch_size,
        "steps": done,
        "s_per_step": elapsed / done,
        "windows_per_s": batch_size * done / elapsed,
        "params": sum(p.numel() for p in model.parameters()),
    }


def _random_clips(path: Path, num_clips: int = 24, frames: int = 30, crop: int = 48) -> Path:
    """A processed-clip dataset (`training.schema`) of random crops: 5 regions, 7 labels, 6 subjects."""
    import numpy as np
    from datasets import Dataset, DatasetDict

    from microx_hf.configuration_microx import DEFAULT_REGIONS, PAPER_LABELS
    from training.schema import clip_features

    rng = np.random.default_rng(0)
    features = clip_features(DEFAULT_REGIONS, crop, PAPER_LABELS)

    def rows():
        for i in range(num_clips):
            row = {r: rng.integers(0, 256, (frames, 3, crop, crop), dtype=np.uint8) for r in DEFAULT_REGIONS}
            row.update(
                region_mask=np.ones((frames, len(DEFAULT_REGIONS)), bool),
                timestamps=(np.arange(frames) / 30.0).astype(np.float32),
                label=i % len(PAPER_LABELS),
                subject=f"s{i % 6}",
                source=f"clip{i}.mp4",
                corpus="random",
                landmark_backend="dlib",
                num_frames=frames,
            )
            yield row

    clips = Dataset.from_generator(rows, features=features, cache_dir=str(path / "cache"))
    clips.info.description = json.dumps({"feature_extractor": {"regions": DEFAULT_REGIONS, "crop_size": crop}})
    DatasetDict(train=clips).save_to_disk(str(path / "clips"))
    return path / "clips"


def measure_trainer(batch_size: int, steps: int, device: str) -> dict:
    """Windows per second of the real training script (default preset), data loading included."""
    from training import train

    with tempfile.TemporaryDirectory() as tmp:
        clips = _random_clips(Path(tmp))
        out = Path(tmp) / "run"
        argv = ["--dataset_name_or_path", str(clips), "--output_dir", str(out), "--protocol", "given",
                "--test_split", "none", "--validation_fraction", "0", "--max_steps", str(steps),
                "--per_device_train_batch_size", str(batch_size), "--report_to", "none", "--save_strategy", "no",
                "--logging_steps", str(steps), "--disable_tqdm", "true", "--use_cpu", str(device == "cpu").lower(),
                "--dataloader_num_workers", "0"]  # fmt: skip
        train.main(argv)
        metrics = json.loads((out / "train_results.json").read_text())
    return {
        "what": "trainer",
        "preset": "default",
        "device": device,
        "precision": "fp32",
        "batch": batch_size,
        "steps": steps,
        "s_per_step": metrics["train_runtime"] / steps,
        "windows_per_s": metrics["train_samples_per_second"],
        "params": None,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["default", "paper"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (at most)")
    parser.add_argument("--max_seconds", type=float, default=60.0, help="stop a step measurement after this long")
    parser.add_argument("--trainer_steps", type=int, default=30, help="steps of the real script; 0 skips it")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    import torch

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        cuda = device.startswith("cuda")
        precisions = ["fp32", "bf16"] if cuda and torch.cuda.is_bf16_supported() else ["fp32"]
        for preset in args.presets:
            for precision in precisions:
                batch = DEFAULT_BATCH.get(preset, 4) * (8 if cuda else 1)  # a GPU needs larger batches to be busy
                rows.append(measure_step(preset, batch, device, args.steps, args.max_seconds, precision))
                print(f"{preset} {device} {precision} batch {batch}: {rows[-1]['windows_per_s']:.2f} windows/s")
        if args.trainer_steps:
            rows.append(measure_trainer(DEFAULT_BATCH["default"] * (8 if cuda else 1), args.trainer_steps, device))
    print_table(rows, ["what", "preset", "device", "precision", "batch", "params", "s_per_step", "windows_per_s"])
    write_results("training", rows, threads=args.threads)
    return rows


if __name__ == "__main__":
    main()
