"""League table and funnel plot on simulated panels (the real panel is exercised by notebook 07)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.core.errors import CareTrendsError
from helpers.models import national
from helpers.present import national as present_national


def simulated_panel(n_la: int = 40, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_la):
        pop = rng.uniform(2e4, 3e5)
        jump = 0.5 if i == 0 else 0.0  # LA 800 alone jumps by exp(0.5) from 2021
        for year in range(2012, 2026):
            mu = pop * 4e-3 * np.exp(0.02 * (year - 2012) + jump * (year >= 2021))
            for measure in ("starts", "ceased"):
                rows.append({"geographic_level": "Local authority", "la_code": str(800 + i),
                             "la_name": f"Area {i}", "region_name": "North", "year": year,
                             "measure": measure, "count": float(rng.poisson(mu)),
                             "population": pop})
    rows.append({"geographic_level": "National", "la_code": None, "la_name": "England",
                 "region_name": None, "year": 2025, "measure": "starts", "count": 1e5,
                 "population": 1e7})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def panel():
    return simulated_panel()


def test_poisson_limit_known_case():
    # Expected 1: P(Y<=2)=0.9197, P(Y<=3)=0.9810, so the 97.5% limit is 3 - (0.9810-0.975)/(0.9810-0.9197).
    cdf2, cdf3 = stats.poisson.cdf([2, 3], 1.0)
    assert national.poisson_limit(1.0, 0.975) == pytest.approx(3 - (cdf3 - 0.975) / (cdf3 - cdf2))
    assert national.poisson_limit(1.0, 0.975) == pytest.approx(2.90195, abs=1e-5)
    # Large expected counts: the normal approximation E +/- z sqrt(E).
    limits = national.funnel_limits([10_000.0]).iloc[0]
    assert limits["upper_95"] == pytest.approx(1 + 1.96 / 100, abs=2e-4)
    assert limits["lower_99.8"] == pytest.approx(1 - stats.norm.ppf(0.999) / 100, abs=2e-4)
    assert national.funnel_limits([100.0]).iloc[0]["upper_99.8"] == pytest.approx(1.318048, abs=1e-6)


def test_poisson_limits_cover_as_advertised():
    rng = np.random.default_rng(3)
    expected = rng.uniform(5, 500, 20_000)
    observed = rng.poisson(expected)
    lim = national.funnel_limits(expected)
    inside95 = ((observed / expected >= lim["lower_95"]) & (observed / expected <= lim["upper_95"]))
    inside998 = ((observed / expected >= lim["lower_99.8"]) & (observed / expected <= lim["upper_99.8"]))
    assert 0.94 < inside95.mean() < 0.965
    assert inside998.mean() > 0.995


def test_funnel_data_expected_and_bands(panel):
    funnel = national.funnel_data(panel, measure="starts", year=2025)
    assert len(funnel) == 40  # England row left out
    rate = funnel["observed"].sum() / funnel["population"].sum()
    np.testing.assert_allclose(funnel["expected"], rate * funnel["population"])
    assert funnel["expected"].sum() == pytest.approx(funnel["observed"].sum())
    top = national.funnel_position(funnel, "800")
    assert top["band"] == "above 99.8%"
    assert funnel.attrs["year"] == 2025
    assert set(funnel["band"]) <= {"within 95% limits", "above 95%", "below 95%", "above 99.8%",
                                   "below 99.8%"}
    adjusted = national.funnel_data(panel, measure="starts", year=2025, adjust_overdispersion=True)
    assert adjusted.attrs["overdispersion"] > 0


def test_league_table_finds_the_jump(panel):
    table = national.league_table(panel, measure="starts", event_date="2020-02-01", start_year=2012)
    assert set(table["effect"]) == {"level", "slope"}
    assert table["event_year"].iloc[0] == 2021
    pos = national.where_la_sits(table, "800", "level")
    assert pos["rank"] == 1 and pos["n"] == 40 and pos["excludes_no_change"]
    assert pos["estimate"] == pytest.approx(np.exp(0.5), rel=0.1)


def test_latest_year_against_own_trend(panel):
    table = national.league_table(panel, measure="ceased", event_date=None, start_year=2012)
    assert set(table["effect"]) == {"level"}
    assert table["event_year"].iloc[0] == 2025
    assert table["estimate"].between(0.5, 2).all()


def test_user_errors(panel):
    with pytest.raises(CareTrendsError, match="outside the data"):
        national.league_table(panel, event_date="2030-01-01")
    with pytest.raises(CareTrendsError, match="slope"):
        national.league_table(panel, event_date="2024-02-01", start_year=2012)
    with pytest.raises(CareTrendsError, match="unknown measure"):
        national.funnel_data(panel, measure="adoptions")


def test_plots_have_titles_and_labels(panel):
    funnel = national.funnel_data(panel, measure="starts")
    ax = present_national.plot_funnel(funnel, highlight="800")
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    table = national.league_table(panel, event_date="2020-02-01", start_year=2012)
    ax2 = present_national.plot_league(table, highlight="800")
    assert ax2.get_title() and ax2.get_ylabel()
    plt.close("all")


def test_batch_family():
    # (choose_event is gone: notebook 07 compares every LA at the spec's declared primary_event,
    # tested in test_spec.py; the latest-year view is league_table(event_date="latest").)
    assert national.batch_family("negbin") == "quasipoisson"
    assert national.batch_family("poisson") == "poisson"


def test_reading_view_and_records(panel):
    table = national.league_table(panel, event_date="2020-02-01", start_year=2012)
    latest = national.league_table(panel, event_date="latest", start_year=2012)
    funnel = national.funnel_data(panel, year=2025)
    view = present_national.league_view(table, "800", top=3)
    assert view["local authority"].iloc[0] == "Area 0 (this analysis)"
    assert len(view) == 6
    event = {"name": "ev", "title": "the event", "date": "2020-02-01"}
    text = present_national.reading(table, latest, funnel, "800", "Area 0", event)
    assert "ranking 1 of 40" in text and "99.8%" in text and "2020-21" in text
    records = national.la_records(table, "800", "ev", "starts", analysis="x", notebook="07", la="A")
    assert {r["effect"] for r in records} == {"level", "slope"}
    assert all(r["design"] == "national_league_table" and r["scale"] == "ratio" for r in records)


def test_write_league_table(panel, tmp_path):
    table = national.league_table(panel, event_date="2020-02-01", start_year=2012)
    path = tmp_path / "league.csv"
    present_national.write_league_table(table, path)
    back = pd.read_csv(path, dtype={"la_code": str})
    assert len(back) == len(table) and not (tmp_path / "league.csv.tmp").exists()
