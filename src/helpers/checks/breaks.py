"""Data-driven structural breaks (Bai-Perron style least-squares segmentation, dynamic
programming from `ruptures`, number of breaks by BIC or sequential sup-F), and how they line up
with the declared events."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import ruptures
from ruptures.base import BaseCost

from helpers.checks.base import CheckResult
from helpers.checks.common import SEED, rng
from helpers.core.errors import CareTrendsError


class _SegmentCost:
    """Least-squares cost of a segment for ruptures: mean-shift ("mean") or own intercept and slope
    ("trend"). Closed forms from cumulative sums, so every segment costs O(1)."""

    def __new__(cls, model: str = "trend"):
        class Cost(BaseCost):
            def __init__(self, kind):
                self.kind = kind
                self.min_size = 3 if kind == "trend" else 2

            @property
            def model(self):
                return f"least_squares_{self.kind}"

            def fit(self, signal):
                y = np.asarray(signal, dtype=float).ravel()
                self.signal = y.reshape(-1, 1)  # ruptures reads the length from it
                t = np.arange(len(y), dtype=float) - (len(y) - 1) / 2.0
                zero = np.zeros(1)
                self.c1 = np.concatenate([zero, np.cumsum(np.ones_like(y))])
                self.ct = np.concatenate([zero, np.cumsum(t)])
                self.ctt = np.concatenate([zero, np.cumsum(t * t)])
                self.cy = np.concatenate([zero, np.cumsum(y)])
                self.cyy = np.concatenate([zero, np.cumsum(y * y)])
                self.cty = np.concatenate([zero, np.cumsum(t * y)])
                return self

            def error(self, start, end):
                m = self.c1[end] - self.c1[start]
                sy = self.cy[end] - self.cy[start]
                syy = (self.cyy[end] - self.cyy[start]) - sy * sy / m
                if self.kind == "mean":
                    return max(syy, 0.0)
                st = self.ct[end] - self.ct[start]
                stt = (self.ctt[end] - self.ctt[start]) - st * st / m
                sty = (self.cty[end] - self.cty[start]) - st * sy / m
                return max(syy - (sty * sty / stt if stt > 0 else 0.0), 0.0)

        if model not in ("trend", "mean"):
            raise CareTrendsError(f"break model {model!r} unknown; use 'trend' or 'mean'")
        return Cost(model)


def _segmentations(y: np.ndarray, max_breaks: int, model: str, min_size: int):
    """Optimal breakpoints (ruptures convention: end indices) and SSR for 0..max_breaks breaks."""
    cost = _SegmentCost(model)
    algo = ruptures.Dynp(custom_cost=cost, min_size=min_size, jump=1).fit(y)
    out = {0: ([len(y)], cost.error(0, len(y)))}
    for k in range(1, max_breaks + 1):
        if (k + 1) * min_size > len(y):
            break
        bkps = algo.predict(n_bkps=k)
        out[k] = (bkps, cost.sum_of_costs(bkps))
    return out


def _bic(ssr: float, n: int, k: int, q: int) -> float:
    n_params = (k + 1) * q + k + 1  # segment coefficients, break dates, error variance
    return n * math.log(max(ssr, 1e-12) / n) + n_params * math.log(n)


def _sup_f(segs: dict, n: int, q: int) -> dict[int, float]:
    """F statistic for k+1 against k breaks from the optimal segmentations (Bai-Perron sup-F form)."""
    out = {}
    for k in sorted(segs):
        if k + 1 not in segs:
            break
        ssr_k, ssr_k1 = segs[k][1], segs[k + 1][1]
        dof = n - (k + 2) * q - (k + 1)
        if dof <= 0 or ssr_k1 <= 0:
            out[k] = float("inf") if ssr_k1 <= 0 < ssr_k - ssr_k1 else float("nan")
            continue
        out[k] = ((ssr_k - ssr_k1) / q) / (ssr_k1 / dof)
    return out


def _sup_f_critical(n: int, max_breaks: int, model: str, min_size: int, alpha: float,
                    n_sim: int, seed) -> dict[int, float]:
    """Critical values of the sup-F statistics by simulation under no break (Gaussian noise)."""
    gen = rng(seed)
    q = 2 if model == "trend" else 1
    draws: dict[int, list[float]] = {}
    for _ in range(n_sim):
        y = gen.standard_normal(n)
        for k, f in _sup_f(_segmentations(y, max_breaks, model, min_size), n, q).items():
            draws.setdefault(k, []).append(f)
    return {k: float(np.nanquantile(v, 1 - alpha)) for k, v in draws.items()}


@dataclass
class BreakResult(CheckResult):
    labels: list
    positions: list[int]
    n_breaks: int
    criterion: str
    model: str
    table: pd.DataFrame  # one row per number of breaks: ssr, bic, sup_f, critical, breaks
    check = "breaks"

    def to_records(self, **context) -> list[dict]:
        """Breaks are dates, not effects: no results.json records."""
        return []

    def fitted(self, y) -> np.ndarray:
        """Least-squares fit of each segment (for charts)."""
        y = np.asarray(y, dtype=float)
        out = np.empty_like(y)
        bounds = [0] + list(self.positions) + [len(y)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            t = np.arange(a, b, dtype=float)
            if self.model == "trend" and b - a >= 2:
                coef = np.polyfit(t, y[a:b], 1)
                out[a:b] = np.polyval(coef, t)
            else:
                out[a:b] = y[a:b].mean()
        return out


def detect_breaks(y, max_breaks: int = 3, *, labels: Sequence | None = None,
                  model: str = "trend", criterion: str = "bic", min_size: int | None = None,
                  alpha: float = 0.05, n_sim: int = 200, seed=SEED,
                  return_result: bool = False):
    """Labels at which new regimes start, with no date given in advance.

    Least-squares segmentation (Bai & Perron 1998/2003): for each number of breaks up to
    `max_breaks` the global optimum is found by dynamic programming (`ruptures.Dynp` with a
    closed-form segment cost), and the number is chosen by BIC (default, as Bai-Perron recommend
    for small samples) or by sequential sup-F tests of k+1 against k breaks at level `alpha` with
    critical values simulated for this sample size (`n_sim` draws, seeded).

    model "trend" (default): each regime has its own level and slope, the right null for trending
    series (a mean-shift model mistakes a steady trend for a sequence of breaks); "mean": level only.
    `y`: a Series (its index gives the labels), array or list; `labels` overrides. `min_size`: the
    shortest regime (default: 15% trimming, at least 3 points for "trend"). Returns the list of
    labels of the first point of each new regime (a BreakResult if `return_result`).
    """
    if isinstance(y, pd.Series):
        labels = list(y.index) if labels is None else list(labels)
        values = y.to_numpy(dtype=float)
    else:
        values = np.asarray(y, dtype=float).ravel()
        labels = list(range(len(values))) if labels is None else list(labels)
    if len(labels) != len(values):
        raise CareTrendsError(f"{len(labels)} labels for {len(values)} values; give one label per value")
    if not np.isfinite(values).all():
        raise CareTrendsError("the series has missing values; drop or fill them before detect_breaks")
    if criterion not in ("bic", "supf"):
        raise CareTrendsError(f"criterion {criterion!r} unknown; use 'bic' or 'supf'")
    if model not in ("trend", "mean"):
        raise CareTrendsError(f"break model {model!r} unknown; use 'trend' or 'mean'")
    n = len(values)
    q = 2 if model == "trend" else 1
    floor = 3 if model == "trend" else 2
    min_size = int(min_size or max(floor, math.ceil(0.15 * n)))
    if n < 2 * min_size:
        raise CareTrendsError(f"{n} points are too few to look for breaks with regimes of at least "
                              f"{min_size} points; use a longer series or a smaller min_size")
    max_breaks = int(max(0, min(max_breaks, n // min_size - 1)))
    segs = _segmentations(values, max_breaks, model, min_size)
    supf = _sup_f(segs, n, q)
    crit = (_sup_f_critical(n, max(segs), model, min_size, alpha, n_sim, seed)
            if criterion == "supf" and len(segs) > 1 else {})
    rows = []
    for k, (bkps, ssr) in segs.items():
        rows.append({"n_breaks": k, "ssr": ssr, "bic": _bic(ssr, n, k, q),
                     "sup_f_next": supf.get(k, np.nan), "critical_next": crit.get(k, np.nan),
                     "breaks": [labels[b] for b in bkps[:-1]]})
    table = pd.DataFrame(rows)
    if criterion == "bic":
        chosen = int(table.loc[table["bic"].idxmin(), "n_breaks"])
    else:
        chosen = 0
        for k in sorted(supf):
            if k in crit and supf[k] > crit[k]:
                chosen = k + 1
            else:
                break
    positions = segs[chosen][0][:-1]
    result = BreakResult([labels[b] for b in positions], list(positions), chosen, criterion,
                         model, table)
    return result if return_result else result.labels


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
