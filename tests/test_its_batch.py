"""fit_many (one vectorised call) gives the per-series estimates of statsmodels / fit_its."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from helpers.core.errors import CareTrendsError
from helpers.its import design_columns
from helpers.its_batch import fit_many

EVENT = 2021


def simulated_panel(n_la: int = 12, seed: int = 20240301) -> pd.DataFrame:
    """Overdispersed counts for a few LAs x 3 measures, 2010-2025, with some suppressed counts."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_la):
        pop = rng.uniform(2e4, 3e5)
        base, trend, jump = rng.uniform(-6.5, -5.0), rng.normal(0.03, 0.02), rng.normal(0.1, 0.1)
        for measure in ("starts", "cla_31_march", "ceased"):
            for year in range(2010, 2026):
                exposure = pop * (1 + 0.01 * (year - 2010))
                mu = exposure * np.exp(base + trend * (year - 2010) + jump * (year >= EVENT))
                count = rng.negative_binomial(15, 15 / (15 + mu))
                rows.append({"la_code": str(800 + i), "measure": measure, "year": year,
                             "count": float(count), "population": exposure})
    panel = pd.DataFrame(rows)
    panel.loc[panel.sample(8, random_state=1).index, "count"] = np.nan  # suppressed
    return panel


@pytest.fixture(scope="module")
def panel():
    return simulated_panel()


def glm_one(series: pd.DataFrame, effects=("level", "slope"), scale="X2"):
    series = series.dropna(subset=["count"])
    X = design_columns(series["year"].to_numpy(), {"ev": EVENT}, effects)
    fit = sm.GLM(series["count"].to_numpy(), X.to_numpy(), family=sm.families.Poisson(),
                 offset=np.log(series["population"].to_numpy())).fit(scale=scale, tol=1e-12)
    return X.columns, fit


def test_fit_many_equals_statsmodels_glm_per_series(panel):
    res = fit_many(panel, interventions={"ev": EVENT})
    assert res.diagnostics["converged"].all()
    assert len(res.diagnostics) == 12 * 3
    for (la, measure), series in panel.groupby(["la_code", "measure"]):
        names, fit = glm_one(series)
        ci = np.exp(fit.conf_int())  # normal intervals; compare t ones below via bse
        mine = res.coefficients.query("la_code == @la and measure == @measure").iloc[0]
        for j, name in enumerate(names):
            if ":" not in name:
                continue
            assert mine[name] == pytest.approx(fit.params[j], abs=1e-8)
            assert mine[f"se:{name}"] == pytest.approx(fit.bse[j], abs=1e-8)
        diag = res.diagnostics.query("la_code == @la and measure == @measure").iloc[0]
        assert diag["dispersion"] == pytest.approx(fit.scale, rel=1e-8)
        assert diag["n_obs"] == fit.nobs
        assert diag["deviance"] == pytest.approx(fit.deviance, rel=1e-8)
        assert ci.shape[0] == len(names)


def test_intervals_are_t_on_residual_df(panel):
    res = fit_many(panel, interventions={"ev": EVENT})
    la, measure = "803", "starts"
    series = panel.query("la_code == @la and measure == @measure")
    names, fit = glm_one(series)
    fit_t = sm.GLM(fit.model.endog, fit.model.exog, family=sm.families.Poisson(),
                   offset=fit.model.offset).fit(scale="X2", use_t=True, tol=1e-12)
    ci = np.exp(fit_t.conf_int())
    table = res.for_series(la_code=la, measure=measure).set_index("effect")
    j = list(names).index("ev:level")
    assert table.loc["level", "estimate"] == pytest.approx(np.exp(fit_t.params[j]), abs=1e-8)
    assert table.loc["level", "ci_low"] == pytest.approx(ci[j, 0], abs=1e-8)
    assert table.loc["level", "ci_high"] == pytest.approx(ci[j, 1], abs=1e-8)
    assert table.loc["level", "p_value"] == pytest.approx(fit_t.pvalues[j], abs=1e-8)
    assert set(table["scale"]) == {"ratio"}


