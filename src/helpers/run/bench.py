"""`care-trends bench`: the speed the project promises, measured in one process against a baseline
on the same inputs, each ratio with its target and a check that both give the same answers.

Benchmarks (BENCHMARKS, in order):

* `fit_many`: the segmented quasi-Poisson ITS for every LA of one outcome (the league table's
  rows) in one vectorised call, against a loop of statsmodels GLM fits (designs built outside
  the clock; each fit's coefficients and standard errors computed). Target >= 50x; coefficients
  and standard errors equal to 1e-8.
* `synthetic_control`: synthetic control with full placebo-in-space (every donor refitted as if
  treated) against pysyncon's `Synth` on the same panel and specification (predictors: the
  pre-period rates, equally weighted; the same donors). pysyncon takes seconds per fit, so it
  runs on the LA and its first placebos and its time is scaled to the full set (said in the
  output). Target >= 100x; weights and gaps equal where the weights are unique.
* `synthetic_did`: synthetic difference-in-differences (`fit_sdid`) against synthdid-py on the
  same LA panel: the ratio is reported (no target); with the authors' Frank-Wolfe solver the
  estimates agree to 1e-8, and the exact solver's (the default) difference is shown.
* `its_placebo_in_space`: the ITS refitted for every LA as a placebo (one `fit_many` call)
  against a loop of `fit_its`. Target >= 50x; effects equal to 1e-8.
* `calibration_batch`: the calibration Monte Carlo's batched refits (quasi-Poisson, Newey-West
  OLS, AR(1)) on simulated monthly series against a loop of `fit_its`. Target >= 50x; equal to
  1e-8.
* `care_trends_run`: the whole default `care-trends run`, pinned to 2 cores: wall time and peak
  memory; target <= 30 s (skipped by `--skip-run`).

Adding a benchmark is one function `bench_NAME(ctx) -> Measured` and one `Benchmark` entry.

Timing: each function is run once untimed (warm-up), then timed in repeats, the fast side and
its baseline interleaved so both see the same conditions. A repeat of a fast function runs it
back to back for at least `block_seconds` and takes the time per call; the garbage collector is
paused while timing, as `timeit` does. Times are the process's CPU seconds (on a shared machine
the time spent waiting while other users' processes run is not counted; for this single-threaded
work on an idle machine it is the wall-clock time); wall-clock times are recorded beside them.
Ratios are of medians; the best times are recorded too. `care-trends bench` measures in a
process with the BLAS libraries held to one thread (ONE_BLAS_THREAD), for both sides alike; the
timed whole run gets the user's settings back.

bench/results.json: the machine (CPU model, cores, memory, Python and package versions; no
timestamps, no paths), the settings, and a list of {name, title, target, unit, ratio or seconds,
met, agreement, details}. `met` is true when the target is reached AND every agreement check
passes. The README's table is generated from it (`readme_table`, `care-trends bench
--update-readme`).
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from helpers import data
from helpers.checks import calibration
from helpers.checks.common import SEED, child_seed
from helpers.checks.common import effect_row
from helpers.checks.simulation import batch_fit, fit_pre_period, its_design, simulate_counts
from helpers.core import paths, timeline
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_json
from helpers.models.batch import fit_many
from helpers.models.design import design_columns
from helpers.models import inference
from helpers.models.its import fit_its
from helpers.models.la_panel import donor_pool, la_rate_panel, one_event
from helpers.models.national import local_authorities
from helpers.models.panel import fit_sdid
from helpers.models.synth import fit_synthetic_control
from helpers.run import national_batch

try:  # independent implementations (test extras); a benchmark without its peer says so
    import pysyncon
except ImportError:  # pragma: no cover - installed with the test extras
    pysyncon = None
try:
    import synthdid
except ImportError:  # pragma: no cover
    synthdid = None

#: Environment variables that hold the BLAS libraries (OpenBLAS, MKL, OpenMP, Accelerate) to one
#: thread. Every product timed here is small; on a busy 2-core machine a BLAS library that hands
#: such products to all cores makes them many times slower (pysyncon's fits, measured: 0.5-1 CPU
#: seconds each against 0.08 on one thread), which would time the machine's contention rather
#: than the code. `care-trends bench` therefore measures in a process started with these set.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                   "VECLIB_MAXIMUM_THREADS": "1"}
#: Set in that process: the variables' values before, so the timed `care-trends run` gets them back.
BLAS_BEFORE = "CARE_TRENDS_BENCH_BLAS_BEFORE"
#: The README block `--update-readme` rewrites.
README_START = "<!-- bench-table:start (care-trends bench --update-readme) -->"
README_END = "<!-- bench-table:end -->"
#: Equal answers: batched and looped fits of the same model.
EXACT = 1e-8
#: pysyncon's weights come from scipy SLSQP at its default tolerance (ftol 1e-6): agreement on
#: unique weights to 1e-4 and on gaps to 1e-2 per 10,000 (the test suite's bounds).
PYSYNCON_WEIGHTS, PYSYNCON_GAPS = 1e-4, 1e-2
#: The calibration Monte Carlo's monthly setting (helpers.checks.calibration's defaults).
MONTHLY_N, MONTHLY_POST, RHO_MONTHLY = 180, 24, 0.5
CALIBRATION_METHODS = ("quasipoisson", "ols", "ar1")


@dataclass(frozen=True)
class BenchConfig:
    """What is benchmarked and how long for: the LA, its event and outcome, and the repeats."""

    la: str = "861"  # Stoke-on-Trent, the first case
    event_date: str = "2020-10-01"  # its 2020 strategies
    measure: str = "starts"
    start_year: int = 2014
    repeats: int = 7  # timed repeats of the fast side (median)
    baseline_repeats: int = 5  # timed repeats of a baseline (at most 3 for one of seconds)
    block_seconds: float = 0.2  # a fast function is repeated back to back for this long
    pysyncon_fits: int = 4  # the LA and its first 3 placebos
    calibration_sims: int = 200  # simulated monthly series per method
    cores: int = 2  # the whole run is pinned to this many cores


@dataclass
class Timing:
    """Time per call in each timed repeat, and the last call's result. `seconds` is CPU time of
    this process (what medians and ratios use: on a shared machine, time spent waiting for other
    users' processes is not counted; for single-threaded work on an idle machine it equals the
    wall-clock time), `wall_seconds` the wall-clock time."""

    seconds: list
    wall_seconds: list
    calls: int
    result: object = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall_seconds)

    def to_dict(self) -> dict:
        return {"median_seconds": self.median, "best_seconds": self.best,
                "median_wall_seconds": self.median_wall, "repeats": len(self.seconds),
                "calls_per_repeat": self.calls}


def _run_block(fn: Callable, calls: int) -> tuple[float, float, object]:
    """(CPU seconds, wall seconds) per call over `calls` back-to-back calls, and the last result."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            out = fn()
        return ((time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls, out)
    finally:
        if enabled:
            gc.enable()


def compare(fast: Callable, baseline: Callable | None, *, repeats: int, baseline_repeats: int,
            block_seconds: float, warm_baseline: bool = True) -> tuple[Timing, Timing | None]:
    """Time `fast` and `baseline` (optional) in interleaved repeats after one warm-up call each
    (`warm_baseline=False` skips the baseline's, for a baseline that takes seconds per call)."""
    sides = [(fast, repeats, True)] + ([(baseline, baseline_repeats, warm_baseline)]
                                       if baseline is not None else [])
    timings = []
    for fn, _, warm in sides:
        calls = 1
        if warm:
            t0 = time.perf_counter()
            fn()
            once = time.perf_counter() - t0
            calls = max(1, min(10_000, math.ceil(block_seconds / max(once, 1e-7))))
        timings.append(Timing([], [], calls))
    for i in range(max(n for _, n, _ in sides)):
        for (fn, n, _), timing in zip(sides, timings):
            if i < n:
                cpu, wall, timing.result = _run_block(fn, timing.calls)
                timing.seconds.append(cpu)
                timing.wall_seconds.append(wall)
    return timings[0], (timings[1] if baseline is not None else None)


def check(what: str, value, tolerance: float | None = None, *, ok: bool | None = None) -> dict:
    """One agreement check: `value` (a max abs difference, or a count) within `tolerance`;
    informational when neither a tolerance nor `ok` is given."""
    value = None if value is None else float(value)
    if ok is None and tolerance is not None:
        ok = value is not None and math.isfinite(value) and value <= tolerance
    return {"what": what, "value": value, "tolerance": tolerance,
            "ok": None if ok is None else bool(ok)}


@dataclass
class Measured:
    """What a benchmark function returns: a ratio (baseline / ours, of median times) or seconds,
    both sides' median times, the agreement checks (`check`: each a max abs difference within a
    tolerance unless said otherwise), anything else worth keeping (`details`); `skipped` says why
    it could not run."""

    ratio: float | None = None
    seconds: float | None = None
    ours_seconds: float | None = None  # median time of our side (per call)
    baseline_seconds: float | None = None  # the baseline's (scaled when `baseline_scaled`)
    baseline_scaled: bool = False
    checks: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    note: str = ""
    skipped: str | None = None


@dataclass
class BenchContext:
    """The inputs every benchmark shares: the panel, the configuration and derived pieces."""

    panel: pd.DataFrame
    config: BenchConfig

    @cached_property
    def event_year(self) -> int:
        return timeline.first_full_reporting_year(self.config.event_date)

    @cached_property
    def la_rows(self) -> pd.DataFrame:
        """Every LA's rows for the outcome from the start year: the league table's rows."""
        return local_authorities(self.panel, self.config.measure, self.config.start_year, None,
                                 drop_boundary_breaks=True)

    @property
    def its_kwargs(self) -> dict:
        return dict(interventions={"event": self.event_year}, effects=("level", "slope"),
                    family="quasipoisson", time="year", outcome="count", offset="population")

    def fit_all_las(self):
        return fit_many(self.la_rows, measures=[self.config.measure], **self.its_kwargs)

    def converged_series(self) -> dict[str, pd.DataFrame]:
        """Each LA series `fit_many` could estimate, by LA code, sorted by year."""
        res = self.fit_all_las()
        ok = set(res.diagnostics.loc[res.diagnostics["converged"], "la_code"])
        return {code: rows.sort_values("year").reset_index(drop=True)
                for code, rows in self.la_rows.groupby("la_code", sort=True) if code in ok}

    def compare(self, fast, baseline=None, **kwargs) -> tuple[Timing, Timing | None]:
        c = self.config
        kwargs.setdefault("repeats", c.repeats)
        kwargs.setdefault("baseline_repeats", c.baseline_repeats)
        kwargs.setdefault("block_seconds", c.block_seconds)
        return compare(fast, baseline, **kwargs)


@dataclass(frozen=True)
class Benchmark:
    """One registry entry: `run(ctx) -> Measured`; `target` is a ratio to reach (unit 'ratio') or
    seconds to stay under (unit 'seconds'), None for a figure reported without a target."""

    name: str
    title: str
    run: Callable[[BenchContext], Measured]
    baseline: str
    target: float | None = None
    unit: str = "ratio"
    slow: bool = False  # skipped by --skip-run


# ---------------------------------------------------------------------------------------------
# 1. fit_many against a loop of statsmodels GLM fits
# ---------------------------------------------------------------------------------------------

def bench_fit_many(ctx: BenchContext) -> Measured:
    kw = ctx.its_kwargs
    # The design on the common grid of years, as fit_many builds it (the trend counts from the
    # first year), each series' observed years taken from it; built outside the clock, so the
    # loop times the fits alone.
    grid = np.unique(ctx.la_rows["year"].to_numpy(dtype=float))
    design = design_columns(grid, kw["interventions"], kw["effects"])
    names = list(design.columns)
    series = []
    for code, rows in ctx.converged_series().items():
        rows = rows.dropna(subset=["count", "population"])
        X = design.to_numpy()[np.searchsorted(grid, rows["year"].to_numpy(dtype=float))]
        series.append((code, rows["count"].to_numpy(float), X,
                       np.log(rows["population"].to_numpy(float))))

    def loop():
        out = []
        for _, y, X, off in series:
            fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit(scale="X2")
            out.append((fit.params, fit.bse))
        return out

    def ours():  # the batch and its coefficient table (the loop's params and bse)
        res = ctx.fit_all_las()
        return res.coefficients

    ours, base = ctx.compare(ours, loop)
    coef = ours.result.set_index("la_code")
    diff_coef = diff_se = 0.0
    for (code, *_), (params, bse) in zip(series, base.result, strict=True):
        mine = coef.loc[code]
        diff_coef = max(diff_coef, np.abs(mine[names].to_numpy(float) - params).max())
        diff_se = max(diff_se, np.abs(mine[[f"se:{n}" for n in names]].to_numpy(float)
                                      - bse).max())
    return Measured(
        ratio=base.median / ours.median, ours_seconds=ours.median, baseline_seconds=base.median,
        checks=[check("coefficients (log scale)", diff_coef, EXACT),
                check("standard errors", diff_se, EXACT)],
        details={"series": len(series), "ours": ours.to_dict(), "baseline": base.to_dict(),
                 "ratio_best": base.best / ours.best,
                 "ratio_wall": base.median_wall / ours.median_wall})


# ---------------------------------------------------------------------------------------------
# 2. synthetic control with full placebo-in-space against pysyncon
# ---------------------------------------------------------------------------------------------

def _pysyncon_inputs(rates: np.ndarray, codes: list, years: np.ndarray, pre: np.ndarray,
                     i: int, donors: np.ndarray):
    """pysyncon's matrices for unit i against `donors` (rows of `rates`): predictors are the
    pre-period rates. Synth divides each predictor by its sd across units; a custom V of those
    sds squared undoes that, so it solves our problem (equally weighted pre-period years)."""
    cols = [codes[j] for j in donors]
    X0 = pd.DataFrame(rates[donors][:, pre].T, index=years[pre], columns=cols)
    X1 = pd.Series(rates[i, pre], index=years[pre], name="treated")
    Z0 = pd.DataFrame(rates[donors].T, index=years, columns=cols)
    Z1 = pd.Series(rates[i], index=years, name="treated")
    sd = pd.concat([X0, X1], axis=1).std(axis=1).to_numpy()
    return dict(X0=X0, X1=X1, Z0=Z0, Z1=Z1, custom_V=sd ** 2)


def bench_synthetic_control(ctx: BenchContext) -> Measured:
    if pysyncon is None:
        return Measured(skipped="pysyncon is not installed (pip install pysyncon)")
    c = ctx.config
    event = {"event": ctx.event_year}
    unit, treated, donors = donor_pool(c.la, c.measure, c.start_year, None, panel=ctx.panel)
    years = np.asarray(treated.index, dtype=int)
    pre = years < ctx.event_year
    rates = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    n_fits = len(codes)  # the LA and every donor as a placebo
    pool = np.arange(1, n_fits)
    subset = list(range(min(c.pysyncon_fits, n_fits)))
    inputs = [_pysyncon_inputs(rates, codes, years, pre, i, pool[pool != i]) for i in subset]
    per_fit = []

    def theirs():
        per_fit.clear()
        weights = []
        for kw in inputs:
            start = time.process_time()
            model = pysyncon.Synth()
            model.fit(**kw)
            per_fit.append(time.process_time() - start)
            weights.append(np.asarray(model.W, float))
        return weights

    def ours():
        return fit_synthetic_control(c.la, c.measure, event, c.start_year, panel=ctx.panel,
                                     leave_one_out=False)

    def ours_subset():
        return fit_synthetic_control(c.la, c.measure, event, c.start_year, panel=ctx.panel,
                                     leave_one_out=False, max_placebos=len(subset) - 1)

    full, base = ctx.compare(ours, theirs, baseline_repeats=1, warm_baseline=False)
    part, _ = ctx.compare(ours_subset)
    res = full.result
    scaled = base.median / len(subset) * n_fits

    checks, loss_excess, unique_gap_diffs, other_pre_diffs, n_unique = [], [], [], [], 0
    for i, w_theirs in zip(subset, base.result, strict=True):
        d = pool[pool != i]
        gap_ours = res.gaps.loc[codes[i]].to_numpy(float)
        synth_ours = rates[i] - gap_ours
        gap_theirs = rates[i] - w_theirs @ rates[d]
        loss_ours = float(np.sum(gap_ours[pre] ** 2))
        loss_theirs = float(np.sum(gap_theirs[pre] ** 2))
        scale = float(np.sum(rates[i, pre] ** 2))
        loss_excess.append((loss_ours - loss_theirs) / scale)
        # Unique weights only when the unit lies outside its donors' convex hull (a positive
        # pre-period misfit); inside it many weightings fit exactly and solvers may differ.
        unique = loss_ours > 1e-8 * scale
        n_unique += unique
        if i == 0:
            w_ours = (res.weights.set_index("la_code")["weight"]
                      .reindex([codes[j] for j in d]).fillna(0.0).to_numpy())
            if unique:
                checks += [check("LA's weights", np.abs(w_ours - w_theirs).max(),
                                 PYSYNCON_WEIGHTS),
                           check("LA's gaps (per 10,000)", np.abs(gap_ours - gap_theirs).max(),
                                 PYSYNCON_GAPS)]
            else:
                checks.append(check("LA's weights not unique (inside the donors' hull): "
                                    "its pre-period fit",
                                    np.abs(synth_ours[pre] - (w_theirs @ rates[d])[pre]).max(),
                                    PYSYNCON_GAPS))
        elif unique:
            unique_gap_diffs.append(float(np.abs(gap_ours - gap_theirs).max()))
        else:  # the pre-period fit is unique even when the weights are not
            other_pre_diffs.append(float(np.abs(gap_ours[pre] - gap_theirs[pre]).max()))
    if unique_gap_diffs:
        checks.append(check(f"placebos' gaps ({len(unique_gap_diffs)} of {len(subset) - 1} "
                            "with unique weights)", max(unique_gap_diffs), PYSYNCON_GAPS))
    if other_pre_diffs:
        checks.append(check(f"placebos' pre-period fits ({len(other_pre_diffs)} with weights "
                            "not unique)", max(other_pre_diffs), PYSYNCON_GAPS))
    checks.append(check("pre-period loss, ours minus pysyncon's (relative; <= 0: ours fits at "
                        "least as well)", max(loss_excess), 1e-9))
    placebos = len(subset) - 1
    note = (f"pysyncon timed on the LA and {placebos} placebo{'s' * (placebos != 1)} "
            f"({base.median:.3g} s for {len(subset)} of {n_fits} fits), scaled to all {n_fits}; "
            f"on those same {len(subset)} fits ours is {base.median / part.median:.0f}x faster")
    return Measured(
        ratio=scaled / full.median, ours_seconds=full.median, baseline_seconds=scaled,
        baseline_scaled=True, checks=checks, note=note,
        details={"fits": n_fits, "donors": n_fits - 1, "pre_period_years": int(pre.sum()),
                 "ours": full.to_dict(), "ours_same_subset": part.to_dict(),
                 "baseline_subset_seconds": base.median, "baseline_fits_timed": len(subset),
                 "baseline_seconds_per_fit": per_fit[:], "baseline_scaled_seconds": scaled,
                 "ratio_same_subset": base.median / part.median,
                 "ratio_wall": base.median_wall / len(subset) * n_fits / full.median_wall,
                 "fits_with_unique_weights": int(n_unique), "la_weights_unique": bool(
                     res.weights_unique)})


# ---------------------------------------------------------------------------------------------
# 3. synthetic difference-in-differences against synthdid-py
# ---------------------------------------------------------------------------------------------

def bench_synthetic_did(ctx: BenchContext) -> Measured:
    if synthdid is None:
        return Measured(skipped="synthdid-py is not installed (pip install synthdid-py)")
    c = ctx.config
    panel = la_rate_panel(c.la, c.measure, one_event({"event": ctx.event_year}), c.start_year,
                          None, panel=ctx.panel)
    Y = panel.Y.to_numpy(float)
    controls = np.flatnonzero(panel.start.isna().to_numpy())
    treated = np.flatnonzero(panel.start.notna().to_numpy())
    Y_theirs = Y[np.concatenate([controls, treated])]  # controls first, as synthdid wants
    T0 = int(np.sum(panel.times < ctx.event_year))

    def theirs():
        return synthdid.synthdid_estimate(Y_theirs, len(controls), T0)

    ours, base = ctx.compare(lambda: fit_sdid(panel), theirs)
    fw, _ = ctx.compare(lambda: fit_sdid(panel, solver="frank_wolfe"))
    tau_theirs = float(base.result)
    omega_fw = fw.result.cohort_fits[0].omega
    omega_theirs = np.asarray(base.result.weights.omega, float)
    return Measured(
        ratio=base.median / ours.median, ours_seconds=ours.median, baseline_seconds=base.median,
        checks=[check("estimate, with synthdid's Frank-Wolfe solver",
                      abs(fw.result.estimate - tau_theirs), EXACT),
                check("unit weights, with synthdid's Frank-Wolfe solver",
                      np.abs(omega_fw - omega_theirs).max(), EXACT),
                check("estimate, with the exact solver (the default; Frank-Wolfe stops early)",
                      abs(ours.result.estimate - tau_theirs))],
        note=(f"point estimate (weights and effect), no standard errors; ours with synthdid's "
              f"solver: {base.median / fw.median:.2g}x"),
        details={"controls": len(controls), "pre_periods": T0, "ours": ours.to_dict(),
                 "ours_frank_wolfe": fw.to_dict(), "baseline": base.to_dict(),
                 "ratio_frank_wolfe": base.median / fw.median,
                 "ratio_wall": base.median_wall / ours.median_wall,
                 "estimate_ours": ours.result.estimate, "estimate_theirs": tau_theirs})


# ---------------------------------------------------------------------------------------------
# 4. placebo and calibration refits: one batch against a loop of single fits
# ---------------------------------------------------------------------------------------------

def bench_its_placebo_in_space(ctx: BenchContext) -> Measured:
    series = ctx.converged_series()
    kw = ctx.its_kwargs

    def loop():
        return {code: fit_its(rows, **kw).effects for code, rows in series.items()}

    def ours():  # the batch and its effects table (the loop's effects)
        res = ctx.fit_all_las()
        res.effects
        return res

    ours, base = ctx.compare(ours, loop)
    diff = 0.0
    cols = ["estimate", "ci_low", "ci_high", "p_value"]
    for code, theirs in base.result.items():
        mine = ours.result.for_series(la_code=code, measure=ctx.config.measure)
        diff = max(diff, np.abs(mine[cols].to_numpy(float) - theirs[cols].to_numpy(float)).max())
    return Measured(
        ratio=base.median / ours.median, ours_seconds=ours.median, baseline_seconds=base.median,
        checks=[check("effects (ratio, interval, p-value)", diff, EXACT)],
        details={"series": len(series), "ours": ours.to_dict(), "baseline": base.to_dict(),
                 "ratio_wall": base.median_wall / ours.median_wall})


def loop_fit(method: str, X: pd.DataFrame, Y: np.ndarray, alpha: float = 0.05):
    """The baseline of the calibration benchmark: `fit_its` on each simulated series in turn."""

    S, T = Y.shape
    names = [c for c in X.columns if c.startswith("event:")]
    n_pre = int((X["event:level"] == 0).sum())
    effects = tuple(c.split(":")[1] for c in names)
    out = {k: np.full((S, len(names)), np.nan) for k in ("coef", "se", "p_value", "low", "high")}
    t = np.arange(T)
    for s in range(S):
        df = pd.DataFrame({"t": t, "y": Y[s]})
        try:
            with warnings.catch_warnings():
                # Hard simulated replicates may not converge; they are counted as failures.
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                res = fit_its(df, outcome="y", time="t", interventions={"event": n_pre},
                                  effects=effects, family=method, offset=None, harmonics=0)
        except (CareTrendsError, np.linalg.LinAlgError, ValueError):
            continue
        for j, eff in enumerate(effects):
            row = effect_row(res, "event", eff)
            if row is None:
                continue
            if row["scale"] == "ratio":
                out["coef"][s, j] = math.log(row["estimate"])
                out["low"][s, j] = math.log(row["ci_low"])
                out["high"][s, j] = math.log(row["ci_high"])
            else:
                out["coef"][s, j], out["low"][s, j], out["high"][s, j] = (
                    row["estimate"], row["ci_low"], row["ci_high"])
            out["p_value"][s, j] = row["p_value"]
    return out, names


def bench_calibration_batch(ctx: BenchContext) -> Measured:
    c = ctx.config
    la_series = ctx.la_rows[ctx.la_rows["la_code"] == c.la]
    if la_series.empty:
        raise CareTrendsError(f"LA {c.la} has no {c.measure} rows from {c.start_year}; "
                              "choose another LA for the benchmark")
    model = fit_pre_period(la_series, before=ctx.event_year).monthly(RHO_MONTHLY)
    n_pre = MONTHLY_N - MONTHLY_POST
    sims = simulate_counts(model, MONTHLY_POST, c.calibration_sims, n_pre=n_pre,
                           seed=child_seed(SEED, "bench", "calibration"))[0]
    design = its_design(n_pre, MONTHLY_POST, slope=True)
    X = design.to_numpy()

    def batched():
        return {m: batch_fit(m, X, sims) for m in CALIBRATION_METHODS}

    def loop():
        return {m: loop_fit(m, design, sims) for m in CALIBRATION_METHODS}

    ours, base = ctx.compare(batched, loop, baseline_repeats=min(c.baseline_repeats, 3))
    checks = []
    for m in CALIBRATION_METHODS:
        looped, names = base.result[m]
        cols = [list(design.columns).index(n) for n in names]
        both = np.isfinite(looped["p_value"]) & np.isfinite(ours.result[m]["p_value"][:, cols])
        diff = max(float(np.abs(ours.result[m][k][:, cols][both] - looped[k][both]).max(initial=0))
                   for k in ("coef", "low", "high", "p_value"))
        mismatched = int((~both).sum() - (~np.isfinite(looped["p_value"])
                                          & ~np.isfinite(ours.result[m]["p_value"][:, cols])).sum())
        checks.append(check(f"{m} (estimates, intervals, p-values)", diff, EXACT))
        checks.append(check(f"{m}: series fitted by one side only (count)", mismatched, 0))
    return Measured(
        ratio=base.median / ours.median, ours_seconds=ours.median, baseline_seconds=base.median,
        checks=checks,
        note=f"{c.calibration_sims} simulated monthly series ({MONTHLY_N} months, "
             f"{MONTHLY_POST} after), methods {', '.join(CALIBRATION_METHODS)}",
        details={"replicates": c.calibration_sims, "methods": list(CALIBRATION_METHODS),
                 "ours": ours.to_dict(), "baseline": base.to_dict(),
                 "ratio_wall": base.median_wall / ours.median_wall})


# ---------------------------------------------------------------------------------------------
# 4b. the calibrated monthly default, per fit
# ---------------------------------------------------------------------------------------------

def bench_monthly_default_inference(ctx: BenchContext) -> Measured:
    """Seconds per real-size fit of the monthly default (ar1_bootstrap, B = 999) and per
    simulated series inside the calibration Monte Carlo, against one quasi-Poisson GLM fit of the
    same series by statsmodels (the price of calibrated intervals); the check: `fit_its` with no
    family on a monthly series gives the bootstrap's own numbers."""
    timing = calibration.time_ar1_bootstrap(repeats=max(3, min(ctx.config.repeats, 5)))
    cell = calibration.Cell("monthly", timing["n"], timing["n_post"], timing["rho"])
    X = calibration.its_design(cell, "level+slope")
    Y, log_pop = calibration.simulate_counts(cell, 1, seed=child_seed(SEED, "bench", "monthly"))
    frame = pd.DataFrame({"t": np.arange(cell.n), "y": Y[0], "population": np.exp(log_pop)})
    res = fit_its(frame, outcome="y", time="t", interventions={"event": cell.n - cell.n_post},
                  effects=("level", "slope"), harmonics=2, period=12,
                  season=None, impact_seed=SEED)
    # fit_its numbers the months from January; the calibration design from April: same model
    # up to the harmonics' phase, so compare the declared effects only.
    direct = inference.monthly_inference(Y[0], res.design_matrix, log_pop, seed=SEED,
                                         effect_columns=["event:level", "event:slope"])
    diff = float(np.abs(np.log(res.effects["ci_low"].to_numpy())
                        - direct["ci_low"].to_numpy()).max())

    def glm():
        return sm.GLM(Y[0], res.design_matrix.to_numpy(), family=sm.families.Poisson(),
                      offset=log_pop).fit(scale="X2")

    ours = timing["cpu_seconds_per_fit"]
    base, _ = ctx.compare(glm)
    return Measured(
        seconds=ours, ours_seconds=ours, baseline_seconds=base.median,
        checks=[check("fit_its default on a monthly series = the bootstrap's interval", diff,
                      EXACT)],
        note=(f"one fit: {1000 * ours:.1f} ms (B = {timing['n_boot_fit']}) against "
              f"{1000 * base.median:.1f} ms for one quasi-Poisson GLM fit; inside the "
              f"calibration Monte Carlo {1000 * timing['cpu_seconds_per_series']:.2f} ms per "
              f"simulated series, {timing['projected_seconds_2000_sims']:.0f} s for a "
              "2,000-series cell"),
        details=timing)


# ---------------------------------------------------------------------------------------------
# 5. the whole default run
# ---------------------------------------------------------------------------------------------

#: Seconds between readings of the tree's proportional memory (PSS): reading it walks every
#: page table, ~80 ms of a core for a run's eight processes, which sampled every 50 ms took
#: a third of a core from the run being timed (measured: 29.6 s against 21.9 s unobserved).
PSS_INTERVAL = 0.5


def _tree(proc) -> list:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree_rss(procs) -> int:
    """Resident memory summed over the processes (cheap: /proc/<pid>/statm)."""
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _tree_pss(procs) -> int:
    """Proportional memory (PSS) summed over the processes: a page shared by n processes counts
    1/n in each, so kernels forked from the kernel server are not charged again for the
    server's memory (summed RSS counts it once per kernel); RSS where PSS is unavailable."""
    total = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class MemoryPeaks:
    """Peak summed RSS and PSS of a process tree, sampled while it runs: RSS every call, PSS
    only when the summed RSS exceeds the PSS peak so far (PSS <= RSS, so nothing higher can be
    missed then) and at most every PSS_INTERVAL seconds (`pss=False`: never, for a run whose
    time is the figure)."""

    def __init__(self, proc, pss: bool = True):
        self.proc, self.pss, self.rss, self._last_pss = proc, 0, 0, -math.inf
        self.read_pss = pss

    def sample(self) -> None:
        procs = _tree(self.proc)
        rss = _tree_rss(procs)
        self.rss = max(self.rss, rss)
        now = time.monotonic()
        if self.read_pss and rss > self.pss and now - self._last_pss >= PSS_INTERVAL:
            self._last_pss = now
            self.pss = max(self.pss, _tree_pss(procs))


def bench_run(cores: int = 2, command: list[str] | None = None, pss: bool = True) -> dict:
    """`care-trends run` in a subprocess pinned to `cores`: wall time, CPU seconds and the peak
    memory of its whole process tree (`MemoryPeaks`, sampled every 50 ms; summed PSS only
    with `pss`, else None)."""
    exe = Path(sys.executable).with_name("care-trends")
    command = command or ([str(exe)] if exe.exists() else
                          [sys.executable, "-m", "helpers"]) + ["run"]
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = available[:cores]

    def pin():  # runs in the child before exec: the run and every kernel it starts get `cores`
        if pinned:
            os.sched_setaffinity(0, pinned)

    try:
        import resource  # POSIX only; Windows gets wall time and memory without CPU seconds
    except ImportError:
        resource = None

    env = dict(_user_env(), PYTHONHASHSEED="0", MPLBACKEND="Agg")  # the run as users run it
    before = resource.getrusage(resource.RUSAGE_CHILDREN) if resource else None
    start = time.perf_counter()
    # Output goes to a file, not a pipe: a chatty run could fill a pipe and stall.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(command, cwd=paths.project_root(), env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=pin if pinned else None)
    peaks = MemoryPeaks(psutil.Process(proc.pid), pss=pss)
    while proc.poll() is None:
        peaks.sample()
        time.sleep(0.05)
    peak, peak_rss = peaks.pss, peaks.rss
    wall = time.perf_counter() - start
    cpu = None
    if resource:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log.seek(0)
    output = log.read()
    log.close()
    return {"command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)),
            "cores": len(pinned) or os.cpu_count(), "returncode": proc.returncode,
            "seconds": wall, "cpu_seconds": cpu,
            "peak_memory_mb": peak / 2**20 if pss else None,
            "peak_summed_rss_mb": peak_rss / 2**20,
            "output_tail": [_no_paths(line) for line in output.strip().splitlines()[-3:]]}


#: Runs of the whole default run; the median is the figure (the issue asks for three).
RUN_REPEATS = 3


def bench_care_trends_run(ctx: BenchContext) -> Measured:
    """The whole default `care-trends run`, RUN_REPEATS times: the median wall time; peak
    memory (summed PSS) from the first run only, as reading it costs the run some speed (the
    median of three is then a run nobody watched that closely)."""
    runs = [bench_run(cores=ctx.config.cores, pss=i == 0) for i in range(RUN_REPEATS)]
    seconds = float(statistics.median(r["seconds"] for r in runs))
    memory = {**runs[0], "peak_summed_rss_mb": max(r["peak_summed_rss_mb"] for r in runs)}
    cpu = statistics.median(r["cpu_seconds"] for r in runs) if runs[0]["cpu_seconds"] else None
    note = (f"both analyses, every notebook; median of {len(runs)} runs ("
            + ", ".join(f"{r['seconds']:.1f}" for r in runs) + " s)")
    if cpu:
        note += (f"; {cpu:.0f} CPU seconds in all (so at best {cpu / runs[0]['cores']:.0f} s on "
                 f"{runs[0]['cores']} idle cores), peak memory {memory['peak_memory_mb']:.0f} MB "
                 f"(summed PSS; summed RSS {memory['peak_summed_rss_mb']:.0f} MB)")
    details = {**{k: v for k, v in memory.items() if k != "seconds"},
               "runs_seconds": [round(r["seconds"], 2) for r in runs], "cpu_seconds": cpu}
    return Measured(seconds=seconds, ours_seconds=seconds, note=note,
                    checks=[check("every run's exit code", max(abs(r["returncode"]) for r in runs),
                                  ok=all(r["returncode"] == 0 for r in runs))],
                    details=details)


def bench_national_batch(ctx: BenchContext) -> Measured:
    """Every LA with the default all-LA template (the national batch) as a multiple of ONE LA's
    run of the same template through the notebooks, each a fresh `care-trends` process in this
    session (`helpers.run.national_batch.bench_national`)."""
    run = national_batch.bench_national(workers=ctx.config.cores)
    ratio = run["all_las_batch_seconds"] / run["one_la_notebooks_seconds"]
    cpu_ratio = run["all_las_batch_cpu_seconds"] / run["one_la_notebooks_cpu_seconds"]
    return Measured(
        ratio=ratio, ours_seconds=run["all_las_batch_seconds"],
        baseline_seconds=run["one_la_notebooks_seconds"],
        checks=[check("LAs published by the batch", run["las_ok"], ok=run["las_ok"] > 100)],
        note=(f"{run['las_ok']} of {run['las']} LAs in {run['all_las_batch_seconds']:.0f} s "
              f"against {run['one_la_notebooks_seconds']:.1f} s for one LA (median of "
              f"{len(run['one_la_notebooks_runs'])} runs); CPU seconds "
              f"{cpu_ratio:.1f}x; load {run['load_average_before']} -> "
              f"{run['load_average_after']}"),
        details=run)


def bench_national_dask(ctx: BenchContext) -> Measured:
    """The national batch on a 2-worker Dask LocalCluster against a 1-worker one (one thread
    per worker; two runs of each, 1 2 2 1, so a drift in the machine's speed cancels), the
    published files of every run checked equal
    (`helpers.run.national_batch.bench_national`)."""
    run = national_batch.bench_national(dask_workers=(1, 2), local=False, dask_rounds=2)
    one, two = run["dask_seconds"][1], run["dask_seconds"][2]
    return Measured(
        ratio=one / two, ours_seconds=two, baseline_seconds=one,
        checks=[check("published files equal on 1 and 2 workers", None,
                      ok=run["same_files"])],
        note=(f"every LA in {two:.0f} s on 2 Dask workers against {one:.0f} s on 1 (means of "
              f"2 runs each, in the order 1 2 2 1: {run['dask_runs_seconds']}); load "
              f"{run['load_average_before']} -> {run['load_average_after']}"),
        details=run)


# ---------------------------------------------------------------------------------------------
# Registry and driver
# ---------------------------------------------------------------------------------------------

BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("fit_many", "fit_many: segmented quasi-Poisson ITS for every LA, one outcome",
              bench_fit_many, "loop of statsmodels GLM fits", target=50.0),
    Benchmark("synthetic_control", "synthetic control + full placebo-in-space, one LA",
              bench_synthetic_control, "pysyncon Synth (same predictors and donors)",
              target=100.0),
    Benchmark("synthetic_did", "synthetic DiD, one LA", bench_synthetic_did,
              "synthdid-py synthdid_estimate"),
    Benchmark("its_placebo_in_space", "ITS placebo-in-space: every LA refitted at once",
              bench_its_placebo_in_space, "loop of fit_its", target=50.0),
    Benchmark("calibration_batch", "calibration Monte Carlo refits (monthly)",
              bench_calibration_batch, "loop of fit_its per simulated series", target=50.0),
    Benchmark("monthly_default_inference", "calibrated monthly default (ar1_bootstrap), per fit",
              bench_monthly_default_inference, "one quasi-Poisson GLM fit (statsmodels)",
              unit="seconds"),
    # The whole run before the national ones: minutes of full load just before it slowed it
    # by a fifth (28.4 s against 23.8 s on the same checkout a minute later).
    Benchmark("care_trends_run", "whole default care-trends run (2 cores)",
              bench_care_trends_run, "", target=30.0, unit="seconds", slow=True),
    Benchmark("national_batch_vs_one_la", "every LA (national batch) against one LA's run",
              bench_national_batch, "one LA through the notebooks", target=10.0,
              unit="times", slow=True),
    Benchmark("national_batch_dask", "national batch on Dask: 2 workers against 1",
              bench_national_dask, "a 1-worker Dask LocalCluster", target=1.7, slow=True),
)


