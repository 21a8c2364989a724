# Two commands do all the set-up: `make lab` (open the course) and `make test` (run the test suite).
# Each target creates .venv on first use and reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.digm-installed
PORT   ?= 8888
LAB_ARGS ?=
JOBS   ?= 2
# The class's hub (README, "Running a class"): its environment is made from Debian's Python in a
# world-readable prefix, since every student's server runs from it as that student.
HUB_ENV    ?= /opt/digm-hub
HUB_PYTHON ?= $(if $(wildcard /usr/bin/python3.11),/usr/bin/python3.11,python3)
HUB_PORT   ?= 8000
HUB_VARS   := HUB_ENV=$(HUB_ENV) HUB_PYTHON=$(HUB_PYTHON) HUB_PORT=$(HUB_PORT)
# JupyterLab refuses to run as root (containers, Colab-like machines) unless told it is deliberate.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

.PHONY: help install lab test lint course release grade slides benchmark clean hub hub-env hub-nbgrader student-bundle

help:
	@echo "make lab       open the course in JupyterLab (creates .venv on first use)"
	@echo "make test      run the whole test suite in FAST mode (DIGM_FAST=1)"
	@echo "make lint      ruff over utils/, tools/, tests/ and the notebooks"
	@echo "make course    execute every lecture in full mode into build/course and print a results table"
	@echo "make release   regenerate assignments/ from solutions/ (nbgrader)"
	@echo "make grade     autograde grading/submitted/* in a sandbox, write feedback and grading/grades.csv"
	@echo "make slides    build offline reveal.js decks of every lecture into build/slides"
	@echo "make benchmark trainer speed against the usual DataLoader recipe (prints a table)"
	@echo "make student-bundle  what students receive, without solutions or instructor tools: build/student-bundle(.zip)"
	@echo "make hub       (as root) JupyterHub for a class on 127.0.0.1:HUB_PORT (8000), serving the student bundle"
	@echo "make hub-env   (as root) only make or update the hub's environment (HUB_ENV, default /opt/digm-hub)"
	@echo "make hub-nbgrader ARGS=\"release_assignment a1_estimators\"  nbgrader with the hub's exchange (also collect, release_feedback)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/lectures --port=$(PORT) $(LAB_ROOT_FLAG) $(LAB_ARGS)

# One BLAS thread per worker: two xdist workers (each with a notebook kernel) share two cores, and
# torch's default of one thread per core makes small tensor ops 10-100x slower when they contend.
test: $(STAMP)
	DIGM_FAST=$${DIGM_FAST:-1} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -n $(JOBS) --dist loadfile \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=900 tests lectures solutions

lint: $(STAMP)
	$(VENV)/bin/ruff check utils tools tests lectures solutions hub

course: $(STAMP)
	DIGM_REQUIRE_FULL=$${DIGM_REQUIRE_FULL:-1} $(PY) -m tools.course $(ARGS)

release: $(STAMP)
	$(PY) -m tools.grading release $(ARGS)

grade: $(STAMP)
	$(PY) -m tools.grading grade $(ARGS)

slides: $(STAMP)
	$(PY) -m tools.slides $(ARGS)

benchmark: $(STAMP)
	$(PY) tests/benchmarks/bench_trainer.py $(ARGS)

student-bundle:
	$(PYTHON) -m tools.bundle $(ARGS)

hub-env:
	$(HUB_VARS) $(HUB_PYTHON) -m tools.hub env

hub: hub-env
	$(HUB_VARS) $(HUB_ENV)/bin/python -m tools.hub serve

hub-nbgrader:
	$(HUB_VARS) $(HUB_ENV)/bin/python -m tools.hub nbgrader $(ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache
