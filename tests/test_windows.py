"""The one definition of windows and clip scores (`microx_hf.windows`)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from microx_hf.windows import clip_scores, frame_indices, normalize, pool_clips, window_indices, window_starts


def test_window_starts_examples():
    assert window_starts(30, 10, 5) == [0, 5, 10, 15, 20]
    assert window_starts(32, 10, 5) == [0, 5, 10, 15, 20, 22]
    assert window_starts(10, 10, 5) == [0]
    assert window_starts(3, 10, 5) == [0]
    assert window_starts(11, 10, 10) == [0, 1]
    with pytest.raises(ValueError):
        window_starts(0, 10, 5)
    with pytest.raises(ValueError):
        window_starts(10, 10, 0)


@given(n=st.integers(1, 400), t=st.integers(1, 40), stride=st.integers(1, 40))
def test_window_starts_cover_the_clip(n, t, stride):
    starts = window_starts(n, t, stride)
    assert starts[0] == 0
    assert all(b > a for a, b in zip(starts, starts[1:], strict=False))
    assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))
    if n > t:
        assert starts[-1] == n - t  # the last window ends at the last frame
        assert all(0 <= s <= n - t for s in starts)
    else:
        assert starts == [0]


def test_window_indices_pad_short_clips_by_repeating_the_last_frame():
    starts, idx = window_indices(3, 5, 2)
    assert starts.tolist() == [0]
    assert idx.tolist() == [[0, 1, 2, 2, 2]]
    starts, idx = window_indices(12, 5, 5)
    assert starts.tolist() == [0, 5, 7]
    assert idx[2].tolist() == [7, 8, 9, 10, 11]
    assert frame_indices(4, 3, 5).tolist() == [4, 4, 4]


def test_clip_scores_average_only_windows_with_a_face():
    probs = np.array([[0.9, 0.1], [np.nan, np.nan], [0.3, 0.7]])
    np.testing.assert_allclose(clip_scores(probs), [0.6, 0.4])
    has_face = np.array([True, False, False])
    np.testing.assert_allclose(clip_scores(np.nan_to_num(probs), has_face), [0.9, 0.1])
    with pytest.raises(ValueError, match="no window"):
        clip_scores(probs, np.zeros(3, bool))


def test_pool_clips_applies_the_same_rule_per_clip():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    ids, pooled = pool_clips(probs, ["x", "y", "x", "y"])
    assert ids == ["x", "y"]
    np.testing.assert_allclose(pooled, [[0.6, 0.4], [0.4, 0.6]])
    # Window 1 of clip y shows no face: only window 3 counts; clip z has no face at all: all its windows count.
    has_face = np.array([True, False, True, True, False, False])
    probs = np.vstack([probs, [[1.0, 0.0], [0.0, 1.0]]])
    ids, pooled = pool_clips(probs, ["x", "y", "x", "y", "z", "z"], has_face)
    np.testing.assert_allclose(pooled, [[0.6, 0.4], [0.6, 0.4], [0.5, 0.5]])
    for k, clip in enumerate(ids[:2]):
        rows = [i for i, c in enumerate(["x", "y", "x", "y"]) if c == clip]
        np.testing.assert_allclose(pooled[k], clip_scores(probs[rows], has_face[rows]))


def test_normalize_is_the_same_for_numpy_and_torch():
    import torch

    crops = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 4), dtype=np.uint8)
    a = normalize(crops, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])
    b = normalize(torch.from_numpy(crops), [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert a.dtype == np.float32
    np.testing.assert_allclose(a[0, 0, 0, 0], (crops[0, 0, 0, 0] / 255 - 0.5) / 0.2, rtol=1e-6)


def test_regular_windows_are_the_windows_a_stream_can_score_before_the_end():
    from microx_hf.windows import regular_windows

    for n in range(1, 40):
        for t in (1, 3, 10):
            for stride in (1, 2, 5):
                regular = [k * stride for k in range(regular_windows(n, t, stride))]
                starts = window_starts(n, t, stride)
                # Every start but possibly the last (moved back to end on the last frame) is a regular one.
                assert regular == starts[: len(regular)] and len(starts) - len(regular) <= 1
