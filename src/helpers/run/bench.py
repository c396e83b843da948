"""`care-trends bench`: the speed figures the project promises, measured in one process.

Three benchmarks, each a median over repeats and, where there is one, a ratio against a baseline
run in the same process on the same inputs (never as timed unit tests):

(a) `its_batch.fit_many` for every LA x 3 measures against a loop of statsmodels GLM fits
    (quasi-Poisson, same design); target >= 20x, estimates checked to agree.
(b) synthetic control with full placebo-in-space for one LA (the LA and then every donor in turn
    as the treated unit) with `comparative.synth_weights` against the same loop solved by scipy's
    SLSQP; target >= 10x with weights agreeing to 1e-4.
(c) the whole default `care-trends run` in a subprocess pinned to 2 cores: wall time and peak
    memory (resident set of the whole process tree, sampled); target < 60 s.

Figures go to bench/results.json (atomic write) and a short table is printed.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import psutil
import statsmodels.api as sm
from scipy.optimize import minimize

from helpers import data
from helpers.core import paths, timeline
from helpers.core.io import atomic_write_json
from helpers.models.batch import fit_many
from helpers.models.design import design_columns
from helpers.models.la_panel import donor_pool
from helpers.models.national import local_authorities
from helpers.models.simplex import synth_weights

TARGETS = {"fit_many": 20.0, "synthetic_control_placebos": 10.0, "care_trends_run_seconds": 60.0}
BENCH_LA = "861"  # Stoke-on-Trent, the first case
BENCH_EVENT = "2020-10-01"  # the 2020 strategies
WEIGHT_TOLERANCE = 1e-4


def _median_time(fn, repeats: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, out


# ---------------------------------------------------------------------------------------------
# (a) fit_many against a loop of statsmodels GLM fits
# ---------------------------------------------------------------------------------------------

def bench_fit_many(panel, repeats: int = 5, baseline_repeats: int = 3) -> dict:
    las = local_authorities(panel, drop_boundary_breaks=False)
    event_year = timeline.first_full_reporting_year(BENCH_EVENT)
    interventions = {"strategies_2020": event_year}
    kwargs = dict(interventions=interventions, effects=("level", "slope"), family="quasipoisson",
                  time="year", outcome="count", offset="population")

    batch_time, batch_times, res = _median_time(lambda: fit_many(las, **kwargs), repeats)
    ok = res.diagnostics.loc[res.diagnostics["converged"], ["la_code", "measure"]]

    # Baseline inputs prepared outside the clock: the loop times only the model fits.
    series = []
    for (code, measure), rows in las.groupby(["la_code", "measure"]):
        if not ((ok["la_code"] == code) & (ok["measure"] == measure)).any():
            continue
        rows = rows.dropna(subset=["count", "population"]).sort_values("year")
        X = design_columns(rows["year"].to_numpy(), interventions, ("level", "slope"))
        series.append((code, measure, rows["count"].to_numpy(float), X.to_numpy(),
                       np.log(rows["population"].to_numpy(float)), list(X.columns)))

    def loop():
        return [sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit(scale="X2")
                for _, _, y, X, off, _ in series]

    base_time, base_times, fits = _median_time(loop, baseline_repeats)
    coef = res.coefficients.set_index(["la_code", "measure"])
    max_diff = 0.0
    for (code, measure, _, _, _, names), fit in zip(series, fits, strict=True):
        mine = coef.loc[(code, measure)]
        for j, name in enumerate(names):
            if name.endswith((":level", ":slope")):
                max_diff = max(max_diff, abs(mine[name] - fit.params[j]),
                               abs(mine[f"se:{name}"] - fit.bse[j]))
    return {"what": "segmented quasi-Poisson model, every LA x 3 measures",
            "series": len(series), "repeats": repeats, "baseline_repeats": baseline_repeats,
            "seconds": batch_time, "baseline_seconds": base_time, "speedup": base_time / batch_time,
            "target_speedup": TARGETS["fit_many"], "max_abs_diff_log_scale": max_diff,
            "all_seconds": batch_times, "baseline_all_seconds": base_times,
            "baseline": "loop of statsmodels GLM(Poisson).fit(scale='X2'), designs pre-built"}


# ---------------------------------------------------------------------------------------------
# (b) synthetic control with placebo-in-space against scipy SLSQP
# ---------------------------------------------------------------------------------------------

def slsqp_weights(treated_pre: np.ndarray, donors_pre: np.ndarray) -> np.ndarray:
    """Baseline: the same simplex-constrained least squares by scipy's general SLSQP solver."""
    a = np.asarray(treated_pre, float)
    B = np.asarray(donors_pre, float)
    scale = max(np.abs(B).max(), np.abs(a).max())
    a, B = a / scale, B / scale
    J = B.shape[1]

    def objective(w):
        r = B @ w - a
        return r @ r, 2 * B.T @ r

    res = minimize(objective, np.full(J, 1.0 / J), jac=True, method="SLSQP",
                   bounds=[(0.0, 1.0)] * J,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                                 "jac": lambda w: np.ones_like(w)}],
                   options={"ftol": 1e-15, "maxiter": 2000})
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


