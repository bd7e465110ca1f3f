"""Turn processed-clip rows (see `training.prepare_dataset`) into model inputs: windows, normalised, batched.

Rows are whole clips; windows of `num_frames` frames are cut here, at load time: a random window per clip and
epoch for training (seeded), the middle window for a single evaluation pass, or every window of every clip with
`expand_windows` (each window keeps its `clip_id`, so clip-level scores can be pooled).

Two ways to feed a loader:

- `dataset.with_transform(WindowTransform(...))`: the `datasets` way; works with the Trainer when
  `remove_unused_columns=False` (with `True` the Trainer drops the columns the transform needs and it raises
  `KeyError`, docs/MEASUREMENTS.md). `datasets` hands a transform Python lists: about 5 ms per frame of a clip
  (5 regions of 48 px; 3 windows/s for 60-frame clips in `bench/bench_dataset.py`), too slow to train on.
- `WindowDataset(dataset, WindowTransform(...))`: a `torch.utils.data.Dataset` that reads each row's uint8 arrays
  straight from Arrow (no Python lists): about 260 windows/s in the same benchmark, faster than the model
  trains; works with `DataLoader` and with the Trainer.

Both give rows `{"pixel_values": (R, T, C, S, S) float32, "region_mask": (R, T) bool, "labels": int}`, and
`collate_windows` stacks them into the batch the model takes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from microx_hf.errors import DatasetFormatError
from microx_hf.regions import flip_permutation, hflip_crops
from microx_hf.windows import frame_indices, window_starts

from .schema import (
    ENCODER_COLUMN,
    RECORD_FILE,
    check_clips,
    extra_frame_columns,
    prepared_extractor_settings,
    region_columns,
    teacher_column,
    window_features,
)

logger = logging.getLogger(__name__)

_DEFAULT_MEAN = (0.5, 0.5, 0.5)
_DEFAULT_STD = (0.5, 0.5, 0.5)


def load_clips(name_or_path: str | Path, revision: str | None = None, token: str | None = None) -> DatasetDict:
    """Load a processed-clip dataset from a `prepare_dataset` folder or a Hub dataset repo, with its record.

    `push_to_hub` does not carry `info.description` (the preparation record) to the Hub, so for a Hub repo the
    record is read from its `schema.RECORD_FILE` and put back into every split's `info.description`.

    Raises:
        DatasetFormatError: A split lacks a column training needs (`schema.check_clips`).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        dataset = load_from_disk(str(path))
        record_path = path / RECORD_FILE
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        dataset = load_dataset(str(name_or_path), revision=revision, token=token)
        try:
            record_path = Path(
                hf_hub_download(str(name_or_path), RECORD_FILE, repo_type="dataset", revision=revision, token=token)
            )
        except EntryNotFoundError:
            logger.warning("%s has no %s: normalisation falls back to defaults", name_or_path, RECORD_FILE)
            record_path = None
    if isinstance(dataset, Dataset):
        dataset = DatasetDict(train=dataset)
    if record_path is not None and record_path.is_file():
        record = record_path.read_text()
        for split in dataset.values():
            if not split.info.description:
                split.info.description = record
    return check_clips(dataset, str(name_or_path))


