"""Calendar conventions shared by every module.

DfE reporting years end on 31 March: reporting year 2025 is 1 April 2024 - 31 March 2025.
Monthly series use an integer month index with January 2010 = 0 (so March 2024 = 170).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from helpers.core.errors import CareTrendsError

MONTH_ORIGIN = pd.Period("2010-01", freq="M")


def to_date(value) -> dt.date:
    """Parse a date given as a date, a Timestamp, 'YYYY-MM-DD' or 'YYYY-MM' (first of the month)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, pd.Timestamp):
        return value.date()
    try:
        return pd.Timestamp(str(value)).date()
    except (ValueError, TypeError) as exc:
        raise CareTrendsError(
            f"cannot read {value!r} as a date; write it as YYYY-MM-DD (e.g. 2024-03-01)"
        ) from exc


def reporting_year(value) -> int:
    """The DfE reporting year (ending 31 March) that contains the date."""
    d = to_date(value)
    return d.year + 1 if d.month >= 4 else d.year


def first_full_reporting_year(value) -> int:
    """The first reporting year lying wholly after the date (an event on 1 April counts in full).

    An event in February 2024 falls in reporting year 2024, so 2025 is its first full "post" year.
    """
    d = to_date(value)
    ry = reporting_year(d)
    return ry if (d.month, d.day) == (4, 1) else ry + 1


def reporting_year_label(year: int) -> str:
    """'2024-25' for reporting year 2025."""
    return f"{year - 1}-{str(year)[-2:]}"


def month_index(value) -> int:
    """Months since January 2010 (January 2010 = 0, March 2024 = 170)."""
    d = to_date(value)
    return (d.year - MONTH_ORIGIN.year) * 12 + (d.month - 1)


def first_full_month_index(value) -> int:
    """Month index of the first calendar month lying wholly after the date (1st of a month counts)."""
    d = to_date(value)
    return month_index(d) if d.day == 1 else month_index(d) + 1


def month_from_index(index: int) -> pd.Period:
    """Inverse of month_index: 170 -> Period('2024-03', 'M')."""
    return MONTH_ORIGIN + int(index)
