"""The README's recipe "From a folder of labelled videos to a released model", run end to end as written.

The commands are read from the README's code block (so the README and this test cannot drift apart) and run in a
folder the test fills with labelled videos (`tests/media.py`, the astronaut and Grace Hopper, public domain), each
script through its `main(argv)` in this process. The only additions are flags that make it tiny and fast (crops of
16 px, 4-frame windows, a small network, two epochs); the release goes to the test Hub (tests/hub_server.py).

Also checked on the way, as a newcomer reads the log: evaluate names the split it chose, the confusion plot's title
reads "split test: UAR ...", no warning about pinned memory (no GPU) or scikit-learn's single-label warning.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import shlex
import warnings
from pathlib import Path

import pytest

from microx_hf import cli
from tests import media

REPO = Path(__file__).resolve().parents[1]
SECTION = "## From a folder of labelled videos to a released model"
TINY_MODEL = {"hidden_size": 5, "stem_channels": [3], "head_hidden_size": 7}
# Per script: flags added to the README's command to make it small (argparse keeps the last value of a flag).
TINY = {
    "training.prepare_dataset": ["--num_frames", "4", "--crop_size", "16", "--encoder_crop_size", "32",
                                 "--landmark_backend", "dlib"],
    "training.train": ["--num_train_epochs", "2", "--config_overrides", json.dumps(TINY_MODEL),
                       "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4"],
}  # fmt: skip


def readme_commands() -> list[list[str]]:
    """The commands of the section's bash block: continuation lines joined, comments dropped, split like a shell."""
    text = (REPO / "README.md").read_text()
    assert SECTION in text, f"the README lost its section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", body, re.DOTALL)
    lines = [line for line in block.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    return [shlex.split(line) for line in lines]


def test_the_readme_names_the_folder_layout_and_every_step():
    commands = readme_commands()
    programs = [c[2] if c[0].endswith("python") else Path(c[0]).name + " " + c[1] for c in commands]
    assert programs == ["training.prepare_dataset", "training.train", "training.evaluate", "training.release",
                        "microx predict"]  # fmt: skip
    assert commands[0][commands[0].index("--source") + 1] == "folder"
    text = (REPO / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    assert "<root>/<label>/<subject>/*.mp4" in text and "path,label[,subject]" in text


def _make_videos(root: Path) -> None:
    """videos/<label>/<subject>/<clip>.mp4: 2 labels x 4 people x 1 clip, plus a note that is not a video."""
    for label, motion in (("happy", "zoom"), ("sad", "pan")):
        for person in ("anna", "ben", "chloe", "dev"):
            name = "take1.mp4" if person == "anna" else "clip.mp4"
            media.make_face_video(root / label / person / name, n_frames=14, size=(320, 240), motion=motion)
    (root / "happy" / "notes.txt").write_text("not a video")


def test_the_folder_recipe_end_to_end(tmp_path, monkeypatch, hub, hub_repo_id, caplog, capsys):
    _make_videos(tmp_path / "videos")
    monkeypatch.chdir(tmp_path)  # the README's relative paths (videos/, data/mine, runs/mine) land here
    caplog.set_level(logging.INFO)
    titles = []
    import training.metrics

    original_plot = training.metrics.save_confusion_matrix

    def record_title(matrix, labels, path, title=""):
        titles.append(title)
        return original_plot(matrix, labels, path, title)

    monkeypatch.setattr("training.evaluate.save_confusion_matrix", record_title)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for command in readme_commands():
            if Path(command[0]).name == "microx":
                argv = command[1:]
                assert cli.main(argv) == 0, capsys.readouterr().err
                continue
            assert command[1] == "-m", command
            module, argv = command[2], command[3:]
            argv = [hub_repo_id if a == "me/microx-mine" else a for a in argv] + TINY.get(module, [])
            importlib.import_module(module).main(argv)

    # 1. prepared: a test split of whole people, the note skipped and counted
    report = json.loads((tmp_path / "data/mine/prepare_report.json").read_text())
    assert report["prepared"] == 8 and report["skipped_by_reader"] == {"folder": {"not_a_video": 1}}
    # 2. trained, with its own test results; 3. evaluated on the split evaluate chose and named
    assert (tmp_path / "runs/mine/model.safetensors").is_file() and (tmp_path / "runs/mine/results.json").is_file()
    results = json.loads((tmp_path / "runs/mine/eval/results.json").read_text())
    assert results["split"] == "test" and results["num_clips"] == 2  # one person of four: a happy and a sad clip
    assert "evaluating split 'test' of data/mine" in caplog.text
    assert re.search(r"test \(clip level\): accuracy [0-9.]+, UAR", caplog.text)
    assert titles[-1].startswith("split test: UAR ") and not any(t.startswith(":") for t in titles), titles
    # 4. released to the (test) Hub; 5. the released folder predicts
    from huggingface_hub import HfApi

    files = set(HfApi().list_repo_files(hub_repo_id))
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= files
    out = capsys.readouterr().out
    assert "videos/happy/anna/take1.mp4" in out and re.search(r"\b(happy|sad)\b", out)
    # A newcomer's log: no warning on every epoch about pinned memory, none from scikit-learn about one label.
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "pin_memory" in m], messages
    assert not [m for m in messages if "single label" in m.lower() or "y_pred contains classes" in m], messages


def test_train_help_is_short_and_fast_and_help_all_is_complete():
    import subprocess
    import sys
    import time

    start = time.perf_counter()
    short = subprocess.run([sys.executable, "-m", "training.train", "--help"], capture_output=True, text=True,
                           cwd=REPO, check=True)  # fmt: skip
    seconds = time.perf_counter() - start
    lines = short.stdout.splitlines()
    assert "--dataset_name_or_path" in short.stdout and "--protocol" in short.stdout
    assert "--num_train_epochs" in short.stdout and "--help-all" in short.stdout
    assert len(lines) < 150, len(lines)
    assert seconds < 5.0, f"--help took {seconds:.1f} s (it must not import torch or transformers)"
    full = subprocess.run([sys.executable, "-m", "training.train", "--help-all"], capture_output=True, text=True,
                          cwd=REPO, check=True)  # fmt: skip
    assert "--gradient_accumulation_steps" in full.stdout and len(full.stdout.splitlines()) > 300


def test_the_trainer_flags_in_the_short_help_exist():
    import dataclasses

    from transformers import TrainingArguments

    from training.train_arguments import TRAINER_FLAGS

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert set(TRAINER_FLAGS) <= fields, set(TRAINER_FLAGS) - fields


@pytest.mark.parametrize(("splits", "asked", "expected"), [
    (["train", "test"], None, "test"),
    (["train", "validation"], None, "validation"),
    (["train"], None, "train"),
    (["train", "test"], "train", "train"),
])  # fmt: skip
def test_evaluate_chooses_the_split_that_exists(splits, asked, expected, caplog):
    from training.evaluate import choose_split

    caplog.set_level(logging.INFO)
    assert choose_split(splits, asked, "data/x") == expected
    if splits == ["train"]:
        assert "has one split only, 'train'" in caplog.text


def test_evaluate_names_the_splits_when_it_cannot_choose():
    from microx_hf.errors import DatasetFormatError
    from training.evaluate import choose_split

    with pytest.raises(DatasetFormatError, match="its splits are a, b: pass one as --split"):
        choose_split(["a", "b"], None, "data/x")
    with pytest.raises(DatasetFormatError, match="has no split 'test'; its splits are train"):
        choose_split(["train"], "test", "data/x")
