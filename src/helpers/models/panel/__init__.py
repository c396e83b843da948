"""Comparative designs on any long panel (unit x time): difference-in-differences and event study
(two-way fixed effects), synthetic difference-in-differences (Arkhangelsky et al. 2021),
staggered adoption (Callaway & Sant'Anna 2021), synthetic control with covariates (Abadie,
Diamond & Hainmueller 2010) and minimum detectable effects. Numbers only.

Every design takes a `Panel` (see `make_panel`) and returns a result whose `effects` table has
`helpers.core.records.EFFECT_COLUMNS`, so `.to_records()` feeds results.json.
"""

from helpers.models.panel.data import Panel, make_panel
from helpers.models.panel.did import fit_event_study, fit_twfe_did
from helpers.models.panel.power import mde_from_placebos, mde_from_se, rejection_rate
from helpers.models.panel.sdid import fit_sdid
from helpers.models.simplex import simplex_least_squares
from helpers.models.panel.staggered import fit_callaway_santanna
from helpers.models.panel.synth import fit_synth, predictor_table

__all__ = ["Panel", "make_panel", "fit_twfe_did", "fit_event_study", "fit_sdid",
           "fit_callaway_santanna", "fit_synth", "predictor_table", "simplex_least_squares",
           "mde_from_se", "mde_from_placebos", "rejection_rate"]
