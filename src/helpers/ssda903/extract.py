"""Read and validate a council's SSDA903 header and episodes files.

`load_903` reads one or several files per table (the yearly returns of an export, concatenated),
copes with the variants exports produce (dd/mm/YYYY or ISO dates, a byte-order mark, Excel's
`="..."` quoting, semicolon separators, repeated header lines, .xlsx), checks everything the
derivations rely on, repairs what it safely can, and returns an `Extract` holding clean tables and
a `ValidationReport`. The report holds counts only, never a child's id or date of birth.
"""

from __future__ import annotations

import datetime as dt
import glob
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.errors import CareTrendsError
from helpers.ssda903 import codes

#: Share of unreadable dates in a column above which the file is rejected (wrong date format).
FATAL_BAD_DATE_SHARE = 0.2
#: Marker column and value that synthetic files carry.
SYNTHETIC_COLUMN = "DATA_SOURCE"
SYNTHETIC_VALUE = "SYNTHETIC"

FATAL, WARNING, INFO = "fatal", "warning", "info"


@dataclass
class Problem:
    check: str
    severity: str
    count: int
    message: str


@dataclass
class ValidationReport:
    """What was found in the files: counts by check, never child-level values."""

    problems: list[Problem] = field(default_factory=list)
    n_header_rows: int = 0
    n_episode_rows: int = 0
    n_children: int = 0
    n_episodes: int = 0
    n_files: int = 0

    def add(self, check: str, severity: str, count: int, message: str) -> None:
        if count:
            self.problems.append(Problem(check, severity, int(count), message))

    @property
    def fatal(self) -> bool:
        return any(p.severity == FATAL for p in self.problems)

    @property
    def checks(self) -> set[str]:
        return {p.check for p in self.problems}

    def count(self, check: str) -> int:
        return sum(p.count for p in self.problems if p.check == check)

    def fatal_message(self) -> str:
        first = next(p for p in self.problems if p.severity == FATAL)
        return f"SSDA903 files cannot be used: {first.message}"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(p) for p in self.problems],
                            columns=["check", "severity", "count", "message"])

    def __str__(self) -> str:
        files = f"{self.n_files} file(s), " if self.n_files else ""
        lines = [f"SSDA903 validation: {files}{self.n_header_rows} header rows, "
                 f"{self.n_episode_rows} episode rows -> {self.n_children} children, "
                 f"{self.n_episodes} usable episodes"]
        if not self.problems:
            lines.append("  no problems found")
        order = {FATAL: 0, WARNING: 1, INFO: 2}
        for p in sorted(self.problems, key=lambda p: order[p.severity]):
            lines.append(f"  {p.severity.upper():8s} {p.check:28s} {p.count:7d}  {p.message}")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return "```\n" + str(self) + "\n```"


@dataclass(repr=False)
class Extract:
    """Clean SSDA903 tables plus their validation report. Child-level: never print the tables."""

    header: pd.DataFrame
    episodes: pd.DataFrame
    report: ValidationReport
    coverage_start: pd.Timestamp
    coverage_end: pd.Timestamp
    synthetic: bool = False
    label: str = ""
    cache: dict = field(default_factory=dict)  # derived tables reused across calls

    def __repr__(self) -> str:  # counts only, so displaying the object leaks nothing
        kind = "SYNTHETIC " if self.synthetic else ""
        return (f"<{kind}SSDA903 extract: {self.report.n_children} children, "
                f"{self.report.n_episodes} episodes, {self.coverage_start:%Y-%m-%d} to "
                f"{self.coverage_end:%Y-%m-%d}>")


# --------------------------------------------------------------------------- reading

def expand_paths(spec) -> list[Path]:
    """A path, a glob pattern, a comma-separated list, or a list of those -> existing files."""
    items = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    files: list[Path] = []
    for item in items:
        text = str(item)
        if not Path(text).exists() and "," in text:
            files.extend(expand_paths([part.strip() for part in text.split(",") if part.strip()]))
            continue
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(text)))
            if not matches:
                raise CareTrendsError(f"no SSDA903 file matches {text!r}; check the path or pattern")
            files.extend(Path(m) for m in matches)
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            raise CareTrendsError(f"{text!r} is a folder; give the header and episodes files "
                                  "(or a pattern such as 'header_*.csv')")
        if not path.exists():
            raise CareTrendsError(f"SSDA903 file not found: {text!r}; check the path")
        files.append(path)
    return files


