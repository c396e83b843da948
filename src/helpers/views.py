"""Report building blocks the notebooks call: accessible tables, trend comparisons, the LA's
rank, growth decomposition, ITS fits per outcome, and verdict wording for the summary.

Logic lives here (tested with pytest) so the notebooks stay short and read like a report.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core import paths, timeline
from helpers.core.records import RECORD_COLUMNS
from helpers.present.text import format_interval

OUTCOME_LABELS = {"starts": "Children starting to be looked after",
                  "cla_31_march": "Children looked after on 31 March",
                  "ceased": "Children ceasing to be looked after"}
DESIGN_LABELS = {"its": "Single-series ITS", "controlled_its": "Controlled ITS",
                 "did": "Difference-in-differences", "synthetic_control": "Synthetic control",
                 "its_monthly": "Monthly ITS (SSDA903)",
                 "its_monthly_synthetic": "Monthly ITS (SYNTHETIC data)",
                 "its_monthly_ar1": "Monthly ITS, AR(1) errors (SSDA903)",
                 "its_monthly_ar1_synthetic": "Monthly ITS, AR(1) errors (SYNTHETIC data)",
                 "controlled_its_ratio": "Controlled ITS (ratio to comparator)",
                 "event_study": "Event study", "its_all_las": "ITS, all-LA league table",
                 "its_segmented_batch": "ITS, all-LA batch fit",
                 "placebo_in_time": "Placebo in time", "specification_curve": "Specification curve",
                 "sensitivity_headline": "Sensitivity (median of specifications)"}


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

class Table:
    """A DataFrame shown as a real HTML table with a caption and column headers (scope=col),
    without the index; numbers formatted by the caller (strings pass through)."""

    def __init__(self, df: pd.DataFrame, caption: str, note: str | None = None):
        self.df = df.reset_index(drop=True)
        self.caption = caption
        self.note = note

    def _cell(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "&ndash;"
        if isinstance(value, (float, np.floating)):
            # Callers round; whole numbers (counts stored as float) print without decimals.
            value = float(value)
            return f"{value:,.0f}" if value.is_integer() else f"{round(value, 3):,}"
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return f"{value}" if 1900 < value < 2100 else f"{value:,}"
        return html.escape(str(value))

    def _repr_html_(self) -> str:
        text_class = ' class="text"'  # left-aligned text columns; numbers align right
        kinds = ["" if pd.api.types.is_numeric_dtype(self.df[c]) else text_class
                 for c in self.df.columns]
        head = "".join(f'<th scope="col"{kind}>{html.escape(str(c))}</th>'
                       for c, kind in zip(self.df.columns, kinds))
        rows = []
        for record in self.df.itertuples(index=False):
            cells = "".join(f"<td{kind}>{self._cell(v)}</td>" for v, kind in zip(record, kinds))
            rows.append(f"<tr>{cells}</tr>")
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (f"<table><caption>{html.escape(self.caption)}</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}")

    def __repr__(self) -> str:
        text = self.df.to_string(index=False)
        return f"{self.caption}\n{text}" + (f"\n{self.note}" if self.note else "")


def markdown_list(items) -> str:
    return "\n".join(f"- {item}" for item in items)


# --------------------------------------------------------------------------------------------
# Data overview
# --------------------------------------------------------------------------------------------

def coverage_table(la, measures=("cla_31_march", "starts", "ceased")) -> pd.DataFrame:
    """Per measure: years with a count, missing or suppressed years, where rates come from."""
    from helpers import data

    rows = []
    for measure in measures:
        s = data.annual_series(la, measure)
        have = s.loc[s["count"].notna(), "year"].astype(int)
        gaps = s.loc[s["count"].isna(), "year"].astype(int).tolist()
        sources = s.groupby("rate_source", dropna=False)["year"].agg(["min", "max"])
        rate_text = "; ".join(f"{src if isinstance(src, str) else 'none'} {lo}-{hi}"
                              for src, (lo, hi) in sources.iterrows())
        rows.append({"measure": OUTCOME_LABELS.get(measure, measure),
                     "years with a count": f"{have.min()}-{have.max()} ({len(have)})",
                     "missing or suppressed": ", ".join(map(str, gaps)) or "none",
                     "rate per 10,000": rate_text,
                     "boundary change": "yes" if s["boundary_flag"].fillna(False).astype(bool).any()
                     else "no"})
    return pd.DataFrame(rows)


def provenance_table(la, measure="cla_31_march") -> pd.DataFrame:
    """Year by year: count, population, rate and where each came from (published/computed)."""
    from helpers import data

    s = data.annual_series(la, measure)
    return pd.DataFrame({
        "year": s["year"].astype(int),
        "count": s["count"],
        "rate per 10,000": s["rate_per_10000"],
        "rate": s["rate_source"].fillna("none").str.replace("_", " "),
        "count source": s["count_source"].fillna("").str.replace(r" underlying data", "", regex=True),
        "population": s["population_source"].fillna(""),
    })


def official_vs_council(la) -> pd.DataFrame:
    """Council-reported counts of children looked after beside the official 31 March figure
    for the same reporting year, each labelled."""
    from helpers import data

    council = data.council_reported(la)
    official = data.annual_series(la, "cla_31_march").set_index("year")["count"]
    rows = []
    for r in council.itertuples():
        year = timeline.reporting_year(r.date)
        on_31_march = pd.Timestamp(r.date).strftime("%m-%d") == "03-31"
        rows.append({
            "date": r.date_text,
            "council-reported": int(r.count) if pd.notna(r.count) else None,
            "label": "council-reported, not official statistics",
            "official (DfE, 31 March)": (official.get(year) if on_31_march else None),
            "reporting year": timeline.reporting_year_label(year),
        })
    return pd.DataFrame(rows)


def plot_official_vs_council(la, start_year=2018, ax=None):
    """Official 31 March counts (line) with council-reported counts (hollow markers, labelled)."""
    import matplotlib.pyplot as plt

    from helpers import data, plotting

    rec = data.resolve_la(la)
    if ax is None:
        _, ax = plt.subplots()
    official = _series(rec.la_code, "cla_31_march", start_year)
    ax.plot(pd.to_datetime(official["year"].astype(str) + "-03-31"), official["count"],
            marker="o", color=plotting.PALETTE["observed"],
            label="official: DfE, looked after on 31 March")
    council = data.council_reported(rec.la_code)
    if len(council):
        ax.scatter(pd.to_datetime(council["date"]), council["count"], facecolors="none",
                   edgecolors=plotting.PALETTE["counterfactual"], s=50, linewidths=1.5,
                   label="council-reported (not official statistics)")
    ax.set_title(f"{rec.la_name}: children looked after, official and council-reported")
    ax.set_xlabel("Date")
    ax.set_ylabel("Children looked after")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


# --------------------------------------------------------------------------------------------
# Trends
# --------------------------------------------------------------------------------------------

def _series(area, measure, start_year=None, end_year=None) -> pd.DataFrame:
    from helpers import data

    s = data.annual_series(area, measure)
    if start_year:
        s = s[s["year"] >= start_year]
    if end_year:
        s = s[s["year"] <= end_year]
    return s


def comparison_rates(la, measure="cla_31_march", start_year=2010, end_year=None,
                     edition="2021") -> pd.DataFrame:
    """Rate per 10,000 children by year: the LA, its statistical neighbours (pooled: their
    summed counts over summed populations), its region and England. Wide, one row per year."""
    from helpers import data

    rec = data.resolve_la(la)
    out = _series(rec.la_code, measure, start_year, end_year)[["year", "rate_per_10000"]]
    out = out.rename(columns={"rate_per_10000": rec.la_name})
    pooled = []
    for code in data.statistical_neighbours(rec.la_code, edition=edition):
        s = _series(code, measure, start_year, end_year)
        pooled.append(s[["year", "count", "population"]])
    if pooled:
        sn = pd.concat(pooled).groupby("year").sum(min_count=1).reset_index()
        sn["rate"] = (sn["count"] / sn["population"] * 10000).round(1)
        out = out.merge(sn[["year", "rate"]].rename(columns={"rate": "statistical neighbours"}),
                        on="year", how="left")
    for area in (rec.region_name, "England"):
        if area:
            s = _series(area, measure, start_year, end_year)[["year", "rate_per_10000"]]
            out = out.merge(s.rename(columns={"rate_per_10000": area}), on="year", how="left")
    out["year"] = out["year"].astype(int)
    return out.reset_index(drop=True)


def plot_comparison(table: pd.DataFrame, la_name: str, measure: str, events: dict | None = None,
                    ax=None):
    """Lines of rate per 10,000 for the LA (bold) and its comparators."""
    import matplotlib.pyplot as plt

    from helpers import plotting

    if ax is None:
        _, ax = plt.subplots()
    for column in table.columns.drop("year"):
        mine = column == la_name
        ax.plot(table["year"], table[column], marker="o" if mine else None,
                linewidth=2.4 if mine else 1.4, label=column,
                color=plotting.PALETTE["observed"] if mine else None)
    if events:
        plotting.mark_events(ax, events)
    ax.set_title(f"{OUTCOME_LABELS.get(measure, measure)}: rate per 10,000 children")
    ax.set_xlabel("Reporting year ending 31 March")
    ax.set_ylabel("Rate per 10,000 children aged under 18")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


def rank_by_year(la, measure="cla_31_march", start_year=2010, end_year=None) -> pd.DataFrame:
    """The LA's rank among all LAs each year by rate per 10,000 (1 = highest rate)."""
    from helpers import data

    rec = data.resolve_la(la)
    panel = data.load_panel()
    las = panel[(panel["geographic_level"] == "Local authority") & (panel["measure"] == measure)
                & panel["rate_per_10000"].notna()]
    if start_year:
        las = las[las["year"] >= start_year]
    if end_year:
        las = las[las["year"] <= end_year]
    rows = []
    for year, group in las.groupby("year"):
        ranks = group["rate_per_10000"].rank(ascending=False, method="min")
        mine = ranks[group["la_code"] == rec.la_code]
        if mine.empty:
            continue
        rows.append({"year": int(year), "rate per 10,000": float(
            group.loc[mine.index[0], "rate_per_10000"]),
            "rank (1 = highest)": int(mine.iloc[0]), "of LAs": int(len(group))})
    return pd.DataFrame(rows)


