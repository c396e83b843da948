"""A SYNTHETIC SSDA903 extract for a named LA, calibrated to the published annual counts.

Built child by child, reporting year by reporting year (DfE years ending 31 March):
- starts: the published number, spread over months with a smooth within-year trend and a school-
  year seasonality (dips in August and December), each a new child (or a re-entry of a child
  who went home in an earlier year) with an age, category of need and legal status drawn from
  England-like mixes;
- ceased: the published number exactly: every child turning 18 leaves on the birthday, the rest
  are drawn with hazards that favour short stays (returning home) and young children after a year
  or two (adoption, special guardianship);
- 31 March number in care: DfE counts each child once a year, so published stock changes differ
  a little from starts minus ceased; the generator reproduces the gap with children who leave and
  come back within the same year, which keeps the 31 March figure on the published one;
- each period of care gets legal-status changes (police protection -> s20/interim order -> care
  order -> placement order) and placement moves, written as 903 episodes.
An optional injected effect scales monthly starts from a date (level ratio, and a slope ratio per
month), so a model can be shown to recover a known truth. After the effect date starts then no
longer equal the published counts (ceased still do). Every file carries a DATA_SOURCE column
'SYNTHETIC' and SYNTHETIC in its name. Nothing here describes a real child.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import data
from helpers.core import timeline, vocab
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_text
from helpers.ssda903 import codes
from helpers.ssda903.extract import SYNTHETIC_COLUMN, SYNTHETIC_VALUE

MEASURES = vocab.LOOKED_AFTER_MEASURES  # the published counts a synthetic extract matches
#: Relative level of starts by calendar month (Jan..Dec): fewer referrals in school holidays.
SEASONALITY = np.array([1.05, 1.02, 1.06, 0.98, 1.02, 1.00, 1.04, 0.86, 0.97, 1.08, 1.07, 0.85])
#: Age at starting care (England-like shares): under 1, 1-4, 5-9, 10-15, 16+.
START_AGE_SHARES = np.array([0.20, 0.15, 0.18, 0.34, 0.13])
#: Age of the children in care on 31 March at the start of the simulation.
STOCK_AGE_SHARES = np.array([0.05, 0.14, 0.19, 0.38, 0.24])
BAND_LIMITS = [(0, 1), (1, 5), (5, 10), (10, 16), (16, 17.9)]
CIN_SHARES = {"N1": 0.63, "N2": 0.03, "N3": 0.03, "N4": 0.07, "N5": 0.15, "N6": 0.02, "N7": 0.005,
              "N8": 0.065}
ETHNIC_SHARES = {"WBRI": 0.76, "WIRI": 0.005, "WOTH": 0.03, "MWBC": 0.05, "MWBA": 0.015, "MWAS": 0.015,
                 "MOTH": 0.03, "AIND": 0.01, "APKN": 0.025, "ABAN": 0.005, "AOTH": 0.01, "BCRB": 0.01,
                 "BAFR": 0.02, "BOTH": 0.005, "CHNE": 0.002, "OOTH": 0.013, "REFU": 0.003,
                 "NOBT": 0.002}
PLACE_CHANGE_REASONS = ["CARPL", "CLOSE", "ALLEG", "STAND", "APPRR", "CREQB", "CREQO", "CHILD",
                        "LAREQ", "PLACE", "OTHER"]
REENTRY_SHARE = 0.05


@functools.lru_cache(maxsize=256)
def _cumulative(p: tuple) -> list[float]:
    cum = np.cumsum(np.asarray(p, dtype=float))
    return (cum / cum[-1]).tolist()


def _pick(rng: np.random.Generator, options: tuple, p: tuple):
    """rng.choice(options, p=p) for one draw, without numpy's per-call overhead."""
    return options[min(bisect.bisect_right(_cumulative(p), rng.random()), len(options) - 1)]


def _day(value) -> int:
    return int(np.datetime64(pd.Timestamp(value).date(), "D").astype("int64"))


def _years_later(day: int, years: int) -> int:
    d = dt.date(1970, 1, 1) + dt.timedelta(days=int(day))
    try:
        later = d.replace(year=d.year + years)
    except ValueError:  # 29 February
        later = dt.date(d.year + years, 3, 1)
    return _day(later)


