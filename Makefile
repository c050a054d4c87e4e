# One target per developer task; CI calls the same targets. Every target installs
# what it needs (the venv and its packages, the broker jars from Maven Central) and
# is safe to re-run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

# kcat (Debian) is the outside client the wire-contract test and the README use.
KCAT_INSTALL := command -v kcat >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] \
	&& (apt-get update -qq && apt-get install -y -qq kcat >/dev/null) \
	|| echo 'kcat is not installed and we are not root: its test will be skipped'; }

.PHONY: install tools demo test test-unit test-kafka lint format bench broker-start broker-stop schemas clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

tools:
	@$(KCAT_INSTALL)

demo: install
	$(BIN)/labelloop demo

test: install tools
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m "not kafka"

test-kafka: install
	$(BIN)/python -m pytest -m kafka

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench

broker-start: install
	$(BIN)/labelloop broker start

broker-stop: install
	$(BIN)/labelloop broker stop

schemas: install
	$(BIN)/python -m schemas.export

clean:
	-$(BIN)/labelloop broker stop
	rm -rf $(VENV) .labelloop .mypy_cache .ruff_cache .pytest_cache
