"""The committed tidy panel: where it lives, how it is read (cached, copied per call) and which
official editions it holds."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import pandas as pd

from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.data.build import PANEL_COLUMNS, tidy_types

PANEL_FILE = "cla_panel.csv"
PROVENANCE_FILE = "cla_panel_provenance.json"


def panel_path() -> Path:
    return paths.processed_dir() / PANEL_FILE


_DTYPES = {"la_code": "string", "new_la_code": "string", "region_code": "string"}


@lru_cache(maxsize=4)
def _read_panel(path: str, mtime: float) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False, na_values=[""])
    missing = [c for c in PANEL_COLUMNS if c not in df.columns]
    if missing:
        raise CareTrendsError(f"{path} is not a care-trends panel (missing {', '.join(missing[:3])}); "
                              "rebuild it with `care-trends data build`")
    return tidy_types(df[PANEL_COLUMNS])


def load_panel(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The tidy panel: one row per area x reporting year x measure (see PANEL_COLUMNS).

    `count` is NaN where the publisher suppressed or did not publish a value (see `count_status`);
    never 0. Returns a fresh copy each call."""
    path = Path(path) if path else panel_path()
    if not path.is_file():
        raise CareTrendsError(f"panel file {path} not found; run `care-trends data build` to create it")
    return _read_panel(str(path), path.stat().st_mtime).copy()


def edition() -> str:
    """One line saying which official data the committed panel holds (for report headers)."""
    info = json.loads((paths.processed_dir() / PROVENANCE_FILE).read_text(encoding="utf-8"))
    years = sorted(int(y) for y in info["editions_used_by_year"])
    newest = max((s for v in info["editions_used_by_year"].values() for s in v if s.startswith("EES")),
                 default="EES", key=lambda s: s.split()[1])
    imported = f"; imported: {', '.join(sorted(info['imported_editions_sha256']))}" if info[
        "imported_editions_sha256"] else ""
    return (f"DfE children looked after in England, reporting years {years[0]}-{years[-1]} "
            f"(newest: {newest.split(' (')[0]}; 2010-2017 from SFR underlying data), ONS populations"
            f"{imported}")
