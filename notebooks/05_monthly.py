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
# # Monthly starts and children in care, from SSDA903 episodes
#
# Published figures are annual, which leaves too few points after a recent programme for any
# trend test. Every council holds its SSDA903 episode records, which give a monthly series of
# children starting to be looked after and of children in care at each month end. This notebook
# validates an episode extract, derives those series (DfE definitions: starts exclude short-break
# placements; each child counted once in the annual check) and fits an interrupted time series
# with seasonality at each event. Without a council's own files it runs on a **SYNTHETIC**
# stand-in calibrated to the LA's published annual counts: its results show the method, not
# what happened.

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_path = None  # set by the runner: where this notebook's estimates go

# %%
import re

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from helpers import spec as specs
from helpers import ssda903
from helpers.core import vocab
from helpers.core.errors import CareTrendsError
from helpers.core.records import save_records
from helpers.models.its import fit_its
from helpers.present import charts
from helpers.checks import calibration
from helpers.present import checks as words
from helpers.present import its as its_words

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
la = spec.la_name
extract = ssda903.load_or_synthesize(spec.ssda903_header, spec.ssda903_episodes, la=la,
                                     seed=spec.seed)
source = ("a SYNTHETIC extract generated child by child and calibrated to the published annual "
          f"counts for {la}" if extract.synthetic else f"the SSDA903 extract supplied for {la}")
display(Markdown(f"**Data:** {source}; {extract.report.n_episodes:,} usable episodes, "
                 f"{extract.coverage_start:%B %Y} to {extract.coverage_end:%B %Y}. "
                 "Validation report (counts only):"))
print(extract.report)

# %%
window_start = max(pd.Timestamp(f"{spec.start_year - 1}-04-01"), extract.coverage_start)
window_end = f"{spec.end_year}-03-31"
monthly = ssda903.monthly_series(extract, start=window_start, end=window_end)
try:
    monthly = ssda903.attach_population(monthly, la)
    offset = "population"
except CareTrendsError:
    offset = None  # no official population for this area: model counts without an offset
plan = spec.interventions("monthly")
monthly_outcomes = {"starts": "Children starting to be looked after (per month)",
            "cla_month_end": "Children looked after at month end"}
fits = {outcome: fit_its(monthly, outcome=outcome, time="t", **plan, family=spec.monthly_family,
                         offset=offset, harmonics=2, period=12, season="calendar_month",
                         counterfactual_for=spec.primary_event)
        for outcome in monthly_outcomes}

# %%
# Counts of 1-4 are never drawn: the points shown come from the disclosure rule (monthly,
# quarterly or yearly steps, with secondary suppression); the model lines are fitted values.
shown = ssda903.chart_counts(monthly, flows=("starts",), stock="cla_month_end",
                             threshold=spec.small_count_threshold).set_index("t")
for outcome, label in monthly_outcomes.items():
    fig, ax = plt.subplots()
    its_words.plot(fits[outcome], ax=ax, ylabel=label, synthetic=False,
                   observed=shown[outcome].reindex(fits[outcome].times),
                   title=f"{label}, {la}" + (" (SYNTHETIC)" if extract.synthetic else ""))
    if extract.synthetic:
        charts.mark_synthetic(fig)
    plt.show()

# %%
table = pd.concat([res.effects.assign(outcome=outcome) for outcome, res in fits.items()])
columns = {"outcome": "series", "intervention": "event", "effect": "change",
           "estimate": "estimate", "ci_low": "95% CI low", "ci_high": "95% CI high",
           "p_value": "p-value"}
table = table.assign(intervention=table["intervention"].map(spec.titles),
                     outcome=table["outcome"].map(monthly_outcomes))[list(columns)].rename(
                         columns=columns)
display(Markdown("**Estimated changes** (rate ratios: 1 = no change; slope = change per month)"
                 + (" — SYNTHETIC data" if extract.synthetic else "")))
table.round(3).reset_index(drop=True)

