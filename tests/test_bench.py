"""`care-trends bench`, checked for structure and agreement only on a small simulated panel (speed
is measured by `care-trends bench`, never asserted in tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import cli
from helpers.cli import bench as cli_bench
from helpers.core.errors import CareTrendsError
from helpers.models.la_panel import simulate_panel
from helpers.run import bench


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """Every benchmark but the whole run, on 25 simulated LAs with one repeat and few fits."""
    pytest.importorskip("pysyncon")
    pytest.importorskip("synthdid")
    panel = simulate_panel(n_las=25, start_year=2012, end_year=2024, event_year=2020,
                           level_ratio=0.8, seed=11)
    out = tmp_path_factory.mktemp("bench") / "results.json"
    config = bench.quick_config(la="800", event_date="2019-04-01", start_year=2012)
    results = bench.run_benchmarks(config, panel=panel, skip_run=True, output=out)
    return results, out


def test_results_file_structure_and_machine(quick_results):
    results, out = quick_results
    assert json.loads(out.read_text()) == results  # what is returned is what is written
    names = [r["name"] for r in results["benchmarks"]]
    assert names == [b.name for b in bench.BENCHMARKS if not b.slow]
    for record in results["benchmarks"]:
        assert {"name", "title", "baseline", "target", "unit", "met", "agreement",
                "seconds_ours", "seconds_baseline"} <= set(record)
        if record["unit"] == "ratio":
            assert record["ratio"] > 0
        else:  # a time reported without a ratio (the monthly default, per fit)
            assert record["unit"] == "seconds" and record["seconds"] > 0
        assert record["met"] in (True, False) if record["target"] else record["met"] is None
        assert record["agreement"]["checks"]
    machine = results["machine"]
    assert {"cpu", "cores", "memory_gb", "python", "packages"} <= set(machine)
    assert machine["packages"]["numpy"] == np.__version__
    text = out.read_text()
    assert str(out.parent) not in text and str(bench.paths.project_root()) not in text
    assert results["settings"]["la"] == "800" and results["settings"]["event_year"] == 2020


def test_every_agreement_check_passes(quick_results):
    """Batched and looped fits agree to 1e-8; pysyncon and synthdid-py within their bounds."""
    results, _ = quick_results
    for record in results["benchmarks"]:
        failed = [c for c in record["agreement"]["checks"] if c["ok"] is False]
        assert not failed, (record["name"], failed)
        assert record["agreement"]["ok"]
    by_name = {r["name"]: r for r in results["benchmarks"]}
    sdid = {c["what"]: c for c in by_name["synthetic_did"]["agreement"]["checks"]}
    assert sdid["estimate, with synthdid's Frank-Wolfe solver"]["value"] <= 1e-8
    sc = by_name["synthetic_control"]
    assert sc["baseline_scaled"] and "scaled to all 25" in sc["note"]
    assert sc["details"]["fits"] == 25 and sc["details"]["baseline_fits_timed"] == 2


def test_tables_show_every_benchmark(quick_results):
    results, _ = quick_results
    text = bench.format_table(results)
    for record in results["benchmarks"]:
        assert record["name"] in text
    table = bench.readme_table(results)
    lines = table.splitlines()
    assert lines[0].startswith("| benchmark |")
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(results["benchmarks"])
    assert all(row.count(" | ") == 6 for row in rows)  # no stray pipe splits a cell


def test_met_needs_the_target_and_every_check():
    fast = bench.Benchmark("x", "x", lambda ctx: None, "loop", target=50.0)
    good = [bench.check("same", 1e-12, 1e-8)]
    bad = [bench.check("same", 1e-3, 1e-8)]
    assert bench.to_record(fast, bench.Measured(ratio=60.0, checks=good))["met"] is True
    assert bench.to_record(fast, bench.Measured(ratio=40.0, checks=good))["met"] is False
    record = bench.to_record(fast, bench.Measured(ratio=60.0, checks=bad))
    assert record["met"] is False and record["agreement"]["ok"] is False
    assert bench.check("nan", float("nan"), 1e-8)["ok"] is False
    assert bench.check("info", 0.5)["ok"] is None  # informational: never fails a benchmark
    untargeted = bench.Benchmark("y", "y", lambda ctx: None, "peer")
    assert bench.to_record(untargeted, bench.Measured(ratio=3.0, checks=good))["met"] is None
    slow = bench.Benchmark("run", "run", lambda ctx: None, "", target=60.0, unit="seconds")
    assert bench.to_record(slow, bench.Measured(seconds=50.0, checks=good))["met"] is True
    assert bench.to_record(slow, bench.Measured(seconds=70.0, checks=good))["met"] is False
    skipped = bench.to_record(fast, bench.Measured(skipped="peer not installed"))
    assert skipped["met"] is None and skipped["skipped"] == "peer not installed"


def test_compare_warms_up_interleaves_and_repeats():
    calls = []

    def fast():
        calls.append("f")
        return "fast"

    def slow():
        calls.append("s")
        return "slow"

    ours, base = bench.compare(fast, slow, repeats=3, baseline_repeats=2, block_seconds=0.0)
    assert calls == ["f", "s", "f", "s", "f", "s", "f"]  # warm-ups, then interleaved repeats
    assert len(ours.seconds) == 3 and len(base.seconds) == 2 and ours.calls == base.calls == 1
    assert ours.result == "fast" and base.result == "slow"
    calls.clear()
    bench.compare(fast, slow, repeats=1, baseline_repeats=1, block_seconds=0.0,
                  warm_baseline=False)
    assert calls == ["f", "f", "s"]


def test_a_benchmark_is_one_function_and_one_entry(monkeypatch, tmp_path):
    def bench_constant(ctx):
        return bench.Measured(ratio=70.0, ours_seconds=0.01, baseline_seconds=0.7,
                              checks=[bench.check("same", 0.0, 1e-8)])

    extra = bench.Benchmark("constant", "a constant", bench_constant, "nothing", target=50.0)
    monkeypatch.setattr(bench, "BENCHMARKS", bench.BENCHMARKS + (extra,))
    results = bench.run_benchmarks(bench.quick_config(), only=["constant"], panel=object(),
                                   write=False)
    (record,) = results["benchmarks"]
    assert record["name"] == "constant" and record["ratio"] == 70.0 and record["met"] is True
    with pytest.raises(CareTrendsError, match="unknown benchmark"):
        bench.run_benchmarks(bench.quick_config(), only=["nope"], panel=object(), write=False)


def test_update_readme_rewrites_only_the_block(tmp_path):
    results = {"machine": {"cpu": "CPU", "cores": 2, "memory_gb": 8.0, "python": "3.11",
                           "packages": {"numpy": "2"}, "load_average_before": 0.1},
               "settings": {"repeats": 7, "baseline_repeats": 3},
               "benchmarks": [bench.to_record(
                   bench.Benchmark("b", "batch | loop", lambda c: None, "loop", target=50.0),
                   bench.Measured(ratio=60.0, ours_seconds=0.002, baseline_seconds=0.12,
                                  checks=[bench.check("same", 1e-13, 1e-8)]))]}
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.README_START}\nold table\n{bench.README_END}\noutro\n")
    bench.update_readme(readme, results)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| batch \\| loop | 2 ms | loop, 120 ms | 60x | >= 50x | yes |" in text
    readme.write_text("no block here\n")
    with pytest.raises(CareTrendsError, match="no benchmark block"):
        bench.update_readme(readme, results)


def test_cli_reads_existing_figures(tmp_path, monkeypatch, capsys):
    results = {"machine": {"cpu": "CPU", "cores": 2, "memory_gb": 8.0, "python": "3.11",
                           "packages": {"numpy": "2"}},
               "settings": {}, "benchmarks": []}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    args = cli.build_parser().parse_args(["bench", "--from-results", "--output", str(path)])
    assert args.handler is cli_bench._cmd_bench
    assert cli_bench._cmd_bench(args) == 0
    assert "machine: CPU, 2 cores" in capsys.readouterr().out
    args = cli.build_parser().parse_args(["bench", "--from-results", "--output",
                                          str(tmp_path / "missing.json")])
    with pytest.raises(CareTrendsError, match="run `care-trends bench` first"):
        cli_bench._cmd_bench(args)
    args = cli.build_parser().parse_args(["bench", "--skip-run", "--only", "fit_many",
                                          "--repeats", "2"])
    assert args.skip_run and args.only == ["fit_many"] and args.repeats == 2
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["bench", "--only", "nope"])


def test_measuring_process_holds_blas_to_one_thread_and_the_run_gets_it_back(monkeypatch):
    for key in bench.ONE_BLAS_THREAD:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # the user's own setting
    assert not bench.blas_single_threaded()
    env = bench.one_blas_thread_env()
    assert all(env[k] == "1" for k in bench.ONE_BLAS_THREAD)
    monkeypatch.setattr(bench.os, "environ", env)
    assert bench.blas_single_threaded()
    assert bench.machine()["blas_threads"].startswith("1")
    user = bench._user_env()
    assert user["OMP_NUM_THREADS"] == "4" and "OPENBLAS_NUM_THREADS" not in user
    assert bench.BLAS_BEFORE not in user


def test_cli_hands_measuring_to_a_process_with_one_blas_thread(monkeypatch):
    for key in bench.ONE_BLAS_THREAD:
        monkeypatch.delenv(key, raising=False)
    seen = {}

    def fake_call(command, env):
        seen.update(command=command, env=env)
        return 0

    monkeypatch.setattr(cli_bench.subprocess, "call", fake_call)
    args = cli.build_parser().parse_args(["bench", "--skip-run", "--only", "fit_many", "--only",
                                          "synthetic_did", "--repeats", "3", "--update-readme"])
    assert cli_bench._cmd_bench(args) == 0
    assert seen["env"]["OPENBLAS_NUM_THREADS"] == "1"
    again = cli.build_parser().parse_args(seen["command"][3:])  # after: python -m helpers
    assert vars(again) == vars(args)


def test_memory_peaks_read_pss_only_when_it_could_be_a_new_peak():
    import psutil

    peaks = bench.MemoryPeaks(psutil.Process())
    peaks.sample()
    assert 0 < peaks.pss <= peaks.rss
    first = peaks.pss
    peaks.sample()  # within PSS_INTERVAL: RSS read again, PSS not
    assert peaks.pss == first and peaks._last_pss > 0
    quiet = bench.MemoryPeaks(psutil.Process(), pss=False)
    quiet.sample()
    assert quiet.rss > 0 and quiet.pss == 0
