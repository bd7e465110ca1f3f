"""The real training script, run for a couple of steps on a tiny processed-clip dataset, and its artifacts."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from training import train, trainer
from training.folds import aggregate_folds
from training.schema import FORMAT_VERSION, clip_features

LABELS = ["neutral", "happy", "sad"]
REGIONS = ["face", "mouth"]
CROP = 16
TINY_MODEL = {"hidden_size": 5, "stem_channels": [3], "head_hidden_size": 7, "num_frames": 3, "frame_encoder_size": 32}


def make_clips(
    path: Path,
    num_subjects: int = 6,
    clips_per_subject: int = 2,
    frames: int = 5,
    seed: int = 0,
    teachers: dict[str, int] | None = None,
    encoder_size: int | None = None,
) -> Path:
    """A processed-clip dataset (`training.schema`); each class has its own brightness, so it is learnable.
    `teachers` (name -> classes) adds random per-frame teacher logits (NaN where the face is missing), and
    `encoder_size` the face at the frame encoder's own size."""
    from datasets import Array4D

    from training.schema import ENCODER_COLUMN, teacher_column

    rng = np.random.default_rng(seed)
    per_frame = {ENCODER_COLUMN: Array4D((None, 3, encoder_size, encoder_size), "uint8")} if encoder_size else None
    features = clip_features(REGIONS, CROP, LABELS, per_frame=per_frame, teacher_logits=teachers)
    rows = {name: [] for name in features}
    for s in range(num_subjects):
        for c in range(clips_per_subject):
            label = (s + c) % len(LABELS)
            n = frames + c  # clips of different lengths
            for r in REGIONS:
                base = 30 + 70 * label
                rows[r].append(rng.integers(base, base + 50, (n, 3, CROP, CROP), dtype=np.uint8))
            mask = np.ones((n, len(REGIONS)), bool)
            mask[0, 1] = False  # the mouth is missing in the first frame
            rows["region_mask"].append(mask)
            for name, classes in (teachers or {}).items():
                logits = rng.normal(size=(n, classes)).astype(np.float32)
                logits[-1] = np.nan  # no face for the teacher in the last frame
                rows[teacher_column(name)].append(logits)
            if encoder_size:
                base = 30 + 70 * label
                rows[ENCODER_COLUMN].append(
                    rng.integers(base, base + 50, (n, 3, encoder_size, encoder_size), dtype=np.uint8)
                )
            rows["timestamps"].append((np.arange(n) / 30.0).astype(np.float32))
            rows["label"].append(label)
            rows["subject"].append(f"s{s:03d}")
            rows["source"].append(f"s{s:03d}/clip{c}.mp4")
            rows["corpus"].append("tiny")
            rows["landmark_backend"].append("dlib")
            rows["num_frames"].append(n)
    full = Dataset.from_dict(rows, features=features)
    description = {
        "microx_dataset": FORMAT_VERSION,
        "feature_extractor": {"fps": 30.0, "num_frames": 3, "window_stride": 2, "regions": REGIONS, "crop_size": CROP},
    }
    full.info.description = json.dumps(description)
    DatasetDict(train=full).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return make_clips(tmp_path_factory.mktemp("data") / "tiny")


def _argv(clips: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset_name_or_path", str(clips),
        "--output_dir", str(out),
        "--protocol", "kfold", "--num_folds", "3", "--fold", "0",
        "--config_overrides", json.dumps(TINY_MODEL),
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "5",
        "--learning_rate", "0.01", "--logging_steps", "1", "--report_to", "none",
        "--seed", "7", "--use_cpu", "true", "--dataloader_num_workers", "0",
        *extra,
    ]  # fmt: skip


def train_tiny(root: Path) -> Path:
    """A `train` output: one step on a tiny dataset made under `root` (no checkpoints, no evaluation)."""
    clips = make_clips(root / "tiny")
    out = root / "run"
    flags = ("--max_steps", "1", "--save_strategy", "no", "--eval_strategy", "no", "--early_stopping_patience", "0")
    train.main(_argv(clips, out, *flags))
    return out


