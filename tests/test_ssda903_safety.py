"""Safety of the SSDA903 entry point (issue 13): no value from the episode files reaches a
message or report; small counts stay hidden in tables and charts, even from an attacker who
solves for them with every total shown beside them; the DfE XML export; ragged CSV rows named
by line; bad CLI arguments stopped with one line and nothing written."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from helpers import cli, ssda903
from helpers.core.errors import CareTrendsError
from helpers.ssda903 import extract, synth

AS_OF = "2026-11-22"
EP_COLUMNS = ["CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC",
              "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN"]
HEADER = ["CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB",
          "948372,1,15/06/2010,WBRI,,,",
          "603318,2,01/01/2015,WBRI,,0,",
          "550917,QXSEXY,31/11/1899,WBRI,,0,",      # bad sex code, impossible date of birth
          "884210,1,QZ9 9QX,WBRI,,,"]               # a postcode where the DOB should be
GOOD = ["948372,01/05/2019,S,C1,N1,U4,PR1,15/07/2019,X1,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
        "948372,15/07/2019,P,C1,N1,U5,PR1,20/11/2019,E4A,CARPL,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
        "603318,10/06/2019,S,V2,N5,U4,PR4,,,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
        "884210,14/01/2020,S,L1,N1,U4,PR1,16/01/2020,X1,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
        "884210,16/01/2020,L,C1,N1,U4,PR1,,,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
        "948372,02/02/2020,S,V2,N4,K2,PR4,31/03/2020,E13,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",
        "948372,01/06/2020,S,V2,N4,U4,PR1,01/08/2020,E4B,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX"]
BAD = ["550917,02/09/2019,ZKWQJ,QXPRIV,QZ9 9QY,U4,PR1,,,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",  # codes
       "550917,13/13/2019,S,V2,N1,U4,PR1,,,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",              # DECOM
       "603318,05/10/2019,P,V2,N1,U4,PR1,QXDATE,E4A,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",      # DEC
       "603318,01/12/2019,P,V2,N5,U4,PR4,,5Q7ZRX,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX",         # REC
       "771593,05/10/2019,S,V2,N1,U4,PR1,,,,ZZ99 1ZZ,ZZ99 2ZZ,XXXXXXX"]              # no header
FIRST_BAD_LINE = len(GOOD) + 2
#: Every value above that must never be echoed (child ids included), 3+ characters long.
SECRETS = ["948372", "603318", "550917", "884210", "771593", "QXSEXY", "31/11/1899", "QZ9 9QX",
           "ZKWQJ", "QXPRIV", "QZ9 9QY", "13/13/2019", "QXDATE", "5Q7ZRX"]


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def leaks(text: str) -> list[str]:
    """Every secret, or 3+ character prefix of one, found in text."""
    low = text.lower()
    return sorted({s[:k] for s in SECRETS for k in range(3, len(s) + 1) if s[:k].lower() in low})


def all_text(report) -> str:
    parts = [str(report), report.to_frame().to_string(), report._repr_markdown_()]
    if report.fatal:
        parts.append(report.fatal_message())
    return "\n".join(parts)


# ------------------------------------------------------------------ 1. privacy by construction

def test_no_value_from_the_files_reaches_any_message(tmp_path, capsys):
    h = write(tmp_path / "header.csv", HEADER)
    e = write(tmp_path / "episodes.csv", [",".join(EP_COLUMNS), *GOOD, *BAD])
    ex = ssda903.load_903(h, e, as_of=AS_OF)
    report = ex.report
    assert {"unknown_codes", "unparseable_dates", "children_missing_from_header"} <= report.checks
    text = all_text(report) + repr(ex)
    # the report says where (file and line), and how many, instead of what
    assert f"episodes.csv line {FIRST_BAD_LINE}" in text and f"line {FIRST_BAD_LINE + 1}" in text
    assert "header.csv line 4" in text and "header.csv lines 4, 5" in text
    assert leaks(text) == []
    with pytest.raises(CareTrendsError) as strict:
        ssda903.load_903(h, e, as_of=AS_OF, strict=True)
    assert leaks(str(strict.value)) == []
    assert cli.main(["validate-903", str(h), str(e), "--as-of", AS_OF, "--summary"]) == 0
    assert cli.main(["validate-903", str(h), str(e), "--as-of", AS_OF, "--strict"]) == 2
    out = capsys.readouterr()
    assert leaks(out.out + out.err) == []


def test_fatal_messages_echo_no_value(tmp_path, capsys):
    # a file whose dates are mostly unreadable, one with shifted columns, one with no header line
    h = write(tmp_path / "header.csv", HEADER)
    dates = write(tmp_path / "dates.csv", [",".join(EP_COLUMNS)] + [
        r.replace("01/05/2019", "QXDATE").replace("10/06/2019", "13/13/2019") for r in GOOD[:3]])
    shifted = write(tmp_path / "shifted.csv", [",".join(EP_COLUMNS)] + ["QXPRIV," + r for r in GOOD + BAD])
    headless = write(tmp_path / "headless.csv", GOOD + BAD)
    for episodes in (dates, shifted, headless):
        report = ssda903.validate(h, episodes, as_of=AS_OF)
        assert report.fatal
        assert leaks(all_text(report)) == []
        with pytest.raises(CareTrendsError) as err:
            ssda903.load_903(h, episodes, as_of=AS_OF)
        assert leaks(str(err.value)) == [] and "\n" not in str(err.value)
        assert cli.main(["validate-903", str(h), str(episodes), "--as-of", AS_OF]) == 2
        out = capsys.readouterr()
        assert leaks(out.out + out.err) == [] and out.err.count("\n") == 1


def test_xml_export_messages_echo_no_value(tmp_path):
    header = pd.read_csv(pd.io.common.StringIO("\n".join(HEADER)), dtype=str, keep_default_na=False)
    episodes = pd.read_csv(pd.io.common.StringIO("\n".join([",".join(EP_COLUMNS), *GOOD, *BAD])),
                           dtype=str, keep_default_na=False)
    path = write_xml(header, episodes, tmp_path / "export.xml")
    report = ssda903.validate(path, as_of=AS_OF)
    text = all_text(report)
    assert "unknown_codes" in report.checks and "export.xml EPISODE element" in text
    assert leaks(text) == []


def test_file_names_in_reports_carry_no_markup(tmp_path):
    h = write(tmp_path / "header.csv", HEADER)
    e = write(tmp_path / "ep<script>`x`.csv", [",".join(EP_COLUMNS), *GOOD, BAD[0]])
    text = all_text(ssda903.validate(h, e, as_of=AS_OF))
    assert f"ep_script__x_.csv line {FIRST_BAD_LINE}" in text and "<script>" not in text and "`x`" not in text


# ------------------------------------------------------------------ 2. small counts

@pytest.mark.parametrize("bad", [0, 1, 4, -5, 4.5, True, "5", None])
def test_threshold_below_the_published_rule_is_refused(bad):
    table = pd.DataFrame({"month": ["a", "b"], "starts": [3, 12]})
    with pytest.raises(CareTrendsError, match="threshold"):
        ssda903.suppress_small_counts(table, threshold=bad)
    if bad is not None:  # suppress_small keeps None as the explicit internal 'off'
        with pytest.raises(CareTrendsError, match="threshold"):
            ssda903.suppress_small(table, threshold=bad)
    assert ssda903.suppress_small_counts(table, threshold=10).display["starts"].tolist() == ["<10", "12"]


def attack(result: ssda903.SuppressedTable, table, cols, totals, groups=None):
    """What a reader can work out from the published table alone: for every hidden small cell,
    its smallest and largest whole-number value (integer programmes over the hidden cells, with
    every total shown as an equation and the marks' meaning as bounds)."""
    shown = result.display.reset_index(drop=True)
    out_cols = cols + (["Total"] if totals in ("rows", "both") else [])
    label = [c for c in shown.columns if c not in out_cols][0]
    is_total = (shown[label] == "Total").to_numpy()
    grid = shown[out_cols].to_numpy()
    n, m = grid.shape
    var = {}
    for i in range(n):
        for j in range(m):
            if not str(grid[i, j]).isdigit():
                var[(i, j)] = len(var)
    rows_eq = []  # lists of ((i, j), coefficient)
    if totals in ("rows", "both"):
        rows_eq += [[((i, j), 1) for j in range(len(cols))] + [((i, m - 1), -1)] for i in range(n)]
    if totals in ("columns", "both"):
        start = 0
        for t_row in np.flatnonzero(is_total):
            rows_eq += [[((i, j), 1) for i in range(start, t_row)] + [((t_row, j), -1)]
                        for j in range(m)]
            start = t_row + 1
    a = np.zeros((len(rows_eq), len(var)))
    b = np.zeros(len(rows_eq))
    for r, eq in enumerate(rows_eq):
        for cell, coef in eq:
            if cell in var:
                a[r, var[cell]] += coef
            else:
                b[r] -= coef * int(grid[cell])
    lower, upper = np.zeros(len(var)), np.full(len(var), np.inf)
    for (i, j), k in var.items():
        if grid[i, j] == f"<{result.threshold}":
            lower[k], upper[k] = 1, result.threshold - 1
        elif result.marks == "distinct":
            lower[k] = result.threshold
    ranges = {}
    primary = result.primary.reset_index(drop=True).to_numpy()
    for (i, j), k in var.items():
        if not primary[i, j]:
            continue
        c = np.zeros(len(var))
        c[k] = 1
        cons = [LinearConstraint(a, b, b)] if len(rows_eq) else []
        lo = milp(c, integrality=np.ones(len(var)), bounds=Bounds(lower, upper), constraints=cons)
        hi = milp(-c, integrality=np.ones(len(var)), bounds=Bounds(lower, upper), constraints=cons)
        assert lo.status == 0, "the published table must be consistent with the true counts"
        ranges[(i, j)] = (round(lo.fun), np.inf if hi.status != 0 else round(-hi.fun))
    return ranges


def naive(table, cols, totals, groups=None):
    """Cell-by-cell suppression with exact totals: what the old code would publish."""
    data = table.reset_index(drop=True)[cols].copy()
    if totals in ("rows", "both"):
        data["Total"] = data.sum(axis=1)
    if totals in ("columns", "both"):
        parts = []
        keys = table.reset_index(drop=True)[groups] if groups else pd.Series(0, index=data.index)
        for _, part in data.groupby(keys.to_numpy(), sort=False):
            parts += [part, part.sum().to_frame().T]
        data = pd.concat(parts, ignore_index=True)
        label = ["x"] * len(data)
        for k in np.cumsum([len(p) for p in parts])[1::2] - 1:
            label[k] = "Total"
    else:
        label = ["x"] * len(data)
    values = data.to_numpy()
    display = pd.DataFrame(np.where((values >= 1) & (values < 5), "<5", values.astype(int).astype(str)),
                           columns=data.columns)
    display.insert(0, "label", label)
    primary = pd.DataFrame((values >= 1) & (values < 5), columns=data.columns)
    return ssda903.SuppressedTable(display=display, mask=primary, primary=primary, values=data,
                                   threshold=5, marks="distinct")


def random_tables(n_tables, seed=20240301):
    rng = np.random.default_rng(seed)
    for _ in range(n_tables):
        rows, cols = rng.integers(4, 9), rng.integers(2, 5)
        means = rng.choice([1.0, 3.0, 8.0, 20.0], size=cols)
        counts = rng.poisson(means, size=(rows, cols))
        table = pd.DataFrame(counts, columns=[f"k{j}" for j in range(cols)])
        table.insert(0, "month", [f"2020-{i + 1:02d}" for i in range(rows)])
        table.insert(1, "reporting_year", np.where(np.arange(rows) < rows // 2, 2020, 2021))
        yield table


def test_no_total_recovers_a_hidden_count():
    """Seeded Monte Carlo: 16 random tables x 4 layouts; an integer-programming attacker using
    every published total pins no hidden small count (each keeps at least two possible values),
    while the same attacker pins some under cell-by-cell suppression."""
    pinned_naive = checked = 0
    for table in random_tables(16):
        cols = [c for c in table.columns if c.startswith("k")]
        for totals, groups in (("rows", None), ("columns", None), ("columns", "reporting_year"),
                               ("both", "reporting_year")):
            result = ssda903.suppress_small_counts(table, totals=totals, groups=groups)
            assert result.display.shape[0] == len(table) + (0 if totals == "rows" else
                                                            (2 if groups else 1))
            truth = naive(table, cols, totals, groups).values.to_numpy()
            for cell, (lo, hi) in attack(result, table, cols, totals, groups).items():
                checked += 1
                assert hi - lo >= 1 and lo <= truth[cell] <= hi, (totals, groups, cell)
            pinned_naive += sum(hi - lo < 1 for lo, hi in
                                attack(naive(table, cols, totals, groups), table, cols, totals,
                                       groups).values())
            # what is shown is exact, and what is hidden is exactly the mask
            values = result.values[[c for c in result.mask.columns]].to_numpy()
            assert np.isnan(values[result.mask.to_numpy()]).all()
            assert not np.isnan(values[~result.mask.to_numpy()]).any()
    assert checked > 300 and pinned_naive > 50  # the attacker has teeth


def test_four_small_cells_under_a_small_total_fall_back_to_uniform_marks():
    # "<5" total of four "<5" cells: each must be 1, so "<5" itself would give them away
    table = pd.DataFrame({"month": ["a", "b"], "x": [1, 9], "y": [1, 8], "z": [1, 7], "w": [1, 6]})
    result = ssda903.suppress_small_counts(table, totals="rows")
    assert result.marks == "uniform" and (result.display.loc[0, ["x", "y", "z", "w", "Total"]] == "c").all()
    for lo, hi in attack(result, table, ["x", "y", "z", "w"], "rows").values():
        assert hi - lo >= 1
    with pytest.raises(CareTrendsError, match="uniform"):
        ssda903.suppress_small_counts(table, totals="rows", marks="distinct")


SMALL = {y: dict(starts=40 + y % 3, ceased=38, cla_31_march=90 + 2 * (y - 2010)) for y in range(2010, 2026)}


@pytest.fixture(scope="module")
def small_la(tmp_path_factory):
    """A small LA's SYNTHETIC extract (about 40 starts a year), as CSV files and in memory."""
    result = synth.synthesize("Smallshire", seed=7, targets=SMALL)
    paths = synth.write_synthetic(result, tmp_path_factory.mktemp("small"))
    return result, paths, ssda903.load_903(*paths)


def test_monthly_table_of_a_small_la_gives_nothing_away(small_la):
    monthly = ssda903.monthly_series(small_la[2])
    monthly = monthly[monthly["reporting_year"].isin([2019, 2020])]  # two years keep the MILPs quick
    assert monthly[["starts", "ceased"]].isin([1, 2, 3, 4]).to_numpy().mean() > 0.4  # really small
    for cols, totals in ((["starts", "ceased"], "columns"), (list(ssda903.EXIT_COLUMNS), "both")):
        table = monthly[["month", "reporting_year"] + cols]
        result = ssda903.suppress_small_counts(table, totals=totals, groups="reporting_year")
        ranges = attack(result, table, cols, totals, "reporting_year")
        assert len(ranges) > 20 and all(hi - lo >= 1 for lo, hi in ranges.values())
        shown = result.display[cols].to_numpy().ravel()
        assert not np.isin(shown, ["1", "2", "3", "4"]).any()


def chart_attack(monthly, chart, flow="starts", stock="cla_month_end"):
    """Whole-number range of every hidden period of `flow` from what the chart plots, the annual
    totals and the month-end stock (which moves by starts minus ceased)."""
    n = len(monthly)
    s, c = np.arange(n), n + np.arange(n)       # monthly starts and ceased: unknowns >= 0
    stock_var = {}
    for i in np.flatnonzero(chart[f"{stock}_hidden"].to_numpy()):
        stock_var[i] = 2 * n + len(stock_var)
    periods = chart[f"{flow}_period"].to_numpy()
    labels = list(dict.fromkeys(periods))
    hidden_period = {p: 2 * n + len(stock_var) + k for k, p in
                     enumerate(p for p in labels if chart.loc[periods == p, f"{flow}_hidden"].all())}
    nv = 2 * n + len(stock_var) + len(hidden_period)
    a, b = [], []

    def eq(coefs, rhs):
        row = np.zeros(nv)
        for k, v in coefs:
            row[k] += v
        a.append(row)
        b.append(rhs)

    flow_var = s if flow == "starts" else c
    for p in labels:
        months = np.flatnonzero(periods == p)
        if p in hidden_period:
            eq([(flow_var[i], 1) for i in months] + [(hidden_period[p], -1)], 0)
        else:
            eq([(flow_var[i], 1) for i in months], round(chart.loc[months, flow].sum()))
    for year in monthly["reporting_year"].unique():
        months = np.flatnonzero(monthly["reporting_year"].to_numpy() == year)
        if months.size == 12:
            eq([(flow_var[i], 1) for i in months], int(monthly[flow].to_numpy()[months].sum()))
    levels = chart[stock].to_numpy()
    for i in range(1, n):
        coefs, rhs = [(s[i], -1), (c[i], 1)], 0.0
        for j, sign in ((i, 1), (i - 1, -1)):
            if j in stock_var:
                coefs.append((stock_var[j], sign))
            else:
                rhs -= sign * levels[j]
        eq(coefs, rhs)
    a, b = np.array(a), np.array(b)
    ranges = {}
    for p, k in hidden_period.items():
        true = int(monthly.loc[periods == p, flow].sum())
        if not 1 <= true <= 4:
            continue
        obj = np.zeros(nv)
        obj[k] = 1
        kw = dict(integrality=np.ones(nv), bounds=Bounds(np.zeros(nv), np.full(nv, np.inf)),
                  constraints=[LinearConstraint(a, b, b)])
        lo, hi = milp(obj, **kw), milp(-obj, **kw)
        assert lo.status == 0
        ranges[p] = (round(lo.fun), np.inf if hi.status != 0 else round(-hi.fun))
    return ranges


def test_monthly_chart_plots_no_small_count(small_la):
    monthly = ssda903.monthly_series(small_la[2])
    exact_small = int(monthly["starts"].isin([1, 2, 3, 4]).sum())
    assert exact_small > 100  # what plotting the raw monthly counts would show
    chart = ssda903.chart_counts(monthly, flows=["starts"])
    assert chart.attrs["resolution"] in ("quarter", "year") and chart.attrs["threshold"] == 5
    months_in = chart.groupby("starts_period")["month"].transform("size")
    period_counts = (chart["starts"] * months_in).round()
    assert not period_counts.isin([1, 2, 3, 4]).any()          # no plotted count of 1-4
    assert chart["starts_hidden"].mean() <= 0.25
    assert chart["cla_month_end"].notna().all()               # the stock stays monthly
    ranges = chart_attack(monthly, chart)
    assert all(hi - lo >= 1 for lo, hi in ranges.values())
    # monthly resolution forced: still nothing recoverable
    forced = ssda903.chart_counts(monthly[monthly["reporting_year"] <= 2013], flows=["starts"],
                                  max_hidden_share=1.0)
    assert forced.attrs["resolution"] == "month"
    assert not forced["starts"].isin([1, 2, 3, 4]).any()
    ranges = chart_attack(monthly[monthly["reporting_year"] <= 2013].reset_index(drop=True), forced)
    assert len(ranges) > 10 and all(hi - lo >= 1 for lo, hi in ranges.values())


def test_month_end_stock_cannot_give_a_hidden_start_away():
    # 24 busy months; in one, 4 children start and none leave, so the stock rises by exactly 4
    n = 24
    starts = np.full(n, 20)
    ceased = np.full(n, 20)
    starts[5], ceased[5] = 4, 0
    starts[6], ceased[6] = 19, 0  # the smallest other month, whose stock rises by all its starts:
    # hiding it beside month 5 (what a table-only audit picks) pins month 5 at 4 through the stock
    monthly = pd.DataFrame({"month": [str(p) for p in pd.period_range("2019-04", periods=n, freq="M")],
                            "t": np.arange(111, 111 + n), "starts": starts, "ceased": ceased})
    monthly["reporting_year"] = np.where(np.arange(n) < 12, 2020, 2021)
    monthly["calendar_month"] = (np.arange(n) + 3) % 12 + 1
    for g in ssda903.EXIT_COLUMNS:
        monthly[g] = 0
    monthly["ceased_returned_home"] = ceased
    monthly["cla_month_end"] = 300 + np.cumsum(starts - ceased)
    chart = ssda903.chart_counts(monthly, flows=["starts"], max_hidden_share=1.0)
    assert chart.attrs["resolution"] == "month" and chart.loc[5, "starts_hidden"]
    assert all(hi - lo >= 1 for lo, hi in chart_attack(monthly, chart).values())
    assert not chart.loc[6, "starts_hidden"]
    naive_chart = chart.copy()
    naive_chart["starts"], naive_chart["starts_hidden"] = monthly["starts"].astype(float), False
    naive_chart.loc[[5, 6], "starts_hidden"] = True
    naive_chart.loc[[5, 6], "starts"] = np.nan
    naive_chart["cla_month_end"], naive_chart["cla_month_end_hidden"] = monthly["cla_month_end"], False
    assert chart_attack(monthly, naive_chart)["2019-09"] == (4, 4)


def test_chart_refuses_bad_arguments(small_la):
    monthly = ssda903.monthly_series(small_la[2])
    with pytest.raises(CareTrendsError, match="threshold"):
        ssda903.chart_counts(monthly, threshold=3)
    with pytest.raises(CareTrendsError, match="cannot chart"):
        ssda903.chart_counts(monthly, flows=["cla_month_end"])
    with pytest.raises(CareTrendsError, match="lacks"):
        ssda903.chart_counts(monthly[["month", "t", "starts"]])


# ------------------------------------------------------------------ 3. the DfE XML export

def write_xml(header: pd.DataFrame, episodes: pd.DataFrame, path, namespace=""):
    """The DfE layout: EXPSSDA903 > CHILD > HEADER (CHILDID, ...) and EPISODE (PL, ...)."""
    rename = {"CHILD": "CHILDID", "PLACE": "PL"}

    def fill(node, record, skip=()):
        for col, value in record.items():
            if col not in skip:
                ET.SubElement(node, namespace + rename.get(col, col)).text = value or None

    root = ET.Element(f"{namespace}EXPSSDA903")
    by_child: dict[str, list[dict]] = {}
    for record in episodes.to_dict("records"):
        by_child.setdefault(record["CHILD"], []).append(record)
    for head in header.to_dict("records"):
        child = ET.SubElement(root, f"{namespace}CHILD")
        fill(ET.SubElement(child, f"{namespace}HEADER"), head)
        review = ET.SubElement(child[0], f"{namespace}AREVIEW")  # nested groups are skipped
        ET.SubElement(review, f"{namespace}REVIEW").text = "01/01/2020"
        for record in by_child.pop(head["CHILD"], []):
            fill(ET.SubElement(child, f"{namespace}EPISODE"), record, skip=("CHILD",))
    for records in by_child.values():  # children without a header: the id on each episode
        child = ET.SubElement(root, f"{namespace}CHILD")
        for record in records:
            fill(ET.SubElement(child, f"{namespace}EPISODE"), record)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def test_xml_export_gives_the_same_series_as_csv(small_la, tmp_path, capsys):
    result, (h, e), from_csv = small_la
    xml = write_xml(result.header, result.episodes, tmp_path / "SYNTHETIC_export.xml")
    from_xml = ssda903.load_903(xml)
    assert from_xml.synthetic and from_xml.report.n_episodes == from_csv.report.n_episodes
    assert [p for p in from_xml.report.problems if p.severity != "info"] == []
    assert ssda903.monthly_series(from_xml).equals(ssda903.monthly_series(from_csv))
    assert ssda903.annual_counts(from_xml).equals(ssda903.annual_counts(from_csv))
    assert ssda903.starts_by(from_xml, "cin").equals(ssda903.starts_by(from_csv, "cin"))
    # given twice (as header and episodes), or with a namespace: the same
    assert ssda903.monthly_series(ssda903.load_903(xml, xml)).equals(ssda903.monthly_series(from_csv))
    ns = write_xml(result.header, result.episodes, tmp_path / "ns.xml", "{urn:dfe:903}")
    assert ssda903.monthly_series(ssda903.load_903(ns)).equals(ssda903.monthly_series(from_csv))
    assert cli.main(["validate-903", str(xml)]) == 0
    assert "SSDA903 validation: 1 file(s)" in capsys.readouterr().out
    # and the notebook entry point takes the export alone
    assert ssda903.load_or_synthesize(xml).report.n_episodes == from_csv.report.n_episodes


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<EXPSSDA903><CHILD><HEADER><CHILDID>&lol3;</CHILDID></HEADER></CHILD></EXPSSDA903>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<EXPSSDA903><CHILD><HEADER><CHILDID>&secret;</CHILDID></HEADER></CHILD></EXPSSDA903>"""


@pytest.mark.parametrize("defused", [True, False])
@pytest.mark.parametrize("payload", [BOMB, EXTERNAL])
def test_xml_with_a_dtd_is_refused(tmp_path, monkeypatch, defused, payload):
    if not defused:  # the standard-library fallback refuses DTDs by itself
        monkeypatch.setattr(extract, "SafeElementTree", None)
    else:
        assert extract.SafeElementTree is not None, "defusedxml is expected in the environment"
    path = tmp_path / "export.xml"
    path.write_bytes(payload)
    with pytest.raises(CareTrendsError, match="DTD or entities") as err:
        ssda903.load_903(path)
    assert "\n" not in str(err.value) and "root:" not in str(err.value)


def test_xml_that_is_not_an_export(tmp_path, capsys):
    other = tmp_path / "other.xml"
    other.write_text("<Message><CHILDID>948372</CHILDID></Message>")
    with pytest.raises(CareTrendsError, match="not a DfE SSDA903 XML export"):
        ssda903.load_903(other)
    broken = tmp_path / "broken.xml"
    broken.write_text("<EXPSSDA903><CHILD><HEADER><CHILDID>948372</CHILDID></HEADER>\n<CHILD>")
    with pytest.raises(CareTrendsError, match=r"not well-formed XML \(line 2") as err:
        ssda903.load_903(broken)
    assert leaks(str(err.value)) == []
    assert cli.main(["validate-903", str(broken)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_csv_header_alone_is_refused(tmp_path):
    h = write(tmp_path / "header.csv", HEADER)
    with pytest.raises(CareTrendsError, match="both the header and the episodes"):
        ssda903.load_903(h)


# ------------------------------------------------------------------ 4. ragged rows

def test_a_row_with_one_field_too_many_is_named_by_line(tmp_path, capsys):
    h = write(tmp_path / "header.csv", HEADER[:3])
    rows = GOOD[:3] + ["603318,01/12/2019,P,V2,N5,U4,PR4,,,,ZZ99 1ZZ,ZZ99,2ZZ,XXXXXXX"] + GOOD[3:]
    e = write(tmp_path / "episodes.csv", [",".join(EP_COLUMNS), *rows])
    expected = "episodes.csv line 5 has 14 fields, the header has 13; fix the row or the header"
    report = ssda903.validate(h, e, as_of=AS_OF)
    assert report.fatal and report.checks == {"ragged_rows"} and expected in str(report)
    with pytest.raises(CareTrendsError) as err:
        ssda903.load_903(h, e, as_of=AS_OF)
    assert str(err.value) == f"SSDA903 files cannot be used: {expected}"
    assert cli.main(["validate-903", str(h), str(e), "--as-of", AS_OF]) == 2
    assert expected in capsys.readouterr().err
    with pytest.raises(CareTrendsError, match="line 5 has 14 fields"):
        ssda903.read_table(e)


def test_every_row_shifted_is_not_reported_as_bad_dates(tmp_path):
    h = write(tmp_path / "header.csv", HEADER[:3])
    e = write(tmp_path / "episodes.csv", [",".join(EP_COLUMNS)] + ["1," + r for r in GOOD * 40])
    message = ssda903.validate(h, e, as_of=AS_OF).fatal_message()
    assert "episodes.csv line 2 has 14 fields, the header has 13" in message
    assert f"{40 * len(GOOD) - 1} more rows" in message and "not dates" not in message


def test_short_rows_quoted_newlines_trailing_commas_and_pasted_layouts(tmp_path):
    h = write(tmp_path / "header.csv", HEADER[:3])
    short = write(tmp_path / "short.csv", [",".join(EP_COLUMNS), *GOOD[:2], "603318,10/06/2019,S,V2"])
    assert "short.csv line 4 has 4 fields, the header has 13" in ssda903.validate(
        h, short, as_of=AS_OF).fatal_message()
    # a quoted value spanning two lines shifts later line numbers by one
    quoted = GOOD[1].replace("CARPL", '"CARPL\nMORE"')
    spans = write(tmp_path / "spans.csv", [",".join(EP_COLUMNS), GOOD[0], quoted, "x,y"])
    assert "spans.csv line 5 has 2 fields" in ssda903.validate(h, spans, as_of=AS_OF).fatal_message()
    # harmless variants load cleanly: trailing empty cells, and a later year's export pasted
    # below with its own (wider) header line
    trailing = write(tmp_path / "trailing.csv", [",".join(EP_COLUMNS), *[r + ",," for r in GOOD[:3]]])
    assert not ssda903.validate(h, trailing, as_of=AS_OF).fatal
    wider = ",".join(EP_COLUMNS + ["EXTRA"])
    pasted = write(tmp_path / "pasted.csv", [",".join(EP_COLUMNS), *GOOD[:2], wider, GOOD[2] + ",x"])
    report = ssda903.validate(h, pasted, as_of=AS_OF)
    assert not report.fatal and report.n_episode_rows == 3


# ------------------------------------------------------------------ 5. bad CLI arguments

@pytest.mark.parametrize("as_of", ["garbage", "04/02/2019", "2019-02-30"])
def test_validate_903_bad_as_of(tmp_path, capsys, as_of):
    h = write(tmp_path / "header.csv", HEADER[:3])
    e = write(tmp_path / "episodes.csv", [",".join(EP_COLUMNS), *GOOD[:3]])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["validate-903", str(h), str(e), "--as-of", as_of]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "Traceback" not in out.err
    assert "as-of date" in out.err and "YYYY-MM-DD" in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(CareTrendsError, match="coverage start"):
        ssda903.load_903(h, e, coverage_start="soon")


@pytest.fixture
def panel_free(monkeypatch):
    monkeypatch.setattr(synth, "targets_from_panel",
                        lambda la, first, last: synth.normalise_targets(SMALL, first, last))


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_synth_903_bad_seed(tmp_path, capsys, panel_free, seed):
    out_dir = tmp_path / "out"
    assert cli.main(["synth-903", "--la", "Stoke-on-Trent", "--out", str(out_dir), "--seed", seed]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "seed" in out.err and "Traceback" not in out.err
    assert not out_dir.exists()
    with pytest.raises(CareTrendsError, match="seed"):
        ssda903.synthetic_extract("Stoke-on-Trent", seed=-1)


def test_synth_903_out_is_an_existing_file(tmp_path, capsys, panel_free):
    target = tmp_path / "taken.csv"
    target.write_text("keep me\n")
    assert cli.main(["synth-903", "--la", "Stoke-on-Trent", "--out", str(target)]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "existing file" in out.err and "folder" in out.err
    assert target.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["taken.csv"]
    assert cli.main(["synth-903", "--la", "Stoke-on-Trent", "--out", str(target / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.csv"]


def test_effect_arguments_are_checked_where_they_are_used():
    with pytest.raises(CareTrendsError, match="rate ratio"):
        synth.Effect("2020-04-01", level=0)
    with pytest.raises(CareTrendsError, match="rate ratio"):
        synth.Effect("2020-04-01", slope=float("nan"))
    with pytest.raises(CareTrendsError, match="date"):
        synth.Effect("someday")
