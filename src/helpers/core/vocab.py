"""The project's one vocabulary: measures (outcomes), model families, comparators, designs,
effects, the default seed, and the human label of each. Every other module reads these; none
keeps a copy (CausalPy's `constants.py` plays the same part).

Adding an outcome: add a `Measure` here and teach the data layer to build it. Adding a design:
add a `Design` here, its estimator under `helpers.models` and its sentences under
`helpers.present`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from helpers.core.errors import CareTrendsError

#: Seed of every simulation and random draw unless an analysis declares its own.
DEFAULT_SEED = 20240301


# --------------------------------------------------------------------------------------------
# Measures (outcomes)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    key: str
    label: str        # chart/table label: "Children starting to be looked after"
    noun: str         # subject of a sentence: "starts"
    counts: str | None  # what an averted amount counts ("children entered care"); None = not children
    stock: bool       # a count on a date (sums over periods are child-years), not a flow
    source: str = "panel"  # "panel": the official annual panel; "ssda903": a council's own extract
    #: Where on the pathway: "front door" | "children in need" | "child protection" |
    #: "looked after" | "cost" | "workforce".
    stage: str = "looked after"

    @property
    def phrase(self) -> str:
        """Lower-case label for the middle of a sentence."""
        return self.label[:1].lower() + self.label[1:]


_MEASURE_LIST = (
    Measure("cla_31_march", "Children looked after on 31 March",
            "children looked after on 31 March", "children were looked after on 31 March",
            stock=True, stage="looked after"),
    Measure("starts", "Children starting to be looked after", "starts", "children entered care",
            stock=False, stage="looked after"),
    Measure("ceased", "Children ceasing to be looked after", "children leaving care",
            "children left care", stock=False, stage="looked after"),
    Measure("cla_month_end", "Children in care at month end", "children in care at month end",
            "children were in care at month end", stock=True, source="ssda903", stage="looked after"),
    # The early-help pathway (issue 15). Counts of referrals and plans count events, not distinct
    # children; percentages, money and workforce rates are not counts (counts=None).
    Measure("referrals", "Referrals to children's social care", "referrals",
            "referrals were made", stock=False, stage="front door"),
    Measure("rereferrals", "Re-referrals within 12 months", "re-referrals",
            "re-referrals were made", stock=False, stage="front door"),
    Measure("rereferral_percent", "Re-referrals within 12 months (% of referrals)",
            "the re-referral percentage", None, stock=False, stage="front door"),
    Measure("referrals_not_in_need_percent", "Referrals assessed as not in need (% of referrals)",
            "the share of referrals assessed as not in need", None, stock=False, stage="front door"),
    Measure("cin_starts", "Children starting an episode of need", "children starting an episode of need",
            "children started an episode of need", stock=False, stage="children in need"),
    Measure("cin_31_march", "Children in need on 31 March", "children in need on 31 March",
            "children were in need on 31 March", stock=True, stage="children in need"),
    Measure("cpp_starts", "Child protection plans starting", "child protection plans starting",
            "child protection plans started", stock=False, stage="child protection"),
    Measure("cpp_31_march", "Children on a child protection plan on 31 March",
            "children on a child protection plan on 31 March",
            "children were on a child protection plan on 31 March", stock=True, stage="child protection"),
    Measure("cpp_subsequent", "Second or subsequent child protection plans starting",
            "second or subsequent plans", "second or subsequent plans started", stock=False,
            stage="child protection"),
    Measure("cpp_subsequent_percent", "Second or subsequent plans (% of plans starting)",
            "the share of plans that were second or subsequent", None, stock=False,
            stage="child protection"),
    Measure("lac_spend", "Spend on children looked after (section 251 outturn, £)",
            "spend on children looked after", None, stock=False, stage="cost"),
    Measure("lac_spend_per_child_week", "Spend per child looked after per week (£)",
            "spend per child looked after per week", None, stock=False, stage="cost"),
    Measure("sw_turnover_rate", "Children's social worker turnover (% FTE, year to 30 September)",
            "social worker turnover", None, stock=False, stage="workforce"),
    Measure("sw_agency_rate", "Agency children's social workers (% FTE on 30 September)",
            "the agency worker rate", None, stock=False, stage="workforce"),
)
#: Every measure, keyed; the panel's measures in the order the panel stores them.
MEASURE_INFO: dict[str, Measure] = {m.key: m for m in _MEASURE_LIST}
#: Measures in the official annual panel (an analysis' `outcomes` choose among these).
MEASURES: tuple[str, ...] = tuple(m.key for m in _MEASURE_LIST if m.source == "panel")
#: The three looked-after measures of the original panel, in the order the panel stores them.
LOOKED_AFTER_MEASURES: tuple[str, ...] = ("cla_31_march", "starts", "ceased")
#: Pathway stages in the order a child meets them.
STAGES: tuple[str, ...] = ("front door", "children in need", "child protection", "looked after",
                           "cost", "workforce")
#: The route into care, stage by stage, as counts a family meets in order: referral, an
#: episode of need, a child protection plan, becoming looked after.
PATHWAY_FLOW: tuple[str, ...] = ("referrals", "cin_starts", "cpp_starts", "starts")
#: Measures counted on a date (looked after at 31 March, at month end).
STOCK_MEASURES: tuple[str, ...] = tuple(m.key for m in _MEASURE_LIST if m.stock)
#: Outcomes in the order an analysis lists them by default (entry into care first).
DEFAULT_OUTCOMES: tuple[str, ...] = ("starts", "cla_31_march", "ceased")


def measure(key: str) -> Measure:
    """The Measure for a key; an unknown key gets a one-line error with a suggestion."""
    try:
        return MEASURE_INFO[key]
    except KeyError:
        raise CareTrendsError(suggest(key, MEASURE_INFO, "outcome")) from None


def measure_label(key: str) -> str:
    """'Children starting to be looked after' (a label for charts and tables)."""
    info = MEASURE_INFO.get(key)
    return info.label if info else str(key).replace("_", " ")


# --------------------------------------------------------------------------------------------
# Model families, effects, comparators
# --------------------------------------------------------------------------------------------
FAMILIES: tuple[str, ...] = ("poisson", "quasipoisson", "negbin", "ols", "ar1", "sarimax",
                             "ar1_bootstrap")
LOG_LINK_FAMILIES: tuple[str, ...] = ("poisson", "quasipoisson", "negbin", "ar1_bootstrap")
#: What `fit_its` fits when no family is named: quasi-Poisson on annual series; on monthly series
#: the calibrated bootstrap (quasi-Poisson rejects a true null 11-16% of the time there).
DEFAULT_FAMILY = {"annual": "quasipoisson", "monthly": "ar1_bootstrap"}
#: Families the vectorised batch fit handles.
BATCH_FAMILIES: tuple[str, ...] = ("poisson", "quasipoisson")
FAMILY_LABELS = {
    "poisson": "Poisson regression with a log-population offset",
    "quasipoisson": "quasi-Poisson regression with a log-population offset",
    "negbin": "negative binomial regression with a log-population offset",
    "ols": "linear regression with Newey-West (HAC) standard errors",
    "ar1": "linear regression with AR(1) errors (GLSAR)",
    "sarimax": "regression with ARMA errors (SARIMAX)",
    "ar1_bootstrap": ("Poisson regression with a log-population offset, intervals from a "
                      "bootstrap of autocorrelated counts"),
}

#: Short names for charts and tables.
FAMILY_SHORT = {"poisson": "Poisson", "quasipoisson": "quasi-Poisson",
                "negbin": "negative binomial", "ols": "linear, Newey-West",
                "ar1": "linear, AR(1) errors", "sarimax": "linear, ARMA errors",
                "ar1_bootstrap": "Poisson, bootstrap intervals",
                "ar1_sandwich": "Poisson, AR(1) sandwich", "naive_ols": "linear, plain errors",
                "quasipoisson_fixedb": "quasi-Poisson, fixed-b",
                "ar1_bootstrap_model_se": "Poisson, bootstrap (model SE)"}

EFFECTS: tuple[str, ...] = ("level", "slope")

COMPARATORS: tuple[str, ...] = ("statistical_neighbours_2021", "statistical_neighbours_2025",
                                "region", "england_minus_la")
COMPARATOR_LABELS = {
    "statistical_neighbours_2021": "statistical neighbours (DfE 2021)",
    "statistical_neighbours_2025": "statistical neighbours (DfE 2025)",
    "region": "the rest of its region",
    "england_minus_la": "the rest of England",
}


# --------------------------------------------------------------------------------------------
# Designs (what produced an estimate)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    key: str
    label: str
    kind: str  # "design": an estimate of the change; "check": a sensitivity of one; "context"


_DESIGN_LIST = (
    Design("its", "Single-series ITS", "design"),
    Design("controlled_its", "Controlled ITS (two groups)", "design"),
    Design("controlled_its_ratio", "Controlled ITS (ratio to comparator)", "design"),
    Design("did", "Difference-in-differences", "design"),
    Design("event_study", "Event study", "design"),
    Design("synthetic_control", "Synthetic control", "design"),
    Design("synthetic_control_ridge", "Synthetic control, ridge-augmented (robustness)", "design"),
    Design("synthetic_did", "Synthetic difference-in-differences", "design"),
    Design("synthetic_control_sdid", "Synthetic control (SDID weights)", "design"),
    Design("did_sdid", "Difference-in-differences (SDID framework)", "design"),
    Design("twfe_staggered", "Two-way fixed effects, staggered (comparison only)", "context"),
    Design("event_study_twfe", "Event study (two-way fixed effects)", "design"),
    Design("callaway_santanna", "Group-time effects (Callaway & Sant'Anna)", "design"),
    Design("synthetic_control_covariates", "Synthetic control with covariates", "design"),
    Design("its_monthly", "Monthly ITS (SSDA903), calibrated bootstrap intervals", "design"),
    # Named alternatives to the calibrated monthly default: shown with their measured sizes,
    # not counted as separate evidence (they fit the same series and over-reject).
    Design("its_monthly_quasipoisson", "Monthly ITS, quasi-Poisson (not calibrated)", "context"),
    Design("its_monthly_ar1", "Monthly ITS, AR(1) errors (not calibrated)", "context"),
    Design("national_league_table", "ITS, all-LA league table", "context"),
    Design("its_segmented_batch", "ITS, all-LA batch fit", "context"),
    Design("placebo_in_time", "Placebo in time", "check"),
    Design("specification_curve", "Specification curve", "check"),
    Design("sensitivity_headline", "Pre-declared estimate (sensitivity headline)", "check"),
    Design("power_mde", "Minimum detectable effect", "check"),
    Design("power_months", "Months to detect", "check"),
    Design("calibration", "Calibration", "check"),
)
DESIGNS: dict[str, Design] = {d.key: d for d in _DESIGN_LIST}
#: Suffix of a design key whose estimate came from SYNTHETIC (made-up) data.
SYNTHETIC_SUFFIX = "_synthetic"


def is_synthetic(design: str) -> bool:
    """Designs run on the synthetic SSDA903 stand-in (e.g. its_monthly_synthetic); NOT synthetic
    control, which is a real comparative design."""
    return str(design).endswith(SYNTHETIC_SUFFIX)


def design_label(design: str) -> str:
    """Human label of a design key ('did' -> 'Difference-in-differences')."""
    base = str(design).removesuffix(SYNTHETIC_SUFFIX)
    info = DESIGNS.get(base)
    label = info.label if info else base.replace("_", " ")
    label = label[:1].upper() + label[1:]
    if is_synthetic(design):
        label = (label.replace("(SSDA903)", "(SYNTHETIC data)") if "(SSDA903)" in label
                 else label + " (SYNTHETIC data)")
    return label


def design_kind(design: str) -> str:
    info = DESIGNS.get(str(design).removesuffix(SYNTHETIC_SUFFIX))
    return info.kind if info else "design"


# --------------------------------------------------------------------------------------------
# Suggestions for misspelt names
# --------------------------------------------------------------------------------------------
def suggest(word, choices, what: str) -> str:
    """'unknown family 'quasipoison'; did you mean 'quasipoisson'?' (or the list of choices)."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), choices, n=2, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
            else f"choose one of {', '.join(choices)}")
    return f"unknown {what} {word!r}; {hint}"
