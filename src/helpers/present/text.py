"""Number words shared by every sentence the reports print, and `md_escape` for every string
from a YAML or a data file that a sentence puts into Markdown."""

from __future__ import annotations

import re

import pandas as pd

# Markdown punctuation that could start emphasis, code, a link or image, a table cell,
# strikethrough, maths or a heading; backslash-escaped (CommonMark escapes any ASCII punctuation).
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]{}#!|~$])")
# At the start of a line: a list item (- + 1. 1)) or a setext underline (=).
_MD_LINE_START = re.compile(r"^(\d+(?=[.)])|[-+=])")


def md_escape(text) -> str:
    """A user string (an event title, an LA or file name) made inert inside Markdown and the
    HTML it becomes: it shows as typed and can add no link, image, emphasis, heading, list,
    table cell or markup. Line breaks become spaces; <, > and & become entities (they stay
    literal inside an HTML block too, where backslash escapes do not apply); Markdown
    punctuation is backslash-escaped.

        md_escape("<script>x</script> [a](javascript:b)")
        -> '&lt;script&gt;x&lt;/script&gt; \\[a\\](javascript:b)'
    """
    text = " ".join(str(text).split())
    text = _MD_PUNCTUATION.sub(r"\\\1", text)
    # "1. x" -> "1\. x" and "- x" -> "\- x": no list, whatever precedes the string.
    text = _MD_LINE_START.sub(lambda m: m[1] + "\\" if m[1][0].isdigit() else "\\" + m[1],
                              text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_missing(value) -> bool:
    """None, NaN, NA or blank text."""
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array is not one missing value
        return False


def format_interval(estimate: float, low: float, high: float, scale: str = "ratio",
                    digits: int = 2) -> str:
    """'0.62 (95% CI 0.45 to 0.85)'; the scale is the caller's to explain."""
    return f"{estimate:.{digits}f} (95% CI {low:.{digits}f} to {high:.{digits}f})"


def ratio_as_percent(ratio: float) -> str:
    """0.62 -> '38% below'; 1.10 -> '10% above'."""
    change = (ratio - 1.0) * 100.0
    return f"{abs(change):.0f}% {'below' if change < 0 else 'above'}"


def first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def plural(unit: str, count: int) -> str:
    return unit if count == 1 else unit + "s"


def fmt_num(value):
    """3.0 -> 3; 2.25 -> 2.25 (for times and years in messages)."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 3)


def join_words(names) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