class WindowTransform:
    """Cut one window from each clip row, normalise it and (optionally) mirror it.

    Args:
        regions: Region columns, in the order the model expects (`config.regions`).
        num_frames: Frames per window (T).
        image_mean: Per-channel mean on the 0..1 scale (the extractor's `image_mean`).
        image_std: Per-channel standard deviation on the 0..1 scale.
        train: Random window per call (seeded); False: the middle window (deterministic).
        seed: Seed of the window and flip choices (a non-negative int); each DataLoader worker derives its own
            stream from it and the worker seed torch draws per epoch.
        flip_prob: Probability of a horizontal flip (training only); the flip swaps left/right regions.
    """

    def __init__(
        self,
        regions: Sequence[str],
        num_frames: int,
        image_mean: Sequence[float] = _DEFAULT_MEAN,
        image_std: Sequence[float] = _DEFAULT_STD,
        train: bool = True,
        seed: int = 0,
        flip_prob: float = 0.0,
    ) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames={num_frames}: a window needs at least one frame")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob={flip_prob}: use a probability between 0 and 1")
        self.regions = list(regions)
        self.num_frames = int(num_frames)
        self.train = train
        self.seed = seed
        self.flip_prob = flip_prob if train else 0.0
        if self.flip_prob > 0:
            flip_permutation(self.regions)  # raises when a left region lacks its right partner
        self.mean = np.asarray(image_mean, np.float32).reshape(1, 1, -1, 1, 1) * 255.0
        self.scale = 1.0 / (np.asarray(image_std, np.float32).reshape(1, 1, -1, 1, 1) * 255.0)
        self._rng = np.random.default_rng(seed)
        self._worker: tuple[int, int] | None = None

    @classmethod
    def for_model(
        cls, config: Any, feature_extractor: Any, train: bool = False, seed: int = 0, flip_prob: float = 0.0
    ) -> WindowTransform:
        """The transform a model expects: its regions and frames, its feature extractor's normalisation."""
        return cls(
            list(config.regions),
            config.num_frames,
            feature_extractor.image_mean,
            feature_extractor.image_std,
            train=train,
            seed=seed,
            flip_prob=flip_prob if train else 0.0,
        )

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        train: bool = True,
        seed: int = 0,
        flip_prob: float = 0.0,
        regions: Sequence[str] | None = None,
        num_frames: int | None = None,
    ) -> WindowTransform:
        """Build the transform from the settings the preparation saved in the dataset."""
        settings = prepared_extractor_settings(dataset)
        return cls(
            regions=list(regions) if regions is not None else region_columns(dataset),
            num_frames=num_frames or int(settings.get("num_frames", 10)),
            image_mean=settings.get("image_mean", _DEFAULT_MEAN),
            image_std=settings.get("image_std", _DEFAULT_STD),
            train=train,
            seed=seed,
            flip_prob=flip_prob,
        )

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        worker = None if info is None else (info.id, info.seed)
        if worker != self._worker:
            # A DataLoader worker holds a fresh copy of this object every epoch: derive its stream from the seed torch
            # gives the worker (new each epoch, reproducible under torch.manual_seed), or every epoch would replay
            # the same windows.
            self._worker = worker
            if info is not None:
                self._rng = np.random.default_rng([self.seed, info.seed % 2**63, info.id])
        return self._rng

    def window(self, crops: Sequence[np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One window from a clip.

        Args:
            crops: Per region (N, C, S, S) uint8, in `regions` order.
            mask: (N, R) bool, frame-major as stored.

        Returns:
            pixel_values (R, T, C, S, S) float32 and region_mask (R, T) bool.
        """
        frames, flip = self.choose(int(mask.shape[0]))
        return self.cut(crops, mask, frames, flip)

    def choose(self, n: int) -> tuple[np.ndarray, bool]:
        """Which frames (T,) of a clip of `n` frames the next window shows, and whether it is mirrored."""
        if n < 1:
            raise ValueError("a clip row has no frames")
        rng = self._generator()
        if n <= self.num_frames:
            start = 0
        elif self.train:
            start = int(rng.integers(0, n - self.num_frames + 1))
        else:
            start = (n - self.num_frames) // 2
        frames = frame_indices(start, self.num_frames, n)  # short clips repeat the last frame
        flip = bool(self.flip_prob > 0 and rng.random() < self.flip_prob)
        return frames, flip

    def cut(
        self, crops: Sequence[np.ndarray], mask: np.ndarray, frames: np.ndarray, flip: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The window of `frames` (mirrored when `flip`): pixel_values (R, T, C, S, S) float32, mask (R, T)."""
        pixels = np.stack([np.asarray(c)[frames] for c in crops])  # (R, T, C, S, S) uint8
        window_mask = np.asarray(mask, dtype=bool)[frames].T  # (R, T)
        if flip:
            pixels, window_mask = hflip_crops(pixels, window_mask, self.regions)
        return self.normalize(pixels), np.ascontiguousarray(window_mask)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (..., C, S, S) -> float32 normalised with the extractor's mean and std."""
        mean, scale = self.mean.reshape(-1, 1, 1), self.scale.reshape(-1, 1, 1)
        return np.ascontiguousarray((pixels.astype(np.float32) - mean) * scale)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        """The `with_transform` entry point: a batch of clip rows (column -> list) -> a batch of windows."""
        missing = [c for c in (*self.regions, "region_mask", "label") if c not in batch]
        if missing:
            raise KeyError(
                f"columns {missing} are missing from the batch; with the Trainer pass remove_unused_columns=False"
            )
        out: dict[str, list] = {"pixel_values": [], "region_mask": [], "labels": []}
        for i in range(len(batch["label"])):
            crops = [np.asarray(batch[r][i], dtype=np.uint8) for r in self.regions]
            pixel_values, mask = self.window(crops, np.asarray(batch["region_mask"][i], dtype=bool))
            out["pixel_values"].append(torch.from_numpy(pixel_values))
            out["region_mask"].append(torch.from_numpy(mask))
            out["labels"].append(int(batch["label"][i]))
        return out


def _flat_values(column) -> np.ndarray:
    """The leaf values of a (nested-list) Arrow column chunk as a numpy array, without Python objects."""
    array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    array = getattr(array, "storage", array)  # datasets' extension arrays wrap plain nested lists
    while hasattr(array, "flatten") and array.type.num_fields == 1:
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False)


class DistillTargets:
    """Soft targets of a window from the teachers' per-frame logits stored with the clips (`--teachers` of
    `prepare_dataset`): each teacher's softmax at `temperature` (after the calibration `bias`), summed onto the
    student's labels, averaged over the window's frames with a face, then over the teachers with `weights`.

    Args:
        teachers: Teacher names (their columns `schema.teacher_column(name)` must be in the dataset).
        labels: The student's labels, in class order.
        temperature: Softening temperature (Hinton et al. 2015); the loss scales by its square.
        weights: Each teacher's share of the target (normalised; default equal shares).
        bias: (L,) a calibration in nats added to every teacher's log-probabilities, per student label (each
            teacher class takes its label's value): the student whose prior carries the same calibration
            (`MicroXConfig.prior_bias`) then learns a target calibrated alike, not one that undoes it.
    """

    def __init__(
        self,
        teachers: Sequence[str],
        labels: Sequence[str],
        temperature: float = 1.0,
        weights: Sequence[float] | None = None,
        bias: Sequence[float] | None = None,
    ) -> None:
        from .teachers import get_teacher

        if temperature <= 0:
            raise ValueError(f"temperature={temperature}: use a positive number")
        self.teachers = list(teachers)
        weights = [1.0] * len(self.teachers) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.teachers) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights={weights}: give one non-negative share per teacher {self.teachers}")
        self.weights = np.asarray(weights, np.float64) / sum(weights)
        self.columns = [teacher_column(name) for name in self.teachers]
        self.matrices = [get_teacher(name).microx_matrix(list(labels)) for name in self.teachers]
        if bias is not None and len(bias) != len(labels):
            raise ValueError(f"bias={list(bias)}: give one value per label {list(labels)}")
        bias = np.zeros(len(labels)) if bias is None else np.asarray(bias, np.float64)
        self.class_bias = [matrix @ bias for matrix in self.matrices]  # (K,) per teacher: its classes' label bias
        self.temperature = float(temperature)

    def __call__(self, logits: dict[str, np.ndarray], frames: np.ndarray) -> tuple[np.ndarray, float]:
        """(L,) soft target of the window of `frames` and its weight (0 when no frame of it shows a face)."""
        per_teacher, shares = [], []
        for column, matrix, bias, share in zip(self.columns, self.matrices, self.class_bias, self.weights, strict=True):
            z = (np.asarray(logits[column], np.float64)[frames] + bias) / self.temperature  # (T, K)
            seen = np.isfinite(z).all(axis=1)
            if not seen.any():
                continue
            p = np.exp(z[seen] - z[seen].max(axis=1, keepdims=True))
            per_teacher.append(((p / p.sum(axis=1, keepdims=True)) @ matrix).mean(axis=0))
            shares.append(share)
        if not per_teacher:
            return np.full(self.matrices[0].shape[1], 1.0 / self.matrices[0].shape[1], np.float32), 0.0
        target = np.average(per_teacher, axis=0, weights=shares)
        return (target / max(target.sum(), 1e-12)).astype(np.float32), 1.0


