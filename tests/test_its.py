"""helpers.its: each family against an independent computation, the impact model, refusals."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from helpers import its
from helpers.core.errors import CareTrendsError
from helpers.core.records import COUNTERFACTUAL_COLUMNS, EFFECT_COLUMNS, EffectResult
from helpers.models import design
from helpers.present import its as present_its

YEARS = np.arange(2010, 2026)
# noise-free expected counts fit exactly, which statsmodels flags; harmless here
exact_fit = pytest.mark.filterwarnings(
    "ignore::statsmodels.tools.sm_exceptions.PerfectSeparationWarning")


def annual_counts(seed=1, level=-0.3, slope=0.0, start=2021, overdispersion=None):
    """16 reporting years of Poisson (or gamma-Poisson) starts with a known change at `start`."""
    rng = np.random.default_rng(seed)
    pop = np.linspace(52000, 56000, len(YEARS))
    post = YEARS >= start
    eta = -5.5 + 0.05 * (YEARS - 2010) + level * post + slope * post * (YEARS - start)
    mu = pop * np.exp(eta)
    if overdispersion:
        mu = rng.gamma(1 / overdispersion, mu * overdispersion)
    return pd.DataFrame({"year": YEARS, "starts": rng.poisson(mu).astype(float),
                         "population": pop})


def glm_design(df, start, effects=("level", "slope")):
    t = df["year"].to_numpy(float)
    cols = {"const": np.ones_like(t), "trend": t - t.min()}
    if "level" in effects:
        cols["level"] = (t >= start).astype(float)
    if "slope" in effects:
        cols["slope"] = np.where(t >= start, t - start, 0.0)
    return pd.DataFrame(cols)


# --- the public contract ------------------------------------------------------------------------
def test_contract_columns_and_types():
    df = annual_counts()
    res = its.fit_its(df, outcome="starts", time="year", interventions={"fm": 2021},
                      effects=("level", "slope"), family="quasipoisson", offset="population")
    assert isinstance(res, its.ITSResult) and isinstance(res, EffectResult)
    assert list(res.effects.columns[: len(EFFECT_COLUMNS)]) == EFFECT_COLUMNS
    assert list(res.counterfactual.columns[: len(COUNTERFACTUAL_COLUMNS)]) == COUNTERFACTUAL_COLUMNS
    assert res.effects[["intervention", "effect"]].values.tolist() == [["fm", "level"],
                                                                        ["fm", "slope"]]
    assert set(res.effects["scale"]) == {"ratio"}
    assert isinstance(present_its.summary(res), str)
    records = res.to_records(analysis="x", notebook="nb", la="Stoke-on-Trent")
    assert records[0]["design"] == "its" and records[0]["outcome"] == "starts"
    # the DESIGN.md call with time="t" works on an annual frame carrying 'year'
    res_t = its.fit_its(df, outcome="starts", interventions={"fm": 2021})
    assert np.allclose(res_t.effects["estimate"], res.effects["estimate"])
    ols = its.fit_its(df, time="year", interventions={"fm": 2021}, family="ols")
    assert set(ols.effects["scale"]) == {"difference"}


# --- each family against statsmodels fitted directly ------------------------------------------
@pytest.mark.parametrize("family", ["poisson", "quasipoisson"])
def test_poisson_families_match_glm(family):
    df = annual_counts(seed=3)
    res = its.fit_its(df, time="year", interventions={"fm": 2021}, family=family)
    X = glm_design(df, 2021)
    glm = sm.GLM(df["starts"], X, family=sm.families.Poisson(),
                 offset=np.log(df["population"])).fit(
        scale="X2" if family == "quasipoisson" else None)
    b, se = glm.params["level"], glm.bse["level"]
    q = stats.t.ppf(0.975, 16 - 4) if family == "quasipoisson" else stats.norm.ppf(0.975)
    row = res.effects.set_index("effect").loc["level"]
    assert row["estimate"] == pytest.approx(math.exp(b), rel=1e-8)
    assert row["ci_low"] == pytest.approx(math.exp(b - q * se), rel=1e-8)
    assert row["ci_high"] == pytest.approx(math.exp(b + q * se), rel=1e-8)
    # dispersion is Pearson chi2 / residual df, computed by hand
    mu = glm.fittedvalues.to_numpy()
    pearson = np.sum((df["starts"] - mu) ** 2 / mu) / (16 - 4)
    assert res.diagnostics["dispersion"] == pytest.approx(pearson, rel=1e-8)
    assert res.df_resid == 12


def test_negbin_matches_discrete_negative_binomial():
    df = annual_counts(seed=5, overdispersion=0.05)
    res = its.fit_its(df, time="year", interventions={"fm": 2021}, family="negbin")
    X = glm_design(df, 2021)
    nb = sm.NegativeBinomial(df["starts"], X, offset=np.log(df["population"])).fit(
        disp=0, maxiter=500)
    assert res.alpha == pytest.approx(nb.params["alpha"], rel=2e-3)
    assert math.log(res.effects["estimate"].iloc[0]) == pytest.approx(nb.params["level"],
                                                                      abs=1e-4)
    assert res.alpha > 0.01  # the gamma mixing is detected


def test_ols_hac_matches_hand_newey_west_and_differs_from_plain():
    rng = np.random.default_rng(11)
    n = 40
    t = np.arange(n, dtype=float)
    e = np.zeros(n)
    for i in range(1, n):  # strongly autocorrelated errors
        e[i] = 0.7 * e[i - 1] + rng.normal(0, 1)
    y = 10 + 0.3 * t + 4 * (t >= 25) + e
    df = pd.DataFrame({"t": t, "rate": y})
    res = its.fit_its(df, outcome="rate", interventions={"x": 25}, effects=("level",),
                      family="ols", frequency="annual")
    lags = its.newey_west_lags(n)
    assert lags == math.floor(4 * (n / 100) ** (2 / 9)) == res.hac_lags == 3
    # Newey-West by hand: Bartlett-weighted sandwich with the n/(n-k) small-sample correction
    X = np.column_stack([np.ones(n), t, (t >= 25).astype(float)])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ beta
    S = (X * u[:, None]).T @ (X * u[:, None])
    for j in range(1, lags + 1):
        w = 1 - j / (lags + 1)
        G = (X[j:] * u[j:, None]).T @ (X[:-j] * u[:-j, None])
        S += w * (G + G.T)
    bread = np.linalg.inv(X.T @ X)
    cov = bread @ S @ bread * n / (n - 3)
    se_hac = math.sqrt(cov[2, 2])
    row = res.effects.iloc[0]
    assert row["estimate"] == pytest.approx(beta[2], rel=1e-9)
    q = stats.t.ppf(0.975, n - 3)
    assert row["ci_high"] - row["estimate"] == pytest.approx(q * se_hac, rel=1e-8)
    se_plain = sm.OLS(y, X).fit().bse[2]
    assert abs(se_hac - se_plain) / se_plain > 0.1  # HAC is not the plain error here
    # a user-given lag is honoured
    res5 = its.fit_its(df, outcome="rate", interventions={"x": 25}, effects=("level",),
                       family="ols", frequency="annual", hac_lags=5)
    assert res5.hac_lags == 5 and res5.effects["ci_high"].iloc[0] != row["ci_high"]


def test_newey_west_lag_rule():
    assert [its.newey_west_lags(n) for n in (12, 16, 100, 180)] == [2, 2, 4, 4]


def test_ols_recovers_hand_derived_values_exactly():
    t = np.arange(2010, 2022, dtype=float)
    y = 10 + 2 * (t - 2010) + 5 * (t >= 2017) - 1.5 * np.where(t >= 2017, t - 2017, 0)
    y = y + np.tile([0.1, -0.1], 6)  # tiny alternating noise keeps the errors non-zero
    res = its.fit_its(pd.DataFrame({"year": t, "y": y}), outcome="y", time="year",
                      interventions={"e": 2017}, family="ols")
    est = res.effects.set_index("effect")["estimate"]
    assert est["level"] == pytest.approx(5, abs=0.15)
    assert est["slope"] == pytest.approx(-1.5, abs=0.05)


def test_ar1_matches_glsar():
    rng = np.random.default_rng(7)
    n = 60
    t = np.arange(n, dtype=float)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = 0.6 * e[i - 1] + rng.normal(0, 1)
    y = 50 + 0.2 * t - 5 * (t >= 40) + e
    df = pd.DataFrame({"t": t, "y": y, "month": (t % 12) + 1})
    res = its.fit_its(df, outcome="y", interventions={"x": 40}, effects=("level",),
                      family="ar1", harmonics=0)
    X = np.column_stack([np.ones(n), t, (t >= 40).astype(float)])
    model = sm.GLSAR(y, X, rho=1)
    direct = model.iterative_fit(maxiter=50)
    assert res.effects["estimate"].iloc[0] == pytest.approx(direct.params[2], rel=1e-8)
    assert res.rho == pytest.approx(model.rho[0], rel=1e-8)
    assert 0.3 < res.rho < 0.9
    ci = direct.conf_int()[2]
    assert res.effects["ci_low"].iloc[0] == pytest.approx(ci[0], rel=1e-8)


def test_sarimax_matches_direct_sarimax():
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    df = annual_counts(seed=2, start=2018)
    res = its.fit_its(df, time="year", interventions={"fm": 2018}, effects=("level",),
                      family="sarimax")
    X = glm_design(df, 2018, ("level",)).to_numpy()
    direct = SARIMAX(df["starts"].to_numpy(), exog=X, order=(1, 0, 0), trend="n").fit(
        disp=False, maxiter=500, cov_type="oim")
    assert res.effects["estimate"].iloc[0] == pytest.approx(direct.params[2], rel=1e-4)
    assert res.effects["ci_low"].iloc[0] == pytest.approx(direct.conf_int()[2, 0], rel=1e-3)


# --- the impact model --------------------------------------------------------------------------
@exact_fit
def test_multiple_interruptions_recovered():
    # noise-free expected counts: a Poisson GLM recovers the coefficients exactly
    t = np.arange(2008, 2026, dtype=float)
    pop = np.full(len(t), 1e5)
    eta = (-6 + 0.04 * (t - 2008) + 0.2 * (t >= 2014) + 0.05 * np.where(t >= 2014, t - 2014, 0)
           - 0.1 * (t >= 2019) - 0.08 * np.where(t >= 2019, t - 2019, 0) - 0.25 * (t >= 2023))
    df = pd.DataFrame({"year": t, "starts": pop * np.exp(eta), "population": pop})
    res = its.fit_its(df, time="year", family="poisson",
                      interventions={"a": 2014, "b": 2019, "c": 2023},
                      effects={"a": ("level", "slope"), "b": "level+slope", "c": ("level",)})
    est = res.effects.set_index(["intervention", "effect"])["estimate"]
    expected = {("a", "level"): 0.2, ("a", "slope"): 0.05, ("b", "level"): -0.1,
                ("b", "slope"): -0.08, ("c", "level"): -0.25}
    for key, value in expected.items():
        assert math.log(est[key]) == pytest.approx(value, abs=1e-7)
    # counterfactual removes only the last event: its ratio to the fit is exp(0.25) after 2023
    cf = res.counterfactual.set_index("time")
    assert cf.loc[2024, "counterfactual"] / cf.loc[2024, "fitted"] == pytest.approx(
        math.exp(0.25), rel=1e-6)
    assert cf.loc[2020, "counterfactual"] == pytest.approx(cf.loc[2020, "fitted"], rel=1e-10)
    # a chosen event: without 'b', the counterfactual differs from 2019 on
    res_b = its.fit_its(df, time="year", family="poisson",
                        interventions={"a": 2014, "b": 2019, "c": 2023},
                        effects={"a": ("level", "slope"), "b": "level+slope", "c": ("level",)},
                        counterfactual_for="b")
    cfb = res_b.counterfactual.set_index("time")
    assert cfb.loc[2021, "counterfactual"] / cfb.loc[2021, "fitted"] == pytest.approx(
        math.exp(0.1 + 0.08 * 2), rel=1e-6)
    assert res_b.impact["time"].min() == 2019


@exact_fit
def test_phase_in_and_lag_terms():
    t = np.arange(2010, 2026, dtype=float)
    ramp = np.clip((t - 2020 + 1) / 3, 0, 1)
    ramped = design.level_term(t, design.Interruption("x", 2020, ("level",), 3, 0, "x"))
    assert ramped[9:14].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    lagged = design.level_term(t, design.Interruption("x", 2020, ("level",), 0, 2, "x"))
    assert lagged[10:13].tolist() == [0, 0, 1]
    pop = np.full(len(t), 1e5)
    df = pd.DataFrame({"year": t, "starts": pop * np.exp(-6 + 0.03 * (t - 2010) - 0.3 * ramp),
                       "population": pop})
    res = its.fit_its(df, time="year", interventions={"x": 2020}, effects=("level",),
                      phase_in={"x": 3}, family="poisson")
    assert math.log(res.effects["estimate"].iloc[0]) == pytest.approx(-0.3, abs=1e-7)
    assert "phased in over 3 years" in present_its.summary(res)
    # the same data read with a step model underestimate the full effect
    step = its.fit_its(df, time="year", interventions={"x": 2020}, effects=("level",),
                       family="poisson")
    assert math.log(step.effects["estimate"].iloc[0]) > -0.3


@exact_fit
def test_seasonality_recovers_known_sinusoid():
    t = np.arange(0, 120, dtype=float)  # month index, January 2010 = 0
    month = t % 12 + 1
    pop = np.full(len(t), 2e5)
    season = 0.25 * np.sin(2 * np.pi * month / 12) - 0.1 * np.cos(2 * np.pi * month / 12)
    eta = -7 + 0.002 * t + season - 0.15 * (t >= 90)
    df = pd.DataFrame({"t": t, "month": month, "starts": pop * np.exp(eta), "population": pop})
    res = its.fit_its(df, interventions={"fm": 90}, effects=("level",), family="poisson",
                      harmonics=2, period=12, season="month")
    assert res.frequency == "monthly"
    assert res.params["sin1"] == pytest.approx(0.25, abs=1e-7)
    assert res.params["cos1"] == pytest.approx(-0.1, abs=1e-7)
    assert res.params["sin2"] == pytest.approx(0, abs=1e-7)
    assert math.log(res.effects["estimate"].iloc[0]) == pytest.approx(-0.15, abs=1e-7)
    # without a season column the month of year comes from the month index
    no_col = its.fit_its(df.drop(columns="month"), interventions={"fm": 90}, effects=("level",),
                         family="poisson", frequency="monthly")
    assert no_col.effects["estimate"].iloc[0] == pytest.approx(res.effects["estimate"].iloc[0])
    # annual data get no seasonal terms
    annual = its.fit_its(annual_counts(), time="year", interventions={"fm": 2021})
    assert not any(c.startswith(("sin", "cos")) for c in annual.design_matrix.columns)


def test_impact_per_period_and_cumulative():
    df = annual_counts(seed=4, start=2022)
    res = its.fit_its(df, time="year", interventions={"fm": 2022}, effects=("level",),
                      family="quasipoisson")
    imp = res.impact
    assert imp["time"].tolist() == [2022, 2023, 2024, 2025]
    rr = res.effects["estimate"].iloc[0]
    assert np.allclose(imp["relative_change"], rr - 1)
    assert np.allclose(imp["averted"], imp["counterfactual"] - imp["fitted"])
    assert np.allclose(imp["cumulative_averted"], np.cumsum(imp["averted"]))
    assert (imp["averted_low"] <= imp["averted"]).all()
    assert (imp["averted"] <= imp["averted_high"]).all()
    # the simulated relative interval agrees with the analytic ratio interval
    lo, hi = res.effects["ci_low"].iloc[0] - 1, res.effects["ci_high"].iloc[0] - 1
    assert imp["relative_change_low"].iloc[0] == pytest.approx(lo, abs=0.02)
    assert imp["relative_change_high"].iloc[0] == pytest.approx(hi, abs=0.02)
    # the method sentence (impact_method) went with the prose; the result keeps its numbers
    assert (res.impact_seed, res.impact_draws) == (its.IMPACT_SEED, its.IMPACT_DRAWS)
    again = its.fit_its(df, time="year", interventions={"fm": 2022}, effects=("level",),
                        family="quasipoisson")
    pd.testing.assert_frame_equal(imp, again.impact)
    assert "In the 4 years after fm" in present_its.summary(res)


# --- diagnostics, warnings and the reading ----------------------------------------------------
def test_diagnostics_and_warnings():
    df = annual_counts(seed=8, start=2016)
    res = its.fit_its(df, time="year", interventions={"early": 2016, "late": 2024},
                      effects=("level", "slope"))
    d = res.diagnostics
    for key in ("durbin_watson", "breusch_godfrey", "ljung_box", "acf", "pacf", "dispersion",
                "points"):
        assert key in d
    # warnings are words, so they moved from diagnostics to helpers.present.its.warnings
    assert isinstance(present_its.warnings(res), list)
    assert d["points"].set_index("intervention").loc["early", "before"] == 6
    assert d["points"].set_index("intervention").loc["late", "after"] == 2
    text = " ".join(present_its.warnings(res))
    assert "Only 6 years before early" in text
    assert "Only 2 years after late" in text
    assert "parameters from 16 data points" in text
    assert 0 < d["durbin_watson"] < 4 and 0 <= d["breusch_godfrey"]["p_value"] <= 1


def test_single_post_year_caveat_and_plot():
    df = annual_counts(seed=9, start=2025)
    res = its.fit_its(df, time="year", interventions={"family_matters": 2025},
                      effects=("level",), titles={"family_matters": "Family Matters"})
    text = present_its.summary(res)
    assert "In the year after Family Matters (2024-25), starts were" in text
    assert "single post-event year cannot separate a programme effect from a one-year shock" in text
    assert "Declared impact model: Family Matters: level change from 2024-25." in text
    ax = present_its.plot(res)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    matplotlib.pyplot.close(ax.figure)


def test_missing_counts_are_left_out_with_a_note():
    df = annual_counts()
    df.loc[2, "starts"] = np.nan
    res = its.fit_its(df, time="year", interventions={"fm": 2021})
    assert res.diagnostics["n"] == 15
    assert any("left out (2012)" in w for w in present_its.warnings(res))


# --- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(interventions={"fm": 2010}), "no pre-event period"),
    (dict(interventions={"fm": 2027}), "data end"),
    (dict(interventions={"fm": 170}), "same units"),
    (dict(interventions={"fm": 2025}, lag={"fm": 2}), "data end"),
    (dict(interventions={"fm": 2025}), "slope change needs at least 2 points"),
    (dict(interventions={"fm": 2021}, outcome="nope"), "not in the data"),
    (dict(interventions={"fm": 2021}, offset="pop"), "not in the data"),
    (dict(interventions={"fm": 2021}, family="logit"), "unknown family"),
    (dict(interventions={"fm": 2021}, effects=("jump",)), "'level', 'slope' or both"),
    (dict(interventions={"fm": 2021}, effects={"other": ("level",)}), "not among"),
    (dict(interventions={"fm": 2021, "x": 2018}, effects={"fm": ("level",)}), "no entry for"),
    (dict(interventions={"fm": 2021}, phase_in={"fn": 2}), "not among"),
    (dict(interventions={}), "no interventions"),
    (dict(interventions={"a": 2018, "b": 2018}), "cannot be estimated"),
    (dict(interventions={"fm": 2021}, counterfactual_for="zz"), "not one of"),
    (dict(interventions={"fm": 2021}, phase_in={"fm": -1}), "whole numbers"),
])
def test_refusals(kwargs, message):
    kwargs = {"time": "year", **kwargs}
    with pytest.raises(CareTrendsError, match=message):
        its.fit_its(annual_counts(), **kwargs)


def test_refusals_on_data():
    df = annual_counts()
    bad = df.assign(population=df["population"].where(df["year"] != 2015, 0))
    with pytest.raises(CareTrendsError, match="zero or negative"):
        its.fit_its(bad, time="year", interventions={"fm": 2021})
    with pytest.raises(CareTrendsError, match="repeats"):
        its.fit_its(pd.concat([df, df]), time="year", interventions={"fm": 2021})
    tiny = df.head(4)
    with pytest.raises(CareTrendsError, match="cannot estimate"):
        its.fit_its(tiny, time="year", interventions={"fm": 2012})
    with pytest.raises(CareTrendsError, match="negative"):
        its.fit_its(df.assign(starts=-df["starts"]), time="year", interventions={"fm": 2021})
    with pytest.raises(CareTrendsError):
        its.fit_its(df.to_numpy(), interventions={"fm": 2021})


# --- events -> arguments -----------------------------------------------------------------------
EVENTS = [
    {"name": "inadequate_2019", "title": "Ofsted judged services inadequate",
     "date": "2019-02-04", "effects": ["level", "slope"]},
    {"name": "strategies_2020", "title": "Room to Grow, Early Help and Permanence strategies",
     "date": "2020-10-01", "effects": ["level", "slope"]},
    {"name": "family_matters", "title": "Family Matters launched", "date": "2024-03-01",
     "effects": ["level"]},
]


def test_interventions_from_events_annual_and_monthly():
    annual = its.interventions_from_events(EVENTS, frequency="annual")
    # October 2020 lies in reporting year 2021 (April 2020 - March 2021), so 2022 is first full
    assert annual["interventions"] == {"inadequate_2019": 2020, "strategies_2020": 2022,
                                       "family_matters": 2025}
    assert annual["effects"]["family_matters"] == ("level",)
    assert annual["titles"]["family_matters"] == "Family Matters launched"
    monthly = its.interventions_from_events(EVENTS, frequency="monthly")
    assert monthly["interventions"] == {"inadequate_2019": 110, "strategies_2020": 129,
                                        "family_matters": 170}
    # known only to the month: the first month wholly after it
    fuzzy = its.interventions_from_events(
        [{"name": "fm", "date": "2024-03-01", "precision": "month", "phase_in": 6}], "monthly")
    assert fuzzy["interventions"] == {"fm": 171} and fuzzy["phase_in"] == {"fm": 6}
    assert fuzzy["effects"] == {"fm": ("level", "slope")}
    # events are validated by helpers.spec: ISO dates only, so a month is written as its 1st
    with pytest.raises(CareTrendsError, match="YYYY-MM-DD"):
        its.interventions_from_events([{"name": "fm", "date": "2024-03", "precision": "month"}])
    with pytest.raises(CareTrendsError, match="event 'x': date is missing"):
        its.interventions_from_events([{"name": "x"}])


def test_events_feed_fit_its():
    t = np.arange(2010, 2026, dtype=float)
    pop = np.full(len(t), 6e4)
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"year": t, "starts": rng.poisson(pop * np.exp(-6 + 0.05 * (t - 2010))),
                       "population": pop})
    res = its.fit_its(df, time="year", **its.interventions_from_events(EVENTS))
    assert res.effects["intervention"].tolist() == ["inadequate_2019", "inadequate_2019",
                                                    "strategies_2020", "strategies_2020",
                                                    "family_matters"]
    assert res.counterfactual_for == "family_matters"
    assert "Family Matters launched: level change from 2024-25" in present_its.summary(res)


@exact_fit
def test_monthly_frame_with_text_month_column_and_plot():
    # the shape helpers.ssda903 produces: month '2024-03' text, t month index, calendar_month
    t = np.arange(100, 181)
    months = [pd.Period("2010-01", freq="M") + int(i) for i in t]
    calendar = np.array([p.month for p in months], dtype=float)
    mu = 300 * np.exp(0.2 * np.sin(2 * np.pi * calendar / 12) - 0.2 * (t >= 170))
    df = pd.DataFrame({"month": [str(p) for p in months], "t": t, "calendar_month": calendar,
                       "starts": mu, "population": 6e4})
    text = its.fit_its(df, interventions={"fm": 170}, effects=("level",), family="poisson")
    numeric = its.fit_its(df, interventions={"fm": 170}, effects=("level",), family="poisson",
                          season="calendar_month")
    assert text.frequency == "monthly"
    assert text.params["sin1"] == pytest.approx(0.2, abs=1e-7)
    assert np.allclose(text.params, numeric.params)
    assert "In the 11 months after fm (Mar 2024 to Jan 2025)" in present_its.summary(text)
    ax = present_its.plot(text)
    assert ax.get_xlabel().startswith("Month")
    matplotlib.pyplot.close(ax.figure)
    with pytest.raises(CareTrendsError, match="month of year"):
        its.fit_its(df.assign(month="spring"), interventions={"fm": 170}, effects=("level",))


def test_annual_series_frame_shape():
    # helpers.data.annual_series: one measure in 'count'; outcome='starts' finds it
    df = annual_counts().rename(columns={"starts": "count"}).assign(measure="starts")
    res = its.fit_its(df, outcome="starts", interventions={"fm": 2021})
    assert res.outcome == "starts" and res.diagnostics["n"] == 16
    assert its.fit_its(df, outcome="count", interventions={"fm": 2021}).outcome == "starts"


def test_fit_many_is_the_batch_fit():
    # its.fit_many used to be a lazy wrapper (to dodge an import cycle); with the layered
    # package both stable paths re-export the one batch fit of helpers.models.batch.
    from helpers import its_batch
    from helpers.models import batch

    assert its.fit_many is its_batch.fit_many is batch.fit_many


def test_breusch_godfrey_and_durbin_watson_match_statsmodels():
    from statsmodels.stats.diagnostic import acorr_breusch_godfrey
    from statsmodels.stats.stattools import durbin_watson

    rng = np.random.default_rng(21)
    t = np.arange(30, dtype=float)
    y = 5 + 0.2 * t + 2 * (t >= 20) + np.cumsum(rng.normal(0, 0.5, 30)) * 0.5
    df = pd.DataFrame({"t": t, "y": y})
    res = its.fit_its(df, outcome="y", interventions={"x": 20}, effects=("level",),
                      family="ols", frequency="annual")
    X = np.column_stack([np.ones(30), t, (t >= 20).astype(float)])
    direct = sm.OLS(y, X).fit()
    lm, lm_p, f, f_p = acorr_breusch_godfrey(direct, nlags=1, result_object=False)
    bg = res.diagnostics["breusch_godfrey"]
    assert bg["lm"] == pytest.approx(lm, rel=1e-8)
    assert bg["lm_p_value"] == pytest.approx(lm_p, rel=1e-8)
    assert bg["f"] == pytest.approx(f, rel=1e-8)
    assert bg["p_value"] == pytest.approx(f_p, rel=1e-8)
    assert res.diagnostics["durbin_watson"] == pytest.approx(durbin_watson(direct.resid))


def test_stock_outcome_reads_latest_period_not_a_sum():
    df = annual_counts(seed=6, start=2022).rename(columns={"starts": "cla_31_march"})
    res = its.fit_its(df, outcome="cla_31_march", time="year", interventions={"x": 2022},
                      effects=("level",))
    last = res.impact.iloc[-1]
    text = present_its.summary(res)
    assert "In 2024-25, the last of 4 years after x, children looked after on 31 March" in text
    assert f"about {abs(last['averted']):,.0f} " in text


def test_interventions_from_reference_events_table():
    table = pd.DataFrame({"event_id": ["fm", "strategies", "vague"],
                          "date": pd.to_datetime(["2024-03-01", "2020-10-01", "2019-06-01"]),
                          "precision": ["approx", "month", "year"],
                          "title": ["Family Matters", "Strategies", "Something in 2019"]})
    spec = its.interventions_from_events(table)
    # approx: the date is the best estimate; year: the whole of 2019, so from 2020-21
    assert spec["interventions"] == {"fm": 2025, "strategies": 2022, "vague": 2021}
    with pytest.raises(CareTrendsError, match="precision"):
        its.interventions_from_events([{"name": "x", "date": "2020-01-01", "precision": "decade"}])


def test_plot_diagnostics():
    res = its.fit_its(annual_counts(), time="year", interventions={"fm": 2021})
    axes = present_its.plot_diagnostics(res)
    assert len(axes) == 3 and all(ax.get_title() and ax.get_xlabel() for ax in axes)
    matplotlib.pyplot.close(axes[0].figure)


@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10), shift=st.integers(-5, 5))
@settings(max_examples=15, deadline=None)
def test_invariances(seed, scale, shift):
    """Rate ratios ignore the population's units, and moving the calendar moves nothing else."""
    df = annual_counts(seed=seed)
    base = its.fit_its(df, time="year", interventions={"fm": 2021}, impact_draws=50)
    scaled = its.fit_its(df.assign(population=df["population"] * scale), time="year",
                         interventions={"fm": 2021}, impact_draws=50)
    moved = its.fit_its(df.assign(year=df["year"] + shift), time="year",
                        interventions={"fm": 2021 + shift}, impact_draws=50)
    for other in (scaled, moved):
        assert np.allclose(other.effects["estimate"], base.effects["estimate"], rtol=1e-6)
        assert np.allclose(other.counterfactual["counterfactual"],
                           base.counterfactual["counterfactual"], rtol=1e-6)
