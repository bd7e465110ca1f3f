"""Forward latency per 10-frame window of the default config and the paper preset, parameters and checkpoint size.

Goals: default at most 15 ms per window at batch 32 on 2 CPU threads, at least 10x faster than the
paper preset in the same run, checkpoint under 20 MB.

    python bench/bench_model.py [--threads 2] [--paper-batch 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, set_threads, timed, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    import torch

    from microx_hf import MicroXConfig, MicroXForVideoClassification

    rows = []
    for preset in ("default", "paper"):
        config = MicroXConfig.from_preset(preset)
        torch.manual_seed(0)
        model = MicroXForVideoClassification(config).eval().to(args.device)
        params = sum(p.numel() for p in model.parameters())
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            checkpoint_mb = (Path(tmp) / "model.safetensors").stat().st_size / 1e6
        for batch in args.batches:
            shape = (batch, len(config.regions), config.num_frames, 3, config.image_size, config.image_size)
            pixel_values = torch.randn(shape, device=args.device)
            # The paper preset takes seconds per batch: fewer repeats.
            repeat = 3 if preset == "default" else 1

            def forward(model=model, pixel_values=pixel_values):
                with torch.inference_mode():
                    model(pixel_values)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

            seconds = timed(forward, repeat=repeat, warmup=1)
            rows.append(
                {
                    "preset": preset,
                    "batch": batch,
                    "ms_per_window": 1000 * seconds / batch,
                    "windows_per_s": batch / seconds,
                    "params": params,
                    "checkpoint_mb": checkpoint_mb,
                }
            )
            print(rows[-1], flush=True)
        del model
    by = {(r["preset"], r["batch"]): r["ms_per_window"] for r in rows}
    speedups = {f"batch_{b}": by[("paper", b)] / by[("default", b)] for b in args.batches}
    print_table(rows)
    for batch, speedup in speedups.items():
        print(f"default is {speedup:.1f}x faster than paper at {batch}")
    goals = {
        "default_ms_per_window_b32_le_15": by.get(("default", 32), float("inf")) <= 15,
        "speedup_b32_ge_10": speedups.get("batch_32", 0) >= 10,
        "default_checkpoint_lt_20mb": next(r for r in rows if r["preset"] == "default")["checkpoint_mb"] < 20,
    }
    print("goals:", goals)
    write_results(
        "model", rows, threads=args.threads, device=args.device, speedup_default_vs_paper=speedups, goals=goals
    )
    return rows


if __name__ == "__main__":
    main()
