"""Every model an analysis declares, fitted from its validated specification: the single-series
ITS per outcome and the comparative designs, all about the spec's primary event unless a caller
names another. Numbers only.

    fits = its_for(spec)                 # {outcome: ITSResult}, counterfactual = primary event
    comparisons = comparisons_for(spec)  # {outcome: Comparison}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from helpers import data
from helpers.core import vocab
from helpers.core.errors import CareTrendsError
from helpers.core.records import EffectResult
from helpers.models.comparative import (ControlledITSResult, DiDResult, EventStudyResult,
                                        fit_controlled_its, fit_did, fit_event_study)
from helpers.models.design import Interruption
from helpers.models.its import ITSResult, fit_its
from helpers.models.la_panel import get_panel, la_rate_panel, normalise_events, resolve_unit
from helpers.models.panel import fit_sdid
from helpers.models.panel.data import PanelResult
from helpers.models.synth import (AugmentedSyntheticControlResult, SyntheticControlResult,
                                  fit_augmented_synthetic_control, fit_synthetic_control)
from helpers.spec import Analysis, interventions

#: Placebo draws behind synthetic DiD's standard error (the paper's Algorithm 4 uses B = 200;
#: with fewer donors than this every placebo LA is used once, so the error has no Monte Carlo
#: noise).
SDID_PLACEBOS = 200


def annual_counts(la, outcome: str, start_year=None, end_year=None) -> pd.DataFrame:
    """year, <outcome> (count), population for one LA: what the annual ITS fits."""
    s = data.annual_series(la, outcome)
    if start_year:
        s = s[s["year"] >= start_year]
    if end_year:
        s = s[s["year"] <= end_year]
    df = s[["year", "count", "population"]].rename(columns={"count": outcome})
    return df.dropna().reset_index(drop=True)


def fit_outcomes(la, outcomes, events, family="quasipoisson", start_year=2014, end_year=None,
                 counterfactual_for: str | None = None) -> dict[str, ITSResult]:
    """fit_its per outcome on the LA's annual series with every declared event (the declared
    impact model); the counterfactual describes `counterfactual_for` (default the last event)."""
    kwargs = interventions(events, "annual")
    return {outcome: fit_its(annual_counts(la, outcome, start_year, end_year), outcome=outcome,
                             time="year", family=family, offset="population",
                             counterfactual_for=counterfactual_for, **kwargs)
            for outcome in outcomes}


def its_for(spec: Analysis, outcomes: Sequence[str] | None = None) -> dict[str, ITSResult]:
    """The analysis' single-series ITS for each outcome, about its primary event."""
    return fit_outcomes(spec.la_code, outcomes or spec.outcomes, spec.events, family=spec.family,
                        start_year=spec.start_year, end_year=spec.end_year,
                        counterfactual_for=spec.primary_event)


@dataclass
class Comparison:
    """Every design for one outcome: the single-series ITS beside the comparative designs."""
    outcome: str
    event: Interruption  # the event DiD and synthetic control look at
    its: EffectResult | None
    controlled: ControlledITSResult
    controlled_ratio: ControlledITSResult
    did: DiDResult
    event_study: EventStudyResult
    synth: SyntheticControlResult
    synth_ridge: AugmentedSyntheticControlResult | None = None
    sdid: PanelResult | None = None  # synthetic DiD (Arkhangelsky et al. 2021)

    def designs(self) -> dict[str, EffectResult]:
        """Design key (helpers.core.vocab.DESIGNS) -> result, for a side-by-side reading."""
        out = {} if self.its is None else {"its": self.its}
        out.update({"controlled_its": self.controlled,
                    "controlled_its_ratio": self.controlled_ratio,
                    "did": self.did, "synthetic_control": self.synth})
        if self.synth_ridge is not None:
            out["synthetic_control_ridge"] = self.synth_ridge
        if self.sdid is not None:
            out["synthetic_did"] = self.sdid
        return out

    def records(self, **context) -> list[dict]:
        """results.json records of the comparative designs (the ITS notebook publishes the ITS)."""
        out = []
        for res in (self.controlled, self.controlled_ratio, self.did, self.event_study, self.synth,
                    self.synth_ridge, self.sdid):
            if res is not None:
                out.extend(res.to_records(outcome=self.outcome, **context))
        return out


