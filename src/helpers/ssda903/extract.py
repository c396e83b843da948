"""Read and validate a council's SSDA903 header and episodes files, or its DfE XML export.

`load_903` reads one or several files per table (the yearly returns of an export, concatenated),
or DfE XML exports holding both tables (root EXPSSDA903; CHILDID and PL stand for CHILD and
PLACE), copes with the variants exports produce (dd/mm/YYYY or ISO dates, a byte-order mark,
Excel's `="..."` quoting, semicolon separators, repeated header lines, .xlsx), checks everything
the derivations rely on, repairs what it safely can, and returns an `Extract` holding clean tables
and a `ValidationReport`.

Privacy by construction: no message or report quotes a value from the files (an odd value may be
a child's id, a date of birth or a postcode shifted into the wrong column). Problems are counted
and located by file name and line (CSV), row (spreadsheet, DataFrame) or element number (XML).
A CSV row whose number of fields differs from its header is named by line and stops the load.
"""

from __future__ import annotations

import csv
import datetime as dt
import glob
import io
import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.errors import CareTrendsError
from helpers.ssda903 import codes

try:  # refuses entity expansion and external references (XML bombs); in the lock via nbconvert
    from defusedxml import ElementTree as SafeElementTree
except ImportError:  # pragma: no cover - the standard parser is used with DTDs refused
    SafeElementTree = None

#: Share of unreadable dates in a column above which the file is rejected (wrong date format).
FATAL_BAD_DATE_SHARE = 0.2
#: Marker column and value that synthetic files carry.
SYNTHETIC_COLUMN = "DATA_SOURCE"
SYNTHETIC_VALUE = "SYNTHETIC"

FATAL, WARNING, INFO = "fatal", "warning", "info"
#: Column names a repeated header line is recognised by.
_KNOWN_COLUMNS = frozenset(codes.HEADER_COLUMNS) | frozenset(codes.EPISODE_COLUMNS)


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

@dataclass(frozen=True)
class Source:
    """Where rows came from, for messages that point at a line instead of quoting a value."""

    name: str   # the file's name without its folder (or "header table" for a DataFrame)
    unit: str   # "line" (CSV), "row" (spreadsheet, DataFrame), "CHILD element"/"EPISODE element"


def _safe_name(path: Path) -> str:
    """A file name fit for a published report: no folder, no markup characters."""
    return re.sub(r"[^A-Za-z0-9._ -]", "_", path.name)[:80]


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


def _clean_values(df: pd.DataFrame) -> pd.DataFrame:
    """Values stripped, Excel's ="0123" quoting undone; rows left entirely blank dropped."""
    df = df.loc[:, ~pd.Index(df.columns).duplicated()]
    for col in df.columns:
        values = df[col].astype(str).str.strip()  # vectorised string ops (Arrow)
        if values.str.startswith("=").any():  # Excel's ="0123" keeps leading zeros
            values = values.str.replace(r'^="?(.*?)"?$', r"\1", regex=True)
        df[col] = values.str.strip('"').str.strip()
    return df[(df != "").any(axis=1)]


def _is_header_line(fields: list[str]) -> bool:
    """A repeated header line (yearly files pasted together), perhaps with a different layout."""
    if "CHILD" not in ",".join(fields).upper():  # the cheap test first: most lines are data
        return False
    names = {_normalise_column(f) for f in fields}
    return "CHILD" in names and len(names & _KNOWN_COLUMNS) >= 2


def _read_csv_text(text: str, source: Source) -> tuple[pd.DataFrame, list[tuple[int, int, int]]]:
    """CSV text -> (rows as strings with their line number in `_line`, ragged rows as
    (line, fields, header fields)). The csv module keeps line numbers, which pandas does not."""
    first = text.split("\n", 1)[0]
    sep = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    sections: list[tuple[list[str], list[list[str]], list[int]]] = []
    ragged: list[tuple[int, int, int]] = []
    previous_end = 0
    width, rows, lines = -1, [], []
    for fields in reader:
        line, previous_end = previous_end + 1, reader.line_num
        if len(fields) == width and not _is_header_line(fields):
            rows.append(fields)  # the common case, kept fast (blank rows are dropped later)
            lines.append(line)
            continue
        if not any(f.strip() for f in fields):
            continue  # blank line, or a row of empty cells
        if not sections or _is_header_line(fields):
            sections.append(([_normalise_column(f) for f in fields], [], []))
            width, rows, lines = len(sections[-1][0]), sections[-1][1], sections[-1][2]
            continue
        if len(fields) > width and not any(f.strip() for f in fields[width:]):
            fields = fields[:width]  # trailing empty cells, as spreadsheets add
        if len(fields) != width:
            ragged.append((line, len(fields), width))
            continue
        rows.append(fields)
        lines.append(line)
    frames = []
    for columns, rows, lines in sections:
        df = pd.DataFrame(rows, columns=columns, dtype=object) if rows else pd.DataFrame(
            columns=columns, dtype=object)
        df = df.loc[:, [bool(c) for c in df.columns]]  # unnamed trailing columns
        df["_line"] = lines
        frames.append(df)
    if not frames:
        return pd.DataFrame({"_line": []}), ragged
    return pd.concat(frames, ignore_index=True).fillna(""), ragged


