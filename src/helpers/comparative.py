"""Stable entry point (DESIGN.md): `helpers.comparative.fit_did` and `fit_synthetic_control`
(and the other comparative designs) for one LA of the official panel.

The designs live in `helpers.models.comparative`, `helpers.models.synth` and
`helpers.models.la_panel` (the LA adapter); words and charts in `helpers.present.comparative`.
Nothing inside the package imports this module."""

from helpers.models.analysis import Comparison, run_comparisons
from helpers.models.comparative import (ControlledITSResult, DiDResult, EventStudyResult,
                                        fit_controlled_its, fit_did, fit_event_study)
from helpers.models.la_panel import (comparator_series, donor_pool, normalise_events,
                                     simulate_panel, wide_rates)
from helpers.models.simplex import synth_weights
from helpers.models.synth import SyntheticControlResult, fit_synthetic_control

__all__ = ["Comparison", "ControlledITSResult", "DiDResult", "EventStudyResult",
           "SyntheticControlResult", "comparator_series", "donor_pool", "fit_controlled_its",
           "fit_did", "fit_event_study", "fit_synthetic_control", "normalise_events",
           "run_comparisons", "simulate_panel", "synth_weights", "wide_rates"]
