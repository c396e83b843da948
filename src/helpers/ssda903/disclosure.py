"""Small-count suppression for tables and charts built from episode data.

The published rule (DfE, and this project's): counts from 1 to 4 are never shown; they read "<5".
A hidden count must not be recoverable from anything shown beside it, so cells are also hidden
*secondarily* until no published total (row, column, subtotal, annual total, or the month-end
stock, which moves by starts minus ceased) pins a hidden small count to a single whole number.

How the check works (an "audit" in the statistical disclosure control literature; Hundepool et
al., *Statistical Disclosure Control*, Wiley 2012, ch. 4 "Magnitude tabular data" and the
linear-programming audit of Fischetti & Salazar-Gonzalez, Management Science 1999): every shown
number and every total is a linear equation in the cells; for each hidden small cell linear
programmes find the smallest and largest value it can take given everything shown and what a
reader knows about hidden cells. With *distinct* marks ("<5" for small counts, "c" for cells
hidden to protect them) a reader knows "<5" cells lie in 1..4 and "c" cells are 5 or more (zeros
are never hidden); with *uniform* marks (every hidden cell "c", as charts do) only that a hidden
cell is 0 or more; unpublished quantities are 0 or more. A small cell whose range holds fewer
than two whole numbers is exposed, and the smallest shown cell whose hiding unpins it is hidden
next (greedy: a large table may hide a few more cells than an optimal solver would). Tables with
row and column totals have totally unimodular constraint matrices, so the linear programmes'
bounds are the whole-number bounds. Distinct marks can give a count away by themselves (a "<5"
total of four "<5" cells: each is 1); `suppress_small_counts` then falls back to uniform marks.

Charts (`chart_counts`) hide months alike (uniform) and are audited together with the annual
totals published beside them and the month-end stock, so no plotted number lets a reader solve
for a hidden month. Tests: tests/test_ssda903_safety.py attacks the published output with an
integer programme (scipy.optimize.milp) that knows the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from helpers.core.errors import CareTrendsError
from helpers.ssda903 import codes

#: The published rule: counts below this are never shown. Nothing may lower it.
PUBLISHED_THRESHOLD = 5
#: Shown in place of a cell hidden to protect a small one (with uniform marks: every hidden cell).
SECONDARY_MARK = "c"
#: Columns of the derived tables that are labels, never counts.
LABEL_COLUMNS = ("t", "month", "reporting_year", "year", "calendar_month")
#: Flow columns of `monthly_series` a chart may show (the month-end stock is handled apart).
FLOW_COLUMNS = ("starts", "ceased") + tuple(f"ceased_{g}" for g in codes.EXIT_GROUPS)


def check_threshold(threshold) -> int:
    """The small-count threshold as an int, refusing anything below the published rule."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer, float)):
        raise CareTrendsError(f"small-count threshold {threshold!r} is not a whole number; "
                              f"use {PUBLISHED_THRESHOLD} (the published rule) or more")
    if float(threshold) != int(threshold):
        raise CareTrendsError(f"small-count threshold {threshold!r} is not a whole number; "
                              f"use {PUBLISHED_THRESHOLD} (the published rule) or more")
    if int(threshold) < PUBLISHED_THRESHOLD:
        raise CareTrendsError(f"small-count threshold {threshold!r} is below the published rule "
                              f"(counts 1-{PUBLISHED_THRESHOLD - 1} are never shown); use "
                              f"{PUBLISHED_THRESHOLD} or more")
    return int(threshold)


# --------------------------------------------------------------------------- the engine

class _Cells:
    """Cells (shown, hideable or unpublished) and the linear equations that tie them together."""

    def __init__(self):
        self.values: list[float] = []
        self.published: list[bool] = []
        self.hideable: list[bool] = []   # may be chosen as a secondary cell
        self.rank: list[int] = []        # tie-break when choosing secondaries (lower first)
        self.marked_small: list[bool] = []  # shown as "<5" elsewhere, whatever this output does
        self.equations: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, value, published=True, hideable=True, rank=0, marked_small=False) -> int:
        self.marked_small.append(bool(marked_small))
        self.values.append(float(value))
        self.published.append(bool(published))
        self.hideable.append(bool(hideable and published))
        self.rank.append(int(rank))
        return len(self.values) - 1

    def equation(self, cells, coefs) -> None:
        """sum(coef * cell) == 0 for the given cells."""
        self.equations.append((np.asarray(cells, dtype=int), np.asarray(coefs, dtype=float)))


