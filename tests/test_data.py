"""Window sampling and batching over processed-clip rows (`training.data`), on a dataset built from arrays whose
pixel values encode region, frame and column, so every window can be checked exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Array2D, Array4D, ClassLabel, Dataset, Features, load_from_disk

from microx_hf.windows import window_starts
from training.data import WindowDataset, WindowTransform, collate_windows, expand_windows
from training.labels import LabelScheme
from training.schema import clip_features, preparation_record

REGIONS = ["face", "left_eye", "right_eye", "mouth"]
S, T = 7, 4
LENGTHS = [9, 3, 12]  # the middle clip is shorter than a window
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def _pixel(region: int, frame: np.ndarray, x: np.ndarray) -> np.ndarray:
    return region * 50 + frame * 3 + x  # < 256 for 4 regions, 12 frames, 7 columns


def _clip(n: int, clip: int) -> dict:
    frame = np.arange(n)[:, None, None, None]
    x = np.arange(S)[None, None, None, :]
    row = {r: np.broadcast_to(_pixel(k, frame, x), (n, 3, S, S)).astype(np.uint8) for k, r in enumerate(REGIONS)}
    mask = np.ones((n, len(REGIONS)), bool)
    mask[0, REGIONS.index("left_eye")] = False  # the left eye is missing in the first frame
    row.update(
        region_mask=mask,
        timestamps=np.arange(n, dtype=np.float32) / 30,
        label=clip % 2,
        subject=f"s{clip}",
        source=f"clip{clip}.mp4",
        corpus="test",
        landmark_backend="dlib",
        num_frames=n,
    )
    return row


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Dataset:
    scheme = LabelScheme("test", ["calm", "angry"], {"calm": "calm", "angry": "angry"})
    rows = [_clip(n, i) for i, n in enumerate(LENGTHS)]
    ds = Dataset.from_list(rows, features=clip_features(REGIONS, S, scheme.class_label()))
    ds.info.description = json.dumps(
        {"feature_extractor": {"regions": REGIONS, "num_frames": T, "image_mean": MEAN, "image_std": STD}}
    )
    path = tmp_path_factory.mktemp("clips") / "ds"
    ds.save_to_disk(str(path))
    return load_from_disk(str(path))


def _expected(region: int, frames: list[int], flip: bool = False) -> np.ndarray:
    x = np.arange(S)[::-1] if flip else np.arange(S)
    raw = _pixel(region, np.asarray(frames)[:, None, None, None], x[None, None, None, :]).astype(np.float32)
    raw = np.broadcast_to(raw, (len(frames), 3, S, S))
    return (raw / 255 - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(STD, (1, 3, 1, 1))


def test_settings_restored_from_the_dataset(clips):
    assert preparation_record(clips)["feature_extractor"]["image_mean"] == MEAN
    transform = WindowTransform.from_dataset(clips, train=False)
    assert transform.regions == REGIONS and transform.num_frames == T


def test_eval_window_is_the_middle_normalised_and_padded(clips):
    out = clips.with_transform(WindowTransform.from_dataset(clips, train=False))[:3]
    assert set(out) == {"pixel_values", "region_mask", "labels"} and out["labels"] == [0, 1, 0]
    first = out["pixel_values"][0]
    assert first.shape == (len(REGIONS), T, 3, S, S) and first.dtype == torch.float32
    for k in range(len(REGIONS)):  # clip of 9 frames: the middle window starts at 2
        np.testing.assert_allclose(first[k].numpy(), _expected(k, [2, 3, 4, 5]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["pixel_values"][1][0].numpy(), _expected(0, [0, 1, 2, 2]), rtol=1e-5, atol=1e-5)
    mask = out["region_mask"][1]  # (R, T) for the short clip: padded by repeating the last frame
    assert mask.dtype == torch.bool and mask.shape == (len(REGIONS), T)
    assert mask[1].tolist() == [False, True, True, True] and mask[0].all()


def test_train_windows_are_random_seeded_and_in_range(clips):
    def starts(seed: int) -> list[int]:
        transform = WindowTransform.from_dataset(clips, train=True, seed=seed)
        reader = WindowDataset(clips, transform)
        # frame index = (pixel - x) / 3 in region 0 at x = 0, channel 0, row 0
        return [
            int(round(reader[2]["pixel_values"][0, 0, 0, 0, 0].item() * STD[0] * 255 + MEAN[0] * 255)) // 3
            for _ in range(40)
        ]

    a, b, c = starts(0), starts(0), starts(1)
    assert a == b and a != c
    assert set(a) <= set(range(12 - T + 1)) and len(set(a)) > 4


def test_loader_workers_draw_new_windows_every_epoch(clips):
    def frames_of(loader) -> list[int]:
        return [
            int(round(v * STD[0] * 255 + MEAN[0] * 255)) // 3
            for v in next(iter(loader))["pixel_values"][:, 0, 0, 0, 0, 0].tolist()
        ]

    def epochs(seed: int) -> list[list[int]]:
        torch.manual_seed(seed)
        source = WindowDataset(clips, WindowTransform.from_dataset(clips, train=True, seed=0))
        sampler = torch.utils.data.SequentialSampler([2] * 16)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(source, [2] * 16),
            batch_size=16,
            sampler=sampler,
            num_workers=1,
            collate_fn=collate_windows,
        )
        return [frames_of(loader) for _ in range(2)]

    first, second = epochs(0)
    assert first != second  # a new window per clip and epoch
    assert epochs(0) == [first, second]  # reproducible under torch.manual_seed


def test_flip_mirrors_and_swaps_left_and_right(clips):
    transform = WindowTransform.from_dataset(clips, train=True, seed=0, flip_prob=1.0)
    row = WindowDataset(clips, transform)[1]  # the short clip: window frames 0, 1, 2, 2
    frames = [0, 1, 2, 2]
    pixels = row["pixel_values"].numpy()
    np.testing.assert_allclose(pixels[0], _expected(0, frames, flip=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pixels[1], _expected(2, frames, flip=True), rtol=1e-5, atol=1e-5)  # right -> left slot
    np.testing.assert_allclose(pixels[2], _expected(1, frames, flip=True), rtol=1e-5, atol=1e-5)
    assert row["region_mask"][2].tolist() == [False, True, True, True]  # the missing left eye moved with its crop
    with pytest.raises(ValueError, match="mirror"):
        WindowTransform(["face", "left_eye"], T, flip_prob=0.5)


def test_window_dataset_matches_with_transform_and_batches(clips):
    transform = WindowTransform.from_dataset(clips, train=False)
    fast = WindowDataset(clips, transform)
    slow = clips.with_transform(transform)
    for i in range(len(LENGTHS)):
        assert torch.equal(fast[i]["pixel_values"], slow[i]["pixel_values"])
        assert torch.equal(fast[i]["region_mask"], slow[i]["region_mask"])
    loader = torch.utils.data.DataLoader(fast, batch_size=2, collate_fn=collate_windows)
    batch = next(iter(loader))
    assert batch["pixel_values"].shape == (2, len(REGIONS), T, 3, S, S)
    assert batch["region_mask"].shape == (2, len(REGIONS), T) and batch["region_mask"].dtype == torch.bool
    assert batch["labels"].tolist() == [0, 1] and batch["labels"].dtype == torch.long
    with pytest.raises(KeyError, match="remove_unused_columns=False"):
        transform({"label": [0]})


def test_expand_windows_lists_every_window(clips):
    windows = expand_windows(clips, num_frames=T, stride=3)
    expected = [(clip, start) for clip, n in enumerate(LENGTHS) for start in window_starts(n, T, 3)]
    assert list(zip(windows["clip_id"], windows["start"], strict=True)) == expected
    assert list(windows["subject"]) == [f"s{clip}" for clip, _ in expected]
    transform = WindowTransform.from_dataset(windows, train=True, seed=3)  # a full-length row: the whole window
    rows = WindowDataset(windows, transform)
    for i, (clip, start) in enumerate(expected):
        frames = np.minimum(np.arange(start, start + T), LENGTHS[clip] - 1)
        np.testing.assert_allclose(rows[i]["pixel_values"][3].numpy(), _expected(3, list(frames)), atol=1e-5)
    assert windows.features["face"].shape == (T, 3, S, S)


def test_trainer_runs_on_with_transform(clips, tmp_path):
    from transformers import Trainer, TrainingArguments

    from microx_hf import MicroXConfig, MicroXForVideoClassification

    config = MicroXConfig.from_preset(
        "default",
        regions=REGIONS,
        image_size=S,
        num_frames=T,
        stem_channels=[3],
        hidden_size=5,
        head_hidden_size=7,
        id2label={0: "calm", 1: "angry"},
        label2id={"calm": 0, "angry": 1},
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=2,
        report_to=[],
        remove_unused_columns=False,
        use_cpu=True,
        save_strategy="no",
        dataloader_num_workers=0,
    )
    train = clips.with_transform(WindowTransform.from_dataset(clips, train=True, seed=0, flip_prob=0.5))
    trainer = Trainer(
        model=MicroXForVideoClassification(config), args=args, train_dataset=train, data_collator=collate_windows
    )
    result = trainer.train()
    assert np.isfinite(result.training_loss)


def test_windows_per_clip_repeats_clips_with_fresh_windows():
    rows = Dataset.from_dict(
        {
            "face": [np.arange(30 * 3 * 4 * 4, dtype=np.uint8).reshape(30, 3, 4, 4)],
            "region_mask": [np.ones((30, 1), dtype=bool)],
            "label": [0],
        },
        features=Features(
            {
                "face": Array4D((None, 3, 4, 4), "uint8"),
                "region_mask": Array2D((None, 1), "bool"),
                "label": ClassLabel(names=["a", "b"]),
            }
        ),
    )
    dataset = WindowDataset(rows, WindowTransform(["face"], 5, train=True, seed=0), windows_per_clip=3)
    assert len(dataset) == 3
    firsts = {float(dataset[i]["pixel_values"][0, 0, 0, 0, 0]) for i in range(3)}
    assert len(firsts) > 1, "each repeat must draw its own window"
    with pytest.raises(ValueError, match="windows_per_clip"):
        WindowDataset(rows, WindowTransform(["face"], 5), windows_per_clip=0)


def test_teacher_logits_travel_with_their_frames_into_windows():
    """An extra per-frame column (a teacher's logits, for distillation) is cut into windows with the crops."""
    from datasets import Array2D

    from microx_hf.windows import frame_indices
    from training.schema import teacher_column, window_features

    features = clip_features(["face"], 4, ["a", "b"], teacher_logits={"fer": 3})
    column = teacher_column("fer")
    assert features[column] == Array2D((None, 3), "float32")
    n = 7
    logits = (np.arange(n)[:, None] + np.array([0.0, 0.1, 0.2])).astype(np.float32)  # (N, K): frame k holds k
    row = {"face": np.zeros((n, 3, 4, 4), np.uint8), "region_mask": np.ones((n, 1), bool), column: logits,
           "timestamps": np.arange(n, dtype=np.float32) / 30, "label": 1, "subject": "s", "source": "c.mp4",
           "corpus": "t", "landmark_backend": "dlib", "num_frames": n}  # fmt: skip
    clips = Dataset.from_list([row], features=features)
    windows = expand_windows(clips, num_frames=4, stride=2, regions=["face"])
    assert windows.features == window_features(features, 4, ["face"])
    assert windows.features[column] == Array2D((4, 3), "float32")
    starts = windows["start"]
    assert starts == window_starts(n, 4, 2)
    for start, values in zip(starts, windows.with_format("numpy")[column], strict=True):
        np.testing.assert_array_equal(values, logits[frame_indices(start, 4, n)])


def test_schema_refuses_extra_columns_that_are_not_per_frame_or_clash():
    from datasets import Array2D

    with pytest.raises(ValueError, match="clashes"):
        clip_features(["face"], 4, ["a"], per_frame={"region_mask": Array2D((None, 1), "bool")})
    with pytest.raises(ValueError, match="first dimension None"):
        clip_features(["face"], 4, ["a"], per_frame={"fixed": Array2D((2, 3), "float32")})
