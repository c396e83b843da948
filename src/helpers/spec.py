"""The analysis specification: one YAML file, parsed and validated ONCE into typed models that
every notebook, chart, table and page reads.

    spec = load_analysis("stoke-on-trent")                  # notebooks/params/stoke-on-trent.yaml
    spec = load_analysis("stoke-on-trent", {"la": "Staffordshire"})   # overrides, e.g. in JupyterLab
    spec.primary_event, spec.primary_outcome, spec.la_code, spec.interventions("annual")

Rules (checked here, before any notebook starts):
- unknown keys at any depth are errors with "did you mean"; duplicate keys and YAML aliases are
  refused;
- dates are ISO `YYYY-MM-DD` only (`04/02/2019` is refused, never read as 2 April);
- `primary_outcome` defaults to the first outcome listed; `primary_event` defaults to the most
  recent event (latest date; the question an analysis asks is about its latest event);
- every event must fall inside the data with at least MIN_PRE_YEARS reporting years before it;
  an event listed in data/reference/events.csv for another LA is an error unless it is marked
  `applies_to_any_la: true`;
- the LA must be a local authority with a continuous series (not England or a region), and
  comparators and excluded donors must be other LAs.

Why pydantic (v2): typed models with per-field errors at any depth, `extra="forbid"` for typo
detection, and JSON round-trips for handing the validated spec to papermill; it is the
well-kept standard for this in Python.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

from helpers import data
from helpers.core import paths, timeline, vocab
from helpers.core.errors import CareTrendsError
from helpers.ssda903.extract import expand_paths

#: Minimum reporting years before an event's first full year, for a pre-event trend.
MIN_PRE_YEARS = 3
#: Smallest count from episode data that may be published (DfE rule: counts of 1-4 suppressed).
SMALL_COUNT_MIN = 5
#: The template `care-trends run --all-las` uses when no analysis is named.
ALL_LAS_TEMPLATE = "templates/all-las"
LA_LEVEL = "Local authority"
# Anchored: pydantic's `pattern` searches, so an unanchored one accepts "../x" or "a b".
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_FOLDER_NAME = r"^[a-z0-9][a-z0-9_.-]*$"
#: Names the reports site uses itself (reports/index.html, reports/all-las/, .failed/...):
#: an analysis folder may not take them, nor look like a page or data file.
RESERVED_FOLDERS = ("index.html", "all-las", "results.json", "summary.json", "manifest.json",
                    "results", "failed")
_RESERVED_SUFFIXES = (".html", ".htm", ".json", ".css", ".js", ".tmp")
_DEVICE_NAMES = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")  # Windows refuses them


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------
def _iso_date(value):
    """Dates as YAML dates or 'YYYY-MM-DD' text only: 04/02/2019 could be 4 February or 2 April."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"date {text!r} must be written YYYY-MM-DD (e.g. 2019-02-04)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"date {text!r} is not a real date; write it as YYYY-MM-DD") from exc


