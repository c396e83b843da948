"""Words, tables and charts for the comparative designs (controlled ITS, difference-in-differences,
event study, synthetic control) and their side-by-side reading."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.core import timeline, vocab
from helpers.core.records import EffectResult
from helpers.models.analysis import Comparison
from helpers.models.comparative import ControlledITSResult, DiDResult, EventStudyResult
from helpers.models.synth import AugmentedSyntheticControlResult, SyntheticControlResult
from helpers.present import charts
from helpers.present.text import format_interval, join_words, md_escape, ratio_as_percent


YEAR_AXIS = "Reporting year (ending 31 March)"
RATE_AXIS = "Rate per 10,000 children"


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots()
    return ax


def _observed_and_counterfactual(ax, res, observed: str, counterfactual: str, label: str):
    cf = res.counterfactual
    ax.plot(cf["time"], cf[observed], "o-", color=charts.PALETTE["observed"],
            label=res.unit.la_name)
    ax.plot(cf["time"], cf[counterfactual], "--", color=charts.PALETTE["counterfactual"],
            label=label)


def _finish(ax, res, title: str, ylabel: str = RATE_AXIS, events=None):
    """Event markers, title, axis labels and legend every comparative chart shares."""
    if not events:
        label = getattr(res.event, "title", None) or res.event.name
        events = {label: res.event.start - 0.5}
    charts.mark_events(ax, events)
    ax.set_title(charts.wrap(charts.human_name(title), 48), pad=22)
    ax.set_xlabel(YEAR_AXIS)
    ax.set_ylabel(ylabel)
    charts.legend_below(ax)
    return ax


def _what(outcome: str) -> str:
    return vocab.MEASURE_INFO[outcome].phrase if outcome in vocab.MEASURE_INFO else str(outcome)


def summary_controlled(res) -> str:
    what = _what(res.outcome)
    how = ("difference between the LA's and the comparator's changes (multiple-group segmented model)"
           if res.method == "multiple_group" else "LA-to-comparator rate ratio (comparator as offset)")
    lines = [f"Controlled ITS for {what} in {md_escape(res.unit.la_name)} against "
             f"{md_escape(res.comparator_label)}, "
             f"as the {how}."]
    for ev in res.events:
        for row in res.effects[res.effects["intervention"] == ev.name].itertuples():
            if not np.isfinite(row.estimate):
                continue
            interval = format_interval(row.estimate, row.ci_low, row.ci_high, row.scale)
            when = timeline.reporting_year_label(int(ev.first_in_force))
            if row.effect == "level":
                size = ("about the same as" if abs(row.estimate - 1) < 0.005
                        else ratio_as_percent(row.estimate))
                lines.append(
                    f"- {md_escape(ev.title)} (first full year {when}): the level was {size} the path "
                    f"implied by the LA's own trend plus the comparator's change, "
                    f"rate ratio {interval}, p = {row.p_value:.3f}.")
            else:
                lines.append(
                    f"- {md_escape(ev.title)}: relative to the comparator, the yearly trend changed by a factor "
                    f"of {interval} per year, p = {row.p_value:.3f}.")
    return "\n".join(lines)


def plot_controlled(res, ax=None):
    ax = _axes(ax)
    cf = res.counterfactual
    _observed_and_counterfactual(ax, res, "observed_rate", "counterfactual_rate",
                                 "counterfactual (comparator's changes)")
    ax.plot(cf["time"], cf["fitted_rate"], "-", color=charts.PALETTE["fitted"], label="model")
    ax.fill_between(cf["time"], cf["cf_low_rate"], cf["cf_high_rate"],
                    color=charts.PALETTE["counterfactual"], alpha=0.15,
                    label="95% confidence band of the counterfactual (its average, not a year)")
    ax.plot(cf["time"], cf["comparator_rate"], "s:", color=charts.PALETTE["comparator"],
            label=res.comparator_label)
    return _finish(ax, res, f"Controlled ITS: {res.unit.la_name}, {vocab.measure_label(res.outcome).lower()}",
                   events={ev.name: ev.start - 0.5 for ev in res.events})


def summary_did(res) -> str:
    row = res.effects.iloc[0]
    inf = res.inference
    what = _what(res.outcome)
    direction = "lower" if row.estimate < 0 else "higher"
    return (f"Difference-in-differences for {what} in {md_escape(res.unit.la_name)} against "
            f"{res.n_donors} other LAs (LA and year fixed effects): after "
            f"{md_escape(res.event.title)} (first full year "
            f"{timeline.reporting_year_label(int(res.event.first_in_force))}) its rate per 10,000 was "
            f"{abs(row.estimate):.1f} {direction} than the other LAs' change implies "
            f"(95% placebo interval {row.ci_low:+.1f} to {row.ci_high:+.1f}). Assigning the event to every "
            f"other LA in turn, {md_escape(res.unit.la_name)} ranks {inf['rank']} of {inf['n_units']} "
            f"(permutation p = {row.p_value:.3f}); the LA-clustered p-value, unreliable with one "
            f"treated LA, is {inf['cluster_p_value']:.3f}.")


def plot_did(res, ax=None):
    ax = _axes(ax)
    cf = res.counterfactual
    _observed_and_counterfactual(ax, res, "observed", "counterfactual",
                                 "counterfactual (other LAs' changes)")
    post = cf["time"] >= res.event.start
    ax.errorbar(cf.loc[post, "time"], cf.loc[post, "counterfactual"],
                yerr=[cf.loc[post, "counterfactual"] - cf.loc[post, "cf_low"],
                      cf.loc[post, "cf_high"] - cf.loc[post, "counterfactual"]],
                fmt="none", ecolor=charts.PALETTE["counterfactual"], capsize=4,
                label="95% placebo interval")
    ax.plot(cf["time"], cf["donor_mean"], ":", color=charts.PALETTE["comparator"],
            label="mean of other LAs")
    return _finish(ax, res, f"Difference-in-differences: {res.unit.la_name}, {vocab.measure_label(res.outcome).lower()}")


def summary_event_study(res) -> str:
    eff = res.effects
    rel = eff["effect"].str.replace("year ", "").astype(int)
    pre, post = eff[rel < 0], eff[rel >= 0]
    pre_flag = (pre["p_value"] < 0.05).sum()
    text = (f"Event study for {_what(res.outcome)} in "
            f"{md_escape(res.unit.la_name)} around {md_escape(res.event.title)} (year 0 = "
            f"{timeline.reporting_year_label(int(res.event.first_in_force))}; reference = the year before), "
            f"against {res.n_donors} other LAs. ")
    text += (f"{pre_flag} of {len(pre)} pre-event years differ from the other LAs at the 5% level "
             "by placebo inference" + (" (parallel pre-trends look plausible). " if pre_flag == 0 else
                                       " (the parallel-trends assumption is in doubt). "))
    if len(post):
        text += "After the event: " + "; ".join(
            f"year {int(r):+d}: {e:+.1f} per 10,000 (p = {p:.2f})"
            for r, e, p in zip(rel[rel >= 0], post["estimate"], post["p_value"])) + "."
    return text


def plot_event_study(res, ax=None):
    ax = _axes(ax)
    eff = res.effects
    rel = eff["effect"].str.replace("year ", "").astype(int).to_numpy()
    ax.axhline(0, color="#999999", linewidth=1)
    ax.axvline(-0.5, color=charts.PALETTE["event"], linestyle="--", linewidth=1)
    ax.errorbar(rel, eff["estimate"], yerr=[eff["estimate"] - eff["ci_low"], eff["ci_high"] - eff["estimate"]],
                fmt="o", color=charts.PALETTE["fitted"], capsize=3)
    ax.set_title(f"Event study: {res.unit.la_name}, {vocab.measure_label(res.outcome).lower()} (placebo 95% intervals)")
    ax.set_xlabel(f"Years since {res.event.name} (0 = first full year)")
    ax.set_ylabel("Difference in rate per 10,000")
    return ax


def summary_synthetic_control(res) -> str:
    row = res.effects.iloc[0]
    top = res.weights[res.weights["weight"] >= 0.005].head(5)
    donors = ", ".join(f"{md_escape(n)} ({w:.2f})" for n, w in zip(top["la_name"], top["weight"]))
    cf = res.counterfactual
    pre = cf[cf["time"] < res.event.start]
    level = float(pre["observed"].abs().mean())
    fit_word = "closely" if res.pre_rmspe <= 0.1 * level else "only loosely"
    if res.pre_rmspe < 1e-6 * max(level, 1.0):
        fit_word = ("exactly - it lies inside the donors' range, so several weightings fit "
                    "equally well and the fit absorbs sampling noise -")
    direction = "below" if row.estimate < 0 else "above"
    text = (f"Synthetic control for {_what(res.outcome)} in "
            f"{md_escape(res.unit.la_name)}: a weighted mix of {len(res.weights[res.weights['weight'] > 0])} "
            f"of {res.n_donors} donor LAs (mainly {donors}) tracks its pre-event rate {fit_word} "
            f"(pre-period RMSPE {res.pre_rmspe:.1f} per 10,000 against a mean rate of {level:.1f}). "
            f"After {md_escape(res.event.title)} (first full year {timeline.reporting_year_label(int(res.event.first_in_force))}) "
            f"the rate averaged {abs(row.estimate):.1f} per 10,000 {direction} its synthetic control. "
            f"Its post/pre RMSPE ratio ranks {res.rank} of {len(res.placebos) + 1} "
            f"(placebo-in-space p = {res.p_value:.3f}).")
    if res.leave_one_out is not None and len(res.leave_one_out):
        lo, hi = res.leave_one_out["avg_post_gap"].min(), res.leave_one_out["avg_post_gap"].max()
        text += (f" Dropping each contributing donor in turn moves the average gap between {lo:.1f} "
                 f"and {hi:.1f}.")
    return text


def plot_synthetic_control(res, ax=None):
    """Observed rate against its synthetic control."""
    ax = _axes(ax)
    cf = res.counterfactual
    _observed_and_counterfactual(ax, res, "observed", "counterfactual", "synthetic control")
    ax.fill_between(cf["time"], cf["cf_low"], cf["cf_high"], color=charts.PALETTE["counterfactual"],
                    alpha=0.12, label="placebo gap range (95%)")
    return _finish(ax, res, f"Synthetic control: {res.unit.la_name}, {vocab.measure_label(res.outcome).lower()}")


def plot_gaps(res, ax=None, max_pre_ratio: float | None = 5.0):
    """Gap (observed minus synthetic) for the LA and each placebo; placebos whose pre-period
    RMSPE exceeds `max_pre_ratio` x the LA's are hidden, as Abadie et al. (2010) do."""
    ax = _axes(ax)
    keep = res.placebos["pre_rmspe"] <= (max_pre_ratio or np.inf) * max(res.pre_rmspe, 1e-9)
    years = res.gaps.columns.to_numpy()
    for code in res.placebos.loc[keep, "la_code"]:
        ax.plot(years, res.gaps.loc[code], color=charts.PALETTE["comparator"], alpha=0.25, linewidth=0.8)
    ax.plot(years, res.gaps.loc[res.unit.la_code], color=charts.PALETTE["observed"], linewidth=2.2,
            label=res.unit.la_name)
    ax.axhline(0, color="#999999", linewidth=1)
    return _finish(ax, res, f"Gap to synthetic control: {res.unit.la_name} and "
                            f"{int(keep.sum())} placebos",
                   ylabel="Observed minus synthetic (per 10,000)")


