"""helpers.ssda903: reading the 903 layout and its export variants, validation, derivations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import cli, ssda903
from helpers.core.errors import CareTrendsError

HEADER = """CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB
A1,1,15/06/2010,WBRI,,,
A2,2,01/01/2015,WBRI,,0,
A3,1,10/10/2005,WBRI,,,
A4,2,20/12/2019,WBRI,,0,
"""
EP_COLUMNS = "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN"
EPISODES = [
    "A1,01/05/2019,S,C1,N1,U4,PR1,15/07/2019,X1,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
    "A1,15/07/2019,P,C1,N1,U5,PR1,20/11/2019,E4A,CARPL,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
    "A2,10/06/2019,S,V2,N5,U4,PR4,,,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
    "A3,03/08/2019,S,V4,N2,U4,PR1,06/08/2019,E4A,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
    "A4,14/01/2020,S,L1,N1,U4,PR1,16/01/2020,X1,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
    "A4,16/01/2020,L,C1,N1,U4,PR1,,,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
    "A1,02/02/2020,S,V2,N4,K2,PR4,31/03/2020,E13,,ZZ99 1ZZ,ZZ99 2ZZ,SC123456",
]
AS_OF = "2026-11-22"


def write(path, text, encoding="utf-8", newline="\n"):
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def files(tmp_path, extra=(), header=HEADER, columns=EP_COLUMNS, rows=EPISODES):
    h = write(tmp_path / "header.csv", header)
    e = write(tmp_path / "episodes.csv", "\n".join([columns, *rows, *extra]) + "\n")
    return h, e


@pytest.fixture
def clean(tmp_path):
    return ssda903.load_903(*files(tmp_path), as_of=AS_OF)


# ------------------------------------------------------------------ derivations on a known case

def test_monthly_series_known_case(clean):
    m = ssda903.monthly_series(clean)
    assert clean.coverage_start == pd.Timestamp("2019-04-01")
    assert clean.coverage_end == pd.Timestamp("2020-03-31")
    assert m["month"].tolist()[0] == "2019-04" and len(m) == 12
    # V3/V4 short breaks are not starts, exits or in care
    assert m["starts"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert m["ceased"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert m["ceased_returned_home"].sum() == 2 and m[ssda903.EXIT_COLUMNS].sum().sum() == 2
    assert m["cla_month_end"].tolist() == [0, 1, 2, 2, 2, 2, 2, 1, 1, 2, 3, 2]
    assert (m["t"] == np.arange(111, 123)).all()  # April 2019 = month 111 (Jan 2010 = 0)


def test_annual_counts_each_child_once(clean):
    a = ssda903.annual_counts(clean)
    row = a.set_index("reporting_year").loc[2020]
    assert (row["starts"], row["starts_periods"]) == (3, 4)   # A1 started twice
    assert (row["ceased"], row["ceased_periods"]) == (1, 2)   # A1 left twice
    assert row["cla_31_march"] == 2                           # A1 left on 31 March itself


def test_starts_by_breakdowns(clean):
    age = ssda903.starts_by(clean, "age_band", freq="reporting_year").set_index("reporting_year")
    assert age.loc[2020, ["under_1", "1_to_4", "5_to_9", "10_to_15", "16_and_over"]].tolist() == [1, 1, 2, 0, 0]
    ls = ssda903.starts_by(clean, "legal_status", freq="reporting_year").set_index("reporting_year")
    assert (ls.loc[2020, "C1"], ls.loc[2020, "V2"], ls.loc[2020, "L1"]) == (1, 2, 1)
    cin = ssda903.starts_by(clean, "cin")
    assert cin[["N1", "N4", "N5"]].sum().tolist() == [2, 1, 1] and len(cin) == 12
    with pytest.raises(CareTrendsError, match="unknown breakdown"):
        ssda903.starts_by(clean, "postcode")


def test_suppress_small_default_and_configurable():
    table = pd.DataFrame({"reporting_year": [2020, 2021, 2022], "starts": [0, 3, 12]})
    out = ssda903.suppress_small(table)
    assert out["starts"].tolist() == ["0", "<5", "12"] and out["reporting_year"].tolist() == [2020, 2021, 2022]
    assert ssda903.suppress_small(table, threshold=10)["starts"].tolist() == ["0", "<10", "12"]
    assert ssda903.suppress_small(table, threshold=None)["starts"].tolist() == ["0", "3", "12"]


# ------------------------------------------------------------------ validation problems

def report_for(tmp_path, extra=(), **kwargs):
    return ssda903.validate(*files(tmp_path, extra, **kwargs), as_of=AS_OF)


def test_clean_files_have_no_problems(clean):
    assert not clean.report.problems and not clean.report.fatal


@pytest.mark.parametrize("extra, check", [
    (["A2,01/09/2019,P,Z9,N5,U4,PR4,,,,,,"], "unknown_codes"),
    (["A4,31/02/2020,P,C1,N1,U4,PR1,,,,,,"], "unparseable_dates"),
    (["A3,10/10/2019,S,V2,N1,U4,PR1,01/10/2019,E4A,,,,"], "dec_before_decom"),
    (["A2,01/09/2019,P,V2,N5,U6,PR4,,,,,,"], "overlapping_episodes"),
    ([EPISODES[4]], "duplicate_rows"),
    (["A3,01/01/2030,S,V2,N1,U4,PR1,,,,,,"], "future_dates"),
    (["Q9,01/09/2019,S,V2,N1,U4,PR1,,,,,,"], "children_missing_from_header"),
])
def test_each_problem_is_reported_with_a_count(tmp_path, extra, check):
    report = report_for(tmp_path, extra)
    assert check in report.checks and report.count(check) == 1 and not report.fatal
    text = str(report)
    assert check in text and "Q9" not in text  # counts, never child ids


def test_repairs_keep_the_series_right(tmp_path):
    # overlap cut at the next start, duplicate dropped, bad rows dropped: same series as clean
    extra = ["A2,01/09/2019,P,V2,N5,U6,PR4,,,,,,", EPISODES[4], "A4,31/02/2020,P,C1,N1,U4,PR1,,,,,,",
             "A3,10/10/2019,S,V2,N1,U4,PR1,01/10/2019,E4A,,,,"]
    fixed = ssda903.load_903(*files(tmp_path, extra), as_of=AS_OF)
    (tmp_path / "clean").mkdir()
    base = ssda903.load_903(*files(tmp_path / "clean"), as_of=AS_OF)
    cols = ["starts", "ceased", "cla_month_end"]
    assert ssda903.monthly_series(fixed)[cols].equals(ssda903.monthly_series(base)[cols])


def test_future_end_date_counts_as_open(tmp_path):
    rows = EPISODES[:-1] + ["A1,02/02/2020,S,V2,N4,K2,PR4,31/03/2031,E13,,,,"]
    ex = ssda903.load_903(*files(tmp_path, rows=rows), as_of=AS_OF,
                          coverage_start="2019-04-01", coverage_end="2020-03-31")
    assert ex.report.count("future_dates") == 1
    assert ssda903.monthly_series(ex)["cla_month_end"].iloc[-1] == 3


def test_missing_column_is_fatal_one_line(tmp_path):
    columns = EP_COLUMNS.replace(",REC", "")
    rows = [",".join(r.split(",")[:8] + r.split(",")[9:]) for r in EPISODES]
    with pytest.raises(CareTrendsError) as err:
        ssda903.load_903(*files(tmp_path, columns=columns, rows=rows), as_of=AS_OF)
    message = str(err.value)
    assert "REC" in message and "\n" not in message
    report = ssda903.validate(tmp_path / "header.csv", tmp_path / "episodes.csv")
    assert report.fatal and "missing_columns" in report.checks


def test_american_dates_are_fatal(tmp_path):
    rows = ["A1,05/31/2019,S,C1,N1,U4,PR1,07/15/2019,E4A,,,,", "A2,06/13/2019,S,V2,N5,U4,PR4,,,,,,"]
    with pytest.raises(CareTrendsError, match="dd/mm/YYYY"):
        ssda903.load_903(*files(tmp_path, rows=rows), as_of=AS_OF)


def test_missing_file_and_no_rows(tmp_path):
    with pytest.raises(CareTrendsError, match="not found"):
        ssda903.load_903(tmp_path / "nope.csv", tmp_path / "nope2.csv")
    with pytest.raises(CareTrendsError, match="no rows"):
        ssda903.load_903(*files(tmp_path, rows=[]), as_of=AS_OF)


def test_strict_makes_warnings_fatal(tmp_path):
    with pytest.raises(CareTrendsError):
        ssda903.load_903(*files(tmp_path, [EPISODES[4]]), as_of=AS_OF, strict=True)


# ------------------------------------------------------------------ export variants

def monthly_of(*args):
    ex = ssda903.load_903(*args, as_of=AS_OF)
    assert not [p for p in ex.report.problems if p.severity != "info"], str(ex.report)
    return ssda903.monthly_series(ex)


def test_iso_dates_bom_crlf_excel_quoting_semicolons(tmp_path, clean):
    base = ssda903.monthly_series(clean)
    iso = [",".join(pd.Timestamp(day=int(v[:2]), month=int(v[3:5]), year=int(v[6:])).strftime("%Y-%m-%d")
                    if len(v) == 10 and v[2] == "/" else v for v in row.split(",")) for row in EPISODES]
    d = tmp_path / "iso"
    d.mkdir()
    assert monthly_of(*files(d, rows=iso)).equals(base)

    def excel(line):  # every field quoted, ids as ="..." to keep leading zeros
        return ",".join(f'"={chr(34)}{v}{chr(34)}"' if i == 0 and v != "CHILD" else f'"{v}"'
                        for i, v in enumerate(line.split(",")))
    d = tmp_path / "excel"
    d.mkdir()
    h = write(d / "h.csv", "\n".join(excel(x) for x in HEADER.strip().split("\n")) + "\n",
              encoding="utf-8-sig", newline="\r\n")
    e = write(d / "e.csv", "\n".join(excel(x) for x in [EP_COLUMNS, *EPISODES]) + "\n",
              encoding="utf-8-sig", newline="\r\n")
    assert monthly_of(h, e).equals(base)

    d = tmp_path / "semicolon"
    d.mkdir()
    h = write(d / "h.csv", HEADER.replace(",", ";"), encoding="cp1252")
    e = write(d / "e.csv", "\n".join(x.replace(",", ";") for x in [EP_COLUMNS, *EPISODES]) + "\n")
    assert monthly_of(h, e).equals(base)


def test_yearly_files_concatenated(tmp_path, clean):
    """Two returns: the first (to 30 Sep 2019) has A1's episode still open; the later one closes it."""
    base = ssda903.monthly_series(clean)
    first = ["A1,01/05/2019,S,C1,N1,U4,PR1,15/07/2019,X1,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
             "A1,15/07/2019,P,C1,N1,U5,PR1,,,CARPL,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
             EPISODES[2], EPISODES[3]]
    second = EPISODES[1:3] + EPISODES[4:]
    write(tmp_path / "header_2019.csv", HEADER)
    write(tmp_path / "header_2020.csv", HEADER)
    write(tmp_path / "episodes_2019.csv", "\n".join([EP_COLUMNS, *first]) + "\n")
    write(tmp_path / "episodes_2020.csv", "\n".join([EP_COLUMNS, *second]) + "\n")
    ex = ssda903.load_903(str(tmp_path / "header_*.csv"), str(tmp_path / "episodes_*.csv"), as_of=AS_OF)
    assert "repeated_across_files" in ex.report.checks and not ex.report.fatal
    assert ssda903.monthly_series(ex).equals(base)
    # the same two files pasted into one (header line repeated mid-file), as a comma list too
    pasted = write(tmp_path / "pasted.csv", "\n".join([EP_COLUMNS, *first, EP_COLUMNS, *second]) + "\n")
    ex2 = ssda903.load_903(f"{tmp_path / 'header_2019.csv'},{tmp_path / 'header_2020.csv'}", pasted,
                           as_of=AS_OF)
    assert ssda903.monthly_series(ex2)[["starts", "ceased", "cla_month_end"]].equals(
        base[["starts", "ceased", "cla_month_end"]])