def _read_tabular(path: Path, source: Source) -> tuple[pd.DataFrame, list[tuple[int, int, int]]]:
    """One CSV or spreadsheet table -> (strings, columns upper-cased, with `_line`; ragged rows)."""
    ragged: list[tuple[int, int, int]] = []
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path, dtype=object).fillna("").astype(str)
            df.columns = [_normalise_column(c) for c in df.columns]
            df["_line"] = np.arange(len(df)) + 2  # spreadsheet row, the header being row 1
            if "CHILD" in df.columns:  # header rows repeated where yearly sheets were pasted
                df = df[df["CHILD"].str.upper() != "CHILD"]
        else:
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:  # Excel on Windows saves "CSV" as cp1252
                text = raw.decode("cp1252", errors="replace")
            df, ragged = _read_csv_text(text, source)
    except OSError as exc:
        raise CareTrendsError(f"cannot read {source.name} ({exc.strerror or type(exc).__name__}); "
                              "check the file and its permissions") from exc
    except (ValueError, csv.Error, KeyError, IndexError) as exc:
        # Never echo the parser's message: it may quote a cell of the file.
        raise CareTrendsError(f"cannot read {source.name} as a table ({type(exc).__name__}); "
                              "save it as CSV (UTF-8) and try again") from exc
    lines = df.pop("_line")
    df = _clean_values(df.astype(object))
    df["_line"] = lines.loc[df.index].to_numpy(dtype=int)
    return df.reset_index(drop=True), ragged


def _tabular_source(path: Path) -> Source:
    spreadsheet = path.suffix.lower() in (".xlsx", ".xlsm", ".xls")
    return Source(_safe_name(path), "row" if spreadsheet else "line")


def read_table(path) -> pd.DataFrame:
    """One 903 table file (CSV or spreadsheet) as strings, columns upper-cased, values stripped.

    Raises CareTrendsError naming the first line whose number of fields differs from the header.
    """
    path = Path(path)
    source = _tabular_source(path)
    if _is_xml(path):
        raise CareTrendsError(f"{source.name} is a DfE XML export holding both tables; pass it "
                              "to load_903 as the only file")
    df, ragged = _read_tabular(path, source)
    if ragged:
        raise CareTrendsError(_ragged_message(source, ragged))
    return df.drop(columns="_line")


def _ragged_message(source: Source, ragged: list[tuple[int, int, int]]) -> str:
    line, fields, width = ragged[0]
    more = ""
    if len(ragged) > 1:
        shown = ", ".join(str(r[0]) for r in ragged[1:4])
        more = (f" ({len(ragged) - 1} more rows differ from their header too: lines {shown}"
                + (" ..." if len(ragged) > 4 else "") + ")")
    return (f"{source.name} line {line} has {fields} fields, the header has {width}{more}; "
            "fix the row or the header")


# ---- the DfE XML export: <EXPSSDA903><CHILD><HEADER>..</HEADER><EPISODE>..</EPISODE>..</CHILD>

#: XML field names that differ from the CSV column names.
XML_RENAMES = {"CHILDID": "CHILD", "PL": "PLACE"}


def _is_xml(path: Path) -> bool:
    if path.suffix.lower() == ".xml":
        return True
    if path.suffix.lower() in (".csv", ".txt", ".xlsx", ".xlsm", ".xls"):
        return False
    try:
        with open(path, "rb") as handle:
            start = handle.read(64)
    except OSError:
        return False
    return start.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _tag(element) -> str:
    return str(element.tag).rsplit("}", 1)[-1].upper()  # drop any namespace


def _fields(element) -> dict[str, str]:
    """The element's simple children as {CSV column: text} (nested groups such as reviews skipped)."""
    out = {}
    for item in element:
        if len(item) == 0:
            name = _tag(item)
            out[XML_RENAMES.get(name, name)] = (item.text or "").strip()
    return out


