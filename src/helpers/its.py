"""Interrupted time series: segmented regression with several dated interruptions.

One call, one result object (CausalPy's fit -> summary -> plot):

    res = fit_its(df, outcome="starts", time="year", interventions={"family_matters": 2025},
                  effects=("level",), family="quasipoisson", offset="population")
    res.effects, res.counterfactual, res.impact, res.diagnostics, res.summary(), res.plot()

The model (the ITS tutorial literature: Bernal, Cummins & Gasparrini 2017; Wagner et al. 2002):

    g(E[y_t]) = b0 + b1 (t - t0) + sum_k [ level_k * L_k(t) + slope_k * S_k(t) ] + Fourier(t)
                (+ log(offset_t) for the count families)

with, for an intervention first in force at T_k after a lag of l_k periods (s_k = T_k + l_k),
    L_k(t) = 1 for t >= s_k, or the ramp min(1, (t - s_k + 1) / p_k) with a phase-in of p_k periods;
    S_k(t) = t - s_k for t >= s_k, else 0 (so the level change is measured at s_k itself).
Level effects of log-link families are rate ratios; slope effects are ratios per period.

Families: "poisson", "quasipoisson" (dispersion = Pearson chi2 / residual df), "negbin" (NB2 GLM
with alpha profiled by maximum likelihood), "ols" (Newey-West HAC errors), "ar1" (GLSAR, AR(1)
errors by iterated Cochrane-Orcutt) and "sarimax" (regression with ARMA errors, default AR(1)).
Intervals are t-based with the residual degrees of freedom where a scale is estimated
(quasipoisson, ols, ar1), normal otherwise (poisson, negbin, sarimax). Newey-West lags follow
floor(4 (n/100)^(2/9)) (at least 1) unless `hac_lags` is given. For ar1/sarimax "fitted" is the
regression mean X b (the error process is not added), so fitted and counterfactual compare alike.

`counterfactual` removes the terms of one intervention (the last unless `counterfactual_for`);
its band is the confidence interval of that mean. `impact` turns it into the units people ask
about (children who did not enter care = counterfactual - fitted), per period and cumulative,
with intervals from 4,000 draws of the coefficients (multivariate t or normal, matching the
coefficient intervals; fixed seed), so the numbers are reproducible.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from helpers.core import timeline
from helpers.core.errors import CareTrendsError
from helpers.core.records import EFFECT_COLUMNS, EffectResult
from helpers.present.text import format_interval

__all__ = ["FAMILIES", "ITSResult", "fit_its", "fit_many", "interventions_from_events",
           "newey_west_lags"]

FAMILIES = ("poisson", "quasipoisson", "negbin", "ols", "ar1", "sarimax")
LOG_LINK_FAMILIES = ("poisson", "quasipoisson", "negbin")
EFFECT_NAMES = ("level", "slope")
#: Seed of the coefficient draws behind `res.impact` intervals (fixed so reports are stable).
IMPACT_SEED = 20240301
IMPACT_DRAWS = 4000
MIN_POINTS_BEFORE = 8
MIN_POINTS_AFTER = 3

_FAMILY_TEXT = {
    "poisson": "Poisson regression with a log-population offset",
    "quasipoisson": "quasi-Poisson regression with a log-population offset",
    "negbin": "negative binomial regression with a log-population offset",
    "ols": "linear regression with Newey-West (HAC) standard errors",
    "ar1": "linear regression with AR(1) errors (GLSAR)",
    "sarimax": "regression with ARMA errors (SARIMAX)",
}
#: outcome -> (noun, verb, what the "averted" amount counts; None = not a count of children)
_OUTCOME_TEXT = {
    "starts": ("starts", "were", "children entered care"),
    "ceased": ("children leaving care", "were", "children left care"),
    "cla_31_march": ("children looked after on 31 March", "were",
                     "children were looked after on 31 March"),
    "cla_month_end": ("children in care at month end", "were",
                      "children were in care at month end"),
    "rate_per_10000": ("the rate per 10,000 children", "was", None),
}
#: Stock measures: sums over periods are child-years, so the reading uses the latest period.
STOCK_OUTCOMES = ("cla_31_march", "cla_month_end")


# --------------------------------------------------------------------------------------------
# Declared impact model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Event:
    name: str
    first_in_force: float
    effects: tuple
    phase_in: int
    lag: int
    title: str

    @property
    def start(self) -> float:
        """First period in which the declared effect begins (after any lag)."""
        return self.first_in_force + self.lag


def _per_event(value, name: str, default):
    if isinstance(value, dict):
        return value.get(name, default)
    return default if value is None else value


def _parse_effects(value, name: str) -> tuple:
    if isinstance(value, dict):
        if name not in value:
            raise CareTrendsError(
                f"effects has no entry for intervention {name!r}; give effects for every "
                f"intervention, e.g. effects={{{name!r}: ('level', 'slope')}}")
        value = value[name]
    if isinstance(value, str):
        value = [part.strip() for part in value.replace("+", ",").split(",") if part.strip()]
    value = tuple(value)
    bad = [v for v in value if v not in EFFECT_NAMES]
    if not value or bad:
        raise CareTrendsError(
            f"effects for {name!r} must be 'level', 'slope' or both, not {list(value)!r}")
    return tuple(e for e in EFFECT_NAMES if e in value)


def _parse_events(interventions, effects, phase_in, lag, titles) -> list[_Event]:
    if not interventions or not isinstance(interventions, dict):
        raise CareTrendsError(
            "no interventions given; pass interventions={name: first time in force}, "
            "e.g. {'family_matters': 2025}")
    for what, value in (("effects", effects), ("phase_in", phase_in), ("lag", lag)):
        unknown = sorted(set(value) - set(interventions)) if isinstance(value, dict) else []
        if unknown:
            raise CareTrendsError(
                f"{what} names {unknown}, which are not among the interventions "
                f"{list(interventions)}; check the spelling")
    events = []
    for name, when in interventions.items():
        try:
            when = float(when)
        except (TypeError, ValueError) as exc:
            raise CareTrendsError(
                f"intervention {name!r} has time {when!r}; give the first time it is in force "
                "in the units of the time column (interventions_from_events reads dates)"
            ) from exc
        p = _per_event(phase_in, name, 0) or 0
        lg = _per_event(lag, name, 0) or 0
        if int(p) != p or p < 0 or int(lg) != lg or lg < 0:
            raise CareTrendsError(
                f"phase_in and lag for {name!r} must be whole numbers of periods >= 0")
        title = (titles or {}).get(name) or str(name).replace("_", " ")
        events.append(_Event(str(name), when, _parse_effects(effects, name), int(p), int(lg),
                             title))
    return sorted(events, key=lambda e: (e.first_in_force, e.name))


def _level_term(t: np.ndarray, event: _Event) -> np.ndarray:
    if event.phase_in <= 1:
        return (t >= event.start).astype(float)
    return np.clip((t - event.start + 1.0) / event.phase_in, 0.0, 1.0)


def _slope_term(t: np.ndarray, event: _Event) -> np.ndarray:
    return np.where(t >= event.start, t - event.start, 0.0)


def newey_west_lags(n: int) -> int:
    """Newey & West (1994) rule of thumb: floor(4 (n/100)^(2/9)), at least 1."""
    return max(1, int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0))))


# --------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------
def _resolve_outcome(df, outcome):
    """(column, name): frames from helpers.data.annual_series hold one measure in 'count', so
    outcome='starts' finds it there, and outcome='count' is named after its measure."""
    if not isinstance(df, pd.DataFrame) or "measure" not in df.columns:
        return outcome, outcome
    measures = df["measure"].dropna().unique()
    single = str(measures[0]) if len(measures) == 1 else None
    if outcome not in df.columns and "count" in df.columns and single == outcome:
        return "count", outcome
    if outcome == "count" and single:
        return "count", single
    return outcome, outcome


def _prepare(df, outcome, time, offset, family, season, frequency, harmonics, period):
    if not isinstance(df, pd.DataFrame):
        raise CareTrendsError("fit_its needs a pandas DataFrame with one row per period")
    if time not in df.columns and time == "t" and "year" in df.columns:
        time = "year"  # annual series from helpers.data carry 'year'
    missing = [c for c in (outcome, time) if c not in df.columns]
    uses_offset = family in LOG_LINK_FAMILIES and offset is not None
    if uses_offset and offset not in df.columns:
        missing.append(offset)
    if missing:
        raise CareTrendsError(
            f"column(s) {missing} not in the data (columns: {list(df.columns)}); pass the right "
            "outcome=/time=/offset= names (offset=None to model counts without a population)")
    if family not in FAMILIES:
        raise CareTrendsError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")

    if frequency is None:
        t_max = pd.to_numeric(df[time], errors="coerce").max()
        frequency = "monthly" if (season in df.columns or t_max < 1900) else "annual"
    if frequency not in ("annual", "monthly"):
        raise CareTrendsError(f"frequency must be 'annual' or 'monthly', not {frequency!r}")

    cols = [outcome, time] + ([offset] if uses_offset else [])
    if frequency == "monthly" and season in df.columns:
        cols.append(season)
    data = df[cols].copy()
    for c in cols:
        if c == season and c not in (outcome, time, offset):
            data[c] = _month_of_year(data[c], season)
        else:
            data[c] = pd.to_numeric(data[c], errors="coerce")
    if data[time].isna().any():
        raise CareTrendsError(
            f"time column {time!r} has missing or non-numeric values; use a number per period: "
            "the reporting year, or the month index (helpers.timeline.month_index)")
    if data[time].duplicated().any():
        dups = sorted(data.loc[data[time].duplicated(), time].unique().tolist())
        raise CareTrendsError(
            f"time column {time!r} repeats {dups[:5]}; give one row per period (one area only)")
    data = data.sort_values(time).reset_index(drop=True)

    notes = []
    bad = data[outcome].isna() | (data[offset].isna() if uses_offset else False)
    if season in data.columns and season not in (outcome, time, offset):
        bad = bad | data[season].isna()
    if bad.any():
        notes.append(f"{int(bad.sum())} period(s) with a missing value were left out "
                     f"({', '.join(str(_fmt_num(v)) for v in data.loc[bad, time])}).")
        data = data.loc[~bad].reset_index(drop=True)
    if uses_offset and (data[offset] <= 0).any():
        raise CareTrendsError(
            f"offset column {offset!r} has zero or negative values; a population offset must be "
            "positive (fix the population or pass offset=None)")
    if family in LOG_LINK_FAMILIES and (data[outcome] < 0).any():
        raise CareTrendsError(
            f"outcome {outcome!r} has negative values, which a count model cannot fit; "
            "use family='ols' for a signed outcome")

    t = data[time].to_numpy(float)
    if frequency == "monthly" and harmonics:
        if season in data.columns:
            season_values = data[season].to_numpy(float)
        else:  # month index with January 2010 = 0 (helpers.timeline)
            season_values = np.mod(t, period)
    else:
        season_values = None
    return data, time, frequency, uses_offset, season_values, notes


def _month_of_year(values: pd.Series, name: str) -> pd.Series:
    """The season column as numbers: month of year 1-12 as given, or read from '2024-03' text."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return numbers.astype(float)
    try:
        return pd.Series(pd.PeriodIndex(values.astype(str), freq="M").month.astype(float),
                         index=values.index)
    except (ValueError, TypeError) as exc:
        raise CareTrendsError(
            f"season column {name!r} must hold the month of year (1-12) or a month such as "
            "'2024-03'; fix it or pass season= another column") from exc