def _normalise_column(name) -> str:
    return re.sub(r"\s+", "_", str(name).replace("\ufeff", "").strip().strip('"').strip()).upper()


def read_table(path: Path) -> pd.DataFrame:
    """One 903 table file as strings, columns upper-cased, values stripped."""
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path, dtype=object).fillna("").astype(str)
        else:
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:  # Excel on Windows saves "CSV" as cp1252
                text = raw.decode("cp1252")
            first = text.split("\n", 1)[0]
            sep = ";" if first.count(";") > first.count(",") else ","
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CareTrendsError(f"cannot read {path.name}: {str(exc).splitlines()[0]}; "
                              "save it as CSV (UTF-8) and try again") from exc
    df.columns = [_normalise_column(c) for c in df.columns]
    df = df.loc[:, ~pd.Index(df.columns).duplicated()]
    for col in df.columns:
        values = df[col].astype(str).str.strip()  # vectorised string ops (Arrow)
        if values.str.startswith("=").any():  # Excel's ="0123" keeps leading zeros
            values = values.str.replace(r'^="?(.*?)"?$', r"\1", regex=True)
        df[col] = values.str.strip('"').str.strip()
    if "CHILD" in df.columns:  # header lines repeated where yearly files were pasted together
        df = df[df["CHILD"].str.upper() != "CHILD"]
    df = df[(df != "").any(axis=1)]
    return df.reset_index(drop=True)


def _read_many(spec, what: str) -> tuple[pd.DataFrame, list[Path]]:
    if isinstance(spec, pd.DataFrame):
        df = spec.astype(object).where(spec.notna(), "").astype(str)
        df.columns = [_normalise_column(c) for c in df.columns]
        df["_file"] = 0
        return df, []
    files = expand_paths(spec)
    if not files:
        raise CareTrendsError(f"no SSDA903 {what} file given; pass the path of the {what} CSV")
    frames = []
    for number, path in enumerate(files):
        df = read_table(path)
        df["_file"] = number
        frames.append(df)
    return pd.concat(frames, ignore_index=True).fillna(""), files


def parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """dd/mm/YYYY, YYYY-MM-DD (optionally with a time) and dd-mm-YYYY -> (dates, unreadable mask).

    Blank is NaT and not unreadable. Day-first is assumed for slashed dates, as in DfE's layout.
    """
    # Parse each distinct value once: an extract has a few thousand dates repeated many times.
    codes_, uniques = pd.factorize(values.astype(str).str.strip(), use_na_sentinel=False)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    long = text.str.len() > 10
    if long.any():  # drop any time of day
        text[long] = text[long].str.split(r"[ T]", n=1, regex=True).str[0]
    parsed = pd.to_datetime(text, format="%d/%m/%Y", errors="coerce")
    for fmt in ("%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d"):
        todo = parsed.isna() & (text != "")
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    parsed = parsed.astype("datetime64[ns]")
    bad_unique = (parsed.isna() & (text != "")).to_numpy()
    out = pd.Series(parsed.to_numpy()[codes_], index=values.index)
    return out, pd.Series(bad_unique[codes_], index=values.index)


# --------------------------------------------------------------------------- validation

