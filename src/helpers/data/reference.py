"""Reference data in data/reference/: statistical neighbours (2021 groupings, 2025 model) built
from the raw files, dated events, council-reported (not official) counts, and every LA's Ofsted
inspections of children's services as dated events."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_text
from helpers.data import build as _build
from helpers.data import pathway as _pathway
from helpers.data.areas import resolve_la
from helpers.data.build import detect_code_changes

SN_FILES = {
    "2021": "dfe_csc_outcomes/New_Statistical_Neighbour_Groupings_April_2021.csv",
    "2025": "dfe_csc_outcomes/sn_model_2025_wide.csv",
}
SN_COLUMNS = ["edition", "la_code", "la_name", "rank", "neighbour_la_code", "closeness"]
EVENT_COLUMNS = ["event_id", "la_code", "la_name", "date", "precision", "type", "title", "detail", "source"]
COUNCIL_COLUMNS = ["la_code", "la_name", "date", "precision", "date_text", "count", "measure", "status",
                   "source"]


def sn_path(edition: str) -> Path:
    return paths.reference_dir() / f"statistical_neighbours_{edition}.csv"


def read_sn_raw(raw_dir: Path, edition: str) -> pd.DataFrame:
    """Tidy one statistical-neighbour file: one row per LA x neighbour rank."""
    df = pd.read_csv(Path(raw_dir) / SN_FILES[edition], dtype=str, encoding="utf-8-sig",
                     keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    if edition == "2021":
        # Columns SN1, SNP, SN2, SNP.1, ...: the closeness label follows each neighbour column.
        code, name = df["LA num"], df["LA Name"]
        pairs = [(f"SN{i}", "SNP" if i == 1 else f"SNP.{i - 1}") for i in range(1, 11)]
    else:
        code, name = df["old_la_code"], df["la_name"]
        pairs = [(f"SN_{i}", f"SN_{i}P") for i in range(1, 11)]
    frames = [pd.DataFrame({"edition": edition, "la_code": code.str.strip(), "la_name": name.str.strip(),
                            "rank": i, "neighbour_la_code": df[n].str.strip(),
                            "closeness": df[p].str.strip().str.capitalize()})
              for i, (n, p) in enumerate(pairs, start=1)]
    out = pd.concat(frames, ignore_index=True)
    out = out[out["neighbour_la_code"].ne("")]
    out["la_name"] = out["la_name"].str.replace(" & ", " and ", regex=False)
    return out.sort_values(["la_code", "rank"], ignore_index=True)[SN_COLUMNS]


def build_reference(raw_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write statistical_neighbours_{2021,2025}.csv and la_code_changes.csv from the raw files."""
    out_dir = Path(out_dir) if out_dir else paths.reference_dir()
    written = {}
    for edition in SN_FILES:
        target = out_dir / f"statistical_neighbours_{edition}.csv"
        atomic_write_text(target, read_sn_raw(raw_dir, edition).to_csv(index=False, lineterminator="\n"))
        written[edition] = target
    target = out_dir / "la_code_changes.csv"
    atomic_write_text(target, detect_code_changes(raw_dir).to_csv(index=False, lineterminator="\n"))
    written["code_changes"] = target
    target = out_dir / OFSTED_FILE
    atomic_write_text(target, build_ofsted_inspections(raw_dir).to_csv(index=False, lineterminator="\n"))
    target.chmod(0o644)
    written["ofsted_inspections"] = target
    return written


def statistical_neighbours_table(edition: str = "2021") -> pd.DataFrame:
    edition = str(edition).removeprefix("statistical_neighbours_")
    if edition not in SN_FILES:
        raise CareTrendsError(f"unknown statistical-neighbour edition {edition!r}; use '2021' or '2025'")
    return pd.read_csv(sn_path(edition), dtype={"la_code": str, "neighbour_la_code": str})


def statistical_neighbours(la, edition: str = "2021") -> list[str]:
    """Old three-digit codes of the LA's 10 statistical neighbours, closest first."""
    rec = resolve_la(la)
    table = statistical_neighbours_table(edition)
    rows = table[table["la_code"].eq(rec.la_code)]
    if rows.empty:
        raise CareTrendsError(f"{rec.la_name} ({rec.la_code}) has no neighbours in the {edition} "
                              "statistical-neighbour list; try the other edition or give LA codes")
    return rows.sort_values("rank")["neighbour_la_code"].tolist()