def growth_decomposition(la, start_year=2010, end_year=None) -> pd.DataFrame:
    """Why the number in care changed: change on 31 March = starts - ceased + other.

    'other' is the part the two flows do not explain (children counted in a different year's
    return, revisions between editions, episodes ending and starting on one day)."""
    stock = _series(la, "cla_31_march", start_year - 1 if start_year else None, end_year)
    starts = _series(la, "starts", start_year, end_year)
    ceased = _series(la, "ceased", start_year, end_year)
    table = (stock[["year", "count"]].rename(columns={"count": "cla_31_march"})
             .assign(change=lambda d: d["cla_31_march"].diff())
             .merge(starts[["year", "count"]].rename(columns={"count": "starts"}), on="year")
             .merge(ceased[["year", "count"]].rename(columns={"count": "ceased"}), on="year"))
    table["net flow (starts - ceased)"] = table["starts"] - table["ceased"]
    table["other"] = table["change"] - table["net flow (starts - ceased)"]
    table["year"] = table["year"].astype(int)
    return table.rename(columns={"cla_31_march": "looked after on 31 March",
                                 "change": "change in year"}).reset_index(drop=True)


def decomposition_reading(table: pd.DataFrame, la_name: str, split_year: int | None = None) -> str:
    """Plain English: did rising starts or falling exits drive the stock?"""
    def period_text(part: pd.DataFrame) -> str:
        first, last = part.iloc[0], part.iloc[-1]
        d_starts = last["starts"] - first["starts"]
        d_ceased = last["ceased"] - first["ceased"]
        change = part["change in year"].sum()
        if change >= 0:
            driver = ("more children starting" if d_starts > 0 and d_starts >= -d_ceased
                      else "fewer children leaving" if d_ceased < 0
                      else "starts still exceeding exits, although starts fell and exits rose")
        else:
            driver = ("more children leaving" if d_ceased > 0 and d_ceased >= -d_starts
                      else "fewer children starting")
        return (f"from {int(first['year']) - 1} to {int(last['year'])} the number looked after on "
                f"31 March changed by {change:+,.0f}; starts went from {first['starts']:,.0f} to "
                f"{last['starts']:,.0f} a year and exits from {first['ceased']:,.0f} to "
                f"{last['ceased']:,.0f}, so the change was driven mainly by {driver}")

    table = table[table["change in year"].notna()]
    parts = [table] if split_year is None else [table[table["year"] < split_year],
                                                 table[table["year"] >= split_year]]
    texts = [period_text(p) for p in parts if len(p) >= 2]
    return f"In {la_name}, " + "; ".join(texts) + "."