@dataclass
class Effect:
    """Injected change in monthly starts from `date`: x`level` at once, x`slope` per month after."""

    date: str
    level: float = 1.0
    slope: float = 1.0

    def __post_init__(self):
        self.date = str(timeline.to_date(self.date))  # CareTrendsError for a non-date
        for name in ("level", "slope"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                    or not np.isfinite(value) or value <= 0):
                raise CareTrendsError(f"effect {name} {value!r} is not a rate ratio; give a "
                                      "positive number such as 0.8")

    def multiplier(self, t: np.ndarray) -> np.ndarray:
        start = timeline.first_full_month_index(self.date)
        after = t >= start
        return np.where(after, self.level * self.slope ** np.maximum(t - start, 0), 1.0)


@dataclass(repr=False)
class SyntheticExtract:
    """SYNTHETIC header and episodes tables (903 layout, strings) and the targets used."""

    la: str
    header: pd.DataFrame
    episodes: pd.DataFrame
    targets: pd.DataFrame
    seed: int
    effect: Effect | None = None

    def __repr__(self) -> str:
        return (f"<SYNTHETIC SSDA903 for {self.la}: {len(self.header)} children, "
                f"{len(self.episodes)} episodes, seed {self.seed}>")


# --------------------------------------------------------------------------- targets

def targets_from_panel(la: str, first_year: int = 2010, last_year: int = 2025) -> pd.DataFrame:
    """Published starts, ceased and 31 March numbers for the LA (from helpers.data), for the
    years in [first_year, last_year] the panel has (an LA created in 2019 starts in 2020)."""
    frames = []
    for measure in MEASURES:
        series = data.annual_series(la, measure)
        series = series[(series["year"] >= first_year) & (series["year"] <= last_year)]
        frames.append(series.set_index("year")["count"].rename(measure))
    table = pd.concat(frames, axis=1)
    years = table.dropna(how="all").index
    if len(years) < 5:
        raise CareTrendsError(f"the official panel has fewer than 5 reporting years for {la} in "
                              f"{first_year}-{last_year}; choose another LA or pass targets")
    return normalise_targets(table.reset_index(names="year"), int(years.min()), int(years.max()), la)


def normalise_targets(targets, first_year: int, last_year: int, la: str = "the LA") -> pd.DataFrame:
    """A DataFrame (year + the three measures) or {year: {measure: count}} -> one row per year,
    small gaps (suppressed counts) filled by interpolation."""
    if isinstance(targets, dict):
        targets = pd.DataFrame([{"year": int(y), **v} for y, v in targets.items()])
    df = targets.copy()
    missing = [m for m in ("year",) + MEASURES if m not in df.columns]
    if missing:
        raise CareTrendsError(f"synthetic targets lack {', '.join(missing)}; give year, starts, "
                              "ceased and cla_31_march")
    df["year"] = df["year"].astype(int)
    years = pd.Index(range(first_year, last_year + 1), name="year")
    df = df.set_index("year")[list(MEASURES)].astype(float).reindex(years)
    holes = int(df.isna().sum().sum())
    if holes > 0.25 * df.size or df.iloc[[0, -1]].isna().all(axis=1).any():
        raise CareTrendsError(f"published counts for {la} are missing for too many years "
                              f"{first_year}-{last_year} to calibrate a synthetic extract; "
                              "choose another LA or pass targets")
    df = df.interpolate(limit_direction="both").round().astype(int)
    return df.reset_index()


# --------------------------------------------------------------------------- monthly starts

def monthly_start_counts(targets: pd.DataFrame, rng: np.random.Generator,
                         effect: Effect | None = None) -> dict[int, np.ndarray]:
    """Starts per month (12 per reporting year, April first), summing to each year's target
    (times the effect, if any)."""
    years = targets["year"].to_numpy()
    t_mid = np.array([timeline.month_index(f"{y - 1}-10-01") for y in years], dtype=float)
    log_level = np.log(np.maximum(targets["starts"].to_numpy(dtype=float), 0.5) / 12)
    out = {}
    for y, target in zip(years, targets["starts"].to_numpy()):
        t = np.arange(timeline.month_index(f"{y - 1}-04-01"), timeline.month_index(f"{y}-03-01") + 1)
        trend = np.exp(np.interp(t + 0.5, t_mid, log_level))
        shape = trend * SEASONALITY[(t % 12)]
        expected = target * shape / shape.sum()
        if effect is not None:
            expected = expected * effect.multiplier(t)
        n = int(round(expected.sum()))
        out[int(y)] = rng.multinomial(n, expected / expected.sum()) if n > 0 else np.zeros(12, int)
    return out


