"""Specification curve: the same question answered under every reasonable analysis choice (start
year, launch date within its uncertainty window, model family, leaving out the COVID-affected
reporting years, counts vs rates, which earlier events are modelled, and the shape of the
effect: a level change, or a level and a slope change)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.checks.base import CheckResult
from helpers.checks.common import (LOG_LINK, baseline_at, effect_row, estimable_effects,
                                   event_args, kept_event_kwargs, percent_change)
from helpers.core import timeline
from helpers.core.errors import CareTrendsError
from helpers.core.records import make_record
from helpers.models.its import fit_its
from helpers.spec import as_events

#: Families the specification curve varies over by default (DESIGN: counts as counts first).
SPEC_FAMILIES = ("quasipoisson", "negbin", "ols", "ar1")
#: Reporting years affected by COVID-19 (2021 = April 2020 - March 2021; 2020 ends March 2020).
COVID_YEARS = {"none": (), "2021": (2021,), "2020+2021": (2020, 2021)}
#: Which other declared events a specification models: all of them, or none (the focus only:
#: an earlier change then counts as part of the trend or of the focus event's effect).
EARLIER_EVENTS = ("all", "none")
#: The focus event's effect shape.
EFFECT_SHAPES = ("level", "level+slope")


def launch_window(event) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The uncertainty window of an event's date (`helpers.spec.Event.window`: its precision)."""
    low, high = as_events([event])[0].window
    return pd.Timestamp(low), pd.Timestamp(high)


def launch_times(event: Mapping, frequency: str = "annual") -> list[int]:
    """Distinct first in-force times an event's date could give within its uncertainty window
    (annual data: also the first reporting year with at least six months in force, so a
    programme launched in October counts from the year it launched)."""
    low, high = launch_window(event)
    date = pd.Timestamp(as_events([event])[0].date)
    to_time = (timeline.first_full_reporting_year if frequency == "annual"
               else timeline.first_full_month_index)
    candidates = {to_time(d.date()) for d in (low, date, high)}
    if frequency == "annual":
        # Alternative convention: the first reporting year with at least half a year in force.
        for d in (low, date, high):
            ry = timeline.reporting_year(d.date())
            year_end = pd.Timestamp(year=ry, month=3, day=31)
            candidates.add(ry if (year_end - d).days >= 182 else ry + 1)
    return sorted(candidates)


def specification_grid(event: Mapping, *, start_years: Sequence[int] = (2010, 2014),
                       families: Sequence[str] = SPEC_FAMILIES,
                       covid: Sequence[str] = ("none", "2021"),
                       scales: Sequence[str] = ("rate", "count"),
                       earlier_events: Sequence[str] = EARLIER_EVENTS,
                       effect_shapes: Sequence[str] = EFFECT_SHAPES,
                       frequency: str = "annual") -> pd.DataFrame:
    """Every combination of analysis choices (one row per specification, with a `spec_id`)."""
    for name, values, allowed in (("covid", covid, COVID_YEARS),
                                  ("earlier_events", earlier_events, EARLIER_EVENTS),
                                  ("effect_shapes", effect_shapes, EFFECT_SHAPES)):
        bad = [c for c in values if c not in allowed]
        if bad:
            raise CareTrendsError(f"{name} option(s) {bad} unknown; choose from {list(allowed)}")
    choices = itertools.product(start_years, launch_times(event, frequency), families, covid,
                                scales, earlier_events, effect_shapes)
    grid = pd.DataFrame([{"start_year": int(start), "launch_time": int(launch), "family": fam,
                          "covid_excluded": cov, "scale": scale, "earlier_events": earlier,
                          "effect_shape": shape}
                         for start, launch, fam, cov, scale, earlier, shape in choices])
    grid.insert(0, "spec_id", range(len(grid)))
    return grid


class SpecCurveResult(CheckResult):
    """`table`: one row per specification with the focus event's level change as `percent`
    (with `pct_low`, `pct_high`), its `p_value`, and the choices; `default` marks the
    pre-declared analysis."""

    check = "specification_curve"

    def __init__(self, table: pd.DataFrame, event: str, default: Mapping):
        self.table = table
        self.event = event
        self.default = dict(default)

    def to_records(self, **context) -> list[dict]:
        """estimate = median % change, ci = min/max over specifications."""
        s = self.stats()
        if not s.get("n_specs"):
            return []
        return [make_record(event=self.event, design=self.check, effect="level",
                            estimate=s["median_percent"], ci_low=s["min_percent"],
                            ci_high=s["max_percent"], p_value=None, scale="percent", **context)]

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



