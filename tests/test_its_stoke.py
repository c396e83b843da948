"""The issue's acceptance check on real data: Stoke-on-Trent's annual starts, reporting years
2010-2025, with Family Matters (launched early 2024) in force from reporting year 2025."""

from __future__ import annotations

import pytest

from helpers import its
from helpers.present import its as present_its

FAMILY_MATTERS = [{"name": "family_matters", "title": "Family Matters launched",
                   "date": "2024-03-01", "effects": ["level"]}]


@pytest.fixture(scope="module")
def stoke_starts(raw_dir):
    data = pytest.importorskip("helpers.data")
    return data.annual_series("Stoke-on-Trent", "starts", start_year=2010, end_year=2025)


def test_stoke_family_matters_level_change(stoke_starts):
    assert stoke_starts["year"].tolist() == list(range(2010, 2026))
    spec = its.interventions_from_events(FAMILY_MATTERS, frequency="annual")
    assert spec["interventions"] == {"family_matters": 2025}
    res = its.fit_its(stoke_starts, outcome="starts", time="year", family="quasipoisson",
                      offset="population", **spec)
    level = res.effects.set_index("effect").loc["level"]
    assert level["scale"] == "ratio"
    assert level["ci_low"] < level["estimate"] < level["ci_high"]
    # 2024-25 starts (178) fell well below the 2010-2024 trend (about 300 expected)
    assert 0.4 < level["estimate"] < 0.8
    assert res.diagnostics["points"]["after"].tolist() == [1]
    text = present_its.summary(res)
    assert "In the year after Family Matters launched (2024-25), starts were" in text
    assert "95% CI" in text
    assert "single post-event year cannot separate a programme effect from a one-year shock" in text
    assert "Declared impact model: Family Matters launched: level change from 2024-25." in text
    impact = res.impact.iloc[0]
    assert impact["averted_low"] < impact["averted"] < impact["averted_high"]
