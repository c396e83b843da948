"""Comparative designs on simulated panels with a known effect in one LA (code '800')."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.optimize import nnls

from helpers import comparative as comp
from helpers.core import vocab
from helpers.core.errors import CareTrendsError
from helpers.core.records import COUNTERFACTUAL_COLUMNS, EFFECT_COLUMNS, EffectResult
from helpers.models import la_panel
from helpers.present import comparative as present_comp

matplotlib.use("Agg")

# April 1st counts in full: first "post" reporting year 2020, matching event_year=2020 below.
EVENT = {"name": "programme", "title": "Programme", "date": "2019-04-01", "effects": ["level", "slope"]}
TRUE_RATIO = 0.7


@pytest.fixture(scope="module")
def panel():
    return comp.simulate_panel(n_las=40, start_year=2012, end_year=2025, event_year=2020,
                               level_ratio=TRUE_RATIO, seed=3)


@pytest.fixture(scope="module")
def true_gap(panel):
    rows = panel[(panel["la_code"] == "800") & (panel["measure"] == "starts") & (panel["year"] >= 2020)]
    return float(((TRUE_RATIO - 1.0) * rows["rate_counterfactual"]).mean())


def _check_shape(res):
    assert isinstance(res, EffectResult)
    assert list(res.effects.columns) == EFFECT_COLUMNS
    assert list(res.counterfactual.columns[:6]) == COUNTERFACTUAL_COLUMNS
    assert isinstance(present_comp.summary(res), str) and present_comp.summary(res)
    ax = present_comp.plot(res)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    matplotlib.pyplot.close("all")
    records = res.to_records(analysis="sim", notebook="04_comparisons", la="800")
    assert records and all(r["design"] == res.design for r in records)


# ---------------------------------------------------------------- events and comparators

def test_events_use_first_full_reporting_year():
    evs = comp.normalise_events([{"name": "fm", "date": "2024-03-01", "effects": ["level"]},
                                 {"name": "x", "date": "2019-04-01"}])
    assert [(e.name, e.first_in_force, e.effects) for e in evs] == [("x", 2020, ("level", "slope")),
                                                          ("fm", 2025, ("level",))]


@pytest.mark.parametrize("comparator", ["england_minus_la", "region", ["801", "802", "Simulated LA 803"]])
def test_comparator_series_is_pooled_rate_without_treated(panel, comparator):
    treated, series, label = comp.comparator_series("800", "starts", comparator, 2012, None, panel)
    las = panel[(panel["geographic_level"] == la_panel.LA_LEVEL) & (panel["measure"] == "starts")]
    if comparator == "england_minus_la":
        members = las[las["la_code"] != "800"]
    elif comparator == "region":
        members = las[(las["region_name"] == "Region A") & (las["la_code"] != "800")]
    else:
        members = las[las["la_code"].isin(["801", "802", "803"])]
    expected = members.groupby("year")["count"].sum().to_numpy()
    np.testing.assert_allclose(series["count"].to_numpy(), expected)
    np.testing.assert_allclose(series[la_panel.RATE], series["count"] / series["population"] * 1e4)
    assert label.startswith(("England excluding", "Region A excluding", "comparator LAs (3"))


def test_user_errors_are_one_line(panel):
    with pytest.raises(CareTrendsError, match="unknown local authority"):
        comp.fit_did("Nowhere", "starts", EVENT, 2012, panel=panel)
    with pytest.raises(CareTrendsError, match="after the last year"):
        comp.fit_synthetic_control("800", "starts", {"name": "late", "date": "2030-01-01"}, 2012, panel=panel)
    with pytest.raises(CareTrendsError, match="unknown comparator"):
        comp.fit_controlled_its("800", "starts", [EVENT], "planet", 2012, panel=panel)
    with pytest.raises(CareTrendsError, match="pre-event years"):
        comp.fit_controlled_its("800", "starts", [EVENT], "region", 2018, panel=panel)


def test_donor_pool_excludes_breaks_and_own_programmes(panel):
    broken = panel.copy()
    broken.loc[broken["la_code"] == "801", "boundary_break"] = True
    unit, treated, donors = comp.donor_pool("800", "starts", 2012, None, exclude_donors=["802"],
                                            panel=broken)
    assert unit.la_code == "800"
    assert not {"800", "801", "802"} & set(donors.index)
    assert len(donors) == 37 and not donors.isna().any().any()


# ---------------------------------------------------------------- each design recovers the effect

@pytest.mark.parametrize("method", ["multiple_group", "ratio"])
@pytest.mark.parametrize("comparator", ["england_minus_la", "region"])
def test_controlled_its_recovers_level_change(panel, method, comparator):
    res = comp.fit_controlled_its("800", "starts", [EVENT], comparator, 2012, method=method, panel=panel)
    level = res.effects.set_index("effect").loc["level"]
    slope = res.effects.set_index("effect").loc["slope"]
    assert level["scale"] == "ratio"
    assert level["ci_low"] < TRUE_RATIO < level["ci_high"]
    assert level["ci_high"] < 1.0  # a clear fall
    assert slope["ci_low"] < 1.0 < slope["ci_high"] or abs(slope["estimate"] - 1) < 0.06
    cf = res.counterfactual
    post = cf["time"] >= 2020
    assert (cf.loc[post, "observed"] < cf.loc[post, "counterfactual"]).mean() > 0.8
    _check_shape(res)


def test_controlled_its_methods_agree_on_simulated_panel(panel):
    a = comp.fit_controlled_its("800", "starts", [EVENT], "region", 2012, panel=panel)
    b = comp.fit_controlled_its("800", "starts", [EVENT], "region", 2012, method="ratio", panel=panel)
    assert abs(a.effects["estimate"].iloc[0] - b.effects["estimate"].iloc[0]) < 0.05


def test_did_recovers_effect_and_matches_twfe_regression(panel, true_gap):
    res = comp.fit_did("800", "starts", EVENT, 2012, panel=panel)
    row = res.effects.iloc[0]
    assert row["scale"] == "difference"
    assert abs(row["estimate"] - true_gap) < 0.25 * abs(true_gap)
    assert row["ci_low"] < true_gap < row["ci_high"]
    # the closed-form 2x2 estimate is the two-way fixed-effects coefficient
    assert res.inference["twfe_estimate"] == pytest.approx(row["estimate"], abs=1e-9)
    assert res.inference["rank"] == 1 and row["p_value"] == pytest.approx(1 / 40)
    assert len(res.placebos) == 39
    _check_shape(res)


def test_event_study_recovers_effect_and_matches_twfe(panel, true_gap):
    res = comp.fit_event_study("800", "starts", EVENT, 2012, panel=panel)
    eff = res.effects.assign(rel=res.effects["effect"].str.replace("year ", "").astype(int))
    post, pre = eff[eff["rel"] >= 0], eff[eff["rel"] < 0]
    assert abs(post["estimate"].mean() - true_gap) < 0.3 * abs(true_gap)
    assert (post["estimate"] < 0).all()
    assert pre["estimate"].abs().max() < abs(true_gap)
    np.testing.assert_allclose(res.cluster["estimate"].to_numpy(), eff["estimate"].to_numpy(), atol=1e-8)
    _check_shape(res)


def test_synthetic_control_recovers_effect(panel, true_gap):
    res = comp.fit_synthetic_control("800", "starts", EVENT, 2012, panel=panel)
    w = res.weights["weight"].to_numpy()
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12)
    assert res.pre_rmspe < 1.0
    row = res.effects.iloc[0]
    assert abs(row["estimate"] - true_gap) < 0.25 * abs(true_gap)
    assert res.rank <= 4 and res.p_value <= 0.1
    assert len(res.placebos) == 39 and res.n_donors == 39
    assert set(res.leave_one_out["dropped_code"]) == set(res.weights.loc[res.weights["weight"] > 1e-6, "la_code"])
    assert (res.leave_one_out["avg_post_gap"] < 0).all()
    np.testing.assert_allclose(res.counterfactual["gap"], res.gaps.loc["800"].to_numpy())
    ax = present_comp.plot_gaps(res)
    assert ax.get_title()
    _check_shape(res)


def test_compare_designs_and_agreement_text(panel):
    results = {"Controlled ITS": comp.fit_controlled_its("800", "starts", [EVENT], "region", 2012, panel=panel),
               "DiD": comp.fit_did("800", "starts", EVENT, 2012, panel=panel),
               "Synthetic control": comp.fit_synthetic_control("800", "starts", EVENT, 2012, panel=panel)}
    table = present_comp.compare_designs(results, "programme")
    assert list(table["design"]) == list(results)
    assert (table["direction"] == "down").all()
    text = present_comp.agreement_text(table, "Simulated LA 800", "Programme", "starts")
    assert text.startswith("All 3 designs show a clear fall")


# ---------------------------------------------------------------- placebo inference under no effect

def test_placebo_p_values_roughly_uniform_under_no_effect():
    did_p, sc_p = [], []
    rng = np.random.default_rng(2024)
    for seed in range(40):
        sim = comp.simulate_panel(n_las=20, start_year=2012, end_year=2022, seed=100 + seed)
        # any LA but the simulator's special '800' is exchangeable with the others
        la = str(800 + int(rng.integers(1, 20)))
        did_p.append(comp.fit_did(la, "starts", EVENT, 2012, panel=sim).effects["p_value"].iloc[0])
        sc = comp.fit_synthetic_control(la, "starts", EVENT, 2012, panel=sim, leave_one_out=False)
        sc_p.append(sc.p_value)
    for p in (np.array(did_p), np.array(sc_p)):
        assert 0.35 < p.mean() < 0.65
        assert (p <= 0.1).mean() <= 0.25
        assert stats.kstest(p, "uniform").pvalue > 0.01


# ---------------------------------------------------------------- the simplex QP solver

def _random_problem(rng, T, J, outside=True):
    B = rng.normal(30, 5, (T, J))
    a = B[:, :3].mean(axis=1) + (rng.normal(0, 8, T) if outside else 0)
    return a, B


@pytest.mark.parametrize("seed", range(8))
def test_synth_weights_constraints_and_kkt(seed):
    rng = np.random.default_rng(seed)
    T, J = rng.integers(3, 15), rng.integers(2, 120)
    a, B = _random_problem(rng, T, J, outside=seed % 2 == 0)
    v = rng.uniform(0.1, 2, T) if seed % 3 == 0 else None
    w = comp.synth_weights(a, B, v)
    assert w.shape == (J,) and (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12)
    vv = np.ones(T) if v is None else v
    g = B.T @ (vv * (B @ w - a))  # KKT: support shares the smallest gradient
    support = w > 1e-10
    scale = np.abs(g).max() + 1.0
    assert np.ptp(g[support]) < 1e-7 * scale
    assert g.min() >= g[support].max() - 1e-7 * scale
    # an independent exact-in-the-limit solve: NNLS with the sum-to-one row weighted heavily
    M = 1e5
    s = np.sqrt(vv)
    w_ref, _ = nnls(np.vstack([B * s[:, None] / 50, M * np.ones(J)]), np.append(a * s / 50, M),
                    maxiter=50 * J)
    obj = lambda x: float(vv @ (a - B @ x) ** 2)  # noqa: E731
    assert obj(w) <= obj(w_ref / w_ref.sum()) + 1e-8 * obj(w_ref / w_ref.sum()) + 1e-10


def test_synth_weights_edge_cases():
    assert comp.synth_weights(np.array([1.0, 2.0]), np.array([[3.0], [4.0]])).tolist() == [1.0]
    B = np.array([[0.0, 10.0], [0.0, 10.0]])
    np.testing.assert_allclose(comp.synth_weights(np.array([5.0, 5.0]), B), [0.5, 0.5])
    np.testing.assert_allclose(comp.synth_weights(np.array([20.0, 20.0]), B), [0.0, 1.0])
    with pytest.raises(ValueError):
        comp.synth_weights(np.ones(3), np.ones((2, 4)))


def test_synth_weights_agree_with_pysyncon(panel):
    """Independent implementation: pysyncon's SLSQP weight solve, and its full Synth fit with a
    custom V that undoes its per-predictor standardisation. Agreement on weights to 1e-4 and on
    the gap series to 1e-2 per 10,000 (pysyncon's default SLSQP tolerance; measured ~5e-5 and ~5e-4)."""
    pysyncon = pytest.importorskip("pysyncon")
    small = comp.simulate_panel(n_las=25, start_year=2012, end_year=2024, event_year=2020,
                                level_ratio=0.8, seed=11)
    unit, treated, donors = comp.donor_pool("800", "starts", 2012, None, panel=small)
    pre = treated.index < 2020
    a, B = treated.to_numpy()[pre], donors.to_numpy()[:, pre].T
    w = comp.synth_weights(a, B)
    w_tight, _ = pysyncon.Synth.w_optimize(np.eye(len(a)), B, a,
                                           qp_options={"maxiter": 1000, "ftol": 1e-12})
    assert np.abs(w - w_tight).max() < 1e-5
    X0 = pd.DataFrame(B, index=treated.index[pre], columns=donors.index)
    X1 = pd.Series(a, index=treated.index[pre], name="treated")
    Z0 = pd.DataFrame(donors.to_numpy().T, index=treated.index, columns=donors.index)
    Z1 = pd.Series(treated.to_numpy(), index=treated.index, name="treated")
    std = pd.concat([X0, X1], axis=1).std(axis=1).to_numpy()
    synth = pysyncon.Synth()
    synth.fit(X0=X0, X1=X1, Z0=Z0, Z1=Z1, custom_V=std ** 2)
    assert np.abs(w - synth.W).max() < 1e-4
    res = comp.fit_synthetic_control("800", "starts", EVENT, 2012, panel=small, placebos=False,
                                     leave_one_out=False)
    gap_pysyncon = treated.to_numpy() - synth.W @ donors.to_numpy()
    assert np.abs(res.counterfactual["gap"].to_numpy() - gap_pysyncon).max() < 1e-2


# ---------------------------------------------------------------- determinism

def test_results_are_deterministic():
    def run():
        sim = comp.simulate_panel(n_las=20, start_year=2012, end_year=2022, event_year=2020,
                                  level_ratio=0.8, seed=5)
        sc = comp.fit_synthetic_control("800", "starts", EVENT, 2012, panel=sim)
        did = comp.fit_did("800", "starts", EVENT, 2012, panel=sim)
        cits = comp.fit_controlled_its("800", "starts", [EVENT], "england_minus_la", 2012, panel=sim)
        return sc, did, cits
    first, second = run(), run()
    for x, y in zip(first, second):
        pd.testing.assert_frame_equal(x.effects, y.effects)
        pd.testing.assert_frame_equal(x.counterfactual, y.counterfactual)
        assert present_comp.summary(x) == present_comp.summary(y)
    pd.testing.assert_frame_equal(first[0].weights, second[0].weights)
    pd.testing.assert_frame_equal(first[0].placebos, second[0].placebos)


def test_run_comparisons_side_by_side_and_records(panel):
    comps = comp.run_comparisons("800", ["starts", "cla_31_march"], [EVENT], comparator="region",
                                 start_year=2012, panel=panel, with_its=False)
    table = present_comp.side_by_side(comps)
    # five designs per outcome, and synthetic DiD for the first outcome
    assert len(table) == 2 * 5 + 1 and set(table["outcome"]) == {vocab.measure_label("starts"),
                                                             vocab.measure_label("cla_31_march")}
    starts = table[table["outcome"] == vocab.measure_label("starts")]
    assert (starts["reading"] == "clear fall").sum() >= 3
    assert "Simulated LA 800" in present_comp.reading(comps["starts"], "Simulated LA 800")
    records = comps["starts"].records(analysis="sim", notebook="04_comparisons", la="800")
    assert {r["design"] for r in records} == {"controlled_its", "controlled_its_ratio", "did",
                                              "event_study", "synthetic_control",
                                              "synthetic_control_ridge", "synthetic_did"}
    assert all(r["outcome"] == "starts" for r in records)
    assert len(present_comp.controlled_table(comps)) == 2 * 2 * 2
    weights = present_comp.weights_table(comps["starts"].synth)
    assert abs(sum(float(w) for w in weights["weight"]) - 1) < 0.01
    with pytest.raises(CareTrendsError, match="unknown primary event 'nope'"):
        comp.run_comparisons("800", ["starts"], [EVENT], primary_event="nope", panel=panel,
                             with_its=False)


def test_official_panel_stoke_synthetic_control_and_did():
    """Smoke test on the official panel (skipped when it cannot be loaded)."""
    from helpers import data
    try:
        official = data.load_panel()
    except Exception as exc:  # noqa: BLE001 - any missing-data problem means skip
        pytest.skip(f"official panel unavailable: {exc}")
    event = {"name": "family_matters", "date": "2024-03-01", "effects": ["level"]}
    sc = comp.fit_synthetic_control("Stoke-on-Trent", "starts", event, 2014, panel=official)
    assert sc.unit.la_code == "861" and sc.weights["weight"].sum() == pytest.approx(1.0)
    breaks = la_panel.boundary_break_codes(official)
    assert {"835", "928", "909", "942"} <= breaks and not breaks & set(sc.weights["la_code"])
    assert len(sc.placebos) == sc.n_donors
    did = comp.fit_did("861", "starts", event, 2014, panel=official)
    assert did.inference["twfe_estimate"] == pytest.approx(did.effects["estimate"].iloc[0], abs=1e-9)
