"""Forced photometry (circular, elliptical), photutils detection photometry, light curves."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from ezphot.datasets import FrameSpec, make_frame, make_scene, moffat_enclosed_fraction, true_sky
from ezphot.exceptions import ImageError, MissingWCSError
from ezphot.imageobjects import Background, Errormap, ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.photometry.forced import (
    FLAG_MASKED,
    FLAG_NONFINITE,
    FLAG_OFF,
    FLAG_PARTIAL,
    photometry_columns,
)
from ezphot.sextractor import read_ldac

from .conftest import shared

Q = dict(save=False, visualize=False, verbose=False)
AP = AperturePhotometry()


def test_tutorial_row_formulas():
    """The tutorial's circular row: FLUX 33697.23, SKYSIG 344.19, EGAIN 0.2561."""
    t = Table()
    photometry_columns(t, "", np.array([33697.23024050704]),
                        np.array([344.1948525899388 ** 2]), np.zeros(1),
                        np.array([np.pi * (5 / 0.5064 / 2) ** 2]), 0.2561, 0.0, "APER")
    assert t["NPIX_APER"][0] == pytest.approx(76.5667, abs=1e-3)
    assert t["FLUXERR_APER"][0] == pytest.approx(500.00, abs=0.05)
    # MAG, MAGERR, UL5, UL3 and NPIX are float32 (as SExtractor writes MAG_APER): 1e-6 mag
    assert t["MAG_APER"].dtype == np.float32 and t["FLUX_APER"].dtype == np.float64
    assert t["MAG_APER"][0] == pytest.approx(-11.318985513254107, abs=2e-6)
    assert t["MAGERR_APER"][0] == pytest.approx(0.016110, abs=2e-5)
    assert t["UL5_APER"][0] == pytest.approx(-8.089435938830947, abs=2e-6)
    assert t["UL3_APER"][0] == pytest.approx(-7.534814064790057, abs=2e-6)


def test_npix_for_tutorial_pixel_scale(tmp_path):
    spec = FrameSpec(shape=(256, 256), pixel_scale=0.5064, star_density=0.1)
    path, _ = make_frame(tmp_path / spec.file_name(), spec)
    cat = AP.circular_photometry(path, 100, 100, aperture_diameter_arcsec=[5],
                                 aperture_diameter_seeing=None, **Q)
    assert cat.data["NPIX_APER"][0] == pytest.approx(76.5667, abs=1e-3)


@pytest.fixture(scope="module")
def sep_ldac():
    (cat,) = read_ldac(shared("sep", "generated-by-debian-2.25", "image_ldac_fullprecision.fits"))
    return cat.table


def test_circular_reproduces_sextractor_flux_aper(sep_ldac):
    t = sep_ldac
    img = ScienceImage(shared("sep", "image.fits"))
    bkg = Background(shared("sep", "back.fits"), target_img=img.path)
    cat = AP.circular_photometry(img, np.asarray(t["X_IMAGE"], float) - 1,
                                 np.asarray(t["Y_IMAGE"], float) - 1,
                                 aperture_diameter_arcsec=10 * u.pix,
                                 aperture_diameter_seeing=None, target_bkg=bkg,
                                 target_bkgrms=Errormap(shared("sep", "rms.fits")),
                                 method="subpixel", subpixels=5, **Q)
    ok = cat.data["FLAGS"] == 0
    assert ok.sum() >= 55
    np.testing.assert_allclose(cat.data["FLUX_APER"][ok], t["FLUX_APER"][ok], rtol=1e-6)
    assert cat.data.meta["aperture_method"] == "subpixel" and cat.data.meta["subpixels"] == 5


