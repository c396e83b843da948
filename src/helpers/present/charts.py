"""Shared chart conventions: one style, one palette, event markers, alt text and the SYNTHETIC
label."""

from __future__ import annotations

import html
import re
import sys
import textwrap

import matplotlib
import pandas as pd

if "ipykernel" in sys.modules:
    # In Jupyter/papermill/nbval kernels show charts inline even when MPLBACKEND=Agg is exported
    # (the Makefile does, for headless runs); forcing Agg here would silently drop every figure.
    matplotlib.use("module://matplotlib_inline.backend_inline")
else:
    matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from matplotlib.figure import Figure  # noqa: E402

from helpers.present.tables import kernel_shell, register_dataframe_formatter  # noqa: E402
from helpers.spec import interventions  # noqa: E402

#: Okabe-Ito colours (safe for the common colour-vision deficiencies), dark enough for text on
#: white: observed black, model blue, counterfactual vermilion, comparators grey, events purple.
PALETTE = {"observed": "#000000", "fitted": "#0072B2", "counterfactual": "#C84B00",
           "comparator": "#5F5F5F", "event": "#6A3D9A", "target": "#C84B00",
           "accent": "#009E73"}
#: Base font size (points) for report charts: about 11 px on a 390 px phone screen, where a
#: 6.4-inch figure is shown about 350 px wide.
BASE_FONT = 14
#: Event labels are wrapped at this many characters.
LABEL_WIDTH = 34


def setup_style() -> None:
    """Readable defaults for report charts (call once per notebook): large type for phones,
    no top or right frame, colour-blind-safe colours."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.0)
    # Titles come from users' YAML: "$...$" in an event title must print, not parse as maths.
    plt.rcParams["text.parse_math"] = False
    plt.rcParams.update({"figure.figsize": (6.4, 4.4), "figure.dpi": 100, "savefig.dpi": 100,
                         "font.size": BASE_FONT, "axes.titlesize": BASE_FONT + 1,
                         "axes.labelsize": BASE_FONT, "xtick.labelsize": BASE_FONT - 1,
                         "ytick.labelsize": BASE_FONT - 1, "legend.fontsize": BASE_FONT - 2,
                         "axes.titleweight": "bold", "axes.spines.top": False,
                         "axes.spines.right": False, "axes.titlelocation": "left",
                         # Titles sit just above the plot (our charts put nothing there): a
                         # fixed place spares matplotlib measuring every tick label again on
                         # each draw to find one, a fifth of a chart's drawing time. And no
                         # axis offset ("+1.2e4"), which readers cannot read and a title at the
                         # top left could cover.
                         "axes.titley": 1.0, "axes.formatter.useoffset": False})


def human_name(name: str) -> str:
    """A code id as words for a chart ('strategies_2020' -> 'Strategies 2020'); titles pass
    through."""
    text = str(name)
    if " " not in text and "_" in text:
        text = text.replace("_", " ")
        text = text[:1].upper() + text[1:]
    return text


def wrap(text: str, width: int = LABEL_WIDTH) -> str:
    return textwrap.fill(str(text), width=width, break_long_words=False)


def mark_events(ax, events: dict[str, float], *, titles: dict | None = None,
                label_y: float = 1.0) -> None:
    """Vertical dashed lines at each event, numbered just above the plot area (numbers never
    collide the way rotated titles did), with the event's name in the legend as "1: title".
    `titles` maps code names to titles; code names are turned into words otherwise."""
    titles = titles or {}
    for i, (name, when) in enumerate(sorted(events.items(), key=lambda kv: kv[1]), start=1):
        label = titles.get(name) or human_name(name)
        ax.axvline(when, color=PALETTE["event"], linestyle="--", linewidth=1.2,
                   label=wrap(f"{i}: {label}"))
        ax.text(when, label_y, str(i), transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=BASE_FONT - 3, color="white", fontweight="bold",
                clip_on=False,
                bbox={"boxstyle": "circle,pad=0.25", "facecolor": PALETTE["event"],
                      "edgecolor": "none"})


def legend_below(ax, ncol: int = 1, **kwargs):
    """The legend under the plot, where it cannot cover the data or the event labels."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.0, -0.16),
                     ncol=ncol, frameon=False, borderaxespad=0.0, **kwargs)


def event_marks(events, frequency="annual") -> dict:
    """{title: position} for plotting.mark_events: half a period before the first full period."""
    spec = interventions(events, frequency)
    return {spec["titles"][k]: v - 0.5 for k, v in spec["interventions"].items()}


def set_alt_text(fig, text: str) -> None:
    """The chart's message for screen readers (used instead of the generated description)."""
    fig._care_trends_alt = " ".join(str(text).split())


class DataLink:
    """A link to the CSV of the numbers behind a chart (shown under the chart)."""

    def __init__(self, href: str | None, text: str):
        self.href, self.text = href, text

    def _repr_html_(self) -> str:
        if not self.href:
            return ""
        return (f'<p class="chart-data"><a href="{html.escape(self.href)}" download>'
                f'{html.escape(self.text)}</a> (CSV)</p>')

    def __repr__(self) -> str:
        return f"{self.text}: {self.href}" if self.href else ""


#: The words of the link under a chart to its numbers.
DATA_LINK_TEXT = "The numbers behind this chart"


def data_link(table: pd.DataFrame, filename: str, *, write: bool,
              text: str = DATA_LINK_TEXT) -> DataLink:
    """Write the numbers behind a chart to `filename` (CSV, beside the page) and return a link to
    it; with `write=False` (a notebook run outside the runner) nothing is written or linked.
    Episode-data counts must already be small-count safe (`helpers.ssda903.chart_counts`)."""
    if not write:
        return DataLink(None, text)
    safe, content = chart_csv(table, filename)
    with open(safe, "wb") as handle:
        handle.write(content)
    return DataLink(safe, text)


def chart_csv(table: pd.DataFrame, filename: str) -> tuple[str, bytes]:
    """The file name (made safe) and CSV bytes `data_link` publishes for a chart's numbers."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", filename)
    return safe, table.to_csv(index=False).encode("utf-8")


# --------------------------------------------------------------------------------------------
# Single-series ITS
# --------------------------------------------------------------------------------------------

def mark_synthetic(target) -> None:
    """Stamp SYNTHETIC across a chart built from synthetic data (Axes or Figure)."""
    fig = target if hasattr(target, "add_axes") and not hasattr(target, "plot") else target.figure
    fig.text(0.5, 0.5, "SYNTHETIC", fontsize=48, color="#d1495b", alpha=0.18,
             ha="center", va="center", rotation=20, weight="bold")


def figure_alt_text(fig) -> str:
    """A text description of a chart for screen readers: the message set by `set_alt_text`, else
    titles, axis labels and legend entries."""
    explicit = getattr(fig, "_care_trends_alt", None)
    if explicit:
        synthetic = any("SYNTHETIC" in t.get_text() for t in fig.texts)
        return explicit + (" (SYNTHETIC data)" if synthetic and "SYNTHETIC" not in explicit
                           else "")
    parts = []
    if getattr(fig, "_suptitle", None) is not None and fig._suptitle.get_text():
        parts.append(fig._suptitle.get_text())
    for ax in fig.axes:
        # Titles sit on the left in the report style (axes.titlelocation).
        title = " ".join(ax.get_title(loc=loc) for loc in ("left", "center", "right")
                         if ax.get_title(loc=loc))
        bits = [" ".join(title.split()) or "Chart"]
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
    shell = kernel_shell()
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
    register_dataframe_formatter()  # every DataFrame a report shows is a readable table
