"""Every authority at once: a league table of level and slope changes, and a funnel plot
(numbers only; `helpers.present.national` draws and words them).

League table: the segmented count model (`helpers.its_batch.fit_many`, one vectorised call) for
every LA, for a chosen event date or for "the latest year against its own trend" (a level change in
the final year only: how far that year sits from the LA's own earlier trend).

Funnel plot (Spiegelhalter 2005, "Funnel plots for comparing institutional performance", as used by
public-health analysts, e.g. the PHE/OHID funnel-plot tools): each LA's observed count against the
count expected if it had the all-LA rate, plotted as a rate per 10,000 children against the child
population, with exact Poisson control limits at 95% (about 2 standard errors) and 99.8% (about 3).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from helpers.core import timeline, vocab
from helpers.core.errors import CareTrendsError
from helpers.core.records import CONTEXT_KEYS, effects_to_records
from helpers import data
from helpers.models.batch import fit_many
from helpers.models.panel import Panel, fit_callaway_santanna, make_panel

#: Control-limit coverages public-health funnel plots use (about 2 and 3 standard errors).
FUNNEL_LEVELS = (0.95, 0.998)
LATEST_YEAR = "latest"
PER = 10_000


# ---------------------------------------------------------------------------------------------
# Selecting the LA rows of the panel
# ---------------------------------------------------------------------------------------------

def local_authorities(panel: pd.DataFrame, measure: str | None = None,
                      start_year: int | None = None, end_year: int | None = None,
                      drop_boundary_breaks: bool = True) -> pd.DataFrame:
    """LA rows of the long panel (optionally one measure and a year window).

    With `drop_boundary_breaks`, LAs whose series break at a boundary change (helpers.data's
    `boundary_flag`: predecessor or successor) are left out: before and after are different places.
    """
    rows = panel
    if "geographic_level" in rows.columns:
        rows = rows[rows["geographic_level"] == "Local authority"]
    if measure is not None:
        known = sorted(rows["measure"].dropna().unique())
        if measure not in known:
            raise CareTrendsError(f"unknown measure {measure!r}; choose one of {known}")
        rows = rows[rows["measure"] == measure]
    if start_year is not None:
        rows = rows[rows["year"] >= start_year]
    if end_year is not None:
        rows = rows[rows["year"] <= end_year]
    if drop_boundary_breaks and "boundary_flag" in rows.columns:
        broken = rows.loc[rows["boundary_flag"].notna(), "la_code"].unique()
        rows = rows[~rows["la_code"].isin(broken)]
    rows = rows[rows["la_code"].notna()]
    if rows.empty:
        raise CareTrendsError("no local-authority rows in the panel for that measure and years; "
                              "check start_year/end_year")
    return rows.reset_index(drop=True)


def resolve_la_code(panel: pd.DataFrame, la) -> str | None:
    """Old 3-digit LA code for a name or code, by the one resolver (`helpers.data.resolve_la`)."""
    if la is None:
        return None
    text = str(la).strip()
    if "la_code" in panel.columns and text in set(panel["la_code"].dropna().astype(str)):
        return text
    return str(data.resolve_la(la).la_code)


# ---------------------------------------------------------------------------------------------
# League table of level and slope changes
# ---------------------------------------------------------------------------------------------

def event_year(event_date, years: Iterable[int]) -> int:
    """First full reporting year after the event, or the final year for "latest" (None)."""
    years = sorted(int(y) for y in years)
    if event_date is None or str(event_date).lower() == LATEST_YEAR:
        return years[-1]
    first = timeline.first_full_reporting_year(event_date)
    if first <= years[0] or first > years[-1]:
        raise CareTrendsError(
            f"event date {event_date} is first in force in reporting year {first}, outside the "
            f"data ({years[0]}-{years[-1]}); pick a date between them")
    return first


def league_table(panel: pd.DataFrame, *, measure: str = "starts", event_date=None,
                 effects: Iterable[str] = ("level", "slope"), family: str = "quasipoisson",
                 start_year: int | None = 2014, end_year: int | None = None,
                 min_pre_years: int = 3, drop_boundary_breaks: bool = True) -> pd.DataFrame:
    """Every LA's level (and slope) change in `measure` at one event, with 95% intervals.

    event_date None or "latest": the latest year against the LA's own trend (level only: the
    ratio of the final year's count to the value its earlier trend predicts). Otherwise the event
    is in force from its first full reporting year (helpers.timeline). One row per LA and effect:
    la_code, la_name, region_name, effect, estimate, ci_low, ci_high, p_value, scale, rank (1 =
    largest ratio), n_obs, dispersion, plus `event_year` and `measure`.
    """
    rows = local_authorities(panel, measure, start_year, end_year, drop_boundary_breaks)
    years = sorted(rows.loc[rows["count"].notna(), "year"].unique())
    if not years:
        raise CareTrendsError(f"no published {measure} counts in the chosen years")
    first = event_year(event_date, years)
    latest = event_date is None or str(event_date).lower() == LATEST_YEAR
    effects = ("level",) if latest else tuple(effects)
    pre, post = sum(y < first for y in years), sum(y >= first for y in years)
    if pre < min_pre_years:
        raise CareTrendsError(f"only {pre} reporting years before {first}; the trend needs at "
                              f"least {min_pre_years}: choose a later event date or an earlier "
                              "start_year")
    if "slope" in effects and post < 2:
        raise CareTrendsError(f"only {post} reporting year from {first} on, too few for a slope "
                              "change; use effects=['level'] or an earlier event date")
    name = "latest_year" if latest else "event"
    res = fit_many(rows, measures=[measure], interventions={name: first}, effects=effects,
                   family=family, time="year", outcome="count", offset="population",
                   keys=("la_code", "measure"))
    table = res.effects.merge(res.diagnostics[["la_code", "n_obs", "dispersion", "converged"]],
                              on="la_code", how="left")
    table = table[table["converged"]].drop(columns=["converged", "intervention"])
    info_cols = [c for c in ("la_name", "region_name") if c in rows.columns]
    if info_cols:
        info = rows.sort_values("year").drop_duplicates("la_code", keep="last")
        table = table.merge(info[["la_code"] + info_cols], on="la_code", how="left")
    table["event_year"] = first
    table["rank"] = (table.groupby("effect")["estimate"].rank(ascending=False, method="min")
                     .astype(int))
    front = ["la_code", *info_cols, "measure", "effect", "estimate", "ci_low", "ci_high",
             "p_value", "scale", "rank", "n_obs", "dispersion", "event_year"]
    return table[front].sort_values(["effect", "rank", "la_code"]).reset_index(drop=True)


def where_la_sits(table: pd.DataFrame, la_code: str, effect: str = "level") -> dict:
    """Rank of one LA among all, for one effect: rank, n, estimate, interval, and whether its
    interval excludes no change (1)."""
    rows = table[table["effect"] == effect]
    hit = rows[rows["la_code"] == la_code]
    if hit.empty:
        raise CareTrendsError(f"LA {la_code} is not in the league table (suppressed counts or a "
                              "boundary change); choose another LA or set "
                              "drop_boundary_breaks=False")
    row = hit.iloc[0]
    return {"la_code": la_code, "effect": effect, "rank": int(row["rank"]), "n": len(rows),
            "estimate": float(row["estimate"]), "ci_low": float(row["ci_low"]),
            "ci_high": float(row["ci_high"]),
            "share_above": float((rows["estimate"] > row["estimate"]).mean()),
            "excludes_no_change": bool(row["ci_low"] > 1 or row["ci_high"] < 1)}


# ---------------------------------------------------------------------------------------------
# Funnel plot
# ---------------------------------------------------------------------------------------------

def poisson_limit(expected, p: float) -> np.ndarray:
    """Exact Poisson p-quantile of the count, interpolated so it is continuous in `expected`.

    Spiegelhalter (2005), appendix A.1.1: y_p is the smallest count with P(Y <= y_p) >= p and
    the limit is y_p - a, a = (P(Y <= y_p) - p) / (P(Y <= y_p) - P(Y <= y_p - 1)).
    """
    expected = np.asarray(expected, dtype=float)
    y_p = stats.poisson.ppf(p, expected)
    cdf = stats.poisson.cdf(y_p, expected)
    cdf_below = stats.poisson.cdf(y_p - 1, expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(cdf > cdf_below, (cdf - p) / (cdf - cdf_below), 0.0)
    return np.maximum(y_p - a, 0.0)


def funnel_limits(expected, levels: Iterable[float] = FUNNEL_LEVELS,
                  overdispersion: float = 1.0) -> pd.DataFrame:
    """Control limits on the observed/expected ratio for each expected count.

    Columns: expected, then lower_<pct> and upper_<pct> per level (pct 95, 99.8). With
    `overdispersion` phi > 1 the limits use the normal approximation with variance phi * E
    (Spiegelhalter's multiplicative adjustment); with phi = 1, exact Poisson limits.
    """
    expected = np.asarray(expected, dtype=float)
    out = {"expected": expected}
    for level in levels:
        tail = (1 - level) / 2
        pct = f"{100 * level:g}"
        if overdispersion > 1.0:
            z = stats.norm.ppf(1 - tail)
            half = z * np.sqrt(overdispersion / expected)
            out[f"lower_{pct}"] = np.maximum(1 - half, 0.0)
            out[f"upper_{pct}"] = 1 + half
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"lower_{pct}"] = poisson_limit(expected, tail) / expected
                out[f"upper_{pct}"] = poisson_limit(expected, 1 - tail) / expected
    return pd.DataFrame(out)


def overdispersion_factor(observed, expected, winsor: float = 0.1) -> float:
    """Spiegelhalter's multiplicative overdispersion phi from z-scores winsorised at 10%/90%."""
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    z = (observed - expected) / np.sqrt(expected)
    lo, hi = np.quantile(z, [winsor, 1 - winsor])
    return float(np.mean(np.clip(z, lo, hi) ** 2))


def funnel_data(panel: pd.DataFrame, *, measure: str = "starts", year: int | None = None,
                levels: Iterable[float] = FUNNEL_LEVELS, adjust_overdispersion: bool = False,
                drop_boundary_breaks: bool = False) -> pd.DataFrame:
    """One row per LA for a funnel plot of one year's counts.

    expected = the all-LA rate (sum of counts / sum of child population that year) x the LA's
    child population; ratio = observed / expected; rate_per_10000 from the same figures. `band`
    says where the LA sits: "within 95% limits", "above 95%", "above 99.8%", "below ..." (99.8%
    beyond 95%). year None: the latest year with counts. `attrs` carries year, national rate and
    the overdispersion factor used.
    """
    rows = local_authorities(panel, measure, drop_boundary_breaks=drop_boundary_breaks)
    rows = rows[rows["count"].notna() & (rows["population"] > 0)]
    if year is None:
        year = int(rows["year"].max())
    rows = rows[rows["year"] == year]
    if rows.empty:
        raise CareTrendsError(f"no published {measure} counts for {year}; pick a year in the data")
    keep = [c for c in ("la_code", "la_name", "region_name") if c in rows.columns]
    out = rows[keep + ["year", "population", "count"]].rename(columns={"count": "observed"})
    rate = out["observed"].sum() / out["population"].sum()
    out["expected"] = rate * out["population"]
    out["ratio"] = out["observed"] / out["expected"]
    out["rate_per_10000"] = PER * out["observed"] / out["population"]
    out["z_score"] = (out["observed"] - out["expected"]) / np.sqrt(out["expected"])
    phi = overdispersion_factor(out["observed"], out["expected"]) if adjust_overdispersion else 1.0
    limits = funnel_limits(out["expected"], levels, overdispersion=max(phi, 1.0))
    levels = sorted(levels)
    band = np.full(len(out), f"within {100 * levels[0]:g}% limits", dtype=object)
    for level in levels:  # widest last, so it wins
        pct = f"{100 * level:g}"
        band = np.where(out["ratio"].to_numpy() > limits[f"upper_{pct}"].to_numpy(),
                        f"above {pct}%", band)
        band = np.where(out["ratio"].to_numpy() < limits[f"lower_{pct}"].to_numpy(),
                        f"below {pct}%", band)
    out["band"] = band
    for col in limits.columns[1:]:
        out[col] = limits[col].to_numpy()
    out = out.sort_values("la_code").reset_index(drop=True)
    out.attrs.update(year=int(year), measure=measure, rate_per_10000=float(PER * rate),
                     overdispersion=float(phi), levels=tuple(levels))
    return out


def funnel_position(funnel: pd.DataFrame, la_code: str) -> dict:
    """One LA's row of the funnel: observed, expected, ratio, band."""
    hit = funnel[funnel["la_code"] == la_code]
    if hit.empty:
        raise CareTrendsError(f"LA {la_code} has no published count for {funnel.attrs['year']}; "
                              "choose another year or LA")
    row = hit.iloc[0]
    return {"la_code": la_code, "observed": float(row["observed"]),
            "expected": float(row["expected"]), "ratio": float(row["ratio"]),
            "rate_per_10000": float(row["rate_per_10000"]), "band": row["band"],
            "n_outside_998": int(funnel["band"].str.contains("99.8").sum()), "n": len(funnel)}


def batch_family(family: str) -> str:
    """fit_many batches the Poisson families; others are shown as quasi-Poisson (said in text)."""
    return family if family in vocab.BATCH_FAMILIES else "quasipoisson"


def la_records(table: pd.DataFrame, la_code: str, event_name: str, measure: str,
               **context) -> list[dict]:
    """results.json records for the analysis' LA from a league table (design
    'national_league_table': the same one-event model fitted to every LA)."""
    rows = table[table["la_code"] == la_code].assign(intervention=event_name)
    return effects_to_records(rows, outcome=measure, design="national_league_table",
                              **{key: context.get(key) for key in CONTEXT_KEYS})




# ---------------------------------------------------------------------------------------------
# What an inadequate judgement usually brings: a staggered design over every LA
# ---------------------------------------------------------------------------------------------

def inadequate_cohorts(start_year: int, end_year: int) -> pd.Series:
    """la_code -> the first reporting year wholly after the LA's first ILACS inadequate judgement
    (inspection date), for judgements leaving at least two earlier years in the window. ILACS
    began in 2018: a council judged inadequate only under the earlier framework counts as never
    judged here."""
    ofsted = data.load_ofsted_inspections()
    bad = ofsted[ofsted["judgement_key"].eq("inadequate")].sort_values("inspection_date")
    first = bad.drop_duplicates("la_code").set_index("la_code")["inspection_date"]
    years = first.map(lambda d: timeline.first_full_reporting_year(pd.Timestamp(d).date()))
    return years[(years >= start_year + 2) & (years <= end_year)].astype(int)


def judgement_panel(measure: str = "starts", start_year: int = 2014, end_year: int | None = None,
                    treated: dict | None = None, units=None) -> Panel:
    """Rates per 10,000 children for every LA with a complete series and no boundary change, as
    a `helpers.models.panel` Panel; `treated` maps LA codes to their first treated year
    (default: every ILACS inadequate judgement, `inadequate_cohorts`)."""
    rows = local_authorities(data.load_panel(), measure, start_year, end_year)
    end_year = int(rows["year"].max()) if end_year is None else end_year
    complete = rows.dropna(subset=["count", "population"]).groupby("la_code")["year"].count()
    keep = complete[complete == rows["year"].nunique()].index
    rows = rows[rows["la_code"].isin(keep if units is None else keep.intersection(units))]
    treated = inadequate_cohorts(start_year, end_year).to_dict() if treated is None else treated
    treated = {k: v for k, v in treated.items() if k in set(rows["la_code"])}
    panel = make_panel(rows, unit="la_code", time="year", outcome="count", exposure="population",
                       treatment=treated)
    return panel.rate(PER)


def inadequate_event_study(la_code: str | None = None, measure: str = "starts",
                           start_year: int = 2014, end_year: int | None = None):
    """(national, own): the Callaway & Sant'Anna (2021) event study of `measure` per 10,000
    around a first inadequate judgement, over every other judged LA with not-yet-judged LAs as
    controls; and, when `la_code` was judged inadequate, the same design for that LA alone
    against LAs never judged inadequate (None otherwise)."""
    cohorts = inadequate_cohorts(start_year, end_year or int(data.load_panel()["year"].max()))
    others = {k: v for k, v in cohorts.items() if k != la_code}
    national = fit_callaway_santanna(judgement_panel(measure, start_year, end_year, others),
                                     control_group="notyet", event="inadequate_judgement")
    own = None
    if la_code in cohorts.index:
        alone = judgement_panel(measure, start_year, end_year, {la_code: int(cohorts[la_code])})
        panel = alone.subset([u for u in alone.units
                              if u == la_code or u not in cohorts.index])
        own = fit_callaway_santanna(panel, control_group="never", event="inadequate_judgement")
    return national, own
