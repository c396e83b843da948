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
# # Comparisons: did England, the region or similar councils change at the same time?
#
# A single series cannot rule out national shocks (COVID, court backlogs, the 2023 reforms). This
# notebook sets the authority beside others in three ways and shows them next to the
# single-series result: a **controlled interrupted time series** against one comparator series
# (the difference between the authority's and the comparator's changes, and the authority's rate
# as a ratio to the comparator's); a **difference-in-differences** and **event study** against
# every other English authority; and a **synthetic control**, a weighted mix of authorities that
# tracked the authority's rate before the event. Where they agree the finding is sturdier; where
# they disagree, the reading below says so.

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
comparator = "statistical_neighbours_2021"
exclude_donors = []
design_event = None  # name of the event for DiD and synthetic control (None: the last event)
seed = 20240301  # unused: every design here is deterministic (kept so all notebooks share parameters)
results_path = None

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown

from helpers import comparative, data, plotting, views
from helpers.core import timeline
from helpers.core.records import save_records

plotting.setup_style()
area = data.resolve_la(la)
comparisons = comparative.run_comparisons(
    area.la_code, outcomes, events, comparator=comparator, start_year=start_year,
    end_year=end_year, exclude_donors=exclude_donors, family=family, design_event=design_event)
main = comparisons[outcomes[0]]
event = main.event
Markdown(
    f"**{area.la_name}**, reporting years {start_year} to "
    f"{int(main.synth.counterfactual['time'].max())}. The controlled ITS uses every declared event "
    f"and compares with **{main.controlled.comparator_label}**. Difference-in-differences and the "
    f"synthetic control look at **{event.title}** (first full reporting year "
    f"{timeline.reporting_year_label(event.start)}) and draw on {main.synth.n_donors} other "
    "authorities with complete data, leaving out those whose boundaries changed"
    + (f" and {len(exclude_donors)} with their own programmes" if exclude_donors else "") + "."
)

# %% [markdown]
# ## Side by side
# The level change after the event from each design. The ITS designs give **rate ratios**
# (0.85 = 15% below the expected path; 1 = no change); difference-in-differences and the
# synthetic control give **differences in the rate per 10,000 children** (0 = no change), with
# intervals and p-values from placebo-in-space (the event given to every other authority in turn).

# %%
views.Table(comparative.side_by_side(comparisons),
            caption=f"{area.la_name}: level change after {event.title}, by design")

# %% tags=["headline"]
Markdown("\n\n".join(f"**{comparative.MEASURE_LABELS[o][:1].upper()}{comparative.MEASURE_LABELS[o][1:]}.** "
                     f"{comparative.reading(c, area.la_name)}" for o, c in comparisons.items()))

# %% [markdown]
# ## Controlled interrupted time series
# The authority's counts and the comparator's in one count model: the authority's extra change
# in level and trend at each event, beyond the comparator's change at the same time.

# %%
main.controlled.plot();

# %%
Markdown(main.controlled.summary())

# %%
views.Table(comparative.controlled_table(comparisons),
            caption=f"{area.la_name} against {main.controlled.comparator_label}: "
                    "controlled ITS estimates (rate ratios)")

# %% [markdown]
# ## Difference-in-differences and event study
# Every eligible authority, authority and year fixed effects. The event study shows the
# authority's difference from the others year by year relative to the year before the event:
# differences before the event warn that the authorities were already drifting apart.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
main.did.plot(ax=axes[0])
main.event_study.plot(ax=axes[1])
fig.tight_layout();

# %%
Markdown(main.did.summary() + "\n\n" + main.event_study.summary())

# %% [markdown]
# ## Synthetic control
# The weighted mix of authorities closest to the authority's rate in every year before the
# event; after it, the gap between the two is the estimated effect. The grey lines are the same
# gap for every other authority treated as if it had had the event.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
main.synth.plot(ax=axes[0])
main.synth.plot_gaps(ax=axes[1])
fig.tight_layout();

# %%
Markdown(main.synth.summary())

# %%
views.Table(comparative.weights_table(main.synth),
            caption=f"Synthetic {area.la_name}: donor weights (sum to 1) and leave-one-out average gap")

# %%
if results_path:
    records = [rec for c in comparisons.values()
               for rec in c.records(analysis=analysis, notebook="04_comparisons", la=la)]
    save_records(records, results_path)
