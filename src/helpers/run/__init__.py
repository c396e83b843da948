"""Runner and publishing layer: papermill execution, the HTML site, scale-out, benchmarks."""

import sys

# jsonschema (under nbformat, which papermill and nbconvert use) builds an Earley parser for
# RFC 3987 IRIs as it is imported: 0.8 s in each of the run's processes. Nothing here validates
# IRIs (a format check jsonschema then skips), so the runner's processes do without it; the
# notebook kernels are separate processes and keep it (helpers.run.kernels' server is started
# as a script, outside this package).
sys.modules.setdefault("rfc3987_syntax", None)
