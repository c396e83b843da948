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
# # The route into care: where along the pathway did the change appear?
#
# An early-help programme that works shows first at the front door (fewer referrals, fewer
# children in need) and only then in fewer children entering care; a change of thresholds or of
# recording moves the later stages without the earlier ones. This page applies the same designs
# as the care-entry question, stage by stage, to the authority's official figures for the
# analysis' primary event, and sets spend on children looked after beside them as context.

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_path = None  # set by the runner: where this notebook's estimates go

# %%
from IPython.display import Markdown

from helpers import spec as specs
from helpers.core.records import save_extra, save_records
from helpers.models.pathway import fit_pathway, spend_context
from helpers.present import charts
from helpers.present import pathway as words
from helpers.present.tables import Table

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
pathway = fit_pathway(spec)
Markdown(f"**{spec.la_name}**, reporting years {spec.start_year} to {spec.end_year}. Each stage "
         f"is modelled against its own trend (quasi-Poisson, population offset, every declared "
         f"event) and against {pathway.comparator_label}; the change is read at "
         f"**{spec.event.title}**.")

# %% [markdown]
# ## The pathway over time
# Rates per 10,000 children for each stage, the authority against its comparator. Dashed lines
# mark the declared events.

# %%
words.plot_funnel(pathway, charts.event_marks(spec.events));

# %% [markdown]
# ## Where the change appears

# %% tags=["headline"]
reading = words.reading(pathway, spec.event.title)
Markdown(reading)

# %%
Table(words.changes_table(pathway),
      caption=f"{spec.la_name}: each stage in the last two years, and its level change after "
              f"{spec.event.title} (rate ratios: 1 = no change)")

# %% [markdown]
# ## Cost context
# Section 251 spend on children looked after, per child per week, against the comparator
# authorities. This is about the council's finances, not about whether a programme worked.

# %%
spend = spend_context(spec)
words.plot_spend(spend, spec.la_name, pathway.comparator_label);

# %%
Markdown(words.spend_reading(spend, spec.la_name))

# %%
if results_path:
    save_records(pathway.to_records(analysis=spec.analysis, notebook="08_pathway", la=spec.la),
                 results_path)
    save_extra({"text": "**The pathway.** " + reading}, results_path, "reading")
