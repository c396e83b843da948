"""How sure can anyone be, and when will we know?

Sensitivity evidence for the interrupted-time-series estimates of `helpers.its`:

- `placebo_in_time`: move an event to every earlier admissible date (on the data before the real
  event) and see where the real estimate falls among the placebo estimates.
- `specification_grid` / `specification_curve`: the same question answered under every reasonable
  analysis choice (start year, launch date within its uncertainty window, model family, leaving
  out the COVID-affected reporting years, counts vs rates), shown as a specification curve.
- `detect_breaks`: data-driven structural breaks (Bai-Perron style least-squares segmentation,
  dynamic programming from `ruptures`, number of breaks by BIC or sequential sup-F).
- `fit_pre_period`, `power_table`, `months_to_detect`: power and the minimum detectable effect
  (MDE), simulated from the fitted pre-period model (trend, dispersion, autocorrelation).
- `calibration_table`: a Monte Carlo with no true effect, giving each inference method's
  false-positive rate and 95% interval coverage against naive OLS.
- `headline`: the sentence the summary notebook quotes.

Monte Carlo replicates are fitted with vectorised numpy code (`its_batch.irls_poisson` and the
batched OLS/HAC/GLSAR below) because fitting each replicate with statsmodels would take minutes on
two cores; tests check these give the same numbers as `its.fit_its` on one replicate. Everything
random takes an explicit seed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from helpers import its
from helpers.core import timeline
from helpers.its import design_columns
from helpers.core.errors import CareTrendsError
from helpers.core.records import clean_number as _clean_number

#: Families the specification curve varies over by default (DESIGN: counts as counts first).
SPEC_FAMILIES = ("quasipoisson", "negbin", "ols", "ar1")
#: Reporting years affected by COVID-19 (2021 = April 2020 - March 2021; 2020 ends March 2020).
COVID_YEARS = {"none": (), "2021": (2021,), "2020+2021": (2020, 2021)}
#: Inference methods the calibration compares (naive_ols: OLS with classical standard errors).
CALIBRATION_METHODS = ("poisson", "quasipoisson", "negbin", "ols", "ar1", "naive_ols")
LOG_LINK = ("poisson", "quasipoisson", "negbin")
SEED = 20240301


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def _estimable_effects(t_values, times: Mapping, effects: Mapping, keep: str) -> dict | None:
    """Effects with a full-rank design: slope terms of the other events are dropped (earliest
    first), then their level terms, until the design can be estimated; None if it never can."""

    eff = {k: tuple(effects[k]) for k in times}
    eff = {k: tuple(e for e in v if e == "level" or (np.asarray(t_values) >= times[k]).sum() >= 2)
           for k, v in eff.items()}
    order = sorted((k for k in times if k != keep), key=lambda k: times[k])
    steps = [(k, "slope") for k in order] + [(k, "level") for k in order]
    for step in [None] + steps:
        if step is not None:
            name, term = step
            eff[name] = tuple(e for e in eff[name] if e != term)
        kept = {k: v for k, v in eff.items() if v}
        if keep not in kept:
            return None
        X = design_columns(np.asarray(t_values, float), {k: times[k] for k in kept}, kept)
        if np.linalg.matrix_rank(X.to_numpy()) == X.shape[1] and len(t_values) > X.shape[1]:
            return kept
    return None


def event_times(events: Sequence[Mapping], frequency: str = "annual") -> dict[str, int]:
    """First in-force time of each event (annual: reporting year; monthly: month index)."""
    return dict(_event_args(events, frequency)["interventions"])


def _event_args(events: Sequence[Mapping], frequency: str = "annual") -> dict:

    return its.interventions_from_events(list(events), frequency=frequency)


def _event_effects(events: Sequence[Mapping]) -> dict[str, tuple[str, ...]]:
    return dict(_event_args(events)["effects"])


def _fit_kwargs(args: Mapping, keep: Iterable[str]) -> dict:
    """phase_in / lag / titles of the kept events, for fit_its."""
    keep = list(keep)
    return {key: {k: v for k, v in args[key].items() if k in keep}
            for key in ("phase_in", "lag", "titles") if key in args}


def percent_change(estimate: float, scale: str, baseline: float | None = None) -> float:
    """A level effect as a % change: ratio 0.8 -> -20; a difference of -10 on a baseline of 100 -> -10."""
    if estimate is None or not np.isfinite(estimate):
        return float("nan")
    if scale == "ratio":
        return (float(estimate) - 1.0) * 100.0
    if baseline is None or not np.isfinite(baseline) or baseline == 0:
        return float("nan")
    return float(estimate) / float(baseline) * 100.0


def _effect_row(res, name: str, effect: str) -> dict | None:
    rows = res.effects[(res.effects["intervention"] == name) & (res.effects["effect"] == effect)]
    return None if rows.empty else rows.iloc[0].to_dict()


def _baseline_at(res, time_value) -> float | None:
    """Counterfactual at the event's first observed in-force time (the first in-force time
    itself unless that period was left out): the base for % of a difference."""
    cf = res.counterfactual
    rows = cf[cf["time"] >= time_value].sort_values("time").head(1)
    if rows.empty:
        return None
    return float(rows["counterfactual"].iloc[0])


# --------------------------------------------------------------------------------------------
# Placebo in time
# --------------------------------------------------------------------------------------------

class PlaceboResult:
    """Placebo-in-time estimates for each event. `table`: one row per event x effect x placebo time
    (`placebo` True) plus the real estimate (`placebo` False), with `estimate`, `log_estimate`
    (log ratio, or the difference for OLS), `p_value`. `summary_table`: one row per event x effect
    with the real estimate, the number of placebo dates and the placebo rank p-value."""

    def __init__(self, table: pd.DataFrame, summary_table: pd.DataFrame):
        self.table = table
        self.summary_table = summary_table

    def summary(self) -> str:
        lines = []
        for row in self.summary_table.to_dict("records"):
            if row["n_placebo"] == 0:
                lines.append(f"{row['event']} ({row['effect']}): no earlier date leaves enough "
                             "data before and after it, so no placebo comparison is possible.")
                continue
            lines.append(
                f"{row['event']} ({row['effect']}): the real estimate is larger in size than "
                f"{row['n_smaller']} of {row['n_placebo']} placebo estimates at earlier dates "
                f"(placebo p = {row['rank_p']:.2f}"
                + ("; too few dates to judge" if row["n_placebo"] < 9 else "") + ").")
        return "\n".join(lines)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        rows = self.summary_table[self.summary_table["n_placebo"] > 0]
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 0.9 + 0.7 * max(len(rows), 1)))
        labels = []
        for i, row in enumerate(rows.to_dict("records")):
            sel = self.table[(self.table["event"] == row["event"])
                             & (self.table["effect"] == row["effect"])]
            plac = sel[sel["placebo"]]
            ax.scatter(plac["percent"], np.full(len(plac), i), color="#7a7a7a", s=28,
                       label="placebo date" if i == 0 else None, zorder=2)
            ax.scatter([row["percent"]], [i], color="#d1495b", marker="D", s=60,
                       label="real date" if i == 0 else None, zorder=3)
            labels.append(f"{row['event']}\n({row['effect']})")
        ax.axvline(0, color="#1b1b1b", linewidth=0.8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels)
        ax.set_xlabel("Estimated change (%; slopes: % per period)")
        ax.set_ylabel("Event (effect)")
        ax.set_title("Placebo in time: real estimates against the same model at earlier dates")
        if labels:
            ax.legend(loc="best", fontsize=8)
        return ax


def placebo_in_time(df: pd.DataFrame, events: Sequence[Mapping], *, outcome: str = "count",
                    time: str = "year", family: str = "quasipoisson",
                    offset: str | None = "population", frequency: str = "annual",
                    min_pre: int = 4, min_post: int = 1, harmonics: int = 0,
                    focus: Iterable[str] | None = None, fitter: Callable | None = None,
                    **fit_kwargs) -> PlaceboResult:
    """Move each event to every earlier admissible time and refit.

    For an event first in force at T with n_post observed times from T on, placebo fits use only
    data before T (so the real effect cannot leak in); a placebo time P is admissible when at least
    `min_pre` observed times lie before P and at least `min_post` from P up to T - 1; the placebo
    keeps the real event's post window length where the data allow (data used: times < P + n_post).
    Events already in force before P stay in the model; later ones are left out; a placebo date
    equal to another event's date is skipped. Slope effects need at least two post points.
    """
    fitter = fitter or its.fit_its
    args = _event_args(events, frequency)
    times = dict(args["interventions"])
    effects = dict(args["effects"])
    focus = list(focus) if focus is not None else list(times)
    data = df.sort_values(time).reset_index(drop=True)
    observed = data[time].to_numpy()
    rows = []
    for name in focus:
        if name not in times:
            raise CareTrendsError(f"no event named {name!r}; choose from {sorted(times)}")
        real_t = times[name]
        n_post = int((observed >= real_t).sum())
        if n_post == 0:
            raise CareTrendsError(f"event {name!r} starts after the last observed time "
                                  f"{observed.max()}; move its date or extend the data")
        res = fitter(data, outcome=outcome, time=time, interventions=times, effects=effects,
                     family=family, offset=offset, harmonics=harmonics, counterfactual_for=name,
                     **_fit_kwargs(args, times), **fit_kwargs)
        for eff in effects[name]:
            row = _effect_row(res, name, eff)
            if row is not None:
                rows.append(_placebo_row(name, eff, real_t, False, row, res, real_t))
        pre = data[data[time] < real_t]
        pre_times = pre[time].to_numpy()
        for placebo_t in pre_times:
            n_before = int((pre_times < placebo_t).sum())
            window = pre[pre[time] < placebo_t + n_post]
            n_after = int((window[time] >= placebo_t).sum())
            if n_before < min_pre or n_after < min_post:
                continue
            others = {k: v for k, v in times.items() if k != name and v < placebo_t}
            if any(v == placebo_t for k, v in times.items() if k != name):
                continue
            placebo_effects = tuple(e for e in effects[name] if e == "level" or n_after >= 2)
            if not placebo_effects:
                continue
            interventions = {**others, name: placebo_t}
            eff_map = {**{k: effects[k] for k in others}, name: placebo_effects}
            n_params = 2 + sum(len(v) for v in eff_map.values()) + 2 * harmonics
            if len(window) <= n_params:
                continue
            try:
                pres = fitter(window, outcome=outcome, time=time, interventions=interventions,
                              effects=eff_map, family=family, offset=offset,
                              harmonics=harmonics, counterfactual_for=name,
                              **_fit_kwargs(args, interventions), **fit_kwargs)
            except (CareTrendsError, np.linalg.LinAlgError, ValueError):
                continue
            for eff in placebo_effects:
                row = _effect_row(pres, name, eff)
                if row is not None and np.isfinite(row["estimate"]):
                    rows.append(_placebo_row(name, eff, placebo_t, True, row, pres, placebo_t))
    table = pd.DataFrame(rows)
    summary_rows = []
    for (name, eff), sel in table.groupby(["event", "effect"], sort=False):
        real = sel[~sel["placebo"]].iloc[0]
        plac = sel[sel["placebo"]]
        size = np.abs(plac["log_estimate"].to_numpy())
        n_ge = int((size >= abs(real["log_estimate"]) - 1e-12).sum())
        summary_rows.append({
            "event": name, "effect": eff, "time": real["time"], "estimate": real["estimate"],
            "percent": real["percent"], "p_value": real["p_value"], "scale": real["scale"],
            "n_placebo": len(plac), "n_smaller": len(plac) - n_ge,
            "rank_p": (1 + n_ge) / (1 + len(plac)),
            "placebo_low": plac["percent"].min() if len(plac) else np.nan,
            "placebo_high": plac["percent"].max() if len(plac) else np.nan,
            # The same spread on the estimate's own scale (ratio or difference), for records.
            "placebo_estimate_low": plac["estimate"].min() if len(plac) else np.nan,
            "placebo_estimate_high": plac["estimate"].max() if len(plac) else np.nan})
    return PlaceboResult(table, pd.DataFrame(summary_rows))


def _placebo_row(name, eff, t, placebo, row, res, first_time) -> dict:
    scale = row["scale"]
    est = float(row["estimate"])
    if scale == "ratio":
        log_est = math.log(est) if est > 0 else float("nan")
    else:
        base = _baseline_at(res, first_time)
        log_est = est / base if base else float("nan")  # comparable size: share of baseline
    return {"event": name, "effect": eff, "time": t, "placebo": placebo, "estimate": est,
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "p_value": row["p_value"],
            "scale": scale, "log_estimate": log_est,
            "percent": (math.exp(log_est) - 1) * 100 if scale == "ratio" else log_est * 100}


# --------------------------------------------------------------------------------------------
# Specification curve
# --------------------------------------------------------------------------------------------

def launch_window(event: Mapping) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The uncertainty window of an event's date.

    `event["date_window"] = [low, high]` wins; else `precision`: "day" (no window), "month" (that
    calendar month), "quarter" (+-45 days), "year" (that calendar year), or a number of days
    either side.
    Without either, +-3 months: launch dates of programmes are rarely known more precisely.
    """
    date = pd.Timestamp(timeline.to_date(event["date"]))
    if "date_window" in event and event["date_window"]:
        low, high = (pd.Timestamp(timeline.to_date(v)) for v in event["date_window"])
        return low, high
    precision = event.get("precision")
    if precision is None:
        return date - pd.DateOffset(months=3), date + pd.DateOffset(months=3)
    if isinstance(precision, (int, float)):
        return date - pd.Timedelta(days=precision), date + pd.Timedelta(days=precision)
    if precision == "day":
        return date, date
    if precision == "month":
        start = date.to_period("M").start_time
        return start, date.to_period("M").end_time.normalize()
    if precision == "quarter":
        return date - pd.Timedelta(days=45), date + pd.Timedelta(days=45)
    if precision == "year":  # as its.interventions_from_events: known only to the calendar year
        return pd.Timestamp(year=date.year, month=1, day=1), pd.Timestamp(year=date.year, month=12, day=31)
    raise CareTrendsError(f"event {event.get('name')!r} has precision {precision!r}; use 'day', "
                          "'month', 'quarter', 'year' or a number of days")


