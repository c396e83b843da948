"""The early-help pathway beside care entry: front door, children in need, child protection, cost
and workforce measures for the tidy panel (issue 15).

Sources (all Crown copyright, OGL v3):
- DfE *Children in need* (EES data files c1, b1, d3, d5, reporting years 2013 onwards): referrals,
  re-referrals, children in need starting / on 31 March, child protection plans starting / on
  31 March / second or subsequent.
- DfE *Children's social work workforce* (EES `csww_indicators`): turnover and agency rates, kept
  under the publisher's year: the workforce year to 30 September of `year`, six months into
  reporting year `year`+1 (so BCP's workforce appears from 2019, its care series from 2020). Not
  shifted, so the panel gains no year without looked-after data and the figures match DfE's tables;
  a chart that aligns them with reporting years should add half a year.
- DfE LAIT (`bds_long` parquet): published rates per 10,000 for referrals, children in need and
  child protection plans on 31 March (2016 onwards), and section 251 outturn spend on children
  looked after (`TotalLACFinance`, £; `LACFinance`, £ per child looked after per week, which equals
  the total / children looked after on 31 March / 365 x 7 rounded to £5), financial year 2016-17
  onwards; financial year Y-1 to Y is reporting year Y.

Each row keeps the publisher's status symbol (suppressed / not applicable), its source file and
the unit of `value`; `count` holds the value only where it counts something (children, referrals,
plans), so percentages and money never enter a count model by accident. Rates per 10,000 are
LAIT's where published, else computed from the count and the panel's population (labelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.errors import CareTrendsError

ENGLAND_CODE = "E92000001"
COUNT_UNITS = ("children", "referrals", "plans")
SYMBOLS = {"c", "x", "z", "u", "k", "low", ":", "..", "-"}   # EES / GSS "no number here" marks


@dataclass(frozen=True)
class ValueColumn:
    """One value column of a dataset and the panel measure it becomes."""
    measure: str
    column: str
    unit: str          # "children" | "referrals" | "plans" | "percent" | "GBP" | ...

    @property
    def is_count(self) -> bool:
        return self.unit in COUNT_UNITS


@dataclass(frozen=True)
class Dataset:
    """An EES data file the panel reads, and how its next edition is recognised on import."""
    key: str
    title: str                  # the EES data file title, as a user would look for it
    publication: str            # the EES publication it belongs to
    raw_file: str               # relative path of the snapshot copy in the raw folder
    values: tuple[ValueColumn, ...]
    year_offset: int = 0        # publisher's year + offset = reporting year ending 31 March
    year_note: str = ""         # appended to the source label (what the publisher's year means)
    period_end: tuple[int, int] = (3, 31)   # (month, day) the publisher's year ends on

    @property
    def required_columns(self) -> set[str]:
        return {"time_period", "geographic_level", "region_code", "old_la_code", "new_la_code",
                "la_name"} | {v.column for v in self.values}

    def label(self, edition: int, file: str, imported: bool = False) -> str:
        kind = f"{edition} edition, imported" if imported else f"{edition} edition"
        return f"DfE {self.publication} {kind} ({file})"


CSC_DATASETS: tuple[Dataset, ...] = (
    Dataset("cin_referrals", "C1 Referrals and re-referrals to children's social care services",
            "Children in need", "dfe_csc_outcomes/c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv",
            (ValueColumn("referrals", "referral_count", "referrals"),
             ValueColumn("rereferrals", "rereferral_count", "referrals"),
             ValueColumn("rereferral_percent", "rereferral_percent", "percent"),
             ValueColumn("referrals_not_in_need_percent", "not_in_need_percent", "percent"))),
    Dataset("cin", "B1 Children in need", "Children in need",
            "dfe_csc_outcomes/b1_children_in_need_2013_to_2025.csv",
            (ValueColumn("cin_starts", "Started_child", "children"),
             ValueColumn("cin_31_march", "At31_episodes", "children"))),
    Dataset("cpp_subsequent", "D3 Child protection plans starting, second or subsequent plans",
            "Children in need", "dfe_csc_outcomes/d3_cpps_subsequent_plan_2013_to_2025.csv",
            (ValueColumn("cpp_starts", "CPP_start", "plans"),
             ValueColumn("cpp_subsequent", "CPP_subsequent", "plans"),
             ValueColumn("cpp_subsequent_percent", "CPP_subsequent_percent", "percent"))),
    Dataset("cpp_31_march", "D5 Child protection plans at 31 March by length of time",
            "Children in need", "dfe_csc_outcomes/d5_cpps_at31march_by_duration_2013_to_2025.csv",
            (ValueColumn("cpp_31_march", "CPP_At31", "children"),)),
    Dataset("csww", "Children's social work workforce indicators by local authority",
            "Children's social work workforce", "dfe_csc_outcomes/csww_indicators_2017_to_2025.csv",
            (ValueColumn("sw_turnover_rate", "turnover_rate_fte", "percent"),
             ValueColumn("sw_agency_rate", "agency_rate_fte", "percent")),
            year_note="workforce year to 30 September", period_end=(9, 30)),
)
DATASETS_BY_KEY = {d.key: d for d in CSC_DATASETS}

# LAIT indicators: published rate per 10,000 for a count measure, and spend measures.
LAIT_FILE = "dfe_lait/bds_long_0_HEAD_2e30e39.parquet"
LAIT_RATES = {"referrals": "CPP_Total_Rateper10,000", "cin_31_march": "CIN", "cpp_31_march": "CPP_rate"}
LAIT_SPEND = (ValueColumn("lac_spend", "TotalLACFinance", "GBP"),
              ValueColumn("lac_spend_per_child_week", "LACFinance", "GBP per child looked after per week"))
# LAIT keys England and regions by its own numbers; the panel by GSS code.
LAIT_AREAS = {970: "E92000001", 980: "E12000001", 981: "E12000002", 982: "E12000003",
              983: "E12000004", 984: "E12000005", 985: "E12000006", 986: "E12000007",
              987: "E13000001", 988: "E13000002", 989: "E12000008", 990: "E12000009"}

UNITS = {v.measure: v.unit for d in CSC_DATASETS for v in d.values} | {v.measure: v.unit for v in LAIT_SPEND}
PATHWAY_MEASURES = tuple(UNITS)


#: The looked-after dataset (read by helpers.data.build.read_ees_edition).
CLA_DATASET = "cla_rates"
CLA_TITLE = "CLA numbers and rates per 10,000 children - by local authority"


def header_of(path: Path) -> list[str]:
    """The stripped column names of a CSV (empty list if it cannot be read as text)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return []
    return [c.strip().strip('"') for c in first.rstrip("\r\n").split(",")]