def test_fit_many_equals_fit_its_one_by_one(panel):
    its = pytest.importorskip("helpers.its")
    if not hasattr(its, "fit_its"):
        pytest.skip("helpers.its.fit_its not available yet")
    res = fit_many(panel, interventions={"ev": EVENT})
    for (la, measure), series in list(panel.groupby(["la_code", "measure"]))[:9]:
        one = its.fit_its(series.dropna(subset=["count"]).reset_index(drop=True), outcome="count",
                          time="year", interventions={"ev": EVENT}, effects=("level", "slope"),
                          family="quasipoisson", offset="population", harmonics=0, season=None)
        mine = res.for_series(la_code=la, measure=measure)
        theirs = one.effects.sort_values(["intervention", "effect"]).reset_index(drop=True)
        mine = mine.sort_values(["intervention", "effect"]).reset_index(drop=True)
        for col in ("estimate", "ci_low", "ci_high", "p_value"):
            np.testing.assert_allclose(mine[col], theirs[col], atol=1e-8, rtol=0)


def test_poisson_family_and_level_only(panel):
    res = fit_many(panel, interventions={"ev": EVENT}, effects=("level",), family="poisson")
    assert set(res.effects["effect"]) == {"level"}
    assert (res.diagnostics["dispersion"] == 1).all()
    series = panel.query("la_code == '805' and measure == 'ceased'")
    names, fit = glm_one(series, effects=("level",), scale=1.0)
    est = res.for_series(la_code="805", measure="ceased")["estimate"].iloc[0]
    assert est == pytest.approx(np.exp(fit.params[list(names).index("ev:level")]), abs=1e-8)


def test_unestimable_series_is_flagged_not_fatal(panel):
    broken = panel.copy()
    # No data after the event for one series: level/slope cannot be estimated.
    broken.loc[(broken["la_code"] == "801") & (broken["measure"] == "starts")
               & (broken["year"] >= EVENT), "count"] = np.nan
    res = fit_many(broken, interventions={"ev": EVENT})
    diag = res.diagnostics.set_index(["la_code", "measure"])
    assert not diag.loc[("801", "starts"), "converged"]
    assert diag["converged"].sum() == len(diag) - 1
    assert res.for_series(la_code="801", measure="starts")["estimate"].isna().all()


def test_monthly_harmonics_match_statsmodels():
    rng = np.random.default_rng(7)
    t = np.arange(60, 180)
    rows = []
    for la in ("a", "b", "c"):
        mu = 40 * np.exp(0.002 * t + 0.2 * np.sin(2 * np.pi * t / 12) - 0.15 * (t >= 150))
        rows += [{"la_code": la, "measure": "starts", "t": ti, "count": float(c),
                  "population": 1.0} for ti, c in zip(t, rng.poisson(mu), strict=True)]
    panel = pd.DataFrame(rows)
    res = fit_many(panel, interventions={"fm": 150}, time="t", harmonics=2, period=12)
    X = design_columns(t, {"fm": 150}, ("level", "slope"), harmonics=2, period=12,
                       season_values=np.mod(t, 12))
    y = panel.query("la_code == 'b'")["count"].to_numpy()
    fit = sm.GLM(y, X.to_numpy(), family=sm.families.Poisson()).fit(scale="X2", tol=1e-12)
    got = res.coefficients.query("la_code == 'b'").iloc[0]
    for name in ("fm:level", "fm:slope", "sin1", "cos2"):
        assert got[name] == pytest.approx(fit.params[list(X.columns).index(name)], abs=1e-8)


def test_bad_family_and_columns_are_user_errors(panel):
    with pytest.raises(CareTrendsError, match="fit_its"):
        fit_many(panel, interventions={"ev": EVENT}, family="negbin")
    with pytest.raises(CareTrendsError, match="no column"):
        fit_many(panel.drop(columns="population"), interventions={"ev": EVENT})
    with pytest.raises(CareTrendsError, match="level"):
        fit_many(panel, interventions={"ev": EVENT}, effects=("jump",))


def test_monthly_with_season_column_equals_fit_its_and_wrapper():
    its = pytest.importorskip("helpers.its")
    rng = np.random.default_rng(11)
    t = np.arange(100, 190)
    rows = []
    for la in ("a", "b"):
        mu = 30 * np.exp(0.003 * t + 0.25 * np.cos(2 * np.pi * t / 12) - 0.2 * (t >= 170))
        rows += [{"la_code": la, "measure": "starts", "t": ti, "month": ti % 12 + 1,
                  "count": float(c), "population": 5e4} for ti, c in zip(t, rng.poisson(mu),
                                                                          strict=True)]
    panel = pd.DataFrame(rows)
    res = its.fit_many(panel, interventions={"fm": 170}, time="t", harmonics=2, period=12,
                       season="month", phase_in={"fm": 3})
    one = its.fit_its(panel[panel["la_code"] == "b"].reset_index(drop=True), outcome="count",
                      time="t", interventions={"fm": 170}, harmonics=2, period=12, season="month",
                      phase_in={"fm": 3}, family="quasipoisson")  # fit_many's family
    mine = res.for_series(la_code="b", measure="starts").sort_values("effect")
    theirs = one.effects.sort_values("effect")
    for col in ("estimate", "ci_low", "ci_high", "p_value"):
        np.testing.assert_allclose(mine[col].to_numpy(), theirs[col].to_numpy(), atol=1e-8, rtol=0)


