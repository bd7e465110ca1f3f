"""Source readers and label schemes, on folders laid out like the real corpora (names, annotation files) holding
short videos made from the astronaut photo."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest

from microx_hf.errors import DatasetFormatError
from tests.media import make_face_video
from training.labels import PAPER7, get_scheme, mapping_scheme
from training.sources import read_source, read_table

BAUM1S_HEADER = ["No", "Subject", "Gender", "Clip Name", "Emotion", "Code"]


def _video(path: Path) -> Path:
    return make_face_video(path, n_frames=12, size=(320, 240))


def _xlsx(path: Path, rows: list[list]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _csv(path: Path, rows: list[list], delimiter: str = ",") -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


@pytest.fixture(scope="module")
def baum1s_root(tmp_path_factory) -> Path:
    """BAUM1s_MP4 - All/s00N/S00N_00M.mp4 and Annotations_BAUM1s.xlsx, with the usual faults."""
    root = tmp_path_factory.mktemp("BAUM1")
    clips = root / "BAUM1s_MP4 - All"
    for name in ("S001_001", "S001_002", "S001_003", "S002_001", "S002_002", "S002_003", "S002_004"):
        _video(clips / f"s{name[1:4]}" / f"{name}.mp4")
    rows = [
        BAUM1S_HEADER,
        [1, 1, "F", "S001_001", "Happiness", 8],
        [2, 1, "F", "S001_002", "Concentrating", 4],
        [3, 1, "F", "S001_003", "Contempt", 5],
        [4, 2, "M", "S002_001", "Disgust", 6],
        [5, 2, "M", "S002_002", "Neutral", 9],
        [6, 2, "M", "S002_003", "Happiness", 9],  # name and code disagree
        [7, 2, "M", "S002_009", "Sadness", 10],  # no such video
        # S002_004 has no row
    ]
    _xlsx(root / "Annotations_BAUM1s.xlsx", rows)
    return root


def test_baum1s_xlsx_by_header(baum1s_root):
    listing = read_source("baum1s", baum1s_root)
    labels = {Path(c.path).stem: c.label for c in listing}
    assert labels == {
        "S001_001": "happiness",
        "S001_002": "concentrating",  # code 4 and code 5 both start with "con": full names keep them apart
        "S001_003": "contempt",
        "S002_001": "disgust",
        "S002_002": "neutral",
    }
    assert {c.subject for c in listing} == {"S001", "S002"}
    assert [c.source for c in listing] == sorted(c.source for c in listing)
    assert listing.clips[0].source == "BAUM1s_MP4 - All/s001/S001_001.mp4"
    assert listing.skipped == {"name_code_mismatch": 1, "missing_video": 1, "unannotated": 1}
    assert any("S002_003" in p and "code 9" in p for p in listing.problems)
    assert any("S002_004" in p for p in listing.problems)
    assert listing.clips[0].meta["code"] == 8 and listing.clips[0].meta["gender"] == "F"
    assert len(listing.label_names) == 13


def test_baum1s_headerless_csv_export_by_position(baum1s_root, tmp_path):
    # The CSV export published loaders read: subject at column 2, clip at 4, code at 6 (no header row).
    rows = [[1, 1, "F", "S001_001", "Happiness", 8], [2, 1, "F", "S001_002", "Concentrating", 4],
            [3, 2, "M", "S002_001", "Disgust", 6]]  # fmt: skip
    table = _csv(tmp_path / "Annotations_BAUM1s.csv", rows)
    listing = read_source("baum1s", baum1s_root, annotations=table)
    assert {Path(c.path).stem: c.label for c in listing} == {
        "S001_001": "happiness", "S001_002": "concentrating", "S002_001": "disgust",
    }  # fmt: skip
    assert listing.skipped["unannotated"] == 4


def test_baum1a_tsv_clip_name_code_gender(tmp_path):
    # The other export seen: clip, emotion name, code, gender; BAUM-1a codes differ from BAUM-1s (3 = disgust).
    clips = tmp_path / "BAUM1a_MP4 - All"
    for name in ("S001_001", "S003_002"):
        _video(clips / f"s{name[1:4]}" / f"{name}.mp4")
    _csv(tmp_path / "Annotations_BAUM1a.tsv", [["S001_001", "disgust", 3, "F"], ["s003_002", "interest", 6, "M"]], "\t")
    listing = read_source("baum1a", tmp_path)
    assert [(c.subject, c.label) for c in listing] == [("S001", "disgust"), ("S003", "interest")]
    assert listing.corpus == "baum1a" and not listing.skipped


def test_baum1_missing_annotations_and_bad_header(tmp_path):
    _video(tmp_path / "BAUM1s_MP4 - All" / "s001" / "S001_001.mp4")
    with pytest.raises(DatasetFormatError, match="Annotations_BAUM1s"):
        read_source("baum1s", tmp_path)
    _xlsx(tmp_path / "Annotations_BAUM1s.xlsx", [["Clip Name", "Comment"], ["S001_001", "smiles"]])
    with pytest.raises(DatasetFormatError, match="no emotion column"):
        read_source("baum1s", tmp_path)
    with pytest.raises(DatasetFormatError, match="does not exist"):
        read_source("baum1s", tmp_path / "nowhere")


def test_read_table_formats(tmp_path):
    rows = [["Clip Name", "Code"], ["S001_001", 8]]
    assert read_table(_xlsx(tmp_path / "a.xlsx", rows)) == rows
    assert read_table(_csv(tmp_path / "a.csv", rows)) == [["Clip Name", "Code"], ["S001_001", "8"]]
    with pytest.raises(DatasetFormatError, match="xlsx, .xls, .csv"):
        read_table(_csv(tmp_path / "a.ods", rows))
    (tmp_path / "bad.xlsx").write_text("not a workbook")
    with pytest.raises(DatasetFormatError, match="not a readable .xlsx"):
        read_table(tmp_path / "bad.xlsx")


def test_baum2_table_and_languages(tmp_path):
    for path in ("English/en_0001.mp4", "English/en_0002.mp4", "Turkish/tr_0001.mp4", "Turkish/tr_0002.mp4"):
        _video(tmp_path / path)
    _csv(
        tmp_path / "BAUM2_annotations.csv",
        [
            ["Clip Name", "Emotion", "Actor", "Film"],
            ["en_0001.mp4", "Happy", "actor1", "Film A"],
            ["en_0002", "Disgust", "actor2", "Film A"],
            ["tr_0001", "Contempt", "actor1", "Film B"],
            ["tr_0009", "Fear", "actor3", "Film B"],
        ],
    )
    listing = read_source("baum2", tmp_path)
    assert [(c.label, c.subject, c.meta["language"]) for c in listing] == [
        ("happiness", "actor1", "English"), ("disgust", "actor2", "English"), ("contempt", "actor1", "Turkish"),
    ]  # fmt: skip
    assert listing.skipped == {"missing_video": 1, "unannotated": 1}
    _csv(tmp_path / "BAUM2_annotations.csv", [["Clip Name", "Emotion"], ["en_0001", 3]])
    with pytest.raises(DatasetFormatError, match="emotion names"):
        read_source("baum2", tmp_path)


def test_ravdess_names_actors_and_audio_only(tmp_path):
    _video(tmp_path / "Actor_01" / "01-01-03-01-01-01-01.mp4")
    _video(tmp_path / "Actor_01" / "02-01-07-02-01-02-01.mp4")
    _video(tmp_path / "Actor_12" / "02-02-08-01-02-01-12.mp4")
    (tmp_path / "Actor_12" / "03-01-05-01-01-01-12.wav").write_bytes(b"RIFF")
    _video(tmp_path / "Actor_12" / "03-01-05-01-01-01-12.mp4")  # audio-only by its modality code
    _video(tmp_path / "Actor_12" / "notes.mp4")
    listing = read_source("ravdess", tmp_path)
    assert [(c.label, c.subject, c.meta["gender"]) for c in listing] == [
        ("happy", "actor_01", "male"), ("disgust", "actor_01", "male"), ("surprised", "actor_12", "female"),
    ]  # fmt: skip
    assert listing.skipped == {"audio_only": 2, "bad_name": 1}
    assert listing.clips[2].meta["channel"] == "song"


def test_folder_layouts(tmp_path):
    _video(tmp_path / "tree" / "happy" / "a.mp4")
    _video(tmp_path / "tree" / "sad" / "bob" / "b.mp4")
    listing = read_source("folder", tmp_path / "tree")
    assert [(c.label, c.subject) for c in listing] == [("happy", "clip:happy/a.mp4"), ("sad", "bob")]
    _csv(
        tmp_path / "tree" / "manifest.csv",
        [["path", "label", "subject", "take"], ["happy/a.mp4", "joy", "ann", "2"], ["gone.mp4", "joy", "x", ""]],
    )
    listing = read_source("folder", tmp_path / "tree" / "manifest.csv")
    assert [(c.label, c.subject, c.meta) for c in listing] == [("joy", "ann", {"take": "2"})]
    assert listing.skipped == {"missing_video": 1}
    (tmp_path / "bad.csv").write_text("file,emotion\na.mp4,joy\n")
    with pytest.raises(DatasetFormatError, match="path,label"):
        read_source("folder", tmp_path / "bad.csv")


def test_label_schemes(baum1s_root, tmp_path):
    listing = read_source("baum1s", baum1s_root)
    paper = get_scheme("paper7")
    kept, dropped = paper.apply(listing.clips)
    assert {Path(c.path).stem: c.label for c in kept} == {
        "S001_001": "happy", "S001_003": "contempt", "S002_001": "contempt", "S002_002": "neutral",
    }  # fmt: skip
    assert dropped == {"baum1s:concentrating": 1}
    assert kept[0].meta["source_label"] == "happiness"
    assert paper.class_label().names == list(PAPER7)
    assert paper.id2label[2] == "contempt"

    source = get_scheme("source", [listing.label_names])
    kept, dropped = source.apply(listing.clips)
    assert len(kept) == 5 and not dropped
    assert source.class_label().str2int("concentrating") == 3

    (tmp_path / "map.json").write_text(json.dumps({"Happiness": "positive", "neutral": "neutral", "disgust": None}))
    scheme = mapping_scheme(tmp_path / "map.json")
    kept, dropped = scheme.apply(listing.clips)
    assert scheme.names == ["positive", "neutral"]
    assert sorted(c.label for c in kept) == ["neutral", "positive"]
    assert dropped == {"baum1s:concentrating": 1, "baum1s:contempt": 1, "baum1s:disgust": 1}
    _csv(tmp_path / "map.csv", [["from", "to"], ["happiness", "pos"], ["contempt", "neg"], ["disgust", "neg"]])
    assert get_scheme(str(tmp_path / "map.csv")).names == ["pos", "neg"]
    _csv(tmp_path / "twice.csv", [["happiness", "pos"], ["Happiness", "neg"]])
    with pytest.raises(DatasetFormatError, match="mapped twice"):
        mapping_scheme(tmp_path / "twice.csv")
    with pytest.raises(ValueError, match="paper7"):
        get_scheme("paper8")


def test_baum2_emotion_folders_without_a_table(tmp_path):
    _video(tmp_path / "Happiness" / "clip_001.mp4")
    _video(tmp_path / "contempt" / "tr" / "clip_002.mp4")
    (tmp_path / "notes").mkdir()
    listing = read_source("baum2", tmp_path)
    assert [(c.label, c.subject, c.source) for c in listing] == [
        ("happiness", "clip:CLIP_001", "Happiness/clip_001.mp4"), ("contempt", "clip:CLIP_002", "contempt/tr/clip_002.mp4"),
    ]  # fmt: skip
    with pytest.raises(DatasetFormatError, match="Pass --annotations"):
        read_source("baum2", tmp_path / "notes")
