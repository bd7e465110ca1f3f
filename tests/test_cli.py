"""The `microx` command's habits: options before and after the subcommand, --version, folders of videos, --workers,
--jsonl, --max-duration, one-line errors with the documented exit codes; and the process pool behind --workers
(`microx_hf.parallel.map_videos`). Real videos from `tests/media.py`, a tiny random model, the real dlib backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from microx_hf import cli
from microx_hf.cli import EXIT_CODES, main, parse_args
from microx_hf.configuration_microx import MicroXConfig
from microx_hf.errors import NoFaceDetectedError
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.parallel import map_videos
from tests import media

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = MicroXConfig(
        frame_encoder=None, num_frames=4, image_size=17, hidden_size=6, stem_channels=[5], head_hidden_size=7
    )
    path = tmp_path_factory.mktemp("models") / "tiny"
    MicroXForVideoClassification(config).save_pretrained(path)
    MicroXFeatureExtractor.from_config(config, landmark_backend="dlib", window_stride=2).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """clips/a.mp4, clips/b.avi (12 frames each), clips/sub/c.MP4, clips/sub/noface.mp4, a text file named .mp4,
    notes.txt (not a video name) and .hidden/d.mp4 (skipped)."""
    root = tmp_path_factory.mktemp("clips")
    media.make_face_video(root / "a.mp4", n_frames=12)
    media.make_face_video(root / "b.avi", n_frames=12, fourcc="MJPG")
    media.make_face_video(root / "sub" / "c.MP4", n_frames=12, motion="pan")
    media.make_noface_video(root / "sub" / "noface.mp4", n_frames=8)
    media.make_text_file(root / "sub" / "text.mp4")
    (root / "notes.txt").write_text("not a video")
    media.make_face_video(root / ".hidden" / "d.mp4", n_frames=12)
    return root


def _err_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# --- arguments ----------------------------------------------------------------------------------------------------


def test_options_before_and_after_the_subcommand():
    assert parse_args(["-v", "predict", "x.mp4"]).verbose == 1
    assert parse_args(["predict", "x.mp4", "-v"]).verbose == 1
    assert parse_args(["-v", "predict", "-vv", "x.mp4"]).verbose == 3
    assert parse_args(["predict", "x.mp4"]).verbose == 0
    assert parse_args(["--model", "m1", "predict", "x.mp4"]).model == "m1"
    assert parse_args(["predict", "x.mp4", "--model", "m2"]).model == "m2"
    assert parse_args(["--model", "m1", "crops", "x.mp4", "-o", "s.png", "--model", "m2"]).model == "m2"
    assert parse_args(["crops", "x.mp4", "-o", "s.png"]).model is None


def test_version_and_help_document_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    from microx_hf import __version__

    out = capsys.readouterr().out
    assert out.startswith(f"microx {__version__} (microx_hf from ") and str(Path(cli.__file__).parent) in out
    for argv in (["--help"], ["predict", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "exit codes:" in out and all(f"  {code:<4}{text}" in out for code, text in EXIT_CODES.items())
    with pytest.raises(SystemExit):
        main(["crops", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "at most --columns frames (default 60) spread evenly over the whole video" in out
    assert "crossed out in red" in out


def test_a_folder_stands_for_its_videos_recursively(folder):
    found = cli._expand_videos([str(folder)])
    names = [str(Path(p).relative_to(folder)) for p in found]
    assert names == ["a.mp4", "b.avi", "sub/c.MP4", "sub/noface.mp4", "sub/text.mp4"]  # no .hidden, no .txt
    with pytest.raises(cli.UsageError, match="no such file or folder: missing.mp4, gone/"):
        cli._expand_videos([str(folder / "a.mp4"), "missing.mp4", "gone/"])


def test_predict_a_folder_table_rows_and_failures(folder, model_dir, capsys):
    rc = main(["predict", str(folder), "--model", str(model_dir)])
    captured = capsys.readouterr()
    assert rc == 1 and "Traceback" not in captured.err
    rows = captured.out.strip().splitlines()
    assert rows[0].split()[:2] == ["video", "emotion"] and set(rows[1]) <= {"-", " "}
    assert [r.split()[0] for r in rows[2:]] == [str(folder / n) for n in ("a.mp4", "b.avi", "sub/c.MP4")]
    assert all(len(r.split()) >= 7 for r in rows[2:])
    assert "skipped " + str(folder / "sub/noface.mp4") + ": NoFaceDetectedError" in captured.err
    assert "skipped " + str(folder / "sub/text.mp4") + ": InvalidVideoError" in captured.err
    assert "2 of 5 videos failed" in captured.err


def test_an_empty_folder_is_a_usage_error(tmp_path, model_dir, capsys):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert main(["predict", str(tmp_path / "empty"), "--model", str(model_dir)]) == 2
    assert "no video files in this folder or below" in _err_line(capsys)


def test_max_duration_reaches_the_feature_extractor(folder, model_dir, capsys):
    # 12 frames at 30 fps last 0.4 s: over a 0.2 s limit, within a 1 s one.
    assert main(["predict", str(folder / "a.mp4"), "--model", str(model_dir), "--max-duration", "0.2"]) == 1
    err = capsys.readouterr().err
    assert "skipped " + str(folder / "a.mp4") + ": VideoLimitError" in err and "Traceback" not in err
    assert main(["predict", str(folder / "a.mp4"), "--model", str(model_dir), "--max-duration", "1"]) == 0
    capsys.readouterr()
    for bad in (["--max-duration", "0"], ["--workers", "0"], ["--batch-size", "0"]):
        assert main(["predict", str(folder / "a.mp4"), "--model", str(model_dir), *bad]) == 2
        assert bad[0] in _err_line(capsys)


# --- one-line errors ------------------------------------------------------------------------------------------------


@pytest.fixture
def no_extraction(monkeypatch):
    """Output paths are checked before any work: extracting would fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the video was analysed before the output path was checked")

    monkeypatch.setattr(MicroXFeatureExtractor, "extract_clip", refuse)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("sheet.txt", "-o {}: cannot write a .txt image; use one of .png"),
        ("sheet", "-o {}: the name has no extension; use an image name such as {}.png"),
        ("a_file/sheet.png", "-o {}: cannot create the folder"),
        ("a_folder.png", "-o {}: is a folder; give a file name"),
    ],
)
def test_crops_bad_outputs_are_one_line_usage_errors(
    tmp_path, folder, model_dir, capsys, no_extraction, output, message
):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder.png").mkdir()
    path = tmp_path / output
    assert main(["crops", str(folder / "a.mp4"), "-o", str(path), "--model", str(model_dir)]) == 2
    assert message.format(path, path) in _err_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_crops_unwritable_folder(tmp_path, folder, model_dir, capsys, no_extraction):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["crops", str(folder / "a.mp4"), "-o", str(locked / "s.png"), "--model", str(model_dir)]) == 2
    assert "not writable" in _err_line(capsys)


