"""The early-help pathway, stage by stage: the same designs the care-entry question uses
(single-series ITS with a population offset, and controlled ITS against the comparator) applied
to referrals, children in need, child protection plans and care entry, for the analysis'
primary event. Numbers only; `helpers.present.pathway` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers import data
from helpers.core import vocab
from helpers.core.errors import CareTrendsError
from helpers.models.analysis import fit_outcomes
from helpers.models.comparative import ControlledITSResult, fit_controlled_its
from helpers.models.its import ITSResult
from helpers.models.la_panel import comparator_series
from helpers.spec import Analysis


@dataclass(eq=False, repr=False)  # eq/repr would compare whole frames
class PathwayResult:
    """One row per stage in `stages` (pathway order): the observed counts and rates, the LA's
    and the comparator's rates per 10,000 by year, and each stage's fits."""

    la_name: str
    event: str
    stages: list[str]
    its: dict[str, ITSResult]
    controlled: dict[str, ControlledITSResult]
    rates: pd.DataFrame          # year, stage, la_rate, comparator_rate, count
    comparator_label: str

    @property
    def level_changes(self) -> pd.DataFrame:
        """Each stage's level change at the event from both designs (rate ratios)."""
        rows = []
        for stage in self.stages:
            for design, fits in (("its", self.its), ("controlled_its", self.controlled)):
                res = fits.get(stage)
                if res is None:
                    continue
                eff = res.effects
                hit = eff[(eff["intervention"] == self.event) & (eff["effect"] == "level")]
                if len(hit):
                    rows.append({"stage": stage, "design": design,
                                 **hit.iloc[0][["estimate", "ci_low", "ci_high", "p_value"]]})
        return pd.DataFrame(rows, columns=["stage", "design", "estimate", "ci_low", "ci_high",
                                           "p_value"])

    def year_on_year(self, year: int | None = None) -> pd.DataFrame:
        """Observed counts in `year` (default the latest) and the year before, per stage."""
        counts = self.rates.pivot(index="year", columns="stage", values="count")
        year = int(counts.index.max()) if year is None else int(year)
        if year - 1 not in counts.index:
            raise CareTrendsError(f"no data for {year - 1}; choose a later year")
        before, after = counts.loc[year - 1], counts.loc[year]
        return pd.DataFrame({"stage": self.stages, "year": year,
                             "before": [before[s] for s in self.stages],
                             "after": [after[s] for s in self.stages],
                             "change": [after[s] / before[s] - 1 for s in self.stages]})

    def to_records(self, **context) -> list[dict]:
        out = []
        for stage in self.stages:
            out += self.its[stage].to_records(outcome=stage, design="its", **context)
            if stage in self.controlled:
                out += self.controlled[stage].to_records(outcome=stage, **context)
        return out


def fit_pathway(spec: Analysis, stages: Sequence[str] = vocab.PATHWAY_FLOW) -> PathwayResult:
    """Each stage's single-series ITS (every declared event; counterfactual = primary event)
    and controlled ITS against the analysis' comparator, plus the rates the funnel chart shows."""
    stages = [s for s in stages if s in vocab.MEASURES]
    years = (spec.start_year, spec.end_year)
    its = fit_outcomes(spec.la_code, stages, spec.events, family=spec.family,
                       start_year=years[0], end_year=years[1],
                       counterfactual_for=spec.primary_event)
    family = spec.family if spec.family in vocab.BATCH_FAMILIES else "quasipoisson"
    controlled, frames, label = {}, [], ""
    for stage in stages:
        try:
            controlled[stage] = fit_controlled_its(spec.la_code, stage, spec.events,
                                                   spec.comparator, years[0], years[1],
                                                   family=family)
        except CareTrendsError:  # a comparator without complete data for this stage
            pass
        treated, comp, label = comparator_series(spec.la_code, stage, spec.comparator,
                                                 years[0], years[1])
        frames.append(pd.DataFrame({"year": treated["year"].astype(int), "stage": stage,
                                    "count": treated["count"].to_numpy(float),
                                    "la_rate": treated["rate_per_10000"].to_numpy(float),
                                    "comparator_rate": comp["rate_per_10000"].to_numpy(float)}))
    return PathwayResult(la_name=spec.la_name, event=spec.primary_event, stages=stages, its=its,
                         controlled=controlled, rates=pd.concat(frames, ignore_index=True),
                         comparator_label=label)


def spend_context(spec: Analysis, measure: str = "lac_spend_per_child_week") -> pd.DataFrame:
    """Spend on children looked after for the LA and its comparator LAs (the median of their
    values each year), as published: context for the cost question, not part of the causal one."""
    panel = data.load_panel()
    rows = panel[panel["measure"].eq(measure) & panel["value"].notna()
                 & panel["geographic_level"].eq("Local authority")]
    if isinstance(spec.comparator, tuple):
        codes = [data.resolve_la(c).la_code for c in spec.comparator]
    elif str(spec.comparator).startswith("statistical_neighbours_"):
        codes = data.statistical_neighbours(spec.la_code,
                                            edition=str(spec.comparator).rsplit("_", 1)[1])
    else:
        codes = sorted(set(rows["la_code"].dropna()) - {spec.la_code})
    mine = rows[rows["la_code"].eq(spec.la_code)].set_index("year")["value"]
    others = rows[rows["la_code"].isin(codes)].groupby("year")["value"]
    table = pd.DataFrame({"la": mine, "comparator_median": others.median(),
                          "comparator_low": others.min(), "comparator_high": others.max()})
    table = table.dropna(subset=["la"]).reset_index().rename(columns={"index": "year"})
    table["year"] = table["year"].astype(int)
    table["ratio_to_median"] = np.where(table["comparator_median"] > 0,
                                        table["la"] / table["comparator_median"], np.nan)
    return table
