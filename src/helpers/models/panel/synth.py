"""Synthetic control (Abadie & Gardeazabal 2003; Abadie, Diamond & Hainmueller 2010, "Synthetic
Control Methods for Comparative Case Studies", JASA 105(490): 493-505) on a panel, with
predictors that are means of covariates or of the outcome over chosen windows, beside the
outcome-only version (every pre-period outcome a predictor, equal predictor weights).

Weights W (donors, on the simplex) minimise (X1 - X0 W)' V (X1 - X0 W) for a diagonal V.
Predictors are first divided by their standard deviation across all units (as the R `Synth`
package does). V is chosen by the nested optimisation of ADH (2010): V minimises the pre-period
mean squared prediction error of the outcome, mean_t (Z1 - Z0 W(V))^2, over the optimisation
window; the inner problem is solved exactly (`simplex_least_squares`), the outer one by
Nelder-Mead from `Synth`'s two starting points (equal weights and the regression-based V), a
polish from the better of them, and the lowest loss is kept. The outer problem is not convex;
different software can stop at different local optima (the tests state how close this gets to
the published weights).

Inference: placebo-in-space (every donor in turn treated, the others its donors, V re-chosen),
the ratio of post- to pre-period RMSPE ranked (ADH 2010, section 3.4), computed lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from helpers.core.errors import CareTrendsError
from helpers.models.panel.data import Panel, PanelResult, effects_frame
from helpers.models.simplex import simplex_least_squares


def _spec(item, panel: Panel):
    """(name, column, times) from ('col', (t0, t1)) / ('col', [t, ...]) / ('col', t) / 'col'."""
    times = np.asarray(panel.times)
    if isinstance(item, str):
        column, window = item, None
    else:
        column, window = item[0], item[1]
    if column not in panel.data.columns:
        raise CareTrendsError(f"predictor column {column!r} is not in the panel; pass it in "
                              "make_panel(covariates=...) or name the outcome")
    if window is None:
        sel, label = times, "all"
    elif np.isscalar(window):
        sel, label = np.array([window]), f"{window}"
    elif isinstance(window, tuple) and len(window) == 2:
        sel = times[(times >= window[0]) & (times <= window[1])]
        label = f"{window[0]}-{window[1]}"
    else:
        sel, label = np.asarray(window), ",".join(str(w) for w in window)
    missing = set(np.asarray(sel).tolist()) - set(times.tolist())
    if len(sel) == 0 or missing:
        raise CareTrendsError(f"predictor {column!r}: times {sorted(missing) or window} are not in "
                              "the panel")
    return f"{column} {label}", column, sel


def predictor_table(panel: Panel, predictors: Sequence) -> pd.DataFrame:
    """Predictors x units: the mean of each column over its window (missing values skipped, as
    `Synth` does). Spec items: 'col' (all times), ('col', year), ('col', (from, to)) inclusive,
    or ('col', [times])."""
    rows = {}
    for item in predictors:
        name, column, sel = _spec(item, panel)
        wide = panel.wide(column)[list(sel)]
        values = wide.mean(axis=1, skipna=True)
        if values.isna().any():
            bad = list(values.index[values.isna()])[:3]
            raise CareTrendsError(f"predictor {name!r} has no values for unit(s) {bad}")
        rows[name] = values
    return pd.DataFrame(rows).T


def _normalise(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=1, ddof=1, keepdims=True)
    return X / np.where(sd > 0, sd, 1.0)


def _weights_for(v, X1, X0):
    s = np.sqrt(v)
    return simplex_least_squares(X0 * s[:, None], X1 * s)


def choose_v(X1, X0, Z1, Z0) -> np.ndarray:
    """The nested V of ADH (2010): predictor weights minimising the outcome MSPE over the
    optimisation window (X normalised)."""
    k = X1.shape[0]
    if k == 1:
        return np.ones(1)

    def loss(par):
        a = np.abs(par)
        if a.sum() <= 0:
            return np.inf
        w = _weights_for(a / a.sum(), X1, X0)
        return float(np.mean((Z1 - Z0 @ w) ** 2))

    starts = [np.full(k, 1.0 / k)]
    Xall = np.column_stack([np.ones(X0.shape[1] + 1), np.column_stack([X1, X0]).T])
    Zall = np.column_stack([Z1, Z0]).T
    beta = np.linalg.lstsq(Xall, Zall, rcond=None)[0][1:]
    reg = np.diag(beta @ beta.T)
    if np.isfinite(reg).all() and reg.sum() > 0:
        starts.append(reg / reg.sum())  # Synth's regression-based starting V
    best = None
    for s in starts:
        res = minimize(loss, s, method="Nelder-Mead",
                       options=dict(maxiter=400 * k, xatol=1e-8, fatol=1e-10, adaptive=True))
        if best is None or res.fun < best.fun:
            best = res
    polish = minimize(loss, best.x, method="Nelder-Mead",
                      options=dict(maxiter=400 * k, xatol=1e-10, fatol=1e-12, adaptive=True))
    x = polish.x if polish.fun <= best.fun else best.x
    a = np.abs(x)
    return a / a.sum()


@dataclass(frozen=True)
class _Fit:
    w: np.ndarray
    v: np.ndarray
    gap: np.ndarray
    loss: float


def _fit_unit(panel: Panel, treated_pos: int, donor_pos: np.ndarray, predictors, v, window):
    Y = panel.Y.to_numpy(float)
    times = np.asarray(panel.times, float)
    start = float(panel.start.dropna().iloc[0])
    pre = times < start
    opt = pre if window is None else (times >= window[0]) & (times <= window[1])
    if predictors is None:
        X = Y[:, pre].T
    else:
        X = predictor_table(panel, predictors).to_numpy(float)
    X = _normalise(X)
    X1, X0 = X[:, treated_pos], X[:, donor_pos]
    Z1, Z0 = Y[treated_pos, opt], Y[donor_pos][:, opt].T
    if isinstance(v, str):
        if v == "nested":
            vv = choose_v(X1, X0, Z1, Z0)
        elif v == "equal":
            vv = np.full(X.shape[0], 1.0 / X.shape[0])
        else:
            raise CareTrendsError(f"unknown v {v!r}; choose 'nested', 'equal' or give weights")
    else:
        vv = np.asarray(v, float)
        if vv.shape != (X.shape[0],) or (vv < 0).any():
            raise CareTrendsError(f"v must be {X.shape[0]} non-negative predictor weights")
        vv = vv / vv.sum()
    w = _weights_for(vv, X1, X0)
    gap = Y[treated_pos] - w @ Y[donor_pos]
    return _Fit(w, vv, gap, float(np.mean((Z1 - Z0 @ w) ** 2)))


def _rmspe(g):
    return float(np.sqrt(np.mean(g ** 2)))


@dataclass(kw_only=True, eq=False, repr=False)
class SynthResult(PanelResult):
    """Synthetic control. `weights` (donor, weight), `v` (predictor, weight), `balance`
    (predictor: treated, synthetic, donor mean, unnormalised), `counterfactual` (time, observed,
    synthetic, gap), pre/post RMSPE. `effects`: the mean post-period gap ('level') with the
    placebo-in-space p-value (rank of the post/pre RMSPE ratio) and the interval inverting the
    placebo test of the mean gap; computed on first use (it refits every donor)."""

    weights: pd.DataFrame
    v: pd.DataFrame
    balance: pd.DataFrame
    counterfactual: pd.DataFrame
    pre_rmspe: float
    post_rmspe: float
    loss: float
    predictors: object
    v_method: object
    window: object
    alpha: float = 0.05

    def __post_init__(self):
        self._effects = None

    @property
    def estimate(self) -> float:
        post = self.counterfactual["time"] >= self._start
        return float(self.counterfactual.loc[post, "gap"].mean())

    @property
    def _start(self):
        return float(self.panel.start.dropna().iloc[0])

    @property
    def effects(self) -> pd.DataFrame:
        if self._effects is None:
            est = self.estimate
            pl = self.placebos
            ratio = self.post_rmspe / max(self.pre_rmspe, 1e-12)
            rank = 1 + int((pl["ratio"] > ratio + 1e-12).sum())
            p = rank / (len(pl) + 1)
            crit = np.sort(np.abs(pl["avg_post_gap"].to_numpy()))[::-1]
            m = int(np.floor(self.alpha * (len(crit) + 1) + 1e-9)) - 1
            half = crit[m] if m >= 0 else np.inf
            self._effects = effects_frame([dict(intervention=self.event, effect="level",
                                                estimate=est, ci_low=est - half, ci_high=est + half,
                                                p_value=p, scale="difference")])
        return self._effects

    @effects.setter
    def effects(self, value):
        self._effects = value

    @cached_property
    def placebos(self) -> pd.DataFrame:
        """Each donor as if treated (the other donors its pool, V re-chosen the same way)."""
        units = list(self.panel.units)
        donors = [units.index(u) for u in self.weights["donor"]]
        times = np.asarray(self.panel.times, float)
        pre = times < self._start
        rows = []
        for d in donors:
            pool = np.array([u for u in donors if u != d])
            fit = _fit_unit(self.panel, d, pool, self.predictors, self.v_method, self.window)
            pre_r, post_r = _rmspe(fit.gap[pre]), _rmspe(fit.gap[~pre])
            rows.append(dict(unit=units[d], pre_rmspe=pre_r, post_rmspe=post_r,
                             ratio=post_r / max(pre_r, 1e-12), avg_post_gap=float(fit.gap[~pre].mean())))
        return pd.DataFrame(rows)


def fit_synth(panel: Panel, *, predictors: Sequence | None = None, v="nested",
              optimize_window: tuple | None = None, event: str = "treatment",
              alpha: float = 0.05) -> SynthResult:
    """Synthetic control for the panel's one treated unit against its never-treated units.

    `predictors=None`: outcome-only (every pre-period outcome a predictor; then `v` defaults to
    equal weights unless given). Otherwise a list of predictor specs (see `predictor_table`),
    e.g. [('lnincome', (1980, 1988)), ('beer', (1984, 1988)), ('cigsale', 1988)].
    `v`: 'nested' (ADH 2010), 'equal', or an array of predictor weights. `optimize_window`:
    (from, to) times over which the nested V minimises the outcome MSPE (default all pre-periods).
    """
    treated = panel.treated_units
    if len(treated) != 1:
        raise CareTrendsError(f"synthetic control fits one treated unit, this panel has {len(treated)}; "
                              "use fit_sdid for several treated units or subset the panel")
    donors_units = panel.never_treated
    if len(donors_units) < 2:
        raise CareTrendsError("synthetic control needs at least two never-treated donor units")
    if predictors is None and isinstance(v, str) and v == "nested":
        v = "equal"
    units = list(panel.units)
    t_pos = units.index(treated[0])
    d_pos = np.array([units.index(u) for u in donors_units])
    times = np.asarray(panel.times, float)
    start = float(panel.start.dropna().iloc[0])
    pre = times < start
    if pre.sum() < 2:
        raise CareTrendsError("synthetic control needs at least two pre-treatment periods")
    fit = _fit_unit(panel, t_pos, d_pos, predictors, v, optimize_window)
    names = ([f"{panel.outcome} {t:g}" for t in times[pre]] if predictors is None
             else list(predictor_table(panel, predictors).index))
    raw = (panel.Y.to_numpy(float)[:, pre].T if predictors is None
           else predictor_table(panel, predictors).to_numpy(float))
    balance = pd.DataFrame({"predictor": names, "treated": raw[:, t_pos],
                            "synthetic": raw[:, d_pos] @ fit.w, "donor_mean": raw[:, d_pos].mean(axis=1)})
    weights = pd.DataFrame({"donor": donors_units, "weight": fit.w}).sort_values(
        ["weight", "donor"], ascending=[False, True], ignore_index=True)
    Y = panel.Y.to_numpy(float)
    synthetic = fit.w @ Y[d_pos]
    cf = pd.DataFrame({"time": times, "observed": Y[t_pos], "synthetic": synthetic, "gap": fit.gap})
    return SynthResult(design="synthetic_control" if predictors is None else "synthetic_control_covariates",
                       outcome=panel.outcome, event=event, effects=None, panel=panel,
                       weights=weights, v=pd.DataFrame({"predictor": names, "v": fit.v}),
                       balance=balance, counterfactual=cf, pre_rmspe=_rmspe(fit.gap[pre]),
                       post_rmspe=_rmspe(fit.gap[~pre]), loss=fit.loss, predictors=predictors,
                       v_method=v, window=optimize_window, alpha=alpha)