def test_elliptical_reproduces_sextractor_flux_auto(sep_ldac):
    t = sep_ldac
    img = ScienceImage(shared("sep", "image.fits"))
    bkg = Background(shared("sep", "back.fits"), target_img=img.path)
    t = t[t["KRON_RADIUS"] > 0]  # SExtractor measured no AUTO flux for these
    k = np.asarray(t["KRON_RADIUS"], float)
    cat = AP.elliptical_photometry(img, np.asarray(t["X_IMAGE"], float) - 1,
                                   np.asarray(t["Y_IMAGE"], float) - 1,
                                   k * np.asarray(t["A_IMAGE"], float),
                                   k * np.asarray(t["B_IMAGE"], float),
                                   np.asarray(t["THETA_IMAGE"], float), unit="pixel",
                                   target_bkg=bkg, method="center", **Q)
    ok = cat.data["FLAGS"] == 0
    assert ok.sum() >= 50
    np.testing.assert_allclose(cat.data["FLUX_ELIP"][ok], t["FLUX_AUTO"][ok], rtol=1e-6)


@pytest.fixture(scope="module")
def scene_frames(tmp_path_factory):
    """One scene, 20 noise realisations (512x512), with its sky model and noise map."""
    d = tmp_path_factory.mktemp("real")
    spec = FrameSpec(shape=(512, 512), star_density=4.0, mag_range=(12.0, 19.0),
                     n_galaxies_per_1000_stars=0)
    scene = make_scene(spec, seed=3)
    paths = [make_frame(d / f"r{i:02d}.fits", spec, seed=3, noise_seed=100 + i, scene=scene)[0]
             for i in range(20)]
    return spec, scene, paths


def test_forced_fluxes_match_truth(scene_frames):
    spec, scene, paths = scene_frames
    img = ScienceImage(paths[0])
    stars = scene[(scene["TYPE"] == "star") & (scene["FLUX"] > 5e4) & (scene["FLUX"] < 1e6)]
    x, y = np.asarray(scene["X"]), np.asarray(scene["Y"])
    keep = []
    for s in stars:
        d = np.hypot(x - s["X"], y - s["Y"])
        if 30 < s["X"] < 482 and 30 < s["Y"] < 482 and np.sum((d < 20) & (scene["FLUX"] >
                                                                           0.01 * s["FLUX"])) == 1:
            keep.append(s)
    keep = Table(rows=keep, names=scene.colnames)
    assert len(keep) >= 5
    cat = AP.circular_photometry(img, keep["X"], keep["Y"], aperture_diameter_arcsec=None,
                                 aperture_diameter_seeing=[3], **Q)
    frac = moffat_enclosed_fraction(1.5 * spec.fwhm_pixel, spec.fwhm_pixel, spec.moffat_beta)
    ratio = np.asarray(cat.data["FLUX_APER"]) / (np.asarray(keep["FLUX"]) * frac)
    assert abs(np.median(ratio) - 1) < 0.01


def test_pulls_have_unit_width(scene_frames):
    """Over 20 noise realisations, (flux - truth)/FLUXERR has a standard deviation of 1."""
    spec, scene, paths = scene_frames
    header = fits.getheader(paths[0])
    sky = Background(true_sky(header, spec.shape))
    stars = scene[(scene["TYPE"] == "star") & (scene["X"] > 20) & (scene["X"] < 492)
                  & (scene["Y"] > 20) & (scene["Y"] < 492) & (scene["FLUX"] < 5e5)]
    x, y = np.asarray(scene["X"]), np.asarray(scene["Y"])
    r = 2 * spec.fwhm_pixel
    iso = [i for i, s in enumerate(stars)
           if np.sum((np.hypot(x - s["X"], y - s["Y"]) < r + 25)
                     & (scene["FLUX"] > 1e-3 * s["FLUX"])) == 1]
    stars = stars[iso]
    assert len(stars) >= 10
    frac = moffat_enclosed_fraction(r, spec.fwhm_pixel, spec.moffat_beta)
    pulls = []
    for p in paths:
        img = ScienceImage(p)
        sky.target_img = img.path
        rms = img.calculate_bkgrms_from_propagation(sky, verbose=False)
        cat = AP.circular_photometry(img, stars["X"], stars["Y"],
                                     aperture_diameter_arcsec=2 * r * u.pix,
                                     aperture_diameter_seeing=None, target_bkg=sky,
                                     target_bkgrms=rms, **Q).data
        pulls.append((cat["FLUX_APER"] - stars["FLUX"] * frac) / cat["FLUXERR_APER"])
    pulls = np.concatenate(pulls)
    assert len(pulls) >= 200
    assert 0.9 <= np.std(pulls) <= 1.1
    assert abs(np.mean(pulls)) < 0.2


