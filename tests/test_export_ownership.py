"""Pictures and table exports never replace a file ezphot did not write; a catalogue edited
after it was measured loses its provenance key, so a batch resume measures it again (issue 9).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from matplotlib.figure import Figure

from ezphot._io import png_owner, table_export_owner
from ezphot.batch import run_batch
from ezphot.dataobjects import Catalog
from ezphot.datasets import FrameSpec, make_frame, make_sample_tree
from ezphot.exceptions import ForeignFileError
from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.visualization import save_figure

from .conftest import sha256

AP = AperturePhotometry()
Q = dict(save=False, visualize=False, verbose=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    spec = FrameSpec(shape=(256, 256), star_density=0.2)
    path, _ = make_frame(tmp_path_factory.mktemp("own") / spec.file_name(), spec, seed=5)
    return path


@pytest.fixture(scope="module")
def catalog(small):
    return AP.circular_photometry(small, [60.0, 120.5, 200.0], [70.0, 128.0, 30.0],
                                  aperture_diameter_seeing=None, **Q)


def _foreign_png(path: Path) -> None:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    fig.savefig(path, format="png")  # a user's picture: no ezphot text chunk


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if ".part" in p.name]


FOREIGN = {"text": lambda p, fmt: p.write_text("my notes: do not lose\n"),
           "same format": lambda p, fmt: Table({"a": [1.0, 2.0]}).write(
               p, format={"ecsv": "ascii.ecsv", "csv": "ascii.csv"}.get(fmt, fmt))}


@pytest.mark.parametrize("fmt", ["ecsv", "parquet", "csv"])
@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_write_never_replaces_a_foreign_file(catalog, tmp_path, fmt, kind):
    path = tmp_path / f"user.{fmt}"
    FOREIGN[kind](path, fmt)
    before = sha256(path)
    with pytest.raises(ForeignFileError, match=str(path)):
        catalog.write(path, format=fmt, overwrite=True)
    assert sha256(path) == before
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("fmt", ["ecsv", "parquet"])
def test_write_replaces_its_own_export(catalog, tmp_path, fmt):
    path = catalog.write(tmp_path / f"x.{fmt}", format=fmt)
    assert table_export_owner(path, fmt).startswith("ezphot")
    catalog.write(path, format=fmt, overwrite=True)  # ezphot's own file: replaced
    back = Table.read(path, format={"ecsv": "ascii.ecsv"}.get(fmt, fmt))
    assert np.array_equal(np.asarray(back["FLUX_APER"]), np.asarray(catalog.data["FLUX_APER"]),
                          equal_nan=True)
    # a symbolic link to ezphot's own export is not ezphot's file
    link = tmp_path / f"link.{fmt}"
    link.symlink_to(path)
    with pytest.raises(ForeignFileError, match=str(link)):
        catalog.write(link, format=fmt, overwrite=True)
    assert link.is_symlink()
    _no_leftovers(tmp_path)


def test_csv_is_never_replaced(catalog, tmp_path):
    """A CSV has no place for a marker: ezphot cannot prove it wrote one."""
    path = catalog.write(tmp_path / "x.csv", format="csv")
    before = sha256(path)
    with pytest.raises(ForeignFileError, match="CSV file carries no ownership marker"):
        catalog.write(path, format="csv", overwrite=True)
    assert sha256(path) == before


@pytest.mark.parametrize("kind", ["png", "text"])
def test_save_figure_never_replaces_a_foreign_file(tmp_path, kind):
    path = tmp_path / "picture.png"
    _foreign_png(path) if kind == "png" else path.write_text("notes")
    before = sha256(path)
    fig = Figure(figsize=(2, 2))
    with pytest.raises(ForeignFileError, match=str(path)):
        save_figure(fig, path)
    assert sha256(path) == before
    own = save_figure(fig, tmp_path / "own.png")
    assert png_owner(own) == "figure"
    save_figure(fig, own)  # its own picture: replaced
    _no_leftovers(tmp_path)


def test_save_fig_paths_refuse_foreign_pictures(small, tmp_path):
    """The save_fig=True paths of the photometry methods and of the maps."""
    frame = tmp_path / small.name
    shutil.copy(small, frame)
    forced_png = Path(f"{frame}.circ.cat.png")
    _foreign_png(forced_png)
    map_png = Path(f"{frame}.bkgmap.png")
    map_png.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    sums = {p: sha256(p) for p in (forced_png, map_png)}
    with pytest.raises(ForeignFileError, match=str(forced_png)):
        AP.circular_photometry(frame, [60.0], [70.0], aperture_diameter_seeing=None,
                               save=False, visualize=False, verbose=False, save_fig=True)
    with pytest.raises(ForeignFileError, match=str(map_png)):
        ScienceImage(frame).calculate_bkg(box_size=64, filter_size=3, verbose=False,
                                          save_fig=True)
    assert {p: sha256(p) for p in sums} == sums
    forced_png.unlink()
    AP.circular_photometry(frame, [60.0], [70.0], aperture_diameter_seeing=None, save=False,
                           visualize=False, verbose=False, save_fig=True)
    assert png_owner(forced_png) == "figure"
    _no_leftovers(tmp_path)


# -- an edited catalogue is not the measured one --------------------------------------------
OPTS = dict(detection_sigma=5, aperture_diameter_arcsec=[5, 7], aperture_diameter_seeing=[])


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("edited")
    return make_sample_tree(root / "scidata", 2, shape=(384, 512), seed=4)


def _batch(files):
    summary = run_batch([str(f) for f in files], workers=1, progress=False, **OPTS)
    return {row["image"]: (row["status"], row["reason"]) for row in summary}


def test_edited_catalogue_is_measured_again_by_resume(frames, tmp_path):
    files = []
    for p in frames:
        shutil.copy(p, tmp_path / p.name)
        files.append(tmp_path / p.name)
    assert {s for s, _ in _batch(files).values()} == {"done"}
    edited, untouched = (Path(f"{f}.cat") for f in files)
    # re-saved unchanged: still the measured catalogue
    cat = Catalog(untouched)
    cat.save()
    assert Catalog(untouched).meta.get("provenance") is not None
    # edited and re-saved: the key goes, and resume measures the frame again
    cat = Catalog(edited)
    measured = np.asarray(cat.data["FLUX_APER"]).copy()
    cat.data["FLUX_APER"][0] += 100.0
    cat.save()
    saved = Catalog(edited)
    assert saved.meta.get("provenance") is None and saved.meta.get("edited")
    assert Catalog.check(edited).state == "ok"  # still a sound ezphot file
    run = _batch(files)
    assert run[str(files[0])] == ("done", "remeasured: edited after measurement (no provenance "
                                          "key)")
    assert run[str(files[1])] == ("skipped", "unchanged")
    remeasured = Catalog(edited)
    assert np.array_equal(np.asarray(remeasured.data["FLUX_APER"]), measured)
    assert remeasured.meta.get("provenance") is not None


def test_provenance_copied_to_a_new_table_is_dropped(catalog, tmp_path):
    """A key that was never attached to this table by ezphot is not saved with it."""
    path = tmp_path / "x.cat"
    fake = Catalog(catalog.data[:2], info=catalog.info, meta={"provenance": {"method": "x"}})
    fake.save(path)
    assert Catalog(path).meta.get("provenance") is None
