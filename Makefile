# ezphot — two commands on a fresh Debian/Ubuntu machine:
#   make demo   set up, then photometry of built-in sample frames; prints where results are
#   make test   set up, then the test suite (real source-extractor, real photutils)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ezphot-installed
DEMO_DIR ?= demo_output

.PHONY: setup system-packages demo test bench docker clean

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

bench: setup
	$(PY) benchmarks/run_benchmarks.py

docker:
	docker build -f docker/Dockerfile -t ezphot .

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info
