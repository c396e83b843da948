"""Checks layer: placebo-in-time, specification curve, structural breaks, power and calibration
of the models' estimates. Numbers only; `helpers.present` words them."""
