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
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_path = None  # set by the runner: where this notebook's estimates go

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from helpers import spec as specs
from helpers.core.records import save_records
from helpers.models.analysis import its_for
from helpers.present import charts, summary
from helpers.present import its as its_words
from helpers.present.tables import Table

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
fits = its_for(spec)
first = next(iter(fits.values()))
publishing = bool(results_path)  # the runner publishes each chart's numbers beside the page
Markdown(its_words.page_intro(first, spec.family, spec.start_year, spec.event.title))

# %% [markdown]
# ## Children starting to be looked after

# %%
if "starts" in fits:
    its_words.plot(fits["starts"], title=f"{spec.la_name}: children starting to be looked after", la_name=spec.la_name)
    plt.show()
    display(charts.data_link(its_words.chart_table(fits["starts"]), f"its_starts.csv",
                             write=publishing))

# %%
Markdown(its_words.summary(fits["starts"])) if "starts" in fits else None

# %% [markdown]
# ## Children looked after on 31 March

# %%
if "cla_31_march" in fits:
    its_words.plot(fits["cla_31_march"], title=f"{spec.la_name}: children looked after on 31 March", la_name=spec.la_name)
    plt.show()
    display(charts.data_link(its_words.chart_table(fits["cla_31_march"]), f"its_cla_31_march.csv",
                             write=publishing))

# %%
Markdown(its_words.summary(fits["cla_31_march"])) if "cla_31_march" in fits else None

# %% [markdown]
# ## Children ceasing to be looked after

# %%
if "ceased" in fits:
    its_words.plot(fits["ceased"], title=f"{spec.la_name}: children ceasing to be looked after", la_name=spec.la_name)
    plt.show()
    display(charts.data_link(its_words.chart_table(fits["ceased"]), f"its_ceased.csv",
                             write=publishing))

# %%
Markdown(its_words.summary(fits["ceased"])) if "ceased" in fits else None

# %% [markdown]
# ## All estimates
# Level changes are rate ratios (0.85 = 15% below the pre-existing trend at the event); trend
# changes are ratios per year. An interval including 1 means the data cannot tell a change from
# no change.

# %% tags=["headline"]
primary = fits[spec.primary_outcome] if spec.primary_outcome in fits else first
Markdown(its_words.summary(primary).split("\n\n")[0])

# %%
effects = summary.its_effects_table(fits)
Markdown(its_words.effects_reading(effects, spec.la_name))

# %%
Table(effects, caption=f"{spec.la_name}: single-series ITS estimates ({spec.family})")

# %% [markdown]
# ## Diagnostics
# Dispersion above 1 means more year-to-year variation than a Poisson model allows (the
# quasi-Poisson intervals widen accordingly); Durbin-Watson near 2 and a Breusch-Godfrey p-value
# above 0.05 mean no strong autocorrelation left in the residuals.

# %%
Table(summary.diagnostics_table(fits), caption="Model diagnostics by outcome")

# %%
caveats = its_words.caveats(fits)
Markdown(caveats) if caveats else None

# %%
if results_path:
    records = [rec for outcome, res in fits.items()
               for rec in res.to_records(analysis=spec.analysis, notebook="03_its", la=spec.la)]
    save_records(records, results_path)
