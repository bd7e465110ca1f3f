"""Dataset preparation and read-back throughput.

Preparation: clips/s and frames/s of `training.prepare_dataset` (decode, dlib landmarks with tracking, crops,
checkpoint, Arrow build) over astronaut test videos, with 1 and 2 processes (wall time, pool start included; each
spawned worker imports torch and transformers, seconds on a busy machine), and `worker_frames_per_s`: frames per
second of extractor time summed over the processes (start-up excluded).
Read-back: training windows/s through `WindowTransform` + `DataLoader`, by the fast `WindowDataset` path and by
`with_transform` (Python lists), to check that reading batches is never the bottleneck of training.

    python bench/bench_dataset.py [--clips 12] [--frames 60] [--size 640x360] [--crop_size 48]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import print_table, set_threads, write_results  # noqa: E402


def _make_clips(root: Path, clips: int, frames: int, size: tuple[int, int]) -> None:
    from tests.media import MOTIONS, make_face_video

    for i in range(clips):
        label = ("happy", "sad", "anger")[i % 3]
        make_face_video(
            root / label / f"subject{i % 4}" / f"clip{i:03d}.mp4",
            n_frames=frames,
            size=size,
            motion=MOTIONS[i % len(MOTIONS)],
        )


def _readback(dataset, batch_size: int, batches: int, fast: bool) -> float:
    import torch

    from training.data import WindowDataset, WindowTransform, collate_windows

    transform = WindowTransform.from_dataset(dataset, train=True, seed=0, flip_prob=0.5)
    source = WindowDataset(dataset, transform) if fast else dataset.with_transform(transform)
    sampler = torch.utils.data.RandomSampler(source, replacement=True, num_samples=batch_size * batches)
    loader = torch.utils.data.DataLoader(source, batch_size=batch_size, sampler=sampler, collate_fn=collate_windows)
    start = time.perf_counter()
    windows = sum(batch["labels"].shape[0] for batch in loader)
    return windows / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--crop_size", type=int, default=48)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args(argv)
    set_threads(1)
    logging.basicConfig(level=logging.WARNING)
    from training.prepare_dataset import main as prepare

    size = tuple(int(v) for v in args.size.split("x"))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="microx-bench-dataset-") as tmp:
        tmp = Path(tmp)
        _make_clips(tmp / "videos", args.clips, args.frames, size)
        dataset = None
        for procs in args.procs:
            out = tmp / f"out{procs}"
            start = time.perf_counter()
            result = prepare(
                [
                    "--source",
                    "folder",
                    "--root",
                    str(tmp / "videos"),
                    "--output_dir",
                    str(out),
                    "--label_scheme",
                    "source",
                    "--crop_size",
                    str(args.crop_size),
                    "--num_proc",
                    str(procs),
                ]
            )
            seconds = time.perf_counter() - start
            ds = result.dataset["train"]
            frames = sum(ds["num_frames"])
            size_mb = sum(f.stat().st_size for f in out.rglob("*.arrow")) / 1e6
            regions = ds.features["region_mask"].shape[1]
            raw_mb = frames * regions * 3 * args.crop_size**2 / 1e6
            rows.append(
                {
                    "stage": "prepare",
                    "procs": procs,
                    "clips": ds.num_rows,
                    "seconds": seconds,
                    "clips_per_s": ds.num_rows / seconds,
                    "frames_per_s": frames / seconds,
                    "realtime_x": frames / 30.0 / seconds,
                    "worker_frames_per_s": frames / result.extract_seconds * procs,
                    "arrow_mb": size_mb,
                    "arrow_vs_raw": size_mb / raw_mb,
                }
            )
            dataset = ds
        for fast in (True, False):
            windows_per_s = _readback(
                dataset, args.batch_size, args.batches if fast else max(args.batches // 4, 2), fast
            )
            rows.append(
                {
                    "stage": "read WindowDataset" if fast else "read with_transform",
                    "procs": 1,
                    "windows_per_s": windows_per_s,
                }
            )
    print_table(
        rows,
        [
            "stage",
            "procs",
            "clips",
            "seconds",
            "clips_per_s",
            "frames_per_s",
            "realtime_x",
            "worker_frames_per_s",
            "arrow_mb",
            "arrow_vs_raw",
            "windows_per_s",
        ],
    )
    write_results(
        "dataset",
        rows,
        clips=args.clips,
        frames_per_clip=args.frames,
        size=args.size,
        crop_size=args.crop_size,
        batch_size=args.batch_size,
    )
    return rows


if __name__ == "__main__":
    main()
