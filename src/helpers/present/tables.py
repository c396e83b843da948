"""Tables a reader sees: a DataFrame as a real HTML table with a caption, and Markdown lists.
Every string is escaped.

What a reader never sees: the DataFrame index, code names (`ci_low`, `p_value`,
`inadequate_2019`), `None` or `NaN` (a dash instead), unformatted numbers, or "p = 0.000"
(shown as "< 0.001"). Wide tables scroll inside their own keyboard-focusable region, so the page
itself never scrolls sideways on a phone. Inside a notebook kernel every DataFrame a notebook
displays is shown the same way (`register_dataframe_formatter`)."""

from __future__ import annotations

import html
import math
import re
import sys

import numpy as np
import pandas as pd

#: Code names of columns and their words.
COLUMN_LABELS = {
    "ci_low": "95% CI low", "ci_high": "95% CI high", "p_value": "p-value", "p": "p-value",
    "n_sim": "simulations", "n_placebo": "placebo dates", "rank_p": "placebo p-value",
    "mde_percent": "smallest detectable change (%)", "n_post": "periods after",
    "months_after": "months after", "false_positive_rate": "false-positive rate",
    "coverage_95": "95% interval coverage", "la_name": "local authority", "la_code": "LA code",
    "rate_per_10000": "rate per 10,000 children", "estimate": "estimate", "scale": "scale",
    "intervention": "event", "effect": "effect", "year": "year",
}
#: Column names whose values are p-values.
_P_COLUMN = re.compile(r"(^|[ _-])p([ _-]?value)?$|^p$|p-value", re.IGNORECASE)
#: A code identifier such as `inadequate_2019` or `level_mde_annual_1`.
_CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")
DASH = "&ndash;"


def human_label(name) -> str:
    """A column name as words: known code names from COLUMN_LABELS, else underscores as spaces."""
    text = str(name)
    if text in COLUMN_LABELS:
        return COLUMN_LABELS[text]
    if _CODE.match(text) or "_" in text:
        words = text.replace("_", " ")
        words = re.sub(r"\bpercent\b", "(%)", words)
        return words[:1].upper() + words[1:]
    return text


#: A code identifier inside a longer text (not part of a file name or path).
_CODE_TOKEN = re.compile(r"(?<![\w./-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w./-])")


def human_value(text: str) -> str:
    """Code identifiers in a cell as words ('strategies_2020' -> 'Strategies 2020';
    'computed_interpolated_population 2011' -> 'computed interpolated population 2011');
    file names are left as they are."""
    if _CODE.match(text):
        words = text.replace("_", " ")
        return words[:1].upper() + words[1:]
    return _CODE_TOKEN.sub(lambda m: m.group(1).replace("_", " "), text)


def format_p(value) -> str:
    """p-values: '< 0.001' rather than '0.000'; three decimals otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, str):
        text = value.strip()
        if text in ("0.000", "0.0000", "0", "0.0"):
            return "&lt; 0.001"
        return html.escape(text) if text not in ("None", "nan", "NaN", "") else DASH
    value = float(value)
    return "&lt; 0.001" if value < 0.001 else f"{value:.3f}"


def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(float(value))
    if isinstance(value, str):
        return value.strip() in ("", "None", "nan", "NaN", "<NA>")
    return False


class Table:
    """A DataFrame shown as a real HTML table with a caption and column headers (scope=col),
    without the index; numbers formatted by the caller (strings pass through)."""

    def __init__(self, df: pd.DataFrame, caption: str, note: str | None = None,
                 digits: int = 3):
        self.df = df.reset_index(drop=True)
        self.caption = caption
        self.note = note
        self.digits = digits

    def _cell(self, value, p_column: bool = False) -> str:
        if p_column:
            return format_p(None if _missing(value) else value)
        if _missing(value):
            return DASH
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (float, np.floating)):
            # Callers round; whole numbers (counts stored as float) print without decimals.
            value = float(value)
            if value.is_integer():
                return f"{value:,.0f}" if not 1900 < value < 2100 else f"{value:.0f}"
            return f"{round(value, self.digits):,}"
        if isinstance(value, (int, np.integer)):
            return f"{value}" if 1900 < value < 2100 else f"{value:,}"
        return html.escape(human_value(str(value)))

    def _repr_html_(self) -> str:
        text_class = ' class="text"'  # left-aligned text columns; numbers align right
        kinds = ["" if pd.api.types.is_numeric_dtype(self.df[c]) else text_class
                 for c in self.df.columns]
        p_cols = [bool(_P_COLUMN.search(str(c))) for c in self.df.columns]
        head = "".join(f'<th scope="col"{kind}>{html.escape(human_label(c))}</th>'
                       for c, kind in zip(self.df.columns, kinds))
        rows = []
        for record in self.df.itertuples(index=False):
            cells = "".join(f"<td{kind}>{self._cell(v, p)}</td>"
                            for v, kind, p in zip(record, kinds, p_cols))
            rows.append(f"<tr>{cells}</tr>")
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        caption = html.escape(self.caption)
        return (f'<div class="table-wrap" role="region" tabindex="0" aria-label="{caption}">'
                f"<table><caption>{caption}</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
                f"{note}")

    def __repr__(self) -> str:
        text = self.df.to_string(index=False)
        return f"{self.caption}\n{text}" + (f"\n{self.note}" if self.note else "")


def markdown_list(items) -> str:
    return "\n".join(f"- {item}" for item in items)


def _displayable(df: pd.DataFrame) -> pd.DataFrame:
    """A displayed DataFrame's named index becomes a column; MultiIndex headers are joined."""
    frame = df
    if any(n is not None for n in frame.index.names):
        frame = frame.reset_index()
    if isinstance(frame.columns, pd.MultiIndex):
        frame = frame.copy()
        frame.columns = [" ".join(str(p) for p in col if str(p)) for col in frame.columns]
    return frame


class _Uncaptioned(Table):
    """A displayed DataFrame: a table whose caption is left out (the notebook's text names it)."""

    def __init__(self, df):
        super().__init__(df, caption="")

    def _repr_html_(self) -> str:
        body = super()._repr_html_()
        return body.replace("<caption></caption>", "").replace(
            'aria-label=""', 'aria-label="Table"')


def kernel_shell():
    """The running IPython shell, or None outside a kernel (plain Python, tests)."""
    try:
        from IPython import get_ipython  # only inside a kernel; plain Python may lack IPython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def register_dataframe_formatter() -> None:
    """Inside a kernel, show every displayed DataFrame as a readable table (no index column,
    no NaN, human column names, p-values as '< 0.001')."""
    shell = kernel_shell()
    if shell is None:
        return
    shell.display_formatter.formatters["text/html"].for_type(
        pd.DataFrame, lambda df: _Uncaptioned(_displayable(df))._repr_html_())


if "ipykernel" in sys.modules:
    register_dataframe_formatter()
