"""The answer block: the analysis' question answered in words a councillor would use, first on
every page and on the site index.

An `Answer` holds, for the analysis' primary event and primary outcome:

1. the question, in the analysis' own words (`spec.title`, `spec.description`);
2. what was observed, in plain numbers from the official panel ("178 children started to be
   looked after in 2024-25, down from 287 the year before");
3. the primary estimate in words: the single-series interrupted time series' change against the
   pre-existing trend in the latest year, with its 95% interval ("about 41% fewer than the
   previous trend predicted; the data are consistent with anything from a 66% fall to a 4%
   rise");
4. a verdict from `verdict_rule`, a rule written down here before any data are seen, combining
   the primary design, how many other designs agree, the placebo-in-time check and power;
5. "when will we know": what the next annual release or monthly data would settle (from the
   sensitivity notebook's headline numbers);
6. where the analysis declares a target, its verdict (`helpers.present.targets`).

Only official and computed figures enter the answer. SYNTHETIC estimates never do, nor do
council-reported figures. `Answer.to_json()` is what the summary notebook publishes as
`answer.json`; `answer_html` / `short_html` render it (the summary page shows the full block,
every other page and the index card the short form).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field

import pandas as pd

from helpers.core import timeline, vocab
from helpers.present.text import is_missing

# --------------------------------------------------------------------------------------------
# The verdict rule (declared before the data are seen)
# --------------------------------------------------------------------------------------------
CLEAR = "clear_change"
SIGNAL = "early_signal"
POSSIBLE = "possible_change"
MIXED = "mixed"
NO_SIGN = "no_sign"
NOT_ESTIMABLE = "not_estimable"

#: What each verdict says to a reader.
VERDICT_WORDS = {
    CLEAR: "Clear change",
    SIGNAL: "Early signal, not yet distinguishable from chance",
    POSSIBLE: "Some sign of change, not confirmed by the other designs",
    MIXED: "Mixed evidence: the designs disagree on the direction",
    NO_SIGN: "No sign of change",
    NOT_ESTIMABLE: "Not yet estimable",
}
#: A placebo-in-time p-value above this means changes as large happened at dates when nothing
#: happened: it stops a "clear change" verdict.
PLACEBO_LIMIT = 0.10
#: A primary p-value below this, with an interval that still includes no change, is a signal.
SIGNAL_P = 0.10
#: Up to this many reporting years after the event, a signal is called "early".
EARLY_YEARS = 2


@dataclass(frozen=True)
class DesignReading:
    """One other design's estimate for the primary event and outcome."""

    design: str
    direction: str  # "lower" | "higher" | "unclear" (interval includes no change)


def direction(estimate, low, high, scale: str = "ratio") -> str:
    """'lower' / 'higher' when the interval excludes no change (1 for ratios, 0 otherwise),
    else 'unclear' (also when a number is missing)."""
    if any(is_missing(v) for v in (estimate, low, high)):
        return "unclear"
    null = 1.0 if scale == "ratio" else 0.0
    if high < null:
        return "lower"
    if low > null:
        return "higher"
    return "unclear"


def verdict_rule(change: float | None, change_low: float | None, change_high: float | None,
                 p_value: float | None, others: list[DesignReading], *,
                 placebo_p: float | None = None, placebo_beyond_all: bool = False,
                 years_after: int = 1) -> str:
    """The verdict, declared before the data were seen.

    `change`, `change_low`, `change_high`: the primary design's relative change against the
    pre-existing trend (-0.41 = 41% fewer) and its 95% interval; `p_value` the primary design's
    p-value for the event; `others`: the other (real-data, independent) designs' readings;
    `placebo_p`: the placebo-in-time rank p-value of the primary event (None: not run);
    `placebo_beyond_all`: the change is larger than at every placebo date (then the check does
    not contradict it, even when so few dates exist that p cannot fall below 0.10);
    `years_after`: reporting years after the event in the data.

    1. **not estimable**: no primary estimate or no interval.
    2. **mixed**: some design's interval excludes no change in the direction opposite to the
       primary estimate, while the primary or another design excludes it in the same direction.
    3. **clear change**: the primary interval excludes no change, at least half of the other
       designs agree (their intervals exclude no change in the same direction), none points the
       other way, and the placebo-in-time check does not contradict it (p <= 0.10, larger than
       at every placebo date, or not run).
    4. **early signal** (up to two reporting years after the event) or **some sign of change,
       not confirmed** (later): short of 3, but the primary interval excludes no change, or the
       primary p-value is below 0.10, or at least one other design's interval excludes no change
       in the same direction.
    5. **no sign of change**: otherwise.
    """
    if any(is_missing(v) for v in (change, change_low, change_high)):
        return NOT_ESTIMABLE
    lower = change < 0
    primary_excludes = change_high < 0 or change_low > 0
    same = "lower" if lower else "higher"
    opposite = "higher" if lower else "lower"
    agree = sum(o.direction == same for o in others)
    against = sum(o.direction == opposite for o in others)
    if against and (primary_excludes or agree):
        return MIXED
    placebo_ok = (placebo_p is None or is_missing(placebo_p) or placebo_p <= PLACEBO_LIMIT
                  or placebo_beyond_all)
    if primary_excludes and 2 * agree >= len(others) and not against and placebo_ok:
        return CLEAR
    weak_p = p_value is not None and not is_missing(p_value) and p_value < SIGNAL_P
    if primary_excludes or weak_p or agree:
        return SIGNAL if years_after <= EARLY_YEARS else POSSIBLE
    return NO_SIGN


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------
def count_words(value: float) -> str:
    return f"{value:,.0f}"


