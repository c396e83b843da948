"""Charts, tables and words for the all-authorities view (league table and funnel plot)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from helpers.core import timeline, vocab
from helpers.core.io import atomic_write_text
from helpers.models import national
from helpers.present import charts
from helpers.present.text import format_interval, md_escape, ratio_as_percent


def _plain_log_ticks(ax) -> None:
    """Ratios on a log axis labelled 0.5, 1, 2 rather than 10^0."""
    low, high = ax.get_ylim()
    ticks = [t for t in (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 4, 10) if low <= t <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_league(table: pd.DataFrame, effect: str = "level", highlight: str | None = None,
                ax=None, title: str | None = None):
    """Caterpillar plot: every LA's ratio with its interval, sorted, the chosen LA in colour."""
    rows = table[table["effect"] == effect].sort_values("estimate").reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    x = np.arange(len(rows))
    ax.vlines(x, rows["ci_low"], rows["ci_high"], color=charts.PALETTE["comparator"], linewidth=0.8,
              alpha=0.6)
    ax.scatter(x, rows["estimate"], s=8, color=charts.PALETTE["fitted"], zorder=3)
    ax.axhline(1.0, color="black", linewidth=0.8)
    if highlight is not None and (rows["la_code"] == highlight).any():
        i = int(np.flatnonzero(rows["la_code"] == highlight)[0])
        r = rows.iloc[i]
        ax.vlines(i, r["ci_low"], r["ci_high"], color=charts.PALETTE["counterfactual"], linewidth=2.5,
                  zorder=4)
        ax.scatter([i], [r["estimate"]], s=40, color=charts.PALETTE["counterfactual"], zorder=5)
        label = r["la_name"] if "la_name" in rows.columns else highlight
        ax.annotate(f" {label}", (i, r["ci_high"]), color=charts.PALETTE["counterfactual"], fontsize=9,
                    ha="center", va="bottom")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xticks([])
    ax.set_xlabel(f"Local authorities, sorted by {effect} change ({len(rows)})")
    ax.set_ylabel(f"{effect.capitalize()} change (rate ratio, log scale)")
    ax.set_title(title or f"{effect.capitalize()} change in every local authority, 95% intervals")
    return ax


def plot_funnel(funnel: pd.DataFrame, highlight: str | None = None, ax=None,
                title: str | None = None):
    """Rate per 10,000 against child population, with the all-LA rate and its control limits."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    rate = funnel.attrs["rate_per_10000"] / national.PER
    phi = max(funnel.attrs.get("overdispersion", 1.0), 1.0)
    pop = np.geomspace(funnel["population"].min() * 0.8, funnel["population"].max() * 1.2, 300)
    limits = national.funnel_limits(rate * pop, funnel.attrs["levels"], overdispersion=phi)
    styles = {0: ("--", 1.0), 1: (":", 1.3)}
    for j, level in enumerate(funnel.attrs["levels"]):
        pct = f"{100 * level:g}"
        ls, lw = styles.get(j, ("-.", 1.0))
        ax.plot(pop, national.PER * rate * limits[f"upper_{pct}"], color="black", ls=ls, lw=lw,
                label=f"{pct}% limits")
        ax.plot(pop, national.PER * rate * limits[f"lower_{pct}"], color="black", ls=ls, lw=lw)
    ax.axhline(national.PER * rate, color="black", lw=0.8, label="all-LA rate")
    ax.scatter(funnel["population"], funnel["rate_per_10000"], s=12, color=charts.PALETTE["fitted"],
               alpha=0.8, label="local authorities")
    if highlight is not None and (funnel["la_code"] == highlight).any():
        r = funnel[funnel["la_code"] == highlight].iloc[0]
        ax.scatter([r["population"]], [r["rate_per_10000"]], s=60, color=charts.PALETTE["counterfactual"],
                   zorder=5, label=r.get("la_name", highlight))
    ax.set_xscale("log")
    ax.set_xlabel("Children aged 0-17 (log scale)")
    ax.set_ylabel(f"{funnel.attrs['measure'].replace('_', ' ')} per 10,000 children")
    note = " (limits adjusted for overdispersion)" if phi > 1 else ""
    year = timeline.reporting_year_label(funnel.attrs["year"])
    ax.set_title(title or f"Funnel plot, reporting year {year}{note}")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return ax


# ---------------------------------------------------------------------------------------------
# What the all-authorities notebook shows
# ---------------------------------------------------------------------------------------------

def league_view(table: pd.DataFrame, la_code: str, top: int = 5) -> pd.DataFrame:
    """Readable extract of the league table: the `top` largest and smallest level changes and the
    analysis' LA, with level and slope ratios and 95% intervals side by side."""
    level = table[table["effect"] == "level"].sort_values("rank")
    keep = pd.concat([level.head(top), level[level["la_code"] == la_code], level.tail(top)])
    keep = keep.drop_duplicates("la_code").sort_values("rank")
    slope = table[table["effect"] == "slope"].set_index("la_code")
    rows = []
    for r in keep.itertuples():
        row = {"rank": f"{r.rank} of {len(level)}",
               "local authority": (f"{r.la_name} (this analysis)" if r.la_code == la_code
                                   else r.la_name),
               "region": getattr(r, "region_name", None),
               "level change (95% CI)": format_interval(r.estimate, r.ci_low, r.ci_high, "ratio")}
        if r.la_code in slope.index:
            s = slope.loc[r.la_code]
            row["trend change per year (95% CI)"] = format_interval(s["estimate"], s["ci_low"],
                                                                    s["ci_high"], "ratio")
        rows.append(row)
    return pd.DataFrame(rows)


