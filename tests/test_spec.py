"""The analysis specification: read and validated once, with one-line errors that name the
problem and the fix; the primary event and outcome declared or defaulted by one rule."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from helpers import spec as specs
from helpers.core.errors import CareTrendsError

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "analysis": "test-analysis", "la": "Stoke-on-Trent",
    "events": [{"name": "family_matters", "title": "Family Matters launched",
                "date": "2024-03-01", "effects": ["level"]}],
}


def make(**changes) -> dict:
    raw = {**BASE, **changes}
    return raw


def error_of(raw) -> str:
    with pytest.raises(CareTrendsError) as info:
        specs.validate(raw)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


def test_the_two_analyses_validate_with_their_declared_primary_event_and_outcome():
    stoke = specs.load_analysis("stoke-on-trent")
    assert (stoke.la_code, stoke.primary_event, stoke.primary_outcome) == (
        "861", "family_matters", "starts")
    assert stoke.event.title == "Family Matters launched"
    assert stoke.interventions("annual")["interventions"] == {
        "inadequate_2019": 2020, "strategies_2020": 2022, "family_matters": 2025}
    staffs = specs.load_analysis("staffordshire")
    assert staffs.primary_outcome == "cla_31_march"
    target = staffs.target_for("cla_31_march")
    assert (target.value, target.by, target.year) == (848, dt.date(2026, 3, 31), 2026)


def test_primary_defaults_follow_one_rule():
    """primary_event: the most recent event by date; primary_outcome: the first outcome."""
    spec = specs.validate(make(outcomes=["ceased", "starts"], events=[
        {"name": "later", "date": "2021-06-15"}, {"name": "earlier", "date": "2019-02-04"}]))
    assert spec.primary_event == "later"
    assert spec.primary_outcome == "ceased"


def test_unknown_keys_at_any_depth_are_errors_with_a_suggestion():
    assert "did you mean 'outcomes'" in error_of(make(outcome=["starts"]))
    bad = make(events=[{"name": "fm", "date": "2024-03-01", "efects": ["level"]}])
    message = error_of(bad)
    assert "events[1]" in message and "did you mean 'effects'" in message
    assert "did you mean 'value'" in error_of(make(targets=[
        {"outcome": "cla_31_march", "valu": 848, "by": "2026-03-31"}]))


def test_dates_are_iso_only():
    message = error_of(make(events=[{"name": "fm", "date": "04/02/2019"}]))
    assert "YYYY-MM-DD" in message and "04/02/2019" in message
    assert "not a real date" in error_of(make(events=[{"name": "fm", "date": "2024-02-30"}]))


def test_events_are_checked_against_the_la():
    other = make(la="Barnsley", events=[{"name": "family_matters", "date": "2024-03-01"}])
    assert "belongs to another LA" in error_of(other)
    shared = make(la="Barnsley", events=[{"name": "family_matters", "date": "2024-03-01",
                                          "applies_to_any_la": True}])
    assert specs.validate(shared).la_name == "Barnsley"


@pytest.mark.parametrize("changes, expected", [
    ({"events": []}, "no events declared"),
    ({"outcomes": []}, "outcomes is empty"),
    ({"outcomes": ["adoptions"]}, "unknown outcome 'adoptions'"),
    ({"family": "quasipoison"}, "did you mean 'quasipoisson'"),
    ({"seed": -1}, "seed"),
    ({"n_simulations": -5}, "n_simulations"),
    ({"small_count_threshold": 0}, "small_count_threshold"),
    ({"end_year": 0}, "end_year"),
    ({"start_year": 2030}, "start_year"),
    ({"la": "England"}, "not a local authority"),
    ({"la": "Stoke"}, "did you mean 'Stoke-on-Trent'"),
    ({"comparator": ["Stoke-on-Trent"]}, "cannot be its own comparator"),
    ({"exclude_donors": ["Stoke-on-Trent"]}, "cannot be its own comparator"),
    ({"primary_event": "familymatters"}, "did you mean 'family_matters'"),
    ({"primary_outcome": "ceased", "outcomes": ["starts"]}, "not among the outcomes"),
    ({"events": [{"name": "fm", "date": "2027-01-01"}]}, "outside the data"),
    ({"events": [{"name": "fm", "date": "2024-03-01", "effects": ["levels"]}]},
     "did you mean 'level'"),
])
def test_bad_values_are_stopped_with_one_line(changes, expected):
    assert expected in error_of(make(**changes))


def test_abolished_authority_is_refused_with_its_successor_hint():
    message = error_of(make(la="Northamptonshire", start_year=2010,
                            events=[{"name": "x", "date": "2015-06-01"}]))
    assert "abolished or reorganised" in message


def test_effects_accept_one_word_and_plus_forms():
    one = specs.validate(make(events=[{"name": "fm", "date": "2024-03-01", "effects": "level"}]))
    assert one.event.effects == ("level",)
    both = specs.validate(make(events=[{"name": "s", "date": "2020-10-01",
                                        "effects": "level+slope"}]))
    assert both.event.effects == ("level", "slope")


def test_approximate_dates_validate_and_carry_a_window():
    spec = specs.validate(make(events=[{"name": "fm", "date": "2024-03-01",
                                        "precision": "approx"}]))
    assert spec.event.window == (dt.date(2023, 12, 1), dt.date(2024, 6, 1))
    month = specs.validate(make(events=[{"name": "fm", "date": "2024-03-01",
                                         "precision": "month"}]))
    assert month.event.counts_from == dt.date(2024, 3, 31)


def test_yaml_duplicate_keys_and_aliases_are_refused(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("la: Stoke-on-Trent\nla: Staffordshire\n")
    with pytest.raises(CareTrendsError, match="appears twice"):
        specs.read_yaml(dup)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n")
    with pytest.raises(CareTrendsError, match="aliases"):
        specs.read_yaml(bomb)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(CareTrendsError, match="UTF-8"):
        specs.read_yaml(latin)


def test_an_analysis_without_events_never_borrows_another_las():
    with pytest.raises(CareTrendsError, match="no events declared"):
        specs.validate({"analysis": "x", "la": "Barnsley"})


def test_template_fills_every_la_and_round_trips_through_the_runner():
    spec = specs.load_analysis(specs.ALL_LAS_TEMPLATE, la="Barnsley")
    assert spec.analysis == "barnsley" and spec.title.startswith("Barnsley:")
    again = specs.load_analysis(spec.analysis, spec.to_parameters())
    assert again == spec
    stoke = specs.load_analysis("stoke-on-trent")
    assert specs.load_analysis("stoke-on-trent", stoke.to_parameters()) == stoke


def test_overrides_change_one_key():
    spec = specs.load_analysis("stoke-on-trent", {"start_year": 2010})
    assert spec.start_year == 2010 and spec.primary_event == "family_matters"


def test_unknown_analysis_name_suggests():
    with pytest.raises(CareTrendsError, match="did you mean 'stoke-on-trent'"):
        specs.load_analysis("stoke-on-tren")
    with pytest.raises(CareTrendsError):
        specs.load_analysis("../../etc/passwd")


def test_notebook_parameter_cells_carry_no_second_copy_of_the_analysis():
    allowed = {"analysis", "overrides", "results_path", "results_dir"}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        text = path.read_text(encoding="utf-8")
        cell = text.split('# %% tags=["parameters"]', 1)[1].split("\n# %%", 1)[0]
        names = set(re.findall(r"^(\w+)\s*=", cell, flags=re.M))
        assert names <= allowed, f"{path.name} declares {sorted(names - allowed)}"
        assert "events" not in cell


def test_every_yaml_in_params_validates():
    for name in specs.list_analyses():
        specs.load_analysis(name)
    raw = yaml.safe_load((ROOT / "notebooks/params/templates/all-las.yaml").read_text())
    assert "{la}" in raw["la"]
