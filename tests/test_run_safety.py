"""The runner under faults (issue 13): `--only` keeps the rest of an analysis, a kill at any
point leaves the previous report intact and the next run repairs what it left, SIGTERM/SIGINT
stop the whole process tree, a dead worker costs one retry, published notebooks carry no
private path or timestamp, and two runs are byte-identical.

Kill tests run a real `care-trends run` in a subprocess on tiny notebooks and stop it with
SIGKILL during execution and at the named points of the swap (CARE_TRENDS_TEST_HOOK, see
helpers.run.runner)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from helpers import cli
from helpers import spec as specs
from helpers.core import paths
from helpers.run import execute, national, publish, runner
from helpers.ssda903 import synth
from test_report import STOKE, SUMMARY, write_notebook
from test_scaleout import TEMPLATE, template_file

ROOT = Path(__file__).resolve().parents[1]

# Estimates from the environment, so a rerun visibly changes a page and its records.
ALPHA = '''
# %% [markdown]
# # Alpha

# %% tags=["parameters"]
analysis = "x"
overrides = {}
results_path = None

# %%
import os
from IPython.display import Markdown
from helpers import spec as specs
from helpers.core.records import save_records
spec = specs.load_analysis(analysis, overrides)
estimate = float(os.environ.get("CT_TEST_ESTIMATE", "0.9"))
Markdown(f"Alpha finds an estimate of {estimate} for {spec.la_name}.")

# %%
if results_path:
    save_records([{"analysis": analysis, "notebook": "01_alpha", "la": spec.la_name,
                   "outcome": "starts", "event": "e1", "design": "its", "effect": "level",
                   "estimate": estimate, "ci_low": 0.5, "ci_high": 0.95, "p_value": 0.01,
                   "scale": "ratio"}], results_path)
'''

# Beta also leaves extra numbers beside its records (as 06_sensitivity leaves its headline).
BETA = ALPHA.replace("# # Alpha", "# # Beta").replace('"01_alpha"', '"02_beta"').replace(
    "Alpha finds", "Beta finds").replace('"CT_TEST_ESTIMATE", "0.9"', '"CT_TEST_BETA", "0.8"') + """
# %%
if results_path:
    from helpers.core.records import save_extra
    save_extra({"beta": estimate}, results_path, "headline")
