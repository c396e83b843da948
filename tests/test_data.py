"""helpers.data: the official panel, its provenance checks, and the reference data."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from helpers import cli, data
from helpers.core import paths, vocab
from helpers.data import build, reference, sources
from helpers.core.errors import CareTrendsError

EES_2025 = "dfe_csc_outcomes/cla_number_and_rate_per_10k_children_release2025_2021-2025.csv"


@pytest.fixture(scope="module")
def panel():
    return data.load_panel()


@pytest.fixture(scope="module")
def rebuilt(raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("processed")
    data.build_panel(raw_dir, output_dir=out)   # default imports folder, like `data build`
    return out


# ---------------------------------------------------------------- reproducibility

def test_rebuild_from_raw_equals_committed_panel(rebuilt):
    committed = data.panel_path().read_bytes()
    assert (rebuilt / data.PANEL_FILE).read_bytes() == committed
    assert (rebuilt / data.PROVENANCE_FILE).read_bytes() == \
        (paths.processed_dir() / data.PROVENANCE_FILE).read_bytes()


def test_statistical_neighbour_tables_rebuild_from_raw(raw_dir, tmp_path):
    written = reference.build_reference(raw_dir, tmp_path)
    for path in written.values():
        assert path.read_bytes() == (paths.reference_dir() / path.name).read_bytes()


def test_code_changes_are_listed_but_not_breaks():
    changes = data.code_changes().set_index("la_code")
    assert changes.loc["825", "new_la_code"] == "E06000060"          # Buckinghamshire unitary 2020
    assert changes.loc["933", "previous_new_la_code"] == "E10000027"  # Somerset county -> unitary
    assert not set(changes.index) & set(data.boundary_breaks()["la_code"])
    assert data.resolve_la("E10000002").la_code == "825"             # old GSS code still resolves


def test_manifest_matches_shared_sha256sums(raw_dir):
    shared = sources.read_manifest(raw_dir / "SHA256SUMS")
    ours = sources.read_manifest()
    assert ours and all(shared[name] == digest for name, digest in ours.items())


def test_in_memory_build_equals_loaded_panel(raw_dir, panel):
    built = data.build_panel(raw_dir, write=False)
    pd.testing.assert_frame_equal(built, panel)


# ---------------------------------------------------------------- checksum check

def _mirror(raw_dir, tmp_path):
    """A raw folder of symlinks to the real files (cheap), for breaking one file."""
    for rel in sources.read_manifest():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(raw_dir / rel, target)
    return tmp_path


def test_changed_raw_file_fails_checksum_with_one_line(raw_dir, tmp_path):
    mirror = _mirror(raw_dir, tmp_path)
    rel = "dfe_sfr_2010_2017/2015_SFR34_ADM2015.csv"
    (mirror / rel).unlink()
    (mirror / rel).write_bytes((raw_dir / rel).read_bytes().replace(b"Stoke-on-Trent,284", b"Stoke-on-Trent,285"))
    with pytest.raises(CareTrendsError) as err:
        data.build_panel(mirror, output_dir=tmp_path / "out")
    message = str(err.value)
    assert "\n" not in message
    assert rel in message and "SHA-256" in message and "gov.uk" in message
    assert not (tmp_path / "out").exists()   # nothing half-written


def test_missing_raw_file_names_file_and_where_to_get_it(raw_dir, tmp_path):
    mirror = _mirror(raw_dir, tmp_path)
    (mirror / EES_2025).unlink()
    with pytest.raises(CareTrendsError, match=r"release2025_2021-2025\.csv is missing.*explore-education-statistics"):
        data.check_raw_files(mirror)


def test_cli_build_reports_bad_raw_dir_without_traceback(tmp_path, capsys):
    code = cli.main(["data", "build", "--raw-dir", str(tmp_path), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("care-trends: error:") and "Traceback" not in err


# ---------------------------------------------------------------- published counts

@pytest.mark.parametrize("measure, year, expected", [
    ("cla_31_march", 2014, 536), ("cla_31_march", 2019, 851), ("cla_31_march", 2024, 1152),
    ("cla_31_march", 2025, 1063), ("starts", 2014, 226), ("starts", 2024, 287), ("starts", 2025, 178),
    ("starts", 2015, 284),   # 2015 SFR file whose header says CLA_started2014
])
def test_stoke_published_counts_exact(panel, measure, year, expected):
    series = data.annual_series("Stoke-on-Trent", measure, panel=panel).set_index("year")
    assert series.loc[year, "count"] == expected


def test_england_31_march_2025(panel):
    eng = data.annual_series("England", "cla_31_march", panel=panel).set_index("year")
    assert eng.loc[2025, "count"] == 81_770
    assert eng.loc[2025, "count_rounding"] == "nearest_10"
    assert eng.loc[2010, "count_rounding"] == "nearest_100"


def test_panel_shape_and_columns(panel):
    assert list(panel.columns) == data.PANEL_COLUMNS
    assert set(panel["measure"]) == set(vocab.MEASURES)  # the vocabulary moved to helpers.core
    assert panel["year"].min() == 2010 and panel["year"].max() == 2025
    assert set(panel["geographic_level"]) == {"National", "Regional", "Local authority"}
    la = panel[panel["geographic_level"].eq("Local authority")]
    assert la["la_code"].str.fullmatch(r"\d{3}").all()
    assert panel.loc[~panel["geographic_level"].eq("Local authority"), "la_code"].isna().all()
    assert not panel.duplicated(["year", "geographic_level", "la_code", "new_la_code", "measure"]).any()


def test_every_la_year_has_three_measures_or_a_flag(panel):
    la = panel[panel["geographic_level"].eq("Local authority") & panel["measure"].isin(data.LOOKED_AFTER_MEASURES)]
    per_year = la.groupby(["la_code", "year"])["measure"].nunique()
    assert (per_year == 3).all()
    missing = la[la["count"].isna()]
    assert missing["count_status"].isin(["suppressed", "not_applicable", "not_in_source"]).all()
    assert la.loc[la["count"].notna(), "count_status"].eq("published").all()


def test_rate_provenance(panel):
    assert set(panel["rate_source"].dropna()) == {"published", "computed", "computed_interpolated_population"}
    stoke = data.annual_series(861, "cla_31_march", panel=panel).set_index("year")
    assert stoke.loc[2025, "rate_per_10000"] == 170 and stoke.loc[2025, "rate_source"] == "published"
    assert stoke.loc[2016, "rate_source"] == "published"          # LAIT
    assert stoke.loc[2014, "rate_source"] == "computed"
    assert stoke.loc[2012, "rate_source"] == "computed_interpolated_population"
    assert stoke.loc[2014, "rate_per_10000"] == pytest.approx(536 / stoke.loc[2014, "population"] * 1e4, abs=0.05)
    starts = data.annual_series(861, "starts", panel=panel).set_index("year")
    assert starts.loc[2017, "rate_source"] == "computed" and starts.loc[2018, "rate_source"] == "published"
    # Rates exist wherever a count exists.
    assert panel.loc[panel["count"].notna(), "rate_per_10000"].notna().all()


# ---------------------------------------------------------------- suppression

def test_symbols_become_missing_never_zero():
    raw = pd.Series(["12", "0", "x", "c", "z", ":", " 1,204 "])
    assert build._number(raw).tolist()[:2] == [12.0, 0.0]
    assert build._number(raw).iloc[2:6].isna().all() and build._number(raw).iloc[6] == 1204
    assert build._status(raw).tolist() == ["published", "published", "suppressed", "suppressed",
                                           "not_applicable", "not_applicable", "published"]


def test_suppressed_value_is_nan_with_flag(panel):
    city = data.annual_series("city of london", "starts", panel=panel).set_index("year")
    assert math.isnan(city.loc[2010, "count"])
    assert city.loc[2010, "suppressed"] and city.loc[2010, "count_status"] == "suppressed"
    assert math.isnan(city.loc[2010, "rate_per_10000"])
    assert (panel.loc[panel["suppressed"], "count"].isna()).all()
    cl25 = data.annual_series("City of London", "cla_31_march", panel=panel).set_index("year")
    assert cl25.loc[2025, "count_status"] == "suppressed"          # EES 'c'
    scilly = data.annual_series("Isles of Scilly", "starts", panel=panel).set_index("year")
    assert scilly.loc[2025, "count_status"] == "not_applicable"     # EES 'z'
    assert scilly.loc[2014, "count_status"] == "not_in_source"      # absent from SFR 2011-2017


# ---------------------------------------------------------------- boundary changes

def test_boundary_breaks_found_in_data():
    breaks = data.boundary_breaks().set_index("la_code")
    assert breaks.loc["928", "role"] == "predecessor" and breaks.loc["928", "boundary_year"] == 2022
    assert breaks.loc["940", "role"] == "successor" and breaks.loc["941", "predecessors"] == "928"
    assert breaks.loc["909", "successors"] == "942 943" and breaks.loc["942", "boundary_year"] == 2024
    assert breaks.loc["839", "predecessors"] == "835 836 837" and breaks.loc["835", "last_year_before"] == 2019
    assert "861" not in breaks.index and "420" not in breaks.index   # Scilly's gap is not a boundary change


def test_boundary_flag_on_panel_rows(panel):
    north = data.annual_series("North Northamptonshire", "starts", panel=panel)
    assert north["year"].min() == 2022 and north["boundary_flag"].eq("successor").all()
    old = data.annual_series("928", "starts", panel=panel)
    assert old["year"].max() == 2021 and old["boundary_year"].eq(2022).all()
    assert data.annual_series("Stoke-on-Trent", "starts", panel=panel)["boundary_flag"].isna().all()


def test_boundary_detection_is_data_driven():
    rows = [("Local authority", code, year, region) for code, years, region in [
        ("100", range(2010, 2016), "R1"), ("101", range(2016, 2020), "R1"), ("102", range(2016, 2020), "R1"),
        ("200", range(2010, 2020), "R2")] for year in years]
    toy = pd.DataFrame(rows, columns=["geographic_level", "key", "year", "region_name"])
    toy = toy.assign(la_name="LA " + toy["key"], count_status="published")
    found = build.detect_boundary_changes(toy).set_index("la_code")
    assert sorted(found.index) == ["100", "101", "102"]
    assert found.loc["100", "successors"] == "101 102" and found.loc["101", "boundary_year"] == 2016


# ---------------------------------------------------------------- names

def test_annual_series_names_case_insensitive_and_codes(panel):
    a = data.annual_series("STOKE-ON-TRENT", "starts", panel=panel)
    b = data.annual_series("861", "starts", panel=panel)
    c = data.annual_series("E06000021", "starts", 2014, 2025, panel=panel)
    pd.testing.assert_frame_equal(a, b)
    assert c["year"].tolist() == list(range(2014, 2026))
    assert list(a.columns[:5]) == ["year", "count", "population", "rate_per_10000", "rate_source"]
    rec = data.resolve_la("stoke on trent", panel)
    assert (rec.la_code, rec.new_la_code, rec.region_name) == ("861", "E06000021", "West Midlands")
    assert data.resolve_la("Dorset", panel).la_code == "838"        # newest Dorset; old one is 835
    assert data.resolve_la("west midlands", panel).la_code is None


def test_shared_panel_series_by_index_equal_a_scan(panel):
    """Series of the shared panel come from an index (a national run reads thousands): the same
    frames as a scan of a copy of the panel, for LAs, regions and England; each call a fresh
    frame, so a caller changing one changes nothing else."""
    for area in ("861", "Staffordshire", "West Midlands", "England", "Derby"):
        for measure in ("starts", "cla_31_march", "referrals"):
            for years in ((None, None), (2018, None), (None, 2022), (2018, 2022)):
                pd.testing.assert_frame_equal(data.annual_series(area, measure, *years),
                                              data.annual_series(area, measure, *years,
                                                                 panel=panel))
    first = data.annual_series("861", "starts")
    first.loc[0, "count"] = -1
    assert data.annual_series("861", "starts").loc[0, "count"] >= 0
    assert data.resolve_la("stoke on trent") == data.resolve_la("stoke on trent", panel)
    assert data.resolve_la(861) is data.resolve_la(861)      # kept: records are immutable
    pd.testing.assert_frame_equal(data.boundary_breaks(), data.boundary_breaks(panel))


def test_unknown_la_suggests_close_name(panel):
    with pytest.raises(CareTrendsError, match=r"unknown local authority 'Stoke-on-Tren'; did you mean 'Stoke-on-Trent'"):
        data.annual_series("Stoke-on-Tren", "starts", panel=panel)
    with pytest.raises(CareTrendsError, match=r"unknown local authority 'stoke'; did you mean 'Stoke-on-Trent'\?"):
        data.annual_series("stoke", "starts", panel=panel)
    with pytest.raises(CareTrendsError, match="use an LA name as DfE writes it"):
        data.annual_series("Atlantis", "starts", panel=panel)
    with pytest.raises(CareTrendsError, match="did you mean 'starts'"):
        data.annual_series("Stoke-on-Trent", "start", panel=panel)
    with pytest.raises(CareTrendsError, match="outside the data"):
        data.annual_series("Stoke-on-Trent", "starts", start_year=2005, panel=panel)


# ---------------------------------------------------------------- reference data

def test_statistical_neighbours():
    sn21 = data.statistical_neighbours("Stoke-on-Trent", edition="2021")
    sn25 = data.statistical_neighbours("861", edition="2025")
    assert len(sn21) == 10 and len(sn25) == 10 and "861" not in sn21
    assert sn21[0] == "810" and sn25[0] == "335"
    with pytest.raises(CareTrendsError, match="2021' or '2025"):
        data.statistical_neighbours("861", edition="2019")


def test_events_and_council_reported():
    events = data.load_events("Stoke-on-Trent").set_index("event_id")
    assert events.loc["inadequate_2019", "date"] == pd.Timestamp("2019-02-04")
    assert events.loc["family_matters", "precision"] == "approx"
    assert events.loc["strategies_2020", "precision"] == "month"
    assert events["source"].notna().all()
    staffs = data.load_events("Staffordshire")
    assert staffs["date"].tolist() == [pd.Timestamp("2019-11-22")]
    council = data.council_reported("Stoke-on-Trent")
    assert council["count"].tolist() == [991, 1004, 1168, 1156, 1143, 1066, 1086]
    assert council["status"].str.contains("not official").all()


# ---------------------------------------------------------------- data import

def _next_edition(raw_dir, tmp_path):
    """The 2025 release relabelled as a 2026 edition with a few counts changed."""
    df = pd.read_csv(raw_dir / EES_2025, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df["time_period"] = (df["time_period"].astype(int) + 1).astype(str)
    stoke_cla = (df["old_la_code"] == "861") & (df["time_period"] == "2026") & \
        df["population_type"].str.contains("31 March")
    df.loc[stoke_cla, "children_count"] = "1001"
    path = tmp_path / "cla_number_and_rate_per_10k_children_release2026.csv"
    df.to_csv(path, index=False)
    return path


def test_import_next_edition(raw_dir, tmp_path):
    new = _next_edition(raw_dir, tmp_path)
    out, imports = tmp_path / "processed", tmp_path / "imports"
    panel = data.import_edition(new, raw_dir, output_dir=out, imports=imports)
    assert panel["year"].max() == 2026
    stoke = data.annual_series("861", "cla_31_march", panel=panel).set_index("year")
    assert stoke.loc[2026, "count"] == 1001 and "imported" in stoke.loc[2026, "count_source"]
    assert stoke.loc[2014, "count"] == 536
    assert (out / data.PANEL_FILE).exists() and list(imports.glob("*.csv"))
    assert data.load_panel(out / data.PANEL_FILE)["year"].max() == 2026


def test_import_wrong_file_clear_error(raw_dir, tmp_path, capsys):
    wrong = raw_dir / "dfe_csc_outcomes/ons_mid-year_population_estimates_2012_to_2024.csv"
    with pytest.raises(CareTrendsError, match=r"is not the EES 'CLA numbers and rates.*missing column"):
        data.import_edition(wrong, raw_dir, output_dir=tmp_path, imports=tmp_path)
    code = cli.main(["data", "import", str(raw_dir / "dfe_lait/bds_long_0_09c1940.parquet"),
                     "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "not" in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_import_refuses_an_edition_already_used(raw_dir, tmp_path):
    with pytest.raises(CareTrendsError, match="already uses the 2025 release"):
        data.import_edition(raw_dir / EES_2025, raw_dir, output_dir=tmp_path, imports=tmp_path)


def test_import_validates_measure_labels(raw_dir, tmp_path):
    df = pd.read_csv(raw_dir / EES_2025, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df["time_period"] = "2026"
    df["population_type"] = "Children in need"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(CareTrendsError, match="unexpected population_type value 'Children in need'"):
        data.import_edition(bad, raw_dir, output_dir=tmp_path, imports=tmp_path / "imp")
    assert not (tmp_path / "imp").exists() or not list((tmp_path / "imp").glob("*.csv"))


def test_load_panel_missing_or_wrong_file(tmp_path):
    with pytest.raises(CareTrendsError, match="care-trends data build"):
        data.load_panel(tmp_path / "nope.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CareTrendsError, match="not a care-trends panel"):
        data.load_panel(tmp_path / "other.csv")


def test_numbers_are_floats_and_nan_not_zero(panel):
    assert panel["count"].dtype == np.float64 and panel["population"].dtype == np.float64
    assert not (panel["count_status"].ne("published") & panel["count"].eq(0)).any()


def test_cli_data_build_writes_identical_panel(raw_dir, tmp_path, capsys):
    code = cli.main(["data", "build", "--raw-dir", str(raw_dir), "--output", str(tmp_path)])
    assert code == 0 and "wrote" in capsys.readouterr().out
    assert (tmp_path / data.PANEL_FILE).read_bytes() == data.panel_path().read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))    # atomic write leaves no temp files


def test_cli_series_unknown_la(capsys):
    assert cli.main(["data", "series", "Stoke-on-Tren", "starts"]) == 2
    assert "did you mean 'Stoke-on-Trent'" in capsys.readouterr().err


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["x", "c", "z", ":", "..", "low", "", " ", "-"]),
                          st.integers(0, 10_000).map(str)), min_size=1, max_size=20))
def test_symbols_never_read_as_numbers(values):
    raw = pd.Series(values, dtype="object")
    numbers, status = build._number(raw), build._status(raw)
    is_digit = raw.str.strip().str.fullmatch(r"\d+")
    assert (numbers.notna() == is_digit).all()
    assert (status.eq("published") == is_digit).all()
    assert (numbers[is_digit] == raw[is_digit].astype(int)).all()
