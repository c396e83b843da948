"""Every-LA runs: template expansion, and a real fan-out on a two-worker Dask cluster on loopback
(a few LAs, one tiny notebook), checking each LA's report comes back and the cluster shuts down."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
import yaml

from helpers import spec as specs
from helpers.run import national

TEMPLATE = {
    "title": "{la}: tiny check",
    "la": "{la}",
    "start_year": 2014,
    "outcomes": ["starts"],
    "events": [{"name": "covid_2020", "date": "2020-03-23", "effects": ["level", "slope"]}],
}


def template_file(folder, template=TEMPLATE):
    """The template as a YAML file (run_all_las reads a template name or path)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny-all-las.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    return path


def tiny_notebooks(folder):
    """One short notebook that reads the LA's published starts and saves one record. Like the
    real notebooks, its parameters are the analysis name and the spec the runner passes."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('analysis = "x"\noverrides = {}\nresults_path = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny\n\nOne number per LA."),
        params,
        nbformat.v4.new_code_cell(
            "from helpers import data, spec as specs\nfrom helpers.core import records as results\n"
            "la = specs.load_analysis(analysis, overrides).la_name\n"
            "s = data.annual_series(la, 'starts')\n"
            "value = float(s['count'].dropna().iloc[-1])\n"
            "if results_path:\n"
            "    results.save_records([{'analysis': analysis, 'la': la, 'outcome': 'starts',\n"
            "        'event': 'latest', 'design': 'count', 'effect': 'level', 'estimate': value,\n"
            "        'ci_low': None, 'ci_high': None, 'p_value': None, 'scale': 'count'}],\n"
            "        results_path)\n"
            "print(round(value))"),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / "01_tiny.ipynb"))
    return folder


def test_params_for_fills_placeholders():
    params = specs.fill_template(TEMPLATE, "861")
    assert params["analysis"] == "stoke-on-trent"
    assert params["la"] == "Stoke-on-Trent"
    assert params["title"] == "Stoke-on-Trent: tiny check"
    assert TEMPLATE["la"] == "{la}"  # template untouched
    assert specs.slugify("Bristol, City of") == "bristol-city-of"


def test_default_template_and_eligible_las():
    template = specs.read_yaml(specs.analysis_path(specs.ALL_LAS_TEMPLATE))
    assert template["la"] == "{la}" and template.get("notebooks")
    las = national.eligible_las(2014)
    codes = [code for code, _ in las]
    assert "861" in codes and len(las) > 100
    assert "420" not in codes  # Isles of Scilly: suppressed counts


@pytest.mark.slow
def test_run_all_las_on_local_two_worker_dask_cluster(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    notebooks = tiny_notebooks(tmp_path / "notebooks")
    out = tmp_path / "reports"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        summary = national.run_all_las(
            template_file(tmp_path), out, las=["Stoke-on-Trent", "Staffordshire", "Derby"],
            scheduler=cluster.scheduler_address, notebook_dir=notebooks, timeout=120,
            progress=False)
        with distributed.Client(cluster) as client:
            workers_used = len(client.scheduler_info()["workers"])
    finally:
        cluster.close()
    assert cluster.status.name == "closed"
    assert workers_used == 2
    assert [s["analysis"] for s in summary] == ["derby", "staffordshire", "stoke-on-trent"]
    assert all(s["ok"] for s in summary), summary
    for slug in ("derby", "staffordshire", "stoke-on-trent"):
        folder = out / "all-las" / slug
        records = json.loads((folder / "results.json").read_text())
        assert records[0]["analysis"] == slug and records[0]["estimate"] > 0
        assert (folder / "01_tiny.html").exists()
    assert (out / "all-las" / "index.html").exists()
    saved = json.loads((out / "all-las" / "summary.json").read_text())
    assert len(saved) == 3 and "archive" not in saved[0]


def test_one_bad_la_does_not_stop_the_others(tmp_path):
    notebooks = tiny_notebooks(tmp_path / "notebooks")
    bad = dict(TEMPLATE, start_year=1990)  # outside the data: that LA fails validation
    summary = national.run_all_las(template_file(tmp_path, bad), tmp_path / "reports",
                                   las=["Stoke-on-Trent"],
                                   notebook_dir=notebooks, workers=1, progress=False)
    assert not summary[0]["ok"] and "start_year" in summary[0]["error"]


@pytest.mark.slow
def test_run_all_las_with_local_processes(tmp_path):
    notebooks = tiny_notebooks(tmp_path / "notebooks")
    summary = national.run_all_las(template_file(tmp_path), tmp_path / "reports",
                                   las=["861", "Derby"],
                                   notebook_dir=notebooks, workers=2, timeout=120, progress=False)
    assert [s["analysis"] for s in summary] == ["derby", "stoke-on-trent"]
    assert all(s["ok"] for s in summary), summary
    assert (tmp_path / "reports" / "all-las" / "derby" / "results.json").exists()


def test_pool_without_kernels_forks_workers_and_starts_no_kernel_server():
    """The national batch's pool: no kernel server, workers forked on Linux (they start with
    this process' modules), stopped at once when the pool closes."""
    from helpers.run.executors import LocalPool

    with LocalPool(2, notebooks=False) as pool:
        assert pool._server is None and pool.parallel
        method = pool._pool._mp_context.get_start_method()
        # forked unless another thread ran then (pytest's own may): fork would be unsafe
        assert method in ("fork", "spawn") if sys.platform.startswith("linux") else "spawn"
        assert LocalPool._start_method(pool) == "spawn"  # the pool's threads now run
        assert pool.submit(3, fn=abs).result() == 3
        processes = list(pool._pool._processes.values())
    assert all(not p.is_alive() for p in processes)


def test_start_method_forks_only_kernel_free_workers_from_a_single_thread(monkeypatch):
    from helpers.run import executors

    pool = executors.LocalPool.__new__(executors.LocalPool)
    monkeypatch.setattr(executors.threading, "active_count", lambda: 1)
    pool.notebooks = False
    assert pool._start_method() == ("fork" if sys.platform.startswith("linux") else "spawn")
    pool.notebooks = True  # kernels, and the kernel server's threads: never forked
    assert pool._start_method() == "spawn"
    pool.notebooks = False
    monkeypatch.setattr(executors.threading, "active_count", lambda: 2)
    assert pool._start_method() == "spawn"