def _components(unknown: np.ndarray, equations) -> tuple[np.ndarray, list[list[int]]]:
    """Union-find of unknown cells sharing an equation; returns (root per cell, equations per root)."""
    parent = np.arange(unknown.size)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for idx, _ in equations:
        live = idx[unknown[idx]]
        for other in live[1:]:
            a, b = find(live[0]), find(other)
            if a != b:
                parent[b] = a
    roots = np.array([find(i) for i in range(unknown.size)])
    by_root: dict[int, list[int]] = {}
    for k, (idx, _) in enumerate(equations):
        live = idx[unknown[idx]]
        if live.size:
            by_root.setdefault(int(roots[live[0]]), []).append(k)
    return roots, by_root


class _Unprotectable(Exception):
    """Showing small counts as "<5" would itself give one away (e.g. a "<5" total of four "<5"
    cells: each must be 1); only marking every hidden cell alike protects them."""


class _Auditor:
    def __init__(self, cells: _Cells, threshold: int, uniform: bool = False):
        self.cells = cells
        self.t = threshold
        self.uniform = uniform  # every hidden cell looks alike: a reader knows only ">= 0"
        self.values = np.asarray(cells.values)
        self.published = np.asarray(cells.published, dtype=bool)
        self.hideable = np.asarray(cells.hideable, dtype=bool)
        self.rank = np.asarray(cells.rank)
        self.marked_small = np.asarray(cells.marked_small, dtype=bool)
        self.primary = self.published & (self.values >= 1) & (self.values < threshold)
        self.hidden = self.primary.copy()
        self.eqs_of: list[list[int]] = [[] for _ in self.values]
        for k, (idx, _) in enumerate(cells.equations):
            for i in idx:
                self.eqs_of[i].append(k)

    def _bounds(self, i):
        if not self.published[i]:
            return (0, None)
        if self.primary[i] and (self.marked_small[i] or not self.uniform):
            return (1, self.t - 1)
        if self.uniform:  # a hidden cell may be a small count, a large one, or a zero
            return (0, None)
        if self.primary[i]:
            return (1, self.t - 1)
        return (self.t, None)

    def exposed(self, targets, hidden) -> list[int]:
        """Small hidden cells among `targets` whose feasible range holds one whole number only."""
        unknown = hidden | ~self.published
        roots, eqs_by_root = _components(unknown, self.cells.equations)
        out = []
        by_root: dict[int, list[int]] = {}
        for p in targets:
            by_root.setdefault(int(roots[p]), []).append(p)
        for root, members in by_root.items():
            eq_ids = eqs_by_root.get(root, [])
            if not eq_ids:
                continue  # no equation involves these cells: only their own bounds are known
            var = np.flatnonzero(unknown & (roots == root))
            col = {int(v): j for j, v in enumerate(var)}
            a = np.zeros((len(eq_ids), var.size))
            b = np.zeros(len(eq_ids))
            for r, k in enumerate(eq_ids):
                idx, coef = self.cells.equations[k]
                for i, c in zip(idx, coef):
                    if unknown[i]:
                        a[r, col[int(i)]] += c
                    else:
                        b[r] -= c * self.values[i]
            bounds = [self._bounds(int(v)) for v in var]
            for p in members:
                if self._pinned(col[p], self.values[p], a, b, bounds):
                    out.append(p)
        return out

    @staticmethod
    def _pinned(j, true, a, b, bounds) -> bool:
        """Whether variable j can take no whole value but `true` (the range holds one integer).
        The true value is feasible, so one programme settles most cells: can j reach true + 1?"""
        c = np.zeros(a.shape[1])
        c[j] = 1.0
        high = linprog(-c, A_eq=a, b_eq=b, bounds=bounds, method="highs")
        if high.status != 0 or -high.fun >= true + 1 - 1e-7:  # unbounded above, or room above
            return False
        low = linprog(c, A_eq=a, b_eq=b, bounds=bounds, method="highs")
        return low.status == 0 and low.fun > true - 1 + 1e-7

    def candidates(self, p, hidden) -> list[int]:
        """Shown non-zero cells sharing an equation with p (nearest first), smallest first."""
        near = {int(i) for k in self.eqs_of[p] for i in self.cells.equations[k][0]}
        unknown = hidden | ~self.published
        roots, _ = _components(unknown, self.cells.equations)
        comp = set(np.flatnonzero(unknown & (roots == roots[p])).tolist())
        far = {int(i) for q in comp for k in self.eqs_of[q] for i in self.cells.equations[k][0]}
        # Distinct marks promise "c" means 5 or more, so zeros stay shown; uniform marks may
        # hide a zero (last resort: four hidden months summing to a shown 4 would all be 1).
        ok = lambda i: (self.hideable[i] and not hidden[i]  # noqa: E731
                        and (self.values[i] > 0 or self.uniform))
        key = lambda i: (self.values[i] == 0, self.values[i], self.rank[i], i)  # noqa: E731
        return (sorted((i for i in near if ok(i)), key=key)
                + sorted((i for i in far - near if ok(i)), key=key))

    def run(self, max_tries: int = 8) -> np.ndarray:
        todo = [int(p) for p in np.flatnonzero(self.primary) if self.eqs_of[p]]
        while todo:
            exposed = self.exposed(todo, self.hidden)  # hiding more only widens ranges
            for p in exposed:
                if p not in self.exposed([p], self.hidden):
                    continue  # protected by a cell hidden for an earlier one this round
                options = self.candidates(p, self.hidden)
                if not options:  # nothing shown is tied to p any more: its range is final
                    if self.uniform:  # cannot happen: every hidden cell is only ">= 0"
                        raise RuntimeError("small-count suppression found no cell to hide")
                    raise _Unprotectable()
                chosen = options[0]
                for option in options[:max_tries]:  # prefer a single cell that unpins p
                    trial = self.hidden.copy()
                    trial[option] = True
                    if not self.exposed([p], trial):
                        chosen = option
                        break
                self.hidden[chosen] = True
            todo = exposed
        return self.hidden


