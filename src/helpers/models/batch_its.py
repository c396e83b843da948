"""Many analyses' single-series ITS from batch fits: `its_for` for every LA at once.

    fits, errors = its_for_many(specs)   # {analysis: {outcome: ITSResult}}, {analysis: message}

The analyses that declare the same model (outcomes, events' times and effects, family, years)
are fitted together by `helpers.models.batch.fit_many` (one vectorised IRLS for every series),
and each series comes back as an `ITSResult`, so it is read, worded and drawn exactly like a
single fit: the same estimates, intervals, counterfactual, impact and diagnostics as
`its_for(spec)` (checked to 1e-9 in tests/test_national_batch.py). A series the batch cannot
estimate (too few points, nothing after an event, a zero population), or a family `fit_many`
does not batch, is fitted alone by `fit_its`, which gives the one-line error the single fit
would. Numbers only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from helpers import data
from helpers.core.errors import CareTrendsError
from helpers.models.analysis import its_for
from helpers.models.batch import BATCH_FAMILIES, ManyResult, fit_many
from helpers.models.design import design_columns, parse_interruptions
from helpers.models.its import ITSResult
from helpers.spec import Analysis

TIME = "year"
OFFSET = "population"


def model_key(spec: Analysis) -> str:
    """What the batch shares between analyses: everything `its_for` fits except the LA (event
    titles are words, not model, and may name the LA)."""
    kwargs = spec.interventions("annual")
    kwargs.pop("titles")
    return json.dumps({"outcomes": list(spec.outcomes), "family": spec.family,
                       "start_year": spec.start_year, "end_year": spec.end_year,
                       "primary_event": spec.primary_event, **kwargs},
                      sort_keys=True, default=list)


def its_for_many(specs: Sequence[Analysis], panel: pd.DataFrame | None = None
                 ) -> tuple[dict[str, dict[str, ITSResult]], dict[str, str]]:
    """`its_for(spec)` for every spec, fitted in batches. Returns ({analysis: {outcome:
    ITSResult}}, {analysis: one-line error}) for the analyses that could not be fitted."""
    panel = data.load_panel() if panel is None else panel
    groups: dict[str, list[Analysis]] = {}
    for spec in specs:
        groups.setdefault(model_key(spec), []).append(spec)
    fits: dict[str, dict[str, ITSResult]] = {}
    errors: dict[str, str] = {}
    for group in groups.values():
        batched = _fit_group(group, panel) if group[0].family in BATCH_FAMILIES else {}
        for spec in group:
            if spec.analysis in batched:
                fits[spec.analysis] = batched[spec.analysis]
                continue
            try:  # alone: the family is not batched, or a series needs the single fit's checks
                fits[spec.analysis] = its_for(spec)
            except CareTrendsError as exc:
                errors[spec.analysis] = str(exc)
    return fits, errors


def _series_rows(panel: pd.DataFrame, codes: list[str], spec: Analysis) -> pd.DataFrame:
    """The rows `its_for` fits (helpers.models.analysis.annual_counts) for every LA at once."""
    rows = panel[panel["la_code"].isin(codes) & panel["measure"].isin(spec.outcomes)]
    rows = rows[rows["year"] >= spec.start_year]
    if spec.end_year:
        rows = rows[rows["year"] <= spec.end_year]
    rows = rows.dropna(subset=["count", OFFSET])
    return rows[["la_code", "measure", TIME, "count", OFFSET]].reset_index(drop=True)


def _fit_group(specs: list[Analysis], panel: pd.DataFrame) -> dict[str, dict[str, ITSResult]]:
    """Analyses sharing one model: one `fit_many`, each estimable series as an ITSResult."""
    first = specs[0]
    kwargs = first.interventions("annual")
    rows = _series_rows(panel, sorted({s.la_code for s in specs}), first)
    if rows.empty:
        return {}
    try:
        many = fit_many(rows, measures=first.outcomes, interventions=kwargs["interventions"],
                        effects=kwargs["effects"], phase_in=kwargs["phase_in"],
                        lag=kwargs["lag"], family=first.family, time=TIME, offset=OFFSET,
                        start=first.start_year, end=first.end_year)
    except CareTrendsError:  # e.g. a year given twice for one LA: the single fits say where
        return {}
    series = _SeriesTable(many, rows)
    out = {}
    for spec in specs:
        results = {}
        for outcome in spec.outcomes:
            result = series.its_result(spec, outcome)
            if result is None:
                break
            results[outcome] = result
        else:
            out[spec.analysis] = results
    return out


class _SeriesTable:
    """A batch fit's series as arrays: design, observed, fitted, offset, covariance."""

    def __init__(self, many: ManyResult, rows: pd.DataFrame):
        settings = many.settings
        fitted = many.fitted
        self.keys = [tuple(k) for k in many.diagnostics[many.keys].itertuples(index=False)]
        self.index = {key: i for i, key in enumerate(self.keys)}
        S = len(self.keys)
        self.grid = fitted[TIME].to_numpy(float)[: len(fitted) // S]
        T = len(self.grid)
        self.y = fitted["observed"].to_numpy(float).reshape(S, T)
        self.mu = fitted["fitted"].to_numpy(float).reshape(S, T)
        self.mask = np.isfinite(self.y) & np.isfinite(self.mu)
        self.design = design_columns(self.grid, settings["interventions"], settings["effects"],
                                     phase_in=settings["phase_in"], lag=settings["lag"])
        self.beta = many.coefficients[settings["design"]].to_numpy(float)
        self.diagnostics = many.diagnostics
        X = self.design.to_numpy(float)
        weights = np.where(self.mask, self.mu, 0.0)
        # inv(X'WX) at the optimum: the unscaled covariance fit_many's intervals come from.
        info = np.einsum("tp,st,tq->spq", X, weights, X, optimize=True)
        ok = self.diagnostics["converged"].to_numpy(bool)
        self.cov = np.full(info.shape, np.nan)
        if ok.any():
            self.cov[ok] = np.linalg.inv(info[ok])
        self.family = settings["family"]
        self.offsets = {(r.la_code, r.measure, float(r.year)): float(r.population)
                        for r in rows.itertuples(index=False)}

    def its_result(self, spec: Analysis, outcome: str) -> ITSResult | None:
        """The series as `fit_its` would return it; None when only the single fit can say
        what is wrong with it (not estimated, too few points, a non-positive population or a
        negative count)."""
        s = self.index.get((spec.la_code, outcome))
        if s is None:
            return None
        diag = self.diagnostics.iloc[s]
        keep = self.mask[s]
        t = self.grid[keep]
        y = self.y[s, keep]
        population = np.array([self.offsets[(spec.la_code, outcome, v)] for v in t])
        X = self.design[keep].reset_index(drop=True)
        n, k = X.shape
        if not bool(diag["converged"]) or n - k < 1 or (population <= 0).any() or (y < 0).any():
            return None
        mu = self.mu[s, keep]
        kwargs = spec.interventions("annual")
        pearson = float(np.sum((y - mu) ** 2 / mu))
        dispersion = pearson / (n - k)
        scale = dispersion if self.family == "quasipoisson" else 1.0
        years = t.astype(int) if np.all(t == np.round(t)) else t
        frame = pd.DataFrame({outcome: y, TIME: years, OFFSET: population})
        fit = dict(model=None, alpha=None, params=self.beta[s].copy(), cov=self.cov[s] * scale,
                   df_resid=n - k, dist="t" if self.family == "quasipoisson" else "z",
                   dispersion=dispersion, resid=(y - mu) / np.sqrt(mu))
        events = parse_interruptions(kwargs["interventions"], kwargs["effects"],
                                     kwargs["phase_in"], kwargs["lag"], kwargs["titles"])
        return ITSResult(
            fit=fit, design_matrix=X, data=frame, y=y, outcome=outcome, time=TIME,
            offset=OFFSET, family=self.family, frequency="annual", events=events,
            counterfactual_for=spec.primary_event or events[-1].name,
            log_offset=np.log(population), dropped=(), synthetic=False, seasonality=None)
