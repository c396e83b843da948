"""The sensitivity evidence about the primary event, gathered into one set of numbers (the
summary quotes it) and into results.json records. `helpers.present.checks.headline_text` words it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from helpers.checks.placebo import PlaceboResult
from helpers.checks.speccurve import SpecCurveResult
from helpers.core.records import clean_number, make_record


def fragility(stats: Mapping) -> str | None:
    """'robust' | 'fragile' | 'consistent in direction but not in significance' (declared rule:
    robust = every specification the same sign and at least 80% significant; fragile = the signs
    split worse than 80/20 or fewer than half significant)."""
    if not stats.get("n_specs"):
        return None
    same_sign = stats["share_negative"] in (0.0, 1.0)
    if same_sign and stats["share_significant"] >= 0.8:
        return "robust"
    if (0.2 < stats["share_negative"] < 0.8) or stats["share_significant"] < 0.5:
        return "fragile"
    return "consistent in direction but not in significance"


def summarise(spec: SpecCurveResult | None = None, placebo: PlaceboResult | None = None,
              power: pd.DataFrame | None = None, months: int | None = None, *,
              months_half: int | None = None, event: str, event_title: str | None = None,
              months_horizon: int = 60, calibration_defaults: Mapping | None = None) -> dict:
    """How fragile the event's estimate is and how many months of monthly data would settle it:
    the numbers the summary quotes (JSON-able)."""
    out: dict = {"event": event, "event_title": event_title or event,
                 "months_horizon": months_horizon}
    if spec is not None:
        s = spec.stats()
        out.update({k: clean_number(v, 4) if isinstance(v, float) else v for k, v in s.items()})
        out["fragility"] = fragility(s)
    if placebo is not None:
        rows = placebo.summary_table
        rows = rows[(rows["event"] == event) & (rows["effect"] == "level")]
        if len(rows):
            r = rows.iloc[0]
            out.update(placebo_rank_p=clean_number(r["rank_p"], 4), n_placebo=int(r["n_placebo"]),
                       n_placebo_as_large=int(r["n_placebo"] - r["n_smaller"]))
    if power is not None:
        for row in power.to_dict("records"):
            out[f"mde_{row['frequency']}_{row['n_post']}_percent"] = clean_number(
                row["mde_percent"], 2)
    out["months_to_detect"] = months
    out["months_to_detect_half"] = months_half
    if calibration_defaults:
        out["calibrated_defaults"] = dict(calibration_defaults)
    return jsonable(out)


def jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return clean_number(float(value), 6)
    return value


def records(*, placebo: PlaceboResult | None = None, spec: SpecCurveResult | None = None,
            power: pd.DataFrame | None = None, calibration: pd.DataFrame | None = None,
            head: Mapping | None = None, outcome: str | None = None, **context) -> list[dict]:
    """results.json records for the sensitivity notebook.

    "placebo_in_time" and "specification_curve": see their results' `to_records`. "power_mde":
    estimate = MDE (% fall), effect "level_mde_<frequency>_<n>". "calibration": estimate =
    false-positive rate with est -+ 1.96 Monte Carlo SE as the interval, effect
    "<effect>_<model>_<setting>_<method>". "sensitivity_headline": estimate =
    pre-declared % change, ci = range over specifications, p_value = the pre-declared analysis' p.
    "power_months": effect "months_to_detect" / "months_to_detect_half", estimate = months of
    monthly data for 80% power at the current estimate's size / half of it (None: beyond).
    """
    ctx = {key: context.get(key) for key in ("analysis", "notebook", "la")}
    ctx["outcome"] = outcome
    out = []
    if placebo is not None:
        out.extend(placebo.to_records(**ctx))
    if spec is not None:
        out.extend(spec.to_records(**ctx))
    if power is not None:
        out.extend(make_record(event=context.get("event"), design="power_mde",
                               effect=f"level_mde_{r['frequency']}_{r['n_post']}",
                               estimate=r["mde_percent"], scale="percent", **ctx)
                   for r in power.to_dict("records"))
    if calibration is not None:
        out.extend(make_record(event=None, design="calibration",
                               effect=(f"{r['effect']}_{r['model'].replace('+', '_')}_"
                                       f"{r['setting']}_{r['method']}"),
                               estimate=r["false_positive_rate"],
                               ci_low=r["false_positive_rate"] - 1.96 * r["fpr_mc_se"],
                               ci_high=r["false_positive_rate"] + 1.96 * r["fpr_mc_se"],
                               scale="proportion", **ctx)
                   for r in calibration.to_dict("records"))
    if head is not None:
        out.append(make_record(event=head.get("event"), design="sensitivity_headline",
                               effect="level", estimate=head.get("default_percent"),
                               ci_low=head.get("min_percent"), ci_high=head.get("max_percent"),
                               p_value=head.get("default_p_value"), scale="percent", **ctx))
        for key in ("months_to_detect", "months_to_detect_half"):
            out.append(make_record(event=head.get("event"), design="power_months", effect=key,
                                   estimate=head.get(key), scale="months", **ctx))
    return out
