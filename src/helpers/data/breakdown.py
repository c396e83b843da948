"""Children starting to be looked after, by age group, gender, legal status and category of need:
a second tidy table beside the panel (one row per area x year x breakdown x category), because a
breakdown has many categories per area-year and does not fit the panel's one value per measure.

Sources: DfE SFR underlying data `*ADM*` files for 2011-2017 (first publication; LA figures exact,
national/regional rounded to 10, `x` suppressed) and the EES 2022 release file
`la_cla_who_started_to_be_looked_after_release2022_2018-2022.csv` for 2018-2022 (`c` suppressed).
No LA breakdown of starts after 2022 is in the raw snapshot. Category labels are harmonised to the
EES wording (`category`), with the publisher's own column or label kept (`source_label`).
The `total` category is each breakdown's own total: LA totals for 2018-2022 come from the 2022
release and can differ slightly from the panel's `starts`, which uses the newest edition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.errors import CareTrendsError

BREAKDOWN_FILE = "cla_starts_breakdown.csv"
EES_STARTS_FILE = "dfe_ees_2022/la_cla_who_started_to_be_looked_after_release2022_2018-2022.csv"
SFR_DIR = "dfe_sfr_2010_2017"
SFR_ADM_FILES = {2011: "2011_SFE21_ADM.csv", 2012: "2012_UnderlyingData_SFR20_ADM2012.csv",
                 2013: "2013_SFR36_ADM2013.csv", 2014: "2014_SFR36_ADM2014.csv",
                 2015: "2015_SFR34_ADM2015.csv", 2016: "2016_SFR41_ADM2016.csv",
                 2017: "2017_SFR50_ADM2017.csv"}
SFR_NUMBERS = {2011: "SFR21/2011", 2012: "SFR20/2012", 2013: "SFR36/2013", 2014: "SFR36/2014",
               2015: "SFR34/2015", 2016: "SFR41/2016", 2017: "SFR50/2017"}

BREAKDOWNS = ("age_group", "gender", "legal_status", "category_of_need")
BREAKDOWN_COLUMNS = ["year", "geographic_level", "la_code", "new_la_code", "la_name", "breakdown",
                     "category", "count", "count_status", "count_rounding", "source_label", "count_source"]

# SFR column -> (breakdown, harmonised category). The 2015 file's total is headed CLA_started2014.
SFR_CATEGORIES = {
    "SCLA_U1": ("age_group", "Under 1 year"), "SCLA_1to4": ("age_group", "1 to 4 years"),
    "SCLA_5to9": ("age_group", "5 to 9 years"), "SCLA_10to15": ("age_group", "10 to 15 years"),
    "SCLA_16over": ("age_group", "16 years and over"),
    "SCLA_male": ("gender", "Male"), "SCLA_female": ("gender", "Female"),
    "SCLA_AbNeg": ("category_of_need", "N1. Abuse or neglect"),
    "SCLA_Cdisab": ("category_of_need", "N2. Child's disability"),
    "SCLA_ParIll": ("category_of_need", "N3. Parental illness or disability"),
    "SCLA_FAcSt": ("category_of_need", "N4. Family acute stress"),
    "SCLA_FD": ("category_of_need", "N5. Family dysfunction"),
    "SCLA_SUB": ("category_of_need", "N6. Socially unacceptable behaviour"),
    "SCLA_LI": ("category_of_need", "N7. Low income"),
    "SCLA_AbsPar": ("category_of_need", "N8. Absent parenting"),
    "SCLA_ICO": ("legal_status", "Interim care order"), "SCLA_FCO": ("legal_status", "Full care order"),
    "SCLA_POG": ("legal_status", "Placement order granted"),
    "SCLA_PlaceO": ("legal_status", "Placement order granted"),        # 2017 header
    "SCLA_S20": ("legal_status", "Voluntary agreement under S20"),
    "SCLA_UPP": ("legal_status", "Police protection in LA accommodation"),
    "SCLA_SEPO": ("legal_status", "Emergency protection order"),
    "SCLA_UCAO": ("legal_status", "Child assessment order and in LA accommodation"),
    "SCLA_ONCT": ("legal_status", "Remand"),                             # on remand or committed for trial
    "SCLA_PACE": ("legal_status", "LA accommodation under PACE 1989"),
    # Supervision order with residence requirement: the youth-justice order the youth
    # rehabilitation order replaced; EES files it under that name.
    "SCLA_SORR": ("legal_status", "Sentenced to youth rehabilitation order"),
}
EES_GROUPS = {"Age group": "age_group", "Gender": "gender", "Legal status": "legal_status",
              "Category of need": "category_of_need"}
_SFR_LEVEL = {"national": "National", "region": "Regional", "gor": "Regional", "la": "Local authority"}


def _status(raw: pd.Series) -> pd.Series:
    text = raw.astype("string").str.strip().str.lower()
    numeric = pd.to_numeric(text, errors="coerce").notna()
    status = pd.Series("not_applicable", index=raw.index, dtype="object")
    status[text.isin({"c", "x", "low", "u"})] = "suppressed"
    status[numeric] = "published"
    return status


def read_sfr_breakdowns(raw_dir: Path) -> pd.DataFrame:
    frames = []
    for year, file in SFR_ADM_FILES.items():
        df = pd.read_csv(Path(raw_dir) / SFR_DIR / file, dtype=str, encoding="latin-1", keep_default_na=False)
        df.columns = [c.strip() for c in df.columns]
        df = df[df["geog_l"].str.strip() != ""]
        level = df["geog_l"].str.strip().str.lower().map(_SFR_LEVEL)
        total = next(c for c in df.columns if c.startswith("CLA_started"))
        is_la = level.eq("Local authority")
        ident = pd.DataFrame({"year": year, "geographic_level": level,
                              "la_code": df["geog_c"].str.strip().where(is_la, pd.NA),
                              "new_la_code": df["New_geog_code"].str.strip(), "la_name": df["geog_n"].str.strip()})
        columns = {c: SFR_CATEGORIES[c] for c in df.columns if c in SFR_CATEGORIES}
        for column, (breakdown, category) in [(total, (b, "Total")) for b in BREAKDOWNS] + list(columns.items()):
            frames.append(ident.assign(breakdown=breakdown, category=category, raw=df[column].values,
                                       source_label=column,
                                       count_source=f"DfE {SFR_NUMBERS[year]} underlying data ({file})"))
    return pd.concat(frames, ignore_index=True)


def read_ees_breakdowns(raw_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(Path(raw_dir) / EES_STARTS_FILE, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    df = df[df["cla_group"].isin(EES_GROUPS)]
    level = df["geographic_level"]
    is_la = level.eq("Local authority")
    return pd.DataFrame({
        "year": df["time_period"].astype(int), "geographic_level": level,
        "la_code": df["old_la_code"].where(is_la, pd.NA),
        "new_la_code": np.where(is_la, df["new_la_code"],
                                np.where(level.eq("National"), "E92000001", df["region_code"])),
        "la_name": np.where(is_la, df["la_name"], np.where(level.eq("National"), "England", df["region_name"])),
        "breakdown": df["cla_group"].map(EES_GROUPS), "category": df["characteristic"],
        "raw": df["number"], "source_label": df["characteristic"],
        "count_source": f"EES 2022 release ({Path(EES_STARTS_FILE).name})",
    })


def build_starts_breakdown(raw_dir: Path) -> pd.DataFrame:
    """The tidy breakdown table from the raw files (BREAKDOWN_COLUMNS, sorted)."""
    df = pd.concat([read_sfr_breakdowns(raw_dir), read_ees_breakdowns(raw_dir)], ignore_index=True)
    df["count_status"] = _status(df["raw"])
    df["count"] = pd.to_numeric(df["raw"].str.strip(), errors="coerce").astype("float64")
    df["count_rounding"] = np.where(df["count"].isna(), None,
                                    np.where(df["geographic_level"].eq("Local authority"), "exact", "nearest_10"))
    # Regions: SFR names them in capitals without GSS codes; take the EES code and name.
    regions = df[df["geographic_level"].eq("Regional") & df["year"].ge(2018)]
    by_name = dict(zip(regions["la_name"].str.casefold(), zip(regions["new_la_code"], regions["la_name"])))
    old = df["geographic_level"].eq("Regional") & df["year"].lt(2018)
    mapped = df.loc[old, "la_name"].str.casefold().map(by_name)
    if mapped.isna().any():
        raise CareTrendsError(f"SFR region {df.loc[old][mapped.isna()]['la_name'].iloc[0]!r} not in the EES region list")
    df.loc[old, "new_la_code"] = [m[0] for m in mapped]
    df.loc[old, "la_name"] = [m[1] for m in mapped]
    nat = df["geographic_level"].eq("National")
    df.loc[nat, ["new_la_code", "la_name"]] = ["E92000001", "England"]
    order = {b: i for i, b in enumerate(BREAKDOWNS)}
    lvl = {"National": 0, "Regional": 1, "Local authority": 2}
    df = df.assign(_l=df["geographic_level"].map(lvl), _b=df["breakdown"].map(order),
                   _t=df["category"].ne("Total"),
                   _k=df["la_code"].fillna(df["new_la_code"]))
    df = df.sort_values(["_l", "_k", "year", "_b", "_t", "category"], ignore_index=True)
    return df[BREAKDOWN_COLUMNS]


def breakdown_to_csv_text(df: pd.DataFrame) -> str:
    out = df.copy()
    out["count"] = out["count"].round().astype("Int64")
    return out.to_csv(index=False, lineterminator="\n")


def read_breakdown_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"la_code": "string", "new_la_code": "string"}, keep_default_na=False,
                     na_values=[""])
    missing = [c for c in BREAKDOWN_COLUMNS if c not in df.columns]
    if missing:
        raise CareTrendsError(f"{path} is not the starts breakdown table (missing {', '.join(missing[:3])}); "
                              "rebuild it with `care-trends data build`")
    df = df[BREAKDOWN_COLUMNS]
    df["count"] = df["count"].astype("float64")
    for col in ("geographic_level", "la_name", "breakdown", "category", "count_status", "count_rounding",
                "source_label", "count_source"):
        df[col] = df[col].astype("string")
    return df
