"""A council's own SSDA903 episode files -> validated monthly series; and a SYNTHETIC stand-in.

    from helpers import ssda903
    extract = ssda903.load_903("header.csv", "episodes.csv")   # CareTrendsError if unusable
    extract = ssda903.load_903("ssda903_export.xml")           # or the DfE XML export alone
    print(extract.report)                                      # counts only, no child-level data
    monthly = ssda903.monthly_series(extract)                  # starts, ceased..., cla_month_end
    annual = ssda903.annual_counts(extract)                    # DfE: each child once a year
    synthetic = ssda903.synthetic_extract("Stoke-on-Trent")    # calibrated SYNTHETIC stand-in
    table = ssda903.suppress_small_counts(monthly[cols], totals="columns", groups="reporting_year")
    chart = ssda903.chart_counts(monthly, flows=["starts"])     # what a chart may plot

CLI: `care-trends validate-903 HEADER EPISODES` and `care-trends synth-903 --la LA --out DIR`.
"""

from __future__ import annotations

from helpers.core import vocab
from helpers.core.errors import CareTrendsError
from helpers.ssda903 import codes
from helpers.ssda903.derive import (BREAKDOWNS, EXIT_COLUMNS, age_at, age_band, annual_counts,
                                    attach_population,
                                    in_care_at, monthly_series, starts_by, suppress_small)
from helpers.ssda903.disclosure import (PUBLISHED_THRESHOLD, SuppressedTable, chart_counts,
                                        check_threshold, suppress_small_counts)
from helpers.ssda903.extract import (Extract, ValidationReport, load_903, parse_dates, read_table,
                                     validate)
from helpers.ssda903.synth import (Effect, SyntheticExtract, calibration_table, synthesize,
                                   write_synthetic)

__all__ = ["codes", "BREAKDOWNS", "EXIT_COLUMNS", "age_at", "age_band", "annual_counts", "attach_population", "in_care_at",
           "monthly_series", "starts_by", "suppress_small", "Extract", "ValidationReport", "load_903",
           "parse_dates", "read_table", "validate", "Effect", "SyntheticExtract", "calibration_table",
           "synthesize", "write_synthetic", "synthetic_extract", "load_or_synthesize",
           "PUBLISHED_THRESHOLD", "SuppressedTable", "chart_counts", "check_threshold",
           "suppress_small_counts"]


def synthetic_extract(la: str = "Stoke-on-Trent", seed: int = vocab.DEFAULT_SEED, targets=None,
                      effect: Effect | None = None) -> Extract:
    """The SYNTHETIC stand-in as a validated Extract, generated in memory (no files written)."""
    synth = synthesize(la, seed=seed, targets=targets, effect=effect)
    extract = load_903(synth.header, synth.episodes, label=f"SYNTHETIC {la}")
    extract.synthetic = True
    return extract


def load_or_synthesize(header=None, episodes=None, *, la: str = "Stoke-on-Trent",
                       seed: int = vocab.DEFAULT_SEED, **kwargs) -> Extract:
    """The notebook entry point: the council's files (header and episodes, or a DfE XML export
    as `header` alone) when given, else the SYNTHETIC stand-in for `la`."""
    if header is None and episodes is not None:
        raise CareTrendsError("give both ssda903_header and ssda903_episodes (or neither, for the "
                              "synthetic stand-in)")
    if header is None:
        return synthetic_extract(la, seed=seed)
    return load_903(header, episodes, **kwargs)
