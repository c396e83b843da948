# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Summary: what the designs agree on
#
# This notebook gathers the estimates every other notebook of the analysis published (single
# series ITS, comparative designs, monthly series, sensitivity analyses) and reads them together:
# one triangulation table of design, estimate, interval and verdict, the findings in plain
# English, and the caveats that limit them. When a design's results are missing (its notebook
# was not run or could not estimate), the summary says so rather than failing.

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_dir = None  # set by the runner: where the other notebooks' estimates are

# %% [markdown]
# <!-- nbval: the cells below depend on which results exist (reports/ is built by
# `care-trends run`), so their outputs are not compared; they must still run without error. -->

# %% tags=["nbval-ignore-output"]
from IPython.display import Markdown

from helpers import spec as specs
from helpers.core import vocab
from helpers.core.records import load_extra
from helpers.present import summary
from helpers.present.tables import Table

spec = specs.load_analysis(analysis, overrides)
records = summary.load_results(spec.analysis, results_dir)
designs = sorted({vocab.design_label(d) for d in records["design"].dropna()})
missing = summary.missing_results(records)
Markdown(
    (f"Estimates found for **{spec.la_name}**: {len(records)} from "
     f"{records['notebook'].nunique()} notebooks ({', '.join(designs)})."
     if len(records) else
     f"No published estimates were found for {spec.la_name} yet. Run `care-trends run "
     f"{analysis}` to execute the analysis; this summary then reads its results.")
    + (f" No results from {', '.join(missing)} (not run, failed, or nothing estimable): the "
       "findings below leave those designs out." if missing and len(records) else "")
)

# %% [markdown]
# ## Findings
# Each line counts, for the analysis' primary outcome, how many designs find fewer or more than
# the pre-existing trend predicted with an interval that excludes no change.

# %% tags=["headline", "nbval-ignore-output"]
Markdown(summary.findings_text(records, spec.la_name, outcome=spec.primary_outcome,
                               effect="level", titles=spec.titles))

# %% [markdown]
# ## How sure can anyone be, and when will we know?
# From the sensitivity notebook: how much the primary event's estimate moves across reasonable
# specifications and placebo dates, and how much data a trend test would need.

# %% tags=["nbval-ignore-output"]
sensitivity_headline = (load_extra(results_dir, "06_sensitivity", "headline")
                        if results_dir else None)
Markdown(sensitivity_headline["text"] if sensitivity_headline else
         "The sensitivity analyses have not been run with this summary (run `care-trends run "
         f"{analysis}`), so how fragile the estimates are is not quoted here.")

# %% [markdown]
# ## Triangulation table
# Level changes for the primary outcome: ratios (1 = no change) for count models, differences for
# linear ones. Agreement across designs with different weaknesses is what makes a finding
# credible; a single design's estimate is not enough.

# %% tags=["nbval-ignore-output"]
Table(summary.triangulation_table(records, outcome=spec.primary_outcome, effect="level",
                                  titles=spec.titles),
      caption=f"{spec.la_name}: {vocab.measure_label(spec.primary_outcome).lower()}, "
              "level change by design and event")

# %% [markdown]
# ## Caveats
# - **Few years.** Annual series give about a dozen points from 2014; each model estimates
#   several parameters from them, so intervals are wide and single years matter.
# - **Recent programmes.** An event from early 2024 has one full post year (2024-25) in the
#   official data: an early signal, not a measured effect. Monthly SSDA903 data shorten the wait.
# - **Other things changed at the same time.** A single series attributes any change at an event
#   to it; the comparative designs (neighbours, region, synthetic control) test that, and they
#   assume the comparators were not affected by similar programmes.
# - **Definitions.** Starts and exits are counted per child per year; council-reported figures
#   are not official statistics and never enter a model. Synthetic data, where used, is
#   labelled SYNTHETIC and shows the method, not what happened.
