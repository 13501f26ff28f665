"""Bad input: clear exceptions naming the file, nothing left behind, inputs untouched."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.data import get_pkg_data_filename

from ezphot.exceptions import (
    ImageError,
    SExtractorConfigError,
    SExtractorError,
    SExtractorNotFoundError,
)
from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry

from .conftest import sha256, shared

OPTS = dict(save=False, visualize=False, verbose=False, aperture_diameter_seeing=None)


def phot(path, **kw):
    return AperturePhotometry().sex_photometry(path, **{**OPTS, **kw})


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="nosuch.fits: no such file"):
        phot(tmp_path / "nosuch.fits")


def test_not_fits(tmp_path):
    p = tmp_path / "notes.fits"
    p.write_text("these are not pixels")
    with pytest.raises(ImageError, match="notes.fits: not a readable FITS file"):
        phot(p)


def test_binary_missing(frame, monkeypatch):
    monkeypatch.setenv("EZPHOT_SEXTRACTOR", "/nowhere/sex")
    with pytest.raises(SExtractorNotFoundError, match="/nowhere/sex"):
        phot(frame[0])


def test_binary_fails_on_truncated_file(tmp_path):
    src = shared("sep", "image.fits").read_bytes()
    p = tmp_path / "truncated.fits"
    p.write_bytes(src[:100000])  # header intact, pixels cut short
    before = sha256(p)
    with pytest.raises(SExtractorError, match=r"truncated.fits.*exit code 1.*Error"):
        phot(p, sex_params={"PIXEL_SCALE": 1.0}, aperture_diameter_arcsec=[5])
    assert sha256(p) == before


def test_unknown_keyword_and_parameter(frame):
    with pytest.raises(SExtractorConfigError, match="BACK_SIZZE"):
        phot(frame[0], sex_params={"BACK_SIZZE": 32})
    with pytest.raises(SExtractorConfigError, match="FLUX_AUTOO"):
        phot(frame[0], parameters=["NUMBER", "FLUX_AUTOO"])


def test_bad_arguments(frame):
    with pytest.raises(ValueError, match="detection_sigma"):
        phot(frame[0], detection_sigma=-1)
    with pytest.raises(ValueError, match="aperture_diameter_arcsec must be positive"):
        phot(frame[0], aperture_diameter_arcsec=[5, 0])


def test_no_sources_gives_empty_catalogue_with_all_columns(tmp_path, frame):
    rng = np.random.default_rng(0)
    header = fits.getheader(frame[0])
    p = tmp_path / "blank.fits"
    fits.writeto(p, rng.normal(400, 40, (256, 256)).astype(np.float32), header)
    empty = phot(p, detection_sigma=50)
    full = phot(frame[0])
    assert len(empty.data) == 0
    assert empty.data.colnames == full.data.colnames


def test_all_nan_image(tmp_path, frame):
    p = tmp_path / "nan.fits"
    fits.writeto(p, np.full((128, 128), np.nan, np.float32), fits.getheader(frame[0]))
    with pytest.raises(ImageError, match="nan.fits: every pixel is NaN"):
        phot(p)


def test_two_calls_on_one_image_at_once(frame, tmp_path):
    p = tmp_path / frame[0].name
    shutil.copy(frame[0], p)
    results, errors = [], []

    def work():
        try:
            results.append(AperturePhotometry().sex_photometry(
                ScienceImage(p), **{**OPTS, "save": True}))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 2 and len(results[0].data) == len(results[1].data) > 0
    from ezphot.dataobjects import Catalog

    assert len(Catalog(f"{p}.cat").data) == len(results[0].data)


def test_tile_compressed_input():
    """source-extractor 2.25 rejects tile-compressed FITS; the wrapper measures a plain copy."""
    path = get_pkg_data_filename("io/fits/hdu/compressed/tests/data/m13_rice.fits",
                                 package="astropy")
    plain = get_pkg_data_filename("io/fits/hdu/compressed/tests/data/m13.fits", package="astropy")
    kw = dict(sex_params={"PIXEL_SCALE": 1.0}, aperture_diameter_arcsec=[6], detection_sigma=3)
    compressed = phot(path, **kw)
    reference = phot(plain, **kw)
    assert len(compressed.data) == len(reference.data) > 5
    np.testing.assert_allclose(compressed.data["FLUX_APER"], reference.data["FLUX_APER"],
                               rtol=1e-4)


def test_data_in_extension_and_extra_table_hdu(tmp_path):
    decam = phot(shared("decam", "c4d_170316_062107_ooi_z_ls9.N2.fits"), seeing=1.2,
                 aperture_diameter_arcsec=[3])
    assert len(decam.data) > 3
    # an image followed by a table HDU: same catalogue as the image alone
    img = shared("sep", "image.fits")
    p = tmp_path / "with_table.fits"
    with fits.open(img) as hdul:
        fits.HDUList([hdul[0].copy(), fits.BinTableHDU.from_columns(
            [fits.Column(name="a", format="J", array=np.arange(3))])]).writeto(p)
    kw = dict(sex_params={"PIXEL_SCALE": 1.0}, aperture_diameter_arcsec=[10])
    with_table, alone = phot(p, **kw).data, phot(img, **kw).data
    assert len(with_table) == len(alone) > 20
    np.testing.assert_array_equal(with_table["FLUX_AUTO"], alone["FLUX_AUTO"])
