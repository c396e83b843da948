"""Every authority at once: a league table of level and slope changes, and a funnel plot.

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

from helpers.core import timeline
from helpers.core.errors import CareTrendsError
from helpers.its_batch import fit_many

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


def resolve_la_code(panel: pd.DataFrame, la) -> str:
    """Old 3-digit LA code for a name or code; names go through helpers.data.resolve_la."""
    if la is None:
        return None
    text = str(la).strip()
    if "la_code" in panel.columns and text in set(panel["la_code"].dropna().astype(str)):
        return text
    if "la_name" in panel.columns:
        names = panel.dropna(subset=["la_code"]).drop_duplicates("la_code")
        hit = names[names["la_name"].str.casefold() == text.casefold()]
        if len(hit) == 1:
            return str(hit["la_code"].iloc[0])
    from helpers import data  # the one place that knows LA names, codes and near misses

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


def _plain_log_ticks(ax) -> None:
    """Ratios on a log axis labelled 0.5, 1, 2 rather than 10^0."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    low, high = ax.get_ylim()
    ticks = [t for t in (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 4, 10) if low <= t <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_league(table: pd.DataFrame, effect: str = "level", highlight: str | None = None,
                ax=None, title: str | None = None):
    """Caterpillar plot: every LA's ratio with its interval, sorted, the chosen LA in colour."""
    import matplotlib.pyplot as plt

    from helpers.plotting import PALETTE

    rows = table[table["effect"] == effect].sort_values("estimate").reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    x = np.arange(len(rows))
    ax.vlines(x, rows["ci_low"], rows["ci_high"], color=PALETTE["comparator"], linewidth=0.8,
              alpha=0.6)
    ax.scatter(x, rows["estimate"], s=8, color=PALETTE["fitted"], zorder=3)
    ax.axhline(1.0, color="black", linewidth=0.8)
    if highlight is not None and (rows["la_code"] == highlight).any():
        i = int(np.flatnonzero(rows["la_code"] == highlight)[0])
        r = rows.iloc[i]
        ax.vlines(i, r["ci_low"], r["ci_high"], color=PALETTE["counterfactual"], linewidth=2.5,
                  zorder=4)
        ax.scatter([i], [r["estimate"]], s=40, color=PALETTE["counterfactual"], zorder=5)
        label = r["la_name"] if "la_name" in rows.columns else highlight
        ax.annotate(f" {label}", (i, r["ci_high"]), color=PALETTE["counterfactual"], fontsize=9,
                    ha="center", va="bottom")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xticks([])
    ax.set_xlabel(f"Local authorities, sorted by {effect} change ({len(rows)})")
    ax.set_ylabel(f"{effect.capitalize()} change (rate ratio, log scale)")
    ax.set_title(title or f"{effect.capitalize()} change in every local authority, 95% intervals")
    return ax


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


def plot_funnel(funnel: pd.DataFrame, highlight: str | None = None, ax=None,
                title: str | None = None):
    """Rate per 10,000 against child population, with the all-LA rate and its control limits."""
    import matplotlib.pyplot as plt

    from helpers.plotting import PALETTE

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    rate = funnel.attrs["rate_per_10000"] / PER
    phi = max(funnel.attrs.get("overdispersion", 1.0), 1.0)
    pop = np.geomspace(funnel["population"].min() * 0.8, funnel["population"].max() * 1.2, 300)
    limits = funnel_limits(rate * pop, funnel.attrs["levels"], overdispersion=phi)
    styles = {0: ("--", 1.0), 1: (":", 1.3)}
    for j, level in enumerate(funnel.attrs["levels"]):
        pct = f"{100 * level:g}"
        ls, lw = styles.get(j, ("-.", 1.0))
        ax.plot(pop, PER * rate * limits[f"upper_{pct}"], color="black", ls=ls, lw=lw,
                label=f"{pct}% limits")
        ax.plot(pop, PER * rate * limits[f"lower_{pct}"], color="black", ls=ls, lw=lw)
    ax.axhline(PER * rate, color="black", lw=0.8, label="all-LA rate")
    ax.scatter(funnel["population"], funnel["rate_per_10000"], s=12, color=PALETTE["fitted"],
               alpha=0.8, label="local authorities")
    if highlight is not None and (funnel["la_code"] == highlight).any():
        r = funnel[funnel["la_code"] == highlight].iloc[0]
        ax.scatter([r["population"]], [r["rate_per_10000"]], s=60, color=PALETTE["counterfactual"],
                   zorder=5, label=r.get("la_name", highlight))
    ax.set_xscale("log")
    ax.set_xlabel("Children aged 0-17 (log scale)")
    ax.set_ylabel(f"{funnel.attrs['measure'].replace('_', ' ')} per 10,000 children")
    note = " (limits adjusted for overdispersion)" if phi > 1 else ""
    year = timeline.reporting_year_label(funnel.attrs["year"])
    ax.set_title(title or f"Funnel plot, reporting year {year}{note}")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return ax


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


# ---------------------------------------------------------------------------------------------
# What the all-authorities notebook shows
# ---------------------------------------------------------------------------------------------

MEASURE_WORDS = {"starts": "children starting to be looked after",
                 "cla_31_march": "children looked after on 31 March",
                 "ceased": "children ceasing to be looked after"}


def choose_event(events, event_date=None, last_year: int | None = None) -> dict:
    """The event every LA is compared at: `event_date` if given ("latest" = the latest year
    against each LA's own trend), else the analysis' focus event (the latest declared event with
    at least 3 years of data after it, as the ITS notebook), else the latest year.
    Returns {name, title, date} (date None for the latest-year view)."""
    if event_date is not None and str(event_date).lower() == LATEST_YEAR:
        return {"name": "latest_year", "title": "the latest year against its own trend",
                "date": None}
    if event_date is not None:
        d = timeline.to_date(event_date)
        for ev in events or []:
            if timeline.to_date(ev["date"]) == d:
                return {"name": ev["name"], "title": ev.get("title", ev["name"]),
                        "date": d.isoformat()}
        return {"name": "event", "title": f"the event on {d.isoformat()}", "date": d.isoformat()}
    if events and last_year is not None:
        from helpers import its
        from helpers.views import choose_focus_event

        spec = its.interventions_from_events(events, frequency="annual")
        name = choose_focus_event(spec["interventions"], last_year)
        ev = next(e for e in events if e["name"] == name)
        return {"name": name, "title": ev.get("title", name),
                "date": timeline.to_date(ev["date"]).isoformat()}
    return choose_event(None, LATEST_YEAR)


def batch_family(family: str) -> str:
    """fit_many batches the Poisson families; others are shown as quasi-Poisson (said in text)."""
    return family if family in ("poisson", "quasipoisson") else "quasipoisson"


def league_view(table: pd.DataFrame, la_code: str, top: int = 5) -> pd.DataFrame:
    """Readable extract of the league table: the `top` largest and smallest level changes and the
    analysis' LA, with level and slope ratios and 95% intervals side by side."""
    from helpers.present.text import format_interval

    level = table[table["effect"] == "level"].sort_values("rank")
    keep = pd.concat([level.head(top), level[level["la_code"] == la_code], level.tail(top)])
    keep = keep.drop_duplicates("la_code").sort_values("rank")
    slope = table[table["effect"] == "slope"].set_index("la_code")
    rows = []
    for r in keep.itertuples():
        row = {"rank": f"{r.rank} of {len(level)}",
               "local authority": (f"{r.la_name} (this analysis)" if r.la_code == la_code
                                   else r.la_name),
               "region": getattr(r, "region_name", None),
               "level change (95% CI)": format_interval(r.estimate, r.ci_low, r.ci_high, "ratio")}
        if r.la_code in slope.index:
            s = slope.loc[r.la_code]
            row["trend change per year (95% CI)"] = format_interval(s["estimate"], s["ci_low"],
                                                                    s["ci_high"], "ratio")
        rows.append(row)
    return pd.DataFrame(rows)


def _band_words(band: str) -> str:
    if band.startswith("within"):
        return "within the 95% control limits"
    side, pct = band.split(" ", 1)
    inner = " (but within the 99.8% limits)" if pct.startswith("95") else ""
    return f"{side} the {pct} {'upper' if side == 'above' else 'lower'} control limit{inner}"


def _share(n: int, total: int) -> str:
    return f"{n} of {total}"


def reading(table: pd.DataFrame, latest: pd.DataFrame, funnel: pd.DataFrame, la_code: str,
            la_name: str, event: dict, measure: str = "starts") -> str:
    """Plain-English findings for the all-authorities notebook."""
    from helpers.present.text import ratio_as_percent

    words = MEASURE_WORDS.get(measure, measure)
    parts = []
    if table is not None:
        pos = where_la_sits(table, la_code, "level")
        level = table[table["effect"] == "level"]
        up = int((level["ci_low"] > 1).sum())
        down = int((level["ci_high"] < 1).sum())
        first = int(table["event_year"].iloc[0])
        parts.append(
            f"From reporting year {timeline.reporting_year_label(first)}, the first full year "
            f"after {event['title']}, {la_name}'s {words} were "
            f"{ratio_as_percent(pos['estimate'])} its earlier trend (rate ratio {pos['estimate']:.2f}, 95% CI {pos['ci_low']:.2f} to "
            f"{pos['ci_high']:.2f}), ranking {pos['rank']} of {pos['n']} authorities from the "
            f"largest rise to the largest fall. Across England, {_share(up, pos['n'])} authorities "
            f"had a level clearly above their own trend at that point and {_share(down, pos['n'])} "
            "clearly below, so a change at this date is "
            + ("common rather than particular to one council." if up + down > pos["n"] / 4
               else "not widespread.")
        )
    if latest is not None:
        pos = where_la_sits(latest, la_code, "level")
        year = int(latest["event_year"].iloc[0])
        parts.append(
            f"In the latest year ({timeline.reporting_year_label(year)}) {la_name} was "
            f"{ratio_as_percent(pos['estimate'])} what its own trend predicted (ratio "
            f"{pos['estimate']:.2f}, 95% CI {pos['ci_low']:.2f} to {pos['ci_high']:.2f}); "
            f"{pos['rank'] - 1} authorities were further above their trends."
        )
    if funnel is not None:
        f = funnel_position(funnel, la_code)
        national_rate = funnel.attrs["rate_per_10000"]
        outside = f["n_outside_998"]
        parts.append(
            f"On the funnel plot, {la_name}'s rate of {f['rate_per_10000']:.1f} per 10,000 "
            f"children (all-LA rate {national_rate:.1f}) is {_band_words(f['band'])}: "
            f"{f['observed']:.0f} observed against {f['expected']:.0f} expected. {outside} of "
            f"{f['n']} authorities lie outside the 99.8% limits, far more than the 0.2% chance "
            "alone would put there: councils differ for real (need, thresholds, practice), so a "
            "point outside the limits is a prompt to look, not a verdict."
        )
    return "\n\n".join(parts)


def la_records(table: pd.DataFrame, la_code: str, event_name: str, measure: str,
               **context) -> list[dict]:
    """results.json records for the analysis' LA from a league table (design
    'national_league_table': the same one-event model fitted to every LA)."""
    from helpers.core.records import clean_number as _clean_number

    rows = table[table["la_code"] == la_code]
    records = []
    for r in rows.to_dict("records"):
        record = {key: context.get(key) for key in ("analysis", "notebook", "la")}
        record.update(outcome=measure, event=event_name, design="national_league_table",
                      effect=r["effect"], scale=r["scale"])
        for key in ("estimate", "ci_low", "ci_high", "p_value"):
            record[key] = _clean_number(r[key])
        records.append(record)
    return records


def write_league_table(table: pd.DataFrame, path) -> None:
    """The full league table as CSV (rounded, written to a temp file then renamed)."""
    from pathlib import Path

    path = Path(path)
    out = table.copy()
    for col in ("estimate", "ci_low", "ci_high", "dispersion"):
        out[col] = out[col].round(4)
    out["p_value"] = out["p_value"].round(6)
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.to_csv(tmp, index=False)
    tmp.replace(path)