def _parse_xml(path: Path, source: Source):
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CareTrendsError(f"cannot read {source.name} ({exc.strerror or type(exc).__name__}); "
                              "check the file and its permissions") from exc
    refuse = (f"{source.name} declares a DTD or entities, which a DfE SSDA903 export never "
              "does (and which can exhaust memory); export it again as plain XML")
    try:
        if SafeElementTree is not None:
            return SafeElementTree.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                              forbid_external=True)
        # Without defusedxml, refuse any DTD before the standard parser sees it: entity
        # expansion (the "billion laughs") can only be declared inside one.
        if re.search(rb"<!\s*(DOCTYPE|ENTITY)", data, re.IGNORECASE):
            raise CareTrendsError(refuse)
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise CareTrendsError(f"{source.name} is not well-formed XML (line {line}, column "
                              f"{column}); export it again from the case management "
                              "system") from exc
    except ValueError as exc:  # defusedxml's DTDForbidden, EntitiesForbidden, ...
        raise CareTrendsError(refuse) from exc


def _read_xml(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, Source, Source]:
    """A DfE XML export -> (header rows, episode rows, their sources). `_line` holds the CHILD or
    EPISODE element's number in the file (1 = the first)."""
    name = _safe_name(path)
    root = _parse_xml(path, Source(name, "element"))
    if _tag(root) != "EXPSSDA903":
        raise CareTrendsError(f"{name} is not a DfE SSDA903 XML export (its root element is not "
                              "EXPSSDA903); export the 903 return as XML, or give CSV files")
    headers, episodes = [], []
    n_episode = 0
    for n_child, child in enumerate((c for c in root if _tag(c) == "CHILD"), start=1):
        header = next((h for h in child if _tag(h) == "HEADER"), None)
        head = _fields(header) if header is not None else {}
        if header is not None:
            headers.append({**head, "_line": n_child})
        for episode in (e for e in child if _tag(e) == "EPISODE"):
            n_episode += 1
            row = _fields(episode)
            row.setdefault("CHILD", head.get("CHILD", ""))
            episodes.append({**row, "_line": n_episode})
    frames = []
    for rows in (headers, episodes):
        df = pd.DataFrame(rows, dtype=object).fillna("") if rows else pd.DataFrame({"_line": []})
        lines = df.pop("_line")
        df = _clean_values(df.astype(object))
        df["_line"] = lines.loc[df.index].to_numpy(dtype=int)
        frames.append(df.reset_index(drop=True))
    return frames[0], frames[1], Source(name, "CHILD element"), Source(name, "EPISODE element")


def _from_frame(spec: pd.DataFrame) -> pd.DataFrame:
    df = spec.astype(object).where(spec.notna(), "").astype(str)
    df.columns = [_normalise_column(c) for c in df.columns]
    df = df.loc[:, ~pd.Index(df.columns).duplicated()].reset_index(drop=True)
    df["_line"] = np.arange(len(df)) + 1
    return df


def _read_inputs(header, episodes, report: "ValidationReport"):
    """Both tables from paths, patterns, DataFrames or DfE XML exports, with `_file` (an index
    into the table's list of Sources) and `_line` on every row; ragged rows become fatal
    problems in the report."""
    tables = {"header": ([], []), "episodes": ([], [])}  # frames, sources
    files_seen: dict[Path, None] = {}

    def add(what, df, source):
        frames, sources = tables[what]
        df["_file"] = len(sources)
        frames.append(df)
        sources.append(source)

    if episodes is None and not _only_xml(header):
        raise CareTrendsError("give both the header and the episodes file (or a single DfE XML "
                              "export, EXPSSDA903)")
    for what, spec in (("header", header), ("episodes", episodes)):
        if spec is None:
            continue
        if isinstance(spec, pd.DataFrame):
            add(what, _from_frame(spec), Source(f"{what} table", "row"))
            continue
        paths = expand_paths(spec)
        if not paths:
            raise CareTrendsError(f"no SSDA903 {what} file given; pass the path of the {what} CSV")
        for path in paths:
            key = path.resolve()
            if _is_xml(path):
                if key in files_seen:
                    continue  # one export given as both header and episodes
                files_seen[key] = None
                head_df, ep_df, head_src, ep_src = _read_xml(path)
                add("header", head_df, head_src)
                add("episodes", ep_df, ep_src)
                continue
            files_seen[key] = None
            source = _tabular_source(path)
            df, ragged = _read_tabular(path, source)
            if ragged:
                report.add("ragged_rows", FATAL, len(ragged), _ragged_message(source, ragged))
            add(what, df, source)
    report.n_files = len(files_seen)
    out = []
    for what in ("header", "episodes"):
        frames, sources = tables[what]
        df = (pd.concat(frames, ignore_index=True).fillna("") if frames
              else pd.DataFrame({"_file": [], "_line": []}))
        out.append((df, sources))
    return out[0][0], out[0][1], out[1][0], out[1][1]