def compare_designs(results: Mapping[str, EffectResult], event: str, effect: str = "level") -> pd.DataFrame:
    """One row per design: the `effect` of `event`, its direction and whether the interval excludes
    no change. `results` maps a design key (or a label) to a result (any EffectResult)."""
    rows = []
    for key, res in results.items():
        label = vocab.design_label(key)
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


def agreement_text(table: pd.DataFrame, la: str, event_title: str, outcome: str) -> str:
    """Plain-English statement of where the designs agree and disagree (from `compare_designs`):
    a design "shows" a change when its interval (or placebo test) excludes no change; otherwise its
    estimate only "leans" one way."""
    la, event_title = md_escape(la), md_escape(event_title)
    if table.empty:
        return f"No design estimated a level change after {event_title}."
    what = f"{_what(outcome)} in {la} after {event_title}"
    word = {"down": "fall", "up": "rise"}
    clear = {d: table[(table["clear"]) & (table["direction"] == d)]["design"].tolist() for d in word}
    lean = {d: table[(~table["clear"]) & (table["direction"] == d)]["design"].tolist() for d in word}
    n = len(table)
    if clear["down"] and clear["up"]:
        verb = "shows" if len(clear["down"]) == 1 else "show"
        text = (f"The designs disagree on {what}: {join_words(clear['down'])} {verb} a clear fall but "
                f"{join_words(clear['up'])} a clear rise.")
        rest = lean["down"] + lean["up"]
        if rest:
            text += f" {join_words(rest)} cannot separate a change from no change."
        return text
    for d in word:
        if clear[d]:
            other = "up" if d == "down" else "down"
            text = f"{join_words(clear[d])} show{'s' if len(clear[d]) == 1 else ''} a clear {word[d]} in {what}."
            if lean[d] and not lean[other]:
                text += (f" The other designs ({join_words(lean[d])}) point the same way but cannot "
                         "separate it from no change.")
            elif lean[other] and not lean[d]:
                text += (f" The other designs ({join_words(lean[other])}) cannot separate a change from "
                         f"no change and lean towards a {word[other]}: the designs do not agree.")
            elif lean[d] and lean[other]:
                text += (f" Of the others, {join_words(lean[d])} lean the same way and {join_words(lean[other])} "
                         "the other way, none clearly.")
            else:
                text = f"All {n} designs show a clear {word[d]} in {what}."
            return text
    if not lean["up"] or not lean["down"]:
        d = "down" if lean["down"] else "up"
        return (f"None of the {n} designs can separate a change in {what} from no change, though "
                f"all {n} estimates lean towards a {word[d]}.")
    return (f"None of the {n} designs can separate a change in {what} from no change, and they do "
            f"not even agree on the direction ({join_words(lean['down'])} lean towards a fall, "
            f"{join_words(lean['up'])} towards a rise).")




