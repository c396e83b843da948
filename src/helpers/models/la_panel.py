"""The LA adapter of the comparative designs: the official panel (or a simulated one shaped like
it) as the designs need it: one LA's series, comparator series, donor pools of other LAs with
complete series and no boundary break, rates per 10,000 recomputed from counts.

Every design works on a panel passed in (for example `simulate_panel()` in tests) or, by
default, on the official panel from `helpers.data.load_panel()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers import data
from helpers.core import vocab
from helpers.core.errors import CareTrendsError
from helpers.core.records import EffectResult
from helpers.data import LARecord
from helpers.models.design import Interruption, parse_interruptions
from helpers.models.panel import make_panel
from helpers.spec import Event, interventions

LA_LEVEL = "Local authority"
RATE = "rate_per_10000"


# --------------------------------------------------------------------------------------------
# Panel access
# --------------------------------------------------------------------------------------------

def get_panel(panel: pd.DataFrame | None) -> pd.DataFrame:
    return data.load_panel() if panel is None else panel


def _is_official(panel: pd.DataFrame) -> bool:
    return not (panel.get("rate_source") is not None
                and (panel["rate_source"].astype(str) == "synthetic").all())


def _la_rows(panel: pd.DataFrame) -> pd.DataFrame:
    return panel[panel["geographic_level"] == LA_LEVEL]


def resolve_unit(la, panel: pd.DataFrame | None = None) -> LARecord:
    """The LA in `panel` (default the official panel) by name, old code or new code: the one
    resolver, `helpers.data.resolve_la`, on the panel the design uses."""
    return data.resolve_la(la, None if panel is None or _is_official(panel) else panel)


def boundary_break_codes(panel: pd.DataFrame) -> set[str]:
    """Old LA codes whose series break at a boundary change (predecessors and successors).

    Read from the panel's `boundary_flag` column (helpers.data), else a boolean `boundary_break`
    column (simulated panels), else `helpers.data.boundary_breaks()`."""
    las = _la_rows(panel)
    if "boundary_flag" in panel.columns:
        return set(las.loc[las["boundary_flag"].notna(), "la_code"].dropna().astype(str))
    if "boundary_break" in panel.columns:
        return set(las.loc[las["boundary_break"].astype(bool), "la_code"].dropna().astype(str))
    if not _is_official(panel):
        return set()
    return set(data.boundary_breaks()["la_code"].dropna().astype(str))


def _codes(items: Iterable[str], panel: pd.DataFrame) -> list[str]:
    return [resolve_unit(item, panel).la_code for item in items]


def _window(panel: pd.DataFrame, start_year: int | None, end_year: int | None) -> tuple[int, int]:
    years = panel["year"].dropna().astype(int)
    lo = int(years.min()) if start_year is None else int(start_year)
    hi = int(years.max()) if end_year is None else int(end_year)
    if lo < years.min() or hi > years.max() or lo >= hi:
        raise CareTrendsError(
            f"years {lo}-{hi} are outside the data ({years.min()}-{years.max()}); "
            "choose start_year/end_year inside that range")
    return lo, hi


def wide_rates(panel: pd.DataFrame, measure: str, start_year: int, end_year: int,
               value: str = RATE) -> pd.DataFrame:
    """LA x year table of one value (default the rate per 10,000) for one measure.

    The rate is recomputed as count / population x 10,000 wherever both are present: DfE publishes
    rates rounded to whole numbers, and mixing rounded and unrounded years would add noise that the
    designs (especially synthetic control's pre-period fit) would read as signal. Where the count is
    suppressed the panel's rate is used as is."""
    if measure not in vocab.MEASURES:
        raise CareTrendsError(vocab.suggest(measure, vocab.MEASURES, "outcome"))
    rows = _la_rows(panel)
    rows = rows[(rows["measure"] == measure) & rows["year"].between(start_year, end_year)].copy()
    if value == RATE:
        exact = rows["count"].astype(float) / rows["population"].astype(float) * 1e4
        rows["_value"] = exact.where(exact.notna(), rows[RATE].astype(float))
    else:
        rows["_value"] = rows[value].astype(float)
    wide = rows.pivot_table(index="la_code", columns="year", values="_value", aggfunc="first",
                            dropna=False)
    wide.columns = wide.columns.astype(int)
    wide.index = wide.index.astype(str)
    return wide.reindex(columns=range(start_year, end_year + 1))


def donor_pool(la: str, measure: str = "starts", start_year: int = 2014,
               end_year: int | None = None, exclude_donors: Sequence[str] = (),
               panel: pd.DataFrame | None = None, exclude_boundary_breaks: bool = True
               ) -> tuple[LARecord, pd.DataFrame, pd.DataFrame]:
    """The treated LA, its rate series and the donors' (LA x year), complete over the window.

    Donors exclude the treated LA, LAs with boundary breaks, LAs named in `exclude_donors` (their own
    programmes), and LAs with any missing rate in the window (so the panel is balanced).
    Returns (unit, treated series indexed by year, donors table indexed by la_code).
    """
    panel = get_panel(panel)
    unit = resolve_unit(la, panel)
    start_year, end_year = _window(panel, start_year, end_year)
    wide = wide_rates(panel, measure, start_year, end_year)
    if unit.la_code not in wide.index or wide.loc[unit.la_code].isna().any():
        missing = [] if unit.la_code not in wide.index else \
            [int(y) for y in wide.columns[wide.loc[unit.la_code].isna()]]
        raise CareTrendsError(
            f"{unit.la_name} has no {measure} rate for {missing or 'the window'}; "
            "choose a start_year/end_year where its series is complete")
    excluded = set(_codes(exclude_donors, panel)) | {unit.la_code}
    if exclude_boundary_breaks:
        excluded |= boundary_break_codes(panel)
    donors = wide.drop(index=[c for c in excluded if c in wide.index]).dropna()
    if len(donors) < 5:
        raise CareTrendsError(
            f"only {len(donors)} donor LAs have complete {measure} rates for {start_year}-{end_year}; "
            "shorten the window or exclude fewer donors")
    return unit, wide.loc[unit.la_code].astype(float), donors.astype(float)


def la_names(panel: pd.DataFrame) -> dict[str, str]:
    las = _la_rows(panel)[["la_code", "la_name"]].dropna().drop_duplicates("la_code", keep="last")
    return dict(zip(las["la_code"].astype(str), las["la_name"].astype(str)))


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare whole frames
class LAEventResult(EffectResult):
    """What DiD, the event study and synthetic control share: one LA (`unit`), one event, the
    effects, the counterfactual path and the placebo units' results."""

    outcome: str
    unit: LARecord
    event: Interruption
    effects: pd.DataFrame
    counterfactual: pd.DataFrame
    placebos: pd.DataFrame
    n_donors: int


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------

def normalise_events(events) -> list[Interruption]:
    """Events in time order as annual interruptions (first in force in the first reporting year
    wholly after the date): from spec Events or dicts as in a YAML file, Interruptions, or
    {name: first year}. An event in February 2024 is first in force in 2025."""
    if isinstance(events, Event) or (isinstance(events, dict) and "name" in events):
        events = [events]  # one event given on its own
    if events is None or len(events) == 0:
        raise CareTrendsError("no events given; add at least one {'name': ..., 'date': ...}")
    if isinstance(events, dict):
        return parse_interruptions({k: int(v) for k, v in events.items()})
    if all(isinstance(ev, Interruption) for ev in events):
        return sorted(events, key=lambda e: (e.first_in_force, e.name))
    return parse_interruptions(**interventions(list(events), "annual"))


def one_event(event) -> Interruption:
    """One event for DiD / synthetic control; given a list, the last one in time."""
    if isinstance(event, Interruption):
        return event
    return normalise_events(event)[-1]


def check_event_years(events: Sequence[Interruption], years: np.ndarray, min_pre: int = 3) -> None:
    first, last = int(years.min()), int(years.max())
    for ev in events:
        if int(ev.start) > last:
            raise CareTrendsError(
                f"event {ev.name!r} is first in force in reporting year {int(ev.start)}, after the last year "
                f"of data ({last}); drop it or extend end_year")
        if int(ev.start) - first < min_pre:
            raise CareTrendsError(
                f"event {ev.name!r} leaves only {int(ev.start) - first} pre-event years from {first}; "
                f"need at least {min_pre}: use an earlier start_year")


def treated_and_donors(la, outcome, event, start_year, end_year, exclude_donors, panel):
    """(panel, event, unit, treated series, donors table, years) for DiD, the event study and
    synthetic control: one event, a complete balanced window, at least 2 pre-event years."""
    panel = get_panel(panel)
    event = one_event(event)
    unit, treated, donors = donor_pool(la, outcome, start_year, end_year, exclude_donors, panel)
    years = np.asarray(treated.index, int)
    check_event_years([event], years, min_pre=2)
    return panel, event, unit, treated, donors, years


def la_rate_panel(la, outcome: str, event: Interruption, start_year: int, end_year: int | None,
                  exclude_donors: Sequence[str] = (), panel: pd.DataFrame | None = None):
    """The LA and its donor pool as a `helpers.models.panel` Panel of rates per 10,000 (the same
    donors and window as DiD and synthetic control), the LA treated from the event."""
    unit, treated, donors = donor_pool(la, outcome, start_year, end_year, exclude_donors, panel)
    wide = pd.concat([treated.rename(unit.la_code).to_frame().T, donors])
    long = (wide.rename_axis("la_code").reset_index()
            .melt(id_vars="la_code", var_name="year", value_name=RATE))
    long["year"] = long["year"].astype(int)
    return make_panel(long, unit="la_code", time="year", outcome=RATE,
                      treatment={unit.la_code: int(event.start)})


# --------------------------------------------------------------------------------------------
# Comparator series (controlled ITS)
# --------------------------------------------------------------------------------------------

def _series_rows(panel, measure, mask, start_year, end_year) -> pd.DataFrame:
    rows = panel[mask & (panel["measure"] == measure) & panel["year"].between(start_year, end_year)]
    return (rows.groupby("year")[["count", "population"]].sum(min_count=1)
            .reindex(range(start_year, end_year + 1)))


def comparator_series(la: str, measure: str = "starts", comparator="statistical_neighbours_2021",
                      start_year: int = 2014, end_year: int | None = None,
                      panel: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The treated LA's and the comparator's annual counts, populations and rates.

    Returns (treated, comparator, label); both frames have year, count, population, rate_per_10000.
    The comparator is built from counts and populations (so it is the pooled rate, not an average of
    rates); LAs with a missing count in any year of the window are left out of a list comparator so
    its membership is the same every year.
    """
    panel = get_panel(panel)
    unit = resolve_unit(la, panel)
    start_year, end_year = _window(panel, start_year, end_year)
    las = _la_rows(panel)
    treated = _series_rows(panel, measure, panel.index.isin(las.index)
                           & (panel["la_code"].astype(str) == unit.la_code), start_year, end_year)
    if treated["count"].isna().any():
        raise CareTrendsError(f"{unit.la_name} has missing {measure} counts in {start_year}-{end_year}; "
                              "choose a window where its series is complete")
    if isinstance(comparator, str) and comparator in ("england_minus_la", "region"):
        if comparator == "england_minus_la":
            mask = panel["geographic_level"] == "National"
            label = f"England excluding {unit.la_name}"
        else:
            if unit.region_name is None:
                raise CareTrendsError(f"{unit.la_name} has no region in the panel; use another comparator")
            mask = (panel["geographic_level"] == "Regional") & (
                (panel["region_name"] == unit.region_name) | (panel["la_name"] == unit.region_name))
            label = f"{unit.region_name} excluding {unit.la_name}"
        total = _series_rows(panel, measure, mask, start_year, end_year)
        if total["count"].isna().all():  # no aggregate rows: sum the LAs instead
            members = las if comparator == "england_minus_la" else las[las["region_name"] == unit.region_name]
            codes = sorted(set(members["la_code"].dropna().astype(str)) - {unit.la_code})
            comp, label_list = _sum_las(panel, measure, codes, start_year, end_year)
        else:
            comp = total - treated
    else:
        if isinstance(comparator, str) and comparator.startswith("statistical_neighbours_"):
            edition = comparator.rsplit("_", 1)[1]
            codes = [str(c) for c in data.statistical_neighbours(unit.la_code, edition=edition)]
            label = f"{unit.la_name}'s statistical neighbours ({edition})"
        elif isinstance(comparator, str):
            raise CareTrendsError(vocab.suggest(comparator, vocab.COMPARATORS, "comparator")
                                  + " (or a list of LA codes)")
        else:
            codes = _codes(comparator, panel)
            label = "comparator LAs"
        codes = [c for c in codes if c != unit.la_code]
        comp, used = _sum_las(panel, measure, codes, start_year, end_year)
        label = f"{label} ({len(used)} LAs)"
    comp = comp.copy()
    if comp["count"].isna().any() or (comp["population"] <= 0).any():
        raise CareTrendsError(f"the comparator {label} has missing {measure} data in {start_year}-{end_year}; "
                              "choose another comparator or window")
    out = []
    for frame in (treated, comp):
        frame = frame.rename_axis("year").reset_index()
        frame[RATE] = frame["count"] / frame["population"] * 1e4
        out.append(frame)
    return out[0], out[1], label


def _sum_las(panel, measure, codes, start_year, end_year):
    breaks = boundary_break_codes(panel)
    wide_n = wide_rates(panel, measure, start_year, end_year, value="count")
    wide_p = wide_rates(panel, measure, start_year, end_year, value="population")
    used = [c for c in codes if c in wide_n.index and c not in breaks
            and wide_n.loc[c].notna().all() and wide_p.loc[c].notna().all()]
    if not used:
        raise CareTrendsError("none of the comparator LAs has complete data in the window; "
                              "choose another comparator")
    comp = pd.DataFrame({"count": wide_n.loc[used].sum(), "population": wide_p.loc[used].sum()})
    comp.index = comp.index.astype(int)
    return comp, used


# --------------------------------------------------------------------------------------------
# Simulated panel (tests, benchmarks, examples): every row labelled synthetic
# --------------------------------------------------------------------------------------------

def simulate_panel(n_las: int = 40, start_year: int = 2010, end_year: int = 2025,
                   treated: int = 0, event_year: int | None = None, level_ratio: float = 1.0,
                   slope_ratio: float = 1.0, effect_measures: Sequence[str] = ("starts",),
                   n_regions: int = 4, seed: int = 1, noise: float = 0.03,
                   trend_sd: float = 0.005) -> pd.DataFrame:
    """A SYNTHETIC panel shaped like `helpers.data.load_panel()`: LAs, regions and England.

    Log rates = LA level + LA trend (sd `trend_sd`) + common year shocks + noise; counts are
    Poisson. The LA at
    position `treated` (code '800' + position) has its expected rate multiplied by `level_ratio` and
    by `slope_ratio` per year from `event_year` on. Every row has rate_source 'synthetic' and the
    expected rate without the effect in `rate_counterfactual` (so tests know the truth).
    """
    rng = np.random.default_rng(seed)
    years = np.arange(start_year, end_year + 1)
    T = len(years)
    base = {"starts": 25.0, "cla_31_march": 70.0, "ceased": 24.0}
    alpha = rng.normal(0.0, 0.3, n_las)
    beta = rng.normal(0.02, trend_sd, n_las)
    alpha[treated], beta[treated] = 0.0, 0.02  # treated sits in the middle of the donors
    shock = np.cumsum(rng.normal(0.0, 0.04, T))
    pop = rng.uniform(2e4, 2.5e5, n_las)
    pop[treated] = 2e5  # a large treated LA, so its Poisson noise does not swamp the effect
    pop = pop[:, None] * (1 + 0.003 * (years - start_year))[None, :]
    codes = [str(800 + i) for i in range(n_las)]
    regions = [f"Region {chr(65 + i % n_regions)}" for i in range(n_las)]
    frames = []
    for m_i, (measure, b) in enumerate(base.items()):
        log_rate = (np.log(b) + alpha[:, None] + beta[:, None] * (years - start_year)[None, :]
                    + shock[None, :] + rng.normal(0.0, noise, (n_las, T)) + 0.1 * m_i)
        rate_cf = np.exp(log_rate)
        rate = rate_cf.copy()
        if event_year is not None and measure in effect_measures:
            post = years >= event_year
            rate[treated, post] *= level_ratio * slope_ratio ** (years[post] - event_year)
        count = rng.poisson(rate * pop / 1e4).astype(float)
        frames.append(pd.DataFrame({
            "year": np.tile(years, n_las), "geographic_level": LA_LEVEL,
            "la_code": np.repeat(codes, T), "new_la_code": np.repeat([f"E0S{c}" for c in codes], T),
            "la_name": np.repeat([f"Simulated LA {c}" for c in codes], T),
            "region_name": np.repeat(regions, T), "measure": measure, "count": count.ravel(),
            "population": pop.ravel(), "rate_counterfactual": rate_cf.ravel()}))
    las = pd.concat(frames, ignore_index=True)
    las[RATE] = las["count"] / las["population"] * 1e4
    agg = []
    for level, key in (("Regional", "region_name"), ("National", None)):
        grouped = las.groupby(["measure", "year"] + ([key] if key else []), as_index=False)[
            ["count", "population"]].sum()
        grouped["geographic_level"] = level
        if key:
            grouped["la_name"] = grouped[key]
            grouped["new_la_code"] = "E12S" + grouped[key].str[-1]
        else:
            grouped["la_name"], grouped["region_name"], grouped["new_la_code"] = "England", None, "E92000001"
        grouped["la_code"] = None
        grouped[RATE] = grouped["count"] / grouped["population"] * 1e4
        agg.append(grouped)
    panel = pd.concat([las, *agg], ignore_index=True)
    panel["rate_source"] = "synthetic"
    panel["boundary_break"] = False
    cols = ["year", "geographic_level", "la_code", "new_la_code", "la_name", "region_name", "measure",
            "count", "population", RATE, "rate_source", "boundary_break", "rate_counterfactual"]
    return panel[cols].sort_values(["geographic_level", "la_code", "measure", "year"],
                                   ignore_index=True)


