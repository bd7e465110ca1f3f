"""The dataset card of a processed-clip dataset: sources, label scheme, counts, preprocessing settings, licence.

`dataset_card_text(...)` writes the Markdown body; `push_dataset_card(repo_id, ...)` keeps the YAML block that
`DatasetDict.push_to_hub` wrote (features, splits, configs: `load_dataset` needs them) and replaces the body.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from datasets import DatasetDict

LICENCE_REMINDER = (
    "The source videos are **not** redistributed here, and neither is anything from which they could be rebuilt "
    "beyond the face-region crops listed above. The crops are derived from licensed corpora: use this dataset "
    "only under the licence terms of each source corpus (BAUM-1 and BAUM-2 are released for research use on "
    "request; RAVDESS is CC BY-NC-SA 4.0), and do not make it public unless those terms allow it. The landmark "
    "model used to find the regions (dlib's 68-point model, trained on iBUG 300-W) is licensed for "
    "non-commercial use."
)


def _table(counter: Counter, key_name: str) -> str:
    lines = [f"| {key_name} | clips |", "|---|---:|"]
    lines += [f"| {key} | {count} |" for key, count in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return "\n".join(lines)


def dataset_counts(dataset: DatasetDict) -> dict[str, dict[str, Counter]]:
    """Per split: clips per label name and per subject."""
    counts = {}
    for split, ds in dataset.items():
        names = ds.features["label"].names
        counts[split] = {
            "label": Counter(names[i] if i >= 0 else "(unlabelled)" for i in ds["label"]),
            "subject": Counter(ds["subject"]),
        }
    return counts


def dataset_card_text(dataset: DatasetDict, description: dict[str, Any], pretty_name: str = "MicroX clips") -> str:
    """The Markdown body of the card.

    Args:
        dataset: The prepared dataset (its label and subject columns are counted).
        description: The JSON written into `info.description` by `training.prepare_dataset`.
        pretty_name: The card's title.
    """
    counts = dataset_counts(dataset)
    scheme = description.get("label_scheme", {})
    sources = description.get("sources", [])
    parts = [
        f"# {pretty_name}",
        "Processed face-region clips for MicroX emotion recognition (a ConvLSTM per facial region): one row per video clip, "
        "with uint8 crops of every frame for each facial region (columns named after the regions), a per-frame "
        "region mask, timestamps, the label, the subject and the source file. Windows of "
        f"{description.get('feature_extractor', {}).get('num_frames', 10)} frames are sampled from clips at "
        "training time (`training/data.py`), so no window of a clip can leak across splits.",
        "## Sources",
        "\n".join(
            f"- **{s.get('corpus')}**: {s.get('clips')} clips used; skipped {s.get('skipped') or 'nothing'}"
            for s in sources
        )
        or "- (not recorded)",
        "## Label scheme",
        f"Scheme `{scheme.get('name')}`; classes (id order): {', '.join(scheme.get('names', []))}.",
        "Mapping from source labels: "
        + (", ".join(f"{k} -> {v}" for k, v in sorted(scheme.get("mapping", {}).items())) or "(identity)")
        + ". Source labels not in the mapping were dropped: "
        + (json.dumps(description.get("dropped_labels", {})) if description.get("dropped_labels") else "none")
        + ".",
        "## Counts",
    ]
    for split, split_counts in counts.items():
        parts += [
            f"### Split `{split}`: {dataset[split].num_rows} clips, {len(split_counts['subject'])} subjects",
            _table(split_counts["label"], "label"),
            _table(split_counts["subject"], "subject"),
        ]
    parts += [
        "## Preprocessing",
        "Feature-extractor settings (also in `info.description` and `microx_dataset.json`; training restores the "
        "normalisation from them):",
        "```json\n" + json.dumps(description.get("feature_extractor", {}), indent=2, sort_keys=True) + "\n```",
        f"Clips that failed preprocessing and were left out: {description.get('failed', 0)}.",
        "## Licence",
        LICENCE_REMINDER,
    ]
    return "\n\n".join(parts) + "\n"


def push_dataset_card(repo_id: str, text: str, token: str | None = None) -> None:
    """Replace the body of the repo's README (keeping the YAML block `push_to_hub` wrote) with `text`."""
    from huggingface_hub import DatasetCard, DatasetCardData

    try:
        card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
    except Exception:  # no README yet: start from empty metadata
        card = DatasetCard(f"---\n{DatasetCardData().to_yaml()}\n---\n")
    card.data.license = card.data.get("license") or "other"
    tags = list(card.data.get("tags") or [])
    card.data.tags = tags + [t for t in ("microx", "emotion-recognition", "video") if t not in tags]
    card.text = text
    card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="Add the MicroX dataset card")