def side_by_side(comparisons: Mapping[str, Comparison]) -> pd.DataFrame:
    """The design event's level effect from every design and outcome, formatted for reading."""
    rows = []
    for outcome, c in comparisons.items():
        table = compare_designs(c.designs(), c.event.name)
        for r in table.itertuples():
            ratio = r.scale == "ratio"
            interval = ("-" if not np.isfinite(r.ci_low) else
                        (f"{r.ci_low:.2f} to {r.ci_high:.2f}" if ratio else f"{r.ci_low:+.1f} to {r.ci_high:+.1f}"))
            rows.append({"outcome": vocab.measure_label(outcome), "design": r.design,
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
    earlier = [md_escape(ev.title) for ev in c.controlled.events
               if ev.name != c.event.name and first_year < ev.start <= c.event.start]
    if earlier:
        notes.append(f"The pre-event years of DiD and synthetic control include {join_words(earlier)}, so "
                     f"they measure the change after {md_escape(c.event.title)} against all years "
                     "before it.")
    n_post = int((c.synth.counterfactual["time"] >= c.event.start).sum())
    if n_post < 2:
        notes.append(f"Only {n_post} reporting year follows {md_escape(c.event.title)}, so DiD "
                     "and synthetic "
                     "control rest on a single year.")
    level = float(c.synth.counterfactual.loc[c.synth.counterfactual["time"] < c.event.start, "observed"].mean())
    if c.synth.pre_rmspe < 1e-6 * max(level, 1.0):
        notes.append("The synthetic control reproduces the pre-event years more exactly than their "
                     "sampling noise allows (few pre-event years, many donors), so its weights are "
                     "not unique and its gap is noisier than the fit suggests.")
    if c.synth.pre_rmspe > 0.1 * level:
        notes.append(f"The synthetic control fits the pre-event years only loosely (RMSPE "
                     f"{c.synth.pre_rmspe:.1f} per 10,000 on a rate near {level:.0f}).")
    if c.synth_ridge is not None and (c.synth.share_outside_range > 0
                                      or c.synth.pre_rmspe > 0.1 * level):
        r = c.synth_ridge.effects.iloc[0]
        notes.append(f"Because the donors cannot reproduce {c.synth.unit.la_name}'s pre-event "
                     f"rates, read the ridge-augmented synthetic control instead: "
                     f"{r.estimate:+.1f} per 10,000 ({r.ci_low:+.1f} to {r.ci_high:+.1f}).")
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
                rows.append({"outcome": vocab.measure_label(outcome),
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


def summary_augmented(res) -> str:
    row = res.effects.iloc[0]
    direction = "below" if row.estimate < 0 else "above"
    return (f"Ridge-augmented synthetic control (a check that corrects the synthetic control for "
            f"what its donors cannot reproduce): after {res.event.title} the rate averaged "
            f"{abs(row.estimate):.1f} per 10,000 {direction} its counterfactual (95% placebo "
            f"interval {row.ci_low:+.1f} to {row.ci_high:+.1f}; placebo-in-space p = "
            f"{row.p_value:.3f}, rank {res.rank} of {res.n_donors + 1}).")


def summary_sdid(res, mde: float | None = None) -> str:
    """Synthetic DiD in words, with the smallest effect its placebo distribution could detect."""
    row = res.effects.iloc[0]
    direction = "below" if row.estimate < 0 else "above"
    text = (f"Synthetic difference-in-differences (Arkhangelsky et al. 2021: donor and year "
            f"weights chosen so the weighted donors move in parallel with the LA before the "
            f"event): after the event the rate was {abs(row.estimate):.1f} per 10,000 {direction} "
            f"what the weighted donors imply (95% CI {row.ci_low:+.1f} to {row.ci_high:+.1f}, "
            f"placebo standard errors; p = {row.p_value:.3f}).")
    if mde is not None and np.isfinite(mde):
        text += (f" With these donors the design reliably detects (80% power) a change of about "
                 f"{mde:.1f} per 10,000 or more; a smaller change could go undetected, so a "
                 "result that cannot be separated from no change rules out only larger ones.")
    return text


def synthetic_control_checks(res: SyntheticControlResult) -> list[str]:
    """How far to trust the plain synthetic control, in words (pre-period fit, the LA against
    its donors' range, whether the weights are unique)."""
    notes = []
    outside = res.donor_range[res.donor_range["outside"]] if res.donor_range is not None else []
    if len(outside):
        notes.append(f"In {len(outside)} of {len(res.donor_range)} pre-event years the LA's rate "
                     "lay outside every donor's, so no mix of donors can reproduce it: the plain "
                     "synthetic control is biased there; read the ridge-augmented row.")
    elif res.weights_unique:
        notes.append(f"The LA lies outside the set of paths its donors can reproduce exactly "
                     f"(pre-event misfit {res.pre_fit_ratio:.0%} of its rate), so its weights "
                     "are unique but the fit carries some bias; the ridge-augmented row "
                     "corrects for it.")
    else:
        notes.append("The LA lies inside its donors' range in every pre-event year and is "
                     "fitted exactly, so its weights are not unique.")
    if res.n_placebos_non_unique:
        notes.append(f"{res.n_placebos_non_unique} of {len(res.placebos)} placebo fits are exact "
                     "(their weights are not unique either).")
    return notes


def summary(res) -> str:
    """The plain-English reading of any comparative result."""
    for kind, fn in ((ControlledITSResult, summary_controlled), (DiDResult, summary_did),
                     (AugmentedSyntheticControlResult, summary_augmented),
                     (EventStudyResult, summary_event_study),
                     (SyntheticControlResult, summary_synthetic_control)):
        if isinstance(res, kind):
            return fn(res)
    raise TypeError(f"no summary for {type(res).__name__}")


def plot(res, ax=None):
    """The chart of any comparative result."""
    for kind, fn in ((ControlledITSResult, plot_controlled), (DiDResult, plot_did),
                     (EventStudyResult, plot_event_study),
                     (SyntheticControlResult, plot_synthetic_control)):
        if isinstance(res, kind):
            return fn(res, ax)
    raise TypeError(f"no chart for {type(res).__name__}")
