"""Does the whole pipeline learn? Synthetic clips -> prepare -> train -> held-out identities.

Runs `training.demo` (the real generator, `prepare_dataset`, `train` and `evaluate`) and reports clip-level
accuracy on identities never seen in training, the same model's accuracy with the frames of every window shuffled
(the temporal-order ablation), chance, and the wall time of each step; writes bench/results/learning.json.

    python bench/bench_learning.py [--quick] [--out_dir /tmp/microx-learning]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import print_table, set_threads, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI-sized run")
    parser.add_argument("--out_dir", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    from training import demo

    out_dir = args.out_dir or tempfile.mkdtemp(prefix="microx-learning-")
    results = demo.main(["--out_dir", out_dir, *(["--quick", "true"] if args.quick else [])])
    rows = [
        {
            "size": "quick" if args.quick else "full",
            "test_clips": results["num_test_clips"],
            "accuracy": results["accuracy"],
            "uar": results["uar"],
            "shuffled_accuracy": results["shuffled_frames_accuracy"],
            "chance": results["chance"],
            **{k: round(v, 1) for k, v in results["timings"].items()},
        }
    ]
    print_table(rows)
    write_results("learning" + ("_quick" if args.quick else ""), rows, demo=results)
    return results


if __name__ == "__main__":
    main()
