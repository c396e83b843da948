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
# # Data overview: what the figures are and where they come from
#
# Every later notebook rests on three official yearly counts for the local authority: children
# **starting** to be looked after during the year, children **ceasing** to be looked after, and
# children **looked after on 31 March**. This notebook says where each number comes from, which
# years are covered for the chosen authority and where the gaps are, and sets the official figures
# beside the numbers the council has reported itself, so the two are never confused.

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
Markdown(overview.area_intro(area, spec.start_year))

# %% [markdown]
# ## What the data are
#
# - **Source.** The Department for Education's *Children looked after in England* statistics,
#   built from the SSDA903 return every council makes each year; populations are ONS mid-year
#   estimates of children aged under 18. Crown copyright, Open Government Licence v3.0.
# - **Years** are reporting years ending 31 March: 2025 means 1 April 2024 to 31 March 2025.
# - **Counts** for 2010-2017 come from the Statistical First Release underlying data as first
#   published; from 2018 from the newest Explore Education Statistics release holding the year.
# - **Rates per 10,000 children** are published from 2015 (31 March) and 2018 (starts, ceased);
#   earlier rates are computed here from published counts and ONS populations, and 2011-2012 use
#   a population interpolated between published estimates. Each row says which.

# %%
Table(overview.coverage_table(area.la_code),
            caption=f"{area.la_name}: coverage of the official series")

# %%
Table(overview.provenance_table(area.la_code),
            caption=f"{area.la_name}: children looked after on 31 March, year by year, "
                    "with the source of each number")

# %% [markdown]
# ## Official and council-reported figures
#
# Councils also report their own, more recent counts (committee papers, press releases). They
# are useful for seeing where the numbers are heading but are **not official statistics**: they
# may count on a different date or basis and are not revised. They are shown here, labelled, and
# never enter a model.

# %%
council = overview.official_vs_council(area.la_code)
if council.empty:
    display(Markdown(overview.no_council_figures(area.la_name)))
else:
    display(Table(council, caption=overview.COUNCIL_CAPTION.format(la_name=area.la_name)))
    overview.plot_official_vs_council(area.la_code);

# %%
Markdown(overview.boundary_text(area))
