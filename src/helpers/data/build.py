"""Build the tidy panel (area x reporting year x measure, 2010 onwards) from the official raw files.

Counts for each year come from the newest edition that contains it: EES releases for 2018 onwards
(plus any imported newer edition), the SFR underlying-data files for 2010-2017. Rates are published
where DfE published them (EES 2018+; LAIT for the 31 March rate 2015-2017), else computed from the
counts and ONS mid-year 0-17 populations (reporting year Y uses mid-(Y-1)).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.errors import CareTrendsError
from helpers.core.vocab import LOOKED_AFTER_MEASURES, MEASURES
from helpers.data import pathway

__all__ = ["MEASURES", "LOOKED_AFTER_MEASURES", "PANEL_COLUMNS", "assemble_panel", "read_ees_edition"]
LEVELS = ("National", "Regional", "Local authority")
ENGLAND_CODE = "E92000001"
FIRST_YEAR = 2010

PANEL_COLUMNS = [
    "year", "geographic_level", "la_code", "new_la_code", "la_name", "region_code", "region_name",
    "measure", "count", "count_status", "suppressed", "count_rounding", "count_source",
    "population", "population_source", "rate_per_10000", "rate_source",
    "boundary_flag", "boundary_year", "boundary_change",
    # value: the published figure in `unit` for every measure (= count for counts of children,
    # referrals or plans; a percentage, £ or rate where count is empty because it counts nothing).
    "value", "unit",
]

# EES value codes (GSS standard symbols) that mean "no number here".
SUPPRESSED_CODES = {"c", "x", "low", "u"}      # confidential / suppressed small numbers
NOT_APPLICABLE_CODES = {"z", ":", "-", ".."}   # not applicable / not available

EES_REQUIRED = {"time_period", "geographic_level", "region_code", "region_name", "old_la_code",
                "la_name", "new_la_code", "population_estimate", "rate_per_10000"}
EES_TYPE_COLUMNS = ("population_type", "population_count")   # 2025 name, pre-2025 name
EES_COUNT_COLUMNS = ("children_count", "number")


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _status(raw: pd.Series) -> pd.Series:
    """'published' for a number, else 'suppressed' / 'not_applicable' from the publisher's symbol."""
    text = raw.astype("string").str.strip().str.lower()
    numeric = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce").notna()
    status = pd.Series("not_applicable", index=raw.index, dtype="object")
    status[text.isin(SUPPRESSED_CODES)] = "suppressed"
    status[numeric] = "published"
    return status


def _number(raw: pd.Series) -> pd.Series:
    """Numbers as float; every symbol (x, c, z, ...) becomes NaN, never 0."""
    text = raw.astype("string").str.strip().str.replace(",", "", regex=False)
    return pd.to_numeric(text, errors="coerce").astype("float64")


def _measure_from_type(text: pd.Series) -> pd.Series:
    t = text.str.lower()
    out = pd.Series(pd.NA, index=text.index, dtype="object")
    out[t.str.contains("31 march")] = "cla_31_march"
    out[t.str.contains("starting")] = "starts"
    out[t.str.contains("ceasing")] = "ceased"
    return out


def _name_key(name: pd.Series) -> pd.Series:
    return name.astype("string").str.strip().str.casefold()


# --------------------------------------------------------------------------------------------
# EES "CLA numbers and rates per 10,000 children - by local authority"
# --------------------------------------------------------------------------------------------

