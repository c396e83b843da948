"""Hostile and careless input (issue 13), through the command line a user types: every bad YAML,
flag, import file and SSDA903 file is stopped before any notebook starts, with ONE line naming
the problem and the fix, a non-zero exit, no traceback, and nothing written.

Cases (counted by `test_the_suite_counts_its_cases`): YAML_CASES (YAML files), FOLDER_CASES
(two files, one folder), FLAG_CASES (flags of `care-trends run`), IMPORT_CASES (`data import`),
SSDA903_CASES (`validate-903`), plus the escaping tests at the end (a hostile title through the
present layer, the sanitiser and a real `care-trends run --only 03`).
"""

from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

import pandas as pd
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from helpers import cli, data
from helpers import spec as specs
from helpers.core.errors import CareTrendsError
from helpers.models.its import fit_its
from helpers.present import checks as check_words
from helpers.present import comparative as comparative_words
from helpers.present import its as its_words
from helpers.present.text import md_escape
from helpers.run import publish
from test_report import ALPHA, STOKE, write_notebook

ROOT = Path(__file__).resolve().parents[1]
BASE = {**STOKE, "analysis": "hostile"}


def dump(changes: dict | None = None, drop: tuple = ()) -> bytes:
    raw = {k: v for k, v in {**BASE, **(changes or {})}.items() if k not in drop}
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).encode("utf-8")


BOMB = b"la: Stoke-on-Trent\n" + b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n".encode()
    for p, c in zip("abcdefgh", "bcdefghi"))

# (case id, YAML file name, its bytes, what the one line must say)
YAML_CASES = [
    ("not UTF-8", "x.yaml", dump({"title": "caf"}).replace(b"caf", b"caf\xe9"), "UTF-8"),
    ("random bytes", "x.yaml", bytes(range(256)) * 4, "UTF-8"),
    ("alias bomb", "x.yaml", BOMB, "aliases"),
    ("duplicate key", "x.yaml", dump() + b"la: Staffordshire\n", "appears twice"),
    ("python tag", "x.yaml", dump() + b"x: !!python/object/apply:os.system ['true']\n",
     "fix the YAML"),
    ("not YAML", "x.yaml", b"la: [Stoke-on-Trent\nevents: {\n", "fix the YAML"),
    ("control character", "x.yaml", b"la: \"Stoke\x07\"\n", "fix the YAML"),
    ("deep nesting", "x.yaml", b"title: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested"),
    ("a list, not a mapping", "x.yaml", b"- la: Stoke-on-Trent\n", "mapping"),
    ("a scalar, not a mapping", "x.yaml", b"Stoke-on-Trent\n", "mapping"),
    ("empty file", "x.yaml", b"", "missing"),
    ("outcomes: null", "x.yaml", dump({"outcomes": None}), "outcomes is empty"),
    ("outcomes: []", "x.yaml", dump({"outcomes": []}), "outcomes is empty"),
    ("events: null", "x.yaml", dump({"events": None}), "no events"),
    ("la: null", "x.yaml", dump({"la": None}), "la"),
    ("comparator: []", "x.yaml", dump({"comparator": []}), "comparator list is empty"),
    ("seed: 1e400", "x.yaml", dump() + b"seed: 1e400\n", "seed"),
    ("title 10,000 characters", "x.yaml", dump({"title": "t" * 10_000}), "title"),
    ("event title a mapping", "x.yaml",
     dump({"events": [{"name": "fm", "date": "2024-03-01", "title": {"a": "b"}}]}), "title"),
    ("event name with spaces", "x.yaml",
     dump({"events": [{"name": "family matters!", "date": "2024-03-01"}]}), "events[1].name"),
    ("notebooks: [99]", "x.yaml", dump({"notebooks": ["99"]}), "unknown notebook '99'"),
    ("SSDA903 path a folder", "x.yaml",
     dump({"ssda903_header": "/", "ssda903_episodes": "/"}), "is a folder"),
    ("analysis: index.html", "x.yaml", dump({"analysis": "index.html"}), "uses itself"),
    ("analysis: all-las", "x.yaml", dump({"analysis": "all-las"}), "uses itself"),
    ("analysis: results.json", "x.yaml", dump({"analysis": "results.json"}), "uses itself"),
    ("analysis: page.html", "x.yaml", dump({"analysis": "page.html"}), "uses itself"),
    ("analysis: .failed", "x.yaml", dump({"analysis": ".failed"}), "lower-case"),
    ("analysis: ../escape", "x.yaml", dump({"analysis": "../escape"}), "lower-case"),
    ("analysis with spaces", "x.yaml", dump({"analysis": "Stoke On Trent"}), "lower-case"),
    ("file named index.html.yaml", "index.html.yaml", dump(drop=("analysis",)), "uses itself"),
    ("file named all-las.yaml", "all-las.yaml", dump(drop=("analysis",)), "uses itself"),
    ("file named Stoke Copy.yaml", "Stoke Copy.yaml", dump(drop=("analysis",)), "lower-case"),
]