def dataset_of(path: Path) -> str:
    """Which dataset a file is an edition of, from its columns: 'cla_rates' or a CSC_DATASETS key.
    Unknown -> the closest dataset's key is not guessed: CareTrendsError naming what is missing."""
    columns = set(header_of(path))
    if columns & {"population_type", "population_count"} and columns & {"children_count", "number"}:
        return CLA_DATASET
    for dataset in CSC_DATASETS:
        if dataset.required_columns <= columns:
            return dataset.key
    for dataset in CSC_DATASETS:   # the closest dataset: it has some of its value columns
        if columns & {v.column for v in dataset.values}:
            missing = sorted(dataset.required_columns - columns)
            raise CareTrendsError(f"{Path(path).name} looks like the EES '{dataset.title}' file but lacks "
                                  f"column(s) {', '.join(missing)}; download that data file as CSV")
    raise CareTrendsError(f"{Path(path).name} is not an edition of a dataset the panel uses; "
                          "import the EES CSV of one of: " + ", ".join(
                              [CLA_TITLE] + [d.title for d in CSC_DATASETS]))


def _text(raw: pd.Series) -> pd.Series:
    return raw.astype("string").str.strip()


def _number(raw: pd.Series) -> pd.Series:
    return pd.to_numeric(_text(raw).str.replace(",", "", regex=False), errors="coerce").astype("float64")


