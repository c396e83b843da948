"""The runner and publishing (helpers.run.runner, helpers.run.publish), the analysis spec as the
runner sees it (helpers.spec), and the report building blocks (helpers.present.tables, summary,
overview).

The end-to-end tests run `care-trends run` on tiny notebooks written to tmp_path, so they
exercise papermill, parameter filtering, results.json, HTML and the swap in a few seconds."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import pytest

from helpers import cli
from helpers import spec as specs
from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.core.records import RECORD_COLUMNS
from helpers.present import overview, summary
from helpers.present.tables import Table
from helpers.run import national, publish, runner

STOKE = {
    "analysis": "stoke-on-trent", "la": "Stoke-on-Trent", "start_year": 2014, "end_year": None,
    "outcomes": ["starts", "cla_31_march", "ceased"], "family": "quasipoisson",
    "events": [{"name": "strategies_2020", "title": "Strategies", "date": "2020-10-01",
                "effects": ["level", "slope"]},
               {"name": "family_matters", "title": "Family Matters", "date": "2024-03-01",
                "effects": ["level"]}],
}


# ------------------------------------------------------------------------------ helpers
def write_notebook(folder: Path, stem: str, source: str) -> Path:
    """A py:percent text -> NN_name.ipynb with the python3 kernel (as the collection's are)."""
    nb = jupytext.reads(textwrap.dedent(source), fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, str(path))
    return path


ALPHA = '''
# %% [markdown]
# # Alpha
# Purpose of alpha.

# %% tags=["parameters"]
analysis = "x"
overrides = {}
results_path = None

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown
from helpers import spec as specs
from helpers.core.records import save_records
from helpers.present import charts
spec = specs.load_analysis(analysis, overrides)
la, outcomes = spec.la_name, spec.outcomes
charts.setup_style()
fig, ax = plt.subplots()
ax.plot([1, 2, 3]); ax.set_title("Alpha chart"); ax.set_xlabel("year"); ax.set_ylabel("starts");

# %%
Markdown(f"Alpha finds that {la} starts fell by a tenth in the latest year.")

# %%
if results_path:
    save_records([{"analysis": analysis, "notebook": "01_alpha", "la": la, "outcome": o,
                   "event": "e1", "design": "its", "effect": "level", "estimate": 0.9,
                   "ci_low": 0.8, "ci_high": 0.95, "p_value": 0.01, "scale": "ratio",
                   "not_a_column": 1} for o in outcomes], results_path)
'''

SUMMARY = '''
# %% [markdown]
# # Summary

# %% tags=["parameters"]
analysis = "x"
overrides = {}
results_dir = None

# %%
from IPython.display import Markdown
from helpers import spec as specs
from helpers.present import summary
spec = specs.load_analysis(analysis, overrides)
records = summary.load_results(analysis, results_dir)
Markdown(summary.findings_text(records, spec.la_name))
'''

FAILING = '''
# %% [markdown]
# # Broken

# %% tags=["parameters"]
analysis = "x"
overrides = {}

# %%
x = 1

# %%
raise ValueError("deliberate failure for the test")
'''


@pytest.fixture
def notebook_dir(tmp_path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder, "01_alpha", ALPHA)
    write_notebook(folder, "09_summary", SUMMARY)
    return folder


def write_params(tmp_path: Path, **changes) -> Path:
    params = {**STOKE, "analysis": "small", **changes}
    path = tmp_path / f"{params['analysis']}.yaml"
    import yaml

    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# ------------------------------------------------------------------------------ parameters
def test_load_analysis_reads_the_committed_files():
    names = specs.list_analyses()
    assert {"stoke-on-trent", "staffordshire"} <= set(names)
    for name in ("stoke-on-trent", "staffordshire"):
        spec = specs.load_analysis(name)
        assert spec.analysis == name
        # what the runner hands a notebook is plain JSON: dates as text
        params = spec.to_parameters()
        assert all(isinstance(e["date"], str) for e in params["events"])
        assert specs.validate(params) == spec


def test_stoke_yaml_matches_the_notebook_defaults():
    """The committed notebooks carry the default run's outputs, so their defaults name the Stoke
    analysis (and override nothing in it)."""
    for stem in ("02_trends", "03_its"):
        nb = jupytext.read(paths.notebooks_dir() / f"{stem}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        defaults: dict = {}
        exec(cell.source, {}, defaults)  # noqa: S102 - our own parameters cell
        assert defaults["analysis"] == "stoke-on-trent", stem
        assert not defaults.get("overrides"), stem
        assert (specs.load_analysis(defaults["analysis"], defaults.get("overrides"))
                == specs.load_analysis("stoke-on-trent"))


def test_unknown_analysis_suggests_a_name():
    with pytest.raises(CareTrendsError, match="did you mean 'stoke-on-trent'"):
        specs.load_analysis("stoke-on-tren")


@pytest.mark.parametrize("change, message", [
    ({"la": "Stoke on Tent"}, r"unknown local authority .*did you mean 'Stoke-on-Trent'"),
    ({"outcomes": ["starts", "entries"]}, r"unknown outcome 'entries'"),
    ({"events": [{"name": "late", "date": "2031-05-01"}]}, r"event 'late' .* outside the data"),
    ({"events": [{"name": "early", "date": "2014-05-01"}]}, r"fewer than 3 reporting years"),
    ({"family": "poison"}, r"did you mean 'poisson'"),
    ({"start_year": 2001}, r"start_year: Input should be greater than or equal to 2010"),
    ({"start_year": 2030}, r"start_year 2030 is outside the data"),
    ({"comparator": "regoin"}, r"did you mean 'region'"),
    ({"outcome_typo": 1}, r"unknown key 'outcome_typo'; did you mean 'outcomes'"),
])
def test_bad_parameters_give_one_clear_line(change, message):
    with pytest.raises(CareTrendsError, match=message) as info:
        specs.validate({**STOKE, **change})
    assert "\n" not in str(info.value)


def test_notebook_inputs_only_declared_parameters():
    spec = specs.validate({**STOKE, "title": "t"})
    inputs = runner.notebook_inputs(spec, {"analysis", "results_path"}, "03_its")
    assert inputs == {"analysis": "stoke-on-trent", "results_path": "results/03_its.json"}
    # the whole validated spec goes in `overrides`, to a notebook that declares it
    inputs = runner.notebook_inputs(spec, {"analysis", "overrides", "la"}, "03_its")
    assert inputs == {"analysis": "stoke-on-trent", "overrides": spec.to_parameters()}


def test_plan_stages_runs_result_readers_last(tmp_path):
    declared = {Path("01_a.ipynb"): {"la"}, Path("05_b.ipynb"): {"la", "results_path"},
                Path("08_c.ipynb"): {"results_dir"}, Path("09_summary.ipynb"): set()}
    stages = runner.plan_stages(declared)
    assert [[p.stem for p in s] for s in stages] == [["01_a", "05_b"], ["08_c", "09_summary"]]


def test_merge_records_keeps_record_columns(tmp_path):
    (tmp_path / "01_a.json").write_text(json.dumps([{"estimate": 1.0, "extra": 2}]))
    (tmp_path / "02_b.json").write_text(json.dumps([{"notebook": "02_b", "estimate": 2.0}]))
    merged = runner.merge_records(tmp_path, ["01_a", "02_b", "03_missing"])
    assert [list(r) for r in merged] == [RECORD_COLUMNS, RECORD_COLUMNS]
    assert [r["notebook"] for r in merged] == ["01_a", "02_b"]


# ------------------------------------------------------------------------------ running
def test_run_end_to_end_via_cli(tmp_path, notebook_dir):
    reports = tmp_path / "reports"
    params = write_params(tmp_path)
    code = cli.main(["run", str(params), "--notebooks-dir", str(notebook_dir),
                     "--reports-dir", str(reports), "--no-progress"])
    assert code == 0
    out = reports / "small"
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 3 and all(list(r) == RECORD_COLUMNS for r in records)
    assert {r["outcome"] for r in records} == {"starts", "cla_31_march", "ceased"}
    page = (out / "01_alpha.html").read_text()
    assert "Alpha chart" in page and re.search(r'<img [^>]*alt="Alpha chart; starts against year"', page)
    assert "import matplotlib" not in page  # code hidden
    assert "care-trends" in page and "Stoke-on-Trent" in page and "reporting years" in page
    summary = (out / "09_summary.html").read_text()
    assert "1 of 1 estimate point to fewer starts" in summary  # read the other notebook's results
    index = (reports / "index.html").read_text()
    assert 'href="small/01_alpha.html"' in index
    # Per-notebook headlines stay in the manifest; the index shows the answer, not one-liners.
    manifest = json.loads((out / "manifest.json").read_text())
    assert "starts fell by a tenth" in manifest["notebooks"][0]["headline"]
    assert not list(reports.glob(".small*"))  # no temporary folder left


def test_bad_parameter_leaves_previous_reports(tmp_path, notebook_dir, capsys):
    reports = tmp_path / "reports"
    previous = reports / "small"
    previous.mkdir(parents=True)
    (previous / "results.json").write_text("[]")
    params = write_params(tmp_path, la="Stoke-on-Tren")
    code = cli.main(["run", str(params), "--notebooks-dir", str(notebook_dir),
                     "--reports-dir", str(reports), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "did you mean 'Stoke-on-Trent'" in err[0]
    assert (previous / "results.json").read_text() == "[]"
    assert sorted(p.name for p in reports.iterdir()) == ["small"]


def test_failing_notebook_names_notebook_and_cell(tmp_path, notebook_dir):
    write_notebook(notebook_dir, "02_broken", FAILING)
    out = tmp_path / "reports" / "small"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("previous")
    spec = specs.validate({**STOKE, "analysis": "small", "notebooks": ["02"]})
    with pytest.raises(CareTrendsError) as info:
        runner.run_analysis(spec, out, notebook_dir=notebook_dir, progress=False, workers=1)
    message = str(info.value)
    assert "notebook 02_broken failed in code cell 3 (In [4])" in message
    assert "ValueError: deliberate failure" in message and "\n" not in message
    assert (out / "keep.txt").read_text() == "previous"
    assert (tmp_path / "reports" / ".failed" / "small" / "02_broken.ipynb").exists()


# ------------------------------------------------------------------------------ HTML helpers
def test_headline_prefers_tagged_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\nPurpose text here."),
                nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
                    "display_data", data={"text/markdown": "A long enough first reading of results."})]),
                nbformat.v4.new_code_cell("y", metadata={"tags": ["headline"]}, outputs=[
                    nbformat.v4.new_output("display_data",
                                           data={"text/markdown": "**cla_31_march** fell."})])]
    assert publish.headline(nb) == "cla_31_march fell."
    assert publish.notebook_title(nb) == "Title"
    nb.cells = nb.cells[:1]
    assert publish.headline(nb) == "Purpose text here."


