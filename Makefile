# Two commands for a newcomer: `make run` and `make test`. Everything installs into .venv/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck template-check unit run bench clean build-SharedLayer

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check shared functions local bench tests

typecheck: install
	$(BIN)/mypy shared functions local bench

template-check: install
	$(BIN)/python -m tests.template_check template.yaml

unit: install
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=85

test: lint typecheck template-check unit

run: install
	$(BIN)/python -m local up --demo

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage

# `sam build` runs this for the SharedLayer (Metadata.BuildMethod: makefile): the `shared` package
# and the pinned runtime dependencies, as Lambda's python3.12 x86_64 runtime will import them.
build-SharedLayer:
	$(PYTHON) -m pip install --quiet --no-deps --target "$(ARTIFACTS_DIR)/python" .
	$(PYTHON) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > "$(ARTIFACTS_DIR)/requirements.txt"
	$(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)/python" --platform manylinux2014_x86_64 \
		--implementation cp --python-version 3.12 --only-binary=:all: -r "$(ARTIFACTS_DIR)/requirements.txt"
	rm -f "$(ARTIFACTS_DIR)/requirements.txt"
