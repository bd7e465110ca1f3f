"""`training.prepare_dataset` end to end: a BAUM-1s-shaped folder of short astronaut videos -> DatasetDict.

One uninterrupted run (module fixture) is the reference; the other tests interrupt, resume, split, reload and push,
and compare against it. The real feature extractor runs (dlib landmarks) on 12-frame 320x240 clips with 16 px crops.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from datasets import load_dataset, load_from_disk

from microx_hf.errors import DatasetFormatError
from tests.media import make_face_video, make_truncated_video
from training.data import WindowTransform, load_clips
from training.labels import PAPER7
from training.prepare_clips import shard_of
from training.prepare_dataset import PrepareArguments, main
from training.schema import RECORD_FILE, preparation_record
from training.scripts import ArgumentsError

ROWS = [  # No, Subject, Gender, Clip Name, Emotion, Code  (BAUM-1s codes)
    [1, 1, "F", "S001_001", "Happiness", 8],
    [2, 1, "F", "S001_002", "Disgust", 6],
    [3, 1, "F", "S001_003", "Concentrating", 4],
    [4, 2, "M", "S002_001", "Sadness", 10],
    [5, 2, "M", "S002_002", "Neutral", 9],
    [6, 2, "M", "S002_003", "Anger", 1],  # a truncated file
    [7, 3, "M", "S003_001", "Surprise", 11],
]
TINY = ["--crop_size", "16", "--num_frames", "4", "--regions", "face,left_eye,right_eye,mouth"]


@pytest.fixture(scope="module")
def baum1s(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("BAUM1")
    clips = root / "BAUM1s_MP4 - All"
    motions = {"S001_001": "none", "S001_002": "pan", "S002_001": "zoom", "S002_002": "rotate", "S003_001": "pan"}
    for name in ("S001_001", "S001_002", "S001_003", "S002_001", "S002_002", "S003_001"):
        make_face_video(
            clips / f"s{name[1:4]}" / f"{name}.mp4", n_frames=12, size=(320, 240), motion=motions.get(name, "none")
        )
    make_truncated_video(clips / "s001" / "S001_001.mp4", clips / "s002" / "S002_003.mp4", keep=0.4)
    book = openpyxl.Workbook()
    book.active.append(["No", "Subject", "Gender", "Clip Name", "Emotion", "Code"])
    for row in ROWS:
        book.active.append(row)
    book.save(root / "Annotations_BAUM1s.xlsx")
    return root


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["--source", "baum1s", "--root", str(root), "--output_dir", str(out), *TINY, *extra]


@pytest.fixture(scope="module")
def reference(baum1s, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "baum1s"
    return main(_args(baum1s, out))


def _assert_same(a, b) -> None:
    assert a.features == b.features and a.num_rows == b.num_rows
    a, b = a.with_format("numpy"), b.with_format("numpy")
    for column in a.column_names:
        for x, y in zip(a[column], b[column], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=column)


def test_reference_run(reference, baum1s):
    ds = reference.dataset["train"]
    assert reference.processed == 6 and reference.reused == 0
    assert ds.features["label"].names == list(PAPER7)
    labels = dict(zip(ds["source"], (ds.features["label"].int2str(i) for i in ds["label"]), strict=True))
    # paper7: happiness -> happy, disgust -> contempt; concentrating has no counterpart and is dropped.
    assert labels == {
        "BAUM1s_MP4 - All/s001/S001_001.mp4": "happy",
        "BAUM1s_MP4 - All/s001/S001_002.mp4": "contempt",
        "BAUM1s_MP4 - All/s002/S002_001.mp4": "sad",
        "BAUM1s_MP4 - All/s002/S002_002.mp4": "neutral",
        "BAUM1s_MP4 - All/s003/S003_001.mp4": "surprise",
    }
    assert ds["subject"] == ["S001", "S001", "S002", "S002", "S003"]
    assert set(ds["corpus"]) == {"baum1s"} and set(ds["landmark_backend"]) == {"dlib"}
    # The truncated clip is reported (file and reason) and left out; the run went on.
    report = json.loads(reference.report_path.read_text())
    assert [f["file"] for f in report["failed"]] == ["BAUM1s_MP4 - All/s002/S002_003.mp4"]
    assert report["failed"][0]["reason"]
    assert report["dropped_labels"] == {"baum1s:concentrating": 1}
    # Storage: uint8 crops per region, frame-major mask, the extractor's settings in the description.
    row = ds.with_format("numpy")[0]
    assert row["face"].shape == (12, 3, 16, 16) and ds.features["face"].dtype == "uint8"
    assert row["region_mask"].shape == (12, 4) and row["region_mask"].mean() > 0.9
    assert row["face"][row["region_mask"][:, 0]].std() > 10  # real image content where the face was found
    assert row["num_frames"] == 12 and np.allclose(np.diff(row["timestamps"]), 1 / 30, atol=1e-4)
    settings = json.loads(ds.info.description)["feature_extractor"]
    assert settings["crop_size"] == 16 and settings["num_frames"] == 4 and len(settings["image_mean"]) == 3
    assert settings["regions"] == ["face", "left_eye", "right_eye", "mouth"]


def test_save_load_round_trip(reference):
    again = load_from_disk(str(reference.output_dir))
    assert list(again) == ["train"]
    _assert_same(again["train"], reference.dataset["train"])
    assert again["train"].info.description == reference.dataset["train"].info.description


def test_resume_after_interruption_matches_uninterrupted_run(baum1s, reference, tmp_path):
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        main(_args(baum1s, out, "--stop_after", "2"))
    assert len(list((tmp_path / "resumed.work" / "clips").glob("*.npz"))) == 2
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "resumed.work" / "clips").glob("*.npz")}
    resumed = main(_args(baum1s, out))
    assert (resumed.reused, resumed.processed) == (2, 4)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished clips were not redone
    _assert_same(resumed.dataset["train"], reference.dataset["train"])
    # A third run has nothing left to do (the failed clip is not retried unless asked).
    assert main(_args(baum1s, out)).processed == 0
    assert main(_args(baum1s, out, "--retry_failed")).processed == 1


@pytest.mark.slow  # two spawned workers each import torch and transformers: about 20 s on a busy 2-core machine
def test_two_processes_resume_to_the_same_dataset(baum1s, reference, tmp_path):
    out = tmp_path / "parallel"
    with pytest.raises(KeyboardInterrupt):
        main(_args(baum1s, out, "--stop_after", "1"))
    resumed = main(_args(baum1s, out, "--num_proc", "2"))
    assert (resumed.reused, resumed.processed) == (1, 5)
    _assert_same(resumed.dataset["train"], reference.dataset["train"])


def test_split_by_subject_reuses_checkpoints(baum1s, reference, tmp_path):
    work = str(reference.output_dir) + ".work"
    result = main(_args(baum1s, tmp_path / "split", "--work_dir", work, "--test_fraction", "0.34"))
    assert result.processed == 0 and set(result.dataset) == {"train", "test"}
    train, test = result.dataset["train"], result.dataset["test"]
    assert not set(train["subject"]) & set(test["subject"])
    assert train.num_rows + test.num_rows == 5
    assert sorted([*train["source"], *test["source"]]) == list(reference.dataset["train"]["source"])


def test_other_settings_refuse_the_work_dir(baum1s, reference, tmp_path):
    work = str(reference.output_dir) + ".work"
    with pytest.raises(DatasetFormatError, match="other feature-extractor settings"):
        main(
            [
                "--source",
                "baum1s",
                "--root",
                str(baum1s),
                "--output_dir",
                str(tmp_path / "x"),
                "--work_dir",
                work,
                "--crop_size",
                "20",
            ]
        )


def test_source_scheme_and_mapping_file(baum1s, reference, tmp_path):
    work = str(reference.output_dir) + ".work"
    result = main(_args(baum1s, tmp_path / "src", "--work_dir", work, "--label_scheme", "source"))
    ds = result.dataset["train"]
    assert ds.features["label"].names[3] == "concentrating"  # BAUM-1s code 4
    assert "concentrating" in {ds.features["label"].int2str(i) for i in ds["label"]}
    (tmp_path / "map.csv").write_text("from,to\nhappiness,positive\nsadness,negative\nanger,negative\n")
    result = main(_args(baum1s, tmp_path / "mapped", "--work_dir", work, "--label_scheme", str(tmp_path / "map.csv")))
    ds = result.dataset["train"]
    assert ds.features["label"].names == ["positive", "negative"] and ds.num_rows == 2


def test_push_to_hub_and_load(baum1s, reference, hub_repo_id, tmp_path):
    work = str(reference.output_dir) + ".work"
    main(_args(baum1s, tmp_path / "pushed", "--work_dir", work, "--push_to_hub", hub_repo_id))
    # Licensed data stays private: the owner's token reads it, an anonymous client does not even see the repo.
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    assert HfApi().dataset_info(hub_repo_id).private
    anonymous = HfApi(token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.dataset_info(hub_repo_id)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.hf_hub_download(hub_repo_id, RECORD_FILE, repo_type="dataset", cache_dir=tmp_path / "anonymous")
    loaded = load_dataset(hub_repo_id)
    _assert_same(loaded["train"], reference.dataset["train"])
    restored = load_clips(hub_repo_id)
    assert preparation_record(restored["train"]) == preparation_record(reference.dataset["train"])
    assert WindowTransform.from_dataset(restored["train"]).num_frames == 4
    assert load_clips(reference.output_dir)["train"].info.description == reference.dataset["train"].info.description
    from huggingface_hub import DatasetCard, hf_hub_download

    card = DatasetCard.load(hub_repo_id, repo_type="dataset")
    assert "not** redistributed" in card.text and "S002" in card.text and "contempt" in card.text
    assert card.data.license == "other" and card.data.dataset_info  # push_to_hub's metadata is kept
    settings = json.loads(Path(hf_hub_download(hub_repo_id, "microx_dataset.json", repo_type="dataset")).read_text())
    assert settings["feature_extractor"]["crop_size"] == 16


def test_two_corpora_merge(baum1s, reference, tmp_path):
    acted = tmp_path / "BAUM1a"
    make_face_video(acted / "BAUM1a_MP4 - All" / "s001" / "S001_001.mp4", n_frames=12, size=(320, 240))
    (acted / "Annotations_BAUM1a.csv").write_text("Clip Name,Emotion,Code\nS001_001,Interest,6\n")
    work = str(reference.output_dir) + ".work"
    result = main(
        [
            "--source",
            "baum1s",
            "baum1a",
            "--root",
            str(baum1s),
            str(acted),
            "--output_dir",
            str(tmp_path / "both"),
            "--work_dir",
            work,
            "--label_scheme",
            "source",
            *TINY,
        ]
    )
    # The acted clip (and 'concentrating', unless an earlier test used the source scheme) is new; the rest is reused.
    assert result.processed + result.reused == 8 and result.reused >= 6  # 7 spontaneous (1 fails), 1 acted
    ds = result.dataset["train"]
    names = ds.features["label"].names
    assert names[:13] == ["anger", "boredom", "bothered", "concentrating", "contempt", "disgust", "fear",
                          "happiness", "neutral", "sadness", "surprise", "thinking", "unsure"]  # fmt: skip
    assert names[13:] == ["interest"]
    assert list(ds["corpus"]).count("baum1a") == 1 and ds.num_rows == 7
    sources = json.loads(ds.info.description)["sources"]
    assert [(s["corpus"], s["clips"]) for s in sources] == [("baum1s", 7), ("baum1a", 1)]


def test_public_only_when_asked(baum1s, reference, hub, tmp_path):
    from huggingface_hub import HfApi

    work = str(reference.output_dir) + ".work"
    repo_id = hub.new_repo_id("public-dataset")
    main(_args(baum1s, tmp_path / "public", "--work_dir", work, "--push_to_hub", repo_id, "--public"))
    assert not HfApi(token=False).dataset_info(repo_id).private
    # Without --public, pushing into that existing public repo would publish the data: refused before any upload.
    before = HfApi().dataset_info(repo_id).sha
    with pytest.raises(ArgumentsError, match="exists and is public"):
        main(_args(baum1s, tmp_path / "again", "--work_dir", work, "--push_to_hub", repo_id))
    assert HfApi().dataset_info(repo_id).sha == before


def test_two_shards_merged_equal_one_run(baum1s, reference, tmp_path):
    """Each machine prepares its shard (resumable, its own work folder); the merge equals the one-machine run."""
    work = str(reference.output_dir) + ".work"
    one = main(_args(baum1s, tmp_path / "one", "--work_dir", work, "--test_fraction", "0.34"))
    shard_args = ("--num_shards", "2", "--test_fraction", "0.34")
    # Shard 0 starts from an empty work folder, so it extracts exactly its own clips; shard 1 reuses the reference's.
    first = main(_args(baum1s, tmp_path / "s0", "--shard_index", "0", *shard_args))
    second = main(_args(baum1s, tmp_path / "s1", "--work_dir", work, "--shard_index", "1", *shard_args))
    sources = {i: list(r.dataset["train"]["source"]) if r.dataset else [] for i, r in enumerate((first, second))}
    failed = {i: [f["file"] for f in r.failed] for i, r in enumerate((first, second))}
    assert all(sources.values()), "both shards hold clips (else this corpus would not test the merge)"
    everything = sorted([*sources[0], *sources[1], *failed[0], *failed[1]])
    assert everything == sorted([*reference.dataset["train"]["source"], "BAUM1s_MP4 - All/s002/S002_003.mp4"])
    assert first.processed == len(sources[0]) + len(failed[0]) and second.processed == 0
    # The assignment is a hash of the clip, the same on every machine and in every run.
    again = main(_args(baum1s, tmp_path / "s0", "--shard_index", "0", *shard_args))
    assert again.processed == 0 and list(again.dataset["train"]["source"]) == sources[0]

    merged = main(
        ["merge", "--shards", str(tmp_path / "s1"), str(tmp_path / "s0"), "--output_dir", str(tmp_path / "merged")]
    )
    assert list(merged.dataset) == list(one.dataset) == ["train", "test"]
    for split in one.dataset:
        _assert_same(merged.dataset[split], one.dataset[split])  # same features, rows and order
        assert merged.dataset[split].info.description == one.dataset[split].info.description
    assert (tmp_path / "merged" / RECORD_FILE).read_text() == (tmp_path / "one" / RECORD_FILE).read_text()
    assert [f["file"] for f in merged.failed] == [f["file"] for f in one.failed]

    with pytest.raises(DatasetFormatError, match=r"missing \[1\]"):
        main(["merge", "--shards", str(tmp_path / "s0"), "--output_dir", str(tmp_path / "half")])


def test_arguments_are_checked_when_made(tmp_path):
    def make(**kwargs):
        return PrepareArguments(
            **{"source": ["folder"], "root": [str(tmp_path)], "output_dir": str(tmp_path), **kwargs}
        )

    with pytest.raises(ArgumentsError, match="unknown"):
        make(source=["baum3"])
    with pytest.raises(ArgumentsError, match="test_fraction"):
        make(test_fraction=1.0)
    with pytest.raises(ArgumentsError, match="shard_index"):
        make(num_shards=2, shard_index=2)
    with pytest.raises(ArgumentsError, match="push the result of `merge`"):
        make(num_shards=2, push_to_hub="me/x")
    with pytest.raises(ArgumentsError, match="face_alignment"):  # the message lists the real backends
        make(landmark_backend="fan")
    assert make(source="folder").source == ["folder"]


def test_help_names_the_registered_landmark_backends(capsys):
    from microx_hf.landmarks import registered_backends

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in registered_backends()) and "'fan'" not in text


def test_shard_assignment_is_stable_and_spread():
    from training.sources import SourceClip

    clips = [SourceClip(path=f"/x/{i}.mp4", label="a", subject="s", corpus="c", source=f"{i}.mp4") for i in range(400)]
    shards = [shard_of(clip, 4) for clip in clips]
    assert shards == [shard_of(clip, 4) for clip in clips]
    assert all(60 <= shards.count(k) <= 140 for k in range(4))


def test_teacher_logits_and_encoder_crops_are_stored_per_frame(baum1s, tmp_path):
    import torch

    from training.schema import ENCODER_COLUMN, teacher_column

    out = tmp_path / "with_teachers"
    result = main(_args(baum1s, out, "--teachers", "fer", "--encoder_crop_size", "32", "--max_clips", "2"))
    clips = result.dataset["train"].with_format("numpy")
    assert clips.features[teacher_column("fer")].shape == (None, 7)
    assert clips.features[ENCODER_COLUMN].shape == (None, 3, 32, 32)
    row = clips[0]
    n = int(row["num_frames"])
    logits, faces, mask = row[teacher_column("fer")], row[ENCODER_COLUMN], row["region_mask"]
    assert logits.shape == (n, 7) and faces.shape == (n, 3, 32, 32)
    seen = mask.any(axis=1)
    assert np.isfinite(logits[seen]).all() and np.isnan(logits[~seen]).all()
    # The encoder crop is the face square (what the 16 px face crop shows, sharper).
    small = torch.nn.functional.interpolate(torch.from_numpy(faces[seen]).float(), size=16, mode="area").numpy()
    assert np.abs(small - row["face"][seen].astype(float)).mean() < 15
    record = preparation_record(result.dataset["train"])
    assert record["teachers"][0]["name"] == "fer" and record["teachers"][0]["classes"][0] == "angry"
    assert record["feature_extractor"]["encoder_crop_size"] == 32
