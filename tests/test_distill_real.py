"""Real face motion in training: unlabelled real video learned from the teachers' per-frame soft targets, on the
fused output and on every region branch and ConvLSTM; the prior's label-free calibration.

The end-to-end test runs the real scripts (`prepare_dataset` with the teachers, `training.calibration`, `train`) for
two steps on face videos it makes from the astronaut photo (public domain)."""

import csv
import json

import numpy as np
import pytest
import torch
from datasets import DatasetDict, load_from_disk

from microx_hf import MicroXForVideoClassification
from tests.media import make_face_video
from training import calibration, train, trainer
from training.data import DistillTargets
from training.prepare_dataset import main as prepare
from training.schema import teacher_column

LABELS = ["neutral", "anger", "contempt", "surprise", "fear", "happy", "sad"]
TINY = {"image_size": 16, "num_frames": 4, "stem_channels": [3], "hidden_size": 5, "head_hidden_size": 7}


def test_mixed_loss_learns_unlabelled_windows_from_the_teachers_alone_on_every_region():
    torch.manual_seed(0)
    logits, region_logits = torch.randn(3, 4), torch.randn(3, 2, 4)
    region_weights = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.3, 0.7]])  # region 1 hidden in window 1
    outputs = {"logits": logits, "region_logits": region_logits, "region_weights": region_weights}
    teacher = torch.softmax(torch.randn(3, 4), dim=-1)
    labels, labelled = torch.tensor([2, -1, 1]), torch.tensor([True, False, True])
    has = torch.tensor([1.0, 1.0, 0.0])  # window 2 has no face for the teachers
    t, w, rlw = 2.0, 0.4, 0.5
    loss = trainer.mixed_loss(outputs, labels, labelled, teacher, has, w, t, rlw)

    def kd(lg, tg):
        return (tg * (tg.log() - torch.log_softmax(lg / t, -1))).sum(-1) * t**2

    def ce(lg, lb):
        return torch.nn.functional.cross_entropy(lg[None], lb[None])

    row0 = (1 - w) * (ce(logits[0], labels[0]) + rlw * (ce(region_logits[0, 0], labels[0]) +
            ce(region_logits[0, 1], labels[0])) / 2) + w * (kd(logits[0], teacher[0]) + rlw *
            (kd(region_logits[0, 0], teacher[0]) + kd(region_logits[0, 1], teacher[0])) / 2)  # fmt: skip
    row1 = kd(logits[1], teacher[1]) + rlw * kd(region_logits[1, 0], teacher[1])  # only the visible region
    row2 = (
        ce(logits[2], labels[2]) + rlw * (ce(region_logits[2, 0], labels[2]) + ce(region_logits[2, 1], labels[2])) / 2
    )
    torch.testing.assert_close(loss, (row0 + row1 + row2) / 3)
    # An unlabelled window's label is never read; one with no teacher target and no label counts for nothing.
    other = trainer.mixed_loss(outputs, torch.tensor([2, 3, 1]), labelled, teacher, has, w, t, rlw)
    torch.testing.assert_close(loss, other)
    none = trainer.mixed_loss(outputs, labels, labelled, teacher, torch.tensor([1.0, 0.0, 0.0]), w, t, rlw)
    torch.testing.assert_close(none, (row0 + row2) / 2)


def test_distill_targets_weigh_teachers_and_carry_the_prior_calibration():
    names = ["neutral", "happy", "contempt"]
    frames = np.array([0, 1])
    fer = np.full((2, 7), -20.0, np.float32)
    fer[:, 3] = 10.0  # fer: happy
    faceapi = np.full((2, 7), -20.0, np.float32)
    faceapi[:, 0] = 10.0  # face-api: neutral
    logits = {teacher_column("fer"): fer, teacher_column("faceapi"): faceapi}
    target, _ = DistillTargets(["faceapi", "fer"], names, 1.0, weights=[3, 1])(logits, frames)
    np.testing.assert_allclose(target, [0.75, 0.25, 0.0], atol=1e-6)
    # A calibration of +ln 3 on happy against a teacher torn between neutral and happy: 1:3, as the prior would be.
    torn = np.full((2, 7), -20.0, np.float32)
    torn[:, [0, 1]] = 0.0  # face-api: neutral and happy alike
    target, _ = DistillTargets(["faceapi"], names, 1.0, bias=[0.0, np.log(3.0), 0.0])(
        {teacher_column("faceapi"): torn}, frames
    )
    np.testing.assert_allclose(target, [0.25, 0.75, 0.0], atol=1e-5)
    with pytest.raises(ValueError, match="one non-negative share per teacher"):
        DistillTargets(["faceapi", "fer"], names, weights=[1.0])