def _only_xml(spec) -> bool:
    """True when `spec` names DfE XML exports only (which hold the episodes too)."""
    if spec is None or isinstance(spec, pd.DataFrame):
        return False
    paths = expand_paths(spec)  # a missing file is reported as such, not as a missing table
    return bool(paths) and all(_is_xml(p) for p in paths)


def _locate(df: pd.DataFrame, mask, sources: list[Source], limit: int = 3) -> str:
    """'episodes.csv lines 14, 15, 20 and 7 more': where the flagged rows are, never what they hold."""
    rows = df.loc[np.asarray(mask, dtype=bool), ["_file", "_line"]]
    if rows.empty:
        return ""
    first = rows.sort_values(["_file", "_line"], kind="stable").head(limit)
    parts = []
    for number, group in first.groupby("_file", sort=True):
        source = sources[int(number)]
        lines = [str(int(v)) for v in group["_line"]]
        parts.append(f"{source.name} {source.unit}{'s' if len(lines) > 1 else ''} "
                     + ", ".join(lines))
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return "; ".join(parts) + more


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
                   sources: list[Source], what: str = "episodes", allow_blank: bool = False) -> None:
    values = df[column]
    bad = ~values.isin(allowed)
    if allow_blank:
        bad &= values != ""
    if bad.any():  # where, never what: an odd value may be a shifted id, date or postcode
        report.add("unknown_codes", WARNING, int(bad.sum()),
                   f"{what} {column} values outside the DfE code list ({_locate(df, bad, sources)}); "
                   "correct them to DfE codes")


def _dedupe(df: pd.DataFrame, key: list[str], what: str, report: ValidationReport,
            n_files: int) -> pd.DataFrame:
    """Exact repeats and superseded versions: the later file wins (a yearly return fills in DEC)."""
    exact_in_file = df.duplicated(subset=key + ["_file"] + [c for c in df.columns
                                                            if c not in key and c not in ("_file", "_line")])
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


def _date_argument(value, name: str):
    """A date given to load_903 (as_of, coverage_start/end) -> Timestamp; None stays None."""
    if value is None:
        return None
    if isinstance(value, (dt.date, pd.Timestamp)):
        return pd.Timestamp(value).normalize()
    text = str(value).strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return pd.Timestamp(text).normalize()
    except ValueError:
        raise CareTrendsError(f"{name} {value!r} is not a date; write it as YYYY-MM-DD "
                              "(e.g. 2025-03-31)") from None


