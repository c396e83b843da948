"""helpers.sensitivity on simulated data: known breaks, known power, calibration, determinism,
and agreement of the batched Monte Carlo fits with helpers.its.fit_its."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from helpers import its, sensitivity
from helpers.checks import headline
from helpers.core import records as results
from helpers.core.errors import CareTrendsError
from helpers.present import checks as present_checks

EVENTS = [
    {"name": "inadequate_2019", "title": "Ofsted judged services inadequate",
     "date": "2019-02-04", "effects": ["level", "slope"]},
    {"name": "strategies_2020", "title": "Room to Grow, Early Help and Permanence strategies",
     "date": "2020-10-01", "effects": ["level", "slope"]},
    {"name": "family_matters", "title": "Family Matters launched", "date": "2024-03-01",
     "effects": ["level"]},
]


def annual_series(drop_2025: float = 0.6, seed: int = 1) -> pd.DataFrame:
    """2010-2025 annual starts: smooth log-linear rise with mild noise, a fall in 2025."""
    rng = np.random.default_rng(seed)
    years = np.arange(2010, 2026)
    population = np.linspace(52000, 62000, len(years)).round()
    mean = population * 0.004 * np.exp(0.03 * (years - 2010))
    mean = mean * np.where(years == 2025, drop_2025, 1.0)
    count = rng.poisson(mean).astype(float)
    return pd.DataFrame({"year": years, "count": count, "population": population,
                         "rate_per_10000": count / population * 10000})


def null_model(rho: float = 0.0, sigma: float = 0.0, n_pre: int = 12) -> sensitivity.PrePeriodModel:
    return sensitivity.PrePeriodModel(log_level=np.log(250.0), trend=0.03, dispersion=1.0,
                                      rho=rho, sigma=sigma, n_pre=n_pre, mean_count=250.0)


# ---------------------------------------------------------------------------------- breaks

def piecewise(seed=3, noise=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(16)
    y = np.where(t < 6, 10 + 0.5 * t, np.where(t < 11, 20 - 1.0 * (t - 6), 12 + 2.0 * (t - 11)))
    return pd.Series(y + rng.normal(0, noise, 16), index=range(2010, 2026))


def test_detect_breaks_finds_known_trend_breaks_at_their_labels():
    assert sensitivity.detect_breaks(piecewise(), max_breaks=3) == [2016, 2021]


def test_detect_breaks_supf_agrees_and_is_deterministic():
    first = sensitivity.detect_breaks(piecewise(), max_breaks=3, criterion="supf", n_sim=60, seed=5)
    again = sensitivity.detect_breaks(piecewise(), max_breaks=3, criterion="supf", n_sim=60, seed=5)
    assert first == again == [2016, 2021]


def test_detect_breaks_mean_shift_model_and_plain_labels():
    rng = np.random.default_rng(0)
    y = np.r_[np.full(60, 5.0), np.full(60, 8.0), np.full(60, 3.0)] + rng.normal(0, 0.5, 180)
    assert sensitivity.detect_breaks(y, max_breaks=4, model="mean") == [60, 120]
    labels = [f"m{i}" for i in range(180)]
    assert sensitivity.detect_breaks(y, max_breaks=4, model="mean", labels=labels) == ["m60", "m120"]


def test_detect_breaks_steady_trend_has_no_break_under_trend_model_but_mean_model_splits_it():
    rng = np.random.default_rng(11)
    y = pd.Series(5 + 0.7 * np.arange(16) + rng.normal(0, 0.3, 16), index=range(2010, 2026))
    assert sensitivity.detect_breaks(y, max_breaks=3, model="trend") == []
    assert len(sensitivity.detect_breaks(y, max_breaks=3, model="mean")) >= 1


def test_detect_breaks_result_table_and_errors():
    res = sensitivity.detect_breaks(piecewise(), max_breaks=3, return_result=True)
    assert res.n_breaks == 2 and res.positions == [6, 11]
    assert list(res.table["n_breaks"]) == [0, 1, 2, 3]
    assert res.fitted(piecewise().to_numpy()).shape == (16,)
    with pytest.raises(CareTrendsError, match="too few"):
        sensitivity.detect_breaks([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(CareTrendsError, match="missing"):
        sensitivity.detect_breaks([1.0, np.nan] * 8)
    with pytest.raises(CareTrendsError, match="criterion"):
        sensitivity.detect_breaks(piecewise(), criterion="aic")


def test_breaks_vs_events():
    table = sensitivity.breaks_vs_events([2016, 2021], {"a": 2020, "b": 2025})
    assert list(table["coincides"]) == [True, False]
    assert "a" in present_checks.breaks_reading([2016, 2021], table)


# ---------------------------------------------------------------------------------- power

def test_power_huge_effect_is_near_one_and_zero_effect_near_alpha():
    curve = sensitivity.power_curve(null_model(), 3, reductions=(0.0, 0.6), n_sim=400,
                                    method="quasipoisson", size_adjusted=False, seed=7)
    zero, huge = curve["power"].tolist()
    assert huge > 0.99
    assert 0.02 <= zero <= 0.09


def test_power_rises_with_effect_and_mde_interpolates():
    curve = sensitivity.power_curve(null_model(sigma=0.05), 2, n_sim=200, seed=3)
    assert curve["power"].iloc[-1] >= curve["power"].iloc[0]
    mde = sensitivity.minimum_detectable_effect(curve)
    assert 0 < mde < 0.6
    toy = pd.DataFrame({"reduction": [0.0, 0.1, 0.2], "power": [0.05, 0.6, 1.0]})
    assert sensitivity.minimum_detectable_effect(toy) == pytest.approx(0.15)
    assert np.isnan(sensitivity.minimum_detectable_effect(toy.assign(power=[0.05, 0.1, 0.2])))


def test_power_table_is_deterministic_with_a_seed_and_more_data_helps():
    model = null_model(rho=0.3, sigma=0.05, n_pre=10)
    kwargs = dict(n_sim=80, annual_post=(1, 3), monthly_post=(6, 36),
                  reductions=tuple(np.round(np.arange(0, 0.5, 0.05), 2)))
    a = sensitivity.power_table(model, seed=1, **kwargs)
    b = sensitivity.power_table(model, seed=1, **kwargs)
    c = sensitivity.power_table(model, seed=2, **kwargs)
    pd.testing.assert_frame_equal(a, b)
    assert not a.attrs["curves"].equals(c.attrs["curves"])
    monthly = a[a["frequency"] == "monthly"].set_index("n_post")["mde_percent"]
    assert monthly[36] < monthly[6]
    assert set(a.columns) >= {"frequency", "n_post", "months_after", "mde_percent", "n_sim"}


def test_months_to_detect_big_effect_quickly():
    months, table = sensitivity.months_to_detect(null_model(sigma=0.03), 0.5, horizons=(6, 12),
                                                 n_sim=100, seed=4)
    assert months == 6
    assert list(table["months_after"]) == [6, 12]


def test_fit_pre_period_recovers_trend_and_overdispersion():
    df = annual_series(drop_2025=1.0)
    model = sensitivity.fit_pre_period(df, before=2025)
    assert model.n_pre == 15
    assert model.trend == pytest.approx(0.03 + np.log(62000 / 52000) / 15 * 0, abs=0.02)
    assert model.dispersion >= 1.0 and model.sigma >= 0.0
    monthly = model.monthly(0.5)
    assert monthly.n_pre == 180 and monthly.trend == pytest.approx(model.trend / 12)
    with pytest.raises(CareTrendsError, match="at least 5"):
        sensitivity.fit_pre_period(df.head(4))


# ------------------------------------------------------------------ batched fits == fit_its

@pytest.mark.parametrize("family", ["poisson", "quasipoisson", "ols", "ar1"])
def test_batch_fit_matches_fit_its_on_one_replicate(family):
    model = null_model(rho=0.4, sigma=0.1).monthly(0.5)
    y = sensitivity.simulate_counts(model, 24, 2, n_pre=156, seed=9)[0]
    design = sensitivity.its_design(156, 24, slope=True)
    batch = sensitivity.batch_fit(family, design.to_numpy(), y)
    res = its.fit_its(pd.DataFrame({"t": np.arange(180), "y": y[0]}), outcome="y", time="t",
                      interventions={"event": 156}, effects=("level", "slope"), family=family,
                      offset=None, harmonics=0)
    for j, effect in ((2, "level"), (3, "slope")):
        row = res.effects[res.effects["effect"] == effect].iloc[0]
        to_scale = np.exp if family in ("poisson", "quasipoisson") else (lambda v: v)
        assert to_scale(batch["coef"][0, j]) == pytest.approx(row["estimate"], rel=1e-6)
        assert to_scale(batch["low"][0, j]) == pytest.approx(row["ci_low"], rel=1e-6)
        assert batch["p_value"][0, j] == pytest.approx(row["p_value"], rel=1e-5)


def test_batch_naive_ols_matches_statsmodels():
    y = sensitivity.simulate_counts(null_model(), 4, 1, n_pre=12, seed=2)[0]
    design = sensitivity.its_design(12, 4, slope=True).to_numpy()
    batch = sensitivity.batch_fit("naive_ols", design, y)
    ref = sm.OLS(y[0], design).fit()
    np.testing.assert_allclose(batch["coef"][0], ref.params, rtol=1e-8)
    np.testing.assert_allclose(batch["p_value"][0], ref.pvalues, rtol=1e-6)


# ---------------------------------------------------------------------------- calibration

def test_calibration_table_of_an_analysis_cell_poisson_over_rejects():
    model = null_model(rho=0.0, sigma=0.08, n_pre=12)
    annual, _ = sensitivity.analysis_cells(model, annual_post=1)
    methods = {"annual": ("poisson", "quasipoisson", "naive_ols", "negbin")}
    table = sensitivity.calibration_table(cells=[annual], methods=methods, models="declared",
                                          n_sim=400, seed=3)
    level = table[table["effect"] == "level"].set_index("method")
    assert set(level["model"]) == {"level"}            # one point after: level only
    assert level.loc["quasipoisson", "false_positive_rate"] <= 0.10
    assert (level.loc["poisson", "false_positive_rate"]
            > level.loc["quasipoisson", "false_positive_rate"] + 0.05)
    assert (level["n_sim"] == 400).all() and (table["coverage_95"].between(0, 1)).all()
    again = sensitivity.calibration_table(cells=[annual], methods=methods, models="declared",
                                          n_sim=400, seed=3)
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), again.drop(columns="seconds"))
    status = sensitivity.method_status(table).set_index("method")["status"]
    assert status["poisson"] == "not calibrated"
    defaults = sensitivity.recommend_defaults(table)
    summary = present_checks.calibration_summary(table)
    assert {"simulated series", "± MC error", "status"} <= set(summary.columns)
    reading = present_checks.calibration_reading(table, defaults)
    if defaults["annual"] == "none calibrated":
        assert "No method is calibrated here" in reading
    else:
        assert "it is the one to use" in reading


# ------------------------------------------------------------- placebo and specification curve

def test_placebo_real_drop_is_larger_than_every_placebo():
    pl = sensitivity.placebo_in_time(annual_series(0.5), EVENTS, focus=["family_matters"])
    row = pl.summary_table.iloc[0]
    assert row["event"] == "family_matters" and row["percent"] < -35
    assert row["n_placebo"] >= 5
    assert row["n_smaller"] == row["n_placebo"]
    assert row["rank_p"] == pytest.approx(1 / (1 + row["n_placebo"]))
    assert "placebo" in present_checks.placebo_summary(pl)
    assert present_checks.plot_placebo(pl) is not None


def test_launch_times_follow_the_window():
    # helpers.spec.Event: a date without a precision is known to the day; 'approx' is +-3 months
    assert sensitivity.launch_times(EVENTS[2]) == [2025]
    assert sensitivity.launch_times({**EVENTS[2], "precision": "approx"}) == [2025, 2026]
    staffs = {"name": "reduction_plan_2019", "date": "2019-11-22", "effects": ["level", "slope"]}
    assert sensitivity.launch_times({**staffs, "precision": "approx"}) == [2020, 2021]
    # Known to the day: 22 Nov leaves under six months of reporting year 2020 -> 2021 either way.
    assert sensitivity.launch_times(staffs) == [2021]
    assert sensitivity.launch_times({**staffs, "precision": "day"}) == [2021]
    assert sensitivity.launch_times({**staffs, "precision": "year"}) == [2020, 2021]
    with pytest.raises(CareTrendsError, match="precision"):
        sensitivity.launch_window({**staffs, "precision": "fortnight"})


def test_specification_curve_and_headline_records(tmp_path):
    default = {"start_year": 2014, "family": "quasipoisson", "covid_excluded": "none",
               "scale": "rate", "launch_time": 2025, "earlier_events": "all",
               "effect_shape": "level"}
    spec = sensitivity.specification_curve(annual_series(0.6), EVENTS, "family_matters",
                                           families=("quasipoisson", "ols"), default=default)
    stats = spec.stats()
    # start x launch x family x covid x scale x earlier events; one year after the launch, so
    # the level+slope shape is not a specification
    assert stats["n_specs"] == len(spec.table) == 2 * 1 * 2 * 2 * 2 * 2
    assert set(spec.table["effect_shape"]) == {"level"}
    assert set(spec.table["earlier_events"]) == {"all", "none"}
    assert spec.table["is_default"].sum() == 1
    assert stats["share_negative"] == 1.0
    assert present_checks.plot_speccurve(spec) is not None
    # the headline's numbers come from helpers.checks.headline, its words from helpers.present
    head = headline.summarise(spec, None, None, 12, event="family_matters")
    head["text"] = present_checks.headline_text(head)
    assert "12 months" in head["text"] and head["n_specs"] == stats["n_specs"]
    path = tmp_path / "06_sensitivity.json"
    records = headline.records(spec=spec, head=head, outcome="starts", analysis="x",
                               notebook="06_sensitivity", la="Somewhere")
    results.save_records(records, path)
    saved = results.save_extra(head, path, "headline")
    assert saved.name == "06_sensitivity.headline.json"
    assert json.loads(saved.read_text())["months_to_detect"] == 12
    loaded = results.load_records(path)
    assert set(loaded["design"]) == {"specification_curve", "sensitivity_headline", "power_months"}
    months = loaded[loaded["effect"] == "months_to_detect"]["estimate"].iloc[0]
    assert months == 12
    assert results.load_extra(tmp_path, "06_sensitivity", "headline")["months_to_detect"] == 12
    assert results.load_extra(tmp_path / "nowhere", "06_sensitivity", "headline") is None


def test_placebo_with_ols_reports_percent_of_counterfactual():
    pl = sensitivity.placebo_in_time(annual_series(0.5), EVENTS, family="ols",
                                     focus=["family_matters"])
    row = pl.summary_table.iloc[0]
    assert row["scale"] == "difference"
    assert -70 < row["percent"] < -30
    assert np.isfinite(pl.table["percent"]).all()


def test_specification_curve_simplifies_models_when_covid_year_is_dropped():
    spec = sensitivity.specification_curve(annual_series(0.6), EVENTS, "family_matters",
                                           start_years=(2014,), families=("quasipoisson",),
                                           covid=("none", "2020+2021"), scales=("rate",),
                                           earlier_events=("all",))
    table = spec.table.set_index("covid_excluded")
    assert not table.loc["none", "simplified"]
    assert table.loc["2020+2021", "simplified"]  # one point between the 2019 and 2020 events
    assert np.isfinite(table["percent"]).all()
    with pytest.raises(CareTrendsError, match="no event named"):
        sensitivity.specification_curve(annual_series(), EVENTS, "nope")


def test_specification_curve_varies_events_and_effect_shape_on_computed_rates():
    series = annual_series(0.6)
    kw = dict(start_years=(2014,), families=("quasipoisson", "ols"), covid=("none",))
    # strategies_2020 (in force from 2022) has four years after it: both effect shapes fit
    curve = sensitivity.specification_curve(series, EVENTS, "strategies_2020", **kw)
    table = curve.table
    assert set(table["effect_shape"]) == {"level", "level+slope"}
    assert set(table["earlier_events"]) == {"all", "none"}
    assert table.groupby(["effect_shape", "earlier_events"])["percent"].nunique().min() >= 1
    assert table["percent"].nunique() > len(table) // 2   # the choices move the estimate
    # rates are computed from count and population: a rounded or wrong published rate is unused
    rounded = series.assign(rate_per_10000=series["rate_per_10000"].round(-1) + 999)
    again = sensitivity.specification_curve(rounded, EVENTS, "strategies_2020", **kw)
    np.testing.assert_allclose(again.table["percent"], table["percent"], rtol=1e-10)
    # the chart's order is stable: ties keep specification order
    tied = type(curve)(table.assign(percent=table["percent"].round(0)), curve.event, {})
    first = present_checks.plot_speccurve(tied)
    second = present_checks.plot_speccurve(tied)
    ys = [np.asarray(f.axes[0].collections[1].get_offsets()) for f in (first, second)]
    np.testing.assert_array_equal(ys[0], ys[1])
