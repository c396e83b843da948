"""The ar1_bootstrap Monte Carlo gives the same numbers after it was made faster.

`tests/data/ar1_bootstrap_reference.npz` holds the outputs of the implementation before the speed
work (commit ff1a66b: per-series `lfilter`, einsum refits, residuals materialised), written by
`python tests/test_bootstrap_reference.py --write` at that commit. The cases cover what the speed
work touches: several draw chunks, one and two effects, counts small enough for the exact Poisson
draws, an all-zero series that the GLM cannot fit, annual series, the model-based studentisation,
the analytic sandwich and a single real-size fit. The same seeds must give the same random draws
in the same order, so estimates, standard errors, critical values, intervals and p-values agree
to rounding (1e-9).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.checks import calibration
from helpers.models import inference

REFERENCE = Path(__file__).parent / "data" / "ar1_bootstrap_reference.npz"
SEED = 20240301


def _data(cell, model, n_sim, seed, level_ratio=1.0, zero_row=False):
    Y, log_pop = calibration.simulate_counts(cell, n_sim, level_ratio=level_ratio, seed=seed)
    if zero_row:
        Y[1] = 0.0
    X = calibration.its_design(cell, model)
    idx = [list(X.columns).index(c) for c in X.columns if c.startswith("event:")]
    return X.to_numpy(), Y, log_pop, idx


def _batch(case, X, Y, off, idx, seed, **kw):
    res = inference._ar1_bootstrap_batch(X, Y, off, idx, np.random.default_rng(seed), **kw)
    return {f"{case}/{k}": v for k, v in res.items()}


def compute() -> dict[str, np.ndarray]:
    """Every array the reference file holds, from the current code."""
    out = {}
    monthly = calibration.Cell("monthly", 180, 24, 0.5)
    # two draw chunks of the Monte Carlo's bootstrap sizes (41 series per chunk at B = 399)
    X, Y, off, idx = _data(monthly, "level+slope", 50, SEED, level_ratio=0.85)
    out.update(_batch("monthly_ls", X, Y, off, idx, SEED + 1, n_boot=399, n_bias=99))
    out.update(_batch("monthly_ls_model", X[:, :], Y[:12], off, idx, SEED + 2, n_boot=199,
                      n_bias=49, studentise="model"))
    sand = inference._ar1_sandwich_batch(X, Y, off, idx, np.random.default_rng(SEED + 3),
                                         n_bias=99)
    out.update({f"sandwich/{k}": v for k, v in sand.items()})
    X, Y, off, idx = _data(monthly, "level", 30, SEED + 4)
    out.update(_batch("monthly_level", X, Y, off, idx, SEED + 5, n_boot=399, n_bias=99))
    # small counts: many bootstrap means below POISSON_EXACT_BELOW; one series the GLM cannot fit
    small = calibration.Cell("monthly", 120, 24, 0.3, mean_count=4.0)
    X, Y, off, idx = _data(small, "level+slope", 30, SEED + 6, zero_row=True)
    out.update(_batch("small_counts", X, Y, off, idx, SEED + 7, n_boot=199, n_bias=49,
                      chunk_values=400_000))
    annual = calibration.Cell("annual", 16, 4, 0.5, mean_count=250.0, trend=0.03, harmonics=0,
                              seasonal=(), dispersion=3.0)
    X, Y, off, idx = _data(annual, "level+slope", 40, SEED + 8)
    out.update(_batch("annual", X, Y, off, idx, SEED + 9, n_boot=399, n_bias=99))
    # one real-size fit of the monthly default
    cell = calibration.Cell("monthly", 156, 24, 0.5)
    Y, off = calibration.simulate_counts(cell, 1, level_ratio=0.8, seed=SEED + 10)
    fit = inference.monthly_inference(Y[0], calibration.its_design(cell, "level+slope"), off,
                                      seed=SEED + 11)
    for k in ("params", "se", "ci_low", "ci_high", "p_value", "critical", "se_har"):
        out[f"single/{k}"] = fit[k].to_numpy()
    out["single/cov"] = fit["cov"].to_numpy()
    out["single/details"] = np.array([fit["details"][k] for k in (
        "sigma2", "rho", "sigma2_generator", "rho_generator", "dispersion")])
    return out


def test_same_numbers_as_before_the_speed_work():
    ref = np.load(REFERENCE)
    new = compute()
    assert sorted(ref.files) == sorted(new)
    for key in ref.files:
        np.testing.assert_allclose(new[key], ref[key], rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=key)
    # the cases exercise what they are meant to
    assert np.isnan(ref["small_counts/coef"][1]).all()
    assert np.isfinite(ref["small_counts/coef"][0]).all()


@pytest.mark.parametrize("work_values", [1, 50_000, 40_000_000])
def test_numbers_do_not_depend_on_the_work_pieces(work_values):
    """The draw order is fixed by the draw chunks (chunk_values); how the arithmetic inside a
    chunk is split (work_values: one series at a time up to the whole chunk) is not."""
    small = calibration.Cell("monthly", 120, 24, 0.3, mean_count=4.0)
    X, Y, off, idx = _data(small, "level+slope", 30, SEED + 6, zero_row=True)
    new = _batch("small_counts", X, Y, off, idx, SEED + 7, n_boot=199, n_bias=49,
                 chunk_values=400_000, work_values=work_values)
    ref = np.load(REFERENCE)
    for key, value in new.items():
        np.testing.assert_allclose(value, ref[key], rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=key)


def test_simulated_counts_follow_the_latent_model():
    """The AR(1) solved in blocks by matrix products is the recursion u_t = rho_u u_t-1 + e_t:
    with no count noise (huge means) log(y* / mu) + s2/2 recovers u, whose lag-1 and lag-15
    autocorrelations and variance are those of the generator, on a series length (T = 37, no
    divisor between 6 and 32) solved as one block and one (T = 180) solved in blocks of 15."""
    for T in (37, 180):
        mu = np.full((1, T), 1e12)
        sigma2, rho = np.array([0.04]), np.array([0.6])
        s2, rho_u, _, _ = inference._latent_generator(sigma2, rho)
        y = inference._simulate_latent_counts(mu, sigma2, rho, 20_000,
                                              np.random.default_rng(SEED))
        u = np.log(y[0] / mu) + s2 / 2
        assert abs(u.var() - s2[0]) < 0.03 * s2[0]
        for lag in (1, 15):
            corr = (u[:, lag:] * u[:, :-lag]).mean() / u.var()
            assert abs(corr - rho_u[0] ** lag) < 0.01, (T, lag, corr)


def test_timings_are_reported():
    """calibration_table carries its own timings; time_ar1_bootstrap times a real-size fit and
    the Monte Carlo per series (the figures `care-trends bench` shows)."""
    table = calibration.calibration_table(cells=[calibration.Cell("monthly", 60, 12, 0.5)],
                                          methods=["ar1_bootstrap", "ols"], n_sim=20,
                                          n_boot=39, n_bias=19)
    timings = table.attrs["timings"]
    assert set(timings) == {"monthly/ar1_bootstrap", "monthly/ols"}
    # two declared models; null and effect series for log-link methods, null only for ols
    assert timings["monthly/ar1_bootstrap"]["n_series"] == 2 * 2 * 20
    assert timings["monthly/ols"]["n_series"] == 2 * 20
    assert 0 < timings["monthly/ar1_bootstrap"]["seconds"] <= table.attrs["seconds"]
    bench = calibration.time_ar1_bootstrap(n=60, n_post=12, n_fits=1, n_sim=20, repeats=1)
    assert bench["n_boot_fit"] == inference.N_BOOT and bench["n_boot_calibration"] == 399
    for key in ("seconds_per_fit", "cpu_seconds_per_fit", "seconds_per_series",
                "cpu_seconds_per_series"):
        assert 0 < bench[key] < 60, key
    assert bench["projected_seconds_2000_sims"] == 4000 * bench["seconds_per_series"]


if __name__ == "__main__" and "--write" in sys.argv:
    np.savez_compressed(REFERENCE, **compute())
    print(f"wrote {REFERENCE}")
