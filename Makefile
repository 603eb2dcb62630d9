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

.PHONY: setup book test lab clean

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
	$(BIN)/jupyter-book build .
	@echo "Open _build/html/index.html"

## test: lint, unit tests, every chapter through nbval, and the book build (warnings are errors)
# The experiments chapter runs NNMF_BOOK_TRIALS trials per table entry (25 in the book).
test: export NNMF_BOOK_TRIALS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going

## lab: open the chapters in JupyterLab (book/*.md open as notebooks)
lab: $(STAMP)
	$(BIN)/jupyter lab book/intro.md $(if $(filter 0,$(shell id -u)),--allow-root)

## clean: remove the build output and caches (keeps .venv)
clean:
	rm -rf _build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
