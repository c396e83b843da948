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
# # Interrupted time series: did the trend change after each event?
#
# For each outcome (children starting to be looked after, looked after on 31 March, ceasing)
# this notebook fits one segmented regression to the authority's yearly counts, with the
# population of children as exposure and the impact model declared in the parameters before the
# data were seen: a level change and/or a change of trend from each event's first full reporting
# year. It shows the fitted trend against the counterfactual (the pre-existing trend continued),
# the estimates, diagnostics and a plain-English reading. A single series cannot rule out other
# causes arriving at the same time; the comparative designs address that.

# %% tags=["parameters"]
analysis = "stoke-on-trent"
la = "Stoke-on-Trent"
start_year = 2014
end_year = None
outcomes = ["starts", "cla_31_march", "ceased"]
family = "quasipoisson"
events = [
    {"name": "inadequate_2019", "title": "Ofsted judged services inadequate", "date": "2019-02-04", "effects": ["level", "slope"]},
    {"name": "strategies_2020", "title": "Room to Grow, Early Help and Permanence strategies", "date": "2020-10-01", "effects": ["level", "slope"]},
    {"name": "family_matters", "title": "Family Matters launched", "date": "2024-03-01", "effects": ["level"]},
]
results_path = None

# %%
from IPython.display import Markdown

from helpers import data, plotting, views
from helpers.core.records import save_records

plotting.setup_style()
area = data.resolve_la(la)
fits = views.fit_outcomes(area.la_code, outcomes, events, family=family,
                          start_year=start_year, end_year=end_year)
first = next(iter(fits.values()))
Markdown(f"{first.impact_model_text()} Model: {family}, reporting years "
         f"{start_year} to {int(first.counterfactual['time'].max())}.")

# %% [markdown]
# ## Children starting to be looked after

# %%
if "starts" in fits:
    fits["starts"].plot(title=f"{area.la_name}: children starting to be looked after");

# %%
Markdown(fits["starts"].summary()) if "starts" in fits else None

# %% [markdown]
# ## Children looked after on 31 March

# %%
if "cla_31_march" in fits:
    fits["cla_31_march"].plot(title=f"{area.la_name}: children looked after on 31 March");

# %%
Markdown(fits["cla_31_march"].summary()) if "cla_31_march" in fits else None

# %% [markdown]
# ## Children ceasing to be looked after

# %%
if "ceased" in fits:
    fits["ceased"].plot(title=f"{area.la_name}: children ceasing to be looked after");

# %%
Markdown(fits["ceased"].summary()) if "ceased" in fits else None

# %% [markdown]
# ## All estimates
# Level changes are rate ratios (0.85 = 15% below the pre-existing trend at the event); trend
# changes are ratios per year. An interval including 1 means the data cannot tell a change from
# no change.

# %% tags=["headline"]
effects = views.its_effects_table(fits)
clear = effects[~effects["reading"].str.startswith("no clear")]
Markdown(
    f"Of {len(effects)} estimated changes for {area.la_name}, {len(clear)} "
    f"{'has an interval that excludes' if len(clear) == 1 else 'have intervals that exclude'} "
    "no change"
    + (": " + "; ".join(f"{row['outcome']} after {row['event']} ({row['effect']} "
                        f"{row['estimate (95% CI)']}), {row['reading']}"
                        for row in clear.to_dict("records")) if len(clear) else "")
    + "."
)

# %%
views.Table(effects, caption=f"{area.la_name}: single-series ITS estimates ({family})")

# %% [markdown]
# ## Diagnostics
# Dispersion above 1 means more year-to-year variation than a Poisson model allows (the
# quasi-Poisson intervals widen accordingly); Durbin-Watson near 2 and a Breusch-Godfrey p-value
# above 0.05 mean no strong autocorrelation left in the residuals.

# %%
views.Table(views.diagnostics_table(fits), caption="Model diagnostics by outcome")

# %%
notes = sorted({w for res in fits.values() for w in res.warnings})
Markdown("**Caveats from the fits**\n\n" + views.markdown_list(notes)) if notes else None

# %%
if results_path:
    records = [rec for outcome, res in fits.items()
               for rec in res.to_records(analysis=analysis, notebook="03_its", la=la)]
    save_records(records, results_path)
