"""Stable entry point (DESIGN.md): `helpers.sensitivity.detect_breaks` and the other checks.

The checks live in `helpers.checks` (placebo, speccurve, breaks, simulation, power, calibration,
headline); words and charts in `helpers.present.checks`. Nothing inside the package imports this
module."""

from helpers.checks.breaks import (BreakResult, break_calibration, break_power, breaks_vs_events,
                                   detect_breaks)
from helpers.checks.calibration import (CALIBRATION_METHODS, Cell, analysis_cells,
                                        calibration_table, method_status, recommend_defaults)
from helpers.checks.placebo import PlaceboResult, placebo_in_time
from helpers.checks.power import (minimum_detectable_effect, months_to_detect, power_curve,
                                  power_table)
from helpers.checks.simulation import (PrePeriodModel, batch_fit, fit_pre_period, its_design,
                                       simulate_counts)
from helpers.checks.speccurve import (SpecCurveResult, launch_times, launch_window,
                                      specification_curve, specification_grid)

__all__ = ["BreakResult", "CALIBRATION_METHODS", "Cell", "analysis_cells", "break_calibration",
           "break_power", "method_status", "PlaceboResult", "PrePeriodModel",
           "SpecCurveResult", "batch_fit", "breaks_vs_events", "calibration_table",
           "detect_breaks", "fit_pre_period", "its_design", "launch_times", "launch_window",
           "minimum_detectable_effect", "months_to_detect", "placebo_in_time", "power_curve",
           "power_table", "recommend_defaults", "simulate_counts", "specification_curve",
           "specification_grid"]
