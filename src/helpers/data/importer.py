"""`care-trends data import FILE`: add the next EES edition of a dataset the panel uses, and say
what changed.

The import is a transaction. The whole file is validated first (which dataset it is, columns,
types, ranges, duplicate area-year rows, years, geography) and the new panel is built in memory
with it; only then is the file copied into the imports folder and the panel and its provenance
rewritten, each atomically. If anything fails, the imports folder and the panel are left exactly
as they were. A previous import is never deleted or overwritten: a second file for an edition
already imported is refused.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_bytes, atomic_write_text
from helpers.data import build, pathway, sources
from helpers.data.panel import PANEL_FILE, PROVENANCE_FILE

LEVELS = ("National", "Regional", "Local authority")
COUNT_KINDS = {"children", "referrals", "plans"}

# The looked-after dataset's value columns (two header spellings across editions).
_CLA_VALUES = {"children_count": "count", "number": "count", "population_estimate": "population",
               "rate_per_10000": "rate"}


def imports_dir() -> Path:
    """data/raw/imports/ (git-ignored with the rest of data/raw/; the provenance records each
    imported file's SHA-256)."""
    return paths.project_root() / "data" / "raw" / "imports"


def import_files(directory: Path | None) -> list[Path]:
    directory = imports_dir() if directory is None else Path(directory)
    return sorted(directory.glob("*.csv")) if directory.is_dir() else []


def latest_complete_year(today: _dt.date | None = None, period_end: tuple[int, int] = (3, 31)) -> int:
    """The newest year that has ended by `today`: reporting years end on 31 March (workforce
    years on 30 September)."""
    today = today or _dt.date.today()
    return today.year if today > _dt.date(today.year, *period_end) else today.year - 1


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _fail(path: Path, message: str) -> None:
    raise CareTrendsError(f"{Path(path).name}: {message}")


def _row(df: pd.DataFrame, mask: pd.Series) -> str:
    """'row 12 (2025, Local authority 861)': CSV line number of the first flagged row (header = 1)."""
    index = mask[mask].index[0]
    r = df.loc[index]
    where = r.get("old_la_code") or r.get("region_code") or r["geographic_level"]
    return f"line {int(index) + 2} ({r['time_period']}, {r['geographic_level']} {where})"


def _check_values(path: Path, df: pd.DataFrame, column: str, kind: str) -> None:
    """Each value is a number of the right kind or an EES symbol; never text, blank or negative."""
    text = df[column].astype(str).str.strip()
    symbol = text.str.lower().isin(pathway.SYMBOLS)
    number = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    bad = number.isna() & ~symbol
    if bad.any():
        value = text[bad].iloc[0]
        _fail(path, f"{column} has {value!r} on {_row(df, bad)}; expected a number or an EES symbol "
                    "(c, x, z, u, k, low) - is a column shifted or the file edited by hand?")
    if (number < 0).any():
        _fail(path, f"{column} is negative ({text[number < 0].iloc[0]}) on {_row(df, number < 0)}; "
                    "counts, rates and percentages cannot be below zero")
    if kind in COUNT_KINDS or kind == "population":
        frac = number.notna() & (number != number.round())
        if frac.any():
            _fail(path, f"{column} should hold whole numbers but has {text[frac].iloc[0]} on {_row(df, frac)}")
    if kind == "percent" and (number > 100).any():
        _fail(path, f"{column} is a percentage but has {text[number > 100].iloc[0]} on {_row(df, number > 100)}")
    if kind == "rate" and (number > 10_000).any():
        _fail(path, f"{column} is a rate per 10,000 but has {text[number > 10_000].iloc[0]} on "
                    f"{_row(df, number > 10_000)}")


def _check_frame(path: Path, df: pd.DataFrame, today: _dt.date | None, period_end: tuple[int, int],
                 extra_keys: list[str]) -> None:
    latest = latest_complete_year(today, period_end)
    years = pd.to_numeric(df["time_period"].str.strip(), errors="coerce")
    bad = years.isna() | (years != years.round())
    if bad.any():
        _fail(path, f"time_period must be a year such as 2026; found {df.loc[bad, 'time_period'].iloc[0]!r} "
                    f"on {_row(df, bad)}")
    if (years > latest).any():
        _fail(path, f"time_period {int(years.max())} has not ended yet: the newest year that has ended "
                    f"is {latest}; check the file is not mislabelled")
    if (years < 2000).any():
        _fail(path, f"time_period {int(years.min())} is before 2000; this is not an EES edition")
    levels = set(df["geographic_level"])
    if not levels <= set(LEVELS):
        _fail(path, f"unexpected geographic_level {sorted(levels - set(LEVELS))[0]!r}; an EES by-local-"
                    "authority file has National, Regional and Local authority rows only")
    for year in sorted(set(years.astype(int))):
        in_year = years.eq(year)
        if not (in_year & df["geographic_level"].eq("National")).any():
            _fail(path, f"no National (England) row for {year}; download the full by-local-authority file")
        if not (in_year & df["geographic_level"].eq("Local authority")).any():
            _fail(path, f"no Local authority rows for {year}; download the by-local-authority file")
    la = df["geographic_level"].eq("Local authority")
    bad = la & ~df["old_la_code"].str.strip().str.fullmatch(r"\d{3}( / \d{3})*")
    if bad.any():
        _fail(path, f"old_la_code must be a three-digit LA code on every LA row; found "
                    f"{df.loc[bad, 'old_la_code'].iloc[0]!r} on {_row(df, bad)}")
    bad = la & ~df["new_la_code"].str.strip().str.fullmatch(r"E\d{8}( / E\d{8})*")
    if bad.any():
        _fail(path, f"new_la_code must be a GSS code such as E06000021 on every LA row; found "
                    f"{df.loc[bad, 'new_la_code'].iloc[0]!r} on {_row(df, bad)}")
    bad = la & df["la_name"].str.strip().eq("")
    if bad.any():
        _fail(path, f"la_name is empty on {_row(df, bad)}")
    region = df["geographic_level"].eq("Regional")
    bad = region & ~df["region_code"].str.strip().str.fullmatch(r"E1[23]\d{6}")
    if bad.any():
        _fail(path, f"region_code must be a GSS region code (E12.../E13...) on every regional row; found "
                    f"{df.loc[bad, 'region_code'].iloc[0]!r} on {_row(df, bad)}")
    area = df["old_la_code"].where(la, df["region_code"].where(region, "England"))
    keys = pd.DataFrame({"year": years, "level": df["geographic_level"], "area": area.str.strip()})
    for col in extra_keys:
        keys[col] = df[col]
    dup = keys.duplicated(keep=False)
    if dup.any():
        _fail(path, f"duplicate rows for the same area and year ({_row(df, dup)} and "
                    f"{int(dup[dup].index[1]) + 2}); each area-year may appear once")


def validate_edition(path: Path, today: _dt.date | None = None) -> tuple[str, pd.DataFrame]:
    """(dataset key, the file as strings) after checking every row; CareTrendsError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CareTrendsError(f"file {path} not found; give the path of the downloaded EES CSV")
    columns = set(pathway.header_of(path))
    try:
        dataset = pathway.dataset_of(path)
    except CareTrendsError as exc:
        if "looks like" in str(exc):
            raise
        # Not like any pathway file: name what the looked-after file would need (or that the
        # file is not a readable CSV at all).
        build.read_ees_edition(path)
        raise
    if dataset == pathway.CLA_DATASET:
        build.read_ees_edition(path)            # structure, population_type labels, codes
        df = pathway.read_csc_frame(path)
        type_col = "population_type" if "population_type" in columns else "population_count"
        _check_frame(path, df, today, (3, 31), [type_col])
        for column, kind in _CLA_VALUES.items():
            if column in df.columns:
                _check_values(path, df, column, "children" if kind == "count" else kind)
        return dataset, df
    spec = pathway.DATASETS_BY_KEY[dataset]
    df = pathway.read_csc_frame(path)
    _check_frame(path, df, today, spec.period_end, [])
    for value in spec.values:
        _check_values(path, df, value.column, value.unit)
    return dataset, df


# --------------------------------------------------------------------------------------------
# What changed
# --------------------------------------------------------------------------------------------

@dataclass
class ImportResult:
    """What an import did (or, with dry_run, would do)."""
    dataset: str
    title: str
    edition: int
    source_file: Path
    stored_as: Path
    years_in_file: list[int]
    years_added: dict[str, list[int]]
    revisions: pd.DataFrame      # area, la_code, measure, year, old_value, new_value, old_status, new_status
    panel: pd.DataFrame = field(repr=False)
    written: bool

    def summary_lines(self, limit: int = 12) -> list[str]:
        verb = "imported" if self.written else "would import (dry run)"
        lines = [f"{verb} {self.source_file.name} as the {self.edition} edition of '{self.title}' "
                 f"({self.stored_as.name}); years in the file: {_span(self.years_in_file)}"]
        added = {m: y for m, y in self.years_added.items() if y}
        if added:
            by_years: dict[str, list[str]] = {}
            for measure, years in added.items():
                by_years.setdefault(_span(years), []).append(measure)
            lines += [f"years added: {span} for {', '.join(ms)}" for span, ms in by_years.items()]
        else:
            lines.append("years added: none")
        if self.revisions.empty:
            lines.append("back-years revised: none")
        else:
            lines.append(f"back-years revised: {len(self.revisions)} figure(s)")
            for r in self.revisions.head(limit).itertuples():
                lines.append(f"  {r.area} {r.year} {r.measure} revised from {_fmt(r.old_value, r.old_status)} "
                             f"to {_fmt(r.new_value, r.new_status)}")
            if len(self.revisions) > limit:
                lines.append(f"  ... and {len(self.revisions) - limit} more (ImportResult.revisions)")
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())


def _span(years) -> str:
    years = sorted(int(y) for y in years)
    if not years:
        return "none"
    return str(years[0]) if len(years) == 1 else f"{years[0]}-{years[-1]}" if \
        years == list(range(years[0], years[-1] + 1)) else ", ".join(map(str, years))


def _fmt(value, status) -> str:
    if pd.isna(value):
        return str(status)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def compare_panels(old: pd.DataFrame, new: pd.DataFrame) -> tuple[dict[str, list[int]], pd.DataFrame]:
    """(years added per measure, revised figures) between two panels."""
    def keyed(p):
        return p.assign(area_key=p["la_code"].fillna(p["new_la_code"]))
    old, new = keyed(old), keyed(new)
    added = {}
    for measure in new["measure"].unique():
        before = set(old.loc[old["measure"].eq(measure), "year"])
        added[str(measure)] = sorted(int(y) for y in set(new.loc[new["measure"].eq(measure), "year"]) - before)
    keys = ["geographic_level", "area_key", "measure", "year"]
    both = old[keys + ["value", "count_status"]].merge(
        new[keys + ["value", "count_status", "la_name", "la_code"]], on=keys, suffixes=("_old", "_new"))
    same_value = (both["value_old"].eq(both["value_new"])
                  | (both["value_old"].isna() & both["value_new"].isna()))
    changed = both[~same_value | both["count_status_old"].ne(both["count_status_new"])]
    order = {"National": 0, "Regional": 1, "Local authority": 2}
    changed = changed.assign(_l=changed["geographic_level"].map(order)).sort_values(
        ["_l", "area_key", "measure", "year"])
    revisions = pd.DataFrame({
        "area": changed["la_name"].astype(str), "la_code": changed["la_code"], "measure": changed["measure"],
        "year": changed["year"].astype(int), "old_value": changed["value_old"],
        "new_value": changed["value_new"], "old_status": changed["count_status_old"],
        "new_status": changed["count_status_new"]}).reset_index(drop=True)
    return added, revisions


# --------------------------------------------------------------------------------------------
# The transaction
# --------------------------------------------------------------------------------------------

def _edition_year(df: pd.DataFrame) -> int:
    return int(pd.to_numeric(df["time_period"].str.strip()).max())


def stored_name(dataset: str, edition: int) -> str:
    stem = ("cla_number_and_rate_per_10k_children" if dataset == pathway.CLA_DATASET
            else Path(pathway.DATASETS_BY_KEY[dataset].raw_file).stem.rsplit("_20", 1)[0])
    return f"{stem}_release{edition}.csv"


def _snapshot_edition(raw_dir: Path, dataset: str) -> int:
    if dataset == pathway.CLA_DATASET:
        return max(int(re.search(r"release(\d{4})", rel).group(1)) for rel in build.EES_FILES)
    spec = pathway.DATASETS_BY_KEY[dataset]
    return _edition_year(pathway.read_csc_frame(Path(raw_dir) / spec.raw_file))


def import_file(file, raw_dir=None, output_dir=None, imports=None, *, dry_run: bool = False,
                today: _dt.date | None = None) -> ImportResult:
    """Validate FILE as the next edition of a dataset the panel uses, build the panel with it and
    (unless dry_run) keep a copy in the imports folder and rewrite the panel and provenance in
    output_dir (default data/processed/). Returns what changed; raises CareTrendsError with
    nothing touched if any check fails."""
    file = Path(file)
    raw = paths.raw_dir(raw_dir)
    out_dir = Path(output_dir) if output_dir else paths.processed_dir()
    target_dir = imports_dir() if imports is None else Path(imports)

    dataset, df = validate_edition(file, today)
    title = pathway.CLA_TITLE if dataset == pathway.CLA_DATASET else pathway.DATASETS_BY_KEY[dataset].title
    edition = _edition_year(df)
    snapshot = _snapshot_edition(raw, dataset)
    if edition <= snapshot:
        raise CareTrendsError(f"{file.name} is the {edition} edition of '{title}'; the panel already uses "
                              f"the {snapshot} release - import only a newer edition")
    existing = import_files(target_dir)
    for path in existing:
        if pathway.dataset_of(path) == dataset:
            other = _edition_year(pathway.read_csc_frame(path))
            if other >= edition:
                raise CareTrendsError(
                    f"{file.name} is the {edition} edition of '{title}', but the {other} edition is already "
                    f"imported ({path.name} in {target_dir}); imports are never replaced - if this file "
                    "corrects that one, move the old file out of the imports folder yourself and import again")
    target = target_dir / stored_name(dataset, edition)
    if target.exists():
        raise CareTrendsError(f"{target} already exists; imports are never overwritten - move it aside first")

    checksums = sources.check_raw_files(raw)
    with tempfile.TemporaryDirectory(prefix="care-trends-import-") as tmp:
        staged = Path(tmp) / target.name      # built under its final name so a rebuild is identical
        shutil.copyfile(file, staged)
        old_panel = build.assemble_panel(raw, existing)
        new_panel = build.assemble_panel(raw, existing + [staged])
        panel_text = build.panel_to_csv_text(new_panel)
        imported = {p.name: sources.sha256_file(p) for p in existing + [staged]}
        provenance_text = build.provenance(checksums, imported, new_panel)
        years_added, revisions = compare_panels(old_panel, new_panel)
        result = ImportResult(dataset=dataset, title=title, edition=edition, source_file=file,
                              stored_as=target, years_in_file=sorted(set(pd.to_numeric(df["time_period"]).astype(int))),
                              years_added=years_added, revisions=revisions, panel=new_panel, written=False)
        if dry_run:
            return result
        _commit(staged, target, out_dir, panel_text, provenance_text)
    result.written = True
    return result


def _commit(staged: Path, target: Path, out_dir: Path, panel_text: str, provenance_text: str) -> None:
    """Place the import and rewrite the panel and provenance; on any failure put every file back."""
    created_dir = not target.parent.exists()
    before = {name: (out_dir / name).read_bytes() if (out_dir / name).is_file() else None
              for name in (PANEL_FILE, PROVENANCE_FILE)}
    placed = False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(staged, tmp)
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, target)          # fails if target appeared meanwhile: never overwrite
            except FileExistsError:
                raise
            except OSError:                   # a filesystem without hard links
                if target.exists():
                    raise FileExistsError(target) from None
                os.replace(tmp, target)
            placed = True
        finally:
            Path(tmp).unlink(missing_ok=True)
        for name, text in ((PANEL_FILE, panel_text), (PROVENANCE_FILE, provenance_text)):
            os.chmod(atomic_write_text(out_dir / name, text), 0o644)
    except BaseException:
        if placed:
            target.unlink(missing_ok=True)    # only the file this import placed
        for name, data in before.items():
            if data is None:
                (out_dir / name).unlink(missing_ok=True)
            elif (out_dir / name).read_bytes() != data:
                atomic_write_bytes(out_dir / name, data)
        if created_dir:
            try:
                target.parent.rmdir()
            except OSError:
                pass
        raise
