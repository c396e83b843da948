"""Monthly and annual series from a clean SSDA903 extract.

Definitions (DfE's, applied month by month):
- a *start* is an episode with RNE = S (a period of care begins), excluding the short-break legal
  statuses V3/V4, which DfE leaves out of the looked-after statistics;
- a *ceased* (exit) is an episode with an end date and a reason other than X1 (X1 = a new episode
  follows the same day), again excluding V3/V4;
- the *month-end number in care* counts episodes (one per child once overlaps are cut) open at the
  end of the month's last day: started on or before it, not ended on or before it.
The annual aggregation counts each child once per reporting year (DfE's rule), so a child starting
twice in a year is one start there but two in the monthly series; `annual_counts` reports both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import data
from helpers.core import timeline
from helpers.core.errors import CareTrendsError
from helpers.ssda903 import codes
from helpers.ssda903.disclosure import check_threshold
from helpers.ssda903.extract import Extract, numpy_days

EXIT_COLUMNS = [f"ceased_{group}" for group in codes.EXIT_GROUPS]
BREAKDOWNS = {"age_band": [b[0] for b in codes.AGE_BANDS],
              "cin": sorted(codes.CIN_CODES, key=lambda c: int(c[1:])),
              "legal_status": ["C1", "C2", "D1", "E1", "V2", "L1", "L2", "L3", "J1", "J2", "J3"]}


def _day(value) -> int:
    return int(np.datetime64(pd.Timestamp(value).date(), "D").astype("int64"))


def _month_idx(dates: pd.Series) -> np.ndarray:
    return ((dates.dt.year - timeline.MONTH_ORIGIN.year) * 12 + dates.dt.month - 1).to_numpy()


def _window(extract: Extract, start=None, end=None) -> tuple[int, int]:
    first = timeline.month_index(start if start is not None else extract.coverage_start)
    last = timeline.month_index(end if end is not None else extract.coverage_end)
    if start is not None and pd.Timestamp(start) < extract.coverage_start.to_period("M").to_timestamp():
        raise CareTrendsError(f"start {start} is before the extract's coverage "
                              f"({extract.coverage_start:%Y-%m}); choose a later start")
    if last < first:
        raise CareTrendsError(f"no month between {start} and {end}; check the dates")
    return first, last


def counted_episodes(extract: Extract) -> pd.DataFrame:
    """Episodes DfE counts (short breaks V3/V4 left out), with the columns derivations use."""
    if "counted" not in extract.cache:
        ep = extract.episodes[["CHILD", "DECOM", "DEC", "RNE", "LS", "CIN", "REC"]]
        extract.cache["counted"] = ep[~ep["LS"].isin(codes.SHORT_BREAK_LS).to_numpy()]
    return extract.cache["counted"]


def _starts(ep: pd.DataFrame) -> pd.DataFrame:
    return ep[ep["RNE"] == "S"]


def _exits(ep: pd.DataFrame) -> pd.DataFrame:
    return ep[ep["DEC"].notna() & (ep["REC"] != codes.CONTINUING_REC)]


def _count_by_month(months: np.ndarray, first: int, last: int) -> np.ndarray:
    inside = (months >= first) & (months <= last)
    return np.bincount(months[inside] - first, minlength=last - first + 1)


def _month_ends(first: int, last: int) -> pd.DatetimeIndex:
    periods = pd.period_range(timeline.month_from_index(first), timeline.month_from_index(last), freq="M")
    return periods.to_timestamp(how="end").normalize()


def in_care_at(ep: pd.DataFrame, dates) -> np.ndarray:
    """Number of episodes open at the end of each date (DECOM <= d < DEC)."""
    days = np.asarray(pd.DatetimeIndex(dates).to_numpy(dtype="datetime64[D]").astype("int64"))
    starts = np.sort(numpy_days(ep["DECOM"]))
    ends = np.sort(numpy_days(ep["DEC"]))
    return np.searchsorted(starts, days, side="right") - np.searchsorted(ends, days, side="right")


def monthly_series(extract: Extract, start=None, end=None) -> pd.DataFrame:
    """One row per month: month, t (Jan 2010 = 0), reporting_year, calendar_month, starts, ceased,
    ceased_<group> for the five exit groups, cla_month_end."""
    first, last = _window(extract, start, end)
    ep = counted_episodes(extract)
    starts = _starts(ep)
    exits = _exits(ep)
    t = np.arange(first, last + 1)
    periods = [timeline.month_from_index(i) for i in t]
    out = pd.DataFrame({
        "month": [str(p) for p in periods],
        "t": t,
        "reporting_year": [p.year + 1 if p.month >= 4 else p.year for p in periods],
        "calendar_month": [p.month for p in periods],
        "starts": _count_by_month(_month_idx(starts["DECOM"]), first, last),
        "ceased": _count_by_month(_month_idx(exits["DEC"]), first, last),
    })
    group = exits["REC"].map(codes.REC_TO_GROUP).fillna("other")
    exit_months = _month_idx(exits["DEC"])
    for name in codes.EXIT_GROUPS:
        out[f"ceased_{name}"] = _count_by_month(exit_months[(group == name).to_numpy()], first, last)
    out["cla_month_end"] = in_care_at(ep, _month_ends(first, last))
    out.attrs["synthetic"] = bool(extract.synthetic)  # fit_its and charts label SYNTHETIC
    return out


def age_band(age_years: pd.Series) -> pd.Series:
    bands = pd.Series("unknown", index=age_years.index, dtype=object)
    for name, low, high in codes.AGE_BANDS:
        bands[(age_years >= low) & (age_years < high)] = name
    return bands


def age_at(dob: pd.Series, when: pd.Series) -> pd.Series:
    """Whole years of age on a date (NaN when the date of birth is unknown)."""
    years = when.dt.year - dob.dt.year
    before_birthday = (when.dt.month < dob.dt.month) | (
        (when.dt.month == dob.dt.month) & (when.dt.day < dob.dt.day))
    return years - before_birthday.astype(float)


def starts_table(extract: Extract) -> pd.DataFrame:
    """Counted starts with their characteristics (child-level: for aggregation only)."""
    if "starts_table" in extract.cache:
        return extract.cache["starts_table"]
    st = _starts(counted_episodes(extract))[["CHILD", "DECOM", "LS", "CIN"]]
    dob = extract.header.set_index("CHILD")["DOB"]
    ages = age_at(st["CHILD"].map(dob), st["DECOM"])
    extract.cache["starts_table"] = pd.DataFrame({"CHILD": st["CHILD"].to_numpy(), "DECOM": st["DECOM"].to_numpy(),
                         "t": _month_idx(st["DECOM"]),
                         "reporting_year": np.where(st["DECOM"].dt.month >= 4, st["DECOM"].dt.year + 1,
                                                    st["DECOM"].dt.year),
                         "age_band": age_band(ages).to_numpy(),
                         "cin": st["CIN"].where(st["CIN"].isin(codes.CIN_CODES), "unknown").to_numpy(),
                         "legal_status": st["LS"].where(st["LS"].isin(codes.LS_CODES), "unknown").to_numpy()})
    return extract.cache["starts_table"]


def starts_by(extract: Extract, by: str = "age_band", freq: str = "month", start=None,
              end=None) -> pd.DataFrame:
    """Starts by age band, category of need ('cin') or legal status, per month or reporting year.

    Wide table: one row per month (`t`, `month`) or `reporting_year`, one column per category in
    DfE order (plus 'unknown' when some are unknown)."""
    if by not in BREAKDOWNS:
        raise CareTrendsError(f"unknown breakdown {by!r}; use one of {', '.join(BREAKDOWNS)}")
    if freq not in ("month", "reporting_year"):
        raise CareTrendsError(f"unknown freq {freq!r}; use 'month' or 'reporting_year'")
    first, last = _window(extract, start, end)
    st = starts_table(extract)
    st = st[(st["t"] >= first) & (st["t"] <= last)]
    cats = BREAKDOWNS[by] + (["unknown"] if (~st[by].isin(BREAKDOWNS[by])).any() else [])
    if freq == "month":
        index = pd.Index(np.arange(first, last + 1), name="t")
        table = st.groupby(["t", by]).size().unstack(fill_value=0).reindex(
            index=index, columns=cats, fill_value=0)
        table.insert(0, "month", [str(timeline.month_from_index(i)) for i in index])
    else:
        years = sorted(set(_full_years(extract, first, last)))
        index = pd.Index(years, name="reporting_year")
        table = st.groupby(["reporting_year", by]).size().unstack(fill_value=0).reindex(
            index=index, columns=cats, fill_value=0)
    table.columns.name = None
    return table.reset_index()


def _full_years(extract: Extract, first: int, last: int) -> list[int]:
    """Reporting years whose twelve months all lie in [first, last]."""
    years = []
    for year in range(timeline.month_from_index(first).year, timeline.month_from_index(last).year + 2):
        if first <= timeline.month_index(f"{year - 1}-04-01") and timeline.month_index(f"{year}-03-01") <= last:
            years.append(year)
    return years


def annual_counts(extract: Extract, start=None, end=None) -> pd.DataFrame:
    """DfE-style annual figures for each complete reporting year in the extract.

    starts / ceased count each child once per reporting year (DfE); starts_periods /
    ceased_periods count periods of care (the sums of the monthly series); cla_31_march counts
    children in care at the end of 31 March.
    """
    first, last = _window(extract, start, end)
    ep = counted_episodes(extract)
    child = pd.factorize(ep["CHILD"])[0]
    decom, dec = numpy_days(ep["DECOM"]), numpy_days(ep["DEC"])
    is_start = (ep["RNE"] == "S").to_numpy()
    is_exit = (ep["DEC"].notna() & (ep["REC"] != codes.CONTINUING_REC)).to_numpy()
    rows = []
    for year in _full_years(extract, first, last):
        lo, hi = _day(f"{year - 1}-04-01"), _day(f"{year}-03-31")
        s = is_start & (decom >= lo) & (decom <= hi)
        c = is_exit & (dec >= lo) & (dec <= hi)
        open_ = (decom <= hi) & (dec > hi)
        rows.append({"reporting_year": year, "starts": np.unique(child[s]).size,
                     "ceased": np.unique(child[c]).size, "cla_31_march": np.unique(child[open_]).size,
                     "starts_periods": int(s.sum()), "ceased_periods": int(c.sum())})
    return pd.DataFrame(rows, columns=["reporting_year", "starts", "ceased", "cla_31_march",
                                       "starts_periods", "ceased_periods"])


def suppress_small(table: pd.DataFrame, threshold: int | None = 5, columns=None) -> pd.DataFrame:
    """Counts from 1 to threshold-1 shown as '<threshold' (default '<5'); 0 and larger as integers.

    Cell by cell only: when the table also shows totals of these counts, use
    `suppress_small_counts`, which hides further cells so no total gives a small one away.
    A threshold below 5 (the published rule) is refused; `threshold=None` turns suppression off,
    for internal checks only, never for publication.
    """
    if threshold is not None:
        threshold = check_threshold(threshold)
    out = table.copy()
    if columns is None:
        columns = [c for c in out.columns if pd.api.types.is_numeric_dtype(out[c])
                   and c not in ("t", "reporting_year", "year", "calendar_month")]
    for col in columns:
        values = out[col]
        text = values.round().astype("Int64").astype(str)
        if threshold:
            small = (values >= 1) & (values < threshold)
            text = text.where(~small, f"<{threshold}")
        out[col] = text.astype(object)
    return out


def attach_population(monthly: pd.DataFrame, la: str) -> pd.DataFrame:
    """Add `population` (children aged 0-17, from the official panel) to a monthly series,
    interpolated between ONS mid-year estimates (DfE uses mid-(Y-1) for reporting year Y)."""
    pop = data.annual_series(la, "cla_31_march")[["year", "population"]].dropna()
    if pop.empty:
        raise CareTrendsError(f"no population figures for {la}; fit without an offset "
                              "(offset=None)")
    mid = np.array([timeline.month_index(f"{int(y) - 1}-06-01") + 0.5 for y in pop["year"]])
    out = monthly.copy()
    out["population"] = np.interp(out["t"].to_numpy(dtype=float) + 0.5, mid,
                                  pop["population"].to_numpy(dtype=float)).round()
    return out
