"""The segmented count model fitted for every area x measure in one vectorised call.

`fit_many` stacks every series on a common time grid and runs iteratively reweighted least squares
(IRLS, Newton's method for the canonical log link) for all of them at once with numpy `einsum` and a
batched solve, instead of looping over statsmodels. Missing or suppressed counts get weight zero, so
series of different lengths share one array. Each series gets its own quasi-Poisson dispersion
(Pearson chi-squared / residual degrees of freedom) and t intervals, so the estimates are those of
`helpers.models.its.fit_its` run one series at a time (checked to 1e-8 in tests/test_its_batch.py).

The design matrix is the ITS engine's own (`helpers.models.design`): intercept, trend, and for each
intervention a level step (1 from its first in-force time on, optional phase-in and lag) and a
slope term (time since it came into force, 0 before), plus optional seasonal harmonics;
log(offset) enters with coefficient 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import special

from helpers.core import vocab
from helpers.core.errors import CareTrendsError
from helpers.core.records import EFFECT_COLUMNS, make_record
from helpers.models.design import design_columns, is_event_column

#: Families `fit_many` can batch (log link); the others need per-series optimisers: use `fit_its`.
BATCH_FAMILIES = vocab.BATCH_FAMILIES


def irls_poisson(X: np.ndarray, y: np.ndarray, offset: np.ndarray, mask: np.ndarray,
                 *, tol: float = 1e-10, max_iter: int = 100):
    """Poisson log-link IRLS for S series at once.

    X: (T, p) shared design or (S, T, p); y, offset, mask: (S, T). Rows with mask False carry no
    weight. Returns beta (S, p), the unscaled covariance inv(X'WX) (S, p, p), mu (S, T),
    iterations (S,) and a converged flag (S,). Series whose X'WX is singular get NaN.

    With a shared design every cross-product is one matrix product: X'WX for all series is
    W (S, T) @ [x_t x_t'] (T, p*p), X'Wz is (W z) @ X. Each iteration works only on the series
    still active, so the cost falls as series converge.
    """
    shared = X.ndim == 2
    S, T = y.shape
    p = X.shape[-1]
    w_mask = mask.astype(float)
    y0 = np.where(mask, y, 0.0)
    # statsmodels' Poisson start: mu = (y + mean(y)) / 2, so both land on the same optimum fast.
    mean_y = (y0 * w_mask).sum(1, keepdims=True) / np.maximum(w_mask.sum(1, keepdims=True), 1)
    # (Floored so an all-zero series, whose MLE does not exist, fails quietly rather than noisily.)
    mu = np.where(mask, np.maximum((y0 + mean_y) / 2.0, 1e-3), 1.0)
    eta = np.log(mu)
    beta = np.full((S, p), np.nan)
    converged = np.zeros(S, dtype=bool)
    iterations = np.zeros(S, dtype=int)

    if shared:
        XX = (X[:, :, None] * X[:, None, :]).reshape(T, p * p)  # rows: vec(x_t x_t')
        XT = np.ascontiguousarray(X.T)

        def xtwx(weights, rows=slice(None)):
            return _matmul_by_rows(weights, XX).reshape(len(weights), p, p)

        def xtwv(weights, v, rows=slice(None)):
            return _matmul_by_rows(weights * v, X)

        def linpred(b, rows=slice(None)):
            return _matmul_by_rows(b, XT)
    else:
        def xtwx(weights, rows=slice(None)):
            return np.einsum("stp,st,stq->spq", X[rows], weights, X[rows], optimize=True)

        def xtwv(weights, v, rows=slice(None)):
            return np.einsum("stp,st->sp", X[rows], weights * v, optimize=True)

        def linpred(b, rows=slice(None)):
            return np.einsum("stp,sp->st", X[rows], b)

    # Singular designs (e.g. no observed point after an intervention) cannot be estimated. The
    # rank of X' diag(mask) X depends only on which points are observed: one check per pattern.
    if shared:
        packed = np.ascontiguousarray(np.packbits(mask, axis=1))  # one key per row pattern
        keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, which = np.unique(keys, return_index=True, return_inverse=True)
        rank = np.linalg.matrix_rank(xtwx(w_mask[first]))[which]
    else:
        rank = np.linalg.matrix_rank(xtwx(w_mask))
    active = (rank == p) & (w_mask.sum(1) >= p)
    # Degenerate series (all zeros, empty segments) may overflow; they end up not converged.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for it in range(1, max_iter + 1):
            # Every series while all are active (views, no copies); then only those still active.
            if active.all():
                rows = slice(None)
            else:
                rows = np.flatnonzero(active)
                if not len(rows):
                    break
            m = mu[rows]
            W = w_mask[rows] * m
            z = eta[rows] - offset[rows] + (y0[rows] - m) / m
            new_beta = _solve_each(xtwx(W, rows), xtwv(W, z, rows))
            # (the first step compares with NaN: never done)
            done = (np.abs(new_beta - beta[rows]) <= tol * (1.0 + np.abs(new_beta))).all(1)
            beta[rows] = new_beta
            iterations[rows] = it
            e = linpred(new_beta, rows) + offset[rows]
            m = np.exp(e)
            eta[rows], mu[rows] = e, m
            finite = np.isfinite(m).all(1) & np.isfinite(new_beta).all(1)
            converged[rows] = done & finite
            active[rows] = ~done & finite
    # Covariance at the optimum (weights from the final mu).
    A = xtwx(w_mask * mu)
    ok = converged & np.isfinite(A).all((1, 2))
    cov = np.full((S, p, p), np.nan)
    if ok.any():
        cov[ok] = np.linalg.inv(A[ok])
    beta = np.where(ok[:, None], beta, np.nan)
    mu = np.where(ok[:, None], mu, np.nan)
    return beta, cov, mu, iterations, ok


#: Largest m * n * k of one matrix product here: OpenBLAS runs a product of that size or less on
#: one thread. Above it, it hands the work to every core, which for these thin products costs more
#: than it saves and, on a busy machine, can make one call a hundred times slower.
_SINGLE_THREAD_PRODUCT = 1 << 18


def _matmul_by_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B computed in blocks of A's rows small enough to stay on one thread (same numbers)."""
    m, k = A.shape
    block = max(1, _SINGLE_THREAD_PRODUCT // max(1, k * B.shape[1]))
    if m <= block:
        return A @ B
    out = np.empty((m, B.shape[1]))
    for i in range(0, m, block):
        np.matmul(A[i:i + block], B, out=out[i:i + block])
    return out


def _as_float(column: pd.Series) -> np.ndarray:
    """A column as floats, missing values (pd.NA too) as NaN."""
    if isinstance(column.dtype, np.dtype):
        return column.to_numpy().astype(float, copy=False)
    return column.to_numpy(dtype=float, na_value=np.nan)


def _factorize_sorted(column: pd.Series):
    """pd.factorize(column, sort=True): codes (-1 where missing) into the sorted distinct values,
    by factorising in order of appearance and ranking the (few) distinct values."""
    codes, uniques = column.array.factorize()
    order = uniques.argsort()
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    rank[-1] = -1  # code -1 (missing) stays -1
    return rank[codes], uniques.take(order)


def _solve_each(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched solve of A x = b; a numerically singular system gives NaN for that series only."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.full(b.shape, np.nan)
        for s in range(len(b)):
            try:
                out[s] = np.linalg.solve(A[s], b[s])
            except np.linalg.LinAlgError:
                pass
        return out


@dataclass(eq=False, repr=False)
class _Fitted:
    """What one batch fit computed, as (series, ...) arrays: the tables are made from these."""

    key_values: dict  # key -> (S,) values, series in groupby(keys, sort=True) order
    time: str
    grid: np.ndarray  # (T,) common time grid
    X: np.ndarray  # (T, p) design on the grid
    names: list  # design column names
    y: np.ndarray  # (S, T) outcome, NaN where missing
    mask: np.ndarray  # (S, T) used in the fit
    log_off: np.ndarray  # (S, T) log offset (0 where masked)
    beta: np.ndarray  # (S, p) coefficients, log scale
    se: np.ndarray  # (S, p) standard errors (dispersion-scaled)
    mu: np.ndarray  # (S, T) fitted means
    n_obs: np.ndarray
    df_resid: np.ndarray
    scale: np.ndarray  # dispersion
    deviance: np.ndarray
    pearson: np.ndarray
    iterations: np.ndarray
    ok: np.ndarray  # converged and estimable
    use_t: bool
    ci_level: float


@dataclass(eq=False, repr=False)  # eq/repr would compare whole frames
class ManyResult:
    """Every series' segmented model: `effects` (one row per series x intervention x effect, with
    the series keys first and then EFFECT_COLUMNS), `coefficients` (log scale, with standard
    errors), `diagnostics` (one row per series: n, dispersion, deviance, converged) and `fitted`
    (long: keys, time, observed, fitted, counterfactual). Each table is made from the fitted
    arrays when first read (a caller that needs only the coefficients pays for nothing else)."""

    design = "its_segmented_batch"

    keys: list
    settings: dict  # what was fitted: family, interventions, effects, design columns...
    arrays: _Fitted

    def _key_arrays(self) -> dict:
        # Text columns: each distinct value converted once, then repeated by position (pandas
        # would otherwise infer the type of every repeated value again).
        return {key: pd.Series(v).array for key, v in self.arrays.key_values.items()}

    @cached_property
    def effects(self) -> pd.DataFrame:
        f = self.arrays
        S = len(f.beta)
        alpha = 1.0 - f.ci_level
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = f.beta / f.se
        if f.use_t:
            dof = np.where(f.df_resid > 0, f.df_resid, np.nan)[:, None]
            # scipy.special's t distribution directly: scipy.stats' argument checks cost more
            # than the fit itself here.
            with np.errstate(invalid="ignore"):
                q = special.stdtrit(dof, 1 - alpha / 2)
                p_value = 2 * special.stdtr(dof, -np.abs(stat))
        else:
            q = np.full((S, 1), special.ndtri(1 - alpha / 2))
            p_value = 2 * special.ndtr(-np.abs(stat))
        low, high = f.beta - q * f.se, f.beta + q * f.se
        effect_cols = [(i, n) for i, n in enumerate(f.names) if is_event_column(n)]
        k = len(effect_cols)
        idx = [i for i, _ in effect_cols]
        labels = pd.Series([n.rsplit(":", 1)[0] for _, n in effect_cols]
                           + [n.rsplit(":", 1)[1] for _, n in effect_cols] + ["ratio"]).array
        series_of_row = np.repeat(np.arange(S), k)
        effect_of_row = np.tile(np.arange(k), S)
        return pd.DataFrame({
            **{key: v.take(series_of_row) for key, v in self._key_arrays().items()},
            "intervention": labels.take(effect_of_row),
            "effect": labels.take(effect_of_row + k),
            "estimate": np.exp(f.beta[:, idx]).ravel(),
            "ci_low": np.exp(low[:, idx]).ravel(),
            "ci_high": np.exp(high[:, idx]).ravel(),
            "p_value": p_value[:, idx].ravel(),
            "scale": labels.take(np.full(S * k, 2 * k)),
        })

    @cached_property
    def coefficients(self) -> pd.DataFrame:
        f = self.arrays
        return pd.DataFrame({**self._key_arrays(),
                             **{n: f.beta[:, i] for i, n in enumerate(f.names)},
                             **{f"se:{n}": f.se[:, i] for i, n in enumerate(f.names)}})

    @cached_property
    def diagnostics(self) -> pd.DataFrame:
        f = self.arrays
        return pd.DataFrame({**self._key_arrays(), "n_obs": f.n_obs, "df_resid": f.df_resid,
                             "dispersion": f.scale, "deviance": np.where(f.ok, f.deviance, np.nan),
                             "pearson_chi2": np.where(f.ok, f.pearson, np.nan),
                             "iterations": f.iterations, "converged": f.ok})

    @cached_property
    def fitted(self) -> pd.DataFrame:
        """Fitted values and the no-intervention counterfactual (intervention terms off)."""
        f = self.arrays
        S, T = f.y.shape
        pre_cols = [i for i, n in enumerate(f.names) if not is_event_column(n)]
        cf_eta = _matmul_by_rows(f.beta[:, pre_cols],
                                 np.ascontiguousarray(f.X[:, pre_cols].T)) + f.log_off
        return pd.DataFrame({
            **{key: v.take(np.repeat(np.arange(S), T)) for key, v in self._key_arrays().items()},
            f.time: np.tile(f.grid, S),
            "observed": np.where(f.mask, f.y, np.nan).ravel(),
            "fitted": np.where(f.mask, f.mu, np.nan).ravel(),
            "counterfactual": np.where(f.mask, np.exp(cf_eta), np.nan).ravel(),
        })

    def for_series(self, **key_values) -> pd.DataFrame:
        """One series' effects table, e.g. `res.for_series(la_code="861", measure="starts")`."""
        rows = self.effects
        for key, value in key_values.items():
            rows = rows[rows[key] == value]
        return rows[EFFECT_COLUMNS].reset_index(drop=True)

    def to_records(self, **context) -> list[dict]:
        """results.json records, one per series x effect (`la`, `outcome` from the keys)."""
        return [make_record(analysis=context.get("analysis"), notebook=context.get("notebook"),
                            la=row.get("la_code", context.get("la")),
                            outcome=row.get("measure", context.get("outcome")),
                            event=row["intervention"], design=context.get("design", self.design),
                            effect=row["effect"], scale=row["scale"], estimate=row.get("estimate"),
                            ci_low=row.get("ci_low"), ci_high=row.get("ci_high"),
                            p_value=row.get("p_value"))
                for row in self.effects.to_dict("records")]


def fit_many(panel: pd.DataFrame, *, measures: Iterable[str] | None = vocab.LOOKED_AFTER_MEASURES,
             interventions: Mapping[str, float], effects=vocab.EFFECTS, family: str = "quasipoisson",
             outcome: str = "count", time: str = "year", offset: str | None = "population",
             keys: Iterable[str] = ("la_code", "measure"), harmonics: int = 0, period: int = 12,
             season: str | None = None, start: float | None = None, end: float | None = None,
             phase_in=None, lag=None, ci_level: float = 0.95, use_t: bool | None = None,
             tol: float = 1e-10, max_iter: int = 100) -> ManyResult:
    """Fit the segmented count model to every series in `panel` in one vectorised call.

    panel: long data, one row per series x time (e.g. `helpers.data.load_panel()` restricted to
    local authorities). Series are identified by `keys` (default LA code x measure); `measures`
    keeps only those measures (None: keep all). `interventions` maps a name to its first in-force
    time in `time` units (the same for every series); `effects` is a tuple for all interventions
    or a dict name -> tuple. Rows with a missing or non-positive offset or a missing outcome are
    left out of that series, exactly as a per-series fit would drop them.

    family "quasipoisson" (default): Poisson estimates, dispersion = Pearson chi2 / (n - p) per
    series, t intervals on n - p degrees of freedom; "poisson": dispersion 1, normal intervals.
    Level effects are rate ratios (exp of the coefficient), slope effects ratios per time unit.
    `phase_in`, `lag`, `harmonics`, `period`, `season` and `ci_level` mean what they mean in
    `fit_its`. Series that cannot be estimated (too few points, no data after an event, all
    zeros) are kept with NaN estimates and `diagnostics.converged` False.
    """
    if family not in BATCH_FAMILIES:
        raise CareTrendsError(
            f"fit_many batches only {' and '.join(BATCH_FAMILIES)} models, not {family!r}; "
            "use fit_its for other families one series at a time")
    if not interventions:
        raise CareTrendsError("fit_many needs at least one intervention, e.g. {'event': 2021}")
    keys = list(keys)
    needed = keys + [time, outcome] + ([offset] if offset else []) + ([season] if season else [])
    missing = [c for c in needed if c not in panel.columns]
    if missing:
        raise CareTrendsError(f"the panel has no column(s) {missing}; pass a long panel with them "
                              "(e.g. helpers.data.load_panel())")
    # Stack the series on one time grid, (series, time) arrays with missing cells masked out,
    # straight from the columns: row selection, grouping and placement are numpy index
    # operations on column arrays (no filtered copies of the frame, no groupby).
    keep = np.ones(len(panel), dtype=bool)
    times = _as_float(panel[time])
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times <= end
    # Each key column factorised with its distinct values sorted, so that series come out in the
    # order groupby(keys, sort=True) gives (rows with a missing key, e.g. England and regions
    # without an LA code, get code -1 and are left out).
    factors = {key: _factorize_sorted(panel[key])
               for key in dict.fromkeys(keys + (["measure"] if measures is not None
                                                and "measure" in panel.columns else []))}
    if measures is not None and "measure" in factors:
        codes, uniques = factors["measure"]
        wanted = set(measures)
        keep &= np.array([u in wanted for u in uniques] + [False])[codes]  # -1: last, False
    key_codes, key_uniques = [], []
    for key in keys:
        codes, uniques = factors[key]
        keep &= codes >= 0
        key_codes.append(codes)
        key_uniques.append(uniques)
    if not keep.any():
        raise CareTrendsError("no rows left to fit; check the measures and the start/end times")
    combined = np.zeros(int(keep.sum()), dtype=np.int64)
    for codes, uniques in zip(key_codes, key_uniques):
        combined = combined * len(uniques) + codes[keep]
    ids, s_pos = np.unique(combined, return_inverse=True)
    key_values = {}
    for key, uniques in reversed(list(zip(keys, key_uniques))):
        key_values[key] = np.asarray(uniques.take(ids % len(uniques)).to_numpy())
        ids = ids // len(uniques)
    key_values = {key: key_values[key] for key in keys}
    grid, t_pos = np.unique(times[keep], return_inverse=True)
    S, T = len(key_values[keys[0]]), len(grid)
    if np.bincount(s_pos * T + t_pos, minlength=S * T).max() > 1:
        raise CareTrendsError(f"the panel has more than one row per {keys + [time]}; "
                              "filter it to one geography level first")

    def column(name):
        return _as_float(panel[name])[keep]

    y = np.full((S, T), np.nan)
    y[s_pos, t_pos] = column(outcome)
    if offset:
        expo = np.full((S, T), np.nan)
        expo[s_pos, t_pos] = column(offset)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_off = np.log(expo)
    else:
        log_off = np.zeros((S, T))
    mask = np.isfinite(y) & np.isfinite(log_off) & (y >= 0)
    log_off = np.where(mask, log_off, 0.0)

    # Seasonal harmonics as fit_its adds them: monthly data only, of the season column if given,
    # else of the month index modulo the period.
    season_values = None
    if harmonics and (season or grid.max() < 1900):
        if season:
            season_values = np.full(T, np.nan)
            season_values[t_pos] = column(season)
        else:
            season_values = np.mod(grid, period)
    design = design_columns(grid, interventions, effects, harmonics, period, season_values,
                            phase_in=phase_in, lag=lag)
    X = design.to_numpy()
    p = X.shape[1]

    beta, cov_unscaled, mu, iterations, ok = irls_poisson(X, y, log_off, mask, tol=tol,
                                                          max_iter=max_iter)
    n_obs = mask.sum(1)
    df_resid = n_obs - p
    y0 = np.where(mask, y, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = np.where(mask, (y0 - mu) ** 2 / mu, 0.0).sum(1)
        dev_terms = (np.where(mask & (y0 > 0), y0 * np.log(y0 / mu), 0.0)
                     - np.where(mask, y0 - mu, 0.0))
        deviance = 2.0 * dev_terms.sum(1)
        if family == "quasipoisson":
            scale = np.where(df_resid > 0, pearson / df_resid, np.nan)
        else:
            scale = np.ones(S)
    if use_t is None:
        use_t = family == "quasipoisson"
    se = np.sqrt(np.einsum("spp->sp", cov_unscaled) * scale[:, None])
    names = list(design.columns)
    settings = {"family": family, "interventions": dict(interventions), "effects": effects,
                "phase_in": phase_in, "lag": lag, "time": time, "outcome": outcome,
                "offset": offset, "harmonics": harmonics, "period": period,
                "ci_level": ci_level, "use_t": use_t, "design": names}
    arrays = _Fitted(key_values=key_values, time=time, grid=grid, X=X, names=names, y=y,
                     mask=mask, log_off=log_off, beta=beta, se=se, mu=mu, n_obs=n_obs,
                     df_resid=df_resid, scale=scale, deviance=deviance, pearson=pearson,
                     iterations=iterations, ok=ok, use_t=use_t, ci_level=ci_level)
    return ManyResult(keys, settings, arrays)
