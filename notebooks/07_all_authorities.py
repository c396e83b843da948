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
analysis = "stoke-on-trent"
la = "Stoke-on-Trent"
start_year = 2014
end_year = None
family = "quasipoisson"
events = [
    {"name": "inadequate_2019", "title": "Ofsted judged services inadequate", "date": "2019-02-04", "effects": ["level", "slope"]},
    {"name": "strategies_2020", "title": "Room to Grow, Early Help and Permanence strategies", "date": "2020-10-01", "effects": ["level", "slope"]},
    {"name": "family_matters", "title": "Family Matters launched", "date": "2024-03-01", "effects": ["level"]},
]
measure = "starts"
event_date = None  # None: the analysis' focus event; "latest": the latest year against its own trend
results_path = None

# %%
from IPython.display import Markdown

from helpers import data, national, plotting
from helpers.core import timeline
from helpers.core.records import save_records
from helpers.views import Table

plotting.setup_style()
area = data.resolve_la(la)
panel = data.load_panel()
published = panel[(panel["measure"] == measure) & panel["count"].notna()]
last_year = int(published["year"].max()) if end_year is None else end_year
event = national.choose_event(events, event_date, last_year)
model = national.batch_family(family)
table = None
if event["date"] is not None:
    table = national.league_table(panel, measure=measure, event_date=event["date"], family=model,
                                  start_year=start_year, end_year=end_year)
latest = national.league_table(panel, measure=measure, event_date="latest", family=model,
                               start_year=start_year, end_year=end_year)
funnel = national.funnel_data(panel, measure=measure, year=last_year)
Markdown(f"Outcome: {national.MEASURE_WORDS[measure]}. Event compared: {event['title']}"
         + (f" ({event['date']}, first full reporting year "
            f"{timeline.reporting_year_label(int(table['event_year'].iloc[0]))})" if table is not None else "")
         + f". Model: {model}, reporting years {start_year} to {last_year}, fitted to "
         f"{latest['la_code'].nunique()} authorities at once.")

# %% [markdown]
# ## Level change at the event, every authority

# %%
if table is not None:
    national.plot_league(table, "level", highlight=area.la_code,
                         title=f"Level change at {event['name']}: every authority (95% intervals)");

# %%
if table is not None and "slope" in set(table["effect"]):
    national.plot_league(table, "slope", highlight=area.la_code,
                         title=f"Trend change after {event['name']}: every authority (ratio per year)");

# %%
if table is not None:
    display(Table(national.league_view(table, area.la_code),
                  caption=f"League table at {event['name']}: largest and smallest level changes, "
                          f"and {area.la_name}",
                  note="Rate ratios against each authority's own pre-event trend; 1 = no change."))

# %% [markdown]
# ## The latest year against each authority's own trend

# %%
national.plot_league(latest, "level", highlight=area.la_code,
                     title=f"{timeline.reporting_year_label(int(latest['event_year'].iloc[0]))} "
                           "against each authority's earlier trend");

# %% [markdown]
# ## Funnel plot of the latest year

# %%
national.plot_funnel(funnel, highlight=area.la_code);

# %% [markdown]
# ## Reading

# %%
Markdown(national.reading(table, latest, funnel, area.la_code, area.la_name, event, measure))

# %% [markdown]
# The full league table (every authority, level and trend change with 95% intervals) is saved
# with this report as `07_all_authorities_league_table.csv`.

# %%
if results_path:
    chosen = table if table is not None else latest
    save_records(national.la_records(chosen, area.la_code, event["name"], measure,
                                     analysis=analysis, notebook="07_all_authorities", la=la),
                 results_path)
    national.write_league_table(chosen, "07_all_authorities_league_table.csv")