def _filter_la(df: pd.DataFrame, la) -> pd.DataFrame:
    if la is None:
        return df
    rec = resolve_la(la)
    return df[df["la_code"].eq(rec.la_code)].reset_index(drop=True)


def load_events(la=None) -> pd.DataFrame:
    """Dated events (inspections, decisions, programme launches) with precision and source."""
    df = pd.read_csv(paths.reference_dir() / "events.csv", dtype={"la_code": str})[EVENT_COLUMNS]
    df["date"] = pd.to_datetime(df["date"])
    return _filter_la(df, la)


def council_reported(la=None) -> pd.DataFrame:
    """Counts a council reported itself (committee papers, press). NOT official statistics:
    show beside the official panel, labelled as council-reported."""
    df = pd.read_csv(paths.reference_dir() / "council_reported.csv", dtype={"la_code": str})[COUNCIL_COLUMNS]
    df["date"] = pd.to_datetime(df["date"])
    return _filter_la(df, la)


# --------------------------------------------------------------------------------------------
# Ofsted inspections of local authority children's services (ILACS, 2018 onwards)
# --------------------------------------------------------------------------------------------

OFSTED_RAW = "dfe_csc_outcomes/LA_Inspection_Outcomes_as_at_31_March_2025.ods"
OFSTED_FILE = "ofsted_inspections.csv"
OFSTED_COLUMNS = ["la_code", "new_la_code", "la_name", "la_status", "ofsted_region", "framework",
                  "inspection_type", "inspection_date", "publication_date", "judgement", "judgement_key",
                  "leaders", "help_and_protection", "children_in_care", "care_leavers", "visit_theme", "source"]
JUDGEMENTS = {"outstanding": "Outstanding", "good": "Good",
              "requires_improvement": "Requires improvement to be good", "inadequate": "Inadequate"}
_SUB_JUDGEMENTS = {
    "The impact of leaders on social work practice with children and families": "leaders",
    "The experiences and progress of children who need help and protection": "help_and_protection",
    "The experiences and progress of children in care": "children_in_care",
    "The experiences and progress of care leavers": "care_leavers",
}


def gss_to_old_codes(raw_dir: Path) -> dict[str, str]:
    """Every GSS code an LA has carried in the raw files -> its old three-digit code."""
    raw_dir = Path(raw_dir)
    frames = [pd.read_csv(raw_dir / rel, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                          usecols=["geographic_level", "old_la_code", "new_la_code"])
              for rel in (*_build.EES_FILES, _build.ONS_FILE, _pathway.CSC_DATASETS[0].raw_file)]
    pairs = pd.concat(frames)
    pairs = pairs[pairs["geographic_level"].eq("Local authority") & pairs["new_la_code"].ne("")]
    pairs = pairs[pairs["old_la_code"].str.fullmatch(r"\d{3}")]
    return dict(pairs.drop_duplicates("new_la_code")[["new_la_code", "old_la_code"]].to_numpy())


def _read_ods_sheet(path: Path, sheet: str) -> pd.DataFrame:
    try:
        return pd.read_excel(path, sheet_name=sheet, engine="odf", header=2)
    except ImportError as exc:
        raise CareTrendsError("reading Ofsted's .ods file needs the odfpy package; install it with "
                              "`python -m pip install odfpy`") from exc


