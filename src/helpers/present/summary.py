"""The summary page: every published estimate read back from results.json, a verdict for each,
the triangulation table and the findings in words."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from helpers.core import paths, timeline, vocab
from helpers.core.collection import publishing_notebooks
from helpers.core.records import RECORD_COLUMNS
from helpers.present import its as its_words
from helpers.present.text import format_interval, is_missing, md_escape


def its_effects_table(results: dict) -> pd.DataFrame:
    """Every outcome's effects with readable intervals (ratios: 1 = no change)."""
    rows = []
    for outcome, res in results.items():
        for r in res.effects.itertuples():
            rows.append({"outcome": vocab.measure_label(outcome),
                         "event": res.titles.get(r.intervention, r.intervention)
                         if hasattr(res, "titles") else r.intervention,
                         "effect": ("level change" if r.effect == "level" else "trend change"),
                         "estimate (95% CI)": format_interval(r.estimate, r.ci_low, r.ci_high, r.scale),
                         "scale": "rate ratio" if r.scale == "ratio" else r.scale,
                         "p-value": f"{r.p_value:.3f}",
                         "reading": verdict(r.estimate, r.ci_low, r.ci_high, r.scale)})
    return pd.DataFrame(rows)


def diagnostics_table(results: dict) -> pd.DataFrame:
    rows = []
    for outcome, res in results.items():
        d = res.diagnostics
        bg = d.get("breusch_godfrey") or {}
        rows.append({"outcome": vocab.measure_label(outcome), "years": d["n"],
                     "parameters": d["n_params"],
                     "dispersion": None if d.get("dispersion") is None else round(d["dispersion"], 2),
                     "Durbin-Watson": round(d["durbin_watson"], 2),
                     "Breusch-Godfrey p": None if bg.get("p_value") is None else round(bg["p_value"], 3),
                     "warnings": len(its_words.warnings(res))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Verdicts and the summary
# --------------------------------------------------------------------------------------------

def verdict(estimate, ci_low, ci_high, scale="ratio") -> str:
    """Plain words for one estimate: direction when the interval excludes no change
    (1 for ratios, 0 for differences and percentage changes)."""
    values = [estimate, ci_low, ci_high]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return "not estimable"
    null = 1.0 if scale == "ratio" else 0.0
    if ci_low > null:
        return "higher than the trend predicted"
    if ci_high < null:
        return "lower than the trend predicted"
    return "no clear change (interval includes no change)"


#: Sensitivity analyses of the ITS (not independent designs): their "interval" is a spread of
#: placebo dates or specifications, and the findings count them separately.
SENSITIVITY_DESIGNS = tuple(k for k, d in vocab.DESIGNS.items() if d.kind == "check")


def _record_verdict(r) -> str:
    if r.design in ("specification_curve", "sensitivity_headline"):
        if is_missing(r.ci_low) or is_missing(r.ci_high):
            return "not estimable"
        null = 1.0 if r.scale == "ratio" else 0.0
        if r.ci_high < null:
            return "every specification shows a fall"
        if r.ci_low > null:
            return "every specification shows a rise"
        return "specifications disagree on the direction"
    if "placebo" in str(r.design):
        # The interval of a placebo-in-time record is the spread of placebo estimates, not a
        # confidence interval: the permutation p-value carries the verdict.
        if is_missing(r.p_value):
            return "not estimable"
        if r.p_value < 0.05:
            return f"unusual against placebo dates (p = {r.p_value:.2f})"
        beyond = (not is_missing(r.estimate) and not is_missing(r.ci_low)
                  and not (r.ci_low <= r.estimate <= r.ci_high))
        if beyond:  # more extreme than every placebo: p is the smallest the dates allow
            return (f"more extreme than every placebo date, but p = {r.p_value:.2f} is the "
                    "smallest so few dates allow: too few to judge")
        return f"within the range of placebo dates (p = {r.p_value:.2f})"
    words = verdict(None if is_missing(r.estimate) else r.estimate,
                    None if is_missing(r.ci_low) else r.ci_low,
                    None if is_missing(r.ci_high) else r.ci_high, r.scale or "ratio")
    return words + (" - SYNTHETIC data: shows the method only" if vocab.is_synthetic(r.design) else "")


def _number(value, scale) -> str:
    if is_missing(value):
        return "-"
    return f"{value:+.1f}%" if scale == "percent" else f"{value:.2f}"


def results_file(analysis: str, results_dir=None) -> list[Path]:
    """Where the summary reads results: the runner's results folder, else the last published
    reports/<analysis>/results.json."""
    if results_dir:
        # Records only: the sensitivity notebook also leaves `<stem>.headline.json` there.
        return sorted(p for p in Path(results_dir).glob("*.json")
                      if not p.name.endswith(".headline.json"))
    published = paths.reports_dir() / analysis / "results.json"
    return [published] if published.exists() else []


def missing_results(records: pd.DataFrame, notebook_dir=None) -> list[str]:
    """Notebooks of the collection that publish results (declare `results_path`) but have none
    here: not run, failed, or nothing estimable. The summary names them instead of failing."""
    expected = publishing_notebooks(notebook_dir)
    have = set(records["notebook"].dropna())
    return [stem for stem in expected if stem not in have]


def load_results(analysis: str, results_dir=None, exclude=("09_summary",)) -> pd.DataFrame:
    """Every record available for the analysis (RECORD_COLUMNS); empty when none exist yet."""
    frames = []
    for path in results_file(analysis, results_dir):
        if path.stem in exclude:
            continue
        try:
            frames.append(pd.DataFrame(json.loads(path.read_text()), columns=RECORD_COLUMNS))
        except (OSError, ValueError):
            continue
    if not frames:
        return pd.DataFrame(columns=RECORD_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    return out[~out["notebook"].isin(exclude)].reset_index(drop=True)


#: Scales of effect estimates (calibration proportions and power MDEs are not effects).
EFFECT_SCALES = ("ratio", "difference", "percent")


def triangulation_table(records: pd.DataFrame, outcome="starts", effect="level",
                        titles: dict | None = None) -> pd.DataFrame:
    """One row per design x event for the outcome and effect: estimate, interval, verdict
    (`titles` maps event names to plain titles)."""
    titles = titles or {}
    columns = ["design", "notebook", "event", "estimate", "95% interval", "scale", "verdict"]
    if records.empty:
        return pd.DataFrame(columns=columns)
    sel = records[(records["outcome"] == outcome) & (records["effect"] == effect)
                  & records["scale"].isin(EFFECT_SCALES)]
    rows = []
    for r in sel.itertuples():
        interval = ("-" if is_missing(r.ci_low) or is_missing(r.ci_high) else
                    f"{_number(r.ci_low, r.scale)} to {_number(r.ci_high, r.scale)}")
        if "placebo" in str(r.design) and interval != "-":
            interval = f"placebo range {interval}"
        elif r.design in SENSITIVITY_DESIGNS and interval != "-":
            interval = f"range {interval}"
        rows.append({
            "design": vocab.design_label(r.design), "notebook": r.notebook,
            "event": titles.get(r.event, r.event),
            "estimate": _number(r.estimate, r.scale), "95% interval": interval,
            "scale": {"ratio": "rate ratio", "percent": "% change"}.get(r.scale, r.scale),
            "verdict": _record_verdict(r),
        })
    return pd.DataFrame(rows, columns=columns)


def findings_text(records: pd.DataFrame, la_name: str, outcome="starts", effect="level",
                  titles: dict | None = None) -> str:
    """Plain-English findings: how many designs agree on a direction for each event
    (`titles` maps event names to plain titles)."""
    titles = titles or {}
    table = triangulation_table(records, outcome, effect)
    if table.empty:
        return (f"No estimates are available yet for {la_name}; run `care-trends run` so the "
                "other notebooks publish their results, then re-run this summary.")
    sensitivity = {vocab.design_label(d) for d in SENSITIVITY_DESIGNS}
    table = table[~table["design"].str.contains("SYNTHETIC") & ~table["design"].isin(sensitivity)]
    if table.empty:
        return (f"Only synthetic-data or sensitivity estimates are available for {la_name}: "
                "they test the method, not what happened.")
    lines = []
    for event, group in table.groupby("event", sort=False):
        counts = group["verdict"].value_counts()
        lower = int(counts.get("lower than the trend predicted", 0))
        higher = int(counts.get("higher than the trend predicted", 0))
        n = len(group)
        noun = "estimate" if n == 1 else "estimates"
        if lower and not higher:
            text = f"{lower} of {n} {noun} point to fewer {outcome} than the trend predicted"
        elif higher and not lower:
            text = f"{higher} of {n} {noun} point to more {outcome} than the trend predicted"
        elif lower and higher:
            text = f"the {n} {noun} disagree on the direction"
        elif n == 1:
            text = "the one estimate cannot separate a change from no change"
        else:
            text = f"none of the {n} {noun} separates a change from no change"
        lines.append(f"**{titles.get(event, event)}**: {text}.")
    return "\n\n".join(lines)


def multiple_testing_text(records: pd.DataFrame, event_title: str, outcome: str,
                          alpha: float = 0.05) -> str:
    """How many tests the pages ran on real data, how many were 'significant', and how many
    chance alone would give if nothing had changed: why the verdict rests on the one test
    declared in advance."""
    if records.empty or "p_value" not in records:
        return ""
    real = records[~records["design"].map(vocab.is_synthetic)]
    p = pd.to_numeric(real["p_value"], errors="coerce").dropna()
    if p.empty:
        return ""
    n, hits = len(p), int((p < alpha).sum())
    return (f"Across these pages {n} tests with a p-value were run on the official data, and "
            f"{hits} of them are “significant” at {alpha:.0%}. If nothing had changed "
            f"anywhere, chance alone would give about {alpha * n:.0f} such results, so a count "
            "of significant results is not evidence. The answer rests on the one test declared "
            f"before the data were seen: the change in {vocab.measure_label(outcome).lower()} "
            f"at {md_escape(event_title)}, from the single-series model.")


# --------------------------------------------------------------------------------------------
# What the summary page shows a reader
# --------------------------------------------------------------------------------------------
def evidence_table(records: pd.DataFrame, outcome="starts", effect="level",
                   titles: dict | None = None, *, synthetic: bool = False) -> pd.DataFrame:
    """The triangulation table as a reader sees it: human column names, no notebook column,
    real-data designs only (`synthetic=True`: only the SYNTHETIC demonstrations, for their
    own labelled section)."""
    if records.empty:
        return pd.DataFrame(columns=["Design", "Event", "Estimate", "Interval", "Scale",
                                     "Reading"])
    keep = records["design"].map(vocab.is_synthetic) == synthetic
    table = triangulation_table(records[keep], outcome, effect, titles)
    table = table.drop(columns=["notebook"]).rename(columns={
        "design": "Design", "event": "Event", "estimate": "Estimate",
        "95% interval": "Interval", "scale": "Scale", "verdict": "Reading"})
    return table


def caveats(spec, years_after: int) -> list[str]:
    """The caveats that limit the answer, written for this analysis (not canned)."""
    event = spec.event
    first = timeline.reporting_year_label(event.first_time("annual"))
    n_years = spec.last_data_year - spec.start_year + 1
    out = [f"**Few years.** The official series gives {n_years} yearly figures from "
           f"{timeline.reporting_year_label(spec.start_year)}; each model estimates several "
           "numbers from them, so intervals are wide and single years matter."]
    if years_after <= 2:
        out.append(f"**Recent programme.** {event.title} ({event.date:%B %Y}) is first in force "
                   f"for a whole reporting year in {first}, so the official data have "
                   f"{years_after} year{'s' if years_after > 1 else ''} after it: an early "
                   "signal, not a measured effect. A council's own monthly data shorten the "
                   "wait.")
    else:
        out.append(f"**Time since the event.** {event.title} ({event.date:%B %Y}) has been in "
                   f"force for {years_after} reporting years ({first} onwards); other changes "
                   "over those years would show up the same way in a single series.")
    if event.precision != "day":
        out.append("**Launch date uncertain.** The date is known only approximately; the "
                   "sensitivity analyses try other dates within its range.")
    out.append("**Other things changed at the same time.** A single series attributes any "
               "change at an event to it; the comparative designs test that, and they assume "
               "the comparison councils had no similar programme.")
    out.append("**Definitions.** Starts and exits are counted per child per year; figures a "
               "council reported itself are labelled council-reported and never enter a model; "
               "SYNTHETIC data only demonstrate the method.")
    return out
