# ezphot — two commands on a fresh Debian/Ubuntu machine:
#   make demo   set up, then photometry of built-in sample frames; prints where results are
#   make test   set up, then the test suite (real source-extractor, real photutils)
#   make docs   set up, then the documentation site in docs/_build/html (warnings are errors)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ezphot-installed
DOCS_STAMP := $(VENV)/.ezphot-docs-installed
DEMO_DIR ?= demo_output

.PHONY: setup system-packages demo test test-lowest lint docs bench docker docker-test clean

setup: system-packages $(STAMP)

system-packages:
	@bash docker/install-system-packages.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,dask]'
	@touch $(STAMP)

demo: setup
	$(PY) -m ezphot.cli demo --output $(DEMO_DIR)

test: setup
	MPLBACKEND=Agg $(PY) -m pytest -q

# The lowest versions pyproject.toml allows, installed together in a venv of their own
# (uv --resolution lowest-direct: every direct dependency at its lower bound), and a fast
# subset of the tests: detection photometry, forced photometry, background, catalogue I/O, CLI.
LOWEST_VENV  ?= .venv-lowest
UV_VENV      ?= .venv-uv
UV           := $(UV_VENV)/bin/uv
LOWEST_STAMP := $(LOWEST_VENV)/.ezphot-lowest
LOWEST_TESTS ?= tests/test_sex_photometry.py tests/test_forced.py tests/test_maps.py \
	tests/test_golden_sep.py tests/test_catalog.py tests/test_exports.py \
	tests/test_browser_batch_cli.py::test_version tests/test_browser_batch_cli.py::test_cli_end_to_end
# the slow ones (a full 7DT frame, bright-frame fixtures, photutils detection) run in `make test`
LOWEST_SKIP  ?= not photutils_agrees and not full_7dt_frame and not follows_true_sky

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'

$(LOWEST_STAMP): pyproject.toml $(UV)
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(UV) pip install --quiet --python $(LOWEST_VENV)/bin/python --resolution lowest-direct \
		-e '.[test]'
	@touch $(LOWEST_STAMP)

test-lowest: system-packages $(LOWEST_STAMP)
	@$(UV) pip list --python $(LOWEST_VENV)/bin/python 2>/dev/null | grep -iE \
		'^(numpy|astropy|photutils|scipy|pandas|matplotlib|tqdm|sep|scikit-image|pyarrow) '
	MPLBACKEND=Agg $(LOWEST_VENV)/bin/python -m pytest -q -x -p no:cacheprovider \
		-k '$(LOWEST_SKIP)' $(LOWEST_TESTS)

# ruff (configuration in pyproject.toml); pre-commit runs the same check on each commit
lint: setup
	$(PY) -m ruff check ezphot tests benchmarks docs
# The site (docs/_build/html): warnings are errors, nitpicky for ezphot's own references, offline;
# the tutorials are executed by myst-nb and cached in docs/_build/.jupyter_cache (an unchanged
# notebook is not executed again); then the internal links of the built site are checked, and
# the code examples of the README and of docs/*.md are run (docs/test_examples.py).
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,dask,docs]'
	@touch $(DOCS_STAMP)

# The examples run beside the build (two processes, each mostly single-threaded).
docs: setup $(DOCS_STAMP)
	@mkdir -p docs/_build
	@MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider docs/test_examples.py \
	    > docs/_build/examples.log 2>&1 & examples=$$!; \
	MPLBACKEND=Agg $(PY) -m sphinx -W --keep-going -n -q -b html docs docs/_build/html \
	    && $(PY) docs/check_links.py docs/_build/html; site=$$?; \
	wait $$examples; ran=$$?; cat docs/_build/examples.log; \
	[ $$site -eq 0 ] || echo "make docs: the site failed (warnings are errors; see above)"; \
	[ $$ran -eq 0 ] || echo "make docs: the examples failed (docs/test_examples.py; see above)"; \
	[ $$site -eq 0 ] && [ $$ran -eq 0 ]

bench: setup
	$(PY) benchmarks/run_benchmarks.py

# The image (docker when a daemon answers, else podman; host workarounds in docker/podman-build.sh).
docker:
	bash docker/podman-build.sh build runtime ezphot

# Build runtime + test stages, run the whole suite, the demo and a Dask-worker batch in containers.
docker-test:
	bash docker/podman-build.sh test

clean:
	rm -rf $(VENV) $(LOWEST_VENV) $(UV_VENV) $(DEMO_DIR) .pytest_cache build *.egg-info docs/_build docs/_generated docs/api