def test_prior_bias_evens_out_the_mean_prediction_bounded_and_never_raises_fear():
    mean = np.array([0.70, 0.03, 0.01, 0.05, 0.01, 0.12, 0.08])
    bias = np.array(calibration.bias_from_mean(mean, LABELS, bound=1.0))
    assert np.abs(bias).max() <= 1.0 and bias[LABELS.index("fear")] <= 0.0
    assert bias[0] == -1.0 and bias[LABELS.index("contempt")] == 1.0  # neutral lowered, the rarest raised
    assert np.argsort(bias[[0, 5, 6]]).tolist() == [0, 1, 2]  # the commoner, the lower: neutral < happy < sad


def _pairs(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_steps_of_the_real_scripts_distil_real_video_into_every_branch(tmp_path):
    root = tmp_path / "media"
    rows = []
    # Unlabelled "real" face video of three people, and two labelled synthetic-like clips.
    for k, (person, motion) in enumerate([("ann", "pan"), ("ann", "zoom"), ("ben", "rotate"), ("cyd", "pan")]):
        make_face_video(root / "real" / f"{person}{k}.mp4", n_frames=10, size=(320, 240), motion=motion)
        rows.append((f"real/{person}{k}.mp4", "unlabelled", person))
    for label in ("happy", "sad"):
        make_face_video(root / "warp" / f"{label}.mp4", n_frames=10, size=(320, 240), motion="zoom")
        rows.append((f"warp/{label}.mp4", label, "warp:ann"))
    with open(root / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label", "subject"), *rows])
    prepare(
        ["--source", "folder", "--root", str(root / "manifest.csv"), "--output_dir", str(tmp_path / "all"),
         "--crop_size", "16", "--num_frames", "4", "--encoder_crop_size", "32", "--teachers", "faceapi,fer",
         "--landmark_backend", "mediapipe"]
    )  # fmt: skip
    full = load_from_disk(str(tmp_path / "all"))["train"]
    real = [i for i, source in enumerate(full["source"]) if source.startswith("real/")]
    assert [full["label"][i] for i in real] == [-1] * 4  # unlabelled: -1
    logits = np.asarray(full[real[0]][teacher_column("faceapi")])
    assert logits.shape == (10, 7) and np.isfinite(logits).all()  # a soft target for every frame with a face
    validation = [i for i, subject in enumerate(full["subject"]) if subject == "cyd"]
    splits = DatasetDict(train=full.select([i for i in range(full.num_rows) if i not in validation]),
                         validation=full.select(validation))  # fmt: skip
    splits.save_to_disk(str(tmp_path / "data"))
    (tmp_path / "data" / "microx_dataset.json").write_text((tmp_path / "all" / "microx_dataset.json").read_text())
    fitted = calibration.fit_prior_bias(splits["train"], "faceapi", LABELS)
    assert fitted["clips"] == 3 and fitted["frames"] == 30 and len(fitted["prior_bias"]) == 7

    out = tmp_path / "run"
    flags = ["--dataset_name_or_path", str(tmp_path / "data"), "--output_dir", str(out),
             "--config_overrides", json.dumps({**TINY, "prior_bias": fitted["prior_bias"]}),
             "--distill_teachers", "faceapi,fer", "--distill_teacher_weights", "0.75,0.25",
             "--source_shares", json.dumps({"real/": 0.8, "warp/": 0.2}),
             "--max_steps", "2", "--per_device_train_batch_size", "4", "--learning_rate", "0.05",
             "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "no", "--early_stopping_patience", "0",
             "--logging_steps", "1", "--report_to", "none", "--seed", "3", "--use_cpu", "true",
             "--dataloader_num_workers", "0"]  # fmt: skip
    train.main(flags)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [np.isfinite(e["loss"]) for e in history if "loss" in e] == [True, True]
    evaluation = next(e for e in history if "eval_loss" in e)
    # The validation people are unlabelled: their loss is the distillation loss, their accuracy the agreement with
    # the teachers' answer.
    assert np.isfinite(evaluation["eval_loss"]) and 0 <= evaluation["eval_accuracy"] <= 1
    trained = MicroXForVideoClassification.from_pretrained(out)
    assert trained.config.prior_bias == fitted["prior_bias"] and trained.config.fusion == "residual"

    # The same model before training (the script seeds before it builds the model).
    from transformers import set_seed

    set_seed(3)
    fresh = MicroXForVideoClassification(trained.config)
    train.init_frame_encoder(fresh, None)
    before, after = _pairs(fresh), _pairs(trained)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    for part in ("stem", "convlstm", "encoder_convlstm", "region_dense", "region_classifier", "region_score"):
        assert any(k.startswith(f"microx.{part}.") for k in moved), part  # every branch and its ConvLSTM learned
    assert not any(k.startswith("microx.frame_encoder.") for k in moved)  # the encoder is frozen