def _effects(value):
    """'level', 'level+slope', 'level, slope' or a list of those words."""
    if isinstance(value, str):
        value = [part.strip() for part in re.split(r"[+,]", value) if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError("effects must be a list such as [level, slope]")
    if not value:
        raise ValueError("effects is empty; declare [level], [slope] or [level, slope]")
    bad = [v for v in value if v not in vocab.EFFECTS]
    if bad:
        raise ValueError(vocab.suggest(bad[0], vocab.EFFECTS, "effect"))
    return tuple(e for e in vocab.EFFECTS if e in value)


def _string_list(value):
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (str(value),)
    return tuple(str(v) for v in value)


def _known(choices, what: str):
    def check(value):
        if value not in choices:
            raise ValueError(vocab.suggest(value, choices, what))
        return value
    return AfterValidator(check)


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
Outcome = Annotated[str, _known(vocab.MEASURES, "outcome")]
Family = Annotated[str, _known(vocab.FAMILIES, "family")]
Effects = Annotated[tuple[Literal["level", "slope"], ...], BeforeValidator(_effects)]
Names = Annotated[tuple[str, ...], BeforeValidator(_string_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --------------------------------------------------------------------------------------------
# Event and Target
# --------------------------------------------------------------------------------------------
class Event(_Strict):
    """A dated event and its impact model, declared before the data are seen."""

    name: str = Field(pattern=_IDENTIFIER, max_length=60)
    title: str = Field(default="", max_length=200)
    date: IsoDate
    #: How well the date is known: 'day' (exact), 'month' (that calendar month: counts from its
    #: last day), 'quarter' (+-45 days), 'year' (that calendar year), 'approx' (best estimate,
    #: +-3 months in sensitivity analyses).
    precision: Literal["day", "month", "quarter", "year", "approx"] = "day"
    effects: Effects = ("level", "slope")
    phase_in: int = Field(default=0, ge=0, le=120)
    lag: int = Field(default=0, ge=0, le=120)
    #: An event every LA shares (a national policy, COVID-19): not tied to one LA's events.
    applies_to_any_la: bool = False
    source: str | None = None

    @model_validator(mode="after")
    def _default_title(self):
        if not self.title:
            object.__setattr__(self, "title", self.name.replace("_", " "))
        return self

    @property
    def counts_from(self) -> dt.date:
        """The date the event counts from: a date known only to its month or year stands for all
        of it, so its last day is used; otherwise the date as given."""
        if self.precision == "month":
            return (pd.Timestamp(self.date) + pd.offsets.MonthEnd(0)).date()
        if self.precision == "year":
            return dt.date(self.date.year, 12, 31)
        return self.date

    def first_time(self, frequency: str = "annual") -> int:
        """First period wholly in force: the reporting year (annual) or month index (monthly)."""
        if frequency == "annual":
            return timeline.first_full_reporting_year(self.counts_from)
        if frequency == "monthly":
            return timeline.first_full_month_index(self.counts_from)
        raise CareTrendsError(f"frequency must be 'annual' or 'monthly', not {frequency!r}")

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        """The range the true date could lie in (for launch-date sensitivity analyses)."""
        d = pd.Timestamp(self.date)
        if self.precision == "day":
            low, high = d, d
        elif self.precision == "month":
            low, high = d.to_period("M").start_time, d.to_period("M").end_time.normalize()
        elif self.precision == "quarter":
            low, high = d - pd.Timedelta(days=45), d + pd.Timedelta(days=45)
        elif self.precision == "year":
            low, high = pd.Timestamp(d.year, 1, 1), pd.Timestamp(d.year, 12, 31)
        else:  # approx: launch dates of programmes are rarely known better than a season
            low, high = d - pd.DateOffset(months=3), d + pd.DateOffset(months=3)
        return low.date(), high.date()


def as_events(events) -> tuple[Event, ...]:
    """Events from Event objects, dicts (as in a YAML file) or a DataFrame such as
    `helpers.data.load_events()` (its event_id is the name; its other columns are ignored)."""
    if isinstance(events, pd.DataFrame):
        fields = set(Event.model_fields)
        rows = events.rename(columns={"event_id": "name"}).to_dict("records")
        events = [{k: v for k, v in row.items() if k in fields and not _blank(v)} for row in rows]
    out = []
    for event in events or ():
        if isinstance(event, Event):
            out.append(event)
            continue
        try:
            out.append(Event.model_validate(event))
        except ValidationError as exc:
            raise CareTrendsError(f"event {_where_name(event)}: {_one_line(exc, Event)}") from None
    if not out:
        raise CareTrendsError("no events given; add at least one {name, date}, e.g. "
                              "{'name': 'family_matters', 'date': '2024-03-01'}")
    names = [e.name for e in out]
    for name in names:
        if names.count(name) > 1:
            raise CareTrendsError(f"event name {name!r} is used twice; give each event its own name")
    return tuple(out)


def interventions(events, frequency: str = "annual") -> dict:
    """Keyword arguments for `helpers.models.its.fit_its` (interventions, effects, phase_in, lag,
    titles) from events: each event is first in force in the first period wholly after the date
    it counts from (annual: reporting year; monthly: month index)."""
    events = as_events(events)
    return {
        "interventions": {e.name: e.first_time(frequency) for e in events},
        "effects": {e.name: e.effects for e in events},
        "phase_in": {e.name: e.phase_in for e in events},
        "lag": {e.name: e.lag for e in events},
        "titles": {e.name: e.title for e in events},
    }


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (
        isinstance(value, str) and not value.strip())


def _where_name(event) -> str:
    return repr(event.get("name", "?")) if isinstance(event, dict) else repr(event)


class Target(_Strict):
    """A declared goal, e.g. 848 children looked after by 31 March 2026."""

    outcome: Outcome
    value: float = Field(ge=0)
    by: IsoDate
    baseline: float | None = Field(default=None, ge=0)
    baseline_year: int | None = None
    description: str = Field(default="", max_length=300)

    @property
    def year(self) -> int:
        """The reporting year whose figure decides the target."""
        return timeline.reporting_year(self.by)


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------
class Analysis(_Strict):
    """One analysis: an LA, its window, outcomes, events and the choices declared for them."""

    analysis: str = Field(pattern=_FOLDER_NAME, max_length=80)
    title: str = Field(default="", max_length=300)
    description: str = Field(default="", max_length=2000)
    la: str
    start_year: int = Field(default=2014, ge=2010, le=2100)
    end_year: int | None = Field(default=None, ge=2010, le=2100)
    outcomes: tuple[Outcome, ...] = vocab.DEFAULT_OUTCOMES
    primary_outcome: str | None = None
    family: Family = vocab.DEFAULT_FAMILY["annual"]
    monthly_family: Family = vocab.DEFAULT_FAMILY["monthly"]
    events: tuple[Event, ...] = Field(min_length=1)
    primary_event: str | None = None
    targets: tuple[Target, ...] = ()
    comparator: str | tuple[str, ...] = vocab.COMPARATORS[0]
    exclude_donors: Names = ()
    ssda903_header: str | tuple[str, ...] | None = None
    ssda903_episodes: str | tuple[str, ...] | None = None
    small_count_threshold: int = Field(default=SMALL_COUNT_MIN, ge=SMALL_COUNT_MIN, le=100)
    seed: int = Field(default=vocab.DEFAULT_SEED, ge=0, lt=2**32)
    n_simulations: int = Field(default=200, ge=20, le=100_000)
    rho_monthly: float = Field(default=0.5, ge=0.0, lt=1.0)
    exclude_2020: bool = False
    notebooks: Names = ()

    # Resolved from the data (not in the YAML).
    la_code: str = Field(default="", exclude=True)
    la_name: str = Field(default="", exclude=True)
    last_data_year: int = Field(default=0, exclude=True)

    @field_validator("analysis")
    @classmethod
    def _own_folder(cls, value):
        check_folder_name(value)
        return value

    @field_validator("outcomes", mode="before")
    @classmethod
    def _outcome_list(cls, value):
        value = _string_list(value)
        if not value:
            raise ValueError("outcomes is empty; list at least one, e.g. [starts]")
        if len(set(value)) != len(value):
            raise ValueError("outcomes lists an outcome twice")
        return value

    @field_validator("events", "targets", mode="before")
    @classmethod
    def _list_of_mappings(cls, value, info):
        if value is None and info.field_name == "targets":
            return ()
        if value is None:
            raise ValueError("no events declared; list at least one {name, title, date, "
                             "effects}")
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{info.field_name} must be a list, each item starting with "
                             "'- name:'" if info.field_name == "events" else
                             f"{info.field_name} must be a list, each item starting with "
                             "'- outcome:'")
        return value

    @field_validator("comparator", mode="before")
    @classmethod
    def _comparator(cls, value):
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError("comparator list is empty; name LAs or a comparator such as "
                                 "statistical_neighbours_2021")
            return tuple(str(v) for v in value)
        if value not in vocab.COMPARATORS:
            raise ValueError(vocab.suggest(value, vocab.COMPARATORS, "comparator")
                             + " (or a list of LA names or codes)")
        return value

    @field_validator("ssda903_header", "ssda903_episodes", mode="before")
    @classmethod
    def _paths(cls, value):
        if value is None or isinstance(value, str) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError("must be a path, a pattern or a list of paths to your SSDA903 extract "
                         "(or empty for the synthetic stand-in)")

    @field_validator("events")
    @classmethod
    def _unique_events(cls, value):
        names = [e.name for e in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"event name {name!r} appears twice; give each event its own name")
        return value

    @model_validator(mode="after")
    def _against_the_data(self):
        set_ = lambda key, v: object.__setattr__(self, key, v)  # noqa: E731 (frozen model)
        record = data.resolve_la(self.la)
        if record.geographic_level != LA_LEVEL or record.la_code is None:
            raise ValueError(f"la {self.la!r} is {record.la_name} ({record.geographic_level}), "
                             "not a local authority; name one LA (England and regions are "
                             "comparators)")
        set_("la_code", str(record.la_code))
        set_("la_name", str(record.la_name))
        first_year, last_year = _data_years(record.la_code)
        set_("last_data_year", last_year)
        if last_year < _latest_panel_year():
            raise ValueError(
                f"{record.la_name} has no data after {last_year} (the authority was abolished "
                "or reorganised); analyse its successor authority instead")
        end_year = self.end_year or last_year
        for label, year in (("start_year", self.start_year), ("end_year", end_year)):
            if not first_year <= year <= last_year:
                raise ValueError(f"{label} {year} is outside the data for {record.la_name} "
                                 f"(reporting years {first_year}-{last_year}); pick a year in "
                                 "that range" + _boundary_hint(record))
        if end_year - self.start_year < 2 * MIN_PRE_YEARS:
            raise ValueError(f"start_year {self.start_year} to end_year {end_year} is too short "
                             f"a window; allow at least {2 * MIN_PRE_YEARS} years")
        set_("end_year", end_year)

        for event in self.events:
            first_full = event.first_time("annual")
            if first_full > end_year:
                raise ValueError(
                    f"event {event.name!r} on {event.date} is outside the data: its first full "
                    f"reporting year {first_full} is after the last year analysed ({end_year}); "
                    f"give a date before 1 April {end_year} or remove the event")
            if first_full - self.start_year < MIN_PRE_YEARS:
                raise ValueError(
                    f"event {event.name!r} on {event.date} leaves fewer than {MIN_PRE_YEARS} "
                    f"reporting years before it (start_year {self.start_year}); use an earlier "
                    "start_year or a later date")
            owner = _event_owner(event.name)
            if owner and owner != self.la_code and not event.applies_to_any_la:
                raise ValueError(
                    f"event {event.name!r} belongs to another LA (old code {owner}) in "
                    "data/reference/events.csv; rename it, or mark it applies_to_any_la: true")

        names = [e.name for e in self.events]
        if self.primary_event is None:
            set_("primary_event", max(self.events, key=lambda e: e.date).name)
        elif self.primary_event not in names:
            raise ValueError(vocab.suggest(self.primary_event, names, "primary_event"))
        if self.primary_outcome is None:
            set_("primary_outcome", self.outcomes[0])
        elif self.primary_outcome not in self.outcomes:
            raise ValueError(f"primary_outcome {self.primary_outcome!r} is not among the "
                             f"outcomes {list(self.outcomes)}; add it or choose one of them")

        if isinstance(self.comparator, tuple):
            for la in self.comparator:
                self._other_la(la, "comparator")
        for la in self.exclude_donors:
            self._other_la(la, "exclude_donors")
        for key in ("ssda903_header", "ssda903_episodes"):
            value = getattr(self, key)
            if value is not None:
                set_(key, _ssda903_files(value, key))
        return self

    def _other_la(self, la, key: str) -> str:
        record = data.resolve_la(la)
        if record.la_code == self.la_code:
            raise ValueError(f"{key} names {record.la_name}, the LA being analysed; an LA "
                             "cannot be its own comparator")
        if record.geographic_level != LA_LEVEL:
            raise ValueError(f"{key} names {record.la_name}, which is not a local authority")
        return record.la_code

    # ----------------------------------------------------------------------------------------
    # What downstream code reads
    # ----------------------------------------------------------------------------------------
    @property
    def event(self) -> Event:
        """The primary event: what the analysis' headline answer is about."""
        return self.event_named(self.primary_event)

    def event_named(self, name: str) -> Event:
        for event in self.events:
            if event.name == name:
                return event
        raise CareTrendsError(vocab.suggest(name, [e.name for e in self.events], "event"))

    @property
    def titles(self) -> dict[str, str]:
        return {e.name: e.title for e in self.events}

    def interventions(self, frequency: str = "annual") -> dict:
        """Keyword arguments for `helpers.models.its.fit_its` from every declared event."""
        return interventions(self.events, frequency)

    def target_for(self, outcome: str) -> Target | None:
        return next((t for t in self.targets if t.outcome == outcome), None)

    @property
    def uses_own_903(self) -> bool:
        return bool(self.ssda903_header and self.ssda903_episodes)

    def to_parameters(self) -> dict:
        """The validated spec as plain JSON-able values (what the runner hands a notebook)."""
        return self.model_dump(mode="json", exclude_defaults=False)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def params_dir() -> Path:
    return paths.notebooks_dir() / "params"


def list_analyses(directory: Path | None = None) -> list[str]:
    """Names of the analyses (YAML stems) in notebooks/params/, sorted."""
    directory = Path(directory) if directory else params_dir()
    return sorted(p.stem for p in directory.glob("*.yaml"))


def analysis_path(name_or_path, directory: Path | None = None) -> Path:
    """The YAML file of an analysis name (in notebooks/params/) or a path to one."""
    candidate = Path(str(name_or_path))
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise CareTrendsError(f"analysis file {candidate.name} not found; give a YAML path "
                                  "that exists")
        return candidate
    directory = Path(directory) if directory else params_dir()
    path = directory / f"{name_or_path}.yaml"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]*", str(name_or_path)) or ".." in str(
            name_or_path) or not path.is_file():
        raise CareTrendsError(vocab.suggest(name_or_path, list_analyses(directory), "analysis")
                              + " (YAML files in notebooks/params/)")
    return path