def state(*folders: Path) -> dict:
    """Every file's bytes under the folders, and which folders exist."""
    out = {}
    for folder in folders:
        out[str(folder)] = folder.exists()
        if folder.is_dir():
            out.update({str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})
    return out


def one_line_error(argv, capsys) -> str:
    """Run the CLI; assert a non-zero exit, no traceback, one line on stderr; return it."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), err
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("care-trends: error: "), lines[0]
    return lines[0]


@pytest.fixture
def notebook_dir(tmp_path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder, "01_alpha", ALPHA)
    return folder


@pytest.mark.parametrize("case, name, content, expected", YAML_CASES,
                         ids=[c[0] for c in YAML_CASES])
def test_bad_yaml_is_one_line_and_writes_nothing(tmp_path, notebook_dir, capsys, case, name,
                                                 content, expected):
    path = tmp_path / "in" / name
    path.parent.mkdir()
    path.write_bytes(content)
    reports = tmp_path / "reports"
    before = state(tmp_path / "in", notebook_dir)
    line = one_line_error(["run", path, "--notebooks-dir", notebook_dir, "--reports-dir",
                           reports, "--no-progress", "--workers", "1"], capsys)
    assert expected in line
    assert not reports.exists() and state(tmp_path / "in", notebook_dir) == before


# ------------------------------------------------------------------- two files, one folder
def test_two_yamls_for_one_folder_are_refused(tmp_path, notebook_dir, capsys):
    """Copying a YAML (with its `analysis:`) and changing only `la:` must not overwrite the
    original's reports: both files are named, nothing runs."""
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_bytes(dump({"analysis": "same"}))
    b.write_bytes(dump({"analysis": "same", "la": "Staffordshire",
                        "events": [{"name": "plan", "date": "2019-11-22"}]}))
    reports = tmp_path / "reports"
    line = one_line_error(["run", a, b, "--notebooks-dir", notebook_dir, "--reports-dir",
                           reports], capsys)
    assert "a.yaml and b.yaml would both publish to reports/same/" in line
    assert not reports.exists()


def test_a_copy_of_a_committed_yaml_keeping_its_name_is_refused(tmp_path, notebook_dir, capsys):
    text = (ROOT / "notebooks/params/stoke-on-trent.yaml").read_text(encoding="utf-8")
    copy = tmp_path / "barnsley.yaml"
    copy.write_text("analysis: stoke-on-trent\n" + text.replace(
        "la: Stoke-on-Trent ", "la: Barnsley "), encoding="utf-8")
    line = one_line_error(["run", copy, "--notebooks-dir", notebook_dir, "--reports-dir",
                           tmp_path / "reports"], capsys)
    assert "barnsley.yaml and" in line and "stoke-on-trent.yaml would both publish" in line
    # Without `analysis:` the copy publishes to its own folder, named after the file.
    copy.write_text(text.replace("la: Stoke-on-Trent ", "la: Barnsley "), encoding="utf-8")
    assert specs.analysis_folder(copy) == "barnsley"


