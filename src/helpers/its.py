"""Stable entry point (DESIGN.md): `from helpers import its; its.fit_its(...)`.

The engine lives in `helpers.models.its` (the model) and `helpers.models.design` (the segmented
design); words and charts for a result are in `helpers.present.its`. Nothing inside the package
imports this module."""

from helpers.core.vocab import FAMILIES, LOG_LINK_FAMILIES
from helpers.models.batch import fit_many
from helpers.models.design import design_columns, interventions_from_events, newey_west_lags
from helpers.models.its import IMPACT_DRAWS, IMPACT_SEED, ITSResult, fit_its

__all__ = ["FAMILIES", "IMPACT_DRAWS", "IMPACT_SEED", "ITSResult", "LOG_LINK_FAMILIES",
           "design_columns", "fit_its", "fit_many", "interventions_from_events",
           "newey_west_lags"]
