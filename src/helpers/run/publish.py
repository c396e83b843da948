"""Publishing: executed notebooks to accessible HTML pages (code hidden), and the site index.
Every page is rendered from a Jinja template with autoescaping, so user strings are escaped;
then `sanitize_html` passes the page body through an allowlist (nh3, the Rust ammonia
sanitiser), so no script, event handler or javascript: link a notebook output carries (e.g. an
event title in Markdown) reaches a published page."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import jinja2
import nbformat
import nh3
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from helpers import __version__, data
from helpers.core import paths
from helpers.core.io import atomic_write_text
from helpers.present import glossary
from helpers.present.answer import short_html

TEMPLATE_NAME = "care_trends"
MANIFEST = "manifest.json"
#: The summary notebook's answer (helpers.present.answer.Answer.to_json), beside results.json.
ANSWER = "answer.json"
#: Where the short answer goes on every page (the page template leaves this pair empty).
ANSWER_MARK = ("<!-- care-trends:answer -->", "<!-- /care-trends:answer -->")
#: The declared order of analyses on the site index (the primary case first).
SITE_ORDER_FILE = "site_order.json"
GLOSSARY_PAGE = "glossary.html"
_ACRONYMS = {"its": "ITS"}  # words a page title keeps in capitals


def templates_dir() -> Path:
    return Path(__file__).with_name("templates")


def _css() -> str:
    return (templates_dir() / TEMPLATE_NAME / "style.css").read_text(encoding="utf-8")


def data_edition() -> str:
    """Which official data the reports were built from (years, editions, imports)."""
    return str(data.edition())


def page_header(spec, notebooks: list[Path]) -> dict:
    """What every page of an analysis shows in its header."""
    return {"analysis": spec.analysis, "analysis_title": spec.title or
            f"{spec.la_name}: did the programme change the trend of children entering care?",
            "la": spec.la_name, "data_edition": data_edition(), "version": __version__,
            "nav": [[nb.stem, pretty_stem(nb.stem)] for nb in notebooks]}


def pretty_stem(stem: str) -> str:
    """'03_its' -> '03. ITS'."""
    number, _, rest = stem.partition("_")
    words = [_ACRONYMS.get(word, word) for word in rest.split("_")]
    return f"{number}. {' '.join(words)[:1].upper()}{' '.join(words)[1:]}"


def notebook_title(nb) -> str:
    """The first markdown heading, else the metadata title."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return nb.metadata.get("title", "")


def _markdown_text(text: str) -> str:
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = re.sub(r"(?m)^\s*(#+|>|[-*] )\s*", "", text)  # headings, quotes, bullets
    text = re.sub(r"[*`|]", "", text)  # emphasis, code, table bars (underscores stay)
    return " ".join(text.split())


def _first_sentences(text: str, limit: int = 260) -> str:
    text = _markdown_text(text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    stop = max(cut.rfind(". "), cut.rfind("; "))
    if stop > 60:
        return cut[:stop].rstrip(".;") + ("." if cut[stop] == "." else " ...")
    return cut.rsplit(" ", 1)[0] + " ..."


def headline(nb) -> str:
    """The notebook's headline finding: the markdown output of a cell tagged `headline`, else
    the first markdown output (the plain-English reading), else its purpose paragraph."""
    def markdown_outputs(cell):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown")
            if text:
                yield text

    for cell in nb.cells:
        if "headline" in cell.get("metadata", {}).get("tags", []):
            for text in markdown_outputs(cell):
                return _first_sentences(text)
    for cell in nb.cells:
        for text in markdown_outputs(cell):
            if len(_markdown_text(text)) > 40:
                return _first_sentences(text)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            body = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
            if body:
                return _first_sentences(" ".join(body))
    return ""


#: What a published page body may hold: nbconvert's lab cell markup, the page shell, tables,
#: figures with inline PNG/JPEG charts, headings, lists, links, code and details.
SAFE_TAGS = {
    "a", "abbr", "article", "aside", "b", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li",
    "main", "mark", "nav", "ol", "p", "pre", "q", "s", "samp", "section", "small", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time",
    "tr", "u", "ul", "var",
}
SAFE_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir", "role", "hidden"},
    "a": {"href"},
    "div": {"tabindex"},  # a wide table's scrolling region must be reachable by keyboard
    "img": {"src", "alt", "width", "height"},
    "table": {"border"},
    "tr": {"style"},
    "th": {"scope", "colspan", "rowspan", "abbr", "style"},
    "td": {"colspan", "rowspan", "headers", "style"},
    "ol": {"start", "reversed", "type"},
    "details": {"open"},
    "col": {"span"},
    "colgroup": {"span"},
    "time": {"datetime"},
}
_SAFE_IMAGES = ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/gif;base64,")