# ------------------------------------------------------------- the fast paths change no number

def test_series_order_keys_and_rows_as_a_groupby_gives_them(panel):
    """Series come out in groupby(keys, sort=True) order with the keys' values and text dtype;
    rows without a key value (national totals) and measures not asked for are left out."""
    shuffled = panel.sample(frac=1.0, random_state=3).reset_index(drop=True)
    national = shuffled.head(16).assign(la_code=pd.NA, year=range(2010, 2026))
    data = pd.concat([shuffled, national], ignore_index=True)
    data["la_code"] = data["la_code"].astype("string")  # the panel's own dtype (pd.NA)
    res = fit_many(data, measures=["starts", "ceased"], interventions={"ev": EVENT})
    expected = (panel[panel["measure"].isin(["starts", "ceased"])]
                .groupby(["la_code", "measure"], sort=True).size().reset_index())[["la_code",
                                                                                    "measure"]]
    got = res.diagnostics[["la_code", "measure"]]
    assert got.to_dict("list") == expected.to_dict("list")
    for frame in (res.effects, res.coefficients, res.diagnostics, res.fitted):
        assert str(frame["la_code"].dtype) == "str" and str(frame["measure"].dtype) == "str"
    assert str(res.effects["effect"].dtype) == "str" and set(res.effects["scale"]) == {"ratio"}
    one = fit_many(panel, measures=["ceased"], interventions={"ev": EVENT}, keys=("la_code",))
    assert list(one.diagnostics.columns[:1]) == ["la_code"] and len(one.diagnostics) == 12
    with pytest.raises(CareTrendsError, match="more than one row"):
        fit_many(panel, interventions={"ev": EVENT}, keys=("la_code",))


def test_irls_per_series_designs_and_blocked_products_equal_the_shared_design():
    """irls_poisson with one design for all series (matrix products in row blocks, only the
    still-active series iterated) equals the same fit with a design per series and
    statsmodels, to 1e-8; degenerate series fail alike."""
    from helpers.models import batch

    rng = np.random.default_rng(7)
    S, T = 260, 60
    t = np.arange(T, dtype=float)
    X = np.column_stack([np.ones(T), t / T, t >= 40, np.maximum(0, t - 40) / T, np.sin(t / 3)])
    y = rng.poisson(np.exp(3 + 0.3 * t / T + rng.normal(0, 0.1, (S, 1))), (S, T)).astype(float)
    y[0] = 0.0  # all zeros: no MLE
    mask = np.ones((S, T), dtype=bool)
    mask[1, 40:] = False  # nothing after the event: not estimable
    mask[2, ::7] = False  # a few suppressed points
    offset = np.where(mask, rng.normal(0, 0.05, (S, T)), 0.0)
    old_block = batch._SINGLE_THREAD_PRODUCT
    try:
        batch._SINGLE_THREAD_PRODUCT = 50 * T  # force many row blocks
        shared = batch.irls_poisson(X, y, offset, mask)
    finally:
        batch._SINGLE_THREAD_PRODUCT = old_block
    per_series = batch.irls_poisson(np.broadcast_to(X, (S, T, X.shape[1])).copy(), y, offset, mask)
    for a, b in zip(shared, per_series):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert list(shared[4][:3]) == [False, False, True] and shared[4][3:].all()
    for s in (2, 3, 100):
        keep = mask[s]
        fit = sm.GLM(y[s, keep], X[keep], family=sm.families.Poisson(),
                     offset=offset[s, keep]).fit(tol=1e-12)
        np.testing.assert_allclose(shared[0][s], fit.params, atol=1e-8, rtol=0)
        np.testing.assert_allclose(np.sqrt(np.diag(shared[1][s])), fit.bse, atol=1e-8, rtol=0)