def launch_times(event: Mapping, frequency: str = "annual") -> list[int]:
    """Distinct first in-force times an event's date could give within its uncertainty window
    (annual data: also the first reporting year with at least six months in force, so a
    programme launched in October counts from the year it launched)."""
    low, high = launch_window(event)
    to_time = (timeline.first_full_reporting_year if frequency == "annual"
               else timeline.first_full_month_index)
    candidates = {to_time(d.date()) for d in (low, pd.Timestamp(timeline.to_date(event["date"])), high)}
    if frequency == "annual":
        # Alternative convention: the first reporting year with at least half a year in force.
        for d in (low, pd.Timestamp(timeline.to_date(event["date"])), high):
            ry = timeline.reporting_year(d.date())
            year_end = pd.Timestamp(year=ry, month=3, day=31)
            candidates.add(ry if (year_end - d).days >= 182 else ry + 1)
    return sorted(candidates)


def specification_grid(event: Mapping, *, start_years: Sequence[int] = (2010, 2014),
                       families: Sequence[str] = SPEC_FAMILIES,
                       covid: Sequence[str] = ("none", "2021"),
                       scales: Sequence[str] = ("rate", "count"),
                       frequency: str = "annual") -> pd.DataFrame:
    """Every combination of analysis choices (one row per specification, with a `spec_id`)."""
    bad = [c for c in covid if c not in COVID_YEARS]
    if bad:
        raise CareTrendsError(f"covid option(s) {bad} unknown; choose from {list(COVID_YEARS)}")
    rows = []
    for start in start_years:
        for launch in launch_times(event, frequency):
            for fam in families:
                for cov in covid:
                    for scale in scales:
                        rows.append({"start_year": int(start), "launch_time": int(launch),
                                     "family": fam, "covid_excluded": cov, "scale": scale})
    grid = pd.DataFrame(rows)
    grid.insert(0, "spec_id", range(len(grid)))
    return grid