def _design_matrix(t, events, season_values, harmonics, period) -> pd.DataFrame:
    X = {"const": np.ones_like(t), "trend": t - t.min()}
    for ev in events:
        if "level" in ev.effects:
            X[f"{ev.name}:level"] = _level_term(t, ev)
        if "slope" in ev.effects:
            X[f"{ev.name}:slope"] = _slope_term(t, ev)
    if season_values is not None:
        if harmonics < 0 or 2 * harmonics > period:
            raise CareTrendsError(
                f"harmonics={harmonics} does not fit period={period}; use 0 to {period // 2}")
        for h in range(1, int(harmonics) + 1):
            angle = 2.0 * np.pi * h * season_values / period
            if 2 * h != period:  # sin of the Nyquist harmonic is identically zero
                X[f"sin{h}"] = np.sin(angle)
            X[f"cos{h}"] = np.cos(angle)
    return pd.DataFrame(X)


def design_columns(time, interventions: Mapping[str, float], effects=("level", "slope"),
                   harmonics: int = 0, period: int = 12, season_values=None, *, phase_in=None,
                   lag=None) -> pd.DataFrame:
    """The segmented-regression design `fit_its` uses, on a time grid (one row per time), for
    batch fits (`helpers.its_batch`, comparative and sensitivity designs) that must not drift
    from it: const, trend (time since the first point), per intervention `name:level` (with optional
    phase-in/lag) and `name:slope`, then sin/cos harmonics of `season_values` when given.
    """
    events = _parse_events(dict(interventions), effects, phase_in, lag, None)
    time = np.asarray(time, dtype=float)
    seasons = None if season_values is None or not harmonics else np.asarray(season_values, float)
    return _design_matrix(time, events, seasons, harmonics, period)