def plot_decomposition(table: pd.DataFrame, la_name: str, events: dict | None = None, ax=None):
    import matplotlib.pyplot as plt

    from helpers import plotting

    if ax is None:
        _, ax = plt.subplots()
    ax.plot(table["year"], table["starts"], marker="o", label="starts during the year")
    ax.plot(table["year"], table["ceased"], marker="s", label="ceased during the year")
    ax.bar(table["year"], table["change in year"], color=plotting.PALETTE["comparator"], alpha=0.35,
           label="change in number looked after")
    if events:
        plotting.mark_events(ax, events)
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_title(f"{la_name}: flows into and out of care")
    ax.set_xlabel("Reporting year ending 31 March")
    ax.set_ylabel("Children")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


def event_marks(events, frequency="annual") -> dict:
    """{title: position} for plotting.mark_events: half a period before the first full period."""
    from helpers import its

    spec = its.interventions_from_events(events, frequency=frequency)
    return {spec["titles"][k]: v - 0.5 for k, v in spec["interventions"].items()}


# --------------------------------------------------------------------------------------------
# Single-series ITS
# --------------------------------------------------------------------------------------------

def fit_outcomes(la, outcomes, events, family="quasipoisson", start_year=2014, end_year=None,
                 focus_event=None) -> dict:
    """fit_its per outcome on the LA's annual series with every declared event (the declared
    impact model); the counterfactual describes `focus_event` (default: see focus_event())."""
    from helpers import its

    spec = its.interventions_from_events(events, frequency="annual")
    results = {}
    for outcome in outcomes:
        df = _series(la, outcome, start_year, end_year)[["year", "count", "population"]]
        df = df.rename(columns={"count": outcome}).dropna().reset_index(drop=True)
        last = int(df["year"].max())
        focus = focus_event or choose_focus_event(spec["interventions"], last)
        results[outcome] = its.fit_its(df, outcome=outcome, time="year", family=family,
                                       offset="population", counterfactual_for=focus, **spec)
    return results