class SpecCurveResult:
    """`table`: one row per specification with the focus event's level change as `percent`
    (with `pct_low`, `pct_high`), its `p_value`, and the choices; `default` marks the
    pre-declared analysis."""

    def __init__(self, table: pd.DataFrame, event: str, default: Mapping):
        self.table = table
        self.event = event
        self.default = dict(default)

    @property
    def fitted(self) -> pd.DataFrame:
        return self.table[np.isfinite(self.table["percent"])]

    def stats(self) -> dict:
        t = self.fitted
        if t.empty:
            return {"n_specs": 0}
        default = t[t["is_default"]]
        return {
            "n_specs": int(len(t)),
            "n_failed": int(len(self.table) - len(t)),
            "median_percent": float(t["percent"].median()),
            "min_percent": float(t["percent"].min()),
            "max_percent": float(t["percent"].max()),
            "share_negative": float((t["percent"] < 0).mean()),
            "share_significant": float((t["p_value"] < 0.05).mean()),
            "default_percent": float(default["percent"].iloc[0]) if len(default) else float("nan"),
            "default_p_value": float(default["p_value"].iloc[0]) if len(default) else float("nan"),
            "default_n_post": int(default["n_post"].iloc[0]) if len(default) else None,
        }

    def summary(self) -> str:
        s = self.stats()
        if s["n_specs"] == 0:
            return f"No specification could be fitted for {self.event}."
        if s["share_negative"] > 0.6:
            direction = "Most specifications point to a fall."
        elif s["share_negative"] < 0.4:
            direction = "Most specifications point to a rise."
        else:
            direction = "The specifications disagree even on the direction."
        return (f"Across {s['n_specs']} specifications the {self.event} level change ranges from "
                f"{s['min_percent']:+.0f}% to {s['max_percent']:+.0f}% (median "
                f"{s['median_percent']:+.0f}%); {s['share_negative']:.0%} point to a fall and "
                f"{s['share_significant']:.0%} are statistically significant at 5%. {direction}")

    def plot(self, fig=None):
        import matplotlib.pyplot as plt

        t = self.fitted.sort_values("percent").reset_index(drop=True)
        if fig is None:
            fig = plt.figure(figsize=(9, 6))
        gs = fig.add_gridspec(2, 1, height_ratios=[2.2, 1.6], hspace=0.08)
        ax = fig.add_subplot(gs[0])
        x = np.arange(len(t))
        sig = t["p_value"] < 0.05
        ax.vlines(x, t["pct_low"], t["pct_high"], color="#b0b0b0", linewidth=1)
        ax.scatter(x[~sig], t.loc[~sig, "percent"], color="#7a7a7a", s=14, label="p >= 0.05")
        ax.scatter(x[sig], t.loc[sig, "percent"], color="#0b6e99", s=14, label="p < 0.05")
        dflt = t["is_default"].to_numpy()
        if dflt.any():
            ax.scatter(x[dflt], t.loc[dflt, "percent"], color="#d1495b", marker="D", s=50,
                       label="pre-declared analysis", zorder=3)
        ax.axhline(0, color="#1b1b1b", linewidth=0.8)
        ax.set_ylabel("Level change (%)")
        ax.set_title(f"Specification curve: {self.event} level change under every choice")
        ax.set_xticks([])
        ax.legend(fontsize=8, loc="best")
        ax2 = fig.add_subplot(gs[1], sharex=ax)
        choices = []
        for col, fmt in (("start_year", "start {}"), ("launch_time", "in force {}"),
                         ("family", "{}"), ("covid_excluded", "COVID excl. {}"),
                         ("scale", "{}")):
            for value in sorted(t[col].unique(), key=str):
                choices.append((col, value, fmt.format(value)))
        for j, (col, value, _) in enumerate(choices):
            hit = (t[col] == value).to_numpy()
            ax2.scatter(x[hit], np.full(hit.sum(), j), color="#1b1b1b", s=6, marker="s")
        ax2.set_yticks(range(len(choices)))
        ax2.set_yticklabels([c[2] for c in choices], fontsize=7)
        ax2.invert_yaxis()
        ax2.set_xlabel("Specifications, ordered by estimate")
        ax2.grid(False)
        return fig


def specification_curve(series: pd.DataFrame, events: Sequence[Mapping], focus: str, *,
                        grid: pd.DataFrame | None = None, outcome_count: str = "count",
                        rate_column: str = "rate_per_10000", population: str = "population",
                        time: str = "year", default: Mapping | None = None,
                        fitter: Callable | None = None, **grid_kwargs) -> SpecCurveResult:
    """Fit the ITS model under every specification in `grid` (default `specification_grid` of the
    focus event) and collect the focus event's level change in % (ratio families: rate ratio - 1;
    OLS/AR(1): the difference as a share of the counterfactual at the first post time).

    `series`: annual series from the earliest start year (year, count, population, rate_per_10000).
    "rate" specifications use the population offset (log-link) or the rate per 10,000 (OLS/AR(1));
    "count" specifications model the count without an offset. Events whose first in-force time
    falls before a specification's start or after the data are left out of that fit; when a
    choice leaves too few points between events (e.g. dropping 2021), other events' slope terms
    are dropped until the model can be estimated (`simplified` True). Launch times outside the
    data are not specifications and are left out.
    """
    fitter = fitter or its.fit_its
    by_name = {e["name"]: e for e in events}
    if focus not in by_name:
        raise CareTrendsError(f"no event named {focus!r}; choose from {sorted(by_name)}")
    grid = grid if grid is not None else specification_grid(by_name[focus], **grid_kwargs)
    args = _event_args(events, "annual")
    base_times = dict(args["interventions"])
    effects = dict(args["effects"])
    default = dict(default or {})
    rows = []
    for spec in grid.to_dict("records"):
        data = series[series[time] >= spec["start_year"]]
        drop = COVID_YEARS[spec["covid_excluded"]]
        data = data[~data[time].isin(drop)].reset_index(drop=True)
        times = dict(base_times)
        times[focus] = spec["launch_time"]
        first, last = data[time].min(), data[time].max()
        times = {k: v for k, v in times.items() if first < v <= last}
        log_link = spec["family"] in LOG_LINK
        if spec["scale"] == "rate":
            outcome, offset = (outcome_count, population) if log_link else (rate_column, None)
        else:
            outcome, offset = outcome_count, None
        out = dict(spec, percent=np.nan, pct_low=np.nan, pct_high=np.nan, p_value=np.nan,
                   estimate=np.nan, effect_scale=None, error=None, simplified=False)
        eff_map = _estimable_effects(data[time].to_numpy(), times, effects, focus) \
            if focus in times else None
        if focus not in times:
            continue  # the launch time lies outside this window of data: not a specification
        if eff_map is not None:
            n_after = int((data[time] >= times[focus]).sum())
            simplified = eff_map != {k: effects[k] for k in times}
            times = {k: v for k, v in times.items() if k in eff_map}
            out["simplified"] = simplified
            try:
                res = fitter(data, outcome=outcome, time=time, interventions=times,
                             effects=eff_map, family=spec["family"], offset=offset, harmonics=0,
                             counterfactual_for=focus, **_fit_kwargs(args, times))
                row = _effect_row(res, focus, "level")
                if row is not None:
                    base = _baseline_at(res, times[focus]) if row["scale"] != "ratio" else None
                    out.update(estimate=row["estimate"], p_value=row["p_value"],
                               effect_scale=row["scale"],
                               percent=percent_change(row["estimate"], row["scale"], base),
                               pct_low=percent_change(row["ci_low"], row["scale"], base),
                               pct_high=percent_change(row["ci_high"], row["scale"], base))
            except (CareTrendsError, np.linalg.LinAlgError, ValueError) as exc:
                out["error"] = str(exc).splitlines()[0][:200]
            out["n_post"] = n_after
        else:
            out["error"] = "no estimable model for this choice"
        out["is_default"] = all(spec.get(k) == v for k, v in default.items()) if default else False
        rows.append(out)
    table = pd.DataFrame(rows)
    if table.empty:
        raise CareTrendsError(f"no specification places {focus!r} inside the data; check its date")
    table["spec_id"] = range(len(table))
    return SpecCurveResult(table, focus, default)


# --------------------------------------------------------------------------------------------
# Structural breaks
# --------------------------------------------------------------------------------------------

class _SegmentCost:
    """Least-squares cost of a segment for ruptures: mean-shift ("mean") or own intercept and slope
    ("trend"). Closed forms from cumulative sums, so every segment costs O(1)."""

    def __new__(cls, model: str = "trend"):
        from ruptures.base import BaseCost

        class Cost(BaseCost):
            def __init__(self, kind):
                self.kind = kind
                self.min_size = 3 if kind == "trend" else 2

            @property
            def model(self):
                return f"least_squares_{self.kind}"

            def fit(self, signal):
                y = np.asarray(signal, dtype=float).ravel()
                self.signal = y.reshape(-1, 1)  # ruptures reads the length from it
                t = np.arange(len(y), dtype=float) - (len(y) - 1) / 2.0
                zero = np.zeros(1)
                self.c1 = np.concatenate([zero, np.cumsum(np.ones_like(y))])
                self.ct = np.concatenate([zero, np.cumsum(t)])
                self.ctt = np.concatenate([zero, np.cumsum(t * t)])
                self.cy = np.concatenate([zero, np.cumsum(y)])
                self.cyy = np.concatenate([zero, np.cumsum(y * y)])
                self.cty = np.concatenate([zero, np.cumsum(t * y)])
                return self

            def error(self, start, end):
                m = self.c1[end] - self.c1[start]
                sy = self.cy[end] - self.cy[start]
                syy = (self.cyy[end] - self.cyy[start]) - sy * sy / m
                if self.kind == "mean":
                    return max(syy, 0.0)
                st = self.ct[end] - self.ct[start]
                stt = (self.ctt[end] - self.ctt[start]) - st * st / m
                sty = (self.cty[end] - self.cty[start]) - st * sy / m
                return max(syy - (sty * sty / stt if stt > 0 else 0.0), 0.0)

        if model not in ("trend", "mean"):
            raise CareTrendsError(f"break model {model!r} unknown; use 'trend' or 'mean'")
        return Cost(model)


def _segmentations(y: np.ndarray, max_breaks: int, model: str, min_size: int):
    """Optimal breakpoints (ruptures convention: end indices) and SSR for 0..max_breaks breaks."""
    import ruptures

    cost = _SegmentCost(model)
    algo = ruptures.Dynp(custom_cost=cost, min_size=min_size, jump=1).fit(y)
    out = {0: ([len(y)], cost.error(0, len(y)))}
    for k in range(1, max_breaks + 1):
        if (k + 1) * min_size > len(y):
            break
        bkps = algo.predict(n_bkps=k)
        out[k] = (bkps, cost.sum_of_costs(bkps))
    return out