def _measure_sentence(outcome: str, count: float, year: int, rate: float | None) -> str:
    """'178 children started to be looked after in 2024-25 (28 per 10,000 children)'."""
    rate_text = "" if rate is None or is_missing(rate) else f" ({rate:.0f} per 10,000 children)"
    label = timeline.reporting_year_label(int(year))
    n = count_words(count)
    if outcome == "starts":
        return f"{n} children started to be looked after in {label}{rate_text}"
    if outcome == "ceased":
        return f"{n} children ceased to be looked after in {label}{rate_text}"
    if outcome == "cla_31_march":
        return f"{n} children were looked after on 31 March {int(year)}{rate_text}"
    info = vocab.MEASURE_INFO.get(outcome)
    noun = info.phrase if info else outcome.replace("_", " ")
    return f"{noun[:1].upper() + noun[1:]}: {n} in {label}{rate_text}"


def observed_change(outcome: str, series: pd.DataFrame, event_year: int | None = None) -> str:
    """What the official figures show, in words: the latest year against the year before and,
    when the event took effect earlier, against the last year before it.

    `series`: year, count, rate_per_10000 (from `helpers.data.annual_series`)."""
    rows = series.dropna(subset=["count"]).sort_values("year")
    if rows.empty:
        return "No official figures are available yet."
    last = rows.iloc[-1]
    sentence = _measure_sentence(outcome, last["count"], last["year"], last.get("rate_per_10000"))
    if len(rows) >= 2:
        prev = rows.iloc[-2]
        diff = last["count"] - prev["count"]
        if diff == 0:
            move = "the same as the year before"
        else:
            move = f"{'down' if diff < 0 else 'up'} from {count_words(prev['count'])}"
            rate = prev.get("rate_per_10000")
            move += ("" if is_missing(rate) else f" ({rate:.0f} per 10,000)") + " the year before"
        sentence += f", {move}"
    if event_year is not None and len(rows) >= 3:
        before = rows[rows["year"] < event_year]
        # Only when the last year before the event is not already "the year before".
        if len(before) and int(before["year"].iloc[-1]) < int(rows["year"].iloc[-2]):
            b = before.iloc[-1]
            sentence += (f"; in {timeline.reporting_year_label(int(b['year']))}, the last year "
                         f"before the event took effect, it was {count_words(b['count'])}")
    return sentence + "."


def _pct(value: float) -> str:
    return f"{abs(value) * 100:.0f}%"


def estimate_words(change: float, low: float, high: float, outcome: str) -> str:
    """'about 41% fewer than the previous trend predicted; the data are consistent with
    anything from a 66% fall to a 4% rise'."""
    fewer = "fewer" if change < 0 else "more"
    if outcome in vocab.MEASURE_INFO and vocab.MEASURE_INFO[outcome].counts is None:
        fewer = "lower" if change < 0 else "higher"
    if abs(change) < 0.005:
        head = "about the same as the previous trend predicted"
    else:
        head = f"about {_pct(change)} {fewer} than the previous trend predicted"

    def end(value):
        if abs(value) < 0.005:
            return "no change"
        return f"a {_pct(value)} {'fall' if value < 0 else 'rise'}"
    return f"{head}; the data are consistent with anything from {end(low)} to {end(high)}"


