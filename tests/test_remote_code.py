"""Every folder MicroX writes (the shipped default, a `train` output, a `release` output), from disk and from the test
Hub (tests/hub_server.py), loads through the Auto classes and `pipeline()` with `trust_remote_code=True` alone, in a
fresh interpreter started in an empty folder:

- where microx_hf cannot be imported at all (not installed): AutoConfig, AutoModel and
  AutoModelForVideoClassification load the folder's own code and give the package's outputs; the image processor
  and the pipeline, which need the package to find faces, say what to install;
- where the package is installed but not imported: AutoFeatureExtractor, AutoImageProcessor and `pipeline()` work,
  with the scores `predict` gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi

from microx_hf.predict import DEFAULT_MODEL, load_model, predict
from tests import media, snippets
from tests.test_train import train_tiny
from training import release

REPO = Path(__file__).resolve().parents[1]

_BLOCKED = snippets.without_microx(REPO) + textwrap.dedent(
    """
    import json
    import torch
    from transformers import (AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoModel,
                              AutoModelForVideoClassification, pipeline)

    torch.set_num_threads(1)
    results = {}
    for name, inputs in json.loads(sys.argv[1]).items():
        data = torch.load(inputs)
        result = results[name] = {"config": type(AutoConfig.from_pretrained(name, trust_remote_code=True)).__module__}
        for auto in (AutoModel, AutoModelForVideoClassification):
            model = auto.from_pretrained(name, trust_remote_code=True).eval()
            with torch.no_grad():
                out = model(data["pixel_values"], region_mask=data["region_mask"])
            result[auto.__name__] = [type(model).__module__, type(model).__name__,
                                     (out.logits - data["logits"]).abs().max().item()]
        for what, load in (("AutoImageProcessor", AutoImageProcessor.from_pretrained),
                           ("AutoFeatureExtractor", AutoFeatureExtractor.from_pretrained),
                           ("pipeline", lambda n, **kw: pipeline("video-classification", model=n, **kw))):
            try:
                load(name, trust_remote_code=True)
                result[what] = "loaded"
            except ImportError as err:
                result[what] = str(err)
    assert not any(m == "microx_hf" or m.startswith("microx_hf.") for m in sys.modules)
    print(json.dumps(results))
    """
)

_INSTALLED = textwrap.dedent(
    """
    import json, sys

    from transformers import AutoFeatureExtractor, AutoImageProcessor, pipeline

    assert "microx_hf" not in sys.modules
    names, video = json.loads(sys.argv[1]), sys.argv[2]
    results = {}
    for name in names:
        assert "microx_hf" not in sys.modules or name != names[0]
        result = results[name] = {}
        for auto in (AutoImageProcessor, AutoFeatureExtractor):
            extractor = auto.from_pretrained(name, trust_remote_code=True)
            result[auto.__name__] = [type(extractor).__module__, extractor.crop_size, extractor.num_frames]
        classifier = pipeline("video-classification", model=name, trust_remote_code=True)
        result["top"] = classifier(video, top_k=7)
        result["model"] = type(classifier.model).__module__
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def release_id(hub) -> str:
    """The test Hub repo the release is made for (its card's examples name it)."""
    return hub.new_repo_id("remote-code-release")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, release_id) -> dict[str, Path]:
    """The three kinds of folder the project writes."""
    root = tmp_path_factory.mktemp("written")
    trained = train_tiny(root)
    released = root / "release"
    release.main(
        [
            "--checkpoint",
            str(trained),
            "--repo_id",
            release_id,
            "--output_dir",
            str(released),
            "--dry_run",
            "--dataset_name",
            "Tiny",
        ]
    )
    return {"default": DEFAULT_MODEL, "train": trained, "release": released}


@pytest.fixture(scope="module")
def probes(folders, tmp_path_factory) -> dict[str, Path]:
    """Per folder: fixed inputs and the package's logits on them (outside the folders, which must stay as written)."""
    root = tmp_path_factory.mktemp("probes")
    out = {}
    for kind, folder in folders.items():
        model, _ = load_model(folder)
        inputs = release.probe_inputs(model.config)
        with torch.no_grad():
            logits = model(**inputs).logits
        out[kind] = root / f"{kind}.pt"
        torch.save({**inputs, "logits": logits}, out[kind])
    return out


