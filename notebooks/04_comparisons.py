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
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_path = None  # set by the runner: where this notebook's estimates go

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown

from helpers import spec as specs
from helpers.core import timeline, vocab
from helpers.core.records import save_records
from helpers.models.analysis import comparisons_for
from helpers.models.panel.power import mde_from_placebos
from helpers.present import charts
from helpers.present import comparative as words
from helpers.present.tables import Table

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
comparisons = comparisons_for(spec)
main = comparisons[spec.primary_outcome]
event = main.event
Markdown(
    f"**{spec.la_name}**, reporting years {spec.start_year} to "
    f"{int(main.synth.counterfactual['time'].max())}. The controlled ITS uses every declared event "
    f"and compares with **{main.controlled.comparator_label}**. Difference-in-differences and the "
    f"synthetic control look at **{event.title}** (first full reporting year "
    f"{timeline.reporting_year_label(int(event.start))}) and draw on {main.synth.n_donors} other "
    "authorities with complete data, leaving out those whose boundaries changed"
    + (f" and {len(spec.exclude_donors)} with their own programmes" if spec.exclude_donors
       else "") + "."
)

# %% [markdown]
# ## Side by side
# The level change after the event from each design. The ITS designs give **rate ratios**
# (0.85 = 15% below the expected path; 1 = no change); difference-in-differences and the
# synthetic control give **differences in the rate per 10,000 children** (0 = no change), with
# intervals and p-values from placebo-in-space (the event given to every other authority in turn).

# %%
Table(words.side_by_side(comparisons),
      caption=f"{spec.la_name}: level change after {event.title}, by design")

# %% tags=["headline"]
Markdown("\n\n".join(f"**{vocab.measure_label(o)}.** {words.reading(c, spec.la_name)}"
                     for o, c in comparisons.items()))

# %% [markdown]
# ## Controlled interrupted time series
# The authority's counts and the comparator's in one count model: the authority's extra change
# in level and trend at each event, beyond the comparator's change at the same time.

# %%
words.plot(main.controlled);

# %%
Markdown(words.summary(main.controlled))

# %%
Table(words.controlled_table(comparisons),
      caption=f"{spec.la_name} against {main.controlled.comparator_label}: "
              "controlled ITS estimates (rate ratios)")

# %% [markdown]
# ## Difference-in-differences and event study
# Every eligible authority, authority and year fixed effects. The event study shows the
# authority's difference from the others year by year relative to the year before the event:
# differences before the event warn that the authorities were already drifting apart.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
words.plot(main.did, ax=axes[0])
words.plot(main.event_study, ax=axes[1])
fig.tight_layout();

# %%
Markdown(words.summary(main.did) + "\n\n" + words.summary(main.event_study))

# %% [markdown]
# ## Synthetic control
# The weighted mix of authorities closest to the authority's rate in every year before the
# event; after it, the gap between the two is the estimated effect. The grey lines are the same
# gap for every other authority treated as if it had had the event.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
words.plot(main.synth, ax=axes[0])
words.plot_gaps(main.synth, ax=axes[1])
fig.tight_layout();

# %%
Markdown(words.summary(main.synth) + "\n\n**How far to trust it.** "
         + " ".join(words.synthetic_control_checks(main.synth)) + "\n\n"
         + words.summary(main.synth_ridge))

# %% [markdown]
# ## Synthetic difference-in-differences
# Donor authorities and pre-event years are both weighted, so that the weighted donors move in
# parallel with the authority before the event (the design the national Family Hubs evaluation
# uses); the standard error comes from giving the event to each donor in turn.

# %%
Markdown(words.summary_sdid(main.sdid, mde_from_placebos(main.sdid.placebo_estimates)))

# %%
Table(words.weights_table(main.synth),
      caption=f"Synthetic {spec.la_name}: donor weights (sum to 1) and leave-one-out average gap")

# %%
if results_path:
    records = [rec for c in comparisons.values()
               for rec in c.records(analysis=spec.analysis, notebook="04_comparisons", la=spec.la)]
    save_records(records, results_path)