# --------------------------------------------------------------------------- tables

@dataclass(repr=False)
class SuppressedTable:
    """A count table ready to publish.

    display: the table as text (counts, "<5" for small counts, "c" for cells hidden to protect
    them, or "c" for every hidden cell when marks == "uniform"), with any totals added; mask:
    True where a count is hidden; values: the counts as floats with NaN where hidden (for
    charts); primary: True where the count itself is small (for checks only: with uniform marks,
    publishing it would undo them). `display, mask = suppress_small_counts(...)` unpacks the
    first two.
    """

    display: pd.DataFrame
    mask: pd.DataFrame
    primary: pd.DataFrame
    values: pd.DataFrame
    threshold: int
    marks: str = "distinct"

    def __iter__(self):
        yield self.display
        yield self.mask

    def __repr__(self) -> str:  # uniform marks must not say how many hidden cells are small
        if self.marks == "uniform":
            return f"<SuppressedTable: {int(self.mask.to_numpy().sum())} cells hidden ({SECONDARY_MARK})>"
        small = int(self.primary.to_numpy().sum())
        more = int((self.mask & ~self.primary).to_numpy().sum())
        return (f"<SuppressedTable: {small} small counts shown as <{self.threshold}, {more} more "
                f"hidden ({SECONDARY_MARK}) to protect them>")

    def _repr_html_(self) -> str:
        return self.display._repr_html_()


def _count_columns(table: pd.DataFrame, columns) -> list[str]:
    if columns is None:
        columns = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
                   and not pd.api.types.is_bool_dtype(table[c]) and c not in LABEL_COLUMNS]
    columns = list(columns)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CareTrendsError(f"no column(s) {', '.join(map(str, missing))} in the table to "
                              "suppress; name count columns it has")
    if not columns:
        raise CareTrendsError("the table has no count columns to suppress; pass columns=[...]")
    for c in columns:
        values = pd.to_numeric(table[c], errors="coerce")
        if values.isna().any() or (values < 0).any() or (values.round() != values).any():
            raise CareTrendsError(f"column {c} holds values that are not whole counts of 0 or "
                                  "more; suppress counts only")
    return columns