def test_a_folder_published_from_another_file_is_refused(tmp_path, notebook_dir, capsys):
    """Two YAMLs run at different times into one folder: the manifest names its file."""
    reports = tmp_path / "reports"
    folder = reports / "shared"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"analysis": "shared",
                                                      "source": "first.yaml", "notebooks": []}))
    second = tmp_path / "second.yaml"
    second.write_bytes(dump({"analysis": "shared"}))
    before = state(reports)
    line = one_line_error(["run", second, "--notebooks-dir", notebook_dir, "--reports-dir",
                           reports, "--workers", "1"], capsys)
    assert "holds the analysis published from first.yaml, not second.yaml" in line
    assert state(reports) == before


FOLDER_CASES = [test_two_yamls_for_one_folder_are_refused,
                test_a_copy_of_a_committed_yaml_keeping_its_name_is_refused,
                test_a_folder_published_from_another_file_is_refused]


# ------------------------------------------------------------------- flags of `care-trends run`
FLAG_CASES = [
    ("--reports-dir a file", ["{yaml}", "--reports-dir", "{file}"], "is a file"),
    ("--reports-dir under a file", ["{yaml}", "--reports-dir", "{file}/sub"],
     "cannot be created"),
    ("--scheduler bogus://x", ["--all-las", "--scheduler", "bogus://x"],
     "unknown scheme 'bogus'"),
    ("--scheduler without a port", ["--all-las", "--scheduler", "tcp://host"], "port"),
    ("--scheduler without a scheme", ["--all-las", "--scheduler", "host:8786"], "scheme"),
    ("--scheduler without --all-las", ["{yaml}", "--scheduler", "tcp://h:8786"],
     "only applies with"),
    ("--la without --all-las", ["{yaml}", "--la", "Derby"], "only applies with"),
    ("--notebooks without --all-las", ["{yaml}", "--notebooks"], "only applies with"),
    ("--workers 0", ["{yaml}", "--workers", "0"], "--workers 0: give at least 1"),
    ("--workers -3", ["{yaml}", "--workers", "-3"], "give at least 1"),
    ("--workers abc", ["{yaml}", "--workers", "abc"], "invalid int value: 'abc'"),
    ("--timeout 0", ["{yaml}", "--timeout", "0"], "positive number of seconds"),
    ("--timeout -1", ["{yaml}", "--timeout", "-1"], "positive number of seconds"),
    ("--timeout nan", ["{yaml}", "--timeout", "nan"], "positive number of seconds"),
    ("--timeout inf", ["{yaml}", "--timeout", "inf"], "positive number of seconds"),
    ("--only 99", ["{yaml}", "--only", "99"], "unknown notebook '99'"),
    ("--only a path", ["{yaml}", "--only", "../../etc/passwd"], "unknown notebook"),
    ("--notebooks-dir missing", ["{yaml}", "--notebooks-dir", "{tmp}/nowhere"],
     "is not a folder"),
    ("--notebooks-dir a file", ["{yaml}", "--notebooks-dir", "{file}"], "is not a folder"),
    ("--all-las with two analyses", ["{yaml}", "{yaml}", "--all-las"], "at most one analysis"),
    ("--all-las with a missing template", ["{tmp}/no-template.yaml", "--all-las"], "not found"),
    ("an unknown flag", ["{yaml}", "--frobnicate"], "unrecognized arguments"),
    ("an unknown analysis", ["stoke-on-tren"], "did you mean 'stoke-on-trent'"),
    ("a missing YAML path", ["{tmp}/missing.yaml"], "missing.yaml not found"),
    ("a name with a line break", ["{tmp}/x\ny.yaml"], "not found"),
]


