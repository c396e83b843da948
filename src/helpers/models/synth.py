"""Synthetic control on the rate per 10,000 (Abadie, Diamond & Hainmueller 2010): donor weights
on the simplex chosen on the pre-period by an exact active-set solver (`synth_weights`), with
placebo-in-space (post/pre RMSPE ratio rank) and leave-one-donor-out robustness. Numbers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.core.errors import CareTrendsError
from helpers.core.records import EFFECT_COLUMNS
from helpers.models.la_panel import LAEventResult, la_names, treated_and_donors, wide_rates
from helpers.models.placebo import critical_value, placebo_interval, placebo_p
from helpers.models.simplex import synth_weights


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class SyntheticControlResult(LAEventResult):
    """Synthetic control on the rate per 10,000 with placebo-in-space and leave-one-out."""

    design = "synthetic_control"

    weights: pd.DataFrame
    pre_rmspe: float
    post_rmspe: float
    rank: int
    p_value: float
    leave_one_out: pd.DataFrame
    gaps: pd.DataFrame
    rmspe_ratio: float = np.nan
    pre_floor: float = 0.0  # the sampling-noise floor used for the pre-period RMSPE
    #: Pre-period years: the LA's rate and the donors' range (outside = no convex combination of
    #: donors can reproduce that year).
    donor_range: pd.DataFrame | None = None
    #: The weights are unique only when the LA lies outside its donors' convex hull (a positive
    #: pre-period misfit); inside it many weightings fit exactly.
    weights_unique: bool = True
    n_placebos_non_unique: int = 0

    @property
    def share_outside_range(self) -> float:
        """Share of pre-period years in which the LA's rate lies outside every donor's."""
        return float(self.donor_range["outside"].mean()) if self.donor_range is not None else 0.0

    @property
    def pre_fit_ratio(self) -> float:
        """Pre-period RMSPE as a share of the LA's mean pre-period rate."""
        cf = self.counterfactual
        level = float(cf.loc[cf["time"] < self.event.start, "observed"].abs().mean())
        return self.pre_rmspe / level if level > 0 else np.nan


def _placebo_fits(R: np.ndarray, pre: np.ndarray, v, units: Sequence[int], pool: np.ndarray):
    """Synthetic control of each unit in `units` from `pool` minus itself: (weights, synthetic)."""
    out = {}
    Rpre = R[:, pre]
    for i in units:
        donors = pool[pool != i]
        w = synth_weights(Rpre[i], Rpre[donors].T, v)
        out[i] = (donors, w, w @ R[donors])
    return out


def _rmspe_floors(panel, measure, codes, pre_years, pre_rates, min_pre_rmspe) -> np.ndarray:
    """Per-unit floor for the pre-period RMSPE in the post/pre ratio (see fit_synthetic_control)."""
    if not isinstance(min_pre_rmspe, str):
        return np.full(len(codes), float(min_pre_rmspe))
    if min_pre_rmspe != "poisson":
        raise CareTrendsError(f"min_pre_rmspe must be 'poisson' or a number, not {min_pre_rmspe!r}")
    pop = wide_rates(panel, measure, int(pre_years.min()), int(pre_years.max()), value="population")
    mean_pop = pop.reindex(codes).mean(axis=1).to_numpy()
    floors = np.sqrt(np.clip(pre_rates.mean(axis=1), 0, None) * 1e4 / mean_pop)
    return np.where(np.isfinite(floors), floors, 1e-9)


