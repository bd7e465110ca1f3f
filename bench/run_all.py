"""Runs every benchmark script in turn (`make bench`); each prints its table and writes bench/results/<topic>.json.

    python bench/run_all.py [--only model extractor ...]

A script that fails is reported and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Cheapest first, so that a quick look gets the most numbers.
TOPICS = [
    "model",
    "video",
    "extractor",
    "landmarks",
    "real_faces",
    "two_faces",
    "length",
    "workers",
    "synthetic",
    "dataset",
    "training",
    "space",
    "space_soak",
    "learning",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=TOPICS, default=TOPICS)
    args = parser.parse_args(argv)
    failed = []
    for topic in args.only:
        print(f"\n=== bench_{topic}.py ===", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / f"bench_{topic}.py")], cwd=HERE.parent)
        print(f"--- {topic}: exit {proc.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
        if proc.returncode != 0:
            failed.append(topic)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
