"""What a checkpoint's model card says the model is built on and trained on, in a sentence or two.

The Space shows it above the app and `space/deploy.py` writes it into the Space's README, so that both say what the
card says (the card is written by `training/release.py` from the checkpoint's own files) rather than a text that goes
stale when the model is retrained.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

# The key of the model card's YAML header that holds the note (`training/release.py` writes it).
CARD_NOTE_KEY = "microx_note"


def training_summary(name_or_path: str | Path) -> str | None:
    """What the model card of a local model folder (its `README.md`), or of a Hub repo when the Hub can be reached,
    says about the model and its training data; None without a card.

    The card's `microx_note` metadata (one or two sentences the release script writes) when it has one. Cards
    without it: the card's notice (its first blockquote, where the release script puts "a demonstration, not a
    validated emotion recogniser") and its training-data line ("- Data: ..."); failing both, the first paragraph that
    says what the model was trained on, or the `datasets` of its metadata.
    """
    from huggingface_hub import ModelCard

    path = Path(name_or_path) / "README.md"
    try:
        card = ModelCard.load(path) if path.is_file() else ModelCard.load(str(name_or_path))
    except Exception as error:  # offline, no card, a malformed header: the note is optional
        logger.info("no model card for %s (%s)", name_or_path, error)
        return None
    note = card.data.to_dict().get(CARD_NOTE_KEY)
    if isinstance(note, str) and note.strip():
        return sentence(" ".join(note.split()))
    lines = [line.strip() for line in card.text.splitlines()]
    notice = next((line.lstrip("> ").replace("**", "") for line in lines if line.startswith(">")), None)
    data = next((line.removeprefix("- Data:").strip() for line in lines if line.startswith("- Data:")), None)
    parts = [sentence(notice) if notice else None, sentence(f"Training data: {data}") if data else None]
    if any(parts):
        return " ".join(part for part in parts if part)
    for paragraph in card.text.split("\n\n"):
        text = " ".join(paragraph.split())
        if not text.startswith("#") and re.search(r"\btrained\b(\s+\w+)?\s+on\b", text, re.IGNORECASE):
            return sentence(text)
    datasets = card.data.to_dict().get("datasets")
    return f"Trained on {', '.join(datasets)}." if datasets else None


def sentence(text: str) -> str:
    """`text` ending with a full stop (or its own ! or ?)."""
    return text if text.endswith((".", "!", "?")) else text + "."
