"""The national batch (`care-trends run --all-las` without a kernel per LA): its estimates are
the single fits' to 1e-9, its pages are the ones papermill makes byte for byte, a Dask cluster
gives the same folders as local workers, and a stopped run resumes where it stopped, giving
what an uninterrupted run gives."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from helpers import spec as specs
from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.models.analysis import its_for
from helpers.models.batch_its import its_for_many
from helpers.run import batch_pages, national, national_batch, runner

LAS = ["861", "Derby", "Staffordshire"]
NUMBERS = ("estimate", "ci_low", "ci_high", "p_value")


def template_specs(las=LAS, template=specs.ALL_LAS_TEMPLATE):
    return [specs.load_analysis(template, la=la) for la in las]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ============================================================================ the estimates
def test_batch_fits_are_the_single_fits():
    chosen = template_specs()
    fits, errors = its_for_many(chosen)
    assert errors == {}
    for spec in chosen:
        alone = its_for(spec)
        assert list(fits[spec.analysis]) == list(alone) == list(spec.outcomes)
        for outcome, single in alone.items():
            batch = fits[spec.analysis][outcome]
            for column in NUMBERS:
                np.testing.assert_allclose(batch.effects[column], single.effects[column],
                                           rtol=0, atol=1e-9)
            for column in ("fitted", "counterfactual", "cf_low", "cf_high"):
                np.testing.assert_allclose(batch.counterfactual[column],
                                           single.counterfactual[column], rtol=1e-9)
            np.testing.assert_allclose(batch.impact["cumulative_averted"],
                                       single.impact["cumulative_averted"], rtol=1e-9)
            for key in ("durbin_watson", "dispersion", "n", "n_params", "df_resid"):
                assert batch.diagnostics[key] == pytest.approx(single.diagnostics[key],
                                                               rel=1e-9)
            assert batch.diagnostics["breusch_godfrey"]["p_value"] == pytest.approx(
                single.diagnostics["breusch_godfrey"]["p_value"], rel=1e-9)
            assert batch.to_records(analysis="a", notebook="03_its", la=spec.la) == \
                single.to_records(analysis="a", notebook="03_its", la=spec.la)


def test_unestimable_series_gets_the_single_fits_error():
    # Data end in 2025: an event taking effect in 2026 leaves nothing after it. The batch
    # cannot fit it, and the LA gets the one-line error fit_its gives.
    spec = template_specs(["861"])[0]
    late = spec.model_copy(update={"events": tuple(
        e.model_copy(update={"date": datetime.date(2031, 1, 1)}) for e in spec.events)})
    fits, errors = its_for_many([late])
    assert fits == {} and "data end" in errors[late.analysis]
    with pytest.raises(CareTrendsError, match="data end"):
        its_for(late)


# ============================================================================ the pages
def test_builder_refuses_a_notebook_it_does_not_follow():
    source = (paths.notebooks_dir() / "03_its.ipynb").read_bytes()
    nb = nbformat.reads(source.decode(), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("1 + 1"))
    page = batch_pages.Page()
    page.cells = [[] for _ in range(13)]
    with pytest.raises(CareTrendsError, match="03_its has 14 code cells.*fills 13"):
        batch_pages.fill_notebook(nbformat.writes(nb).encode(), "03_its", page)


def test_which_engine(tmp_path):
    chosen = template_specs(["861"])
    assert national_batch.supported(chosen) == []
    assert national_batch.supported(chosen, only=["03"])
    assert national_batch.supported(chosen, notebook_dir=tmp_path)
    pathway = [spec.model_copy(update={"notebooks": ("08",)}) for spec in chosen]
    assert "08_pathway" in national_batch.supported(pathway)[0]
    with pytest.raises(CareTrendsError, match="--notebooks"):
        national.run_all_las(las=["861"], only=["03"], engine="batch", out_dir=tmp_path)


@pytest.mark.slow
def test_batch_folders_are_the_notebook_runs(tmp_path):
    """Two LAs through papermill and through the batch: the same pages, chart files and
    results.json byte for byte (so every estimate to well within 1e-9); the manifests differ
    only in the notebook runs' timings."""
    las = ["861", "Derby"]
    kernels = national.run_all_las(las=las, out_dir=tmp_path / "notebooks", engine="notebooks",
                                   progress=False)
    batch = national.run_all_las(las=las, out_dir=tmp_path / "batch", progress=False)
    assert [r["ok"] for r in kernels] == [r["ok"] for r in batch] == [True, True]
    for slug in ("derby", "stoke-on-trent"):
        one = folder_bytes(tmp_path / "notebooks" / "all-las" / slug)
        other = folder_bytes(tmp_path / "batch" / "all-las" / slug)
        pages = {name for name in one if not name.endswith(".ipynb")}
        assert pages == set(other)
        for name in sorted(pages - {"manifest.json"}):
            assert one[name] == other[name], f"{slug}/{name} differs"
        records = [json.loads(one["results.json"]), json.loads(other["results.json"])]
        assert len(records[0]) == 6  # 3 outcomes x (level, slope)
        for a, b in zip(*records):
            for column in NUMBERS:
                assert a[column] == pytest.approx(b[column], abs=1e-9)
        manifests = [json.loads(one["manifest.json"]), json.loads(other["manifest.json"])]
        manifests[0].pop("seconds")
        for manifest in manifests:
            for entry in manifest["notebooks"]:
                entry.pop("seconds")
        assert manifests[0] == manifests[1]
    assert "<script" not in other["03_its.html"].decode()
    national_file = [json.loads((tmp_path / engine / "all-las" / "results.json").read_text())
                     for engine in ("notebooks", "batch")]
    assert national_file[0] == national_file[1]
    assert [r["analysis"] for r in national_file[1]] == ["derby"] * 6 + ["stoke-on-trent"] * 6


