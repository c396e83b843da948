"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021,
"Synthetic Difference-in-Differences", American Economic Review 111(12): 4088-4118), with the
paper's two comparators computed by the same machinery: synthetic control (SC) and
difference-in-differences (DID), as in its Table 1.

Block design (one adoption time): controls i <= N0, pre-periods t <= T0.
* Unit weights (Algorithm 1, step 2): omega0, omega = argmin sum_{t<=T0} (omega0 + sum_i omega_i
  Y_it - mean_tr Y_t)^2 + zeta^2 T0 ||omega||^2 over the simplex, with
  zeta = (N_tr T_post)^(1/4) * sd(first differences of control outcomes in the pre-period).
* Time weights (step 3): lambda0, lambda = argmin sum_{i<=N0} (lambda0 + sum_t lambda_t Y_it -
  mean_post Y_i)^2 + zeta_lambda^2 N0 ||lambda||^2, zeta_lambda = 1e-6 * the same sd.
* Estimate: tau = (mean_tr,post - lambda'pre_tr) - sum_i omega_i (mean_i,post - lambda'pre_i).
The weight problems are solved exactly (`simplex_least_squares`); the authors' R package
`synthdid` solves them approximately by Frank-Wolfe with a sparsification step, which moves the
estimate in the second decimal (California: -15.60 both ways; see the tests).

Staggered adoption: one SDID per adoption cohort against the never-treated units, averaged with
weights N_cohort x T_post,cohort (the cohort-averaging of Clarke, Pailanir, Athey & Imbens 2023,
Stata `sdid`).

Standard errors: placebo (Algorithm 4; for one or few treated units: controls drawn as
pseudo-treated units - enumerated exactly when the number of draws allows, otherwise seeded
random draws), jackknife (Algorithm 3; leave one unit out with the weights fixed; needs more than
one treated unit) or bootstrap (Algorithm 2). Computed lazily (cached) because they refit.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from helpers.core.errors import CareTrendsError
from helpers.core.vocab import DEFAULT_SEED
from helpers.models.panel.data import Panel, PanelResult, effects_frame, normal_row
from helpers.models.simplex import simplex_least_squares

ESTIMATORS = ("sdid", "sc", "did")
SE_METHODS = ("placebo", "jackknife", "bootstrap")
DESIGN_KEYS = {"sdid": "synthetic_did", "sc": "synthetic_control_sdid", "did": "did_sdid"}


@dataclass(frozen=True)
class BlockFit:
    """One block (one adoption cohort) of an SDID-type fit."""

    tau: float
    omega: np.ndarray       # weights on the controls (N0,)
    lam: np.ndarray         # weights on the pre-periods (T0,)
    zeta_omega: float
    zeta_lambda: float
    noise: float
    n_treated: int
    n_post: int


def noise_level(Y: np.ndarray, N0: int, T0: int) -> float:
    """sd (n - 1) of the first differences of the control units' pre-period outcomes."""
    diffs = np.diff(Y[:N0, :T0], axis=1)
    return float(np.std(diffs, ddof=1)) if diffs.size > 1 else 0.0


def _fw_step(A, x, b, eta):
    """One Frank-Wolfe step with exact line search (synthdid's `fw.step`)."""
    Ax = A @ x
    half_grad = (Ax - b) @ A + eta * x
    i = int(np.argmin(half_grad))
    dx = -x.copy()
    dx[i] = 1.0 - x[i]
    if not dx.any():
        return x
    derr = A[:, i] - Ax
    step = -(half_grad @ dx) / (derr @ derr + eta * (dx @ dx))
    return x + min(1.0, max(0.0, step)) * dx


def _fw_weights(M, zeta, intercept, start, min_decrease, max_iter):
    """synthdid's `sc.weight.fw`: weights on M's first k columns approximating its last column,
    penalty rows * zeta^2 * ||w||^2, Frank-Wolfe until the objective stops falling."""
    M = np.asarray(M, float)
    if intercept:
        M = M - M.mean(axis=0, keepdims=True)
    rows, k = M.shape[0], M.shape[1] - 1
    A, b = M[:, :k], M[:, k]
    eta = rows * zeta ** 2
    x = np.full(k, 1.0 / k) if start is None else np.asarray(start, float).copy()
    vals = []
    while len(vals) < max_iter and (len(vals) < 2 or vals[-2] - vals[-1] > min_decrease ** 2):
        x = _fw_step(A, x, b, eta)
        err = A @ x - b
        vals.append(zeta ** 2 * (x @ x) + (err @ err) / rows)
    return x


