"""The model card of a release (`training/release.py`): `model_card.md` filled with the checkpoint's results, the
networks it builds on, the real labelled benchmark and the gate decision, the training data and its sources."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from microx_hf.frame_encoder_hub import hub_reference, is_hub_encoder

if TYPE_CHECKING:
    from training.release import ReleaseArguments

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


def read_json(path: str | Path | None) -> dict[str, Any] | None:
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
    data = read_json(path)
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
    benchmark = read_json(args.benchmark)
    training_data = read_json(args.training_data)
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
        gate_text=_gate_text(model, benchmark, args.benchmark_name, read_json(args.gate_check)),
        training_data_table=_training_data_table(training_data),
        data_counts_table=_data_counts_table(training_data),
        training_data=training_data or {},
        release_name=args.tag or args.revision or "main",
        date=date or datetime.date.today().isoformat(),
    )