def fit_synthetic_control(la: str, outcome: str = "starts", event=None, start_year: int = 2014,
                          end_year: int | None = None, exclude_donors: Sequence[str] = (),
                          panel: pd.DataFrame | None = None, v: np.ndarray | None = None,
                          placebos: bool = True, leave_one_out: bool = True,
                          max_placebos: int | None = None, min_pre_rmspe: float | str = "poisson"
                          ) -> SyntheticControlResult:
    """Abadie-style synthetic control on the rate per 10,000, predictors = every pre-period year.

    Weights come from `synth_weights` (exact simplex QP, optional predictor weights `v`, one per
    pre-period year). Placebo-in-space refits every donor against the other donors (the treated LA
    never a donor) and ranks the LA's post/pre RMSPE ratio; `max_placebos` caps the number (the first
    donors in code order) if a run must be short. Leave-one-out drops each donor with weight > 0.
    With few pre-period years and many donors, units inside the donors' convex hull are fitted
    more closely than their own sampling noise allows (they fit noise) and the post/pre ratio would
    divide by ~0, so every placebo would outrank a real effect. In the ratio each unit's pre-period
    RMSPE is therefore floored at `min_pre_rmspe`: by default ("poisson") the standard deviation a
    Poisson count adds to that unit's rate, sqrt(rate x 10,000 / population) over the pre-period;
    a number gives one floor (per 10,000) for all units.
    """
    panel, event, unit, treated, donors, years = treated_and_donors(la, outcome, event, start_year,
                                                             end_year, exclude_donors, panel)
    pre = years < event.start
    R = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    names = la_names(panel)
    pool = np.arange(1, len(codes))
    fits = _placebo_fits(R, pre, v, [0], pool)
    d_idx, w, synth = fits[0]
    gap = R[0] - synth

    def rmspe(g, mask):
        return float(np.sqrt(np.mean(g[mask] ** 2)))

    pre_r, post_r = rmspe(gap, pre), rmspe(gap, ~pre)
    gaps = {unit.la_code: gap}
    rows = []
    if placebos:
        units = list(pool if max_placebos is None else pool[:max_placebos])
        for i, (_, _, s) in _placebo_fits(R, pre, v, units, pool).items():
            g = R[i] - s
            gaps[codes[i]] = g
            rows.append(dict(la_code=codes[i], la_name=names.get(codes[i], codes[i]),
                             pre_rmspe=rmspe(g, pre), post_rmspe=rmspe(g, ~pre),
                             avg_post_gap=float(g[~pre].mean())))
    placebo_tab = pd.DataFrame(rows, columns=["la_code", "la_name", "pre_rmspe", "post_rmspe", "avg_post_gap"])
    placebo_tab["la_code"] = placebo_tab["la_code"].astype(str)
    floors = _rmspe_floors(panel, outcome, codes, years[pre], R[:, pre], min_pre_rmspe)
    placebo_tab["pre_floor"] = [floors[codes.index(c)] for c in placebo_tab["la_code"]]
    placebo_tab["ratio"] = placebo_tab["post_rmspe"] / np.maximum(placebo_tab["pre_rmspe"],
                                                                   placebo_tab["pre_floor"])
    ratio = post_r / max(pre_r, floors[0])
    rank = 1 + int((placebo_tab["ratio"] > ratio + 1e-12).sum())
    p_value = rank / (len(placebo_tab) + 1) if len(placebo_tab) else np.nan
    gaps_df = pd.DataFrame(gaps, index=years).T
    avg_gap = float(gap[~pre].mean())
    if len(placebo_tab):
        pgaps = gaps_df.drop(index=unit.la_code).to_numpy()
        band_lo, band_hi = np.quantile(pgaps, [0.025, 0.975], axis=0)
        # Effects d not rejected by the RMSPE-ratio test once subtracted from the post-period gap
        # (weights and placebos do not change): RMSPE_post(gap - d) / pre < critical ratio.
        q = critical_value(placebo_tab["ratio"].to_numpy())
        post_gap = gap[~pre]
        half2 = (q * max(pre_r, floors[0])) ** 2 - post_gap.var()
        ci_low, ci_high = ((avg_gap - np.sqrt(half2), avg_gap + np.sqrt(half2)) if half2 > 0
                           else (np.nan, np.nan))
    else:
        band_lo = band_hi = np.zeros_like(gap)
        ci_low = ci_high = np.nan
    effects = pd.DataFrame([dict(intervention=event.name, effect="level", estimate=avg_gap,
                                 ci_low=ci_low, ci_high=ci_high, p_value=p_value, scale="difference")],
                           columns=EFFECT_COLUMNS)
    cf = pd.DataFrame({"time": years, "observed": R[0], "fitted": R[0], "counterfactual": synth,
                       "cf_low": synth + band_lo, "cf_high": synth + band_hi, "gap": gap})
    weights = pd.DataFrame({"la_code": [codes[i] for i in d_idx],
                            "la_name": [names.get(codes[i], codes[i]) for i in d_idx], "weight": w})
    weights = weights.sort_values(["weight", "la_code"], ascending=[False, True], ignore_index=True)
    loo_rows = []
    if leave_one_out:
        Rpre = R[:, pre]
        for code in weights.loc[weights["weight"] > 1e-6, "la_code"]:
            i = codes.index(code)
            rest = pool[pool != i]
            w_l = synth_weights(Rpre[0], Rpre[rest].T, v)
            g = R[0] - w_l @ R[rest]
            loo_rows.append(dict(dropped_code=code, dropped_name=names.get(code, code),
                                 pre_rmspe=rmspe(g, pre), avg_post_gap=float(g[~pre].mean())))
    loo = pd.DataFrame(loo_rows, columns=["dropped_code", "dropped_name", "pre_rmspe", "avg_post_gap"])
    pre_rates = R[:, pre]
    donor_range = pd.DataFrame({"year": years[pre], "la_rate": pre_rates[0],
                                "donors_min": pre_rates[1:].min(axis=0),
                                "donors_max": pre_rates[1:].max(axis=0)})
    donor_range["outside"] = ((donor_range["la_rate"] > donor_range["donors_max"])
                              | (donor_range["la_rate"] < donor_range["donors_min"]))
    exact = 1e-6 * max(float(np.abs(pre_rates).mean()), 1.0)
    non_unique = int((placebo_tab["pre_rmspe"] < exact).sum()) if len(placebo_tab) else 0
    return SyntheticControlResult(donor_range=donor_range, weights_unique=pre_r >= exact,
                                  n_placebos_non_unique=non_unique,outcome=outcome, unit=unit, event=event, effects=effects,
                                  counterfactual=cf, weights=weights, pre_rmspe=pre_r,
                                  post_rmspe=post_r, placebos=placebo_tab, rank=rank, p_value=p_value,
                                  leave_one_out=loo, gaps=gaps_df, n_donors=len(pool),
                                  rmspe_ratio=ratio, pre_floor=float(floors[0]))