def read_ees_edition(path: Path, label: str | None = None) -> pd.DataFrame:
    """One EES edition as long rows with raw strings kept for status/rounding decisions.

    Raises CareTrendsError (one line) if the file is not this dataset."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise CareTrendsError(
            f"{path.name} is not a readable CSV ({type(exc).__name__}); download the EES data file "
            "'CLA numbers and rates per 10,000 children - by local authority' as CSV") from exc
    df.columns = [c.strip() for c in df.columns]
    type_col = next((c for c in EES_TYPE_COLUMNS if c in df.columns), None)
    count_col = next((c for c in EES_COUNT_COLUMNS if c in df.columns), None)
    missing = sorted(EES_REQUIRED - set(df.columns))
    if type_col is None:
        missing.append("population_type")
    if count_col is None:
        missing.append("children_count")
    if missing:
        raise CareTrendsError(
            f"{path.name} is not the EES 'CLA numbers and rates per 10,000 children - by local "
            f"authority' file: missing column(s) {', '.join(missing)}; download that data file as CSV")
    measure = _measure_from_type(df[type_col])
    if measure.isna().any():
        bad = df.loc[measure.isna(), type_col].iloc[0]
        raise CareTrendsError(
            f"{path.name}: unexpected {type_col} value {bad!r}; expected children looked after on "
            "31 March / starting / ceasing each year - is this the CLA numbers and rates file?")
    years = pd.to_numeric(df["time_period"], errors="coerce")
    if years.isna().any() or not years.between(2000, 2100).all():
        raise CareTrendsError(
            f"{path.name}: time_period must be a reporting year such as 2026; found "
            f"{df.loc[years.isna() | ~years.between(2000, 2100), 'time_period'].iloc[0]!r}")
    levels = set(df["geographic_level"])
    if not {"National", "Local authority"} <= levels:
        raise CareTrendsError(
            f"{path.name}: needs National and Local authority rows (found {sorted(levels)}); "
            "download the by-local-authority file, not a national summary")
    edition = int(years.max())
    la_rows = df["geographic_level"].eq("Local authority")
    if la_rows.any() and not df.loc[la_rows, "old_la_code"].str.fullmatch(r"\d{3}").all():
        raise CareTrendsError(f"{path.name}: old_la_code must be three digits on every LA row")
    out = pd.DataFrame({
        "year": years.astype(int),
        "geographic_level": df["geographic_level"],
        "la_code": df["old_la_code"].where(la_rows, pd.NA),
        "new_la_code": np.where(la_rows, df["new_la_code"],
                                np.where(df["geographic_level"].eq("National"),
                                         df.get("country_code", ENGLAND_CODE), df["region_code"])),
        "la_name": np.where(la_rows, df["la_name"],
                            np.where(df["geographic_level"].eq("National"), "England",
                                     df["region_name"])),
        "region_code": df["region_code"].replace("", pd.NA),
        "region_name": df["region_name"].replace("", pd.NA),
        "measure": measure,
        "count_raw": df[count_col],
        "population_raw": df["population_estimate"],
        "rate_raw": df["rate_per_10000"],
        "edition": edition,
        "count_source": label or f"EES {edition} release ({path.name})",
    })
    return out


# --------------------------------------------------------------------------------------------
# SFR underlying data 2010-2017
# --------------------------------------------------------------------------------------------

# year -> measure -> (file, column holding the LA total). Explicit because headers differ by year;
# NB the 2015 ADM header says CLA_started2014 but the file holds 2015 figures.
SFR_FILES = {
    2010: {"cla_31_march": ("2010_SFR27_2010_March.csv", "MarTotal_2010"),
           "starts": ("2010_SFR27_2010_Started.csv", "StartTotal_2010"),
           "ceased": ("2010_SFR27_2010_Ceased.csv", "CeasedTotal_2010")},
    2011: {"cla_31_march": ("2011_SFR21_CLA.csv", "CLA_Mar2011"),
           "starts": ("2011_SFE21_ADM.csv", "CLA_started2011"),
           "ceased": ("2011_SFR21_CEA.csv", "CLA_cease")},
    2012: {"cla_31_march": ("2012_UnderlyingData_SFR20_CLA2012.csv", "CLA_Mar2012"),
           "starts": ("2012_UnderlyingData_SFR20_ADM2012.csv", "CLA_started2012"),
           "ceased": ("2012_UnderlyingData_SFR_CEA2012.csv", "CLA_cease")},
    2013: {"cla_31_march": ("2013_SFR36_CLA2013.csv", "CLA_Mar2013"),
           "starts": ("2013_SFR36_ADM2013.csv", "CLA_started2013"),
           "ceased": ("2013_SFR36_CEA2013.csv", "CLA_cease")},
    2014: {"cla_31_march": ("2014_SFR36_CLA2014.csv", "CLA_Mar2014"),
           "starts": ("2014_SFR36_ADM2014.csv", "CLA_started2014"),
           "ceased": ("2014_SFR36_CEA2014.csv", "CLA_cease")},
    2015: {"cla_31_march": ("2015_SFR34_CLA2015.csv", "CLA_Mar2015"),
           "starts": ("2015_SFR34_ADM2015.csv", "CLA_started2014"),   # header quirk, holds 2015
           "ceased": ("2015_SFR34_CEA2015.csv", "CLA_cease")},
    2016: {"cla_31_march": ("2016_SFR41_CLA2016.csv", "CLA_Mar2016"),
           "starts": ("2016_SFR41_ADM2016.csv", "CLA_started2016"),
           "ceased": ("2016_SFR41_CEA2016.csv", "CLA_cease")},
    2017: {"cla_31_march": ("2017_SFR50_CLA2017.csv", "CLA_Mar2017"),
           "starts": ("2017_SFR50_ADM2017.csv", "CLA_started2017"),
           "ceased": ("2017_SFR50_CEA2017.csv", "CLA_cease2017")},
}
SFR_DIR = "dfe_sfr_2010_2017"
_SFR_LEVEL = {"national": "National", "region": "Regional", "gor": "Regional", "la": "Local authority"}


SFR_NUMBERS = {2010: "SFR27/2010", 2011: "SFR21/2011", 2012: "SFR20/2012", 2013: "SFR36/2013",
               2014: "SFR36/2014", 2015: "SFR34/2015", 2016: "SFR41/2016", 2017: "SFR50/2017"}


def _sfr_label(year: int, file: str) -> str:
    return f"DfE {SFR_NUMBERS[year]} underlying data ({file})"


def read_sfr(raw_dir: Path) -> pd.DataFrame:
    """All SFR LA/region/national totals 2010-2017 as long rows (raw strings kept)."""
    frames = []
    for year, files in SFR_FILES.items():
        for measure, (file, column) in files.items():
            df = pd.read_csv(raw_dir / SFR_DIR / file, dtype=str, encoding="latin-1",
                             keep_default_na=False)
            df.columns = [c.strip() for c in df.columns]
            df = df[df["geog_l"].str.strip() != ""]   # the 2017 CLA file has a blank trailing row
            level = df["geog_l"].str.strip().str.lower().map(_SFR_LEVEL)
            if level.isna().any():
                raise CareTrendsError(f"{file}: unknown geography level {df['geog_l'][level.isna()].iloc[0]!r}")
            is_la = level.eq("Local authority")
            frame = pd.DataFrame({
                "year": year,
                "geographic_level": level,
                "la_code": df["geog_c"].str.strip().where(is_la, pd.NA),
                "new_la_code": df["New_geog_code"].str.strip() if "New_geog_code" in df else pd.NA,
                "la_name": df["geog_n"].str.strip(),
                "measure": measure,
                "count_raw": df[column],
                "count_source": _sfr_label(year, file),
            })
            if measure == "cla_31_march" and year == 2010:
                frame["population_raw"] = df["Mid2009Pop0-17"]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Populations and published rates from other files
# --------------------------------------------------------------------------------------------

ONS_FILE = "dfe_csc_outcomes/ons_mid-year_population_estimates_2012_to_2024.csv"
LAIT_HEAD = "dfe_lait/bds_long_0_HEAD_2e30e39.parquet"
LAIT_OLD = "dfe_lait/bds_long_0_09c1940.parquet"


def read_ons(raw_dir: Path) -> pd.DataFrame:
    """ONS mid-year 0-17 populations keyed to the reporting year that uses them (mid-Y -> Y+1)."""
    df = pd.read_csv(raw_dir / ONS_FILE, dtype=str, keep_default_na=False)
    level = df["geographic_level"]
    key = np.where(level.eq("Local authority"), df["old_la_code"],
                   np.where(level.eq("National"), ENGLAND_CODE, df["region_code"]))
    mid_year = df["time_period"].astype(int)
    return pd.DataFrame({
        "year": mid_year + 1,
        "key": key,
        "ons_population": _number(df["population_estimate"]),
        "ons_source": "ONS mid-" + df["time_period"] + " estimate",
    })


def read_lait_rates(raw_dir: Path, years=(2015, 2016, 2017)) -> pd.DataFrame:
    """LAIT published 31 March rates per 10,000 for LAs, newest LAIT file first."""
    frames = []
    for rank, rel in enumerate((LAIT_HEAD, LAIT_OLD)):
        df = pd.read_parquet(raw_dir / rel, columns=["Short Desc", "Years", "Values", "LA Number"],
                             filters=[("Short Desc", "==", "LAC")])
        df = df[df["Years"].isin([str(y) for y in years]) & df["LA Number"].notna()]
        frames.append(pd.DataFrame({
            "year": df["Years"].astype(int), "key": df["LA Number"].astype(int).astype(str),
            "lait_rate": _number(df["Values"]), "rank": rank,
            "lait_source": f"LAIT {Path(rel).stem}",
        }))
    out = pd.concat(frames).dropna(subset=["lait_rate"]).sort_values(["year", "key", "rank"])
    return out.drop_duplicates(["year", "key"]).drop(columns="rank")


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------

EES_FILES = (
    "dfe_ees_2022/cla_number_and_rate_per_10k_children_release2022_2018-2022.csv",
    "dfe_csc_outcomes/cla_number_and_rate_per_10k_children_release2023_2019-2023.csv",
    "dfe_csc_outcomes/cla_number_and_rate_per_10k_children_release2024_2020-2024.csv",
    "dfe_csc_outcomes/cla_number_and_rate_per_10k_children_release2025_2021-2025.csv",
)


def _newest_edition_per_year(editions: list[pd.DataFrame]) -> pd.DataFrame:
    """Keep, for each year, only the rows of the newest edition containing that year."""
    ees = pd.concat(editions, ignore_index=True)
    newest = ees.groupby("year")["edition"].transform("max")
    return ees[ees["edition"].eq(newest)].reset_index(drop=True)


def _area_key(df: pd.DataFrame) -> pd.Series:
    """LA -> old code; region/England -> GSS code. One key per area across all sources."""
    return df["la_code"].where(df["geographic_level"].eq("Local authority"), df["new_la_code"])


def _canonical_areas(ees: pd.DataFrame, ons_raw: pd.DataFrame) -> pd.DataFrame:
    """One name/new code/region per area from its newest appearance (EES, then ONS)."""
    cols = ["geographic_level", "la_code", "new_la_code", "la_name", "region_code", "region_name"]
    a = ees.sort_values("year")[cols + ["year"]]
    lvl = ons_raw["geographic_level"]
    b = pd.DataFrame({
        "geographic_level": lvl,
        "la_code": ons_raw["old_la_code"].where(lvl.eq("Local authority"), pd.NA),
        "new_la_code": np.where(lvl.eq("Local authority"), ons_raw["new_la_code"],
                                np.where(lvl.eq("National"), ENGLAND_CODE, ons_raw["region_code"])),
        "la_name": np.where(lvl.eq("Local authority"), ons_raw["la_name"],
                            np.where(lvl.eq("National"), "England", ons_raw["region_name"])),
        "region_code": ons_raw["region_code"].replace("", pd.NA),
        "region_name": ons_raw["region_name"].replace("", pd.NA),
        "year": ons_raw["time_period"].astype(int) + 1,
    })
    both = pd.concat([b.assign(from_ees=False), a.assign(from_ees=True)], ignore_index=True)
    both["key"] = _area_key(both)
    both = both[both["key"].notna() & both["key"].ne("")]
    newest = both.sort_values(["from_ees", "year"], kind="stable").drop_duplicates("key", keep="last")
    return newest.drop(columns=["year", "from_ees"])


def _attach_sfr_identity(sfr: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """SFR rows carry old codes (LAs) or upper-case names (regions): map both to canonical areas."""
    sfr = sfr.copy()
    nat = sfr["geographic_level"].eq("National")
    reg = sfr["geographic_level"].eq("Regional")
    region_by_name = areas[areas["geographic_level"].eq("Regional")].assign(
        name_key=lambda d: _name_key(d["la_name"])).set_index("name_key")["key"]
    sfr["key"] = sfr["la_code"]
    sfr.loc[nat, "key"] = ENGLAND_CODE
    sfr.loc[reg, "key"] = _name_key(sfr.loc[reg, "la_name"]).map(region_by_name)
    if sfr.loc[reg, "key"].isna().any():
        bad = sfr.loc[reg & sfr["key"].isna(), "la_name"].iloc[0]
        raise CareTrendsError(f"SFR region {bad!r} not found in the EES/ONS region list")
    return sfr.drop(columns=["la_code", "new_la_code", "la_name"])


def _population_table(keys_years: pd.DataFrame, all_ees: pd.DataFrame, chosen: pd.Series,
                      ons: pd.DataFrame, pop2010: pd.DataFrame) -> pd.DataFrame:
    """Population per area-year, first available of: the EES edition the counts came from, an
    older EES edition, ONS mid-(Y-1), the mid-2009 figure printed in SFR27/2010. Gaps (mid-2010 and
    mid-2011 are not in the snapshot; ONS withholds pre-2019 Dorset/Poole/Bournemouth) are filled by
    linear interpolation within the area's own series, or carried from the nearest year at the ends."""
    ees = all_ees.assign(population=_number(all_ees["population_raw"])).dropna(subset=["population"])
    ees = ees.assign(priority=np.where(ees["edition"].eq(ees["year"].map(chosen)), 0,
                                       1 + ees["edition"].max() - ees["edition"]))
    ees = ees.assign(population_source="EES " + ees["edition"].astype(str) + " release")
    candidates = pd.concat([
        ees[["key", "year", "population", "population_source", "priority"]],
        ons.rename(columns={"ons_population": "population", "ons_source": "population_source"})
           .dropna(subset=["population"]).assign(priority=100),
        pop2010.rename(columns={"pop_mid2009": "population"}).dropna(subset=["population"])
               .assign(year=2010, population_source="ONS mid-2009 estimate (in SFR27/2010)", priority=200),
    ], ignore_index=True)
    best = (candidates.sort_values(["key", "year", "priority"])
            .drop_duplicates(["key", "year"])[["key", "year", "population", "population_source"]])
    table = keys_years.drop_duplicates().merge(best, on=["key", "year"], how="left")
    table = table.sort_values(["key", "year"], ignore_index=True)
    known = table["population"].notna()
    by_key = table.groupby("key")["population"]
    inside = by_key.transform(lambda s: s.interpolate(method="linear", limit_area="inside"))
    edges = by_key.transform(lambda s: s.ffill().bfill())
    filled = inside.round().where(inside.notna(), edges)
    table["population"] = table["population"].where(known, filled)
    table["population_source"] = table["population_source"].where(
        known, np.where(inside.notna(), "interpolated between published estimates",
                        np.where(edges.notna(), "carried from nearest published estimate", None)))
    table["population_estimated"] = ~known & table["population"].notna()
    return table


