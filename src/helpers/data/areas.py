"""Areas of the panel and the one LA resolver: England, regions and LAs by old three-digit code
(the identity), new GSS code (including codes an LA used before a recode) or name, with
"did you mean" for near misses; and which LAs' series break at a boundary change."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.core.vocab import LOOKED_AFTER_MEASURES
from helpers.data.build import detect_boundary_changes
from helpers.data.panel import _read_panel, load_panel, panel_path


def code_changes() -> pd.DataFrame:
    """LAs whose GSS code changed without a break in their series (data/reference/la_code_changes.csv)."""
    return pd.read_csv(paths.reference_dir() / "la_code_changes.csv", dtype={"la_code": str})


def reset_caches() -> None:
    """After the panel file is rewritten."""
    _read_panel.cache_clear()
    _default_areas.cache_clear()
    _default_resolve.cache_clear()
    _default_series_rows.cache_clear()
    _default_area_series.cache_clear()
    _default_boundary_breaks.cache_clear()


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


def shared_panel() -> pd.DataFrame:
    """The committed panel, cached and shared: callers must not modify it (load_panel() copies)."""
    path = panel_path()
    if not path.is_file():
        return load_panel()   # raises the "run care-trends data build" error
    return _read_panel(str(path), path.stat().st_mtime)


def _shared(panel: pd.DataFrame | None) -> tuple[str, float] | None:
    """(path, mtime) of the committed panel when `panel` is it (None, or the shared frame):
    the key of the caches derived from it below. None for any other panel."""
    path = panel_path()
    if not path.is_file():
        return None
    key = (str(path), path.stat().st_mtime)
    return key if panel is None or panel is _read_panel(*key) else None


@lru_cache(maxsize=4)
def _default_areas(path: str, mtime: float) -> pd.DataFrame:
    return _areas(_read_panel(path, mtime))


def list_las(panel: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per area (England, regions, LAs) with its identity and the years it has data."""
    shared = _shared(panel)
    if shared:
        return _default_areas(*shared).copy()
    return _areas(load_panel() if panel is None else panel)


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


#: The columns of an area's series (`helpers.data.annual_series`), in order.
SERIES_COLUMNS = ["year", "count", "population", "rate_per_10000", "rate_source", "count_status",
                  "suppressed", "count_rounding", "count_source", "population_source",
                  "boundary_flag", "boundary_year", "la_code", "new_la_code", "la_name",
                  "measure", "value", "unit"]


def area_series(panel: pd.DataFrame, record: LARecord, measure: str) -> pd.DataFrame:
    """One area's rows of a measure, SERIES_COLUMNS by year (a fresh frame). The shared
    panel's are looked up in an index and kept: a national run reads thousands."""
    shared = _shared(panel)
    if shared:
        return _default_area_series(*shared, _area_key(record), measure).copy()
    if record.la_code is not None:
        mine = panel["la_code"].eq(record.la_code).fillna(False)
    else:
        mine = panel["la_code"].isna() & panel["new_la_code"].eq(record.new_la_code).fillna(False)
    return _by_year(panel[mine & panel["measure"].eq(measure)])


def _area_key(record: LARecord) -> str:
    """An area's key in the index: its old LA code, or its GSS code for England and regions."""
    return f"la:{record.la_code}" if record.la_code is not None else f"gss:{record.new_la_code}"


def _by_year(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[SERIES_COLUMNS].sort_values("year").reset_index(drop=True)


@lru_cache(maxsize=2)
def _default_series_rows(path: str, mtime: float) -> dict[tuple[str, str], np.ndarray]:
    """{(area key, measure): row positions} of the shared panel."""
    panel = _read_panel(path, mtime)
    key = ("la:" + panel["la_code"].astype("string")).fillna(
        "gss:" + panel["new_la_code"].astype("string"))
    groups = pd.Series(np.arange(len(panel))).groupby(
        [key.to_numpy(), panel["measure"].to_numpy()], sort=False).indices
    return {(str(k), str(m)): rows for (k, m), rows in groups.items()}


@lru_cache(maxsize=2048)
def _default_area_series(path: str, mtime: float, key: str, measure: str) -> pd.DataFrame:
    rows = _default_series_rows(path, mtime).get((key, measure))
    panel = _read_panel(path, mtime)
    return _by_year(panel.iloc[rows if rows is not None else []])


def _norm(text: str) -> str:
    return " ".join(str(text).replace("-", " ").replace("&", "and").replace(",", " ").casefold().split())


def resolve_la(name_or_code, panel: pd.DataFrame | None = None) -> LARecord:
    """Find an area by old three-digit code (861), new code (E06000021) or name (any case).

    A name shared by an old and a new authority (e.g. Dorset before and after 2019) resolves to the
    one with the most recent data; use the old code for the other. Unknown -> CareTrendsError with
    a "did you mean ..." suggestion."""
    shared = _shared(panel)
    if shared and isinstance(name_or_code, (str, int)) and not isinstance(name_or_code, bool):
        return _default_resolve(*shared, name_or_code)  # one answer per name, kept (immutable)
    return _resolve(name_or_code, list_las(panel))


@lru_cache(maxsize=1024)
def _default_resolve(path: str, mtime: float, name_or_code) -> LARecord:
    return _resolve(name_or_code, _default_areas(path, mtime))


def _resolve(name_or_code, areas: pd.DataFrame) -> LARecord:
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


def boundary_breaks(panel: pd.DataFrame | None = None) -> pd.DataFrame:
    """LAs whose series break at a boundary change, detected from codes ending and starting in
    the same year within a region: la_code, la_name, region_name, role ('predecessor' ends,
    'successor' starts), boundary_year (first reporting year of the new geography),
    last_year_before, predecessors, successors, boundary_change (description)."""
    shared = _shared(panel)
    if shared:
        return _default_boundary_breaks(*shared).copy()
    return _boundary_breaks(load_panel() if panel is None else panel)


@lru_cache(maxsize=2)
def _default_boundary_breaks(path: str, mtime: float) -> pd.DataFrame:
    return _boundary_breaks(_read_panel(path, mtime))


def _boundary_breaks(panel: pd.DataFrame) -> pd.DataFrame:
    # From the looked-after series, as the panel's boundary_* columns are (the workforce year
    # to 30 September lists a new authority half a year before its first reporting year).
    if panel["measure"].isin(LOOKED_AFTER_MEASURES).any():
        panel = panel[panel["measure"].isin(LOOKED_AFTER_MEASURES)]
    keyed = panel.assign(key=panel["la_code"].fillna(panel["new_la_code"]))
    return detect_boundary_changes(keyed)