def _sparsify(v):
    v = np.where(v <= v.max() / 4, 0.0, v)
    return v / v.sum()


def _fw_fit(M, zeta, intercept, start, noise):
    """synthdid's two-stage solve: 100 Frank-Wolfe steps, sparsify, then up to 10,000 more."""
    min_decrease = 1e-5 * noise
    first = _fw_weights(M, zeta, intercept, start, min_decrease, 100)
    return _fw_weights(M, zeta, intercept, _sparsify(first), min_decrease, 10_000)


def _tau(Y, N0, T0, omega, lam) -> float:
    N, T = Y.shape
    unit = np.concatenate([-omega, np.full(N - N0, 1.0 / (N - N0))])
    time = np.concatenate([-lam, np.full(T - T0, 1.0 / (T - T0))])
    return float(unit @ Y @ time)


def fit_block(Y: np.ndarray, N0: int, T0: int, estimator: str = "sdid", *, zeta_omega=None,
              zeta_lambda=None, omega=None, lam=None, solver: str = "exact",
              lam_start=None) -> BlockFit:
    """Fit one block: rows 0..N0-1 controls, the rest treated; columns 0..T0-1 pre-periods.
    `omega` / `lam` fix the weights (jackknife); the zetas fix the regularisation (placebo).
    `solver='frank_wolfe'` reproduces the authors' R package (`lam_start` is its warm start)."""
    Y = np.asarray(Y, float)
    N, T = Y.shape
    n_tr, n_post = N - N0, T - T0
    noise = noise_level(Y, N0, T0)
    if estimator == "did":
        omega = np.full(N0, 1.0 / N0) if omega is None else omega
        lam = np.full(T0, 1.0 / T0) if lam is None else lam
        return BlockFit(_tau(Y, N0, T0, omega, lam), omega, lam, np.nan, np.nan, noise, n_tr, n_post)
    if zeta_omega is None:
        zeta_omega = (n_tr * n_post) ** 0.25 * noise if estimator == "sdid" else 1e-6 * noise
    if zeta_lambda is None:
        zeta_lambda = 1e-6 * noise
    pre_tr = Y[N0:, :T0].mean(axis=0)
    post_ctrl = Y[:N0, T0:].mean(axis=1)
    if lam is None:
        if estimator == "sc":
            lam = np.zeros(T0)  # SC compares post-period levels: no time weights
        elif solver == "frank_wolfe":
            lam = _fw_fit(np.column_stack([Y[:N0, :T0], post_ctrl]), zeta_lambda, True, lam_start,
                          noise)
        else:
            lam = simplex_least_squares(Y[:N0, :T0], post_ctrl, ridge=zeta_lambda ** 2 * N0,
                                        intercept=True)
    if omega is None:
        # rows = pre-periods, columns = controls; the unit-weight intercept is profiled out (SDID)
        if solver == "frank_wolfe":
            omega = _fw_fit(np.column_stack([Y[:N0, :T0].T, pre_tr]), zeta_omega,
                            estimator == "sdid", None, noise)
        else:
            omega = simplex_least_squares(Y[:N0, :T0].T, pre_tr, ridge=zeta_omega ** 2 * T0,
                                          intercept=(estimator == "sdid"))
    return BlockFit(_tau(Y, N0, T0, omega, lam), omega, lam, zeta_omega, zeta_lambda, noise,
                    n_tr, n_post)


def _blocks(panel: Panel):
    """(cohort start, treated unit positions, pre-period count) for each adoption cohort."""
    times = panel.times
    units = list(panel.units)
    out = []
    for start, members in panel.cohorts.items():
        T0 = int(np.sum(times < start))
        out.append((start, [units.index(u) for u in members], T0))
    return out


def _fit_all(Y: np.ndarray, controls: np.ndarray, blocks, estimator, zetas=None, fixed=None,
             solver="exact", lam_starts=None):
    """Cohort fits on the rows `controls` (positions) of Y; returns (tau, fits)."""
    fits, weights = [], []
    for k, (start, treated, T0) in enumerate(blocks):
        rows = np.concatenate([controls, treated])
        z = zetas[k] if zetas is not None else (None, None)
        om, la = fixed[k] if fixed is not None else (None, None)
        fit = fit_block(Y[rows], len(controls), T0, estimator, zeta_omega=z[0], zeta_lambda=z[1],
                        omega=om, lam=la, solver=solver,
                        lam_start=None if lam_starts is None else lam_starts[k])
        fits.append(fit)
        weights.append(fit.n_treated * fit.n_post)
    weights = np.asarray(weights, float)
    tau = float(np.dot([f.tau for f in fits], weights) / weights.sum())
    return tau, fits


