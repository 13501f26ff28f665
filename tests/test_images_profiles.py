"""Lazy images, header normalisation and telescope profiles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from astropy.io import fits

from ezphot.exceptions import MissingWCSError
from ezphot.imageobjects import ScienceImage
from ezphot.profiles import get_profile, select_profile

from .conftest import shared


def test_7dt_frame_properties(frame):
    img = ScienceImage(frame[0])
    assert img._data is None  # header only until pixels are used
    assert img.profile.name == "7DT_C361K_HIGH_1x1"
    assert img.telkey == "7DT_C361K_HIGH_1x1"
    assert img.egain == 0.2561  # EGAIN, not the GAIN setting 2750
    assert img.rdnoise == 6.0  # from the profile
    assert img.saturation == 65535.0  # header SATURATE is what the header says
    assert img.seeing == 2.8 and img.exptime == 100.0 and img.filter == "m600"
    assert img.pixelscale == pytest.approx(0.505, rel=1e-9)
    assert img.center.ra.deg == pytest.approx(326.2509829204, abs=1e-6)
    assert img.shape == (1024, 1536)
    assert img.data.shape == (1024, 1536) and not img.data.flags.writeable
    clone = pickle.loads(pickle.dumps(img))
    assert clone == img and clone._data is None
    assert len(pickle.dumps(img)) < 2000  # a path, not pixels


@pytest.mark.parametrize("cards, expected", [
    ({"TELESCOP": "7DT03", "NAXIS1": 9576, "EGAIN": 0.7798}, "7DT_C361K_LOW_1x1"),
    ({"TELESCOP": "7DT11", "NAXIS1": 4788, "GAIN": 2750}, "7DT_C361K_HIGH_2x2"),
    ({"OBSERVAT": "7DT", "XBINNING": 2, "GAINMODE": "LOW"}, "7DT_C361K_LOW_2x2"),
    ({"TELESCOP": "ESONTTB", "NAXIS1": 9576}, "generic"),
])
def test_profile_from_header(cards, expected):
    assert select_profile(fits.Header(cards)).name == expected


def test_profile_never_from_path(tmp_path, frame):
    """Predecessor defect 11: the telescope was guessed from a substring of the path."""
    d = tmp_path / "7DT_C361K_LOW_2x2" / "7DT05"
    d.mkdir(parents=True)
    p = d / "calib_7DT05_x.fits"
    fits.writeto(p, np.zeros((10, 10), np.float32), fits.Header({"TELESCOP": "Other"}))
    assert ScienceImage(p).profile.name == "generic"


def test_profile_settings():
    p = get_profile("7DT_C361K_HIGH_1x1")
    assert (p.egain, p.read_noise, p.saturation, p.pixel_scale, p.naxis) == (
        0.2561, 6.0, 60000.0, 0.505, (9576, 6388))
    assert p.sextractor["DETECT_MINAREA"] == 6 and p.sextractor["DEBLEND_MINCONT"] == 0.005
    assert get_profile("7DT_C361K_LOW_2x2").egain == 0.7798


def test_generic_image_without_wcs():
    img = ScienceImage(shared("sep", "image.fits"))
    assert img.profile.name == "generic" and img.wcs is None and img.pixelscale is None
    with pytest.raises(MissingWCSError, match="image.fits: no celestial WCS"):
        img.require_wcs()


def test_unsigned_int_and_gain_keywords():
    img = ScienceImage(shared("ccdproc", "a8280271.fits"))
    assert img.egain == 1.9 and img.rdnoise == 5.0  # generic profile: GAIN is e-/ADU
    raw = fits.getdata(img.path, do_not_scale_image_data=True)  # int16 + BZERO 32768
    assert raw.dtype.kind == "i" and raw.dtype.itemsize == 2
    np.testing.assert_array_equal(img.data, raw.astype(np.int64) + 32768)
    # the binary reads the same unsigned values: its sky level is the image's
    from ezphot.methods import AperturePhotometry

    cat = AperturePhotometry().sex_photometry(
        img, sex_params={"PIXEL_SCALE": 1.0}, aperture_diameter_arcsec=[8],
        aperture_diameter_seeing=None, save=False, visualize=False, verbose=False)
    assert cat.data["SKYVAL"][0] == pytest.approx(np.median(img.data), rel=0.02)


def test_extension_syntax():
    img = ScienceImage(f"{shared('decam', 'c4d_170316_062107_ooi_z_ls9.N2.fits')}[1]")
    assert img.hdu == 1 and img.wcs is not None
    assert ScienceImage(shared("decam", "c4d_170316_062107_ooi_z_ls9.N2.fits")).hdu == 1