def _band_words(band: str) -> str:
    if band.startswith("within"):
        return "within the 95% control limits"
    side, pct = band.split(" ", 1)
    inner = " (but within the 99.8% limits)" if pct.startswith("95") else ""
    return f"{side} the {pct} {'upper' if side == 'above' else 'lower'} control limit{inner}"


def _share(n: int, total: int) -> str:
    return f"{n} of {total}"


def reading(table: pd.DataFrame, latest: pd.DataFrame, funnel: pd.DataFrame, la_code: str,
            la_name: str, event: dict, measure: str = "starts") -> str:
    """Plain-English findings for the all-authorities notebook."""
    words = vocab.MEASURE_INFO[measure].phrase if measure in vocab.MEASURE_INFO else measure
    la_name, event_title = md_escape(la_name), md_escape(event["title"])
    parts = []
    if table is not None:
        pos = national.where_la_sits(table, la_code, "level")
        level = table[table["effect"] == "level"]
        up = int((level["ci_low"] > 1).sum())
        down = int((level["ci_high"] < 1).sum())
        first = int(table["event_year"].iloc[0])
        parts.append(
            f"From reporting year {timeline.reporting_year_label(first)}, the first full year "
            f"after {event_title}, {la_name}'s {words} were "
            f"{ratio_as_percent(pos['estimate'])} its earlier trend (rate ratio {pos['estimate']:.2f}, 95% CI {pos['ci_low']:.2f} to "
            f"{pos['ci_high']:.2f}), ranking {pos['rank']} of {pos['n']} authorities from the "
            f"largest rise to the largest fall. Across England, {_share(up, pos['n'])} authorities "
            f"had a level clearly above their own trend at that point and {_share(down, pos['n'])} "
            "clearly below, so a change at this date is "
            + ("common rather than particular to one council." if up + down > pos["n"] / 4
               else "not widespread.")
        )
    if latest is not None:
        pos = national.where_la_sits(latest, la_code, "level")
        year = int(latest["event_year"].iloc[0])
        parts.append(
            f"In the latest year ({timeline.reporting_year_label(year)}) {la_name} was "
            f"{ratio_as_percent(pos['estimate'])} what its own trend predicted (ratio "
            f"{pos['estimate']:.2f}, 95% CI {pos['ci_low']:.2f} to {pos['ci_high']:.2f}); "
            f"{pos['rank'] - 1} authorities were further above their trends."
        )
    if funnel is not None:
        f = national.funnel_position(funnel, la_code)
        national_rate = funnel.attrs["rate_per_10000"]
        outside = f["n_outside_998"]
        parts.append(
            f"On the funnel plot, {la_name}'s rate of {f['rate_per_10000']:.1f} per 10,000 "
            f"children (all-LA rate {national_rate:.1f}) is {_band_words(f['band'])}: "
            f"{f['observed']:.0f} observed against {f['expected']:.0f} expected. {outside} of "
            f"{f['n']} authorities lie outside the 99.8% limits, far more than the 0.2% chance "
            "alone would put there: councils differ for real (need, thresholds, practice), so a "
            "point outside the limits is a prompt to look, not a verdict."
        )
    return "\n\n".join(parts)


