"""Number words shared by every sentence the reports print."""

from __future__ import annotations

import pandas as pd


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