def _placebo_in_space(R_pre: np.ndarray, solve, units=None) -> list[np.ndarray]:
    """Weights for unit 0 (the LA) and then every donor as the treated unit, from the others
    (the LA itself never a donor), as comparative.fit_synthetic_control does."""
    n = R_pre.shape[0]
    pool = np.arange(1, n)
    out = []
    for i in range(n) if units is None else units:
        donors = pool[pool != i]
        out.append(solve(R_pre[i], R_pre[donors].T))
    return out


def bench_synthetic_control(panel, repeats: int = 3, baseline_fits: int = 8) -> dict:
    """SLSQP needs seconds per fit with ~140 donors, so the baseline is timed on the LA plus the
    first `baseline_fits - 1` placebos and the ratio is taken on that same subset; the fast solver
    is also timed on the full placebo-in-space run, and the baseline's full time is projected."""
    unit, treated, donors = donor_pool(BENCH_LA, "starts", start_year=2014, panel=panel)
    years = np.asarray(treated.index, dtype=int)
    pre = years < timeline.first_full_reporting_year(BENCH_EVENT)
    R_pre = np.vstack([treated.to_numpy(), donors.to_numpy()])[:, pre]
    n_fits = R_pre.shape[0]
    subset = list(range(min(baseline_fits, n_fits)))

    full_time, full_times, w_all = _median_time(
        lambda: _placebo_in_space(R_pre, synth_weights), repeats)
    fast_time, fast_times, w_fast = _median_time(
        lambda: _placebo_in_space(R_pre, synth_weights, subset), max(repeats, 5))
    base_time, _, w_base = _median_time(
        lambda: _placebo_in_space(R_pre, slsqp_weights, subset), 1)

    pool = np.arange(1, n_fits)
    rows = []
    for i, a, b in zip(subset, w_fast, w_base, strict=True):
        d = pool[pool != i]
        loss_a = float(np.sum((R_pre[i] - a @ R_pre[d]) ** 2))
        loss_b = float(np.sum((R_pre[i] - b @ R_pre[d]) ** 2))
        path_gap = float(np.abs((a - b) @ R_pre[d]).max())
        rows.append((float(np.abs(a - b).max()), loss_a, loss_b, path_gap))
    diffs = np.array([r[0] for r in rows])
    # Weights are unique only when the unit lies outside its donors' convex hull (loss > 0);
    # inside it many weightings reproduce the pre-period exactly and solvers pick different ones.
    unique = np.array([r[1] > 1e-8 * max(1.0, float(np.sum(R_pre[i] ** 2)))
                       for i, r in zip(subset, rows, strict=True)])
    return {"what": f"synthetic control + placebo-in-space, LA {unit.la_code} {unit.la_name}, "
                    f"starts per 10,000, {int(pre.sum())} pre-period years, {n_fits - 1} donors",
            "fits": n_fits, "seconds_all_fits": full_time, "all_seconds": full_times,
            "ratio_fits": len(subset), "seconds": fast_time, "baseline_seconds": base_time,
            "speedup": base_time / fast_time,
            "target_speedup": TARGETS["synthetic_control_placebos"],
            "baseline_seconds_all_fits_projected": base_time * n_fits / len(subset),
            "repeats": repeats, "baseline_repeats": 1,
            "treated_weight_max_abs_diff": float(diffs[0]),
            "fits_with_unique_weights": int(unique.sum()),
            "max_weight_abs_diff_unique": float(diffs[unique].max()) if unique.any() else None,
            "fits_agreeing_1e-4": int((diffs <= WEIGHT_TOLERANCE).sum()),
            "max_pre_period_path_diff": max(r[3] for r in rows),
            "max_loss_excess_baseline": max(r[2] - r[1] for r in rows),
            "baseline": "same fits with scipy.optimize.minimize(method='SLSQP'), analytic "
                        "gradient, ftol 1e-15"}


# ---------------------------------------------------------------------------------------------
# (c) the whole default run
# ---------------------------------------------------------------------------------------------