def _rates(panel: pd.DataFrame, lait: pd.DataFrame) -> pd.DataFrame:
    panel = panel.merge(lait, on=["year", "key"], how="left")
    published = _number(panel["rate_raw"]).where(panel["count_status"].eq("published"))
    use_lait = (panel["measure"].eq("cla_31_march") & panel["lait_rate"].notna()
                & panel["count_status"].eq("published") & published.isna())
    published = published.where(~use_lait, panel["lait_rate"])
    computed = (panel["count"] / panel["population"] * 10_000).round(1)
    interpolated = panel["population_estimated"]
    panel["rate_per_10000"] = published.where(published.notna(), computed)
    panel["rate_source"] = np.where(
        published.notna(), "published",
        np.where(computed.notna(),
                 np.where(interpolated, "computed_interpolated_population", "computed"), None))
    return panel.drop(columns=["lait_rate", "lait_source", "rate_raw", "population_estimated"])


def _count_rounding(panel: pd.DataFrame) -> pd.Series:
    """LA counts are exact; national/regional totals are rounded by DfE (2010 England to 100)."""
    rounding = pd.Series("exact", index=panel.index, dtype="object")
    rounding[~panel["geographic_level"].eq("Local authority")] = "nearest_10"
    rounding[panel["geographic_level"].eq("National") & panel["year"].eq(2010)] = "nearest_100"
    rounding[panel["count"].isna()] = None
    return rounding


