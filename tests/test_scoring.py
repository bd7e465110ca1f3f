"""Streaming window scoring (`microx_hf.scoring`): the same scores as the windows cut at once, in bounded memory."""

import numpy as np
import pytest
import torch

from microx_hf import MicroXConfig, MicroXForVideoClassification
from microx_hf.runtime import TorchRuntime
from microx_hf.scoring import ClipScorer, score_clip
from microx_hf.windows import normalize, window_indices

T, S, E = 4, 17, 32
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # The encoder on every frame: with it on every second one, which frames it sees depends on where an encode call
    # starts, and streamed scores differ from all windows at once by design.
    config = MicroXConfig(
        image_size=S, num_frames=T, stem_channels=[5], hidden_size=7, head_hidden_size=11, frame_encoder_size=E,
        frame_encoder_every=1,
    )  # fmt: skip
    return MicroXForVideoClassification(config).eval()


@pytest.fixture(scope="module")
def runtime(model):
    return TorchRuntime(model)


def clip(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (5, n, 3, S, S), dtype=np.uint8)  # (R, N, C, S, S)
    mask = np.ones((5, n), bool)
    mask[:, 6:9] = False  # the face is lost for three frames
    mask[4, 12:] = False  # the mouth is hidden from frame 12 on
    return crops, mask


def direct(model, crops, mask, stride):
    """Every window cut at once and sent through `forward` (the reference)."""
    n = crops.shape[1]
    starts, index = window_indices(n, T, stride)
    windows = crops[:, index].transpose(1, 0, 2, 3, 4, 5)  # (W, R, T, C, S, S)
    window_mask = mask[:, index].transpose(1, 0, 2)  # (W, R, T)
    with torch.no_grad():
        out = model(
            normalize(torch.from_numpy(np.ascontiguousarray(windows)), MEAN, STD),
            region_mask=torch.from_numpy(np.ascontiguousarray(window_mask)),
        )
    return starts, out.logits.softmax(-1).numpy(), window_mask.any(axis=(1, 2))


@pytest.mark.parametrize(("n", "stride", "batch"), [(23, 2, 3), (20, 3, 1), (3, 2, 8), (4, 4, 2), (41, 5, 8)])
def test_streamed_scores_equal_all_windows_at_once(model, runtime, n, stride, batch):
    crops, mask = clip(n)
    scores = score_clip(runtime, crops, mask, stride, MEAN, STD, batch_size=batch)
    starts, probs, has_face = direct(model, crops, mask, stride)
    assert scores.starts.tolist() == starts.tolist()
    assert scores.padded == (n < T)
    assert scores.has_face.tolist() == has_face.tolist()
    np.testing.assert_allclose(scores.probs[has_face], probs[has_face], rtol=1e-5, atol=1e-6)
    assert np.isnan(scores.probs[~has_face]).all()


def test_memory_is_bounded_by_the_window_and_the_batch(runtime):
    crops, mask = clip(300)
    scorer = ClipScorer(runtime, 2, MEAN, STD, batch_size=4)
    most = 0
    for i in range(crops.shape[1]):
        scorer.push(crops[:, i], mask[:, i])
        most = max(most, len(scorer.crops), scorer.encoded)
    scores = scorer.finish()
    assert len(scores.starts) == len(window_indices(300, T, 2)[0])
    assert most <= T + 2 * 4 + 2, most  # not 300


def test_kept_crops_are_each_labels_most_telling_window(runtime):
    crops, mask = clip(30)
    scorer = ClipScorer(runtime, 2, MEAN, STD, batch_size=3, keep_telling=True)
    for i in range(30):
        scorer.push(crops[:, i], mask[:, i])
    scores = scorer.finish()
    best = {int(np.nanargmax(scores.probs[:, label])) for label in range(scores.probs.shape[1])}
    assert set(scores.kept_crops) == best
    for w in best:
        start = scores.starts[w]
        np.testing.assert_array_equal(scores.kept_crops[w], crops[:, start : start + T])


def test_streamed_encoder_crops_equal_all_windows_at_once(model, runtime):
    crops, mask = clip(14, seed=1)
    encoder = np.random.default_rng(2).integers(0, 256, (14, 3, E, E), dtype=np.uint8)  # (N, C, E, E)
    scores = score_clip(runtime, crops, mask, 3, MEAN, STD, batch_size=2, encoder_crops=encoder)
    starts, index = window_indices(14, T, 3)
    windows = crops[:, index].transpose(1, 0, 2, 3, 4, 5)
    window_mask = mask[:, index].transpose(1, 0, 2)
    with torch.no_grad():
        out = model(
            normalize(torch.from_numpy(np.ascontiguousarray(windows)), MEAN, STD),
            region_mask=torch.from_numpy(np.ascontiguousarray(window_mask)),
            encoder_pixel_values=normalize(torch.from_numpy(encoder[index]), MEAN, STD),
        )
    has_face = scores.has_face
    np.testing.assert_allclose(scores.probs[has_face], out.logits.softmax(-1).numpy()[has_face], rtol=1e-5, atol=1e-6)
    without = score_clip(runtime, crops, mask, 3, MEAN, STD, batch_size=2)
    assert not np.allclose(without.probs[has_face], scores.probs[has_face])


def test_the_torch_runtime_keeps_the_interface(model, runtime):
    """What `ClipScorer` relies on (and an ONNX runtime must give): numpy in, numpy out, the frame axis at dim 1."""
    assert runtime.labels == [model.config.id2label[i] for i in range(7)] and runtime.num_frames == T
    assert runtime.regions == model.config.regions
    crops, mask = clip(6)
    pixel_values = normalize(crops, MEAN, STD)[None]  # (1, R, M, C, S, S)
    encoder = normalize(np.zeros((6, 3, E, E), np.uint8), MEAN, STD)[None]  # (1, M, C, E, E)
    features = runtime.encode_frames(pixel_values, mask[None], encoder)
    assert set(features) == {"stem_gates", "encoder_gates", "prior"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape[:2] == (1, 6) for v in features.values())
    assert features["prior"].shape == (1, 6, 7)
    index = np.array([[0, 1, 2, 3], [2, 3, 4, 5]])  # (W, T)
    out = runtime.classify_windows({k: v[0][index] for k, v in features.items()}, mask[:, index].transpose(1, 0, 2))
    assert {k: v.shape for k, v in out.items()} == {
        "logits": (2, 7),
        "region_logits": (2, 5, 7),
        "region_weights": (2, 5),
    }
    assert all(v.dtype == np.float32 for v in out.values())
    without_encoder = TorchRuntime(
        MicroXForVideoClassification(
            MicroXConfig(**{**model.config.to_dict(), "frame_encoder": None, "fusion": "attention"})
        )
    )
    assert set(without_encoder.encode_frames(pixel_values, mask[None], None)) == {"stem_gates"}
