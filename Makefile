# Attention in Vision: two commands from a fresh machine.
#   make book   set up .venv (Python packages, the package itself, graphviz) and build _build/html
#   make test   the same set-up, then every test: package, notebooks (nbval) and the built site
# Also: make lab (JupyterLab on the chapters), make execute (re-run chapters, keeping widget state),
#       make assignments (student versions in _build/assignments; grade with python -m visual_attention.grade).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NODE   := node_modules/.package-lock.json
NOTEBOOKS := $(wildcard book/*.ipynb)
export PYTHONHASHSEED := 0

.PHONY: book test lint weights unit notebooks lab execute assignments bench setup system-deps browser-deps clean

setup: $(STAMP) system-deps

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

system-deps:
	bash scripts/system-deps.sh

browser-deps:
	bash scripts/system-deps.sh --browser

# JavaScript the site serves itself (widget manager, MathJax), from the npm registry: never committed.
$(NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

book: setup $(NODE)
	rm -rf _build/html _build/.doctrees
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

test: lint browser-deps book
	$(PY) -m pytest tests book --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval-sanitize.cfg -p no:cacheprovider

# Style (ruff, lines <= 99 in src/) and structure (import-linter: arrows point down, no cycles).
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts book/_ext
	$(VENV)/bin/ruff format --check src
	$(VENV)/bin/lint-imports

unit: setup
	$(PY) -m pytest tests -p no:cacheprovider

notebooks: setup
	$(PY) -m pytest book --nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg \
		-p no:cacheprovider

execute: setup
	$(PY) scripts/execute_notebooks.py $(NOTEBOOKS)

# The frozen digit encoder the chapters' experiments share (seeded; tests/test_lab_digits.py checks it).
weights: setup
	$(PY) scripts/train_digit_cnn.py

# Student versions of every chapter with exercises (solutions stubbed, outputs cleared).
assignments: setup
	$(PY) -m visual_attention.assignments $(NOTEBOOKS) --out _build/assignments

# Every benchmark on this machine, written to benchmarks/results.md (page weights need the site).
bench: browser-deps book
	$(PY) benchmarks/run.py

lab: setup
	$(VENV)/bin/jupyter lab book/

clean:
	rm -rf _build node_modules