"""

# Sleeps while CT_TEST_MARKER is set, after writing its kernel's pid there.
SLOW = '''
# %% [markdown]
# # Slow

# %% tags=["parameters"]
analysis = "x"
overrides = {}

# %%
import os, pathlib, time
marker = os.environ.get("CT_TEST_MARKER")
if marker:
    pathlib.Path(marker).write_text(str(os.getpid()))
    time.sleep(300)
print("slow done")
'''


def yaml_file(folder: Path, name: str = "small", **changes) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**STOKE, "analysis": name, **changes}, sort_keys=False))
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """{relative path: bytes} of every file under folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(reports: Path) -> list[str]:
    return sorted(p.name for p in reports.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# ============================================================================ --only
@pytest.fixture
def three_notebooks(tmp_path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder, "01_alpha", ALPHA)
    write_notebook(folder, "02_beta", BETA)
    write_notebook(folder, "09_summary", SUMMARY)
    return folder


def run(argv) -> int:
    return cli.main([str(a) for a in argv] + ["--no-progress", "--workers", "1"])


def test_only_updates_those_pages_and_keeps_the_rest(tmp_path, three_notebooks, monkeypatch,
                                                     capsys):
    reports, params = tmp_path / "reports", yaml_file(tmp_path)
    common = ["--notebooks-dir", three_notebooks, "--reports-dir", reports]
    assert run(["run", params, *common]) == 0
    folder = reports / "small"
    before = tree(folder)
    # Notebook 01 gives another estimate now; only it is run.
    monkeypatch.setenv("CT_TEST_ESTIMATE", "0.5")
    assert run(["run", params, "--only", "01", *common]) == 0
    after = tree(folder)
    assert sorted(after) == sorted(before)  # every page, the summary, results.json, manifest
    for kept in ("02_beta.html", "02_beta.ipynb", "09_summary.html", "09_summary.ipynb"):
        assert after[kept] == before[kept], kept
    assert "estimate of 0.5" in after["01_alpha.html"].decode()
    records = json.loads(after["results.json"])
    assert [(r["notebook"], r["estimate"]) for r in records] == [("01_alpha", 0.5),
                                                                  ("02_beta", 0.8)]
    manifest = json.loads(after["manifest.json"])
    assert [n["stem"] for n in manifest["notebooks"]] == ["01_alpha", "02_beta", "09_summary"]
    assert manifest["records"] == 2 and manifest["source"] == "small.yaml"
    assert json.loads(after["results/02_beta.headline.json"]) == {"beta": 0.8}
    index = (reports / "index.html").read_text()
    for page in ("01_alpha", "02_beta", "09_summary"):
        assert f'href="small/{page}.html"' in index
    # Every page keeps the whole navigation.
    assert 'href="02_beta.html"' in after["01_alpha.html"].decode()
    # The summary alone reads the kept records of the others.
    assert run(["run", params, "--only", "09", *common]) == 0
    summary_page = (folder / "09_summary.html").read_text()
    assert "of 2 estimates point to fewer starts" in summary_page
    assert json.loads((folder / "results.json").read_text()) == records
    assert (folder / "results/02_beta.headline.json").read_bytes() == before[
        "results/02_beta.headline.json"]
    # Rerunning 02 replaces its extra numbers too.
    monkeypatch.setenv("CT_TEST_BETA", "0.6")
    assert run(["run", params, "--only", "02", *common]) == 0
    assert json.loads((folder / "results/02_beta.headline.json").read_text()) == {"beta": 0.6}
    assert [r["estimate"] for r in json.loads((folder / "results.json").read_text())] == [
        0.5, 0.6]
    assert leftovers(reports) == []


def test_only_after_the_yaml_changed_is_refused(tmp_path, three_notebooks, capsys):
    reports, params = tmp_path / "reports", yaml_file(tmp_path)
    common = ["--notebooks-dir", three_notebooks, "--reports-dir", reports]
    assert run(["run", params, "--only", "01", *common]) == 0
    capsys.readouterr()
    before = tree(reports)
    yaml_file(tmp_path, title="Another question")
    assert run(["run", params, "--only", "01", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "its YAML changed" in err[0] and "drop --only" in err[0]
    assert tree(reports) == before
    assert run(["run", params, *common]) == 0  # a whole run is fine


def test_only_after_the_data_changed_is_refused(tmp_path, three_notebooks, monkeypatch, capsys):
    reports, params = tmp_path / "reports", yaml_file(tmp_path)
    common = ["--notebooks-dir", three_notebooks, "--reports-dir", reports]
    assert run(["run", params, "--only", "01", *common]) == 0
    capsys.readouterr()
    before = tree(reports)
    monkeypatch.setattr(publish, "data_edition", lambda: "reporting years 2010-2026 (imported)")
    assert run(["run", params, "--only", "01", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the data changed" in err[0]
    assert tree(reports) == before


def test_only_into_a_new_folder_runs_just_those(tmp_path, three_notebooks):
    reports = tmp_path / "reports"
    assert run(["run", yaml_file(tmp_path), "--only", "02", "--notebooks-dir", three_notebooks,
                "--reports-dir", reports]) == 0
    assert sorted(tree(reports / "small")) == ["02_beta.html", "02_beta.ipynb", "manifest.json",
                                               "results.json", "results/02_beta.headline.json"]


# ============================================================================ repair
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_repair_restores_a_half_finished_swap_and_cleans_dead_runs(tmp_path):
    reports = tmp_path / "reports"
    pid = dead_pid()
    old = reports / f".small.old-{pid}"
    old.mkdir(parents=True)
    (old / "results.json").write_text("previous")
    (reports / f".small.tmp-{pid}").mkdir()  # the new folder the kill stopped
    (reports / f".other.tmp-{pid}" / "x").mkdir(parents=True)
    (reports / "kept").mkdir()
    (reports / f".kept.old-{pid}").mkdir()  # swap finished, old copy not yet removed
    alive = reports / f".busy.tmp-{os.getpid()}"  # a run still going: left alone
    alive.mkdir()
    stale = reports / ".index.html.abcd1234.tmp"
    stale.write_text("half an index")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = reports / ".index.html.efgh5678.tmp"
    fresh.write_text("being written")
    lines = runner.repair_reports(reports)
    assert (reports / "small" / "results.json").read_text() == "previous"
    assert any("restored" in line and line.endswith("from an interrupted run") for line in lines)
    assert sorted(p.name for p in reports.iterdir()) == sorted(
        ["small", "kept", alive.name, fresh.name])
    assert runner.repair_reports(reports) == []  # nothing left to do


def test_a_signal_between_the_two_renames_waits_for_the_second(tmp_path, monkeypatch):
    out, work = tmp_path / "small", tmp_path / ".small.tmp-1"
    out.mkdir()
    (out / "v").write_text("old")
    work.mkdir()
    (work / "v").write_text("new")
    hooked = []

    def hook(point):
        if point == "swap-old-moved":  # SIGINT arrives between the renames
            hooked.append(point)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(runner, "_test_hook", hook)
    with pytest.raises(KeyboardInterrupt):
        runner.swap_in(work, out)
    assert hooked and (out / "v").read_text() == "new"


def test_every_site_write_is_atomic_and_unique(tmp_path):
    """Two runs sharing a reports folder rebuild index.html at once: unique temporary names."""
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"analysis": "a", "title": "A",
                                                      "data_edition": "e", "notebooks": []}))
    errors = []

    def build():
        try:
            for _ in range(10):
                publish.build_index(tmp_path)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and "a/" in (tmp_path / "index.html").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    # Nothing in the run layer writes a shared file except through helpers.core.io.
    for module in ("runner", "publish", "national", "execute"):
        text = (ROOT / "src/helpers/run" / f"{module}.py").read_text()
        assert "index.html.tmp" not in text and ".tmp\")" not in text


# ============================================================================ kills
@pytest.fixture
def crash_setup(tmp_path):
    """Tiny notebooks, a YAML and a published previous report."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs, "01_alpha", ALPHA)
    write_notebook(nbs, "03_slow", SLOW)
    params = yaml_file(tmp_path)
    reports = tmp_path / "reports"
    assert run(["run", params, "--notebooks-dir", nbs, "--reports-dir", reports]) == 0
    return nbs, params, reports, tree(reports / "small")


def cli_process(nbs, params, reports, *extra, env=None, workers=1) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
                   paths.RAW_DIR_ENV: str(paths.raw_dir()), "CT_TEST_ESTIMATE": "0.3",
                   **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "helpers", "run", str(params), "--notebooks-dir", str(nbs),
         "--reports-dir", str(reports), "--no-progress", "--workers", str(workers), *extra],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(ROOT))


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def gone(procs: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before-swap", "swap-old-moved", "swap-new-in"])
def test_kill_at_each_point_of_publishing_keeps_the_previous_report(crash_setup, point):
    nbs, params, reports, previous = crash_setup
    proc = cli_process(nbs, params, reports, "--only", "01",
                       env={runner.TEST_HOOK_ENV: point})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    pid = proc.pid
    folder = reports / "small"
    if point == "swap-old-moved":  # the report exists only set aside, intact
        assert not folder.exists()
        assert tree(reports / f".small.old-{pid}") == previous
    elif point == "before-swap":
        assert tree(folder) == previous
    else:  # the new report is in; the old copy was not yet removed
        assert "estimate of 0.3" in (folder / "01_alpha.html").read_text()
    assert leftovers(reports)  # what the kill left behind ...
    runner.repair_reports(reports)  # ... the next start-up repairs
    assert leftovers(reports) == []
    if point != "swap-new-in":
        assert tree(folder) == previous


@pytest.mark.slow
def test_next_run_repairs_a_killed_swap_and_publishes(crash_setup, capsys):
    nbs, params, reports, previous = crash_setup
    proc = cli_process(nbs, params, reports, "--only", "01",
                       env={runner.TEST_HOOK_ENV: "swap-old-moved"})
    proc.communicate(timeout=300)
    assert not (reports / "small").exists()
    capsys.readouterr()
    assert run(["run", params, "--only", "01", "--notebooks-dir", nbs, "--reports-dir",
                reports]) == 0
    assert "restored" in capsys.readouterr().err
    after = tree(reports / "small")
    assert sorted(after) == sorted(previous) and after["03_slow.html"] == previous["03_slow.html"]
    assert leftovers(reports) == []


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_during_execution_leaves_the_report_and_no_process(crash_setup, tmp_path,
                                                                     workers):
    nbs, params, reports, previous = crash_setup
    marker = tmp_path / "kernel.pid"
    proc = cli_process(nbs, params, reports, "--only", "03",
                       env={"CT_TEST_MARKER": str(marker)}, workers=workers)
    wait_for(marker.exists, 240, "the notebook to start")
    time.sleep(0.5)
    tree_procs = psutil.Process(proc.pid).children(recursive=True)
    kernel = psutil.Process(int(marker.read_text()))
    assert kernel in tree_procs
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    # Workers die with the run (PR_SET_PDEATHSIG), kernels when their parent goes.
    wait_for(lambda: gone(tree_procs), 30, "the workers and kernels to exit")
    assert tree(reports / "small") == previous
    runner.repair_reports(reports)
    assert leftovers(reports) == [] and tree(reports / "small") == previous


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers", [(signal.SIGTERM, 2), (signal.SIGINT, 1)])
def test_sigterm_and_sigint_stop_the_whole_tree_and_keep_the_report(crash_setup, tmp_path, sig,
                                                                     workers):
    nbs, params, reports, previous = crash_setup
    marker = tmp_path / "kernel.pid"
    proc = cli_process(nbs, params, reports, "--only", "03",
                       env={"CT_TEST_MARKER": str(marker)}, workers=workers)
    wait_for(marker.exists, 240, "the notebook to start")
    time.sleep(0.5)
    tree_procs = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        f"care-trends: stopped by {signal.Signals(sig).name}"), err
    wait_for(lambda: gone(tree_procs), 30, "the workers and kernels to exit")
    assert tree(reports / "small") == previous
    assert leftovers(reports) == [] and not (reports / ".failed").exists()


# ============================================================================ dead workers
KILLER = '''
# %% [markdown]
# # Killer

# %% tags=["parameters"]
analysis = "x"
overrides = {}
results_path = None

# %%
import os, pathlib, signal
marker = pathlib.Path(os.environ["CT_TEST_MARKERS"]) / analysis
# Stoke-on-Trent's worker dies every time; Derby's once; Staffordshire's never.
if analysis == "stoke-on-trent" or (analysis == "derby" and not marker.exists()):
    marker.touch()
    # The worker process that started this kernel (jupyter_client names it; a kernel forked by
    # helpers.run.kernels' server has the server as its parent, not the worker).
    os.kill(int(os.environ["JPY_PARENT_PID"]), signal.SIGKILL)
print(analysis)
'''


@pytest.mark.slow
def test_all_las_survives_dead_workers(tmp_path, monkeypatch, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs, "01_killer", KILLER)
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("CT_TEST_MARKERS", str(markers))
    code = cli.main(["run", str(template_file(tmp_path)), "--all-las", "--la", "Stoke-on-Trent",
                     "--la", "Derby", "--la", "Staffordshire", "--notebooks-dir", str(nbs),
                     "--reports-dir", str(tmp_path / "reports"), "--workers", "2",
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    summary = json.loads((tmp_path / "reports/all-las/summary.json").read_text())
    status = {row["analysis"]: row for row in summary}
    assert status["derby"]["ok"] and status["staffordshire"]["ok"]  # retried / untouched
    assert not status["stoke-on-trent"]["ok"]
    assert "worker process died" in status["stoke-on-trent"]["error"]
    assert "2 times" in status["stoke-on-trent"]["error"]


def test_summary_is_written_when_the_batch_stops(tmp_path, monkeypatch):
    def stopped(specs_, root, *, on_done=None, **kwargs):
        on_done(specs_[0].analysis, {"records": 1, "notebooks": [], "seconds": 1.0})
        raise KeyboardInterrupt

    monkeypatch.setattr(national, "run_analyses", stopped)
    with pytest.raises(KeyboardInterrupt):
        national.run_all_las(template_file(tmp_path), tmp_path / "reports",
                             las=["Derby", "Stoke-on-Trent"], workers=1, progress=False)
    summary = json.loads((tmp_path / "reports/all-las/summary.json").read_text())
    assert [(r["analysis"], r["ok"]) for r in summary] == [("derby", True),
                                                          ("stoke-on-trent", False)]
    assert "not run" in summary[1]["error"]


# ============================================================================ what is published
PRIVATE = '''
# %% [markdown]
# # Own extract

# %% tags=["parameters"]
analysis = "x"
overrides = {}

# %%
from helpers import spec as specs, ssda903
spec = specs.load_analysis(analysis, overrides)
extract = ssda903.load_903(spec.ssda903_header, spec.ssda903_episodes)
print(extract.report)
print(overrides["ssda903_header"], overrides["ssda903_episodes"])
'''

ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|root|home|work|usr|var|private|Users|mnt)/")


@pytest.mark.slow
def test_published_notebooks_carry_no_private_path_and_no_timestamp(tmp_path):
    private = tmp_path / "council-private"
    header, episodes = synth.write_synthetic(synth.synthesize("Rutland", seed=1), private)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs, "01_own", PRIVATE)
    params = tmp_path / "rutland.yaml"
    params.write_text(yaml.safe_dump({
        "la": "Rutland", "events": [{"name": "covid_2020", "date": "2020-03-23",
                                     "applies_to_any_la": True}],
        "ssda903_header": str(header), "ssda903_episodes": str(episodes)}, sort_keys=False))
    reports = tmp_path / "reports"
    assert run(["run", params, "--notebooks-dir", nbs, "--reports-dir", reports]) == 0
    published = tree(reports)
    assert {"rutland/01_own.ipynb", "rutland/01_own.html"} <= set(published)
    for name, content in published.items():
        text = content.decode("utf-8")
        assert str(tmp_path) not in text and "council-private" not in text, name
        assert not ABSOLUTE_PATH.search(text), (name, ABSOLUTE_PATH.search(text))
    nb = json.loads(published["rutland/01_own.ipynb"])
    assert "papermill" not in nb["metadata"]
    for cell in nb["cells"]:
        assert "papermill" not in cell["metadata"] and "execution" not in cell["metadata"]
    assert "ssda903/SYNTHETIC_rutland_903_header.csv" in published["rutland/01_own.ipynb"].decode()
    assert not list(reports.rglob("*.csv"))  # the extract itself is never published


def test_ssda903_files_travel_with_the_job_under_relative_names(tmp_path):
    one, two = tmp_path / "a", tmp_path / "b"
    for folder in (one, two):
        folder.mkdir()
        (folder / "header.csv").write_text("CHILD\n")
    (one / "episodes 2024.csv").write_text("CHILD\n")
    spec = specs.validate({**STOKE, "ssda903_header": [str(one / "header.csv"),
                                                       str(two / "header.csv")],
                           "ssda903_episodes": str(one / "episodes 2024.csv")})
    parameters, files = runner.published_parameters(spec)
    overrides = parameters["overrides"]
    assert overrides["ssda903_header"] == ["ssda903/header.csv", "ssda903/2/header.csv"]
    assert overrides["ssda903_episodes"] == "ssda903/episodes_2024.csv"
    assert files == {"ssda903/header.csv": one / "header.csv",
                     "ssda903/2/header.csv": two / "header.csv",
                     "ssda903/episodes_2024.csv": one / "episodes 2024.csv"}
    assert str(tmp_path) not in json.dumps(parameters)


@pytest.mark.slow
def test_two_runs_of_the_default_analysis_are_byte_identical(tmp_path):
    """Published .ipynb, HTML and results.json of `care-trends run stoke-on-trent --only 01
    --only 03`, run twice into two folders."""
    outputs = []
    for n in (1, 2):
        reports = tmp_path / f"run{n}"
        assert cli.main(["run", "stoke-on-trent", "--only", "01", "--only", "03",
                         "--reports-dir", str(reports), "--no-progress", "--workers", "2"]) == 0
        outputs.append({k: v for k, v in tree(reports).items()
                        if k.endswith((".ipynb", ".html", "results.json"))})
    first, second = outputs
    assert sorted(first) == sorted(second) and "stoke-on-trent/results.json" in first
    assert json.loads(first["stoke-on-trent/results.json"])  # estimates, not an empty list
    for name in first:
        assert first[name] == second[name], name


def test_job_folders_of_killed_workers_are_removed(tmp_path):
    """A killed worker leaves its private job folder (with a copy of the council's extract);
    the next job removes it."""
    dead = tmp_path / f"{execute.JOB_PREFIX}{dead_pid()}-abc"
    (dead / "ssda903").mkdir(parents=True)
    (dead / "ssda903" / "header.csv").write_text("CHILD\n")
    mine = tmp_path / f"{execute.JOB_PREFIX}{os.getpid()}-def"
    mine.mkdir()
    other = tmp_path / "care-trends-jobless"
    other.mkdir()
    execute.remove_stale_job_folders(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])
