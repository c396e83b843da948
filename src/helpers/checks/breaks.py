"""Data-driven structural breaks with a calibrated false-break rate.

`detect_breaks` looks for the dates at which a series changes regime, with no date given in
advance: least-squares segmentation (Bai & Perron 1998, Econometrica 66:47-78; 2003, J Applied
Econometrics 18:1-22), the global optimum for every number of breaks found by dynamic
programming, each regime with its own level and slope ("trend", the right null for trending
series) or its own mean ("mean").

How many breaks (`criterion`):
* "supf" (default): sequential tests of k+1 against k breaks, F = ((SSR_k - SSR_k+1) / q) /
  (SSR_k+1 / df), at level `alpha`. The critical value of the first test (no break against
  one) is simulated for this sample size, model and trimming under independent Gaussian noise,
  where the statistic is exactly pivotal (it does not depend on the trend or the noise scale);
  later tests use a parametric bootstrap of the fitted k-break model (Gaussian errors with the
  fitted residual variance), i.e. the null that the k breaks found are all there is.
  Measured on break-free log-linear series of 12-16 annual points with quasi-Poisson noise like
  the real LA series (dispersion 2-6 around 100-700 a year), it finds a break in about 5% of
  them (CALIBRATION_RESULTS.md gives the rates and their Monte Carlo errors).
* "bic": the Bayesian information criterion over 0..max_breaks (Yao 1988; Bai & Perron 2003).
  Kept for comparison: on the same series it finds a break in 35-45% of them, because in 12-16
  points a free break date and two free coefficients per regime buy more fit than log(n) costs.

Pass the log of a computed rate (count / population), not a published rounded rate, and not
counts with a strong trend on the original scale (a curve is not a break).

Everything is vectorised over series (`break_decisions`), so the Monte Carlo that measures the
false-break rate runs thousands of series in a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from helpers.checks.base import CheckResult
from helpers.checks.common import child_seed, latent_ar1
from helpers.core.errors import CareTrendsError
from helpers.core.vocab import DEFAULT_SEED

__all__ = ["BreakResult", "detect_breaks", "break_decisions", "supf_critical_value",
           "segmentations", "simulate_log_rates", "break_calibration", "break_power",
           "CRITERIA", "BREAK_MODELS", "breaks_vs_events"]

CRITERIA = ("supf", "bic")
BREAK_MODELS = ("trend", "mean")
#: Simulations behind the simulated critical values (seeded; cached per sample size).
N_SIM_CRITICAL = 2000


# --------------------------------------------------------------------------------------------
# Segmentation: exact least squares by dynamic programming, many series at once
# --------------------------------------------------------------------------------------------
def _segment_costs(Y: np.ndarray, model: str, min_size: int) -> np.ndarray:
    """SSR of every segment [a, b) of every series: (S, n+1, n+1), inf where b - a < min_size.
    Closed forms from cumulative sums (centred time keeps them well conditioned)."""
    S, n = Y.shape
    t = np.arange(n, dtype=float) - (n - 1) / 2.0
    zero = np.zeros((S, 1))

    def cum(v):
        v = np.broadcast_to(v, (S, n))
        return np.concatenate([zero, np.cumsum(v, axis=1)], axis=1)

    c1, ct, ctt = cum(np.ones(n)), cum(t), cum(t * t)
    cy, cyy, cty = cum(Y), cum(Y * Y), cum(t * Y)

    def seg(c):
        return c[:, None, :] - c[:, :, None]          # [s, a, b] = sum over [a, b)

    m = seg(c1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sy = seg(cy)
        syy = seg(cyy) - sy * sy / m
        if model == "mean":
            cost = syy
        else:
            st = seg(ct)
            stt = seg(ctt) - st * st / m
            sty = seg(cty) - st * sy / m
            cost = syy - np.where(stt > 0, sty * sty / stt, 0.0)
    cost = np.maximum(cost, 0.0)
    a = np.arange(n + 1)
    valid = (a[None, :] - a[:, None]) >= min_size
    return np.where(valid[None], cost, np.inf)


def segmentations(Y, max_breaks: int, model: str = "trend", min_size: int = 3):
    """Optimal segmentations of each series for 0..max_breaks breaks.

    Y (S, n) or (n,). Returns (ssr (S, K+1), breaks: list over k of (S, k) arrays of break
    positions, each the index of the first point of a new regime). K is reduced when
    (K + 1) x min_size > n."""
    Y = np.atleast_2d(np.asarray(Y, float))
    S, n = Y.shape
    K = int(min(max_breaks, n // min_size - 1))
    cost = _segment_costs(Y, model, min_size)
    F = [cost[:, 0, :]]                          # best SSR of [0, b) with 0 breaks
    arg = [None]
    for _ in range(1, K + 1):
        total = F[-1][:, :, None] + cost         # [s, a, b]: best of [0, a) + segment [a, b)
        arg.append(np.argmin(total, axis=1))
        F.append(np.min(total, axis=1))
    ssr = np.column_stack([f[:, n] for f in F])
    breaks = [np.zeros((S, 0), dtype=int)]
    rows = np.arange(S)
    for k in range(1, K + 1):
        pos = np.empty((S, k), dtype=int)
        end = np.full(S, n)
        for j in range(k, 0, -1):
            start = arg[j][rows, end]
            pos[:, j - 1] = start
            end = start
        breaks.append(pos)
    return ssr, breaks


def _n_coef(model: str) -> int:
    return 2 if model == "trend" else 1


def _f_stats(ssr: np.ndarray, n: int, q: int) -> np.ndarray:
    """F(k+1 | k) for k = 0..K-1 from the optimal SSRs: (S, K)."""
    K = ssr.shape[1] - 1
    out = np.full((ssr.shape[0], K), np.nan)
    for k in range(K):
        dof = n - (k + 2) * q - (k + 1)
        if dof <= 0:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, k] = ((ssr[:, k] - ssr[:, k + 1]) / q) / (ssr[:, k + 1] / dof)
    return out


def _bic(ssr: np.ndarray, n: int, q: int) -> np.ndarray:
    k = np.arange(ssr.shape[1])
    n_params = (k + 1) * q + k + 1    # regime coefficients, break dates, error variance
    return n * np.log(np.maximum(ssr, 1e-300) / n) + n_params * math.log(n)


@lru_cache(maxsize=64)
def _null_f_quantile(n: int, model: str, min_size: int, alpha: float, n_sim: int,
                     seed: int) -> float:
    rng = np.random.default_rng(seed)
    ssr, _ = segmentations(rng.standard_normal((n_sim, n)), 1, model, min_size)
    f = _f_stats(ssr, n, _n_coef(model))[:, 0]
    return float(np.quantile(f[np.isfinite(f)], 1 - alpha))


def supf_critical_value(n: int, model: str = "trend", min_size: int | None = None,
                        alpha: float = 0.05, n_sim: int = N_SIM_CRITICAL,
                        seed=DEFAULT_SEED) -> float:
    """Critical value of F(1 | 0) (no break against one, breaks anywhere with regimes of at
    least min_size points) at level alpha, simulated under independent Gaussian noise, where the
    statistic is pivotal. Cached per arguments."""
    min_size = _default_min_size(n, model) if min_size is None else int(min_size)
    return _null_f_quantile(int(n), model, min_size, float(alpha), int(n_sim), int(seed))


def _default_min_size(n: int, model: str) -> int:
    floor = 3 if model == "trend" else 2
    return int(max(floor, math.ceil(0.15 * n)))


def _regime_fit(y: np.ndarray, positions: Sequence[int], model: str) -> np.ndarray:
    """Least-squares fit of each regime (own level and slope, or own mean)."""
    out = np.empty_like(y, dtype=float)
    bounds = [0, *positions, len(y)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        t = np.arange(a, b, dtype=float)
        if model == "trend" and b - a >= 2:
            out[a:b] = np.polyval(np.polyfit(t, y[a:b], 1), t)
        else:
            out[a:b] = y[a:b].mean()
    return out


def _bootstrap_f_quantile(y, positions, k, n, model, min_size, alpha, n_sim, seed) -> float:
    """Critical value of F(k+1 | k) from a parametric bootstrap of the fitted k-break model."""
    q = _n_coef(model)
    fit = _regime_fit(y, positions, model)
    dof = n - (k + 1) * q - k
    sd = math.sqrt(max(float(((y - fit) ** 2).sum()) / max(dof, 1), 1e-300))
    rng = np.random.default_rng(seed)
    sims = fit[None, :] + sd * rng.standard_normal((n_sim, n))
    ssr, _ = segmentations(sims, k + 1, model, min_size)
    if ssr.shape[1] < k + 2:
        return float("nan")
    f = _f_stats(ssr, n, q)[:, k]
    f = f[np.isfinite(f)]
    return float(np.quantile(f, 1 - alpha)) if len(f) else float("nan")


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------
@dataclass
class BreakResult(CheckResult):
    labels: list
    positions: list[int]
    n_breaks: int
    criterion: str
    model: str
    table: pd.DataFrame  # per number of breaks: ssr, bic, sup_f_next, critical_next, breaks
    alpha: float = 0.05
    min_size: int = 3
    check = "breaks"

    def to_records(self, **context) -> list[dict]:
        """Breaks are dates, not effects: no results.json records."""
        return []

    def fitted(self, y) -> np.ndarray:
        """Least-squares fit of each regime (for charts)."""
        return _regime_fit(np.asarray(y, dtype=float), self.positions, self.model)


def _values_and_labels(y, labels):
    if isinstance(y, pd.Series):
        labels = list(y.index) if labels is None else list(labels)
        values = y.to_numpy(dtype=float)
    else:
        values = np.asarray(y, dtype=float).ravel()
        labels = list(range(len(values))) if labels is None else list(labels)
    if len(labels) != len(values):
        raise CareTrendsError(f"{len(labels)} labels for {len(values)} values; give one label "
                              "per value")
    if not np.isfinite(values).all():
        raise CareTrendsError("the series has missing values; drop or fill them before "
                              "detect_breaks")
    return values, labels


def _check(criterion, model, n, min_size):
    if criterion not in CRITERIA:
        raise CareTrendsError(f"criterion {criterion!r} unknown; use 'supf' or 'bic'")
    if model not in BREAK_MODELS:
        raise CareTrendsError(f"break model {model!r} unknown; use 'trend' or 'mean'")
    min_size = _default_min_size(n, model) if min_size is None else int(min_size)
    floor = 3 if model == "trend" else 2
    if min_size < floor:
        raise CareTrendsError(f"min_size={min_size} is too small for the {model!r} model; use at "
                              f"least {floor}")
    if n < 2 * min_size:
        raise CareTrendsError(f"{n} points are too few to look for breaks with regimes of at least "
                              f"{min_size} points; use a longer series or a smaller min_size")
    return min_size


def detect_breaks(y, max_breaks: int = 3, *, labels: Sequence | None = None,
                  model: str = "trend", criterion: str = "supf", min_size: int | None = None,
                  alpha: float = 0.05, n_sim: int = N_SIM_CRITICAL, seed=DEFAULT_SEED,
                  return_result: bool = False):
    """Labels at which new regimes start, with no date given in advance.

    y: a Series (its index gives the labels), array or list (pass log rates); labels overrides.
    model: "trend" (each regime its own level and slope; default) or "mean". criterion: "supf"
    (default; sequential tests at level `alpha`, see the module docstring) or "bic". min_size:
    the shortest regime (default 15% trimming, at least 3 points for "trend"). n_sim / seed:
    the simulations behind the critical values. Returns the list of labels of the first point
    of each new regime (a BreakResult if `return_result`)."""
    values, labels = _values_and_labels(y, labels)
    n = len(values)
    min_size = _check(criterion, model, n, min_size)
    q = _n_coef(model)
    max_breaks = int(max(0, min(max_breaks, n // min_size - 1)))
    ssr, breaks = segmentations(values, max_breaks, model, min_size)
    ssr = ssr[0]
    fstat = _f_stats(ssr[None], n, q)[0]
    bic = _bic(ssr[None], n, q)[0]
    K = len(ssr) - 1
    crit = np.full(K, np.nan)
    if criterion == "bic":
        chosen = int(np.argmin(bic))
    else:
        chosen = 0
        for k in range(K):
            if not np.isfinite(fstat[k]):
                break
            if k == 0:
                crit[k] = supf_critical_value(n, model, min_size, alpha, n_sim, seed)
            else:
                crit[k] = _bootstrap_f_quantile(values, list(breaks[k][0]), k, n, model,
                                                min_size, alpha, n_sim, child_seed(seed, k))
            if fstat[k] > crit[k]:
                chosen = k + 1
            else:
                break
    rows = [{"n_breaks": k, "ssr": float(ssr[k]), "bic": float(bic[k]),
             "sup_f_next": float(fstat[k]) if k < K else np.nan,
             "critical_next": float(crit[k]) if k < K else np.nan,
             "breaks": [labels[b] for b in breaks[k][0]]} for k in range(K + 1)]
    positions = [int(b) for b in breaks[chosen][0]]
    result = BreakResult([labels[b] for b in positions], positions, chosen, criterion, model,
                         pd.DataFrame(rows), alpha, min_size)
    return result if return_result else result.labels


def break_decisions(Y, *, model: str = "trend", criterion: str = "supf",
                    min_size: int | None = None, max_breaks: int = 3, alpha: float = 0.05,
                    n_sim: int = N_SIM_CRITICAL, seed=DEFAULT_SEED) -> pd.DataFrame:
    """For many series (S, n) at once: whether each has at least one break, where the first
    (single-break) split falls, and (BIC) how many breaks. This is what `detect_breaks` decides
    about the first break; the sup-F count of further breaks needs one bootstrap per series and
    is not computed here. Columns: any_break, first_break (position of the one-break split),
    n_breaks (BIC only; NaN for supf)."""
    Y = np.atleast_2d(np.asarray(Y, float))
    S, n = Y.shape
    min_size = _check(criterion, model, n, min_size)
    q = _n_coef(model)
    K = int(max(1, min(max_breaks, n // min_size - 1)))
    ssr, breaks = segmentations(Y, K, model, min_size)
    if criterion == "bic":
        chosen = np.argmin(_bic(ssr, n, q), axis=1)
        any_break = chosen > 0
        n_breaks = chosen.astype(float)
    else:
        f = _f_stats(ssr, n, q)[:, 0]
        any_break = f > supf_critical_value(n, model, min_size, alpha, n_sim, seed)
        n_breaks = np.full(S, np.nan)
    return pd.DataFrame({"any_break": any_break, "first_break": breaks[1][:, 0],
                         "n_breaks": n_breaks})


def breaks_vs_events(breaks: Sequence, times: Mapping[str, float], tolerance: float = 1) -> pd.DataFrame:
    """Each declared event's nearest data-driven break and whether it lies within `tolerance`
    periods (a break at the event's first in-force time, or a period either side, counts)."""
    rows = []
    for name, when in times.items():
        if len(breaks):
            nearest = min(breaks, key=lambda b: (abs(float(b) - float(when)), float(b)))
            gap = float(nearest) - float(when)
        else:
            nearest, gap = None, float("nan")
        rows.append({"event": name, "first_in_force": when, "nearest_break": nearest,
                     "gap": gap, "coincides": bool(np.isfinite(gap) and abs(gap) <= tolerance)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Calibration of the break search
# --------------------------------------------------------------------------------------------
def simulate_log_rates(n: int, n_sim: int, *, mean_count: float = 300.0, dispersion: float = 3.0,
                       trend: float = 0.04, rho: float = 0.0, shift_at: int | None = None,
                       level_shift: float = 0.0, slope_shift: float = 0.0,
                       seed=DEFAULT_SEED) -> np.ndarray:
    """log(count / population) of n_sim annual series (n_sim, n): a log-linear trend (`trend` a
    year) around `mean_count` a year with quasi-Poisson-like noise of `dispersion` (a latent
    lognormal AR(1) with autocorrelation `rho` and Poisson counts: Var = dispersion x mean at
    mean_count), population 60,000 growing 0.5% a year. With `shift_at`, the log rate moves by
    `level_shift` from that index on and its slope by `slope_shift` a year."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    log_pop = math.log(60_000) + 0.005 * t
    eta = math.log(mean_count) + trend * (t - (n - 1) / 2) - math.log(60_000) + log_pop
    if shift_at is not None:
        post = t >= shift_at
        eta = eta + level_shift * post + slope_shift * np.where(post, t - shift_at, 0.0)
    sd = math.sqrt(math.log1p(max(dispersion - 1.0, 0.0) / mean_count))
    u = latent_ar1(rng.standard_normal((n_sim, n)), sd, rho)
    counts = rng.poisson(np.exp(eta + u - sd ** 2 / 2))
    return np.log(np.maximum(counts, 0.5)) - log_pop


def break_calibration(*, ns: Sequence[int] = (12, 14, 16),
                      mean_counts: Sequence[float] = (100.0, 300.0, 700.0),
                      dispersions: Sequence[float] = (2.0, 6.0), rhos: Sequence[float] = (0.0,),
                      trend: float = 0.04, criteria: Sequence[str] = CRITERIA,
                      model: str = "trend", n_sim: int = 2000, alpha: float = 0.05,
                      seed=DEFAULT_SEED) -> pd.DataFrame:
    """False-break rate of each criterion on break-free log-linear series: the share of series
    in which `detect_breaks` finds at least one break, with its Monte Carlo SE. One row per
    criterion x n x mean count x dispersion x rho."""
    rows = []
    for n in ns:
        for m in mean_counts:
            for phi in dispersions:
                for rho in rhos:
                    Y = simulate_log_rates(n, n_sim, mean_count=m, dispersion=phi, trend=trend,
                                           rho=rho, seed=child_seed(seed, "null", n, m, phi, rho))
                    for crit in criteria:
                        dec = break_decisions(Y, model=model, criterion=crit, alpha=alpha)
                        rate = float(dec["any_break"].mean())
                        rows.append({"criterion": crit, "model": model, "n": n,
                                     "mean_count": m, "dispersion": phi, "rho": rho,
                                     "n_sim": n_sim, "false_break_rate": rate,
                                     "mc_se": math.sqrt(rate * (1 - rate) / n_sim)})
    return pd.DataFrame(rows)


def break_power(*, n: int = 14, shift_at: int | None = None,
                shifts: Sequence[tuple[float, float]] = ((0.2, 0.0), (0.3, 0.0), (0.5, 0.0),
                                                         (0.0, 0.1), (0.0, 0.15)),
                mean_count: float = 300.0, dispersion: float = 3.0, rho: float = 0.0,
                criteria: Sequence[str] = CRITERIA, model: str = "trend", n_sim: int = 2000,
                alpha: float = 0.05, tolerance: int = 1, seed=DEFAULT_SEED) -> pd.DataFrame:
    """How often a genuine shift is found: for each (level shift in log points, slope shift in
    log points a year) at index `shift_at` (default the middle), the share of series with at
    least one break (`detected`) and with the one-break split within `tolerance` points of the
    true date (`located`)."""
    shift_at = n // 2 if shift_at is None else int(shift_at)
    rows = []
    for level, slope in shifts:
        Y = simulate_log_rates(n, n_sim, mean_count=mean_count, dispersion=dispersion, rho=rho,
                               shift_at=shift_at, level_shift=level, slope_shift=slope,
                               seed=child_seed(seed, "power", n, level, slope))
        for crit in criteria:
            dec = break_decisions(Y, model=model, criterion=crit, alpha=alpha)
            found = dec["any_break"].to_numpy()
            near = found & (np.abs(dec["first_break"].to_numpy() - shift_at) <= tolerance)
            rows.append({"criterion": crit, "n": n, "shift_at": shift_at,
                         "level_shift": level, "slope_shift": slope,
                         "rate_ratio": round(math.exp(level), 3), "n_sim": n_sim,
                         "detected": float(found.mean()), "located": float(near.mean())})
    return pd.DataFrame(rows)
