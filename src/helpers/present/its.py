"""Words and charts for a fitted interrupted time series (`helpers.models.its.ITSResult`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from helpers.core import timeline, vocab
from helpers.present import charts
from helpers.present.tables import markdown_list
from helpers.present.text import first_upper, fmt_num, format_interval, md_escape, plural


def _outcome_words(outcome: str) -> tuple[str, str, str | None]:
    """(noun, verb, what an averted amount counts) for a sentence about an outcome."""
    info = vocab.MEASURE_INFO.get(outcome)
    if info is not None:
        return info.noun, "were", info.counts
    if outcome == "rate_per_10000":
        return "the rate per 10,000 children", "was", None
    return str(outcome), "were", None


def _pct_text(rel):
    pct = abs(rel) * 100
    if pct < 0.5:
        return "in line with"
    return f"{pct:.0f}% {'below' if rel < 0 else 'above'}"


def _pct_one(rel):
    pct = abs(rel) * 100
    if pct < 0.5:
        return "0%"
    return f"{pct:.0f}% {'below' if rel < 0 else 'above'}"


def _pct_range(lo, hi):
    return f"{_pct_one(lo)} to {_pct_one(hi)}"


def _count_range(averted_low, averted_high):
    """Averted-count interval as words: (-75, 73) averted -> '73 fewer to 75 more'."""
    def words(averted):
        if round(averted) == 0:
            return "0"
        return f"{abs(averted):,.0f} {'fewer' if averted > 0 else 'more'}"
    return f"{words(averted_high)} to {words(averted_low)}"


def effect_words(effect, log_link, unit):
    if log_link:
        return ("level change (rate ratio)" if effect == "level"
                else f"trend change (ratio per {unit})")
    return "level change" if effect == "level" else f"trend change per {unit}"


def _interval_words(res) -> str:
    if res.interval == "bootstrap":
        boot = res.fit.get("bootstrap", {})
        return (f"bootstrap-t from {boot.get('n_boot', 999):,} series of autocorrelated counts "
                "simulated from the fitted model (calibrated on monthly series)")
    return (f"t-based with {res.df_resid} residual df" if res.interval == "t"
            else "normal (z) based")


def impact_model_text(res) -> str:
    """'Declared impact model: Family Matters launched: level change from 2024-25.'"""
    parts = []
    for ev in res.events:
        what = " and ".join(f"{e} change" for e in ev.effects)
        text = f"{md_escape(ev.title)}: {what} from {res.label(ev.first_in_force)}"
        if ev.lag:
            text += f" after a lag of {ev.lag} {plural(res.unit, ev.lag)}"
        if ev.phase_in > 1:
            text += f", phased in over {ev.phase_in} {plural(res.unit, ev.phase_in)}"
        parts.append(text)
    return "Declared impact model: " + "; ".join(parts) + "."


def page_intro(res, family: str, start_year: int, event_title: str) -> str:
    """The ITS page's first paragraph: the declared impact model, the model and years, and
    what each chart shows (`event_title`: the analysis' primary event)."""
    return (f"{impact_model_text(res)} Model: {family}, reporting years {start_year} to "
            f"{int(res.counterfactual['time'].max())}. Each chart shows the published "
            "figures, the model's trend, and the trend expected without "
            f"**{md_escape(event_title)}** (the analysis' primary event) if the earlier trend "
            "had continued, with its 95% confidence band. Numbered lines mark the events.")


def effects_reading(effects: pd.DataFrame, la_name: str) -> str:
    """How many of the estimated changes exclude no change, which, and why one such result
    is weak evidence on its own (`effects`: summary.its_effects_table)."""
    clear = effects[~effects["reading"].str.startswith("no clear")]
    verb = ("has an interval that excludes" if len(clear) == 1
            else "have intervals that exclude")
    which = ("; ".join(f"{row['outcome']} after {row['event']} ({row['effect']} "
                       f"{row['estimate (95% CI)']}), {row['reading']}"
                       for row in clear.to_dict("records")))
    return (f"Of {len(effects)} estimated changes for {la_name} (every declared event and "
            f"outcome), {len(clear)} {verb} no change" + (f": {which}" if len(clear) else "")
            + f". With {len(effects)} tests, about one in twenty would exclude no change by "
            "chance alone, so a single such result is weak evidence on its own; the summary "
            "page weighs the designs together.")


def caveats(fits: dict) -> str | None:
    """Every fit's cautions, once each, as a list under a heading (None when there are none)."""
    notes = sorted({w for res in fits.values() for w in warnings(res)})
    return "**Caveats from the fits**\n\n" + markdown_list(notes) if notes else None


def impact_method_text(res) -> str:
    """How the impact intervals were computed."""
    law = (f"multivariate t, df={res.df_resid}" if res.interval == "t"
           else "multivariate normal, bootstrap covariance" if res.interval == "bootstrap"
           else "multivariate normal")
    return (f"Intervals from {res.impact_draws} draws of the coefficients from their estimated "
            f"covariance ({law}, seed {res.impact_seed}); point estimates at the fitted "
            "coefficients.")


def effects_table(res, digits: int = 2) -> pd.DataFrame:
    """The effects as a readable table (titles, rounded interval text)."""
    rows = []
    for row in res.effects.itertuples():
        rows.append({
            "Event": res.titles[row.intervention],
            "Effect": effect_words(row.effect, res.log_link, res.unit),
            "Estimate (95% CI)" if res.ci_level == 0.95 else "Estimate (CI)":
                format_interval(row.estimate, row.ci_low, row.ci_high, row.scale, digits),
            "p": f"{row.p_value:.3f}",
        })
    return pd.DataFrame(rows)


def warnings(res) -> list[str]:
    """Plain-English cautions about one fit, from its diagnostics."""
    diag = res.diagnostics
    msgs = []
    if res.dropped:
        msgs.append(f"{len(res.dropped)} period(s) with a missing value were left out "
                    f"({', '.join(str(fmt_num(v)) for v in res.dropped)}).")
    unit = res.unit
    points = diag["points"]
    for row in points.itertuples():
        title = md_escape(res.titles[row.intervention])
        if row.before < diag["min_points_before"]:
            msgs.append(f"Only {row.before} {plural(unit, row.before)} before {title}; at "
                        f"least {diag['min_points_before']} are recommended to estimate the "
                        "trend it is compared with.")
        if row.after < diag["min_points_after"]:
            msgs.append(f"Only {row.after} {plural(unit, row.after)} after {title}; at "
                        f"least {diag['min_points_after']} are recommended before reading a "
                        "change in level or trend.")
    for prev, nxt in zip(res.events, res.events[1:]):
        between = int(points.loc[points["intervention"].eq(prev.name), "between_next"].iloc[0])
        if between < diag["min_points_after"]:
            msgs.append(f"Only {between} {plural(unit, between)} between {md_escape(prev.title)} and "
                        f"{md_escape(nxt.title)}, so the trend between them rests on very few points.")
    n, n_params = diag["n"], diag["n_params"]
    if n < 3 * n_params:
        msgs.append(f"The model estimates {n_params} parameters from {n} data points "
                    "(fewer than 3 points per parameter), so estimates are imprecise and "
                    "sensitive to single years; consider a simpler impact model.")
    disp = res.dispersion
    bg = diag["breusch_godfrey"]
    if res.family == "poisson" and disp is not None and disp > 1.5:
        msgs.append(f"The counts vary {disp:.1f} times more than a Poisson model allows, so "
                    "its intervals are too narrow; use family='quasipoisson' or 'negbin'.")
    if res.log_link and bg["p_value"] is not None and bg["p_value"] < 0.05:
        msgs.append(f"The residuals are autocorrelated (Breusch-Godfrey p = "
                    f"{bg['p_value']:.3f}); intervals may be too narrow; compare "
                    "family='ar1' or 'sarimax'.")
    if res.family == "quasipoisson" and disp is not None and disp < 1:
        msgs.append(f"The counts vary less than a Poisson model expects (dispersion "
                    f"{disp:.2f}), so quasi-Poisson intervals are narrower than Poisson "
                    "ones; family='poisson' gives the more cautious reading.")
    if res.family == "ols" and (points["after"] == 1).any():
        msgs.append("Newey-West (HAC) errors cannot measure the uncertainty of a change seen "
                    "in a single period (its residual is forced to zero), so that interval is "
                    "unreliable; read it from a count family or family='ar1' instead.")
    bad_se = res.effects.loc[~np.isfinite(res.effects["ci_low"])
                             | ~np.isfinite(res.effects["ci_high"])]
    for row in bad_se.itertuples():
        msgs.append(f"The uncertainty of the {row.effect} change for "
                    f"{md_escape(res.titles[row.intervention])} could not be estimated; do not read "
                    "this estimate without an interval.")
    if res.family == "sarimax" and not diag["converged"]:
        msgs.append("The SARIMAX fit did not fully converge; treat its estimates with care.")
    return msgs


def summary(res) -> str:
    """The plain-English reading of one fit: the change for its counterfactual event, the
    declared impact model, every estimate, the model and its warnings."""
    ev = res.event
    imp = res.impact
    noun, verb, verb_text = _outcome_words(res.outcome)
    pct = int(round(100 * res.ci_level))
    n_post = len(imp)
    last = imp.iloc[-1]
    stock = res.outcome in vocab.STOCK_MEASURES
    prefix = "" if stock else "cumulative_"
    if n_post == 1:
        span = f"the {res.unit} after {md_escape(ev.title)} ({last['label']})"
    elif stock:
        span = (f"{last['label']}, the last of {n_post} {plural(res.unit, n_post)} after "
                f"{md_escape(ev.title)}")
    else:
        span = (f"the {n_post} {plural(res.unit, n_post)} after {md_escape(ev.title)} "
                f"({imp['label'].iloc[0]} to {last['label']})")
    rel, rlo, rhi = (last[prefix + "relative_change"], last[prefix + "relative_change_low"],
                     last[prefix + "relative_change_high"])
    sentence = (f"In {span}, {noun} {verb} {_pct_text(rel)} the pre-existing trend "
                f"({pct}% CI {_pct_range(rlo, rhi)})")
    av, alo, ahi = (last[prefix + "averted"], last[prefix + "averted_low"],
                    last[prefix + "averted_high"])
    if verb_text:
        amount = "fewer" if av >= 0 else "more"
        sentence += (f": about {abs(av):,.0f} {amount} {verb_text} than the trend "
                     f"predicted ({pct}% CI {_count_range(alo, ahi)}).")
    else:
        sentence += "."
    # Blocks separated by blank lines read well both printed and as Markdown.
    blocks = [sentence]
    for row in res.diagnostics["points"].itertuples():
        if row.after == 1:
            u = res.unit
            blocks.append(
                f"Only one post-event {u} is available for {md_escape(res.titles[row.intervention])}: "
                f"a single post-event {u} cannot separate a programme effect from a one-{u} "
                "shock, so read this as an early signal, not a measured programme effect.")
    blocks.append(impact_model_text(res))
    bullets = []
    for row in res.effects.itertuples():
        title = md_escape(res.titles[row.intervention])
        what = effect_words(row.effect, res.log_link, res.unit)
        bullets.append(f"- {title}: {what} {row.estimate:.2f} ({pct}% CI {row.ci_low:.2f} "
                       f"to {row.ci_high:.2f}), p = {row.p_value:.3f}.")
    blocks.append("\n".join(bullets))
    model = (f"Model: {vocab.FAMILY_LABELS[res.family]}, {len(res.times)} "
             f"{plural(res.unit, len(res.times))} ({res.label(res.times.min())} to "
             f"{res.label(res.times.max())}); intervals {_interval_words(res)}.")
    if res.family == "quasipoisson":
        model += f" Dispersion (Pearson chi-squared / df) = {res.dispersion:.2f}."
    elif res.family == "negbin":
        model += f" Negative binomial alpha = {res.alpha:.3g}."
    elif res.family == "ols":
        model += f" Newey-West lags = {res.hac_lags}."
    elif res.family in ("ar1", "sarimax") and res.rho is not None:
        model += f" AR(1) coefficient of the errors = {res.rho:.2f}."
    blocks.append(model)
    blocks.extend(f"Warning: {w}" for w in warnings(res)
                  if not w.startswith("Only 1 " + res.unit + " after"))
    if res.synthetic:
        blocks.append("These results use SYNTHETIC data.")
    return "\n\n".join(blocks)



def plot_diagnostics(res, axes=None):
    """Residuals over time, and their ACF and PACF with approximate 95% bounds (+-1.96/sqrt(n))."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    resid = np.asarray(res.residuals, float)
    times = res.times[-len(resid):]
    ax = axes[0]
    ax.axhline(0, color=charts.PALETTE["comparator"], linewidth=1)
    ax.plot(times, resid, marker="o", markersize=3, color=charts.PALETTE["fitted"])
    for ev in res.events:
        ax.axvline(ev.first_in_force - 0.5, color=charts.PALETTE["event"], linestyle="--",
                   linewidth=1)
    ax.set_title(f"Residuals ({res.diagnostics['residuals']})")
    ax.set_xlabel("Reporting year" if res.frequency == "annual" else "Month index")
    ax.set_ylabel("Residual")
    bound = 1.96 / np.sqrt(len(resid))
    for ax, name in zip(axes[1:], ("acf", "pacf")):
        values = np.asarray(res.diagnostics[name])[1:]
        lags = np.arange(1, len(values) + 1)
        ax.bar(lags, values, width=0.4, color=charts.PALETTE["fitted"])
        ax.axhline(0, color=charts.PALETTE["comparator"], linewidth=1)
        for b in (bound, -bound):
            ax.axhline(b, color=charts.PALETTE["counterfactual"], linestyle=":",
                       linewidth=1)
        ax.set_title(f"Residual {name.upper()}")
        ax.set_xlabel("Lag")
        ax.set_ylabel("Correlation")
    if res.synthetic:
        charts.mark_synthetic(axes[0].figure)
    return axes



def chart_table(res, observed=None) -> pd.DataFrame:
    """The numbers behind `plot`: each period's published figure, the model's fit, and the
    trend expected without the primary event with its 95% confidence band (where its average
    would lie) and its 95% prediction band (where a single period's figure would fall), rounded.
    `observed`: small-count-safe values to publish instead of the exact counts (episode data)."""
    cf = res.counterfactual
    ev = res.event
    after = cf["time"] >= ev.first_in_force - 1
    points = cf["observed"] if observed is None else pd.Series(np.asarray(observed, float))
    out = pd.DataFrame({
        "period": cf["label"],
        "published figure": points.round(0),
        "model fit": cf["fitted"].round(1),
        f"expected without {ev.title}": cf["counterfactual"].where(after).round(1),
        "expected, 95% confidence band low": cf["cf_low"].where(after).round(1),
        "expected, 95% confidence band high": cf["cf_high"].where(after).round(1),
        "one period's figure, 95% prediction band low": cf["cf_pred_low"].where(after).round(1),
        "one period's figure, 95% prediction band high": cf["cf_pred_high"].where(after).round(1),
    })
    return out


def plot_message(res, la_name: str | None = None) -> str:
    """The chart's message in one or two sentences (its alt text)."""
    cf = res.counterfactual
    ev = res.event
    last = cf.iloc[-1]
    noun = _outcome_words(res.outcome)[0]
    where = f" in {la_name}" if la_name else ""
    text = (f"{first_upper(noun)}{where}, {cf['label'].iloc[0]} to {last['label']}. "
            f"In {last['label']} the figure was {last['observed']:,.0f}, against about "
            f"{last['counterfactual']:,.0f} expected if the trend before {ev.title} had "
            f"continued (95% confidence band {last['cf_low']:,.0f} to {last['cf_high']:,.0f}; "
            f"a single {res.unit}'s figure would fall between {last['cf_pred_low']:,.0f} and "
            f"{last['cf_pred_high']:,.0f} 95% of the time).")
    return text


#: The vertical axis stops at this multiple of the largest published or fitted value; a
#: confidence band reaching higher is cut there and marked with an arrow.
AXIS_HEADROOM = 1.3


def plot(res, ax=None, *, title=None, ylabel=None, synthetic=None, observed=None,
         la_name: str | None = None):
    """Published figures, the model's fitted trend, and the trend expected without the primary
    event (the counterfactual) with its 95% confidence band (the expected trend) inside its 95%
    prediction band (one period's figure); events numbered above the plot and named in the
    legend below it.

    The axis is kept to the data (AXIS_HEADROOM): a band reaching beyond it is cut, with an
    arrow and its top value written at the cut. A segment with a single period (one year after
    an event) is fitted exactly, so the model line there sits on the published point.
    `observed`: the values to draw as observed points, one per fitted period (NaN = not shown),
    instead of the exact counts: for episode data, the small-count-safe numbers of
    `helpers.ssda903.chart_counts`."""
    if ax is None:
        _, ax = plt.subplots()
    cf = res.counterfactual
    points = cf["observed"] if observed is None else np.asarray(observed, float)
    ax.plot(cf["time"], points, linestyle="none", marker="o", markersize=6,
            color=charts.PALETTE["observed"], zorder=4,
            label="Published figure" if observed is None
            else "Published figure (counts under 5 hidden)")
    cuts = sorted({ev.start for ev in res.events})
    edges = [-np.inf] + cuts + [np.inf]
    first_line = True
    for i in range(len(edges) - 1):
        seg = cf[(cf["time"] >= edges[i]) & (cf["time"] < edges[i + 1])]
        if len(seg) > 1:
            ax.plot(seg["time"], seg["fitted"], color=charts.PALETTE["fitted"], linewidth=2.2,
                    label="Model: trend with a change at each event" if first_line else None)
            first_line = False
    ev = res.event
    band = cf[cf["time"] >= ev.first_in_force - 1]
    top = AXIS_HEADROOM * float(np.nanmax(np.r_[np.asarray(points, float), cf["fitted"],
                                                band["counterfactual"]]))
    ax.plot(band["time"], band["counterfactual"], color=charts.PALETTE["counterfactual"],
            linestyle="--", linewidth=2,
            label=charts.wrap(f"Expected without {ev.title} (earlier trend continued)"))
    level = int(round(100 * res.ci_level))
    ax.fill_between(band["time"], np.minimum(band["cf_pred_low"], top),
                    np.minimum(band["cf_pred_high"], top),
                    color=charts.PALETTE["counterfactual"], alpha=0.09, linewidth=0,
                    label=charts.wrap(f"{level}% prediction band: where one {res.unit}'s figure "
                                      "would fall if the trend had continued"))
    ax.fill_between(band["time"], band["cf_low"], np.minimum(band["cf_high"], top),
                    color=charts.PALETTE["counterfactual"], alpha=0.22, linewidth=0,
                    label=charts.wrap(f"{level}% confidence band: where the expected trend "
                                      "itself would lie"))
    clipped = band[band["cf_pred_high"] > top]
    if len(clipped):
        peak = clipped.loc[clipped["cf_pred_high"].idxmax()]
        ax.annotate(f"band continues to {peak['cf_pred_high']:,.0f}", xy=(peak["time"], top),
                    xytext=(-6, -22), textcoords="offset points", ha="right",
                    fontsize=charts.BASE_FONT - 3, color=charts.PALETTE["counterfactual"],
                    arrowprops={"arrowstyle": "->", "color": charts.PALETTE["counterfactual"]})
    last = cf.iloc[-1]
    if np.isfinite(np.asarray(points, float)[-1]):
        ax.annotate(f"{np.asarray(points, float)[-1]:,.0f}", (last["time"], np.asarray(points)[-1]),
                    xytext=(7, 0), textcoords="offset points", va="center",
                    fontsize=charts.BASE_FONT - 2, fontweight="bold")
    charts.mark_events(ax, {e.title: e.first_in_force - 0.5 for e in res.events})
    ax.set_ylim(0, top)
    if res.frequency == "annual":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_xlabel("Year ending 31 March")
    else:  # ticks each January (month index multiple of 12), labelled with the year
        lo, hi = res.times.min(), res.times.max()
        step = 12 * max(1, int(np.ceil((hi - lo) / 12 / 6)))
        ax.set_xticks(np.arange(np.ceil(lo / 12) * 12, hi + 1, step))
        ax.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _: str(timeline.MONTH_ORIGIN.year + int(round(v)) // 12)))
        ax.set_xlabel("Month (ticks at January)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    noun = _outcome_words(res.outcome)[0]
    ax.set_ylabel(ylabel or charts.wrap(first_upper(noun), 28))
    ax.set_title(charts.wrap(title or first_upper(noun), 48), pad=22)
    charts.legend_below(ax)
    synthetic = res.synthetic if synthetic is None else synthetic
    if synthetic:
        charts.mark_synthetic(ax)
    charts.set_alt_text(ax.figure, plot_message(res, la_name)
                        + (" SYNTHETIC data." if synthetic else ""))
    return ax