def choose_focus_event(interventions: dict, last_year: int, min_after: int = 3) -> str:
    """The latest event with at least `min_after` years of data after it, else the last one."""
    names = list(interventions)
    ok = [n for n in names if last_year - interventions[n] + 1 >= min_after]
    return ok[-1] if ok else names[-1]


def its_effects_table(results: dict) -> pd.DataFrame:
    """Every outcome's effects with readable intervals (ratios: 1 = no change)."""
    rows = []
    for outcome, res in results.items():
        for r in res.effects.itertuples():
            rows.append({"outcome": OUTCOME_LABELS.get(outcome, outcome),
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
        rows.append({"outcome": OUTCOME_LABELS.get(outcome, outcome), "years": d["n"],
                     "parameters": d["n_params"],
                     "dispersion": None if d.get("dispersion") is None else round(d["dispersion"], 2),
                     "Durbin-Watson": round(d["durbin_watson"], 2),
                     "Breusch-Godfrey p": None if bg.get("p_value") is None else round(bg["p_value"], 3),
                     "warnings": len(d["warnings"])})
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


def is_synthetic(design: str) -> bool:
    """Designs run on the synthetic SSDA903 stand-in (e.g. its_monthly_synthetic); NOT
    synthetic control, which is a real comparative design."""
    return str(design).endswith("_synthetic")


def design_label(design: str) -> str:
    if design in DESIGN_LABELS:
        return DESIGN_LABELS[design]
    label = str(design).replace("_", " ")
    if is_synthetic(design):
        label = label.removesuffix(" synthetic") + " (SYNTHETIC data)"
    return label[:1].upper() + label[1:]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value)


#: Sensitivity analyses of the ITS (not independent designs): their "interval" is a spread of
#: placebo dates or specifications, and the findings count them separately.
SENSITIVITY_DESIGNS = ("placebo_in_time", "specification_curve", "sensitivity_headline")


def _record_verdict(r) -> str:
    if r.design in ("specification_curve", "sensitivity_headline"):
        if _missing(r.ci_low) or _missing(r.ci_high):
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
        if _missing(r.p_value):
            return "not estimable"
        return (f"unusual against placebo dates (p = {r.p_value:.2f})" if r.p_value < 0.05
                else f"within the range of placebo dates (p = {r.p_value:.2f})")
    words = verdict(None if _missing(r.estimate) else r.estimate,
                    None if _missing(r.ci_low) else r.ci_low,
                    None if _missing(r.ci_high) else r.ci_high, r.scale or "ratio")
    return words + (" - SYNTHETIC data: shows the method only" if is_synthetic(r.design) else "")


def _number(value, scale) -> str:
    if _missing(value):
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
    from helpers import report

    expected = [nb.stem for nb in report.discover_notebooks(notebook_dir)
                if report.RESULTS_PATH in report.notebook_parameters(nb)]
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
        interval = ("-" if _missing(r.ci_low) or _missing(r.ci_high) else
                    f"{_number(r.ci_low, r.scale)} to {_number(r.ci_high, r.scale)}")
        if "placebo" in str(r.design) and interval != "-":
            interval = f"placebo range {interval}"
        elif r.design in SENSITIVITY_DESIGNS and interval != "-":
            interval = f"range {interval}"
        rows.append({
            "design": design_label(r.design), "notebook": r.notebook,
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
    sensitivity = {design_label(d) for d in SENSITIVITY_DESIGNS}
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
