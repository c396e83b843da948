"""The one shape every check's result takes (as CausalPy's checks do): a name, a tidy `table`,
and `to_records(**context)` giving results.json records (RECORD_COLUMNS) for what it found."""

from __future__ import annotations

import pandas as pd


class CheckResult:
    check: str = "check"
    table: pd.DataFrame

    def to_records(self, **context) -> list[dict]:  # pragma: no cover - every check overrides
        raise NotImplementedError
