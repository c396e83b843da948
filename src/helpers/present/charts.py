"""Shared chart conventions: one style, one palette, event markers, alt text and the SYNTHETIC
label."""

from __future__ import annotations

import sys

import matplotlib

if "ipykernel" in sys.modules:
    # In Jupyter/papermill/nbval kernels show charts inline even when MPLBACKEND=Agg is exported
    # (the Makefile does, for headless runs); forcing Agg here would silently drop every figure.
    matplotlib.use("module://matplotlib_inline.backend_inline")
else:
    matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from helpers.spec import interventions  # noqa: E402

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


def event_marks(events, frequency="annual") -> dict:
    """{title: position} for plotting.mark_events: half a period before the first full period."""
    spec = interventions(events, frequency)
    return {spec["titles"][k]: v - 0.5 for k, v in spec["interventions"].items()}


# --------------------------------------------------------------------------------------------
# Single-series ITS
# --------------------------------------------------------------------------------------------

def mark_synthetic(target) -> None:
    """Stamp SYNTHETIC across a chart built from synthetic data (Axes or Figure)."""
    fig = target if hasattr(target, "add_axes") and not hasattr(target, "plot") else target.figure
    fig.text(0.5, 0.5, "SYNTHETIC", fontsize=48, color="#d1495b", alpha=0.18,
             ha="center", va="center", rotation=20, weight="bold")


def figure_alt_text(fig) -> str:
    """A text description of a chart for screen readers: titles, axis labels and legend entries."""
    parts = []
    if getattr(fig, "_suptitle", None) is not None and fig._suptitle.get_text():
        parts.append(fig._suptitle.get_text())
    for ax in fig.axes:
        bits = [ax.get_title() or "Chart"]
        if ax.get_xlabel() or ax.get_ylabel():
            bits.append(f"{ax.get_ylabel() or 'value'} against {ax.get_xlabel() or 'x'}")
        legend = ax.get_legend()
        if legend is not None:
            labels = [t.get_text() for t in legend.get_texts() if t.get_text()]
            if labels:
                bits.append("showing " + ", ".join(labels))
        parts.append("; ".join(bits))
    text = ". ".join(p for p in parts if p) or "Chart"
    if any("SYNTHETIC" in t.get_text() for t in fig.texts):
        text += " (SYNTHETIC data)"
    return text


def _register_alt_text() -> None:
    """Inside a kernel, attach alt text to every inline PNG so the HTML reports can show it."""
    try:
        from IPython import get_ipython
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - plain Python without IPython
        return
    shell = get_ipython()
    if shell is None:
        return
    # As `%matplotlib inline`: registers the PNG printer and shows figures at the end of a cell,
    # also when pyplot was imported earlier under MPLBACKEND=Agg.
    shell.enable_matplotlib("inline")
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        base = formatter.lookup_by_type(Figure)
    except KeyError:
        return
    if getattr(base, "_adds_alt_text", False):
        return

    def png_with_alt(fig):
        data = base(fig)
        if isinstance(data, tuple):  # (data, metadata) already
            data, meta = data
        else:
            meta = {}
        return data, {**meta, "alt": figure_alt_text(fig)}

    png_with_alt._adds_alt_text = True
    formatter.for_type(Figure, png_with_alt)


if "ipykernel" in sys.modules:
    _register_alt_text()