# --------------------------------------------------------------------------------------------
# Model fitting (one engine per family; all return the same dict)
# --------------------------------------------------------------------------------------------
def _fit_glm(y, X, log_offset, family):
    import statsmodels.api as sm

    off = log_offset
    if family in ("poisson", "quasipoisson"):
        model = sm.GLM(y, X, family=sm.families.Poisson(), offset=off)
        res = model.fit(scale="X2" if family == "quasipoisson" else None)
        out = dict(model=res, alpha=None)
    else:
        from scipy.optimize import minimize_scalar

        def fit_at(log_alpha):
            fam = sm.families.NegativeBinomial(alpha=float(np.exp(log_alpha)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)
                return sm.GLM(y, X, family=fam, offset=off).fit()

        # Profile likelihood over log(alpha); the lower bound is Poisson for practical purposes.
        opt = minimize_scalar(lambda a: -fit_at(a).llf, bounds=(-12.0, 3.0), method="bounded",
                              options={"xatol": 1e-6})
        res = fit_at(opt.x)
        out = dict(model=res, alpha=float(np.exp(opt.x)))
    n, k = X.shape
    pearson = float(np.sum(res.resid_pearson ** 2))
    out.update(params=np.asarray(res.params), cov=np.asarray(res.cov_params()),
               df_resid=n - k, dist="t" if family == "quasipoisson" else "z",
               dispersion=pearson / (n - k), resid=np.asarray(res.resid_pearson), llf=res.llf,
               aic=res.aic)
    return out


def _fit_ols(y, X, hac_lags):
    import statsmodels.api as sm

    n, k = X.shape
    lags = newey_west_lags(n) if hac_lags is None else int(hac_lags)
    res = sm.OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True},
                           use_t=True)
    return dict(model=res, params=np.asarray(res.params), cov=np.asarray(res.cov_params()),
                df_resid=n - k, dist="t", dispersion=None, resid=np.asarray(res.resid),
                hac_lags=lags, residual_sd=float(np.sqrt(res.scale)), llf=res.llf, aic=res.aic)


def _fit_ar1(y, X):
    import statsmodels.api as sm

    n, k = X.shape
    model = sm.GLSAR(y, X, rho=1)
    res = model.iterative_fit(maxiter=50)
    return dict(model=res, params=np.asarray(res.params), cov=np.asarray(res.cov_params()),
                df_resid=int(res.df_resid), dist="t", dispersion=None,
                resid=np.asarray(res.wresid), rho=float(np.atleast_1d(model.rho)[0]),
                residual_sd=float(np.sqrt(res.scale)), llf=res.llf, aic=res.aic)