def test_coord_units_on_rotated_wcs(tmp_path):
    """PA east of north (unit='coord') equals the pixel-unit call with theta = 90 + PA - rot."""
    rot, pa = 30.0, 56.6
    spec = FrameSpec(shape=(400, 400), rotation_deg=rot, star_density=30)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=4)
    img = ScienceImage(path)
    centre = img.wcs.pixel_to_world(200.0, 200.0)
    coord = AP.elliptical_photometry(img, centre.ra.deg, centre.dec.deg, 5.85, 2.909, pa,
                                     unit="coord", **Q).data
    pixel = AP.elliptical_photometry(img, 200.0, 200.0, 5.85 / 0.505, 2.909 / 0.505,
                                     90 + pa - rot, unit="pixel", **Q).data
    assert coord["THETA_IMAGE"][0] % 180 == pytest.approx((90 + pa - rot) % 180, abs=1e-3)
    assert coord["SMA_IMAGE"][0] == pytest.approx(5.85 / 0.505, rel=1e-4)
    assert coord["FLUX_ELIP"][0] == pytest.approx(pixel["FLUX_ELIP"][0], rel=1e-5)


def test_tutorial_elliptical_call_keeps_metadata(frame):
    """Cell 17 of the tutorial (the predecessor crashed here)."""
    img = ScienceImage(frame[0])
    bkg = img.calculate_bkg(verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    c = img.center
    cat = AP.elliptical_photometry(target_img=img, x_arr=c.ra.deg, y_arr=c.dec.deg, sma_arr=5.85,
                                   smi_arr=2.909, theta_arr=56.6, unit="coord", target_bkg=bkg,
                                   target_mask=None, target_bkgrms=rms, save=False,
                                   verbose=False, visualize=True, save_fig=False)
    assert cat.data.colnames == ["X_IMAGE", "Y_IMAGE", "X_WORLD", "Y_WORLD", "SMA_IMAGE",
                                 "SMI_IMAGE", "THETA_IMAGE", "NPIX_ELIP", "FLUX_ELIP",
                                 "MAG_ELIP", "FLUXERR_ELIP", "MAGERR_ELIP", "SKYSIG_ELIP",
                                 "UL5_ELIP", "UL3_ELIP", "FLAGS"]
    assert cat.info.objname == "T00528" and cat.info.filter == "m600"
    assert cat.info.catalog_type == "elliptical" and cat.figure is not None


def test_flags_and_nan_never_exceptions(frame, tmp_path):
    data = fits.getdata(frame[0]).astype(np.float32)
    data[500, 700] = np.nan
    p = tmp_path / "nan.fits"
    fits.writeto(p, data, fits.getheader(frame[0]))
    img = ScienceImage(p)
    mask = np.zeros(img.shape, bool)
    mask[300, 300] = True
    cat = AP.circular_photometry(img, [5000, 1.0, 700, 300, 900], [5000, 500, 500, 300, 400],
                                 aperture_diameter_arcsec=[5], aperture_diameter_seeing=None,
                                 target_mask=mask, **Q).data
    assert list(cat["FLAGS"]) == [FLAG_OFF, FLAG_PARTIAL, FLAG_NONFINITE, FLAG_MASKED, 0]
    assert np.isnan(cat["FLUX_APER"][:4]).all() and np.isfinite(cat["FLUX_APER"][4])


def test_bad_arguments(frame):
    img = ScienceImage(frame[0])
    with pytest.raises(ValueError, match="different lengths"):
        AP.circular_photometry(img, [1, 2, 3], [1, 2], **Q)
    with pytest.raises(ValueError, match="must be positive"):
        AP.circular_photometry(img, 10, 10, aperture_diameter_arcsec=[-1], **Q)
    with pytest.raises(ValueError, match="semi-axes must be positive"):
        AP.elliptical_photometry(img, 10, 10, 0, 1, 0, **Q)
    with pytest.raises(MissingWCSError):
        AP.circular_photometry(shared("sep", "image.fits"), 10.0, 10.0, unit="coord",
                               aperture_diameter_arcsec=5 * u.pix, aperture_diameter_seeing=None,
                               **Q)
    with pytest.raises(ImageError, match="needs the seeing"):
        AP.circular_photometry(shared("ccdproc", "sip-wcs.fit"), 10, 10,
                               aperture_diameter_seeing=[2], **Q)


def test_one_position_uses_cutouts_only(frame):
    """Only the pixels around the position are read (the frame is memory-mapped)."""
    img = ScienceImage(frame[0])
    bkg = img.calculate_bkg(verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    cat = AP.circular_photometry(img, 700, 500, target_bkg=bkg, target_bkgrms=rms, **Q)
    # the fluxes equal photutils' aperture_photometry on the image minus the map, per aperture
    from photutils.aperture import CircularAperture, aperture_photometry

    data = np.asarray(img.data, float) - np.asarray(bkg.data, float)
    diam = cat.meta["aperture_diameter_pixel"]
    names = ["FLUX_APER"] + [f"FLUX_APER_{i}" for i in range(1, len(diam))]
    assert len(diam) >= 3
    for d, name in zip(diam, names, strict=False):
        ref = aperture_photometry(data, CircularAperture((700, 500), r=d / 2))["aperture_sum"][0]
        assert cat.data[name][0] == pytest.approx(ref, rel=1e-6, abs=1e-3), name


def test_photutils_agrees_with_sextractor(dense_frame):
    path, _ = dense_frame
    # the shipped 3x3 filter: segments comparable with photutils' detection (with the
    # seeing-matched Gaussian, SExtractor's Kron apertures grow and FLUX_AUTO by ~3 %)
    sex = AP.sex_photometry(path, detection_sigma=1.5, aperture_diameter_arcsec=[5],
                            aperture_diameter_seeing=None, detection_filter="default", **Q).data
    phot = AP.photutils_photometry(path, detection_sigma=1.5, aperture_diameter_arcsec=[5],
                                   **Q).data
    strong = sex[(sex["FLUX_AUTO"] / sex["FLUXERR_AUTO"] > 10) & (sex["FLAGS"] == 0)]
    assert len(strong) > 100
    matched, ratios = 0, []
    for s in strong:
        d = np.hypot(phot["X_IMAGE"] - s["X_IMAGE"], phot["Y_IMAGE"] - s["Y_IMAGE"])
        j = int(np.argmin(d))
        if d[j] < 1:
            matched += 1
            ratios.append(phot["FLUX_AUTO"][j] / s["FLUX_AUTO"])
    assert matched / len(strong) >= 0.9
    assert abs(np.median(ratios) - 1) < 0.02


def test_light_curve(tmp_path):
    from ezphot.photometry.lightcurve import light_curve, plot_light_curve
    from ezphot.utils.imageset import load_images

    spec = FrameSpec(shape=(300, 300), star_density=5)
    scene = make_scene(spec, seed=9)
    scene.add_row({**{c: scene[c][0] for c in scene.colnames}, "ID": 99999, "TYPE": "star",
                   "X": 150.2, "Y": 149.7})
    truth_mags = [16.0, 16.5, 17.0, 17.5, 16.2, 23.5, 24.0]  # last two: below the limit
    paths = []
    for i, m in enumerate(truth_mags):
        scene["MAG"][-1] = m
        scene["FLUX"][-1] = 10 ** (-0.4 * (m - spec.zeropoint))
        s = FrameSpec(**{**spec.__dict__, "obsdate": f"2025-09-0{i + 1}T03:00:00"})
        paths.append(make_frame(tmp_path / s.file_name(), s, seed=9, noise_seed=i,
                                scene=scene)[0])
    images = load_images(paths)
    for img in images:  # the tutorial's preparation, saved beside each frame (cell 11)
        srcmask = img.calculate_sourcemask(sigma=3, verbose=False)
        bkg = img.calculate_bkg(srcmask, box_size=64, verbose=False, save=True)
        img.calculate_bkgrms_from_propagation(bkg, verbose=False, save=True)
    ra, dec = images[0].wcs.pixel_to_world_values(150.2, 149.7)
    diam = 4 * spec.seeing
    lc = light_curve(images, float(ra), float(dec), aperture_diameter_arcsec=[diam],
                     zeropoint="EZZP", use_saved_maps=True)
    assert len(lc) == 7 and list(lc["MJD"]) == sorted(lc["MJD"])
    frac = moffat_enclosed_fraction(diam / 2 / 0.505, spec.fwhm_pixel, spec.moffat_beta)
    expected = np.array(truth_mags) - 2.5 * np.log10(frac)
    det = np.asarray(lc["DETECTED"])
    assert list(det) == [True] * 5 + [False] * 2
    pull = (lc["MAG_APER"][det] - expected[det]) / lc["MAGERR_APER"][det]
    assert np.all(np.abs(pull) < 3)
    assert np.all(lc["UL5_APER"][~det] < expected[~det])  # limits brighter than the truth
    fig = plot_light_curve(lc)
    ax = fig.axes[0]
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 2  # one per non-detection, pointing to fainter magnitudes
    assert all(a.xy[1] > a.xyann[1] for a in arrows)
    assert ax.yaxis_inverted()


def test_skycoord_positions_and_annulus(frame):
    """SkyCoord positions equal RA/Dec numbers; an annulus sky agrees with a map's."""
    from astropy.coordinates import SkyCoord

    path, truth = frame
    img = ScienceImage(path)
    stars = truth[(truth["TYPE"] == "star") & ~truth["SATURATED"] & (truth["FLUX"] > 2e4)
                  & (truth["X"] > 50) & (truth["X"] < 1480) & (truth["Y"] > 50)
                  & (truth["Y"] < 970)][:10]
    sky = SkyCoord(stars["RA"], stars["DEC"], unit="deg")
    kw = dict(aperture_diameter_arcsec=[6], aperture_diameter_seeing=None, **Q)
    by_sky = AP.circular_photometry(img, sky, None, **kw).data
    by_num = AP.circular_photometry(img, stars["RA"], stars["DEC"], unit="coord", **kw).data
    np.testing.assert_allclose(by_sky["FLUX_APER"], by_num["FLUX_APER"], rtol=1e-10)
    model = Background(true_sky(img.header, img.shape), target_img=img.path)
    with_map = AP.circular_photometry(img, sky, None, target_bkg=model, **kw).data
    annulus = AP.circular_photometry(img, sky, None, annulus_width_arcsec=8, **kw)
    assert annulus.meta["background"] == "annulus"
    t = annulus.data
    diff = (t["FLUX_APER"] - with_map["FLUX_APER"]) / t["FLUXERR_APER"]
    assert np.median(np.abs(diff)) < 1.0
    # the sky-estimate term makes annulus errors larger than map errors (typically)
    assert np.median(t["FLUXERR_APER"] / with_map["FLUXERR_APER"]) > 1.0


def test_run_photometry_dispatch(frame):
    cat = AP.run_photometry(frame[0], method="photutils", detection_sigma=3,
                            aperture_diameter_arcsec=[5], **Q)
    assert cat.meta["method"] == "photutils" and len(cat.data) > 20
    with pytest.raises(ValueError, match="method must be"):
        AP.run_photometry(frame[0], method="psf")


def test_estimated_sky_gives_unbiased_blank_fluxes(tmp_path):
    """Without maps, forced fluxes on blank sky average to zero (no mode skew bias)."""
    spec = FrameSpec(shape=(1024, 1024), star_density=1e-9, n_galaxies_per_1000_stars=0,
                     mag_range=(25, 25.1))
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=4)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(20, 1004, 400), rng.uniform(20, 1004, 400)
    t = AP.circular_photometry(path, x, y, aperture_diameter_arcsec=[5],
                               aperture_diameter_seeing=None, **Q).data
    pull = t["FLUX_APER"] / t["FLUXERR_APER"]
    assert abs(np.mean(pull)) < 3 / np.sqrt(len(pull)) + 0.05  # uncorrected: about +0.2
    assert 0.85 < np.std(pull) < 1.15