@dataclass(kw_only=True, eq=False, repr=False)
class SDIDResult(PanelResult):
    """SDID / SC / DID estimate (Arkhangelsky et al. 2021) with lazily computed standard errors.

    `effects` holds one row, effect 'level' (the average effect on the treated over their post
    periods, in outcome units); its interval and p-value use `se_method`.
    """

    estimator: str
    estimate: float
    cohort_fits: list
    cohort_table: pd.DataFrame
    unit_weights: pd.DataFrame
    time_weights: pd.DataFrame
    se_method: str
    replications: int
    seed: int
    solver: str = "exact"
    level: float = 0.95

    def __post_init__(self):
        self._effects = None

    @property
    def effects(self) -> pd.DataFrame:  # noqa: D401 - computed on first use (needs the SE)
        if self._effects is None:
            self._effects = effects_frame([normal_row(self.event, "level", self.estimate, self.se,
                                                      level=self.level)])
        return self._effects

    @effects.setter
    def effects(self, value):
        self._effects = value

    @property
    def se(self) -> float:
        return getattr(self, f"{self.se_method}_se")

    # -- inference ------------------------------------------------------------------------
    def _Y(self):
        return self.panel.Y.to_numpy(float)

    def _controls(self):
        return np.flatnonzero(self.panel.start.isna().to_numpy())

    @cached_property
    def placebo_estimates(self) -> np.ndarray:
        """Algorithm 4: estimates with N_tr controls posing as the treated units (they take the
        treated units' adoption times), the other controls as controls, the original
        regularisation. All combinations when there are no more than `replications`, else
        `replications` seeded random draws."""
        Y = self._Y()
        controls = self._controls()
        blocks = _blocks(self.panel)
        sizes = [len(b[1]) for b in blocks]
        n_tr = sum(sizes)
        if len(controls) <= n_tr:
            raise CareTrendsError("placebo standard errors need more control units than treated units")
        zetas = [(f.zeta_omega, f.zeta_lambda) for f in self.cohort_fits]
        n_comb = _n_choose(len(controls), n_tr)
        if n_comb <= self.replications:
            draws = [np.array(c) for c in itertools.combinations(range(len(controls)), n_tr)]
        else:
            rng = np.random.default_rng(self.seed)
            draws = [rng.choice(len(controls), n_tr, replace=False) for _ in range(self.replications)]
        out = []
        for draw in draws:
            fake = controls[draw]
            rest = np.setdiff1d(controls, fake)
            pos = np.cumsum([0, *sizes])
            fake_blocks = [(b[0], list(fake[pos[k]:pos[k + 1]]), b[2]) for k, b in enumerate(blocks)]
            out.append(_fit_all(Y, rest, fake_blocks, self.estimator, zetas=zetas, solver=self.solver,
                                lam_starts=[f.lam for f in self.cohort_fits])[0])
        return np.asarray(out)

    @cached_property
    def placebo_se(self) -> float:
        est = self.placebo_estimates
        return float(np.sqrt(np.mean((est - est.mean()) ** 2)))  # sqrt((B-1)/B) * sd, as the paper

    @cached_property
    def jackknife_estimates(self) -> np.ndarray:
        """Algorithm 3: leave each unit out, the weights fixed (omega renormalised)."""
        Y = self._Y()
        controls = self._controls()
        blocks = _blocks(self.panel)
        treated_all = [u for b in blocks for u in b[1]]
        if len(treated_all) < 2:
            raise CareTrendsError("jackknife standard errors need at least two treated units; use "
                                  "se_method='placebo' for a single treated unit")
        out = []
        for drop in np.concatenate([controls, treated_all]):
            ctrl = controls[controls != drop]
            keep = controls != drop
            fixed, kept_blocks = [], []
            for b, fit in zip(blocks, self.cohort_fits):
                tr = [u for u in b[1] if u != drop]
                if not tr:
                    continue  # a single-unit cohort drops out of the average
                om = fit.omega[keep]
                if om.sum() <= 0:
                    return np.full(1, np.nan)  # the only weighted control dropped: undefined
                fixed.append((om / om.sum(), fit.lam))
                kept_blocks.append((b[0], tr, b[2]))
            out.append(_fit_all(Y, ctrl, kept_blocks, self.estimator, fixed=fixed)[0])
        return np.asarray(out)

    @cached_property
    def jackknife_se(self) -> float:
        est = self.jackknife_estimates
        n = len(est)
        return float(np.sqrt((n - 1) / n * np.sum((est - est.mean()) ** 2)))

    @cached_property
    def bootstrap_se(self) -> float:
        """Algorithm 2: resample units with replacement (seeded), refit; draws without both a
        treated and a control unit are redrawn."""
        Y = self._Y()
        start = self.panel.start.to_numpy(float)
        rng = np.random.default_rng(self.seed)
        times = self.panel.times
        est = []
        while len(est) < self.replications:
            idx = rng.integers(0, len(start), len(start))
            s = start[idx]
            if np.isnan(s).all() or (~np.isnan(s)).all():
                continue
            controls = np.flatnonzero(np.isnan(s))
            blocks = [(t, list(np.flatnonzero(s == t)), int(np.sum(times < t)))
                      for t in np.unique(s[~np.isnan(s)])]
            est.append(_fit_all(Y[idx], controls, blocks, self.estimator, solver=self.solver)[0])
        est = np.asarray(est)
        return float(np.sqrt(np.mean((est - est.mean()) ** 2)))


