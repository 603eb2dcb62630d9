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
RUN_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# The chapters' long cells pass verbose=True for readers who run them (a progress bar in
# JupyterLab or Colab); a built page is static, so the builds and tests turn tqdm off
# (tools/kernel_startup.py makes the kernels' notebook bars honour TQDM_DISABLE too).
KERNEL_STARTUP := _build/ipython/profile_default/startup
RUN_ENV += TQDM_DISABLE=1 IPYTHONDIR=$(CURDIR)/_build/ipython
define kernel_startup
	mkdir -p $(KERNEL_STARTUP) && cp tools/kernel_startup.py $(KERNEL_STARTUP)/
endef

.PHONY: setup book course student grade test site-check browser lab clean
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

## setup: create .venv with nnmf_lib (editable) and everything the book and tests need
setup: $(STAMP)

$(STAMP): pyproject.toml binder/overrides.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[book,test,course]"
	@# JupyterLab: open a chapter's .md as a notebook (jupytext), not in the text editor.
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp binder/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@# nbgrader (for `make grade`) is not part of the students' JupyterLab.
	$(BIN)/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader >/dev/null
	for part in formgrader validate_assignment assignment_list course_list; do \
		$(BIN)/jupyter server extension disable --sys-prefix \
			nbgrader.server_extensions.$$part >/dev/null 2>&1 || exit 1; done
	touch $@

## book: build the book from clean into _build/html (every chapter is executed)
book: $(STAMP)
	rm -rf _build
	$(kernel_startup)
	$(RUN_ENV) $(BIN)/jupyter-book build .
	@echo "Open _build/html/index.html"

## course: build the book without the exercises' solutions into _build/course/_build/html
## (its downloads and Colab notebooks are the student notebooks), checked in Chromium
course: $(STAMP) browser
	rm -rf _build/course
	$(kernel_startup)
	NNMF_BOOK_HIDE_SOLUTIONS=1 $(RUN_ENV) $(BIN)/jupyter-book build . \
		--path-output _build/course
	$(BIN)/python tools/check_site.py _build/course/_build/html --no-solutions \
		--chapters book --screenshots _build/course/screenshots
	@echo "Open _build/course/_build/html/index.html"

## student: the student notebooks (.ipynb and .md: no solutions, a stub and a
## self-check per code exercise) of every chapter, into _build/student
student: $(STAMP)
	$(BIN)/python tools/student.py student

## grade: autograde SUBMISSIONS/<student>/<chapter>.ipynb with nbgrader (locally);
## the scores per student and exercise go to _build/grading/grades.csv
grade: student
	@test -n "$(SUBMISSIONS)" || { echo "Usage: make grade SUBMISSIONS=<folder>"; exit 2; }
	$(kernel_startup)
	$(RUN_ENV) $(BIN)/python tools/student.py grade "$(SUBMISSIONS)"

## test: lint, unit tests, every chapter through nbval (each chapter executed once, on
## both cores), the book built from those executions (warnings are errors), and every
## page of the built book checked in Chromium; prints the time of each phase
# The experiments chapter runs NNMF_BOOK_TRIALS trials per table entry (25 in the book).
test: export NNMF_BOOK_TRIALS ?= 2
test: $(STAMP) browser
	$(kernel_startup)
	$(RUN_ENV) $(BIN)/python tools/run_tests.py

## site-check: open every page of _build/html in headless Chromium (math, images, links,
## JavaScript errors); screenshots of every page go to _build/screenshots
site-check: $(STAMP) browser
	$(BIN)/python tools/check_site.py _build/html --screenshots _build/screenshots

## browser: Debian's chromium, for the site check (installed with apt where missing;
## not with CHROMIUM=<a Chrome or Chromium executable>, nor with NO_BROWSER=1)
browser:
	@test -n "$$CHROMIUM" || test -n "$(filter-out 0,$(NO_BROWSER))" || \
		command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
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