def other_designs(records: pd.DataFrame, outcome: str, event: str,
                  effects=("level",)) -> list[DesignReading]:
    """The other real-data designs' readings for the primary outcome and event: one per design,
    'lower'/'higher' when any declared effect's interval excludes no change that way (both
    ways: 'unclear'). The single-series ITS (the primary design), checks, context and SYNTHETIC
    estimates are left out."""
    if records is None or records.empty:
        return []
    sel = records[(records["outcome"] == outcome) & (records["event"] == event)
                  & records["effect"].isin(effects)
                  & records["scale"].isin(("ratio", "difference", "percent"))]
    readings = []
    for design, group in sel.groupby("design", sort=False):
        if design == "its" or vocab.is_synthetic(design) or vocab.design_kind(design) != "design":
            continue
        ways = {direction(r.estimate, r.ci_low, r.ci_high, r.scale) for r in group.itertuples()}
        ways.discard("unclear")
        readings.append(DesignReading(design, ways.pop() if len(ways) == 1 else "unclear"))
    return readings


def agreement_words(readings: list[DesignReading], change: float) -> str:
    """'1 of the 4 other designs also finds fewer than expected with an interval that excludes no
    change'."""
    if not readings:
        return "No other design has been run yet."
    same = "lower" if change < 0 else "higher"
    agree = [r for r in readings if r.direction == same]
    against = [r for r in readings if r.direction not in (same, "unclear")]
    n = len(readings)
    what = "fewer" if change < 0 else "more"
    text = (f"{len(agree)} of the {n} other designs ({_design_list(readings)}) "
            f"{'also finds' if len(agree) == 1 else 'also find'} {what} than expected with an "
            "interval that excludes no change")
    if against:
        text += f"; {len(against)} {'finds' if len(against) == 1 else 'find'} the opposite"
    return text + "."


def _design_list(readings) -> str:
    labels = [vocab.design_label(r.design).lower() for r in readings]
    labels = [lab.replace("its", "ITS") for lab in labels]
    return ", ".join(labels)


def when_we_know(head: Mapping | None, years_after: int, last_year: int,
                 change: float | None, target: Mapping | None = None) -> str:
    """What the next annual release and monthly data would settle (from the sensitivity
    headline numbers, `helpers.checks.headline.summarise`), and when a target is decided."""
    parts = []
    if target and target.get("actual") is None:
        year = int(target["target_year"])
        parts.append(f"The {timeline.reporting_year_label(year)} figures, published in the "
                     f"autumn of {year}, will show whether the target was met.")
    if not head:
        parts.append("The sensitivity analyses have not been run, so how much more data would "
                     "settle the question is not estimated here.")
        return " ".join(parts)
    next_label = timeline.reporting_year_label(last_year + 1)
    mde_now = head.get(f"mde_annual_{min(years_after, 3)}_percent")
    mde_next = head.get(f"mde_annual_{min(years_after + 1, 3)}_percent")
    if mde_now is not None and not is_missing(mde_now) and years_after <= 3:
        parts.append(f"With {years_after} year{'s' if years_after > 1 else ''} of published "
                     f"figures after the event, only a change of about {mde_now:.0f}% or more "
                     "would reliably show.")
    if (mde_next is not None and not is_missing(mde_next) and years_after < 3):
        parts.append(f"The next annual release ({next_label} figures, published in the "
                     f"autumn of {last_year + 1}) lowers that to about {mde_next:.0f}%.")
    months, half = head.get("months_to_detect"), head.get("months_to_detect_half")
    # The sensitivity page sized its months-to-detect on the pre-declared estimate.
    declared = head.get("default_percent")
    size = abs(declared) if declared is not None and not is_missing(declared) else None
    if months is not None and size is not None:
        parts.append(f"With the council's own monthly data, a change the size of the "
                     f"pre-declared estimate ({size:.0f}%) would show reliably within about "
                     f"{int(months)} months of the event"
                     + (f", and one half that size within {int(half)} months." if half else
                        "; one half that size would take longer than five years."))
    elif size is not None:
        parts.append(f"Even five years of the council's own monthly data would not reliably "
                     f"show a change the size of the pre-declared estimate ({size:.0f}%).")
    return " ".join(parts) or "How much more data would settle the question is not estimated."


