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
# # The answer so far
#
# <!-- The block below answers the analysis' question: what happened, the change against the
# earlier trend, how sure we can be and when we will know more. The evidence and the methods
# follow it. -->

# %% tags=["parameters"]
analysis = "stoke-on-trent"  # an analysis in notebooks/params/; the runner passes its validated spec
overrides = {}  # to try a change in JupyterLab, e.g. {"la": "Staffordshire"}
results_dir = None  # set by the runner: where the other notebooks' estimates are

# %% [markdown]
# <!-- nbval: the cells below depend on which results exist (reports/ is built by
# `care-trends run`), so their outputs are not compared; they must still run without error. -->

# %% tags=["headline", "nbval-ignore-output"]
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from helpers import data, spec as specs
from helpers.core import vocab
from helpers.core.io import atomic_write_json
from helpers.core.records import load_extra
from helpers.models.analysis import its_for
from helpers.present import answer as answers, charts, summary, targets
from helpers.present.tables import Table, markdown_list

charts.setup_style()
spec = specs.load_analysis(analysis, overrides)
records = summary.load_results(spec.analysis, results_dir)
sensitivity_headline = (load_extra(results_dir, "06_sensitivity", "headline")
                        if results_dir else None)
fits = its_for(spec)
primary_series = data.annual_series(spec.la_code, spec.primary_outcome)
event_year = spec.event.first_time("annual")
tracked = [(t, targets.track_target(t, data.annual_series(spec.la_code, t.outcome), event_year))
           for t in spec.targets]
answer = answers.build_answer(spec, fits, records, sensitivity_headline, primary_series,
                              target=tracked[0][1] if tracked else None)
if results_dir:  # published beside results.json: the index card and every page show it
    atomic_write_json(Path(results_dir).parent / "answer.json", answer.to_json())
answer

# %%
if not tracked:
    display(Markdown(f"{spec.la_name}'s analysis declares no numerical target."))
for target, projection in tracked:
    display(Markdown(f"## The target: {target.description or vocab.measure_label(target.outcome)}"))
    target_series = data.annual_series(spec.la_code, target.outcome)
    targets.plot_target(projection, target_series, spec.la_name)
    plt.show()
    display(charts.data_link(targets.chart_table(projection, target_series),
                             f"target_{target.outcome}.csv", write=bool(results_dir)))
    display(Markdown(f"**{projection.verdict_words}.** {projection.sentence} The projection "
                     "continues the trend of the recent years; it is not a forecast of what "
                     "the council's plan will do next."))

# %% [markdown]
# ## The evidence, design by design
# Each design estimates the change in the level of the primary outcome when the event took
# effect, with its own weaknesses; agreement across them is what makes a finding credible.
# Rate ratios: 1 means no change, 0.59 means 41% fewer than the earlier trend predicted.
# Differences are in children per 10,000; an interval that includes no change means the
# design cannot tell a change from no change.

# %% tags=["nbval-ignore-output"]
missing = summary.missing_results(records)
display(Markdown(
    (summary.findings_text(records, spec.la_name, outcome=spec.primary_outcome, effect="level",
                           titles=spec.titles) if len(records) else
     f"No published estimates were found for {spec.la_name} yet. Run `care-trends run "
     f"{analysis}` to execute the analysis; this summary then reads its results.")
    + (f"\n\nNo results from {', '.join(missing)} (not run, failed, or nothing estimable): "
       "the findings leave those designs out." if missing and len(records) else "")
    + "\n\n" + summary.multiple_testing_text(records, spec.event.title, spec.primary_outcome)))
Table(summary.evidence_table(records, outcome=spec.primary_outcome, effect="level",
                             titles=spec.titles),
      caption=f"{spec.la_name}: {vocab.measure_label(spec.primary_outcome).lower()}, "
              "change in level by design and event (official data only)")

# %% [markdown]
# ## How sure can anyone be, and when will we know?
# From the sensitivity page: how much the primary event's estimate moves across reasonable
# analysis choices and earlier placebo dates, and how much data would settle it.

# %% tags=["nbval-ignore-output"]
Markdown(sensitivity_headline["text"] if sensitivity_headline else
         "The sensitivity analyses have not been run with this summary (run `care-trends run "
         f"{analysis}`), so how fragile the estimates are is not quoted here.")

# %% [markdown]
# ## Where along the route into care, and what judgements usually bring
# From the pathway page (referrals, children in need, child protection, care entry, stage by
# stage) and the national page on councils judged inadequate.

# %% tags=["nbval-ignore-output"]
context = [load_extra(results_dir, stem, "reading") if results_dir else None
           for stem in ("08_pathway", "10_inadequate_national")]
Markdown("\n\n".join(c["text"] for c in context if c) or
         "The pathway and national pages have not been run with this summary.")

# %% [markdown]
# ## Caveats

# %% tags=["nbval-ignore-output"]
Markdown(markdown_list(summary.caveats(spec, len(fits[spec.primary_outcome].impact)
                                       if spec.primary_outcome in fits else 1)))

# %% [markdown]
# ## Method demonstration on SYNTHETIC data
# The monthly page shows what a council's own monthly records would add, using made-up
# (SYNTHETIC) records shaped like the official figures. These estimates say nothing about what
# happened and take no part in the answer above.

# %% tags=["nbval-ignore-output"]
demo = summary.evidence_table(records, outcome=spec.primary_outcome, effect="level",
                              titles=spec.titles, synthetic=True)
(Table(demo, caption="SYNTHETIC demonstration only: monthly estimates from made-up records")
 if len(demo) else Markdown("No SYNTHETIC demonstration was run with this summary."))