# --------------------------------------------------------------------------- the children

class _Child:
    __slots__ = ("number", "dob", "adult", "sex", "periods", "in_care", "cin", "left_home_year")

    def __init__(self, number: int, dob: int, sex: str):
        self.number, self.dob, self.sex = number, dob, sex
        self.adult = _years_later(dob, 18)  # 18th birthday: leaves care that day at the latest
        self.periods: list[list] = []   # [start, end|None, rec, ls0, cin]
        self.in_care = False
        self.left_home_year = None      # reporting year of a return home (re-entry candidates)

    def age_on(self, day: int) -> float:
        return (day - self.dob) / 365.25


class _Generator:
    def __init__(self, targets: pd.DataFrame, seed: int, effect: Effect | None):
        self.targets = targets.set_index("year")
        self.rng = np.random.default_rng(seed)
        self.effect = effect
        self.children: list[_Child] = []
        self.first_year = int(targets["year"].min())
        self.last_year = int(targets["year"].max())
        self.extract_start = _day(f"{self.first_year - 1}-04-01")
        self.extract_end = _day(f"{self.last_year}-03-31")
        self.achieved: list[dict] = []

    # -- draws
    def _new_child(self, dob: int) -> _Child:
        child = _Child(len(self.children), dob, "1" if self.rng.random() < 0.53 else "2")
        self.children.append(child)
        return child

    def _age_in_band(self, shares) -> float:
        band = _pick(self.rng, (0, 1, 2, 3, 4), tuple(shares))
        low, high = BAND_LIMITS[band]
        if band == 0 and self.rng.random() < 0.45:  # many babies come into care at birth
            return self.rng.uniform(0, 0.03)
        return self.rng.uniform(low, high)

    def _cin(self, age: float) -> str:
        shares = dict(CIN_SHARES)
        if age >= 15:
            shares["N8"] *= 4   # unaccompanied asylum-seeking children are mostly 16-17
            shares["N6"] *= 3
        if age < 1:
            shares["N8"] = 0.002
        return _pick(self.rng, tuple(shares), tuple(shares.values()))

    def _first_ls(self, age: float, cin: str) -> str:
        if cin == "N8":
            return "V2"
        if age < 1:
            options, p = ["C1", "V2", "L1", "L2"], [0.55, 0.33, 0.06, 0.06]
        elif age < 10:
            options, p = ["C1", "V2", "L1", "L2"], [0.40, 0.45, 0.10, 0.05]
        else:
            options, p = ["V2", "C1", "L1", "L2", "J1", "J2"], [0.58, 0.24, 0.10, 0.03, 0.03, 0.02]
        return _pick(self.rng, tuple(options), tuple(p))

    def _start_period(self, child: _Child, day: int, ls: str | None = None) -> None:
        age = child.age_on(day)
        cin = self._cin(age)
        child.periods.append([day, None, "", ls or self._first_ls(age, cin), cin])
        child.in_care = True

    def _exit_reason(self, child: _Child, day: int, forced: bool) -> str:
        rng = self.rng
        if forced:
            return _pick(rng, ("E17", "E5", "E6", "E8", "E15"), (0.25, 0.5, 0.12, 0.11, 0.02))
        period = child.periods[-1]
        age_start, stay = child.age_on(period[0]), (day - period[0]) / 365.25
        if period[3] in ("J1", "J2", "J3"):
            return "E14"
        if child.age_on(day) >= 16:
            return _pick(rng, ("E13", "E4A", "E5", "E8", "E6", "E16"), (0.2, 0.25, 0.3, 0.15, 0.07, 0.03))
        if age_start < 5 and stay > 0.9:
            return _pick(rng, ("E11", "E12", "E45", "E46", "E47", "E41", "E4A"),
                         (0.28, 0.12, 0.12, 0.05, 0.18, 0.08, 0.17))
        return _pick(rng, ("E4A", "E4B", "E13", "E41", "E45", "E47", "E8", "E3", "E2"),
                     (0.46, 0.05, 0.12, 0.07, 0.06, 0.08, 0.11, 0.04, 0.01))

    def _end_period(self, child: _Child, day: int, rec: str, year: int) -> None:
        period = child.periods[-1]
        period[1], period[2] = day, rec
        child.in_care = False
        if rec in ("E4A", "E4B", "E13") and child.age_on(day) < 16.5:
            child.left_home_year = year

    # -- the year loop
    def run(self) -> None:
        rng = self.rng
        tg = self.targets
        first = self.first_year
        stock0 = int(tg.loc[first, "cla_31_march"] - tg.loc[first, "starts"] + tg.loc[first, "ceased"])
        ref = self.extract_start - 1
        for _ in range(max(stock0, 0)):
            age = self._age_in_band(STOCK_AGE_SHARES)
            child = self._new_child(ref - int(age * 365.25))
            elapsed = min(age, 8.0) * rng.random() ** 1.6
            start = ref - int(elapsed * 365.25)
            self._start_period(child, max(start, child.dob),
                               _pick(rng, ("C2", "V2", "E1", "C1"), (0.6, 0.22, 0.1, 0.08)))
        starts_by_month = monthly_start_counts(tg.reset_index(), rng, self.effect)
        for year in range(first, self.last_year + 1):
            self._year(year, starts_by_month[year])

    def _year(self, year: int, month_counts: np.ndarray) -> None:
        rng, tg = self.rng, self.targets
        ys, ye = _day(f"{year - 1}-04-01"), _day(f"{year}-03-31")
        ceased_target = int(tg.loc[year, "ceased"])
        gap = 0 if year == self.first_year else int(
            (tg.loc[year, "cla_31_march"] - tg.loc[year - 1, "cla_31_march"])
            - (tg.loc[year, "starts"] - tg.loc[year, "ceased"]))
        limit = int(0.15 * max(1, min(tg.loc[year, "starts"], ceased_target)))
        gap = int(np.clip(gap, -limit, limit))

        # Starts: day within month; a few are re-entries of children who went home earlier.
        start_days = []
        for k, count in enumerate(month_counts):
            month = timeline.month_from_index(timeline.month_index(f"{year - 1}-04-01") + k)
            m0 = _day(month.start_time)
            start_days.extend(m0 + rng.integers(0, month.days_in_month, size=count))
        start_days = sorted(int(d) for d in start_days)
        n_restart_neg = min(-gap, len(start_days)) if gap < 0 else 0
        if n_restart_neg:  # those starts become same-year returns of children already in care
            drop = set(rng.choice(len(start_days), size=n_restart_neg, replace=False).tolist())
            start_days = [d for i, d in enumerate(start_days) if i not in drop]
        pool = [c for c in self.children if not c.in_care and c.left_home_year is not None
                and c.left_home_year < year]
        new_starters = []
        for day in start_days:
            child = None
            if pool and rng.random() < REENTRY_SHARE:
                candidate = pool.pop(int(rng.integers(len(pool))))
                if candidate.age_on(day) < 17 and candidate.periods[-1][1] < day:
                    child = candidate
            if child is None:
                child = self._new_child(day - int(self._age_in_band(START_AGE_SHARES) * 365.25))
            self._start_period(child, day)
            new_starters.append(child)

        in_care = [c for c in self.children if c.in_care]
        forced = [c for c in in_care if c.adult <= ye]
        forced_ids = {id(c) for c in forced}
        for child in forced:
            self._end_period(child, max(child.adult, child.periods[-1][0]),
                             self._exit_reason(child, 0, forced=True), year)

        # Same-year leave-and-return (positive gap): a new starter goes home and comes back.
        returners = []
        if gap > 0:
            candidates = [c for c in new_starters if id(c) not in forced_ids
                          and c.periods[-1][0] <= ye - 75 and c.age_on(ye) < 17.5]
            room = max(0, ceased_target - len(forced))
            take = min(gap, len(candidates), room)
            returners = [candidates[i] for i in rng.choice(len(candidates), size=take, replace=False)]
            for child in returners:
                start = child.periods[-1][0]
                leave = int(start + rng.integers(1, max(2, min(120, ye - 45 - start))))
                back = int(leave + rng.integers(14, max(15, min(60, ye - leave - 1))))
                self._end_period(child, leave, _pick(rng, ("E4A", "E4B", "E13"), (0.6, 0.2, 0.2)), year)
                child.left_home_year = None
                self._start_period(child, back, _pick(rng, ("C1", "V2", "L1"), (0.5, 0.4, 0.1)))

        # Everyone else: the remaining leavers drawn by hazard.
        taken = forced_ids | {id(c) for c in returners}
        eligible = [c for c in self.children if c.in_care and id(c) not in taken]
        quota = max(0, min(ceased_target - len(forced) - len(returners), len(eligible)))
        leavers = []
        if quota:
            weights = np.array([self._hazard(c, ys, ye) for c in eligible])
            pick = rng.choice(len(eligible), size=quota, replace=False, p=weights / weights.sum())
            leavers = [eligible[i] for i in pick]
        for child in leavers:
            start = max(ys, child.periods[-1][0])
            last = min(ye, child.adult - 1)
            day = int(start + rng.integers(0, max(1, last - start + 1)))
            self._end_period(child, day, self._exit_reason(child, day, forced=False), year)

        # Same-year return and second exit (negative gap): counted once as a start, once ceased.
        if n_restart_neg:
            candidates = [c for c in leavers if c.periods[-1][0] < ys and c.periods[-1][1] <= ye - 40
                          and c.age_on(ye) < 17.5 and c.periods[-1][2] in ("E4A", "E4B", "E13", "E8")]
            take = min(n_restart_neg, len(candidates))
            for i in rng.choice(len(candidates), size=take, replace=False):
                child = candidates[i]
                back = int(child.periods[-1][1] + rng.integers(7, 21))
                self._start_period(child, back)
                out = int(back + rng.integers(1, max(2, ye - back)))
                self._end_period(child, min(out, ye), _pick(rng, ("E4A", "E13"), (0.5, 0.5)), year)
            # Too few candidates: keep the published starts with new children instead (the
            # 31 March figure then drifts by the shortfall, within the 2% tolerance checked).
            for _ in range(n_restart_neg - take):
                day = int(rng.integers(ys, ye + 1))
                child = self._new_child(day - int(self._age_in_band(START_AGE_SHARES) * 365.25))
                self._start_period(child, day)

        self.achieved.append({"year": year, "forced_18": len(forced),
                              "cla_31_march": sum(c.in_care for c in self.children)})

    def _hazard(self, child: _Child, ys: int, ye: int) -> float:
        period = child.periods[-1]
        start = max(ys, period[0])
        stay = (start - period[0]) / 365.25
        age = child.age_on(start)
        age_start = child.age_on(period[0])
        weight = 0.22 + 2.2 * np.exp(-stay / 0.45)
        if age_start < 5 and 0.7 < stay < 4:
            weight += 1.1
        if age >= 16:
            weight += 0.5
        elif age >= 10:
            weight *= 0.65
        return weight * max(0.05, (ye - start + 1) / 365.0) ** 0.7

    # -- episodes
    def episodes(self) -> list[tuple]:
        rows = []
        for child in self.children:
            for period in child.periods:
                rows.extend(self._period_episodes(child, period))
        return rows

    def _placement(self, age: float, ls: str, provider_rng) -> tuple[str, str, str]:
        rng = provider_rng
        if age < 10:
            place = _pick(rng, ("U4", "U5", "U6", "U1", "U2", "U3", "K2"), (0.3, 0.2, 0.14, 0.12, 0.1, 0.1, 0.04))
        elif age < 16:
            place = _pick(rng, ("U4", "U5", "U6", "U1", "U3", "K2", "R1"), (0.26, 0.18, 0.12, 0.08, 0.08, 0.25, 0.03))
        else:
            place = _pick(rng, ("U4", "U6", "K2", "H5", "U3"), (0.22, 0.1, 0.2, 0.4, 0.08))
        if ls in ("J1", "J2") and rng.random() < 0.3:
            place = "K2"
        provider = {"K2": _pick(rng, ("PR4", "PR1"), (0.8, 0.2)), "H5": "PR4",
                    "R1": "PR3"}.get(place, _pick(rng, ("PR1", "PR4"), (0.7, 0.3)))
        urn = f"SC{rng.integers(100000, 999999)}" if place == "K2" else "XXXXXXX"
        return place, provider, urn

    def _period_episodes(self, child: _Child, period: list) -> list[tuple]:
        rng = self.rng
        start, end, rec, ls, cin = period
        horizon = end if end is not None else self.extract_end
        # Legal status changes (day -> status) and placement changes (day -> placement code).
        ls_changes: dict[int, str] = {}
        day, status = start, ls
        if status in ("L1", "L2", "L3") and horizon - start > 2:
            day = start + int(rng.integers(1, min(9, horizon - start)))
            status = "C1" if rng.random() < 0.5 else "V2"
            ls_changes[day] = status
        if status == "V2" and rng.random() < 0.35 and horizon - day > 60:
            day = day + int(rng.integers(30, min(240, horizon - day)))
            status = "C1"
            ls_changes[day] = status
        if status == "C1" and horizon - day > 200:
            day = day + int(rng.integers(180, min(400, horizon - day)))
            status = "C2"
            ls_changes[day] = status
        place_changes: dict[int, str | None] = {}
        if rec in ("E11", "E12") and horizon - day > 200:
            po = horizon - int(rng.integers(150, min(400, horizon - day)))
            ls_changes[po] = "E1"
            if horizon - po > 40:
                place_changes[horizon - int(rng.integers(30, min(300, horizon - po)))] = "A5"
        if rec in ("E4A",) and status == "C2" and rng.random() < 0.4 and horizon - start > 120:
            place_changes[horizon - int(rng.integers(60, 120))] = "P1"
        years = (horizon - start) / 365.25
        for _ in range(rng.poisson(0.9 * max(years, 0.0) ** 0.8)):
            if horizon - start > 2:
                place_changes.setdefault(start + int(rng.integers(1, horizon - start)), None)
        days = sorted(d for d in set(ls_changes) | set(place_changes) if start < d < horizon)
        bounds = [start] + days + [horizon]
        rows = []
        current_ls = ls
        place, provider, urn = self._placement(child.age_on(start), ls, rng)
        final_place = None
        home_post = f"ZZ99 {rng.integers(1, 9)}{chr(65 + rng.integers(0, 26))}{chr(65 + rng.integers(0, 26))}"
        for i in range(len(bounds) - 1):
            d0, d1 = bounds[i], bounds[i + 1]
            ls_changed = place_changed = False
            if i > 0:
                if d0 in ls_changes and ls_changes[d0] != current_ls:
                    current_ls, ls_changed = ls_changes[d0], True
                if d0 in place_changes:
                    place_changed = True
                    wanted = place_changes[d0]
                    if wanted is None and final_place in ("A5", "P1"):
                        place_changed = False
                    elif wanted is not None:
                        place, provider, urn = wanted, ("PR1" if wanted == "A5" else "PR0"), "XXXXXXX"
                        final_place = wanted
                    else:
                        place, provider, urn = self._placement(child.age_on(d0), current_ls, rng)
                if not (ls_changed or place_changed):
                    # Nothing changed after all: extend the previous episode.
                    rows[-1][2] = d1
                    continue
            if i == 0:
                rne = "S"
            elif ls_changed and place_changed:
                rne = "B"
            elif ls_changed:
                rne = "L"
            else:
                rne = "T" if rng.random() < 0.05 else "P"
            reason = PLACE_CHANGE_REASONS[int(rng.integers(len(PLACE_CHANGE_REASONS)))] if place_changed else ""
            rows.append([child.number, d0, d1, rne, current_ls, cin, place, provider, reason,
                         home_post, urn])
        out = []
        for j, (number, d0, d1, rne, ls_, cin_, place_, prov, reason, hp, urn_) in enumerate(rows):
            last = j == len(rows) - 1
            dec = (end if last else d1)
            episode_rec = (rec if last else "X1") if dec is not None else ""
            if dec is not None and dec < self.extract_start:
                continue  # before the first return in the extract
            pl_post = "" if place_ in ("P1",) else f"ZZ99 {rng.integers(1, 9)}ZZ"
            out.append((number, d0, dec, rne, ls_, cin_, place_, prov, episode_rec, reason, hp,
                        pl_post, urn_))
        return out

    def short_breaks(self) -> list[tuple]:
        """Children on series of short breaks (V3/V4): in the file, left out of every count."""
        rng = self.rng
        rows = []
        n = max(3, int(round(0.05 * self.targets["starts"].mean())))
        for _ in range(n):
            first = int(rng.integers(self.extract_start, self.extract_end - 400))
            child = self._new_child(first - int(rng.uniform(5, 15) * 365.25))
            day = first
            ls = "V4" if rng.random() < 0.8 else "V3"
            for _ in range(int(rng.integers(3, 12))):
                end = day + int(rng.integers(1, 6))
                if end > self.extract_end:
                    break
                child.periods.append([day, end, "E4A", ls, "N2"])
                rows.append((child.number, day, end, "S", ls, "N2", "U4", "PR1", "E4A", "",
                             "ZZ99 1ZZ", "ZZ99 2ZZ", "XXXXXXX"))
                day = end + int(rng.integers(20, 70))
        return rows


