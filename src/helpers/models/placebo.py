"""Placebo-in-space inference shared by the comparative designs: the treated unit's rank among
placebo units, its permutation p-value, and intervals that invert that test."""

from __future__ import annotations

import numpy as np


def placebo_p(treated_stat: float, placebo_stats: np.ndarray) -> tuple[int, float]:
    """Rank of the treated unit by |statistic| among itself and its placebos (1 = most extreme) and
    the permutation p-value rank / (placebos + 1)."""
    placebo_stats = np.asarray(placebo_stats, float)
    rank = 1 + int(np.sum(np.abs(placebo_stats) > abs(treated_stat) + 1e-12))
    return rank, rank / (len(placebo_stats) + 1)


def critical_value(placebo_stats: np.ndarray, alpha: float = 0.05) -> float:
    """The smallest statistic the placebo test rejects at level alpha: with N placebos a value is
    rejected when at most floor(alpha (N + 1)) - 1 placebos exceed it (p = rank / (N + 1) <= alpha).
    Infinite when there are too few placebos to ever reject."""
    ordered = np.sort(np.asarray(placebo_stats, float))[::-1]
    m = int(np.floor(alpha * (len(ordered) + 1) + 1e-9)) - 1
    return float(ordered[m]) if m >= 0 else np.inf


def placebo_interval(estimate: float, placebo_stats: np.ndarray, alpha: float = 0.05):
    """Interval for a constant additive effect by inverting the placebo-in-space test on |estimate|
    (Conley-Taber / Firpo-Possebom style): the effects d whose |estimate - d| the test would not
    reject. Consistent with the permutation p-value: it excludes 0 exactly when p <= alpha."""
    q = critical_value(np.abs(placebo_stats), alpha)
    return estimate - q, estimate + q