def build_ofsted_inspections(raw_dir: Path) -> pd.DataFrame:
    """One row per inspection or visit: every ILACS standard and short inspection since 2018 (with
    its judgements), plus the focused and monitoring visits of the latest year (no judgement), from
    Ofsted's 'LA inspection outcomes as at 31 March 2025' file. la_code is the old three-digit code
    (the panel's identity), found from the LA's GSS code in the raw files."""
    path = Path(raw_dir) / OFSTED_RAW
    history = _read_ods_sheet(path, "ILACS_inspection_history")
    in_year = _read_ods_sheet(path, "In-year_inspections").rename(
        columns={"Inspection/Visit date": "Inspection date", "Inspection/Visit type": "Inspection type",
                 "Region": "Ofsted region"})
    visits = in_year[~in_year["Inspection type"].str.contains("Inspection", case=False)]
    status = history.drop_duplicates("Local authority area code").set_index("Local authority area code")[
        "Local authority status"]
    visits = visits.assign(**{"Local authority status": visits["Local authority area code"].map(status)
                              .fillna("Current")})
    sheet_name = {"history": "ILACS_inspection_history", "visits": "In-year_inspections"}
    both = pd.concat([history.assign(_sheet=sheet_name["history"]), visits.assign(_sheet=sheet_name["visits"])],
                     ignore_index=True)
    codes = gss_to_old_codes(raw_dir)
    gss = both["Local authority area code"].astype(str).str.strip()
    missing = sorted(set(gss[~gss.isin(codes)]))
    if missing:
        raise CareTrendsError(f"{path.name}: GSS code(s) {', '.join(missing[:3])} not found in the raw "
                              "files' LA lists; add the LA's old code mapping")
    judgement = both["Overall effectiveness"].astype("string").str.strip()
    keys = {v: k for k, v in JUDGEMENTS.items()}
    out = pd.DataFrame({
        "la_code": gss.map(codes), "new_la_code": gss,
        "la_name": both["Local authority name"].str.strip(),
        "la_status": both["Local authority status"].str.strip(),
        "ofsted_region": both["Ofsted region"].str.strip(),
        "framework": "ILACS",
        "inspection_type": both["Inspection type"].str.strip(),
        "inspection_date": pd.to_datetime(both["Inspection date"]).dt.strftime("%Y-%m-%d"),
        "publication_date": pd.to_datetime(both["Publication date"]).dt.strftime("%Y-%m-%d"),
        "judgement": judgement, "judgement_key": judgement.map(keys),
        **{short: both[long].astype("string").str.strip() for long, short in _SUB_JUDGEMENTS.items()},
        "visit_theme": both.get("Visit Theme", pd.Series(pd.NA, index=both.index)).astype("string").str.strip(),
        "source": "Ofsted, LA inspection outcomes as at 31 March 2025 (" + path.name + ", sheet "
                  + both["_sheet"] + ")",
    })
    unknown = out["judgement"].notna() & out["judgement_key"].isna()
    if unknown.any():
        raise CareTrendsError(f"{path.name}: unknown judgement {out.loc[unknown, 'judgement'].iloc[0]!r}")
    return out.sort_values(["la_code", "inspection_date", "inspection_type"], ignore_index=True)[OFSTED_COLUMNS]


def load_ofsted_inspections(la=None) -> pd.DataFrame:
    """data/reference/ofsted_inspections.csv (dates as Timestamps); optionally one LA's rows."""
    path = paths.reference_dir() / OFSTED_FILE
    if not path.is_file():
        raise CareTrendsError(f"{path} not found; run `care-trends data build` to create it")
    df = pd.read_csv(path, dtype={"la_code": str, "new_la_code": str}, keep_default_na=False,
                     na_values=[""])[OFSTED_COLUMNS]
    for col in ("inspection_date", "publication_date"):
        df[col] = pd.to_datetime(df[col])
    if la is not None:
        df = df[df["la_code"].eq(_match_ofsted_la(df, la))]
    return df.reset_index(drop=True)


def _norm(text) -> str:
    return " ".join(str(text).replace("-", " ").replace("&", "and").replace(",", " ").casefold().split())


def _match_ofsted_la(table: pd.DataFrame, la) -> str:
    """The old code of an LA named by old code (861), GSS code or name, within the Ofsted table."""
    text = str(int(la)) if isinstance(la, (int, float)) and not isinstance(la, bool) else str(la).strip()
    if text in set(table["la_code"]):
        return text
    by_gss = table.loc[table["new_la_code"].str.casefold().eq(text.casefold()), "la_code"]
    if not by_gss.empty:
        return by_gss.iloc[0]
    by_name = table[table["la_name"].map(_norm).eq(_norm(text))]
    if not by_name.empty:
        return by_name.sort_values("inspection_date")["la_code"].iloc[-1]
    names = sorted(set(table["la_name"]))
    lookup = {_norm(n): n for n in names}
    close = difflib.get_close_matches(_norm(text), list(lookup), n=3, cutoff=0.6) or \
        [k for k in lookup if len(_norm(text)) >= 3 and _norm(text) in k][:3]
    hint = (f"did you mean {', '.join(repr(lookup[c]) for c in close)}?" if close
            else "use an LA name as Ofsted writes it or its old three-digit code, e.g. 861")
    raise CareTrendsError(f"no Ofsted inspections recorded for {la!r}; {hint}")