@pytest.fixture(scope="module")
def hub_ids(folders, hub, release_id) -> dict[str, str]:
    api = HfApi()
    ids = {}
    for kind, folder in folders.items():
        ids[kind] = release_id if kind == "release" else hub.new_repo_id(f"remote-code-{kind}")
        api.create_repo(ids[kind])
        api.upload_folder(repo_id=ids[kind], folder_path=str(folder))
    return ids


def _fresh(script: str, args: list[str], cwd: Path, hub=None) -> dict:
    """Run `script` in a fresh interpreter in the empty folder `cwd`, with an empty Hugging Face cache."""
    proc = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=snippets.fresh_env(cwd, hub),
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_without_the_package(results: dict, names: dict[str, str]) -> None:
    for kind, name in names.items():
        result = results[name]
        assert result["config"].startswith("transformers_modules"), (kind, result)
        for auto, cls in (
            ("AutoModel", "MicroXModel"),
            ("AutoModelForVideoClassification", "MicroXForVideoClassification"),
        ):
            module, class_name, diff = result[auto]
            assert module.startswith("transformers_modules") and class_name == cls and diff == 0.0, (kind, auto)
        for what in ("AutoImageProcessor", "AutoFeatureExtractor", "pipeline"):
            assert "needs the microx-hf package" in result[what] and 'pip install "microx-hf[dlib]"' in result[what]


def test_folders_load_without_the_package(folders, probes, tmp_path):
    names = {kind: str(folder) for kind, folder in folders.items()}
    results = _fresh(_BLOCKED, [json.dumps({names[k]: str(probes[k]) for k in names})], tmp_path)
    _check_without_the_package(results, names)


def test_hub_repos_load_without_the_package(hub_ids, probes, hub, tmp_path):
    results = _fresh(_BLOCKED, [json.dumps({hub_ids[k]: str(probes[k]) for k in hub_ids})], tmp_path, hub)
    _check_without_the_package(results, hub_ids)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return media.make_face_video(tmp_path_factory.mktemp("remote_video") / "face.mp4", n_frames=16)


def test_with_the_package_installed_but_not_imported_the_pipeline_runs(folders, hub_ids, hub, video, tmp_path):
    names = [str(folders["default"]), str(folders["release"]), hub_ids["train"]]
    results = _fresh(_INSTALLED, [json.dumps(names), str(video)], tmp_path, hub)
    for name, kind in zip(names, ("default", "release", "train"), strict=True):
        result = results[name]
        model, extractor = load_model(folders[kind])
        expected = predict(video, model, extractor).scores
        for auto in ("AutoImageProcessor", "AutoFeatureExtractor"):
            module, crop_size, num_frames = result[auto]
            assert module.startswith("transformers_modules") and (crop_size, num_frames) == (
                extractor.crop_size,
                extractor.num_frames,
            )
        assert result["model"].startswith("transformers_modules")
        top = {item["label"]: item["score"] for item in result["top"]}
        assert list(top) == sorted(expected, key=expected.get, reverse=True)
        np.testing.assert_allclose([top[label] for label in expected], list(expected.values()), atol=1e-6)


def test_the_release_cards_examples_run_as_written(folders, hub_ids, hub, tmp_path):
    """The card `training/release.py` writes from model_card.md, with the repo id it was released for."""
    card = (folders["release"] / "README.md").read_text()
    blocks = snippets.python_blocks(card, "release card")
    assert len(blocks) == 2 and all(hub_ids["release"] in block.code for block in blocks)
    folder = snippets.media_folder(tmp_path / "empty")
    for block in blocks:
        proc = snippets.run(block, folder, hub)
        assert proc.returncode == 0, f"{block.name}:\n{block.code}\n{proc.stderr[-3000:]}"
