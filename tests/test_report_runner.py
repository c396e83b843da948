"""The runner (helpers.run.runner): one shared pool across analyses, the --all-las default
template (helpers.run.national) and SSDA903 parameters accepted by helpers.spec as load_903
accepts them.

Tiny notebooks written to tmp_path (as tests/test_report.py), so a run takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import cli
from helpers import spec as specs
from helpers.core.errors import CareTrendsError
from helpers.run import executors, national, publish, runner
from test_report import ALPHA, STOKE, SUMMARY, write_notebook

# Fails for one analysis only (its `la`), so two analyses share the same notebooks.
FAILS_FOR_STAFFORDSHIRE = '''
# %% [markdown]
# # Sometimes broken

# %% tags=["parameters"]
analysis = "x"
overrides = {}

# %%
from helpers import spec as specs
la = specs.load_analysis(analysis, overrides).la_name

# %%
if la == "Staffordshire":
    raise ValueError("deliberate failure for Staffordshire")
'''


@pytest.fixture
def notebook_dir(tmp_path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder, "01_alpha", ALPHA)
    write_notebook(folder, "02_sometimes", FAILS_FOR_STAFFORDSHIRE)
    write_notebook(folder, "09_summary", SUMMARY)
    return folder


# Staffordshire's own event: helpers.spec refuses an event data/reference/events.csv gives to
# another LA (STOKE's events are Stoke-on-Trent's).
STAFFORDSHIRE_EVENTS = [{"name": "staffordshire_plan_2019", "title": "Plan",
                         "date": "2019-11-22", "effects": ["level", "slope"]}]


def write_analysis(tmp_path: Path, name: str, la: str, **changes) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**STOKE, "analysis": name, "la": la, **changes},
                                   sort_keys=False))
    return path


def previous_reports(reports: Path, name: str) -> Path:
    folder = reports / name
    folder.mkdir(parents=True)
    (folder / "results.json").write_text("[]")
    (folder / "keep.txt").write_text("previous")
    return folder


# ------------------------------------------------------------------------------ shared pool
def test_failing_analysis_keeps_its_reports_and_the_other_publishes(tmp_path, notebook_dir,
                                                                      capsys):
    reports = tmp_path / "reports"
    good, bad = previous_reports(reports, "good"), previous_reports(reports, "bad")
    code = cli.main(["run", str(write_analysis(tmp_path, "bad", "Staffordshire",
                                               events=STAFFORDSHIRE_EVENTS)),
                     str(write_analysis(tmp_path, "good", "Stoke-on-Trent")),
                     "--notebooks-dir", str(notebook_dir), "--reports-dir", str(reports),
                     "--workers", "2", "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2 and len(err) == 1
    assert ("analysis bad: notebook 02_sometimes failed in code cell 3 (In [4]): "
            "ValueError: deliberate failure for Staffordshire") in err[0]
    # The failed analysis: previous reports untouched, partly-run notebooks set aside.
    assert (bad / "keep.txt").read_text() == "previous"
    assert (bad / "results.json").read_text() == "[]"
    assert (reports / ".failed" / "bad" / "02_sometimes.ipynb").exists()
    # The other analysis published everything, summary included.
    assert not (good / "keep.txt").exists()
    manifest = json.loads((good / "manifest.json").read_text())
    assert [n["stem"] for n in manifest["notebooks"]] == ["01_alpha", "02_sometimes", "09_summary"]
    assert len(json.loads((good / "results.json").read_text())) == 3
    assert "1 of 1 estimate point to fewer starts" in (good / "09_summary.html").read_text()
    index = (reports / "index.html").read_text()
    assert 'href="good/01_alpha.html"' in index
    assert not [p for p in reports.iterdir() if ".tmp-" in p.name]  # no temporary folder left


def test_run_analyses_serial_publishes_each_analysis(tmp_path, notebook_dir):
    reports = tmp_path / "reports"
    plans = [specs.validate({**STOKE, "analysis": name, "notebooks": ["01", "09"]})
             for name in ("one", "two")]
    results = runner.run_analyses(plans, reports, notebook_dir=notebook_dir, workers=1,
                                  progress=False)
    assert sorted(results) == ["one", "two"]
    for name, manifest in results.items():
        assert manifest["records"] == 3 and (reports / name / "09_summary.html").exists()


def test_longest_notebooks_start_first(tmp_path, monkeypatch, notebook_dir):
    """The last run's timings order the queue across analyses (e.g. 06_sensitivity first)."""
    reports = tmp_path / "reports"
    for name, seconds in (("one", {"01_alpha": 2, "02_sometimes": 9}),
                          ("two", {"01_alpha": 5, "02_sometimes": 1})):
        folder = reports / name
        folder.mkdir(parents=True)
        (folder / publish.MANIFEST).write_text(json.dumps(
            {"notebooks": [{"stem": s, "seconds": v} for s, v in seconds.items()]}))
    started = []

    def fake_execute(job):
        started.append((job.header["analysis"], job.stem))
        return {"stem": job.stem, "ok": True, "title": "", "headline": "", "files": {}}

    # one worker runs each job in this process, through the pool's `execute`
    monkeypatch.setattr(executors, "execute", fake_execute)
    plans = [specs.validate({**STOKE, "analysis": name}) for name in ("one", "two")]
    runner.run_analyses(plans, reports, notebook_dir=notebook_dir, workers=1, progress=False)
    assert started[:4] == [("one", "02_sometimes"), ("two", "01_alpha"), ("one", "01_alpha"),
                           ("two", "02_sometimes")]
    assert {a for a, stem in started[4:]} == {"one", "two"} and {s for _, s in started[4:]} == {
        "09_summary"}