def test_two_steps_write_checkpoint_results_and_confusion_png_then_resume(clips, tmp_path):
    out = tmp_path / "run"
    results = train.main(_argv(clips, out, "--max_steps", "2"))

    # The checkpoint: the model, its config with the dataset's labels, the feature extractor.
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "neutral", "1": "happy", "2": "sad"}
    assert config["regions"] == REGIONS and config["image_size"] == CROP and config["num_frames"] == 3
    extractor = json.loads((out / "preprocessor_config.json").read_text())
    assert extractor["regions"] == REGIONS and extractor["crop_size"] == CROP and extractor["window_stride"] == 2

    # results.json: clip-level metrics over the test subjects' clips only, nothing of the training subjects.
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["protocol"] == "kfold" and saved["subject_independent"] is True
    assert saved["num_clips"] == 2 * len(saved["test_subjects"])  # 2 clips per subject
    # clips of 5 and 6 frames, windows of 3 every 2 frames: starts 0,2 and 0,2,(3) -> at least 2 per clip
    assert saved["num_windows"] >= 2 * saved["num_clips"]
    matrix = np.array(saved["metrics"]["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == saved["num_clips"]
    assert 0.0 <= saved["uar"] <= 1.0 and saved["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "confusion_matrix.json").read_text())["matrix"] == matrix.tolist()
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == saved["num_clips"]
    assert {p["subject"] for p in predictions} == set(saved["test_subjects"])
    assert sum(p["label"] == p["predicted"] for p in predictions) == np.trace(matrix)
    assert all(sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-4) for p in predictions)

    # Early stopping needs validation: one held-out training subject, evaluated each epoch.
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert any("eval_uar" in entry for entry in state["log_history"])
    first_losses = [e["loss"] for e in state["log_history"] if "loss" in e]

    # Resume from the last checkpoint and train two more steps: the history of the first run carries over.
    train.main(_argv(clips, out, "--max_steps", "4", "--resume_from_checkpoint", "last"))
    resumed = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert resumed["global_step"] == 4
    losses = [e["loss"] for e in resumed["log_history"] if "loss" in e]
    assert losses[:2] == first_losses and len(losses) == 4


def test_json_config_file_and_flag_override(clips, tmp_path):
    config_file = tmp_path / "train.json"
    argv = _argv(clips, tmp_path / "ignored", "--max_steps", "1")
    values = {argv[i].lstrip("-"): argv[i + 1] for i in range(0, len(argv), 2)}
    values.update(max_steps=1, num_folds=3, fold=0, seed=7, use_cpu=True, learning_rate=0.01)
    config_file.write_text(json.dumps(values))
    model_args, data_args, training_args = train.parse_args([str(config_file), "--fold", "2"])
    assert data_args.fold == 2 and data_args.num_folds == 3 and training_args.max_steps == 1
    assert training_args.output_dir == str(tmp_path / "ignored")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not_a_flag": 1}))
    with pytest.raises(ValueError, match="not_a_flag"):
        train.parse_args([str(bad)])


def test_arguments_are_checked_when_made():
    from training.scripts import ArgumentsError

    with pytest.raises(ArgumentsError, match="protocol 'random'"):
        train.DataArguments(dataset_name_or_path="x", protocol="random")
    with pytest.raises(ArgumentsError, match="dataset_name_or_path"):
        train.DataArguments()
    with pytest.raises(ArgumentsError, match="JSON object"):
        train.ModelArguments(config_overrides="[1, 2]")
    with pytest.raises(ArgumentsError, match="mixed_precision"):
        train.ModelArguments(mixed_precision="fp8")
    assert train.ModelArguments(config_overrides='{"hidden_size": 4}').overrides() == {"hidden_size": 4}


def test_evaluate_a_dataset_without_the_split_says_so_in_one_line(clips, tmp_path):
    """`python -m training.evaluate --split test` on a dataset with no 'test' split: one line naming its splits, no
    traceback. (Without --split it evaluates the only split there is: tests/test_readme_folder.py.)"""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "training.evaluate", "--model_name_or_path", str(tmp_path / "never-loaded"),
           "--dataset_name_or_path", str(clips), "--output_dir", str(tmp_path / "eval"), "--split", "test"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[1])
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {clips} has no split 'test'; its splits are train: pass one of them as --split"
    )


