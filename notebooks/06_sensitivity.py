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
from helpers.checks.breaks import breaks_vs_events, detect_breaks
from helpers.checks.calibration import calibration_table, recommend_defaults
from helpers.checks.common import event_times
from helpers.checks.placebo import placebo_in_time
from helpers.checks.power import months_to_detect, power_table
from helpers.checks.simulation import fit_pre_period
from helpers.checks.speccurve import specification_curve
from helpers.core import timeline
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
ax = words.plot_placebo(placebo)
plt.show()

# %%
table = placebo.summary_table[["event", "effect", "time", "percent", "p_value", "n_placebo",
                               "rank_p", "placebo_low", "placebo_high"]].rename(columns={
    "time": "in force from", "percent": "real estimate (%)", "p_value": "model p",
    "n_placebo": "placebo dates", "rank_p": "placebo p", "placebo_low": "placebo min (%)",
    "placebo_high": "placebo max (%)"})
display(table.round(2))
display(Markdown(words.placebo_summary(placebo).replace("\n", "  \n")))

# %% [markdown]
# ## Specification curve
#
# The same headline estimate under every reasonable analysis choice: start year (2010 or
# 2014), the launch date within its uncertainty window (and, as an alternative convention,
# counting from the first reporting year with at least six months in force), model family (quasi-Poisson, negative binomial, OLS with
# Newey-West errors, AR(1) errors), leaving out the COVID-affected reporting year 2021
# (April 2020 to March 2021), and modelling counts or rates. Estimates are % changes in the
# level at the first year in force (for OLS and AR(1), the change as a share of the
# counterfactual).

# %%
covid_options = ("none", "2021", "2020+2021") if spec.exclude_2020 else ("none", "2021")
default_spec = {"start_year": spec.start_year, "family": spec.family, "covid_excluded": "none",
                "scale": "rate", "launch_time": times[focus]}
curve = specification_curve(series, events, focus, covid=covid_options, default=default_spec)
fig = words.plot_speccurve(curve)
plt.show()

# %%
by_choice = pd.concat([
    curve.fitted.groupby(col)["percent"].agg(["median", "min", "max", "count"])
    .rename_axis("value").reset_index().assign(choice=col)
    for col in ("start_year", "launch_time", "family", "covid_excluded", "scale")],
    ignore_index=True)[["choice", "value", "median", "min", "max", "count"]]
display(by_choice.round(1))
display(Markdown(words.speccurve_summary(curve)))

# %% [markdown]
# ## Breaks the data find on their own
#
# With no dates given, a least-squares segmentation (Bai-Perron style, dynamic programming) splits
# the log rate per 10,000 children into regimes with their own level and trend; the number of
# breaks is chosen by BIC (and checked by a sequential sup-F test with simulated critical values).
# Dashed lines mark the declared events; each regime needs at least three years, so a change in
# the last two years cannot show here.

# %%
log_rate = pd.Series(np.log(series["rate_per_10000"].to_numpy(float)),
                     index=series["year"].astype(int).to_numpy())
breaks = detect_breaks(log_rate, max_breaks=3, model="trend", criterion="bic",
                       return_result=True)
breaks_supf = detect_breaks(log_rate, max_breaks=3, model="trend", criterion="supf",
                            n_sim=spec.n_simulations, seed=spec.seed)
ax = words.plot_breaks(log_rate, breaks, times,
                       ylabel=f"log rate per 10,000 ({outcome.replace('_', ' ')})")
plt.show()

# %%
comparison = breaks_vs_events(breaks.labels, times)
display(comparison)
display(Markdown(words.breaks_reading(breaks.labels, comparison)
                 + f" The sup-F test places breaks at: {breaks_supf or 'none'}."))

# %% [markdown]
# ## When will we know? Power and the minimum detectable effect
#
# Series are simulated from the trend, dispersion and autocorrelation fitted to the years before
# the headline event, with a level change of each size from the first year (or month) in force,
# and the declared model is refitted to each. Monthly series are the annual model spread over
# months, with month-to-month autocorrelation `rho_monthly` (an assumption: no public monthly
# data exist) and noise scaled so that a year's average varies as much as the annual figures do.

# %%
pre_model = fit_pre_period(analysis_data, before=times[focus], outcome="count", time="year",
                           offset="population")
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
# Series shaped like these (annual n = 16; monthly n = 180) are simulated with **no** true
# change, and each inference method the project offers is fitted with a level and slope change
# at a dummy date. A well-calibrated method reports a significant change about 5% of the time
# and its 95% intervals contain the truth about 95% of the time. Negative binomial is fitted
# replicate by replicate with `fit_its` (slower), on a third of the replicates.

# %%
calibration = calibration_table(pre_model, **simulation)
defaults = recommend_defaults(calibration)
display(words.calibration_summary(calibration))
display(Markdown(
    f"{spec.n_simulations} simulations per method ({calibration.loc[calibration['method'] == 'negbin', 'n_sim'].min()} "
    "for negative binomial). " + words.calibration_reading(calibration, defaults)
    + f" Recommended defaults: annual **{defaults['annual']}**, monthly **{defaults['monthly']}**."))

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
