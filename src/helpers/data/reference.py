"""Reference data in data/reference/: statistical neighbours (2021 groupings, 2025 model) built
from the raw files, dated events, and council-reported (not official) counts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.core import paths
from helpers.core.errors import CareTrendsError
from helpers.core.io import atomic_write_text
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
