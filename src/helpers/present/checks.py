"""Words and charts for the checks: placebo in time, the specification curve, structural breaks,
power ("when will we know") and calibration, and the sensitivity headline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.checks import calibration
from helpers.core import vocab
from helpers.checks.breaks import BreakResult
from helpers.checks.placebo import smallest_p
from helpers.present import charts
from helpers.present.text import first_upper, md_escape


def placebo_verdict(n_placebo: int, n_smaller: int, rank_p: float, alpha: float = 0.05) -> str:
    """Where the real estimate falls among the placebo estimates, and whether that many placebo
    dates could ever give a small p-value (with 7 dates the smallest possible is 0.125)."""
    floor = smallest_p(n_placebo)
    if n_smaller == n_placebo:
        where = (f"the real estimate is larger in size than every one of the {n_placebo} "
                 "placebo estimates at earlier dates")
    elif n_smaller == 0:
        where = (f"the real estimate is no larger than any of the {n_placebo} placebo "
                 "estimates at earlier dates: the series moves this much when nothing happens")
    else:
        where = (f"the real estimate is larger in size than {n_smaller} of the {n_placebo} "
                 "placebo estimates at earlier dates")
    if floor >= alpha:
        return (f"{where} (placebo p = {rank_p:.2f}; with {n_placebo} date"
                f"{'' if n_placebo == 1 else 's'} the smallest possible placebo p is "
                f"{floor:.3g}: too few to judge).")
    return f"{where} (placebo p = {rank_p:.2f})."


def _title(key, titles: Mapping | None, markdown: bool = True) -> str:
    """An event's plain title (escaped for Markdown) where the caller knows it."""
    if titles and key in titles:
        return md_escape(titles[key]) if markdown else str(titles[key])
    return charts.human_name(key)


def placebo_summary(res, titles: Mapping | None = None) -> str:
    lines = []
    for row in res.summary_table.to_dict("records"):
        name = f"{_title(row['event'], titles)} ({row['effect']})"
        if row["n_placebo"] == 0:
            lines.append(f"{name}: no earlier date leaves enough data before and after it, so "
                         "no placebo comparison is possible.")
            continue
        lines.append(f"{name}: " + placebo_verdict(int(row["n_placebo"]), int(row["n_smaller"]),
                                                   float(row["rank_p"])))
    return "\n".join(lines)


