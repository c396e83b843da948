"""The pre-period model as a generator of simulated series, and the same models as `fit_its`
fitted to many simulated replicates at once (vectorised numpy: fitting each replicate with
statsmodels would take minutes on two cores; tests check these give the same numbers as
`fit_its` on one replicate). Used by the power and calibration checks."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from helpers.checks.common import SEED, effect_row, rng
from helpers.core.errors import CareTrendsError
from helpers.models.batch import irls_poisson
from helpers.models.design import design_columns, newey_west_lags
from helpers.models.its import fit_its


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
    gen = rng(seed)
    n_pre = int(n_pre or model.n_pre)
    n = n_pre + int(n_post)
    eps = gen.standard_normal((n_sim, n))
    u = np.empty((n_sim, n))
    rho, sigma = model.rho, model.sigma
    u[:, 0] = eps[:, 0] * sigma
    innov = sigma * math.sqrt(max(1 - rho * rho, 1e-12))
    for i in range(1, n):
        u[:, i] = rho * u[:, i - 1] + innov * eps[:, i]
    u -= sigma * sigma / 2  # keep the mean count on the trend
    count_seed = int(gen.integers(2 ** 62))
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
    """The ITS design `helpers.models.design.design_columns` builds, for a simulated series."""
    t = np.arange(n_pre + n_post, dtype=float)
    effects = ("level", "slope") if slope and n_post >= 2 else ("level",)
    return design_columns(t, {"event": n_pre}, {"event": effects}, harmonics, period)


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
    "ols" (Newey-West HAC standard errors, `hac_lags` default `newey_west_lags`, statsmodels'
    small-sample correction, t intervals on T - p df), "naive_ols" (classical OLS, t intervals),
    "ar1" (feasible GLS with AR(1) errors: statsmodels GLSAR iterative_fit).
    """
    S, T = Y.shape
    p = X.shape[1]
    if method in ("poisson", "quasipoisson"):
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
    return int(newey_west_lags(n))


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


def loop_fit(method: str, X: pd.DataFrame, Y: np.ndarray, alpha: float = 0.05):
    """Per-replicate `fit_its` for families with their own optimiser (negbin, sarimax)."""

    S, T = Y.shape
    names = [c for c in X.columns if c.startswith("event:")]
    n_pre = int((X["event:level"] == 0).sum())
    effects = tuple(c.split(":")[1] for c in names)
    out = {k: np.full((S, len(names)), np.nan) for k in ("coef", "se", "p_value", "low", "high")}
    t = np.arange(T)
    for s in range(S):
        df = pd.DataFrame({"t": t, "y": Y[s]})
        try:
            with warnings.catch_warnings():
                # Hard simulated replicates may not converge; they are counted as failures.
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                res = fit_its(df, outcome="y", time="t", interventions={"event": n_pre},
                                  effects=effects, family=method, offset=None, harmonics=0)
        except (CareTrendsError, np.linalg.LinAlgError, ValueError):
            continue
        for j, eff in enumerate(effects):
            row = effect_row(res, "event", eff)
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