def test_crops_write_failure_at_the_end_is_one_line(tmp_path, folder, model_dir, capsys, monkeypatch):
    def full_disk(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    assert main(["crops", str(folder / "a.mp4"), "-o", str(tmp_path / "s.png"), "--model", str(model_dir)]) == 2
    assert "cannot write (No space left on device)" in _err_line(capsys)


def test_crops_writes_jpg_and_caps_columns(tmp_path, folder, model_dir, capsys):
    import cv2

    out = tmp_path / "sheet.jpg"
    assert main(["crops", str(folder / "a.mp4"), "-o", str(out), "--columns", "3", "--model", str(model_dir)]) == 0
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[0] == 20 + 5 * (64 + 2)
    assert sheet.shape[1] < 100 + 4 * (64 + 2)  # 3 frame columns of 12, beside the region names


def test_mistyped_local_model_folder(tmp_path, folder, model_dir, capsys, monkeypatch):
    monkeypatch.chdir(model_dir.parent)  # holds tiny/
    assert main(["predict", str(folder / "a.mp4"), "--model", "./tinny"]) == 2
    line = _err_line(capsys)
    assert "--model ./tinny: no such folder" in line and "Did you mean tiny?" in line
    (model_dir.parent / "runs").mkdir(exist_ok=True)
    assert main(["predict", str(folder / "a.mp4"), "--model", "runs/tiny"]) == 2  # runs/ is local: not a Hub id
    assert "no such folder" in _err_line(capsys)
    assert main(["predict", str(folder / "a.mp4"), "--model", "tinyy"]) == 2  # close to a local folder
    assert "Did you mean tiny?" in _err_line(capsys)
    assert main(["predict", str(folder / "a.mp4"), "--model", str(folder)]) == 2  # a folder, not a model
    assert "not a MicroX model folder" in _err_line(capsys)


def test_a_hub_id_that_does_not_exist_is_one_line(folder, hub, capsys):
    assert main(["predict", str(folder / "a.mp4"), "--model", "test-user/no-such-model"]) == 2
    line = _err_line(capsys)
    assert "--model test-user/no-such-model: not a local folder, and not loadable from the Hub" in line
    assert hub.url in line


def test_unexpected_errors_are_one_line_exit_3(folder, model_dir, capsys, monkeypatch):
    import microx_hf.visualize

    def bug(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(microx_hf.visualize, "contact_sheet", bug)
    assert main(["crops", str(folder / "a.mp4"), "-o", "/tmp/never.png", "--model", str(model_dir)]) == 3
    line = _err_line(capsys)
    assert "unexpected RuntimeError: a bug over two lines (run with -vv" in line


# --- workers --------------------------------------------------------------------------------------------------------


def test_workers_give_the_results_of_one_process(folder, model_dir, capsys):
    videos = [str(folder / n) for n in ("a.mp4", "sub/noface.mp4", "b.avi", "sub/c.MP4")]
    assert main(["predict", *videos, "--model", str(model_dir), "--json"]) == 1
    sequential = {item["video"]: item for item in json.loads(capsys.readouterr().out)}
    assert main(["predict", *videos, "--model", str(model_dir), "--jsonl", "--workers", "2"]) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert sorted(item["video"] for item in lines) == sorted(videos)
    by_video = {item["video"]: item for item in lines}
    assert by_video[videos[1]]["error"] == "NoFaceDetectedError" == sequential[videos[1]]["error"]
    for video in (videos[0], videos[2], videos[3]):
        np.testing.assert_allclose(by_video[video]["window_probs"], sequential[video]["window_probs"], atol=1e-5)
        assert by_video[video]["label"] == sequential[video]["label"]
    assert "skipped " + videos[1] in captured.err and "1 of 4 videos failed" in captured.err


def _square(x):
    if x == "no face":
        raise NoFaceDetectedError("no face here")
    if x == "bug":
        raise KeyError("bug")
    return x * x


_STATE: dict = {"done": 0}


def _setup(offset, marker):
    _STATE.update(offset=offset, marker=Path(marker))


def _plus_offset(x):
    """x + the offset `init` set. A spawned worker marks its first item done and dies on its second (a crash); this
    process waits for that mark before its first item, so the worker surely gets a second one."""
    import multiprocessing
    import time

    _STATE["done"] += 1
    in_worker = multiprocessing.parent_process() is not None
    if in_worker and _STATE["done"] == 2:
        os._exit(7)
    if not in_worker:
        deadline = time.monotonic() + 120
        while not _STATE["marker"].exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    result = (x + _STATE["offset"], os.getpid(), torch.get_num_threads())
    if in_worker:
        _STATE["marker"].touch()
    return result


def test_map_videos_in_process_reports_failures_and_keeps_going():
    outcomes = list(map_videos(_square, [3, "no face", "bug", 4], workers=1))
    assert [o.index for o in outcomes] == [0, 1, 2, 3]
    assert [o.result for o in outcomes] == [9, None, None, 16]
    assert (outcomes[1].error_type, outcomes[1].expected, outcomes[1].error) == (
        "NoFaceDetectedError",
        True,
        "no face here",
    )
    assert outcomes[2].error_type == "KeyError" and not outcomes[2].expected and "Traceback" in outcomes[2].traceback
    failing_init = list(map_videos(_square, [1, 2], init=_square, init_args=("no face",)))
    assert [o.error_type for o in failing_init] == ["NoFaceDetectedError"] * 2
    with pytest.raises(ValueError, match="workers"):
        list(map_videos(_square, [1], workers=0))


def test_map_videos_pool_workers_and_this_process_share_the_items(tmp_path):
    # workers=2: one spawned process and a thread here. Item 0 goes to the spawned worker first; it dies on its
    # second item, and this process does everything else.
    outcomes = list(
        map_videos(
            f"{__name__}:_plus_offset",
            list(range(8)),
            workers=2,
            init=_setup,
            init_args=(100, str(tmp_path / "first-done")),
        )
    )
    assert sorted(o.index for o in outcomes) == list(range(8))
    done = {o.item: o for o in outcomes}
    first = done[0]
    assert first.ok and first.result[0] == 100  # init ran in the worker
    assert first.result[1] != os.getpid() and first.result[2] == 1  # another process, one torch thread
    died = [o for o in outcomes if not o.ok]
    assert len(died) == 1 and died[0].error_type == "WorkerDied" and not died[0].expected
    assert all(o.result[0] == o.item + 100 for o in outcomes if o.ok)
    assert sum(o.result[1] == os.getpid() for o in outcomes if o.ok) == 6  # the rest were done here


def test_console_script_runs_in_a_subprocess_with_v_after_the_subcommand(folder, model_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "microx_hf.cli", "predict", str(folder / "a.mp4"), "-v", "--model", str(model_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "INFO microx_hf.predict" in proc.stderr and str(folder / "a.mp4") in proc.stdout


def _sleep_long(x):
    import time

    time.sleep(60 if x == 0 else 0)
    return x


def test_stopping_early_stops_the_workers():
    import multiprocessing

    outcomes = map_videos(f"{__name__}:_sleep_long", [0, 1, 2], workers=2)
    first = next(outcomes)  # done here (item 0 sleeps in the spawned worker)
    assert first.ok and first.index != 0
    workers = multiprocessing.active_children()
    assert workers and all(w.is_alive() for w in workers)
    outcomes.close()  # as on Ctrl-C: the worker is terminated, not waited for
    for worker in workers:
        worker.join(20)
    assert not any(w.is_alive() for w in workers)


# --- checked before any work (issue 21: bad outputs were found after the video was analysed) ------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the command when a frame is decoded (video or still): `microx_hf.video`'s two readers refuse."""
    import microx_hf.video as video

    def refuse(*args, **kwargs):
        raise AssertionError("a frame was decoded before the bad option was refused")

    monkeypatch.setattr(video, "_resample", refuse)
    monkeypatch.setattr(video, "_read_still", refuse)


def test_the_decoding_spy_sees_decoding(folder, model_dir, tmp_path, capsys, no_decoding):
    # The spy the next tests rely on: a good command decodes, so under the spy it fails (an unexpected error).
    assert main(["crops", str(folder / "a.mp4"), "-o", str(tmp_path / "s.png"), "--model", str(model_dir)]) == 3
    assert "a frame was decoded" in _err_line(capsys)


BAD_BEFORE_WORK = [
    (["predict", "{a}", "--timeline-csv", "/proc/x.csv"], "--timeline-csv /proc/x.csv: cannot write"),
    (["predict", "{a}", "--timeline-csv", "{tmp}"], "--timeline-csv {tmp}: is a folder"),
    (["predict", "{a}", "--timeline-csv", "{tmp}/a_file/t.csv"], "cannot create the folder {tmp}/a_file"),
    (["predict", "{a}", "--face", "sideways"], "--face sideways: choose auto, largest, central or a number"),
    (["predict", "{a}", "{tmp}/missing.mp4", "{tmp}/gone"], "no such file or folder: {tmp}/missing.mp4, {tmp}/gone"),
    (["crops", "{a}", "-o", "{tmp}/x.gif"], "-o {tmp}/x.gif: cannot write a .gif image"),
    (["crops", "{a}", "-o", "/proc/x.png"], "-o /proc/x.png: cannot write"),
    (["crops", "{a}", "-o", "{tmp}/s.png", "--window", "999"], "--window 999: {a} lasts 0.40 s, so it has at most 6 "
     "windows (0..5) of 4 frames every 2"),
    (["crops", "{a}", "-o", "{tmp}/s.png", "--window", "-1"], "--window must be 0 or more"),
    (["crops", "{a}", "-o", "{tmp}/s.png", "--columns", "0"], "--columns must be at least 1"),
    (["crops", "{a}", "-o", "{tmp}/s.png", "--face", "-2"], "--face -2: choose"),
    (["crops", "{tmp}/missing.mp4", "-o", "{tmp}/s.png"], "no such file or folder: {tmp}/missing.mp4"),
    (["crops", "{tmp}", "-o", "{tmp}/s.png"], "{tmp}: is a folder; crops draws one video"),
]  # fmt: skip


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize(("argv", "message"), BAD_BEFORE_WORK, ids=[" ".join(a[2:]) for a, _ in BAD_BEFORE_WORK])
def test_bad_outputs_and_options_are_refused_before_a_frame_is_decoded(argv, message, folder, model_dir, tmp_path,
                                                                       capsys, no_decoding):  # fmt: skip
    (tmp_path / "a_file").write_text("x")
    fill = {"a": str(folder / "a.mp4"), "tmp": str(tmp_path)}
    args = [a.format(**fill) for a in argv]
    assert main([*args, "--model", str(model_dir)]) == 2
    assert message.format(**fill) in _err_line(capsys)
    assert not (tmp_path / "x.gif").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_a_window_the_header_cannot_rule_out_is_a_usage_error_after_extraction(folder, model_dir, tmp_path, capsys):
    # a.mp4 has 12 frames: windows 0..4; the header's 0.40 s allows up to 6, so window 5 is found out after decoding.
    out = tmp_path / "s.png"
    assert main(["crops", str(folder / "a.mp4"), "-o", str(out), "--window", "5", "--model", str(model_dir)]) == 2
    assert "--window 5: window 5 does not exist: this clip has 5 windows (0..4)" in _err_line(capsys)
    assert main(["crops", str(folder / "a.mp4"), "-o", str(out), "--window", "4", "--model", str(model_dir)]) == 0
    assert out.is_file()


def test_a_timeline_csv_that_exists_is_kept_until_the_results_replace_it(folder, tmp_path, capsys):
    timeline = tmp_path / "t.csv"
    timeline.write_text("old\n")
    # Refused for another reason after the output check (no such model): the file is untouched (the check opens it
    # to append).
    assert main(["predict", str(folder / "a.mp4"), "--timeline-csv", str(timeline), "--model",
                 str(tmp_path / "no_model")]) == 2  # fmt: skip
    assert "no such folder" in _err_line(capsys)
    assert timeline.read_text() == "old\n"


# --- photos, several faces --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return media.make_still(tmp_path_factory.mktemp("photo") / "face.png")


def test_a_photo_names_the_cli_switch_and_the_switch_reads_it(photo, model_dir, tmp_path, capsys):
    assert main(["predict", str(photo), "--model", str(model_dir)]) == 1
    err = capsys.readouterr().err
    assert "StillImageError" in err and "add --allow-still to score this single frame" in err
    assert "MicroXFeatureExtractor" not in err and "allow_still=True" not in err
    assert main(["predict", str(photo), "--allow-still", "--json", "--model", str(model_dir)]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["still"] is True and item["face_fraction"] == 1.0
    sheet = tmp_path / "s.png"
    assert main(["crops", str(photo), "-o", str(sheet), "--model", str(model_dir)]) == 1
    assert "add --allow-still" in _err_line(capsys)
    assert main(["crops", str(photo), "-o", str(sheet), "--allow-still", "--window", "1", "--model",
                 str(model_dir)]) == 2  # fmt: skip
    assert f"--window 1: {photo} is one frame, so it has one window (0)" in _err_line(capsys)
    assert main(["crops", str(photo), "-o", str(sheet), "--allow-still", "--model", str(model_dir)]) == 0
    assert sheet.is_file()


def test_a_photo_through_the_python_api_keeps_the_python_name(photo, model_dir):
    from microx_hf.errors import StillImageError
    from microx_hf.predict import load_model, predict

    model, extractor = load_model(model_dir)
    with pytest.raises(StillImageError, match=r"MicroXFeatureExtractor\(allow_still=True\)") as info:
        predict(str(photo), model=model, feature_extractor=extractor)
    assert info.value.path == str(photo) and info.value.kind


def test_workers_word_the_photo_message_for_the_cli(photo, folder, model_dir, capsys):
    assert main(["predict", str(photo), str(folder / "a.mp4"), "--workers", "2", "--model", str(model_dir)]) == 1
    err = capsys.readouterr().err
    assert "add --allow-still" in err and "MicroXFeatureExtractor" not in err


@pytest.fixture(scope="module")
def two_people(tmp_path_factory) -> Path:
    """The astronaut, and Grace Hopper coming in on the right at frame 12 (two different real faces)."""
    return media.make_two_people_video(tmp_path_factory.mktemp("two") / "two.mp4", n_frames=40, second_from=12)


def test_several_faces_are_noted_and_face_picks_one(two_people, model_dir, tmp_path, capsys):
    assert main(["predict", str(two_people), "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()
    assert str(two_people) in captured.out  # the table row
    assert (  # (the random model's flat scores add a low-confidence note after it)
        f"microx: note: {two_people}: 2 faces seen; the row is for the left face; --face picks another (a number "
        "from 0 at the left, largest or central)"
    ) in captured.err.strip().splitlines()
    assert main(["predict", str(two_people), "--face", "1", "--jsonl", "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()
    item = json.loads(captured.out)
    assert (item["faces_seen"], item["followed_face"], item["face_choice"]) == (2, 1, 1)
    assert "the JSON is for the right face" in captured.err
    assert main(["crops", str(two_people), "-o", str(tmp_path / "s.png"), "--model", str(model_dir)]) == 0
    assert "2 faces seen; the sheet is for the left face" in capsys.readouterr().err
    one = media.make_face_video(tmp_path / "one.mp4", n_frames=40)
    assert main(["predict", str(one), "--model", str(model_dir)]) == 0
    assert "faces seen" not in capsys.readouterr().err


def test_the_readme_exit_code_table_matches_the_cli():
    import re

    text = (REPO / "README.md").read_text()
    table = text.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", table, re.MULTILINE))
    assert sorted(int(code) for code in rows) == sorted(EXIT_CODES)
    assert "input path that does not exist" in rows["2"] and "photo without `--allow-still`" in rows["1"]
    assert "input path not found" in EXIT_CODES[2]
