"""Injection-recovery (ezphot.validation) and blank apertures (ezphot.photometry.depth)."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from ezphot.imageobjects import Mask
from ezphot.photometry.depth import blank_apertures
from ezphot.validation import InjectionResult, completeness_magnitudes, injection_recovery

from .conftest import sha256, shared


@pytest.fixture(scope="module")
def forced_run(frame):
    path, _ = frame
    before = sha256(path)
    listing = sorted(Path(path).parent.iterdir())
    res = injection_recovery(path, n_stars=250, snr=(2, 300), workflow="forced", seed=3)
    return res, before, listing


def test_forced_recovers_injected_flux(forced_run, frame):
    """High S/N: the median recovered / injected flux is 1 (the stamp's flux in the same
    aperture is the truth); the pulls have unit width; completeness rises with brightness."""
    res, before, listing = forced_run
    path, _ = frame
    assert isinstance(res, InjectionResult)
    t = res.table
    assert len(t) == 250 and res.meta["psf"]["kind"] == "epsf" and res.meta["psf"]["n_stars"] >= 5
    bright = t["SNR_INJ"] >= 20
    assert bright.sum() > 60
    assert np.median(t["RATIO"][bright]) == pytest.approx(1.0, abs=0.02)
    pull = np.asarray(t["PULL"][bright], float)
    # very bright: the stars' own photon noise is injected too (pulls of unit width)
    top = np.asarray(t["PULL"][t["SNR_INJ"] >= 80], float)
    assert top.size > 30 and 0.7 < 1.4826 * np.median(np.abs(top - np.median(top))) < 1.3
    # the reported errors are of the right size (their calibration is the background work's)
    assert 0.6 < 1.4826 * np.median(np.abs(pull - np.median(pull))) < 1.3
    assert t["DETECTED"][bright].all() and not t["DETECTED"][t["SNR_INJ"] < 2.5].any()
    s = res.summary
    assert s["COMPLETENESS"][0] == 1.0 and s["COMPLETENESS"][-1] < 0.2
    assert np.isfinite(res.mag50) and np.isfinite(res.mag90) and res.mag90 < res.mag50
    # the injected S/N is honest: 50 % completeness near the detection S/N (5)
    near = np.abs(np.asarray(t["MAG_INJ"]) - res.mag50) < 0.15
    assert 3.5 < np.median(t["SNR_INJ"][near]) < 7
    # the PSF is the image's: FWHM close to the header seeing
    assert res.meta["psf"]["fwhm_pixel"] == pytest.approx(frame[1].meta["fwhm_pixel"], rel=0.15)
    # units, positions and world coordinates
    assert t["FLUX"].unit == u.ct and t["MAG_INJ"].unit == u.mag and t["X"].unit == u.pix
    assert np.isfinite(t["RA"]).all() and np.isfinite(t["DEC"]).all()
    # nothing beside the data, the input unchanged
    assert sha256(path) == before
    assert sorted(Path(path).parent.iterdir()) == listing


def test_injected_positions_avoid_sources_and_edges(forced_run, frame):
    res, *_ = forced_run
    _, truth = frame
    t = res.table
    x, y = np.asarray(t["X"], float), np.asarray(t["Y"], float)
    assert x.min() > 20 and y.min() > 20 and x.max() < 1536 - 21 and y.max() < 1024 - 21
    bright = truth[truth["MAG"] < 18]
    d = np.hypot(np.subtract.outer(x, bright["X"]), np.subtract.outer(y, bright["Y"]))
    assert d.min() > 5


def test_plot(forced_run):
    from matplotlib.figure import Figure

    fig = forced_run[0].plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2


@pytest.fixture(scope="module")
def sextractor_runs(frame):
    """The same injected frame measured by the binary with the matched and the 3x3 filter."""
    path, _ = frame
    out = {}
    for flt in ("gauss", "default"):
        out[flt] = injection_recovery(path, n_stars=250, snr=(2, 60), workflow="sextractor",
                                      seed=5, photometry_kwargs={"detection_sigma": 3,
                                                                 "detection_filter": flt})
    return out


def test_sextractor_workflow_and_matched_filter_gain(sextractor_runs):
    g, d = sextractor_runs["gauss"], sextractor_runs["default"]
    assert np.isfinite(g.mag50) and np.isfinite(d.mag50)
    # same injected stars: same seed
    np.testing.assert_array_equal(g.table["X"], d.table["X"])
    assert g.meta["photometry_kwargs"]["detection_filter"] == "gauss"
    t = g.table[g.table["DETECTED"]]
    assert (t["MATCH_DIST"] <= g.meta["match_radius_pixel"]).all()
    assert np.median(t["RATIO"][t["SNR_INJ"] > 20]) == pytest.approx(1.0, abs=0.03)
    # the Gaussian matched to the seeing reaches fainter (measured: about +0.4 mag)
    assert g.mag50 >= d.mag50 + 0.2
    assert g.table["DETECTED"].sum() > d.table["DETECTED"].sum()


def test_psf_choices_and_maps(frame):
    path, truth = frame
    fwhm = truth.meta["fwhm_pixel"]
    res = injection_recovery(path, n_stars=40, magnitudes=(-13, -10), psf="moffat",
                             maps="calculate", seed=1, avoid_sources=False)
    assert res.meta["psf"]["kind"] == "moffat"
    assert res.meta["psf"]["fwhm_pixel"] == pytest.approx(fwhm)
    assert np.median(res.table["RATIO"]) == pytest.approx(1.0, abs=0.02)
    assert (res.table["MAG_INJ"] >= -13).all() and (res.table["MAG_INJ"] <= -10).all()
    yy, xx = np.mgrid[-15:16, -15:16]
    arr = np.exp(-(xx ** 2 + yy ** 2) / (2 * 2.0 ** 2))
    res = injection_recovery(path, n_stars=20, magnitudes=(16, 17), psf=arr, seed=2,
                             avoid_sources=False, zeropoint=28.0)
    assert res.meta["psf"]["kind"] == "array"
    assert res.meta["psf"]["fwhm_pixel"] == pytest.approx(2.355 * 2.0, rel=0.1)
    assert (res.table["MAG_INJ"] >= 16).all() and (res.table["MAG_INJ"] <= 17).all()
    np.testing.assert_allclose(res.table["FLUX_INJ"], 10 ** (-0.4 * (res.table["MAG_INJ"] - 28)))
    assert np.median(res.table["RATIO"]) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("kw, match", [
    (dict(workflow="photutils"), "workflow"), (dict(maps="yes"), "maps"),
    (dict(n_stars=0), "n_stars"), (dict(psf="gaussian"), "psf"),
    (dict(psf=np.ones((4, 4))), "psf"), (dict(magnitudes=(1, 2), snr=(1, 2)), "magnitudes or snr"),
    (dict(snr=(5, 1)), "snr"), (dict(detect_snr=-1), "detect_snr"),
])
def test_bad_arguments(frame, kw, match):
    with pytest.raises(ValueError, match=match):
        injection_recovery(frame[0], **{"avoid_sources": False, "psf": "moffat", **kw})


def test_completeness_magnitudes_on_known_curve():
    rng = np.random.default_rng(0)
    mag = rng.uniform(18, 24, 4000)
    p = 0.98 / (1 + np.exp((mag - 21.0) / 0.25))
    m50, m90, fit = completeness_magnitudes(mag, rng.uniform(size=mag.size) < p)
    assert m50 == pytest.approx(21.0 + 0.25 * np.log(0.98 / 0.5 - 1), abs=0.05)
    assert m90 == pytest.approx(21.0 + 0.25 * np.log(0.98 / 0.9 - 1), abs=0.08)
    assert np.isnan(completeness_magnitudes(mag, np.ones(mag.size, bool))[0])


def test_real_decam_image():
    """A real DECam cut-out (TPV WCS, data in extension 1): curves, finite 50 % magnitude,
    the file untouched."""
    path = shared("decam", "c4d_170316_062107_ooi_z_ls9.N2.fits")
    before = sha256(path)
    res = injection_recovery(path, n_stars=60, workflow="forced", seed=1, zeropoint=24.896)
    assert sha256(path) == before
    t, s = res.table, res.summary
    assert len(t) >= 40 and np.isfinite(t["RA"]).all()
    assert res.meta["psf"]["kind"] in ("epsf", "moffat-fit")
    assert 2.0 < res.meta["psf"]["fwhm_pixel"] < 6.0  # header FWHM 3.69 px
    assert np.isfinite(res.mag50) and 15 < res.mag50 < 20
    assert s["COMPLETENESS"][0] == 1.0 and s["COMPLETENESS"][-1] == 0.0
    bright = t["SNR_INJ"] > 20
    assert np.median(t["RATIO"][bright]) == pytest.approx(1.0, abs=0.03)
    res.plot()


# -- blank apertures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sparse_frame(tmp_path_factory):
    from ezphot.datasets import FrameSpec, make_frame

    spec = FrameSpec(shape=(1024, 1024), star_density=1.0)
    return make_frame(tmp_path_factory.mktemp("sparse") / "sparse.fits", spec, seed=5)


def test_blank_apertures_agree_with_noise_model(sparse_frame):
    path, truth = sparse_frame
    t = blank_apertures(path, aperture_diameter_arcsec=[3, 5, 7, 10], n_apertures=1600, seed=1,
                        zeropoint=truth.meta["zeropoint"])
    assert len(t) == 4 and (t["N"] == 1600).all()
    assert t["SCATTER_MAD"].unit == u.ct and t["DEPTH5_BLANK"].unit == u.mag
    # The MAD scatter of 1600 blank fluxes has a ~3 % sampling error (seeds 1-4 give ratios
    # 0.91-1.05), and the noise model sums w * rms^2 over exact-overlap weights w (photutils'
    # convention), ~5-7 % above the true variance sum(w^2 rms^2) for a 6-px aperture.
    np.testing.assert_allclose(t["SCATTER_RATIO"], 1.0, atol=0.12)
    np.testing.assert_allclose(t["DEPTH5_BLANK"], t["DEPTH5_MODEL"], atol=0.13)
    # the noise grows with the aperture (~ its diameter on white noise)
    assert np.all(np.diff(t["SCATTER_MAD"]) > 0)
    assert t.meta["calibrated"] and t.meta["source_mask"] == "detections"
    # white noise: sigma ~ sqrt(area) x pixel RMS of the sky
    sky_e = truth.meta["sky"] * truth.meta["egain"]
    pix_rms = np.sqrt(sky_e + truth.meta["rdnoise"] ** 2) / truth.meta["egain"]
    expect = np.sqrt(np.pi * np.asarray(t["DIAMETER_PIX"]) ** 2 / 4) * pix_rms
    np.testing.assert_allclose(t["SCATTER_MAD"], expect, rtol=0.12)


def test_blank_apertures_given_mask_and_maps(sparse_frame):
    from ezphot.imageobjects import ScienceImage

    path, truth = sparse_frame
    img = ScienceImage(path)
    bkg = img.calculate_bkg(verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    mask = np.zeros(img.shape, bool)
    for x, y in zip(truth["X"], truth["Y"], strict=False):
        xi, yi = int(round(x)), int(round(y))
        mask[max(0, yi - 25):yi + 26, max(0, xi - 25):xi + 26] = True
    t = blank_apertures(img, aperture_diameter_arcsec=[10, 20] * u.pix, n_apertures=300,
                        source_mask=Mask(mask), target_bkg=bkg, target_bkgrms=rms, seed=2)
    assert t.meta["source_mask"] == "given" and not t.meta["calibrated"]
    # every aperture clear of the mask (centres >= r + 0.5 px from any masked pixel)
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(~mask)
    xs, ys = np.round(t.meta["x"]).astype(int), np.round(t.meta["y"]).astype(int)
    assert len(xs) == 300 and (dist[ys, xs] > 10).all()
    np.testing.assert_allclose(t["DIAMETER_PIX"], [10, 20])
    np.testing.assert_allclose(t["SCATTER_RATIO"], 1.0, atol=0.10)
    with pytest.raises(ValueError, match="source_mask"):
        blank_apertures(img, source_mask=np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="n_apertures"):
        blank_apertures(img, n_apertures=1)
    assert fits.getheader(path)["NAXIS1"] == 1024