def _safe_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Links keep http(s), mailto and relative targets; a data: URL only as an inline chart."""
    if attribute in ("href", "src") and value.strip().lower().startswith("data:"):
        return value if (tag, attribute) == ("img", "src") and value.startswith(_SAFE_IMAGES) \
            else None
    return value


def sanitize_html(page: str) -> str:
    """The page with its <body> passed through the allowlist above (script and style elements
    go with their content, event handlers and javascript: URLs are dropped; comments are inert
    and kept); the <head> comes
    from our own autoescaped template and is kept as it is."""
    opening = re.search(r"<body\b[^>]*>", page, flags=re.IGNORECASE)
    closing = page.lower().rfind("</body>")
    if opening is None or closing < opening.end():
        start, end = 0, len(page)
        head, tail = "", ""
    else:
        start, end = opening.end(), closing
        head, tail = page[:start], page[end:]
    body = nh3.clean(page[start:end], tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES,
                     generic_attribute_prefixes={"aria-", "data-"},
                     url_schemes={"http", "https", "mailto", "data"},
                     attribute_filter=_safe_attribute,
                     filter_style_properties={"text-align", "vertical-align", "white-space"},
                     strip_comments=False)  # inert, and the answer block's markers are comments
    return head + body + tail


def render_html(nb_path: Path, html_path: Path, header: dict) -> dict:
    """Executed notebook -> accessible HTML with the code hidden. Returns title and headline."""
    nb = nbformat.read(str(nb_path), as_version=4)
    page, about = render_page(nb, header, Path(nb_path).stem)
    atomic_write_text(html_path, page)
    return about


def render_page(nb, header: dict, stem: str) -> tuple[str, dict]:
    """An executed notebook (a notebook node) -> its sanitised page, and its title and
    headline. The national batch (helpers.run.national_batch) builds its nodes in-process."""
    title, line = notebook_title(nb), headline(nb)
    page = {**header, "page_title": title or stem, "current": stem, "css": _css()}
    body, _ = _exporter().from_notebook_node(
        nb, resources={"care_trends": page, "metadata": {"name": page["page_title"]}})
    return sanitize_html(body), {"title": title, "headline": line}


@functools.lru_cache(maxsize=1)
def _exporter() -> HTMLExporter:
    """One exporter per process (loading its templates costs more than a page)."""
    exporter = HTMLExporter(template_name=TEMPLATE_NAME,
                            extra_template_basedirs=[str(templates_dir())],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True,
                            # the notebook is validated once, after every preprocessor (not
                            # after each of the dozen: a tenth of a page's rendering)
                            optimistic_validation=True)
    remover = TagRemovePreprocessor(
        remove_cell_tags=("parameters", "injected-parameters", "remove_cell"), enabled=True)
    exporter.register_preprocessor(remover, enabled=True)
    return exporter


def read_manifests(reports_root: Path) -> list[dict]:
    manifests = []
    for path in sorted(Path(reports_root).glob(f"*/{MANIFEST}")):
        if path.parent.name.startswith("."):
            continue
        try:
            manifests.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return manifests


def site_order() -> list[str]:
    """The declared order of the analyses on the index: notebooks/params/site_order.json."""
    path = paths.notebooks_dir() / "params" / SITE_ORDER_FILE
    try:
        order = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(name) for name in order] if isinstance(order, list) else []


def read_answer(folder: Path) -> dict | None:
    """An analysis' published answer (answer.json), or None."""
    try:
        value = json.loads((Path(folder) / ANSWER).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def add_answer_to_pages(folder: Path, summary_stem: str = "09_summary") -> int:
    """Put the short answer (from `folder/answer.json`) at the top of every page of an analysis
    that does not carry the full answer, and link glossary terms; idempotent. Returns the number
    of pages changed. The runner calls this once every notebook has run (runner.finish), and
    build_index again for folders published before (a no-op when already done)."""
    folder = Path(folder)
    answer = read_answer(folder)
    changed = 0
    for page in sorted(folder.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        new = text
        start, end = ANSWER_MARK
        # The summary page carries the whole answer (nbconvert may reorder its attributes).
        full = re.search(r'<section[^>]*\bclass="answer"', new) is not None
        if answer is not None and start in new and not full and not _between(new):
            block = short_html(answer, summary_href=f"{summary_stem}.html")
            a, b = new.index(start) + len(start), new.index(end)
            new = new[:a] + block + new[b:]
        if 'class="term"' not in new:
            new = glossary.link_terms(new, href=f"../{GLOSSARY_PAGE}")
        if new != text:
            atomic_write_text(page, new)
            changed += 1
    return changed


def _between(page: str) -> str:
    start, end = ANSWER_MARK
    if start not in page or end not in page:
        return ""
    return page[page.index(start) + len(start):page.index(end)]


def write_glossary(reports_root: Path) -> Path:
    """reports/glossary.html: the plain-words glossary every page links to."""
    env = _environment()
    page = env.get_template("glossary.html.j2").render(
        title="Glossary: the words the reports use", css=_css(), version=__version__,
        body=glossary.glossary_html())
    target = Path(reports_root) / GLOSSARY_PAGE
    atomic_write_text(target, sanitize_html(page))
    return target


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                              autoescape=True, keep_trailing_newline=True)


def _is_demonstration(notebook: dict) -> bool:
    """A page that only demonstrates a method on SYNTHETIC data."""
    return "SYNTHETIC" in f"{notebook.get('title', '')} {notebook.get('headline', '')}"


def build_index(reports_root=None, order: list[str] | None = None) -> Path:
    """reports/index.html, question first: one card per analysis (with a manifest) showing its
    answer in short (whole sentences from answer.json), a link to the full answer, its pages
    (SYNTHETIC demonstrations in their own labelled list), then extra sections (all-las/).
    Analyses are in the declared order (notebooks/params/site_order.json), then `order`, then
    by name. Also writes reports/glossary.html and puts the short answer on every page."""
    reports_root = Path(reports_root) if reports_root else paths.reports_dir()
    reports_root.mkdir(parents=True, exist_ok=True)
    manifests = read_manifests(reports_root)
    declared = site_order() + [name for name in (order or []) if name not in site_order()]
    rank = {name: i for i, name in enumerate(declared)}
    manifests.sort(key=lambda m: (rank.get(m["analysis"], len(rank)), m["analysis"]))
    cards = []
    for m in manifests:
        folder = reports_root / m["analysis"]
        add_answer_to_pages(folder)
        answer = read_answer(folder)
        pages = [n for n in m.get("notebooks", []) if not _is_demonstration(n)]
        demos = [n for n in m.get("notebooks", []) if _is_demonstration(n)]
        summary = next((n for n in m.get("notebooks", []) if n["stem"].endswith("_summary")),
                       None)
        cards.append({"m": m, "answer": answer, "pages": pages, "demos": demos,
                      "summary": summary})
    extras = []
    for extra in sorted(reports_root.glob("*/index.html")):
        # e.g. reports/all-las/ from `care-trends run --all-las`
        if not (extra.parent / MANIFEST).exists() and not extra.parent.name.startswith("."):
            name = extra.parent.name
            extras.append({"name": name, "title": name.replace("-", " ").capitalize(),
                           "link_text": f"Every local authority: {name}/index.html"})
    write_glossary(reports_root)
    page = _environment().get_template("site_index.html.j2").render(
        title="care-trends reports", css=_css(), version=__version__,
        edition=manifests[0]["data_edition"] if manifests else data_edition(),
        heading="Did a local programme change the trend of children entering care?",
        intro="Each analysis asks the question for one English local authority and answers it "
              "from the official statistics. The answer so far is shown first; how sure we "
              "can be, and when we will know more, is on each analysis' summary page.",
        cards=cards, manifests=manifests, extras=extras, glossary=GLOSSARY_PAGE)
    target = reports_root / "index.html"
    atomic_write_text(target, sanitize_html(page))
    return target