def _fmt(days: np.ndarray) -> list[str]:
    out = pd.to_datetime(np.asarray(days, dtype="int64").astype("datetime64[D]")).strftime("%d/%m/%Y")
    return list(out)


def synthesize(la: str = "Stoke-on-Trent", seed: int = vocab.DEFAULT_SEED, targets=None,
               effect: Effect | None = None, first_year: int = 2010,
               last_year: int = 2025) -> SyntheticExtract:
    """Generate the SYNTHETIC 903 header and episodes for `la` (targets from helpers.data unless
    given as a DataFrame or {year: {"starts", "ceased", "cla_31_march"}})."""
    seed = check_seed(seed)
    targets = (targets_from_panel(la, first_year, last_year) if targets is None
               else normalise_targets(targets, first_year, last_year, la))
    first_year, last_year = int(targets["year"].min()), int(targets["year"].max())
    gen = _Generator(targets, seed, effect)
    gen.run()
    episode_rows = gen.episodes()
    breaks = gen.short_breaks()
    # Short-break children are numbered after everyone else; give ids in order of first contact.
    rows = episode_rows + breaks
    first_seen: dict[int, int] = {}
    for r in sorted(rows, key=lambda r: (r[1], r[0])):
        first_seen.setdefault(r[0], len(first_seen))
    ids = {number: f"SYN{first_seen[number] + 1:07d}" for number in first_seen}

    arr = pd.DataFrame(rows, columns=["n", "DECOM", "DEC", "RNE", "LS", "CIN", "PLACE",
                                      "PLACE_PROVIDER", "REC", "REASON_PLACE_CHANGE", "HOME_POST",
                                      "PL_POST", "URN"])
    arr["CHILD"] = arr["n"].map(ids)
    arr = arr.sort_values(["CHILD", "DECOM"], kind="stable")
    dec_days = pd.to_numeric(arr["DEC"], errors="coerce")
    dec_text = pd.Series("", index=arr.index, dtype=object)
    has_dec = dec_days.notna()
    dec_text[has_dec] = _fmt(dec_days[has_dec].astype("int64").to_numpy())
    episodes = pd.DataFrame({
        "CHILD": arr["CHILD"].to_numpy(),
        "DECOM": _fmt(arr["DECOM"].to_numpy()),
        "RNE": arr["RNE"].to_numpy(), "LS": arr["LS"].to_numpy(), "CIN": arr["CIN"].to_numpy(),
        "PLACE": arr["PLACE"].to_numpy(), "PLACE_PROVIDER": arr["PLACE_PROVIDER"].to_numpy(),
        "DEC": dec_text.to_numpy(),
        "REC": arr["REC"].to_numpy(), "REASON_PLACE_CHANGE": arr["REASON_PLACE_CHANGE"].to_numpy(),
        "HOME_POST": arr["HOME_POST"].to_numpy(), "PL_POST": arr["PL_POST"].to_numpy(),
        "URN": arr["URN"].to_numpy(),
    })
    episodes[SYNTHETIC_COLUMN] = SYNTHETIC_VALUE

    rng = gen.rng
    header_rows, dobs, mc_dobs = [], [], []
    for number in sorted(ids, key=lambda n: ids[n]):
        child = gen.children[number]
        ethnic = _pick(rng, tuple(ETHNIC_SHARES), tuple(ETHNIC_SHARES.values()))
        mother, mc_dob = "", -1
        if child.sex == "2":
            mother = "0"
            last_day = max((p[1] or gen.extract_end) for p in child.periods)
            if child.age_on(last_day) > 15 and rng.random() < 0.03:
                mother = "1"
                mc_dob = last_day - int(rng.integers(0, 300))
        dobs.append(child.dob)
        mc_dobs.append(mc_dob)
        header_rows.append((ids[number], child.sex, "", ethnic,
                            f"Z{rng.integers(10**11, 10**12)}", mother, ""))
    header = pd.DataFrame(header_rows, columns=list(codes.HEADER_COLUMNS))
    header["DOB"] = _fmt(np.array(dobs))
    mc = np.array(mc_dobs)
    header.loc[mc >= 0, "MC_DOB"] = _fmt(mc[mc >= 0])
    header[SYNTHETIC_COLUMN] = SYNTHETIC_VALUE
    return SyntheticExtract(la=la, header=header, episodes=episodes.reset_index(drop=True),
                            targets=targets, seed=int(seed), effect=effect)


