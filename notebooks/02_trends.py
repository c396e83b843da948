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
# # Trends since 2010: how the authority compares
#
# Before asking whether a programme changed anything, this notebook shows what happened: the
# number and rate of children looked after, starting and ceasing for the authority since 2010,
# against its statistical neighbours, its region and England; where it ranks among all English
# authorities each year; and whether the number in care grew because more children came in or
# fewer left.

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}

# %%
from IPython.display import Markdown

from helpers import data, spec as specs
from helpers.present import charts, overview
from helpers.present.tables import Table

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
area = data.resolve_la(spec.la_code)
marks = charts.event_marks(spec.events)
stock = overview.comparison_rates(area.la_code, "cla_31_march", start_year=2010)
starts = overview.comparison_rates(area.la_code, "starts", start_year=2010)
Markdown(overview.rates_reading(stock, area))

# %% [markdown]
# ## Rates per 10,000 children
# Statistical neighbours are DfE's 2021 children's-services neighbours, pooled (their counts
# summed over their populations). Dashed lines mark the events declared for this analysis.

# %%
overview.plot_comparison(stock, area.la_name, "cla_31_march", marks);

# %%
overview.plot_comparison(starts, area.la_name, "starts", marks);

# %%
Table(stock.round(1), caption="Children looked after on 31 March per 10,000 children")

# %%
Table(starts.round(1), caption="Children starting to be looked after per 10,000 children")

# %% [markdown]
# ## Rank among all English authorities

# %%
rank = overview.rank_by_year(area.la_code, "cla_31_march", start_year=2010)
display(Table(rank, caption=f"{area.la_name}: rank by rate of children looked after "
                                  "on 31 March (1 = highest rate in England)"))
Markdown(overview.rank_reading(rank, area.la_name))

# %% [markdown]
# ## Growth decomposition: starts against exits
# The change in the number looked after over a year equals the children who started minus those
# who ceased, plus a small remainder ("other": revisions between editions and children counted
# in a different year's return).

# %%
decomposition = overview.growth_decomposition(area.la_code, start_year=2010)
overview.plot_decomposition(decomposition, area.la_name, marks);

# %%
Table(decomposition, caption=f"{area.la_name}: change in children looked after, "
                                   "starts and exits by year")

# %%
split = min(v for v in marks.values()) + 0.5
Markdown(overview.decomposition_reading(decomposition, area.la_name, split_year=int(split)))
