"""care-trends: did a council's programme change the trend of children entering care?

Submodules (import the ones you need):
    data         the tidy official panel (LA x reporting year x measure) and reference data
    its          interrupted-time-series engine (segmented count models)
    comparative  controlled ITS, difference-in-differences, synthetic control
    sensitivity  placebo-in-time, specification curve, structural breaks, power
    ssda903      a council's own SSDA903 episode files -> monthly series; synthetic stand-in
    report       papermill runner and HTML publishing
"""

__version__ = "0.1.0"
