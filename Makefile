# HazardLoop — the commands a new user and CI run.
#   make demo   create .venv, install, build the demo plant, serve http://127.0.0.1:8000
#   make test   the whole test suite (SQLite; PostgreSQL tests too when HAZARDLOOP_TEST_DATABASE_URL is set)
#   make bench  the benchmarks (slow; results in benchmarks/results/)
#   make lint   ruff

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HAZARDLOOP_BENCH_DATA ?= $(abspath ../shared/data)

.PHONY: venv demo serve test test-postgres bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/hazardloop demo
	$(BIN)/hazardloop serve

serve: venv
	$(BIN)/hazardloop serve

test: venv
	$(BIN)/python -m pytest

# The database tests again, on a PostgreSQL server (CI runs this after `make test`).
test-postgres: venv
	HAZARDLOOP_TEST_DATABASE_URL=$${HAZARDLOOP_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m pytest -m db

bench: venv
	@for script in benchmarks/*.py; do \
		case $$script in */_*) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
