"""The per-LA pages of the every-LA template (notebooks 01, 02 and 03) built in this process,
without a kernel: each page is the notebook's own cells with the outputs its code cells show,
produced by the same `helpers.present` calls from already-fitted results, then rendered and
sanitised by `helpers.run.publish.render_page` like an executed notebook.

Each builder below follows its notebook cell by cell (one `with page.cell():` per code cell
after the parameters cell) and must change with it: `fill_notebook` refuses a notebook whose
code cells no longer match its builder, and tests/test_national_batch.py checks that the pages
are byte-identical to the ones papermill makes. Outputs are formatted by IPython's own display
formatter, with charts as the kernel's inline backend draws them (PNG, tight bounding box) and
their alt text from `helpers.present.charts`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.text as mtext
import nbformat
from IPython.core.formatters import DisplayFormatter
from IPython.core.pylabtools import print_figure
from IPython.display import Markdown
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure

from helpers import data
from helpers.core.errors import CareTrendsError
from helpers.present import charts, overview, summary
from helpers.present import its as its_words
from helpers.present.tables import Table

#: What the kernel's inline backend passes when it draws a figure (matplotlib_inline's
#: InlineBackend.print_figure_kwargs).
FIGURE_KWARGS = {"bbox_inches": "tight"}


@functools.lru_cache(maxsize=1)
def _formatter() -> DisplayFormatter:
    """IPython's display formatter, drawing figures as the report kernels do."""
    formatter = DisplayFormatter()

    def png(fig):
        return (print_figure(fig, fmt="png", base64=True, **FIGURE_KWARGS),
                {"alt": charts.figure_alt_text(fig)})

    formatter.formatters["image/png"].for_type(Figure, png)
    return formatter


#: Plain-text sizes measured by Agg renderers in this process (see `shared_text_metrics`).
_TEXT_METRICS: dict[tuple, tuple[float, float, float]] = {}
_TEXT_METRICS_MAX = 50_000
#: The settings a text's size depends on besides its font properties and the dpi.
_TEXT_METRIC_RC = ("text.hinting", "text.hinting_factor", "text.kerning_factor")


@contextlib.contextmanager
def shared_text_metrics():
    """matplotlib caches text sizes per renderer, and a figure drawn with a tight bounding box
    uses two renderers of its own: every figure measured every label twice, a fifth of the
    national batch's drawing. Here plain text measured by an Agg renderer is kept for the
    process, keyed by everything the size depends on (text, font properties, the renderer's
    dpi, the hinting and kerning settings); the pages stay byte-identical to papermill's
    (tests/test_national_batch.py). Outside Agg, or for mathtext, matplotlib's own cache."""
    original = getattr(mtext, "_get_text_metrics_with_cache", None)
    if original is None:  # a matplotlib without it: nothing to share
        yield
        return

    def metrics(renderer, text, fontprop, ismath, dpi):
        if type(renderer) is not RendererAgg or ismath is not False:
            return original(renderer, text, fontprop, ismath, dpi)
        key = (text, fontprop.copy(), dpi, renderer.dpi,
               *(matplotlib.rcParams[name] for name in _TEXT_METRIC_RC))
        size = _TEXT_METRICS.get(key)
        if size is None:
            if len(_TEXT_METRICS) >= _TEXT_METRICS_MAX:
                _TEXT_METRICS.clear()
            size = _TEXT_METRICS[key] = renderer.get_text_width_height_descent(
                text, fontprop, ismath)
        return size

    mtext._get_text_metrics_with_cache = metrics
    try:
        yield
    finally:
        mtext._get_text_metrics_with_cache = original