# ============================================================================ Dask
@pytest.mark.slow
def test_batch_on_a_two_worker_dask_cluster_matches_local(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        remote = national.run_all_las(las=LAS, out_dir=tmp_path / "dask",
                                      scheduler=cluster.scheduler_address, progress=False)
        with distributed.Client(cluster) as client:
            workers = len(client.scheduler_info()["workers"])
    finally:
        cluster.close()
    local = national.run_all_las(las=LAS, out_dir=tmp_path / "local", workers=2, progress=False)
    assert workers == 2 and remote == local and all(r["ok"] for r in local)
    assert folder_bytes(tmp_path / "dask") == folder_bytes(tmp_path / "local")


# ============================================================================ stop and resume
def test_stopped_run_resumes_with_the_rest(tmp_path, monkeypatch):
    """Ctrl-C after the second LA: the journal keeps both, the restart publishes only the
    third, and the folder is the one an uninterrupted run makes. A changed template starts
    afresh."""
    published = []
    real_publish = national_batch.publish_la

    def counting(spec, *args, **kwargs):
        published.append(spec.analysis)
        return real_publish(spec, *args, **kwargs)

    def stop_at_two(point):
        if point == "all-las-published-2":
            raise KeyboardInterrupt

    monkeypatch.setattr(national_batch, "publish_la", counting)
    monkeypatch.setattr(runner, "_test_hook", stop_at_two)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        national.run_all_las(las=LAS, out_dir=out, workers=1, progress=False)
    first = list(published)
    assert len(first) == 2
    journal = json.loads((out / "all-las" / national_batch.JOURNAL).read_text())
    assert sorted(journal["done"]) == sorted(first)
    summary = json.loads((out / "all-las" / "summary.json").read_text())
    assert sum(r["ok"] for r in summary) == 2

    monkeypatch.setattr(runner, "_test_hook", lambda point: None)
    published.clear()
    resumed = national.run_all_las(las=LAS, out_dir=out, workers=1, progress=False)
    assert len(published) == 1 and published[0] not in first
    assert all(r["ok"] for r in resumed)
    assert not (out / "all-las" / national_batch.JOURNAL).exists()

    whole = tmp_path / "whole"
    published.clear()
    assert national.run_all_las(las=LAS, out_dir=whole, workers=1, progress=False) == resumed
    assert folder_bytes(out) == folder_bytes(whole)

    # A stopped run, then a changed template: nothing is taken from the stopped run.
    monkeypatch.setattr(runner, "_test_hook", stop_at_two)
    with pytest.raises(KeyboardInterrupt):
        national.run_all_las(las=LAS, out_dir=out, workers=1, progress=False)
    raw = specs.read_yaml(specs.analysis_path(specs.ALL_LAS_TEMPLATE))
    raw["title"] = "{la}: the same question, asked again"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    monkeypatch.setattr(runner, "_test_hook", lambda point: None)
    published.clear()
    national.run_all_las(changed, las=LAS, out_dir=out, workers=1, progress=False)
    assert len(published) == 3


def test_journal_is_keyed_by_data_code_and_notebooks(tmp_path, monkeypatch):
    """A stopped run's journal is used only with the same data files, code and notebooks."""
    notebooks = [paths.notebooks_dir() / f"{stem}.ipynb" for stem in batch_pages.BUILDERS]
    key = national_batch.run_key(notebooks)
    national_batch.write_journal(tmp_path, key, {"derby": "abc"})
    assert national_batch.read_journal(tmp_path, key) == {"derby": "abc"}
    assert national_batch.run_key(notebooks[:2]) != key
    edited = tmp_path / "processed"
    edited.mkdir()
    for path in paths.processed_dir().glob("*"):
        if path.is_file():
            (edited / path.name).write_bytes(path.read_bytes())
    assert national_batch.run_key(notebooks) == key
    monkeypatch.setenv(paths.PROCESSED_DIR_ENV, str(edited))
    assert national_batch.run_key(notebooks) == key  # the same files elsewhere
    with (edited / "cla_panel_provenance.json").open("a") as handle:
        handle.write("\n")
    assert national_batch.read_journal(tmp_path, national_batch.run_key(notebooks)) == {}


def _cli(args, env, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "helpers", "run", "--all-las",
                             "--no-progress", *args], env=env, stderr=subprocess.PIPE,
                            text=True, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "sigterm"])