def benchmark_names() -> list[str]:
    return [b.name for b in BENCHMARKS]


def _met(bench: Benchmark, measured: Measured, agreement_ok: bool) -> bool | None:
    if bench.target is None or measured.skipped:
        return None
    value = measured.seconds if bench.unit == "seconds" else measured.ratio
    # "seconds" and "times" (a multiple of another run's time) are ceilings; ratios floors.
    reached = (value <= bench.target if bench.unit in ("seconds", "times")
               else value >= bench.target)
    return bool(reached and agreement_ok)


def to_record(bench: Benchmark, measured: Measured) -> dict:
    """One benchmark's entry in results.json."""
    agreement_ok = all(c["ok"] is not False for c in measured.checks)
    record = {"name": bench.name, "title": bench.title, "baseline": bench.baseline,
              "target": bench.target, "unit": bench.unit}
    if measured.skipped:
        return {**record, "skipped": measured.skipped, "met": None}
    if bench.unit == "seconds":
        record["seconds"] = measured.seconds
    else:  # a ratio, or (unit "times") a multiple that must stay under its target
        record["ratio"] = measured.ratio
    record.update({"met": _met(bench, measured, agreement_ok),
                   "seconds_ours": measured.ours_seconds,
                   "seconds_baseline": measured.baseline_seconds,
                   "baseline_scaled": measured.baseline_scaled,
                   "agreement": {"ok": agreement_ok, "checks": measured.checks},
                   "note": measured.note, "details": measured.details})
    return record


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _blas() -> str | None:
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name')} {info.get('version')}"
    except Exception:  # noqa: BLE001 - older numpy: not reported
        return None


