"""`care-trends data import` (next EES edition of each dataset; what changed; transactional) and
`care-trends data fetch` (publisher URLs, checked against the manifest; recorded responses)."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import io
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

from helpers import cli, data
from helpers.core.errors import CareTrendsError
from helpers.data import fetch, importer, pathway, sources

EES_2025 = "dfe_csc_outcomes/cla_number_and_rate_per_10k_children_release2025_2021-2025.csv"
C1 = "dfe_csc_outcomes/c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv"
CSWW = "dfe_csc_outcomes/csww_indicators_2017_to_2025.csv"
TODAY = dt.date(2026, 11, 30)     # late November 2026: the reporting-year-2026 edition is out


def _read(raw_dir, rel):
    return pd.read_csv(raw_dir / rel, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _write(df, path):
    df.to_csv(path, index=False, lineterminator="\n")
    return path


def cla_2026(raw_dir, tmp_path, name="cla_number_and_rate_per_10k_children_2026.csv"):
    """A reporting-year-2026 file in the 2025 layout: 2022-2026 (a new year added, 2021 dropped as
    EES's five-year window does) with England's 2024 starts revised."""
    df = _read(raw_dir, EES_2025)
    new = df[df["time_period"].eq("2025")].copy()
    new["time_period"] = "2026"
    stoke_cla = new["old_la_code"].eq("861") & new["population_type"].str.contains("31 March")
    new.loc[stoke_cla, "children_count"] = "1001"
    staffs_cla = new["old_la_code"].eq("860") & new["population_type"].str.contains("31 March")
    new.loc[staffs_cla, "children_count"] = "1101"
    out = pd.concat([new, df[df["time_period"].ne("2021")]], ignore_index=True)
    revised = (out["time_period"].eq("2024") & out["geographic_level"].eq("National")
               & out["population_type"].str.contains("starting"))
    assert out.loc[revised, "children_count"].tolist() == ["33130"]
    out.loc[revised, "children_count"] = "33100"
    return _write(out[df.columns], tmp_path / name)


def c1_2026(raw_dir, tmp_path):
    """Next 'Children in need' C1 edition: 2013-2026, Stoke 2026 referrals 3,500, England 2024 revised."""
    df = _read(raw_dir, C1)
    new = df[df["time_period"].eq("2025")].copy()
    new["time_period"] = "2026"
    new.loc[new["old_la_code"].eq("861"), "referral_count"] = "3500"
    out = pd.concat([new, df], ignore_index=True)
    england_2024 = out["time_period"].eq("2024") & out["geographic_level"].eq("National")
    out.loc[england_2024, "referral_count"] = "650000"
    return _write(out, tmp_path / "c1_children_in_need_referrals_and_rereferrals_2013_to_2026.csv")


@pytest.fixture()
def place(tmp_path):
    """An output folder holding a copy of the committed panel, and an (absent) imports folder."""
    out = tmp_path / "processed"
    out.mkdir()
    for name in (data.PANEL_FILE, data.PROVENANCE_FILE):
        shutil.copyfile(data.panel_path().parent / name, out / name)
    return out, tmp_path / "imports"


def _state(*folders):
    """Every file's bytes under the folders (and which folders exist): 'byte-identical' means equal."""
    state = {}
    for folder in folders:
        state[str(folder)] = folder.exists()
        if folder.exists():
            state.update({str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})
    return state


# ---------------------------------------------------------------- the 2026 looked-after edition

def test_import_2026_looked_after_edition(raw_dir, tmp_path, place):
    out, imports = place
    result = data.import_file(cla_2026(raw_dir, tmp_path), raw_dir, output_dir=out, imports=imports,
                              today=TODAY)
    assert result.written and result.dataset == "cla_rates" and result.edition == 2026
    assert result.years_in_file == [2022, 2023, 2024, 2025, 2026]
    assert {m: y for m, y in result.years_added.items() if y} == {
        "cla_31_march": [2026], "starts": [2026], "ceased": [2026]}
    # Exactly the one revised back-year, reported with old and new values.
    assert len(result.revisions) == 1
    r = result.revisions.iloc[0]
    assert (r["area"], r["year"], r["measure"], r["old_value"], r["new_value"]) == ("England", 2024, "starts", 33130, 33100)
    text = result.summary()
    assert "England 2024 starts revised from 33,130 to 33,100" in text
    assert "years added: 2026 for cla_31_march, starts, ceased" in text
    # Stored under its dataset and edition; the panel on disk extends every looked-after series.
    assert [p.name for p in imports.iterdir()] == ["cla_number_and_rate_per_10k_children_release2026.csv"]
    panel = data.load_panel(out / data.PANEL_FILE)
    stoke = data.annual_series("861", "cla_31_march", panel=panel).set_index("year")
    assert stoke.loc[2026, "count"] == 1001 and "imported" in stoke.loc[2026, "count_source"]
    assert stoke.loc[2014, "count"] == 536
    staffs = data.annual_series("Staffordshire", "cla_31_march", panel=panel).set_index("year")
    assert staffs.loc[2026, "count"] == 1101          # the year Staffordshire's target (848) falls due
    england = data.annual_series("England", "starts", panel=panel).set_index("year")
    assert england.loc[2024, "count"] == 33100
    # Rebuilding from raw + the imports folder gives the same bytes (reproducible).
    again = tmp_path / "again"
    data.build_panel(raw_dir, output_dir=again, imports=imports)
    assert (again / data.PANEL_FILE).read_bytes() == (out / data.PANEL_FILE).read_bytes()
    assert (again / data.PROVENANCE_FILE).read_bytes() == (out / data.PROVENANCE_FILE).read_bytes()


def test_dry_run_reports_but_writes_nothing(raw_dir, tmp_path, place):
    out, imports = place
    before = _state(out, imports)
    result = data.import_file(cla_2026(raw_dir, tmp_path), raw_dir, output_dir=out, imports=imports,
                              dry_run=True, today=TODAY)
    assert not result.written and "would import" in result.summary() and len(result.revisions) == 1
    assert _state(out, imports) == before


def test_import_next_children_in_need_edition(raw_dir, tmp_path, place):
    out, imports = place
    result = data.import_file(c1_2026(raw_dir, tmp_path), raw_dir, output_dir=out, imports=imports,
                              today=TODAY)
    assert result.dataset == "cin_referrals" and result.edition == 2026
    added = {m: y for m, y in result.years_added.items() if y}
    assert added == {m: [2026] for m in ("referrals", "rereferrals", "rereferral_percent",
                                         "referrals_not_in_need_percent")}
    before = data.annual_series("England", "referrals").set_index("year").loc[2024, "count"]
    england = result.revisions.query("area == 'England' and measure == 'referrals'")
    assert england[["year", "old_value", "new_value"]].values.tolist() == [[2024, before, 650000]]
    assert f"England 2024 referrals revised from {before:,.0f} to 650,000" in result.summary()
    panel = data.load_panel(out / data.PANEL_FILE)
    refs = data.annual_series("Stoke-on-Trent", "referrals", panel=panel).set_index("year")
    assert refs.loc[2026, "count"] == 3500 and refs.loc[2025, "count"] == 3874
    # No looked-after 2026 population yet: carried from 2025 and labelled.
    assert refs.loc[2026, "population_source"] == "carried from nearest published estimate"
    assert refs.loc[2026, "rate_source"] == "computed_interpolated_population"
    assert "imported" in refs.loc[2026, "count_source"]


def test_import_next_workforce_edition(raw_dir, tmp_path, place):
    out, imports = place
    df = _read(raw_dir, CSWW)
    new = df[df["time_period"].eq("2025")].assign(time_period="2026")
    path = _write(pd.concat([new, df]), tmp_path / "csww_indicators_2017_to_2026.csv")
    result = data.import_file(path, raw_dir, output_dir=out, imports=imports, today=TODAY)
    assert result.years_added["sw_turnover_rate"] == [2026]          # year to 30 September 2026
    with pytest.raises(CareTrendsError, match="has not ended yet"):  # before 30 September 2026 it cannot exist
        data.import_file(path, raw_dir, output_dir=out, imports=tmp_path / "other",
                         today=dt.date(2026, 9, 1))


def test_cli_import_dry_run_prints_what_changed(raw_dir, tmp_path, capsys):
    code = cli.main(["data", "import", str(cla_2026(raw_dir, tmp_path)), "--raw-dir", str(raw_dir),
                     "--output", str(tmp_path / "out"), "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and "would import" in printed and "England 2024 starts revised from 33,130 to 33,100" in printed
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- refused files leave nothing changed

def _bad_cla(raw_dir, tmp_path, change):
    df = pd.read_csv(cla_2026(raw_dir, tmp_path), dtype=str, keep_default_na=False)
    df = change(df)
    return _write(df, tmp_path / "bad.csv")


def _stoke_2026(df):
    return df["old_la_code"].eq("861") & df["time_period"].eq("2026")


BAD_FILES = {
    "text in a count column": (lambda df: df.assign(children_count=df["children_count"].mask(_stoke_2026(df), "about 1000")),
                               r"children_count has 'about 1000' on line \d+ \(2026, Local authority 861\)"),
    "duplicate LA rows": (lambda df: pd.concat([df, df[_stoke_2026(df)]]),
                          r"duplicate rows for the same area and year"),
    "negative counts": (lambda df: df.assign(children_count=df["children_count"].mask(_stoke_2026(df), "-5")),
                        r"children_count is negative \(-5\)"),
    "a year like 2099": (lambda df: df.assign(time_period=df["time_period"].replace("2026", "2099")),
                         r"time_period 2099 has not ended yet"),
    "a fractional count": (lambda df: df.assign(children_count=df["children_count"].mask(_stoke_2026(df), "10.5")),
                           r"whole numbers"),
    "a malformed LA code": (lambda df: df.assign(old_la_code=df["old_la_code"].replace("861", "86")),
                            r"old_la_code must be"),
    "a blank count": (lambda df: df.assign(children_count=df["children_count"].mask(_stoke_2026(df), "")),
                      r"children_count has ''"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_refused_and_nothing_changes(raw_dir, tmp_path, place, case):
    out, imports = place
    change, message = BAD_FILES[case]
    bad = _bad_cla(raw_dir, tmp_path, change)
    before = _state(out, imports)
    with pytest.raises(CareTrendsError, match=message) as err:
        data.import_file(bad, raw_dir, output_dir=out, imports=imports, today=TODAY)
    assert "\n" not in str(err.value)
    assert _state(out, imports) == before


def test_second_file_for_an_imported_year_is_refused_and_first_kept(raw_dir, tmp_path, place):
    out, imports = place
    data.import_file(cla_2026(raw_dir, tmp_path), raw_dir, output_dir=out, imports=imports, today=TODAY)
    after_first = _state(out, imports)
    again = cla_2026(raw_dir, tmp_path, name="corrected_2026.csv")
    with pytest.raises(CareTrendsError, match=r"2026 edition is already imported .*never replaced"):
        data.import_file(again, raw_dir, output_dir=out, imports=imports, today=TODAY)
    assert _state(out, imports) == after_first        # the first import is still there, unchanged
    with pytest.raises(CareTrendsError, match="already uses the 2025 release"):
        data.import_file(raw_dir / EES_2025, raw_dir, output_dir=out, imports=imports, today=TODAY)


def test_failure_while_writing_rolls_everything_back(raw_dir, tmp_path, place, monkeypatch):
    out, imports = place
    before = _state(out, imports)
    real = importer.atomic_write_text

    def failing(path, text, *args, **kwargs):
        if Path(path).name == data.PROVENANCE_FILE:      # the panel was already replaced
            raise OSError("disk full")
        return real(path, text, *args, **kwargs)
    monkeypatch.setattr(importer, "atomic_write_text", failing)
    with pytest.raises(OSError, match="disk full"):
        data.import_file(cla_2026(raw_dir, tmp_path), raw_dir, output_dir=out, imports=imports, today=TODAY)
    assert _state(out, imports) == before


def test_wrong_and_partial_files_name_the_dataset(raw_dir, tmp_path):
    df = _read(raw_dir, C1).drop(columns=["rereferral_percent"])
    path = _write(df, tmp_path / "c1_partial.csv")
    with pytest.raises(CareTrendsError, match=r"looks like the EES 'C1 Referrals.*lacks column\(s\) rereferral_percent"):
        data.import_file(path, raw_dir, output_dir=tmp_path, imports=tmp_path / "imp", today=TODAY)
    with pytest.raises(CareTrendsError, match=r"not the EES 'CLA numbers and rates"):
        data.import_file(raw_dir / "dfe_csc_outcomes/sn_model_2025_wide.csv", raw_dir, output_dir=tmp_path,
                         imports=tmp_path / "imp", today=TODAY)
    assert not (tmp_path / "imp").exists()


def test_dataset_detection_for_every_snapshot_file(raw_dir):
    for spec in pathway.CSC_DATASETS:
        assert pathway.dataset_of(raw_dir / spec.raw_file) == spec.key
    assert pathway.dataset_of(raw_dir / EES_2025) == pathway.CLA_DATASET


# ---------------------------------------------------------------- fetch

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):   # keep test output clean
        pass


@pytest.fixture()
def publisher(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a temp folder (recorded publisher files)."""
    root = tmp_path / "publisher"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_fetch_downloads_checks_and_never_replaces_with_a_bad_copy(publisher, tmp_path, raw_dir):
    root, base = publisher
    good, changed = raw_dir / C1, raw_dir / CSWW
    (root / "c1.csv").write_bytes(good.read_bytes())
    (root / "csww.csv").write_bytes(changed.read_bytes().replace(b"Stoke-on-Trent", b"Stoke on Trent"))
    table = (sources.SourceFile(C1, "c1", "DfE", "page", f"{base}/c1.csv"),
             sources.SourceFile(CSWW, "csww", "DfE", "page", f"{base}/csww.csv"),
             sources.SourceFile("dfe_csc_outcomes/b1_children_in_need_2013_to_2025.csv", "b1", "DfE", "page",
                                f"{base}/missing.csv"),
             sources.SourceFile("dfe_sfr_2010_2017/2017_SFR50_ADM2017.csv", "sfr", "DfE", "https://gov.uk/x"))
    manifest = sources.read_manifest()
    target = tmp_path / "raw"
    (target / CSWW).parent.mkdir(parents=True)
    (target / CSWW).write_bytes(b"the old copy")
    result = data.fetch_raw_files(target, source_files=table, manifest=manifest)
    assert result.downloaded == [C1] and (target / C1).read_bytes() == good.read_bytes()
    reasons = dict(result.failed)
    assert "does not match its SHA-256" in reasons[CSWW] and (target / CSWW).read_bytes() == b"the old copy"
    assert "HTTP 404" in reasons["dfe_csc_outcomes/b1_children_in_need_2013_to_2025.csv"]
    assert result.manual == [("dfe_sfr_2010_2017/2017_SFR50_ADM2017.csv", "https://gov.uk/x")]
    assert not result.ok and "FAILED" in result.summary()
    assert not [p for p in target.rglob("*") if p.name.endswith(".part")]
    # A second run skips the file already present and correct.
    again = data.fetch_raw_files(target, source_files=table[:1], manifest=manifest)
    assert again.already_present == [C1] and again.downloaded == []


def test_fetch_over_the_real_table_with_recorded_responses(raw_dir, tmp_path):
    """Every URL in SOURCE_FILES answered with the recorded (snapshot) file: the table's paths match
    the manifest, and a folder filled this way (plus the by-hand files) passes the checksum check."""
    manifest = sources.read_manifest()
    by_url = {f.url: raw_dir / f.relpath for f in sources.SOURCE_FILES if f.url and f.relpath in manifest}
    opened = []

    def recorded(url, timeout):
        opened.append(url)
        return io.BytesIO(by_url[url].read_bytes())
    target = tmp_path / "raw"
    result = data.fetch_raw_files(target, opener=recorded)
    assert result.ok and not result.unchecked and sorted(opened) == sorted(by_url)
    table = {f.relpath for f in sources.SOURCE_FILES}
    shared = sources.read_manifest(raw_dir / "SHA256SUMS")
    assert set(manifest) <= table and set(shared) <= table     # every raw file has a source entry
    for rel, _page in result.manual:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw_dir / rel, target / rel)
    assert data.check_raw_files(target) == manifest
    assert all(f.page.startswith("https://") for f in sources.SOURCE_FILES)


def test_cli_fetch_reports_offline_failure_without_traceback(tmp_path, capsys, monkeypatch):
    def offline(url, timeout):
        raise fetch.urllib.error.URLError("no route to host")
    monkeypatch.setattr(fetch, "_urlopen", offline)
    code = cli.main(["data", "fetch", "--raw-dir", str(tmp_path / "raw"), "--only", "c1_children"])
    printed = capsys.readouterr()
    assert code == 1 and "could not download" in printed.out and "Traceback" not in printed.err
    assert not list((tmp_path / "raw").rglob("*.csv"))