def _complete_la_years(panel: pd.DataFrame) -> pd.DataFrame:
    """Drop LA-years where the LA did not exist (every value 'z' and no population), then add
    rows for years inside an LA's lifetime that a source left out (flagged 'not_in_source')."""
    la = panel["geographic_level"].eq("Local authority")
    na_row = panel["count_status"].eq("not_applicable") & _number(panel["population_raw"]).isna()
    absent = na_row.groupby([panel["key"], panel["year"]]).transform("all") & la
    panel = panel[~absent]
    la = panel["geographic_level"].eq("Local authority")
    life = panel[la].groupby("key")["year"].agg(["min", "max"])
    grid = pd.DataFrame(
        [(k, y, m) for k, r in life.iterrows() for y in range(r["min"], r["max"] + 1)
         for m in LOOKED_AFTER_MEASURES],
        columns=["key", "year", "measure"])
    grid["geographic_level"] = "Local authority"
    merged = grid.merge(panel[la], on=["key", "year", "measure", "geographic_level"], how="left",
                        indicator=True)
    added = merged["_merge"].eq("left_only")
    merged.loc[added, "count_status"] = "not_in_source"
    # Name the file the LA was missing from: the source of that year's other LA rows.
    year_source = panel[la].groupby(["year", "measure"])["count_source"].first()
    merged.loc[added, "count_source"] = [
        f"not listed in {year_source.get((y, m), 'the source for that year')}"
        for y, m in zip(merged.loc[added, "year"], merged.loc[added, "measure"])]
    merged = merged.drop(columns="_merge")
    return pd.concat([panel[~la], merged], ignore_index=True)


