"""The early-help pathway in the panel (issue 15): published figures reproduced exactly, units,
suppression, computed-rate labels, the starts breakdown table, and the vocabulary."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import data
from helpers.core import paths, vocab
from helpers.core.errors import CareTrendsError
from helpers.data import breakdown, build, pathway


@pytest.fixture(scope="module")
def panel():
    return data.load_panel()


def _values(panel, la, measure):
    return data.annual_series(la, measure, panel=panel).set_index("year")


# ---------------------------------------------------------------- published figures, exactly

@pytest.mark.parametrize("measure, year, expected", [
    ("referrals", 2023, 5410), ("referrals", 2024, 4798), ("referrals", 2025, 3874),
    ("cpp_starts", 2023, 695), ("cpp_starts", 2024, 714), ("cpp_starts", 2025, 436),
    ("rereferrals", 2025, 812), ("cin_31_march", 2025, 3186), ("cin_starts", 2025, 2182),
    ("cpp_31_march", 2025, 316), ("cpp_subsequent", 2025, 124),
])
def test_stoke_front_door_counts_exact(panel, measure, year, expected):
    series = _values(panel, "Stoke-on-Trent", measure)
    assert series.loc[year, "count"] == expected and series.loc[year, "value"] == expected
    assert series.loc[year, "count_status"] == "published"
    assert series.loc[year, "count_rounding"] == "exact"


@pytest.mark.parametrize("measure, year, expected, unit", [
    ("rereferral_percent", 2025, 21.0, "percent"), ("rereferral_percent", 2020, 33.2, "percent"),
    ("referrals_not_in_need_percent", 2025, 40.0, "percent"),
    ("cpp_subsequent_percent", 2025, 28.4, "percent"),
    ("lac_spend", 2025, 85_548_553, "GBP"), ("lac_spend", 2017, 30_199_815, "GBP"),
    ("lac_spend_per_child_week", 2025, 1545, "GBP per child looked after per week"),
    ("sw_turnover_rate", 2024, 11.3, "percent"),     # workforce year to 30 September 2024
    ("sw_agency_rate", 2025, 15.9, "percent"),       # workforce year to 30 September 2025
])
def test_stoke_non_count_values_exact(panel, measure, year, expected, unit):
    series = _values(panel, 861, measure)
    assert series.loc[year, "value"] == expected
    assert series.loc[year, "unit"] == unit
    assert pd.isna(series.loc[year, "count"])           # never enters a count model
    assert pd.isna(series.loc[year, "rate_per_10000"]) and pd.isna(series.loc[year, "population"])


def test_england_front_door_2025(panel):
    eng = _values(panel, "England", "referrals")
    assert eng.loc[2025, "count"] == 632_830 and eng.loc[2025, "count_rounding"] == "nearest_10"
    assert _values(panel, "England", "cpp_starts").loc[2025, "count"] == 61_840
    assert _values(panel, "England", "lac_spend").loc[2025, "value"] == 8_955_421_269


def test_panel_csv_writes_large_values_without_exponent():
    text = data.panel_path().read_text(encoding="utf-8")
    assert ",8955421269,GBP\n" in text and "e+" not in text


# ---------------------------------------------------------------- coverage, units, statuses

def test_every_pathway_measure_covers_every_la_and_published_year(panel):
    la = panel[panel["geographic_level"].eq("Local authority")]
    life = la[la["measure"].eq("starts")].groupby("la_code")["year"].agg(["min", "max"])
    spans = {"referrals": (2013, 2025), "cin_31_march": (2013, 2025), "cpp_starts": (2013, 2025),
             "cpp_31_march": (2013, 2025), "lac_spend": (2017, 2025), "sw_turnover_rate": (2017, 2025)}
    for measure, (lo, hi) in spans.items():
        rows = la[la["measure"].eq(measure)]
        assert (rows["year"].min(), rows["year"].max()) == (lo, hi)
        have = set(zip(rows["la_code"], rows["year"]))
        for code, (first, last) in life.iterrows():
            expected = {(code, y) for y in range(max(lo, first), min(hi, last) + 1)}
            assert expected <= have, (measure, code, sorted(expected - have)[:3])
    assert not panel.duplicated(["year", "geographic_level", "la_code", "new_la_code", "measure"]).any()


def test_units_and_counts(panel):
    assert panel["unit"].notna().all()
    assert set(panel["measure"]) == set(vocab.MEASURES)
    for measure, unit in pathway.UNITS.items():
        assert set(panel.loc[panel["measure"].eq(measure), "unit"]) == {unit}
    counts = panel["unit"].isin(pathway.COUNT_UNITS)
    assert panel.loc[~counts, "count"].isna().all()
    both = panel[counts & panel["value"].notna()]
    assert (both["value"] == both["count"]).all()
    # every published count has a rate, labelled published or computed
    assert both["rate_per_10000"].notna().all()
    assert set(panel.loc[~counts, "rate_source"].dropna()) == set()


def test_suppressed_front_door_values_are_missing_not_zero(panel):
    new = panel[panel["measure"].isin(pathway.PATHWAY_MEASURES)]
    suppressed = new[new["suppressed"]]
    assert len(suppressed) > 0 and suppressed["value"].isna().all() and suppressed["count"].isna().all()
    assert suppressed["count_status"].eq("suppressed").all()
    assert new.loc[new["value"].isna(), "count_status"].isin(
        ["suppressed", "not_applicable", "not_in_source"]).all()
    # A published 0 stays 0 (Stoke's 2013 'no further action' style zeros are real numbers).
    assert (new.loc[new["count_status"].eq("published"), "value"].notna()).all()


def test_rates_published_by_lait_else_computed(panel):
    refs = _values(panel, 861, "referrals")
    assert refs.loc[2025, "rate_source"] == "published" and refs.loc[2025, "rate_per_10000"] == 619.6
    assert refs.loc[2015, "rate_source"] == "computed"           # LAIT starts in 2016
    assert refs.loc[2015, "rate_per_10000"] == pytest.approx(4311 / refs.loc[2015, "population"] * 1e4, abs=0.05)
    cpp = _values(panel, 861, "cpp_starts")
    assert set(cpp["rate_source"]) == {"computed"}               # no published starting-plan rate
    assert _values(panel, 861, "cin_31_march").loc[2025, "rate_per_10000"] == 509.6
    # Published rates agree with count / population to rounding, where both exist.
    rows = panel[panel["measure"].isin(["referrals", "cin_31_march", "cpp_31_march"])
                 & panel["rate_source"].eq("published") & panel["geographic_level"].eq("Local authority")]
    implied = rows["count"] / rows["population"] * 1e4
    assert ((implied - rows["rate_per_10000"]).abs() / rows["rate_per_10000"]).median() < 0.005


def test_lait_percentages_agree_with_ees(raw_dir, panel):
    """The c1 file's re-referral % and LAIT's ReReferral indicator are the same published figure."""
    lait = pd.read_parquet(raw_dir / pathway.LAIT_FILE, filters=[("Short Desc", "==", "ReReferral")])
    lait = lait[lait["LA Number"].lt(900)]
    lait = pd.DataFrame({"la_code": lait["LA Number"].astype(int).astype(str),
                         "year": lait["Years"].astype(int),
                         "lait": pd.to_numeric(lait["Values"], errors="coerce")}).dropna()
    ours = panel[panel["measure"].eq("rereferral_percent")][["la_code", "year", "value"]]
    both = lait.merge(ours, on=["la_code", "year"])
    assert len(both) > 1000
    assert ((both["lait"] - both["value"]).abs() < 0.051).mean() > 0.99


def test_spend_per_child_is_total_over_children_looked_after(panel):
    """LACFinance = TotalLACFinance / children looked after on 31 March / 365 x 7, to the £5."""
    wide = panel[panel["geographic_level"].eq("Local authority")].pivot_table(
        index=["la_code", "year"], columns="measure", values="value")
    wide = wide.dropna(subset=["lac_spend", "lac_spend_per_child_week", "cla_31_march"])
    ratio = wide["lac_spend"] / wide["cla_31_march"] / 365 * 7 / wide["lac_spend_per_child_week"]
    assert len(ratio) > 1000 and abs(ratio.median() - 1) < 0.005


def test_workforce_keeps_the_publishers_year_to_30_september(panel):
    assert panel["year"].max() == 2025                     # no year without looked-after data
    bcp = data.annual_series("839", "sw_turnover_rate", panel=panel)
    assert bcp["year"].min() == 2019                       # September 2019: BCP existed from April 2019
    assert "workforce year to 30 September 2019" in bcp.set_index("year").loc[2019, "count_source"]
    assert data.annual_series("839", "starts", panel=panel)["year"].min() == 2020
    dorset_old = data.annual_series("835", "sw_turnover_rate", panel=panel).set_index("year")
    assert dorset_old.loc[2019, "count_status"] == "not_in_source"   # gone by September 2019
    kingston = data.annual_series("314", "sw_agency_rate", panel=panel).set_index("year")
    assert "published jointly for 314/318" in kingston.loc[2025, "count_source"]
    assert kingston.loc[2025, "value"] == data.annual_series("318", "sw_agency_rate", panel=panel).set_index(
        "year").loc[2025, "value"]


def test_area_identity_still_from_looked_after_series(panel):
    rec = data.resolve_la("Stoke-on-Trent", panel)
    assert (rec.first_year, rec.last_year) == (2010, 2025)
    assert data.resolve_la("839", panel).first_year == 2020   # not the 2019 workforce year
    assert data.resolve_la("Dorset", panel).la_code == "838"


def test_provenance_lists_each_measure():
    import json
    info = json.loads((paths.processed_dir() / data.PROVENANCE_FILE).read_text())
    assert info["measures"]["referrals"]["unit"] == "referrals"
    assert info["measures"]["referrals"]["years"] == [2013, 2025]
    assert info["measures"]["lac_spend"]["rate_sources"] == []
    assert any("c1_children" in k for k in info["raw_files_sha256"])
    assert "LA_Inspection" in " ".join(info["raw_files_sha256"])


def test_annual_series_accepts_every_pathway_measure(panel):
    for measure in pathway.PATHWAY_MEASURES:
        series = data.annual_series("Staffordshire", measure, panel=panel)
        assert len(series) >= 8 and list(series.columns[-2:]) == ["value", "unit"]
    with pytest.raises(CareTrendsError, match="did you mean 'referrals'"):
        data.annual_series("Staffordshire", "referals", panel=panel)


# ---------------------------------------------------------------- starts breakdown table

@pytest.fixture(scope="module")
def starts_breakdown():
    return data.load_starts_breakdown()


def test_breakdown_rebuilds_byte_identical(raw_dir):
    text = breakdown.breakdown_to_csv_text(breakdown.build_starts_breakdown(raw_dir))
    assert text == (paths.processed_dir() / data.BREAKDOWN_FILE).read_text(encoding="utf-8")


def test_breakdown_stoke_published_figures(starts_breakdown):
    stoke = data.load_starts_breakdown("Stoke-on-Trent", "legal_status").set_index(["year", "category"])["count"]
    assert stoke[(2022, "Interim care order")] == 114 and stoke[(2022, "Voluntary agreement under S20")] == 133
    assert stoke[(2015, "Voluntary agreement under S20")] == 160       # SFR34/2015, header quirk year
    ages = data.load_starts_breakdown(861, "age_group").set_index(["year", "category"])["count"]
    assert ages[(2017, "Under 1 year")] == 53 and ages[(2022, "Under 1 year")] == 51
    need = data.load_starts_breakdown(861, "category_of_need")
    suppressed = need[(need["year"] == 2022) & (need["category"] == "N2. Child's disability")]
    assert suppressed["count_status"].item() == "suppressed" and pd.isna(suppressed["count"].item())


def test_breakdown_totals_match_panel_starts_where_same_source(starts_breakdown, panel):
    """2011-2017 totals come from the same SFR files as the panel's starts: identical."""
    totals = starts_breakdown[starts_breakdown["category"].eq("Total") & starts_breakdown["breakdown"].eq("age_group")
                              & starts_breakdown["geographic_level"].eq("Local authority")
                              & starts_breakdown["year"].le(2017)]
    starts = panel[panel["measure"].eq("starts")][["la_code", "year", "count"]]
    both = totals.merge(starts, on=["la_code", "year"], suffixes=("_b", "_p")).dropna()
    assert len(both) > 900 and (both["count_b"] == both["count_p"]).all()


