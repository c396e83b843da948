"""Tables a reader sees: a DataFrame as a real HTML table with a caption, and Markdown lists.
Every string is escaped."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd


class Table:
    """A DataFrame shown as a real HTML table with a caption and column headers (scope=col),
    without the index; numbers formatted by the caller (strings pass through)."""

    def __init__(self, df: pd.DataFrame, caption: str, note: str | None = None):
        self.df = df.reset_index(drop=True)
        self.caption = caption
        self.note = note

    def _cell(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "&ndash;"
        if isinstance(value, (float, np.floating)):
            # Callers round; whole numbers (counts stored as float) print without decimals.
            value = float(value)
            return f"{value:,.0f}" if value.is_integer() else f"{round(value, 3):,}"
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return f"{value}" if 1900 < value < 2100 else f"{value:,}"
        return html.escape(str(value))

    def _repr_html_(self) -> str:
        text_class = ' class="text"'  # left-aligned text columns; numbers align right
        kinds = ["" if pd.api.types.is_numeric_dtype(self.df[c]) else text_class
                 for c in self.df.columns]
        head = "".join(f'<th scope="col"{kind}>{html.escape(str(c))}</th>'
                       for c, kind in zip(self.df.columns, kinds))
        rows = []
        for record in self.df.itertuples(index=False):
            cells = "".join(f"<td{kind}>{self._cell(v)}</td>" for v, kind in zip(record, kinds))
            rows.append(f"<tr>{cells}</tr>")
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (f"<table><caption>{html.escape(self.caption)}</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}")

    def __repr__(self) -> str:
        text = self.df.to_string(index=False)
        return f"{self.caption}\n{text}" + (f"\n{self.note}" if self.note else "")


def markdown_list(items) -> str:
    return "\n".join(f"- {item}" for item in items)
