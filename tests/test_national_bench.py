"""The benchmark's pieces, checked for correctness only (speed is measured by `care-trends bench`,
never in tests)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import cli
from helpers.cli import bench as cli_bench
from helpers.run import bench


def test_slsqp_baseline_agrees_with_synth_weights():
    comparative = pytest.importorskip("helpers.comparative")
    rng = np.random.default_rng(5)
    donors = rng.uniform(10, 60, size=(8, 12))
    treated = donors[:, :3] @ np.array([0.5, 0.3, 0.2]) + 9.0  # outside the hull: unique weights
    fast = comparative.synth_weights(treated, donors)
    slow = bench.slsqp_weights(treated, donors)
    assert np.abs(fast - slow).max() < 1e-4
    assert fast.sum() == pytest.approx(1.0) and (fast >= 0).all()


def test_placebo_in_space_leaves_each_unit_out():
    R = np.arange(20, dtype=float).reshape(5, 4) + 1
    seen = []
    bench._placebo_in_space(R, lambda a, B: seen.append((a.copy(), B.shape)) or np.ones(B.shape[1]))
    assert len(seen) == 5
    assert seen[0][1] == (4, 4) and all(shape == (4, 3) for _, shape in seen[1:])


def test_table_and_cli():
    results = {"benchmarks": {
        "fit_many": {"series": 447, "seconds": 0.02, "baseline_seconds": 0.7, "speedup": 35.0,
                     "max_abs_diff_log_scale": 1e-12},
        "care_trends_run": {"cores": 2, "seconds": 50.0, "peak_memory_mb": 900.0,
                            "cpu_seconds": 90.0, "returncode": 0}}}
    text = bench.format_table(results)
    assert "fit_many (447 series)" in text and "35x" in text and "peak 900 MB" in text
    args = cli.build_parser().parse_args(["bench", "--skip-run", "--repeats", "2"])
    assert args.skip_run and args.repeats == 2 and args.handler is cli_bench._cmd_bench
