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
# # How sure can anyone be, and when will we know?
#
# With about sixteen annual points and few years after a programme, "did it work?" depends on
# how fragile the estimate is and on what the data could detect at all. This notebook moves each
# event to earlier dates (placebo in time), repeats the analysis under every reasonable choice
# (specification curve), lets the data find their own breaks, simulates how large a change
# annual and monthly data could detect, and checks by Monte Carlo which inference methods keep
# their promised 5% false-positive rate on series shaped like these.

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_path = None  # set by the runner: where this notebook's estimates go

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from helpers import data, spec as specs
from helpers.checks import headline
from helpers.checks.breaks import break_calibration, breaks_vs_events, detect_breaks
from helpers.checks.calibration import (CALIBRATION_METHODS, analysis_cells, calibration_table,
                                        recommend_defaults)
from helpers.checks.common import event_times
from helpers.checks.placebo import placebo_in_time
from helpers.checks.power import months_to_detect, power_table
from helpers.checks.simulation import fit_pre_period
from helpers.checks.speccurve import specification_curve
from helpers.core import timeline, vocab
from helpers.core.records import save_extra, save_records
from helpers.present import charts
from helpers.present import checks as words

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
la, outcome, events = spec.la, spec.primary_outcome, spec.events
series = data.annual_series(spec.la_code, outcome, start_year=min(2010, spec.start_year))
analysis_data = series[series["year"] >= spec.start_year].reset_index(drop=True)
times = event_times(events, "annual")
focus, focus_title = spec.primary_event, spec.event.title
display(Markdown(
    f"**{la}, {outcome.replace('_', ' ')}**, published DfE figures by reporting year (ending 31 "
    f"March), {int(series['year'].min())} to {int(series['year'].max())}; the main analysis "
    f"starts in {spec.start_year}. Events are in force from: "
    + "; ".join(f"{spec.titles[name]}, {timeline.reporting_year_label(when)}"
                for name, when in times.items())
    + f". Headline event: **{focus_title}**."))

# %% [markdown]
# ## Placebo in time
#
# Each event is moved to every earlier reporting year that leaves at least four years before it,
# using only data before the real event (and the same number of years after the placebo date
# where possible). If the real estimate is no larger than those at dates when nothing happened,
# it cannot be told apart from the series' ordinary ups and downs. Data from 2010 are used here
# to give more placebo dates.

# %%
placebo = placebo_in_time(series, events, outcome="count", time="year", family=spec.family,
                          offset="population", min_pre=4)
ax = words.plot_placebo(placebo, titles=spec.titles)
plt.show()

# %%
table = placebo.summary_table.assign(event=lambda d: d["event"].map(spec.titles))[["event", "effect", "time", "percent", "p_value", "n_placebo",
                               "rank_p", "placebo_low", "placebo_high"]].rename(columns={
    "time": "in force from", "percent": "real estimate (%)", "p_value": "model p",
    "n_placebo": "placebo dates", "rank_p": "placebo p", "placebo_low": "placebo min (%)",
    "placebo_high": "placebo max (%)"})
display(table.round(2))
display(Markdown(words.placebo_summary(placebo, titles=spec.titles).replace("\n", "  \n")))

# %% [markdown]
# ## Specification curve
#
# The same headline estimate under every reasonable analysis choice: start year (2010 or
# 2014), the launch date within its uncertainty window (and, as an alternative convention,
# counting from the first reporting year with at least six months in force), model family
# (quasi-Poisson, negative binomial, OLS with Newey-West errors, AR(1) errors), leaving out the
# COVID-affected reporting year 2021 (April 2020 to March 2021), modelling counts or rates
# (computed from count and population), modelling the earlier events or not, and the shape of
# the effect (a level change, or a level and a slope change). Estimates are % changes in the
# level at the first year in force (for OLS and AR(1), the change as a share of the
# counterfactual).

# %%
covid_options = ("none", "2021", "2020+2021") if spec.exclude_2020 else ("none", "2021")
default_spec = {"start_year": spec.start_year, "family": spec.family, "covid_excluded": "none",
                "scale": "rate", "launch_time": times[focus], "earlier_events": "all",
                "effect_shape": "+".join(spec.event.effects)}
curve = specification_curve(series, events, focus, covid=covid_options, default=default_spec)
fig = words.plot_speccurve(curve, titles=spec.titles)
plt.show()

# %%
by_choice = pd.concat([
    curve.fitted.groupby(col)["percent"].agg(["median", "min", "max", "count"])
    .rename_axis("value").reset_index().assign(choice=col)
    for col in ("start_year", "launch_time", "family", "covid_excluded", "scale",
                "earlier_events", "effect_shape")],
    ignore_index=True)[["choice", "value", "median", "min", "max", "count"]]
by_choice["choice"] = by_choice["choice"].str.replace("_", " ")
by_choice["value"] = by_choice["value"].map(lambda v: vocab.FAMILY_SHORT.get(v, v))
display(by_choice.round(1))
display(Markdown(words.speccurve_summary(curve, titles=spec.titles)))

# %% [markdown]
# ## Breaks the data find on their own
#
# With no dates given, a least-squares segmentation (Bai-Perron, dynamic programming) splits the
# log rate (children per head of population, computed from counts) into regimes with their own
# level and trend. The number of breaks is chosen by sequential sup-F tests, whose false-break
# rate on series of this length is measured below. Dashed lines mark the declared events; each
# regime needs at least three years, so a change in the last two years cannot show here.