def plot_placebo(res, ax=None, titles: Mapping | None = None):
    rows = res.summary_table[res.summary_table["n_placebo"] > 0]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.9 + 0.7 * max(len(rows), 1)))
    labels = []
    for i, row in enumerate(rows.to_dict("records")):
        sel = res.table[(res.table["event"] == row["event"])
                         & (res.table["effect"] == row["effect"])]
        plac = sel[sel["placebo"]]
        ax.scatter(plac["percent"], np.full(len(plac), i), color="#7a7a7a", s=28,
                   label="placebo date" if i == 0 else None, zorder=2)
        ax.scatter([row["percent"]], [i], color="#d1495b", marker="D", s=60,
                   label="real date" if i == 0 else None, zorder=3)
        labels.append(f"{charts.wrap(_title(row['event'], titles, False), 28)}\n({row['effect']})")
    ax.axvline(0, color="#1b1b1b", linewidth=0.8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_xlabel("Estimated change (%; slopes: % per period)")
    ax.set_ylabel("Event (effect)")
    ax.set_title(charts.wrap("Placebo in time: real estimates against the same model at "
                             "earlier dates", 60))
    if labels:
        ax.legend(loc="best")
    return ax


def speccurve_summary(res, titles: Mapping | None = None) -> str:
    s = res.stats()
    name = _title(res.event, titles)
    if s["n_specs"] == 0:
        return f"No specification could be fitted for {name}."
    if s["share_negative"] > 0.6:
        direction = "Most specifications point to a fall."
    elif s["share_negative"] < 0.4:
        direction = "Most specifications point to a rise."
    else:
        direction = "The specifications disagree even on the direction."
    return (f"Across {s['n_specs']} specifications the level change at \u201c{name}\u201d "
            "ranges from "
            f"{s['min_percent']:+.0f}% to {s['max_percent']:+.0f}% (median "
            f"{s['median_percent']:+.0f}%); {s['share_negative']:.0%} point to a fall and "
            f"{s['share_significant']:.0%} are statistically significant at 5%. {direction}")


def plot_speccurve(res, fig=None, titles: Mapping | None = None):
    # A stable order (ties by specification number), so the chart is the same on every run.
    t = res.fitted.sort_values(["percent", "spec_id"], kind="mergesort").reset_index(drop=True)
    if fig is None:
        fig = plt.figure(figsize=(9, 7))
    gs = fig.add_gridspec(2, 1, height_ratios=[2.2, 1.6], hspace=0.08)
    ax = fig.add_subplot(gs[0])
    x = np.arange(len(t))
    sig = t["p_value"] < 0.05
    ax.vlines(x, t["pct_low"], t["pct_high"], color="#b0b0b0", linewidth=1)
    ax.scatter(x[~sig], t.loc[~sig, "percent"], color="#7a7a7a", s=14, label="p >= 0.05")
    ax.scatter(x[sig], t.loc[sig, "percent"], color="#0b6e99", s=14, label="p < 0.05")
    dflt = t["is_default"].to_numpy()
    if dflt.any():
        ax.scatter(x[dflt], t.loc[dflt, "percent"], color="#d1495b", marker="D", s=50,
                   label="pre-declared analysis", zorder=3)
    ax.axhline(0, color="#1b1b1b", linewidth=0.8)
    ax.set_ylabel("Level change (%)")
    ax.set_title(charts.wrap(f"Specification curve: {_title(res.event, titles, False)} level "
                             "change under every choice", 60))
    ax.set_xticks([])
    ax.legend(fontsize=8, loc="best")
    ax2 = fig.add_subplot(gs[1], sharex=ax)
    choices = []
    for col, fmt in (("start_year", "start {}"), ("launch_time", "in force {}"),
                     ("family", "{}"), ("covid_excluded", "COVID excl. {}"),
                     ("scale", "{}"), ("earlier_events", "earlier events: {}"),
                     ("effect_shape", "effect: {}")):
        if col not in t:
            continue
        for value in sorted(t[col].unique(), key=str):
            shown = vocab.FAMILY_SHORT.get(value, value) if col == "family" else value
            choices.append((col, value, fmt.format(shown)))
    for j, (col, value, _) in enumerate(choices):
        hit = (t[col] == value).to_numpy()
        ax2.scatter(x[hit], np.full(hit.sum(), j), color="#1b1b1b", s=6, marker="s")
    ax2.set_yticks(range(len(choices)))
    ax2.set_yticklabels([c[2] for c in choices], fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xlabel("Specifications, ordered by estimate")
    ax2.grid(False)
    return fig


def breaks_reading(breaks: Sequence, comparison: pd.DataFrame, unit: str = "year",
                   titles: Mapping | None = None) -> str:
    """Plain-English reading of `breaks_vs_events`."""
    if not len(breaks):
        text = "The data alone show no clear change of regime: one trend fits as well as any split."
    else:
        text = (f"The data alone place new regimes from {', '.join(str(b) for b in breaks)}.")
    hits = comparison[comparison["coincides"]]
    misses = comparison[~comparison["coincides"]]
    if len(hits):
        text += (" Declared events with a data-driven break within one " + unit + ": "
                 + ", ".join(_title(e, titles) for e in hits["event"]) + ".")
    if len(misses):
        text += (" No break near: " + ", ".join(_title(e, titles) for e in misses["event"])
                 + " (a break at the very end of the series cannot be seen: each regime needs "
                 "several points).")
    return text


def plot_breaks(series: pd.Series, result: BreakResult, times: Mapping[str, float] | None = None,
                *, ylabel: str = "", title: str = "Data-driven breaks against the declared events",
                ax=None):
    """The series, its segment fits and the breaks (solid) against declared events (dashed)."""
    if ax is None:
        _, ax = plt.subplots()
    x = np.asarray(series.index, dtype=float)
    ax.plot(x, series.to_numpy(), "o", color=charts.PALETTE["observed"], label="observed")
    fitted = result.fitted(series.to_numpy())
    bounds = [0] + list(result.positions) + [len(x)]
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        ax.plot(x[a:b], fitted[a:b], color=charts.PALETTE["fitted"], linewidth=2,
                label="regime fit" if k == 0 else None)
    for k, label in enumerate(result.labels):
        ax.axvline(float(label) - 0.5, color=charts.PALETTE["counterfactual"], linewidth=1.5,
                   label="data-driven break" if k == 0 else None)
    if times:
        charts.mark_events(ax, {k: float(v) - 0.5 for k, v in times.items()})
    ax.set_xlabel("Reporting year (ending 31 March)")
    ax.set_ylabel(ylabel)
    ax.set_title(charts.wrap(title, 60), pad=22)
    charts.legend_below(ax)
    return ax


def plot_when_will_we_know(table: pd.DataFrame, *, current_percent: float | None = None,
                           event: str = "the event", ax=None):
    """Chart: the smallest fall detectable (80% power) against months of data after the event."""
    if ax is None:
        _, ax = plt.subplots()
    for freq, colour, marker in (("annual", "#7a7a7a", "s"), ("monthly", "#0b6e99", "o")):
        sel = table[table["frequency"] == freq]
        label = ("annual published data (1-3 years)" if freq == "annual"
                 else "monthly data (council's own SSDA903)")
        ax.plot(sel["months_after"], sel["mde_percent"], marker=marker, color=colour, label=label)
    if current_percent is not None and np.isfinite(current_percent):
        ax.axhline(abs(current_percent), color="#d1495b", linestyle="--", linewidth=1,
                   label=f"size of the current estimate ({abs(current_percent):.0f}%)")
    ax.set_xlabel(f"Months of data after {event}")
    ax.set_ylabel("Smallest fall detectable (%)")
    ax.set_title(charts.wrap("When will we know? Smallest change detectable with 80% "
                             "power", 60))
    ax.set_ylim(bottom=0)
    ax.legend()
    return ax


def power_reading(table: pd.DataFrame, months: int | None, current_percent: float | None,
                  *, horizon: int = 60) -> str:
    """What the power table means for a council."""
    ann = table[table["frequency"] == "annual"].set_index("n_post")["mde_percent"]
    mon = table[table["frequency"] == "monthly"].set_index("n_post")["mde_percent"]

    def pct(v):
        return "more than the largest change simulated" if not np.isfinite(v) else f"{v:.0f}%"

    parts = []
    if len(ann):
        parts.append("With published annual figures, the smallest fall in the level that would be "
                     "detected 8 times in 10 is "
                     + ", ".join(f"{pct(v)} after {k} year{'s' if k > 1 else ''}"
                                 for k, v in ann.items()) + ".")
    if len(mon):
        parts.append("With the council's own monthly data it is "
                     + ", ".join(f"{pct(v)} after {k} months" for k, v in mon.items()) + ".")
    if current_percent is not None and np.isfinite(current_percent):
        if months is not None:
            parts.append(f"A change the size of the current estimate ({abs(current_percent):.0f}%) "
                         f"would be detected 8 times in 10 after about {months} months of monthly data.")
        else:
            parts.append(f"A change the size of the current estimate ({abs(current_percent):.0f}%) "
                         f"would not be reliably detected even after {horizon} months.")
    oversized = table[table["false_positive_rate"] > 0.075]
    if len(oversized):
        parts.append("Where the test rejects too often with no effect (false-positive rate above "
                     "7.5%), the threshold was tightened so these figures are not flattered.")
    return " ".join(parts)


def measured_sizes(table: pd.DataFrame, methods: Sequence[str], setting: str = "monthly") -> str:
    """One sentence per method: the range of its false-positive rate and coverage over the cells
    of a calibration table (e.g. `calibration.load_full_table()`), with the Monte Carlo error."""
    sel = table[table["setting"] == setting]
    if sel.empty:
        return ""
    status = calibration.method_status(sel).set_index("method")
    cells = sel.groupby(["n", "n_post", "rho", "sigma"]).ngroups
    mc_se = float(sel["fpr_mc_se"].max())
    parts = []
    for method in methods:
        if method not in status.index:
            continue
        r = status.loc[method]
        parts.append(f"{vocab.FAMILY_LABELS.get(method, method)} ({r['status']}): false "
                     f"positives {r['fpr_min']:.1%} to {r['fpr_max']:.1%}, 95% intervals "
                     f"covering the truth {r['coverage_min']:.0%} to {r['coverage_max']:.0%}")
    lengths = f"{int(sel['n'].min())} to {int(sel['n'].max())}"
    unit = "months" if setting == "monthly" else "years"
    return (f"Measured on {cells} kinds of simulated {setting} series ({lengths} {unit}, "
            f"autocorrelation up to {sel['rho'].max():g}, {int(sel['n_sim'].min()):,}+ series "
            f"each with no true change; Monte Carlo error at most {100 * mc_se:.1f} points): "
            + "; ".join(parts) + ".")


def calibration_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per setting x method x effect: false-positive rate and 95% coverage with their
    Monte Carlo errors, the simulations behind them and the status after allowing for that
    error (`calibration.method_status`), in human words."""
    status = calibration.method_status(table).set_index(["setting", "method"])["status"]
    order = {m: i for i, m in enumerate(calibration.MONTHLY_METHODS + calibration.ANNUAL_METHODS)}
    rows = []
    for r in table.sort_values(["setting", "method"], kind="mergesort",
                               key=lambda c: c.map(order) if c.name == "method" else c
                               ).to_dict("records"):
        rows.append({"series": f"{r['setting']} (n = {r['n']}, {r['n_post']} after)",
                     "method": vocab.FAMILY_SHORT.get(r["method"], r["method"]),
                     "impact model": r["model"], "effect": r["effect"],
                     "false positives (%)": round(100 * r["false_positive_rate"], 1),
                     "± MC error": round(196 * r["fpr_mc_se"], 1),
                     "95% interval covers (%)": round(100 * r["coverage_95"], 1),
                     "simulated series": int(r["n_sim"]),
                     "status": status.get((r["setting"], r["method"]), "")})
    return pd.DataFrame(rows)


def _span(low: float, high: float, fmt: str) -> str:
    """'5.5%' or '4.1% to 5.6%': a range only when its ends differ once rounded."""
    a, b = format(low, fmt), format(high, fmt)
    return a if a == b else f"{a} to {b}"


def calibration_reading(table: pd.DataFrame, defaults: Mapping[str, str],
                        tolerance: float = 0.02) -> str:
    """Which methods keep their promises when nothing happened, allowing for the Monte Carlo
    error; "none calibrated" is said as such."""
    status = calibration.method_status(table, tolerance)
    parts = []
    for setting, sel in status.groupby("setting", sort=False):
        sel = sel.set_index("method")
        n = int(table.loc[table["setting"] == setting, "n"].iloc[0])
        worst = sel["fpr_max"].idxmax()
        chosen = defaults.get(setting, "none calibrated")
        text = (f"On {setting} series like these (n = {n}) with no real change, "
                f"{vocab.FAMILY_SHORT.get(worst, worst)} claims a significant change up to "
                f"{sel.loc[worst, 'fpr_max']:.0%} of the time.")
        if chosen in sel.index:
            r = sel.loc[chosen]
            text += (f" {first_upper(vocab.FAMILY_SHORT.get(chosen, chosen))} keeps its promise "
                     f"(false positives {_span(r['fpr_min'], r['fpr_max'], '.1%')}, intervals "
                     f"covering the truth {_span(r['coverage_min'], r['coverage_max'], '.0%')}, "
                     f"within {tolerance:.0%} of nominal after allowing for the Monte Carlo "
                     "error): it is the one to use.")
        else:
            closest = (sel["fpr_max"] - 0.05).abs().idxmin()
            text += (f" No method is calibrated here: none stays within {tolerance:.0%} of the "
                     "nominal 5% false-positive rate and 95% coverage once the Monte Carlo error "
                     f"is allowed for. The closest is {vocab.FAMILY_SHORT.get(closest, closest)} "
                     f"({_span(sel.loc[closest, 'fpr_min'], sel.loc[closest, 'fpr_max'], '.1%')}); "
                     "read its p-values as approximate.")
        parts.append(text)
    return " ".join(parts)


def break_criterion_reading(false_breaks: pd.DataFrame, result: BreakResult,
                            bic_labels: Sequence) -> str:
    """How the number of breaks was chosen and how often that rule finds a break in a series of
    this length with none (`helpers.checks.breaks.break_calibration`: one row per criterion and
    autocorrelation)."""
    def rates(criterion):
        sel = false_breaks[false_breaks["criterion"] == criterion].sort_values("rho")
        return [(float(r.rho), float(r.false_break_rate)) for r in sel.itertuples()]

    def words(pairs):
        return " and ".join(f"{rate:.0%} " + ("with independent years" if rho == 0 else
                                              f"with autocorrelation {rho:g}")
                            for rho, rate in pairs)

    n, sims = int(false_breaks["n"].iloc[0]), int(false_breaks["n_sim"].min())
    se = float(false_breaks["mc_se"].max())
    bic_text = ", ".join(str(b) for b in bic_labels) if len(bic_labels) else "none"
    return (f"Breaks are counted by sequential sup-F tests at {result.alpha:.0%} with critical "
            f"values simulated for {n} points. On {sims:,} simulated series of {n} years like "
            f"this one with no break, this rule finds one in {words(rates('supf'))} (Monte "
            f"Carlo error at most {100 * se:.1f} points); the Bayesian information criterion "
            f"would find one in {words(rates('bic'))} (here it places breaks at: {bic_text}).")


def headline_text(head: Mapping) -> str:
    """The sentences the summary quotes about the primary event (from
    `helpers.checks.headline.summarise`)."""
    title = md_escape(head.get("event_title") or head.get("event"))
    parts = []
    if head.get("n_specs"):
        parts.append(
            f"The estimate for \u201c{title}\u201d is {head['fragility']}: across "
            f"{head['n_specs']} reasonable "
            f"specifications the level change ranges from {head['min_percent']:+.0f}% to "
            f"{head['max_percent']:+.0f}% (pre-declared analysis {head['default_percent']:+.0f}%), "
            f"{head['share_negative']:.0%} of them show a fall and {head['share_significant']:.0%} "
            "are significant at 5%.")
        if head.get("default_n_post") == 1:
            parts.append("Every version rests on a single reporting year after the launch, so "
                         "the estimates agree on its size but not on how sure to be.")
    if head.get("n_placebo"):
        n, n_ge = int(head["n_placebo"]), int(head["n_placebo_as_large"])
        parts.append(f"Moved to {n} earlier dates, the same model finds a change at least as "
                     f"large {n_ge} time{'' if n_ge == 1 else 's'}: "
                     + placebo_verdict(n, n - n_ge, float(head["placebo_rank_p"])))
    mde = head.get("mde_annual_1_percent")
    if mde is not None and np.isfinite(mde):
        parts.append(f"With one year of published annual data only a fall of about "
                     f"{mde:.0f}% or more would be reliably detected.")
    current = head.get("default_percent")
    months, months_half = head.get("months_to_detect"), head.get("months_to_detect_half")
    horizon = head.get("months_horizon", 60)
    if months is not None:
        parts.append(f"With monthly data, a change the size of the current estimate "
                     f"({abs(current):.0f}%) would be detected with 80% power within "
                     f"{months} months" + (
                         f"; one half that size ({abs(current) / 2:.0f}%) within "
                         f"{months_half} months." if months_half is not None else
                         f"; one half that size ({abs(current) / 2:.0f}%) not within "
                         f"{horizon} months." if current is not None else "."))
    elif current is not None and np.isfinite(current):
        parts.append(f"Even {horizon} months of monthly data would not reliably detect a "
                     f"change the size of the current estimate ({abs(current):.0f}%).")
    return " ".join(parts)
