"""The panel interface every comparative design takes: a long table with declared unit, time and
outcome columns (optional exposure and covariates) and a treatment description (which units are
treated and from when), validated once into a balanced unit x time matrix.

Treatment is described either by a mapping {unit: first treated time} (units not in it are never
treated) or by the name of a column holding each unit's first treated time (0, NaN or +inf for
never treated, as in the `did` package's `first.treat`). Treatment is absorbing: once treated, a
unit stays treated (the staggered-adoption setting of Callaway & Sant'Anna 2021 and Arkhangelsky
et al. 2021, section 8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from helpers.core.errors import CareTrendsError
from helpers.core.records import EFFECT_COLUMNS, EffectResult


@dataclass(frozen=True, eq=False, repr=False)
class Panel:
    """A validated balanced panel. `Y` is units x times (outcome); `start` maps every unit to its
    first treated time (NaN = never treated)."""

    data: pd.DataFrame
    unit: str
    time: str
    outcome: str
    exposure: str | None
    covariates: tuple[str, ...]
    start: pd.Series
    Y: pd.DataFrame = field(init=False)

    def __post_init__(self):
        wide = self.data.pivot(index=self.unit, columns=self.time, values=self.outcome)
        object.__setattr__(self, "Y", wide.loc[self.start.index])

    def __repr__(self) -> str:
        return (f"Panel({len(self.units)} units x {len(self.times)} times, outcome={self.outcome!r}, "
                f"{len(self.treated_units)} treated in {len(self.cohorts)} cohort(s))")

    @property
    def units(self) -> np.ndarray:
        return self.start.index.to_numpy()

    @property
    def times(self) -> np.ndarray:
        return self.Y.columns.to_numpy()

    @property
    def treated_units(self) -> list:
        return list(self.start.index[self.start.notna()])

    @property
    def never_treated(self) -> list:
        return list(self.start.index[self.start.isna()])

    @property
    def cohorts(self) -> dict:
        """First treated time -> the units adopting then (ascending times)."""
        s = self.start.dropna()
        return {t: list(s.index[s == t]) for t in sorted(s.unique())}

    def wide(self, column: str | None = None) -> pd.DataFrame:
        """units x times table of any column (default the outcome)."""
        column = column or self.outcome
        return self.data.pivot(index=self.unit, columns=self.time, values=column).loc[self.start.index]

    def treated_mask(self) -> np.ndarray:
        """units x times boolean: unit treated at that time (t >= its start)."""
        start = self.start.to_numpy(dtype=float)
        return np.asarray(self.times, float)[None, :] >= np.where(np.isnan(start), np.inf, start)[:, None]

    def with_outcome(self, values: pd.Series | np.ndarray, name: str) -> "Panel":
        """The same panel with another outcome column (e.g. a rate) added and declared."""
        data = self.data.copy()
        data[name] = np.asarray(values, dtype=float)
        return Panel(data=data, unit=self.unit, time=self.time, outcome=name, exposure=self.exposure,
                     covariates=self.covariates, start=self.start)

    def rate(self, per: float = 10_000.0) -> "Panel":
        """Outcome per `per` of exposure (e.g. children entering care per 10,000 children)."""
        if self.exposure is None:
            raise CareTrendsError("rate() needs an exposure column; pass exposure= to make_panel")
        return self.with_outcome(self.data[self.outcome] / self.data[self.exposure] * per,
                                 f"{self.outcome}_per_{per:g}")

    def subset(self, units: Sequence) -> "Panel":
        """The panel restricted to some units (e.g. a donor pool plus the treated units)."""
        keep = pd.Index(units)
        missing = keep.difference(self.start.index)
        if len(missing):
            raise CareTrendsError(f"unit(s) {list(missing)[:5]} are not in the panel; check the unit codes")
        data = self.data[self.data[self.unit].isin(keep)]
        return Panel(data=data, unit=self.unit, time=self.time, outcome=self.outcome,
                     exposure=self.exposure, covariates=self.covariates, start=self.start.loc[keep])


def _first_times(data: pd.DataFrame, unit: str, treatment, times: np.ndarray) -> pd.Series:
    units = pd.Index(pd.unique(data[unit]))
    if isinstance(treatment, str):
        if treatment not in data.columns:
            raise CareTrendsError(f"treatment column {treatment!r} is not in the data; name the column "
                                  "holding each unit's first treated time")
        per_unit = data.groupby(unit, sort=False)[treatment].nunique(dropna=False)
        if (per_unit > 1).any():
            bad = list(per_unit.index[per_unit > 1])[:3]
            raise CareTrendsError(f"treatment column {treatment!r} varies within unit(s) {bad}; it must "
                                  "hold one first-treated time per unit")
        first = data.groupby(unit, sort=False)[treatment].first().reindex(units).astype(float)
        first = first.where(np.isfinite(first) & (first != 0))
    elif isinstance(treatment, Mapping):
        unknown = [u for u in treatment if u not in units]
        if unknown:
            raise CareTrendsError(f"treated unit(s) {unknown[:5]} are not in the data's {unit!r} column; "
                                  "check the codes (they must match exactly, including type)")
        first = pd.Series(np.nan, index=units, dtype=float)
        for u, t in treatment.items():
            first[u] = float(t)
    else:
        raise CareTrendsError("treatment must be a mapping {unit: first treated time} or the name of a "
                              "column holding each unit's first treated time")
    if first.notna().sum() == 0:
        raise CareTrendsError("no treated units: give at least one unit a first treated time")
    lo, hi = float(np.min(times)), float(np.max(times))
    early = first.index[first <= lo]
    if len(early):
        raise CareTrendsError(f"unit(s) {list(early)[:5]} are treated from the first period ({lo:g}); "
                              "a design needs at least one untreated period, so drop them or start later")
    late = first.index[first > hi]
    if len(late):  # treated after the data end: never treated within the window
        first[late] = np.nan
    first.name = "start"
    first.index.name = unit
    return first


def make_panel(data: pd.DataFrame, *, unit: str, time: str, outcome: str, treatment,
               exposure: str | None = None, covariates: Sequence[str] = ()) -> Panel:
    """Validate a long DataFrame into a `Panel`.

    `treatment`: a mapping {unit: first treated time} or the name of a column with each unit's
    first treated time (0 / NaN / inf = never). Times must be numeric (e.g. years, month index)
    and the panel balanced (every unit observed at every time, no missing outcome) - designs here
    assume it. A unit first treated after the last time is counted as never treated.
    """
    if not isinstance(data, pd.DataFrame):
        raise CareTrendsError("data must be a pandas DataFrame in long form (one row per unit and time)")
    columns = [unit, time, outcome, *([exposure] if exposure else []), *covariates]
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise CareTrendsError(f"column(s) {missing} are not in the data; it has {list(data.columns)[:12]}")
    if isinstance(treatment, str):
        columns.append(treatment)
    frame = data[list(dict.fromkeys(columns))].copy()
    if not pd.api.types.is_numeric_dtype(frame[time]):
        raise CareTrendsError(f"time column {time!r} must be numeric (a year or a month index), "
                              f"not {frame[time].dtype}")
    if not pd.api.types.is_numeric_dtype(frame[outcome]):
        raise CareTrendsError(f"outcome column {outcome!r} must be numeric")
    if frame[[unit, time]].isna().any().any():
        raise CareTrendsError(f"{unit!r} or {time!r} has missing values; drop those rows first")
    dup = frame.duplicated([unit, time])
    if dup.any():
        u, t = frame.loc[dup, [unit, time]].iloc[0]
        raise CareTrendsError(f"unit {u!r} has more than one row at time {t}; aggregate to one row per "
                              "unit and time (e.g. filter to one measure)")
    if frame[outcome].isna().any() or not np.isfinite(frame[outcome].to_numpy(float)).all():
        bad = frame.loc[~np.isfinite(frame[outcome].to_numpy(float)), unit].iloc[0]
        raise CareTrendsError(f"outcome {outcome!r} is missing or infinite (first for unit {bad!r}); "
                              "drop the unit or fill the value before fitting")
    if exposure and (frame[exposure].isna().any() or (frame[exposure] <= 0).any()):
        raise CareTrendsError(f"exposure {exposure!r} must be positive and present in every row")
    times = np.sort(frame[time].unique())
    counts = frame.groupby(unit)[time].nunique()
    if (counts != len(times)).any():
        u = counts.index[counts != len(times)][0]
        raise CareTrendsError(f"the panel is unbalanced: unit {u!r} has {counts[u]} of {len(times)} "
                              "times; keep the units observed throughout or restrict the window")
    if len(times) < 2:
        raise CareTrendsError("a panel needs at least two time periods")
    start = _first_times(frame, unit, treatment, times)
    frame = frame.sort_values([unit, time], kind="mergesort").reset_index(drop=True)
    return Panel(data=frame, unit=unit, time=time, outcome=outcome, exposure=exposure,
                 covariates=tuple(covariates), start=start)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

Z95 = 1.959963984540054


def normal_row(event: str, effect: str, estimate: float, se: float, *, level: float = 0.95,
               scale: str = "difference") -> dict:
    """One effects row with a normal-approximation interval and two-sided p-value."""
    z = norm.ppf(0.5 + level / 2)
    if se is None or not np.isfinite(se) or se <= 0:
        return dict(intervention=event, effect=effect, estimate=float(estimate), ci_low=np.nan,
                    ci_high=np.nan, p_value=np.nan, scale=scale)
    return dict(intervention=event, effect=effect, estimate=float(estimate),
                ci_low=float(estimate - z * se), ci_high=float(estimate + z * se),
                p_value=float(2 * norm.sf(abs(estimate) / se)), scale=scale)


def effects_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class PanelResult(EffectResult):
    """Base of the panel designs' results: `effects` (EFFECT_COLUMNS), the design key, the
    outcome, the event name and the panel it was fitted on."""

    design: str
    outcome: str
    event: str
    effects: pd.DataFrame
    panel: Panel

    def __repr__(self) -> str:  # cheap: never triggers the lazy (refitting) inference
        return f"{type(self).__name__}(design={self.design!r}, outcome={self.outcome!r}, event={self.event!r})"
