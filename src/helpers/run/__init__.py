"""Runner and publishing layer: papermill execution, the HTML site, scale-out, benchmarks."""
