"""Concurrent analyses must not change each other's results: the Space analyses several videos at once in threads
that share one landmark backend (one dlib predictor), one feature extractor and one model.

Each test runs the same clips in several threads, each thread in its own order, and requires every result to be
bit-identical to a sequential run: crops, masks and landmarks (extractor), scores (predict).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from tests import media

THREADS = 4


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("concurrency")
    return [
        media.make_face_video(folder / "pan.mp4", n_frames=20, size=(320, 240), motion="pan"),
        media.make_face_video(folder / "zoom.mp4", n_frames=20, size=(320, 240), motion="zoom"),
        media.make_face_video(folder / "two.mp4", n_frames=20, size=(480, 240), two_faces=True),
        media.make_face_video(folder / "gone.mp4", n_frames=20, size=(320, 240), motion="rotate",
                              absent_frames=(6, 7, 8, 9)),
    ]  # fmt: skip


def _run_threads(work, items: list) -> list[list]:
    """Run `work(item)` for every item in each of THREADS threads (each in a rotated order); results per thread
    in the items' order. Exceptions are re-raised."""
    results: list[dict] = [{} for _ in range(THREADS)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def run(t: int) -> None:
        try:
            barrier.wait()
            order = items[t % len(items) :] + items[: t % len(items)]
            for item in order:
                results[t][item] = work(item)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [[r[item] for item in items] for r in results]


@pytest.mark.parametrize("detect_every", [1, 5])
def test_threads_give_the_sequential_crops_and_landmarks(clips, detect_every):
    extractor = MicroXFeatureExtractor(
        num_frames=4, window_stride=4, crop_size=16, landmark_backend="dlib", detect_every=detect_every
    )
    sequential = [extractor.extract_clip(path) for path in clips]
    assert all(clip.mask.any() for clip in sequential)
    for per_thread in _run_threads(extractor.extract_clip, clips):
        for got, want in zip(per_thread, sequential, strict=True):
            np.testing.assert_array_equal(got.landmarks, want.landmarks)
            np.testing.assert_array_equal(got.crops, want.crops)
            np.testing.assert_array_equal(got.mask, want.mask)
            assert (got.faces_seen, got.followed_face) == (want.faces_seen, want.followed_face)


def test_threads_give_the_sequential_scores(clips):
    from microx_hf.configuration_microx import MicroXConfig
    from microx_hf.modeling_microx import MicroXForVideoClassification
    from microx_hf.predict import predict

    torch.manual_seed(0)
    config = MicroXConfig(
        frame_encoder=None, num_frames=4, image_size=16, stem_channels=[4], hidden_size=4, head_hidden_size=8
    )
    model = MicroXForVideoClassification(config).eval()
    extractor = MicroXFeatureExtractor.from_config(config, window_stride=4, landmark_backend="dlib")
    sequential = [predict(path, model, extractor).scores for path in clips]
    for per_thread in _run_threads(lambda path: predict(path, model, extractor).scores, clips):
        assert per_thread == sequential


def test_detector_pool_lends_each_thread_its_own_detector():
    from microx_hf.landmarks.dlib_backend import DetectorPool

    made = []
    pool = DetectorPool(lambda: made.append(object()) or made[-1])
    inside = threading.Barrier(3)
    held = []

    def hold() -> None:
        with pool.borrow() as detector:
            held.append(detector)
            inside.wait()  # all three borrowed at the same time

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(d) for d in held}) == 3 and pool.size == 3
    with pool.borrow() as again:  # returned detectors are reused, not rebuilt
        assert again in made and pool.size == 3
