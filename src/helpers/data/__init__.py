"""The tidy official panel of children looked after (area x reporting year x measure) and the
reference data the analyses need.

    from helpers import data
    panel = data.load_panel()                       # committed data/processed/cla_panel.csv
    stoke = data.annual_series("Stoke-on-Trent", "starts", start_year=2014)
    data.resolve_la("stoke on trent")               # LARecord(la_code='861', ...)
    data.boundary_breaks()                          # LAs whose series break (BCP/Dorset 2019, ...)
    data.statistical_neighbours("861", edition="2021")
    data.annual_series("Stoke-on-Trent", "referrals")  # the early-help pathway
    data.load_starts_breakdown("861", "legal_status")  # starts by age, gender, legal status, need
    data.last_judgement("Stoke-on-Trent")           # its last inadequate Ofsted judgement, dated
    data.import_file("new_ees_file.csv")            # next EES edition; returns what changed

The panel is rebuilt from the official raw files with `care-trends data build` (or
`data.build_panel()`), after checking them against the committed SHA-256 manifest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.core import paths, vocab
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_text
from helpers.core.vocab import LOOKED_AFTER_MEASURES, MEASURES
from helpers.data import breakdown as _breakdown
from helpers.data import build as _build
from helpers.data import importer as _importer
from helpers.data import sources
from helpers.data import sources as _sources
from helpers.data.areas import (LARecord, boundary_breaks, code_changes, list_las, reset_caches,
                                area_series, shared_panel,
                                resolve_la)
from helpers.data.build import PANEL_COLUMNS, read_ees_edition
from helpers.data.fetch import FetchResult, fetch_raw_files
from helpers.data.importer import ImportResult, import_file, imports_dir
from helpers.data.panel import PANEL_FILE, PROVENANCE_FILE, edition, load_panel, panel_path
from helpers.data.pathway import PATHWAY_MEASURES, UNITS
from helpers.data.reference import (
    OfstedEvent,
    build_reference,
    council_reported,
    last_judgement,
    load_events,
    load_ofsted_inspections,
    statistical_neighbours,
    statistical_neighbours_table,
)

__all__ = [
    "MEASURES", "LOOKED_AFTER_MEASURES", "PATHWAY_MEASURES", "UNITS", "PANEL_COLUMNS", "PANEL_FILE",
    "read_ees_edition",
    "LARecord", "reset_caches", "load_starts_breakdown", "BREAKDOWN_FILE",
    "import_file", "ImportResult", "imports_dir", "fetch_raw_files", "FetchResult",
    "load_ofsted_inspections", "last_judgement", "OfstedEvent",
    "load_panel", "panel_path", "annual_series", "resolve_la", "list_las", "boundary_breaks",
    "build_panel", "build_reference", "import_edition", "check_raw_files", "edition",
    "statistical_neighbours", "statistical_neighbours_table", "load_events", "council_reported",
    "code_changes", "sources",
]

BREAKDOWN_FILE = _breakdown.BREAKDOWN_FILE


def annual_series(la, measure: str, start_year: int | None = None, end_year: int | None = None,
                  panel: pd.DataFrame | None = None) -> pd.DataFrame:
    """One area's yearly series for a measure: year, count, population, rate_per_10000, rate_source
    plus provenance and flag columns (count_status, count_source, boundary_flag ...)."""
    if measure not in vocab.MEASURES:
        raise CareTrendsError(vocab.suggest(measure, vocab.MEASURES, "measure"))
    rec = resolve_la(la, panel)
    panel = shared_panel() if panel is None else panel
    series = area_series(panel, rec, measure)
    lo, hi = int(series["year"].min()), int(series["year"].max())
    for label, year in (("start_year", start_year), ("end_year", end_year)):
        if year is not None and not lo <= int(year) <= hi:
            raise CareTrendsError(f"{label}={year} is outside the data for {rec.la_name} "
                                  f"({lo}-{hi}); choose a reporting year in that range")
    if start_year is not None and end_year is not None and int(start_year) > int(end_year):
        raise CareTrendsError(f"start_year={start_year} is after end_year={end_year}; swap them")
    if start_year is None and end_year is None:
        return series
    keep = series["year"].between(int(start_year) if start_year is not None else lo,
                                  int(end_year) if end_year is not None else hi)
    return series[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

def check_raw_files(raw_dir=None) -> dict[str, str]:
    """Check the raw folder against data/raw_manifest.sha256; returns {path: sha256}."""
    return _sources.check_raw_files(paths.raw_dir(raw_dir))


def _import_files(directory: Path | None) -> list[Path]:
    return _importer.import_files(directory)


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
        atomic_write_text(out / BREAKDOWN_FILE,
                          _breakdown.breakdown_to_csv_text(_breakdown.build_starts_breakdown(raw)))
        reset_caches()
    return panel


def import_edition(file, raw_dir=None, output_dir=None, imports=None) -> pd.DataFrame:
    """Import the next EES edition of a dataset the panel uses and return the new panel.
    `import_file` does the work and returns what changed (see helpers.data.importer)."""
    result = import_file(file, raw_dir, output_dir=output_dir, imports=imports)
    reset_caches()
    return result.panel


def load_starts_breakdown(la=None, breakdown: str | None = None, path=None) -> pd.DataFrame:
    """Children starting to be looked after by age group, gender, legal status and category of
    need, 2011-2022 (data/processed/cla_starts_breakdown.csv; see helpers.data.breakdown). One row
    per area x year x breakdown x category, with a 'Total' category per breakdown."""
    path = Path(path) if path else paths.processed_dir() / BREAKDOWN_FILE
    if not path.is_file():
        raise CareTrendsError(f"{path.name} not found; run `care-trends data build` to create it")
    df = _breakdown.read_breakdown_csv(path)
    if breakdown is not None:
        if breakdown not in _breakdown.BREAKDOWNS:
            raise CareTrendsError(vocab.suggest(breakdown, _breakdown.BREAKDOWNS, "breakdown"))
        df = df[df["breakdown"].eq(breakdown)]
    if la is not None:
        rec = resolve_la(la)
        if rec.la_code is not None:
            df = df[df["la_code"].eq(rec.la_code).fillna(False)]
        else:
            df = df[df["la_code"].isna() & df["new_la_code"].eq(rec.new_la_code).fillna(False)]
    return df.reset_index(drop=True)