def detect_boundary_changes(panel: pd.DataFrame) -> pd.DataFrame:
    """Boundary changes seen in the data: LA codes that stop and others that start in the same
    year within one region. Returns one row per affected LA code."""
    la = panel[panel["geographic_level"].eq("Local authority") & ~panel["count_status"].eq("not_in_source")]
    life = la.groupby("key").agg(first=("year", "min"), last=("year", "max"),
                                 region_name=("region_name", "last"), la_name=("la_name", "last"))
    first_year, last_year = panel["year"].min(), panel["year"].max()
    ended = life[life["last"] < last_year].assign(change_year=lambda d: d["last"] + 1, role="predecessor")
    started = life[life["first"] > first_year].assign(change_year=lambda d: d["first"], role="successor")
    moves = pd.concat([ended, started]).reset_index().rename(columns={"key": "la_code"})
    rows = []
    for (year, region), group in moves.groupby(["change_year", "region_name"], sort=True):
        before = group[group["role"].eq("predecessor")].sort_values("la_code")
        after = group[group["role"].eq("successor")].sort_values("la_code")
        describe = (f"{' + '.join(before['la_name'] + ' (' + before['la_code'] + ')') or 'nothing'}"
                    f" -> {' + '.join(after['la_name'] + ' (' + after['la_code'] + ')') or 'nothing'}"
                    f" from reporting year {year}")
        for _, r in group.iterrows():
            rows.append({"la_code": r["la_code"], "la_name": r["la_name"], "region_name": region,
                         "role": r["role"], "boundary_year": int(year),
                         "last_year_before": int(year) - 1,
                         "predecessors": " ".join(before["la_code"]),
                         "successors": " ".join(after["la_code"]), "boundary_change": describe})
    cols = ["la_code", "la_name", "region_name", "role", "boundary_year", "last_year_before",
            "predecessors", "successors", "boundary_change"]
    return pd.DataFrame(rows, columns=cols).sort_values(["boundary_year", "role", "la_code"],
                                                        ignore_index=True)