def test_killed_cli_run_resumes_byte_identical(tmp_path, how):
    """`care-trends run --all-las` killed (SIGKILL from the test hook, or SIGTERM while it
    waits) after two LAs: the restart publishes only the other two, leaving the first two
    folders untouched, and the reports equal an uninterrupted run's byte for byte."""
    las = [arg for la in ("861", "Derby", "Staffordshire", "Cheshire East")
           for arg in ("--la", la)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    stopped = tmp_path / "stopped"
    hook = "all-las-published-2" + (":kill" if how == "kill" else ":sleep=60")
    proc = _cli([*las, "--reports-dir", str(stopped)],
                {**env, runner.TEST_HOOK_ENV: hook})
    if how == "sigterm":
        journal = stopped / "all-las" / national_batch.JOURNAL
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if journal.exists() and len(json.loads(journal.read_text())["done"]) == 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode == (-signal.SIGKILL if how == "kill" else 128 + signal.SIGTERM)
    done = json.loads((stopped / "all-las" / national_batch.JOURNAL).read_text())["done"]
    assert len(done) == 2
    before = {slug: (stopped / "all-las" / slug / "03_its.html").stat().st_ino for slug in done}

    proc = _cli([*las, "--reports-dir", str(stopped)], env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "2 of 4 LAs were already published" in err
    assert {slug: (stopped / "all-las" / slug / "03_its.html").stat().st_ino
            for slug in done} == before
    whole = tmp_path / "whole"
    proc = _cli([*las, "--reports-dir", str(whole)], env)
    proc.communicate(timeout=300)
    assert proc.returncode == 0
    assert folder_bytes(stopped) == folder_bytes(whole)
    assert not any(name.startswith(".") for name in os.listdir(stopped / "all-las"))
