"""The course of a clip's emotions over time as a chart: the likeliest emotions of a `Prediction`, one line each in a
colour fixed per emotion (the Space draws it; needs matplotlib and pandas, the `space` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .predict import Prediction

# The timeline draws the clip's likeliest emotions only: the others sit near zero, where no colour tells them apart
# (every emotion's numbers are in the API's `result`).
TIMELINE_TOP = 3
# One colour per emotion, the same on every page: seven distinct hues, each at least 3:1 against white (WCAG's contrast
# for graphics: no pale yellow, tab10's orange darkened) and far from each other (grey and brown, which look alike as
# thin lines, are not both used); other labels take the spare ones.
EMOTION_COLOURS = {
    "happy": "#e06c00",
    "sad": "#1f77b4",
    "anger": "#d62728",
    "surprise": "#9467bd",
    "fear": "#c51b7d",
    "contempt": "#2ca02c",
    "neutral": "#555555",
}
SPARE_COLOURS = ["#008c99", "#8c564b", "#393b79", "#637939", "#843c39"]


def timeline_frame(prediction: Prediction) -> pd.DataFrame:
    """Long-format table of each emotion's probability at the centre of each window with a face (the numbers the
    timeline chart draws; the API's `result` has them per window too).

    A clip with a single scored window gets its probabilities at the window's start and end instead: a line drawn
    from one point shows nothing, and a flat segment over the window's time says what the number covers.
    """
    import pandas as pd

    has_face = prediction.window_has_face  # windows without a face have NaN rows: leave them out
    span = prediction.num_frames / prediction.clip.fps  # a window's time
    centers = prediction.window_starts[has_face] + span / 2
    probs = prediction.window_probs[has_face]  # (W, L)
    if len(centers) == 1:
        centers = np.array([centers[0] - span / 2, centers[0] + span / 2])
        probs = np.repeat(probs, 2, axis=0)  # (1, L) -> (2, L)
    return pd.DataFrame(
        {
            "time (s)": np.repeat(centers, len(prediction.labels)).round(3),
            "probability": probs.reshape(-1).round(4),
            "emotion": np.tile(prediction.labels, len(centers)),
        }
    )


def emotion_colour(label: str, labels: list[str]) -> str:
    """The fixed colour of an emotion (`EMOTION_COLOURS`; other labels take `SPARE_COLOURS` in label order)."""
    if label in EMOTION_COLOURS:
        return EMOTION_COLOURS[label]
    others = [name for name in labels if name not in EMOTION_COLOURS]
    return SPARE_COLOURS[others.index(label) % len(SPARE_COLOURS)]


def timeline_figure(prediction: Prediction):
    """The timeline chart: the clip's `TIMELINE_TOP` likeliest emotions, one line each in its fixed colour, named in
    the legend with its share of the whole clip ("happy 61%"), on a time axis from 0 to the last point.

    Drawn here (matplotlib's object API, no pyplot: safe on the analysis threads) rather than by `gr.LinePlot`, whose
    page in gradio 6.31 redraws a new clip's lines with the previous clip's legend and colours when the axis changes.
    """
    from matplotlib.figure import Figure

    table = timeline_frame(prediction)
    top = sorted(prediction.labels, key=lambda label: -prediction.scores[label])[:TIMELINE_TOP]
    figure = Figure(figsize=(12.4, 3.0), dpi=100, layout="constrained")  # about the width of the page
    axes = figure.add_subplot()
    for label in top:
        rows = table[table["emotion"] == label]
        axes.plot(rows["time (s)"], rows["probability"], color=emotion_colour(label, prediction.labels), linewidth=2.4,
                  marker="o" if len(rows) <= 12 else None, markersize=4, clip_on=False,  # the last point whole
                  label=f"{label} {prediction.scores[label]:.0%}")  # fmt: skip
    end = float(table["time (s)"].max())
    axes.set_xlim(0.0, end if end > 0 else None)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("probability")
    axes.set_title(f"How the clip's {len(top)} likeliest emotions move over time (legend: over the whole clip)",
                   fontsize=11)  # fmt: skip
    axes.grid(color="#e5e5e5", linewidth=0.8)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=11)
    return figure
