"""The data-overview and trends pages: what the official series hold for an LA, where each
number comes from, how the LA compares with its neighbours, region and England, and what drove
the number in care."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from helpers import data
from helpers.core import timeline, vocab
from helpers.present import charts


# --------------------------------------------------------------------------------------------
# Data overview
# --------------------------------------------------------------------------------------------

def area_intro(area, start_year: int) -> str:
    """The data overview's first lines: the authority, its codes and region, the years the
    official figures cover and where the analysis window starts."""
    return (f"**{area.la_name}** (old LA code {area.la_code}, new code {area.new_la_code}, "
            f"{area.region_name}). Official figures cover reporting years "
            f"{timeline.reporting_year_label(area.first_year)} to "
            f"{timeline.reporting_year_label(area.last_year)}; the analysis window starts in "
            f"{timeline.reporting_year_label(start_year)}.")


def no_council_figures(la_name: str) -> str:
    return f"No council-reported figures are recorded for {la_name}."


COUNCIL_CAPTION = ("{la_name}: council-reported counts beside the official 31 March figure "
                   "(same reporting year)")


def boundary_text(area) -> str:
    """Whether a boundary change breaks the authority's series, in a sentence."""
    breaks = data.boundary_breaks()
    mine = breaks[breaks["la_code"] == area.la_code]
    if len(mine):
        return f"**Boundary changes:** {mine['boundary_change'].iloc[0]}"
    return (f"**Boundary changes:** none affect {area.la_name} in these years, so its series "
            "is continuous. Where other authorities merged or split (Dorset and BCP 2019, "
            "Northamptonshire 2021, Cumbria 2023 and others), comparisons drop or cut them.")


def coverage_table(la, measures=vocab.LOOKED_AFTER_MEASURES) -> pd.DataFrame:
    """Per measure: years with a count, missing or suppressed years, where rates come from."""
    rows = []
    for measure in measures:
        s = data.annual_series(la, measure)
        have = s.loc[s["count"].notna(), "year"].astype(int)
        gaps = s.loc[s["count"].isna(), "year"].astype(int).tolist()
        sources = s.groupby("rate_source", dropna=False)["year"].agg(["min", "max"])
        rate_text = "; ".join(f"{src if isinstance(src, str) else 'none'} {lo}-{hi}"
                              for src, (lo, hi) in sources.iterrows())
        rows.append({"measure": vocab.measure_label(measure),
                     "years with a count": f"{have.min()}-{have.max()} ({len(have)})",
                     "missing or suppressed": ", ".join(map(str, gaps)) or "none",
                     "rate per 10,000": rate_text,
                     # the flag names the LA's role in a change ("predecessor", ...), else NA
                     "boundary change": "yes" if s["boundary_flag"].notna().any() else "no"})
    return pd.DataFrame(rows)


def provenance_table(la, measure="cla_31_march") -> pd.DataFrame:
    """Year by year: count, population, rate and where each came from (published/computed)."""
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
    rec = data.resolve_la(la)
    if ax is None:
        _, ax = plt.subplots()
    official = _series(rec.la_code, "cla_31_march", start_year)
    ax.plot(pd.to_datetime(official["year"].astype(str) + "-03-31"), official["count"],
            marker="o", color=charts.PALETTE["observed"],
            label="official: DfE, looked after on 31 March")
    council = data.council_reported(rec.la_code)
    if len(council):
        ax.scatter(pd.to_datetime(council["date"]), council["count"], facecolors="none",
                   edgecolors=charts.PALETTE["counterfactual"], s=50, linewidths=1.5,
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


def rates_reading(stock: pd.DataFrame, area) -> str:
    """The latest rate of children looked after against neighbours, region and England, and
    the first year's (`stock`: comparison_rates of cla_31_march)."""
    latest = stock.iloc[-1]
    return (f"In {int(latest['year'])}, {area.la_name} had **{latest[area.la_name]:.0f} "
            f"children looked after per 10,000** children, against "
            f"{latest['statistical neighbours']:.0f} across its statistical neighbours, "
            f"{latest[area.region_name]:.0f} in the {area.region_name} and "
            f"{latest['England']:.0f} in England. In {int(stock['year'].iloc[0])} the figures "
            f"were {stock[area.la_name].iloc[0]:.0f} and {stock['England'].iloc[0]:.0f} "
            "(England).")


def plot_comparison(table: pd.DataFrame, la_name: str, measure: str, events: dict | None = None,
                    ax=None):
    """Lines of rate per 10,000 for the LA (bold) and its comparators."""
    if ax is None:
        _, ax = plt.subplots()
    for column in table.columns.drop("year"):
        mine = column == la_name
        ax.plot(table["year"], table[column], marker="o" if mine else None,
                linewidth=2.4 if mine else 1.4, label=column,
                color=charts.PALETTE["observed"] if mine else None)
    if events:
        charts.mark_events(ax, events)
    ax.set_title(f"{vocab.measure_label(measure)}: rate per 10,000 children")
    ax.set_xlabel("Reporting year ending 31 March")
    ax.set_ylabel("Rate per 10,000 children aged under 18")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


def rank_by_year(la, measure="cla_31_march", start_year=2010, end_year=None) -> pd.DataFrame:
    """The LA's rank among all LAs each year by rate per 10,000 (1 = highest rate)."""
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


def rank_reading(rank: pd.DataFrame, la_name: str) -> str:
    """Where the authority ranked in the first and last year, and its highest rank
    (`rank`: rank_by_year)."""
    position = rank["rank (1 = highest)"]
    top = rank.loc[position.idxmin()]
    return (f"{la_name} ranked {position.iloc[0]} of {rank['of LAs'].iloc[0]} authorities in "
            f"{rank['year'].iloc[0]} and {position.iloc[-1]} of {rank['of LAs'].iloc[-1]} in "
            f"{rank['year'].iloc[-1]}; its highest position was "
            f"{int(top['rank (1 = highest)'])} in {int(top['year'])}.")


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
    if ax is None:
        _, ax = plt.subplots()
    ax.plot(table["year"], table["starts"], marker="o", label="starts during the year")
    ax.plot(table["year"], table["ceased"], marker="s", label="ceased during the year")
    ax.bar(table["year"], table["change in year"], color=charts.PALETTE["comparator"], alpha=0.35,
           label="change in number looked after")
    if events:
        charts.mark_events(ax, events)
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_title(f"{la_name}: flows into and out of care")
    ax.set_xlabel("Reporting year ending 31 March")
    ax.set_ylabel("Children")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


