"""The tidy official panel of children looked after (area x reporting year x measure) and the
reference data the analyses need.

    from helpers import data
    panel = data.load_panel()                       # committed data/processed/cla_panel.csv
    stoke = data.annual_series("Stoke-on-Trent", "starts", start_year=2014)
    data.resolve_la("stoke on trent")               # LARecord(la_code='861', ...)
    data.boundary_breaks()                          # LAs whose series break (BCP/Dorset 2019, ...)
    data.statistical_neighbours("861", edition="2021")

The panel is rebuilt from the official raw files with `care-trends data build` (or
`data.build_panel()`), after checking them against the committed SHA-256 manifest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from helpers.core import paths, vocab
from helpers.core.vocab import MEASURES
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_text
from helpers.data import build as _build
from helpers.data import sources
from helpers.data import sources as _sources
from helpers.data.areas import (LARecord, boundary_breaks, code_changes, list_las, reset_caches,
                                shared_panel,
                                resolve_la)
from helpers.data.build import PANEL_COLUMNS, read_ees_edition
from helpers.data.panel import PANEL_FILE, PROVENANCE_FILE, edition, load_panel, panel_path
from helpers.data.reference import (
    build_reference,
    council_reported,
    load_events,
    statistical_neighbours,
    statistical_neighbours_table,
)

__all__ = [
    "MEASURES", "PANEL_COLUMNS", "PANEL_FILE", "LARecord",
    "load_panel", "panel_path", "annual_series", "resolve_la", "list_las", "boundary_breaks",
    "build_panel", "build_reference", "import_edition", "check_raw_files", "edition",
    "statistical_neighbours", "statistical_neighbours_table", "load_events", "council_reported",
    "code_changes", "sources",
]

def imports_dir() -> Path:
    """Where `care-trends data import` keeps imported editions: data/raw/imports/ (git-ignored with
    the rest of data/raw/, never committed; the panel's provenance records each file's SHA-256)."""
    return paths.project_root() / "data" / "raw" / "imports"


def annual_series(la, measure: str, start_year: int | None = None, end_year: int | None = None,
                  panel: pd.DataFrame | None = None) -> pd.DataFrame:
    """One area's yearly series for a measure: year, count, population, rate_per_10000, rate_source
    plus provenance and flag columns (count_status, count_source, boundary_flag ...)."""
    if measure not in vocab.MEASURES:
        raise CareTrendsError(vocab.suggest(measure, vocab.MEASURES, "measure"))
    rec = resolve_la(la, panel)
    panel = shared_panel() if panel is None else panel
    if rec.la_code is not None:
        rows = panel["la_code"].eq(rec.la_code).fillna(False)
    else:
        rows = panel["la_code"].isna() & panel["new_la_code"].eq(rec.new_la_code).fillna(False)
    series = panel[rows & panel["measure"].eq(measure)]
    lo, hi = int(series["year"].min()), int(series["year"].max())
    for label, year in (("start_year", start_year), ("end_year", end_year)):
        if year is not None and not lo <= int(year) <= hi:
            raise CareTrendsError(f"{label}={year} is outside the data for {rec.la_name} "
                                  f"({lo}-{hi}); choose a reporting year in that range")
    if start_year is not None and end_year is not None and int(start_year) > int(end_year):
        raise CareTrendsError(f"start_year={start_year} is after end_year={end_year}; swap them")
    if start_year is not None:
        series = series[series["year"] >= int(start_year)]
    if end_year is not None:
        series = series[series["year"] <= int(end_year)]
    cols = ["year", "count", "population", "rate_per_10000", "rate_source", "count_status",
            "suppressed", "count_rounding", "count_source", "population_source",
            "boundary_flag", "boundary_year", "la_code", "new_la_code", "la_name", "measure"]
    return series[cols].sort_values("year").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

def check_raw_files(raw_dir=None) -> dict[str, str]:
    """Check the raw folder against data/raw_manifest.sha256; returns {path: sha256}."""
    return _sources.check_raw_files(paths.raw_dir(raw_dir))


def _import_files(directory: Path | None) -> list[Path]:
    directory = imports_dir() if directory is None else Path(directory)
    return sorted(directory.glob("*.csv")) if directory.is_dir() else []


def build_panel(raw_dir=None, output_dir=None, imports=None, write: bool = True) -> pd.DataFrame:
    """Check the raw files, build the panel and (write=True) write it atomically with its
    provenance file to output_dir (default data/processed/). `imports` is a folder of imported
    EES editions (default data/raw/imports/). Returns the panel."""
    raw = paths.raw_dir(raw_dir)
    if not raw.is_dir():
        raise CareTrendsError(f"raw data folder {raw} not found; pass --raw-dir or set "
                              f"${paths.RAW_DIR_ENV} to the folder holding the official files")
    checksums = _sources.check_raw_files(raw)
    extra = _import_files(imports)
    panel = _build.assemble_panel(raw, extra)
    if write:
        out = Path(output_dir) if output_dir else paths.processed_dir()
        atomic_write_text(out / PANEL_FILE, _build.panel_to_csv_text(panel))
        imported = {p.name: _sources.sha256_file(p) for p in extra}
        atomic_write_text(out / PROVENANCE_FILE, _build.provenance(checksums, imported, panel))
        reset_caches()
    return panel


def import_edition(file, raw_dir=None, output_dir=None, imports=None) -> pd.DataFrame:
    """Validate a new EES 'CLA numbers and rates per 10,000 children - by local authority' edition,
    keep a copy in the imports folder and rebuild the panel with it. Returns the new panel."""
    file = Path(file)
    if not file.is_file():
        raise CareTrendsError(f"file {file} not found; give the path of the downloaded EES CSV")
    edition = read_ees_edition(file)   # raises a one-line CareTrendsError for a wrong file
    latest = max(int(Path(p).name[-18:-14]) for p in _build.EES_FILES)
    year = int(edition["edition"].iat[0])
    if year <= latest:
        raise CareTrendsError(f"{file.name} is the {year} edition; the panel already uses the {latest} "
                              "release - import only a newer edition")
    target_dir = imports_dir() if imports is None else Path(imports)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"cla_number_and_rate_per_10k_children_release{year}.csv"
    tmp = target.with_suffix(".csv.tmp")
    shutil.copyfile(file, tmp)
    os.replace(tmp, target)
    try:
        return build_panel(raw_dir, output_dir=output_dir, imports=target_dir)
    except BaseException:
        target.unlink(missing_ok=True)   # leave nothing half-imported
        raise
