"""Pieces every check shares: events as fit arguments, impact models that can be estimated on a
shortened series, level effects as % changes, and seeds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from helpers.core import vocab
from helpers.models.design import design_columns
from helpers.spec import interventions

#: Seed of every simulation unless a caller gives one.
SEED = vocab.DEFAULT_SEED
LOG_LINK = vocab.LOG_LINK_FAMILIES


def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def estimable_effects(t_values, times: Mapping, effects: Mapping, keep: str) -> dict | None:
    """Effects with a full-rank design: slope terms of the other events are dropped (earliest
    first), then their level terms, until the design can be estimated; None if it never can."""

    eff = {k: tuple(effects[k]) for k in times}
    eff = {k: tuple(e for e in v if e == "level" or (np.asarray(t_values) >= times[k]).sum() >= 2)
           for k, v in eff.items()}
    order = sorted((k for k in times if k != keep), key=lambda k: times[k])
    steps = [(k, "slope") for k in order] + [(k, "level") for k in order]
    for step in [None] + steps:
        if step is not None:
            name, term = step
            eff[name] = tuple(e for e in eff[name] if e != term)
        kept = {k: v for k, v in eff.items() if v}
        if keep not in kept:
            return None
        X = design_columns(np.asarray(t_values, float), {k: times[k] for k in kept}, kept)
        if np.linalg.matrix_rank(X.to_numpy()) == X.shape[1] and len(t_values) > X.shape[1]:
            return kept
    return None


def event_times(events: Sequence[Mapping], frequency: str = "annual") -> dict[str, int]:
    """First in-force time of each event (annual: reporting year; monthly: month index)."""
    return dict(event_args(events, frequency)["interventions"])


def event_args(events: Sequence[Mapping], frequency: str = "annual") -> dict:
    """fit_its keyword arguments from the events (see helpers.spec.interventions)."""
    return interventions(list(events), frequency)


def event_effects(events: Sequence[Mapping]) -> dict[str, tuple[str, ...]]:
    return dict(event_args(events)["effects"])


def kept_event_kwargs(args: Mapping, keep: Iterable[str]) -> dict:
    """phase_in / lag / titles of the kept events, for fit_its."""
    keep = list(keep)
    return {key: {k: v for k, v in args[key].items() if k in keep}
            for key in ("phase_in", "lag", "titles") if key in args}


def percent_change(estimate: float, scale: str, baseline: float | None = None) -> float:
    """A level effect as a % change: ratio 0.8 -> -20; a difference of -10 on a baseline of 100 -> -10."""
    if estimate is None or not np.isfinite(estimate):
        return float("nan")
    if scale == "ratio":
        return (float(estimate) - 1.0) * 100.0
    if baseline is None or not np.isfinite(baseline) or baseline == 0:
        return float("nan")
    return float(estimate) / float(baseline) * 100.0


def effect_row(res, name: str, effect: str) -> dict | None:
    rows = res.effects[(res.effects["intervention"] == name) & (res.effects["effect"] == effect)]
    return None if rows.empty else rows.iloc[0].to_dict()


def baseline_at(res, time_value) -> float | None:
    """Counterfactual at the event's first observed in-force time (the first in-force time
    itself unless that period was left out): the base for % of a difference."""
    cf = res.counterfactual
    rows = cf[cf["time"] >= time_value].sort_values("time").head(1)
    if rows.empty:
        return None
    return float(rows["counterfactual"].iloc[0])


def latent_ar1(z: np.ndarray, sd: float, rho: float) -> np.ndarray:
    """A stationary Gaussian AR(1) along the last axis from standard normals z: u_0 = sd z_0,
    u_t = rho u_t-1 + sd sqrt(1 - rho^2) z_t (the latent noise every simulation here uses)."""
    u = np.empty_like(z, dtype=float)
    u[..., 0] = sd * z[..., 0]
    innov = sd * np.sqrt(max(1.0 - rho * rho, 1e-12))
    for i in range(1, z.shape[-1]):
        u[..., i] = rho * u[..., i - 1] + innov * z[..., i]
    return u


def child_seed(seed, *parts) -> int:
    """A deterministic sub-seed per task (stable across runs and Python hash seeds)."""
    text = "|".join(str(p) for p in (seed, *parts))
    return int.from_bytes(text.encode(), "little") % (2 ** 63)