def _fit_sarimax(y, X, order, seasonal_order):
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    n, k = X.shape
    model = SARIMAX(np.asarray(y, float), exog=np.asarray(X, float), order=order,
                    seasonal_order=seasonal_order, trend="n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        warnings.simplefilter("ignore", category=UserWarning)  # starting-parameter notices
        res = model.fit(disp=False, maxiter=500, cov_type="oim")  # OPG fails with 1 post point
    converged = bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True
    n_params = len(res.params)
    cov = np.asarray(res.cov_params())[:k, :k]
    ar = [float(v) for name, v in zip(model.param_names, res.params) if name.startswith("ar.")]
    return dict(model=res, params=np.asarray(res.params)[:k], cov=cov, df_resid=n - n_params,
                dist="z", dispersion=None, resid=np.asarray(res.resid), converged=converged,
                rho=ar[0] if ar else None, residual_sd=float(np.sqrt(res.params[-1])),
                llf=res.llf, aic=res.aic)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------
def fit_its(df, outcome="starts", time="t", interventions=None, effects=("level", "slope"),
            family="quasipoisson", offset="population", harmonics=2, period=12, season="month",
            *, phase_in=None, lag=None, titles=None, counterfactual_for=None, frequency=None,
            hac_lags=None, arima_order=(1, 0, 0), seasonal_order=(0, 0, 0, 0), ci_level=0.95,
            impact_seed=IMPACT_SEED, impact_draws=IMPACT_DRAWS, synthetic=None) -> "ITSResult":
    """Fit a segmented (interrupted) time-series model and return an `ITSResult`.

    df            one row per period for one area.
    outcome       column modelled (counts for the count families; any number for ols/ar1/sarimax).
                  On a helpers.data.annual_series frame, outcome='starts' (its measure) reads the
                  'count' column.
    time          numeric period column: reporting year (annual) or month index (monthly, January
                  2010 = 0). If 't' is absent and 'year' present, 'year' is used.
    interventions {name: first time value at which it is in force} (see interventions_from_events).
    effects       declared impact model: a tuple such as ('level', 'slope') for every
                  intervention, or a dict {name: tuple}.
    family        'poisson' | 'quasipoisson' | 'negbin' | 'ols' | 'ar1' | 'sarimax'.
    offset        exposure column (population); log(offset) is the offset of the count families;
                  ignored by the Gaussian families. None = no offset.
    harmonics, period, season
                  Fourier seasonality for monthly data: `harmonics` sine/cosine pairs of the
                  `season` column (month of year) with `period`. Annual data get none.
    phase_in, lag int or {name: int}: the level change ramps in linearly over `phase_in` periods;
                  the effects start `lag` periods after the first in-force time.
    titles        {name: plain-English title} used in the summary and chart.
    counterfactual_for
                  intervention whose absence `counterfactual` and `impact` describe (default the
                  last one); the other interventions stay in the counterfactual.
    frequency     'annual' | 'monthly'; default inferred (monthly if the season column exists or
                  time values are month indices < 1900).
    hac_lags      Newey-West lags for family='ols'; default floor(4 (n/100)^(2/9)) (at least 1).
    arima_order, seasonal_order
                  SARIMAX error model for family='sarimax' (default AR(1)).
    ci_level      interval coverage (default 95%).
    synthetic     label charts SYNTHETIC; default df.attrs.get('synthetic', False).
    """
    events = _parse_events(interventions, effects, phase_in, lag, titles)
    outcome_column, outcome = _resolve_outcome(df, outcome)
    data, time, frequency, uses_offset, season_values, notes = _prepare(
        df, outcome_column, time, offset, family, season, frequency, harmonics, period)
    t = data[time].to_numpy(float)
    y = data[outcome_column].to_numpy(float)
    n = len(y)
    unit = "year" if frequency == "annual" else "month"

    # Refuse what cannot be estimated at all.
    for ev in events:
        if (ev.first_in_force >= 1900) != (t.max() >= 1900):
            raise CareTrendsError(
                f"intervention {ev.name!r} is at {_fmt_num(ev.first_in_force)} but the time column "
                f"{time!r} runs {_fmt_num(t.min())}-{_fmt_num(t.max())}; give interventions in the "
                f"same units ({frequency}: use interventions_from_events(events, "
                f"frequency={frequency!r}))")
        if ev.first_in_force <= t.min():
            raise CareTrendsError(
                f"intervention {ev.name!r} is in force from {_fmt_num(ev.first_in_force)} but the "
                f"data start at {_fmt_num(t.min())}, so there is no pre-event period; use a later "
                "event or earlier data")
        if ev.start > t.max():
            raise CareTrendsError(
                f"intervention {ev.name!r} takes effect from {_fmt_num(ev.start)} but the data end "
                f"at {_fmt_num(t.max())}; drop it or extend the data")
    names = [ev.name for ev in events]
    if counterfactual_for is None:
        cf_event = events[-1]
    elif counterfactual_for in names:
        cf_event = events[names.index(counterfactual_for)]
    else:
        raise CareTrendsError(
            f"counterfactual_for={counterfactual_for!r} is not one of the interventions {names}")

    X = _design_matrix(t, events, season_values, harmonics, period)
    k = X.shape[1]
    extra = {"ar1": 1, "sarimax": 1 + sum(arima_order) + sum(seasonal_order[:3]) + 1}.get(family, 0)
    if n - k - extra < 1:
        raise CareTrendsError(
            f"{n} data points cannot estimate {k + extra} parameters ({family}); declare fewer "
            "effects or interventions, or use a longer series")
    for ev in events:
        for eff in ev.effects:
            col = X[f"{ev.name}:{eff}"].to_numpy()
            if not np.any(col != 0):
                raise CareTrendsError(
                    f"the {eff} change for {ev.name!r} cannot be estimated: a slope change "
                    "needs at least 2 points after the event; declare effects=('level',) for it")
    if np.linalg.matrix_rank(X.to_numpy()) < k:
        raise CareTrendsError(
            "the declared impact model cannot be estimated from these data (two events take "
            "effect in the same period, or an event's terms duplicate another's); merge the "
            "events or declare fewer effects")

    log_offset = np.log(data[offset].to_numpy(float)) if uses_offset else None
    if family in LOG_LINK_FAMILIES:
        fit = _fit_glm(y, X, log_offset, family)
    elif family == "ols":
        fit = _fit_ols(y, X, hac_lags)
    elif family == "ar1":
        fit = _fit_ar1(y, X)
    else:
        fit = _fit_sarimax(y, X, tuple(arima_order), tuple(seasonal_order))

    if synthetic is None:
        synthetic = bool(getattr(df, "attrs", {}).get("synthetic", False))
    return ITSResult(
        fit=fit, X=X, data=data, outcome=outcome, y=y, time=time,
        offset=offset if uses_offset else None,
        family=family, frequency=frequency, unit=unit, events=events, cf_event=cf_event,
        log_offset=log_offset, ci_level=ci_level, impact_seed=impact_seed,
        impact_draws=impact_draws, notes=notes, synthetic=synthetic,
        seasonality=(int(harmonics), period) if season_values is not None else None)


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------
class ITSResult(EffectResult):
    """Fitted interrupted time series.

    Attributes
    ----------
    effects         EFFECT_COLUMNS: one row per intervention x declared effect.
    coefficients    every model term on the link scale: term, coef, se, statistic, p_value, CI.
    counterfactual  time, observed, fitted, counterfactual, cf_low, cf_high, plus fitted_low,
                    fitted_high, label (period label) and offset (when used).
    impact          the counterfactual_for intervention's periods: observed, fitted, counterfactual,
                    averted (= counterfactual - fitted: e.g. children who did not enter care)
                    with averted_low/high, relative_change (= fitted / counterfactual - 1) with
                    low/high, and cumulative_* versions summed since the event (for stock
                    measures such as cla_31_march the sums are child-periods, so summary() reads
                    the latest period instead).
    impact_method   how the impact intervals were computed.
    diagnostics     dict: n, n_params, df_resid, interval, residuals (which kind), durbin_watson,
                    breusch_godfrey {lm, lm_p_value, f, p_value (F form), lags}, ljung_box
                    (DataFrame lag, lb_stat, lb_pvalue), acf, pacf (arrays from lag 0),
                    dispersion, alpha, rho, hac_lags, hac_lag_rule, residual_sd, aic,
                    points (DataFrame: intervention, first_in_force, before, after), warnings.
                    Residuals: Pearson (count families), whitened (ar1), innovations (sarimax).
    warnings        plain-English warnings (also in diagnostics).
    impact_model    the declared impact model as a table; `impact_model_text()` as sentences.
    model           the underlying statsmodels results; design_matrix, params, cov_params.
    """

    design = "its"

    def __init__(self, *, fit, X, data, outcome, y, time, offset, family, frequency, unit, events,
                 cf_event, log_offset, ci_level, impact_seed, impact_draws, notes, synthetic,
                 seasonality):
        self.outcome = outcome
        self.time = time
        self.offset = offset
        self.family = family
        self.frequency = frequency
        self.unit = unit
        self.events = events
        self.interventions = {ev.name: ev.first_in_force for ev in events}
        self.titles = {ev.name: ev.title for ev in events}
        self.counterfactual_for = cf_event.name
        self.ci_level = ci_level
        self.synthetic = synthetic
        self.seasonality = seasonality
        self.model = fit["model"]
        self.design_matrix = X
        self.params = pd.Series(fit["params"], index=X.columns)
        self.cov_params = pd.DataFrame(fit["cov"], index=X.columns, columns=X.columns)
        self.df_resid = fit["df_resid"]
        self.interval = fit["dist"]
        self.dispersion = fit.get("dispersion")
        self.alpha = fit.get("alpha")
        self.rho = fit.get("rho")
        self.hac_lags = fit.get("hac_lags")
        self._fit = fit
        self._data = data
        self._log_offset = log_offset
        self._t = data[time].to_numpy(float)
        self._y = y
        self._q = self._quantile(0.5 + ci_level / 2)

        self.impact_model = pd.DataFrame([
            dict(intervention=ev.name, title=ev.title, first_in_force=ev.first_in_force,
                 first_in_force_label=self._label(ev.first_in_force), lag=ev.lag,
                 phase_in=ev.phase_in, effects="+".join(ev.effects)) for ev in events])
        self.effects = self._effects_table()
        self.coefficients = self._coefficient_table()
        self.counterfactual = self._counterfactual_table(cf_event)
        draw_law = (f"multivariate t, df={self.df_resid}" if self.interval == "t"
                    else "multivariate normal")
        self.impact_method = (
            f"intervals from {impact_draws} draws of the coefficients from their estimated "
            f"covariance ({draw_law}, seed {impact_seed}); point estimates at the fitted "
            "coefficients")
        self.impact = self._impact_table(cf_event, impact_seed, impact_draws)
        self.diagnostics = self._diagnostics(notes)
        self.warnings = self.diagnostics["warnings"]

    # -- helpers ------------------------------------------------------------------------------
    @property
    def log_link(self) -> bool:
        return self.family in LOG_LINK_FAMILIES

    def _quantile(self, p):
        return stats.t.ppf(p, self.df_resid) if self.interval == "t" else stats.norm.ppf(p)

    def _label(self, value) -> str:
        if self.frequency == "annual":
            return timeline.reporting_year_label(int(value))
        if float(value).is_integer():
            return timeline.month_from_index(int(value)).strftime("%b %Y")
        return _fmt_num(value)

    def _linear(self, X: np.ndarray) -> np.ndarray:
        eta = X @ self.params.to_numpy()
        return eta if self._log_offset is None else eta + self._log_offset

    def _mean(self, eta):
        return np.exp(eta) if self.log_link else eta

    def _band(self, X: np.ndarray):
        eta = self._linear(X)
        var = np.einsum("ij,jk,ik->i", X, self.cov_params.to_numpy(), X)
        se = np.sqrt(np.maximum(var, 0.0))  # rounding can leave -1e-16 where a point fits exactly
        return self._mean(eta), self._mean(eta - self._q * se), self._mean(eta + self._q * se)

    def _cf_matrix(self, event: _Event) -> np.ndarray:
        Xcf = self.design_matrix.copy()
        for eff in event.effects:
            Xcf[f"{event.name}:{eff}"] = 0.0
        return Xcf.to_numpy(float)

    # -- tables -------------------------------------------------------------------------------
    def _standard_errors(self) -> np.ndarray:
        # A Newey-West variance for a term identified by a single point can come out as -1e-17:
        # treat it as zero (no information) rather than take the root of a negative number.
        return np.sqrt(np.clip(np.diag(self.cov_params.to_numpy()), 0.0, None))

    def _effects_table(self) -> pd.DataFrame:
        rows = []
        se_all = self._standard_errors()
        for ev in self.events:
            for eff in ev.effects:
                j = self.design_matrix.columns.get_loc(f"{ev.name}:{eff}")
                b, se = float(self.params.iloc[j]), float(se_all[j])
                stat = b / se if se > 0 else np.nan
                p = (2 * stats.t.sf(abs(stat), self.df_resid) if self.interval == "t"
                     else 2 * stats.norm.sf(abs(stat)))
                lo, hi = b - self._q * se, b + self._q * se
                if self.log_link:
                    b, lo, hi = math.exp(b), math.exp(lo), math.exp(hi)
                rows.append(dict(intervention=ev.name, effect=eff, estimate=b, ci_low=lo,
                                 ci_high=hi, p_value=float(p),
                                 scale="ratio" if self.log_link else "difference"))
        return pd.DataFrame(rows, columns=EFFECT_COLUMNS)

    def _coefficient_table(self) -> pd.DataFrame:
        se = self._standard_errors()
        b = self.params.to_numpy()
        stat = np.divide(b, se, out=np.full_like(b, np.nan), where=se > 0)
        p = (2 * stats.t.sf(np.abs(stat), self.df_resid) if self.interval == "t"
             else 2 * stats.norm.sf(np.abs(stat)))
        return pd.DataFrame({"term": self.params.index, "coef": b, "se": se, "statistic": stat,
                             "p_value": p, "ci_low": b - self._q * se,
                             "ci_high": b + self._q * se})

    def table(self, digits: int = 2) -> pd.DataFrame:
        """The effects as a readable table for reports (titles, rounded interval text)."""
        rows = []
        for row in self.effects.itertuples():
            rows.append({
                "Event": self.titles[row.intervention],
                "Effect": _effect_words(row.effect, self.log_link, self.unit),
                "Estimate (95% CI)" if self.ci_level == 0.95 else "Estimate (CI)":
                    format_interval(row.estimate, row.ci_low, row.ci_high, row.scale, digits),
                "p": f"{row.p_value:.3f}",
            })
        return pd.DataFrame(rows)

    def _counterfactual_table(self, event: _Event) -> pd.DataFrame:
        X = self.design_matrix.to_numpy(float)
        fitted, f_lo, f_hi = self._band(X)
        cf, cf_lo, cf_hi = self._band(self._cf_matrix(event))
        table = pd.DataFrame(dict(time=self._t, observed=self._y, fitted=fitted,
                                  counterfactual=cf, cf_low=cf_lo, cf_high=cf_hi,
                                  fitted_low=f_lo, fitted_high=f_hi,
                                  label=[self._label(v) for v in self._t]))
        if self.offset is not None:
            table["offset"] = self._data[self.offset].to_numpy(float)
        return table

    def _impact_table(self, event: _Event, seed: int, draws: int) -> pd.DataFrame:
        post = self._t >= event.first_in_force
        X = self.design_matrix.to_numpy(float)
        Xcf = self._cf_matrix(event)
        fitted = self._mean(self._linear(X))[post]
        cf = self._mean(self._linear(Xcf))[post]

        rng = np.random.default_rng(seed)
        beta = self.params.to_numpy()
        cov = self.cov_params.to_numpy()
        z = rng.multivariate_normal(np.zeros(len(beta)), cov, size=draws, method="eigh")
        if self.interval == "t":  # multivariate t matches the t-based coefficient intervals
            z = z * np.sqrt(self.df_resid / rng.chisquare(self.df_resid, size=draws))[:, None]
        B = (beta[None, :] + z).T  # k x draws
        off = 0.0 if self._log_offset is None else self._log_offset[post][:, None]
        fit_d = self._mean(X[post] @ B + off)
        cf_d = self._mean(Xcf[post] @ B + off)
        lo_p, hi_p = 50 * (1 - self.ci_level), 50 * (1 + self.ci_level)

        def interval(a):
            return np.percentile(a, lo_p, axis=1), np.percentile(a, hi_p, axis=1)

        averted_d = cf_d - fit_d
        cum_fit, cum_cf = np.cumsum(fitted), np.cumsum(cf)
        cols = dict(intervention=event.name, time=self._t[post],
                    label=[self._label(v) for v in self._t[post]],
                    periods_since=self._t[post] - event.first_in_force,
                    observed=self._y[post], fitted=fitted, counterfactual=cf,
                    averted=cf - fitted)
        cols["averted_low"], cols["averted_high"] = interval(averted_d)
        cols["relative_change"] = fitted / cf - 1
        cols["relative_change_low"], cols["relative_change_high"] = interval(fit_d / cf_d - 1)
        cols["cumulative_averted"] = cum_cf - cum_fit
        (cols["cumulative_averted_low"],
         cols["cumulative_averted_high"]) = interval(np.cumsum(averted_d, axis=0))
        cols["cumulative_relative_change"] = cum_fit / cum_cf - 1
        (cols["cumulative_relative_change_low"], cols["cumulative_relative_change_high"]) = (
            interval(np.cumsum(fit_d, axis=0) / np.cumsum(cf_d, axis=0) - 1))
        cols["observed_averted"] = cf - self._y[post]  # against the data, not the fitted line
        return pd.DataFrame(cols)

    def _diagnostics(self, notes) -> dict:
        from statsmodels.stats.stattools import durbin_watson
        from statsmodels.tsa.stattools import acf, pacf

        resid = np.asarray(self._fit["resid"], float)
        n = len(self._y)
        k = self.design_matrix.shape[1]
        m = len(resid)
        nlags = max(1, min(m // 2 - 1, 6 if self.frequency == "annual" else 24))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            acf_values = acf(resid, nlags=nlags, fft=False)
            pacf_values = pacf(resid, nlags=nlags, method="ywm") if m > 3 else np.array([1.0])
        bg_lags = 1 if self.frequency == "annual" else min(12, max(1, m // 5))
        bg = _breusch_godfrey(resid, self.design_matrix.to_numpy(float)[-m:], bg_lags)
        lb = _ljung_box(resid, nlags)
        points = pd.DataFrame([
            dict(intervention=ev.name, first_in_force=ev.first_in_force,
                 before=int(np.sum(self._t < ev.first_in_force)),
                 after=int(np.sum(self._t >= ev.first_in_force))) for ev in self.events])

        msgs = list(notes)
        unit = self.unit
        for row in points.itertuples():
            title = self.titles[row.intervention]
            if row.before < MIN_POINTS_BEFORE:
                msgs.append(f"Only {row.before} {_plural(unit, row.before)} before {title}; at "
                            f"least {MIN_POINTS_BEFORE} are recommended to estimate the trend "
                            "it is compared with.")
            if row.after < MIN_POINTS_AFTER:
                msgs.append(f"Only {row.after} {_plural(unit, row.after)} after {title}; at "
                            f"least {MIN_POINTS_AFTER} are recommended before reading a change "
                            "in level or trend.")
        for prev, nxt in zip(self.events, self.events[1:]):
            between = int(np.sum((self._t >= prev.first_in_force) & (self._t < nxt.first_in_force)))
            if between < MIN_POINTS_AFTER:
                msgs.append(f"Only {between} {_plural(unit, between)} between {prev.title} and "
                            f"{nxt.title}, so the trend between them rests on very few points.")
        n_params = k + {"ar1": 1}.get(self.family, 0)
        if n < 3 * n_params:
            msgs.append(f"The model estimates {n_params} parameters from {n} data points "
                        "(fewer than 3 points per parameter), so estimates are imprecise and "
                        "sensitive to single years; consider a simpler impact model.")
        disp = self.dispersion
        if self.family == "poisson" and disp is not None and disp > 1.5:
            msgs.append(f"The counts vary {disp:.1f} times more than a Poisson model allows, so "
                        "its intervals are too narrow; use family='quasipoisson' or 'negbin'.")
        if (self.family in ("poisson", "quasipoisson", "negbin") and bg["p_value"] is not None
                and bg["p_value"] < 0.05):
            msgs.append(f"The residuals are autocorrelated (Breusch-Godfrey p = "
                        f"{bg['p_value']:.3f}); intervals may be too narrow; compare "
                        "family='ar1' or 'sarimax'.")
        if self.family == "quasipoisson" and disp is not None and disp < 1:
            msgs.append(f"The counts vary less than a Poisson model expects (dispersion "
                        f"{disp:.2f}), so quasi-Poisson intervals are narrower than Poisson "
                        "ones; family='poisson' gives the more cautious reading.")
        if self.family == "ols" and (points["after"] == 1).any():
            msgs.append("Newey-West (HAC) errors cannot measure the uncertainty of a change seen "
                        "in a single period (its residual is forced to zero), so that interval is "
                        "unreliable; read it from a count family or family='ar1' instead.")
        bad_se = self.effects.loc[~np.isfinite(self.effects["ci_low"])
                                  | ~np.isfinite(self.effects["ci_high"])]
        for row in bad_se.itertuples():
            msgs.append(f"The uncertainty of the {row.effect} change for "
                        f"{self.titles[row.intervention]} could not be estimated; do not read "
                        "this estimate without an interval.")
        if self.family == "sarimax" and not self._fit.get("converged", True):
            msgs.append("The SARIMAX fit did not fully converge; treat its estimates with care.")
        return dict(
            n=n, n_params=n_params, df_resid=self.df_resid,
            interval=(f"t-based with {self.df_resid} residual df" if self.interval == "t"
                      else "normal (z) based"),
            residuals=("Pearson" if self.log_link else
                       "whitened (AR-filtered)" if self.family == "ar1" else
                       "one-step innovations" if self.family == "sarimax" else "raw"),
            durbin_watson=float(durbin_watson(resid)), breusch_godfrey=bg, ljung_box=lb,
            acf=acf_values, pacf=pacf_values, dispersion=disp, alpha=self.alpha, rho=self.rho,
            hac_lags=self.hac_lags,
            hac_lag_rule=("floor(4 (n/100)^(2/9)), at least 1 (Newey-West 1994)"
                          if self.family == "ols" else None),
            residual_sd=self._fit.get("residual_sd"), aic=self._fit.get("aic"),
            points=points, warnings=msgs)

    # -- reading --------------------------------------------------------------------------
    def impact_model_text(self) -> str:
        parts = []
        for ev in self.events:
            what = " and ".join(f"{e} change" for e in ev.effects)
            text = f"{ev.title}: {what} from {self._label(ev.first_in_force)}"
            if ev.lag:
                text += f" after a lag of {ev.lag} {_plural(self.unit, ev.lag)}"
            if ev.phase_in > 1:
                text += f", phased in over {ev.phase_in} {_plural(self.unit, ev.phase_in)}"
            parts.append(text)
        return "Declared impact model: " + "; ".join(parts) + "."

    def summary(self) -> str:
        ev = next(e for e in self.events if e.name == self.counterfactual_for)
        imp = self.impact
        noun, verb, verb_text = _OUTCOME_TEXT.get(self.outcome, (self.outcome, "were", None))
        pct = int(round(100 * self.ci_level))
        n_post = len(imp)
        last = imp.iloc[-1]
        stock = self.outcome in STOCK_OUTCOMES
        prefix = "" if stock else "cumulative_"
        if n_post == 1:
            span = f"the {self.unit} after {ev.title} ({last['label']})"
        elif stock:
            span = (f"{last['label']}, the last of {n_post} {_plural(self.unit, n_post)} after "
                    f"{ev.title}")
        else:
            span = (f"the {n_post} {_plural(self.unit, n_post)} after {ev.title} "
                    f"({imp['label'].iloc[0]} to {last['label']})")
        rel, rlo, rhi = (last[prefix + "relative_change"], last[prefix + "relative_change_low"],
                         last[prefix + "relative_change_high"])
        sentence = (f"In {span}, {noun} {verb} {_pct_text(rel)} the pre-existing trend "
                    f"({pct}% CI {_pct_range(rlo, rhi)})")
        av, alo, ahi = (last[prefix + "averted"], last[prefix + "averted_low"],
                        last[prefix + "averted_high"])
        if verb_text:
            amount = "fewer" if av >= 0 else "more"
            sentence += (f": about {abs(av):,.0f} {amount} {verb_text} than the trend "
                         f"predicted ({pct}% CI {_count_range(alo, ahi)}).")
        else:
            sentence += "."
        # Blocks separated by blank lines read well both printed and as Markdown.
        blocks = [sentence]
        for row in self.diagnostics["points"].itertuples():
            if row.after == 1:
                u = self.unit
                blocks.append(
                    f"Only one post-event {u} is available for {self.titles[row.intervention]}: "
                    f"a single post-event {u} cannot separate a programme effect from a one-{u} "
                    "shock, so read this as an early signal, not a measured programme effect.")
        blocks.append(self.impact_model_text())
        bullets = []
        for row in self.effects.itertuples():
            title = self.titles[row.intervention]
            what = _effect_words(row.effect, self.log_link, self.unit)
            bullets.append(f"- {title}: {what} {row.estimate:.2f} ({pct}% CI {row.ci_low:.2f} "
                           f"to {row.ci_high:.2f}), p = {row.p_value:.3f}.")
        blocks.append("\n".join(bullets))
        model = (f"Model: {_FAMILY_TEXT[self.family]}, {len(self._t)} "
                 f"{_plural(self.unit, len(self._t))} ({self._label(self._t.min())} to "
                 f"{self._label(self._t.max())}); intervals {self.diagnostics['interval']}.")
        if self.family == "quasipoisson":
            model += f" Dispersion (Pearson chi-squared / df) = {self.dispersion:.2f}."
        elif self.family == "negbin":
            model += f" Negative binomial alpha = {self.alpha:.3g}."
        elif self.family == "ols":
            model += f" Newey-West lags = {self.hac_lags}."
        elif self.family in ("ar1", "sarimax") and self.rho is not None:
            model += f" AR(1) coefficient of the errors = {self.rho:.2f}."
        blocks.append(model)
        blocks.extend(f"Warning: {w}" for w in self.warnings
                      if not w.startswith("Only 1 " + self.unit + " after"))
        if self.synthetic:
            blocks.append("These results use SYNTHETIC data.")
        return "\n\n".join(blocks)

    def plot_diagnostics(self, axes=None):
        """Residuals over time, and their ACF and PACF with approximate 95% bounds (+-1.96/sqrt(n))."""
        import matplotlib.pyplot as plt

        from helpers import plotting

        if axes is None:
            _, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        resid = np.asarray(self._fit["resid"], float)
        times = self._t[-len(resid):]
        ax = axes[0]
        ax.axhline(0, color=plotting.PALETTE["comparator"], linewidth=1)
        ax.plot(times, resid, marker="o", markersize=3, color=plotting.PALETTE["fitted"])
        for ev in self.events:
            ax.axvline(ev.first_in_force - 0.5, color=plotting.PALETTE["event"], linestyle="--",
                       linewidth=1)
        ax.set_title(f"Residuals ({self.diagnostics['residuals']})")
        ax.set_xlabel("Reporting year" if self.frequency == "annual" else "Month index")
        ax.set_ylabel("Residual")
        bound = 1.96 / np.sqrt(len(resid))
        for ax, name in zip(axes[1:], ("acf", "pacf")):
            values = np.asarray(self.diagnostics[name])[1:]
            lags = np.arange(1, len(values) + 1)
            ax.bar(lags, values, width=0.4, color=plotting.PALETTE["fitted"])
            ax.axhline(0, color=plotting.PALETTE["comparator"], linewidth=1)
            for b in (bound, -bound):
                ax.axhline(b, color=plotting.PALETTE["counterfactual"], linestyle=":",
                           linewidth=1)
            ax.set_title(f"Residual {name.upper()}")
            ax.set_xlabel("Lag")
            ax.set_ylabel("Correlation")
        if self.synthetic:
            plotting.mark_synthetic(axes[0].figure)
        return axes

    def __repr__(self) -> str:
        return f"<ITSResult {self.outcome} ~ {self.family}, events={list(self.interventions)}>"

    def plot(self, ax=None, *, title=None, ylabel=None, synthetic=None):
        """Observed points, fitted segments, the counterfactual with its band, and the events."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        from helpers import plotting

        if ax is None:
            _, ax = plt.subplots()
        cf = self.counterfactual
        ax.scatter(cf["time"], cf["observed"], color=plotting.PALETTE["observed"], s=22,
                   zorder=3, label="observed")
        cuts = sorted({ev.start for ev in self.events})
        edges = [-np.inf] + cuts + [np.inf]
        for i in range(len(edges) - 1):
            seg = cf[(cf["time"] >= edges[i]) & (cf["time"] < edges[i + 1])]
            if len(seg):
                ax.plot(seg["time"], seg["fitted"], color=plotting.PALETTE["fitted"],
                        linewidth=2, marker="D" if len(seg) == 1 else None, markersize=7,
                        markerfacecolor="none", markeredgewidth=1.5,
                        label="fitted" if i == 0 else None)
        ev = next(e for e in self.events if e.name == self.counterfactual_for)
        band = cf[cf["time"] >= ev.first_in_force - 1]
        ax.plot(band["time"], band["counterfactual"], color=plotting.PALETTE["counterfactual"],
                linestyle="--", linewidth=1.6, label=f"without {ev.title} (trend continued)")
        ax.fill_between(band["time"], band["cf_low"], band["cf_high"],
                        color=plotting.PALETTE["counterfactual"], alpha=0.18, linewidth=0,
                        label=f"{int(round(100 * self.ci_level))}% interval")
        plotting.mark_events(ax, {e.title: e.first_in_force - 0.5 for e in self.events})
        if self.frequency == "annual":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("Reporting year ending 31 March")
        else:  # ticks each January (month index multiple of 12), labelled with the year
            lo, hi = self._t.min(), self._t.max()
            step = 12 * max(1, int(np.ceil((hi - lo) / 12 / 8)))
            ax.set_xticks(np.arange(np.ceil(lo / 12) * 12, hi + 1, step))
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda v, _: str(timeline.MONTH_ORIGIN.year + int(round(v)) // 12)))
            ax.set_xlabel("Month (ticks at January)")
        noun = _OUTCOME_TEXT.get(self.outcome, (self.outcome,))[0]
        ax.set_ylabel(ylabel or _first_upper(noun))
        ax.set_title(title or f"{_first_upper(noun)}: interrupted time series ({self.family})")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        if self.synthetic if synthetic is None else synthetic:
            plotting.mark_synthetic(ax)
        return ax


# --------------------------------------------------------------------------------------------
# Diagnostics helpers
# --------------------------------------------------------------------------------------------
def _breusch_godfrey(resid, X, lags):
    """Breusch-Godfrey test: regress the residuals on the regressors and their own lags
    (zero-filled). Reports the LM form n R^2 (chi2) and the F form, whose size is closer to
    nominal in short series; `p_value` is the F form's."""
    n = len(resid)
    if n - X.shape[1] - lags < 2:
        return dict(lm=None, lm_p_value=None, f=None, p_value=None, lags=lags)
    lagged = np.column_stack([np.concatenate([np.zeros(j), resid[:-j]])
                              for j in range(1, lags + 1)])
    Z = np.column_stack([X, lagged])

    def rss(design):
        coef, *_ = np.linalg.lstsq(design, resid, rcond=None)
        return float(np.sum((resid - design @ coef) ** 2))

    rss_u, rss_r = rss(Z), rss(X)
    centred = resid - resid.mean()
    tss = float(np.sum(centred ** 2))
    lm = float(n * (1 - rss_u / tss)) if tss > 0 else 0.0
    df_u = n - np.linalg.matrix_rank(Z)
    f = ((rss_r - rss_u) / lags) / (rss_u / df_u) if rss_u > 0 else np.inf
    return dict(lm=lm, lm_p_value=float(stats.chi2.sf(lm, lags)), f=float(f),
                p_value=float(stats.f.sf(f, lags, df_u)), lags=lags)


def _ljung_box(resid, nlags):
    from statsmodels.stats.diagnostic import acorr_ljungbox

    lags = list(range(1, max(1, nlags) + 1))
    return acorr_ljungbox(resid, lags=lags, return_df=True).rename_axis("lag").reset_index()


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------
def _effect_words(effect, log_link, unit):
    if log_link:
        return ("level change (rate ratio)" if effect == "level"
                else f"trend change (ratio per {unit})")
    return "level change" if effect == "level" else f"trend change per {unit}"


def _fmt_num(v):
    v = float(v)
    return int(v) if v.is_integer() else round(v, 3)


def _plural(unit, count):
    return unit if count == 1 else unit + "s"


def _first_upper(s):
    return s[:1].upper() + s[1:]


def _pct_text(rel):
    pct = abs(rel) * 100
    if pct < 0.5:
        return "in line with"
    return f"{pct:.0f}% {'below' if rel < 0 else 'above'}"


def _pct_one(rel):
    pct = abs(rel) * 100
    if pct < 0.5:
        return "0%"
    return f"{pct:.0f}% {'below' if rel < 0 else 'above'}"


def _pct_range(lo, hi):
    return f"{_pct_one(lo)} to {_pct_one(hi)}"


def _count_range(averted_low, averted_high):
    """Averted-count interval as words: (-75, 73) averted -> '73 fewer to 75 more'."""
    def words(averted):
        if round(averted) == 0:
            return "0"
        return f"{abs(averted):,.0f} {'fewer' if averted > 0 else 'more'}"
    return f"{words(averted_high)} to {words(averted_low)}"


# --------------------------------------------------------------------------------------------
# Events -> arguments
# --------------------------------------------------------------------------------------------
def _latest_date(date, precision):
    """The date an event counts from. A date known only to its calendar month or year stands for
    the whole month/year, so the latest day of it is used ('month': its last day; 'year':
    31 December). Otherwise the date is the best estimate and is used as given ('day', none,
    'quarter', 'approx', or a number of days); helpers.sensitivity varies it within its window."""
    d = pd.Timestamp(timeline.to_date(date))
    if isinstance(precision, (int, float)) and not isinstance(precision, bool):
        return d.date()
    if precision in (None, "", "day", "quarter", "approx", "approximate"):
        return d.date()
    if precision == "month":
        return (d + pd.offsets.MonthEnd(0)).date()
    if precision == "year":
        return pd.Timestamp(year=d.year, month=12, day=31).date()
    raise CareTrendsError(f"precision must be 'day', 'month', 'quarter', 'year', 'approx' or a "
                          f"number of days, not {precision!r}")


def interventions_from_events(events, frequency="annual") -> dict:
    """Turn the notebook `events` list into keyword arguments for fit_its.

    events: list of dicts (or a DataFrame such as helpers.data.load_events(); 'event_id' is
    read as the name) with name, date, optional title, effects (list or
    'level+slope'; default level and slope), phase_in, lag (periods) and precision
    (see _latest_date: the event counts from the first period wholly after the latest date
    its precision allows). Returns {'interventions', 'effects', 'phase_in', 'lag', 'titles'}, so
    `fit_its(df, **interventions_from_events(events))` works. Annual times are the first full
    reporting year in force (timeline.first_full_reporting_year); monthly times the first full
    month index (timeline.first_full_month_index).
    """
    if isinstance(events, pd.DataFrame):
        events = events.to_dict("records")
    if frequency not in ("annual", "monthly"):
        raise CareTrendsError(f"frequency must be 'annual' or 'monthly', not {frequency!r}")
    to_time = (timeline.first_full_reporting_year if frequency == "annual"
               else timeline.first_full_month_index)
    out = dict(interventions={}, effects={}, phase_in={}, lag={}, titles={})
    for event in events or []:
        if "name" not in event and "event_id" in event:
            event = {**event, "name": event["event_id"]}
        if "name" not in event or "date" not in event:
            raise CareTrendsError(
                f"each event needs a 'name' and a 'date' (YYYY-MM-DD); got {sorted(event)}")
        name = str(event["name"])
        if name in out["interventions"]:
            raise CareTrendsError(
                f"event name {name!r} is used twice; give each event its own name")
        precision = event.get("precision")
        precision = None if _is_missing(precision) else precision
        out["interventions"][name] = to_time(_latest_date(event["date"], precision))
        eff = event.get("effects", event.get("effect"))
        out["effects"][name] = _parse_effects(("level", "slope") if _is_missing(eff) else eff,
                                              name)
        for key in ("phase_in", "lag"):
            value = event.get(key)
            out[key][name] = 0 if _is_missing(value) else int(value)
        title = event.get("title")
        out["titles"][name] = name.replace("_", " ") if _is_missing(title) else str(title)
    if not out["interventions"]:
        raise CareTrendsError("no events given; add at least one {'name': ..., 'date': ...}")
    return out


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def fit_many(*args, **kwargs):
    """All-LA vectorised fitting; lives in helpers.its_batch (imported lazily)."""
    from helpers import its_batch

    return its_batch.fit_many(*args, **kwargs)