# --------------------------------------------------------------------------------------------
# The answer
# --------------------------------------------------------------------------------------------
@dataclass
class Answer:
    analysis: str
    la: str
    question: str
    context: str
    outcome: str
    outcome_label: str
    event: str
    event_title: str
    observed: str
    estimate: str
    estimate_year: str
    agreement: str
    verdict: str
    verdict_words: str
    verdict_reason: str
    when: str
    change: float | None = None
    change_low: float | None = None
    change_high: float | None = None
    target: dict | None = None
    links: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = asdict(self)
        for key in ("change", "change_low", "change_high"):
            value = out[key]
            out[key] = None if value is None or not math.isfinite(value) else round(value, 4)
        return out

    @classmethod
    def from_json(cls, value: Mapping) -> "Answer":
        fields = cls.__dataclass_fields__
        values = {k: v for k, v in value.items() if k in fields}
        for name, f in fields.items():  # an older or partial answer.json: blanks, not errors
            if name not in values and f.default is MISSING and f.default_factory is MISSING:
                values[name] = ""
        return cls(**values)

    @property
    def summary(self) -> str:
        """The short form, whole sentences only: the verdict and the estimate."""
        text = (f"{self.verdict_words}. {self.observed} Compared with the earlier trend: "
                f"{self.estimate}.")
        if self.target:
            text += f" Target: {self.target['verdict_words']}."
        return text

    def _repr_html_(self) -> str:
        return answer_html(self)

    def __repr__(self) -> str:
        return f"{self.question}\n{self.verdict_words}. {self.observed} {self.estimate}."


def _verdict_reason(verdict: str, change, low, high, p_value, readings, placebo_p,
                    n_placebo: int | None = None, n_as_large: int | None = None) -> str:
    bits = []
    if verdict == NOT_ESTIMABLE:
        return "The single-series model could not estimate the change."
    excludes = high < 0 or low > 0
    bits.append("the 95% interval of the main estimate "
                + ("excludes no change" if excludes else "still includes no change"))
    same = "lower" if change < 0 else "higher"
    if readings:
        agree = sum(r.direction == same for r in readings)
        bits.append(f"{agree} of {len(readings)} other designs agree")
    if placebo_p is not None and not is_missing(placebo_p) and n_placebo and n_as_large == 0:
        floor = 1.0 / (n_placebo + 1)
        bits.append(f"the change is larger than at every one of the {n_placebo} earlier dates "
                    "when nothing happened"
                    + (f", but {n_placebo} dates are too few to judge (the smallest possible "
                       f"placebo p is {floor:.3g})" if floor > PLACEBO_LIMIT else
                       f" (placebo p = {placebo_p:.2f})"))
    elif placebo_p is not None and not is_missing(placebo_p):
        bits.append("changes as large " + ("were rare" if placebo_p <= PLACEBO_LIMIT else
                                           "were common")
                    + f" at earlier dates when nothing happened (placebo p = {placebo_p:.2f})")
    return "Why: " + "; ".join(bits) + "."


def build_answer(spec, fits: Mapping, records: pd.DataFrame | None = None,
                 head: Mapping | None = None, series: pd.DataFrame | None = None,
                 target=None) -> Answer:
    """The answer for an analysis.

    `fits`: {outcome: ITSResult} (`helpers.models.analysis.its_for`); `records`: the other
    notebooks' results (results.json rows); `head`: the sensitivity headline
    (`load_extra(results_dir, "06_sensitivity", "headline")`); `series`: the primary outcome's
    official annual series (`helpers.data.annual_series`); `target`: a
    `helpers.present.targets.TargetProjection` when the analysis declares a target."""
    outcome, event = spec.primary_outcome, spec.event
    res = fits.get(outcome)
    change = low = high = p_value = None
    year_label, years_after, last_year = "", 0, spec.last_data_year
    if res is not None:
        impact = res.impact
        impact = impact[impact["intervention"] == event.name] if "intervention" in impact else impact
        if len(impact):
            last = impact.iloc[-1]
            change, low, high = (float(last["relative_change"]),
                                 float(last["relative_change_low"]),
                                 float(last["relative_change_high"]))
            year_label, years_after = str(last["label"]), len(impact)
            last_year = int(last["time"])
        eff = res.effects[(res.effects["intervention"] == event.name)]
        if len(eff):
            p_value = float(eff["p_value"].min())
    readings = other_designs(records if records is not None else pd.DataFrame(),
                             outcome, event.name, event.effects)
    placebo_p = n_placebo = n_as_large = None
    if head and head.get("placebo_rank_p") is not None:
        placebo_p = float(head["placebo_rank_p"])
        n_placebo, n_as_large = head.get("n_placebo"), head.get("n_placebo_as_large")
    verdict = verdict_rule(change, low, high, p_value, readings, placebo_p=placebo_p,
                           placebo_beyond_all=bool(n_placebo) and n_as_large == 0,
                           years_after=max(years_after, 1))
    observed = (observed_change(outcome, series, event.first_time("annual"))
                if series is not None else "")
    if verdict == NOT_ESTIMABLE:
        estimate, agreement = "not yet estimable", ""
    else:
        estimate = estimate_words(change, low, high, outcome)
        agreement = agreement_words(readings, change)
    return Answer(
        analysis=spec.analysis, la=spec.la_name,
        question=spec.title or f"{spec.la_name}: did {event.title} change the trend?",
        context=spec.description, outcome=outcome, outcome_label=vocab.measure_label(outcome),
        event=event.name, event_title=event.title, observed=observed, estimate=estimate,
        estimate_year=year_label, agreement=agreement, verdict=verdict,
        verdict_words=VERDICT_WORDS[verdict],
        verdict_reason=_verdict_reason(verdict, change, low, high, p_value, readings, placebo_p,
                                       n_placebo, n_as_large),
        when=when_we_know(head, max(years_after, 1), last_year, change,
                          target.to_json() if target is not None else None),
        change=change, change_low=low, change_high=high,
        target=target.to_json() if target is not None else None)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