def suppress_small_counts(table: pd.DataFrame, threshold: int = PUBLISHED_THRESHOLD,
                          totals: str | None = None, columns=None, groups=None,
                          total_label: str = "Total", marks: str = "auto") -> SuppressedTable:
    """Hide counts 1..threshold-1 ("<5") and enough other cells ("c") that no total shown with
    them recovers a hidden count (see the module docstring for the audit).

    table: one row per month (or year, ...), one column per measure; label columns (month, t,
    reporting_year, ...) are carried through. columns: the count columns (default: every numeric
    column that is not a label). totals: None, "rows" (adds a `total_label` column summing each
    row's counts, e.g. exit groups -> all ceased), "columns" (adds total rows: one per value of
    `groups`, e.g. groups="reporting_year" for annual subtotals of a monthly table, else one for
    the whole table), or "both" (both, with the grand total of each group). Totals are computed
    here, from the cells, so they always add up. marks: "distinct" shows small counts as "<5"
    and cells hidden to protect them as "c"; "uniform" shows every hidden cell as "c" (a reader
    then knows only that it is 0 or more, so fewer cells need hiding; a zero may be hidden); "auto" (default) is
    distinct unless "<5" would itself give a count away (a "<5" total of four "<5" cells: each
    is 1), then uniform. A threshold below 5 is refused.
    """
    t = check_threshold(threshold)
    if totals not in (None, "rows", "columns", "both"):
        raise CareTrendsError(f"unknown totals {totals!r}; use None, 'rows', 'columns' or 'both'")
    if marks not in ("auto", "distinct", "uniform"):
        raise CareTrendsError(f"unknown marks {marks!r}; use 'auto', 'distinct' or 'uniform'")
    cols = _count_columns(table, columns)
    data = table.reset_index(drop=True)
    if data.empty:
        raise CareTrendsError("the table to suppress has no rows")
    x = data[cols].to_numpy(dtype=float)
    n, m = x.shape
    if groups is None:
        group_of = np.zeros(n, dtype=int)
        group_names = [None]
    else:
        labels = data[groups] if isinstance(groups, str) else pd.Series(np.asarray(groups))
        if len(labels) != n:
            raise CareTrendsError("groups must label every row of the table; give a column name")
        codes_, group_names = pd.factorize(labels, sort=False)
        group_of = np.asarray(codes_)
        group_names = list(group_names)
    want_rows = totals in ("rows", "both")
    want_cols = totals in ("columns", "both")

    cells = _Cells()
    cell = np.array([[cells.add(x[i, j]) for j in range(m)] for i in range(n)], dtype=int).reshape(n, m)
    row_total = np.full(n, -1)
    if want_rows:
        for i in range(n):
            row_total[i] = cells.add(x[i].sum(), rank=1)
            cells.equation(list(cell[i]) + [row_total[i]], [1.0] * m + [-1.0])
    col_total = np.full((len(group_names), m), -1)
    grand = np.full(len(group_names), -1)
    if want_cols:
        for g in range(len(group_names)):
            rows = np.flatnonzero(group_of == g)
            for j in range(m):
                col_total[g, j] = cells.add(x[rows, j].sum(), rank=1)
                cells.equation(list(cell[rows, j]) + [col_total[g, j]], [1.0] * rows.size + [-1.0])
            if want_rows:
                grand[g] = cells.add(x[rows].sum(), rank=2)
                cells.equation(list(col_total[g]) + [grand[g]], [1.0] * m + [-1.0])
                cells.equation(list(row_total[rows]) + [grand[g]], [1.0] * rows.size + [-1.0])
    uniform = marks == "uniform"
    try:
        auditor = _Auditor(cells, t, uniform=uniform)
        hidden = auditor.run()
    except _Unprotectable:
        if marks == "distinct":
            raise CareTrendsError("showing small counts as '<5' in this table would give some "
                                  "of them away; use marks='uniform' (every hidden cell 'c')")
        uniform = True
        auditor = _Auditor(cells, t, uniform=True)
        hidden = auditor.run()
    values = auditor.values

    # Assemble the published layout: data rows (each group's total row after its last row).
    out_cols = cols + ([total_label] if want_rows else [])
    layout: list[tuple[dict, list[int]]] = []
    labels_cols = [c for c in data.columns if c not in cols]
    last_row_of = {g: int(np.flatnonzero(group_of == g).max()) for g in range(len(group_names))}
    records = data[labels_cols].to_dict("records")
    for i in range(n):
        layout.append((records[i], list(cell[i]) + ([int(row_total[i])] if want_rows else [])))
        g = group_of[i]
        if want_cols and last_row_of[g] == i:
            label = {c: total_label for c in labels_cols}
            if isinstance(groups, str) and groups in labels_cols:
                label[groups] = group_names[g]
            layout.append((label, list(col_total[g]) + ([int(grand[g])] if want_rows else [])))
    index = range(len(layout))
    label_frame = pd.DataFrame([lab for lab, _ in layout], index=index, columns=labels_cols)
    ids = np.array([ids for _, ids in layout], dtype=int).reshape(len(layout), len(out_cols))
    shown = np.where(auditor.primary[ids] & (not uniform), f"<{t}",
                     np.where(hidden[ids], SECONDARY_MARK,
                              values[ids].round().astype(np.int64).astype(str)))
    display = pd.concat([label_frame, pd.DataFrame(shown.astype(object), index=index,
                                                   columns=out_cols)], axis=1)
    display = display[[c for c in data.columns if c in labels_cols or c in cols]
                      + ([total_label] if want_rows else [])]
    mask = pd.DataFrame(hidden[ids], index=index, columns=out_cols)
    primary = pd.DataFrame(auditor.primary[ids], index=index, columns=out_cols)
    numbers = pd.DataFrame(np.where(hidden[ids], np.nan, values[ids]), index=index, columns=out_cols)
    return SuppressedTable(display=display, mask=mask, primary=primary,
                           values=pd.concat([label_frame, numbers], axis=1), threshold=t,
                           marks="uniform" if uniform else "distinct")


