"""The one shape every estimate takes on its way to results.json, and the base of every
design's result object.

A result (ITS, controlled ITS, DiD, event study, synthetic control, batch fits) carries an
`effects` table with EFFECT_COLUMNS and, where it has one, a `counterfactual` table with
COUNTERFACTUAL_COLUMNS. `to_records` turns the effects into results.json records (RECORD_COLUMNS);
`save_records` / `load_records` are the only reader and writer of those files. Results hold
numbers only: sentences and charts about them live in `helpers.present`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from helpers.core.io import atomic_write_json

#: Columns of every result's `effects` table (DESIGN.md public API).
EFFECT_COLUMNS = ["intervention", "effect", "estimate", "ci_low", "ci_high", "p_value", "scale"]
#: Columns of every result's `counterfactual` table.
COUNTERFACTUAL_COLUMNS = ["time", "observed", "fitted", "counterfactual", "cf_low", "cf_high"]
#: Columns of results.json records.
RECORD_COLUMNS = ["analysis", "notebook", "la", "outcome", "event", "design", "effect",
                  "estimate", "ci_low", "ci_high", "p_value", "scale"]
#: Keys a caller may pass to `to_records` to place the records.
CONTEXT_KEYS = ("analysis", "notebook", "la")


class EffectResult:
    """Base class. Subclasses set `design`, `outcome`, `effects` (and `counterfactual`)."""

    design: str = "unknown"
    outcome: str = ""
    effects: pd.DataFrame

    def to_records(self, **context) -> list[dict]:
        """One dict per effect row, ready for results.json. `context` adds analysis, notebook,
        la (and may override outcome or design)."""
        return effects_to_records(self.effects, outcome=context.get("outcome", self.outcome),
                                  design=context.get("design", self.design), **{
                                      k: context.get(k) for k in CONTEXT_KEYS})


def effects_to_records(effects: pd.DataFrame, *, outcome, design, **context) -> list[dict]:
    """Records from an effects table (EFFECT_COLUMNS, optionally with an `outcome` column)."""
    records = []
    for row in effects.to_dict("records"):
        records.append(make_record(outcome=row.get("outcome", outcome), event=row["intervention"],
                                   design=design, effect=row["effect"], scale=row["scale"],
                                   estimate=row.get("estimate"), ci_low=row.get("ci_low"),
                                   ci_high=row.get("ci_high"), p_value=row.get("p_value"),
                                   **context))
    return records


def make_record(**fields) -> dict:
    """One results.json record: every RECORD_COLUMN present, numbers rounded, NaN as null."""
    record = {key: fields.get(key) for key in RECORD_COLUMNS}
    for key in ("estimate", "ci_low", "ci_high", "p_value"):
        record[key] = clean_number(record[key])
    return record


def clean_number(value, digits: int = 6):
    """Round for stable JSON; NaN/None become null."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


def save_records(records: list[dict], path) -> None:
    """Write one notebook's (or one analysis') records atomically."""
    atomic_write_json(path, records, sort_keys=False)



def load_records(path) -> pd.DataFrame:
    """Read results.json (or one notebook's records) as a DataFrame with RECORD_COLUMNS."""
    records = json.loads(Path(path).read_text())
    return pd.DataFrame(records, columns=RECORD_COLUMNS)


def extra_path(results_path, name: str) -> Path:
    """Where a notebook's extra JSON goes: next to its records (`<stem>.<name>.json`)."""
    path = Path(results_path)
    return path.with_name(f"{path.stem}.{name}.json")


def save_extra(value, results_path, name: str) -> Path:
    """A notebook's extra numbers (e.g. the sensitivity headline) beside its records."""
    return atomic_write_json(extra_path(results_path, name), value)


def load_extra(results_dir, notebook: str, name: str):
    """A notebook's extra numbers, or None when the notebook has not run."""
    path = Path(results_dir) / f"{notebook}.{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