class Page:
    """The outputs of one notebook's code cells, as a kernel records them, and the files and
    results records the cells write."""

    def __init__(self):
        self.cells: list[list[dict]] = []
        self.files: dict[str, bytes] = {}
        self.records: list[dict] = []

    @contextlib.contextmanager
    def cell(self):
        """One code cell: open figures are shown (and closed) when it ends."""
        plt.close("all")
        self.cells.append([])
        yield self
        self.show()

    def _output(self, kind: str, obj) -> None:
        bundle, metadata = _formatter().format(obj)
        output = nbformat.v4.new_output(kind, data=bundle, metadata=metadata)
        self.cells[-1].append(output)

    def display(self, obj) -> None:
        """`display(obj)`."""
        self._output("display_data", obj)

    def result(self, obj) -> None:
        """The cell's last expression (nothing for None)."""
        if obj is not None:
            self._output("execute_result", obj)

    def show(self) -> None:
        """`plt.show()`: every open figure, in the order drawn, then closed."""
        for number in plt.get_fignums():
            self.display(plt.figure(number))
        plt.close("all")

    def data_link(self, table, filename: str):
        """`charts.data_link(table, filename, write=True)`, the CSV kept as a file of the page."""
        name, content = charts.chart_csv(table, filename)
        self.files[name] = content
        return charts.DataLink(name, charts.DATA_LINK_TEXT)


# --------------------------------------------------------------------------------------------
# The builders: one per notebook, cell by cell
# --------------------------------------------------------------------------------------------
def data_overview(page: Page, spec, fits) -> None:
    """notebooks/01_data_overview."""
    with page.cell():
        charts.setup_style()
        area = data.resolve_la(spec.la_code)
        page.result(Markdown(overview.area_intro(area, spec.start_year)))
    with page.cell():
        page.result(Table(overview.coverage_table(area.la_code),
                          caption=f"{area.la_name}: coverage of the official series"))
    with page.cell():
        page.result(Table(overview.provenance_table(area.la_code),
                          caption=f"{area.la_name}: children looked after on 31 March, year by "
                                  "year, with the source of each number"))
    with page.cell():
        council = overview.official_vs_council(area.la_code)
        if council.empty:
            page.display(Markdown(overview.no_council_figures(area.la_name)))
        else:
            page.display(Table(council,
                               caption=overview.COUNCIL_CAPTION.format(la_name=area.la_name)))
            overview.plot_official_vs_council(area.la_code)
    with page.cell():
        page.result(Markdown(overview.boundary_text(area)))


def trends(page: Page, spec, fits) -> None:
    """notebooks/02_trends."""
    with page.cell():
        charts.setup_style()
        area = data.resolve_la(spec.la_code)
        marks = charts.event_marks(spec.events)
        stock = overview.comparison_rates(area.la_code, "cla_31_march", start_year=2010)
        starts = overview.comparison_rates(area.la_code, "starts", start_year=2010)
        page.result(Markdown(overview.rates_reading(stock, area)))
    with page.cell():
        overview.plot_comparison(stock, area.la_name, "cla_31_march", marks)
    with page.cell():
        overview.plot_comparison(starts, area.la_name, "starts", marks)
    with page.cell():
        page.result(Table(stock.round(1),
                          caption="Children looked after on 31 March per 10,000 children"))
    with page.cell():
        page.result(Table(starts.round(1),
                          caption="Children starting to be looked after per 10,000 children"))
    with page.cell():
        rank = overview.rank_by_year(area.la_code, "cla_31_march", start_year=2010)
        page.display(Table(rank, caption=f"{area.la_name}: rank by rate of children looked "
                                         "after on 31 March (1 = highest rate in England)"))
        page.result(Markdown(overview.rank_reading(rank, area.la_name)))
    with page.cell():
        decomposition = overview.growth_decomposition(area.la_code, start_year=2010)
        overview.plot_decomposition(decomposition, area.la_name, marks)
    with page.cell():
        page.result(Table(decomposition, caption=f"{area.la_name}: change in children looked "
                                                 "after, starts and exits by year"))
    with page.cell():
        split = min(v for v in marks.values()) + 0.5
        page.result(Markdown(overview.decomposition_reading(decomposition, area.la_name,
                                                             split_year=int(split))))