def _as_objects(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns as Python objects: isin/duplicated/joins on them are much faster than on
    Arrow strings (which read_csv gives, and which are faster for the strip/upper steps)."""
    for col in df.columns:
        if df[col].dtype != object and not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].astype(object)
    return df


def _check_columns(df: pd.DataFrame, expected, required, what: str, report: ValidationReport):
    missing_required = [c for c in required if c not in df.columns]
    if missing_required:
        report.add("missing_columns", FATAL, len(missing_required),
                   f"the {what} file has no column(s) {', '.join(missing_required)}; "
                   f"export the DfE 903 {what} layout ({', '.join(expected)})")
    missing = [c for c in expected if c not in df.columns and c not in required]
    report.add("missing_columns", WARNING, len(missing),
               f"{what} column(s) {', '.join(missing)} absent; treated as blank")
    for col in missing:
        df[col] = ""


def _unknown_codes(df: pd.DataFrame, column: str, allowed, report: ValidationReport,
                   what: str = "episodes", allow_blank: bool = False) -> None:
    values = df[column]
    bad = ~values.isin(allowed)
    if allow_blank:
        bad &= values != ""
    if bad.any():
        examples = sorted({v[:6] if v else "(blank)" for v in values[bad].unique()[:50]})[:4]
        report.add("unknown_codes", WARNING, int(bad.sum()),
                   f"{what} {column} has codes outside the DfE list (e.g. {', '.join(examples)})")


def _dedupe(df: pd.DataFrame, key: list[str], what: str, report: ValidationReport,
            n_files: int) -> pd.DataFrame:
    """Exact repeats and superseded versions: the later file wins (a yearly return fills in DEC)."""
    exact_in_file = df.duplicated(subset=key + ["_file"] + [c for c in df.columns
                                                            if c not in key and c != "_file"])
    report.add("duplicate_rows", WARNING, int(exact_in_file.sum()),
               f"identical {what} rows repeated within a file; extra copies dropped")
    df = df[~exact_in_file]
    repeated = df.duplicated(subset=key, keep="last")
    same_file = df.duplicated(subset=key + ["_file"], keep="last")
    report.add("duplicate_rows", WARNING, int(same_file.sum()),
               f"{what} rows for the same " + ("child" if key == ["CHILD"] else "child and start date")
               + " with different values in one file; the last one kept")
    if n_files > 1:
        report.add("repeated_across_files", INFO, int((repeated & ~same_file).sum()),
                   f"{what} rows repeated across files; the version in the later file kept")
    return df[~repeated]


def load_903(header, episodes, *, as_of=None, strict: bool = False, raise_on_fatal: bool = True,
             coverage_start=None, coverage_end=None, label: str = "") -> Extract:
    """Read, check and clean SSDA903 files (paths, patterns, lists of paths, or DataFrames).

    Repairs: duplicates dropped (the later file's version kept), overlapping episodes of a child
    cut at the next episode's start, episodes with unreadable or impossible dates dropped, end
    dates in the future treated as still open. `strict=True` makes every warning fatal.
    `as_of` (default today) is the date after which dates count as "in the future".
    """
    report = ValidationReport()
    head_raw, head_files = _read_many(header, "header")
    ep_raw, ep_files = _read_many(episodes, "episodes")
    report.n_files = len(head_files) + len(ep_files)
    report.n_header_rows, report.n_episode_rows = len(head_raw), len(ep_raw)
    synthetic = (any(SYNTHETIC_VALUE in p.name.upper() for p in head_files + ep_files)
                 or any(SYNTHETIC_COLUMN in df.columns
                        and df[SYNTHETIC_COLUMN].str.upper().str.contains(SYNTHETIC_VALUE).any()
                        for df in (head_raw, ep_raw)))
    today = pd.Timestamp(as_of if as_of is not None else dt.date.today()).normalize()

    _check_columns(head_raw, codes.HEADER_COLUMNS, codes.REQUIRED_HEADER, "header", report)
    _check_columns(ep_raw, codes.EPISODE_COLUMNS, codes.REQUIRED_EPISODES, "episodes", report)
    if len(ep_raw) == 0:
        report.add("no_episodes", FATAL, 1, "the episodes file has no rows; export the episodes table")
    if report.fatal:
        return _finish(report, raise_on_fatal, strict, None)

    # ---- header
    head = _as_objects(head_raw[list(codes.HEADER_COLUMNS) + ["_file"]].copy())
    head = _dedupe(head, ["CHILD"], "header", report, len(head_files))
    head["DOB"], bad_dob = parse_dates(head["DOB"])
    report.add("unparseable_dates", WARNING, int(bad_dob.sum()),
               "header DOB not a date (dd/mm/YYYY); ages unknown for those children")
    report.add("missing_dates", WARNING, int((head["DOB"].isna() & ~bad_dob).sum()),
               "header DOB blank; ages unknown for those children")
    report.add("future_dates", WARNING, int((head["DOB"] > today).sum()),
               "header DOB after today; ages unknown for those children")
    head.loc[head["DOB"] > today, "DOB"] = pd.NaT
    _unknown_codes(head, "SEX", codes.SEX_CODES, report, "header")

    # ---- episodes
    ep = ep_raw[list(codes.EPISODE_COLUMNS) + ["_file"]].copy()
    for col in ("RNE", "LS", "CIN", "REC", "PLACE", "PLACE_PROVIDER"):
        ep[col] = ep[col].str.upper()
    ep = _as_objects(ep)
    ep["DECOM"], bad_decom = parse_dates(ep["DECOM"])
    ep["DEC"], bad_dec = parse_dates(ep["DEC"])
    for col, bad in (("DECOM", bad_decom), ("DEC", bad_dec)):
        filled = int((ep[col].notna() | bad).sum())
        if filled and bad.sum() > FATAL_BAD_DATE_SHARE * filled:
            report.add("unparseable_dates", FATAL, int(bad.sum()),
                       f"{bad.sum()} of {filled} episode {col} values are not dates; "
                       "export dates as dd/mm/YYYY (or YYYY-MM-DD)")
    if report.fatal:
        return _finish(report, raise_on_fatal, strict, None)
    report.add("unparseable_dates", WARNING, int(bad_decom.sum()),
               "episode DECOM not a date (dd/mm/YYYY); those episodes dropped")
    report.add("unparseable_dates", WARNING, int((bad_dec & ~bad_decom).sum()),
               "episode DEC not a date (dd/mm/YYYY); those episodes dropped")
    no_start = ep["DECOM"].isna() & ~bad_decom
    report.add("missing_dates", WARNING, int(no_start.sum()), "episode DECOM blank; episodes dropped")
    no_child = ep["CHILD"] == ""
    report.add("missing_child", WARNING, int(no_child.sum()), "episode CHILD blank; episodes dropped")
    ep = ep[~(bad_decom | bad_dec | no_start | no_child)]
    # Compare dates as dates, whatever format each file used.
    ep = _dedupe(ep, ["CHILD", "DECOM"], "episodes", report, len(ep_files))

    for col, allowed in codes.CODE_LISTS.items():
        _unknown_codes(ep, col, allowed, report, allow_blank=(col == "REC"))
    ended = ep["DEC"].notna()
    report.add("missing_reason", WARNING, int((ended & (ep["REC"] == "")).sum()),
               "episodes with DEC but no REC; treated as leaving care for another reason")

    future_start = ep["DECOM"] > today
    report.add("future_dates", WARNING, int(future_start.sum()),
               "episodes starting after today; dropped")
    ep = ep[~future_start]
    future_end = ep["DEC"] > today
    report.add("future_dates", WARNING, int(future_end.sum()),
               "episode DEC after today; treated as still open")
    ep.loc[future_end, ["DEC"]] = pd.NaT
    ep.loc[future_end, "REC"] = ""

    backwards = ep["DEC"] < ep["DECOM"]
    report.add("dec_before_decom", WARNING, int(backwards.sum()),
               "episodes ending (DEC) before they start (DECOM); dropped")
    ep = ep[~backwards]

    ep = ep.sort_values(["CHILD", "DECOM"], kind="stable").reset_index(drop=True)
    same_child_next = ep["CHILD"].eq(ep["CHILD"].shift(-1))
    next_start = ep["DECOM"].shift(-1)
    overlap = same_child_next & (ep["DEC"].isna() | (ep["DEC"] > next_start))
    report.add("overlapping_episodes", WARNING, int(overlap.sum()),
               "episodes of one child overlapping the next; cut at the next episode's start")
    was_open = overlap & ep["DEC"].isna()
    ep.loc[overlap, "DEC"] = next_start[overlap]
    ep.loc[was_open, "REC"] = codes.CONTINUING_REC
    dangling = ((ep["REC"] == codes.CONTINUING_REC)
                & ~(same_child_next & ep["DEC"].eq(next_start)))
    report.add("x1_without_next_episode", WARNING, int(dangling.sum()),
               "episodes ending X1 (continuing in care) with no episode starting that day")

    in_header = ep["CHILD"].isin(head["CHILD"])
    missing_children = ep.loc[~in_header, "CHILD"].nunique()
    report.add("children_missing_from_header", WARNING, int(missing_children),
               "children in the episodes file but not in the header; ages unknown for them")
    dob = ep["CHILD"].map(head.drop_duplicates("CHILD", keep="last").set_index("CHILD")["DOB"])
    report.add("start_before_birth", WARNING, int((ep["DECOM"] < dob).sum()),
               "episodes starting before the child's DOB; ages at entry unknown for them")
    report.add("children_without_episodes", INFO, int((~head["CHILD"].isin(ep["CHILD"])).sum()),
               "children in the header with no usable episode")
    if len(ep) == 0:
        report.add("no_episodes", FATAL, 1, "no usable episode is left after the checks; "
                   "see the report above")
        return _finish(report, raise_on_fatal, strict, None)

    ep = ep.drop(columns="_file").reset_index(drop=True)
    head = head.drop(columns="_file").reset_index(drop=True)
    report.n_children = int(ep["CHILD"].nunique())
    report.n_episodes = len(ep)
    start, end = _coverage(ep, coverage_start, coverage_end)
    extract = Extract(header=head, episodes=ep, report=report, coverage_start=start,
                      coverage_end=end, synthetic=synthetic, label=label)
    return _finish(report, raise_on_fatal, strict, extract)


def _finish(report: ValidationReport, raise_on_fatal: bool, strict: bool, extract):
    if strict and not report.fatal:
        for p in report.problems:
            if p.severity == WARNING:
                p.severity = FATAL
    if report.fatal and raise_on_fatal:
        raise CareTrendsError(report.fatal_message())
    return extract if extract is not None else report


def validate(header, episodes, *, as_of=None, strict: bool = False) -> ValidationReport:
    """The validation report alone (never raises for problems in the data)."""
    result = load_903(header, episodes, as_of=as_of, strict=strict, raise_on_fatal=False)
    return result.report if isinstance(result, Extract) else result


def _coverage(ep: pd.DataFrame, start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The months the extract covers completely.

    903 returns hold the episodes open during each reporting year, so the first year with a
    closed episode marks the first return; earlier starts are only the survivors. The end is
    31 March when the latest date is in March, else the end of the last complete month.
    """
    if start is None:
        first = ep["DEC"].min()
        if pd.isna(first):
            first = ep["DECOM"].max()
        year = first.year if first.month >= 4 else first.year - 1
        start = pd.Timestamp(year=year, month=4, day=1)
    if end is None:
        latest = max(ep["DECOM"].max(), ep["DEC"].max() if ep["DEC"].notna().any() else ep["DECOM"].max())
        if latest.month == 3:
            end = pd.Timestamp(year=latest.year, month=3, day=31)
        else:
            end = latest.to_period("M").to_timestamp() - pd.Timedelta(days=1)
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if end <= start:
        raise CareTrendsError(f"the SSDA903 extract covers no complete month ({start:%Y-%m-%d} to "
                              f"{end:%Y-%m-%d}); give coverage_start/coverage_end explicitly")
    return start, end


def numpy_days(values: pd.Series) -> np.ndarray:
    """Dates as int64 days since 1970 (NaT -> a very large number, i.e. 'still open')."""
    arr = values.to_numpy(dtype="datetime64[D]").astype("int64")
    arr = np.where(values.isna().to_numpy(), np.iinfo(np.int64).max // 2, arr)
    return arr
