"""Staggered adoption: Callaway & Sant'Anna (2021), "Difference-in-Differences with multiple time
periods", Journal of Econometrics 225(2): 200-230 - group-time average treatment effects
ATT(g, t) with never-treated or not-yet-treated controls, unconditional parallel trends, and
their simple, group (by cohort), dynamic (event-study) and calendar aggregations.

ATT(g, t) = E[Y_t - Y_b | G = g] - E[Y_t - Y_b | C], with base period b = g - 1 - anticipation
for t >= g and (with base_period='varying', the `did` package's default) b = t - 1 for the
pre-periods, which makes those placebo ATTs short differences. Inference uses the influence
functions the `did` R package uses (analytic, clustered by unit; aggregations include the
estimation of the group shares), or a seeded multiplier bootstrap on them (Rademacher weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.stats import norm

from helpers.core.errors import CareTrendsError
from helpers.core.vocab import DEFAULT_SEED
from helpers.models.panel.data import Panel, PanelResult, effects_frame, normal_row

CONTROL_GROUPS = ("never", "notyet")


def _att_and_if(dy, treat, C, X):
    """ATT and its influence function on the subsample treat | C: the difference of means, or
    with covariates X the outcome-regression DiD of Heckman, Ichimura & Todd (1997) as in
    DRDID::reg_did_panel (Sant'Anna & Zhao 2020), whose influence function is used here."""
    sub = treat | C
    d, y = treat[sub].astype(float), dy[sub]
    p1 = d.mean()
    if X is None:
        m1, m0 = y[d == 1].mean(), y[d == 0].mean()
        inf = np.where(d == 1, (y - m1) / p1, -(y - m0) / (1 - p1))
        return m1 - m0, inf
    Xs = X[sub]
    ctrl = d == 0
    beta = np.linalg.lstsq(Xs[ctrl], y[ctrl], rcond=None)[0]
    pred = Xs @ beta
    eta_t = np.mean(d * y) / p1
    eta_c = np.mean(d * pred) / p1
    n_sub = len(y)
    xpx_inv = np.linalg.inv((Xs * (1 - d)[:, None]).T @ Xs / n_sub)
    lin_rep = ((1 - d) * (y - pred))[:, None] * Xs @ xpx_inv
    inf_treat = (d * y - d * eta_t) / p1
    inf_ctrl = (d * pred - d * eta_c + lin_rep @ (d[:, None] * Xs).mean(axis=0)) / p1
    return eta_t - eta_c, inf_treat - inf_ctrl


def _group_time(Y, G, times, control_group, base_period, anticipation, X_by_time=None):
    """ATT(g, t) rows and the n x K influence-function matrix (the `did` package's scaling).
    `X_by_time[k]`: n x p covariate matrix (with intercept) at time index k."""
    n = len(G)
    groups = np.unique(G[G > 0])
    rows, infs = [], []
    for g in groups:
        base_post = np.flatnonzero(times + anticipation < g)
        if len(base_post) == 0:
            continue
        base_post = base_post[-1]
        for ti in range(1, len(times)):
            t = times[ti]
            if base_period == "varying" and t < g:
                base = ti - 1
            else:
                base = base_post
                if ti == base:
                    continue
            if control_group == "never":
                C = G == 0
            else:
                C = (G == 0) | ((G > max(t, times[base]) + anticipation) & (G != g))
            treat = G == g
            if C.sum() == 0:
                continue
            dy = Y[:, ti] - Y[:, base]
            sub = treat | C
            n_sub = sub.sum()
            # covariates from the earlier of the two periods, as the did package's panel2cs2
            att, inf_sub = _att_and_if(dy, treat, C, None if X_by_time is None
                                       else X_by_time[min(ti, base)])
            inf = np.zeros(n)
            inf[sub] = inf_sub * n / n_sub  # the did package's rescaling to the full sample
            infs.append(inf)
            rows.append(dict(group=g, time=t, base=times[base], att=att, post=t >= g,
                             n_treated=int(treat.sum()), n_control=int(C.sum())))
    return pd.DataFrame(rows), np.column_stack(infs)


def _weight_if(keep: np.ndarray, pg: np.ndarray, group_of: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Influence of estimating the group shares pg (the did package's `wif`)."""
    ind = np.column_stack([(G == group_of[k]).astype(float) - pg[k] for k in keep])
    s = pg[keep].sum()
    if1 = ind / s
    if2 = ind.sum(axis=1, keepdims=True) @ (pg[keep] / s ** 2)[None, :]
    return if1 - if2


@dataclass(kw_only=True, eq=False, repr=False)
class CallawaySantAnnaResult(PanelResult):
    """`group_time`: ATT(g, t) with SEs; `dynamic`, `by_group`, `calendar`: aggregations with
    SEs; `effects`: the overall ('level', the simple aggregation), then the dynamic effects
    ('event -3' ... 'event +3') and the cohort effects ('group 2004')."""

    group_time: pd.DataFrame
    influence: np.ndarray
    control_group: str
    base_period: str
    bootstrap: int
    seed: int
    level: float = 0.95

    def __post_init__(self):
        self._effects = None

    @property
    def effects(self) -> pd.DataFrame:
        if self._effects is None:
            rows = [self._row("level", *self.overall)]
            for _, r in self.dynamic.iterrows():
                rows.append(self._row(f"event {int(r.event_time):+d}", r.estimate, r.se))
            for _, r in self.by_group.iterrows():
                rows.append(self._row(f"group {r.group:g}", r.estimate, r.se))
            self._effects = effects_frame(rows)
        return self._effects

    @effects.setter
    def effects(self, value):
        self._effects = value

    def _row(self, effect, estimate, se):
        return normal_row(self.event, effect, estimate, se, level=self.level)

    # -- aggregation machinery -------------------------------------------------------------
    @cached_property
    def _shares(self):
        G = self._G
        gt = self.group_time
        pg_group = {g: np.mean(G == g) for g in gt["group"].unique()}
        return np.array([pg_group[g] for g in gt["group"]])

    @cached_property
    def _G(self):
        return np.nan_to_num(self.panel.start.to_numpy(float), nan=0.0)

    def _se(self, inf: np.ndarray) -> float:
        n = inf.shape[0]
        if not self.bootstrap:
            return float(np.sqrt(np.mean(inf ** 2) / n))
        boot = self._multipliers @ inf / n
        q75, q25 = np.quantile(boot, [0.75, 0.25])
        return float((q75 - q25) / (norm.ppf(0.75) - norm.ppf(0.25)))  # did's robust IQR scale

    @cached_property
    def _multipliers(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.choice([-1.0, 1.0], size=(self.bootstrap, len(self._G)))

    def _aggregate(self, keep: np.ndarray) -> tuple[float, np.ndarray]:
        """Share-weighted average of the ATT(g, t) in `keep`, with its influence function."""
        pg = self._shares
        att = self.group_time["att"].to_numpy()
        w = pg[keep] / pg[keep].sum()
        inf = self.influence[:, keep] @ w
        inf = inf + _weight_if(keep, pg, self.group_time["group"].to_numpy(), self._G) @ att[keep]
        return float(att[keep] @ w), inf

    @cached_property
    def overall(self) -> tuple[float, float]:
        """The simple aggregation: share-weighted mean of every post-treatment ATT(g, t)."""
        keep = np.flatnonzero(self.group_time["post"].to_numpy())
        est, inf = self._aggregate(keep)
        return est, self._se(inf)

    @cached_property
    def dynamic(self) -> pd.DataFrame:
        """Event-study aggregation by event time e = t - g, and (attribute `dynamic_overall`)
        the mean of the e >= 0 effects."""
        gt = self.group_time
        e = (gt["time"] - gt["group"]).to_numpy()
        rows, infs = [], {}
        for k in np.unique(e):
            est, inf = self._aggregate(np.flatnonzero(e == k))
            infs[k] = inf
            rows.append(dict(event_time=int(k), estimate=est, se=self._se(inf)))
        pos = [k for k in infs if k >= 0]
        inf_all = np.mean([infs[k] for k in pos], axis=0)
        self.__dict__["dynamic_overall"] = (float(np.mean([r["estimate"] for r in rows
                                                            if r["event_time"] >= 0])),
                                            self._se(inf_all))
        return pd.DataFrame(rows)

    @cached_property
    def by_group(self) -> pd.DataFrame:
        """Average post-treatment effect of each adoption cohort; attribute `group_overall` is
        their share-weighted mean."""
        gt = self.group_time
        post = gt["post"].to_numpy()
        groups = np.sort(gt["group"].unique())
        att = gt["att"].to_numpy()
        rows, ests, infs = [], [], []
        for g in groups:
            keep = np.flatnonzero(post & (gt["group"].to_numpy() == g))
            est = float(att[keep].mean())
            inf = self.influence[:, keep].mean(axis=1)
            rows.append(dict(group=g, estimate=est, se=self._se(inf)))
            ests.append(est)
            infs.append(inf)
        pgg = np.array([np.mean(self._G == g) for g in groups])
        w = pgg / pgg.sum()
        inf = np.column_stack(infs) @ w + _weight_if(np.arange(len(groups)), pgg, groups, self._G) @ np.array(ests)
        self.__dict__["group_overall"] = (float(np.dot(ests, w)), self._se(inf))
        return pd.DataFrame(rows)

    @cached_property
    def dynamic_overall(self) -> tuple[float, float]:
        self.dynamic  # noqa: B018 - computes and stores it
        return self.__dict__["dynamic_overall"]

    @cached_property
    def group_overall(self) -> tuple[float, float]:
        self.by_group  # noqa: B018
        return self.__dict__["group_overall"]

    @cached_property
    def calendar(self) -> pd.DataFrame:
        """Average effect among the cohorts treated by each calendar time."""
        gt = self.group_time
        post = gt["post"].to_numpy()
        rows, infs = [], []
        for t in np.sort(gt.loc[post, "time"].unique()):
            keep = np.flatnonzero(post & (gt["time"].to_numpy() == t))
            est, inf = self._aggregate(keep)
            infs.append(inf)
            rows.append(dict(time=t, estimate=est, se=self._se(inf)))
        self.__dict__["calendar_overall"] = (float(np.mean([r["estimate"] for r in rows])),
                                             self._se(np.mean(infs, axis=0)))
        return pd.DataFrame(rows)

    @cached_property
    def calendar_overall(self) -> tuple[float, float]:
        """Mean of the calendar-time effects."""
        self.calendar  # noqa: B018
        return self.__dict__["calendar_overall"]


def fit_callaway_santanna(panel: Panel, *, control_group: str = "never",
                          base_period: str = "varying", anticipation: int = 0,
                          covariates: list[str] | tuple[str, ...] = (),
                          bootstrap: int = 0, seed: int = DEFAULT_SEED, event: str = "treatment",
                          level: float = 0.95) -> CallawaySantAnnaResult:
    """Callaway & Sant'Anna group-time ATTs (unconditional parallel trends) and aggregations.

    `control_group`: 'never' (never-treated units) or 'notyet' (never treated or not yet
    treated by max(t, base) + anticipation). `bootstrap`: 0 for analytic SEs, else the number of
    multiplier-bootstrap draws (seeded). Times are the panel's (e.g. years). `covariates`:
    columns for conditional parallel trends by outcome regression (linear in the covariates,
    taken at the earlier period of each comparison).
    """
    if control_group not in CONTROL_GROUPS:
        raise CareTrendsError(f"unknown control_group {control_group!r}; choose 'never' or 'notyet'")
    if base_period not in ("varying", "universal"):
        raise CareTrendsError(f"unknown base_period {base_period!r}; choose 'varying' or 'universal'")
    if control_group == "never" and not panel.never_treated:
        raise CareTrendsError("no never-treated units; use control_group='notyet'")
    times = np.asarray(panel.times, float)
    G = np.nan_to_num(panel.start.to_numpy(float), nan=0.0)
    X_by_time = None
    if covariates:
        missing = [c for c in covariates if c not in panel.data.columns]
        if missing:
            raise CareTrendsError(f"covariate(s) {missing} are not in the panel; pass them to "
                                  "make_panel(covariates=...)")
        wides = [panel.wide(c).to_numpy(float) for c in covariates]
        if any(np.isnan(w).any() for w in wides):
            raise CareTrendsError("covariates have missing values; fill or drop them first")
        X_by_time = [np.column_stack([np.ones(len(G)), *[w[:, k] for w in wides]])
                     for k in range(len(times))]
    table, inf = _group_time(panel.Y.to_numpy(float), G, times, control_group, base_period,
                             anticipation, X_by_time)
    if table.empty:
        raise CareTrendsError("no group-time effect could be estimated (no comparison units at any "
                              "time); check the treatment times and control group")
    n = len(G)
    table["se"] = np.sqrt((inf ** 2).mean(axis=0) / n)
    result = CallawaySantAnnaResult(design="callaway_santanna", outcome=panel.outcome, event=event,
                                    effects=None, panel=panel, group_time=table, influence=inf,
                                    control_group=control_group, base_period=base_period,
                                    bootstrap=int(bootstrap), seed=seed, level=level)
    if bootstrap:
        table["se"] = [result._se(inf[:, k]) for k in range(inf.shape[1])]
    return result
