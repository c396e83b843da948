"""Ofsted inspections of every LA's children's services as a reference table of dated events."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import data
from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.data import reference

pytest.importorskip("odf", reason="reading Ofsted's .ods needs odfpy")


@pytest.fixture(scope="module")
def inspections():
    return data.load_ofsted_inspections()


def test_table_rebuilds_from_raw_byte_identical(raw_dir):
    built = reference.build_ofsted_inspections(raw_dir).to_csv(index=False, lineterminator="\n")
    assert built == (paths.reference_dir() / reference.OFSTED_FILE).read_text(encoding="utf-8")


def test_stoke_2019_inadequate_found_with_its_dates():
    event = data.last_judgement("Stoke-on-Trent", judgement="inadequate")
    assert event.la_code == "861" and event.judgement == "Inadequate"
    assert event.inspection_date == pd.Timestamp("2019-02-04")
    assert event.publication_date == pd.Timestamp("2019-03-18")
    assert event.date == event.inspection_date and event.framework == "ILACS"
    assert event.inspection_type == "ILACS Standard Inspection"
    # Same date as the hand-written events.csv entry for this judgement.
    assert data.load_events("Stoke-on-Trent").set_index("event_id").loc["inadequate_2019", "date"] == event.date
    row = event.as_event()
    assert list(row) == reference.EVENT_COLUMNS and row["event_id"] == "ofsted_inadequate_2019"
    assert row["precision"] == "day" and "Inadequate" in row["title"] and "LA_Inspection" in row["source"]
    published = data.last_judgement(861, "inadequate", date="publication")
    assert published.date == pd.Timestamp("2019-03-18") and published.date_basis == "publication"


def test_last_judgement_any_and_other_judgements():
    latest = data.last_judgement("E06000021", judgement=None)
    assert latest.inspection_date == pd.Timestamp("2022-10-03")
    assert latest.judgement == "Requires improvement to be good"
    assert data.last_judgement("stoke on trent", "requires improvement").inspection_date == latest.inspection_date
    staffs = data.last_judgement("Staffordshire", "good")
    assert staffs.inspection_date == pd.Timestamp("2019-02-04")
    before = data.last_judgement("Stoke-on-Trent", None, before="2022-01-01")
    assert before.inspection_date == pd.Timestamp("2019-02-04") and before.judgement == "Inadequate"


def test_last_judgement_errors_are_one_line():
    with pytest.raises(CareTrendsError, match=r"Staffordshire has no inadequate .*2019-02-04 Good") as err:
        data.last_judgement("Staffordshire", "inadequate")
    assert "\n" not in str(err.value)
    with pytest.raises(CareTrendsError, match="did you mean 'inadequate'"):
        data.last_judgement("Stoke-on-Trent", "inadequat")
    with pytest.raises(CareTrendsError, match="did you mean 'Stoke-on-Trent'"):
        data.last_judgement("Stoke-on-Tren")
    with pytest.raises(CareTrendsError, match="'inspection' or 'publication'"):
        data.last_judgement("Stoke-on-Trent", date="report")
    with pytest.raises(CareTrendsError, match="no inadequate"):
        data.last_judgement("Stoke-on-Trent", "inadequate", before="2019-01-01")


def test_every_la_has_its_dated_judgements(inspections, raw_dir):
    judged = inspections[inspections["judgement"].notna()]
    assert len(judged) == 271 and judged["framework"].eq("ILACS").all()
    assert judged["inspection_date"].notna().all() and judged["publication_date"].notna().all()
    assert (judged["publication_date"] >= judged["inspection_date"]).all()
    assert set(judged["judgement_key"]) == set(reference.JUDGEMENTS)
    # Every current LA of the panel has at least one judgement; codes are the panel's old codes.
    current = data.list_las()
    current = current[current["geographic_level"].eq("Local authority") & current["last_year"].eq(2025)]
    missing = set(current["la_code"]) - set(judged["la_code"])
    assert missing <= {"420"}, missing        # Isles of Scilly: inspected with Cornwall
    assert inspections["la_code"].str.fullmatch(r"\d{3}").all()
    gone = inspections[inspections["la_status"].eq("No longer exists")]
    assert set(gone["la_code"]) == {"837", "909", "928"}   # Bournemouth, Cumbria, Northamptonshire
    visits = inspections[inspections["judgement"].isna()]
    assert set(visits["inspection_type"]) == {"ILACS Focused Visit", "LA Monitoring visit"}
    assert visits["visit_theme"].notna().any()


def test_national_inadequate_events(inspections):
    """Every LA's inadequate judgements as events (for the comparative-designs national analysis)."""
    inadequate = inspections[inspections["judgement_key"].eq("inadequate")]
    assert len(inadequate) == 35 and inadequate["la_code"].nunique() <= 35
    events = [data.last_judgement(code, "inadequate") for code in sorted(set(inadequate["la_code"]))]
    assert all(e.judgement == "Inadequate" for e in events)
