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

.PHONY: setup system-packages demo test docs bench docker docker-test clean

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
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info docs/_build docs/_generated docs/api
