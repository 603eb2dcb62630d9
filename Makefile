# The README's commands. Each target sets up what it needs on a fresh machine
# (Python >= 3.11 with venv, and make); nothing is installed outside .venv/.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
# With MPLBACKEND=Agg inherited by the kernels, figures silently vanish from the book.
unexport MPLBACKEND
# One BLAS thread per process: the chapters' matrices are small, and on a loaded
# 2-core machine idle BLAS threads spin (one HALS fit: 3 s with default threads,
# 0.06 s with one). It also makes the book's numbers independent of the thread count.
BLAS_ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: setup book course test site-check browser lab clean
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

## setup: create .venv with nnmf_lib (editable) and everything the book and tests need
setup: $(STAMP)

$(STAMP): pyproject.toml binder/overrides.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	@# JupyterLab: open a chapter's .md as a notebook (jupytext), not in the text editor.
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp binder/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

## book: build the book from clean into _build/html (every chapter is executed)
book: $(STAMP)
	rm -rf _build
	$(BLAS_ONE_THREAD) $(BIN)/jupyter-book build .
	@echo "Open _build/html/index.html"

## course: build the book without the exercises' solutions into _build/course/_build/html
course: $(STAMP) browser
	rm -rf _build/course
	NNMF_BOOK_HIDE_SOLUTIONS=1 $(BIN)/jupyter-book build . --path-output _build/course
	$(BIN)/python tools/check_site.py _build/course/_build/html --no-solutions \
		--screenshots _build/course/screenshots
	@echo "Open _build/course/_build/html/index.html"

## test: lint, unit tests, every chapter through nbval (each chapter executed once, on
## both cores), the book built from those executions (warnings are errors), and every
## page of the built book checked in Chromium; prints the time of each phase
# The experiments chapter runs NNMF_BOOK_TRIALS trials per table entry (25 in the book).
test: export NNMF_BOOK_TRIALS ?= 2
test: $(STAMP) browser
	$(BLAS_ONE_THREAD) $(BIN)/python tools/run_tests.py

## site-check: open every page of _build/html in headless Chromium (math, images, links,
## JavaScript errors); screenshots of every page go to _build/screenshots
site-check: $(STAMP) browser
	$(BIN)/python tools/check_site.py _build/html --screenshots _build/screenshots

## browser: Debian's chromium, for the site check (installed with apt where missing)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the browser check of the built book"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## lab: open the chapters in JupyterLab (book/*.md open as notebooks)
lab: $(STAMP)
	$(BIN)/jupyter lab book/intro.md $(if $(filter 0,$(shell id -u)),--allow-root)

## clean: remove the build output and caches (keeps .venv)
clean:
	rm -rf _build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
