"""Simulation: known level and slope changes are covered by the intervals at about the nominal rate.

Small on purpose (200 replications each, fixed seeds). Binomial noise with 200 replications is
about +-1.5 points, so the bounds allow for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import its

REPS = 200


def coverage(make_frame, truth, reps, seed, **fit_kwargs):
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(truth))
    for _ in range(reps):
        effects = its.fit_its(make_frame(rng), impact_draws=10, **fit_kwargs).effects
        hits += ((effects["ci_low"] <= truth) & (truth <= effects["ci_high"])).to_numpy()
    return hits / reps


@pytest.mark.slow
def test_poisson_noise_level_and_slope_covered():
    t = np.arange(2008, 2026, dtype=float)  # 18 reporting years, change from 2019
    pop = np.full(len(t), 5e4)
    level, slope = -0.2, -0.05
    mu = pop * np.exp(-6 + 0.04 * (t - 2008) + level * (t >= 2019)
                      + slope * np.where(t >= 2019, t - 2019, 0))

    def frame(rng):
        return pd.DataFrame({"year": t, "starts": rng.poisson(mu), "population": pop})

    truth = np.exp([level, slope])  # rate ratios
    cov = coverage(frame, truth, REPS, seed=20240301, time="year", interventions={"x": 2019},
                   family="poisson")
    assert np.all((cov >= 0.90) & (cov <= 0.99)), cov


@pytest.mark.slow
def test_ar1_noise_level_and_slope_covered():
    n, rho, start = 80, 0.5, 56
    t = np.arange(n, dtype=float)
    level, slope = 3.0, -0.2
    mean = 20 + 0.1 * t + level * (t >= start) + slope * np.where(t >= start, t - start, 0)

    def frame(rng):
        e = np.empty(n)
        e[0] = rng.normal(0, 1 / np.sqrt(1 - rho**2))  # stationary start
        for i in range(1, n):
            e[i] = rho * e[i - 1] + rng.normal()
        return pd.DataFrame({"t": t, "rate": mean + e})

    cov = coverage(frame, np.array([level, slope]), REPS, seed=7, outcome="rate",
                   interventions={"x": start}, family="ar1", frequency="annual")
    # GLSAR's rho is biased towards 0 in short series, so coverage sits a little under 95%
    assert np.all((cov >= 0.87) & (cov <= 0.99)), cov