def specification_curve(series: pd.DataFrame, events: Sequence[Mapping], focus: str, *,
                        grid: pd.DataFrame | None = None, outcome_count: str = "count",
                        population: str = "population",
                        time: str = "year", default: Mapping | None = None,
                        fitter: Callable | None = None, **grid_kwargs) -> SpecCurveResult:
    """Fit the ITS model under every specification in `grid` (default `specification_grid` of the
    focus event) and collect the focus event's level change in % (ratio families: rate ratio - 1;
    OLS/AR(1): the difference as a share of the counterfactual at the first post time).

    `series`: annual series from the earliest start year (year, count, population).
    "rate" specifications use the population offset (log-link) or, for OLS/AR(1), the rate per
    10,000 computed from count and population (not the published rate, which is rounded to whole
    numbers from 2018); "count" specifications model the count without an offset.
    "earlier_events" "none" models the focus event alone; "effect_shape" sets the focus event's
    effects (a slope change needs two points after it, else that specification is skipped). Events whose first in-force time
    falls before a specification's start or after the data are left out of that fit; when a
    choice leaves too few points between events (e.g. dropping 2021), other events' slope terms
    are dropped until the model can be estimated (`simplified` True). Launch times outside the
    data are not specifications and are left out.
    """
    fitter = fitter or fit_its
    events = as_events(events)
    by_name = {e.name: e for e in events}
    if focus not in by_name:
        raise CareTrendsError(f"no event named {focus!r}; choose from {sorted(by_name)}")
    grid = grid if grid is not None else specification_grid(by_name[focus], **grid_kwargs)
    args = event_args(events, "annual")
    base_times = dict(args["interventions"])
    default = dict(default or {})
    rate_column = "_rate_per_10000_computed"
    series = series.assign(**{rate_column: 10_000 * series[outcome_count].astype(float)
                              / series[population].astype(float)})
    rows = []
    for spec in grid.to_dict("records"):
        effects = dict(args["effects"])
        if "effect_shape" in spec:
            effects[focus] = tuple(spec["effect_shape"].split("+"))
        data = series[series[time] >= spec["start_year"]]
        drop = COVID_YEARS[spec["covid_excluded"]]
        data = data[~data[time].isin(drop)].reset_index(drop=True)
        times = dict(base_times)
        times[focus] = spec["launch_time"]
        if spec.get("earlier_events") == "none":
            times = {focus: times[focus]}
        first, last = data[time].min(), data[time].max()
        times = {k: v for k, v in times.items() if first < v <= last}
        log_link = spec["family"] in LOG_LINK
        if spec["scale"] == "rate":
            outcome, offset = (outcome_count, population) if log_link else (rate_column, None)
        else:
            outcome, offset = outcome_count, None
        out = dict(spec, percent=np.nan, pct_low=np.nan, pct_high=np.nan, p_value=np.nan,
                   estimate=np.nan, effect_scale=None, error=None, simplified=False)
        eff_map = estimable_effects(data[time].to_numpy(), times, effects, focus) \
            if focus in times else None
        if focus not in times:
            continue  # the launch time lies outside this window of data: not a specification
        if len(effects[focus]) > 1 and int((data[time] >= times[focus]).sum()) < 2:
            continue  # a slope change needs two points after the launch: not a specification
        if eff_map is not None:
            n_after = int((data[time] >= times[focus]).sum())
            simplified = eff_map != {k: effects[k] for k in times}
            times = {k: v for k, v in times.items() if k in eff_map}
            out["simplified"] = simplified
            try:
                res = fitter(data, outcome=outcome, time=time, interventions=times,
                             effects=eff_map, family=spec["family"], offset=offset, harmonics=0,
                             counterfactual_for=focus, **kept_event_kwargs(args, times))
                row = effect_row(res, focus, "level")
                if row is not None:
                    base = baseline_at(res, times[focus]) if row["scale"] != "ratio" else None
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
