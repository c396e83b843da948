"""Calibration Monte Carlo: does each inference method keep its promise when nothing happened?

For every method and every cell (series length, post-period length, autocorrelation, noise) the
Monte Carlo simulates the series the notebooks actually fit and reports, with Monte Carlo
standard errors:

* false_positive_rate: the share of series with NO effect whose declared effect (level, or level
  and slope) is "significant" (p < alpha); nominal alpha (5%).
* coverage_95: the share of series WITH a known effect whose 95% interval covers it (log-link
  methods: the true rate ratio; Gaussian-scale methods, whose effect is a difference that is not
  constant under a multiplicative change, at the null difference 0: `coverage_truth` says which).

Settings (what the notebooks fit):
* monthly: counts around ~21 a month (Stoke-on-Trent's starts), a population offset growing 0.5%
  a year, a trend, Fourier seasonality of two harmonics with a ~10% peak-to-trough swing, and
  extra-Poisson noise: a latent Gaussian AR(1) on the log scale (sd `sigma`, autocorrelation
  `rho`); the model has const, trend, level (and slope) and two harmonics.
* annual: 12-16 reporting years around ~250 a year with quasi-Poisson dispersion 2-6 (latent
  sd from the dispersion), optionally autocorrelated; the model has const, trend, level (and
  slope when there are 2+ post points), no harmonics.

All methods see the same simulated series in a cell (common random numbers), every random
stream is seeded from (seed, cell, purpose), and the monthly default ("ar1_bootstrap") runs with
B bootstrap series per simulated series (`n_boot`, 399 by default here: a bootstrap test at
p < alpha has nominal size alpha - 1/(B+1) = 4.75%, against 4.9% at the B = 999 of a single
real fit).

`method_status` / `recommend_defaults` decide with the Monte Carlo error: a method is "calibrated" in a
setting only if, in every cell, the 95% Monte Carlo interval of its false-positive rate lies
inside [alpha - tolerance, alpha + tolerance] and that of its coverage inside
[0.95 - tolerance, 0.95 + tolerance]; "not calibrated" if some cell is outside even allowing for
that error; otherwise "undetermined" (more simulations needed: `calibration_table(refine=k)`
re-simulates such rows with k x n_sim fresh series and pools them, a two-stage Monte Carlo, so
that the few rows of dozens that straddle the band by chance are settled rather than waved
through). `recommend_defaults` returns the preferred calibrated method of each setting or "none
calibrated".

Also here, the numbers behind the controlled ITS's degrees of freedom
(`controlled_its_coverage`) and the power of the declared model on a cell (`declared_power`,
with any batched method, the bootstrap included; `helpers.checks.power` is the analysis' own
power from its pre-period model).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from helpers.checks.common import child_seed, latent_ar1
from helpers.checks.power import DEFAULT_REDUCTIONS
from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.core.vocab import DEFAULT_SEED
from helpers.models import inference
from helpers.models.design import design_columns

__all__ = [
    "Cell", "MONTHLY_CELLS", "ANNUAL_CELLS", "SMALL_CELLS", "MONTHLY_METHODS", "ANNUAL_METHODS",
    "its_design", "simulate_counts", "calibration_table", "small_calibration_table",
    "method_status", "recommend_defaults", "CALIBRATION_METHODS", "controlled_its_coverage",
    "analysis_cells", "declared_power", "load_full_table", "FULL_TABLE", "mc_se", "cell_table",
    "time_ar1_bootstrap",
]

#: Methods calibrated on monthly series (the default first, then named alternatives).
MONTHLY_METHODS = ("ar1_bootstrap", "quasipoisson", "poisson", "negbin", "ar1_sandwich",
                   "quasipoisson_fixedb", "ols", "ar1", "sarimax", "naive_ols")
#: Methods calibrated on annual series.
ANNUAL_METHODS = ("quasipoisson", "poisson", "negbin", "ar1_bootstrap", "ols", "ar1",
                  "sarimax", "naive_ols")
#: Methods per setting (what `calibration_table` fits unless told otherwise).
CALIBRATION_METHODS = {"monthly": MONTHLY_METHODS, "annual": ANNUAL_METHODS}
#: Preference among calibrated methods (DESIGN: counts as counts; the declared defaults first).
PREFERENCE = {"monthly": ("ar1_bootstrap", "quasipoisson", "negbin", "ar1_sandwich", "poisson",
                          "quasipoisson_fixedb", "ar1", "sarimax", "ols"),
              "annual": ("quasipoisson", "negbin", "ar1_bootstrap", "poisson", "ar1", "sarimax",
                         "ols")}
#: Effects simulated for coverage: level rate ratio; slope ratio per month / per year.
LEVEL_RATIO = 0.85
SLOPE_RATIO = {"monthly": 0.995, "annual": 0.95}
#: Bootstrap sizes used inside the Monte Carlo (see the module docstring).
CAL_N_BOOT = 399
CAL_N_BIAS = 99


@dataclass(frozen=True)
class Cell:
    """One simulated setting. `sigma` is the sd of the latent log-scale noise; for annual cells
    give `dispersion` instead (quasi-Poisson phi at `mean_count`, sigma derived from it)."""

    setting: str            # "monthly" | "annual"
    n: int                  # series length (months or years)
    n_post: int             # points from the event on
    rho: float              # autocorrelation of the latent noise (per step)
    sigma: float = 0.15     # latent sd (log scale)
    mean_count: float = 21.0
    trend: float = 0.002    # log change per step
    harmonics: int = 2
    seasonal: tuple = (0.05, 0.0, 0.0, 0.015)   # cos1, sin1, cos2, sin2 amplitudes (log scale)
    dispersion: float | None = None

    def __post_init__(self):
        if self.setting not in ("monthly", "annual"):
            raise CareTrendsError(f"setting must be 'monthly' or 'annual', not {self.setting!r}")
        if not 2 <= self.n_post < self.n - 3 and not (self.n_post == 1 and self.n > 4):
            raise CareTrendsError(f"n_post={self.n_post} does not fit n={self.n}")
        if not -1 < self.rho < 1:
            raise CareTrendsError(f"rho must lie in (-1, 1), not {self.rho}")

    @property
    def latent_sd(self) -> float:
        if self.dispersion is not None:
            return math.sqrt(math.log1p(max(self.dispersion - 1.0, 0.0) / self.mean_count))
        return float(self.sigma)

    @property
    def implied_dispersion(self) -> float:
        """Quasi-Poisson dispersion the cell implies at its mean count: 1 + mu (e^s2 - 1)."""
        return 1.0 + self.mean_count * math.expm1(self.latent_sd ** 2)

    @classmethod
    def from_pre_period(cls, pre, *, setting: str = "annual", n_post: int = 1,
                        n: int | None = None, rho_monthly: float = 0.5) -> "Cell":
        """A cell simulating an analysis' own series from its fitted pre-period model (any object
        with mean_count, trend, sigma, rho, n_pre per year, e.g. the sensitivity notebook's
        PrePeriodModel). Monthly: one twelfth of the annual count, the trend per month, latent
        AR(1) with `rho_monthly` scaled so that its 12-month mean has the annual sd (as
        PrePeriodModel.monthly), Fourier seasonality as the monthly cells."""
        if setting == "annual":
            return cls("annual", int(n or pre.n_pre + n_post), int(n_post), float(pre.rho),
                       sigma=float(pre.sigma), mean_count=float(pre.mean_count),
                       trend=float(pre.trend), harmonics=0, seasonal=())
        lag = np.abs(np.subtract.outer(np.arange(12), np.arange(12)))
        factor = float((rho_monthly ** lag).mean())   # var of a 12-month mean / monthly var
        return cls("monthly", int(n or 12 * pre.n_pre + n_post), int(n_post), rho_monthly,
                   sigma=float(pre.sigma) / math.sqrt(factor),
                   mean_count=float(pre.mean_count) / 12, trend=float(pre.trend) / 12)

    def models(self) -> tuple[str, ...]:
        """The declared impact models that can be fitted (level+slope needs 2+ post points)."""
        return ("level", "level+slope") if self.n_post >= 2 else ("level",)

    def key(self) -> str:
        return (f"{self.setting}|n{self.n}|post{self.n_post}|rho{self.rho:g}|"
                f"sd{self.latent_sd:.4f}")


def _monthly(n, post, rho, sigma=0.15):
    return Cell("monthly", n, post, rho, sigma=sigma)


def _annual(n, post, rho, dispersion):
    return Cell("annual", n, post, rho, mean_count=250.0, trend=0.03, harmonics=0, seasonal=(),
                dispersion=dispersion)


#: The monthly grid: n = 60-180 months, 12 or 36 after the event, rho 0 - 0.5 (sigma 0.15:
#: monthly dispersion ~1.5 at 21 a month), plus two cells with twice the extra-Poisson noise.
MONTHLY_CELLS = tuple(
    [_monthly(n, post, rho) for n in (60, 120, 180) for post in (12, 36)
     for rho in (0.0, 0.25, 0.5)]
    + [_monthly(60, 12, 0.5, sigma=0.3), _monthly(180, 36, 0.5, sigma=0.3)])
#: The annual grid: 12 or 16 reporting years, 1 or 4 after the event, dispersion 2 or 6, rho 0
#: or 0.5 (the audit's "strong autocorrelation").
ANNUAL_CELLS = tuple(_annual(n, post, rho, phi) for n in (12, 16) for post in (1, 4)
                     for rho in (0.0, 0.5) for phi in (2.0, 6.0))
#: Cells of the fast variant run by the test suite.
SMALL_CELLS = (_monthly(60, 12, 0.5), _monthly(120, 24, 0.5), _annual(12, 1, 0.0, 3.0))


def its_design(cell: Cell, model: str = "level+slope", *, month0: int = 4) -> pd.DataFrame:
    """The ITS design `helpers.models.design.design_columns` builds for a simulated series with
    one event at n - n_post: const, trend, event:level (and event:slope), then sin/cos of the
    month of year (the series starting in month `month0`; 4 = April, the start of a reporting
    year)."""
    if model not in ("level", "level+slope"):
        raise CareTrendsError(f"model must be 'level' or 'level+slope', not {model!r}")
    if model == "level+slope" and cell.n_post < 2:
        raise CareTrendsError("a slope change needs at least 2 post points; use model='level'")
    t = np.arange(cell.n, dtype=float)
    monthly = cell.setting == "monthly" and cell.harmonics
    return design_columns(t, {"event": cell.n - cell.n_post},
                          {"event": tuple(model.split("+"))},
                          cell.harmonics if monthly else 0, 12,
                          season_values=np.mod(t + month0 - 1, 12) + 1 if monthly else None)


def simulate_counts(cell: Cell, n_sim: int, *, level_ratio: float = 1.0,
                    slope_ratio: float = 1.0, seed=DEFAULT_SEED, month0: int = 4):
    """Simulated counts (n_sim, n) and the log population offset (n,) for a cell.

    log E[y_t | u] = log pop_t + log(rate) + trend t + season_t + log(level_ratio) [t >= s]
                     + log(slope_ratio) (t - s) [t >= s] + u_t - sd^2/2,
    u a stationary Gaussian AR(1) with sd `cell.latent_sd` and autocorrelation `cell.rho`,
    y Poisson given u; the population grows 0.5% a year from 60,000."""
    rng = np.random.default_rng(seed)
    n = cell.n
    start = n - cell.n_post
    t = np.arange(n, dtype=float)
    per_year = 12.0 if cell.setting == "monthly" else 1.0
    log_pop = math.log(60_000) + 0.005 * t / per_year
    eta = math.log(cell.mean_count) - math.log(60_000) + cell.trend * t
    if cell.setting == "monthly" and cell.seasonal:
        month = np.mod(t + month0 - 1, 12) + 1
        c1, s1, c2, s2 = (tuple(cell.seasonal) + (0.0,) * 4)[:4]
        a1, a2 = 2 * np.pi * month / 12, 4 * np.pi * month / 12
        eta = eta + c1 * np.cos(a1) + s1 * np.sin(a1) + c2 * np.cos(a2) + s2 * np.sin(a2)
    eta = (eta + math.log(level_ratio) * (t >= start)
           + math.log(slope_ratio) * np.where(t >= start, t - start, 0.0))
    sd = cell.latent_sd
    u = latent_ar1(rng.standard_normal((n_sim, n)), sd, cell.rho)
    lam = np.exp(eta + log_pop + u - sd ** 2 / 2)
    return rng.poisson(lam).astype(float), log_pop


def mc_se(rate, n) -> float:
    """Monte Carlo standard error of a proportion estimated from n simulations."""
    rate = float(rate)
    return math.sqrt(max(rate * (1 - rate), 0.0) / n) if n else float("nan")


def _fit(method, X, Y, log_offset, effect_idx, alpha, seed, n_boot, n_bias):
    log_link = method in inference.LOG_LINK_METHODS
    return inference.batch_inference(method, X, Y, log_offset if log_link else None,
                                     effect_idx=effect_idx, alpha=alpha, seed=seed,
                                     n_boot=n_boot, n_bias=n_bias)


def _cell_counts(cell, model, methods, n_sim, *, alpha, seed, tag, n_boot, n_bias,
                 level_ratio, slope_ratio):
    """Simulate one cell x model (null and effect series) and fit each method: a list of dicts
    with the raw counts (rejections, coverings) per method x effect."""
    null_y, log_pop = simulate_counts(cell, n_sim, seed=child_seed(seed, cell.key(), tag, "null"))
    slope = slope_ratio[cell.setting] if model == "level+slope" else 1.0
    eff_y, _ = simulate_counts(cell, n_sim, level_ratio=level_ratio, slope_ratio=slope,
                               seed=child_seed(seed, cell.key(), model, tag, "effect"))
    X = its_design(cell, model)
    names = [c for c in X.columns if c.startswith("event:")]
    idx = [list(X.columns).index(c) for c in names]
    truth_log = {"event:level": math.log(level_ratio), "event:slope": math.log(slope)}
    out = []
    for method in methods:
        t0, c0 = time.perf_counter(), time.process_time()
        fit_seed = child_seed(seed, cell.key(), model, method, tag)
        null = _fit(method, X.to_numpy(), null_y, log_pop, idx, alpha, fit_seed, n_boot, n_bias)
        log_link = method in inference.LOG_LINK_METHODS
        eff = (_fit(method, X.to_numpy(), eff_y, log_pop, idx, alpha, fit_seed + 1, n_boot,
                    n_bias) if log_link else null)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        n_series = len(null_y) + (len(eff_y) if log_link else 0)
        for j, name in enumerate(names):
            p = null["p_value"][:, j]
            ok = np.isfinite(p)
            truth = truth_log[name] if log_link else 0.0
            low, high = eff["low"][:, j], eff["high"][:, j]
            ok_cov = np.isfinite(low) & np.isfinite(high)
            effect = name.split(":")[1]
            out.append({"method": method, "model": model, "effect": effect,
                        "rejected": int((p[ok] < alpha).sum()), "n_sim": int(ok.sum()),
                        "covered": int(((low <= truth) & (truth <= high))[ok_cov].sum()),
                        "n_cov": int(ok_cov.sum()),
                        "n_failed": int((~ok).sum() + (~ok_cov).sum()),
                        "coverage_truth": (f"{effect} ratio {math.exp(truth):g}" if log_link
                                           else "null (difference 0)"),
                        "seconds": seconds, "cpu_seconds": cpu, "n_series": n_series})
    return out


def _row(cell, counts):
    fpr = counts["rejected"] / counts["n_sim"] if counts["n_sim"] else float("nan")
    cov = counts["covered"] / counts["n_cov"] if counts["n_cov"] else float("nan")
    return {"method": counts["method"], "setting": cell.setting, "model": counts["model"],
            "effect": counts["effect"], "n": cell.n, "n_post": cell.n_post, "rho": cell.rho,
            "sigma": round(cell.latent_sd, 4), "dispersion": round(cell.implied_dispersion, 2),
            "n_sim": counts["n_sim"], "false_positive_rate": fpr,
            "fpr_mc_se": mc_se(fpr, counts["n_sim"]), "coverage_95": cov,
            "coverage_mc_se": mc_se(cov, counts["n_cov"]),
            "coverage_truth": counts["coverage_truth"], "n_failed": counts["n_failed"],
            "seconds": round(counts["seconds"], 2), "refined": counts.get("refined", False)}


def calibration_table(*, cells: Iterable[Cell] | None = None,
                      methods: dict[str, Sequence[str]] | Sequence[str] | None = None,
                      n_sim: int = 2000, alpha: float = 0.05, seed=DEFAULT_SEED,
                      n_boot: int = CAL_N_BOOT, n_bias: int = CAL_N_BIAS,
                      level_ratio: float = LEVEL_RATIO, slope_ratio: dict | None = None,
                      models: Sequence[str] | str = ("level", "level+slope"), refine: int = 0,
                      tolerance: float = 0.02, z: float = 1.96,
                      progress=None, bar: bool = False) -> pd.DataFrame:
    """The calibration table: one row per method x cell x declared model x effect.

    cells: default MONTHLY_CELLS + ANNUAL_CELLS. models: the declared impact models fitted
    (those a cell allows), or "declared" for each cell's own (level+slope with 2+ points after
    the event, else level). methods: a list for every setting, or
    {setting: list} (default MONTHLY_METHODS / ANNUAL_METHODS). n_sim series with no effect give
    the false-positive rate, n_sim further series with a level change `level_ratio` (and, for
    the level+slope model, a slope change `slope_ratio[setting]`) the coverage. `progress`: a
    callable receiving one line of text per cell (e.g. print); `bar`: a progress bar with an
    ETA on stderr, cell by cell (a full-size table takes about 20 minutes on 2 cores).

    refine: a two-stage Monte Carlo. With refine = k > 0, every cell x model x method whose
    rows are "undetermined" by the `method_status` rule (tolerance, z), for a method with no row
    already "not calibrated", is simulated again with k x n_sim fresh series and the counts are
    pooled (column `refined`), so that a few rows straddling the band by chance among dozens do
    not leave a method undetermined (nor pass it: the pooled interval must lie inside).

    Columns: method, setting, model, effect, n, n_post, rho, sigma, dispersion, n_sim,
    false_positive_rate, fpr_mc_se, coverage_95, coverage_mc_se, coverage_truth, n_failed,
    seconds (fitting time of the method in that cell), refined. `table.attrs` holds the settings,
    the whole call's wall time (`seconds`) and `timings`: per "setting/method", wall and CPU
    seconds, simulated series fitted and seconds per series (`time_ar1_bootstrap` times the
    monthly default on its own)."""
    cells = list(cells) if cells is not None else list(MONTHLY_CELLS + ANNUAL_CELLS)
    if isinstance(methods, dict):
        by_setting = {k: tuple(v) for k, v in methods.items()}
    elif methods is not None:
        by_setting = {"monthly": tuple(methods), "annual": tuple(methods)}
    else:
        by_setting = {"monthly": MONTHLY_METHODS, "annual": ANNUAL_METHODS}
    unknown = sorted({m for v in by_setting.values() for m in v} - set(inference.BATCH_METHODS))
    if unknown:
        raise CareTrendsError(f"unknown method(s) {unknown}; choose from "
                              f"{', '.join(inference.BATCH_METHODS)}")
    slope_ratio = dict(SLOPE_RATIO if slope_ratio is None else slope_ratio)
    if n_sim < 20:
        raise CareTrendsError(f"n_sim={n_sim} is too few simulations to estimate a rate")
    kw = dict(alpha=alpha, seed=seed, n_boot=n_boot, n_bias=n_bias, level_ratio=level_ratio,
              slope_ratio=slope_ratio)
    counts = []     # (cell, counts dict)
    start = time.perf_counter()
    cells_bar = tqdm(cells, desc="calibration cells", unit="cell", file=sys.stderr,
                     disable=not bar, dynamic_ncols=True)
    for cell in cells_bar:
        cells_bar.set_postfix_str(cell.key())
        start_cell = time.perf_counter()
        cell_models = cell.models()[-1:] if models == "declared" else cell.models()
        for model in (m for m in cell_models if models == "declared" or m in models):
            for c in _cell_counts(cell, model, by_setting.get(cell.setting, ()), n_sim,
                                  tag="main", **kw):
                counts.append((cell, c))
        if progress is not None:
            progress(f"{cell.key()}: {time.perf_counter() - start_cell:.1f}s")
    table = pd.DataFrame([_row(cell, c) for cell, c in counts])
    if refine and len(table):
        row_status = _row_status(table, tolerance, z, alpha)
        failed = set(map(tuple, table.loc[row_status == "not calibrated",
                                          ["setting", "method"]].to_numpy()))
        todo = {}
        for i in np.flatnonzero(row_status.to_numpy() == "undetermined"):
            cell, c = counts[i]
            if (cell.setting, c["method"]) not in failed:
                todo.setdefault((cell, c["model"]), set()).add(c["method"])
        for (cell, model), meths in tqdm(todo.items(), desc="re-simulating undetermined rows",
                                         unit="cell", file=sys.stderr, disable=not bar,
                                         dynamic_ncols=True):
            t0 = time.perf_counter()
            extra = _cell_counts(cell, model, sorted(meths), refine * n_sim, tag="refine", **kw)
            for e in extra:
                for cell_i, c in counts:
                    if (cell_i is cell and c["model"] == model and c["method"] == e["method"]
                            and c["effect"] == e["effect"]):
                        for k in ("rejected", "n_sim", "covered", "n_cov", "n_failed",
                                  "seconds", "cpu_seconds", "n_series"):
                            c[k] += e[k]
                        c["refined"] = True
            if progress is not None:
                progress(f"refined {cell.key()} {model} {sorted(meths)}: "
                         f"{time.perf_counter() - t0:.1f}s")
        table = pd.DataFrame([_row(cell, c) for cell, c in counts])
    table.attrs.update(n_sim=n_sim, alpha=alpha, seed=seed, n_boot=n_boot, n_bias=n_bias,
                       level_ratio=level_ratio, slope_ratio=slope_ratio, refine=refine,
                       seconds=time.perf_counter() - start, timings=_timings(counts))
    return table


def _timings(counts) -> dict:
    """{"setting/method": seconds, cpu_seconds, n_series (simulated series fitted, null and
    effect), seconds_per_series} summed over the cells and declared models."""
    out, seen = {}, set()
    for cell, c in counts:
        key = (cell.key(), c["model"], c["method"])
        if key in seen:          # one entry per effect; the time is the method's on the model
            continue
        seen.add(key)
        t = out.setdefault(f"{cell.setting}/{c['method']}",
                           {"seconds": 0.0, "cpu_seconds": 0.0, "n_series": 0})
        for k in ("seconds", "cpu_seconds", "n_series"):
            t[k] += c[k]
    for t in out.values():
        t["seconds_per_series"] = t["seconds"] / t["n_series"] if t["n_series"] else math.nan
    return out


#: Where `bench/calibration_full.py` writes the full-size table (every method and cell, 2,000+
#: series each) that CALIBRATION_RESULTS.md reports and the notebooks quote.
FULL_TABLE = "bench/calibration_table.csv"


def load_full_table() -> pd.DataFrame:
    """The committed full-size calibration table (`FULL_TABLE`, made by
    `python bench/calibration_full.py`)."""
    path = paths.project_root() / FULL_TABLE
    if not path.exists():
        raise CareTrendsError(f"{FULL_TABLE} is missing; run `python bench/calibration_full.py` "
                              "to make it (about 40 minutes)")
    return pd.read_csv(path)


def analysis_cells(pre, *, annual_post: int = 1, monthly_post: int = 24,
                   rho_monthly: float = 0.5) -> tuple[Cell, Cell]:
    """The two cells an analysis' own calibration simulates, from its fitted pre-period model
    (`helpers.checks.simulation.fit_pre_period`): its annual series with `annual_post` years
    after the event, and the monthly series a council's own data would give with
    `monthly_post` months after it (`Cell.from_pre_period`)."""
    return (Cell.from_pre_period(pre, setting="annual", n_post=annual_post),
            Cell.from_pre_period(pre, setting="monthly", n_post=monthly_post,
                                 rho_monthly=rho_monthly))


def small_calibration_table(seed=DEFAULT_SEED, n_sim: int = 400,
                            methods: Sequence[str] = ("ar1_bootstrap", "quasipoisson"),
                            n_boot: int = 199, n_bias: int = 49) -> pd.DataFrame:
    """The fast variant for the test suite and quick looks: SMALL_CELLS (two monthly, one
    annual), two methods, 400 simulations, B = 199 (nominal size 4.5% at p < 0.05)."""
    return calibration_table(cells=SMALL_CELLS, methods=methods, n_sim=n_sim, seed=seed,
                             n_boot=n_boot, n_bias=n_bias)


def time_ar1_bootstrap(*, n: int = 180, n_post: int = 24, rho: float = 0.5, n_fits: int = 5,
                       n_sim: int = 500, repeats: int = 3, seed=DEFAULT_SEED) -> dict:
    """How long the monthly default ("ar1_bootstrap") takes (for `care-trends bench`), on
    series of a monthly cell (n months, n_post after the event, latent autocorrelation rho) with
    the level+slope model:

    per fit: one real-size fit, `inference.monthly_inference` at B = `inference.N_BOOT` with a
        bias-correction round of `inference.N_BIAS` (the mean over `n_fits` series);
    per series: inside the calibration Monte Carlo, per simulated series at B = CAL_N_BOOT and
        CAL_N_BIAS (a batch of `n_sim` series). A `calibration_table` cell fits 2 x n_sim series
        per declared model, so `projected_seconds_2000_sims` is 4,000 series.

    Each figure is the median over `repeats`, in wall and CPU seconds (CPU is the steadier
    figure on a machine shared with other work)."""
    cell = Cell("monthly", n, n_post, rho)
    X = its_design(cell, "level+slope")
    idx = [list(X.columns).index(c) for c in X.columns if c.startswith("event:")]
    Y, log_pop = simulate_counts(cell, max(n_fits, n_sim),
                                 seed=child_seed(seed, cell.key(), "bench"))

    def timed(fn, count):
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - t0) / count)
            cpu.append((time.process_time() - c0) / count)
        return float(np.median(wall)), float(np.median(cpu)), wall

    def fits():
        for i in range(n_fits):
            inference.monthly_inference(Y[i], X, log_pop, seed=seed)

    fit_wall, fit_cpu, fit_all = timed(fits, n_fits)
    mc_wall, mc_cpu, mc_all = timed(
        lambda: _fit("ar1_bootstrap", X.to_numpy(), Y[:n_sim], log_pop, idx, 0.05, seed,
                     CAL_N_BOOT, CAL_N_BIAS), n_sim)
    return {"what": "monthly default inference (ar1_bootstrap), level+slope model",
            "n": n, "n_post": n_post, "rho": rho, "repeats": repeats,
            "n_boot_fit": inference.N_BOOT, "n_bias_fit": inference.N_BIAS, "n_fits": n_fits,
            "seconds_per_fit": fit_wall, "cpu_seconds_per_fit": fit_cpu,
            "all_seconds_per_fit": fit_all,
            "n_boot_calibration": CAL_N_BOOT, "n_bias_calibration": CAL_N_BIAS, "n_sim": n_sim,
            "seconds_per_series": mc_wall, "cpu_seconds_per_series": mc_cpu,
            "all_seconds_per_series": mc_all,
            "projected_seconds_2000_sims": 4000 * mc_wall}


# --------------------------------------------------------------------------------------------
# Decisions that allow for the Monte Carlo error
# --------------------------------------------------------------------------------------------
def _interval(rate, n, z):
    """Wilson score interval of a proportion (sound also near 0 and 1, unlike est -+ z SE)."""
    if not np.isfinite(rate) or not n:
        return float("nan"), float("nan")
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _status(rate, n, target, tolerance, z):
    lo, hi = _interval(rate, n, z)
    if not np.isfinite(lo):
        return "undetermined"
    if lo >= target - tolerance and hi <= target + tolerance:
        return "calibrated"
    if hi < target - tolerance or lo > target + tolerance:
        return "not calibrated"
    return "undetermined"


def _row_status(table: pd.DataFrame, tolerance: float, z: float, alpha: float = 0.05,
                coverage: float = 0.95) -> pd.Series:
    """Per row: "calibrated" when the Monte Carlo intervals of both its false-positive rate and
    its coverage lie inside target -+ tolerance, "not calibrated" when either lies wholly
    outside, else "undetermined"."""
    out = []
    for r in table.itertuples():
        a = _status(r.false_positive_rate, r.n_sim, alpha, tolerance, z)
        b = _status(r.coverage_95, r.n_sim, coverage, tolerance, z)
        out.append("not calibrated" if "not calibrated" in (a, b) else
                   "calibrated" if a == b == "calibrated" else "undetermined")
    return pd.Series(out, index=table.index)


def method_status(table: pd.DataFrame, tolerance: float = 0.02, *, z: float = 1.96,
                  alpha: float = 0.05, coverage: float = 0.95) -> pd.DataFrame:
    """One row per setting x method: the status ("calibrated", "not calibrated",
    "undetermined"), the range of false-positive rates and coverages over its cells, and the
    number of rows. A row is calibrated when the Monte Carlo interval of its rate (Wilson score
    interval at z, i.e. about est -+ z MC SE) lies inside target -+ tolerance, not calibrated
    when it lies wholly outside; a method is calibrated in a setting when all its rows are, not
    calibrated when any row is not, else undetermined (run more simulations: `refine`).
    Coverage measured at the null (Gaussian-scale methods) counts like any other coverage."""
    status = _row_status(table, tolerance, z, alpha, coverage)
    rows = []
    for (setting, method), sel in table.groupby(["setting", "method"], sort=False):
        row_status = status.loc[sel.index]
        state = ("not calibrated" if (row_status == "not calibrated").any() else
                 "calibrated" if (row_status == "calibrated").all() else "undetermined")
        rows.append({"setting": setting, "method": method, "status": state,
                     "fpr_min": sel["false_positive_rate"].min(),
                     "fpr_max": sel["false_positive_rate"].max(),
                     "coverage_min": sel["coverage_95"].min(),
                     "coverage_max": sel["coverage_95"].max(),
                     "n_rows": len(sel),
                     "n_rows_outside": int((row_status == "not calibrated").sum()),
                     "n_rows_undetermined": int((row_status == "undetermined").sum()),
                     "min_n_sim": int(sel["n_sim"].min())})
    return pd.DataFrame(rows)


def recommend_defaults(table: pd.DataFrame, tolerance: float = 0.02, *, z: float = 1.96,
              preference: dict | None = None) -> dict[str, str]:
    """{setting: the first calibrated method in the preference order, or "none calibrated"}
    (see `method_status`: only a method within tolerance after allowing for the Monte Carlo
    error in every cell counts)."""
    status = method_status(table, tolerance, z=z)
    preference = preference or PREFERENCE
    out = {}
    for setting, sel in status.groupby("setting", sort=False):
        ok = set(sel.loc[sel["status"] == "calibrated", "method"])
        order = list(preference.get(setting, ())) + sorted(ok)
        out[setting] = next((m for m in order if m in ok), "none calibrated")
    return out


# --------------------------------------------------------------------------------------------
# Controlled ITS degrees of freedom
# --------------------------------------------------------------------------------------------
def _nb_counts(rng, mean, dispersion, shape):
    """Quasi-Poisson-like counts with Var = dispersion x mean (gamma-Poisson)."""
    if dispersion <= 1:
        return rng.poisson(np.broadcast_to(mean, shape)).astype(float)
    theta = mean / (dispersion - 1.0)
    return rng.poisson(rng.gamma(theta, mean / theta, size=shape)).astype(float)


def controlled_its_coverage(*, n: int = 12, event_times: Sequence[int] = (6, 8, 11),
                            event_effects: Sequence[str] = ("level+slope", "level+slope",
                                                            "level"),
                            treated_mean: float = 250.0, control_mean: float = 2500.0,
                            treated_dispersion: float = 3.0, control_dispersion: float = 3.0,
                            n_sim: int = 4000, seed=DEFAULT_SEED) -> pd.DataFrame:
    """Coverage of 95% intervals for the treated-minus-comparator effects of the multiple-group
    controlled ITS (each group its own terms and quasi-Poisson dispersion, as
    `helpers.comparative`), with no true effect, under three t references:
    pooled 2n - p (what the code used), treated n - p/2 and Satterthwaite
    (`inference.controlled_its_df`). Defaults mirror Stoke-on-Trent: 12 reporting years,
    events first in force in 2020, 2022 and 2025 (level+slope, level+slope, level), so each
    group has 7 terms. Returns one row per df rule x effect: df, coverage, MC SE, mean interval
    width relative to the treated-df interval."""
    t = np.arange(n, dtype=float)
    cols = [np.ones(n), t]
    names = []
    for k, (start, eff) in enumerate(zip(event_times, event_effects)):
        cols.append((t >= start).astype(float))
        names.append(f"e{k}:level")
        if eff == "level+slope":
            cols.append(np.where(t >= start, t - start, 0.0))
            names.append(f"e{k}:slope")
    X = np.column_stack(cols)
    q = X.shape[1]               # terms per group
    p = 2 * q
    rng = np.random.default_rng(seed)
    mean_t = treated_mean * np.exp(0.03 * t)
    mean_c = control_mean * np.exp(0.02 * t)
    Yt = _nb_counts(rng, mean_t, treated_dispersion, (n_sim, n))
    Yc = _nb_counts(rng, mean_c, control_dispersion, (n_sim, n))
    fits = []
    for Y in (Yt, Yc):
        beta, cov, mu, ok = inference.irls_poisson(X, Y)
        phi = ((Y - mu) ** 2 / mu).sum(1) / (n - q)
        fits.append((beta, cov, phi))
    (bt, ct, pt), (bc, cc, pc) = fits
    rows = []
    for j, name in enumerate(names, start=2):
        est = bt[:, j] - bc[:, j]
        var_t = pt * ct[:, j, j]
        var_c = pc * cc[:, j, j]
        se = np.sqrt(var_t + var_c)
        satt = np.array([inference.controlled_its_df(n, p, var_treated=a, var_control=b)
                         for a, b in zip(var_t, var_c)])
        ref_q = stats.t.ppf(0.975, n - q)
        for rule, dfs in (("pooled 2n - p", np.full(n_sim, 2 * n - p)),
                          ("treated n - p/2", np.full(n_sim, n - q)),
                          ("Satterthwaite", satt)):
            half = stats.t.ppf(0.975, dfs) * se
            cover = np.abs(est) <= half
            rows.append({"rule": rule, "effect": name, "df": float(np.mean(dfs)),
                         "coverage_95": float(cover.mean()),
                         "coverage_mc_se": mc_se(cover.mean(), n_sim),
                         "width_vs_treated_df": float(np.mean(stats.t.ppf(0.975, dfs)) / ref_q),
                         "n_sim": n_sim})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Power of the declared model on a calibration cell
# --------------------------------------------------------------------------------------------
def declared_power(cell: Cell, *, model: str | None = None, method: str = "quasipoisson",
                   reductions: Sequence[float] = DEFAULT_REDUCTIONS, n_sim: int = 2000,
                   alpha: float = 0.05, size_adjusted: bool = True, seed=DEFAULT_SEED,
                   n_boot: int = CAL_N_BOOT, n_bias: int = CAL_N_BIAS) -> pd.DataFrame:
    """Power to detect a level change (a fall of `reduction` from the event on) with the
    DECLARED impact model: level+slope when the cell has 2+ post points (the notebooks' default
    declaration), level only with one; `model` overrides. The level coefficient is tested at
    `alpha`. Common random numbers across reductions (same latent noise and count stream).

    size_adjusted: if the method rejects too often with no effect, the p-value threshold is
    lowered to the alpha quantile of the null p-values (power not flattered by false
    positives). Columns: reduction, power, power_mc_se, model, method, n_post, size,
    threshold, n_sim."""
    model = model or ("level+slope" if cell.n_post >= 2 else "level")
    reductions = tuple(float(r) for r in reductions)
    if 0.0 not in reductions:
        reductions = (0.0,) + reductions
    X = its_design(cell, model)
    j = list(X.columns).index("event:level")
    pvals = []
    for r in reductions:
        # Same seed for every reduction: the effect only rescales the means.
        Y, log_pop = simulate_counts(cell, n_sim, level_ratio=1.0 - r,
                                     seed=child_seed(seed, cell.key(), "power"))
        fit = _fit(method, X.to_numpy(), Y, log_pop, [j], alpha,
                   child_seed(seed, cell.key(), "power-fit"), n_boot, n_bias)
        pvals.append(fit["p_value"][:, 0])
    pvals = np.array(pvals)
    size = float(np.nanmean(pvals[0] < alpha))
    threshold = alpha
    if size_adjusted and size > alpha:
        threshold = float(np.nanquantile(pvals[0], alpha))
    power = np.nanmean(pvals < threshold, axis=1)
    return pd.DataFrame({"reduction": reductions, "power": power,
                         "power_mc_se": [mc_se(p, n_sim) for p in power], "model": model,
                         "method": method, "n_post": cell.n_post, "size": size,
                         "threshold": threshold, "n_sim": n_sim})


def cell_table(cells: Iterable[Cell]) -> pd.DataFrame:
    """The cells as a table (for the results note)."""
    return pd.DataFrame([{**asdict(c), "latent_sd": c.latent_sd,
                          "implied_dispersion": c.implied_dispersion} for c in cells])

