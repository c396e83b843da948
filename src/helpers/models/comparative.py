"""Comparative designs on the LA panel: did England, the region or similar councils change at
the same time? Numbers only (`helpers.present.comparative` words and draws the results).

- `fit_controlled_its`: the treated LA against one comparator series (England minus the LA, its
  region minus the LA, its statistical neighbours 2021/2025, or an explicit list), either as a
  multiple-group segmented count model (the treated-minus-comparator difference in level and slope
  changes, as Stata's `itsa` does; `method="multiple_group"`) or with the comparator's rate as part of
  the offset (`method="ratio"`: a segmented model of the treated/comparator rate ratio).
- `fit_did` / `fit_event_study`: two-way fixed-effects difference-in-differences and event study on
  the rate per 10,000 for every eligible LA, errors clustered by LA, and placebo-in-space inference
  (the event assigned to every other LA in turn; the treated LA's rank and permutation p-value).

Donor pools exclude LAs whose series break at a boundary change and, by parameter, LAs with their
own known programmes (`helpers.models.la_panel`). Synthetic control is `helpers.models.synth`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from helpers.core.errors import CareTrendsError
from helpers.core.records import COUNTERFACTUAL_COLUMNS, EFFECT_COLUMNS, EffectResult
from helpers.data import LARecord
from helpers.models import inference
from helpers.models.design import Interruption, design_columns
from helpers.models.la_panel import (RATE, LAEventResult, check_event_years, comparator_series, get_panel,
                                     la_names, normalise_events, resolve_unit,
                                     treated_and_donors)
from helpers.models.placebo import placebo_interval, placebo_p

# --------------------------------------------------------------------------------------------
# Controlled ITS
# --------------------------------------------------------------------------------------------

def _segmented(time: np.ndarray, events: Sequence[Interruption], t0: int) -> pd.DataFrame:
    """Intercept, time and a level step / slope-since term per event: the ITS engine's design."""
    return design_columns(np.asarray(time, float) - t0, {ev.name: ev.first_in_force - t0 for ev in events},
                          {ev.name: ev.effects for ev in events},
                          phase_in={ev.name: ev.phase_in for ev in events},
                          lag={ev.name: ev.lag for ev in events})


