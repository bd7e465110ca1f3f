"""Release a trained MicroX checkpoint to the Hugging Face Hub: verify, write the model card, push.

Steps:
1. Load the checkpoint (model and feature extractor) and save both into a staging folder.
2. Reload the staged folder and check that it gives *identical* outputs (logits, region logits, region weights) on
   a fixed input with a masked region; refuse to release otherwise. Export the network to ONNX into `onnx/`
   (`microx_hf.onnx_export`: the graphs `predict` runs with ONNX Runtime, without torch), refused unless its
   probabilities agree with torch's within 1e-4 on fixed inputs.
3. Fill `model_card.md` (the repository's template) with the real results: YAML metadata with a model-index of
   eval results (`huggingface_hub.ModelCard`, `ModelCardData`, `EvalResult`), intended and out-of-scope uses
   (including the EU AI Act's prohibition of emotion recognition at work and in education), limitations, biases,
   and the licences of the landmark models and datasets.
4. Push the staging folder as one commit (`HfApi.upload_folder`), optionally as a pull request, and tag it. The
   repository is created private unless `--public` is given: weights trained on licensed corpora carry their terms.

The staged folder carries the model code and `auto_map` (`save_pretrained` writes them into every folder), so the
Hub release loads with `trust_remote_code=True` where the `microx_hf` package is not installed.

``--dry_run`` stops after step 3: the staging folder (``--output_dir``) is exactly what would be pushed (in code:
`run(ReleaseArguments(...))`)::

    python -m training.release --checkpoint runs/baum1s --repo_id me/microx-baum1s --folds_results runs/loso/folds.json \
        --tag v0.1.0 --output_dir release/ --dry_run
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from microx_hf.configuration_microx import CLOSED_GATE
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.onnx_export import export_onnx
from microx_hf.runtime_onnx import ONNX_DIR
from training.release_card import build_card, gate_decision, read_json, source_networks
from training.scripts import ArgumentsError, parse_arguments, run_script

logger = logging.getLogger(__name__)


@dataclass
class ReleaseArguments:
    """What to release, where to, and with which results."""

    checkpoint: str = field(default=None, metadata={"help": "Trained checkpoint folder (model + feature extractor)."})
    repo_id: str = field(default=None, metadata={"help": "Hub repository, e.g. 'me/microx-baum1s'."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Staging folder: exactly what is pushed (default: a temporary folder)."}
    )
    dry_run: bool = field(default=False, metadata={"help": "Write the staging folder and stop before pushing."})
    results: str | None = field(
        default=None,
        metadata={"help": "results.json of the checkpoint's test set (default: <checkpoint>/results.json)."},
    )
    folds_results: str | None = field(
        default=None, metadata={"help": "folds.json of a subject-independent fold run: the headline results."}
    )
    paper_results: str | None = field(
        default=None, metadata={"help": "results.json under the paper protocol, shown for comparison only."}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Display name of the training data (default: the dataset folder's name)."}
    )
    dataset_id: str | None = field(default=None, metadata={"help": "Hub id of the dataset, for the card metadata."})
    dataset_description: str | None = field(default=None, metadata={"help": "One line about the training data."})
    license: str = field(default="other", metadata={"help": "Licence id of the weights (card metadata)."})
    license_note: str | None = field(
        default="the training data's non-commercial terms apply to the weights",
        metadata={"help": "A sentence on the weights' licence."},
    )
    model_name: str | None = field(default=None, metadata={"help": "Card title (default: from repo_id)."})
    notice: str | None = field(
        default=None, metadata={"help": "A warning shown in bold under the card's title (e.g. for a demo model)."}
    )
    tag: str | None = field(default=None, metadata={"help": "Git tag for this release, e.g. 'v0.1.0'."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (created if missing)."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing directly."})
    public: bool = field(
        default=False,
        metadata={"help": "Create the repository public (default private: the training data's terms may apply)."},
    )
    commit_message: str | None = field(default=None, metadata={"help": "Commit message."})
    note: str | None = field(
        default=None,
        metadata={
            "help": "One or two sentences for the card's `microx_note` (the Space's model note); default: built "
            "from the notice, the source networks and the training data."
        },
    )
    real_faces: str | None = field(
        default=None,
        metadata={"help": "JSON written by bench/bench_real_faces.py: the real-face results the card reports."},
    )
    benchmark: str | None = field(
        default=None,
        metadata={
            "help": "JSON written by bench/bench_real_labelled.py with this checkpoint in it: the card reports the table, "
            "and a `residual` model whose UAR there is below its own prior's has its fusion gate closed before release."
        },
    )
    benchmark_name: str = field(default="default", metadata={"help": "This checkpoint's system name in --benchmark."})
    gate_check: str | None = field(
        default=None,
        metadata={"help": "gate_check.json of an earlier release of this checkpoint (the card reports its decision)."},
    )
    training_data: str | None = field(
        default=None,
        metadata={"help": "training/demo.py's demo_results.json: the training data's sources, licences and counts."},
    )
    shipped: bool = field(
        default=False,
        metadata={
            "help": "The card of the checkpoint that ships inside microx-hf (microx_hf/default_model/): its examples "
            "load that folder (`microx_hf.predict.DEFAULT_MODEL`), not a Hub id."
        },
    )

    def __post_init__(self) -> None:
        if self.checkpoint is None or self.repo_id is None:
            raise ArgumentsError("give --checkpoint (a trained model folder) and --repo_id (e.g. me/microx-baum1s)")
        if self.repo_id.count("/") != 1:
            raise ArgumentsError(f"--repo_id {self.repo_id!r}: use namespace/name, e.g. me/microx-baum1s")


def _load(folder: str | Path):
    model = MicroXForVideoClassification.from_pretrained(str(folder))
    feature_extractor = MicroXFeatureExtractor.from_pretrained(str(folder))
    return model.eval(), feature_extractor


def probe_inputs(config: Any, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed input for the reload check: random crops, the second sample missing its last region in some frames."""
    generator = torch.Generator().manual_seed(seed)
    r, t = len(config.regions), config.num_frames
    shape = (batch, r, t, config.num_channels, config.image_size, config.image_size)  # (B, R, T, C, H, W)
    pixel_values = torch.randn(shape, generator=generator)
    region_mask = torch.ones(batch, r, t, dtype=torch.bool)
    region_mask[-1, -1, : max(1, t // 2)] = False
    return {"pixel_values": pixel_values, "region_mask": region_mask}


@torch.no_grad()
def check_reload(model: torch.nn.Module, folder: str | Path) -> None:
    """Raise `RuntimeError` unless the model saved in ``folder`` gives exactly ``model``'s outputs."""
    reloaded, _ = _load(folder)
    inputs = probe_inputs(model.config)
    model.eval()
    expected, actual = model(**inputs), reloaded(**inputs)
    for key in ("logits", "region_logits", "region_weights"):
        if not torch.equal(expected[key], actual[key]):
            diff = (expected[key] - actual[key]).abs().max().item()
            raise RuntimeError(f"the saved model does not reproduce {key} after reloading (max difference {diff})")
    logger.info("reload check passed: identical logits, region logits and region weights")


def stage(args: ReleaseArguments, folder: Path) -> Path:
    """Write the release folder: model, feature extractor, card, results; verify the reload."""
    model, feature_extractor = _load(args.checkpoint)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"staging folder {folder} is not empty; give a new --output_dir")
    folder.mkdir(parents=True, exist_ok=True)
    if args.benchmark and getattr(model.microx, "fusion_gate", None) is not None:
        decision = gate_decision(read_json(args.benchmark), args.benchmark_name)
        trained = float(model.microx.fusion_gate.detach())
        check = {**decision, "trained_gate": trained, "trained_g": float(torch.sigmoid(torch.tensor(trained))),
                 "benchmark": Path(args.benchmark).name}  # fmt: skip
        (folder / "gate_check.json").write_text(json.dumps(check, indent=1) + "\n")
        args.gate_check = str(folder / "gate_check.json")
        if decision["close"]:
            # The region branches lost to the prior on real labelled faces: the release answers with the prior.
            # This chooses between two models already trained; it fits nothing on the benchmark's corpora.
            logger.warning(
                "closing the fusion gate: UAR %.4f < the prior's %.4f", decision["uar"], decision["prior_uar"]
            )
            with torch.no_grad():
                model.microx.fusion_gate.fill_(CLOSED_GATE)
    model.save_pretrained(folder)
    feature_extractor.save_pretrained(folder)
    check_reload(model, folder)
    export_onnx(model, folder / ONNX_DIR, source=str(args.checkpoint))  # raises when it disagrees with torch

    results_path = args.results or Path(args.checkpoint) / "results.json"
    results = read_json(results_path) if args.results or Path(results_path).is_file() else None
    folds = read_json(args.folds_results)
    paper = read_json(args.paper_results)
    if results is not None:
        shutil.copy(results_path, folder / "results.json")
        png = Path(results_path).parent / "confusion_matrix.png"
        if png.is_file():
            shutil.copy(png, folder / "confusion_matrix.png")
    if folds is not None:
        shutil.copy(args.folds_results, folder / "folds.json")
    if paper is not None:
        shutil.copy(args.paper_results, folder / "results_paper_protocol.json")
    card = build_card(
        args, model, feature_extractor, results, folds, paper, (folder / "confusion_matrix.png").is_file()
    )
    card.save(folder / "README.md")
    copy_notices(source_networks(model.config, results), folder)
    if args.real_faces:
        shutil.copy(args.real_faces, folder / "real_faces.json")
    if args.benchmark and Path(args.benchmark).resolve() != (folder / "real_labelled.json").resolve():
        shutil.copy(args.benchmark, folder / "real_labelled.json")
    logger.info("staged release in %s: %s", folder, sorted(p.name for p in folder.iterdir()))
    return folder


def copy_notices(networks: list[dict[str, str]], folder: Path) -> None:
    """Put the licence and NOTICE of every converted network the weights build on beside them (NOTICE.md lists
    them; the texts come from `training/teachers/weights/`)."""
    if not networks:
        return
    weights = Path(__file__).resolve().parent / "teachers" / "weights"
    lines = ["# Pretrained networks in or behind these weights", ""]
    for n in networks:
        lines += (
            [
                f"## {n['name']} ({n['role']})",
                "",
                f"- From: {n['source']}",
                f"- Licence: {n['licence']}",
                f"- Trained on: {n['training_data']}",
            ]
            + ([f"- Notes: {n['notes']}"] if n["notes"] else [])
            + [""]
        )
        for text in sorted(weights.glob(f"LICENSE.{n['name']}*")) + sorted(weights.glob(f"NOTICE.{n['name']}*")):
            shutil.copy(text, folder / text.name)
    npm = any(n["source"].startswith("npm") for n in networks)
    if npm and (weights / "LICENSE").is_file() and (weights / "NOTICE").is_file():
        # One MIT text and one NOTICE cover the npm networks (face-api, Human).
        shutil.copy(weights / "LICENSE", folder / "LICENSE.npm-networks")
        shutil.copy(weights / "NOTICE", folder / "NOTICE.npm-networks")
    (folder / "NOTICE.md").write_text("\n".join(lines))


def push(args: ReleaseArguments, folder: Path) -> dict[str, Any]:
    """Upload the staged folder as one commit (or pull request) and tag it."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_url = api.create_repo(args.repo_id, private=not args.public, exist_ok=True)
    if not args.public and not api.repo_info(args.repo_id).private:
        raise ArgumentsError(
            f"the model repo {args.repo_id} exists and is public; weights trained on licensed data may not be "
            "publishable: make the repo private first, or pass --public if the data's terms allow it"
        )
    if args.revision:
        api.create_branch(args.repo_id, branch=args.revision, exist_ok=True)
    commit = api.upload_folder(
        repo_id=args.repo_id,
        folder_path=str(folder),
        revision=args.revision,
        commit_message=args.commit_message or f"Release {args.tag or 'MicroX model'}",
        create_pr=args.create_pr,
    )
    info = {"repo_url": str(repo_url), "commit": commit.oid, "commit_url": commit.commit_url, "pr_url": commit.pr_url}
    if args.tag:
        if args.create_pr:
            logger.warning("not tagging %s: the release is a pull request; tag it after merging", args.tag)
        else:
            api.create_tag(args.repo_id, tag=args.tag, revision=commit.oid, tag_message=f"MicroX release {args.tag}")
            info["tag"] = args.tag
    logger.info("pushed %s", info)
    return info


def run(args: ReleaseArguments) -> dict[str, Any]:
    """Stage (and unless a dry run, push) a release; returns the staging folder and the push's commit."""
    folder = Path(args.output_dir) if args.output_dir else Path(tempfile.mkdtemp(prefix="microx-release-"))
    stage(args, folder)
    if args.dry_run:
        logger.info("dry run: nothing pushed; %s is exactly what would be pushed", folder)
        return {"folder": str(folder)}
    return {"folder": str(folder), **push(args, folder)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the staging folder and, unless a dry run, the push's commit."""
    return run(parse_arguments(ReleaseArguments, argv))


if __name__ == "__main__":
    run_script(main)