# --------------------------------------------------------------------------- charts

def _periods(monthly: pd.DataFrame, resolution: str) -> np.ndarray:
    """Period number of each month: itself, its reporting-year quarter (Apr-Jun = Q1), or its
    reporting year."""
    if resolution == "month":
        return np.arange(len(monthly))
    ry = monthly["reporting_year"].to_numpy()
    if resolution == "year":
        return pd.factorize(ry)[0]
    quarter = ((monthly["calendar_month"].to_numpy() - 4) % 12) // 3
    return pd.factorize(pd.Series(ry * 4 + quarter))[0]


def _monthly_variables(flows, stock) -> set[str]:
    """The monthly quantities a chart's audit needs: the charted flows; starts and ceased when
    the stock is shown (it moves by their difference); every exit group when ceased and a group
    both appear (ceased is their sum)."""
    needed = set(flows) | ({"starts", "ceased"} if stock else set())
    groups = {f"ceased_{g}" for g in codes.EXIT_GROUPS}
    if "ceased" in needed and needed & groups:
        needed |= groups
    return needed


def _chart_cells(monthly, flows, stock, resolution, annual_totals):
    """Cells and equations of a chart: the published period counts of each flow, the monthly
    stock, and the unpublished monthly flows that link them (stock moves by starts - ceased)."""
    n = len(monthly)
    period = _periods(monthly, resolution)
    cells = _Cells()
    month_cell: dict[str, np.ndarray] = {}
    groups = [f"ceased_{g}" for g in codes.EXIT_GROUPS]
    needed = _monthly_variables(flows, stock)
    for f in sorted(needed):  # monthly values: published themselves only at monthly resolution
        published = f in flows and resolution == "month"
        month_cell[f] = np.array([cells.add(v, published=published) for v in monthly[f]])
    if "ceased" in month_cell and all(g in month_cell for g in groups):
        for i in range(n):  # ceased = the sum of its exit groups
            cells.equation([month_cell["ceased"][i]] + [month_cell[g][i] for g in groups],
                           [1.0] + [-1.0] * len(groups))
    period_cell: dict[str, np.ndarray] = {}
    for f in flows:
        if resolution == "month":
            period_cell[f] = month_cell[f]
            continue
        ids = []
        for q in range(period.max() + 1):
            months = np.flatnonzero(period == q)
            ids.append(cells.add(monthly[f].to_numpy()[months].sum()))
            cells.equation(list(month_cell[f][months]) + [ids[-1]], [1.0] * months.size + [-1.0])
        period_cell[f] = np.array(ids)
    if annual_totals and resolution != "year":
        ry = monthly["reporting_year"].to_numpy()
        for f in flows:  # annual figures are published beside the chart (never hidden here)
            for year in np.unique(ry):
                months = np.flatnonzero(ry == year)
                if months.size < 12:
                    continue
                total = cells.add(monthly[f].to_numpy()[months].sum(), hideable=False,
                                  marked_small=True)
                cells.equation(list(month_cell[f][months]) + [total], [1.0] * months.size + [-1.0])
    stock_cell = None
    if stock:
        stock_cell = np.array([cells.add(v, rank=1) for v in monthly[stock]])
        for i in range(1, n):
            cells.equation([stock_cell[i], stock_cell[i - 1], month_cell["starts"][i],
                            month_cell["ceased"][i]], [1.0, -1.0, -1.0, 1.0])
    return cells, period, period_cell, stock_cell