def test_breakdown_categories_sum_to_total(starts_breakdown):
    la = starts_breakdown[starts_breakdown["geographic_level"].eq("Local authority")]
    parts = la[la["category"].ne("Total")].groupby(["la_code", "year", "breakdown"])
    complete = parts["count_status"].agg(lambda s: s.eq("published").all())
    sums = parts["count"].sum()[complete]
    total = la[la["category"].eq("Total")].set_index(["la_code", "year", "breakdown"])["count"]
    joined = pd.concat([sums.rename("sum"), total.rename("total")], axis=1, join="inner").dropna()
    assert len(joined) > 1000
    # Exact from 2013; the 2011-2012 SFR files are off by one for a few LAs (as published).
    late = joined[joined.index.get_level_values("year") >= 2013]
    assert (late["sum"] == late["total"]).all()
    assert ((joined["sum"] - joined["total"]).abs() <= 1).all()


def test_breakdown_unknown_name():
    with pytest.raises(CareTrendsError, match="did you mean 'legal_status'"):
        data.load_starts_breakdown(861, "legal status")


# ---------------------------------------------------------------- vocabulary

def test_vocabulary_has_every_panel_measure_with_a_stage(panel):
    assert set(vocab.MEASURES) == set(panel["measure"])
    assert vocab.LOOKED_AFTER_MEASURES == ("cla_31_march", "starts", "ceased")
    assert data.LOOKED_AFTER_MEASURES == vocab.LOOKED_AFTER_MEASURES and data.MEASURES == vocab.MEASURES
    for key in vocab.MEASURES:
        info = vocab.measure(key)
        assert info.stage in vocab.STAGES and info.label and info.noun
        assert (info.counts is not None) == (pathway.UNITS.get(key, "children") in pathway.COUNT_UNITS)
    assert vocab.measure("referrals").stage == "front door"
    assert vocab.measure("starts").stage == "looked after"
    assert vocab.measure("cla_month_end").stage == "looked after"
    assert build.MEASURES[:3] == ("cla_31_march", "starts", "ceased")   # panel order unchanged
