"""Words, charts and tables for the early-help pathway: where along referral -> children in need
-> child protection -> care entry a change appears, and spend on children looked after as
context."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.core import timeline, vocab
from helpers.models.pathway import PathwayResult
from helpers.present import charts
from helpers.present.text import format_interval, join_words

#: Stages whose year-on-year changes differ by less than this (in proportion) "moved together".
TOGETHER = 0.10


def stage_label(stage: str) -> str:
    return vocab.measure_label(stage)


def plot_funnel(res: PathwayResult, events: dict | None = None):
    """Each stage's rate per 10,000 children for the LA and its comparator, one panel a stage."""
    n = len(res.stages)
    fig, axes = plt.subplots(int(np.ceil(n / 2)), 2, figsize=(10, 3.4 * int(np.ceil(n / 2))),
                             sharex=True, squeeze=False)
    for ax, stage in zip(axes.ravel(), res.stages):
        rows = res.rates[res.rates["stage"] == stage]
        ax.plot(rows["year"], rows["la_rate"], "o-", color=charts.PALETTE["observed"],
                label=res.la_name)
        ax.plot(rows["year"], rows["comparator_rate"], "s:", color=charts.PALETTE["comparator"],
                label=res.comparator_label)
        if events:
            charts.mark_events(ax, events)
        ax.set_title(stage_label(stage), fontsize=10)
        ax.set_ylabel("per 10,000 children")
        ax.set_ylim(bottom=0)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8, loc="lower left", frameon=False)
    fig.suptitle(f"{res.la_name}: the route into care, stage by stage (rate per 10,000 children)")
    fig.supxlabel("Reporting year ending 31 March")
    fig.tight_layout()
    return fig


def changes_table(res: PathwayResult) -> pd.DataFrame:
    """Per stage: the last two years' counts and the change, and the level change at the event
    from each design."""
    yoy = res.year_on_year().set_index("stage")
    level = res.level_changes
    year = int(yoy["year"].iloc[0])
    rows = []
    for stage in res.stages:
        row = {"Stage": stage_label(stage),
               timeline.reporting_year_label(year - 1): f"{yoy.loc[stage, 'before']:,.0f}",
               timeline.reporting_year_label(year): f"{yoy.loc[stage, 'after']:,.0f}",
               "Change": f"{100 * yoy.loc[stage, 'change']:+.0f}%"}
        for design, name in (("its", "Against its own trend"),
                             ("controlled_its", "Against the comparator")):
            hit = level[(level["stage"] == stage) & (level["design"] == design)]
            row[f"{name} (rate ratio, 95% CI)"] = (
                format_interval(*hit.iloc[0][["estimate", "ci_low", "ci_high"]]) if len(hit)
                else "not estimable")
        rows.append(row)
    return pd.DataFrame(rows)


def _clear(res: PathwayResult, design: str = "its") -> dict[str, str]:
    """Stage -> 'fall' / 'rise' where the design's interval excludes no change."""
    out = {}
    level = res.level_changes
    for row in level[level["design"] == design].itertuples():
        if row.ci_high < 1:
            out[row.stage] = "fall"
        elif row.ci_low > 1:
            out[row.stage] = "rise"
    return out


def reading(res: PathwayResult, event_title: str) -> str:
    """Where in the pathway the change appears, by a rule declared here before the data:
    (1) a stage "shows a change" when its single-series ITS interval for the event excludes no
    change; (2) the change "first appears" at the earliest such stage in pathway order;
    (3) the stages "moved together" when every stage's latest year-on-year change has the same
    sign and they differ by less than TOGETHER; (4) falls at child protection and care entry
    larger than at the front door by more than TOGETHER point to decisions further along the
    route (thresholds, or how cases are recorded) rather than fewer families arriving, while an
    early-help effect would be expected to show at the front door first."""
    yoy = res.year_on_year().set_index("stage")
    year = timeline.reporting_year_label(int(yoy["year"].iloc[0]))
    parts = []
    described = [f"{stage_label(s).lower()} {100 * abs(yoy.loc[s, 'change']):.0f}% "
                 f"{'lower' if yoy.loc[s, 'change'] < 0 else 'higher'}" for s in res.stages]
    parts.append(f"In {year}, compared with the year before: {join_words(described)}.")
    clear = _clear(res)
    if clear:
        first = next(s for s in res.stages if s in clear)
        shown = [stage_label(s).lower() for s in res.stages if s in clear]
        where = (f"only at {shown[0]}" if len(shown) == 1 else
                 f"at {join_words(shown)}; along the route it first appears at "
                 f"{stage_label(first).lower()}")
        parts.append(f"Against each stage's own trend, a change after {event_title} that the "
                     f"data can separate from chance shows {where} (with {len(res.stages)} "
                     "stages tested, one such result in twenty would arise by chance).")
    else:
        parts.append(f"Against each stage's own trend, no stage shows a change after "
                     f"{event_title} that the data can separate from chance.")
    changes = yoy.loc[res.stages, "change"]
    front = [s for s in res.stages if vocab.MEASURE_INFO[s].stage == "front door"]
    late = [s for s in res.stages if vocab.MEASURE_INFO[s].stage in ("child protection",
                                                                       "looked after")]
    if (np.sign(changes) == np.sign(changes.iloc[0])).all() and (
            changes.max() - changes.min()) < TOGETHER:
        parts.append("The stages moved together, by similar amounts: a pattern a change in "
                     "demand at the front door or in thresholds everywhere would give alike.")
    elif front and late and changes[late].mean() < changes[front].mean() - TOGETHER:
        parts.append("The falls are larger at child protection and care entry than at the front "
                     "door: a pattern more like a change in decisions further along the route "
                     "(thresholds, or how cases are recorded) than fewer families arriving; an "
                     "early-help effect would usually show first as fewer referrals.")
    elif front and late and changes[front].mean() < changes[late].mean() - TOGETHER:
        parts.append("The fall is largest at the front door: the pattern an early-help effect "
                     "would give first, before it reaches care entry.")
    parts.append("One year after the event cannot settle which: the next release, and the "
                 "council's own monthly data, can.")
    return " ".join(parts)


def plot_spend(table: pd.DataFrame, la_name: str, comparator_label: str, ax=None):
    if ax is None:
        _, ax = plt.subplots()
    ax.fill_between(table["year"], table["comparator_low"], table["comparator_high"],
                    color=charts.PALETTE["comparator"], alpha=0.2,
                    label=f"range of {comparator_label}")
    ax.plot(table["year"], table["comparator_median"], "s:", color=charts.PALETTE["comparator"],
            label="their median")
    ax.plot(table["year"], table["la"], "o-", color=charts.PALETTE["observed"], label=la_name)
    ax.set_title(f"{la_name}: spend per child looked after per week (section 251, £)")
    ax.set_xlabel("Financial year ending 31 March")
    ax.set_ylabel("£ per child per week")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False)
    return ax


def spend_reading(table: pd.DataFrame, la_name: str) -> str:
    first, last = table.iloc[0], table.iloc[-1]
    return (f"{la_name} spent £{last['la']:,.0f} per child looked after per week in "
            f"{timeline.reporting_year_label(int(last['year']))} (£{first['la']:,.0f} in "
            f"{timeline.reporting_year_label(int(first['year']))}); its comparators' median was "
            f"£{last['comparator_median']:,.0f}, so it spends {last['ratio_to_median']:.0%} of "
            "theirs per child. This is context for the council's finances, not evidence about "
            "whether a programme worked: spend per child rises when fewer, more complex children "
            "are in care.")