def test_dataframes_accepted_and_repr_has_no_child_data(clean):
    ex = ssda903.load_903(pd.read_csv(pd.io.common.StringIO(HEADER), dtype=str).fillna(""),
                          pd.read_csv(pd.io.common.StringIO("\n".join([EP_COLUMNS, *EPISODES])),
                                      dtype=str).fillna(""), as_of=AS_OF)
    assert ssda903.monthly_series(ex).equals(ssda903.monthly_series(clean))
    shown = repr(ex) + str(ex.report)
    assert "A1" not in shown and "2010" not in shown


# ------------------------------------------------------------------ CLI

def test_cli_validate_ok_and_fatal(tmp_path, capsys):
    h, e = files(tmp_path)
    assert cli.main(["validate-903", str(h), str(e), "--as-of", AS_OF, "--summary"]) == 0
    out = capsys.readouterr().out
    assert "SSDA903 validation" in out and "cla_31_march" in out and "A1" not in out
    bad = write(tmp_path / "bad.csv", "CHILD,DECOM\nA1,01/05/2019\n")
    assert cli.main(["validate-903", str(h), str(bad)]) == 2
    captured = capsys.readouterr()
    assert "FATAL" in captured.out and "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and "REC" in captured.err


def test_xlsx_export(tmp_path, clean):
    h, e = files(tmp_path)
    pd.read_csv(h, dtype=str).to_excel(tmp_path / "header.xlsx", index=False)
    pd.read_csv(e, dtype=str, keep_default_na=False).to_excel(tmp_path / "episodes.xlsx", index=False)
    ex = ssda903.load_903(tmp_path / "header.xlsx", tmp_path / "episodes.xlsx", as_of=AS_OF)
    assert ssda903.monthly_series(ex).equals(ssda903.monthly_series(clean))


def test_notebook_entry_point_needs_both_files(tmp_path):
    h, _ = files(tmp_path)
    with pytest.raises(CareTrendsError, match="both"):
        ssda903.load_or_synthesize(h, None)


def test_population_offset_for_monthly_series(clean):
    pytest.importorskip("helpers.data")
    try:
        monthly = ssda903.attach_population(ssda903.monthly_series(clean), "Stoke-on-Trent")
    except Exception as exc:  # official panel not available here
        pytest.skip(str(exc))
    assert monthly["population"].between(50_000, 70_000).all()