def chart_counts(monthly: pd.DataFrame, flows=("starts",), stock: str | None = "cla_month_end",
                 threshold: int = PUBLISHED_THRESHOLD, max_hidden_share: float = 0.25,
                 annual_totals: bool = True) -> pd.DataFrame:
    """The numbers a monthly chart of episode data may plot.

    One row per month of `monthly` (from `monthly_series`) with, for each flow in `flows`
    (starts, ceased, ceased_<group>): `<flow>` the count to plot per month (NaN where hidden),
    `<flow>_hidden` (True where hidden: a count of 1-4, or a cell hidden to protect one) and
    `<flow>_period` (the month, quarter or reporting year the value summarises); and, if `stock`
    is given, `<stock>` (NaN where hidden) and `<stock>_hidden`.

    The rule: counts are shown monthly when at most `max_hidden_share` of the months must be
    hidden; otherwise by reporting-year quarter (Apr-Jun, ...), and failing that by reporting
    year. At a coarser resolution each month carries its period's count divided by the months in
    it (a step at the monthly scale; times the months it is the period's count, itself >= 5 or
    hidden). Suppression is audited against everything shown beside the chart: the annual totals
    of each flow (`annual_totals`), and the month-end stock, whose month-to-month change is
    starts minus ceased, so a stock shown exactly cannot give away a hidden start. attrs carry
    `resolution` and `threshold`.
    """
    t = check_threshold(threshold)
    flows = [flows] if isinstance(flows, str) else list(flows)
    unknown = [f for f in flows if f not in FLOW_COLUMNS]
    if unknown or not flows:
        raise CareTrendsError(f"cannot chart {', '.join(unknown) or 'no flow'} as a suppressed "
                              f"flow; use {', '.join(FLOW_COLUMNS)}")
    if not 0 <= max_hidden_share <= 1:
        raise CareTrendsError(f"max_hidden_share {max_hidden_share!r} is not a share; use a "
                              "number from 0 to 1 such as 0.25")
    needed = _monthly_variables(flows, stock) | {"t", "month", "reporting_year", "calendar_month"}
    needed |= {stock} if stock else set()
    missing = sorted(needed - set(monthly.columns))
    if missing:
        raise CareTrendsError(f"the monthly series lacks {', '.join(missing)}; pass the table "
                              "monthly_series returns")
    monthly = monthly.reset_index(drop=True)
    _count_columns(monthly, sorted(needed - {"t", "month", "reporting_year", "calendar_month"}))
    for resolution in ("month", "quarter", "year"):
        cells, period, period_cell, stock_cell = _chart_cells(monthly, flows, stock, resolution,
                                                              annual_totals)
        auditor = _Auditor(cells, t, uniform=True)  # a chart marks hidden months alike
        hidden = auditor.run()
        share = np.mean([hidden[period_cell[f]].mean() for f in flows])
        if share <= max_hidden_share:
            break
    out = monthly[["month", "t", "reporting_year"]].copy()
    sizes = np.bincount(period)
    labels = {"month": monthly["month"].to_numpy(),
              "quarter": np.array([f"{ry - 1}-{str(ry)[-2:]} Q{q}" for ry, q in zip(
                  monthly["reporting_year"], ((monthly["calendar_month"] - 4) % 12) // 3 + 1)]),
              "year": np.array([f"{ry - 1}-{str(ry)[-2:]}" for ry in monthly["reporting_year"]])}
    for f in flows:
        ids = period_cell[f][period]
        per_month = auditor.values[ids] / sizes[period]
        out[f] = np.where(hidden[ids], np.nan, per_month)
        out[f"{f}_hidden"] = hidden[ids]
        out[f"{f}_period"] = labels[resolution]
    if stock:
        out[stock] = np.where(hidden[stock_cell], np.nan, auditor.values[stock_cell])
        out[f"{stock}_hidden"] = hidden[stock_cell]
    out.attrs.update(resolution=resolution, threshold=t,
                     synthetic=bool(monthly.attrs.get("synthetic", False)))
    return out
