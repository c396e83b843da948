"""A declared target (e.g. Staffordshire's 848 children looked after by 31 March 2026): the
trend projected to the target date with a prediction interval, the verdict ("on track", "off
track", "met", "missed") and the chart of actual against target.

The projection is a quasi-Poisson log-linear trend (log link, counts, Pearson dispersion) fitted
to the years since the primary event took effect (at least MIN_YEARS of them; otherwise the last
MIN_YEARS + 2 years), extrapolated to the target's reporting year. Its 95% prediction interval
adds the trend's own uncertainty and the year-to-year noise on the log scale (delta method:
var = x' V x + dispersion / mu, t quantile on the residual degrees of freedom), as for a
prediction interval of a generalised linear model (e.g. Faraway 2016, *Extending the Linear
Model with R*, ch. 8). It is a projection of the recent trend, not a forecast of policy.

The verdict rule (declared before the data are seen): when the target year's figure is in the
data, **met** if it reached the target, else **missed**; before that, **on track** if the
projected figure reaches the target, else **off track**. "Reaches" means at or below the target
for a reduction target (target below the baseline, or below the latest figure when no baseline
is given) and at or above it otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.api as sm
from matplotlib.ticker import MaxNLocator
from scipy import stats

from helpers.core import timeline, vocab
from helpers.present import charts

MIN_YEARS = 3
MET, MISSED, ON_TRACK, OFF_TRACK = "met", "missed", "on_track", "off_track"
TARGET_WORDS = {MET: "Met", MISSED: "Missed", ON_TRACK: "On track", OFF_TRACK: "Off track"}


@dataclass
class TargetProjection:
    outcome: str
    target: float
    target_year: int
    by: str
    baseline: float | None
    reduction: bool
    latest_year: int
    latest: float
    fit_from: int
    projected: float | None
    low: float | None
    high: float | None
    actual: float | None  # the target year's figure, once published
    verdict: str
    description: str = ""

    @property
    def verdict_words(self) -> str:
        return TARGET_WORDS[self.verdict]

    def reaches(self, value: float) -> bool:
        return value <= self.target if self.reduction else value >= self.target

    @property
    def sentence(self) -> str:
        """'The target is 848 or fewer by 31 March 2026 (from 1,248); on 31 March 2025 the
        figure was 1,306. The trend since 2020-21 projects about 1,330 (95% prediction interval
        1,180 to 1,500).'"""
        when = _date_words(self.by)
        way = "or fewer" if self.reduction else "or more"
        base = f" (from {self.baseline:,.0f})" if self.baseline is not None else ""
        text = (f"The target is {self.target:,.0f} {way} by {when}{base}; "
                f"{_figure_words(self.outcome, self.latest_year)} was {self.latest:,.0f}.")
        if self.actual is not None:
            return text
        if self.projected is not None:
            text += (f" The trend since {timeline.reporting_year_label(self.fit_from)} projects "
                     f"about {self.projected:,.0f} by then (95% prediction interval "
                     f"{self.low:,.0f} to {self.high:,.0f})")
            inside = self.low <= self.target <= self.high
            text += ("; the target lies inside that range." if inside else
                     "; the target lies outside that range.")
        return text

    @property
    def short(self) -> str:
        """'848 or fewer by 31 March 2026; the recent trend projects about 1,349 (95% prediction
        interval 1,119 to 1,626).'"""
        way = "or fewer" if self.reduction else "or more"
        text = f"{self.target:,.0f} {way} by {_date_words(self.by)}"
        if self.actual is not None:
            return text + f"; the figure was {self.actual:,.0f}."
        if self.projected is not None:
            return (text + f"; the recent trend projects about {self.projected:,.0f} (95% "
                    f"prediction interval {self.low:,.0f} to {self.high:,.0f}).")
        return text + "."

    def to_json(self) -> dict:
        out = asdict(self)
        out["verdict_words"] = self.verdict_words
        out["sentence"] = self.sentence
        out["short"] = self.short
        return out


def _date_words(iso: str) -> str:
    d = pd.Timestamp(iso)
    return f"{d.day} {d.strftime('%B')} {d.year}"


def _figure_words(outcome: str, year: int) -> str:
    if outcome in vocab.STOCK_MEASURES:
        return f"on 31 March {year} the figure"
    return f"in {timeline.reporting_year_label(year)} the figure"


def target_verdict(reduction: bool, target: float, *, actual: float | None = None,
                   projected: float | None = None) -> str:
    """The declared rule: met/missed from the target year's figure when published, else on/off
    track from the projection."""
    def reaches(v):
        return v <= target if reduction else v >= target
    if actual is not None:
        return MET if reaches(actual) else MISSED
    if projected is not None and reaches(projected):
        return ON_TRACK
    return OFF_TRACK