@pytest.mark.parametrize("case, args, expected", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, notebook_dir, capsys, case, args,
                                                  expected):
    good = tmp_path / "hostile.yaml"
    good.write_bytes(dump())
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    fill = {"{file}": str(a_file), "{tmp}": str(tmp_path), "{yaml}": str(good)}
    argv = ["run"]
    for arg in args:
        for key, value in fill.items():
            arg = arg.replace(key, value)
        argv.append(arg)
    argv.append("--no-progress")
    if "--notebooks-dir" not in argv:
        argv += ["--notebooks-dir", str(notebook_dir)]
    if "--reports-dir" not in argv:
        argv += ["--reports-dir", str(tmp_path / "reports")]
    before = state(tmp_path)
    assert expected in one_line_error(argv, capsys)
    assert state(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_reports_dir_is_one_line(tmp_path, notebook_dir, capsys):  # pragma: no cover
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    good = tmp_path / "hostile.yaml"
    good.write_bytes(dump())
    line = one_line_error(["run", good, "--reports-dir", locked / "reports",
                           "--notebooks-dir", notebook_dir], capsys)
    assert "cannot be written" in line


# ------------------------------------------------------------------- `data import`
IMPORT_CASES = [
    ("a missing file", "missing.csv", None, "not found"),
    ("a folder", "folder.csv", "folder", "not found"),
    ("random bytes", "junk.csv", bytes(range(256)) * 20, "not a readable CSV"),
    ("an empty file", "empty.csv", b"", "not a readable CSV"),
    ("latin-1 text", "latin.csv", "time_period,la_name\n2026,Caf\xe9\n".encode("latin-1"),
     "not a readable CSV"),
    ("a header and no rows", "header.csv", b"time_period,geographic_level\n", "missing column"),
    ("a spreadsheet saved as .csv", "sheet.csv", b"PK\x03\x04" + bytes(200), "download that"),
]


@pytest.mark.parametrize("case, name, content, expected", IMPORT_CASES,
                         ids=[c[0] for c in IMPORT_CASES])
def test_bad_import_files_are_one_line_and_change_nothing(tmp_path, capsys, case, name, content,
                                                          expected):
    out = tmp_path / "processed"
    out.mkdir()
    for panel_file in (data.PANEL_FILE, data.PROVENANCE_FILE):
        shutil.copyfile(data.panel_path().parent / panel_file, out / panel_file)
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    imports = ROOT / "data" / "imports"
    before = state(out, imports)
    line = one_line_error(["data", "import", path, "--output", out], capsys)
    assert expected in line
    assert state(out, imports) == before


# ------------------------------------------------------------------- `validate-903`
SSDA903_CASES = [
    ("missing files", ["{tmp}/h.csv", "{tmp}/e.csv"], "not found"),
    ("folders", ["{tmp}", "{tmp}"], "is a folder"),
    ("random bytes", ["{junk}", "{junk}"], "cannot be used"),
    ("empty files", ["{empty}", "{empty}"], "cannot be used"),
    ("one CSV alone", ["{empty}"], "give both"),
    ("a pattern matching nothing", ["{tmp}/none_*.csv", "{tmp}/none_*.csv"], "matches"),
]


@pytest.mark.parametrize("case, files, expected", SSDA903_CASES,
                         ids=[c[0] for c in SSDA903_CASES])
def test_bad_903_files_are_one_line(tmp_path, capsys, case, files, expected):
    junk, empty = tmp_path / "junk.csv", tmp_path / "empty.csv"
    junk.write_bytes(bytes(range(256)) * 20)
    empty.write_bytes(b"")
    fill = {"{tmp}": str(tmp_path), "{junk}": str(junk), "{empty}": str(empty)}
    argv = ["validate-903"]
    for f in files:
        for key, value in fill.items():
            f = f.replace(key, value)
        argv.append(f)
    before = state(tmp_path)
    assert expected in one_line_error(argv, capsys)
    assert state(tmp_path) == before


def test_the_suite_counts_its_cases():
    counts = {"YAML files": len(YAML_CASES), "two files, one folder": len(FOLDER_CASES),
              "run flags": len(FLAG_CASES) + 1, "data import": len(IMPORT_CASES),
              "SSDA903 files": len(SSDA903_CASES)}
    assert sum(counts.values()) >= 70, counts


# ------------------------------------------------------------------- escaping
HOSTILE_TITLE = ("Family <script>alert(1)</script> [click](javascript:alert(2)) "
                 "<img src=x onerror=alert(3)> **bold** `code` | cell $x$ # h")


def _inert(text: str) -> None:
    """Rendered as a notebook's Markdown output is (nbconvert's renderer), the hostile title
    adds no element, handler, link, emphasis or code: it shows as typed."""
    html = markdown2html_mistune(text)
    assert unsafe_markup(html) == []
    for added in ("<script", "<img", "<a ", "<strong>bold", "<em>", "<code>code", "<h1",
                  "<table", "<del>"):
        assert added not in html, added


def test_md_escape_makes_user_strings_inert():
    with pytest.raises(AssertionError):
        _inert(HOSTILE_TITLE)  # the check can fail
    escaped = md_escape(HOSTILE_TITLE + "\n\n# heading\n- item")
    _inert(escaped)
    _inert("- " + escaped)
    assert HOSTILE_TITLE.split(" ")[0] in markdown2html_mistune(escaped)
    assert "\n" not in escaped
    assert md_escape("Family Matters launched") == "Family Matters launched"
    assert md_escape("1. Start") == "1\\. Start" and md_escape("- x") == "\\- x"
    assert md_escape("Children & Families") == "Children &amp; Families"


def test_present_layer_escapes_titles_and_names_in_markdown():
    series = data.annual_series("Stoke-on-Trent", "starts", 2014)
    event = specs.validate({**BASE, "events": [{"name": "fm", "date": "2020-10-01",
                                                "title": HOSTILE_TITLE}]})
    res = fit_its(series, outcome="count", time="year", **event.interventions("annual"),
                  family="quasipoisson", offset="population", counterfactual_for="fm")
    for text in (its_words.summary(res), its_words.impact_model_text(res),
                 *its_words.warnings(res)):
        _inert(text)
    assert "Family &lt;script&gt;" in its_words.summary(res)
    table = pd.DataFrame([{"design": "ITS", "estimate": 0.8, "ci_low": 0.7, "ci_high": 0.9,
                           "p_value": 0.01, "scale": "ratio", "direction": "down",
                           "clear": True}])
    _inert(comparative_words.agreement_text(table, "<b>LA</b>", HOSTILE_TITLE, "starts"))
    _inert(check_words.headline_text({"event_title": HOSTILE_TITLE, "n_specs": 4,
                                      "fragility": "robust", "min_percent": -10,
                                      "max_percent": -5, "default_percent": -7,
                                      "share_negative": 1.0, "share_significant": 0.5}))


def test_sanitiser_keeps_the_page_and_drops_scripts():
    page = ("<!DOCTYPE html><html><head><title>t &amp; u</title><style>p{color:red}</style>"
            "</head><body><main id=\"main\"><h1 id=\"x\">Title</h1>"
            "<p>ok <script>alert(1)</script><a href=\"javascript:alert(2)\">j</a>"
            "<a href=\"03_its.html\">page</a><a href=\"https://www.gov.uk/\">gov</a></p>"
            "<img src=\"x\" onerror=\"alert(3)\">"
            "<figure class=\"chart\"><img src=\"data:image/png;base64,iVBORw0KGgo=\" "
            "alt=\"chart\"></figure><a href=\"data:text/html,<script>alert(4)</script>\">d</a>"
            "<table><tr style=\"text-align: right; background: url(x)\"><th scope=\"col\">a</th>"
            "</tr></table><details><summary>more</summary>text</details>"
            "<svg onload=\"alert(5)\"></svg><iframe src=\"https://evil\"></iframe></main></body>"
            "</html>")
    clean = publish.sanitize_html(page)
    assert clean.startswith("<!DOCTYPE html><html><head><title>t &amp; u</title><style>")
    for bad in ("<script", "javascript:", "onerror", "onload", "<iframe", "<svg",
                "data:text/html", "url(x)"):
        assert bad not in clean, bad
    for good in ('<h1 id="x">', 'href="03_its.html"', 'href="https://www.gov.uk/"',
                 'src="data:image/png;base64,iVBORw0KGgo="', 'alt="chart"', 'scope="col"',
                 "text-align", "<details><summary>more</summary>", 'id="main"'):
        assert good in clean, good


def test_site_index_is_sanitised(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({
        "analysis": "x", "title": "<script>alert(1)</script>", "la": "L", "records": 0,
        "data_edition": "e", "notebooks": [{"stem": "01_a", "title": "A", "html": "01_a.html",
                                            "headline": "[x](javascript:alert(1))"}]}))
    index = publish.build_index(tmp_path).read_text()
    assert "<script" not in index and 'href="javascript' not in index


class _Markup(HTMLParser):
    """Every real tag and attribute of a page (text and attribute values are not markup)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend((tag, name, value or "") for name, value in attrs)


def unsafe_markup(page: str) -> list[str]:
    """Scripts, event handlers, javascript:/data: links and frames in a page."""
    parser = _Markup()
    parser.feed(page)
    bad = [t for t in parser.tags if t in ("script", "iframe", "object", "embed", "svg")]
    for tag, name, value in parser.attributes:
        target = value.strip().lower()
        if name.startswith("on"):
            bad.append(f"{tag} {name}")
        if name in ("href", "src") and (target.startswith("javascript:") or (
                target.startswith("data:") and not (tag == "img" and target.startswith(
                    ("data:image/png;base64,", "data:image/jpeg;base64,"))))):
            bad.append(f"{tag} {name}={value[:30]}")
    return bad


@pytest.mark.slow
def test_hostile_yaml_reaches_no_published_html_raw(tmp_path):
    """The regression of issue 13 (`<script>` reached 03_its.html 17 times): an event title
    and description with a script, an event handler and a javascript: link, through the real
    notebook 03 (`care-trends run --only 03`)."""
    text = (ROOT / "notebooks/params/stoke-on-trent.yaml").read_text(encoding="utf-8")
    text = text.replace("title: Family Matters launched", f"title: {json.dumps(HOSTILE_TITLE)}")
    text = text.replace("description: >-", "description: >-\n  <script>alert('d')</script> "
                        "[d](javascript:alert(4)) <img src=x onerror=alert(5)>")
    yaml_file = tmp_path / "hostile.yaml"
    yaml_file.write_text(text, encoding="utf-8")
    assert HOSTILE_TITLE in specs.load_analysis(yaml_file).titles.values()
    reports = tmp_path / "reports"
    code = cli.main(["run", str(yaml_file), "--only", "03", "--reports-dir", str(reports),
                     "--no-progress", "--workers", "1"])
    assert code == 0
    pages = sorted(reports.rglob("*.html"))
    assert {p.name for p in pages} == {"03_its.html", "index.html", "glossary.html"}
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html.lower(), page.name
        assert unsafe_markup(html) == [], page.name
    # The title is shown as typed, not dropped.
    assert "Family &lt;script&gt;alert(1)&lt;/script&gt;" in (
        reports / "hostile" / "03_its.html").read_text(encoding="utf-8")


def test_errors_from_a_hostile_yaml_are_one_line():
    with pytest.raises(CareTrendsError) as info:
        specs.validate({**BASE, "analysis": "x\ny"})
    assert "\n" not in str(info.value)


def test_the_markup_check_finds_what_it_looks_for():
    page = ('<p onclick="x()">a</p><a href=" JavaScript:alert(1)">j</a><script>1</script>'
            '<img src="data:image/svg+xml,<svg/>"><img src="data:image/png;base64,AA" alt="'
            '&lt;script&gt; onerror=alert(1)">')
    assert unsafe_markup(page) == ["script", "p onclick", "a href= JavaScript:alert(1)",
                                   "img src=data:image/svg+xml,<svg/>"]