def check_folder_name(name: str) -> str:
    """An analysis' folder name under reports/, refused when the site uses it itself or it
    could be taken for a file (CareTrendsError, which pydantic reports as the field's error)."""
    text = str(name)
    lowered = text.casefold()
    if (text.startswith(".") or lowered in RESERVED_FOLDERS or lowered.endswith(_RESERVED_SUFFIXES)
            or _DEVICE_NAMES.fullmatch(lowered) or "/" in text or "\\" in text or not text):
        raise CareTrendsError(
            f"the folder name {text!r} is one the reports site uses itself (index.html, all-las, "
            "results.json, .failed, names ending .html or .json, ...); give the analysis its own "
            "name, e.g. analysis: stoke-family-matters")
    return text


def analysis_folder(name_or_path, directory: Path | None = None) -> str:
    """The folder an analysis YAML publishes to (reports/<folder>/): its `analysis:` when the
    file gives one, else the file's name without .yaml."""
    path = analysis_path(name_or_path, directory)
    given = read_yaml(path).get("analysis")
    return str(given) if given not in (None, "") else path.stem


def read_yaml(path: Path) -> dict:
    """A YAML mapping, refusing what would silently mislead: duplicate keys, aliases, non-UTF-8."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CareTrendsError(f"{Path(path).name} is not UTF-8 text; save it as UTF-8") from exc
    try:
        value = yaml.load(text, Loader=_StrictLoader) or {}  # noqa: S506 (safe loader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise CareTrendsError(f"{Path(path).name}{where}: {problem}; fix the YAML") from exc
    except RecursionError:  # "[[[[..." thousands deep: the parser recurses per level
        raise CareTrendsError(f"{Path(path).name} is nested too deeply to be an analysis; "
                              "fix the YAML") from None
    if not isinstance(value, dict):
        raise CareTrendsError(f"{Path(path).name} must be a mapping of key: value")
    return value


def load_analysis(name_or_path, overrides: dict | None = None, *,
                  directory: Path | None = None, la=None) -> Analysis:
    """Read, fill and validate one analysis. `overrides` replace top-level keys (the runner
    passes a whole validated spec this way); `la` fills a template's {la}/{la_code}/{slug}."""
    overrides = dict(overrides or {})
    try:
        path = analysis_path(name_or_path, directory)
    except CareTrendsError:
        if not overrides.get("events"):  # the runner's overrides carry a whole spec
            raise
        path = None
    raw = read_yaml(path) if path else {}
    raw.update(overrides)
    if la is not None:
        raw = fill_template(raw, la)
    if path is not None:
        raw.setdefault("analysis", path.stem)
    return validate(raw)


