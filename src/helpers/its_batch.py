"""Stable entry point (DESIGN.md): `from helpers.its_batch import fit_many`. The vectorised
batch fit lives in `helpers.models.batch`; nothing inside the package imports this module."""

from helpers.models.batch import BATCH_FAMILIES, ManyResult, fit_many, irls_poisson

__all__ = ["BATCH_FAMILIES", "ManyResult", "fit_many", "irls_poisson"]