def test_no_pinned_memory_without_a_gpu():
    # Pinned memory only helps copies to a GPU; on a CPU torch's DataLoader warned about it on every epoch.
    import torch
    from transformers import TrainingArguments

    args = train.prepare_training_args(TrainingArguments(output_dir="x"), train.DataArguments("data"), False)
    assert args.dataloader_pin_memory is torch.cuda.is_available()


def test_class_weights_and_weighted_loss():
    import torch

    weights = trainer.class_weights([0, 0, 0, 1], 3)
    # inverse frequency, mean 1 over the rows: 4 / (2 * 3) for class 0, 4 / (2 * 1) for class 1, absent class 0
    assert weights.tolist() == pytest.approx([2 / 3, 2.0, 0.0])
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1])
    loss = trainer.WeightedLoss(weights)({"logits": logits}, labels)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (ce[0] * 2 / 3 + ce[1] * 2.0) / (2 / 3 + 2.0)
    assert loss.item() == pytest.approx(expected.item())


def test_fold_aggregation_mean_std_and_pooled_matrix():
    def fold(acc, uar, f1, matrix):
        return {
            "protocol": "loso",
            "fold": "f",
            "subject_independent": True,
            "accuracy": acc,
            "uar": uar,
            "macro_f1": f1,
            "metrics": {"labels": ["a", "b"], "confusion_matrix": matrix},
        }

    summary = aggregate_folds([fold(0.5, 0.4, 0.3, [[1, 1], [0, 0]]), fold(1.0, 0.8, 0.7, [[0, 0], [1, 1]])])
    assert summary["accuracy"]["mean"] == pytest.approx(0.75)
    assert summary["accuracy"]["std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert summary["pooled"]["confusion_matrix"] == [[1, 1], [1, 1]]
    assert summary["pooled"]["accuracy"] == pytest.approx(0.5)
    assert summary["subject_independent"] is True and summary["num_folds"] == 2


def test_fold_runner_tests_every_clip_once_and_writes_mean_and_std(clips, tmp_path):
    from training import folds

    argv = _argv(clips, tmp_path / "folds", "--max_steps", "1", "--early_stopping_patience", "0")
    argv[argv.index("--num_folds") + 1] = "2"
    summary = folds.main(argv)
    saved = json.loads((tmp_path / "folds" / "folds.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["num_folds"] == 2 and saved["protocol"] == "kfold" and saved["subject_independent"]
    assert saved["pooled"]["num_examples"] == 12  # every clip is in exactly one test fold
    tested = [
        set(json.loads((tmp_path / "folds" / f"fold-{i:02d}" / "results.json").read_text())["test_subjects"])
        for i in range(2)
    ]
    assert not tested[0] & tested[1] and len(tested[0] | tested[1]) == 6
    per_fold = [
        json.loads((tmp_path / "folds" / f"fold-{i:02d}" / "results.json").read_text())["uar"] for i in range(2)
    ]
    assert saved["uar"]["mean"] == pytest.approx(np.mean(per_fold))
    assert saved["uar"]["std"] == pytest.approx(np.std(per_fold, ddof=1))


def test_paper_protocol_scores_single_windows_and_is_flagged(clips, tmp_path):
    results = train.main(_argv(clips, tmp_path / "paper", "--max_steps", "1", "--protocol", "paper"))
    # 12 clips of 5 or 6 frames cut into non-overlapping 3-frame windows: 2 each -> 24 windows, 20% tested.
    assert results["protocol"] == "paper" and results["subject_independent"] is False
    assert results["level"] == "window" and results["num_clips"] == results["num_windows"] == 5


def test_early_stopping_stops_when_validation_does_not_improve(clips, tmp_path):
    out = tmp_path / "early"
    # lr 0: the validation UAR never improves, so patience 1 stops after the second evaluation (2 steps per epoch).
    train.main(_argv(clips, out, "--num_train_epochs", "10", "--learning_rate", "0", "--early_stopping_patience", "1"))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert len([e for e in state["log_history"] if "eval_uar" in e]) == 2


def test_balanced_sampler_and_mixed_precision_choice(clips, tmp_path):
    results = train.main(
        _argv(
            clips,
            tmp_path / "bal",
            "--max_steps",
            "1",
            "--class_balance",
            "balanced_sampler",
            "--mixed_precision",
            "auto",
        )
    )
    assert results["class_balance"] == "balanced_sampler"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            train.main(_argv(clips, tmp_path / "bf16", "--max_steps", "1", "--mixed_precision", "bf16"))


def test_evaluate_script_on_a_checkpoint(clips, tmp_path):
    from training import evaluate

    out = tmp_path / "run"
    train.main(_argv(clips, out, "--max_steps", "1", "--early_stopping_patience", "0"))
    results = evaluate.main(
        [
            "--model_name_or_path",
            str(out),
            "--dataset_name_or_path",
            str(clips),
            "--split",
            "train",
            "--output_dir",
            str(tmp_path / "eval"),
            "--window_stride",
            "3",
        ]
    )
    assert results["num_clips"] == 12 and results["split"] == "train"
    # 5 frames -> starts 0 (and the tail 2); 6 frames -> 0, 3: every clip gives 2 windows of 3 with stride 3
    assert results["num_windows"] == 24
    assert (tmp_path / "eval" / "results.json").is_file() and (tmp_path / "eval" / "confusion_matrix.png").is_file()

    # Fine-tuning starts from the checkpoint's weights, config and feature extractor.
    tuned = train.main(_argv(clips, tmp_path / "tuned", "--max_steps", "1", "--model_name_or_path", str(out)))
    assert tuned["num_clips"] == 4
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["hidden_size"] == TINY_MODEL["hidden_size"]


def test_given_splits_and_same_seed_gives_the_same_model(clips, tmp_path):
    from datasets import load_from_disk
    from safetensors.torch import load_file

    full = load_from_disk(str(clips))["train"]
    is_test = [s in ("s000", "s001") for s in full["subject"]]
    given = DatasetDict(
        train=full.select([i for i, t in enumerate(is_test) if not t]),
        test=full.select([i for i, t in enumerate(is_test) if t]),
    )
    given.save_to_disk(str(tmp_path / "given"))
    runs = []
    for name in ("a", "b"):
        argv = _argv(tmp_path / "given", tmp_path / name, "--max_steps", "3", "--protocol", "given")
        runs.append(train.main(argv))
    assert runs[0]["test_subjects"] == ["s000", "s001"] and runs[0]["num_clips"] == 4
    assert runs[0]["subject_independent"] is True
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a)
    assert runs[0]["metrics"] == runs[1]["metrics"]


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))


