# ezphot — two commands on a fresh Debian/Ubuntu machine:
#   make demo   set up, then photometry of built-in sample frames; prints where results are
#   make test   set up, then the test suite (real source-extractor, real photutils)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ezphot-installed
DEMO_DIR ?= demo_output

.PHONY: setup system-packages demo test bench docker docker-test clean

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

# The image (docker when a daemon answers, else podman; host workarounds in docker/podman-build.sh).
docker:
	bash docker/podman-build.sh build runtime ezphot

# Build runtime + test stages, run the whole suite, the demo and a Dask-worker batch in containers.
docker-test:
	bash docker/podman-build.sh test

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info
