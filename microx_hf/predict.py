"""Emotion in a face video in one call: `predict(video)` -> `Prediction`.

The video is cut into windows of `num_frames` frames (10 at 30 fps in the MicroX paper: 1/3 s) every
`window_stride` frames; the model scores each window that shows a face, and the clip's scores are the mean of
those window probabilities. The fusion weights of each window say how much each facial region contributed; their
mean over the windows is the clip's `region_contributions`.

One video takes one path: `MicroXExtraction.stream` reads it frame by frame (decoding and landmarks in a second
thread), `microx_hf.scoring.ClipScorer` scores its windows through a runtime (`microx_hf.runtime.load_runtime`: ONNX
Runtime where the checkpoint carries an ONNX export, else torch), and the stream's record of the clip (`ClipCrops`:
still, padded, faces seen, the face followed, the landmark backend) becomes the `Prediction`'s. A checkpoint named
by the caller (or the default) is loaded once per process (`cached_runtime`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelNotFoundError, NoFaceDetectedError, PickledWeightsError
from .scoring import WINDOW_BATCH
from .windows import clip_scores

if TYPE_CHECKING:
    from .extraction import MicroXExtraction
    from .feature_extraction_microx import MicroXFeatureExtractor
    from .modeling_microx import MicroXModel
    from .quality import Quality
    from .runtime import Runtime
    from .stream import ClipCrops, FrameCrops

logger = logging.getLogger(__name__)

# The default checkpoint committed with the package; `$MICROX_MODEL` overrides it.
DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"
MODEL_ENV = "MICROX_MODEL"


@dataclass
class Prediction:
    """The result of `predict` for one video.

    Attributes:
        label: The most likely emotion over the clip.
        scores: Emotion -> clip probability (mean over the windows with a face), in label order.
        labels: Emotion names in the model's class order.
        regions: Region names in the model's order.
        window_starts: (W,) start time of each window, seconds.
        window_probs: (W, L) probabilities per window; NaN rows for windows without a face.
        region_weights: (W, R) fusion weight of each region per window (sum to 1 over the visible regions); NaN
            rows for windows without a face.
        region_contributions: Region -> mean fusion weight over the windows with a face.
        region_probs: (W, R, L) each region's own probabilities per window; NaN for windows without a face.
        clip: The record of the clip: its masks, landmarks and timestamps, and what was learned while reading it
            (still, padded, faces seen, the face followed, the landmark backend; also properties here). Its `crops`
            are None: the crops are streamed, and only those of each label's most telling window are kept
            (`window_clip`).
        window_crops: Window index -> (R, T, C, S, S) uint8 crops, for the windows kept.
        window_stride: Frames between window starts.
        num_frames: Frames per window.
        window_frames: (W,) first frame index of each window.
        region_gate: How much the model's region branches can move its answer (`Runtime.region_gate`): 0 for a model
            that answers with its frame encoder's calibrated prior (the shipped default: its gate stayed closed, see
            its card), 1.0 where the regions' fusion is the answer.
        decided_by_prior: The frame encoder's prior decided every window with a face (`region_gate` 0 and the
            encoder's region visible throughout): `region_weights` and `region_contributions` then describe a
            correction that was switched off, not what decided.
    """

    label: str
    scores: dict[str, float]
    labels: list[str]
    regions: list[str]
    window_starts: np.ndarray
    window_probs: np.ndarray
    region_weights: np.ndarray
    region_contributions: dict[str, float]
    region_probs: np.ndarray
    clip: ClipCrops = field(repr=False)
    window_crops: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    window_stride: int = 5
    num_frames: int = 10
    window_frames: np.ndarray | None = field(default=None, repr=False)
    region_gate: float = 1.0
    decided_by_prior: bool = False

    @property
    def face_fraction(self) -> float:
        """Share of the clip's frames in which a face was found."""
        return self.clip.face_fraction

    @property
    def landmark_backend(self) -> str:
        """The landmark backend that found the faces."""
        return self.clip.landmark_backend

    @property
    def padded(self) -> bool:
        """The clip is shorter than one window: its only window repeats the last frame."""
        return self.clip.padded

    @property
    def still(self) -> bool:
        """The input was a still image read as one frame (`allow_still`): there is no motion to read."""
        return self.clip.still

    @property
    def faces_seen(self) -> int:
        """The most faces found in one whole-frame detection (more than 1: several people)."""
        return self.clip.faces_seen

    @property
    def face_choice(self) -> str | int:
        """The policy that picked the followed face ("auto", "largest", "central" or an index)."""
        return self.clip.face_choice

    @property
    def followed_face(self) -> int | None:
        """Left-to-right position of the followed face when it was first found, or None."""
        return self.clip.followed_face

    @property
    def quality(self) -> Quality:
        """How far to trust this prediction: the face's size, light and sharpness as the stream measured them, the
        share of frames with a face, the spread of the scores, and plain notes when any is poor
        (`microx_hf.quality`; `quality.note()` is the sentence to show, None when nothing is doubtful)."""
        from .quality import assess

        return assess(self.clip.face_stats, self.face_fraction, np.array([self.scores[k] for k in self.labels]))

    @property
    def window_has_face(self) -> np.ndarray:
        """(W,) bool: whether the model scored the window (a face was found in it)."""
        return np.isfinite(self.window_probs).all(axis=1)

    def telling_window(self, label: str | None = None) -> int:
        """The window that speaks most for `label` (default the clip's label): its highest probability."""
        return int(np.nanargmax(self.window_probs[:, self.labels.index(label or self.label)]))

    def window_clip(self, window: int) -> ClipCrops:
        """The crops of one kept window as a `ClipCrops` of its T frames (for `visualize.contact_sheet`).

        Raises:
            KeyError: The window's crops were not kept (each label's most telling window is).
        """
        from dataclasses import replace

        from .windows import frame_indices

        if window not in self.window_crops:
            raise KeyError(f"the crops of window {window} were not kept; kept: {sorted(self.window_crops)}")
        clip = self.clip
        index = frame_indices(int(self.window_frames[window]), self.num_frames, clip.num_frames)
        return replace(
            clip,
            crops=self.window_crops[window],
            mask=clip.mask[:, index],
            timestamps=clip.timestamps[index],
            landmarks=clip.landmarks[index],
            encoder_crops=None,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary without the crops; NaN (windows without a face) becomes None."""

        def clean(array: np.ndarray) -> list:
            return [
                clean(a) if isinstance(a, np.ndarray) else (None if math.isnan(a) else round(float(a), 6))
                for a in array
            ]

        return {
            "label": self.label,
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "labels": list(self.labels),
            "regions": list(self.regions),
            "window_starts": clean(np.asarray(self.window_starts, dtype=float)),
            "window_probs": clean(np.asarray(self.window_probs, dtype=float)),
            "region_weights": clean(np.asarray(self.region_weights, dtype=float)),
            "region_contributions": {k: round(float(v), 6) for k, v in self.region_contributions.items()},
            "region_gate": round(float(self.region_gate), 6),
            "decided_by_prior": bool(self.decided_by_prior),
            "face_fraction": round(float(self.face_fraction), 6),
            "landmark_backend": self.landmark_backend,
            "padded": bool(self.padded),
            "still": bool(self.still),
            "faces_seen": int(self.faces_seen),
            "face_choice": self.face_choice,
            "followed_face": self.followed_face,
            "quality": self.quality.to_dict(),
        }


def _resolve_name(name_or_path: str | Path | None) -> str | Path:
    if name_or_path is not None:
        return name_or_path
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    if not (DEFAULT_MODEL / "config.json").is_file():
        raise ModelNotFoundError(
            f"No model given and no default model at {DEFAULT_MODEL}. Pass one: `predict(video, model=PATH_OR_HUB_ID)`,"
            f" `microx predict --model PATH_OR_HUB_ID VIDEO`, or set ${MODEL_ENV}."
        )
    return DEFAULT_MODEL


# Weights files that are Python pickles: loading one can run any code its author put in it.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _convert_hint(folder: str) -> str:
    return (
        "Convert them once, if you trust their source (transformers reads them with torch.load(weights_only=True), "
        'which refuses pickled code): python -c "from microx_hf import MicroXForVideoClassification as M; '
        f"M.from_pretrained('{folder}', use_safetensors=False).save_pretrained('{folder}')\" writes model.safetensors "
        "beside them."
    )


def check_safetensors(folder: Path) -> None:
    """Refuse a local checkpoint folder that has pickled weights but no safetensors, before anything is unpickled.

    Raises:
        PickledWeightsError: Only pickled weights (`pytorch_model.bin`, `.pt`, `.pth`, `.ckpt`, ...).
        ModelNotFoundError: No weights at all.
    """
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    pickles = [name for name in pickles if name != "training_args.bin"]  # the Trainer's settings, not weights
    if pickles:
        raise PickledWeightsError(
            f"{folder} has only pickled weights ({', '.join(pickles)}), and MicroX loads safetensors only, since "
            f"unpickling a file can run code. {_convert_hint(str(folder))}"
        )
    raise ModelNotFoundError(
        f"{folder} has a config.json but no weights (model.safetensors). Save the model with `save_pretrained`."
    )


def load_model(name_or_path: str | Path | None = None) -> tuple[MicroXModel, MicroXFeatureExtractor]:
    """Load a MicroX checkpoint and its feature extractor, ready for inference (eval mode, on the CPU).

    Args:
        name_or_path: A local folder or a Hub model id. None: `$MICROX_MODEL`, else the default model that ships
            with the package (`DEFAULT_MODEL`).

    Returns:
        (model, feature_extractor): the extractor saved with the model (`extractor_for`).

    Only safetensors weights are loaded: a checkpoint with only pickled weights (`pytorch_model.bin`, ...) is
    refused before anything is unpickled, since unpickling can run code.

    Raises:
        PickledWeightsError: Only pickled weights; the message says how to convert them.
        ModelNotFoundError: Nothing loadable at `name_or_path`; the message says what to pass.
    """
    from transformers.utils import logging as hf_logging

    from .modeling_microx import MicroXForVideoClassification

    name = _local_folder(_resolve_name(name_or_path))
    # No "Loading weights" progress bar: a library call that loads a model is not a download the user asked to watch.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = MicroXForVideoClassification.from_pretrained(name, use_safetensors=True)
    except OSError as e:
        detail = " ".join(str(e).split())  # one line
        if "safetensors" in detail and not isinstance(name, Path):
            raise PickledWeightsError(
                f"The Hub model {name} has no safetensors weights, and MicroX loads safetensors only, since unpickling "
                f"a file can run code. Download it, check it, and convert it: {_convert_hint('LOCAL_FOLDER')}"
            ) from None
        raise ModelNotFoundError(
            f"Cannot load the model {name!s}: {detail}. Pass a local folder written by `save_pretrained` or a Hub id "
            "that is reachable (or cached, when HF_HUB_OFFLINE=1)."
        ) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval(), extractor_for(model)


def _local_folder(name: str | Path, weights: bool = True) -> str | Path:
    """`name` as a checked local checkpoint folder when it names one (else a Hub id, unchanged); `weights`: it must
    hold safetensors weights (`check_safetensors`; the onnx runtime needs none)."""
    if not (isinstance(name, Path) or Path(str(name)).exists() or str(name).startswith((".", "/", "~"))):
        return name
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} is not a MicroX model folder (no config.json). Pass a folder written by `save_pretrained`, or a "
            "Hub model id."
        )
    if weights:
        check_safetensors(path)
    return path


def extractor_for(model: MicroXModel) -> MicroXFeatureExtractor:
    """The feature extractor that goes with a model: the one saved with its weights (`preprocessor_config.json`, from
    the same Hub revision), else one built from its config (regions, frames per window, crop sizes), with a warning
    when the model came from a folder."""
    from .feature_extraction_microx import MicroXFeatureExtractor

    source = getattr(model, "name_or_path", "") or ""
    if source:
        revision = getattr(model.config, "_commit_hash", None)
        try:
            return MicroXFeatureExtractor.from_pretrained(source, revision=revision)
        except OSError:
            logger.warning("%s has no preprocessor_config.json: using an extractor built from the model config", source)
    return MicroXFeatureExtractor.from_config(model.config)


def check_compatible(model: Any, feature_extractor: MicroXExtraction) -> None:
    """Raise `ValueError` when the extractor's crops do not fit the model (regions, frames, sizes, normalisation).

    Args:
        model: A model, or its config (anything with the `MicroXConfig` fields).
    """
    cfg = getattr(model, "config", model)
    fe = feature_extractor
    problems = []
    if list(fe.regions) != list(cfg.regions):
        problems.append(f"regions {list(fe.regions)} vs the model's {list(cfg.regions)}")
    if fe.num_frames != cfg.num_frames:
        problems.append(f"num_frames {fe.num_frames} vs {cfg.num_frames}")
    if fe.crop_size != cfg.image_size:
        problems.append(f"crop_size {fe.crop_size} vs image_size {cfg.image_size}")
    if cfg.frame_encoder is not None:
        size = fe.encoder_crop_size
        if size is not None and size != cfg.frame_encoder_size:
            problems.append(f"encoder_crop_size {size} vs frame_encoder_size {cfg.frame_encoder_size}")
        if size is None:
            logger.warning(
                "the feature extractor cuts no encoder crops: the model resizes its %r crops (%d px) to %d px for "
                "its frame encoder, which loses detail; build the extractor with MicroXFeatureExtractor.from_config",
                cfg.frame_encoder_region,
                cfg.image_size,
                cfg.frame_encoder_size,
            )
        for key in ("image_mean", "image_std"):
            ours, theirs = list(getattr(fe, key)), list(getattr(cfg, key))
            if not np.allclose(ours, theirs):
                problems.append(f"{key} {ours} vs the model's {theirs} (its frame encoder undoes that normalisation)")
    if problems:
        raise ValueError(
            "The feature extractor does not match the model: " + "; ".join(problems) + ". Load both from the "
            "same checkpoint with `load_model(name)`."
        )


def _is_runtime(model: Any) -> bool:
    """Whether `model` is a `Runtime` (what `load_runtime` returns), not a torch model or a name."""
    return all(hasattr(model, name) for name in ("encode_frames", "classify_windows", "labels", "num_frames"))


# Checkpoints that `predict` loaded by name (or the default), kept for the next call of this process.
CACHE_SIZE = 4
_CACHE: OrderedDict[tuple, tuple[Runtime, MicroXExtraction]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_LOADING: dict[tuple, threading.Lock] = {}  # one lock per key being loaded: concurrent first calls load once


def _cache_key(name_or_path: str | Path | None, runtime: str) -> tuple:
    """What identifies a loaded checkpoint: the resolved name, the runtime asked for and, for a local folder, the
    size and modification time of its files (a folder written again, e.g. by a new training run, is loaded again)."""
    name = _resolve_name(name_or_path)
    path = Path(str(name)).expanduser()
    if not path.is_dir():
        return (str(name), runtime)
    stamps = []
    for file in ("config.json", "preprocessor_config.json", "model.safetensors", "onnx/manifest.json"):
        with contextlib.suppress(OSError):
            stat = (path / file).stat()
            stamps.append((file, stat.st_size, stat.st_mtime_ns))
    return (str(path.resolve()), runtime, tuple(stamps))


def cached_runtime(name_or_path: str | Path | None = None, runtime: str = "auto") -> tuple[Runtime, MicroXExtraction]:
    """`load_runtime(name_or_path, runtime)`, loaded once per process and kept (the last `CACHE_SIZE` checkpoints):
    what `predict` uses when it is given a name or no model. Safe from several threads: concurrent first calls for
    the same checkpoint load it once, and the others wait for it."""
    from .runtime import load_runtime

    key = _cache_key(name_or_path, runtime)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        lock = _LOADING.setdefault(key, threading.Lock())
    with lock:
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        loaded = load_runtime(name_or_path, runtime)
        with _CACHE_LOCK:
            _CACHE[key] = loaded
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
            _LOADING.pop(key, None)
    return loaded


def _runtime(
    model: MicroXModel | Runtime | str | Path | None, feature_extractor: MicroXExtraction | None, runtime: str
) -> tuple[Runtime, MicroXExtraction]:
    """(the runtime, the extractor) for `predict`."""
    from .runtime import RUNTIMES, TorchRuntime

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: choose one of {RUNTIMES}")
    if model is None or isinstance(model, (str, Path)):
        engine, loaded_extractor = cached_runtime(model, runtime)
        return engine, feature_extractor or loaded_extractor
    if _is_runtime(model):
        if feature_extractor is None:
            raise ValueError("predict(video, runtime) needs the feature extractor load_runtime returned with it")
        return model, feature_extractor
    if runtime == "onnx":
        raise ValueError(
            "runtime='onnx' takes a checkpoint folder or Hub id (or None for the default), or what load_runtime "
            "returned; not a loaded torch model"
        )
    return TorchRuntime(model), feature_extractor or extractor_for(model)


def predict(
    video: str | Path | np.ndarray | list[np.ndarray],
    model: MicroXModel | str | Path | None = None,
    feature_extractor: MicroXExtraction | None = None,
    batch_size: int = WINDOW_BATCH,
    overlap: bool | None = None,
    runtime: str = "auto",
    on_frame: Callable[[FrameCrops], None] | None = None,
    face_crops: bool = False,
) -> Prediction:
    """Recognise the emotion in a face video.

    The video streams through: frames are decoded, cropped and encoded once each, and windows are scored in
    batches as soon as their frames are in, so memory does not grow with the video's length (only its landmarks,
    a few bytes a frame, and the crops of each label's most telling window are kept).

    Args:
        video: A video file, or RGB frames (N, H, W, 3) uint8 taken at the extractor's fps.
        model: A checkpoint folder or Hub id, None for the default model (`$MICROX_MODEL`, else the one that ships
            with the package), a loaded torch model, or the runtime `load_runtime` returned. A name (or None) is
            loaded once per process (`cached_runtime`): later calls reuse it.
        feature_extractor: The extractor; None takes the one saved with the model.
        batch_size: Windows per forward pass.
        overlap: Decode and find landmarks in a second thread while the model scores (both release the GIL for
            most of their work, so two cores are used); default: when the machine has two cores or more.
        runtime: For a name or None: "auto" (ONNX Runtime where the checkpoint carries an ONNX export and
            onnxruntime is installed, else torch), "onnx" or "torch" (see `microx_hf.runtime.load_runtime`). A loaded
            torch model runs in torch.
        on_frame: Called with each frame's `FrameCrops` as it passes (e.g. `visualize.TrackPreview.add`, which
            draws the face track without decoding the video again).
        face_crops: The video (or image, with the extractor's `allow_still`) is already cropped to one face (CK+48,
            DFEW, AFEW): the frame is the face box (`MicroXExtraction` `face_crops`); the extractor given or loaded is
            not changed.

    Returns:
        A `Prediction`.

    Raises:
        NoFaceDetectedError: No window of the video shows a face (`NotAFaceCropError` in face-crop mode when the
            input is not a face crop).
        VideoNotFoundError, InvalidVideoError, VideoDecodeError, VideoLimitError: The video cannot be used.
        ModelNotFoundError: No model could be loaded.
    """
    from .parallel import in_thread
    from .scoring import ClipScorer

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: pass at least 1")
    engine, fe = _runtime(model, feature_extractor, runtime)
    check_compatible(engine.config, fe)
    if face_crops and not fe.face_crops:
        fe = copy.copy(fe)  # the caller's extractor keeps its mode
        fe.face_crops = True

    scorer = ClipScorer(engine, fe.window_stride, fe.image_mean, fe.image_std, batch_size, keep_telling=True)
    if overlap is None:
        overlap = (os.cpu_count() or 1) >= 2
    stream = fe.stream(video)
    # Decoding and landmarks in the second thread, the crops here beside the network: the two halves then cost about
    # the same (the landmarks alone take about what the network does). A few frames of slack between them are
    # enough; each waiting frame holds its decoded picture (1.2 MB at 480p).
    tracked = stream.faces()
    for item in in_thread(tracked, queue_size=8) if overlap else tracked:
        frame = stream.crop(item)
        scorer.push(frame.crops, frame.mask, frame.encoder_crop)
        if on_frame is not None:
            on_frame(frame)
    scores = scorer.finish()
    clip = stream.clip

    where = video if isinstance(video, (str, Path)) else "the frames"
    has_face = scores.has_face
    if not has_face.any():
        from .quality import no_face_advice

        advice = no_face_advice(clip.rotation_hint, clip.frame_brightness)
        raise NoFaceDetectedError(
            f"No face was found in {where} ({clip.num_frames} frames, landmark backend {clip.landmark_backend!r}). "
            + (advice + " " if advice else "")
            + "Use a video in which one face looks towards the camera, lit from the front and at least about 80 "
            "pixels wide; profiles and sunglasses defeat the detector."
        )
    labels, regions = list(engine.labels), list(engine.regions)
    clip_probs = clip_scores(scores.probs, has_face)  # (L,): the mean over the windows with a face
    contributions = scores.region_weights[has_face].mean(axis=0)  # (R,)
    label = labels[int(np.argmax(clip_probs))]
    region_gate = float(getattr(engine, "region_gate", 1.0))
    encoder_region = getattr(engine.config, "frame_encoder_region", None) if engine.config.frame_encoder else None
    decided_by_prior = False
    if region_gate == 0.0 and encoder_region in regions:
        # `residual` fusion falls back on the regions in a window whose encoder region was hidden throughout.
        any_region = clip.mask.any(axis=0)  # (N,)
        decided_by_prior = bool((clip.mask[regions.index(encoder_region)] | ~any_region).all())
    if clip.padded:
        logger.warning(
            "%s has %d frames, fewer than one window (%d): its window repeats the last frame",
            where,
            clip.num_frames,
            fe.num_frames,
        )
    logger.info(
        "%s: %s (%.0f%%) from %d/%d windows", where, label, 100 * clip_probs.max(), has_face.sum(), len(has_face)
    )
    return Prediction(
        label=label,
        scores={name: float(p) for name, p in zip(labels, clip_probs, strict=True)},
        labels=labels,
        regions=regions,
        window_starts=clip.timestamps[np.minimum(scores.starts, clip.num_frames - 1)].astype(np.float64),
        window_probs=scores.probs,
        region_weights=scores.region_weights,
        region_contributions={name: float(w) for name, w in zip(regions, contributions, strict=True)},
        region_probs=scores.region_probs,
        clip=clip,
        window_crops=scores.kept_crops,
        window_stride=fe.window_stride,
        num_frames=fe.num_frames,
        window_frames=scores.starts,
        region_gate=region_gate,
        decided_by_prior=decided_by_prior,
    )
