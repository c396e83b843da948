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
# # What usually follows an inadequate judgement?
#
# Many councils have been judged inadequate by Ofsted since the current inspection framework
# (ILACS) began in 2018, at different dates. This page asks what happens, on average, to
# children entering care in the years after a council's first inadequate judgement, with a
# design made for staggered dates (Callaway & Sant'Anna 2021: each cohort of councils against
# councils not yet judged), and reads the analysis' own authority against that national pattern.

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_path = None  # set by the runner: where this notebook's estimates go

# %%
from IPython.display import Markdown

from helpers import spec as specs
from helpers.core.records import save_extra, save_records
from helpers.models.national import inadequate_event_study
from helpers.present import charts
from helpers.present import national as words

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
national, own = inadequate_event_study(spec.la_code, "starts", spec.start_year, spec.end_year)
Markdown(f"Outcome: children starting to be looked after per 10,000 children, reporting years "
         f"{spec.start_year} to {spec.end_year}; year 0 is the first full reporting year after a "
         "council's first ILACS inadequate judgement (inspection date). "
         + (f"{spec.la_name} was judged inadequate in this period; the national average below "
            "leaves it out." if own is not None else
            f"{spec.la_name} has no ILACS inadequate judgement in this period."))

# %%
words.plot_inadequate_event_study(national, own, spec.la_name);

# %% tags=["headline"]
reading = words.inadequate_reading(national, own, spec.la_name, until=spec.event.first_time(),
                                   until_title=spec.event.title)
Markdown(reading)

# %% [markdown]
# Councils judged inadequate only under the earlier inspection framework (before 2018) count
# here as not judged, and councils judged later serve as controls until their own judgement; a
# single council's own path has no reliable interval, so it is shown as points.

# %%
if results_path:
    save_records(national.to_records(analysis=spec.analysis, notebook="10_inadequate_national",
                                     la="England (councils judged inadequate)"), results_path)
    save_extra({"text": "**Inadequate judgements nationally.** " + reading}, results_path,
               "reading")