#: The ITS notebook's outcome sections, in its order: (outcome, chart title after the LA).
ITS_SECTIONS = (("starts", "children starting to be looked after"),
                ("cla_31_march", "children looked after on 31 March"),
                ("ceased", "children ceasing to be looked after"))


def its(page: Page, spec, fits) -> None:
    """notebooks/03_its (publishing: the runner always passes `results_path`)."""
    with page.cell():
        charts.setup_style()
        first = next(iter(fits.values()))
        page.result(Markdown(its_words.page_intro(first, spec.family, spec.start_year,
                                                  spec.event.title)))
    for outcome, words in ITS_SECTIONS:
        with page.cell():
            if outcome in fits:
                its_words.plot(fits[outcome], title=f"{spec.la_name}: {words}",
                               la_name=spec.la_name)
                page.show()
                page.display(page.data_link(its_words.chart_table(fits[outcome]),
                                            f"its_{outcome}.csv"))
        with page.cell():
            page.result(Markdown(its_words.summary(fits[outcome])) if outcome in fits else None)
    with page.cell():
        primary = fits[spec.primary_outcome] if spec.primary_outcome in fits else first
        page.result(Markdown(its_words.summary(primary).split("\n\n")[0]))
    with page.cell():
        effects = summary.its_effects_table(fits)
        page.result(Markdown(its_words.effects_reading(effects, spec.la_name)))
    with page.cell():
        page.result(Table(effects, caption=f"{spec.la_name}: single-series ITS estimates "
                                           f"({spec.family})"))
    with page.cell():
        page.result(Table(summary.diagnostics_table(fits), caption="Model diagnostics by outcome"))
    with page.cell():
        caveats = its_words.caveats(fits)
        page.result(Markdown(caveats) if caveats else None)
    with page.cell():
        page.records.extend(rec for res in fits.values()
                            for rec in res.to_records(analysis=spec.analysis, notebook="03_its",
                                                      la=spec.la))


#: Notebook stem -> its builder: the notebooks a national batch can publish without a kernel.
BUILDERS: dict[str, Callable[[Page, object, dict], None]] = {
    "01_data_overview": data_overview,
    "02_trends": trends,
    "03_its": its,
}


def fill_notebook(source: bytes, stem: str, page: Page):
    """The notebook (its .ipynb bytes) with each code cell holding the outputs its builder
    recorded and the execution counts a papermill run gives (the parameters cell 1, the cell
    papermill injects 2, then the notebook's cells)."""
    nb = nbformat.reads(source.decode("utf-8"), as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    own = [cell for cell in code if "parameters" not in cell.metadata.get("tags", [])]
    if len(own) != len(page.cells) or len(code) - len(own) != 1:
        raise CareTrendsError(
            f"notebook {stem} has {len(own)} code cells after its parameters but the national "
            f"page builder fills {len(page.cells)}; update helpers.run.batch_pages to follow "
            "the notebook (or run --all-las --notebooks)")
    count, outputs = 1, iter(page.cells)
    for cell in code:
        cell.execution_count = count
        if "parameters" in cell.metadata.get("tags", []):
            cell.outputs = []
            count += 2  # papermill's injected parameters cell follows it
            continue
        cell.outputs = next(outputs)
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count
        count += 1
    return nb


def build(stem: str, source: bytes, spec, fits) -> tuple[object, Page]:
    """One notebook's page for one LA: (the filled notebook node, its Page)."""
    page = Page()
    # A kernel starts from the rc file's settings; this process' own are restored afterwards.
    with matplotlib.rc_context(), shared_text_metrics():
        matplotlib.rc_file_defaults()
        try:
            BUILDERS[stem](page, spec, fits)
        finally:
            plt.close("all")
    return fill_notebook(source, stem, page), page
