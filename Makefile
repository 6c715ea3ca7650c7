# Tagwarden developer tasks. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
HOST ?= 0.0.0.0
PORT ?= 8000
SOAK_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANAGE := $(BIN)/python manage.py
PYTEST := $(BIN)/pytest -n 2 -p no:cacheprovider

.DEFAULT_GOAL := help

.PHONY: help install test test-postgres demo serve lint format typecheck migrations-check \
	fuzz bench bench-smoke soak clean

help: ## List the targets
	@echo "Usage: make TARGET [PYTEST_ARGS='...'] [PYTHON=python3] [VENV=.venv]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

install: $(STAMP) ## Create the virtualenv and install the project with its dev extra

test: install ## Run the test suite on SQLite (PYTEST_ARGS='...' to pass options)
	env -u DATABASE_URL $(PYTEST) $(PYTEST_ARGS)

test-postgres: install ## Run the test suite on a throwaway PostgreSQL cluster
	scripts/with-postgres.sh $(PYTEST) $(PYTEST_ARGS)

fuzz: install ## The schema fuzzing alone, with a larger time budget (as in CI), on SQLite
	env -u DATABASE_URL FUZZ_BUDGET_SECONDS=$${FUZZ_BUDGET_SECONDS:-400} \
		$(PYTEST) tests/security/test_fuzz_schema.py $(PYTEST_ARGS)

demo: export DEBUG := 1
demo: install ## Migrate, seed demo data and serve on http://127.0.0.1:8000/ (DEBUG, runserver)
	$(MANAGE) migrate --noinput
	$(MANAGE) createcachetable
	$(MANAGE) seed_demo
	$(MANAGE) runserver 127.0.0.1:8000

serve: export HOST := $(HOST)
serve: export PORT := $(PORT)
serve: install ## Production server: migrate, collectstatic, gunicorn on $(HOST):$(PORT) (README, Deploying)
	@if [ "$${MIGRATE:-1}" != 0 ]; then \
		$(MANAGE) migrate --noinput && $(MANAGE) createcachetable; \
	fi
	$(MANAGE) collectstatic --noinput -v 0
	exec $(BIN)/gunicorn -c python:tagwarden.gunicorn_conf

lint: install ## Check code and formatting with ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install ## Format and autofix with ruff
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

typecheck: install ## Type-check with mypy
	$(BIN)/mypy .

migrations-check: install ## Fail if models have changes without migrations
	$(MANAGE) makemigrations --check --dry-run

bench: install ## Run the permission benchmarks
	$(BIN)/python bench/run.py

bench-smoke: install ## Run a quick benchmark pass (as in CI)
	$(BIN)/python bench/run.py --smoke

soak: install ## Soak: 8 clients vs 2 gunicorn workers on a throwaway PostgreSQL, 60 s (SOAK_ARGS='--seconds 10')
	scripts/with-postgres.sh $(BIN)/python bench/soak.py $(SOAK_ARGS)

clean: ## Remove the virtualenv, the SQLite database and caches
	rm -rf $(VENV) db.sqlite3 .pytest_cache .mypy_cache .ruff_cache .hypothesis build \
		*.egg-info staticfiles
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