def _status(raw: pd.Series) -> pd.Series:
    """'published', 'suppressed' (c, x, u, low) or 'not_applicable' (z, :, .., -, k), as build._status."""
    text = _text(raw).str.lower()
    status = pd.Series("not_applicable", index=raw.index, dtype="object")
    status[text.isin({"c", "x", "low", "u"})] = "suppressed"
    status[_number(raw).notna()] = "published"
    return status


def _area_key(df: pd.DataFrame) -> pd.Series:
    level = df["geographic_level"]
    return pd.Series(np.where(level.eq("Local authority"), df["old_la_code"],
                              np.where(level.eq("National"), ENGLAND_CODE, df["region_code"])),
                     index=df.index, dtype="object")


# --------------------------------------------------------------------------------------------
# Reading one edition of a CSC dataset
# --------------------------------------------------------------------------------------------

def read_csc_frame(path: Path) -> pd.DataFrame:
    """The CSV as strings (headers stripped); one-line CareTrendsError if unreadable."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise CareTrendsError(f"{path.name} is not a readable CSV ({type(exc).__name__}); download "
                              "the EES data file as CSV") from exc
    df.columns = [c.strip() for c in df.columns]
    return df


def csc_long(df: pd.DataFrame, dataset: Dataset, label: str) -> pd.DataFrame:
    """One edition as long rows: key, year, geographic_level, measure, raw value, source, edition.

    Rows of a jointly published workforce ('314 / 318': Kingston and Richmond's shared service)
    are given to each authority, with the source saying so."""
    df = df[df["geographic_level"].isin(["National", "Regional", "Local authority"])].copy()
    years = pd.to_numeric(df["time_period"], errors="coerce").astype(int)
    edition = int(years.max())
    df["year"] = years + dataset.year_offset
    df["key"] = _area_key(df)
    df["note"] = (f"; {dataset.year_note} " + df["time_period"].str.strip()) if dataset.year_note else ""
    joint = df["geographic_level"].eq("Local authority") & df["old_la_code"].str.contains("/")
    if joint.any():
        parts = df[joint].assign(key=df.loc[joint, "old_la_code"].str.split("/"))
        parts["note"] = parts["note"] + "; published jointly for " + df.loc[joint, "old_la_code"].str.replace(" ", "")
        parts = parts.explode("key")
        parts["key"] = parts["key"].str.strip()
        df = pd.concat([df[~joint], parts], ignore_index=True)
    frames = []
    for value in dataset.values:
        frames.append(pd.DataFrame({
            "key": df["key"], "year": df["year"], "geographic_level": df["geographic_level"],
            "measure": value.measure, "count_raw": df[value.column],
            "count_source": label + df["note"], "edition": edition}))
    return pd.concat(frames, ignore_index=True)


def _newest_per_year(frames: list[pd.DataFrame]) -> pd.DataFrame:
    rows = pd.concat(frames, ignore_index=True)
    newest = rows.groupby(["measure", "year"])["edition"].transform("max")
    return rows[rows["edition"].eq(newest)].drop(columns="edition").reset_index(drop=True)


def read_csc(raw_dir: Path, imports: dict[str, list[Path]] | None = None) -> pd.DataFrame:
    """Every CSC dataset: the snapshot file plus imported editions, newest edition per year."""
    imports = imports or {}
    frames = []
    for dataset in CSC_DATASETS:
        path = Path(raw_dir) / dataset.raw_file
        df = read_csc_frame(path)
        edition = int(pd.to_numeric(df["time_period"]).max())
        label = dataset.label(edition, path.name)
        frames.append(csc_long(df, dataset, label))
        for extra in imports.get(dataset.key, []):
            df = read_csc_frame(extra)
            edition = int(pd.to_numeric(df["time_period"]).max())
            label = dataset.label(edition, Path(extra).name, imported=True)
            frames.append(csc_long(df, dataset, label))
    return _newest_per_year(frames)


# --------------------------------------------------------------------------------------------
# LAIT: published rates and section 251 spend
# --------------------------------------------------------------------------------------------

def _lait(raw_dir: Path, short: list[str]) -> pd.DataFrame:
    df = pd.read_parquet(Path(raw_dir) / LAIT_FILE, columns=["Short Desc", "Years", "Values", "LA Number"],
                         filters=[("Short Desc", "in", short)])
    df = df[df["LA Number"].notna()]
    number = df["LA Number"].astype(int)
    df = df.assign(key=number.map(LAIT_AREAS).fillna(number.astype(str)),
                   geographic_level=np.where(number.eq(970), "National",
                                             np.where(number.isin(list(LAIT_AREAS)), "Regional",
                                                      "Local authority")))
    # '2016-17 (OT)' (financial year outturn) -> reporting year 2017; '2016' stays 2016.
    years = df["Years"].str.extract(r"^(\d{4})(?:-(\d{2}))?")
    df["year"] = years[0].astype(int) + years[1].notna().astype(int)
    return df


def read_lait_front_door_rates(raw_dir: Path) -> pd.DataFrame:
    """key, year, measure, lait_rate: LAIT's published rates per 10,000 (2016 onwards)."""
    df = _lait(raw_dir, list(LAIT_RATES.values()))
    by_short = {v: k for k, v in LAIT_RATES.items()}
    out = pd.DataFrame({"key": df["key"], "year": df["year"], "measure": df["Short Desc"].map(by_short),
                        "lait_rate": _number(df["Values"])})
    return out.dropna(subset=["lait_rate"]).drop_duplicates(["key", "year", "measure"])


def read_lait_spend(raw_dir: Path) -> pd.DataFrame:
    df = _lait(raw_dir, [v.column for v in LAIT_SPEND])
    by_short = {v.column: v.measure for v in LAIT_SPEND}
    return pd.DataFrame({
        "key": df["key"], "year": df["year"], "geographic_level": df["geographic_level"],
        "measure": df["Short Desc"].map(by_short), "count_raw": df["Values"],
        "count_source": ("DfE LAIT " + Path(LAIT_FILE).stem + ": " + df["Short Desc"]
                         + ", section 251 outturn " + df["Years"].str.replace(" (OT)", "", regex=False)),
    }).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Assembly onto the looked-after panel
# --------------------------------------------------------------------------------------------

def _complete(rows: pd.DataFrame, life: pd.DataFrame) -> pd.DataFrame:
    """Keep LA rows inside the authority's lifetime (from its looked-after series) unless they hold
    a published number; add a 'not_in_source' row for each LA-year inside the lifetime and the
    measure's published years that the source leaves out."""
    la = rows["geographic_level"].eq("Local authority")
    inside = rows["key"].map(life["min"]).le(rows["year"]) & rows["key"].map(life["max"]).ge(rows["year"])
    keep = ~la | inside | rows["count_status"].eq("published")
    rows = rows[keep]
    la = rows["geographic_level"].eq("Local authority")
    added = []
    for measure, group in rows[la].groupby("measure", sort=False):
        lo, hi = int(group["year"].min()), int(group["year"].max())
        label = group.groupby("year")["count_source"].first()
        have = set(zip(group["key"], group["year"]))
        for key, span in life.iterrows():
            for year in range(max(lo, int(span["min"])), min(hi, int(span["max"])) + 1):
                if (key, year) not in have:
                    added.append({"key": key, "year": year, "geographic_level": "Local authority",
                                  "measure": measure, "count_raw": "", "count_status": "not_in_source",
                                  "count_source": f"not listed in {label.get(year, 'the source for that year')}"})
    if added:
        rows = pd.concat([rows, pd.DataFrame(added)], ignore_index=True)
    return rows


def assemble_pathway(raw_dir: Path, cla: pd.DataFrame, imports: dict[str, list[Path]] | None = None
                     ) -> pd.DataFrame:
    """Pathway rows keyed like the looked-after panel `cla` (which must carry `key`, `year`,
    `geographic_level`, `population`, `population_source`). Returns rows with the panel's value
    columns; identity and boundary columns are added by the caller."""
    rows = pd.concat([read_csc(raw_dir, imports), read_lait_spend(raw_dir)], ignore_index=True)
    unknown = ~rows["key"].isin(set(cla["key"]))
    if unknown.any():
        bad = rows[unknown].iloc[0]
        raise CareTrendsError(f"{bad['count_source']}: area {bad['key']!r} ({bad['geographic_level']}) is not "
                              "in the looked-after panel; check the file's old_la_code/region_code")
    rows["count_status"] = _status(rows["count_raw"])
    la_rows = cla[cla["geographic_level"].eq("Local authority")]
    life = la_rows.groupby("key")["year"].agg(["min", "max"])
    # An authority alive in the newest looked-after year is alive after it too (a workforce year
    # or a front-door edition can run ahead of the looked-after series).
    life.loc[life["max"].eq(cla["year"].max()), "max"] = 9999
    rows = _complete(rows, life)

    rows["unit"] = rows["measure"].map(UNITS)
    rows["value"] = _number(rows["count_raw"]).where(rows["count_status"].eq("published"))
    is_count = rows["unit"].isin(COUNT_UNITS)
    rows["count"] = rows["value"].where(is_count)
    rows["suppressed"] = rows["count_status"].eq("suppressed")
    national_or_region = ~rows["geographic_level"].eq("Local authority")
    rounding = pd.Series("exact", index=rows.index, dtype="object")
    rounding[is_count & national_or_region] = "nearest_10"
    rounding[rows["unit"].eq("percent")] = "one_decimal_place"
    rounding[rows["measure"].eq("lac_spend_per_child_week")] = "nearest_5"
    rows["count_rounding"] = rounding.where(rows["value"].notna(), None)

    # Populations: the looked-after panel's for the same area-year, else carried from the area's
    # nearest year (a newer front-door edition imported before the looked-after one).
    pops = cla[["key", "year", "population", "population_source"]].dropna(subset=["population"])
    pops = pops.drop_duplicates(["key", "year"])
    rows = rows.merge(pops, on=["key", "year"], how="left")
    carried = is_count.to_numpy() & rows["population"].isna().to_numpy()
    if carried.any():
        for idx in np.flatnonzero(carried):
            key, year = rows.at[idx, "key"], rows.at[idx, "year"]
            own = pops[pops["key"].eq(key)]
            if not own.empty:
                near = own.iloc[(own["year"] - year).abs().argsort().iloc[0]]
                rows.at[idx, "population"] = near["population"]
                rows.at[idx, "population_source"] = "carried from nearest published estimate"
    rows.loc[~is_count.to_numpy(), ["population", "population_source"]] = [np.nan, None]

    lait = read_lait_front_door_rates(raw_dir)
    rows = rows.merge(lait, on=["key", "year", "measure"], how="left")
    published = rows["lait_rate"].where(rows["count"].notna())
    computed = (rows["count"] / rows["population"] * 10_000).round(1)
    estimated = rows["population_source"].isin(["carried from nearest published estimate",
                                                 "interpolated between published estimates"])
    rows["rate_per_10000"] = published.where(published.notna(), computed)
    rows["rate_source"] = np.where(
        published.notna(), "published",
        np.where(computed.notna(), np.where(estimated, "computed_interpolated_population", "computed"), None))
    return rows.drop(columns=["lait_rate", "count_raw"])