def _tree_rss(proc) -> int:
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def bench_run(cores: int = 2, command: list[str] | None = None) -> dict:
    exe = Path(sys.executable).with_name("care-trends")
    command = command or ([str(exe)] if exe.exists() else
                          [sys.executable, "-m", "helpers"]) + ["run"]
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = available[:cores]

    def pin():  # runs in the child before exec: the run and every kernel it starts get 2 cores
        if pinned:
            os.sched_setaffinity(0, pinned)

    try:
        import resource  # POSIX only; Windows gets wall time and memory without CPU seconds
    except ImportError:
        resource = None

    env = dict(os.environ, PYTHONHASHSEED="0", MPLBACKEND="Agg")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN) if resource else None
    start = time.perf_counter()
    # Output goes to a file, not a pipe: a chatty run could fill a pipe and stall.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(command, cwd=paths.project_root(), env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=pin if pinned else None)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(ps))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    # CPU seconds of the run and every process it waited for (kernels included): divided by the
    # cores it is the wall time an otherwise idle machine could reach at best.
    cpu = None
    if resource:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log.seek(0)
    output = log.read()
    log.close()
    return {"what": "care-trends run (default: both analyses, all notebooks)",
            "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)),
            "cores": len(pinned) or os.cpu_count(), "returncode": proc.returncode,
            "seconds": wall, "cpu_seconds": cpu, "peak_memory_mb": peak / 2**20,
            "load_average_before": load_before,  # other users of the machine slow the run
            "load_average_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "target_seconds": TARGETS["care_trends_run_seconds"],
            "output_tail": output.strip().splitlines()[-5:]}


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def run_benchmarks(repeats: int = 5, skip_run: bool = False, cores: int = 2,
                   output: Path | None = None) -> dict:
    panel = data.load_panel()
    results = {"machine": {"python": platform.python_version(), "numpy": np.__version__,
                           "cpu_count": os.cpu_count(), "platform": platform.platform(terse=True)},
               "benchmarks": {}}
    bench = results["benchmarks"]
    bench["fit_many"] = bench_fit_many(panel, repeats=repeats,
                                       baseline_repeats=max(1, repeats // 2))
    try:
        bench["synthetic_control_placebos"] = bench_synthetic_control(panel, repeats=repeats)
    except ImportError as exc:  # the comparative module is not there yet
        bench["synthetic_control_placebos"] = {"error": f"not run: {exc}"}
    if not skip_run:
        bench["care_trends_run"] = bench_run(cores=cores)
    output = Path(output) if output else paths.project_root() / "bench" / "results.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output, _rounded(results))
    results["output"] = str(output)
    return results


def _rounded(obj):
    if isinstance(obj, float):
        return float(f"{obj:.4g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def format_table(results: dict) -> str:
    lines = [f"{'benchmark':<28} {'median':>9} {'baseline':>9} {'ratio':>7} {'target':>8}  check"]
    b = results["benchmarks"]
    fm = b.get("fit_many")
    if fm:
        lines.append(f"{'fit_many (' + str(fm['series']) + ' series)':<28} {fm['seconds']:>8.3f}s "
                     f"{fm['baseline_seconds']:>8.2f}s {fm['speedup']:>6.0f}x {'>=20x':>8}  "
                     f"max |diff| {fm['max_abs_diff_log_scale']:.1e}")
    sc = b.get("synthetic_control_placebos")
    if sc and "error" not in sc:
        unique_diff = sc["max_weight_abs_diff_unique"]
        label = f"synth, {sc['ratio_fits']} of the fits"
        lines.append(f"{label:<28} {sc['seconds']:>8.3f}s {sc['baseline_seconds']:>8.2f}s"
                     f" {sc['speedup']:>6.0f}x {'>=10x':>8}  "
                     f"max |w diff| {unique_diff:.0e} over the {sc['fits_with_unique_weights']} "
                     f"fits with unique weights (target 1e-4); pre-period paths within "
                     f"{sc['max_pre_period_path_diff']:.0e} on all {sc['ratio_fits']}")
        lines.append(f"{'synth + all placebos (' + str(sc['fits']) + ')':<28} "
                     f"{sc['seconds_all_fits']:>8.3f}s "
                     f"{sc['baseline_seconds_all_fits_projected']:>8.0f}s "
                     f"{'':>7} {'':>8}  baseline projected from the subset")
    elif sc:
        lines.append(f"{'synth + placebos':<28} {sc['error']}")
    run = b.get("care_trends_run")
    if run:
        status = "ok" if run["returncode"] == 0 else f"FAILED (exit {run['returncode']})"
        label = f"care-trends run ({run['cores']} cores)"
        lines.append(f"{label:<28} {run['seconds']:>8.1f}s "
                     f"{'':>9} {'':>7} {'<60s':>8}  peak {run['peak_memory_mb']:.0f} MB, "
                     + (f"{run['cpu_seconds']:.0f} CPU s, " if run.get("cpu_seconds") else "")
                     + status)
    return "\n".join(lines)