@pytest.mark.gpu
def test_mixed_precision_training_on_a_gpu(clips, tmp_path):
    import torch

    argv = _argv(clips, tmp_path / "gpu", "--max_steps", "2", "--mixed_precision", "auto")
    argv[argv.index("--use_cpu") + 1] = "false"
    results = train.main(argv)
    state = json.loads((tmp_path / "gpu" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and results["num_clips"] == 4
    assert torch.cuda.max_memory_allocated() > 0


@pytest.mark.slow
def test_torchrun_two_cpu_processes(clips, tmp_path):
    """The Trainer's own distributed path (gloo on CPU here; NCCL on GPUs), launched as users would."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    argv = _argv(clips, out, "--max_steps", "3", "--per_device_train_batch_size", "2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "training.train", *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert json.loads((out / "results.json").read_text())["num_clips"] == 4


def test_end_to_end_from_videos_prepare_train_release(tmp_path):
    """BAUM-1s-shaped folder of astronaut videos -> prepare_dataset (dlib) -> LOSO fold -> release dry run."""
    import openpyxl

    from tests.media import make_face_video
    from training import release
    from training.prepare_dataset import main as prepare

    root = tmp_path / "BAUM1"
    rows = [(1, "S001_001", "Happiness", 8), (1, "S001_002", "Sadness", 10), (2, "S002_001", "Sadness", 10),
            (2, "S002_002", "Happiness", 8), (3, "S003_001", "Happiness", 8)]  # fmt: skip
    book = openpyxl.Workbook()
    book.active.append(["No", "Subject", "Gender", "Clip Name", "Emotion", "Code"])
    for i, (subject, name, emotion, code) in enumerate(rows):
        make_face_video(root / "BAUM1s_MP4 - All" / f"s{subject:03d}" / f"{name}.mp4", n_frames=12, size=(320, 240))
        book.active.append([i + 1, subject, "F", name, emotion, code])
    book.save(root / "Annotations_BAUM1s.xlsx")
    prepare(
        [
            "--source",
            "baum1s",
            "--root",
            str(root),
            "--output_dir",
            str(tmp_path / "data"),
            "--crop_size",
            "16",
            "--num_frames",
            "4",
            "--regions",
            "face,left_eye,right_eye,mouth",
        ]
    )

    out = tmp_path / "run"
    results = train.main(
        [
            "--dataset_name_or_path",
            str(tmp_path / "data"),
            "--output_dir",
            str(out),
            "--protocol",
            "loso",
            "--fold",
            "0",
            "--config_overrides",
            json.dumps({"hidden_size": 5, "stem_channels": [3], "head_hidden_size": 7}),
            "--per_device_train_batch_size",
            "2",
            "--num_train_epochs",
            "2",
            "--report_to",
            "none",
            "--use_cpu",
            "true",
        ]
    )
    assert results["test_subjects"] == ["S001"] and results["num_clips"] == 2
    assert results["metrics"]["labels"][:3] == ["neutral", "anger", "contempt"]  # the paper's 7 classes
    config = json.loads((out / "config.json").read_text())
    assert config["regions"] == ["face", "left_eye", "right_eye", "mouth"] and config["num_frames"] == 4
    staged = release.main(
        ["--checkpoint", str(out), "--repo_id", "me/e2e", "--output_dir", str(tmp_path / "rel"), "--dry_run"]
    )
    extractor = json.loads((Path(staged["folder"]) / "preprocessor_config.json").read_text())
    assert extractor["landmark_backend_used"] == "dlib" and extractor["num_frames"] == 4


def test_learns_a_learnable_task_on_unseen_subjects(tmp_path):
    """Each class has its own brightness: 30 short epochs must beat chance (1/3) clearly on held-out subjects.

    The default `residual` fusion starts as its frame encoder's prior with its gate nearly closed, and a prior knows
    nothing of brightness: the regions' own `attention` fusion is what learns such a task from labels."""
    clips = make_clips(tmp_path / "nine", num_subjects=9)
    results = train.main(
        _argv(
            clips,
            tmp_path / "learn",
            "--config_overrides",
            json.dumps({**TINY_MODEL, "fusion": "attention"}),
            "--num_train_epochs",
            "30",
            "--learning_rate",
            "0.03",
            "--early_stopping_patience",
            "0",
            "--logging_steps",
            "50",
        )
    )
    assert results["num_clips"] == 6 and results["subject_independent"]
    assert results["accuracy"] >= 0.8 and results["uar"] >= 0.6


def test_trains_from_a_hub_dataset_with_its_preparation_record(clips, hub, hub_repo_id, tmp_path):
    """push_to_hub drops info.description; the record comes back from microx_dataset.json (window_stride 2, not 5)."""
    from datasets import load_from_disk
    from huggingface_hub import HfApi

    dataset = load_from_disk(str(clips))
    dataset.push_to_hub(hub_repo_id)
    HfApi().upload_file(
        path_or_fileobj=dataset["train"].info.description.encode(),
        path_in_repo="microx_dataset.json",
        repo_id=hub_repo_id,
        repo_type="dataset",
    )
    argv = _argv(Path("unused"), tmp_path / "hub", "--max_steps", "1", "--early_stopping_patience", "0")
    argv[argv.index("--dataset_name_or_path") + 1] = hub_repo_id
    results = train.main(argv)
    assert results["num_clips"] == 4 and results["dataset"] == hub_repo_id
    extractor = json.loads((tmp_path / "hub" / "preprocessor_config.json").read_text())
    assert extractor["window_stride"] == 2 and extractor["regions"] == REGIONS


def test_distillation_loss_is_the_tempered_kl_on_windows_with_a_target():
    import torch

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    weight = torch.tensor([1.0, 0.0])
    t = 2.0
    log_student = torch.log_softmax(logits[0] / t, -1)
    expected = (teacher[0] * (teacher[0].log() - log_student)).sum() * t**2
    torch.testing.assert_close(trainer.distillation_loss(logits, teacher, weight, t), expected)
    assert trainer.distillation_loss(logits, teacher, torch.zeros(2), t) == 0


def test_distill_targets_average_teachers_over_the_frames_with_a_face():
    from training.data import DistillTargets
    from training.schema import teacher_column

    targets = DistillTargets(["fer"], ["neutral", "happy", "contempt"], temperature=1.0)
    logits = np.full((3, 7), -20.0, np.float32)
    logits[0, 3] = 10.0  # frame 0: happy
    logits[1, 1] = 10.0  # frame 1: disgust, which the paper merges into contempt
    logits[2] = np.nan  # frame 2: no face
    target, weight = targets({teacher_column("fer"): logits}, np.array([0, 1, 2]))
    np.testing.assert_allclose(target, [0.0, 0.5, 0.5], atol=1e-6)
    assert weight == 1.0
    _, weight = targets({teacher_column("fer"): logits}, np.array([2, 2, 2]))
    assert weight == 0.0


def test_two_steps_with_distillation_and_the_pretrained_encoder(tmp_path):
    import torch
    from safetensors.torch import load_file

    from microx_hf import MicroXForVideoClassification
    from training.teachers import get_teacher

    data = make_clips(tmp_path / "distill", teachers={"fer": 7, "faceapi": 7}, encoder_size=32)
    out = tmp_path / "run"
    results = train.main(
        _argv(
            data,
            out,
            "--max_steps",
            "2",
            "--distill_teachers",
            "fer,faceapi",
            "--distill_weight",
            "0.7",
            "--distill_temperature",
            "3",
        )
    )
    assert results["distill_teachers"] == ["fer", "faceapi"] and results["distill_weight"] == 0.7
    state = json.loads((out / "trainer_state.json").read_text())
    assert all(np.isfinite(entry["loss"]) for entry in state["log_history"] if "loss" in entry)
    # The frame encoder started from its network's converted weights and, frozen, kept them.
    model = MicroXForVideoClassification.from_pretrained(out)
    assert model.config.frame_encoder == "faceapi"
    pretrained = load_file(str(get_teacher("faceapi").weights_path()))
    for key, value in model.microx.frame_encoder.state_dict().items():
        assert torch.equal(value, pretrained[key]), key
    extractor = json.loads((out / "preprocessor_config.json").read_text())
    assert extractor["encoder_crop_size"] == 32 and model.config.frame_encoder_size == 32
    with pytest.raises(ValueError, match="distill_teachers.*nobody"):
        train.main(_argv(data, tmp_path / "bad", "--distill_teachers", "nobody"))


def test_weighted_loss_adds_the_visible_regions_own_loss():
    import torch

    weights = torch.tensor([1.0, 2.0, 0.5])
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    region_logits = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]], [[0.0, 0.0, 2.0], [1.0, 1.0, 1.0]]])
    region_weights = torch.tensor([[0.7, 0.3], [1.0, 0.0]])  # region 1 is hidden in the second window
    labels = torch.tensor([0, 1])
    outputs = {"logits": logits, "region_logits": region_logits, "region_weights": region_weights}
    fused = trainer.WeightedLoss(weights)(outputs, labels)
    total = trainer.WeightedLoss(weights, region_loss_weight=0.5)(outputs, labels)

    def weighted_ce(lg, lb):
        losses = torch.nn.functional.cross_entropy(lg, lb, weight=weights, reduction="none")
        return losses.sum() / weights[lb].sum()

    region0 = weighted_ce(region_logits[:, 0], labels)
    region1 = weighted_ce(region_logits[:1, 1], labels[:1])
    torch.testing.assert_close(total, fused + 0.5 * (region0 + region1) / 2)