def project(series: pd.DataFrame, year: int, fit_from: int, level: float = 0.95):
    """Quasi-Poisson log-linear trend through series (year, count) from `fit_from`, projected
    to `year`: (point, low, high) with a `level` prediction interval."""
    rows = series[(series["year"] >= fit_from)].dropna(subset=["count"])
    x = rows["year"].to_numpy(float) - rows["year"].min()
    design = sm.add_constant(x)
    model = sm.GLM(rows["count"].to_numpy(float), design, family=sm.families.Poisson())
    fit = model.fit(scale="X2")  # quasi-Poisson: dispersion from Pearson's chi-squared
    x_new = np.array([1.0, year - rows["year"].min()])
    eta = float(x_new @ fit.params)
    var_eta = float(x_new @ fit.cov_params() @ x_new)
    mu = float(np.exp(eta))
    dispersion = float(fit.scale)
    sd = np.sqrt(var_eta + dispersion / mu)
    q = stats.t.ppf(0.5 + level / 2, max(int(fit.df_resid), 1))
    return mu, float(np.exp(eta - q * sd)), float(np.exp(eta + q * sd))


def track_target(target, series: pd.DataFrame, event_year: int | None = None) -> TargetProjection:
    """The target's verdict from the official series (year, count) of its outcome.
    `target`: a `helpers.spec.Target`; `event_year`: the primary event's first full year."""
    rows = series.dropna(subset=["count"]).sort_values("year")
    latest = rows.iloc[-1]
    year = int(target.year)
    actual_rows = rows[rows["year"] == year]
    actual = float(actual_rows["count"].iloc[0]) if len(actual_rows) else None
    known = rows[rows["year"] <= year] if actual is not None else rows
    latest = known.iloc[-1]
    reference = target.baseline if target.baseline is not None else float(latest["count"])
    reduction = target.value < reference
    last_year = int(latest["year"])
    fit_from = event_year if event_year is not None else last_year - MIN_YEARS - 1
    if last_year - fit_from + 1 < MIN_YEARS:
        fit_from = last_year - MIN_YEARS - 1
    projected = low = high = None
    if actual is None and year > last_year:
        projected, low, high = project(rows, year, fit_from)
    verdict = target_verdict(reduction, target.value, actual=actual, projected=projected)
    return TargetProjection(outcome=target.outcome, target=float(target.value), target_year=year,
                            by=str(target.by), baseline=target.baseline, reduction=reduction,
                            latest_year=last_year, latest=float(latest["count"]),
                            fit_from=int(fit_from), projected=projected, low=low, high=high,
                            actual=actual, verdict=verdict, description=target.description)


def chart_table(tp: TargetProjection, series: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the target chart (published figures, the target, the projection)."""
    rows = series.dropna(subset=["count"]).sort_values("year")
    out = pd.DataFrame({"reporting year": [timeline.reporting_year_label(int(y))
                                           for y in rows["year"]],
                        "published figure": rows["count"].round(0).astype(int)})
    extra = {"reporting year": timeline.reporting_year_label(tp.target_year),
             "published figure": tp.actual, "target": tp.target}
    if tp.projected is not None:
        extra.update({"projected": round(tp.projected), "projection low (95%)": round(tp.low),
                      "projection high (95%)": round(tp.high)})
    if tp.actual is None:
        out = pd.concat([out, pd.DataFrame([extra])], ignore_index=True)
    else:
        out["target"] = np.where(out["reporting year"] == extra["reporting year"], tp.target,
                                 np.nan)
    return out


def plot_target(tp: TargetProjection, series: pd.DataFrame, la_name: str, ax=None):
    """Actual against target, with the recent trend projected to the target year and its 95%
    prediction interval."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    rows = series.dropna(subset=["count"]).sort_values("year")
    ax.plot(rows["year"], rows["count"], color=charts.PALETTE["observed"], marker="o",
            markersize=5, linewidth=1.5, label="Published figure")
    if tp.projected is not None:
        ax.plot([tp.latest_year, tp.target_year], [tp.latest, tp.projected],
                color=charts.PALETTE["fitted"], linestyle="--", linewidth=2,
                label=f"Trend since {timeline.reporting_year_label(tp.fit_from)}, projected")
        ax.errorbar([tp.target_year], [tp.projected],
                    yerr=[[tp.projected - tp.low], [tp.high - tp.projected]],
                    color=charts.PALETTE["fitted"], capsize=6, linewidth=2, marker="o",
                    label="Projection: 95% prediction interval")
    ax.scatter([tp.target_year], [tp.target], marker="*", s=260, zorder=4,
               color=charts.PALETTE["counterfactual"], label=f"Target: {tp.target:,.0f}")
    ax.axhline(tp.target, color=charts.PALETTE["counterfactual"], linewidth=1, linestyle=":")
    if tp.baseline is not None:
        ax.axhline(tp.baseline, color=charts.PALETTE["comparator"], linewidth=1, linestyle=":")
        ax.annotate(f"Baseline {tp.baseline:,.0f}", (rows["year"].min(), tp.baseline),
                    xytext=(0, 4), textcoords="offset points", fontsize=10,
                    color=charts.PALETTE["comparator"])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Year ending 31 March")
    ax.set_ylabel(vocab.measure_label(tp.outcome))
    ax.set_title(charts.wrap(f"{la_name}: {tp.verdict_words.lower()} for the target", 48))
    low = min(float(rows["count"].min()), tp.target, tp.low or tp.target) * 0.9
    ax.set_ylim(bottom=max(0, low))
    charts.legend_below(ax)
    charts.set_alt_text(ax.figure, f"{vocab.measure_label(tp.outcome)} in {la_name} against "
                        f"the target. {tp.verdict_words}. {tp.sentence}")
    return ax
