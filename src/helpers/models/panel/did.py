"""Two-way fixed-effects difference-in-differences and event study on a panel with one or more
treated units (staggered adoption allowed), standard errors clustered by unit.

    DiD:          y_it = a_i + g_t + b * D_it + e_it,                 D_it = 1[t >= start_i]
    Event study:  y_it = a_i + g_t + sum_{k != -1} b_k 1[t - start_i = k] + e_it

On a balanced panel the fixed effects are absorbed exactly by two-way demeaning
(Frisch-Waugh-Lovell), as Stata's `xtreg, fe vce(cluster unit)` does. With staggered adoption and
effects that vary over time the TWFE coefficient is a weighted average with possibly negative
weights (Goodman-Bacon 2021; de Chaisemartin & D'Haultfoeuille 2020); it is returned only as a
labelled comparison there (design 'twfe_staggered') - use `fit_callaway_santanna` or `fit_sdid`.
With one treated unit clustered SEs are unreliable (Conley & Taber 2011); use `fit_sdid`'s
placebo inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from helpers.core.errors import CareTrendsError
from helpers.models.panel.data import Panel, PanelResult, effects_frame, normal_row


def _two_way_demean(A: np.ndarray) -> np.ndarray:
    return A - A.mean(axis=1, keepdims=True) - A.mean(axis=0, keepdims=True) + A.mean()


def _twfe(Y: np.ndarray, regressors: dict[str, np.ndarray]):
    n, T = Y.shape
    X = pd.DataFrame({k: _two_way_demean(np.asarray(v, float)).ravel() for k, v in regressors.items()})
    return sm.OLS(_two_way_demean(Y).ravel(), X).fit(
        cov_type="cluster", cov_kwds={"groups": np.repeat(np.arange(n), T)})


@dataclass(kw_only=True, eq=False, repr=False)
class TWFEResult(PanelResult):
    """TWFE DiD. `effects`: one 'level' row (cluster-robust normal interval). `fit` is the
    statsmodels result on the demeaned data; `staggered` says whether adoption was staggered."""

    fit: object
    staggered: bool
    n_treated: int
    n_units: int


def fit_twfe_did(panel: Panel, *, event: str = "treatment", level: float = 0.95) -> TWFEResult:
    """TWFE DiD with unit-clustered SEs; design 'did', or 'twfe_staggered' (comparison only) when
    units adopt at different times."""
    if not panel.never_treated and len(panel.cohorts) == 1:
        raise CareTrendsError("difference-in-differences needs comparison units: no unit is never "
                              "treated and all adopt at once")
    D = panel.treated_mask().astype(float)
    fit = _twfe(panel.Y.to_numpy(float), {"treated": D})
    staggered = len(panel.cohorts) > 1
    row = normal_row(event, "level", fit.params["treated"], fit.bse["treated"], level=level)
    return TWFEResult(design="twfe_staggered" if staggered else "did", outcome=panel.outcome,
                      event=event, effects=effects_frame([row]), panel=panel, fit=fit,
                      staggered=staggered, n_treated=len(panel.treated_units),
                      n_units=len(panel.units))


@dataclass(kw_only=True, eq=False, repr=False)
class EventStudyResult(PanelResult):
    """Relative-time coefficients (reference k = -1) in `effects` ('event -3', 'event +0', ...),
    with the same numbers plus SEs in `coefficients`."""

    coefficients: pd.DataFrame
    fit: object
    staggered: bool


def fit_event_study(panel: Panel, *, event: str = "treatment", window: tuple[int, int] | None = None,
                    reference: int = -1, level: float = 0.95) -> EventStudyResult:
    """TWFE event study. Relative time k = t - start (in time units). `window=(lo, hi)` bins
    relative times beyond the window into its end points (Schmidheiny & Siegloch 2023);
    without it every observed relative time gets a dummy. Never-treated units have none."""
    times = np.asarray(panel.times, float)
    start = panel.start.to_numpy(float)
    rel = times[None, :] - start[:, None]  # NaN for never treated
    treated = ~np.isnan(start)
    if window is not None:
        lo, hi = window
        if not lo < reference < hi + 1 or lo >= 0 or hi < 0:
            raise CareTrendsError(f"window {window} must run from a negative to a non-negative "
                                  f"relative time and contain the reference {reference}")
        rel = np.clip(rel, lo, hi)
    ks = np.unique(rel[treated][~np.isnan(rel[treated])]).astype(int)
    if reference not in ks:
        raise CareTrendsError(f"no treated unit is observed at relative time {reference}; choose "
                              "another reference period")
    if len(panel.never_treated) == 0 and len(panel.cohorts) == 1:
        raise CareTrendsError("an event study with one adoption time needs never-treated units")
    regs = {}
    for k in ks:
        if k == reference:
            continue
        regs[f"k{k:+d}"] = np.where(treated[:, None] & (rel == k), 1.0, 0.0)
    if not panel.never_treated:
        # without never-treated units the earliest and latest relative times are collinear with
        # the fixed effects; drop the earliest lead as a second reference (Borusyak et al. 2024)
        regs.pop(f"k{ks[0]:+d}", None)
    fit = _twfe(panel.Y.to_numpy(float), regs)
    rows, coef = [], []
    for name in regs:
        k = int(name[1:])
        rows.append(normal_row(event, f"event {k:+d}", fit.params[name], fit.bse[name], level=level))
        coef.append(dict(relative_time=k, estimate=fit.params[name], se=fit.bse[name],
                         p_value=fit.pvalues[name]))
    staggered = len(panel.cohorts) > 1
    return EventStudyResult(design="event_study_twfe" if staggered else "event_study",
                            outcome=panel.outcome, event=event, effects=effects_frame(rows),
                            panel=panel, coefficients=pd.DataFrame(coef), fit=fit,
                            staggered=staggered)