def run_comparisons(la: str, outcomes: Sequence[str], events, comparator=vocab.COMPARATORS[0],
                    start_year: int = 2014, end_year: int | None = None,
                    exclude_donors: Sequence[str] = (), family: str = "quasipoisson",
                    primary_event: str | None = None, panel: pd.DataFrame | None = None,
                    with_its: bool = True, sdid_for: Sequence[str] | None = None,
                    seed: int = vocab.DEFAULT_SEED) -> dict[str, Comparison]:
    """Run every design for each outcome. Controlled ITS uses every event (the declared impact
    model); DiD, event study and synthetic control use `primary_event` (default the last).
    Synthetic DiD (placebo standard errors, the costliest design) runs for the outcomes in
    `sdid_for` (default the first outcome)."""
    panel = get_panel(panel)
    evs = normalise_events(events)
    if primary_event is None:
        focus = evs[-1]
    else:
        match = [e for e in evs if e.name == primary_event]
        if not match:
            raise CareTrendsError(vocab.suggest(primary_event, [e.name for e in evs],
                                                "primary event"))
        focus = match[0]
    unit = resolve_unit(la, panel)
    # The controlled ITS is a count model: families chosen for the single-series ITS that it
    # does not offer (negbin, ols, ar1, sarimax) fall back to quasi-Poisson here.
    cits_family = family if family in vocab.BATCH_FAMILIES else "quasipoisson"
    its_fits = {}
    if with_its:
        its_fits = fit_outcomes(unit.la_code, list(outcomes), events, family=family,
                                start_year=start_year, end_year=end_year,
                                counterfactual_for=focus.name)
    out = {}
    for outcome in outcomes:
        common = dict(start_year=start_year, end_year=end_year, panel=panel)
        out[outcome] = Comparison(
            outcome=outcome, event=focus, its=its_fits.get(outcome),
            controlled=fit_controlled_its(unit.la_code, outcome, evs, comparator,
                                          family=cits_family, **common),
            controlled_ratio=fit_controlled_its(unit.la_code, outcome, evs, comparator,
                                                method="ratio", family=cits_family, **common),
            did=fit_did(unit.la_code, outcome, focus, exclude_donors=exclude_donors, **common),
            event_study=fit_event_study(unit.la_code, outcome, focus,
                                        exclude_donors=exclude_donors, **common),
            synth=fit_synthetic_control(unit.la_code, outcome, focus,
                                        exclude_donors=exclude_donors, **common),
            synth_ridge=fit_augmented_synthetic_control(unit.la_code, outcome, focus,
                                                        exclude_donors=exclude_donors, **common),
            sdid=(fit_sdid(la_rate_panel(unit.la_code, outcome, focus, start_year, end_year,
                                         exclude_donors, panel),
                           event=focus.name, se_method="placebo", replications=SDID_PLACEBOS,
                           seed=seed)
                  if outcome in (sdid_for if sdid_for is not None else list(outcomes)[:1])
                  else None))
    return out


def comparisons_for(spec: Analysis, outcomes: Sequence[str] | None = None
                    ) -> dict[str, Comparison]:
    """Every design for each of the analysis' outcomes, about its primary event."""
    return run_comparisons(spec.la_code, outcomes or spec.outcomes, spec.events,
                           comparator=spec.comparator, start_year=spec.start_year,
                           end_year=spec.end_year, exclude_donors=spec.exclude_donors,
                           family=spec.family, primary_event=spec.primary_event,
                           sdid_for=[spec.primary_outcome], seed=spec.seed)