def test_build_index_without_runs(tmp_path):
    page = publish.build_index(tmp_path).read_text()
    assert "No analyses have been run yet" in page and '<html lang="en-GB">' in page
    (tmp_path / "all-las").mkdir()
    (tmp_path / "all-las" / "index.html").write_text("<html></html>")
    assert 'href="all-las/index.html"' in publish.build_index(tmp_path).read_text()


# ------------------------------------------------------------------------------ report blocks
def test_table_is_a_real_accessible_table():
    html = Table(pd.DataFrame({"year": [2024], "name": ["<b>"], "rate": [12.345]}),
                       caption="Cap")._repr_html_()
    assert "<table><caption>Cap</caption>" in html
    assert html.startswith('<div class="table-wrap" role="region" tabindex="0" aria-label="Cap">')
    assert '<th scope="col">year</th>' in html and "&lt;b&gt;" in html
    assert "<td>2024</td>" in html and "<td>12.345</td>" in html
    assert Table(pd.DataFrame({"n": [1063.0, 0.12345]}), "c")._repr_html_().count(
        "<td>1,063</td>") == 1


@pytest.mark.parametrize("est, lo, hi, scale, expected", [
    (0.8, 0.7, 0.9, "ratio", "lower"), (1.2, 1.1, 1.3, "ratio", "higher"),
    (0.9, 0.7, 1.1, "ratio", "no clear"), (-3.0, -5.0, -1.0, "difference", "lower"),
    (None, None, None, "ratio", "not estimable")])
