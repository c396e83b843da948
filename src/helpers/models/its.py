"""Interrupted time series: segmented regression with several dated interruptions.

    res = fit_its(df, outcome="starts", time="year", interventions={"family_matters": 2025},
                  effects=("level",), family="quasipoisson", offset="population")
    res.effects, res.coefficients, res.counterfactual, res.impact, res.diagnostics

Numbers only: `helpers.present.its` words and draws a result (summary, charts, warnings).
The design is `helpers.models.design` (Bernal, Cummins & Gasparrini 2017; Wagner et al. 2002).
Level effects of log-link families are rate ratios; slope effects are ratios per period.

Families: "poisson", "quasipoisson" (dispersion = Pearson chi2 / residual df), "negbin" (NB2 GLM
with alpha profiled by maximum likelihood), "ols" (Newey-West HAC errors), "ar1" (GLSAR, AR(1)
errors by iterated Cochrane-Orcutt), "sarimax" (regression with ARMA errors, default AR(1)) and
"ar1_bootstrap" (Poisson GLM estimates, bootstrap-t intervals from simulated latent-AR(1)
counts: `helpers.models.inference`; the default on monthly series, where it is the one family
calibrated; quasi-Poisson stays the annual default).
Intervals are t-based with the residual degrees of freedom where a scale is estimated
(quasipoisson, ols, ar1), normal otherwise (poisson, negbin, sarimax). Newey-West lags follow
floor(4 (n/100)^(2/9)) (at least 1) unless `hac_lags` is given. For ar1/sarimax "fitted" is the
regression mean X b (the error process is not added), so fitted and counterfactual compare alike.

`counterfactual` removes the terms of one intervention (the last unless `counterfactual_for`);
cf_low/cf_high is the confidence interval of that mean, cf_pred_low/cf_pred_high the prediction
interval for an observation (mean uncertainty plus the model's period-to-period noise). `impact` turns it into the units people ask
about (children who did not enter care = counterfactual - fitted), per period and cumulative,
with intervals from 4,000 draws of the coefficients (multivariate t or normal, matching the
coefficient intervals; fixed seed). Derived tables are computed when first read
(`functools.cached_property`, as statsmodels' results do), so a caller that needs only the
effects (a specification curve) does not pay for the impact simulation.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from helpers.core import timeline, vocab
from helpers.core.errors import CareTrendsError
from helpers.core.records import EFFECT_COLUMNS, EffectResult
from helpers.models import inference
from helpers.models.design import (Interruption, design_columns, design_matrix,
                                   interventions_from_events, newey_west_lags,
                                   parse_interruptions)

__all__ = ["ITSResult", "design_columns", "fit_its", "interventions_from_events",
           "newey_west_lags"]

#: Seed of the coefficient draws behind `res.impact` intervals (fixed so reports are stable).
IMPACT_SEED = vocab.DEFAULT_SEED
IMPACT_DRAWS = 4000
MIN_POINTS_BEFORE = 8
MIN_POINTS_AFTER = 3


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
    if frequency is None and time in df.columns:
        t_max = pd.to_numeric(df[time], errors="coerce").max()
        frequency = "monthly" if (season in df.columns or t_max < 1900) else "annual"
    if family is None:
        family = vocab.DEFAULT_FAMILY.get(frequency, "quasipoisson")
    uses_offset = family in vocab.LOG_LINK_FAMILIES and offset is not None
    if uses_offset and offset not in df.columns:
        missing.append(offset)
    if missing:
        raise CareTrendsError(
            f"column(s) {missing} not in the data (columns: {list(df.columns)}); pass the right "
            "outcome=/time=/offset= names (offset=None to model counts without a population)")
    if family not in vocab.FAMILIES:
        raise CareTrendsError(f"unknown family {family!r}; choose one of {', '.join(vocab.FAMILIES)}")

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

    bad = data[outcome].isna() | (data[offset].isna() if uses_offset else False)
    if season in data.columns and season not in (outcome, time, offset):
        bad = bad | data[season].isna()
    dropped = tuple(float(v) for v in data.loc[bad, time])
    data = data.loc[~bad].reset_index(drop=True)
    if uses_offset and (data[offset] <= 0).any():
        raise CareTrendsError(
            f"offset column {offset!r} has zero or negative values; a population offset must be "
            "positive (fix the population or pass offset=None)")
    if family in vocab.LOG_LINK_FAMILIES and (data[outcome] < 0).any():
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
    return data, time, frequency, family, uses_offset, season_values, dropped


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


def _fit_bootstrap(y, X, log_offset, effect_columns, seed, n_boot, ci_level):
    """Poisson GLM estimates with bootstrap-t intervals for the declared effects
    (`helpers.models.inference.monthly_inference`, the calibrated monthly default)."""
    res = inference.monthly_inference(y, X, log_offset, effect_columns=effect_columns,
                                      seed=seed, n_boot=n_boot, ci_level=ci_level)
    n, k = X.shape
    mu = np.exp(X.to_numpy(float) @ res["params"].to_numpy()
                + (0.0 if log_offset is None else log_offset))
    details = res["details"]
    return dict(model=None, params=res["params"].to_numpy(), cov=res["cov"].to_numpy(),
                df_resid=n - k, dist="bootstrap", dispersion=details["dispersion"],
                resid=(y - mu) / np.sqrt(mu), rho=details["rho"],
                effect_intervals={c: (float(res["ci_low"][c]), float(res["ci_high"][c]),
                                      float(res["p_value"][c])) for c in effect_columns},
                bootstrap=details)


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
            family=None, offset="population", harmonics=2, period=12, season="month",
            *, phase_in=None, lag=None, titles=None, counterfactual_for=None, frequency=None,
            hac_lags=None, arima_order=(1, 0, 0), seasonal_order=(0, 0, 0, 0), ci_level=0.95,
            impact_seed=IMPACT_SEED, impact_draws=IMPACT_DRAWS, n_boot=inference.N_BOOT,
            synthetic=None) -> "ITSResult":
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
    family        'poisson' | 'quasipoisson' | 'negbin' | 'ols' | 'ar1' | 'sarimax' |
                  'ar1_bootstrap'. None (default): quasi-Poisson on annual series, 'ar1_bootstrap'
                  on monthly ones (vocab.DEFAULT_FAMILY: the calibrated choice, CALIBRATION_RESULTS.md).
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
    impact_seed, impact_draws, n_boot
                  seed of every random draw (impact intervals; the ar1_bootstrap's series) and
                  the sizes of the impact simulation and of the bootstrap.
    synthetic     the data are SYNTHETIC (charts say so); default df.attrs.get('synthetic', False).
    """
    events = parse_interruptions(interventions, effects, phase_in, lag, titles)
    outcome_column, outcome = _resolve_outcome(df, outcome)
    data, time, frequency, family, uses_offset, season_values, dropped = _prepare(
        df, outcome_column, time, offset, family, season, frequency, harmonics, period)
    t = data[time].to_numpy(float)
    y = data[outcome_column].to_numpy(float)
    n = len(y)

    # Refuse what cannot be estimated at all.
    for ev in events:
        if (ev.first_in_force >= 1900) != (t.max() >= 1900):
            raise CareTrendsError(
                f"intervention {ev.name!r} is at {_num(ev.first_in_force)} but the time column "
                f"{time!r} runs {_num(t.min())}-{_num(t.max())}; give interventions in the "
                f"same units ({frequency}: use interventions_from_events(events, "
                f"frequency={frequency!r}))")
        if ev.first_in_force <= t.min():
            raise CareTrendsError(
                f"intervention {ev.name!r} is in force from {_num(ev.first_in_force)} but the "
                f"data start at {_num(t.min())}, so there is no pre-event period; use a later "
                "event or earlier data")
        if ev.start > t.max():
            raise CareTrendsError(
                f"intervention {ev.name!r} takes effect from {_num(ev.start)} but the data end "
                f"at {_num(t.max())}; drop it or extend the data")
    names = [ev.name for ev in events]
    if counterfactual_for is None:
        cf_event = events[-1]
    elif counterfactual_for in names:
        cf_event = events[names.index(counterfactual_for)]
    else:
        raise CareTrendsError(
            f"counterfactual_for={counterfactual_for!r} is not one of the interventions {names}")

    X = design_matrix(t, events, season_values, harmonics, period)
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
    if family == "ar1_bootstrap":
        fit = _fit_bootstrap(y, X, log_offset, [f"{ev.name}:{eff}" for ev in events
                                                for eff in ev.effects],
                             impact_seed, n_boot, ci_level)
    elif family in vocab.LOG_LINK_FAMILIES:
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
        fit=fit, design_matrix=X, data=data, y=y, outcome=outcome, time=time,
        offset=offset if uses_offset else None, family=family, frequency=frequency,
        events=events, counterfactual_for=cf_event.name, log_offset=log_offset,
        ci_level=ci_level, impact_seed=impact_seed, impact_draws=impact_draws, dropped=dropped,
        synthetic=synthetic,
        seasonality=(int(harmonics), period) if season_values is not None else None)


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare whole frames
class ITSResult(EffectResult):
    """Fitted interrupted time series (numbers only; `helpers.present.its` words it).

    Attributes (derived tables are computed when first read)
    ----------
    effects         EFFECT_COLUMNS: one row per intervention x declared effect.
    coefficients    every model term on the link scale: term, coef, se, statistic, p_value, CI.
    counterfactual  time, observed, fitted, counterfactual, cf_low, cf_high, cf_pred_low,
                    cf_pred_high, plus fitted_low, fitted_high, label (period label) and offset
                    (when used). cf_low/high is a confidence band for the counterfactual mean;
                    cf_pred_low/high a prediction band for one period's observation.
    impact          the counterfactual_for intervention's periods: observed, fitted, counterfactual,
                    averted (= counterfactual - fitted: e.g. children who did not enter care)
                    with averted_low/high, relative_change (= fitted / counterfactual - 1) with
                    low/high, and cumulative_* versions summed since the event.
    impact_draws, impact_seed   how the impact intervals were computed.
    diagnostics     dict: n, n_params, df_resid, interval ('t' or 'z'), residuals (which kind),
                    durbin_watson, breusch_godfrey {lm, lm_p_value, f, p_value (F form), lags},
                    ljung_box (DataFrame lag, lb_stat, lb_pvalue), acf, pacf (arrays from lag 0),
                    dispersion, alpha, rho, hac_lags, residual_sd, aic, converged,
                    points (DataFrame: intervention, first_in_force, before, after, between_next),
                    dropped (times left out for missing values).
    impact_model    the declared impact model as a table.
    model           the underlying statsmodels results; design_matrix, params, cov_params.
    """

    design = "its"

    fit: dict                   # the family engine's output (params, cov, df_resid, dist, ...)
    design_matrix: pd.DataFrame
    data: pd.DataFrame          # the rows fitted
    y: np.ndarray
    outcome: str
    time: str
    offset: str | None
    family: str
    frequency: str
    events: list
    counterfactual_for: str
    log_offset: np.ndarray | None
    ci_level: float = 0.95
    impact_seed: int = IMPACT_SEED
    impact_draws: int = IMPACT_DRAWS
    dropped: tuple = ()
    synthetic: bool = False
    seasonality: tuple | None = None

    @property
    def unit(self) -> str:
        return "year" if self.frequency == "annual" else "month"

    @property
    def interventions(self) -> dict:
        return {ev.name: ev.first_in_force for ev in self.events}

    @property
    def titles(self) -> dict:
        return {ev.name: ev.title for ev in self.events}

    @property
    def model(self):
        """The underlying statsmodels results."""
        return self.fit["model"]

    @cached_property
    def params(self) -> pd.Series:
        return pd.Series(self.fit["params"], index=self.design_matrix.columns)

    @cached_property
    def cov_params(self) -> pd.DataFrame:
        cols = self.design_matrix.columns
        return pd.DataFrame(self.fit["cov"], index=cols, columns=cols)

    @property
    def df_resid(self):
        return self.fit["df_resid"]

    @property
    def interval(self) -> str:
        """'t' or 'z': the distribution of the coefficient intervals."""
        return self.fit["dist"]

    @property
    def dispersion(self):
        return self.fit.get("dispersion")

    @property
    def alpha(self):
        return self.fit.get("alpha")

    @property
    def rho(self):
        return self.fit.get("rho")

    @property
    def hac_lags(self):
        return self.fit.get("hac_lags")

    @cached_property
    def _t(self) -> np.ndarray:
        return self.data[self.time].to_numpy(float)

    @cached_property
    def _q(self) -> float:
        return self._quantile(0.5 + self.ci_level / 2)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def log_link(self) -> bool:
        return self.family in vocab.LOG_LINK_FAMILIES

    @property
    def event(self) -> Interruption:
        """The interruption the counterfactual and impact describe."""
        return next(e for e in self.events if e.name == self.counterfactual_for)

    @property
    def times(self) -> np.ndarray:
        return self._t

    @property
    def residuals(self) -> np.ndarray:
        return np.asarray(self.fit["resid"], float)

    def _quantile(self, p):
        return stats.t.ppf(p, self.df_resid) if self.interval == "t" else stats.norm.ppf(p)

    def label(self, value) -> str:
        """'2024-25' for reporting year 2025; 'Mar 2024' for month index 170."""
        if self.frequency == "annual":
            return timeline.reporting_year_label(int(value))
        if float(value).is_integer():
            return timeline.month_from_index(int(value)).strftime("%b %Y")
        return str(_num(value))

    def _linear(self, X: np.ndarray) -> np.ndarray:
        eta = X @ self.params.to_numpy()
        return eta if self.log_offset is None else eta + self.log_offset

    def _mean(self, eta):
        return np.exp(eta) if self.log_link else eta

    def _band(self, X: np.ndarray):
        eta = self._linear(X)
        var = np.einsum("ij,jk,ik->i", X, self.cov_params.to_numpy(), X)
        se = np.sqrt(np.maximum(var, 0.0))  # rounding can leave -1e-16 where a point fits exactly
        return self._mean(eta), self._mean(eta - self._q * se), self._mean(eta + self._q * se)

    def _prediction_band(self, X: np.ndarray):
        """Where a single period's observation would fall (not just its mean): the mean's
        uncertainty plus the period-to-period noise the model estimates. Log-link families on the
        log scale (delta method: a count with variance phi mu has log-variance about phi / mu;
        phi = the Pearson dispersion, 1 for Poisson, 1 + alpha mu for the negative binomial);
        Gaussian families add the residual variance of a period (for AR errors, the stationary
        variance)."""
        eta = self._linear(X)
        var = np.maximum(np.einsum("ij,jk,ik->i", X, self.cov_params.to_numpy(), X), 0.0)
        if self.log_link:
            mu = np.exp(eta)
            if self.family == "poisson":
                noise = 1.0 / mu
            elif self.family == "negbin":
                noise = (1.0 + (self.alpha or 0.0) * mu) / mu
            else:
                noise = max(float(self.dispersion or 1.0), 1.0) / mu
            se = np.sqrt(var + noise)
            return np.exp(eta - self._q * se), np.exp(eta + self._q * se)
        sd = float(self.fit.get("residual_sd") or 0.0)
        rho = float(self.rho or 0.0) if self.family in ("ar1", "sarimax") else 0.0
        noise = sd ** 2 / max(1.0 - rho ** 2, 1e-6) if self.family == "ar1" else sd ** 2
        se = np.sqrt(var + noise)
        return eta - self._q * se, eta + self._q * se

    def _cf_matrix(self, event: Interruption) -> np.ndarray:
        Xcf = self.design_matrix.copy()
        for eff in event.effects:
            Xcf[f"{event.name}:{eff}"] = 0.0
        return Xcf.to_numpy(float)

    def _standard_errors(self) -> np.ndarray:
        # A Newey-West variance for a term identified by a single point can come out as -1e-17:
        # treat it as zero (no information) rather than take the root of a negative number.
        return np.sqrt(np.clip(np.diag(self.cov_params.to_numpy()), 0.0, None))

    # -- tables -------------------------------------------------------------------------------
    @cached_property
    def impact_model(self) -> pd.DataFrame:
        return pd.DataFrame([
            dict(intervention=ev.name, title=ev.title, first_in_force=ev.first_in_force,
                 first_in_force_label=self.label(ev.first_in_force), lag=ev.lag,
                 phase_in=ev.phase_in, effects="+".join(ev.effects)) for ev in self.events])

    @cached_property
    def effects(self) -> pd.DataFrame:
        rows = []
        se_all = self._standard_errors()
        for ev in self.events:
            for eff in ev.effects:
                j = self.design_matrix.columns.get_loc(f"{ev.name}:{eff}")
                b, se = float(self.params.iloc[j]), float(se_all[j])
                lo, hi, p = self._effect_interval(j, b, se)
                if self.log_link:
                    b, lo, hi = math.exp(b), math.exp(lo), math.exp(hi)
                rows.append(dict(intervention=ev.name, effect=eff, estimate=b, ci_low=lo,
                                 ci_high=hi, p_value=float(p),
                                 scale="ratio" if self.log_link else "difference"))
        return pd.DataFrame(rows, columns=EFFECT_COLUMNS)

    def _effect_interval(self, j: int, b: float, se: float) -> tuple[float, float, float]:
        """(low, high, p) of coefficient j on the link scale: the bootstrap-t interval where the
        family computed one (ar1_bootstrap's declared effects), else b -+ q se with the t or
        normal p-value."""
        own = self.fit.get("effect_intervals", {}).get(self.design_matrix.columns[j])
        if own is not None:
            return own
        stat = b / se if se > 0 else np.nan
        p = (2 * stats.t.sf(abs(stat), self.df_resid) if self.interval == "t"
             else 2 * stats.norm.sf(abs(stat)))
        return b - self._q * se, b + self._q * se, float(p)

    @cached_property
    def coefficients(self) -> pd.DataFrame:
        se = self._standard_errors()
        b = self.params.to_numpy()
        stat = np.divide(b, se, out=np.full_like(b, np.nan), where=se > 0)
        bounds = np.array([self._effect_interval(j, b[j], se[j]) for j in range(len(b))])
        return pd.DataFrame({"term": self.params.index, "coef": b, "se": se, "statistic": stat,
                             "p_value": bounds[:, 2], "ci_low": bounds[:, 0],
                             "ci_high": bounds[:, 1]})

    @cached_property
    def counterfactual(self) -> pd.DataFrame:
        X = self.design_matrix.to_numpy(float)
        fitted, f_lo, f_hi = self._band(X)
        Xcf = self._cf_matrix(self.event)
        cf, cf_lo, cf_hi = self._band(Xcf)
        pred_lo, pred_hi = self._prediction_band(Xcf)
        table = pd.DataFrame(dict(time=self._t, observed=self.y, fitted=fitted,
                                  counterfactual=cf, cf_low=cf_lo, cf_high=cf_hi,
                                  cf_pred_low=pred_lo, cf_pred_high=pred_hi,
                                  fitted_low=f_lo, fitted_high=f_hi,
                                  label=[self.label(v) for v in self._t]))
        if self.offset is not None:
            table["offset"] = self.data[self.offset].to_numpy(float)
        return table

    @cached_property
    def impact(self) -> pd.DataFrame:
        event, seed, draws = self.event, self.impact_seed, self.impact_draws
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
        off = 0.0 if self.log_offset is None else self.log_offset[post][:, None]
        fit_d = self._mean(X[post] @ B + off)
        cf_d = self._mean(Xcf[post] @ B + off)
        lo_p, hi_p = 50 * (1 - self.ci_level), 50 * (1 + self.ci_level)

        def interval(a):
            return np.percentile(a, lo_p, axis=1), np.percentile(a, hi_p, axis=1)

        averted_d = cf_d - fit_d
        cum_fit, cum_cf = np.cumsum(fitted), np.cumsum(cf)
        cols = dict(intervention=event.name, time=self._t[post],
                    label=[self.label(v) for v in self._t[post]],
                    periods_since=self._t[post] - event.first_in_force,
                    observed=self.y[post], fitted=fitted, counterfactual=cf,
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
        cols["observed_averted"] = cf - self.y[post]  # against the data, not the fitted line
        return pd.DataFrame(cols)

    @cached_property
    def diagnostics(self) -> dict:
        from statsmodels.stats.stattools import durbin_watson
        from statsmodels.tsa.stattools import acf, pacf

        resid = self.residuals
        n = len(self.y)
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
        nxt = {prev.name: int(np.sum((self._t >= prev.first_in_force)
                                     & (self._t < after.first_in_force)))
               for prev, after in zip(self.events, self.events[1:])}
        points = pd.DataFrame([
            dict(intervention=ev.name, first_in_force=ev.first_in_force,
                 before=int(np.sum(self._t < ev.first_in_force)),
                 after=int(np.sum(self._t >= ev.first_in_force)),
                 between_next=nxt.get(ev.name)) for ev in self.events])
        return dict(
            n=n, n_params=k + {"ar1": 1}.get(self.family, 0), df_resid=self.df_resid,
            interval=self.interval,
            residuals=("Pearson" if self.log_link else
                       "whitened (AR-filtered)" if self.family == "ar1" else
                       "one-step innovations" if self.family == "sarimax" else "raw"),
            durbin_watson=float(durbin_watson(resid)), breusch_godfrey=bg, ljung_box=lb,
            acf=acf_values, pacf=pacf_values, dispersion=self.dispersion, alpha=self.alpha,
            rho=self.rho, hac_lags=self.hac_lags, residual_sd=self.fit.get("residual_sd"),
            aic=self.fit.get("aic"), converged=bool(self.fit.get("converged", True)),
            points=points, dropped=self.dropped,
            min_points_before=MIN_POINTS_BEFORE, min_points_after=MIN_POINTS_AFTER)

    def __repr__(self) -> str:
        return f"<ITSResult {self.outcome} ~ {self.family}, events={list(self.interventions)}>"


def _num(value):
    """3.0 -> 3; 2.25 -> 2.25 (times in messages)."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 3)


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


