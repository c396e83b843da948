"""Plain words for the terms the reports use: the glossary page and the links to it.

`TERMS` is the glossary (an anchor, the term, the words a page uses for it, a definition);
`link_terms` links the first use of each term on a page to its entry."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    anchor: str
    term: str
    definition: str
    matches: tuple[str, ...] = ()  # words on a page that mean this term (case-insensitive)


TERMS: tuple[Term, ...] = (
    Term("reporting-year", "Reporting year",
         "The Department for Education counts children over years ending 31 March: 2024-25 "
         "means 1 April 2024 to 31 March 2025. A programme launched in early 2024 is first in "
         "force for a whole year in 2024-25.", ("reporting year",)),
    Term("its", "Interrupted time series (ITS)",
         "Fit the trend before an event and ask whether the figures after it depart from that "
         "trend. The departure is the estimated change; other things that changed at the same "
         "time would show up the same way.", ("interrupted time series", "single-series ITS")),
    Term("counterfactual", "Counterfactual (expected without the event)",
         "What the figures would have been if the trend before the event had simply continued. "
         "It cannot be observed; the models estimate it.",
         ("counterfactual", "trend continued", "expected without")),
    Term("rate-ratio", "Rate ratio",
         "The figure after an event divided by the figure the earlier trend predicted: 0.59 "
         "means 41% fewer than predicted, 1 means no change, 1.2 means 20% more.",
         ("rate ratio", "rate ratios")),
    Term("level-change", "Level change and trend change",
         "A level change is a step up or down when an event takes effect; a trend change is a "
         "change in the yearly rate of growth or decline after it.",
         ("level change", "trend change")),
    Term("confidence-interval", "Confidence interval (95% CI) and confidence band",
         "The range of values for an estimate that the data are consistent with. If it "
         "includes no change (a rate ratio of 1, a difference of 0), the data cannot tell a "
         "change from no change. A confidence band around a trend line shows how uncertain the "
         "line itself is; single years vary more than that.",
         ("confidence interval", "confidence band", "95% CI")),
    Term("prediction-interval", "Prediction interval",
         "The range a single future figure is expected to fall in, allowing both for the "
         "uncertainty of the trend and for ordinary year-to-year ups and downs. It is wider "
         "than a confidence band.", ("prediction interval",)),
    Term("p-value", "p-value",
         "How often a change at least this large would appear by chance if nothing had "
         "happened. Below 0.05 is conventionally called statistically significant; with many "
         "tests, some will be by chance alone.", ("p-value", "p-values")),
    Term("placebo", "Placebo test (placebo in time, placebo in space)",
         "Pretend the event happened at an earlier date (in time) or in another council (in "
         "space) and estimate the same change. If such made-up events often show changes as "
         "large, the real one cannot be told apart from ordinary ups and downs.",
         ("placebo",)),
    Term("controlled-its", "Controlled interrupted time series",
         "An interrupted time series that subtracts the change seen at the same time in a "
         "comparison group (England, the region or similar councils).", ("controlled ITS",)),
    Term("did", "Difference-in-differences",
         "The change in the council before and after the event, minus the change in every "
         "other council over the same years.", ("difference-in-differences",)),
    Term("event-study", "Event study",
         "The council's difference from the others year by year around the event; differences "
         "before the event warn that they were already drifting apart.", ("event study",)),
    Term("synthetic-control", "Synthetic control",
         "A weighted mix of other councils chosen to track the council's figures before the "
         "event; after it, the gap between the two is the estimated effect.",
         ("synthetic control",)),
    Term("statistical-neighbours", "Statistical neighbours",
         "The councils the Department for Education lists as most similar in population and "
         "need.", ("statistical neighbours",)),
    Term("specification-curve", "Specification curve",
         "The same estimate under every reasonable analysis choice (start year, model, launch "
         "date), to show how much it depends on those choices.", ("specification curve",)),
    Term("power", "Power and the minimum detectable change",
         "How likely a change of a given size is to show clearly in data like these; the "
         "minimum detectable change is the smallest change that would show 8 times in 10.",
         ("minimum detectable", "power")),
    Term("quasi-poisson", "Quasi-Poisson model",
         "A model for counts that lets them vary more from year to year than pure chance "
         "would, so its intervals are not too narrow.", ("quasi-Poisson",)),
    Term("synthetic-data", "SYNTHETIC data",
         "Made-up records shaped like a council's own monthly data, used only to show what "
         "the method would do. No estimate from SYNTHETIC data says anything about what "
         "happened.", ("SYNTHETIC",)),
    Term("council-reported", "Council-reported figures",
         "Numbers a council published itself (committee papers, press releases). They are not "
         "official statistics and never enter a model.", ("council-reported",)),
)


def glossary_html() -> str:
    """The glossary as a definition list (the body of reports/glossary.html)."""
    items = "".join(f'<div class="term"><dt id="{t.anchor}">{html.escape(t.term)}</dt>'
                    f"<dd>{html.escape(t.definition)}</dd></div>" for t in TERMS)
    return f'<dl class="glossary">{items}</dl>'


#: Elements whose text is never linked (already a link, a heading, a table, a chart, code).
_SKIP = re.compile(r"^(a|h[1-6]|table|figure|code|pre|script|style|summary|caption|dt|button)$")
_TAG = re.compile(r"(<[^>]+>)")
_TAG_NAME = re.compile(r"</?\s*([A-Za-z0-9]+)")


def _term_pattern(term: Term) -> re.Pattern:
    return re.compile(r"\b(" + "|".join(re.escape(m) for m in term.matches) + r")\b",
                      re.IGNORECASE if term.anchor != "synthetic-data" else 0)


_PATTERNS = {t.anchor: _term_pattern(t) for t in TERMS}
#: Any term at all (most text runs hold none, and then no term is tried one by one).
_ANY_TERM = re.compile("|".join(f"(?:{p.pattern})" if p.flags & re.IGNORECASE
                                else f"(?-i:{p.pattern})" for p in _PATTERNS.values()),
                       re.IGNORECASE)


def link_terms(page: str, href: str = "../glossary.html") -> str:
    """Link the first use of each glossary term inside <main> (paragraphs and list items, not
    inside links, headings, tables, charts or code) to its glossary entry."""
    start, end = page.find("<main"), page.rfind("</main>")
    if start < 0 or end < 0:
        return page
    head, body, tail = page[:start], page[start:end], page[end:]
    pending = {t.anchor: t for t in TERMS}
    out, stack = [], []
    for part in _TAG.split(body):
        if part.startswith("<"):
            name = _TAG_NAME.match(part)
            if name:
                tag = name.group(1).lower()
                if part.startswith("</"):
                    if tag in stack:
                        while stack and stack.pop() != tag:
                            pass
                elif not part.endswith("/>") and _SKIP.match(tag):
                    stack.append(tag)
            out.append(part)
            continue
        if stack or not part.strip() or not pending or not _ANY_TERM.search(part):
            out.append(part)
            continue
        for anchor in list(pending):
            match = _PATTERNS[anchor].search(part)
            if match:
                link = (f'<a class="term" href="{href}#{anchor}">{match.group(1)}</a>')
                part = part[:match.start()] + "\x00" + part[match.end():]
                part = part.replace("\x00", link, 1)
                del pending[anchor]
                break  # one term per text run keeps links from nesting
        out.append(part)
    return head + "".join(out) + tail