def load_903(header, episodes=None, *, as_of=None, strict: bool = False,
             raise_on_fatal: bool = True, coverage_start=None, coverage_end=None,
             label: str = "") -> Extract:
    """Read, check and clean SSDA903 files: the header and episodes tables (paths, patterns,
    lists of paths, or DataFrames), or a DfE XML export (root EXPSSDA903) as the only argument.

    Repairs: duplicates dropped (the later file's version kept), overlapping episodes of a child
    cut at the next episode's start, episodes with unreadable or impossible dates dropped, end
    dates in the future treated as still open. `strict=True` makes every warning fatal.
    `as_of` (YYYY-MM-DD, default today) is the date after which dates count as "in the future".
    Messages give counts and line numbers, never a value from the files.
    """
    today = _date_argument(as_of, "as-of date")
    today = today if today is not None else pd.Timestamp(dt.date.today())
    coverage_start = _date_argument(coverage_start, "coverage start")
    coverage_end = _date_argument(coverage_end, "coverage end")
    report = ValidationReport()
    head_raw, head_sources, ep_raw, ep_sources = _read_inputs(header, episodes, report)
    report.n_header_rows, report.n_episode_rows = len(head_raw), len(ep_raw)
    synthetic = (any(SYNTHETIC_VALUE in s.name.upper() for s in head_sources + ep_sources)
                 or any(SYNTHETIC_COLUMN in df.columns
                        and df[SYNTHETIC_COLUMN].str.upper().str.contains(SYNTHETIC_VALUE).any()
                        for df in (head_raw, ep_raw)))
    if report.fatal:  # ragged rows: the columns cannot be trusted
        return _finish(report, raise_on_fatal, strict, None)

    _check_columns(head_raw, codes.HEADER_COLUMNS, codes.REQUIRED_HEADER, "header", report)
    _check_columns(ep_raw, codes.EPISODE_COLUMNS, codes.REQUIRED_EPISODES, "episodes", report)
    if len(ep_raw) == 0:
        report.add("no_episodes", FATAL, 1, "the episodes file has no rows; export the episodes table")
    if report.fatal:
        return _finish(report, raise_on_fatal, strict, None)

    # ---- header
    head = _as_objects(head_raw[list(codes.HEADER_COLUMNS) + ["_file", "_line"]].copy())
    head = _dedupe(head, ["CHILD"], "header", report, len(head_sources))
    head["DOB"], bad_dob = parse_dates(head["DOB"])
    report.add("unparseable_dates", WARNING, int(bad_dob.sum()),
               f"header DOB not a date ({_locate(head, bad_dob, head_sources)}); write dates as "
               "dd/mm/YYYY; ages unknown for those children")
    report.add("missing_dates", WARNING, int((head["DOB"].isna() & ~bad_dob).sum()),
               "header DOB blank; ages unknown for those children")
    report.add("future_dates", WARNING, int((head["DOB"] > today).sum()),
               "header DOB after today; ages unknown for those children")
    head.loc[head["DOB"] > today, "DOB"] = pd.NaT
    _unknown_codes(head, "SEX", codes.SEX_CODES, report, head_sources, "header")

    # ---- episodes
    ep = ep_raw[list(codes.EPISODE_COLUMNS) + ["_file", "_line"]].copy()
    for col in ("RNE", "LS", "CIN", "REC", "PLACE", "PLACE_PROVIDER"):
        ep[col] = ep[col].astype(str).str.upper()
    ep = _as_objects(ep)
    ep["DECOM"], bad_decom = parse_dates(ep["DECOM"])
    ep["DEC"], bad_dec = parse_dates(ep["DEC"])
    for col, bad in (("DECOM", bad_decom), ("DEC", bad_dec)):
        filled = int((ep[col].notna() | bad).sum())
        if filled and bad.sum() > FATAL_BAD_DATE_SHARE * filled:
            report.add("unparseable_dates", FATAL, int(bad.sum()),
                       f"{bad.sum()} of {filled} episode {col} values are not dates "
                       f"({_locate(ep, bad, ep_sources)}); export dates as dd/mm/YYYY "
                       "(or YYYY-MM-DD)")
    if report.fatal:
        return _finish(report, raise_on_fatal, strict, None)
    report.add("unparseable_dates", WARNING, int(bad_decom.sum()),
               f"episode DECOM not a date ({_locate(ep, bad_decom, ep_sources)}); write dates as "
               "dd/mm/YYYY; those episodes dropped")
    report.add("unparseable_dates", WARNING, int((bad_dec & ~bad_decom).sum()),
               f"episode DEC not a date ({_locate(ep, bad_dec & ~bad_decom, ep_sources)}); write "
               "dates as dd/mm/YYYY; those episodes dropped")
    no_start = ep["DECOM"].isna() & ~bad_decom
    report.add("missing_dates", WARNING, int(no_start.sum()),
               f"episode DECOM blank ({_locate(ep, no_start, ep_sources)}); episodes dropped")
    no_child = ep["CHILD"] == ""
    report.add("missing_child", WARNING, int(no_child.sum()),
               f"episode CHILD blank ({_locate(ep, no_child, ep_sources)}); episodes dropped")
    ep = ep[~(bad_decom | bad_dec | no_start | no_child)]
    # Compare dates as dates, whatever format each file used.
    ep = _dedupe(ep, ["CHILD", "DECOM"], "episodes", report, len(ep_sources))

    for col, allowed in codes.CODE_LISTS.items():
        _unknown_codes(ep, col, allowed, report, ep_sources, allow_blank=(col == "REC"))
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
               f"episodes ending (DEC) before they start (DECOM) ({_locate(ep, backwards, ep_sources)}); "
               "dropped")
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

    ep = ep.drop(columns=["_file", "_line"]).reset_index(drop=True)
    head = head.drop(columns=["_file", "_line"]).reset_index(drop=True)
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


def validate(header, episodes=None, *, as_of=None, strict: bool = False) -> ValidationReport:
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