def machine() -> dict:
    """What the figures were measured on (no timestamps, no paths)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "cores_available": available,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "system": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(), "blas": _blas(),
            "blas_threads": "1 (held for timing)" if blas_single_threaded() else "library default",
            "packages": {name: _version(name) for name in (
                "numpy", "scipy", "pandas", "statsmodels", "pysyncon", "synthdid-py")}}


def blas_single_threaded() -> bool:
    """Whether this process was started with BLAS held to one thread (ONE_BLAS_THREAD)."""
    return all(os.environ.get(k) == v for k, v in ONE_BLAS_THREAD.items())


def one_blas_thread_env() -> dict:
    """The environment for a benchmark process: BLAS on one thread, the previous values kept."""
    before = {k: os.environ.get(k) for k in ONE_BLAS_THREAD}
    return dict(os.environ, **ONE_BLAS_THREAD, **{BLAS_BEFORE: json.dumps(before)})


def _user_env() -> dict:
    """This process's environment with the BLAS variables as the user had them."""
    env = dict(os.environ)
    before = json.loads(env.pop(BLAS_BEFORE, "null"))
    for key, value in (before or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _no_paths(text: str) -> str:
    root = str(paths.project_root())
    return text.replace(root + os.sep, "").replace(root, ".")


def run_benchmarks(config: BenchConfig = BenchConfig(), *, only=None, skip_run: bool = False,
                   panel: pd.DataFrame | None = None, output: Path | None = None,
                   write: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """Run the registry (or the benchmarks named in `only`; `skip_run` leaves out the slow
    whole-run one) on `panel` (default: the committed panel) and, with `write`, write the figures
    atomically to `output` (default bench/results.json)."""
    unknown = sorted(set(only or ()) - set(benchmark_names()))
    if unknown:
        raise CareTrendsError(f"unknown benchmark(s) {unknown}; choose from "
                              f"{', '.join(benchmark_names())}")
    ctx = BenchContext(data.load_panel() if panel is None else panel, config)
    records = []
    load_before = _load()
    for bench in BENCHMARKS:
        if (only and bench.name not in only) or (skip_run and bench.slow and not only):
            continue
        if progress:
            progress(bench.name)
        load = _load()
        record = to_record(bench, bench.run(ctx))
        record["load_average_before"] = load
        records.append(record)
    settings = asdict(config)
    settings["event_year"] = ctx.event_year
    results = {"machine": {**machine(), "load_average_before": load_before,
                           "load_average_after": _load()},
               "settings": settings, "benchmarks": records}
    results = _rounded(results)
    if write:
        output = Path(output) if output else default_output()
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(output, results)
    return results


def default_output() -> Path:
    return paths.project_root() / "bench" / "results.json"


def _rounded(obj):
    if isinstance(obj, float):
        return float(f"{obj:.4g}") if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    if isinstance(obj, np.generic):
        return _rounded(obj.item())
    return obj


# ---------------------------------------------------------------------------------------------
# Reading the figures: terminal table, README table
# ---------------------------------------------------------------------------------------------

def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def _target(record: dict) -> str:
    if record.get("target") is None:
        return "(none)"
    return (f"<= {record['target']:g} s" if record["unit"] == "seconds"
            else f"<= {record['target']:g}x" if record["unit"] == "times"
            else f">= {record['target']:g}x")


def _figure(record: dict) -> str:
    if record.get("skipped"):
        return "skipped"
    if record["unit"] == "seconds":
        return _seconds(record["seconds"])
    return f"{record['ratio']:.0f}x" if record["ratio"] >= 10 else f"{record['ratio']:.2g}x"


def _times(record: dict) -> tuple[str, str]:
    """(ours, baseline) median times per call, as the tables show them."""
    base = _seconds(record.get("seconds_baseline"))
    if base and record.get("baseline_scaled"):
        base += " (scaled)"
    return _seconds(record.get("seconds_ours")), base


def _met_word(record: dict) -> str:
    return {True: "yes", False: "NO", None: "-"}[record.get("met")]


def _number(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e6 else f"{value:.1e}"


def _check_text(c: dict) -> str:
    if c["tolerance"] is not None:
        verdict = "" if c["ok"] else ", FAILED"
        return f"{c['what']}: {_number(c['value'])} (tolerance {c['tolerance']:g}{verdict})"
    if c["ok"] is not None:
        return f"{c['what']}: {'ok' if c['ok'] else 'FAILED'}"
    return f"{c['what']}: {_number(c['value'])}"


def _agreement(record: dict) -> str:
    return "; ".join(_check_text(c) for c in record.get("agreement", {}).get("checks", []))


def format_table(results: dict) -> str:
    """The terminal table: one block per benchmark."""
    lines = []
    for r in results["benchmarks"]:
        ours, base = _times(r)
        head = (f"{r['name']:<22} {_figure(r):>8}  target {_target(r):<8} met {_met_word(r):<3}"
                f"  ours {ours or '-'}")
        if base:
            head += f", {r['baseline']} {base}"
        lines.append(head)
        if r.get("skipped"):
            lines.append(f"    {r['skipped']}")
            continue
        if r.get("note"):
            lines.append(f"    {r['note']}")
        for c in r.get("agreement", {}).get("checks", []):
            lines.append(f"    check: {_check_text(c)}")
    m = results["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python "
                 f"{m['python']}, load average {m.get('load_average_before')} -> "
                 f"{m.get('load_average_after')}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def readme_table(results: dict) -> str:
    """The README's Markdown table of the figures in results.json (numbers as measured)."""
    rows = ["| benchmark | ours (median) | baseline, same process (median) | ratio | target | met "
            "| agreement: max abs difference (tolerance) |", "|---|---|---|---|---|---|---|"]
    for r in results["benchmarks"]:
        ours, base = _times(r)
        baseline = f"{r['baseline']}, {base}" if base else r["baseline"]
        title = r["title"] + (f" ({r['note']})" if r.get("note") else "")
        ratio = "-" if r.get("unit") == "seconds" and not r.get("skipped") else _figure(r)
        cells = [title, ours, baseline or "-", ratio, _target(r), _met_word(r),
                 _agreement(r) or r.get("skipped", "")]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    m = results["machine"]
    settings = results.get("settings", {})
    rows.append("")
    rows.append(f"Measured by `care-trends bench` on {m['cpu']} ({m['cores']} cores, "
                f"{m['memory_gb']} GB), Python {m['python']}, numpy "
                f"{m['packages'].get('numpy')}: the process's CPU time per call, medians of "
                f"{settings.get('repeats')} repeats (baselines up to "
                f"{settings.get('baseline_repeats')}; pysyncon once), fast side and baseline "
                f"interleaved, BLAS threads {m.get('blas_threads')}; the whole run in wall-clock "
                f"time. Load average {m.get('load_average_before')} at the start (a shared "
                "machine). Wall-clock times, best times and the machine in full: "
                "`bench/results.json`.")
    return "\n".join(rows)


def update_readme(readme: Path, results: dict) -> None:
    """Rewrite the block between README_START and README_END with `readme_table(results)`."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise CareTrendsError(f"{readme.name} has no benchmark block; add the lines "
                              f"{README_START!r} and {README_END!r} where the table goes")
    block = f"{README_START}\n{readme_table(results)}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")


def quick_config(**changes) -> BenchConfig:
    """A configuration that runs in seconds (tests): one repeat, no blocks, few fits."""
    base = BenchConfig(repeats=1, baseline_repeats=1, block_seconds=0.0, pysyncon_fits=2,
                       calibration_sims=12)
    return replace(base, **changes)
