"""`load_model` loads safetensors only: pickled weights (`pytorch_model.bin`, ...) are refused before anything is
unpickled, with one line that says how to convert them; the conversion it gives works."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from microx_hf.configuration_microx import MicroXConfig
from microx_hf.errors import ModelNotFoundError, PickledWeightsError
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.predict import load_model


class _Payload:
    """Unpickling this creates the marker file: proof that the pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    config = MicroXConfig(
        frame_encoder=None, num_frames=3, image_size=16, stem_channels=[4], hidden_size=4, head_hidden_size=8
    )
    MicroXForVideoClassification(config).save_pretrained(folder)
    MicroXFeatureExtractor.from_config(config, landmark_backend="dlib").save_pretrained(folder)
    return folder


def _pickled_copy(saved: Path, folder: Path, payload=None) -> Path:
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(saved / name, folder / name)
    model = MicroXForVideoClassification.from_pretrained(saved)
    torch.save(model.state_dict() if payload is None else {"weight": payload}, folder / "pytorch_model.bin")
    return folder


def test_only_pickled_weights_are_refused_in_one_line_that_says_how_to_convert(saved, tmp_path):
    folder = _pickled_copy(saved, tmp_path / "bin_only")
    with pytest.raises(PickledWeightsError) as info:
        load_model(folder)
    message = str(info.value)
    assert "\n" not in message and "pytorch_model.bin" in message and "safetensors only" in message
    assert isinstance(info.value, ModelNotFoundError)  # callers that catch "cannot load" catch this too
    # The conversion the message gives works, and the converted folder loads.
    command = re.search(r'python -c "(.+?)"', message).group(1)
    exec(command, {})  # noqa: S102 - the command our own message prints
    assert (folder / "model.safetensors").is_file()
    model, _ = load_model(folder)
    reference, _ = load_model(saved)
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_malicious_pickle_is_never_unpickled(saved, tmp_path):
    marker = tmp_path / "pwned.txt"
    folder = _pickled_copy(saved, tmp_path / "evil", payload=_Payload(marker))
    with pytest.raises(PickledWeightsError, match="only pickled weights"):
        load_model(folder)
    assert not marker.exists()
    # Any pickle suffix counts; the Trainer's training_args.bin beside safetensors weights is fine.
    (folder / "pytorch_model.bin").rename(folder / "weights.pt")
    with pytest.raises(PickledWeightsError, match="weights.pt"):
        load_model(folder)
    assert not marker.exists()
    shutil.copy(saved / "model.safetensors", folder / "model.safetensors")
    (folder / "weights.pt").rename(folder / "training_args.bin")
    model, _ = load_model(folder)
    assert model.config.num_frames == 3 and not marker.exists()


def test_a_folder_without_weights(saved, tmp_path):
    (tmp_path / "config.json").write_bytes((saved / "config.json").read_bytes())
    with pytest.raises(ModelNotFoundError, match="no weights"):
        load_model(tmp_path)


def test_a_hub_model_with_only_pickled_weights(saved, tmp_path, hub, hub_repo_id):
    from huggingface_hub import HfApi

    marker = tmp_path / "pwned.txt"
    folder = _pickled_copy(saved, tmp_path / "evil", payload=_Payload(marker))
    api = HfApi()
    api.create_repo(hub_repo_id)
    api.upload_folder(repo_id=hub_repo_id, folder_path=str(folder))
    with pytest.raises(PickledWeightsError) as info:
        load_model(hub_repo_id)
    assert "\n" not in str(info.value) and hub_repo_id in str(info.value)
    assert not marker.exists()
