# The README's two commands: `make reports` and `make test`.
# Each bootstraps .venv from requirements.lock (regenerate with `make lock`) with nothing but python3; the install step is a
# no-op while .venv is newer than the lock file and pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.care-trends-installed

# Raw official files: data/raw/ when it holds the snapshot, else the shared local mirror.
RAW_DIR ?= $(if $(wildcard data/raw/SHA256SUMS),data/raw,../shared/data/raw)
export CARE_TRENDS_RAW_DIR ?= $(abspath $(RAW_DIR))
# Quiet, deterministic notebook kernels.
export PYTHONHASHSEED := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: reports test venv bench clean lock browser

# The browser suite (tests/browser) drives Debian's chromium; installed here when missing and
# running as root (CI), quietly; otherwise the suite skips with a message (and fails under CI).
CHROMIUM ?= /usr/bin/chromium

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

reports: $(STAMP)
	$(BIN)/care-trends run

browser:
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium fonts-liberation >/dev/null; \
	else echo "no $(CHROMIUM): the browser tests will skip (apt-get install chromium as root)"; fi; }

test: $(STAMP) browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/care-trends bench --update-readme

clean:
	rm -rf $(VENV) reports

# Maintainers only: re-resolve the lock (needs uv: `python3 -m pip install uv`).
lock:
	uv pip compile pyproject.toml requirements-build.in --extra test --universal --python-version 3.11 --generate-hashes -o requirements.lock