# ------------------------------------------------------------------------------ --all-las
def test_all_las_without_a_name_uses_the_all_las_template(monkeypatch, tmp_path):
    calls = {}
    real_run_all_las = national.run_all_las

    def run_all_las(template=None, out_dir=None, *, only=None, **kwargs):
        calls.update(template=template, only=only)
        return [{"la": "x", "ok": True}]

    monkeypatch.setattr(national, "run_all_las", run_all_las)
    code = cli.main(["run", "--all-las", "--only", "01", "--reports-dir", str(tmp_path)])
    assert code == 0
    # no analysis named: run_all_las gets no template and falls back to templates/all-las.yaml;
    # --only restricts the notebooks of every LA
    assert calls["template"] is None and calls["only"] == ["01"]
    assert real_run_all_las.__kwdefaults__["only"] is None
    assert specs.analysis_path(specs.ALL_LAS_TEMPLATE).name == "all-las.yaml"
    ok, failed = national.specs_for(None, las=["Barnsley"])
    assert not failed and ok[0].la_name == "Barnsley"  # the template, not the first analysis' LA


# ------------------------------------------------------------------------------ SSDA903 paths
@pytest.fixture
def extract_files(tmp_path) -> dict[str, Path]:
    files = {}
    for name in ("header_2023.csv", "header_2024.csv", "episodes_2024.csv"):
        files[name] = tmp_path / name
        files[name].write_text("CHILD\n")
    return files


def test_ssda903_parameters_accept_what_load_903_accepts(tmp_path, extract_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    two_headers = [str((tmp_path / f"header_{y}.csv").resolve()) for y in (2023, 2024)]
    episodes = str((tmp_path / "episodes_2024.csv").resolve())
    for header in ("header_*.csv", "header_2023.csv, header_2024.csv",
                   ["header_2023.csv", str(tmp_path / "header_2024.csv")]):
        checked = specs.validate({**STOKE, "ssda903_header": header,
                                  "ssda903_episodes": "episodes_2024.csv"}).to_parameters()
        assert checked["ssda903_header"] == two_headers
        assert checked["ssda903_episodes"] == episodes  # a single path stays a string, absolute


@pytest.mark.parametrize("value, message", [
    ("missing_header.csv", r"ssda903_header: SSDA903 file not found: 'missing_header.csv'"),
    ("nothing_*.csv", r"ssda903_header: no SSDA903 file matches 'nothing_\*.csv'"),
    (["header_2023.csv", "gone.csv"], r"SSDA903 file not found: 'gone.csv'"),
    (12, r"ssda903_header must be a path, a pattern or a list"),
])
def test_missing_ssda903_file_gives_one_clear_line(tmp_path, extract_files, monkeypatch, value,
                                                   message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CareTrendsError, match=message) as info:
        specs.validate({**STOKE, "ssda903_header": value})
    assert "\n" not in str(info.value) and str(info.value).startswith("analysis ")
