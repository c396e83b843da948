"""The answer block: the declared verdict rule (every branch, on constructed records), the
observed change in words, the target verdict (including a panel with the target year's row),
the glossary links, and the site index built from answer.json."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.core.records import RECORD_COLUMNS
from helpers.present import answer as A
from helpers.present import glossary, targets
from helpers.present.tables import Table
from helpers.spec import Target


def reading(direction, design="did"):
    return A.DesignReading(design, direction)


# --------------------------------------------------------------------------------------------
# The verdict rule: one test per branch
# --------------------------------------------------------------------------------------------
def test_not_estimable_without_an_interval():
    assert A.verdict_rule(None, None, None, None, []) == A.NOT_ESTIMABLE
    assert A.verdict_rule(-0.4, float("nan"), 0.1, 0.05, []) == A.NOT_ESTIMABLE


def test_clear_change_needs_half_the_designs_and_the_placebo():
    others = [reading("lower"), reading("lower", "synthetic_control"), reading("unclear")]
    assert A.verdict_rule(-0.4, -0.6, -0.1, 0.001, others, placebo_p=0.05) == A.CLEAR
    # Placebo dates show changes as large: not clear, a signal.
    assert A.verdict_rule(-0.4, -0.6, -0.1, 0.001, others, placebo_p=0.3) == A.SIGNAL
    # Fewer than half of the other designs agree: not clear.
    few = [reading("lower"), reading("unclear"), reading("unclear")]
    assert A.verdict_rule(-0.4, -0.6, -0.1, 0.001, few, placebo_p=0.05) == A.SIGNAL
    # A rise is clear the same way.
    assert A.verdict_rule(0.3, 0.1, 0.6, 0.01, [reading("higher")]) == A.CLEAR
    # Larger than at every one of 7 placebo dates: p = 0.125 is the smallest 7 dates allow,
    # so the check cannot contradict the change, and the reason says the dates are too few.
    assert A.verdict_rule(-0.4, -0.6, -0.1, 0.001, others, placebo_p=0.125,
                          placebo_beyond_all=True) == A.CLEAR
    why = A._verdict_reason(A.SIGNAL, -0.4, -0.66, 0.04, 0.05, others, 0.125, 7, 0)
    assert "larger than at every one of the 7 earlier dates" in why
    assert "too few to judge" in why and "were common" not in why


def test_early_signal_and_possible_change():
    # Stoke-on-Trent's shape: interval includes no change, p < 0.10, one design agrees.
    others = [reading("unclear", "controlled_its"), reading("lower", "did"),
              reading("unclear", "synthetic_control")]
    assert A.verdict_rule(-0.41, -0.66, 0.04, 0.055, others, placebo_p=0.125) == A.SIGNAL
    # The same after five post-event years is "some sign", not "early".
    assert A.verdict_rule(-0.41, -0.66, 0.04, 0.055, others, years_after=5) == A.POSSIBLE
    # Only the p-value below 0.10 makes it a signal.
    assert A.verdict_rule(-0.2, -0.4, 0.02, 0.08, [reading("unclear")]) == A.SIGNAL


def test_mixed_when_designs_point_both_ways():
    others = [reading("lower"), reading("higher", "synthetic_control")]
    assert A.verdict_rule(-0.4, -0.6, -0.1, 0.01, others) == A.MIXED
    # One design the other way but nothing supporting the primary direction is no sign.
    assert A.verdict_rule(-0.05, -0.3, 0.2, 0.7, [reading("higher")]) == A.NO_SIGN


def test_no_sign_of_change():
    assert A.verdict_rule(-0.05, -0.3, 0.25, 0.6, [reading("unclear")]) == A.NO_SIGN
    assert A.verdict_rule(0.02, -0.2, 0.3, 0.9, []) == A.NO_SIGN


def test_other_designs_leave_out_primary_checks_and_synthetic():
    rows = [
        dict(outcome="starts", event="fm", design="its", effect="level", estimate=0.6,
             ci_low=0.3, ci_high=0.9, scale="ratio"),
        dict(outcome="starts", event="fm", design="did", effect="level", estimate=-14,
             ci_low=-26, ci_high=-2, scale="difference"),
        dict(outcome="starts", event="fm", design="synthetic_control", effect="level",
             estimate=-12, ci_low=-25, ci_high=1, scale="difference"),
        dict(outcome="starts", event="fm", design="its_monthly_synthetic", effect="level",
             estimate=0.6, ci_low=0.5, ci_high=0.8, scale="ratio"),
        dict(outcome="starts", event="fm", design="placebo_in_time", effect="level",
             estimate=0.6, ci_low=0.7, ci_high=1.1, scale="ratio"),
        dict(outcome="ceased", event="fm", design="did", effect="level", estimate=9,
             ci_low=3, ci_high=12, scale="difference"),
    ]
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    readings = A.other_designs(records, "starts", "fm")
    assert {r.design: r.direction for r in readings} == {"did": "lower",
                                                        "synthetic_control": "unclear"}


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------
def series(counts, rates=None, first=2020):
    years = list(range(first, first + len(counts)))
    return pd.DataFrame({"year": years, "count": counts,
                         "rate_per_10000": rates or [None] * len(counts)})


def test_observed_change_in_words():
    text = A.observed_change("starts", series([250, 287, 178], [40.2, 47.3, 28.4]), 2022)
    assert text == ("178 children started to be looked after in 2021-22 (28 per 10,000 "
                    "children), down from 287 (47 per 10,000) the year before.")
    stock = A.observed_change("cla_31_march", series([1218, 1300, 1310, 1306]), 2021)
    assert stock.startswith("1,306 children were looked after on 31 March 2023, down from "
                            "1,310 the year before; in 2019-20")


def test_estimate_words():
    words = A.estimate_words(-0.409, -0.661, 0.042, "starts")
    assert words == ("about 41% fewer than the previous trend predicted; the data are "
                     "consistent with anything from a 66% fall to a 4% rise")


def test_short_answer_is_whole_sentences_without_code_names():
    ans = A.Answer(analysis="x", la="Stoke-on-Trent", question="Did it work?", context="",
                   outcome="starts", outcome_label="Starts", event="family_matters",
                   event_title="Family Matters", observed="178 children started.",
                   estimate="about 41% fewer", estimate_year="2024-25", agreement="",
                   verdict=A.SIGNAL, verdict_words=A.VERDICT_WORDS[A.SIGNAL],
                   verdict_reason="Why.", when="Soon.")
    html = A.short_html(ans.to_json())
    assert "family_matters" not in html and "None" not in html and "..." not in html
    assert "Early signal, not yet distinguishable from chance." in html
    full = A.answer_html(ans)
    assert "None" not in full and "nan" not in full.lower()


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------
STAFFS = {2019: 1173, 2020: 1218, 2021: 1242, 2022: 1303, 2023: 1385, 2024: 1307, 2025: 1306}
TARGET = Target(outcome="cla_31_march", value=848, by="2026-03-31", baseline=1248)


def staffs(extra=None):
    values = {**STAFFS, **(extra or {})}
    return pd.DataFrame({"year": list(values), "count": list(values.values())})


def test_target_off_track_with_a_prediction_interval():
    tp = targets.track_target(TARGET, staffs(), event_year=2021)
    assert tp.verdict == targets.OFF_TRACK and tp.reduction and tp.actual is None
    assert tp.low < tp.projected < tp.high and tp.target < tp.low
    assert "prediction interval" in tp.sentence and "848 or fewer" in tp.sentence


def test_target_on_track_when_the_trend_reaches_it():
    falling = staffs({2022: 1150, 2023: 1050, 2024: 960, 2025: 880})
    tp = targets.track_target(TARGET, falling, event_year=2021)
    assert tp.verdict == targets.ON_TRACK and tp.projected <= 848


def test_target_year_in_the_panel_decides_met_or_missed():
    missed = targets.track_target(TARGET, staffs({2026: 1290}), event_year=2021)
    assert missed.verdict == targets.MISSED and missed.actual == 1290
    assert missed.projected is None
    met = targets.track_target(TARGET, staffs({2026: 840}), event_year=2021)
    assert met.verdict == targets.MET
    assert "31 March 2026" in met.sentence


def test_target_rule_for_an_increase():
    assert targets.target_verdict(False, 100, projected=120) == targets.ON_TRACK
    assert targets.target_verdict(False, 100, actual=90) == targets.MISSED


def test_prediction_interval_is_wider_than_the_trend_alone():
    point, low, high = targets.project(staffs(), 2026, 2021, level=0.95)
    narrow = targets.project(staffs(), 2026, 2021, level=0.5)
    assert low < narrow[1] < point < narrow[2] < high


# --------------------------------------------------------------------------------------------
# Tables and glossary
# --------------------------------------------------------------------------------------------
def test_table_shows_no_code_names_nan_or_zero_p():
    df = pd.DataFrame({"event": ["inadequate_2019"], "p_value": [0.0002], "ci_low": [None],
                       "n_sim": [200]})
    out = Table(df, "Estimates")._repr_html_()
    for bad in ("inadequate_2019", "p_value", "ci_low", "n_sim", "None", "NaN", "0.000"):
        assert bad not in out
    assert "&lt; 0.001" in out and 'tabindex="0"' in out


def test_glossary_links_first_use_outside_headings_and_links():
    page = ('<main><h2>Synthetic control</h2><p>The synthetic control and the placebo.</p>'
            '<p><a href="x">placebo</a> synthetic control</p></main>')
    out = glossary.link_terms(page)
    assert out.count('href="../glossary.html#synthetic-control"') == 1
    assert "<h2>Synthetic control</h2>" in out
    assert glossary.glossary_html().count("<dt id=") == len(glossary.TERMS)


def test_index_is_question_first_in_declared_order(tmp_path, monkeypatch):
    from helpers.run import publish
    for name, verdict in (("alpha", A.NO_SIGN), ("stoke-on-trent", A.SIGNAL)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / publish.MANIFEST).write_text(json.dumps({
            "analysis": name, "title": f"{name}: did it work?", "la": name,
            "data_edition": "test", "records": 1,
            "notebooks": [{"stem": "03_its", "title": "ITS", "html": "03_its.html",
                           "headline": "x"},
                          {"stem": "05_monthly", "title": "Monthly (SYNTHETIC)",
                           "html": "05_monthly.html", "headline": "SYNTHETIC"},
                          {"stem": "09_summary", "title": "Summary", "html": "09_summary.html",
                           "headline": ""}]}))
        (folder / publish.ANSWER).write_text(json.dumps({
            "question": f"{name}?", "verdict": verdict, "verdict_words": A.VERDICT_WORDS[verdict],
            "observed": "178 children started.", "estimate": "about 41% fewer",
            "event_title": "Family Matters"}))
        (folder / "03_its.html").write_text(
            f"<html><main>{publish.ANSWER_MARK[0]}{publish.ANSWER_MARK[1]}<p>a placebo</p>"
            "</main></html>")
    monkeypatch.setattr(publish, "site_order", lambda: ["stoke-on-trent"])
    index = publish.build_index(tmp_path, order=["alpha", "stoke-on-trent"]).read_text()
    assert index.index("stoke-on-trent: did it work?") < index.index("alpha: did it work?")
    assert "Early signal, not yet distinguishable from chance." in index
    assert "SYNTHETIC (made-up) data" in index
    page = (tmp_path / "stoke-on-trent" / "03_its.html").read_text()
    assert 'class="answer answer-short"' in page and "glossary.html#placebo" in page
    assert (tmp_path / "glossary.html").exists()
    # Idempotent: a second build changes nothing.
    assert publish.add_answer_to_pages(tmp_path / "stoke-on-trent") == 0


@pytest.mark.parametrize("name", ["stoke-on-trent", "staffordshire"])
def test_declared_site_order_lists_real_analyses(name):
    from helpers import spec as specs
    from helpers.run import publish
    assert name in publish.site_order() and name in specs.list_analyses()
    assert publish.site_order()[0] == "stoke-on-trent"
