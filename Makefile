# Two commands for a newcomer: `make run` and `make test`. Everything installs into .venv/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install chromium test lint typecheck template-check unit run bench clean build-SharedLayer

CHROMIUM ?= /usr/bin/chromium

install: $(STAMP) chromium

# The browser tests (tests/e2e/test_browser.py) drive Debian's Chromium; Playwright's own browser
# download host is not reachable, so `playwright install` is never used. Installed when missing and
# possible (root with apt-get); otherwise this says why and those tests skip saying why too.
chromium:
	@if test -x $(CHROMIUM) || command -v chromium >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "make install: Chromium is missing and there is no apt-get here: the browser tests will be skipped" >&2; \
	elif test "$$(id -u)" != 0; then \
		echo "make install: Chromium is missing and installing it needs root (sudo apt-get install chromium): the browser tests will be skipped" >&2; \
	else \
		echo "make install: installing Debian's chromium for the browser tests" >&2; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
			|| echo "make install: apt-get could not install chromium: the browser tests will be skipped" >&2; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check shared functions local bench tests

# The product's code (the layer and the handlers) is checked strictly; the local stack, emulators and
# benchmarks with the project's ordinary settings.
typecheck: install
	$(BIN)/mypy --strict shared functions
	$(BIN)/mypy shared functions local bench

template-check: install
	$(BIN)/python -m tests.template_check template.yaml

unit: install
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=90

test: lint typecheck template-check unit

run: install
	$(BIN)/python -m local up --demo

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage

# `sam build` runs this for the SharedLayer (Metadata.BuildMethod: makefile): the `shared` package
# and the pinned runtime dependencies, as Lambda's python3.12 arm64 runtime will import them:
# wheels for manylinux2014_aarch64 (or pure Python) only, whatever machine runs the build.
build-SharedLayer:
	$(PYTHON) -m pip install --quiet --no-deps --target "$(ARTIFACTS_DIR)/python" .
	$(PYTHON) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > "$(ARTIFACTS_DIR)/requirements.txt"
	$(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)/python" --platform manylinux2014_aarch64 \
		--implementation cp --python-version 3.12 --only-binary=:all: -r "$(ARTIFACTS_DIR)/requirements.txt"
	rm -f "$(ARTIFACTS_DIR)/requirements.txt"
