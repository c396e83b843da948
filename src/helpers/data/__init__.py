"""The tidy official panel of children looked after (area x reporting year x measure) and the
reference data the analyses need.

    from helpers import data
    panel = data.load_panel()                       # committed data/processed/cla_panel.csv
    stoke = data.annual_series("Stoke-on-Trent", "starts", start_year=2014)
    data.resolve_la("stoke on trent")               # LARecord(la_code='861', ...)
    data.boundary_breaks()                          # LAs whose series break (BCP/Dorset 2019, ...)
    data.statistical_neighbours("861", edition="2021")
    data.annual_series("Stoke-on-Trent", "referrals")  # the early-help pathway (issue 15)
    data.load_starts_breakdown("861", "legal_status")  # starts by age, gender, legal status, need
    data.last_judgement("Stoke-on-Trent")           # its last inadequate Ofsted judgement, dated
    data.import_file("new_ees_file.csv")            # next EES edition; returns what changed

The panel is rebuilt from the official raw files with `care-trends data build` (or
`data.build_panel()`), after checking them against the committed SHA-256 manifest.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.data import breakdown as _breakdown
from helpers.data import build as _build
from helpers.data import importer as _importer
from helpers.data import sources as _sources
from helpers.data.build import LOOKED_AFTER_MEASURES, MEASURES, PANEL_COLUMNS, read_ees_edition  # noqa: F401
from helpers.data.fetch import FetchResult, fetch_raw_files
from helpers.data.importer import ImportResult, import_file, imports_dir
from helpers.data.pathway import PATHWAY_MEASURES, UNITS
from helpers.data.reference import (
    OfstedEvent,
    build_reference,
    code_changes,
    council_reported,
    last_judgement,
    load_events,
    load_ofsted_inspections,
    statistical_neighbours,
    statistical_neighbours_table,
)

__all__ = [
    "MEASURES", "LOOKED_AFTER_MEASURES", "PATHWAY_MEASURES", "UNITS", "PANEL_COLUMNS", "PANEL_FILE",
    "LARecord", "load_starts_breakdown", "BREAKDOWN_FILE",
    "import_file", "ImportResult", "imports_dir", "fetch_raw_files", "FetchResult",
    "load_ofsted_inspections", "last_judgement", "OfstedEvent",
    "load_panel", "annual_series", "resolve_la", "list_las", "boundary_breaks",
    "build_panel", "build_reference", "import_edition", "check_raw_files", "edition",
    "statistical_neighbours", "statistical_neighbours_table", "load_events", "council_reported",
    "code_changes",
    "add_cli",
]

PANEL_FILE = _importer.PANEL_FILE
PROVENANCE_FILE = _importer.PROVENANCE_FILE
BREAKDOWN_FILE = _breakdown.BREAKDOWN_FILE


def panel_path() -> Path:
    return paths.processed_dir() / PANEL_FILE


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_DTYPES = {"la_code": "string", "new_la_code": "string", "region_code": "string"}


@lru_cache(maxsize=4)
def _read_panel(path: str, mtime: float) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False, na_values=[""])
    missing = [c for c in PANEL_COLUMNS if c not in df.columns]
    if missing:
        raise CareTrendsError(f"{path} is not a care-trends panel (missing {', '.join(missing[:3])}); "
                              "rebuild it with `care-trends data build`")
    return _build.tidy_types(df[PANEL_COLUMNS])


def load_panel(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The tidy panel: one row per area x reporting year x measure (see PANEL_COLUMNS).

    `count` is NaN where the publisher suppressed or did not publish a value (see `count_status`);
    never 0. Returns a fresh copy each call."""
    path = Path(path) if path else panel_path()
    if not path.is_file():
        raise CareTrendsError(f"panel file {path} not found; run `care-trends data build` to create it")
    return _read_panel(str(path), path.stat().st_mtime).copy()


# --------------------------------------------------------------------------------------------
# Areas
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LARecord:
    """An area of the panel. For England and regions la_code is None and new_la_code the GSS code."""
    la_code: str | None
    la_name: str
    new_la_code: str
    region_name: str | None
    geographic_level: str = "Local authority"
    first_year: int | None = None
    last_year: int | None = None