def detect_code_changes(raw_dir: Path) -> pd.DataFrame:
    """LAs whose GSS (new) code changed while the old three-digit code, and so the published series,
    continued (e.g. a county becoming a unitary authority on the same area). Not series breaks."""
    raw_dir = Path(raw_dir)
    sfr = read_sfr(raw_dir)
    ees = pd.concat([read_ees_edition(raw_dir / rel) for rel in EES_FILES])
    ons = pd.read_csv(raw_dir / ONS_FILE, dtype=str, keep_default_na=False)
    ons = ons.rename(columns={"old_la_code": "la_code"}).assign(year=lambda d: d["time_period"].astype(int) + 1)
    cols = ["la_code", "new_la_code", "la_name", "year"]
    seen = pd.concat([df.loc[df["geographic_level"].eq("Local authority"), cols] for df in (sfr, ees, ons)])
    seen = seen[seen["new_la_code"].notna() & seen["new_la_code"].ne("")]
    spans = (seen.groupby(["la_code", "new_la_code"])
             .agg(first_year=("year", "min"), last_year=("year", "max"), la_name=("la_name", "last"))
             .reset_index().sort_values(["la_code", "first_year"]))
    spans = spans[spans.groupby("la_code")["new_la_code"].transform("nunique") > 1]
    rows = []
    for code, group in spans.groupby("la_code", sort=True):
        for before, after in zip(group.iloc[:-1].itertuples(), group.iloc[1:].itertuples()):
            # Later editions re-code earlier years, so the years only say what the files show.
            rows.append({"la_code": code, "la_name": after.la_name,
                         "previous_new_la_code": before.new_la_code, "new_la_code": after.new_la_code,
                         "last_year_previous_code_seen": int(before.last_year),
                         "first_year_new_code_seen": int(after.first_year),
                         "note": f"GSS code changed from {before.new_la_code} to {after.new_la_code}; "
                                 f"old LA code {code} and its published series continue"})
    return pd.DataFrame(rows, columns=["la_code", "la_name", "previous_new_la_code", "new_la_code",
                                       "last_year_previous_code_seen", "first_year_new_code_seen", "note"])