def test_verdict_wording(est, lo, hi, scale, expected):
    assert summary.verdict(est, lo, hi, scale).startswith(expected)


def test_triangulation_and_findings_degrade_gracefully():
    empty = pd.DataFrame(columns=RECORD_COLUMNS)
    assert summary.triangulation_table(empty).empty
    assert "No estimates are available yet" in summary.findings_text(empty, "Stoke-on-Trent")
    records = pd.DataFrame([
        dict(zip(RECORD_COLUMNS, ["a", "03_its", "Stoke", "starts", "fm", "its", "level",
                                  0.8, 0.7, 0.9, 0.01, "ratio"])),
        dict(zip(RECORD_COLUMNS, ["a", "04_c", "Stoke", "starts", "fm", "did", "level",
                                  0.9, 0.7, 1.1, 0.3, "ratio"]))])
    extra = pd.DataFrame([
        dict(zip(RECORD_COLUMNS, ["a", "05_m", "Stoke", "starts", "fm", "its_monthly_synthetic",
                                  "level", 0.6, 0.5, 0.7, 0.01, "ratio"])),
        dict(zip(RECORD_COLUMNS, ["a", "06_s", "Stoke", "starts", "fm", "placebo_in_time",
                                  "level", 0.6, -30.0, 5.0, 0.57, "ratio"])),
        dict(zip(RECORD_COLUMNS, ["a", "06_s", "Stoke", "starts", "fm", "power_mde",
                                  "level_mde_annual_1", 30.0, None, None, None, "percent"]))])
    table = summary.triangulation_table(pd.concat([records, extra], ignore_index=True))
    assert list(table.columns) == ["design", "notebook", "event", "estimate", "95% interval",
                                   "scale", "verdict"]
    assert table["design"].tolist() == ["Single-series ITS", "Difference-in-differences",
                                        "Monthly ITS (SYNTHETIC data), calibrated bootstrap intervals", "Placebo in time"]
    assert table["verdict"].iloc[2].endswith("SYNTHETIC data: shows the method only")
    assert table["verdict"].iloc[3] == "within the range of placebo dates (p = 0.57)"
    assert "1 of 2 estimates point to fewer starts" in summary.findings_text(records, "Stoke")
    assert "1 of 2 estimates" in summary.findings_text(pd.concat([records, extra]), "Stoke")
    curve = pd.DataFrame([dict(zip(RECORD_COLUMNS, ["a", "06_s", "Stoke", "starts", "fm",
                                                    "specification_curve", "level", -40.0, -42.0,
                                                    -39.0, None, "percent"]))])
    row = summary.triangulation_table(curve).iloc[0]
    assert row["95% interval"] == "range -42.0% to -39.0%"
    assert row["verdict"] == "every specification shows a fall"


