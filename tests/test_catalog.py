"""`Catalog`: info block, lossless save/load, exports; `save=False` never touches files."""

from __future__ import annotations

import numpy as np
import pytest

from ezphot.dataobjects import Catalog
from ezphot.methods import AperturePhotometry


@pytest.fixture(scope="module")
def catalog(frame):
    return AperturePhotometry().sex_photometry(
        frame[0], detection_sigma=3, aperture_diameter_arcsec=[5, 7, 10],
        aperture_diameter_seeing=[2.5, 3.5], save=False, visualize=False, verbose=False)


def test_info_block(catalog, frame):
    text = str(catalog.info)
    lines = text.splitlines()
    assert lines[0] == "Info ============================================"
    assert lines[-1] == "==================================================="
    keys = [line.split(":")[0] for line in lines[1:-1]]
    assert keys == ["path", "target_img", "obsdate", "filter", "exptime", "depth", "seeing",
                    "catalog_type", "ra", "dec", "fov_ra", "fov_dec", "objname", "observatory",
                    "telname", "aperture_diameter_arcsec"]
    info = catalog.info
    assert (info.exptime, info.filter, info.telname, info.objname) == (100.0, "m600", "7DT14",
                                                                        "T00528")
    assert info.observatory == "7DT" and info.obsdate.startswith("2025-09-06T02:58:55")
    assert info.ra == pytest.approx(326.2509829204, abs=1e-6)
    assert info.fov_ra == pytest.approx(1536 * 0.505 / 3600, abs=1e-3)


def test_save_load_lossless(catalog, tmp_path):
    path = catalog.save(tmp_path / "x.cat")
    back = Catalog(path)
    assert back.data.colnames == catalog.data.colnames
    for name in catalog.data.colnames:
        assert back.data[name].dtype == catalog.data[name].dtype, name
        assert back.data[name].unit == catalog.data[name].unit, name
        np.testing.assert_array_equal(back.data[name], catalog.data[name])
    assert back.info.to_dict() | {"path": None} == catalog.info.to_dict() | {"path": None}
    assert back.meta["sextractor_version"] == "2.25.0"
    assert back.data.meta["pixel_origin"] == 0
    assert Catalog.is_complete(path)
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("fmt", ["ecsv", "csv", "parquet"])
def test_exports(catalog, tmp_path, fmt):
    path = catalog.write(tmp_path / f"x.{fmt}", format=fmt)
    from astropy.table import Table

    back = Table.read(path, format={"csv": "ascii.csv", "ecsv": "ascii.ecsv"}.get(fmt, fmt))
    np.testing.assert_allclose(back["FLUX_AUTO"], catalog.data["FLUX_AUTO"], rtol=1e-6)
    with pytest.raises(FileExistsError):
        catalog.write(path, format=fmt)
    assert len(catalog.to_pandas()) == len(catalog.data)


def test_save_false_writes_and_deletes_nothing(frame, tmp_path):
    """Predecessor defect 3: save=False deleted earlier saved catalogues."""
    import shutil

    p = tmp_path / frame[0].name
    shutil.copy(frame[0], p)
    ap = AperturePhotometry()
    saved = ap.sex_photometry(p, save=True, visualize=False, verbose=False)
    cat_path = tmp_path / f"{p.name}.cat"
    assert saved.info.path == str(cat_path) and cat_path.is_file()
    before = cat_path.read_bytes()
    files = sorted(tmp_path.iterdir())
    ap.sex_photometry(p, save=False, visualize=False, verbose=False, detection_sigma=10)
    assert sorted(tmp_path.iterdir()) == files
    assert cat_path.read_bytes() == before


def test_visualize_and_save_fig(frame, tmp_path):
    """Predecessor defect 2: visualize=True crashed on current matplotlib."""
    import shutil

    p = tmp_path / frame[0].name
    shutil.copy(frame[0], p)
    cat = AperturePhotometry().sex_photometry(p, save=True, visualize=True, save_fig=True,
                                              verbose=False)
    png = tmp_path / f"{p.name}.cat.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = cat.figure.axes[0]
    (collection,) = ax.collections
    offsets = collection.get_offsets()
    assert len(offsets) == len(cat.data)
    np.testing.assert_allclose(offsets[:, 0], cat.data["X_IMAGE"])