def _n_choose(n: int, k: int) -> float:
    return float(math.comb(n, k))


def fit_sdid(panel: Panel, *, estimator: str = "sdid", event: str = "treatment",
             se_method: str | None = None, replications: int = 200, seed: int = DEFAULT_SEED,
             level: float = 0.95, solver: str = "exact") -> SDIDResult:
    """Synthetic DiD (or the paper's SC / DID comparators) on a panel with one or more treated
    units and one or more adoption times; controls are the never-treated units.

    `se_method`: 'placebo' (default with one treated unit), 'jackknife' (default with more),
    or 'bootstrap'. `replications` caps placebo/bootstrap draws (placebos are enumerated exactly
    when they fit). The SE is computed on first use of `.effects` / `.se`.
    `solver`: 'exact' (active-set QP, the default) or 'frank_wolfe' (the authors' R package's
    approximate solver with sparsification, to reproduce its published numbers).
    """
    if solver not in ("exact", "frank_wolfe"):
        raise CareTrendsError(f"unknown solver {solver!r}; choose 'exact' or 'frank_wolfe'")
    if estimator not in ESTIMATORS:
        raise CareTrendsError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    controls = np.flatnonzero(panel.start.isna().to_numpy())
    if len(controls) < 2:
        raise CareTrendsError("synthetic DiD needs at least two never-treated control units")
    blocks = _blocks(panel)
    for start, _, T0 in blocks:
        if T0 < 2:
            raise CareTrendsError(f"the cohort starting at {start} has fewer than two pre-periods; "
                                  "SDID needs at least two")
    n_treated = sum(len(b[1]) for b in blocks)
    se_method = se_method or ("placebo" if n_treated == 1 else "jackknife")
    if se_method not in SE_METHODS:
        raise CareTrendsError(f"unknown se_method {se_method!r}; choose one of {', '.join(SE_METHODS)}")
    Y = panel.Y.to_numpy(float)
    tau, fits = _fit_all(Y, controls, blocks, estimator, solver=solver)
    units = panel.units
    times = panel.times
    cohort_table = pd.DataFrame({
        "start": [b[0] for b in blocks], "n_treated": [f.n_treated for f in fits],
        "n_post": [f.n_post for f in fits], "estimate": [f.tau for f in fits],
        "weight": np.array([f.n_treated * f.n_post for f in fits], float)
                  / sum(f.n_treated * f.n_post for f in fits),
        "zeta_omega": [f.zeta_omega for f in fits], "noise_level": [f.noise for f in fits]})
    unit_weights = pd.DataFrame({str(b[0]): f.omega for b, f in zip(blocks, fits)},
                                index=pd.Index(units[controls], name=panel.unit))
    time_weights = pd.concat(
        [pd.DataFrame({"start": b[0], panel.time: times[:b[2]], "weight": f.lam})
         for b, f in zip(blocks, fits)], ignore_index=True)
    return SDIDResult(design=DESIGN_KEYS[estimator], outcome=panel.outcome, event=event,
                      effects=None, panel=panel, estimator=estimator, estimate=tau,
                      cohort_fits=fits, cohort_table=cohort_table, unit_weights=unit_weights,
                      time_weights=time_weights, se_method=se_method, replications=replications,
                      seed=seed, solver=solver, level=level)
