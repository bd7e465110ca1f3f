"""`microx` as its console script runs it (`microx_hf.cli.main`), with the moment the first frame was decoded noted.

    MICROX_TRACE=marks.json python bench/trace_predict.py predict VIDEO --json [--runtime onnx] [--model M]

runs the command unchanged and writes to `$MICROX_TRACE`: the wall clock (`time.time()`) and the process's CPU seconds
(every thread's, `time.process_time()`) when `microx_hf.video` handed out the first decoded frame and at the end, and
which of torch and transformers were imported. The clock of the process's start is the caller's (it spawned it).
Used by `bench_length.py`; nothing of it is in the library.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from microx_hf import video

    marks: dict = {}
    decoded = video.VideoFrames.__next__

    def traced(self):
        item = decoded(self)
        if "first_frame_wall" not in marks:
            marks.update(first_frame_wall=time.time(), first_frame_cpu=time.process_time())
        return item

    video.VideoFrames.__next__ = traced
    from microx_hf.cli import main as cli_main

    code = cli_main(sys.argv[1:])
    marks.update(end_wall=time.time(), end_cpu=time.process_time(), exit_code=code,
                 heavy_imports=sorted(m for m in ("torch", "transformers") if m in sys.modules))  # fmt: skip
    Path(os.environ["MICROX_TRACE"]).write_text(json.dumps(marks))
    return code


if __name__ == "__main__":
    sys.exit(main())
