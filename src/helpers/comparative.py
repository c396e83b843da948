"""Comparative designs: did England, the region or similar councils change at the same time?

Three designs on the all-LA panel from `helpers.data.load_panel()`, each returning a subclass of
`helpers.core.records.EffectResult`:

- `fit_controlled_its`: the treated LA against one comparator series (England minus the LA, its
  region minus the LA, its statistical neighbours 2021/2025, or an explicit list), either as a
  multiple-group segmented count model (the treated-minus-comparator difference in level and slope
  changes, as Stata's `itsa` does; `method="multiple_group"`) or with the comparator's rate as part of
  the offset (`method="ratio"`: a segmented model of the treated/comparator rate ratio).
- `fit_did` / `fit_event_study`: two-way fixed-effects difference-in-differences and event study on
  the rate per 10,000 for every eligible LA, errors clustered by LA, and placebo-in-space inference
  (the event assigned to every other LA in turn; the treated LA's rank and permutation p-value).
- `fit_synthetic_control`: Abadie-style synthetic control on the rate per 10,000, donor weights on
  the simplex chosen on the pre-period by an exact active-set solver (`synth_weights`), with
  placebo-in-space (post/pre RMSPE ratio rank) and leave-one-donor-out robustness.

Donor pools (DiD, synthetic control) exclude LAs whose series break at a boundary change and, by
parameter, LAs with their own known programmes. Every design works on a panel passed in (for example
`simulate_panel()` in tests) or, by default, on the official panel.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from helpers.core import timeline
from helpers.core.errors import CareTrendsError
from helpers.core.records import COUNTERFACTUAL_COLUMNS, EFFECT_COLUMNS, EffectResult
from helpers.present.text import format_interval, ratio_as_percent

#: Named comparator choices (an explicit list of LA codes or names is also accepted).
COMPARATORS = ("england_minus_la", "region", "statistical_neighbours_2021",
               "statistical_neighbours_2025")
MEASURES = ("starts", "cla_31_march", "ceased")
MEASURE_LABELS = {"starts": "children starting to be looked after",
                  "cla_31_march": "children looked after at 31 March",
                  "ceased": "children ceasing to be looked after"}
LA_LEVEL = "Local authority"
RATE = "rate_per_10000"


# --------------------------------------------------------------------------------------------
# Panel access
# --------------------------------------------------------------------------------------------

def _get_panel(panel: pd.DataFrame | None) -> pd.DataFrame:
    if panel is not None:
        return panel
    from helpers import data  # the official panel; imported late so simulated panels need no data
    return data.load_panel()


def _is_official(panel: pd.DataFrame) -> bool:
    return not (panel.get("rate_source") is not None
                and (panel["rate_source"].astype(str) == "synthetic").all())


def _la_rows(panel: pd.DataFrame) -> pd.DataFrame:
    return panel[panel["geographic_level"] == LA_LEVEL]


@dataclass(frozen=True)
class Unit:
    """One LA as the designs identify it (old three-digit code is the identity)."""
    la_code: str
    la_name: str
    region_name: str | None


def resolve_unit(la: str, panel: pd.DataFrame | None = None) -> Unit:
    """Find an LA in the panel by name (any case), old code or new code."""
    panel = _get_panel(panel)
    if _is_official(panel):
        # helpers.data knows renamed and reorganised LAs (e.g. two Dorsets) and says "did you mean"
        from helpers import data
        record = data.resolve_la(la)
        return Unit(str(record.la_code), str(record.la_name),
                    None if pd.isna(record.region_name) else str(record.region_name))
    las = _la_rows(panel)[["la_code", "new_la_code", "la_name", "region_name"]].drop_duplicates()
    key = str(la).strip().lower()
    hit = las[(las["la_name"].astype(str).str.lower() == key)
              | (las["la_code"].astype(str).str.lower() == key)
              | (las["new_la_code"].astype(str).str.lower() == key)]
    if hit.empty:
        close = difflib.get_close_matches(str(la), las["la_name"].astype(str).unique(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "check the spelling or use the old 3-digit LA code"
        raise CareTrendsError(f"unknown local authority {la!r} in the panel; {hint}")
    # the latest row names the LA as it is now
    row = hit.iloc[-1]
    region = row["region_name"] if pd.notna(row["region_name"]) else None
    return Unit(str(row["la_code"]), str(row["la_name"]), region)


def boundary_break_codes(panel: pd.DataFrame) -> set[str]:
    """Old LA codes whose series break at a boundary change (predecessors and successors).

    Read from the panel's `boundary_flag` column (helpers.data), else a boolean `boundary_break`
    column (simulated panels), else `helpers.data.boundary_breaks()`."""
    las = _la_rows(panel)
    if "boundary_flag" in panel.columns:
        return set(las.loc[las["boundary_flag"].notna(), "la_code"].dropna().astype(str))
    if "boundary_break" in panel.columns:
        return set(las.loc[las["boundary_break"].astype(bool), "la_code"].dropna().astype(str))
    if not _is_official(panel):
        return set()
    from helpers import data
    return set(data.boundary_breaks()["la_code"].dropna().astype(str))


def _codes(items: Iterable[str], panel: pd.DataFrame) -> list[str]:
    return [resolve_unit(item, panel).la_code for item in items]


def _window(panel: pd.DataFrame, start_year: int | None, end_year: int | None) -> tuple[int, int]:
    years = panel["year"].dropna().astype(int)
    lo = int(years.min()) if start_year is None else int(start_year)
    hi = int(years.max()) if end_year is None else int(end_year)
    if lo < years.min() or hi > years.max() or lo >= hi:
        raise CareTrendsError(
            f"years {lo}-{hi} are outside the data ({years.min()}-{years.max()}); "
            "choose start_year/end_year inside that range")
    return lo, hi


def wide_rates(panel: pd.DataFrame, measure: str, start_year: int, end_year: int,
               value: str = RATE) -> pd.DataFrame:
    """LA x year table of one value (default the rate per 10,000) for one measure.

    The rate is recomputed as count / population x 10,000 wherever both are present: DfE publishes
    rates rounded to whole numbers, and mixing rounded and unrounded years would add noise that the
    designs (especially synthetic control's pre-period fit) would read as signal. Where the count is
    suppressed the panel's rate is used as is."""
    if measure not in MEASURES:
        raise CareTrendsError(f"unknown outcome {measure!r}; use one of {', '.join(MEASURES)}")
    rows = _la_rows(panel)
    rows = rows[(rows["measure"] == measure) & rows["year"].between(start_year, end_year)].copy()
    if value == RATE:
        exact = rows["count"].astype(float) / rows["population"].astype(float) * 1e4
        rows["_value"] = exact.where(exact.notna(), rows[RATE].astype(float))
    else:
        rows["_value"] = rows[value].astype(float)
    wide = rows.pivot_table(index="la_code", columns="year", values="_value", aggfunc="first",
                            dropna=False)
    wide.columns = wide.columns.astype(int)
    wide.index = wide.index.astype(str)
    return wide.reindex(columns=range(start_year, end_year + 1))


def donor_pool(la: str, measure: str = "starts", start_year: int = 2014,
               end_year: int | None = None, exclude_donors: Sequence[str] = (),
               panel: pd.DataFrame | None = None, exclude_boundary_breaks: bool = True
               ) -> tuple[Unit, pd.DataFrame, pd.DataFrame]:
    """The treated LA, its rate series and the donors' (LA x year), complete over the window.

    Donors exclude the treated LA, LAs with boundary breaks, LAs named in `exclude_donors` (their own
    programmes), and LAs with any missing rate in the window (so the panel is balanced).
    Returns (unit, treated series indexed by year, donors table indexed by la_code).
    """
    panel = _get_panel(panel)
    unit = resolve_unit(la, panel)
    start_year, end_year = _window(panel, start_year, end_year)
    wide = wide_rates(panel, measure, start_year, end_year)
    if unit.la_code not in wide.index or wide.loc[unit.la_code].isna().any():
        missing = [] if unit.la_code not in wide.index else \
            [int(y) for y in wide.columns[wide.loc[unit.la_code].isna()]]
        raise CareTrendsError(
            f"{unit.la_name} has no {measure} rate for {missing or 'the window'}; "
            "choose a start_year/end_year where its series is complete")
    excluded = set(_codes(exclude_donors, panel)) | {unit.la_code}
    if exclude_boundary_breaks:
        excluded |= boundary_break_codes(panel)
    donors = wide.drop(index=[c for c in excluded if c in wide.index]).dropna()
    if len(donors) < 5:
        raise CareTrendsError(
            f"only {len(donors)} donor LAs have complete {measure} rates for {start_year}-{end_year}; "
            "shorten the window or exclude fewer donors")
    return unit, wide.loc[unit.la_code].astype(float), donors.astype(float)


def _names(panel: pd.DataFrame) -> dict[str, str]:
    las = _la_rows(panel)[["la_code", "la_name"]].dropna().drop_duplicates("la_code", keep="last")
    return dict(zip(las["la_code"].astype(str), las["la_name"].astype(str)))


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """An event as the designs use it: `year` is the first reporting year in force (the first wholly
    after the event date), `start` adds any declared lag."""
    name: str
    title: str
    year: int
    effects: tuple[str, ...] = ("level", "slope")
    phase_in: int = 0
    lag: int = 0

    @property
    def start(self) -> int:
        return int(self.year + self.lag)


def normalise_events(events) -> list[Event]:
    """Events as the notebooks give them (list of dicts with name, date, optional title, effects,
    phase_in, lag, precision; mapped by `helpers.its.interventions_from_events`), or {name: first
    year} -> Events in time order. An event in February 2024 is first in force in 2025."""
    from helpers import its
    if events is None or len(events) == 0:
        raise CareTrendsError("no events given; add at least one {'name': ..., 'date': ...}")
    if isinstance(events, Mapping) and "name" in events:
        events = [events]  # one event given on its own
    if isinstance(events, Mapping):
        return sorted((Event(str(k), str(k).replace("_", " "), int(v)) for k, v in events.items()),
                      key=lambda e: (e.year, e.name))
    if all(isinstance(ev, Event) for ev in events):
        return sorted(events, key=lambda e: (e.year, e.name))
    spec = its.interventions_from_events(list(events), frequency="annual")
    out = [Event(name, spec["titles"][name], int(year), tuple(spec["effects"][name]),
                 int(spec["phase_in"][name]), int(spec["lag"][name]))
           for name, year in spec["interventions"].items()]
    return sorted(out, key=lambda e: (e.year, e.name))


def _one_event(event) -> Event:
    """One event for DiD / synthetic control; given a list, the last one (the designs' default)."""
    if isinstance(event, Event):
        return event
    if isinstance(event, (list, tuple)) or (isinstance(event, Mapping) and "name" not in event):
        return normalise_events(event)[-1]
    return normalise_events([event])[0]


def _check_event_years(events: Sequence[Event], years: np.ndarray, min_pre: int = 3) -> None:
    first, last = int(years.min()), int(years.max())
    for ev in events:
        if ev.start > last:
            raise CareTrendsError(
                f"event {ev.name!r} is first in force in reporting year {ev.start}, after the last year "
                f"of data ({last}); drop it or extend end_year")
        if ev.start - first < min_pre:
            raise CareTrendsError(
                f"event {ev.name!r} leaves only {ev.start - first} pre-event years from {first}; "
                f"need at least {min_pre}: use an earlier start_year")


# --------------------------------------------------------------------------------------------
# Comparator series (controlled ITS)
# --------------------------------------------------------------------------------------------

def _series_rows(panel, measure, mask, start_year, end_year) -> pd.DataFrame:
    rows = panel[mask & (panel["measure"] == measure) & panel["year"].between(start_year, end_year)]
    return (rows.groupby("year")[["count", "population"]].sum(min_count=1)
            .reindex(range(start_year, end_year + 1)))


def comparator_series(la: str, measure: str = "starts", comparator="statistical_neighbours_2021",
                      start_year: int = 2014, end_year: int | None = None,
                      panel: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The treated LA's and the comparator's annual counts, populations and rates.

    Returns (treated, comparator, label); both frames have year, count, population, rate_per_10000.
    The comparator is built from counts and populations (so it is the pooled rate, not an average of
    rates); LAs with a missing count in any year of the window are left out of a list comparator so
    its membership is the same every year.
    """
    panel = _get_panel(panel)
    unit = resolve_unit(la, panel)
    start_year, end_year = _window(panel, start_year, end_year)
    las = _la_rows(panel)
    treated = _series_rows(panel, measure, panel.index.isin(las.index)
                           & (panel["la_code"].astype(str) == unit.la_code), start_year, end_year)
    if treated["count"].isna().any():
        raise CareTrendsError(f"{unit.la_name} has missing {measure} counts in {start_year}-{end_year}; "
                              "choose a window where its series is complete")
    if isinstance(comparator, str) and comparator in ("england_minus_la", "region"):
        if comparator == "england_minus_la":
            mask = panel["geographic_level"] == "National"
            label = f"England excluding {unit.la_name}"
        else:
            if unit.region_name is None:
                raise CareTrendsError(f"{unit.la_name} has no region in the panel; use another comparator")
            mask = (panel["geographic_level"] == "Regional") & (
                (panel["region_name"] == unit.region_name) | (panel["la_name"] == unit.region_name))
            label = f"{unit.region_name} excluding {unit.la_name}"
        total = _series_rows(panel, measure, mask, start_year, end_year)
        if total["count"].isna().all():  # no aggregate rows: sum the LAs instead
            members = las if comparator == "england_minus_la" else las[las["region_name"] == unit.region_name]
            codes = sorted(set(members["la_code"].dropna().astype(str)) - {unit.la_code})
            comp, label_list = _sum_las(panel, measure, codes, start_year, end_year)
        else:
            comp = total - treated
    else:
        if isinstance(comparator, str) and comparator.startswith("statistical_neighbours_"):
            edition = comparator.rsplit("_", 1)[1]
            from helpers import data
            codes = [str(c) for c in data.statistical_neighbours(unit.la_code, edition=edition)]
            label = f"{unit.la_name}'s statistical neighbours ({edition})"
        elif isinstance(comparator, str):
            raise CareTrendsError(f"unknown comparator {comparator!r}; use one of {', '.join(COMPARATORS)} "
                                  "or a list of LA codes")
        else:
            codes = _codes(comparator, panel)
            label = "comparator LAs"
        codes = [c for c in codes if c != unit.la_code]
        comp, used = _sum_las(panel, measure, codes, start_year, end_year)
        label = f"{label} ({len(used)} LAs)"
    comp = comp.copy()
    if comp["count"].isna().any() or (comp["population"] <= 0).any():
        raise CareTrendsError(f"the comparator {label} has missing {measure} data in {start_year}-{end_year}; "
                              "choose another comparator or window")
    out = []
    for frame in (treated, comp):
        frame = frame.rename_axis("year").reset_index()
        frame[RATE] = frame["count"] / frame["population"] * 1e4
        out.append(frame)
    return out[0], out[1], label


def _sum_las(panel, measure, codes, start_year, end_year):
    breaks = boundary_break_codes(panel)
    wide_n = wide_rates(panel, measure, start_year, end_year, value="count")
    wide_p = wide_rates(panel, measure, start_year, end_year, value="population")
    used = [c for c in codes if c in wide_n.index and c not in breaks
            and wide_n.loc[c].notna().all() and wide_p.loc[c].notna().all()]
    if not used:
        raise CareTrendsError("none of the comparator LAs has complete data in the window; "
                              "choose another comparator")
    comp = pd.DataFrame({"count": wide_n.loc[used].sum(), "population": wide_p.loc[used].sum()})
    comp.index = comp.index.astype(int)
    return comp, used


# --------------------------------------------------------------------------------------------
# Controlled ITS
# --------------------------------------------------------------------------------------------

def _segmented(time: np.ndarray, events: Sequence[Event], t0: int) -> pd.DataFrame:
    """Intercept, time and a level step / slope-since term per event: the ITS engine's design."""
    from helpers import its
    return its.design_columns(np.asarray(time, float) - t0, {ev.name: ev.year - t0 for ev in events},
                          {ev.name: ev.effects for ev in events},
                          phase_in={ev.name: ev.phase_in for ev in events},
                          lag={ev.name: ev.lag for ev in events})


def _glm(y, X, offset, family, groups=None):
    """Poisson log-link GLM; quasi-Poisson scales by the Pearson dispersion. With `groups` (the
    multiple-group model) each group gets its own dispersion: the comparator's counts are orders of
    magnitude larger than the LA's, so one pooled dispersion would let the comparator's lack of fit
    set the LA's uncertainty. Done by refitting with variance weights 1 / dispersion_g."""
    import statsmodels.api as sm
    if family not in ("quasipoisson", "poisson"):
        raise CareTrendsError(f"controlled ITS supports family 'quasipoisson' or 'poisson', not {family!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit()
        if family == "poisson":
            return fit
        if groups is None:
            return sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit(scale="X2")
        groups = np.asarray(groups)
        resid2 = np.asarray(fit.resid_pearson) ** 2
        n_params_each = X.shape[1] / 2  # each group has its own intercept, trend and segments
        phi = {g: max(resid2[groups == g].sum() / max((groups == g).sum() - n_params_each, 1), 1e-8)
               for g in np.unique(groups)}
        weights = np.array([1.0 / phi[g] for g in groups])
        return sm.GLM(y, X, family=sm.families.Poisson(), offset=offset,
                      var_weights=weights).fit(scale="X2")


def _ci(fit, col: str, level: float = 0.95):
    est = float(fit.params[col])
    se = float(fit.bse[col])
    # quasi-Poisson uses t quantiles on the residual degrees of freedom (as helpers.its does)
    q = stats.t.ppf(0.5 + level / 2, fit.df_resid) if fit.scale != 1.0 else stats.norm.ppf(0.5 + level / 2)
    p = 2 * (stats.t.sf(abs(est / se), fit.df_resid) if fit.scale != 1.0 else stats.norm.sf(abs(est / se)))
    return est, est - q * se, est + q * se, float(p), q


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class ControlledITSResult(EffectResult):
    """Treated LA against a comparator series; effects are ratios (log link)."""

    design: str
    outcome: str
    unit: object
    comparator_label: str
    events: list
    fit: object
    effects: pd.DataFrame
    counterfactual: pd.DataFrame
    method: str

    def summary(self) -> str:
        what = MEASURE_LABELS.get(self.outcome, self.outcome)
        how = ("difference between the LA's and the comparator's changes (multiple-group segmented model)"
               if self.method == "multiple_group" else "LA-to-comparator rate ratio (comparator as offset)")
        lines = [f"Controlled ITS for {what} in {self.unit.la_name} against {self.comparator_label}, "
                 f"as the {how}."]
        for ev in self.events:
            for row in self.effects[self.effects["intervention"] == ev.name].itertuples():
                if not np.isfinite(row.estimate):
                    continue
                interval = format_interval(row.estimate, row.ci_low, row.ci_high, row.scale)
                when = timeline.reporting_year_label(ev.year)
                if row.effect == "level":
                    size = ("about the same as" if abs(row.estimate - 1) < 0.005
                            else ratio_as_percent(row.estimate))
                    lines.append(
                        f"- {ev.title} (first full year {when}): the level was {size} the path "
                        f"implied by the LA's own trend plus the comparator's change, "
                        f"rate ratio {interval}, p = {row.p_value:.3f}.")
                else:
                    lines.append(
                        f"- {ev.title}: relative to the comparator, the yearly trend changed by a factor "
                        f"of {interval} per year, p = {row.p_value:.3f}.")
        return "\n".join(lines)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        from helpers.plotting import PALETTE, mark_events
        if ax is None:
            _, ax = plt.subplots()
        cf = self.counterfactual
        ax.plot(cf["time"], cf["observed_rate"], "o-", color=PALETTE["observed"], label=self.unit.la_name)
        ax.plot(cf["time"], cf["fitted_rate"], "-", color=PALETTE["fitted"], label="model")
        ax.plot(cf["time"], cf["counterfactual_rate"], "--", color=PALETTE["counterfactual"],
                label="counterfactual (comparator's changes)")
        ax.fill_between(cf["time"], cf["cf_low_rate"], cf["cf_high_rate"],
                        color=PALETTE["counterfactual"], alpha=0.15)
        ax.plot(cf["time"], cf["comparator_rate"], "s:", color=PALETTE["comparator"],
                label=self.comparator_label)
        mark_events(ax, {ev.name: ev.start - 0.5 for ev in self.events})
        ax.set_title(f"Controlled ITS: {self.unit.la_name}, {self.outcome}")
        ax.set_xlabel("Reporting year (ending 31 March)")
        ax.set_ylabel("Rate per 10,000 children")
        ax.legend(fontsize=8, loc="best")
        return ax


def fit_controlled_its(la: str, outcome: str = "starts", events=None,
                       comparator="statistical_neighbours_2021", start_year: int = 2014,
                       end_year: int | None = None, method: str = "multiple_group",
                       family: str = "quasipoisson", panel: pd.DataFrame | None = None
                       ) -> ControlledITSResult:
    """Controlled interrupted time series of the LA's counts against a comparator series.

    `method="multiple_group"` fits both series in one log-linear count model (offset log population):
    a common intercept and trend, a treated-group intercept and trend difference, and for each event a
    level step and slope change in each group; the treated group's extra step and slope change (the
    `itsa` difference-in-differences of segments) are the effects, as rate ratios.
    `method="ratio"` models the treated counts with offset log(population x comparator rate), so the
    segments describe the treated/comparator rate ratio; same effect names and scale.
    The counterfactual follows the LA's own pre-event path plus the comparator's post-event changes.
    """
    if method not in ("multiple_group", "ratio"):
        raise CareTrendsError(f"unknown controlled ITS method {method!r}; use 'multiple_group' or 'ratio'")
    panel = _get_panel(panel)
    events = normalise_events(events)
    treated, comp, label = comparator_series(la, outcome, comparator, start_year, end_year, panel)
    unit = resolve_unit(la, panel)
    years = treated["year"].to_numpy()
    _check_event_years(events, years)
    t0 = int(years.min())
    base = _segmented(years, events, t0)
    seg_cols = [c for c in base.columns if ":" in c]
    if method == "multiple_group":
        X_t = base.copy()
        for c in ["const", "trend", *seg_cols]:
            X_t[f"treated:{c}"] = base[c]
        X_c = base.copy()
        for c in ["const", "trend", *seg_cols]:
            X_c[f"treated:{c}"] = 0.0
        X = pd.concat([X_t, X_c], ignore_index=True)
        y = np.concatenate([treated["count"].to_numpy(), comp["count"].to_numpy()])
        offset = np.log(np.concatenate([treated["population"].to_numpy(), comp["population"].to_numpy()]))
        effect_cols = {c: f"treated:{c}" for c in seg_cols}
        fit = _glm(y, X, offset, family, groups=np.repeat([1, 0], len(years)))
        X_obs = X.iloc[: len(years)]
        off_t = offset[: len(years)]
        design = "controlled_its"
    else:
        X = base
        y = treated["count"].to_numpy()
        off_t = np.log(treated["population"].to_numpy() * comp[RATE].to_numpy() / 1e4)
        effect_cols = {c: c for c in seg_cols}
        fit = _glm(y, X, off_t, family)
        X_obs = X
        design = "controlled_its_ratio"
    rows = []
    for seg, col in effect_cols.items():
        name, kind = seg.split(":")
        est, lo, hi, p, _ = _ci(fit, col)
        rows.append(dict(intervention=name, effect=kind, estimate=np.exp(est), ci_low=np.exp(lo),
                         ci_high=np.exp(hi), p_value=p, scale="ratio"))
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    # counterfactual: switch off the treated-specific post-event terms
    X_cf = X_obs.copy()
    for col in effect_cols.values():
        X_cf[col] = 0.0
    cov = np.asarray(fit.cov_params())
    beta = np.asarray(fit.params)
    eta_fit = X_obs.to_numpy() @ beta + off_t
    eta_cf = X_cf.to_numpy() @ beta + off_t
    se_cf = np.sqrt(np.einsum("ij,jk,ik->i", X_cf.to_numpy(), cov, X_cf.to_numpy()))
    q = stats.t.ppf(0.975, fit.df_resid) if family == "quasipoisson" else stats.norm.ppf(0.975)
    pop = treated["population"].to_numpy()
    cf = pd.DataFrame({"time": years, "observed": treated["count"].to_numpy(),
                       "fitted": np.exp(eta_fit), "counterfactual": np.exp(eta_cf),
                       "cf_low": np.exp(eta_cf - q * se_cf), "cf_high": np.exp(eta_cf + q * se_cf)})
    for col in ["observed", "fitted", "counterfactual", "cf_low", "cf_high"]:
        cf[f"{col}_rate"] = cf[col] / pop * 1e4
    cf["comparator_rate"] = comp[RATE].to_numpy()
    cf = cf[COUNTERFACTUAL_COLUMNS + [c for c in cf.columns if c not in COUNTERFACTUAL_COLUMNS]]
    return ControlledITSResult(design=design, outcome=outcome, unit=unit, comparator_label=label,
                               events=list(events), fit=fit, effects=effects, counterfactual=cf,
                               method=method)


# --------------------------------------------------------------------------------------------
# Difference-in-differences and event study (all LAs, two-way fixed effects)
# --------------------------------------------------------------------------------------------

def _placebo_p(treated_stat: float, placebo_stats: np.ndarray) -> tuple[int, float]:
    """Rank of the treated unit by |statistic| among itself and its placebos (1 = most extreme) and
    the permutation p-value rank / (placebos + 1)."""
    placebo_stats = np.asarray(placebo_stats, float)
    rank = 1 + int(np.sum(np.abs(placebo_stats) > abs(treated_stat) + 1e-12))
    return rank, rank / (len(placebo_stats) + 1)


def _critical_value(placebo_stats: np.ndarray, alpha: float = 0.05) -> float:
    """The smallest statistic the placebo test rejects at level alpha: with N placebos a value is
    rejected when at most floor(alpha (N + 1)) - 1 placebos exceed it (p = rank / (N + 1) <= alpha).
    Infinite when there are too few placebos to ever reject."""
    ordered = np.sort(np.asarray(placebo_stats, float))[::-1]
    m = int(np.floor(alpha * (len(ordered) + 1) + 1e-9)) - 1
    return float(ordered[m]) if m >= 0 else np.inf


def _placebo_interval(estimate: float, placebo_stats: np.ndarray, alpha: float = 0.05):
    """Interval for a constant additive effect by inverting the placebo-in-space test on |estimate|
    (Conley-Taber / Firpo-Possebom style): the effects d whose |estimate - d| the test would not
    reject. Consistent with the permutation p-value: it excludes 0 exactly when p <= alpha."""
    q = _critical_value(np.abs(placebo_stats), alpha)
    return estimate - q, estimate + q


def _within(A: np.ndarray) -> np.ndarray:
    """Two-way (unit and year) demeaning of a balanced unit x year array."""
    return A - A.mean(axis=1, keepdims=True) - A.mean(axis=0, keepdims=True) + A.mean()


def _twfe_cluster(Y: np.ndarray, regressors: dict):
    """OLS of the rates on LA and year fixed effects plus `regressors` (name -> unit x year array),
    standard errors clustered by LA. On a balanced panel the fixed effects are absorbed exactly by
    two-way demeaning (Frisch-Waugh-Lovell), as Stata's `xtreg, fe vce(cluster)` does."""
    import statsmodels.api as sm
    n, T = Y.shape
    exog = pd.DataFrame({name: _within(np.asarray(r, float)).ravel() for name, r in regressors.items()})
    return sm.OLS(_within(Y).ravel(), exog).fit(cov_type="cluster",
                                                 cov_kwds={"groups": np.repeat(np.arange(n), T)})


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class DiDResult(EffectResult):
    """Two-way fixed-effects DiD on rates with placebo-in-space inference."""

    design = "did"

    outcome: str
    unit: object
    event: object
    effects: pd.DataFrame
    counterfactual: pd.DataFrame
    placebos: pd.DataFrame
    inference: dict
    n_donors: int
    fit: object

    def summary(self) -> str:
        row = self.effects.iloc[0]
        inf = self.inference
        what = MEASURE_LABELS.get(self.outcome, self.outcome)
        direction = "lower" if row.estimate < 0 else "higher"
        return (f"Difference-in-differences for {what} in {self.unit.la_name} against {self.n_donors} "
                f"other LAs (LA and year fixed effects): after {self.event.title} (first full year "
                f"{timeline.reporting_year_label(self.event.year)}) its rate per 10,000 was "
                f"{abs(row.estimate):.1f} {direction} than the other LAs' change implies "
                f"(95% placebo interval {row.ci_low:+.1f} to {row.ci_high:+.1f}). Assigning the event to every "
                f"other LA in turn, {self.unit.la_name} ranks {inf['rank']} of {inf['n_units']} "
                f"(permutation p = {row.p_value:.3f}); the LA-clustered p-value, unreliable with one "
                f"treated LA, is {inf['cluster_p_value']:.3f}.")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        from helpers.plotting import PALETTE, mark_events
        if ax is None:
            _, ax = plt.subplots()
        cf = self.counterfactual
        ax.plot(cf["time"], cf["observed"], "o-", color=PALETTE["observed"], label=self.unit.la_name)
        ax.plot(cf["time"], cf["counterfactual"], "--", color=PALETTE["counterfactual"],
                label="counterfactual (other LAs' changes)")
        post = cf["time"] >= self.event.start
        ax.errorbar(cf.loc[post, "time"], cf.loc[post, "counterfactual"],
                    yerr=[cf.loc[post, "counterfactual"] - cf.loc[post, "cf_low"],
                          cf.loc[post, "cf_high"] - cf.loc[post, "counterfactual"]],
                    fmt="none", ecolor=PALETTE["counterfactual"], capsize=4,
                    label="95% placebo interval")
        ax.plot(cf["time"], cf["donor_mean"], ":", color=PALETTE["comparator"], label="mean of other LAs")
        mark_events(ax, {self.event.name: self.event.start - 0.5})
        ax.set_title(f"Difference-in-differences: {self.unit.la_name}, {self.outcome}")
        ax.set_xlabel("Reporting year (ending 31 March)")
        ax.set_ylabel("Rate per 10,000 children")
        ax.legend(fontsize=8)
        return ax


def _did_inputs(la, outcome, event, start_year, end_year, exclude_donors, panel):
    panel = _get_panel(panel)
    event = _one_event(event)
    unit, treated, donors = donor_pool(la, outcome, start_year, end_year, exclude_donors, panel)
    years = np.asarray(treated.index, int)
    _check_event_years([event], years, min_pre=2)
    return panel, event, unit, treated, donors, years


def fit_did(la: str, outcome: str = "starts", event=None, start_year: int = 2014,
            end_year: int | None = None, exclude_donors: Sequence[str] = (),
            panel: pd.DataFrame | None = None) -> DiDResult:
    """Panel DiD on the rate per 10,000: y_it = a_i + g_t + b * treated_i * post_t, every eligible LA.

    With one treated LA and a balanced panel the estimate is the 2x2 difference of pre/post means;
    placebo-in-space re-estimates it with the event given to each donor in turn (the real treated LA
    left out), giving the rank, permutation p-value and the interval that inverts that test.
    """
    panel, event, unit, treated, donors, years = _did_inputs(la, outcome, event, start_year,
                                                             end_year, exclude_donors, panel)
    post = years >= event.start
    Y = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    d = Y[:, post].mean(axis=1) - Y[:, ~post].mean(axis=1)  # each LA's post-minus-pre change
    estimate = d[0] - d[1:].mean()
    # placebo j: donor j "treated", the other donors as controls (the real treated LA left out)
    dd = d[1:]
    J = len(dd)
    placebo = dd - (dd.sum() - dd) / (J - 1)
    rank, p_perm = _placebo_p(estimate, placebo)
    ci_low, ci_high = _placebo_interval(estimate, placebo)
    D = np.zeros_like(Y)
    D[0, post] = 1.0
    fit = _twfe_cluster(Y, {"treated_post": D})
    cluster_p = float(fit.pvalues["treated_post"])
    effects = pd.DataFrame([dict(intervention=event.name, effect="level", estimate=estimate,
                                 ci_low=ci_low, ci_high=ci_high, p_value=p_perm, scale="difference")],
                           columns=EFFECT_COLUMNS)
    donor_mean = Y[1:].mean(axis=0)
    counter = donor_mean + (Y[0, ~post].mean() - donor_mean[~post].mean())
    cf = pd.DataFrame({"time": years, "observed": Y[0], "fitted": np.where(post, counter + estimate, counter),
                       "counterfactual": counter, "cf_low": counter + np.where(post, estimate - ci_high, 0.0),
                       "cf_high": counter + np.where(post, estimate - ci_low, 0.0),
                       "donor_mean": donor_mean})
    names = _names(panel)
    placebos = pd.DataFrame({"la_code": codes[1:], "la_name": [names.get(c, c) for c in codes[1:]],
                             "estimate": placebo})
    inference = {"rank": rank, "n_units": J + 1, "p_value": p_perm,
                 "cluster_se": float(fit.bse["treated_post"]), "cluster_p_value": cluster_p,
                 "twfe_estimate": float(fit.params["treated_post"])}
    return DiDResult(outcome=outcome, unit=unit, event=event, effects=effects, counterfactual=cf,
                     placebos=placebos, inference=inference, n_donors=J, fit=fit)


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class EventStudyResult(EffectResult):
    """Year-by-year effects relative to the year before the event (treated vs all other LAs)."""

    design = "event_study"

    outcome: str
    unit: object
    event: object
    effects: pd.DataFrame
    counterfactual: pd.DataFrame
    placebos: pd.DataFrame
    n_donors: int
    cluster: object

    def summary(self) -> str:
        eff = self.effects
        rel = eff["effect"].str.replace("year ", "").astype(int)
        pre, post = eff[rel < 0], eff[rel >= 0]
        pre_flag = (pre["p_value"] < 0.05).sum()
        text = (f"Event study for {MEASURE_LABELS.get(self.outcome, self.outcome)} in "
                f"{self.unit.la_name} around {self.event.title} (year 0 = "
                f"{timeline.reporting_year_label(self.event.year)}; reference = the year before), "
                f"against {self.n_donors} other LAs. ")
        text += (f"{pre_flag} of {len(pre)} pre-event years differ from the other LAs at the 5% level "
                 "by placebo inference" + (" (parallel pre-trends look plausible). " if pre_flag == 0 else
                                           " (the parallel-trends assumption is in doubt). "))
        if len(post):
            text += "After the event: " + "; ".join(
                f"year {int(r):+d}: {e:+.1f} per 10,000 (p = {p:.2f})"
                for r, e, p in zip(rel[rel >= 0], post["estimate"], post["p_value"])) + "."
        return text

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        from helpers.plotting import PALETTE
        if ax is None:
            _, ax = plt.subplots()
        eff = self.effects
        rel = eff["effect"].str.replace("year ", "").astype(int).to_numpy()
        ax.axhline(0, color="#999999", linewidth=1)
        ax.axvline(-0.5, color=PALETTE["event"], linestyle="--", linewidth=1)
        ax.errorbar(rel, eff["estimate"], yerr=[eff["estimate"] - eff["ci_low"], eff["ci_high"] - eff["estimate"]],
                    fmt="o", color=PALETTE["fitted"], capsize=3)
        ax.set_title(f"Event study: {self.unit.la_name}, {self.outcome} (placebo 95% intervals)")
        ax.set_xlabel(f"Years since {self.event.name} (0 = first full year)")
        ax.set_ylabel("Difference in rate per 10,000")
        return ax


def fit_event_study(la: str, outcome: str = "starts", event=None, start_year: int = 2014,
                    end_year: int | None = None, exclude_donors: Sequence[str] = (),
                    panel: pd.DataFrame | None = None) -> EventStudyResult:
    """Event study: y_it = a_i + g_t + sum_k b_k * treated_i * 1[t - T0 = k], k != -1.

    With one treated LA, b_k = (y_1t - y_1,ref) - (mean donor change); placebo-in-space gives each
    year's permutation p-value and interval; LA-clustered standard errors are kept in `.cluster`.
    """
    panel, event, unit, treated, donors, years = _did_inputs(la, outcome, event, start_year,
                                                             end_year, exclude_donors, panel)
    rel = years - event.start
    ref = int(np.flatnonzero(rel == -1)[0])
    Y = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    change = Y - Y[:, [ref]]  # each LA's change since the reference year
    est = change[0] - change[1:].mean(axis=0)
    dd = change[1:]
    J = len(dd)
    placebo = dd - (dd.sum(axis=0) - dd) / (J - 1)  # J x T
    keep = rel != -1
    regs = {}
    for k in rel[keep]:
        D = np.zeros_like(Y)
        D[0, rel == k] = 1.0
        regs[f"rel_{k:+d}"] = D
    fit = _twfe_cluster(Y, regs)
    rows = []
    for col in np.flatnonzero(keep):
        rank, p = _placebo_p(est[col], placebo[:, col])
        lo, hi = _placebo_interval(est[col], placebo[:, col])
        rows.append(dict(intervention=event.name, effect=f"year {rel[col]:+d}", estimate=est[col],
                         ci_low=lo, ci_high=hi, p_value=p, scale="difference"))
    effects = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    donor_mean = Y[1:].mean(axis=0)
    counter = Y[0, ref] + donor_mean - donor_mean[ref]
    cf = pd.DataFrame({"time": years, "observed": Y[0], "fitted": Y[0], "counterfactual": counter,
                       "cf_low": np.nan, "cf_high": np.nan, "donor_mean": donor_mean})
    cluster = pd.DataFrame({"term": list(regs), "estimate": [fit.params[k] for k in regs],
                            "se": [fit.bse[k] for k in regs], "p_value": [fit.pvalues[k] for k in regs]})
    names = _names(panel)
    placebos = pd.DataFrame(placebo, columns=years)
    placebos.insert(0, "la_name", [names.get(c, c) for c in codes[1:]])
    placebos.insert(0, "la_code", codes[1:])
    return EventStudyResult(outcome=outcome, unit=unit, event=event, effects=effects,
                            counterfactual=cf, placebos=placebos, n_donors=J, cluster=cluster)


# --------------------------------------------------------------------------------------------
# Synthetic control
# --------------------------------------------------------------------------------------------

def _affine_ls(a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """argmin_z ||a - B z|| subject to sum(z) = 1 (no sign constraint), by eliminating z_0."""
    if B.shape[1] == 1:
        return np.ones(1)
    b0 = B[:, 0]
    y = np.linalg.lstsq(B[:, 1:] - b0[:, None], a - b0, rcond=None)[0]
    return np.concatenate([[1.0 - y.sum()], y])


def synth_weights(treated_pre: np.ndarray, donors_pre: np.ndarray, v: np.ndarray | None = None,
                  *, tol: float = 1e-10, max_iter: int | None = None) -> np.ndarray:
    """Synthetic-control weights: argmin_w (a - B w)' diag(v) (a - B w), w >= 0, sum(w) = 1.

    `treated_pre` is the treated unit's pre-period predictors (T,), `donors_pre` the donors' (T, J),
    `v` optional non-negative predictor weights (T,), default all equal. Solved exactly by a
    Lawson-Hanson style primal active-set method adapted to the simplex: keep a passive set of
    positive weights, solve the equality-constrained least squares on it, step back to feasibility
    when a weight would go negative, and add the donor whose gradient most violates the KKT
    conditions until none does. Each step is one small least-squares solve, so a solve with ~150
    donors and ~10 pre-period years takes well under a millisecond-scale loop of a few iterations.
    When the treated unit lies inside the donors' convex hull the weights need not be unique
    (the fitted path is); the solver returns a sparse vertex solution.
    """
    a = np.asarray(treated_pre, dtype=float).ravel()
    B = np.asarray(donors_pre, dtype=float)
    if B.ndim != 2 or B.shape[0] != a.shape[0]:
        raise ValueError(f"donors_pre must be (T, J) with T = {a.shape[0]}; got {B.shape}")
    if not (np.isfinite(a).all() and np.isfinite(B).all()):
        raise ValueError("synth_weights needs finite pre-period values")
    T, J = B.shape
    if v is not None:
        v = np.asarray(v, dtype=float).ravel()
        if v.shape != (T,) or (v < 0).any():
            raise ValueError("v must be (T,) and non-negative")
        s = np.sqrt(v)
        a, B = a * s, B * s[:, None]
    scale = max(float(np.abs(B).max()), float(np.abs(a).max()), 1e-300)
    a, B = a / scale, B / scale  # the weights are invariant to a common scale
    if J == 1:
        return np.ones(1)
    tol_g = tol * max(1.0, T)
    w = np.zeros(J)
    k = int(np.argmin(((B - a[:, None]) ** 2).sum(axis=0)))  # best single donor
    w[k] = 1.0
    passive = np.zeros(J, dtype=bool)
    passive[k] = True
    max_iter = max_iter or 10 * J + 50
    blocked = np.zeros(J, dtype=bool)  # donors that could not enter (numerical degeneracy)
    for _ in range(max_iter):
        g = B.T @ (B @ w - a)
        g_p = g[passive].min()
        cand = np.where(passive | blocked, np.inf, g)
        j = int(np.argmin(cand))
        if not cand[j] < g_p - tol_g:
            break
        passive[j] = True
        for _inner in range(J + 1):
            idx = np.flatnonzero(passive)
            z = _affine_ls(a, B[:, idx])
            if (z > 0).all():
                w[:] = 0.0
                w[idx] = z
                break
            wi = w[idx]
            neg = z <= 0
            alpha = float(np.min(wi[neg] / (wi[neg] - z[neg])))
            new = wi + alpha * (z - wi)
            drop = idx[(new <= 1e-15) & neg] if alpha > 0 else idx[neg]
            if alpha == 0 and j in drop:
                blocked[j] = True  # entering donor cannot move: skip it (degenerate vertex)
            w[:] = 0.0
            w[idx] = new
            w[drop] = 0.0
            passive[drop] = False
            if not passive.any():  # cannot happen in exact arithmetic; recover the best vertex
                passive[k] = True
                w[:] = 0.0
                w[k] = 1.0
                break
        else:  # pragma: no cover
            break
        blocked &= ~passive
    w = np.clip(w, 0.0, None)
    return w / w.sum()


@dataclass(kw_only=True, eq=False, repr=False)  # eq/repr would compare or print whole frames
class SyntheticControlResult(EffectResult):
    """Synthetic control on the rate per 10,000 with placebo-in-space and leave-one-out."""

    design = "synthetic_control"

    outcome: str
    unit: object
    event: object
    effects: pd.DataFrame
    counterfactual: pd.DataFrame
    weights: pd.DataFrame
    pre_rmspe: float
    post_rmspe: float
    placebos: pd.DataFrame
    rank: int
    p_value: float
    leave_one_out: pd.DataFrame
    gaps: pd.DataFrame
    n_donors: int
    rmspe_ratio: float = np.nan
    pre_floor: float = 0.0  # the sampling-noise floor used for the pre-period RMSPE

    def summary(self) -> str:
        row = self.effects.iloc[0]
        top = self.weights[self.weights["weight"] >= 0.005].head(5)
        donors = ", ".join(f"{n} ({w:.2f})" for n, w in zip(top["la_name"], top["weight"]))
        cf = self.counterfactual
        pre = cf[cf["time"] < self.event.start]
        level = float(pre["observed"].abs().mean())
        fit_word = "closely" if self.pre_rmspe <= 0.1 * level else "only loosely"
        if self.pre_rmspe < 1e-6 * max(level, 1.0):
            fit_word = ("exactly - it lies inside the donors' range, so several weightings fit "
                        "equally well and the fit absorbs sampling noise -")
        direction = "below" if row.estimate < 0 else "above"
        text = (f"Synthetic control for {MEASURE_LABELS.get(self.outcome, self.outcome)} in "
                f"{self.unit.la_name}: a weighted mix of {len(self.weights[self.weights['weight'] > 0])} "
                f"of {self.n_donors} donor LAs (mainly {donors}) tracks its pre-event rate {fit_word} "
                f"(pre-period RMSPE {self.pre_rmspe:.1f} per 10,000 against a mean rate of {level:.1f}). "
                f"After {self.event.title} (first full year {timeline.reporting_year_label(self.event.year)}) "
                f"the rate averaged {abs(row.estimate):.1f} per 10,000 {direction} its synthetic control. "
                f"Its post/pre RMSPE ratio ranks {self.rank} of {len(self.placebos) + 1} "
                f"(placebo-in-space p = {self.p_value:.3f}).")
        if self.leave_one_out is not None and len(self.leave_one_out):
            lo, hi = self.leave_one_out["avg_post_gap"].min(), self.leave_one_out["avg_post_gap"].max()
            text += (f" Dropping each contributing donor in turn moves the average gap between {lo:.1f} "
                     f"and {hi:.1f}.")
        return text

    def plot(self, ax=None):
        """Observed rate against its synthetic control."""
        import matplotlib.pyplot as plt
        from helpers.plotting import PALETTE, mark_events
        if ax is None:
            _, ax = plt.subplots()
        cf = self.counterfactual
        ax.plot(cf["time"], cf["observed"], "o-", color=PALETTE["observed"], label=self.unit.la_name)
        ax.plot(cf["time"], cf["counterfactual"], "--", color=PALETTE["counterfactual"], label="synthetic control")
        ax.fill_between(cf["time"], cf["cf_low"], cf["cf_high"], color=PALETTE["counterfactual"], alpha=0.12,
                        label="placebo gap range (95%)")
        mark_events(ax, {self.event.name: self.event.start - 0.5})
        ax.set_title(f"Synthetic control: {self.unit.la_name}, {self.outcome}")
        ax.set_xlabel("Reporting year (ending 31 March)")
        ax.set_ylabel("Rate per 10,000 children")
        ax.legend(fontsize=8)
        return ax

    def plot_gaps(self, ax=None, max_pre_ratio: float | None = 5.0):
        """Gap (observed minus synthetic) for the LA and each placebo; placebos whose pre-period
        RMSPE exceeds `max_pre_ratio` x the LA's are hidden, as Abadie et al. (2010) do."""
        import matplotlib.pyplot as plt
        from helpers.plotting import PALETTE, mark_events
        if ax is None:
            _, ax = plt.subplots()
        keep = self.placebos["pre_rmspe"] <= (max_pre_ratio or np.inf) * max(self.pre_rmspe, 1e-9)
        years = self.gaps.columns.to_numpy()
        for code in self.placebos.loc[keep, "la_code"]:
            ax.plot(years, self.gaps.loc[code], color=PALETTE["comparator"], alpha=0.25, linewidth=0.8)
        ax.plot(years, self.gaps.loc[self.unit.la_code], color=PALETTE["observed"], linewidth=2.2,
                label=self.unit.la_name)
        ax.axhline(0, color="#999999", linewidth=1)
        mark_events(ax, {self.event.name: self.event.start - 0.5})
        ax.set_title(f"Gap to synthetic control: {self.unit.la_name} and {int(keep.sum())} placebos")
        ax.set_xlabel("Reporting year (ending 31 March)")
        ax.set_ylabel("Observed minus synthetic (per 10,000)")
        ax.legend(fontsize=8)
        return ax


def _placebo_fits(R: np.ndarray, pre: np.ndarray, v, units: Sequence[int], pool: np.ndarray):
    """Synthetic control of each unit in `units` from `pool` minus itself: (weights, synthetic)."""
    out = {}
    Rpre = R[:, pre]
    for i in units:
        donors = pool[pool != i]
        w = synth_weights(Rpre[i], Rpre[donors].T, v)
        out[i] = (donors, w, w @ R[donors])
    return out


def _rmspe_floors(panel, measure, codes, pre_years, pre_rates, min_pre_rmspe) -> np.ndarray:
    """Per-unit floor for the pre-period RMSPE in the post/pre ratio (see fit_synthetic_control)."""
    if not isinstance(min_pre_rmspe, str):
        return np.full(len(codes), float(min_pre_rmspe))
    if min_pre_rmspe != "poisson":
        raise CareTrendsError(f"min_pre_rmspe must be 'poisson' or a number, not {min_pre_rmspe!r}")
    pop = wide_rates(panel, measure, int(pre_years.min()), int(pre_years.max()), value="population")
    mean_pop = pop.reindex(codes).mean(axis=1).to_numpy()
    floors = np.sqrt(np.clip(pre_rates.mean(axis=1), 0, None) * 1e4 / mean_pop)
    return np.where(np.isfinite(floors), floors, 1e-9)


def fit_synthetic_control(la: str, outcome: str = "starts", event=None, start_year: int = 2014,
                          end_year: int | None = None, exclude_donors: Sequence[str] = (),
                          panel: pd.DataFrame | None = None, v: np.ndarray | None = None,
                          placebos: bool = True, leave_one_out: bool = True,
                          max_placebos: int | None = None, min_pre_rmspe: float | str = "poisson"
                          ) -> SyntheticControlResult:
    """Abadie-style synthetic control on the rate per 10,000, predictors = every pre-period year.

    Weights come from `synth_weights` (exact simplex QP, optional predictor weights `v`, one per
    pre-period year). Placebo-in-space refits every donor against the other donors (the treated LA
    never a donor) and ranks the LA's post/pre RMSPE ratio; `max_placebos` caps the number (the first
    donors in code order) if a run must be short. Leave-one-out drops each donor with weight > 0.
    With few pre-period years and many donors, units inside the donors' convex hull are fitted
    more closely than their own sampling noise allows (they fit noise) and the post/pre ratio would
    divide by ~0, so every placebo would outrank a real effect. In the ratio each unit's pre-period
    RMSPE is therefore floored at `min_pre_rmspe`: by default ("poisson") the standard deviation a
    Poisson count adds to that unit's rate, sqrt(rate x 10,000 / population) over the pre-period;
    a number gives one floor (per 10,000) for all units.
    """
    panel, event, unit, treated, donors, years = _did_inputs(la, outcome, event, start_year,
                                                             end_year, exclude_donors, panel)
    pre = years < event.start
    R = np.vstack([treated.to_numpy(), donors.to_numpy()])
    codes = [unit.la_code, *donors.index.astype(str)]
    names = _names(panel)
    pool = np.arange(1, len(codes))
    fits = _placebo_fits(R, pre, v, [0], pool)
    d_idx, w, synth = fits[0]
    gap = R[0] - synth

    def rmspe(g, mask):
        return float(np.sqrt(np.mean(g[mask] ** 2)))

    pre_r, post_r = rmspe(gap, pre), rmspe(gap, ~pre)
    gaps = {unit.la_code: gap}
    rows = []
    if placebos:
        units = list(pool if max_placebos is None else pool[:max_placebos])
        for i, (_, _, s) in _placebo_fits(R, pre, v, units, pool).items():
            g = R[i] - s
            gaps[codes[i]] = g
            rows.append(dict(la_code=codes[i], la_name=names.get(codes[i], codes[i]),
                             pre_rmspe=rmspe(g, pre), post_rmspe=rmspe(g, ~pre),
                             avg_post_gap=float(g[~pre].mean())))
    placebo_tab = pd.DataFrame(rows, columns=["la_code", "la_name", "pre_rmspe", "post_rmspe", "avg_post_gap"])
    placebo_tab["la_code"] = placebo_tab["la_code"].astype(str)
    floors = _rmspe_floors(panel, outcome, codes, years[pre], R[:, pre], min_pre_rmspe)
    placebo_tab["pre_floor"] = [floors[codes.index(c)] for c in placebo_tab["la_code"]]
    placebo_tab["ratio"] = placebo_tab["post_rmspe"] / np.maximum(placebo_tab["pre_rmspe"],
                                                                   placebo_tab["pre_floor"])
    ratio = post_r / max(pre_r, floors[0])
    rank = 1 + int((placebo_tab["ratio"] > ratio + 1e-12).sum())
    p_value = rank / (len(placebo_tab) + 1) if len(placebo_tab) else np.nan
    gaps_df = pd.DataFrame(gaps, index=years).T
    avg_gap = float(gap[~pre].mean())
    if len(placebo_tab):
        pgaps = gaps_df.drop(index=unit.la_code).to_numpy()
        band_lo, band_hi = np.quantile(pgaps, [0.025, 0.975], axis=0)
        # Effects d not rejected by the RMSPE-ratio test once subtracted from the post-period gap
        # (weights and placebos do not change): RMSPE_post(gap - d) / pre < critical ratio.
        q = _critical_value(placebo_tab["ratio"].to_numpy())
        post_gap = gap[~pre]
        half2 = (q * max(pre_r, floors[0])) ** 2 - post_gap.var()
        ci_low, ci_high = ((avg_gap - np.sqrt(half2), avg_gap + np.sqrt(half2)) if half2 > 0
                           else (np.nan, np.nan))
    else:
        band_lo = band_hi = np.zeros_like(gap)
        ci_low = ci_high = np.nan
    effects = pd.DataFrame([dict(intervention=event.name, effect="level", estimate=avg_gap,
                                 ci_low=ci_low, ci_high=ci_high, p_value=p_value, scale="difference")],
                           columns=EFFECT_COLUMNS)
    cf = pd.DataFrame({"time": years, "observed": R[0], "fitted": R[0], "counterfactual": synth,
                       "cf_low": synth + band_lo, "cf_high": synth + band_hi, "gap": gap})
    weights = pd.DataFrame({"la_code": [codes[i] for i in d_idx],
                            "la_name": [names.get(codes[i], codes[i]) for i in d_idx], "weight": w})
    weights = weights.sort_values(["weight", "la_code"], ascending=[False, True], ignore_index=True)
    loo_rows = []
    if leave_one_out:
        Rpre = R[:, pre]
        for code in weights.loc[weights["weight"] > 1e-6, "la_code"]:
            i = codes.index(code)
            rest = pool[pool != i]
            w_l = synth_weights(Rpre[0], Rpre[rest].T, v)
            g = R[0] - w_l @ R[rest]
            loo_rows.append(dict(dropped_code=code, dropped_name=names.get(code, code),
                                 pre_rmspe=rmspe(g, pre), avg_post_gap=float(g[~pre].mean())))
    loo = pd.DataFrame(loo_rows, columns=["dropped_code", "dropped_name", "pre_rmspe", "avg_post_gap"])
    return SyntheticControlResult(outcome=outcome, unit=unit, event=event, effects=effects,
                                  counterfactual=cf, weights=weights, pre_rmspe=pre_r,
                                  post_rmspe=post_r, placebos=placebo_tab, rank=rank, p_value=p_value,
                                  leave_one_out=loo, gaps=gaps_df, n_donors=len(pool),
                                  rmspe_ratio=ratio, pre_floor=float(floors[0]))


# --------------------------------------------------------------------------------------------
# Side by side
# --------------------------------------------------------------------------------------------

DESIGN_LABELS = {"its": "Single-series ITS", "controlled_its": "Controlled ITS (two groups)",
                 "controlled_its_ratio": "Controlled ITS (comparator as offset)",
                 "did": "Difference-in-differences", "synthetic_control": "Synthetic control"}


def compare_designs(results: Mapping[str, EffectResult], event: str, effect: str = "level") -> pd.DataFrame:
    """One row per design: the `effect` of `event`, its direction and whether the interval excludes
    no change. `results` maps a label to a result (any EffectResult)."""
    rows = []
    for label, res in results.items():
        eff = res.effects
        hit = eff[(eff["intervention"] == event) & (eff["effect"] == effect)]
        if hit.empty:
            continue
        r = hit.iloc[0]
        null = 1.0 if r["scale"] == "ratio" else 0.0
        direction = "down" if r["estimate"] < null else "up"
        clear = (bool((r["ci_high"] < null) or (r["ci_low"] > null)) if np.isfinite(r["ci_low"])
                 else bool(r["p_value"] <= 0.05))
        rows.append(dict(design=label, estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                         p_value=r["p_value"], scale=r["scale"], direction=direction, clear=clear))
    return pd.DataFrame(rows, columns=["design", "estimate", "ci_low", "ci_high", "p_value", "scale",
                                       "direction", "clear"])


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def agreement_text(table: pd.DataFrame, la: str, event_title: str, outcome: str) -> str:
    """Plain-English statement of where the designs agree and disagree (from `compare_designs`):
    a design "shows" a change when its interval (or placebo test) excludes no change; otherwise its
    estimate only "leans" one way."""
    if table.empty:
        return f"No design estimated a level change after {event_title}."
    what = f"{MEASURE_LABELS.get(outcome, outcome)} in {la} after {event_title}"
    word = {"down": "fall", "up": "rise"}
    clear = {d: table[(table["clear"]) & (table["direction"] == d)]["design"].tolist() for d in word}
    lean = {d: table[(~table["clear"]) & (table["direction"] == d)]["design"].tolist() for d in word}
    n = len(table)
    if clear["down"] and clear["up"]:
        verb = "shows" if len(clear["down"]) == 1 else "show"
        text = (f"The designs disagree on {what}: {_join(clear['down'])} {verb} a clear fall but "
                f"{_join(clear['up'])} a clear rise.")
        rest = lean["down"] + lean["up"]
        if rest:
            text += f" {_join(rest)} cannot separate a change from no change."
        return text
    for d in word:
        if clear[d]:
            other = "up" if d == "down" else "down"
            text = f"{_join(clear[d])} show{'s' if len(clear[d]) == 1 else ''} a clear {word[d]} in {what}."
            if lean[d] and not lean[other]:
                text += (f" The other designs ({_join(lean[d])}) point the same way but cannot "
                         "separate it from no change.")
            elif lean[other] and not lean[d]:
                text += (f" The other designs ({_join(lean[other])}) cannot separate a change from "
                         f"no change and lean towards a {word[other]}: the designs do not agree.")
            elif lean[d] and lean[other]:
                text += (f" Of the others, {_join(lean[d])} lean the same way and {_join(lean[other])} "
                         "the other way, none clearly.")
            else:
                text = f"All {n} designs show a clear {word[d]} in {what}."
            return text
    if not lean["up"] or not lean["down"]:
        d = "down" if lean["down"] else "up"
        return (f"None of the {n} designs can separate a change in {what} from no change, though "
                f"all {n} estimates lean towards a {word[d]}.")
    return (f"None of the {n} designs can separate a change in {what} from no change, and they do "
            f"not even agree on the direction ({_join(lean['down'])} lean towards a fall, "
            f"{_join(lean['up'])} towards a rise).")


# --------------------------------------------------------------------------------------------
# Simulated panel (tests, benchmarks, examples) - labelled synthetic
# --------------------------------------------------------------------------------------------

def simulate_panel(n_las: int = 40, start_year: int = 2010, end_year: int = 2025,
                   treated: int = 0, event_year: int | None = None, level_ratio: float = 1.0,
                   slope_ratio: float = 1.0, effect_measures: Sequence[str] = ("starts",),
                   n_regions: int = 4, seed: int = 1, noise: float = 0.03,
                   trend_sd: float = 0.005) -> pd.DataFrame:
    """A SYNTHETIC panel shaped like `helpers.data.load_panel()`: LAs, regions and England.

    Log rates = LA level + LA trend (sd `trend_sd`) + common year shocks + noise; counts are
    Poisson. The LA at
    position `treated` (code '800' + position) has its expected rate multiplied by `level_ratio` and
    by `slope_ratio` per year from `event_year` on. Every row has rate_source 'synthetic' and the
    expected rate without the effect in `rate_counterfactual` (so tests know the truth).
    """
    rng = np.random.default_rng(seed)
    years = np.arange(start_year, end_year + 1)
    T = len(years)
    base = {"starts": 25.0, "cla_31_march": 70.0, "ceased": 24.0}
    alpha = rng.normal(0.0, 0.3, n_las)
    beta = rng.normal(0.02, trend_sd, n_las)
    alpha[treated], beta[treated] = 0.0, 0.02  # treated sits in the middle of the donors
    shock = np.cumsum(rng.normal(0.0, 0.04, T))
    pop = rng.uniform(2e4, 2.5e5, n_las)
    pop[treated] = 2e5  # a large treated LA, so its Poisson noise does not swamp the effect
    pop = pop[:, None] * (1 + 0.003 * (years - start_year))[None, :]
    codes = [str(800 + i) for i in range(n_las)]
    regions = [f"Region {chr(65 + i % n_regions)}" for i in range(n_las)]
    frames = []
    for m_i, (measure, b) in enumerate(base.items()):
        log_rate = (np.log(b) + alpha[:, None] + beta[:, None] * (years - start_year)[None, :]
                    + shock[None, :] + rng.normal(0.0, noise, (n_las, T)) + 0.1 * m_i)
        rate_cf = np.exp(log_rate)
        rate = rate_cf.copy()
        if event_year is not None and measure in effect_measures:
            post = years >= event_year
            rate[treated, post] *= level_ratio * slope_ratio ** (years[post] - event_year)
        count = rng.poisson(rate * pop / 1e4).astype(float)
        frames.append(pd.DataFrame({
            "year": np.tile(years, n_las), "geographic_level": LA_LEVEL,
            "la_code": np.repeat(codes, T), "new_la_code": np.repeat([f"E0S{c}" for c in codes], T),
            "la_name": np.repeat([f"Simulated LA {c}" for c in codes], T),
            "region_name": np.repeat(regions, T), "measure": measure, "count": count.ravel(),
            "population": pop.ravel(), "rate_counterfactual": rate_cf.ravel()}))
    las = pd.concat(frames, ignore_index=True)
    las[RATE] = las["count"] / las["population"] * 1e4
    agg = []
    for level, key in (("Regional", "region_name"), ("National", None)):
        grouped = las.groupby(["measure", "year"] + ([key] if key else []), as_index=False)[
            ["count", "population"]].sum()
        grouped["geographic_level"] = level
        if key:
            grouped["la_name"] = grouped[key]
            grouped["new_la_code"] = "E12S" + grouped[key].str[-1]
        else:
            grouped["la_name"], grouped["region_name"], grouped["new_la_code"] = "England", None, "E92000001"
        grouped["la_code"] = None
        grouped[RATE] = grouped["count"] / grouped["population"] * 1e4
        agg.append(grouped)
    panel = pd.concat([las, *agg], ignore_index=True)
    panel["rate_source"] = "synthetic"
    panel["boundary_break"] = False
    cols = ["year", "geographic_level", "la_code", "new_la_code", "la_name", "region_name", "measure",
            "count", "population", RATE, "rate_source", "boundary_break", "rate_counterfactual"]
    return panel[cols].sort_values(["geographic_level", "la_code", "measure", "year"],
                                   ignore_index=True)


# --------------------------------------------------------------------------------------------
# One call for the comparisons notebook
# --------------------------------------------------------------------------------------------

@dataclass
class Comparison:
    """Every design for one outcome: the single-series ITS beside the comparative designs."""
    outcome: str
    event: Event  # the event DiD and synthetic control look at
    its: EffectResult | None
    controlled: ControlledITSResult
    controlled_ratio: ControlledITSResult
    did: DiDResult
    event_study: EventStudyResult
    synth: SyntheticControlResult

    def designs(self) -> dict[str, EffectResult]:
        out = {} if self.its is None else {DESIGN_LABELS["its"]: self.its}
        out.update({DESIGN_LABELS["controlled_its"]: self.controlled,
                    DESIGN_LABELS["controlled_its_ratio"]: self.controlled_ratio,
                    DESIGN_LABELS["did"]: self.did,
                    DESIGN_LABELS["synthetic_control"]: self.synth})
        return out

    def records(self, **context) -> list[dict]:
        """results.json records of the comparative designs (the ITS notebook publishes the ITS)."""
        out = []
        for res in (self.controlled, self.controlled_ratio, self.did, self.event_study, self.synth):
            out.extend(res.to_records(outcome=self.outcome, **context))
        return out


def run_comparisons(la: str, outcomes: Sequence[str], events, comparator="statistical_neighbours_2021",
                    start_year: int = 2014, end_year: int | None = None,
                    exclude_donors: Sequence[str] = (), family: str = "quasipoisson",
                    design_event: str | None = None, panel: pd.DataFrame | None = None,
                    with_its: bool = True) -> dict[str, Comparison]:
    """Run every design for each outcome. Controlled ITS uses every event (the declared impact
    model); DiD, event study and synthetic control use `design_event` (default: the last event)."""
    panel = _get_panel(panel)
    evs = normalise_events(events)
    if design_event is None:
        focus = evs[-1]
    else:
        match = [e for e in evs if e.name == design_event]
        if not match:
            raise CareTrendsError(f"design_event {design_event!r} is not one of the events "
                                  f"({', '.join(e.name for e in evs)}); use one of those names")
        focus = match[0]
    unit = resolve_unit(la, panel)
    # the controlled ITS is a count model: other families chosen for the single-series ITS
    # (negbin, ols, ar1, sarimax) fall back to quasi-Poisson here
    cits_family = family if family in ("poisson", "quasipoisson") else "quasipoisson"
    its_fits = {}
    if with_its:
        from helpers import views
        its_fits = views.fit_outcomes(unit.la_code, list(outcomes), events, family=family,
                                      start_year=start_year, end_year=end_year,
                                      focus_event=focus.name)
    out = {}
    for outcome in outcomes:
        common = dict(start_year=start_year, end_year=end_year, panel=panel)
        out[outcome] = Comparison(
            outcome=outcome, event=focus, its=its_fits.get(outcome),
            controlled=fit_controlled_its(unit.la_code, outcome, evs, comparator, family=cits_family,
                                          **common),
            controlled_ratio=fit_controlled_its(unit.la_code, outcome, evs, comparator,
                                                method="ratio", family=cits_family, **common),
            did=fit_did(unit.la_code, outcome, focus, exclude_donors=exclude_donors, **common),
            event_study=fit_event_study(unit.la_code, outcome, focus, exclude_donors=exclude_donors,
                                        **common),
            synth=fit_synthetic_control(unit.la_code, outcome, focus, exclude_donors=exclude_donors,
                                        **common))
    return out


def side_by_side(comparisons: Mapping[str, Comparison]) -> pd.DataFrame:
    """The design event's level effect from every design and outcome, formatted for reading."""
    rows = []
    for outcome, c in comparisons.items():
        table = compare_designs(c.designs(), c.event.name)
        for r in table.itertuples():
            ratio = r.scale == "ratio"
            interval = ("-" if not np.isfinite(r.ci_low) else
                        (f"{r.ci_low:.2f} to {r.ci_high:.2f}" if ratio else f"{r.ci_low:+.1f} to {r.ci_high:+.1f}"))
            rows.append({"outcome": MEASURE_LABELS.get(outcome, outcome), "design": r.design,
                         "estimate": f"{r.estimate:.2f}" if ratio else f"{r.estimate:+.1f}",
                         "95% interval": interval,
                         "scale": "rate ratio" if ratio else "difference per 10,000",
                         "p-value": f"{r.p_value:.3f}",
                         "reading": ("clear " if r.clear else "no clear ") + ("fall" if r.direction == "down" else "rise")
                         if r.clear else "no clear change"})
    return pd.DataFrame(rows)


def reading(comparison: Comparison, la_name: str) -> str:
    """Plain English for one outcome: where the designs agree and disagree, and the caveats."""
    c = comparison
    table = compare_designs(c.designs(), c.event.name)
    text = agreement_text(table, la_name, c.event.title, c.outcome)
    return text + ("" if not (notes := caveats(c)) else " " + " ".join(notes))


def caveats(c: Comparison) -> list[str]:
    """Warnings a reader needs to weigh the designs, generated from the fits."""
    notes = []
    es = c.event_study.effects
    rel = es["effect"].str.replace("year ", "").astype(int)
    pre = es[rel < 0]
    if len(pre) and (pre["p_value"] < 0.05).sum() > 0:
        notes.append(f"The event study finds {int((pre['p_value'] < 0.05).sum())} of {len(pre)} "
                     "pre-event years already unusual against the other LAs, so the "
                     "difference-in-differences' parallel-trends assumption is doubtful.")
    first_year = int(c.synth.counterfactual["time"].min())
    earlier = [ev.title for ev in c.controlled.events
               if ev.name != c.event.name and first_year < ev.start <= c.event.start]
    if earlier:
        notes.append(f"The pre-event years of DiD and synthetic control include {_join(earlier)}, so "
                     f"they measure the change after {c.event.title} against all years before it.")
    n_post = int((c.synth.counterfactual["time"] >= c.event.start).sum())
    if n_post < 2:
        notes.append(f"Only {n_post} reporting year follows {c.event.title}, so DiD and synthetic "
                     "control rest on a single year.")
    level = float(c.synth.counterfactual.loc[c.synth.counterfactual["time"] < c.event.start, "observed"].mean())
    if c.synth.pre_rmspe < 1e-6 * max(level, 1.0):
        notes.append("The synthetic control reproduces the pre-event years more exactly than their "
                     "sampling noise allows (few pre-event years, many donors), so its weights are "
                     "not unique and its gap is noisier than the fit suggests.")
    if c.synth.pre_rmspe > 0.1 * level:
        notes.append(f"The synthetic control fits the pre-event years only loosely (RMSPE "
                     f"{c.synth.pre_rmspe:.1f} per 10,000 on a rate near {level:.0f}).")
    loo = c.synth.leave_one_out
    if len(loo) and (np.sign(loo["avg_post_gap"]) != np.sign(c.synth.effects["estimate"].iloc[0])).any():
        notes.append("Dropping one donor can flip the sign of the synthetic-control gap.")
    return notes


def controlled_table(comparisons: Mapping[str, Comparison]) -> pd.DataFrame:
    """Every controlled-ITS estimate (both methods, every event) with readable intervals."""
    rows = []
    for outcome, c in comparisons.items():
        titles = {ev.name: ev.title for ev in c.controlled.events}
        for label, res in (("two groups", c.controlled), ("comparator as offset", c.controlled_ratio)):
            for r in res.effects.itertuples():
                rows.append({"outcome": MEASURE_LABELS.get(outcome, outcome),
                             "event": titles.get(r.intervention, r.intervention),
                             "effect": "level change" if r.effect == "level" else "trend change (per year)",
                             "model": label,
                             "ratio (95% CI)": format_interval(r.estimate, r.ci_low, r.ci_high, r.scale),
                             "p-value": f"{r.p_value:.3f}"})
    return pd.DataFrame(rows)


def weights_table(res: SyntheticControlResult, min_weight: float = 0.001) -> pd.DataFrame:
    """Donors with weight >= min_weight, with the average post-event gap when each is left out."""
    w = res.weights[res.weights["weight"] >= min_weight]
    loo = res.leave_one_out.set_index("dropped_code")["avg_post_gap"]
    return pd.DataFrame({"donor": w["la_name"].to_numpy(), "LA code": w["la_code"].to_numpy(),
                         "weight": [f"{x:.3f}" for x in w["weight"]],
                         "average gap without it": [f"{loo.get(c, float('nan')):+.1f}"
                                                    for c in w["la_code"]]})
