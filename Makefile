# Attention in Vision: two commands from a fresh machine.
#   make book   set up .venv (Python packages, the package itself; graphviz, npm) and build _build/html
#   make test   the same set-up, then every test: package, notebooks (nbval, and once more under
#               another arithmetic: make portable), the browser runtime in node, the built site in
#               Chromium, JupyterLab with a kernel
# Also, with Python alone (graphviz optional): make lab (JupyterLab on the chapters, also as root),
#       make unit (the package's tests; then the browser runtime's, in node: make js-unit),
#       make assignments (student versions in _build/assignments;
#       grade with python -m visual_attention.grade); and make execute (re-run chapters, keeping
#       widget state). System packages: scripts/system-deps.sh says what is missing and how to get it.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NODE   := node_modules/.package-lock.json
NOTEBOOKS := $(wildcard book/*.ipynb)
export PYTHONHASHSEED := 0

.PHONY: book test lint js-unit weights unit notebooks portable lab execute assignments bench setup system-deps browser-deps clean

# Python only: a virtual environment with the pinned packages and the book's package.
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

system-deps:
	bash scripts/system-deps.sh graphviz npm

browser-deps:
	bash scripts/system-deps.sh graphviz npm chromium

# JavaScript the site serves itself (widget manager, MathJax), from the npm registry: never committed.
$(NODE): package.json package-lock.json | system-deps
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

book: setup system-deps $(NODE)
	rm -rf _build/html _build/.doctrees
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

test: lint js-unit browser-deps book portable
	$(PY) -m pytest tests book --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval-sanitize.cfg -p no:cacheprovider

# The book's own JavaScript that eslint and prettier check (eslint.config.mjs, .prettierrc: lines
# <= 99). JS_PENDING: the explorers, being rewritten (issue 29), not yet formatted: move them to JS.
JS := src/visual_attention/views/static/model_runtime.js book/_ext/*.js book/_ext/embed/*.js \
	book/_ext/embed/*.mjs tests/js/*.mjs eslint.config.mjs
JS_PENDING := src/visual_attention/views/static/model_explorer.js \
	src/visual_attention/views/static/attention_explorer.js

# Style (ruff, lines <= 99 in src/; eslint and prettier for the JavaScript) and structure
# (import-linter: arrows point down, no cycles).
lint: setup $(NODE)
	$(VENV)/bin/ruff check src tests benchmarks scripts book/_ext
	$(VENV)/bin/ruff format --check src
	$(VENV)/bin/lint-imports
	npx --no-install eslint $(JS)
	npx --no-install prettier --check $(JS) .prettierrc package.json

# The browser runtime's unit tests, in node with no browser: every ATen operation of
# model_runtime.js against the fixtures PyTorch wrote (tests/js/make_fixtures.py; make unit checks
# they are current), copies of the runtime with one operation perturbed, which must fail, and the
# browser test's whole models, exported here first (2.3 MB, not committed).
js-unit: setup
	bash scripts/system-deps.sh npm
	$(PY) tests/js/make_fixtures.py --models _build/js-models
	JS_MODELS=_build/js-models node --test tests/js/*.test.mjs

# The package's tests only: no site, no browser, no JupyterLab server, no nbgrader course; then
# the runtime's in node (js-unit).
unit: setup
	bash scripts/system-deps.sh --optional graphviz
	$(PY) -m pytest tests -m "not browser and not jupyterlab and not nbgrader" -p no:cacheprovider
	$(MAKE) --no-print-directory js-unit

notebooks: setup
	bash scripts/system-deps.sh graphviz
	$(PY) -m pytest book --nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg \
		-p no:cacheprovider

# Every chapter once more with PyTorch's portable kernels (no AVX2/AVX-512) and one thread, two at a
# time: another machine's rounding, so every training takes another path, and every assertion must
# still hold. Nothing is stored or compared (nbval compares the stored outputs).
portable: setup
	bash scripts/system-deps.sh graphviz
	$(PY) scripts/execute_notebooks.py --check --jobs 2 $(NOTEBOOKS)

execute: setup
	bash scripts/system-deps.sh graphviz
	$(PY) scripts/execute_notebooks.py $(NOTEBOOKS)

# The frozen digit encoder the chapters' experiments share (seeded; tests/test_lab_digits.py checks it),
# then the hierarchical chapter's Swin heads, trained on its features (tests/test_lab_hierarchical.py).
weights: setup
	$(PY) scripts/train_digit_cnn.py
	$(PY) scripts/train_swin_heads.py
	$(PY) scripts/train_global_variants.py
	$(PY) scripts/train_spatial_stage.py
	$(PY) scripts/train_region_heads.py
	$(PY) scripts/train_token_mixers.py
	$(PY) scripts/train_self_attention.py
	$(PY) scripts/train_temporal_pixel.py
	$(PY) scripts/train_branch_nets.py
	$(PY) scripts/train_global_models.py

# Student versions of every chapter with exercises (solutions stubbed, outputs cleared).
assignments: setup
	$(PY) -m visual_attention.assignments $(NOTEBOOKS) --out _build/assignments

# Every benchmark on this machine, written to benchmarks/results.md (page weights need the site).
bench: browser-deps book
	$(PY) benchmarks/run.py

# As root (a container) Jupyter refuses to start without --allow-root.
lab: setup
	bash scripts/system-deps.sh --optional graphviz
	$(VENV)/bin/jupyter lab book/ $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf _build node_modules