def write_league_table(table: pd.DataFrame, path) -> None:
    """The full league table as CSV (rounded, written to a temp file then renamed)."""
    out = table.copy()
    for col in ("estimate", "ci_low", "ci_high", "dispersion"):
        out[col] = out[col].round(4)
    out["p_value"] = out["p_value"].round(6)
    atomic_write_text(path, out.to_csv(index=False, lineterminator="\n"))


def plot_inadequate_event_study(national, own=None, la_name: str | None = None, ax=None,
                                measure: str = "starts"):
    """The national event study around a first inadequate judgement (95% pointwise band) with
    the LA's own path (points only: one LA's analytic errors are not reliable)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    dyn = national.dynamic
    band = 1.959964 * dyn["se"]
    ax.fill_between(dyn["event_time"], dyn["estimate"] - band, dyn["estimate"] + band,
                    color=charts.PALETTE["fitted"], alpha=0.18,
                    label="95% confidence band (every judged LA)")
    ax.plot(dyn["event_time"], dyn["estimate"], "o-", color=charts.PALETTE["fitted"],
            label="average change, every other LA judged inadequate")
    if own is not None:
        mine = own.dynamic
        ax.plot(mine["event_time"], mine["estimate"], "D--", color=charts.PALETTE["counterfactual"],
                label=f"{la_name} against LAs never judged inadequate")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(-0.5, color=charts.PALETTE["event"], linestyle="--", linewidth=1)
    ax.set_xlabel("Years since the first full year after the judgement (0)")
    ax.set_ylabel(f"Difference in {vocab.measure_label(measure).lower()} per 10,000")
    ax.set_title("After an inadequate judgement: change against councils not (yet) judged")
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return ax


def inadequate_reading(national, own=None, la_name: str | None = None,
                       measure: str = "starts", until: int | None = None,
                       until_title: str | None = None) -> str:
    """What inadequate judgements usually bring, and how the LA's own path compares (its years
    from `until` on left out, e.g. from its primary event, so a later programme is not read as
    the judgement's doing)."""
    words = vocab.MEASURE_INFO[measure].phrase if measure in vocab.MEASURE_INFO else measure
    est, se = national.dynamic_overall
    low, high = est - 1.959964 * se, est + 1.959964 * se
    n = len(national.group_time["group"].unique()) if hasattr(national, "group_time") else None
    direction = ("fewer" if high < 0 else "more" if low > 0 else None)
    text = (f"Across the councils judged inadequate since ILACS began in 2018 "
            f"({len(national.panel.treated_units)} in {n} yearly cohorts), {words} in the years "
            f"after the judgement averaged {est:+.1f} per 10,000 children against councils not yet "
            f"judged (95% CI {low:+.1f} to {high:+.1f}): "
            + (f"judgements are usually followed by {direction} children entering care."
               if direction else "no change that the data can separate from chance."))
    if own is not None:
        mine = own.dynamic
        if until is not None:
            cohort = int(own.panel.start.dropna().iloc[0])
            mine = mine[mine["event_time"] + cohort < until]
        after = mine[mine["event_time"] >= 0]["estimate"]
        text += (f" {la_name}'s own path after its judgement averaged {after.mean():+.1f} per "
                 f"10,000 against councils never judged inadequate ("
                 + ", ".join(f"year {int(r.event_time):+d}: {r.estimate:+.1f}"
                             for r in mine[mine["event_time"] >= 0].itertuples())
                 + ")"
                 + (f", leaving out the years from {until_title} on" if until_title else "")
                 + "; "
                 + ("it lies outside the national 95% interval, so its path after the judgement "
                    "differs from what judgements usually bring."
                    if not low <= after.mean() <= high else
                    "it lies within the national 95% interval, so its path after the judgement "
                    "is like what judgements usually bring."))
    return text
