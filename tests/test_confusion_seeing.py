"""Forced photometry's confusion error term and the annulus' seeing-matched source mask
(issue 15), on frames of tests/skygen.py (made independently of ezphot).

The pulls on the crowded frame with the term are checked in tests/test_background_accuracy.py;
here: the term's bookkeeping on a sparse frame (no excess: nothing added), its arithmetic
(FLUXERR² grows by exactly sigma_conf² where it applies) and the annulus' deep mask following
the seeing of a frame whose seeing is not 5 px.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ezphot.imageobjects import ScienceImage
from ezphot.photometry import depth
from ezphot.photometry.forced import circular_photometry

from .skygen import isolated_positions, make_sky_frame

OPTS = dict(aperture_diameter_arcsec=[5, 10], aperture_diameter_seeing=None, save=False)


@pytest.fixture(scope="module")
def crowded_small(tmp_path_factory):
    """1024x1024, ~6x the stars per area of a 7DT frame, 2.9" seeing: confusion in 10"."""
    d = tmp_path_factory.mktemp("conf")
    frame = make_sky_frame(d / "c.fits", shape=(1024, 1024), n_stars=1200, seed=21,
                           bright=(10.0,))
    return frame


@pytest.fixture(scope="module")
def sparse_small(tmp_path_factory):
    d = tmp_path_factory.mktemp("sparse")
    return make_sky_frame(d / "s.fits", shape=(1024, 1024), n_stars=60, seed=22,
                          mag_range=(14.0, 19.0))


def test_no_excess_no_term(sparse_small):
    """Blank apertures on a sparse frame scatter as the noise model says: nothing is added,
    FLUXERR is the noise model exactly (as with confusion_error=False)."""
    img = ScienceImage(sparse_small.path)
    xy = isolated_positions(sparse_small, 50, np.random.default_rng(1), min_dist=30)
    on = circular_photometry(img, xy[:, 0], xy[:, 1], **OPTS)
    off = circular_photometry(img, xy[:, 0], xy[:, 1], confusion_error=False, **OPTS)
    conf = on.meta["confusion_error"]
    assert off.meta["confusion_error"] is None
    assert conf["n"] >= 400
    for row in conf["apertures"]:
        assert 0.9 < row["ratio"] < depth.CONFUSION_THRESHOLD and row["sigma_conf"] == 0.0
    for col in ("FLUX_APER_1", "FLUXERR_APER_1", "MAGERR_APER_1"):
        assert np.array_equal(np.asarray(on.data[col]), np.asarray(off.data[col]),
                              equal_nan=True)


def test_confusion_term_added_in_quadrature(crowded_small):
    img = ScienceImage(crowded_small.path)
    xy = isolated_positions(crowded_small, 60, np.random.default_rng(2), min_dist=25)
    on = circular_photometry(img, xy[:, 0], xy[:, 1], **OPTS)
    off = circular_photometry(img, xy[:, 0], xy[:, 1], confusion_error=False, **OPTS)
    conf = on.meta["confusion_error"]["apertures"]
    big = conf[1]
    # stars below the detection limit: blank 10" apertures scatter more than the model
    assert big["ratio"] > depth.CONFUSION_THRESHOLD and big["sigma_conf"] > 0, conf
    assert big["sigma_conf"] == pytest.approx(
        math.sqrt(big["blank_scatter"] ** 2 - big["noise_model"] ** 2))
    for k, row in enumerate(conf):
        col = "" if k == 0 else f"_{k}"
        e_on = np.asarray(on.data[f"FLUXERR_APER{col}"])
        e_off = np.asarray(off.data[f"FLUXERR_APER{col}"])
        assert np.allclose(e_on ** 2, e_off ** 2 + row["sigma_conf"] ** 2, rtol=1e-12, atol=0,
                           equal_nan=True)
        assert np.array_equal(np.asarray(on.data[f"FLUX_APER{col}"]),
                              np.asarray(off.data[f"FLUX_APER{col}"]), equal_nan=True)
    # the scatter is the blank apertures' own: measured again by hand at the recorded centres
    assert on.meta["confusion_error"]["region"] is not None


@pytest.mark.parametrize("seeing", [4.5, None])
def test_annulus_deep_mask_follows_the_seeing(tmp_path, seeing):
    """A 4.5" (8.9 px) frame: the annulus' deep source mask is matched to its seeing, from
    the header, or measured (SExtractor) when the header has none — not the 5 px default."""
    frame = make_sky_frame(tmp_path / "w.fits", shape=(768, 768), n_stars=200, seed=23,
                           seeing_arcsec=4.5, mag_range=(12.0, 17.5))
    path = Path(frame.path)
    if seeing is None:
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["SEEING"]
    img = ScienceImage(path)
    xy = isolated_positions(frame, 10, np.random.default_rng(3), min_dist=30)
    cat = circular_photometry(img, xy[:, 0], xy[:, 1], annulus_width_arcsec=3,
                              confusion_error=False, **OPTS)
    fwhm = cat.meta["background_details"]["fwhm_pixel"]
    assert fwhm == pytest.approx(frame.fwhm, rel=0.0 if seeing else 0.15), fwhm
    from ezphot.photometry import forced

    tiles = forced._DeepTiles(img.data, None, fwhm=fwhm)
    assert tiles.fwhm == fwhm
