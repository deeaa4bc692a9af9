# The two commands of the README:
#   make book   create .venv, install ntknotes with the book extras, execute every chapter, build _build/html
#   make test   create .venv, install everything, run pytest, nbval over every chapter, and a -W book build
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHAPTERS := $(wildcard book/[0-9][0-9]_*.ipynb)
# nbval hands chapters to its two workers in this order: the longest first (times measured by
# `make nbval NBVAL_ARGS=--durations=0`), so that both workers finish at about the same time
# (--no-loadscope-reorder keeps this order; xdist would otherwise sort by number of cells).
SLOW_FIRST := $(foreach n,05 04 03 07 00 06 02 01,$(filter book/$(n)_%,$(CHAPTERS)))
NBVAL_CHAPTERS := $(SLOW_FIRST) $(filter-out $(SLOW_FIRST),$(CHAPTERS))

# nbval writes each chapter it passed, with its outputs, here (book/conftest.py); `make test`
# hands them to the book build (book/_ext/executed_cache.py), which then executes nothing twice.
EXECUTED := _build/executed

.PHONY: book test venv pytest nbval checks book-strict chromium notebooks twins colab colab-one clean

# The virtual environment; re-installed when the dependency lists change. Where the stdlib
# venv lacks ensurepip (Debian without python3-venv), virtualenv from pip stands in.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install -q --user virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[book,test]"
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	rm -rf _build/.jupyter_cache
	$(BIN)/jupyter-book build . --path-output . --keep-going
	@echo "built _build/html/index.html"

# Debian's chromium for the page-rendering test; skipped quietly where apt is not usable.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed; the page test will be skipped"; \
	  else echo "no root/apt: the page test will be skipped"; fi; }

# Both run on two worker processes (pytest-xdist): much of the time is single-threaded XLA
# compilation. A test file, or a chapter's cells, stay together on one worker, in order.
# NBVAL_ARGS adds options to the chapter run, e.g. `make nbval NBVAL_ARGS=--durations=0` (cell times).
# STACK: XLA's CPU compiler segfaulted three times in long test runs (2026-12-05/06, each while
# compiling a large program late in a worker's life; never reproduced alone). A deeper main-thread
# stack is a cheap guard against one possible cause; best effort where the hard limit is lower.
XDIST ?= -n 2 --dist loadfile   # `make test XDIST=` runs them in one process
STACK = ulimit -s 65536 2>/dev/null || true;
pytest: $(STAMP)
	$(STACK) $(BIN)/python -m pytest tests -q $(XDIST) --ignore=tests/test_site.py

nbval: $(STAMP)
	@test -n "$(CHAPTERS)" || { echo "no chapter notebooks book/NN_*.ipynb found"; exit 1; }
	rm -rf $(EXECUTED)
	$(STACK) $(BIN)/python -m pytest -q $(XDIST) --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider --no-loadscope-reorder --executed-dir $(EXECUTED) $(NBVAL_ARGS) $(NBVAL_CHAPTERS)

# `make test` runs both in one session (`checks`), so that neither core idles while the other
# finishes the last test file or chapter: the chapters first, longest first except that the
# shortest is third (xdist queues a second unit on each worker at the start, and the one behind
# chapter 05 should be short), then the test files, largest first (CPU seconds measured with
# --durations=0), the many small ones last to fill the gaps.
CHECK_CHAPTERS := $(foreach n,05 04 01 07 03 00 06 02,$(filter book/$(n)_%,$(CHAPTERS)))
BIG_TESTS := $(foreach t,reliability_gradients stax training activation_duals solvers deep_limit \
  reliability_accuracy empirical gp_recursion_experiments finite_width data_files conv kernels,\
  $(wildcard tests/test_$(t).py))
CHECK_TESTS := $(BIG_TESTS) $(filter-out $(BIG_TESTS) tests/test_site.py,$(wildcard tests/test_*.py))
checks: $(STAMP)
	@test -n "$(CHAPTERS)" || { echo "no chapter notebooks book/NN_*.ipynb found"; exit 1; }
	rm -rf $(EXECUTED)
	$(STACK) $(BIN)/python -m pytest -q $(XDIST) --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider --no-loadscope-reorder --executed-dir $(EXECUTED) $(CHECK_CHAPTERS) $(CHECK_TESTS)

# The strict build executes every chapter (the cache emptied first), unless REUSE_NBVAL=1, as
# in `make test`: then the chapters come with the outputs of the nbval run just before, and
# only a chapter nbval did not pass is executed.
REUSE_NBVAL ?=
book-strict: $(STAMP)
	rm -rf _build/html _build/.doctrees _build/jupyter_execute _build/.jupyter_cache
	$(if $(REUSE_NBVAL),$(BIN)/python book/_ext/executed_cache.py $(EXECUTED))
	$(BIN)/jupyter-book build . --path-output . -W -n --keep-going

test: $(STAMP) chromium
	$(MAKE) checks
	$(MAKE) book-strict REUSE_NBVAL=1
	$(BIN)/python -m pytest tests/test_site.py -q
	$(MAKE) colab-one

# The reader notebooks book/NN_name.ipynb (what Colab opens and the site's download button
# serves), generated from the MyST sources with every reference resolved; the installer cell
# of each source is first rewritten from pyproject.toml's version and _config.yml's repository.
notebooks: $(STAMP)
	$(BIN)/python book/_ext/reader_notebooks.py --sync-installers
twins: notebooks

# Execute the reader notebooks in a fresh Colab-like environment (Python 3.12, JAX 0.7,
# NumPy 2.0, no myst-nb or Sphinx) with ntknotes installed by each chapter's installer cell
# from a wheel of this checkout. COLAB_CHAPTERS picks chapters; colab-one runs one short one.
COLAB_CHAPTERS ?=
colab: $(STAMP)
	$(BIN)/python tests/colab/run.py $(COLAB_CHAPTERS)
colab-one: $(STAMP)
	$(BIN)/python tests/colab/run.py 01_gradient_flow

clean:
	rm -rf _build
