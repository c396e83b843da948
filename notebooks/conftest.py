"""nbval over the committed notebooks (configured in pyproject.toml).

nbval sends each cell with store_history=False. IPython decides whether a trailing `;` hides a
cell's result by looking at the last *stored* input, so under nbval `ax.plot(...);` would show
`<Axes: ...>` that Jupyter, papermill and the committed outputs do not. Execute cells as Jupyter
does (store_history=True); nbval ignores execution counts, so nothing else changes."""

from __future__ import annotations

from nbval import kernel as _nbval_kernel


def _execute_cell_input(self, cell_input, allow_stdin=None):
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin,
                           stop_on_error=False)


_nbval_kernel.RunningKernel.execute_cell_input = _execute_cell_input
