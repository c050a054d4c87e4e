# One target per developer task; CI calls the same targets. Every target installs
# what it needs (the venv and its packages, the broker jars from Maven Central) and
# is safe to re-run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

# Debian tools the tests drive from outside: kcat (the wire-contract test and the README),
# headless chromium + chromium-driver (the expert page's browser test) and postgresql (the
# explorer's PostgreSQL tests and benchmark start a throwaway server from its initdb/pg_ctl).
APT_TOOLS := kcat chromium chromium-driver postgresql
TOOLS_INSTALL := { command -v kcat && command -v chromium && command -v chromedriver \
	&& { command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; }; } >/dev/null 2>&1 \
	|| { [ "$$(id -u)" = 0 ] \
	&& (apt-get update -qq && apt-get install -y -qq $(APT_TOOLS) >/dev/null) \
	|| echo 'kcat/chromium/postgresql are not installed and we are not root: their tests will be skipped'; }

.PHONY: install tools demo test test-scale-out test-security test-unit test-kafka lint format bench bench-report drill broker-start broker-stop schemas clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

tools:
	@$(TOOLS_INSTALL)

demo: install
	$(BIN)/labelloop demo

test: install tools
	$(BIN)/python -m pytest -m "not scaleout and not securityloop" --durations=15

# The SIGKILL tests: three workers with one SIGKILLed mid-stream, and one worker SIGKILLed and
# restarted (about 3 minutes; kept out of `make test` for its 10-minute budget; CI runs them).
test-scale-out: install tools
	$(BIN)/python -m pytest -m scaleout

test-unit: install
	$(BIN)/python -m pytest -m "not kafka"

test-kafka: install
	$(BIN)/python -m pytest -m "kafka and not scaleout and not securityloop"

# The whole loop over SASL_SSL with the Toloka pool, every log of the run searched for each secret
# (about 1.5 minutes; kept out of `make test` for its 10-minute budget; CI runs it).
test-security: install tools
	$(BIN)/python -m pytest -m securityloop

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Every benchmark; writes bench/results/bench-<time>.json, docs/benchmarks.md and the README's goal summary.
bench: install
	$(BIN)/python -m bench

# docs/benchmarks.md (and the README's goal summary) again from the latest make bench JSON, running nothing.
bench-report: install
	$(BIN)/python -m bench.report

# The fault drill (docs/guarantees.md): seven fault classes, 20,000 events each, on the test broker
# (started if none answers on 19092; the broker restart runs on a private one on 29830). Prints the
# table and the D1 goal line; exits non-zero when anything was lost or doubled. About 30 minutes.
drill: install
	$(BIN)/python -c "from streams.broker import BrokerSettings, LocalBroker; \
	LocalBroker(BrokerSettings(port=19092, controller_port=19093, home='.labelloop/test-kafka')).start()"
	$(BIN)/python -m bench.drill

broker-start: install
	$(BIN)/labelloop broker start

broker-stop: install
	$(BIN)/labelloop broker stop

schemas: install
	$(BIN)/python -m schemas.export

clean:
	-$(BIN)/labelloop broker stop
	rm -rf $(VENV) .labelloop .mypy_cache .ruff_cache .pytest_cache
