"""Shared chart conventions: one style, event markers, and the SYNTHETIC label."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = {"observed": "#1b1b1b", "fitted": "#0b6e99", "counterfactual": "#d1495b",
           "comparator": "#7a7a7a", "event": "#5c4d7d"}


def setup_style() -> None:
    """Readable defaults for report charts (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.05)
    plt.rcParams.update({"figure.figsize": (8, 4.5), "figure.dpi": 100, "savefig.dpi": 100,
                         "axes.titleweight": "bold", "axes.spines.top": False,
                         "axes.spines.right": False})


def mark_events(ax, events: dict[str, float], *, label_y: float = 0.98) -> None:
    """Vertical dashed lines at each event's first in-force time, labelled at the top."""
    for name, when in events.items():
        ax.axvline(when, color=PALETTE["event"], linestyle="--", linewidth=1)
        ax.text(when, label_y, f" {name}", transform=ax.get_xaxis_transform(), rotation=90,
                va="top", ha="left", fontsize=8, color=PALETTE["event"])


def mark_synthetic(target) -> None:
    """Stamp SYNTHETIC across a chart built from synthetic data (Axes or Figure)."""
    fig = target if hasattr(target, "add_axes") and not hasattr(target, "plot") else target.figure
    fig.text(0.5, 0.5, "SYNTHETIC", fontsize=48, color="#d1495b", alpha=0.18,
             ha="center", va="center", rotation=20, weight="bold")