@dataclass(frozen=True)
class OfstedEvent:
    """A dated Ofsted judgement, usable as an analysis event (`as_event()` gives an events.csv row)."""
    event_id: str
    la_code: str
    la_name: str
    date: pd.Timestamp              # inspection or publication date, as asked
    date_basis: str                 # "inspection" | "publication"
    inspection_date: pd.Timestamp
    publication_date: pd.Timestamp
    judgement: str
    framework: str
    inspection_type: str
    precision: str = "day"
    type: str = "inspection"
    source: str = ""

    @property
    def title(self) -> str:
        return (f"Ofsted {self.framework} inspection: {self.judgement} (inspected "
                f"{self.inspection_date:%d %B %Y}, published {self.publication_date:%d %B %Y})")

    def as_event(self) -> dict:
        """A row in data/reference/events.csv's columns (event_id, la_code, la_name, date, precision,
        type, title, detail, source)."""
        return {"event_id": self.event_id, "la_code": self.la_code, "la_name": self.la_name,
                "date": self.date, "precision": self.precision, "type": self.type, "title": self.title,
                "detail": f"{self.inspection_type}; event dated by the {self.date_basis} date",
                "source": self.source}

    def as_dict(self) -> dict:
        return asdict(self)


def last_judgement(la, judgement: str | None = "inadequate", date: str = "inspection",
                   before=None) -> OfstedEvent:
    """The LA's most recent Ofsted inspection with this overall judgement ('inadequate',
    'requires improvement', 'good', 'outstanding'; None = any), as a dated event. `date`:
    'inspection' (start of the inspection, as events.csv dates Stoke-on-Trent's 2019 judgement) or
    'publication' (the report's publication); `before`: only inspections before this date."""
    if date not in ("inspection", "publication"):
        raise CareTrendsError(f"date={date!r}: use 'inspection' or 'publication'")
    table = load_ofsted_inspections()
    code = _match_ofsted_la(table, la)
    rows = table[table["la_code"].eq(code) & table["judgement"].notna()]
    if judgement is not None:
        key = str(judgement).strip().casefold().replace(" to be good", "").replace(" ", "_")
        if key not in JUDGEMENTS:
            raise CareTrendsError(_suggest(judgement))
        rows = rows[rows["judgement_key"].eq(key)]
    if before is not None:
        rows = rows[rows["inspection_date"] < pd.Timestamp(before)]
    name = table.loc[table["la_code"].eq(code), "la_name"].iloc[-1]
    if rows.empty:
        seen = table[table["la_code"].eq(code) & table["judgement"].notna()]
        listed = "; ".join(f"{r.inspection_date:%Y-%m-%d} {r.judgement}" for r in seen.itertuples()) or "none"
        raise CareTrendsError(f"{name} has no {judgement or 'judged'} Ofsted inspection in the record "
                              f"(ILACS since 2018: {listed}); choose another judgement or give the date")
    row = rows.sort_values("inspection_date").iloc[-1]
    when = row["inspection_date"] if date == "inspection" else row["publication_date"]
    return OfstedEvent(
        event_id=f"ofsted_{row['judgement_key']}_{row['inspection_date']:%Y}", la_code=code, la_name=name,
        date=when, date_basis=date, inspection_date=row["inspection_date"],
        publication_date=row["publication_date"], judgement=row["judgement"], framework=row["framework"],
        inspection_type=row["inspection_type"], source=row["source"])


def _suggest(judgement) -> str:
    close = difflib.get_close_matches(str(judgement).casefold().replace(" ", "_"), list(JUDGEMENTS), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(JUDGEMENTS)}"
    return f"unknown Ofsted judgement {judgement!r}; {hint}"