# --------------------------------------------------------------------------------------------
# Ridge-augmented synthetic control (Ben-Michael, Feller & Rothstein 2021)
# --------------------------------------------------------------------------------------------

RIDGE_GRID = tuple(10.0 ** k for k in range(-3, 5))


def ridge_coefficients(X0: np.ndarray, Y0: np.ndarray, lam: float) -> np.ndarray:
    """Ridge regression of the donors' post-period outcomes (J, T1) on their pre-period outcomes
    (J, T0), both centred on the donor means: eta (T0, T1)."""
    Xc = X0 - X0.mean(axis=0)
    Yc = Y0 - Y0.mean(axis=0)
    return np.linalg.solve(Xc.T @ Xc + lam * np.eye(X0.shape[1]), Xc.T @ Yc)


def augmented_synthetic(x1: np.ndarray, X0: np.ndarray, Y0: np.ndarray, lam: float):
    """Ridge ASCM for one unit: the synthetic-control weights on the pre-period, plus the ridge
    outcome model's correction for the pre-period misfit: Y0' w + (x1 - X0' w)' eta."""
    w = synth_weights(x1, X0.T)
    return w, w @ Y0 + (x1 - w @ X0) @ ridge_coefficients(X0, Y0, lam)


def choose_ridge_penalty(x1: np.ndarray, X0: np.ndarray, scale: float) -> float:
    """The penalty (times the pre-period variance `scale`) whose augmented fit best predicts each
    of the last pre-period years held out in turn, from the years before it (a time-series
    cross-validation, as the paper's implementation offers)."""
    T0 = X0.shape[1]
    best, best_err = RIDGE_GRID[-1] * scale, np.inf
    for lam in (g * scale for g in RIDGE_GRID):
        errors = []
        for t in range(max(3, T0 // 2), T0):
            _, pred = augmented_synthetic(x1[:t], X0[:, :t], X0[:, [t]], lam)
            errors.append(float(pred[0] - x1[t]) ** 2)
        err = float(np.mean(errors)) if errors else np.inf
        if err < best_err - 1e-12:
            best, best_err = lam, err
    return best


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare whole frames
class AugmentedSyntheticControlResult(LAEventResult):
    """Ridge-augmented synthetic control: a bias-corrected robustness check for an LA its donors
    cannot reproduce; placebo-in-space inference on the average post-period gap."""

    design = "synthetic_control_ridge"

    penalty: float
    rank: int
    p_value: float


def fit_augmented_synthetic_control(la: str, outcome: str = "starts", event=None,
                                    start_year: int = 2014, end_year: int | None = None,
                                    exclude_donors: Sequence[str] = (),
                                    panel: pd.DataFrame | None = None
                                    ) -> AugmentedSyntheticControlResult:
    """Ridge ASCM on the rate per 10,000 (Ben-Michael, Feller & Rothstein 2021, JASA): the
    synthetic control's weights with a ridge regression of post- on pre-period outcomes
    correcting the pre-period misfit, which matters when the LA lies outside its donors' range
    (as an LA with one of the highest rates does). The penalty is chosen by time-series
    cross-validation on the LA's pre-period and kept for the placebos; each donor in turn is
    treated as the LA for placebo-in-space inference on the average post-period gap."""
    panel, event, unit, treated, donors, years = treated_and_donors(
        la, outcome, event, start_year, end_year, exclude_donors, panel)
    pre = years < event.start
    R = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    X, Y = R[:, pre], R[:, ~pre]
    lam = choose_ridge_penalty(X[0], X[1:], float(np.var(X[1:])) * X.shape[1])
    _, synth_post = augmented_synthetic(X[0], X[1:], Y[1:], lam)
    gap = Y[0] - synth_post
    estimate = float(gap.mean())
    placebo = []
    for i in range(1, len(codes)):
        others = [j for j in range(1, len(codes)) if j != i]
        _, s_i = augmented_synthetic(X[i], X[others], Y[others], lam)
        placebo.append(float((Y[i] - s_i).mean()))
    placebo = np.asarray(placebo)
    rank, p_value = placebo_p(estimate, placebo)
    ci_low, ci_high = placebo_interval(estimate, placebo)
    names = la_names(panel)
    effects = pd.DataFrame([dict(intervention=event.name, effect="level", estimate=estimate,
                                 ci_low=ci_low, ci_high=ci_high, p_value=p_value,
                                 scale="difference")], columns=EFFECT_COLUMNS)
    cf_post = np.full(len(years), np.nan)
    cf_post[~pre] = synth_post
    cf = pd.DataFrame({"time": years, "observed": R[0], "fitted": R[0],
                       "counterfactual": cf_post, "cf_low": np.nan, "cf_high": np.nan})
    placebos = pd.DataFrame({"la_code": codes[1:],
                             "la_name": [names.get(c, c) for c in codes[1:]],
                             "avg_post_gap": placebo})
    return AugmentedSyntheticControlResult(outcome=outcome, unit=unit, event=event,
                                           effects=effects, counterfactual=cf,
                                           placebos=placebos, n_donors=len(codes) - 1,
                                           penalty=lam, rank=rank, p_value=p_value)