GLOSSARY_HREF = "../glossary.html"


def _e(text) -> str:
    return html.escape(str(text or ""))


def answer_html(answer: Answer, *, glossary: str = GLOSSARY_HREF) -> str:
    """The full answer block (the summary page's first screen)."""
    target = target_line = ""
    if answer.target:
        t = answer.target
        target = (f'<div class="answer-row"><dt>Target</dt><dd><strong>{_e(t["verdict_words"])}'
                  f'</strong>. {_e(t["sentence"])}</dd></div>')
        target_line = (f'<p class="verdict target-verdict"><span class="verdict-label">Target:'
                       f'</span> {_e(t["verdict_words"])}. <span class="target-short">'
                       f'{_e(t.get("short", ""))}</span></p>')
    year = f" in {_e(answer.estimate_year)}" if answer.estimate_year else ""
    return (
        f'<section class="answer" aria-labelledby="answer-h">'
        f'<h2 id="answer-h" class="answer-question">{_e(answer.question)}</h2>'
        f'<p class="verdict verdict-{_e(answer.verdict)}"><span class="verdict-label">Answer so far:'
        f'</span> {_e(answer.verdict_words)}</p>'
        f'{target_line}'
        f'<dl class="answer-facts">'
        f'<div class="answer-row"><dt>What happened</dt><dd>{_e(answer.observed)}</dd></div>'
        f'<div class="answer-row"><dt>Compared with the earlier trend</dt><dd>'
        f'{year[1:].capitalize() + ", " if year else ""}{_e(answer.estimate)}. This compares '
        f'the figure with the <a href="{glossary}#counterfactual">trend before the event, '
        f'continued</a> (a single-series <a href="{glossary}#its">interrupted time series</a>).'
        f'</dd></div>'
        f'<div class="answer-row"><dt>How sure</dt><dd>{_e(answer.verdict_reason)} '
        f'{_e(answer.agreement)}</dd></div>'
        f'{target}'
        f'<div class="answer-row"><dt>When will we know</dt><dd>{_e(answer.when)}</dd></div>'
        f'</dl>'
        f'<p class="answer-note">Official statistics (DfE, children looked after in England) and '
        f'estimates computed from them; words such as <a href="{glossary}#placebo">placebo</a> '
        f'are explained in the <a href="{glossary}">glossary</a>.</p>'
        f'</section>')


def short_html(answer: Mapping, *, summary_href: str = "09_summary.html",
               heading_level: int = 2) -> str:
    """The short form (every other page, the index card): question, verdict, the observed change
    and the estimate, whole sentences, and a link to the full answer."""
    a = Answer.from_json(answer) if not isinstance(answer, Answer) else answer
    target = ""
    if a.target:
        target = (f' <strong>Target: {_e(a.target["verdict_words"])}.</strong> '
                  f'{_e(a.target.get("short") or a.target["sentence"])}')
    return (
        f'<aside class="answer answer-short" aria-label="The answer so far">'
        f'<p class="answer-question"><strong>{_e(a.question)}</strong></p>'
        f'<p class="verdict verdict-{_e(a.verdict)}"><span class="verdict-label">Answer so far:'
        f'</span> {_e(a.verdict_words)}.</p>'
        f'<p>{_e(a.observed)} Compared with the earlier trend: {_e(a.estimate)}.'
        f'{target}</p>'
        f'<p><a href="{_e(summary_href)}">The full answer and how sure we are</a></p>'
        f'</aside>')
