"""Power and the minimum detectable effect ("when will we know") of the declared impact model,
simulated from the fitted pre-period model (trend, dispersion, autocorrelation)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.checks.common import SEED, child_seed
from helpers.checks.simulation import PrePeriodModel, batch_fit, its_design, simulate_counts
from helpers.core.errors import CareTrendsError


DEFAULT_REDUCTIONS = tuple(np.round(np.arange(0.0, 0.625, 0.025), 3))


def power_curve(model: PrePeriodModel, n_post: int, *, reductions=DEFAULT_REDUCTIONS,
                n_sim: int = 300, method: str = "quasipoisson", alpha: float = 0.05,
                harmonics: int = 0, seed=SEED, sims: np.ndarray | None = None,
                size_adjusted: bool = True, model_effects: str = "declared") -> pd.DataFrame:
    """Share of simulated series in which the level change is significant at `alpha` (two-sided),
    for each true reduction (0.2 = a 20% drop from the first post step), with the ITS model
    fitted by `method`. model_effects "declared" (default) fits what the notebooks declare: a
    level and a slope change when there are 2+ post points, a level change with one (a level-only
    model with several post points overstates power: the slope term competes for the same
    information); "level" fits the level change only. `sims` (from `simulate_counts` with the same reductions, possibly
    longer) reuses simulated series: the first n_pre + n_post points are used.

    size_adjusted (default): when the test rejects too often with no effect (reduction 0, which
    must then be in `reductions`), the p-value threshold is lowered to the `alpha` quantile of
    the no-effect p-values, so power is not flattered by false positives. `size` reports the
    unadjusted false-positive rate."""
    reductions = tuple(float(r) for r in reductions)
    if size_adjusted and 0.0 not in reductions:
        raise CareTrendsError("size-adjusted power needs a zero effect in reductions; add 0.0")
    ratios = [1.0 - r for r in reductions]
    if sims is None:
        sims = simulate_counts(model, n_post, n_sim, effects=ratios, seed=seed)
    sims = sims[:, :, : model.n_pre + n_post]
    n_sim = sims.shape[1]
    if model_effects not in ("declared", "level"):
        raise CareTrendsError(f"model_effects must be 'declared' or 'level', not {model_effects!r}")
    X = its_design(model.n_pre, n_post, harmonics=harmonics, slope=model_effects == "declared")
    j = list(X.columns).index("event:level")
    Y = sims.reshape(-1, sims.shape[-1])
    fit = batch_fit(method, X.to_numpy(), Y, alpha=alpha)
    pvals = fit["p_value"][:, j].reshape(len(ratios), n_sim)
    size = float((pvals[reductions.index(0.0)] < alpha).mean()) if 0.0 in reductions else np.nan
    threshold = alpha
    if size_adjusted and size > alpha:
        threshold = float(np.quantile(pvals[reductions.index(0.0)], alpha))
    sig = pvals < threshold
    return pd.DataFrame({"reduction": list(reductions), "power": sig.mean(1), "n_sim": n_sim,
                         "n_post": n_post, "frequency": model.frequency, "size": size,
                         "threshold": threshold,
                         "model": "+".join(c.split(":")[1] for c in X.columns
                                           if c.startswith("event:"))})


def minimum_detectable_effect(curve: pd.DataFrame, power: float = 0.8) -> float:
    """Smallest reduction whose power reaches `power` (linear interpolation); NaN if none does."""
    r = curve["reduction"].to_numpy()
    pw = np.maximum.accumulate(curve["power"].to_numpy())
    above = np.nonzero(pw >= power)[0]
    if len(above) == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(r[0])
    return float(r[i - 1] + (power - pw[i - 1]) * (r[i] - r[i - 1]) / (pw[i] - pw[i - 1]))


def power_table(model: PrePeriodModel, *, annual_post=(1, 2, 3), monthly_post=(6, 12, 24, 36),
                rho_monthly: float = 0.5, n_sim: int = 300, method: str = "quasipoisson",
                monthly_method: str | None = None, power: float = 0.8, alpha: float = 0.05,
                reductions=DEFAULT_REDUCTIONS, seed=SEED) -> pd.DataFrame:
    """MDE (as a % fall in the level) for annual data with 1-3 post years and monthly data with
    6-36 post months, from the pre-period model (`model.monthly(rho_monthly)` for monthly data).
    Each frequency simulates its longest horizon once; shorter horizons use the first points of
    the same series. Columns: frequency, n_post, months_after, method, mde_percent (size-adjusted,
    see `power_curve`), false_positive_rate (of the unadjusted test), n_sim; `attrs["curves"]`
    holds the power curves."""
    rows, curves = [], []
    ratios = [1.0 - r for r in reductions]
    for freq, mdl, posts, months, meth in (
            ("annual", model, annual_post, 12, method),
            ("monthly", model.monthly(rho_monthly), monthly_post, 1, monthly_method or method)):
        if not len(posts):
            continue
        sims = simulate_counts(mdl, max(posts), n_sim, effects=ratios, seed=child_seed(seed, freq))
        for n_post in posts:
            curve = power_curve(mdl, n_post, reductions=reductions, method=meth, alpha=alpha,
                                sims=sims)
            curves.append(curve)
            rows.append({"frequency": freq, "n_post": int(n_post), "months_after": n_post * months,
                         "method": meth, "model": curve["model"].iloc[0],
                         "mde_percent": minimum_detectable_effect(curve, power) * 100,
                         "false_positive_rate": float(curve["size"].iloc[0]), "n_sim": n_sim})
    table = pd.DataFrame(rows)
    table.attrs["curves"] = pd.concat(curves, ignore_index=True)
    return table


def months_to_detect(model: PrePeriodModel, reduction: float, *, horizons=range(6, 61, 6),
                     rho_monthly: float = 0.5, n_sim: int = 300, power: float = 0.8,
                     method: str = "quasipoisson", alpha: float = 0.05, seed=SEED):
    """Months of monthly data after the event needed to detect a level change of `reduction`
    (e.g. 0.12 for a 12% fall, sign ignored) with `power`: (months or None if beyond the
    horizons, DataFrame of power by horizon). One set of simulated series, cut at each horizon."""
    monthly = model.monthly(rho_monthly)
    horizons = [int(h) for h in horizons]
    reductions = (0.0, abs(float(reduction)))
    sims = simulate_counts(monthly, max(horizons), n_sim, effects=[1.0 - r for r in reductions],
                           seed=child_seed(seed, "months"))
    rows = []
    for h in horizons:
        curve = power_curve(monthly, h, reductions=reductions, method=method, alpha=alpha,
                            sims=sims)
        rows.append({"months_after": h, "power": float(curve["power"].iloc[1])})
    table = pd.DataFrame(rows)
    hit = table[table["power"] >= power]
    return (int(hit["months_after"].iloc[0]) if len(hit) else None), table
