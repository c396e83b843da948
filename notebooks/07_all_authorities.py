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
# # Every authority at once: is this council's change unusual?
#
# A change in one council's trend means more when we know how other councils moved at the same
# time. This notebook fits the same segmented count model (quasi-Poisson, child population as
# exposure, level and trend change from the event's first full reporting year) to every English
# local authority in one vectorised call, ranks them in a league table, shows where this
# analysis' authority sits, and places every authority's latest rate on a funnel plot with the
# 95% and 99.8% control limits public-health analysts use. Every authority gets the same single
# event, so this authority's figures differ from the ITS notebook's, which declares all of its
# own events. Authorities whose boundaries changed (e.g. Dorset and BCP in 2019,
# Northamptonshire in 2021) are left out of the league table: their series join different places.

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_path = None  # set by the runner: where this notebook's estimates go

# %%
from IPython.display import Markdown

from helpers import data, spec as specs
from helpers.core import timeline, vocab
from helpers.core.records import save_records
from helpers.models import national
from helpers.present import charts
from helpers.present import national as words
from helpers.present.tables import Table

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
area = data.resolve_la(spec.la_code)
measure, last_year = spec.primary_outcome, spec.end_year
event = {"name": spec.event.name, "title": spec.event.title,
         "date": spec.event.counts_from.isoformat()}
model = national.batch_family(spec.family)
panel = data.load_panel()
table = national.league_table(panel, measure=measure, event_date=event["date"], family=model,
                              effects=spec.event.effects, start_year=spec.start_year,
                              end_year=spec.end_year)
latest = national.league_table(panel, measure=measure, event_date="latest", family=model,
                               start_year=spec.start_year, end_year=spec.end_year)
funnel = national.funnel_data(panel, measure=measure, year=last_year)
Markdown(f"Outcome: {vocab.MEASURE_INFO[measure].phrase}. Event compared: {event['title']}"
         + (f" ({event['date']}, first full reporting year "
            f"{timeline.reporting_year_label(int(table['event_year'].iloc[0]))})" if table is not None else "")
         + f". Model: {model}, reporting years {spec.start_year} to {last_year}, fitted to "
         f"{latest['la_code'].nunique()} authorities at once.")

# %% [markdown]
# ## Level change at the event, every authority

# %%
if table is not None:
    words.plot_league(table, "level", highlight=area.la_code,
                      title=f"Level change after {event['title']}: every authority "
                            "(95% intervals)");

# %%
if table is not None and "slope" in set(table["effect"]):
    words.plot_league(table, "slope", highlight=area.la_code,
                      title=f"Trend change after {event['title']}: every authority "
                            "(ratio per year)");

# %%
if table is not None:
    display(Table(words.league_view(table, area.la_code),
                  caption=f"League table after {event['title']}: largest and smallest level "
                          f"changes, and {area.la_name}",
                  note="Rate ratios against each authority's own pre-event trend; 1 = no change."))

# %% [markdown]
# ## The latest year against each authority's own trend

# %%
words.plot_league(latest, "level", highlight=area.la_code,
                  title=f"{timeline.reporting_year_label(int(latest['event_year'].iloc[0]))} "
                           "against each authority's earlier trend");

# %% [markdown]
# ## Funnel plot of the latest year

# %%
words.plot_funnel(funnel, highlight=area.la_code);

# %% [markdown]
# ## Reading

# %%
Markdown(words.reading(table, latest, funnel, area.la_code, area.la_name, event, measure))

# %% [markdown]
# The full league table (every authority, level and trend change with 95% intervals) is saved
# with this report as `07_all_authorities_league_table.csv`.

# %%
if results_path:
    chosen = table if table is not None else latest
    save_records(national.la_records(chosen, area.la_code, event["name"], measure,
                                     analysis=spec.analysis, notebook="07_all_authorities",
                                     la=spec.la),
                 results_path)
    words.write_league_table(chosen, "07_all_authorities_league_table.csv")