class WindowDataset(torch.utils.data.Dataset):
    """A torch `Dataset` of windows over a processed-clip dataset, reading uint8 arrays straight from Arrow.

    Args:
        dataset: A processed-clip split (or an `expand_windows` dataset).
        transform: The `WindowTransform`; its `regions` pick the columns.
        windows_per_clip: How many (random, in training) windows each clip gives per pass; more than one makes an
            epoch of a small dataset worth its evaluation.
        encoder_crops: Also give `encoder_pixel_values` (T, C, E, E) from the `encoder_crops` column, for a model
            with a pretrained frame encoder (mirrored with the window).
        distill: Also give `teacher_probs` (L,) and `teacher_weight` from the teachers' stored logits.
        teacher_labels: For a row without a label (-1, real video learned from the teachers alone), give the class
            the teachers' target for the window favours as its `labels` (validation: accuracy then measures the
            agreement with the teachers); `labelled` says which rows had a label of their own. Needs `distill`.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: WindowTransform,
        windows_per_clip: int = 1,
        encoder_crops: bool = False,
        distill: DistillTargets | None = None,
        teacher_labels: bool = False,
    ) -> None:
        if teacher_labels and distill is None:
            raise ValueError("teacher_labels needs the teachers' targets (distill)")
        if windows_per_clip < 1:
            raise ValueError(f"windows_per_clip={windows_per_clip}: need at least 1")
        if encoder_crops and ENCODER_COLUMN not in dataset.column_names:
            raise DatasetFormatError(
                f"the dataset has no {ENCODER_COLUMN!r} column, which a model with a frame encoder reads: prepare it "
                "with `prepare_dataset --encoder_crop_size 112` (or the model's feature extractor)"
            )
        missing = [c for c in (distill.columns if distill else []) if c not in dataset.column_names]
        if missing:
            raise DatasetFormatError(
                f"the dataset has no teacher logits {missing}: prepare it with `prepare_dataset --teachers "
                f"{','.join(distill.teachers)}`"
            )
        self.dataset = dataset
        self.transform = transform
        self.windows_per_clip = windows_per_clip
        self.encoder_crops = encoder_crops
        self.distill = distill
        self.teacher_labels = teacher_labels
        self._extras = ([ENCODER_COLUMN] if encoder_crops else []) + (list(distill.columns) if distill else [])
        self._arrow = dataset.with_format("arrow")
        features = dataset.features
        self._shapes = {r: features[r].shape[1:] for r in transform.regions}
        self._num_regions = features["region_mask"].shape[1]

    def __len__(self) -> int:
        return self.dataset.num_rows * self.windows_per_clip

    def read(self, index: int) -> tuple[list[np.ndarray], np.ndarray, int]:
        """Row `index` as (per-region (N, C, S, S) uint8 arrays, (N, R) bool mask, label id)."""
        table = self._arrow[int(index) : int(index) + 1]
        crops = [_flat_values(table.column(r)).reshape(-1, *self._shapes[r]) for r in self.transform.regions]
        mask = _flat_values(table.column("region_mask")).astype(bool).reshape(-1, self._num_regions)
        return crops, mask, int(table.column("label")[0].as_py())

    def read_frames(self, index: int, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Row `index`'s per-frame array columns (e.g. teacher logits), each (N, ...) as stored."""
        table = self._arrow[int(index) : int(index) + 1]
        features = self.dataset.features
        return {c: _flat_values(table.column(c)).reshape(-1, *features[c].shape[1:]) for c in columns}

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = index % self.dataset.num_rows
        crops, mask, label = self.read(row)
        frames, flip = self.transform.choose(int(mask.shape[0]))
        pixel_values, window_mask = self.transform.cut(crops, mask, frames, flip)
        item = {
            "pixel_values": torch.from_numpy(pixel_values),
            "region_mask": torch.from_numpy(window_mask),
            "labels": label,
        }
        if self._extras:
            extra = self.read_frames(row, self._extras)
            if self.encoder_crops:
                face = extra[ENCODER_COLUMN][frames]  # (T, C, E, E) uint8
                if flip:
                    face = face[..., ::-1]
                item["encoder_pixel_values"] = torch.from_numpy(self.transform.normalize(face))
            if self.distill is not None:
                item["labelled"] = label >= 0  # (MicroXTrainer.compute_loss takes it out of the model's inputs)
                target, weight = self.distill(extra, frames)
                item["teacher_probs"] = torch.from_numpy(target)
                item["teacher_weight"] = weight
                if label < 0 and self.teacher_labels:
                    item["labels"] = int(np.argmax(target))
        if item["labels"] < 0 and self.distill is None:
            raise DatasetFormatError(
                f"row {row} has no label (-1: real video to learn from the teachers): train with --distill_teachers"
            )
        return item


