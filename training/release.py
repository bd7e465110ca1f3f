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

import datetime
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from microx_hf.configuration_microx import CLOSED_GATE
from microx_hf.feature_extraction_microx import MicroXFeatureExtractor
from microx_hf.frame_encoder_hub import hub_reference, is_hub_encoder
from microx_hf.modeling_microx import MicroXForVideoClassification
from microx_hf.onnx_export import export_onnx
from microx_hf.runtime_onnx import ONNX_DIR
from training.scripts import ArgumentsError, parse_arguments, run_script

logger = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parents[1] / "model_card.md"
METRICS = (  # (results key, metric type, display name, metric args)
    ("accuracy", "accuracy", "Accuracy", None),
    ("uar", "recall", "UAR (unweighted average recall)", {"average": "macro"}),
    ("macro_f1", "f1", "Macro-F1", {"average": "macro"}),
)
PROTOCOL_NAMES = {
    "kfold": "subject-independent k-fold",
    "loso": "leave-one-subject-out",
    "paper": "paper protocol: random 80/20 over 10-frame windows (optimistic)",
    "given": "the dataset's own splits",
}


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


def _read_json(path: str | Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist; train and evaluate first (training/train.py)")
    return json.loads(path.read_text())


def _value(result: dict[str, Any], key: str) -> float:
    value = result[key]
    return float(value["mean"] if isinstance(value, dict) else value)


def eval_results(
    args: ReleaseArguments, results: dict | None, folds: dict | None, paper: dict | None
) -> list[EvalResult]:
    """The model-index entries: fold means first (the headline), then the checkpoint's test, then the paper protocol."""
    entries = []
    dataset_type = args.dataset_id or args.dataset_name.lower().replace(" ", "-")
    for source, split in ((folds, "test"), (results, "test"), (paper, "test")):
        if source is None:
            continue
        protocol = source.get("protocol") or "given"
        summary = PROTOCOL_NAMES.get(protocol, protocol)
        if source is folds:
            summary = f"{summary}, mean over {source['num_folds']} folds"
        for key, metric_type, name, metric_args in METRICS:
            entries.append(
                EvalResult(
                    task_type="video-classification",
                    task_name="Facial expression recognition",
                    dataset_type=dataset_type,
                    dataset_name=args.dataset_name,
                    dataset_split=split,
                    dataset_args={"protocol": protocol},
                    metric_type=metric_type,
                    metric_name=f"{name} ({summary})",
                    metric_value=round(_value(source, key), 4),
                    metric_args=metric_args,
                )
            )
    return entries


def _results_table(results: dict | None, folds: dict | None, paper: dict | None) -> str:
    rows = ["| Protocol | Clips | Accuracy | UAR | Macro-F1 |", "|---|---|---|---|---|"]
    if folds is not None:
        cells = [f"{folds[k]['mean']:.3f} ± {folds[k]['std']:.3f}" for k in ("accuracy", "uar", "macro_f1")]
        name = f"{PROTOCOL_NAMES.get(folds['protocol'], folds['protocol'])}, {folds['num_folds']} folds"
        rows.append(f"| {name} | {folds['pooled']['num_examples']} | " + " | ".join(cells) + " |")
    for source, label in ((results, "this checkpoint's test set"), (paper, None)):
        if source is None:
            continue
        protocol = PROTOCOL_NAMES.get(source.get("protocol") or "given", source.get("protocol"))
        name = label or protocol
        if label and source.get("protocol"):
            name = f"{label} ({protocol}{', ' + source['fold'] if source.get('fold') else ''})"
        count = source.get("num_clips", "")
        cells = [f"{source[k]:.3f}" for k in ("accuracy", "uar", "macro_f1")]
        rows.append(f"| {name} | {count} | " + " | ".join(cells) + " |")
    rows.append("| MicroX paper, BAUM-1, random window split (published) | not given | 0.552 | not given | not given |")
    return "\n".join(rows)


def _per_class_table(metrics: dict | None) -> str:
    if not metrics:
        return ""
    rows = ["| Class | Precision | Recall | F1 | Support |", "|---|---|---|---|---|"]
    for name, m in metrics["per_class"].items():
        rows.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return "\n".join(rows)


def _early_stopping_text(results: dict | None) -> str:
    patience = (results or {}).get("early_stopping_patience")
    if not patience:
        return "a fixed number of steps (no early stopping)"
    return (
        f"early stopping on the validation {(results or {}).get('metric_for_best_model', 'UAR')} "
        f"(patience {patience}; validation subjects held out of the training part)"
    )


def source_networks(config: Any, results: dict | None) -> list[dict[str, str]]:
    """The pretrained face networks a checkpoint builds on: its frame encoder (inside the weights) and the teachers
    it was distilled from, with where each came from, its licence and its training data."""
    from training.teachers import get_teacher

    roles: dict[str, list[str]] = {}
    if getattr(config, "frame_encoder", None):
        roles.setdefault(config.frame_encoder, []).append("frame encoder (its weights are inside this checkpoint)")
    for name in (results or {}).get("distill_teachers") or []:
        roles.setdefault(name, []).append("distillation teacher")
    out = []
    for name, role in roles.items():
        if is_hub_encoder(name):
            out.append(_hub_network(name, " and ".join(role)))
            continue
        spec = get_teacher(name)
        out.append(
            {
                "name": name,
                "role": " and ".join(role),
                "source": spec.source,
                "licence": spec.licence,
                "training_data": spec.training_data,
                "notes": spec.notes,
            }
        )
    return out


def _hub_network(name: str, role: str) -> dict[str, str]:
    """A Hugging Face checkpoint used as the frame encoder: its licence and training data are whatever its own card
    says (the checkpoint's config does not state them)."""
    repo, revision = hub_reference(name)
    url = f"https://huggingface.co/{repo}" + (f"/tree/{revision}" if revision else "")
    return {
        "name": name,
        "role": role,
        "source": f"[{repo}]({url}) (Hugging Face, read through AutoModelForImageClassification)",
        "licence": f"as stated on the model card of {repo} (check it before publishing)",
        "training_data": f"as stated on the model card of {repo}",
        "notes": "",
    }


def _default_note(args: ReleaseArguments, config: Any, results: dict | None) -> str:
    """The Space's one-line model note: what the model builds on, what it was trained on, and the notice."""
    parts = []
    networks = source_networks(config, results)
    encoder = next((n for n in networks if n["role"].startswith("frame encoder")), None)
    if encoder is not None and is_hub_encoder(encoder["name"]):
        repo = hub_reference(encoder["name"])[0]
        parts.append(f"Face branch on the Hugging Face checkpoint {repo} (licence and training data: its model card).")
    elif encoder is not None:
        parts.append(
            f"Face branch on {encoder['name']}'s network ({encoder['licence'].split(' (')[0]}; trained on "
            f"{encoder['training_data'].split(' (')[0]})."
        )
    teachers = [n["name"] for n in networks if "teacher" in n["role"]]
    if teachers:
        parts.append(f"Distilled from {', '.join(teachers)}.")
    description = args.dataset_description or args.dataset_name
    if description:
        parts.append(f"Trained on {description.split(':')[0].split(';')[0]}.")
    if args.notice:
        parts.append(args.notice.split(":")[0].rstrip(".") + ".")
    return " ".join(parts)


def _networks_table(networks: list[dict[str, str]]) -> str:
    if not networks:
        return ""
    rows = ["| network | role | from | licence | trained on |", "|---|---|---|---|---|"]
    for n in networks:
        rows.append(f"| `{n['name']}` | {n['role']} | {n['source']} | {n['licence']} | {n['training_data']} |")
    return "\n".join(rows)


def _real_faces_table(path: str | None) -> str:
    """The summary rows of `bench/bench_real_faces.py`'s JSON as a Markdown table."""
    if path is None:
        return ""
    data = _read_json(path)
    columns = [
        ("system", "system"),
        ("stills_right", "labelled real stills right"),
        ("video_clip_agreement", "videos: clip label = teacher ensemble"),
        ("video_window_agreement", "windows = ensemble"),
        ("ms_per_window", "ms / window"),
    ]
    rows = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in data["rows"]:
        cells = ["" if row.get(key) is None else str(row.get(key)) for key, _ in columns]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


BENCHMARK_SYSTEMS = ("faceapi", "fer", "human", "facex", "mean(faceapi+fer)", "old default")
BENCHMARK_TITLES = {"old default": "previous default (fer encoder, synthetic clips)", "facex": "facex (measured only)"}


def benchmark_rows(data: dict, name: str) -> list[tuple[str, dict]]:
    """(display name, results) of this checkpoint, its prior alone, its encoder off, the teachers and the old default,
    as far as `data` (bench_real_labelled.py's JSON) has them."""
    systems = data["systems"]
    wanted = [
        (name, "this checkpoint"),
        (f"{name}, prior only", "its prior alone (gate closed)"),
        (f"{name}, encoder off", "its region branches alone (face region hidden)"),
        *((system, BENCHMARK_TITLES.get(system, system)) for system in BENCHMARK_SYSTEMS),
    ]
    return [(title, systems[key]) for key, title in wanted if key in systems]


def gate_decision(data: dict, name: str) -> dict[str, Any]:
    """Whether the checkpoint does worse than its own prior on the benchmark (UAR over every item it ran), and the
    best single teacher's UAR."""
    systems = data["systems"]
    if name not in systems or f"{name}, prior only" not in systems:
        raise ValueError(f"the benchmark has no {name!r} and {name + ', prior only'!r} rows: run it with --model")
    full, prior = systems[name]["all"]["uar"], systems[f"{name}, prior only"]["all"]["uar"]
    teachers = {t: systems[t]["all"]["uar"] for t in ("faceapi", "fer", "human", "facex") if t in systems}
    best = max(teachers, key=teachers.get) if teachers else None
    return {
        "uar": full,
        "prior_uar": prior,
        "close": full < prior,
        "best_teacher": best,
        "best_teacher_uar": teachers.get(best),
        "items": systems[name]["all"]["n"],
    }


def _benchmark_table(data: dict | None, name: str) -> str:
    if data is None:
        return ""
    corpora = sorted(data["corpora"])
    head = ["system", *(f"{c} ({data['corpora'][c]['items']})" for c in corpora), "all: accuracy", "all: UAR"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for title, result in benchmark_rows(data, name):
        cells = [title]
        for corpus in corpora:
            score = result["corpora"].get(corpus)
            cells.append("-" if not isinstance(score, dict) else f"{score['accuracy']:.3f} / {score['uar']:.3f}")
        cells += [f"{result['all']['accuracy']:.3f}", f"{result['all']['uar']:.3f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _gate_text(model: Any, data: dict | None, name: str, check: dict | None = None) -> str:
    """What the card says of the fusion gate: its value and, with a benchmark, why."""
    gate = getattr(getattr(model, "microx", None), "fusion_gate", None)
    if gate is None:
        return ""
    g = float(torch.sigmoid(gate.detach()))
    if g == 0.0:
        state = (
            "**The fusion gate is closed (g = 0): this checkpoint answers with its calibrated prior alone.** The "
            "region branches and their ConvLSTMs, trained on unlabelled real face video and synthetic onsets, did "
            "worse than the prior on real labelled faces (`bench/bench_real_labelled.py`), so their correction is switched off; they still "
            "run, and the region weights a prediction reports say how the (inactive) correction would weigh the "
            "regions, not what decided the answer."
        )
    else:
        state = (
            f"The fusion gate is open at g = {g:.3f}: the region branches and their ConvLSTMs may move the prior's "
            f"log-probabilities by at most {g * model.config.correction_bound:.2f} nats per class."
        )
    if check is not None:
        verdict = "so the release closed it" if check["close"] else "so the release kept it"
        state += (
            f" Trained, the gate stood at g = {check['trained_g']:.3f} (a correction of at most "
            f"{check['trained_g'] * model.config.correction_bound:.2f} nats); with it the model scored UAR "
            f"{check['uar']:.4f} on the {check['items']} real labelled items, against {check['prior_uar']:.4f} "
            f"for its prior alone, {verdict}."
        )
    if data is None:
        return state
    decision = gate_decision(data, name)
    return (
        f"{state} As released, on the {decision['items']} real labelled items: UAR {decision['uar']:.4f}, its prior "
        f"alone {decision['prior_uar']:.4f}, the best single teacher ({decision['best_teacher']}) "
        f"{decision['best_teacher_uar']:.4f}."
    )


def _training_data_table(data: dict | None) -> str:
    if not data or "real_video" not in data:
        return ""
    rows = ["| source | licence (credit) | clips | people | minutes |", "|---|---|---|---|---|"]
    for source in data["real_video"]:
        rows.append(
            f"| {source['name']}: {source['origin']} | {source['licence']} ({source['credit']}) | {source['clips']} | "
            f"{source['people']} | {source['minutes']:.2f} |"
        )
    return "\n".join(rows)


def _data_counts_table(data: dict | None) -> str:
    if not data or "data" not in data:
        return ""
    names = {"real": "real video (unlabelled)", "warp": "synthetic onsets on real people", "photo": "synthetic onsets "
             "on two public-domain photos"}  # fmt: skip
    rows = ["| split | clips | people / identities | minutes |", "|---|---|---|---|"]
    for split, kinds in data["data"].items():
        for kind, c in kinds.items():
            rows.append(f"| {split}: {names.get(kind, kind)} | {c['clips']} | {c['people']} | {c['minutes']:.2f} |")
    return "\n".join(rows)


def build_card(
    args: ReleaseArguments,
    model: Any,
    feature_extractor: Any,
    results: dict | None,
    folds: dict | None,
    paper: dict | None,
    has_confusion_png: bool,
    date: str | None = None,
) -> ModelCard:
    """The filled model card (`date`: of the release, default today)."""
    config = model.config
    benchmark = _read_json(args.benchmark)
    training_data = _read_json(args.training_data)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    if args.dataset_name is None:
        dataset = (results or {}).get("dataset") or ((folds or {}).get("dataset"))
        args.dataset_name = Path(dataset).name if dataset else "the training data"
    model_name = args.model_name or f"MicroX ({args.repo_id.split('/')[-1]})"
    card_data = ModelCardData(
        license=args.license,
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=["microx", "emotion-recognition", "facial-expression-recognition", "convlstm", "video-classification"],
        datasets=[args.dataset_id] if args.dataset_id else None,
        metrics=["accuracy", "recall", "f1"],
        model_name=model_name,
        eval_results=eval_results(args, results, folds, paper) or None,
        microx_note=args.note or _default_note(args, config, results),
    )
    if folds is not None:
        evaluation_summary = (
            f"Headline: {PROTOCOL_NAMES.get(folds['protocol'], folds['protocol'])} on {args.dataset_name}, "
            f"mean ± standard deviation over {folds['num_folds']} folds, clip-level (mean of window probabilities)."
        )
    elif results is not None:
        evaluation_summary = f"Clip-level results on the test set of {args.dataset_name}."
    else:
        evaluation_summary = "No evaluation results were supplied for this release."
    if training_data and "real_video" in training_data:
        evaluation_summary += (
            " That test set is two synthetic photo identities held out of training: the synthetic clips' labels are "
            "motion prototypes that real-face networks, this checkpoint's prior among them, read at chance. The real "
            "labelled faces (above, where measured) and the agreement with the teachers on real people held out of "
            "training (below) are the measures that count."
        )
    if results is not None and not results.get("subject_independent", True):
        evaluation_summary += " The test set shares subjects with the training set: the numbers are optimistic."
    per_class_source = "pooled over folds" if folds is not None else "this checkpoint's test set"
    per_class = folds["pooled"] if folds is not None else (results or {}).get("metrics")
    protocol = (results or folds or {}).get("protocol") or "given"
    description = args.dataset_description or (
        f"{args.dataset_name}, {results.get('num_train_clips', '?')} training clips" if results else args.dataset_name
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        notice=args.notice,
        repo_id=args.repo_id,
        tag=args.tag,
        shipped=args.shipped,
        # How the card's examples name the model: the package's own folder, or the Hub repo (at the release's tag).
        model_ref="str(DEFAULT_MODEL)" if args.shipped else f'"{args.repo_id}"',
        revision="" if args.shipped or not args.tag else f', revision="{args.tag}"',
        regions=list(config.regions),
        preset=(results or {}).get("preset", "custom"),
        num_parameters=f"{sum(p.numel() for p in model.parameters()):,}",
        labels=labels,
        fps=getattr(feature_extractor, "fps", "?"),
        num_frames=config.num_frames,
        window_stride=getattr(feature_extractor, "window_stride", "?"),
        crop_size=config.image_size,
        landmark_backend=getattr(feature_extractor, "landmark_backend_used", None)
        or getattr(feature_extractor, "landmark_backend", "?"),
        window_seconds=f"{config.num_frames / float(getattr(feature_extractor, 'fps', 30.0)):.2f}",
        early_stopping=_early_stopping_text(results),
        evaluation_summary=evaluation_summary,
        results_table=_results_table(results, folds, paper),
        per_class_table=_per_class_table(per_class),
        per_class_source=per_class_source,
        has_confusion_png=has_confusion_png,
        dataset_description=description,
        dataset_short=args.dataset_name,
        protocol_description=PROTOCOL_NAMES.get(protocol, protocol),
        class_balance=((results or {}).get("class_balance") or "class weighting").replace("_", " "),
        license=args.license,
        license_note=args.license_note,
        networks_table=_networks_table(source_networks(config, results)),
        real_faces_table=_real_faces_table(args.real_faces),
        benchmark_table=_benchmark_table(benchmark, args.benchmark_name),
        gate_text=_gate_text(model, benchmark, args.benchmark_name, _read_json(args.gate_check)),
        training_data_table=_training_data_table(training_data),
        data_counts_table=_data_counts_table(training_data),
        training_data=training_data or {},
        release_name=args.tag or args.revision or "main",
        date=date or datetime.date.today().isoformat(),
    )


def stage(args: ReleaseArguments, folder: Path) -> Path:
    """Write the release folder: model, feature extractor, card, results; verify the reload."""
    model, feature_extractor = _load(args.checkpoint)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"staging folder {folder} is not empty; give a new --output_dir")
    folder.mkdir(parents=True, exist_ok=True)
    if args.benchmark and getattr(model.microx, "fusion_gate", None) is not None:
        decision = gate_decision(_read_json(args.benchmark), args.benchmark_name)
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
    results = _read_json(results_path) if args.results or Path(results_path).is_file() else None
    folds = _read_json(args.folds_results)
    paper = _read_json(args.paper_results)
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
