"""The shape every design's result shares (ITS, controlled ITS, DiD, synthetic control...).

Modelled on CausalPy's experiment objects: one object holds the fit, with tidy tables,
`summary()` (plain English) and `plot()`. The report runner turns `to_records()` into
reports/<analysis>/results.json, and the summary notebook reads them back with `load_records`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

#: Columns of every result's `effects` table (DESIGN.md public API).
EFFECT_COLUMNS = ["intervention", "effect", "estimate", "ci_low", "ci_high", "p_value", "scale"]
#: Columns of every result's `counterfactual` table.
COUNTERFACTUAL_COLUMNS = ["time", "observed", "fitted", "counterfactual", "cf_low", "cf_high"]
#: Columns of results.json records.
RECORD_COLUMNS = ["analysis", "notebook", "la", "outcome", "event", "design", "effect",
                  "estimate", "ci_low", "ci_high", "p_value", "scale"]


class EffectResult:
    """Base class. Subclasses set `design`, `outcome`, `effects`, `counterfactual` and
    implement `summary()` and `plot()`."""

    design: str = "unknown"
    outcome: str = ""
    effects: pd.DataFrame
    counterfactual: pd.DataFrame

    def summary(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def plot(self, ax=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def to_records(self, **context) -> list[dict]:
        """One dict per effect row, ready for results.json. `context` adds analysis, notebook, la."""
        records = []
        for row in self.effects.to_dict("records"):
            record = {key: context.get(key) for key in ("analysis", "notebook", "la")}
            record.update(
                outcome=context.get("outcome", self.outcome),
                event=row["intervention"],
                design=context.get("design", self.design),
                effect=row["effect"],
                scale=row["scale"],
            )
            for key in ("estimate", "ci_low", "ci_high", "p_value"):
                record[key] = _clean_number(row.get(key))
            records.append(record)
        return records


def _clean_number(value, digits: int = 6):
    """Round for stable JSON; NaN/None become null."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


def save_records(records: list[dict], path) -> None:
    """Append-free write of one notebook's records (the runner merges them per analysis)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(records, indent=1, sort_keys=True))
    tmp.replace(path)


def load_records(path) -> pd.DataFrame:
    """Read results.json (or one notebook's records) as a DataFrame with RECORD_COLUMNS."""
    records = json.loads(Path(path).read_text())
    return pd.DataFrame(records, columns=RECORD_COLUMNS)


def format_interval(estimate: float, low: float, high: float, scale: str, digits: int = 2) -> str:
    """'0.62 (95% CI 0.45 to 0.85)'; the scale is the caller's to explain."""
    return f"{estimate:.{digits}f} (95% CI {low:.{digits}f} to {high:.{digits}f})"


def ratio_as_percent(ratio: float) -> str:
    """0.62 -> '38% below'; 1.10 -> '10% above'."""
    change = (ratio - 1.0) * 100.0
    return f"{abs(change):.0f}% {'below' if change < 0 else 'above'}"