def assemble_panel(raw_dir: Path, imports: list[Path] = ()) -> pd.DataFrame:
    """Read every source and return the tidy panel (sorted, typed, PANEL_COLUMNS): the three
    looked-after measures exactly as before, then the pathway measures (helpers.data.pathway)
    keyed to the same areas, populations and boundary flags."""
    raw_dir = Path(raw_dir)
    by_dataset: dict[str, list[Path]] = {}
    for path in imports:
        by_dataset.setdefault(pathway.dataset_of(path), []).append(Path(path))
    editions = [read_ees_edition(raw_dir / rel) for rel in EES_FILES]
    for path in by_dataset.pop(pathway.CLA_DATASET, []):
        edition = read_ees_edition(path)
        edition["count_source"] = f"EES {edition['edition'].iat[0]} release, imported ({Path(path).name})"
        editions.append(edition)
    all_ees = pd.concat(editions, ignore_index=True)
    all_ees["key"] = _area_key(all_ees)
    ees = _newest_edition_per_year(editions)
    ees = ees[ees["year"] >= FIRST_YEAR]
    ons_raw = pd.read_csv(raw_dir / ONS_FILE, dtype=str, keep_default_na=False)
    areas = _canonical_areas(ees, ons_raw)

    ees["key"] = _area_key(ees)
    sfr = read_sfr(raw_dir)
    sfr = sfr[~sfr["year"].isin(ees["year"].unique())]    # EES editions take precedence
    sfr = _attach_sfr_identity(sfr, areas)
    pop2010 = sfr.loc[sfr["year"].eq(2010) & sfr["measure"].eq("cla_31_march"), ["key", "population_raw"]]
    pop2010 = pd.DataFrame({"key": pop2010["key"], "pop_mid2009": _number(pop2010["population_raw"])})
    sfr = sfr.drop(columns="population_raw")

    panel = pd.concat([ees.drop(columns=["la_code", "new_la_code", "la_name", "region_code", "region_name"]),
                       sfr], ignore_index=True)
    panel["count"] = _number(panel["count_raw"])
    panel["count_status"] = _status(panel["count_raw"])
    panel = _complete_la_years(panel)
    ident = areas.drop(columns="geographic_level")
    panel = panel.merge(ident, on="key", how="left")
    panel["la_code"] = panel["la_code"].where(panel["geographic_level"].eq("Local authority"), pd.NA)

    chosen = ees.groupby("year")["edition"].max()
    pops = _population_table(panel[["key", "year"]], all_ees, chosen, read_ons(raw_dir), pop2010)
    panel = panel.merge(pops, on=["key", "year"], how="left")
    panel = _rates(panel, read_lait_rates(raw_dir))
    panel["suppressed"] = panel["count_status"].eq("suppressed")
    panel["count_rounding"] = _count_rounding(panel)

    breaks = detect_boundary_changes(panel)
    b = breaks.set_index("la_code")
    panel["boundary_flag"] = panel["key"].map(b["role"])
    panel["boundary_year"] = panel["key"].map(b["boundary_year"]).astype("Int64")
    panel["boundary_change"] = panel["key"].map(b["boundary_change"])
    panel["value"] = panel["count"]
    panel["unit"] = "children"

    extra = pathway.assemble_pathway(raw_dir, panel, by_dataset)
    extra = extra.merge(ident, on="key", how="left")
    extra["la_code"] = extra["la_code"].where(extra["geographic_level"].eq("Local authority"), pd.NA)
    extra["boundary_flag"] = extra["key"].map(b["role"])
    extra["boundary_year"] = extra["key"].map(b["boundary_year"]).astype("Int64")
    extra["boundary_change"] = extra["key"].map(b["boundary_change"])
    panel = pd.concat([panel, extra[panel.columns.intersection(extra.columns)]], ignore_index=True)

    level_order = {lvl: i for i, lvl in enumerate(LEVELS)}
    panel = panel.assign(_lvl=panel["geographic_level"].map(level_order),
                         _m=panel["measure"].map({m: i for i, m in enumerate(MEASURES)}))
    panel = panel.sort_values(["_lvl", "key", "year", "_m"], ignore_index=True)
    return tidy_types(panel[PANEL_COLUMNS])