def slug(la: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in la.lower()).strip("-")


def check_seed(seed) -> int:
    """A random seed as an int: a whole number from 0 to 2**32 - 1 (numpy refuses negatives)."""
    if isinstance(seed, (bool, float)) or not isinstance(seed, (int, np.integer, str)):
        raise CareTrendsError(f"seed {seed!r} is not a whole number; give one from 0 to "
                              f"{2**32 - 1} (e.g. 20240301)")
    try:
        value = int(seed)
    except ValueError:
        raise CareTrendsError(f"seed {seed!r} is not a whole number; give one from 0 to "
                              f"{2**32 - 1} (e.g. 20240301)") from None
    if not 0 <= value < 2**32:
        raise CareTrendsError(f"seed {seed!r} is outside 0 to {2**32 - 1}; give a seed in that "
                              "range (e.g. 20240301)")
    return value


def output_paths(la: str, out_dir) -> tuple[Path, Path]:
    """Where write_synthetic puts the header and episodes files for `la` in `out_dir`, after
    checking the folder can take them (CareTrendsError naming the problem otherwise)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CareTrendsError(f"output folder {str(out_dir)!r} is an existing file; give a "
                              "folder (it is created if missing)")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CareTrendsError(f"cannot create {str(out_dir)!r}: {str(parent)!r} is a "
                                      "file; give a folder path")
            break
    paths = tuple(out_dir / f"SYNTHETIC_{slug(la)}_903_{name}.csv" for name in ("header", "episodes"))
    for path in paths:
        if path.exists() and not path.is_file():
            raise CareTrendsError(f"{str(path)!r} exists and is not a file; remove it or give "
                                  "another output folder")
    return paths


def write_synthetic(extract: SyntheticExtract, out_dir) -> tuple[Path, Path]:
    """Write SYNTHETIC_<la>_903_header.csv and ..._episodes.csv (earlier SYNTHETIC files of the
    same LA are replaced). Each file is written to a temporary name and renamed, so a failure
    leaves no half-written file."""
    header_path, episodes_path = output_paths(extract.la, out_dir)
    texts = [table.to_csv(index=False, lineterminator="\n")
             for table in (extract.header, extract.episodes)]
    try:
        for path, text in zip((header_path, episodes_path), texts):
            atomic_write_text(path, text)
    except OSError as exc:
        raise CareTrendsError(f"cannot write the SYNTHETIC files in {str(Path(out_dir))!r} "
                              f"({exc.strerror or type(exc).__name__}); give a folder you can "
                              "write to") from exc
    return header_path, episodes_path


def calibration_table(annual: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Derived annual counts next to the targets, with the 31 March relative error."""
    merged = targets.rename(columns={m: f"{m}_target" for m in MEASURES}).merge(
        annual.rename(columns={"reporting_year": "year"}), on="year", how="left")
    merged["cla_31_march_error"] = (merged["cla_31_march"] / merged["cla_31_march_target"] - 1).round(4)
    return merged
