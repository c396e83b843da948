"""The designs added to the reports: synthetic DiD and the ridge-augmented synthetic control in
the comparisons, the national inadequate-judgement event study, and the pathway stage by stage."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import spec as specs
from helpers.models import national
from helpers.models.analysis import run_comparisons
from helpers.models.la_panel import la_rate_panel, one_event
from helpers.models.pathway import fit_pathway, spend_context
from helpers.models.synth import fit_augmented_synthetic_control, fit_synthetic_control
from helpers.present import comparative as comparative_words
from helpers.present import national as national_words
from helpers.present import pathway as pathway_words


@pytest.fixture(scope="module")
def stoke():
    return specs.load_analysis("stoke-on-trent")


def test_la_rate_panel_matches_the_donor_pool_of_synthetic_control(stoke):
    event = one_event({"family_matters": 2025})
    panel = la_rate_panel("861", "starts", event, 2014, 2025)
    synth = fit_synthetic_control("861", "starts", event, placebos=False, leave_one_out=False)
    assert panel.treated_units == ["861"] and len(panel.units) == synth.n_donors + 1
    assert np.allclose(panel.Y.loc["861"].to_numpy(), synth.counterfactual["observed"])


def test_augmented_synthetic_control_corrects_a_misfit_and_ranks_against_placebos():
    aug = fit_augmented_synthetic_control("861", "starts", {"family_matters": 2025})
    row = aug.effects.iloc[0]
    assert row.ci_low <= row.estimate <= row.ci_high and 0 < row.p_value <= 1
    assert len(aug.placebos) == aug.n_donors and aug.penalty > 0
    # The correction only moves the synthetic path where the plain fit misses it.
    plain = fit_synthetic_control("861", "starts", {"family_matters": 2025}, placebos=False,
                                  leave_one_out=False)
    assert abs(row.estimate - plain.effects["estimate"].iloc[0]) < 5


def test_synthetic_control_diagnostics_are_reported(stoke):
    res = fit_synthetic_control("861", "starts", {"family_matters": 2025})
    assert set(res.donor_range.columns) >= {"year", "la_rate", "donors_min", "donors_max",
                                             "outside"}
    assert res.weights_unique == (res.pre_rmspe > 0)
    notes = comparative_words.synthetic_control_checks(res)
    assert notes and all(isinstance(n, str) for n in notes)


def test_comparisons_carry_synthetic_did_for_the_requested_outcome_only(stoke):
    out = run_comparisons("861", ["starts", "ceased"], stoke.events, with_its=False,
                          primary_event="family_matters", sdid_for=["starts"])
    assert out["ceased"].sdid is None
    sdid = out["starts"].sdid
    assert sdid.effects["intervention"].iloc[0] == "family_matters"
    designs = {r["design"] for r in out["starts"].records(analysis="a", notebook="04", la="x")}
    assert {"synthetic_did", "synthetic_control_ridge"} <= designs
    assert "synthetic_did" in out["starts"].designs()


def test_inadequate_event_study_national_and_own():
    nat, own = national.inadequate_event_study("861", "starts", 2014, 2025)
    assert "861" not in nat.panel.treated_units and len(nat.panel.treated_units) >= 10
    assert own is not None and own.panel.treated_units == ["861"]
    text = national_words.inadequate_reading(nat, own, "Stoke-on-Trent", until=2025,
                                             until_title="Family Matters launched")
    assert "year +5" not in text and "Stoke-on-Trent's own path" in text
    none_judged, own_none = national.inadequate_event_study("860", "starts", 2014, 2025)
    assert own_none is None


def test_pathway_stages_and_the_declared_reading_rule(stoke):
    res = fit_pathway(stoke)
    assert res.stages == ["referrals", "cin_starts", "cpp_starts", "starts"]
    yoy = res.year_on_year().set_index("stage")
    assert yoy.loc["referrals", "before"] == 4798 and yoy.loc["referrals", "after"] == 3874
    assert yoy.loc["cpp_starts", "after"] == 436
    text = pathway_words.reading(res, stoke.event.title)
    assert "larger at child protection and care entry than at the front door" in text
    spend = spend_context(stoke)
    assert spend["year"].max() == 2025 and (spend["la"] > 0).all()
