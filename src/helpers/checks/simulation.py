"""The pre-period model as a generator of simulated series, and the same models as `fit_its`
fitted to many simulated replicates at once (vectorised numpy: fitting each replicate with
statsmodels would take minutes on two cores; tests check these give the same numbers as
`fit_its` on one replicate). Used by the power and calibration checks."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from helpers.checks.common import SEED, latent_ar1, rng
from helpers.core.errors import CareTrendsError
from helpers.models import inference
from helpers.models.design import design_columns


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
    sigma = model.sigma
    u = latent_ar1(gen.standard_normal((n_sim, n)), sigma, model.rho)
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


def batch_fit(method: str, X: np.ndarray, Y: np.ndarray, *, hac_lags: int | None = None,
              alpha: float = 0.05, log_offset=None, seed=SEED) -> dict[str, np.ndarray]:
    """Fit one design X (T, p) to many series Y (S, T): coefficients, standard errors, p-values and
    interval bounds (S, p) on the model's own scale (log for the count families), by
    `helpers.models.inference.batch_inference` (every family `fit_its` offers, batched)."""
    if method not in inference.BATCH_METHODS:
        raise CareTrendsError(f"no batched fit for {method!r}; use one of "
                              f"{', '.join(inference.BATCH_METHODS)}")
    X = np.asarray(X, float)
    return inference.batch_inference(method, X, Y, log_offset, effect_idx=range(X.shape[1]),
                                     alpha=alpha, hac_lags=hac_lags, seed=seed)