# %%
pre_model = fit_pre_period(analysis_data, before=times[focus], outcome="count", time="year",
                           offset="population")
log_rate = pd.Series(np.log(series["count"].to_numpy(float) / series["population"].to_numpy(float)),
                     index=series["year"].astype(int).to_numpy())
breaks = detect_breaks(log_rate, max_breaks=3, model="trend", criterion="supf", seed=spec.seed,
                       return_result=True)
breaks_bic = detect_breaks(log_rate, max_breaks=3, model="trend", criterion="bic")
false_breaks = break_calibration(ns=(len(log_rate),), mean_counts=(pre_model.mean_count,),
                                 dispersions=(max(pre_model.dispersion, 1.0),),
                                 rhos=(0.0, round(max(pre_model.rho, 0.0), 2)),
                                 n_sim=max(2000, spec.n_simulations), seed=spec.seed)
ax = words.plot_breaks(log_rate, breaks, times,
                       ylabel=f"log rate per head ({outcome.replace('_', ' ')})")
plt.show()

# %%
comparison = breaks_vs_events(breaks.labels, times)
display(comparison.assign(event=comparison["event"].map(spec.titles)).rename(columns={
    "first_in_force": "in force from", "nearest_break": "nearest break", "gap": "years apart",
    "coincides": "within a year"}))
display(Markdown(words.breaks_reading(breaks.labels, comparison, titles=spec.titles) + " "
                 + words.break_criterion_reading(false_breaks, breaks, breaks_bic)))

# %% [markdown]
# ## When will we know? Power and the minimum detectable effect
#
# Series are simulated from the trend, dispersion and autocorrelation fitted to the years before
# the headline event, with a level change of each size from the first year (or month) in force,
# and the declared model is refitted to each: a level and a slope change once there are two or
# more points after the event (a level-only model would flatter the power). Where a test
# rejects too often with no change, its threshold is tightened first, so the power is that of
# a test with an honest 5% false-positive rate. Monthly series are the annual model spread over
# months, with month-to-month autocorrelation of 0.5 by default (an assumption: no public monthly
# data exist) and noise scaled so that a year's average varies as much as the annual figures do.

# %%
simulation = dict(n_sim=spec.n_simulations, rho_monthly=spec.rho_monthly, seed=spec.seed)
power = power_table(pre_model, method=spec.family, **simulation)
current = curve.stats().get("default_percent", float("nan"))
size = abs(current) / 100 if np.isfinite(current) else 0.1
months, by_month = months_to_detect(pre_model, size, method=spec.family, **simulation)
months_half, _ = months_to_detect(pre_model, size / 2, method=spec.family, **simulation)
ax = words.plot_when_will_we_know(power, current_percent=current, event=focus_title)
plt.show()

# %%
display(power[["frequency", "n_post", "months_after", "mde_percent", "false_positive_rate",
               "n_sim"]].round(3))
display(Markdown(
    f"Pre-period model ({pre_model.n_pre} years): trend {100 * pre_model.trend:+.1f}% a year, "
    f"dispersion {pre_model.dispersion:.2f}, lag-1 autocorrelation {pre_model.rho:.2f}. "
    + words.power_reading(power, months, current)))

# %% [markdown]
# ## Calibration: do the methods keep their promises?
#
# Series shaped like these are simulated with **no** true change (for the false-positive rate)
# and with a known one (for coverage): the annual series with the years this analysis has
# after the headline event, and the monthly series a council's own data would give (24 months
# after, seasonality, month-to-month autocorrelation). Each method is fitted with the declared
# impact model. A calibrated method reports a significant change about 5% of the time and its
# 95% intervals contain the truth about 95% of the time; "calibrated" here means within two
# points of both after allowing for the Monte Carlo error. The full grid of series lengths and
# autocorrelations, with every method, is in the project's calibration results.

# %%
n_post_annual = int((analysis_data["year"] >= times[focus]).sum())
cells = analysis_cells(pre_model, annual_post=max(n_post_annual, 1), monthly_post=24,
                       rho_monthly=spec.rho_monthly)
methods = {"annual": CALIBRATION_METHODS["annual"],
           "monthly": ("ar1_bootstrap", "quasipoisson", "poisson", "ols", "ar1", "naive_ols")}
# 199 bootstrap series per simulated series (nominal size 4.5%) keep this in the default run;
# the project's full calibration uses 399, and a real fit 999.
calibration = calibration_table(cells=cells, methods=methods, models="declared",
                                n_sim=max(2000, spec.n_simulations), seed=spec.seed,
                                n_boot=199, n_bias=49)
defaults = recommend_defaults(calibration)
display(words.calibration_summary(calibration))
display(Markdown(words.calibration_reading(calibration, defaults)))

# %% [markdown]
# ## Headline

# %% tags=["headline"]
head = headline.summarise(curve, placebo, power, months, months_half=months_half, event=focus,
                          event_title=focus_title, calibration_defaults=defaults)
head["text"] = words.headline_text(head)
display(Markdown(head["text"]))

# %%
if results_path:
    records = headline.records(placebo=placebo, spec=curve, power=power,
                               calibration=calibration, head=head, outcome=outcome,
                               analysis=spec.analysis, notebook="06_sensitivity", la=la,
                               event=focus)
    save_records(records, results_path)
    save_extra(head, results_path, "headline")