def _glm(y, X, offset, family, groups=None):
    """Poisson log-link GLM; quasi-Poisson scales by the Pearson dispersion. With `groups` (the
    multiple-group model) each group gets its own dispersion: the comparator's counts are orders of
    magnitude larger than the LA's, so one pooled dispersion would let the comparator's lack of fit
    set the LA's uncertainty. Done by refitting with variance weights 1 / dispersion_g."""
    if family not in ("quasipoisson", "poisson"):
        raise CareTrendsError(f"controlled ITS supports family 'quasipoisson' or 'poisson', not {family!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit()
        if family == "poisson":
            return fit
        if groups is None:
            return sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit(scale="X2")
        groups = np.asarray(groups)
        resid2 = np.asarray(fit.resid_pearson) ** 2
        n_params_each = X.shape[1] / 2  # each group has its own intercept, trend and segments
        phi = {g: max(resid2[groups == g].sum() / max((groups == g).sum() - n_params_each, 1), 1e-8)
               for g in np.unique(groups)}
        weights = np.array([1.0 / phi[g] for g in groups])
        return sm.GLM(y, X, family=sm.families.Poisson(), offset=offset,
                      var_weights=weights).fit(scale="X2")


def _ci(fit, col: str, level: float = 0.95, df: float | None = None):
    """Estimate, interval, p-value and quantile of one coefficient. Quasi-Poisson uses t
    quantiles on `df` (default the fit's residual df, as helpers.its does); Poisson the normal."""
    est = float(fit.params[col])
    se = float(fit.bse[col])
    df = fit.df_resid if df is None else df
    q = stats.t.ppf(0.5 + level / 2, df) if fit.scale != 1.0 else stats.norm.ppf(0.5 + level / 2)
    p = 2 * (stats.t.sf(abs(est / se), df) if fit.scale != 1.0 else stats.norm.sf(abs(est / se)))
    return est, est - q * se, est + q * se, float(p), q


def _group_dfs(fit, base: pd.DataFrame, groups: np.ndarray, effect_cols: dict) -> dict:
    """Degrees of freedom of each treated-minus-comparator effect of the multiple-group model.
    Each group has its own terms and its own dispersion, so the effect's variance is
    phi_T V_T + phi_C V_C with each phi estimated on its own group's n - p/2 residuals: the t
    reference is the Satterthwaite df of the two parts (`inference.controlled_its_df`), close to
    the treated group's n - p/2 when the comparator's part is small, not the pooled 2n - p (which
    made the intervals about 13% too narrow)."""
    mu = np.asarray(fit.mu)
    resid2 = np.asarray(fit.resid_pearson) ** 2 / np.asarray(fit.model.var_weights)
    B = base.to_numpy(float)
    n, q = B.shape
    parts = {}
    for g in (1, 0):
        sel = groups == g
        phi = max(resid2[sel].sum() / max(sel.sum() - q, 1), 1e-8)
        parts[g] = phi * np.linalg.inv(B.T @ (B * mu[sel][:, None]))
    out = {}
    for seg, col in effect_cols.items():
        j = list(base.columns).index(seg)
        out[col] = inference.controlled_its_df(n, 2 * q, var_treated=parts[1][j, j],
                                               var_control=parts[0][j, j])
    return out


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class ControlledITSResult(EffectResult):
    """Treated LA against a comparator series; effects are ratios (log link)."""

    design: str
    outcome: str
    unit: LARecord
    comparator_label: str
    events: list
    fit: object
    effects: pd.DataFrame
    counterfactual: pd.DataFrame
    method: str


def fit_controlled_its(la: str, outcome: str = "starts", events=None,
                       comparator="statistical_neighbours_2021", start_year: int = 2014,
                       end_year: int | None = None, method: str = "multiple_group",
                       family: str = "quasipoisson", panel: pd.DataFrame | None = None
                       ) -> ControlledITSResult:
    """Controlled interrupted time series of the LA's counts against a comparator series.

    `method="multiple_group"` fits both series in one log-linear count model (offset log population):
    a common intercept and trend, a treated-group intercept and trend difference, and for each event a
    level step and slope change in each group; the treated group's extra step and slope change (the
    `itsa` difference-in-differences of segments) are the effects, as rate ratios.
    `method="ratio"` models the treated counts with offset log(population x comparator rate), so the
    segments describe the treated/comparator rate ratio; same effect names and scale.
    The counterfactual follows the LA's own pre-event path plus the comparator's post-event changes.
    """
    if method not in ("multiple_group", "ratio"):
        raise CareTrendsError(f"unknown controlled ITS method {method!r}; use 'multiple_group' or 'ratio'")
    panel = get_panel(panel)
    events = normalise_events(events)
    treated, comp, label = comparator_series(la, outcome, comparator, start_year, end_year, panel)
    unit = resolve_unit(la, panel)
    years = treated["year"].to_numpy()
    check_event_years(events, years)
    t0 = int(years.min())
    base = _segmented(years, events, t0)
    seg_cols = [c for c in base.columns if ":" in c]
    if method == "multiple_group":
        X_t = base.copy()
        for c in ["const", "trend", *seg_cols]:
            X_t[f"treated:{c}"] = base[c]
        X_c = base.copy()
        for c in ["const", "trend", *seg_cols]:
            X_c[f"treated:{c}"] = 0.0
        X = pd.concat([X_t, X_c], ignore_index=True)
        y = np.concatenate([treated["count"].to_numpy(), comp["count"].to_numpy()])
        offset = np.log(np.concatenate([treated["population"].to_numpy(), comp["population"].to_numpy()]))
        effect_cols = {c: f"treated:{c}" for c in seg_cols}
        groups = np.repeat([1, 0], len(years))
        fit = _glm(y, X, offset, family, groups=groups)
        dfs = (_group_dfs(fit, base, groups, effect_cols) if family == "quasipoisson" else {})
        band_df = inference.controlled_its_df(len(years), X.shape[1])
        X_obs = X.iloc[: len(years)]
        off_t = offset[: len(years)]
        design = "controlled_its"
    else:
        X = base
        y = treated["count"].to_numpy()
        off_t = np.log(treated["population"].to_numpy() * comp[RATE].to_numpy() / 1e4)
        effect_cols = {c: c for c in seg_cols}
        fit = _glm(y, X, off_t, family)
        dfs, band_df = {}, fit.df_resid
        X_obs = X
        design = "controlled_its_ratio"
    rows = []
    for seg, col in effect_cols.items():
        name, kind = seg.split(":")
        est, lo, hi, p, _ = _ci(fit, col, df=dfs.get(col))
        rows.append(dict(intervention=name, effect=kind, estimate=np.exp(est), ci_low=np.exp(lo),
                         ci_high=np.exp(hi), p_value=p, scale="ratio"))
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    # counterfactual: switch off the treated-specific post-event terms
    X_cf = X_obs.copy()
    for col in effect_cols.values():
        X_cf[col] = 0.0
    cov = np.asarray(fit.cov_params())
    beta = np.asarray(fit.params)
    eta_fit = X_obs.to_numpy() @ beta + off_t
    eta_cf = X_cf.to_numpy() @ beta + off_t
    se_cf = np.sqrt(np.einsum("ij,jk,ik->i", X_cf.to_numpy(), cov, X_cf.to_numpy()))
    q = stats.t.ppf(0.975, band_df) if family == "quasipoisson" else stats.norm.ppf(0.975)
    pop = treated["population"].to_numpy()
    cf = pd.DataFrame({"time": years, "observed": treated["count"].to_numpy(),
                       "fitted": np.exp(eta_fit), "counterfactual": np.exp(eta_cf),
                       "cf_low": np.exp(eta_cf - q * se_cf), "cf_high": np.exp(eta_cf + q * se_cf)})
    for col in ["observed", "fitted", "counterfactual", "cf_low", "cf_high"]:
        cf[f"{col}_rate"] = cf[col] / pop * 1e4
    cf["comparator_rate"] = comp[RATE].to_numpy()
    cf = cf[COUNTERFACTUAL_COLUMNS + [c for c in cf.columns if c not in COUNTERFACTUAL_COLUMNS]]
    return ControlledITSResult(design=design, outcome=outcome, unit=unit, comparator_label=label,
                               events=list(events), fit=fit, effects=effects, counterfactual=cf,
                               method=method)


# --------------------------------------------------------------------------------------------
# Difference-in-differences and event study (all LAs, two-way fixed effects)
# --------------------------------------------------------------------------------------------

def _within(A: np.ndarray) -> np.ndarray:
    """Two-way (unit and year) demeaning of a balanced unit x year array."""
    return A - A.mean(axis=1, keepdims=True) - A.mean(axis=0, keepdims=True) + A.mean()


def _twfe_cluster(Y: np.ndarray, regressors: dict):
    """OLS of the rates on LA and year fixed effects plus `regressors` (name -> unit x year array),
    standard errors clustered by LA. On a balanced panel the fixed effects are absorbed exactly by
    two-way demeaning (Frisch-Waugh-Lovell), as Stata's `xtreg, fe vce(cluster)` does."""
    n, T = Y.shape
    exog = pd.DataFrame({name: _within(np.asarray(r, float)).ravel() for name, r in regressors.items()})
    return sm.OLS(_within(Y).ravel(), exog).fit(cov_type="cluster",
                                                 cov_kwds={"groups": np.repeat(np.arange(n), T)})


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class DiDResult(LAEventResult):
    """Two-way fixed-effects DiD on rates with placebo-in-space inference."""

    design = "did"

    inference: dict
    fit: object


def fit_did(la: str, outcome: str = "starts", event=None, start_year: int = 2014,
            end_year: int | None = None, exclude_donors: Sequence[str] = (),
            panel: pd.DataFrame | None = None) -> DiDResult:
    """Panel DiD on the rate per 10,000: y_it = a_i + g_t + b * treated_i * post_t, every eligible LA.

    With one treated LA and a balanced panel the estimate is the 2x2 difference of pre/post means;
    placebo-in-space re-estimates it with the event given to each donor in turn (the real treated LA
    left out), giving the rank, permutation p-value and the interval that inverts that test.
    """
    panel, event, unit, treated, donors, years = treated_and_donors(la, outcome, event, start_year,
                                                             end_year, exclude_donors, panel)
    post = years >= event.start
    Y = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    d = Y[:, post].mean(axis=1) - Y[:, ~post].mean(axis=1)  # each LA's post-minus-pre change
    estimate = d[0] - d[1:].mean()
    # placebo j: donor j "treated", the other donors as controls (the real treated LA left out)
    dd = d[1:]
    J = len(dd)
    placebo = dd - (dd.sum() - dd) / (J - 1)
    rank, p_perm = placebo_p(estimate, placebo)
    ci_low, ci_high = placebo_interval(estimate, placebo)
    D = np.zeros_like(Y)
    D[0, post] = 1.0
    fit = _twfe_cluster(Y, {"treated_post": D})
    cluster_p = float(fit.pvalues["treated_post"])
    effects = pd.DataFrame([dict(intervention=event.name, effect="level", estimate=estimate,
                                 ci_low=ci_low, ci_high=ci_high, p_value=p_perm, scale="difference")],
                           columns=EFFECT_COLUMNS)
    donor_mean = Y[1:].mean(axis=0)
    counter = donor_mean + (Y[0, ~post].mean() - donor_mean[~post].mean())
    cf = pd.DataFrame({"time": years, "observed": Y[0], "fitted": np.where(post, counter + estimate, counter),
                       "counterfactual": counter, "cf_low": counter + np.where(post, estimate - ci_high, 0.0),
                       "cf_high": counter + np.where(post, estimate - ci_low, 0.0),
                       "donor_mean": donor_mean})
    names = la_names(panel)
    placebos = pd.DataFrame({"la_code": codes[1:], "la_name": [names.get(c, c) for c in codes[1:]],
                             "estimate": placebo})
    inference = {"rank": rank, "n_units": J + 1, "p_value": p_perm,
                 "cluster_se": float(fit.bse["treated_post"]), "cluster_p_value": cluster_p,
                 "twfe_estimate": float(fit.params["treated_post"])}
    return DiDResult(outcome=outcome, unit=unit, event=event, effects=effects, counterfactual=cf,
                     placebos=placebos, inference=inference, n_donors=J, fit=fit)


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class EventStudyResult(LAEventResult):
    """Year-by-year effects relative to the year before the event (treated vs all other LAs)."""

    design = "event_study"

    cluster: object


def fit_event_study(la: str, outcome: str = "starts", event=None, start_year: int = 2014,
                    end_year: int | None = None, exclude_donors: Sequence[str] = (),
                    panel: pd.DataFrame | None = None) -> EventStudyResult:
    """Event study: y_it = a_i + g_t + sum_k b_k * treated_i * 1[t - T0 = k], k != -1.

    With one treated LA, b_k = (y_1t - y_1,ref) - (mean donor change); placebo-in-space gives each
    year's permutation p-value and interval; LA-clustered standard errors are kept in `.cluster`.
    """
    panel, event, unit, treated, donors, years = treated_and_donors(la, outcome, event, start_year,
                                                             end_year, exclude_donors, panel)
    rel = years - event.start
    ref = int(np.flatnonzero(rel == -1)[0])
    Y = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    change = Y - Y[:, [ref]]  # each LA's change since the reference year
    est = change[0] - change[1:].mean(axis=0)
    dd = change[1:]
    J = len(dd)
    placebo = dd - (dd.sum(axis=0) - dd) / (J - 1)  # J x T
    keep = rel != -1
    regs = {}
    for k in rel[keep]:
        D = np.zeros_like(Y)
        D[0, rel == k] = 1.0
        regs[f"rel_{k:+d}"] = D
    fit = _twfe_cluster(Y, regs)
    rows = []
    for col in np.flatnonzero(keep):
        rank, p = placebo_p(est[col], placebo[:, col])
        lo, hi = placebo_interval(est[col], placebo[:, col])
        rows.append(dict(intervention=event.name, effect=f"year {rel[col]:+d}", estimate=est[col],
                         ci_low=lo, ci_high=hi, p_value=p, scale="difference"))
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    donor_mean = Y[1:].mean(axis=0)
    counter = Y[0, ref] + donor_mean - donor_mean[ref]
    cf = pd.DataFrame({"time": years, "observed": Y[0], "fitted": Y[0], "counterfactual": counter,
                       "cf_low": np.nan, "cf_high": np.nan, "donor_mean": donor_mean})
    cluster = pd.DataFrame({"term": list(regs), "estimate": [fit.params[k] for k in regs],
                            "se": [fit.bse[k] for k in regs], "p_value": [fit.pvalues[k] for k in regs]})
    names = la_names(panel)
    placebos = pd.DataFrame(placebo, columns=years)
    placebos.insert(0, "la_name", [names.get(c, c) for c in codes[1:]])
    placebos.insert(0, "la_code", codes[1:])
    return EventStudyResult(outcome=outcome, unit=unit, event=event, effects=effects,
                            counterfactual=cf, placebos=placebos, n_donors=J, cluster=cluster)


