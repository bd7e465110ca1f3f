"""Training throughput of MicroX in windows per second: one optimiser step on random crops, per preset and device.

Measures the model's forward, backward and SGD step (the paper's optimiser) on a batch of 10-frame windows of the
preset's crop size, all five regions; data loading is not included. The `paper` preset (about 275 M parameters,
Flatten->Dense on 58x58x64 maps) runs at a small batch. On a CUDA device it is measured in fp32 and in bf16
autocast as well.

    OMP_NUM_THREADS=1 python bench/bench_training.py              # CPU, and the GPU when there is one
    python bench/bench_training.py --presets default --steps 20

Prints a table and writes ``bench/results/training.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path

import torch

from microx_hf.configuration_microx import MicroXConfig
from microx_hf.modeling_microx import MicroXForVideoClassification

RESULTS = Path(__file__).resolve().parent / "results" / "training.json"
DEFAULT_BATCH = {"default": 8, "paper": 2}


def measure(preset: str, batch_size: int, device: str, steps: int, max_seconds: float, precision: str = "fp32") -> dict:
    """Windows per second of training steps (after one warm-up step) for one preset on one device."""
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
        "preset": preset,
        "device": device,
        "precision": precision,
        "batch_size": batch_size,
        "steps": done,
        "seconds": round(elapsed, 3),
        "seconds_per_step": round(elapsed / done, 4),
        "windows_per_second": round(batch_size * done / elapsed, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "image_size": s,
        "num_frames": t,
        "regions": r,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["default", "paper"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (at most)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop a measurement after this long")
    parser.add_argument("--batch-size", type=int, default=None, help="override the per-preset batch size")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        precisions = ["fp32", "bf16"] if device.startswith("cuda") and torch.cuda.is_bf16_supported() else ["fp32"]
        for preset in args.presets:
            for precision in precisions:
                batch = args.batch_size or DEFAULT_BATCH.get(preset, 4)
                if device.startswith("cuda"):
                    batch *= 8  # a GPU needs larger batches to be busy
                rows.append(measure(preset, batch, device, args.steps, args.max_seconds, precision))
                print(
                    f"{preset:8s} {device:5s} {precision:5s} batch {batch:3d}: "
                    f"{rows[-1]['windows_per_second']:9.2f} windows/s ({rows[-1]['seconds_per_step']:.3f} s/step)",
                    flush=True,
                )

    print(f"\n| preset | device | precision | batch | parameters | s/step | windows/s |\n|{'---|' * 7}")
    for row in rows:
        print(
            f"| {row['preset']} | {row['device']} | {row['precision']} | {row['batch_size']} | "
            f"{row['parameters']:,} | {row['seconds_per_step']} | {row['windows_per_second']} |"
        )
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.output.read_text()) if args.output.is_file() else {}
    # Keep results measured on other machines (e.g. a GPU run) beside this one's, keyed by device kind.
    key = machine["gpu"] or "cpu"
    existing = existing if isinstance(existing, dict) and "runs" in existing else {"runs": {}}
    existing["runs"][key] = {
        "machine": machine,
        "results": rows,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.output.write_text(json.dumps(existing, indent=2))
    print(f"wrote {args.output}")
    return rows


if __name__ == "__main__":
    main()