def _bic(ssr: float, n: int, k: int, q: int) -> float:
    n_params = (k + 1) * q + k + 1  # segment coefficients, break dates, error variance
    return n * math.log(max(ssr, 1e-12) / n) + n_params * math.log(n)


def _sup_f(segs: dict, n: int, q: int) -> dict[int, float]:
    """F statistic for k+1 against k breaks from the optimal segmentations (Bai-Perron sup-F form)."""
    out = {}
    for k in sorted(segs):
        if k + 1 not in segs:
            break
        ssr_k, ssr_k1 = segs[k][1], segs[k + 1][1]
        dof = n - (k + 2) * q - (k + 1)
        if dof <= 0 or ssr_k1 <= 0:
            out[k] = float("inf") if ssr_k1 <= 0 < ssr_k - ssr_k1 else float("nan")
            continue
        out[k] = ((ssr_k - ssr_k1) / q) / (ssr_k1 / dof)
    return out


def _sup_f_critical(n: int, max_breaks: int, model: str, min_size: int, alpha: float,
                    n_sim: int, seed) -> dict[int, float]:
    """Critical values of the sup-F statistics by simulation under no break (Gaussian noise)."""
    rng = _rng(seed)
    q = 2 if model == "trend" else 1
    draws: dict[int, list[float]] = {}
    for _ in range(n_sim):
        y = rng.standard_normal(n)
        for k, f in _sup_f(_segmentations(y, max_breaks, model, min_size), n, q).items():
            draws.setdefault(k, []).append(f)
    return {k: float(np.nanquantile(v, 1 - alpha)) for k, v in draws.items()}