def collate_windows(rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack window rows into a model batch.

    Returns:
        pixel_values (B, R, T, C, S, S) float32, region_mask (B, R, T) bool, labels (B,) long; and where the rows
        have them, encoder_pixel_values (B, T, C, E, E), teacher_probs (B, L), teacher_weight (B,) and labelled
        (B,) bool (False for a row whose label came from the teachers or is -1).
    """
    if not rows:
        raise ValueError("collate_windows got an empty batch")
    labels = [row["labels"] if "labels" in row else row["label"] for row in rows]
    batch = {
        "pixel_values": torch.stack([torch.as_tensor(row["pixel_values"], dtype=torch.float32) for row in rows]),
        "region_mask": torch.stack([torch.as_tensor(row["region_mask"], dtype=torch.bool) for row in rows]),
        "labels": torch.as_tensor(labels, dtype=torch.long),
    }
    if "encoder_pixel_values" in rows[0]:
        batch["encoder_pixel_values"] = torch.stack([torch.as_tensor(r["encoder_pixel_values"]) for r in rows])
    if "teacher_probs" in rows[0]:
        batch["teacher_probs"] = torch.stack([torch.as_tensor(r["teacher_probs"]) for r in rows])
        batch["teacher_weight"] = torch.as_tensor([float(r["teacher_weight"]) for r in rows])
    if "labelled" in rows[0]:
        batch["labelled"] = torch.as_tensor([bool(r["labelled"]) for r in rows])
    return batch


def _windows(dataset: Dataset, regions: list[str], num_frames: int, stride: int, fingerprint: str):
    del fingerprint  # keys the generator cache only
    reader = WindowDataset(dataset, WindowTransform(regions, num_frames, train=False))
    extras = extra_frame_columns(dataset.features)
    subjects, sources, timestamps = list(dataset["subject"]), list(dataset["source"]), list(dataset["timestamps"])
    for clip_id in range(dataset.num_rows):
        crops, mask, label = reader.read(clip_id)
        extra = reader.read_frames(clip_id, extras)
        n = mask.shape[0]
        for start in window_starts(n, num_frames, stride):
            frames = frame_indices(start, num_frames, n)
            row = {r: crops[k][frames] for k, r in enumerate(regions)}
            row.update({name: values[frames] for name, values in extra.items()})
            row.update(
                region_mask=mask[frames],
                label=label,
                subject=subjects[clip_id],
                source=sources[clip_id],
                clip_id=clip_id,
                start=start,
                start_time=float(timestamps[clip_id][start]),
                num_frames=num_frames,
            )
            yield row


def expand_windows(dataset: Dataset, num_frames: int, stride: int, regions: Sequence[str] | None = None) -> Dataset:
    """Every window of every clip (evaluation), each row tagged with its `clip_id` (row index in `dataset`).

    Clips shorter than a window give one window padded by repeating the last frame. The result has the same
    region, `region_mask`, extra per-frame (e.g. teacher logits) and `label` columns (fixed length `num_frames`,
    `schema.window_features`), so `WindowTransform(train=False)` and `WindowDataset` read it unchanged, plus
    `clip_id`, `start` (frame index) and `start_time` (seconds).
    """
    regions = list(regions) if regions is not None else region_columns(dataset)
    windows = Dataset.from_generator(
        _windows,
        features=window_features(dataset.features, num_frames, regions),
        gen_kwargs={
            "dataset": dataset,
            "regions": tuple(regions),
            "num_frames": num_frames,
            "stride": stride,
            "fingerprint": dataset._fingerprint,
        },
    )
    windows.info.description = dataset.info.description
    return windows