def test_load_results_reads_a_results_folder(tmp_path):
    (tmp_path / "03_its.json").write_text(json.dumps([{"notebook": "03_its", "estimate": 1}]))
    (tmp_path / "09_summary.json").write_text(json.dumps([{"notebook": "09_summary"}]))
    assert summary.load_results("x", tmp_path)["notebook"].tolist() == ["03_its"]
    assert summary.load_results("no-such-analysis").empty


def test_growth_decomposition_balances():
    table = overview.growth_decomposition("861", start_year=2011)
    flows = table["net flow (starts - ceased)"] + table["other"]
    assert (flows - table["change in year"]).abs().max() < 1e-9
    assert table["other"].abs().max() < 20  # the flows explain nearly all of the change
    text = overview.decomposition_reading(table, "Stoke-on-Trent", split_year=2020)
    assert text.startswith("In Stoke-on-Trent, from 2010 to 2019")


def test_rank_and_comparison():
    rank = overview.rank_by_year("861", start_year=2024)
    assert rank["rank (1 = highest)"].iloc[0] <= 5 and rank["of LAs"].iloc[0] > 140
    rates = overview.comparison_rates("861", "starts", start_year=2020)
    assert list(rates.columns) == ["year", "Stoke-on-Trent", "statistical neighbours",
                                   "West Midlands", "England"]
    assert rates["year"].tolist() == list(range(2020, 2026))


def test_all_las_delegates_to_the_national_runner(monkeypatch, tmp_path):
    calls = {}

    def run_all_las(template=None, out_dir=None, *, scheduler=None, **kwargs):
        calls.update(template=template, scheduler=scheduler, reports_dir=out_dir)
        return [{"la": "x", "ok": True}]

    monkeypatch.setattr(national, "run_all_las", run_all_las)
    code = cli.main(["run", "stoke-on-trent", "--all-las", "--scheduler", "tcp://h:8786",
                     "--reports-dir", str(tmp_path)])
    assert code == 0
    # the analysis named is the template; each LA's spec is filled and validated from it
    assert calls["scheduler"] == "tcp://h:8786" and calls["template"] == "stoke-on-trent"
    assert specs.load_analysis(calls["template"]).la_name == "Stoke-on-Trent"
    assert calls["reports_dir"] == tmp_path.resolve()
    assert (tmp_path / "index.html").exists()


def test_run_analysis_is_picklable():
    import pickle

    from helpers.run import execute

    assert pickle.loads(pickle.dumps(runner.run_analysis)) is runner.run_analysis
    assert pickle.loads(pickle.dumps(execute.execute)) is execute.execute  # what workers run


def test_missing_results_names_silent_notebooks(notebook_dir):
    records = pd.DataFrame(columns=RECORD_COLUMNS)
    assert summary.missing_results(records, notebook_dir) == ["01_alpha"]
    records.loc[0, "notebook"] = "01_alpha"
    assert summary.missing_results(records, notebook_dir) == []
