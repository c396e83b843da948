"""Placebo in time: move an event to every earlier admissible date (on the data before the real
event) and see where the real estimate falls among the placebo estimates."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.checks.base import CheckResult
from helpers.checks.common import baseline_at, effect_row, event_args, kept_event_kwargs
from helpers.core.errors import CareTrendsError
from helpers.core.records import make_record
from helpers.models.its import fit_its


def smallest_p(n_placebo: int) -> float:
    """The smallest placebo rank p-value `n_placebo` dates allow: 1 / (n + 1) (0.125 with 7)."""
    return 1.0 / (1 + int(n_placebo))


class PlaceboResult(CheckResult):
    """Placebo-in-time estimates for each event. `table`: one row per event x effect x placebo time
    (`placebo` True) plus the real estimate (`placebo` False), with `estimate`, `log_estimate`
    (log ratio, or the difference for OLS), `p_value`. `summary_table`: one row per event x effect
    with the real estimate, the number of placebo dates and the placebo rank p-value."""

    check = "placebo_in_time"

    def __init__(self, table: pd.DataFrame, summary_table: pd.DataFrame):
        self.table = table
        self.summary_table = summary_table

    def to_records(self, **context) -> list[dict]:
        """estimate = the real estimate, ci = placebo range (same scale), p_value = rank p."""
        return [make_record(event=r["event"], design=self.check, effect=r["effect"],
                            estimate=r["estimate"], ci_low=r["placebo_estimate_low"],
                            ci_high=r["placebo_estimate_high"], p_value=r["rank_p"],
                            scale=r["scale"], **context)
                for r in self.summary_table.to_dict("records")]



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
    fitter = fitter or fit_its
    args = event_args(events, frequency)
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
                     **kept_event_kwargs(args, times), **fit_kwargs)
        for eff in effects[name]:
            row = effect_row(res, name, eff)
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
                              **kept_event_kwargs(args, interventions), **fit_kwargs)
            except (CareTrendsError, np.linalg.LinAlgError, ValueError):
                continue
            for eff in placebo_effects:
                row = effect_row(pres, name, eff)
                if row is not None and np.isfinite(row["estimate"]):
                    rows.append(_placebo_row(name, eff, placebo_t, True, row, pres, placebo_t))
    return summarise_placebos(pd.DataFrame(rows))


def summarise_placebos(table: pd.DataFrame) -> PlaceboResult:
    """Per event x effect: the real estimate, the placebo dates, how many placebo estimates are
    smaller in size (log scale) and the rank p-value (1 + #{|placebo| >= |real|}) / (k + 1),
    whose smallest possible value is `smallest_p(k)`."""
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
        base = baseline_at(res, first_time)
        log_est = est / base if base else float("nan")  # comparable size: share of baseline
    return {"event": name, "effect": eff, "time": t, "placebo": placebo, "estimate": est,
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "p_value": row["p_value"],
            "scale": scale, "log_estimate": log_est,
            "percent": (math.exp(log_est) - 1) * 100 if scale == "ratio" else log_est * 100}