def tidy_types(panel: pd.DataFrame) -> pd.DataFrame:
    """The dtypes load_panel() promises (same whether built in memory or read from CSV)."""
    panel = panel.copy()
    panel["year"] = panel["year"].astype("int64")
    for col in ("geographic_level", "la_code", "new_la_code", "la_name", "region_code", "region_name",
                "measure", "count_status", "count_rounding", "count_source", "population_source",
                "rate_source", "boundary_flag", "boundary_change", "unit"):
        panel[col] = panel[col].astype("string")
    for col in ("count", "population", "rate_per_10000", "value"):
        panel[col] = panel[col].astype("float64")
    panel["suppressed"] = panel["suppressed"].astype(bool)
    panel["boundary_year"] = panel["boundary_year"].astype("Int64")
    return panel.reset_index(drop=True)


def panel_to_csv_text(panel: pd.DataFrame) -> str:
    """Deterministic CSV text: integers without '.0', rates to at most one decimal."""
    out = panel.copy()
    for col in ("count", "population"):
        out[col] = out[col].round().astype("Int64")
    # Whole numbers without '.0', others as published (at most 10 significant digits), never
    # in exponent form (England's spend runs to ten digits).
    out["value"] = [("" if np.isnan(v) else str(int(v)) if float(v).is_integer() else format(v, ".10g"))
                    for v in out["value"].to_numpy(dtype="float64")]
    return out.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def provenance(raw_dir_checksums: dict[str, str], imports: dict[str, str], panel: pd.DataFrame) -> str:
    looked_after = panel[panel["measure"].isin(LOOKED_AFTER_MEASURES)]
    info = {
        "what": "Children looked after in England and the early-help pathway beside it (referrals, "
                "children in need, child protection, spend, workforce): one row per area x reporting "
                "year x measure",
        "build_command": "care-trends data build [--raw-dir DIR]   (or helpers.data.build_panel())",
        "sources": {
            "counts": {"2010-2017": "DfE SFR underlying data files (dfe_sfr_2010_2017/)",
                       "2018+": "newest EES release containing the year: " + ", ".join(EES_FILES)},
            "rates": "published (EES 2018+, LAIT 31 March 2015-2017) else computed from counts and "
                     "ONS mid-(Y-1) 0-17 populations (rounded to 0.1); populations missing from the "
                     "snapshot (mid-2010, mid-2011; pre-2019 Dorset/Poole/Bournemouth) interpolated "
                     "within the area's series (rate_source computed_interpolated_population)",
            "populations": "EES edition of the count, else older EES edition, else ONS mid-(Y-1), "
                           "else mid-2009 from SFR27/2010, else interpolated/carried",
            "pathway": "helpers.data.pathway: DfE Children in need (c1, b1, d3, d5), Children's social "
                       "work workforce (csww; its year is the workforce year to 30 September), LAIT "
                       "rates 2016+ and section 251 spend; newest edition per year; see 'measures'",
            "licence": "Open Government Licence v3.0; cite Department for Education, Children looked "
                       "after in England including adoptions, and ONS mid-year population estimates",
        },
        "editions_used_by_year": (looked_after.groupby("year")["count_source"]
                                  .agg(lambda s: sorted(set(s.dropna()) - {x for x in s.dropna() if x.startswith('not listed')})).to_dict()),
        "raw_files_sha256": raw_dir_checksums,
        "imported_editions_sha256": imports,
        "rows": int(len(panel)),
    }
    info["editions_used_by_year"] = {str(k): v for k, v in info["editions_used_by_year"].items()}
    info["measures"] = measure_provenance(panel)
    return json.dumps(info, indent=2, sort_keys=True) + "\n"


def measure_provenance(panel: pd.DataFrame) -> dict:
    """Per measure: unit, years with a published value, and the files its values come from."""
    out = {}
    for measure, rows in panel.groupby("measure", sort=False):
        published = rows[rows["value"].notna()]
        sources = sorted({s.split(" (")[0] if " (" in s else s for s in published["count_source"].dropna()})
        out[str(measure)] = {
            "unit": str(rows["unit"].iloc[0]),
            "years": [int(published["year"].min()), int(published["year"].max())] if len(published) else [],
            "rate_sources": sorted(set(rows["rate_source"].dropna())),
            "sources": sources,
        }
    return out
