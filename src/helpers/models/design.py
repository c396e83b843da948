"""The segmented-regression design every model shares (single-series ITS, batch fits, controlled
designs, sensitivity refits), so none of them can drift from the others.

    g(E[y_t]) = b0 + b1 (t - t0) + sum_k [ level_k * L_k(t) + slope_k * S_k(t) ] + Fourier(t)

with, for an interruption first in force at T_k after a lag of l_k periods (s_k = T_k + l_k),
    L_k(t) = 1 for t >= s_k, or the ramp min(1, (t - s_k + 1) / p_k) with a phase-in of p_k periods;
    S_k(t) = t - s_k for t >= s_k, else 0 (so the level change is measured at s_k itself).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers import spec
from helpers.core import vocab
from helpers.core.errors import CareTrendsError


@dataclass(frozen=True)
class Interruption:
    """One event as the model sees it: a name and the first period it is in force."""
    name: str
    first_in_force: float
    effects: tuple
    phase_in: int
    lag: int
    title: str

    @property
    def start(self) -> float:
        """First period in which the declared effect begins (after any lag)."""
        return self.first_in_force + self.lag


def _per_event(value, name: str, default):
    if isinstance(value, dict):
        return value.get(name, default)
    return default if value is None else value


def parse_effects(value, name: str) -> tuple:
    """('level', 'slope') from a tuple, 'level+slope' text or a {name: tuple} mapping."""
    if isinstance(value, dict):
        if name not in value:
            raise CareTrendsError(
                f"effects has no entry for intervention {name!r}; give effects for every "
                f"intervention, e.g. effects={{{name!r}: ('level', 'slope')}}")
        value = value[name]
    if isinstance(value, str):
        value = [part.strip() for part in value.replace("+", ",").split(",") if part.strip()]
    value = tuple(value)
    bad = [v for v in value if v not in vocab.EFFECTS]
    if not value or bad:
        raise CareTrendsError(
            f"effects for {name!r} must be 'level', 'slope' or both, not {list(value)!r}")
    return tuple(e for e in vocab.EFFECTS if e in value)


def parse_interruptions(interventions, effects=("level", "slope"), phase_in=None, lag=None,
                        titles=None) -> list[Interruption]:
    """Interruptions sorted by time from fit_its-style arguments."""
    if not interventions or not isinstance(interventions, dict):
        raise CareTrendsError(
            "no interventions given; pass interventions={name: first time in force}, "
            "e.g. {'family_matters': 2025}")
    for what, value in (("effects", effects), ("phase_in", phase_in), ("lag", lag)):
        unknown = sorted(set(value) - set(interventions)) if isinstance(value, dict) else []
        if unknown:
            raise CareTrendsError(
                f"{what} names {unknown}, which are not among the interventions "
                f"{list(interventions)}; check the spelling")
    out = []
    for name, when in interventions.items():
        try:
            when = float(when)
        except (TypeError, ValueError) as exc:
            raise CareTrendsError(
                f"intervention {name!r} has time {when!r}; give the first time it is in force "
                "in the units of the time column (interventions_from_events reads dates)"
            ) from exc
        p = _per_event(phase_in, name, 0) or 0
        lg = _per_event(lag, name, 0) or 0
        if int(p) != p or p < 0 or int(lg) != lg or lg < 0:
            raise CareTrendsError(
                f"phase_in and lag for {name!r} must be whole numbers of periods >= 0")
        title = (titles or {}).get(name) or str(name).replace("_", " ")
        when = int(when) if when.is_integer() else when  # whole periods stay integers
        out.append(Interruption(str(name), when, parse_effects(effects, name), int(p), int(lg),
                                title))
    return sorted(out, key=lambda e: (e.first_in_force, e.name))


def level_term(t: np.ndarray, event: Interruption) -> np.ndarray:
    if event.phase_in <= 1:
        return (t >= event.start).astype(float)
    return np.clip((t - event.start + 1.0) / event.phase_in, 0.0, 1.0)


def slope_term(t: np.ndarray, event: Interruption) -> np.ndarray:
    return np.where(t >= event.start, t - event.start, 0.0)


def newey_west_lags(n: int) -> int:
    """Newey & West (1994) rule of thumb: floor(4 (n/100)^(2/9)), at least 1."""
    return max(1, int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0))))


def design_matrix(t, events, season_values, harmonics, period) -> pd.DataFrame:
    """const, trend (time since the first point), `name:level` / `name:slope` per interruption,
    then sin/cos harmonics of `season_values` when given."""
    X = {"const": np.ones_like(t), "trend": t - t.min()}
    for ev in events:
        if "level" in ev.effects:
            X[f"{ev.name}:level"] = level_term(t, ev)
        if "slope" in ev.effects:
            X[f"{ev.name}:slope"] = slope_term(t, ev)
    if season_values is not None:
        if harmonics < 0 or 2 * harmonics > period:
            raise CareTrendsError(
                f"harmonics={harmonics} does not fit period={period}; use 0 to {period // 2}")
        for h in range(1, int(harmonics) + 1):
            angle = 2.0 * np.pi * h * season_values / period
            if 2 * h != period:  # sin of the Nyquist harmonic is identically zero
                X[f"sin{h}"] = np.sin(angle)
            X[f"cos{h}"] = np.cos(angle)
    return pd.DataFrame(X)


def design_columns(time, interventions: Mapping[str, float], effects=("level", "slope"),
                   harmonics: int = 0, period: int = 12, season_values=None, *, phase_in=None,
                   lag=None) -> pd.DataFrame:
    """The design `fit_its` uses, on a time grid (one row per time), for batch fits and the
    comparative and sensitivity designs."""
    events = parse_interruptions(dict(interventions), effects, phase_in, lag, None)
    time = np.asarray(time, dtype=float)
    seasons = None if season_values is None or not harmonics else np.asarray(season_values, float)
    return design_matrix(time, events, seasons, harmonics, period)


def is_event_column(name: str) -> bool:
    return name.endswith((":level", ":slope"))


def interventions_from_events(events, frequency: str = "annual") -> dict:
    """`fit_its` keyword arguments from events (spec Events, dicts as in a YAML file, or
    `helpers.data.load_events()`); see `helpers.spec.interventions`."""
    return spec.interventions(events, frequency)
