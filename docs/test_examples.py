"""The code examples of the README and of the documentation pages, run as tests (`make docs`).

Every ```python block of README.md and of docs/*.md is executed, in order, one namespace per
file; ```pycon blocks (``>>>`` prompts with their output) are checked as doctests in the same
namespace. Blocks written as ```{code-block} python (a cluster, a SLURM job, your own data)
are shown but not run. The examples run in a fresh folder, with ``EZPHOT_DATA_DIR`` pointing
at the tutorial's generated sample tree (two 2400x2600 7DT-like frames of T00528 in m600, with
a star and a galaxy at the tutorial's positions; a fresh copy per page) and their own
``EZPHOT_TMPDIR``, which must be empty afterwards.

Also checked: every catalogue column ezphot writes is described in the catalogue reference,
and every ``EZPHOT_*`` environment variable the package reads is on the configuration page.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FENCE = re.compile(r"^```(python|pycon)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
PAGES = [ROOT / "README.md"] + sorted(p for p in DOCS.glob("*.md"))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def blocks(path: Path) -> list[tuple[str, str, int]]:
    """(kind, code, line) of the runnable blocks of a Markdown file."""
    text = path.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2)
            for m in FENCE.finditer(text)]


@pytest.fixture(scope="session")
def sample_tree(tmp_path_factory) -> Path:
    """The tutorial notebook's own first cell: the sample tree the examples measure."""
    nb = json.loads((DOCS / "tutorials" / "aperture_photometry.ipynb").read_text())
    setup = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code = "".join(line for line in setup["source"] if not line.startswith("%"))
    where = tmp_path_factory.mktemp("tree")
    old = Path.cwd()
    os.chdir(where)
    try:
        namespace: dict = {}
        exec(compile(code, "tutorial cell 1", "exec"), namespace)
    finally:
        os.chdir(old)
    return Path(namespace["data_dir"])


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_examples(page, sample_tree, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_tmp = tmp_path / "ezphot-tmp"
    run_tmp.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    data = tmp_path / "data"  # each page gets the pristine tree (no catalogues of another)
    shutil.copytree(sample_tree, data)
    monkeypatch.setenv("EZPHOT_DATA_DIR", str(data))
    environ = dict(os.environ)
    monkeypatch.setenv("EZPHOT_TMPDIR", str(run_tmp))
    monkeypatch.chdir(work)
    namespace: dict = {"__name__": "__main__"}
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    parser = doctest.DocTestParser()
    try:
        for kind, code, line in blocks(page):
            where = f"{page.name}:{line}"
            if kind == "python":
                exec(compile(code, where, "exec"), namespace)
            else:
                test = parser.get_doctest(code, namespace, where, str(page), line)
                result = runner.run(test, clear_globs=False)
                namespace.update(test.globs)  # DocTest copies the namespace
                assert not result.failed, f"doctest failed at {where} (output above)"
    finally:
        plt.close("all")
        os.environ.clear()  # examples may set variables (EZPHOT_SEXTRACTOR_CONFIGS...)
        os.environ.update(environ)
    assert not list(run_tmp.iterdir()), "the examples left run directories behind"


def _documented(page: Path) -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]*)`", page.read_text()))


def test_every_column_is_in_the_catalogue_reference(tmp_path, monkeypatch):
    """Every column of every method's table (and of a light curve) is described."""
    import warnings

    from ezphot.datasets import FrameSpec, make_frame
    from ezphot.methods import AperturePhotometry
    from ezphot.photometry.lightcurve import light_curve

    monkeypatch.setenv("EZPHOT_TMPDIR", str(tmp_path))
    spec = FrameSpec(shape=(300, 400))
    path, truth = make_frame(tmp_path / "frame.fits", spec, seed=1)
    ap = AperturePhotometry()
    kw = dict(save=False, visualize=False, verbose=False, aperture_diameter_seeing=[3.5])
    x, y = list(truth["X"][:2]), list(truth["Y"][:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = {
            "catalogue.md": [ap.sex_photometry(str(path), **kw).data,
                             ap.photutils_photometry(str(path), save=False, visualize=False,
                                                     verbose=False).data,
                             ap.circular_photometry(str(path), x, y, **kw).data,
                             ap.elliptical_photometry(str(path), x, y, 4, 3, 20, save=False,
                                                      visualize=False, verbose=False).data],
            "forced.md": [light_curve([path], *truth["RA", "DEC"][0], progress=False,
                                      aperture_diameter_arcsec=[5, 7])],
        }
    for page, produced in tables.items():
        documented = _documented(DOCS / page)
        names = {re.sub(r"_\d+$", "", c) for t in produced for c in t.colnames}
        missing = sorted(names - documented)
        assert not missing, f"columns not described in docs/{page}: {missing}"


def test_every_environment_variable_is_on_the_configuration_page():
    used = set()
    for path in list((ROOT / "ezphot").rglob("*.py")) + [DOCS / "conf.py"]:
        used |= set(re.findall(r"EZPHOT_[A-Z_]+[A-Z]", path.read_text()))
    missing = sorted(used - _documented(DOCS / "configuration.md"))
    assert used and not missing, f"not on docs/configuration.md: {missing}"
