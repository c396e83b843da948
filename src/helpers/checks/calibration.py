"""A Monte Carlo with no true effect, giving each inference method's false-positive rate and 95%
interval coverage on series shaped like the real ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from helpers.checks.common import SEED, child_seed
from helpers.checks.simulation import (PrePeriodModel, loop_fit, batch_fit, its_design,
                                       simulate_counts)

#: Inference methods the calibration compares (naive_ols: OLS with classical standard errors).
CALIBRATION_METHODS = ("poisson", "quasipoisson", "negbin", "ols", "ar1", "naive_ols")


def calibration_table(model: PrePeriodModel, *, n_sim: int = 300,
                      methods: Sequence[str] = CALIBRATION_METHODS,
                      annual_n: int = 16, annual_post: int = 4, monthly_n: int = 180,
                      monthly_post: int = 24, rho_monthly: float = 0.5, slope: bool = True,
                      n_sim_loop: int | None = None, alpha: float = 0.05,
                      seed=SEED) -> pd.DataFrame:
    """False-positive rate at nominal `alpha` and coverage of 95% intervals for each method, on
    series simulated from the pre-period model with NO true effect: annual (n=`annual_n`, the last
    `annual_post` points after a dummy event) and monthly (n=`monthly_n`, `monthly_post` after).
    The ITS model has a level (and slope) change; rows per method x setting x effect, with n_sim.
    Methods with their own optimiser (negbin, sarimax) go through `fit_its` replicate by
    replicate, on `n_sim_loop` replicates (default n_sim // 3) to keep the run short."""
    n_sim_loop = n_sim_loop or max(n_sim // 3, 20)
    rows = []
    for setting, mdl, n, post in (("annual", model, annual_n, annual_post),
                                  ("monthly", model.monthly(rho_monthly), monthly_n, monthly_post)):
        n_pre = n - post
        sims = simulate_counts(mdl, post, n_sim, n_pre=n_pre, seed=child_seed(seed, "cal", setting))[0]
        Xdf = its_design(n_pre, post, slope=slope)
        names = [c for c in Xdf.columns if c.startswith("event:")]
        for method in methods:
            if method in ("negbin", "sarimax"):
                fit, fit_names = loop_fit(method, Xdf, sims[:n_sim_loop], alpha)
                idx = {nm: i for i, nm in enumerate(fit_names)}
                used = n_sim_loop
            else:
                fit = batch_fit(method, Xdf.to_numpy(), sims, alpha=alpha)
                idx = {nm: list(Xdf.columns).index(nm) for nm in names}
                used = n_sim
            for nm in names:
                j = idx[nm]
                p = fit["p_value"][:, j]
                ok = np.isfinite(p)
                covered = (fit["low"][:, j] <= 0) & (fit["high"][:, j] >= 0)
                rows.append({"setting": setting, "n": n, "n_post": post, "method": method,
                             "effect": nm.split(":")[1], "n_sim": int(ok.sum()),
                             "false_positive_rate": float((p[ok] < alpha).mean()) if ok.any() else np.nan,
                             "coverage_95": float(covered[ok].mean()) if ok.any() else np.nan,
                             "n_failed": int(used - ok.sum())})
    table = pd.DataFrame(rows)
    table.attrs["model"] = model.to_dict()
    return table


def recommend_defaults(calibration: pd.DataFrame, effect: str = "level",
                       tolerance: float = 0.03) -> dict[str, str]:
    """Per setting, the method whose false-positive rate is closest to nominal 5% (within
    `tolerance` above it counts as calibrated), preferring count models (DESIGN: counts as counts)
    and then the best coverage."""
    preference = {"quasipoisson": 0, "negbin": 1, "ar1": 2, "ols": 3, "poisson": 4,
                  "sarimax": 5, "naive_ols": 9}
    out = {}
    for setting, sel in calibration[calibration["effect"] == effect].groupby("setting"):
        sel = sel[sel["method"] != "naive_ols"].copy()
        sel["excess"] = (sel["false_positive_rate"] - 0.05).clip(lower=0)
        ok = sel[sel["excess"] <= tolerance]
        pool = ok if len(ok) else sel.nsmallest(1, "excess")
        pool = pool.assign(rank=pool["method"].map(preference).fillna(8),
                           cov_gap=(pool["coverage_95"] - 0.95).abs())
        out[setting] = str(pool.sort_values(["rank", "cov_gap"]).iloc[0]["method"])
    return out