def _default_panel() -> pd.DataFrame:
    """The committed panel, cached and shared: callers must not modify it (load_panel() copies)."""
    path = panel_path()
    if not path.is_file():
        return load_panel()   # raises the "run care-trends data build" error
    return _read_panel(str(path), path.stat().st_mtime)


@lru_cache(maxsize=4)
def _default_areas(path: str, mtime: float) -> pd.DataFrame:
    return _areas(_read_panel(path, mtime))


def list_las(panel: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per area (England, regions, LAs) with its identity and the years it has data."""
    if panel is None:
        path = panel_path()
        if path.is_file():
            return _default_areas(str(path), path.stat().st_mtime).copy()
        panel = load_panel()
    return _areas(panel)


def _areas(panel: pd.DataFrame) -> pd.DataFrame:
    # An area's identity and years are those of its looked-after series (the pathway measures
    # start later, and the workforce year runs six months ahead).
    looked_after = panel["measure"].isin(LOOKED_AFTER_MEASURES)
    if looked_after.any():
        panel = panel[looked_after]
    key = panel["la_code"].fillna(panel["new_la_code"])
    areas = (panel.assign(key=key)
             .groupby("key", sort=False)
             .agg(la_code=("la_code", "first"), la_name=("la_name", "first"),
                  new_la_code=("new_la_code", "first"), region_name=("region_name", "first"),
                  geographic_level=("geographic_level", "first"),
                  first_year=("year", "min"), last_year=("year", "max")))
    return areas.reset_index(drop=True)


def _norm(text: str) -> str:
    return " ".join(str(text).replace("-", " ").replace("&", "and").replace(",", " ").casefold().split())


def resolve_la(name_or_code, panel: pd.DataFrame | None = None) -> LARecord:
    """Find an area by old three-digit code (861), new code (E06000021) or name (any case).

    A name shared by an old and a new authority (e.g. Dorset before and after 2019) resolves to the
    one with the most recent data; use the old code for the other. Unknown -> CareTrendsError with
    a "did you mean ..." suggestion."""
    areas = list_las(panel)
    text = str(name_or_code).strip()
    if isinstance(name_or_code, (int, float)) and not isinstance(name_or_code, bool):
        text = str(int(name_or_code))
    by_code = areas[areas["la_code"].eq(text).fillna(False)
                    | areas["new_la_code"].str.casefold().eq(text.casefold()).fillna(False)]
    if by_code.empty and text.upper().startswith("E"):   # a GSS code the LA used before a recode
        changes = code_changes()
        old = changes.loc[changes["previous_new_la_code"].str.casefold().eq(text.casefold()), "la_code"]
        by_code = areas[areas["la_code"].isin(old).fillna(False)]
    if by_code.empty:
        norm = areas["la_name"].map(_norm)
        by_code = areas[norm.eq(_norm(text))]
        if by_code.empty and _norm(text) in {"england", "national"}:
            by_code = areas[areas["geographic_level"].eq("National")]
    if by_code.empty:
        names = list(dict.fromkeys(areas["la_name"]))
        lookup = {_norm(n): n for n in names}
        # Typos by similarity; a partial name ('Stoke') by the names that contain it.
        close = difflib.get_close_matches(_norm(text), list(lookup), n=3, cutoff=0.6)
        if not close and len(_norm(text)) >= 3:
            close = [key for key in lookup if _norm(text) in key][:3]
        hint = (f"did you mean {', '.join(repr(lookup[c]) for c in close)}?" if close
                else "use an LA name as DfE writes it or its old three-digit code, e.g. 'Stoke-on-Trent' or 861")
        raise CareTrendsError(f"unknown local authority {name_or_code!r}; {hint}")
    row = by_code.sort_values(["last_year", "first_year"]).iloc[-1]
    val = lambda v: None if pd.isna(v) else v  # noqa: E731
    return LARecord(la_code=val(row["la_code"]), la_name=row["la_name"], new_la_code=row["new_la_code"],
                    region_name=val(row["region_name"]), geographic_level=row["geographic_level"],
                    first_year=int(row["first_year"]), last_year=int(row["last_year"]))


def annual_series(la, measure: str, start_year: int | None = None, end_year: int | None = None,
                  panel: pd.DataFrame | None = None) -> pd.DataFrame:
    """One area's yearly series for a measure: year, count, population, rate_per_10000, rate_source
    plus provenance and flag columns (count_status, count_source, boundary_flag ...)."""
    if measure not in MEASURES:
        close = difflib.get_close_matches(str(measure), MEASURES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(MEASURES)}"
        raise CareTrendsError(f"unknown measure {measure!r}; {hint}")
    rec = resolve_la(la, panel)
    panel = _default_panel() if panel is None else panel
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
            "boundary_flag", "boundary_year", "la_code", "new_la_code", "la_name", "measure",
            "value", "unit"]
    return series[cols].sort_values("year").reset_index(drop=True)


def boundary_breaks(panel: pd.DataFrame | None = None) -> pd.DataFrame:
    """LAs whose series break at a boundary change, detected from codes ending and starting in
    the same year within a region: la_code, la_name, region_name, role ('predecessor' ends,
    'successor' starts), boundary_year (first reporting year of the new geography),
    last_year_before, predecessors, successors, boundary_change (description)."""
    panel = load_panel() if panel is None else panel
    # From the looked-after series, as the panel's boundary_* columns are (the workforce year
    # to 30 September lists a new authority half a year before its first reporting year).
    if panel["measure"].isin(LOOKED_AFTER_MEASURES).any():
        panel = panel[panel["measure"].isin(LOOKED_AFTER_MEASURES)]
    keyed = panel.assign(key=panel["la_code"].fillna(panel["new_la_code"]))
    return _build.detect_boundary_changes(keyed)


def edition() -> str:
    """One line saying which official data the committed panel holds (for report headers)."""
    import json
    info = json.loads((paths.processed_dir() / PROVENANCE_FILE).read_text(encoding="utf-8"))
    years = sorted(int(y) for y in info["editions_used_by_year"])
    newest = max((s for v in info["editions_used_by_year"].values() for s in v if s.startswith("EES")),
                 default="EES", key=lambda s: s.split()[1])
    imported = f"; imported: {', '.join(sorted(info['imported_editions_sha256']))}" if info[
        "imported_editions_sha256"] else ""
    return (f"DfE children looked after in England, reporting years {years[0]}-{years[-1]} "
            f"(newest: {newest.split(' (')[0]}; 2010-2017 from SFR underlying data), ONS populations"
            f"{imported}")


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

def check_raw_files(raw_dir=None) -> dict[str, str]:
    """Check the raw folder against data/raw_manifest.sha256; returns {path: sha256}."""
    return _sources.check_raw_files(paths.raw_dir(raw_dir))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)   # mkstemp creates 0600; the panel is an ordinary shared file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        _atomic_write(out / PANEL_FILE, _build.panel_to_csv_text(panel))
        imported = {p.name: _sources.sha256_file(p) for p in extra}
        _atomic_write(out / PROVENANCE_FILE, _build.provenance(checksums, imported, panel))
        _atomic_write(out / BREAKDOWN_FILE,
                      _breakdown.breakdown_to_csv_text(_breakdown.build_starts_breakdown(raw)))
        _read_panel.cache_clear()
        _default_areas.cache_clear()
    return panel


def import_edition(file, raw_dir=None, output_dir=None, imports=None) -> pd.DataFrame:
    """Import the next EES edition of a dataset the panel uses and return the new panel.
    `import_file` does the work and returns what changed (see helpers.data.importer)."""
    result = import_file(file, raw_dir, output_dir=output_dir, imports=imports)
    _read_panel.cache_clear()
    _default_areas.cache_clear()
    return result.panel


def load_starts_breakdown(la=None, breakdown: str | None = None, path=None) -> pd.DataFrame:
    """Children starting to be looked after by age group, gender, legal status and category of
    need, 2011-2022 (data/processed/cla_starts_breakdown.csv; see helpers.data.breakdown). One row
    per area x year x breakdown x category, with a 'Total' category per breakdown."""
    path = Path(path) if path else paths.processed_dir() / BREAKDOWN_FILE
    if not path.is_file():
        raise CareTrendsError(f"{path} not found; run `care-trends data build` to create it")
    df = _breakdown.read_breakdown_csv(path)
    if breakdown is not None:
        if breakdown not in _breakdown.BREAKDOWNS:
            close = difflib.get_close_matches(str(breakdown), _breakdown.BREAKDOWNS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(_breakdown.BREAKDOWNS)}"
            raise CareTrendsError(f"unknown breakdown {breakdown!r}; {hint}")
        df = df[df["breakdown"].eq(breakdown)]
    if la is not None:
        rec = resolve_la(la)
        if rec.la_code is not None:
            df = df[df["la_code"].eq(rec.la_code).fillna(False)]
        else:
            df = df[df["la_code"].isna() & df["new_la_code"].eq(rec.new_la_code).fillna(False)]
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Command line: care-trends data build | import | series | check
# --------------------------------------------------------------------------------------------

def _cmd_build(args) -> int:
    panel = build_panel(args.raw_dir, output_dir=args.output)
    if not args.output:   # the statistical-neighbour tables are rebuilt alongside the default panel
        build_reference(paths.raw_dir(args.raw_dir))
    print(f"wrote {len(panel)} rows for {panel['year'].min()}-{panel['year'].max()} to "
          f"{Path(args.output) if args.output else paths.processed_dir()}")
    return 0


def _cmd_import(args) -> int:
    result = import_file(args.file, args.raw_dir, output_dir=args.output, dry_run=args.dry_run)
    _read_panel.cache_clear()
    _default_areas.cache_clear()
    print(result.summary())
    return 0


def _cmd_fetch(args) -> int:
    result = fetch_raw_files(args.raw_dir, only=args.only or None, force=args.force,
                             include_unlisted=args.all)
    print(result.summary())
    return 0 if result.ok else 1


def _cmd_check(args) -> int:
    checked = check_raw_files(args.raw_dir)
    print(f"all {len(checked)} raw files match data/{_sources.MANIFEST_NAME}")
    return 0


def _cmd_series(args) -> int:
    series = annual_series(args.la, args.measure, args.start_year, args.end_year)
    print(series[["year", "count", "population", "rate_per_10000", "rate_source", "count_status"]]
          .to_string(index=False))
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build, check or extend the official data panel")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("build", help="check raw files against the manifest and rebuild data/processed/")
    p.add_argument("--raw-dir", help=f"folder of official raw files (default ${paths.RAW_DIR_ENV} or data/raw/)")
    p.add_argument("--output", help="folder to write the panel to (default data/processed/)")
    p.set_defaults(handler=_cmd_build)
    p = sub.add_parser("import", help="add the next EES edition of a dataset the panel uses and say what changed")
    p.add_argument("file", help="the downloaded CSV")
    p.add_argument("--raw-dir", help="folder of official raw files")
    p.add_argument("--output", help="folder to write the panel to (default data/processed/)")
    p.add_argument("--dry-run", action="store_true", help="validate and report what would change; write nothing")
    p.set_defaults(handler=_cmd_import)
    p = sub.add_parser("fetch", help="download the official raw files from their publishers and check them")
    p.add_argument("--raw-dir", help="folder to download into (default $CARE_TRENDS_RAW_DIR or data/raw/)")
    p.add_argument("--only", action="append", help="fetch only files whose path contains this (repeatable)")
    p.add_argument("--force", action="store_true", help="download even files already present and correct")
    p.add_argument("--all", action="store_true",
                   help="also fetch snapshot files the build does not read (not in the manifest, unchecked)")
    p.set_defaults(handler=_cmd_fetch)
    p = sub.add_parser("check", help="verify raw files against data/raw_manifest.sha256")
    p.add_argument("--raw-dir", help="folder of official raw files")
    p.set_defaults(handler=_cmd_check)
    p = sub.add_parser("series", help="print one LA's yearly series")
    p.add_argument("la", help="LA name or old code, e.g. Stoke-on-Trent or 861")
    p.add_argument("measure", choices=MEASURES)
    p.add_argument("--start-year", type=int)
    p.add_argument("--end-year", type=int)
    p.set_defaults(handler=_cmd_series)