@dataclass
class BreakResult:
    labels: list
    positions: list[int]
    n_breaks: int
    criterion: str
    model: str
    table: pd.DataFrame  # one row per number of breaks: ssr, bic, sup_f, critical, breaks

    def fitted(self, y) -> np.ndarray:
        """Least-squares fit of each segment (for charts)."""
        y = np.asarray(y, dtype=float)
        out = np.empty_like(y)
        bounds = [0] + list(self.positions) + [len(y)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            t = np.arange(a, b, dtype=float)
            if self.model == "trend" and b - a >= 2:
                coef = np.polyfit(t, y[a:b], 1)
                out[a:b] = np.polyval(coef, t)
            else:
                out[a:b] = y[a:b].mean()
        return out


def detect_breaks(y, max_breaks: int = 3, *, labels: Sequence | None = None,
                  model: str = "trend", criterion: str = "bic", min_size: int | None = None,
                  alpha: float = 0.05, n_sim: int = 200, seed=SEED,
                  return_result: bool = False):
    """Labels at which new regimes start, with no date given in advance.

    Least-squares segmentation (Bai & Perron 1998/2003): for each number of breaks up to
    `max_breaks` the global optimum is found by dynamic programming (`ruptures.Dynp` with a
    closed-form segment cost), and the number is chosen by BIC (default, as Bai-Perron recommend
    for small samples) or by sequential sup-F tests of k+1 against k breaks at level `alpha` with
    critical values simulated for this sample size (`n_sim` draws, seeded).

    model "trend" (default): each regime has its own level and slope, the right null for trending
    series (a mean-shift model mistakes a steady trend for a sequence of breaks); "mean": level only.
    `y`: a Series (its index gives the labels), array or list; `labels` overrides. `min_size`: the
    shortest regime (default: 15% trimming, at least 3 points for "trend"). Returns the list of
    labels of the first point of each new regime (a BreakResult if `return_result`).
    """
    if isinstance(y, pd.Series):
        labels = list(y.index) if labels is None else list(labels)
        values = y.to_numpy(dtype=float)
    else:
        values = np.asarray(y, dtype=float).ravel()
        labels = list(range(len(values))) if labels is None else list(labels)
    if len(labels) != len(values):
        raise CareTrendsError(f"{len(labels)} labels for {len(values)} values; give one label per value")
    if not np.isfinite(values).all():
        raise CareTrendsError("the series has missing values; drop or fill them before detect_breaks")
    if criterion not in ("bic", "supf"):
        raise CareTrendsError(f"criterion {criterion!r} unknown; use 'bic' or 'supf'")
    if model not in ("trend", "mean"):
        raise CareTrendsError(f"break model {model!r} unknown; use 'trend' or 'mean'")
    n = len(values)
    q = 2 if model == "trend" else 1
    floor = 3 if model == "trend" else 2
    min_size = int(min_size or max(floor, math.ceil(0.15 * n)))
    if n < 2 * min_size:
        raise CareTrendsError(f"{n} points are too few to look for breaks with regimes of at least "
                              f"{min_size} points; use a longer series or a smaller min_size")
    max_breaks = int(max(0, min(max_breaks, n // min_size - 1)))
    segs = _segmentations(values, max_breaks, model, min_size)
    supf = _sup_f(segs, n, q)
    crit = (_sup_f_critical(n, max(segs), model, min_size, alpha, n_sim, seed)
            if criterion == "supf" and len(segs) > 1 else {})
    rows = []
    for k, (bkps, ssr) in segs.items():
        rows.append({"n_breaks": k, "ssr": ssr, "bic": _bic(ssr, n, k, q),
                     "sup_f_next": supf.get(k, np.nan), "critical_next": crit.get(k, np.nan),
                     "breaks": [labels[b] for b in bkps[:-1]]})
    table = pd.DataFrame(rows)
    if criterion == "bic":
        chosen = int(table.loc[table["bic"].idxmin(), "n_breaks"])
    else:
        chosen = 0
        for k in sorted(supf):
            if k in crit and supf[k] > crit[k]:
                chosen = k + 1
            else:
                break
    positions = segs[chosen][0][:-1]
    result = BreakResult([labels[b] for b in positions], list(positions), chosen, criterion,
                         model, table)
    return result if return_result else result.labels


def breaks_vs_events(breaks: Sequence, times: Mapping[str, float], tolerance: float = 1) -> pd.DataFrame:
    """Each declared event's nearest data-driven break and whether it lies within `tolerance`
    periods (a break at the event's first in-force time, or a period either side, counts)."""
    rows = []
    for name, when in times.items():
        if len(breaks):
            nearest = min(breaks, key=lambda b: (abs(float(b) - float(when)), float(b)))
            gap = float(nearest) - float(when)
        else:
            nearest, gap = None, float("nan")
        rows.append({"event": name, "first_in_force": when, "nearest_break": nearest,
                     "gap": gap, "coincides": bool(np.isfinite(gap) and abs(gap) <= tolerance)})
    return pd.DataFrame(rows)


def breaks_reading(breaks: Sequence, comparison: pd.DataFrame, unit: str = "year") -> str:
    """Plain-English reading of `breaks_vs_events`."""
    if not len(breaks):
        text = "The data alone show no clear change of regime: one trend fits as well as any split."
    else:
        text = (f"The data alone place new regimes from {', '.join(str(b) for b in breaks)}.")
    hits = comparison[comparison["coincides"]]
    misses = comparison[~comparison["coincides"]]
    if len(hits):
        text += (" Declared events with a data-driven break within one " + unit + ": "
                 + ", ".join(hits["event"]) + ".")
    if len(misses):
        text += (" No break near: " + ", ".join(misses["event"])
                 + " (a break at the very end of the series cannot be seen: each regime needs "
                 "several points).")
    return text


def plot_breaks(series: pd.Series, result: BreakResult, times: Mapping[str, float] | None = None,
                *, ylabel: str = "", title: str = "Data-driven breaks against the declared events",
                ax=None):
    """The series, its segment fits and the breaks (solid) against declared events (dashed)."""
    import matplotlib.pyplot as plt

    from helpers.plotting import PALETTE, mark_events

    if ax is None:
        _, ax = plt.subplots()
    x = np.asarray(series.index, dtype=float)
    ax.plot(x, series.to_numpy(), "o", color=PALETTE["observed"], label="observed")
    fitted = result.fitted(series.to_numpy())
    bounds = [0] + list(result.positions) + [len(x)]
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        ax.plot(x[a:b], fitted[a:b], color=PALETTE["fitted"], linewidth=2,
                label="regime fit" if k == 0 else None)
    for k, label in enumerate(result.labels):
        ax.axvline(float(label) - 0.5, color=PALETTE["counterfactual"], linewidth=1.5,
                   label="data-driven break" if k == 0 else None)
    if times:
        mark_events(ax, {k: float(v) - 0.5 for k, v in times.items()})
    ax.set_xlabel("Reporting year (ending 31 March)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return ax


# --------------------------------------------------------------------------------------------
# The pre-period model and simulation
# --------------------------------------------------------------------------------------------

@dataclass
class PrePeriodModel:
    """What the series did before the event, as a generator for simulations.

    Expected count at step t (0 = first pre point) = exp(log_level + trend * t) x exp(u_t), u an
    AR(1) latent process on the log scale with autocorrelation `rho` and sd `sigma`, and the count
    Poisson around that. `dispersion` is the quasi-Poisson Pearson dispersion of the real pre-period
    fit, `sigma` the latent sd that reproduces it; `rho` corrects the Pearson residuals' lag-1
    autocorrelation for the Poisson noise. Rates per step (annual: per year; monthly: per month).
    """

    log_level: float
    trend: float
    dispersion: float
    rho: float
    sigma: float
    n_pre: int
    frequency: str = "annual"
    mean_count: float = float("nan")

    def monthly(self, rho_monthly: float = 0.5) -> "PrePeriodModel":
        """The monthly series consistent with this annual model: one twelfth of the annual count,
        the same trend per year, latent monthly AR(1) noise with `rho_monthly` (an assumption: the
        published data are annual) scaled so that its 12-month average has the annual sd."""
        if self.frequency != "annual":
            return self
        lag = np.abs(np.subtract.outer(np.arange(12), np.arange(12)))
        factor = float((rho_monthly ** lag).mean())  # var of a 12-month mean / monthly var
        return PrePeriodModel(
            log_level=self.log_level - math.log(12) - self.trend * 5.5 / 12,
            trend=self.trend / 12, dispersion=float("nan"), rho=rho_monthly,
            sigma=self.sigma / math.sqrt(factor), n_pre=self.n_pre * 12, frequency="monthly",
            mean_count=self.mean_count / 12)

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def fit_pre_period(df: pd.DataFrame, *, before=None, outcome: str = "count",
                   time: str = "year", offset: str | None = "population",
                   frequency: str = "annual") -> PrePeriodModel:
    """Fit log-linear Poisson trend to the times before `before` (all rows if None) and summarise its
    dispersion and autocorrelation. The offset's last pre value fixes the exposure (the simulation
    holds population at that level)."""
    import statsmodels.api as sm

    data = df.sort_values(time)
    if before is not None:
        data = data[data[time] < before]
    data = data[np.isfinite(data[outcome].to_numpy(dtype=float))]
    n = len(data)
    if n < 5:
        raise CareTrendsError(f"only {n} points before the event; the power simulation needs at "
                              "least 5 (use an earlier start year)")
    y = data[outcome].to_numpy(dtype=float)
    t = data[time].to_numpy(dtype=float)
    t = t - t[0]
    X = np.column_stack([np.ones(n), t])
    off = np.log(data[offset].to_numpy(dtype=float)) if offset else np.zeros(n)
    res = sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit()
    mu = res.fittedvalues
    pearson = (y - mu) / np.sqrt(mu)
    phi = max(float((pearson ** 2).sum() / (n - 2)), 1.0)
    r1 = float(np.corrcoef(pearson[:-1], pearson[1:])[0, 1]) if n > 3 else 0.0
    share_latent = (phi - 1.0) / phi
    rho = float(np.clip(r1 / share_latent, -0.5, 0.9)) if share_latent > 0.05 else 0.0
    mean_mu = float(mu.mean())
    sigma = math.sqrt(math.log1p((phi - 1.0) / mean_mu))
    # Level at the first pre point at the last pre exposure (population held fixed from there on).
    log_level = float(res.params[0] + off[-1])
    return PrePeriodModel(log_level=log_level, trend=float(res.params[1]), dispersion=phi,
                          rho=rho, sigma=sigma, n_pre=n, frequency=frequency,
                          mean_count=float(y.mean()))


def simulate_counts(model: PrePeriodModel, n_post: int, n_sim: int, *, effects=(1.0,),
                    seed=SEED, n_pre: int | None = None) -> np.ndarray:
    """Simulated counts, shape (len(effects), n_sim, n_pre + n_post): the pre-period model carried on,
    the level multiplied by each effect ratio from the first post step. Common random numbers
    across effects (the same latent noise and Poisson stream), so power rises smoothly with the
    effect."""
    rng = _rng(seed)
    n_pre = int(n_pre or model.n_pre)
    n = n_pre + int(n_post)
    eps = rng.standard_normal((n_sim, n))
    u = np.empty((n_sim, n))
    rho, sigma = model.rho, model.sigma
    u[:, 0] = eps[:, 0] * sigma
    innov = sigma * math.sqrt(max(1 - rho * rho, 1e-12))
    for i in range(1, n):
        u[:, i] = rho * u[:, i - 1] + innov * eps[:, i]
    u -= sigma * sigma / 2  # keep the mean count on the trend
    count_seed = int(rng.integers(2 ** 62))
    t = np.arange(n, dtype=float)
    base = np.exp(model.log_level + model.trend * t)[None, :] * np.exp(u)
    post = t >= n_pre
    out = np.empty((len(effects), n_sim, n))
    for j, ratio in enumerate(effects):
        mean = base * np.where(post, float(ratio), 1.0)[None, :]
        # The same Poisson stream for every effect: draws move together as the effect grows.
        out[j] = np.random.default_rng(count_seed).poisson(mean)
    return out


def its_design(n_pre: int, n_post: int, *, slope: bool = False, harmonics: int = 0,
               period: int = 12) -> pd.DataFrame:
    """The ITS design `helpers.its.design_columns` builds, for a simulated series."""

    t = np.arange(n_pre + n_post, dtype=float)
    effects = ("level", "slope") if slope and n_post >= 2 else ("level",)
    return design_columns(t, {"event": n_pre}, {"event": effects}, harmonics, period)


# --------------------------------------------------------------------------------------------
# Batched inference (same models as its.fit_its, many replicates at once)
# --------------------------------------------------------------------------------------------

def _inference(coef, se, dof, alpha=0.05):
    """Two-sided p-values and interval half-widths (normal when dof is None, else t)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = coef / se
    if dof is None:
        return 2 * stats.norm.sf(np.abs(stat)), stats.norm.ppf(1 - alpha / 2) * se
    dof = np.broadcast_to(np.asarray(dof, dtype=float), np.shape(stat))
    return 2 * stats.t.sf(np.abs(stat), dof), stats.t.ppf(1 - alpha / 2, dof) * se


def batch_fit(method: str, X: np.ndarray, Y: np.ndarray, *, hac_lags: int | None = None,
              alpha: float = 0.05, ar1_iter: int | None = None) -> dict[str, np.ndarray]:
    """Fit one design X (T, p) to many series Y (S, T): coefficients, standard errors, p-values and
    interval bounds (S, p) on the model's own scale (log for poisson/quasipoisson).

    method: "poisson" (normal intervals), "quasipoisson" (Pearson dispersion, t on T - p df),
    "ols" (Newey-West HAC standard errors, `hac_lags` default `its.newey_west_lags`, statsmodels'
    small-sample correction, t intervals on T - p df), "naive_ols" (classical OLS, t intervals),
    "ar1" (feasible GLS with AR(1) errors: statsmodels GLSAR iterative_fit).
    """
    S, T = Y.shape
    p = X.shape[1]
    if method in ("poisson", "quasipoisson"):
        from helpers.its_batch import irls_poisson

        mask = np.ones_like(Y, dtype=bool)
        beta, cov, mu, _, ok = irls_poisson(X, Y, np.zeros_like(Y), mask)
        se = np.sqrt(np.einsum("spp->sp", cov))
        dof = None
        if method == "quasipoisson":
            with np.errstate(divide="ignore", invalid="ignore"):
                phi = ((Y - mu) ** 2 / mu).sum(1) / (T - p)
            se = se * np.sqrt(phi)[:, None]
            dof = T - p
        pval, half = _inference(beta, se, dof, alpha)
    elif method in ("ols", "naive_ols"):
        xtx_inv = np.linalg.inv(X.T @ X)
        beta = Y @ X @ xtx_inv  # (S, p)
        resid = Y - beta @ X.T
        if method == "naive_ols":
            s2 = (resid ** 2).sum(1) / (T - p)
            se = np.sqrt(s2[:, None] * np.diag(xtx_inv)[None, :])
            pval, half = _inference(beta, se, T - p, alpha)
        else:
            lags = _hac_lags(T) if hac_lags is None else int(hac_lags)
            scores = resid[:, :, None] * X[None, :, :]  # (S, T, p)
            meat = np.einsum("stp,stq->spq", scores, scores)
            for lag in range(1, lags + 1):
                w = 1 - lag / (lags + 1)
                g = np.einsum("stp,stq->spq", scores[:, lag:], scores[:, :-lag])
                meat += w * (g + np.transpose(g, (0, 2, 1)))
            cov = xtx_inv[None] @ meat @ xtx_inv[None]
            cov *= T / (T - p)  # statsmodels' use_correction for HAC
            se = np.sqrt(np.einsum("spp->sp", cov))
            pval, half = _inference(beta, se, T - p, alpha)  # fit_its: use_t=True
    elif method == "ar1":
        beta, se, dof = _batch_glsar(X, Y, maxiter=ar1_iter or _ar1_maxiter())
        pval, half = _inference(beta, se, dof, alpha)
    else:
        raise CareTrendsError(f"no batched fit for {method!r}; use one of "
                              "poisson, quasipoisson, ols, naive_ols, ar1")
    return {"coef": beta, "se": se, "p_value": pval, "low": beta - half, "high": beta + half}


def _hac_lags(n: int) -> int:

    return int(its.newey_west_lags(n))


def _ar1_maxiter() -> int:
    return 50  # its._fit_ar1: GLSAR(rho=1).iterative_fit(maxiter=50)


def _batch_glsar(X, Y, maxiter: int = 50, rtol: float = 1e-4):
    """statsmodels `GLSAR(y, X, rho=1).iterative_fit(maxiter)` for many series: rho starts at 0;
    OLS on whitened data (first row dropped), Yule-Walker rho ("adjusted": lag-1 sum over n - 1,
    variance over n, demeaned) from the unwhitened residuals; stop when the coefficients change
    by less than `rtol` (relative). Classical OLS errors on the whitened data, t on T - 1 - p df."""
    S, T = Y.shape
    p = X.shape[1]
    rho = np.zeros(S)
    done = np.zeros(S, dtype=bool)
    last = None
    for i in range(max(maxiter - 1, 0)):
        beta_i = _whitened_ols(X, Y, rho)[0]
        if i > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                diff = np.max(np.abs(last - beta_i) / np.abs(last), axis=1)
            done |= diff < rtol
        last = beta_i
        if done.all():
            break
        r = Y - beta_i @ X.T
        r = r - r.mean(1, keepdims=True)
        r0 = (r * r).sum(1) / T
        r1 = (r[:, 1:] * r[:, :-1]).sum(1) / (T - 1)
        rho = np.where(done, rho, r1 / r0)
    beta, se = _whitened_ols(X, Y, rho)
    return beta, se, T - 1 - p


def _whitened_ols(X, Y, rho):
    Xw = X[None, 1:, :] - rho[:, None, None] * X[None, :-1, :]  # (S, T-1, p)
    Yw = Y[:, 1:] - rho[:, None] * Y[:, :-1]
    xtx = np.einsum("stp,stq->spq", Xw, Xw)
    xty = np.einsum("stp,st->sp", Xw, Yw)
    inv = np.linalg.inv(xtx)
    beta = np.einsum("spq,sq->sp", inv, xty)
    resid = Yw - np.einsum("stp,sp->st", Xw, beta)
    dof = Xw.shape[1] - X.shape[1]
    s2 = (resid ** 2).sum(1) / dof
    se = np.sqrt(s2[:, None] * np.einsum("spp->sp", inv))
    return beta, se


def _loop_fit(method: str, X: pd.DataFrame, Y: np.ndarray, alpha: float = 0.05):
    """Per-replicate `its.fit_its` for families with their own optimiser (negbin, sarimax)."""

    S, T = Y.shape
    names = [c for c in X.columns if c.startswith("event:")]
    n_pre = int((X["event:level"] == 0).sum())
    effects = tuple(c.split(":")[1] for c in names)
    out = {k: np.full((S, len(names)), np.nan) for k in ("coef", "se", "p_value", "low", "high")}
    t = np.arange(T)
    import warnings

    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    for s in range(S):
        df = pd.DataFrame({"t": t, "y": Y[s]})
        try:
            with warnings.catch_warnings():
                # Hard simulated replicates may not converge; they are counted as failures.
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                res = its.fit_its(df, outcome="y", time="t", interventions={"event": n_pre},
                                  effects=effects, family=method, offset=None, harmonics=0)
        except (CareTrendsError, np.linalg.LinAlgError, ValueError):
            continue
        for j, eff in enumerate(effects):
            row = _effect_row(res, "event", eff)
            if row is None:
                continue
            if row["scale"] == "ratio":
                out["coef"][s, j] = math.log(row["estimate"])
                out["low"][s, j] = math.log(row["ci_low"])
                out["high"][s, j] = math.log(row["ci_high"])
            else:
                out["coef"][s, j], out["low"][s, j], out["high"][s, j] = (
                    row["estimate"], row["ci_low"], row["ci_high"])
            out["p_value"][s, j] = row["p_value"]
    return out, names


# --------------------------------------------------------------------------------------------
# Power and minimum detectable effect
# --------------------------------------------------------------------------------------------

DEFAULT_REDUCTIONS = tuple(np.round(np.arange(0.0, 0.625, 0.025), 3))


def power_curve(model: PrePeriodModel, n_post: int, *, reductions=DEFAULT_REDUCTIONS,
                n_sim: int = 300, method: str = "quasipoisson", alpha: float = 0.05,
                harmonics: int = 0, seed=SEED, sims: np.ndarray | None = None,
                size_adjusted: bool = True) -> pd.DataFrame:
    """Share of simulated series in which the level change is significant at `alpha` (two-sided),
    for each true reduction (0.2 = a 20% drop from the first post step), with the level-only ITS
    model fitted by `method`. `sims` (from `simulate_counts` with the same reductions, possibly
    longer) reuses simulated series: the first n_pre + n_post points are used.

    size_adjusted (default): when the test rejects too often with no effect (reduction 0, which
    must then be in `reductions`), the p-value threshold is lowered to the `alpha` quantile of
    the no-effect p-values, so power is not flattered by false positives. `size` reports the
    unadjusted false-positive rate."""
    reductions = tuple(float(r) for r in reductions)
    if size_adjusted and 0.0 not in reductions:
        raise CareTrendsError("size-adjusted power needs a zero effect in reductions; add 0.0")
    ratios = [1.0 - r for r in reductions]
    if sims is None:
        sims = simulate_counts(model, n_post, n_sim, effects=ratios, seed=seed)
    sims = sims[:, :, : model.n_pre + n_post]
    n_sim = sims.shape[1]
    X = its_design(model.n_pre, n_post, harmonics=harmonics)
    j = list(X.columns).index("event:level")
    Y = sims.reshape(-1, sims.shape[-1])
    fit = batch_fit(method, X.to_numpy(), Y, alpha=alpha)
    pvals = fit["p_value"][:, j].reshape(len(ratios), n_sim)
    size = float((pvals[reductions.index(0.0)] < alpha).mean()) if 0.0 in reductions else np.nan
    threshold = alpha
    if size_adjusted and size > alpha:
        threshold = float(np.quantile(pvals[reductions.index(0.0)], alpha))
    sig = pvals < threshold
    return pd.DataFrame({"reduction": list(reductions), "power": sig.mean(1), "n_sim": n_sim,
                         "n_post": n_post, "frequency": model.frequency, "size": size,
                         "threshold": threshold})


def minimum_detectable_effect(curve: pd.DataFrame, power: float = 0.8) -> float:
    """Smallest reduction whose power reaches `power` (linear interpolation); NaN if none does."""
    r = curve["reduction"].to_numpy()
    pw = np.maximum.accumulate(curve["power"].to_numpy())
    above = np.nonzero(pw >= power)[0]
    if len(above) == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(r[0])
    return float(r[i - 1] + (power - pw[i - 1]) * (r[i] - r[i - 1]) / (pw[i] - pw[i - 1]))


def power_table(model: PrePeriodModel, *, annual_post=(1, 2, 3), monthly_post=(6, 12, 24, 36),
                rho_monthly: float = 0.5, n_sim: int = 300, method: str = "quasipoisson",
                monthly_method: str | None = None, power: float = 0.8, alpha: float = 0.05,
                reductions=DEFAULT_REDUCTIONS, seed=SEED) -> pd.DataFrame:
    """MDE (as a % fall in the level) for annual data with 1-3 post years and monthly data with
    6-36 post months, from the pre-period model (`model.monthly(rho_monthly)` for monthly data).
    Each frequency simulates its longest horizon once; shorter horizons use the first points of
    the same series. Columns: frequency, n_post, months_after, method, mde_percent (size-adjusted,
    see `power_curve`), false_positive_rate (of the unadjusted test), n_sim; `attrs["curves"]`
    holds the power curves."""
    rows, curves = [], []
    ratios = [1.0 - r for r in reductions]
    for freq, mdl, posts, months, meth in (
            ("annual", model, annual_post, 12, method),
            ("monthly", model.monthly(rho_monthly), monthly_post, 1, monthly_method or method)):
        if not len(posts):
            continue
        sims = simulate_counts(mdl, max(posts), n_sim, effects=ratios, seed=_child_seed(seed, freq))
        for n_post in posts:
            curve = power_curve(mdl, n_post, reductions=reductions, method=meth, alpha=alpha,
                                sims=sims)
            curves.append(curve)
            rows.append({"frequency": freq, "n_post": int(n_post), "months_after": n_post * months,
                         "method": meth,
                         "mde_percent": minimum_detectable_effect(curve, power) * 100,
                         "false_positive_rate": float(curve["size"].iloc[0]), "n_sim": n_sim})
    table = pd.DataFrame(rows)
    table.attrs["curves"] = pd.concat(curves, ignore_index=True)
    return table


def _child_seed(seed, *parts) -> int:
    """A deterministic sub-seed per task (stable across runs and Python hash seeds)."""
    text = "|".join(str(p) for p in (seed, *parts))
    return int.from_bytes(text.encode(), "little") % (2 ** 63)


def months_to_detect(model: PrePeriodModel, reduction: float, *, horizons=range(6, 61, 6),
                     rho_monthly: float = 0.5, n_sim: int = 300, power: float = 0.8,
                     method: str = "quasipoisson", alpha: float = 0.05, seed=SEED):
    """Months of monthly data after the event needed to detect a level change of `reduction`
    (e.g. 0.12 for a 12% fall, sign ignored) with `power`: (months or None if beyond the
    horizons, DataFrame of power by horizon). One set of simulated series, cut at each horizon."""
    monthly = model.monthly(rho_monthly)
    horizons = [int(h) for h in horizons]
    reductions = (0.0, abs(float(reduction)))
    sims = simulate_counts(monthly, max(horizons), n_sim, effects=[1.0 - r for r in reductions],
                           seed=_child_seed(seed, "months"))
    rows = []
    for h in horizons:
        curve = power_curve(monthly, h, reductions=reductions, method=method, alpha=alpha,
                            sims=sims)
        rows.append({"months_after": h, "power": float(curve["power"].iloc[1])})
    table = pd.DataFrame(rows)
    hit = table[table["power"] >= power]
    return (int(hit["months_after"].iloc[0]) if len(hit) else None), table


def plot_when_will_we_know(table: pd.DataFrame, *, current_percent: float | None = None,
                           event: str = "the event", ax=None):
    """Chart: the smallest fall detectable (80% power) against months of data after the event."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    for freq, colour, marker in (("annual", "#7a7a7a", "s"), ("monthly", "#0b6e99", "o")):
        sel = table[table["frequency"] == freq]
        label = ("annual published data (1-3 years)" if freq == "annual"
                 else "monthly data (council's own SSDA903)")
        ax.plot(sel["months_after"], sel["mde_percent"], marker=marker, color=colour, label=label)
    if current_percent is not None and np.isfinite(current_percent):
        ax.axhline(abs(current_percent), color="#d1495b", linestyle="--", linewidth=1,
                   label=f"size of the current estimate ({abs(current_percent):.0f}%)")
    ax.set_xlabel(f"Months of data after {event}")
    ax.set_ylabel("Smallest fall detectable (%)")
    ax.set_title("When will we know? Smallest change detectable with 80% power")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------------------------
# Calibration Monte Carlo
# --------------------------------------------------------------------------------------------

def calibration_table(model: PrePeriodModel, *, n_sim: int = 300,
                      methods: Sequence[str] = CALIBRATION_METHODS,
                      annual_n: int = 16, annual_post: int = 4, monthly_n: int = 180,
                      monthly_post: int = 24, rho_monthly: float = 0.5, slope: bool = True,
                      n_sim_loop: int | None = None, alpha: float = 0.05,
                      seed=SEED) -> pd.DataFrame:
    """False-positive rate at nominal `alpha` and coverage of 95% intervals for each method, on
    series simulated from the pre-period model with NO true effect: annual (n=`annual_n`, the last
    `annual_post` points after a dummy event) and monthly (n=`monthly_n`, `monthly_post` after).
    The ITS model has a level (and slope) change; rows per method x setting x effect, with n_sim.
    Methods with their own optimiser (negbin, sarimax) go through `its.fit_its` replicate by
    replicate, on `n_sim_loop` replicates (default n_sim // 3) to keep the run short."""
    n_sim_loop = n_sim_loop or max(n_sim // 3, 20)
    rows = []
    for setting, mdl, n, post in (("annual", model, annual_n, annual_post),
                                  ("monthly", model.monthly(rho_monthly), monthly_n, monthly_post)):
        n_pre = n - post
        sims = simulate_counts(mdl, post, n_sim, n_pre=n_pre, seed=_child_seed(seed, "cal", setting))[0]
        Xdf = its_design(n_pre, post, slope=slope)
        names = [c for c in Xdf.columns if c.startswith("event:")]
        for method in methods:
            if method in ("negbin", "sarimax"):
                fit, fit_names = _loop_fit(method, Xdf, sims[:n_sim_loop], alpha)
                idx = {nm: i for i, nm in enumerate(fit_names)}
                used = n_sim_loop
            else:
                fit = batch_fit(method, Xdf.to_numpy(), sims, alpha=alpha)
                idx = {nm: list(Xdf.columns).index(nm) for nm in names}
                used = n_sim
            for nm in names:
                j = idx[nm]
                p = fit["p_value"][:, j]
                ok = np.isfinite(p)
                covered = (fit["low"][:, j] <= 0) & (fit["high"][:, j] >= 0)
                rows.append({"setting": setting, "n": n, "n_post": post, "method": method,
                             "effect": nm.split(":")[1], "n_sim": int(ok.sum()),
                             "false_positive_rate": float((p[ok] < alpha).mean()) if ok.any() else np.nan,
                             "coverage_95": float(covered[ok].mean()) if ok.any() else np.nan,
                             "n_failed": int(used - ok.sum())})
    table = pd.DataFrame(rows)
    table.attrs["model"] = model.to_dict()
    return table


def recommend_defaults(calibration: pd.DataFrame, effect: str = "level",
                       tolerance: float = 0.03) -> dict[str, str]:
    """Per setting, the method whose false-positive rate is closest to nominal 5% (within
    `tolerance` above it counts as calibrated), preferring count models (DESIGN: counts as counts)
    and then the best coverage."""
    preference = {"quasipoisson": 0, "negbin": 1, "ar1": 2, "ols": 3, "poisson": 4,
                  "sarimax": 5, "naive_ols": 9}
    out = {}
    for setting, sel in calibration[calibration["effect"] == effect].groupby("setting"):
        sel = sel[sel["method"] != "naive_ols"].copy()
        sel["excess"] = (sel["false_positive_rate"] - 0.05).clip(lower=0)
        ok = sel[sel["excess"] <= tolerance]
        pool = ok if len(ok) else sel.nsmallest(1, "excess")
        pool = pool.assign(rank=pool["method"].map(preference).fillna(8),
                           cov_gap=(pool["coverage_95"] - 0.95).abs())
        out[setting] = str(pool.sort_values(["rank", "cov_gap"]).iloc[0]["method"])
    return out


# --------------------------------------------------------------------------------------------
# Headline and records
# --------------------------------------------------------------------------------------------

def headline(spec: SpecCurveResult | None = None, placebo: PlaceboResult | None = None,
             power: pd.DataFrame | None = None, months: int | None = None, *,
             months_half: int | None = None,
             event: str = "family_matters", event_title: str | None = None,
             months_horizon: int = 60, calibration_defaults: Mapping | None = None) -> dict:
    """What the summary notebook quotes: how fragile the event's estimate is and how many months of
    monthly data would settle it. Returns a dict with `text` (plain English) and the numbers."""
    title = event_title or event
    out: dict = {"event": event, "event_title": title}
    parts = []
    if spec is not None:
        s = spec.stats()
        out.update({k: _clean_number(v, 4) if isinstance(v, float) else v for k, v in s.items()})
        if s.get("n_specs"):
            same_sign = s["share_negative"] in (0.0, 1.0)
            if same_sign and s["share_significant"] >= 0.8:
                out["fragility"] = "robust"
            elif (0.2 < s["share_negative"] < 0.8) or s["share_significant"] < 0.5:
                out["fragility"] = "fragile"
            else:
                out["fragility"] = "consistent in direction but not in significance"
            parts.append(
                f"The estimate for \u201c{title}\u201d is {out['fragility']}: across "
                f"{s['n_specs']} reasonable "
                f"specifications the level change ranges from {s['min_percent']:+.0f}% to "
                f"{s['max_percent']:+.0f}% (pre-declared analysis {s['default_percent']:+.0f}%), "
                f"{s['share_negative']:.0%} of them show a fall and {s['share_significant']:.0%} "
                "are significant at 5%.")
            if s.get("default_n_post") == 1:
                parts.append("Every version rests on a single reporting year after the launch, so "
                             "the estimates agree on its size but not on how sure to be.")
    if placebo is not None:
        rows = placebo.summary_table
        rows = rows[(rows["event"] == event) & (rows["effect"] == "level")]
        if len(rows):
            r = rows.iloc[0]
            out.update(placebo_rank_p=_clean_number(r["rank_p"], 4), n_placebo=int(r["n_placebo"]))
            if r["n_placebo"]:
                n_ge = int(r["n_placebo"] - r["n_smaller"])
                parts.append(f"Moved to {int(r['n_placebo'])} earlier dates, the same model finds "
                             f"a change at least as large {n_ge} time{'' if n_ge == 1 else 's'} "
                             f"(placebo p = {r['rank_p']:.2f}; the smallest possible with "
                             f"{int(r['n_placebo'])} dates is {1 / (1 + r['n_placebo']):.2f}).")
    if power is not None:
        for row in power.to_dict("records"):
            out[f"mde_{row['frequency']}_{row['n_post']}_percent"] = _clean_number(row["mde_percent"], 2)
        ann = power[(power["frequency"] == "annual") & (power["n_post"] == 1)]
        if len(ann) and np.isfinite(ann["mde_percent"].iloc[0]):
            parts.append(f"With one year of published annual data only a fall of about "
                         f"{ann['mde_percent'].iloc[0]:.0f}% or more would be reliably detected.")
    current = out.get("default_percent")
    out["months_to_detect"] = months
    out["months_to_detect_half"] = months_half
    if months is not None:
        parts.append(f"With monthly data, a change the size of the current estimate "
                     f"({abs(current):.0f}%) would be detected with 80% power within "
                     f"{months} months" + (
                         f"; one half that size ({abs(current) / 2:.0f}%) within "
                         f"{months_half} months." if months_half is not None else
                         f"; one half that size ({abs(current) / 2:.0f}%) not within "
                         f"{months_horizon} months." if current is not None else "."))
    elif current is not None and np.isfinite(current):
        parts.append(f"Even {months_horizon} months of monthly data would not reliably detect a "
                     f"change the size of the current estimate ({abs(current):.0f}%).")
    if calibration_defaults:
        out["calibrated_defaults"] = dict(calibration_defaults)
    out["text"] = " ".join(parts)
    return out


def headline_path(results_path) -> Path:
    """Where the headline JSON goes: next to the notebook's records (`<stem>.headline.json`)."""
    path = Path(results_path)
    return path.with_name(f"{path.stem}.headline.json")


def save_headline(head: Mapping, results_path) -> Path:
    """Write the headline next to `results_path` (temp file then rename)."""
    path = headline_path(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(head), indent=1, sort_keys=True))
    tmp.replace(path)
    return path


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _clean_number(float(value), 6)
    return value


def to_records(*, placebo: PlaceboResult | None = None, spec: SpecCurveResult | None = None,
               power: pd.DataFrame | None = None, calibration: pd.DataFrame | None = None,
               head: Mapping | None = None, outcome: str | None = None, **context) -> list[dict]:
    """results.json records (RECORD_COLUMNS plus a few named extras) for the sensitivity notebook.

    design "placebo_in_time": estimate = the real estimate, ci = placebo range (same scale), p_value =
    placebo rank p. "specification_curve": estimate = median % change, ci = min/max over specs,
    p_value = None. "power_mde": estimate = MDE (% fall), effect "level_mde_<frequency>_<n>".
    "calibration": estimate = false-positive rate, extra coverage_95 and n_sim.
    "sensitivity_headline": estimate = pre-declared % change, ci = range over specifications,
    p_value = the pre-declared analysis' p, extra text and months_to_detect. "power_months":
    effect "months_to_detect" / "months_to_detect_half", estimate = months of monthly data for
    80% power at the current estimate's size / half of it (None: beyond the horizon).
    """
    base = {key: context.get(key) for key in ("analysis", "notebook", "la")}
    base["outcome"] = outcome
    records = []

    def add(**kw):
        rec = dict(base)
        rec.update(kw)
        for key in ("estimate", "ci_low", "ci_high", "p_value"):
            rec[key] = _clean_number(rec.get(key)) if rec.get(key) is not None else None
        records.append(rec)

    if placebo is not None:
        for r in placebo.summary_table.to_dict("records"):
            add(event=r["event"], design="placebo_in_time", effect=r["effect"],
                estimate=r["estimate"], ci_low=r["placebo_estimate_low"],
                ci_high=r["placebo_estimate_high"],
                p_value=r["rank_p"], scale=r["scale"], n_placebo=int(r["n_placebo"]))
    if spec is not None:
        s = spec.stats()
        if s.get("n_specs"):
            add(event=spec.event, design="specification_curve", effect="level",
                estimate=s["median_percent"], ci_low=s["min_percent"], ci_high=s["max_percent"],
                p_value=None, scale="percent", n_specs=s["n_specs"],
                share_significant=_clean_number(s["share_significant"], 4),
                share_negative=_clean_number(s["share_negative"], 4))
    if power is not None:
        for r in power.to_dict("records"):
            add(event=context.get("event"), design="power_mde",
                effect=f"level_mde_{r['frequency']}_{r['n_post']}", estimate=r["mde_percent"],
                ci_low=None, ci_high=None, p_value=None, scale="percent", n_sim=int(r["n_sim"]))
    if calibration is not None:
        for r in calibration.to_dict("records"):
            add(event=None, design="calibration", effect=f"{r['effect']}_{r['setting']}_{r['method']}",
                estimate=r["false_positive_rate"], ci_low=None, ci_high=None, p_value=None,
                scale="proportion", coverage_95=_clean_number(r["coverage_95"], 4),
                n_sim=int(r["n_sim"]))
    if head is not None:
        add(event=head.get("event"), design="sensitivity_headline", effect="level",
            estimate=head.get("default_percent"), ci_low=head.get("min_percent"),
            ci_high=head.get("max_percent"), p_value=head.get("default_p_value"),
            scale="percent", text=head.get("text"), months_to_detect=head.get("months_to_detect"),
            fragility=head.get("fragility"))
        for key in ("months_to_detect", "months_to_detect_half"):
            # results.json keeps only RECORD_COLUMNS: the months travel as an estimate.
            add(event=head.get("event"), design="power_months", effect=key,
                estimate=head.get(key), ci_low=None, ci_high=None, p_value=None, scale="months")
    return records


def load_headline(results_dir, notebook: str = "06_sensitivity") -> dict | None:
    """The saved headline (for the summary notebook): `<results_dir>/<notebook>.headline.json`,
    or None when the sensitivity notebook has not run."""
    path = Path(results_dir) / f"{notebook}.headline.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# Plain-English readings for the notebook
# --------------------------------------------------------------------------------------------

def power_reading(table: pd.DataFrame, months: int | None, current_percent: float | None,
                  *, horizon: int = 60) -> str:
    """What the power table means for a council."""
    ann = table[table["frequency"] == "annual"].set_index("n_post")["mde_percent"]
    mon = table[table["frequency"] == "monthly"].set_index("n_post")["mde_percent"]

    def pct(v):
        return "more than the largest change simulated" if not np.isfinite(v) else f"{v:.0f}%"

    parts = []
    if len(ann):
        parts.append("With published annual figures, the smallest fall in the level that would be "
                     "detected 8 times in 10 is "
                     + ", ".join(f"{pct(v)} after {k} year{'s' if k > 1 else ''}"
                                 for k, v in ann.items()) + ".")
    if len(mon):
        parts.append("With the council's own monthly data it is "
                     + ", ".join(f"{pct(v)} after {k} months" for k, v in mon.items()) + ".")
    if current_percent is not None and np.isfinite(current_percent):
        if months is not None:
            parts.append(f"A change the size of the current estimate ({abs(current_percent):.0f}%) "
                         f"would be detected 8 times in 10 after about {months} months of monthly data.")
        else:
            parts.append(f"A change the size of the current estimate ({abs(current_percent):.0f}%) "
                         f"would not be reliably detected even after {horizon} months.")
    oversized = table[table["false_positive_rate"] > 0.075]
    if len(oversized):
        parts.append("Where the test rejects too often with no effect (false-positive rate above "
                     "7.5%), the threshold was tightened so these figures are not flattered.")
    return " ".join(parts)


def calibration_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per setting x method: false-positive rate and 95% coverage for level and slope,
    and the number of simulations (rounded for display)."""
    wide = table.pivot_table(index=["setting", "method"], columns="effect",
                             values=["false_positive_rate", "coverage_95"])
    wide.columns = [f"{value}_{effect}" for value, effect in wide.columns]
    n_sim = table.groupby(["setting", "method"])["n_sim"].min()
    out = wide.join(n_sim).reset_index()
    order = {m: i for i, m in enumerate(CALIBRATION_METHODS)}
    out = out.sort_values(["setting", "method"], key=lambda c: c.map(order) if c.name == "method"
                          else c).reset_index(drop=True)
    return out.round(3)


def calibration_reading(table: pd.DataFrame, defaults: Mapping[str, str]) -> str:
    """Which methods keep their promises when nothing happened."""
    level = table[table["effect"] == "level"]
    parts = []
    for setting, sel in level.groupby("setting", sort=False):
        sel = sel.set_index("method")
        worst = sel["false_positive_rate"].idxmax()
        n = int(sel["n"].iloc[0])
        parts.append(
            f"On {setting} series like these (n = {n}) with no real change, "
            f"{worst.replace('_', ' ')} claims a significant level change "
            f"{sel.loc[worst, 'false_positive_rate']:.0%} of the time; "
            f"{defaults.get(setting, '?')} (recommended) does so "
            f"{sel.loc[defaults[setting], 'false_positive_rate']:.0%} of the time and its 95% "
            f"intervals cover the truth {sel.loc[defaults[setting], 'coverage_95']:.0%} of the time"
            + (f"; naive OLS: {sel.loc['naive_ols', 'false_positive_rate']:.0%}."
               if "naive_ols" in sel.index else "."))
    return " ".join(parts)