# %% [markdown]
# **Why this model, and the named alternatives.** Neighbouring months are alike, and a count model
# that treats them as independent mistakes that for an effect. The estimates above are a Poisson
# regression whose intervals and p-values come from a bootstrap of autocorrelated counts
# simulated from the fitted model: the one method the project's calibration found to keep its
# promise on monthly series. The same declared impact model fitted with two common alternatives,
# quasi-Poisson and a linear model with AR(1) errors (changes in children per month), with how
# often each claims a change that is not there:

# %%
alternatives = {"quasipoisson": "its_monthly_quasipoisson", "ar1": "its_monthly_ar1"}
alt_fits = {(family, outcome): fit_its(monthly, outcome=outcome, time="t", **plan,
                                       family=family, offset=offset, harmonics=2, period=12,
                                       season="calendar_month",
                                       counterfactual_for=spec.primary_event)
            for family in alternatives for outcome in monthly_outcomes}
display(Markdown(words.measured_sizes(calibration.load_full_table(),
                                      [spec.monthly_family, *alternatives])))
alt_table = pd.concat([res.effects.assign(outcome=outcome, model=vocab.FAMILY_SHORT[family])
                       for (family, outcome), res in alt_fits.items()])
alt_table["intervention"] = alt_table["intervention"].map(spec.titles)
alt_table["outcome"] = alt_table["outcome"].map(monthly_outcomes)
alt_table["scale"] = alt_table["scale"].map({"ratio": "rate ratio",
                                             "difference": "children per month"})
alt_table[["model", *columns, "scale"]].rename(columns=columns).round(3).reset_index(drop=True)

# %%
annual = ssda903.annual_counts(extract)
annual = annual[annual["reporting_year"] >= spec.start_year]
by_age = ssda903.starts_by(extract, "age_band", freq="reporting_year")
by_age = by_age[by_age["reporting_year"] >= spec.start_year]
display(Markdown("**Annual check** (DfE definition: each child counted once a year; starts by age "
                 f"at entry, with their total; counts from 1 to {spec.small_count_threshold - 1} "
                 f"shown as <{spec.small_count_threshold}, and further cells as c where a total "
                 "would give a small count away)"
                 + (" — SYNTHETIC data" if extract.synthetic else "")))
display(ssda903.suppress_small_counts(annual.drop(columns=["starts_periods", "ceased_periods"]),
                                      threshold=spec.small_count_threshold,
                                      columns=["starts", "ceased", "cla_31_march"]).display)
ssda903.suppress_small_counts(by_age, threshold=spec.small_count_threshold, totals="rows",
                              columns=[c for c in by_age.columns if c != "reporting_year"]).display

# %% [markdown]
# ### What the monthly series say

# %% tags=["headline"]
reading = ["**SYNTHETIC data: these estimates illustrate the method.**"] if extract.synthetic else []
for outcome, res in fits.items():
    paragraphs = re.sub(r"(?<!\n)\n(?!\n)", "\n\n", its_words.summary(res))  # a line each
    reading.append(f"**{monthly_outcomes[outcome]}:** " + paragraphs)
if extract.synthetic:
    reading.append("These series are SYNTHETIC: the annual totals match the published counts, "
                   "but the months within each year are simulated, so the estimates illustrate "
                   "the method rather than measure any programme. Point `ssda903_header` and "
                   "`ssda903_episodes` at the council's own extract for real estimates.")
display(Markdown("\n\n".join(reading)))

# %%
if results_path:
    records = []
    suffix = "_synthetic" if extract.synthetic else ""
    for outcome, res in fits.items():
        records += res.to_records(analysis=spec.analysis, notebook="05_monthly", la=spec.la,
                                  outcome=outcome, design="its_monthly" + suffix)
    for (family, outcome), res in alt_fits.items():
        records += res.to_records(analysis=spec.analysis, notebook="05_monthly", la=spec.la,
                                  outcome=outcome, design=alternatives[family] + suffix)
    save_records(records, results_path)
