# The two commands of the README: `make sweep` (the main job) and `make test`. Both do all set-up first.
VENV ?= .venv
PY := $(VENV)/bin/python
SIZES ?= 5,10,16,200

.PHONY: setup sweep test lint bench admin
setup:
	@bash scripts/setup.sh

sweep: setup
	$(PY) manage.py poolbench --sizes $(SIZES)

# The demo's admin, styled whatever DEBUG is: creates a superuser when there is none, serves on PORT.
PORT ?= 8000
admin: setup
	$(PY) -m project.serve_admin --port $(PORT)

# Every environment of tox.ini (Python 3.11 + Django 5.2, Python 3.12 + Django 6.1); ARGS go to tox.
test: setup
	bash scripts/test.sh $(ARGS)

bench: setup
	$(PY) benchmarks/overhead.py && $(PY) benchmarks/fidelity.py && $(PY) benchmarks/load_cost.py && $(PY) benchmarks/concurrency.py

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
