"""The tutorial notebook executed through a real Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorials" / "aperture_photometry.ipynb"


def _execute(path: Path, workdir: Path, monkeypatch) -> nbformat.NotebookNode:
    # the kernel imports this checkout's ezphot and inherits the test's EZPHOT_TMPDIR
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _pngs(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        yield _execute(TUTORIAL, tmp_path_factory.mktemp("nb"), mp)
    finally:
        mp.undo()


def _cell(nb, start: str):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(start)]
    return cell


def test_no_cell_errors(tutorial):
    for cell in tutorial.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source


def test_every_drawing_cell_shows_a_picture(tutorial):
    drawing = [c for c in tutorial.cells if c.cell_type == "code"
               and ("visualize = True" in c.source or ".show" in c.source)]
    assert len(drawing) == 9
    for cell in drawing:
        expected = cell.source.count("visualize = True") + cell.source.count(".show")
        assert _pngs(cell) == expected, cell.source
    # the calls return (fig, ax) as before: the tuple is the cell's result
    result = [o for o in _cell(tutorial, "target_img = target_imglist[0]").outputs
              if o.output_type == "execute_result"]
    assert result and "WCSAxes" in result[0]["data"]["text/plain"]


def test_verbose_cells_print_their_lines(tutorial):
    found = _text(_cell(tutorial, "from ezphot.utils import DataBrowser"))
    assert "[INFO] Found 2 files matching '" in found and "*100.fits'" in found
    masks = _text(_cell(tutorial, "target_brightstar_mask ="))
    assert "[INFO] Added circular mask at (325.37, -77.393) with radius 300arcsec" in masks
    assert "[INFO] External mask is loaded." in masks
    assert "[INFO] Masking source... [sigma = 5, mask_radius_factor = 2]" in masks
    assert " non-saturated, " in masks and " sources masked." in masks
    bkg = _text(_cell(tutorial, "target_bkg = target_img.calculate_bkg("))
    assert "background " in bkg and "read noise 6.0 e- from the telescope profile" in bkg
    # an assumption is an INFO line, not a warning
    assert [line.startswith("[INFO] ") for line in bkg.splitlines()
            if "read noise 6.0 e- from the telescope profile" in line] == [True]
    # verbose=False cells say nothing
    assert _text(_cell(tutorial, "target_catalog = aperturephot.sex_photometry(")) == ""
    assert _text(_cell(tutorial, "target_catalog_circular = ")) == ""


def test_help_is_readable(tutorial):
    text = _text(_cell(tutorial, "from ezphot.methods import AperturePhotometry"))
    assert "- circular_photometry(target_img, x, y, *" in text
    assert "self" not in text and "'bool'" not in text


FORCED = ROOT / "docs" / "tutorials" / "forced_photometry_lightcurve.ipynb"


def test_forced_and_light_curve_notebook(tmp_path, monkeypatch):
    nb = _execute(FORCED, tmp_path, monkeypatch)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    assert _pngs(_cell(nb, "from ezphot.methods import AperturePhotometry")) == 1
    assert _pngs(_cell(nb, "from ezphot.photometry.lightcurve import")) == 1
    # the light curve's figure is shown once (pyplot-managed), not also as a text repr
    out = _cell(nb, "from ezphot.photometry.lightcurve import").outputs
    assert not [o for o in out if o.output_type == "execute_result"]
