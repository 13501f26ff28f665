"""Forced photometry's confusion error term and the annulus' seeing-matched source mask
(issue 15), on frames of tests/skygen.py (made independently of ezphot).

The pulls on the crowded frame with the term are checked in tests/test_background_accuracy.py;
here: the term on a sparse frame (no excess: a term consistent with 0), its arithmetic
(FLUXERR² grows by exactly sigma_conf²), the excess estimator's bias and standard error on
draws with a known excess, the blank apertures' placement rule, and the annulus' deep mask
following the seeing of a frame whose seeing is not 5 px.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ezphot.exceptions import MeasurementWarning
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


def test_sparse_term_consistent_with_zero(sparse_small):
    """Blank apertures on a sparse frame scatter as the noise model says: the excess is
    within 3 of its standard errors of 0 and the errors grow by under 5 % (no threshold: the
    term is the estimate itself, truncated at 0)."""
    img = ScienceImage(sparse_small.path)
    xy = isolated_positions(sparse_small, 50, np.random.default_rng(1), min_dist=30)
    on = circular_photometry(img, xy[:, 0], xy[:, 1], **OPTS)
    off = circular_photometry(img, xy[:, 0], xy[:, 1], confusion_error=False, **OPTS)
    conf = on.meta["confusion_error"]
    assert off.meta["confusion_error"] is None
    assert conf["n"] >= 400
    for k, row in enumerate(conf["apertures"]):
        assert abs(row["significance"]) < 3, row
        assert 0.9 < row["ratio"] < 1.05, row
        col = "" if k == 0 else f"_{k}"
        e_on = np.asarray(on.data[f"FLUXERR_APER{col}"])
        e_off = np.asarray(off.data[f"FLUXERR_APER{col}"])
        assert np.nanmax(e_on / e_off) < 1.05
        assert np.array_equal(np.asarray(on.data[f"FLUX_APER{col}"]),
                              np.asarray(off.data[f"FLUX_APER{col}"]), equal_nan=True)


def test_confusion_term_added_in_quadrature(crowded_small):
    img = ScienceImage(crowded_small.path)
    xy = isolated_positions(crowded_small, 60, np.random.default_rng(2), min_dist=25)
    on = circular_photometry(img, xy[:, 0], xy[:, 1], **OPTS)
    off = circular_photometry(img, xy[:, 0], xy[:, 1], confusion_error=False, **OPTS)
    conf = on.meta["confusion_error"]["apertures"]
    big = conf[1]
    # stars below the detection limit: blank 10" apertures scatter more than the model
    assert big["significance"] > 2 and big["sigma_conf"] > 0, conf
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
    assert on.meta["confusion_error"]["region"] is not None
    assert on.meta["confusion_error"]["sky"] == "region tile estimate"


def test_excess_scatter_statistics():
    """`excess_scatter` against draws with a known excess: the estimate is unbiased, its
    stated standard error matches the spread over repeats (also for a skewed, heavy-tailed
    excess like confusion), and a few bright-neighbour outliers do not decide it."""
    rng = np.random.default_rng(5)
    m, n = 100.0, 600
    for excess_sd, heavy in ((0.0, False), (40.0, False), (40.0, True)):
        est, err = [], []
        for _ in range(300):
            noise = rng.normal(0.0, m, n)
            if heavy:  # faint stars in some apertures: exponential fluxes, 30 % hit (the
                # part of a tail beyond 4 sigma is clipped by design: ~7 % of the excess
                # variance on the crowded test frame, none here)
                extra = rng.exponential(1.0, n) * (rng.uniform(size=n) < 0.3)
                extra *= excess_sd / extra.std()
            else:
                extra = rng.normal(0.0, excess_sd, n)
            out = depth.excess_scatter(noise + extra - np.mean(extra), np.full(n, m))
            est.append(out["excess_variance"])
            err.append(out["excess_variance_err"])
        est, err = np.array(est), np.array(err)
        true = excess_sd ** 2
        assert abs(est.mean() - true) < 3 * est.std() / math.sqrt(est.size) + 0.01 * m * m, \
            (excess_sd, heavy, est.mean(), true)
        assert 0.8 < np.median(err) / est.std() < 1.25, (excess_sd, heavy, np.median(err),
                                                         est.std())
    flux = rng.normal(0.0, m, n)
    flux[:3] = 50 * m  # apertures on bright neighbours' cores
    out = depth.excess_scatter(flux, np.full(n, m))
    assert out["n"] == n - 3 and abs(out["ratio"] - 1) < 0.1


def test_centre_placement_is_the_disk_rule():
    """The vectorised ``touch='centre'`` placement keeps exactly the centres whose disk of
    pixel centres (radius + 0.5 about the rounded centre) holds no masked pixel, checked
    pixel by pixel, and reaches every allowed pixel."""
    rng = np.random.default_rng(3)
    mask = np.zeros((120, 150), bool)
    yy, xx = np.mgrid[0:120, 0:150]
    for cx, cy, r in ((30, 40, 9), (100, 70, 14), (75, 20, 5)):
        mask |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    mask[90:95, 10:60] = True
    radius = 6.3
    x, y = depth.blank_positions(mask, radius, 4000, rng, touch="centre")
    assert x.size == 4000
    with pytest.warns(MeasurementWarning, match="only 0 of 10"):  # no room at all
        depth.blank_positions(np.ones_like(mask), radius, 10, rng, touch="centre")
    off = np.arange(-8, 9)
    disk = off[:, None] ** 2 + off[None, :] ** 2 <= (radius + 0.5) ** 2
    padded = np.pad(mask, 8)
    allowed = np.zeros(mask.shape, bool)
    for iy in range(mask.shape[0]):
        for ix in range(mask.shape[1]):
            allowed[iy, ix] = not padded[iy:iy + 17, ix:ix + 17][disk].any()
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    assert allowed[iy, ix].all()
    edge = radius + 1
    assert x.min() >= edge and x.max() <= mask.shape[1] - 1 - edge
    inner = allowed[int(edge) + 2:-int(edge) - 2, int(edge) + 2:-int(edge) - 2]
    hit = np.zeros(mask.shape, bool)
    hit[iy, ix] = True
    # 4000 draws over ~10^4 allowed pixels: a good share of them, none outside
    assert hit[int(edge) + 2:-int(edge) - 2, int(edge) + 2:-int(edge) - 2].sum() > \
        0.2 * inner.sum()


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