def validate(raw: dict) -> Analysis:
    """Validate a mapping into an Analysis; one line naming the problem and the fix."""
    name = raw.get("analysis", "?") if isinstance(raw, dict) else "?"
    name = " ".join(str(name).split())[:80]  # the error stays one line, whatever the name holds
    try:
        return Analysis.model_validate(raw)
    except ValidationError as exc:
        raise CareTrendsError(f"analysis {name}: {_one_line(exc)}") from None
    except CareTrendsError as exc:  # from the data layer (unknown LA ...)
        raise CareTrendsError(f"analysis {name}: {exc}") from None


def fill_template(raw: dict, la) -> dict:
    """A template's strings with {la}, {la_code} and {slug} filled for one LA."""
    record = data.resolve_la(la)
    values = {"la": record.la_name, "la_code": record.la_code, "slug": slugify(record.la_name)}

    def fill(value):
        if isinstance(value, str):
            for key, text in values.items():
                value = value.replace("{" + key + "}", str(text))
            return value
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    filled = fill(raw)
    filled["analysis"] = values["slug"]
    return filled


def slugify(name: str) -> str:
    """Folder name for an LA: 'Stoke-on-Trent' -> 'stoke-on-trent'."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).casefold()).strip("-")
    return slug or "la"


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and aliases (a 400-byte alias bomb can exhaust
    memory; analyses never need anchors)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed; write the value out",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _one_line(exc: ValidationError, root=None) -> str:
    """The first pydantic error as 'where: what; fix' with a suggestion for unknown keys."""
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the real one "missing": report the misspelling first.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(p) for p in err["loc"]]
    where = _where(loc)
    if err["type"] == "extra_forbidden":
        model = root or Analysis
        for part in loc[:-1]:
            if part == "events":
                model = Event
            elif part == "targets":
                model = Target
        known = [f for f, info in model.model_fields.items() if not info.exclude]
        return f"{where}: " + vocab.suggest(loc[-1], known, "key")
    if err["type"] == "missing" and loc == ["events"]:
        return "no events declared; list at least one {name, title, date, effects}"
    if err["type"] == "missing":
        return f"{where} is missing; add it" + (" (e.g. la: Stoke-on-Trent)" if loc == ["la"] else "")
    message = str(err.get("ctx", {}).get("error") or err["msg"]).removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch":
        message = ("must be letters, digits and '_' starting with a letter (e.g. family_matters)"
                   if "events" in loc else "must be lower-case letters, digits, '-', '_' or '.' (the "
                   "folder under reports/: the YAML file's name unless it gives `analysis:`)")
    if err["type"] == "too_short" and loc and loc[-1] == "events":
        message = "no events declared; list at least one {name, title, date, effects}"
    if where and message.startswith("must "):
        return f"{where} {message}"
    return f"{where}: {message}" if where else message


def _where(loc: list[str]) -> str:
    out = ""
    for part in loc:
        out += f"[{int(part) + 1}]" if part.isdigit() else (("." if out else "") + part)
    return out


def _data_years(la_code: str) -> tuple[int, int]:
    """First and last reporting year with a published count for the LA."""
    panel = data.load_panel()
    rows = panel[panel["la_code"].eq(la_code).fillna(False) & panel["count"].notna()]
    if rows.empty:
        raise ValueError(f"no published counts for LA {la_code}; choose another LA")
    return int(rows["year"].min()), int(rows["year"].max())


def _latest_panel_year() -> int:
    return int(data.load_panel()["year"].max())


def _boundary_hint(record) -> str:
    breaks = data.boundary_breaks()
    row = breaks[breaks["la_code"].eq(record.la_code).fillna(False)]
    if row.empty:
        return ""
    return f" ({row['boundary_change'].iloc[0]})"


def _event_owner(name: str) -> str | None:
    events = data.load_events()
    rows = events[events["event_id"].eq(name)]
    return None if rows.empty else str(rows["la_code"].iloc[0])


def _ssda903_files(value, key: str):
    """What the SSDA903 reader accepts (a path, a glob pattern, a comma-separated list or a list
    of those), checked now and made absolute: notebooks run in the report folder."""
    from_list = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, str) for v in from_list):
        raise ValueError(f"{key} must be a path, a pattern or a list of paths to your SSDA903 "
                         "extract")
    try:
        files = expand_paths(value)
    except CareTrendsError as exc:
        raise ValueError(f"{key}: {exc} (or leave it empty for the synthetic stand-in)") from None
    if not files:
        raise ValueError(f"{key} names no file; give the path to your SSDA903 extract or leave "
                         "it empty for the synthetic stand-in")
    absolute = tuple(str(Path(f).resolve()) for f in files)
    return absolute[0] if isinstance(value, str) and len(absolute) == 1 else absolute


def parameters_for_notebook(spec: Analysis) -> dict[str, Any]:
    """What the runner injects into a notebook's parameters cell."""
    return {"analysis": spec.analysis, "overrides": spec.to_parameters()}
