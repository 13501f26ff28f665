"""Formulas, index offsets and filter conditions away from the obvious spots (issue 14), each
against a reference nobody here wrote: the binary run by hand, a direct photutils, astropy or
scipy call, a numpy formula, ``glob``. Every test here is named by a mutation of
tests/_mutations.py that it catches; all frames are small (the file runs in ~20 s)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS
from photutils.aperture import (
    CircularAnnulus,
    CircularAperture,
    EllipticalAperture,
    aperture_photometry,
)

from ezphot.datasets import FrameSpec, make_frame
from ezphot.exceptions import ForeignFileError
from ezphot.imageobjects import Background, Errormap, Mask, ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.sextractor import read_ldac

from .conftest import shared

Q = {"save": False, "visualize": False, "verbose": False}
AP = AperturePhotometry()


@pytest.fixture(scope="module")
def blank(tmp_path_factory):
    """A 256x256 frame with no source brighter than 25 mag, and maps given by the test: a
    sky plane and a random positive RMS (so every reference below is a plain sum)."""
    spec = FrameSpec(shape=(256, 256), star_density=1e-9, n_galaxies_per_1000_stars=0,
                     mag_range=(25, 25.1))
    path, _ = make_frame(tmp_path_factory.mktemp("blank") / spec.file_name(), spec, seed=21)
    img = ScienceImage(path)
    gy, gx = np.mgrid[0:256, 0:256]
    rng = np.random.default_rng(5)
    bkg = Background((395 + 0.02 * gx + 0.01 * gy).astype(np.float32), target_img=img.path)
    rms = Errormap((35 + 10 * rng.random((256, 256))).astype(np.float32), target_img=img.path)
    return img, bkg, rms


# -- forced photometry: every column against photutils and the documented formulas -------------
def test_forced_columns_equal_photutils_and_formulas(blank):
    """FLUX = aperture_photometry(data - map); SKYSIG = sqrt(aperture_photometry(rms^2));
    FLUXERR, MAG, MAGERR, UL5, UL3 = the module docstring's formulas; diameters: fixed
    arcsec / pixel scale, then seeing multiples x SEEING / pixel scale; info: the arcsec
    diameters and the WCS centre of the frame."""
    img, bkg, rms = blank
    x, y, zp, g = np.array([60.3, 128.0, 190.7]), np.array([70.2, 128.0, 181.1]), 23.4, 0.7
    seeing, scale = img.seeing, img.pixelscale
    cat = AP.circular_photometry(img, x, y, aperture_diameter_arcsec=[4, 9],
                                 aperture_diameter_seeing=[1.5], target_bkg=bkg,
                                 target_bkgrms=rms, egain=g, zeropoint=zp,
                                 confusion_error=False, **Q)  # the noise model's formula alone
    t = cat.data
    diam = np.array([4 / scale, 9 / scale, 1.5 * seeing / scale])
    np.testing.assert_allclose(cat.meta["aperture_diameter_pixel"], diam, rtol=1e-12)
    np.testing.assert_allclose(cat.info.aperture_diameter_arcsec, [4, 9, 1.5 * seeing],
                               atol=1e-6)
    data = np.asarray(img.data, float) - bkg.data.astype(float)
    for k, d in enumerate(diam):
        s = "" if k == 0 else f"_{k}"
        ap = CircularAperture(np.column_stack([x, y]), r=d / 2)
        flux = np.asarray(aperture_photometry(data, ap)["aperture_sum"], float)
        skysig = np.sqrt(np.asarray(aperture_photometry(
            rms.data.astype(float) ** 2, ap)["aperture_sum"], float))
        err = np.sqrt(skysig ** 2 + np.maximum(flux, 0) / g)
        np.testing.assert_allclose(t[f"FLUX_APER{s}"], flux, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(t[f"SKYSIG_APER{s}"], skysig, rtol=1e-6)
        np.testing.assert_allclose(t[f"FLUXERR_APER{s}"], err, rtol=1e-6)
        # NPIX, MAG, MAGERR, UL5, UL3 are float32 (as SExtractor's MAG_APER): 1e-7 relative
        np.testing.assert_allclose(t[f"NPIX_APER{s}"], np.pi * d ** 2 / 4, rtol=1e-7)
        np.testing.assert_allclose(t[f"UL5_APER{s}"], zp - 2.5 * np.log10(5 * skysig), atol=5e-6)
        np.testing.assert_allclose(t[f"UL3_APER{s}"], zp - 2.5 * np.log10(3 * skysig), atol=5e-6)
        pos = flux > 0
        np.testing.assert_allclose(t[f"MAG_APER{s}"][pos], zp - 2.5 * np.log10(flux[pos]),
                                   atol=1e-6)
        np.testing.assert_allclose(t[f"MAGERR_APER{s}"][pos],
                                   2.5 / np.log(10) * err[pos] / flux[pos], rtol=1e-6)
        assert np.all(np.isnan(np.asarray(t[f"MAG_APER{s}"])[~pos]))
    # a star-like source so that the Poisson term is not zero everywhere
    assert np.any(np.asarray(t["FLUX_APER_1"]) > 0)
    centre = WCS(img.header).pixel_to_world(127.5, 127.5).icrs
    assert cat.info.ra == pytest.approx(centre.ra.deg, abs=1e-9)
    assert cat.info.dec == pytest.approx(centre.dec.deg, abs=1e-9)


def test_pixel_diameters_with_seeing_multiples(blank):
    """aperture_diameter_arcsec in u.pix: taken as they are; seeing multiples still arcsec."""
    img, bkg, rms = blank
    cat = AP.circular_photometry(img, 100.0, 100.0, aperture_diameter_arcsec=[8, 12] * u.pix,
                                 aperture_diameter_seeing=[2.0], target_bkg=bkg,
                                 target_bkgrms=rms, **Q)
    np.testing.assert_allclose(cat.meta["aperture_diameter_pixel"],
                               [8, 12, 2 * img.seeing / img.pixelscale], rtol=1e-12)
    np.testing.assert_allclose(cat.info.aperture_diameter_arcsec,
                               [8 * img.pixelscale, 12 * img.pixelscale, 2 * img.seeing],
                               atol=1e-6)


def test_annulus_error_term_is_npix2_var_over_n(blank):
    """Annulus mode: FLUXERR^2 = SKYSIG^2 + F/g + NPIX^2 sigma_ann^2 / N_ann, with N_ann and
    sigma_ann those of the annulus pixels (photutils' CircularAnnulus, 'center'), on blank
    sky where the 4-sigma clip keeps ~all of them."""
    img, _, rms = blank
    x, y = np.array([80.0, 170.0]), np.array([90.0, 160.0])
    cat = AP.circular_photometry(img, x, y, aperture_diameter_arcsec=[5],
                                 aperture_diameter_seeing=None, annulus_width_arcsec=8,
                                 target_bkgrms=rms, egain=0.5, confusion_error=False, **Q)
    t = cat.data
    r_in, r_out = cat.meta["annulus_pixel"]
    data = np.asarray(img.data, float)
    npix = np.asarray(t["NPIX_APER"], float)
    for i in range(2):
        m = CircularAnnulus((x[i], y[i]), r_in=r_in, r_out=r_out).to_mask(method="center")
        v = m.get_values(data)
        var_est = npix[i] ** 2 * np.var(v) / v.size
        got = (t["FLUXERR_APER"][i] ** 2 - t["SKYSIG_APER"][i] ** 2
               - max(t["FLUX_APER"][i], 0) / 0.5)
        assert got == pytest.approx(var_est, rel=0.1), (got, var_est)


def test_elliptical_axes_given_swapped(blank):
    """sma < smi: the major axis lies at theta + 90 deg; the flux is photutils' for the ellipse
    with the axes in order (a 4:1 ellipse on a sky gradient tells the orientation)."""
    img, bkg, rms = blank
    # a gradient the orientation shows in: the measured pixels minus a constant
    data = np.asarray(img.data, float) - 300.0
    kw = dict(target_bkg=300.0, target_bkgrms=rms, **Q)
    swapped = AP.elliptical_photometry(img, 128.0, 128.0, 3.0, 12.0, 20.0, **kw).data
    ordered = AP.elliptical_photometry(img, 128.0, 128.0, 12.0, 3.0, 110.0, **kw).data
    assert swapped["SMA_IMAGE"][0] == 12.0 and swapped["SMI_IMAGE"][0] == 3.0
    assert swapped["THETA_IMAGE"][0] == pytest.approx(110.0)
    ref = aperture_photometry(data, EllipticalAperture((128.0, 128.0), 12.0, 3.0,
                                                       theta=np.radians(110.0)))["aperture_sum"]
    assert swapped["FLUX_ELIP"][0] == pytest.approx(float(ref[0]), rel=1e-6)
    assert ordered["FLUX_ELIP"][0] == pytest.approx(float(ref[0]), rel=1e-6)
    other = aperture_photometry(data, EllipticalAperture((128.0, 128.0), 12.0, 3.0,
                                                         theta=np.radians(20.0)))["aperture_sum"]
    assert abs(float(other[0]) - float(ref[0])) > 50  # the orientation matters here


# -- masks ---------------------------------------------------------------------------------
def test_source_mask_equals_binary_by_hand(frame, tmp_path):
    """calculate_sourcemask = disks of mask_radius_factor x max(sqrt(ISOAREA/pi), FWHM) (twice
    that when FLAGS has bit 4) at the binary's positions - 1, from the binary run by hand on
    the frame with the same thresholds; painted here with numpy."""
    path, _ = frame
    img = ScienceImage(path)
    factor = 1.5
    got = img.calculate_sourcemask(sigma=5, mask_radius_factor=factor, saturation_level=50000,
                                   detection_filter="default", verbose=False).data
    params = ["X_IMAGE", "Y_IMAGE", "ISOAREA_IMAGE", "FWHM_IMAGE", "FLAGS"]
    (tmp_path / "run.param").write_text("\n".join(params) + "\n")
    config = {k: (",".join(map(str, v)) if isinstance(v, list) else v)
              for k, v in img.profile.sextractor.items()}
    config.update({
        "CATALOG_NAME": tmp_path / "hand.ldac", "CATALOG_TYPE": "FITS_LDAC",
        "PARAMETERS_NAME": tmp_path / "run.param", "DETECT_THRESH": 5, "ANALYSIS_THRESH": 5,
        "FILTER": "Y", "FILTER_NAME": shared("sep", "default.conv"),
        "STARNNW_NAME": shared("sep", "default.nnw"), "SATUR_LEVEL": 50000,
        "SATUR_KEY": "NOSUCHKEY", "GAIN": 0.0, "GAIN_KEY": "NOSUCHKEY", "PHOT_APERTURES": 5,
        "PIXEL_SCALE": repr(img.pixelscale), "CHECKIMAGE_TYPE": "NONE"})
    (tmp_path / "run.sex").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
    subprocess.run(["source-extractor", str(path), "-c", str(tmp_path / "run.sex")],
                   check=True, capture_output=True)
    (cat,) = read_ldac(tmp_path / "hand.ldac")
    t = cat.table
    sat = (np.asarray(t["FLAGS"]) & 4) != 0
    assert 3 <= sat.sum() < 20 and len(t) > 100
    r = factor * np.maximum(np.sqrt(np.asarray(t["ISOAREA_IMAGE"], float) / np.pi),
                            np.asarray(t["FWHM_IMAGE"], float).clip(0, 50))
    r = np.where(sat, 2 * r, r)
    expected = np.zeros(img.shape, bool)
    gy, gx = np.ogrid[0:img.shape[0], 0:img.shape[1]]
    for xc, yc, rc in zip(np.asarray(t["X_IMAGE"], float) - 1,
                          np.asarray(t["Y_IMAGE"], float) - 1, r, strict=False):
        y0, y1 = max(0, int(yc - rc) - 1), int(yc + rc) + 2
        x0, x1 = max(0, int(xc - rc) - 1), int(xc + rc) + 2
        expected[y0:y1, x0:x1] |= ((gx[:, x0:x1] - xc) ** 2 + (gy[y0:y1] - yc) ** 2
                                   <= rc * rc)
    assert int((got != expected).sum()) == 0


def test_paint_disks_integer_and_float_centres_equal_the_formula():
    """paint_disks (integer centres take a stencil path) = pixels whose centres are within r,
    also for disks cut by the edges and radii that are whole numbers (r^2 on a lattice point)."""
    from ezphot.masks import paint_disks

    rng = np.random.default_rng(3)
    shape = (40, 50)
    x = rng.integers(-5, 55, 60)
    y = rng.integers(-5, 45, 60)
    r = rng.choice([0.5, 1.0, 2.0, 2.5, 3.0, 5.0, 7.0], 60)
    gy, gx = np.mgrid[0:shape[0], 0:shape[1]]
    ref = np.zeros(shape, bool)
    for xc, yc, rc in zip(x, y, r, strict=False):
        ref |= (gx - xc) ** 2 + (gy - yc) ** 2 <= rc * rc
    for xs, ys in ((x, y), (x.astype(float), y.astype(float))):
        m = np.zeros(shape, bool)
        paint_disks(m, xs, ys, r)
        np.testing.assert_array_equal(m, ref)


def test_mask_union_and_errormap_checks_every_row():
    a = np.zeros((6, 7), bool)
    b = np.zeros((6, 7), bool)
    a[1, 2] = b[3, 4] = a[5, 6] = b[5, 6] = True
    np.testing.assert_array_equal((Mask(a) | Mask(b)).data, a | b)
    np.testing.assert_array_equal((Mask(a) | b.astype(np.uint8)).data, a | b)
    from ezphot.exceptions import ImageError

    for row in (0, 1010, 1023, 1024, 2047):  # a bad pixel in any block of rows is found
        for bad in (-1.0, np.nan, np.inf):
            rms = np.ones((2048, 3), np.float32)
            rms[row, 1] = bad
            with pytest.raises(ImageError, match="1 negative or non-finite"):
                Errormap(rms)
    Errormap(np.zeros((2048, 3), np.float32))  # zero is allowed here (refused in apertures)


# -- the skew correction of SExtractor's mode --------------------------------------------------
@pytest.mark.parametrize("sky_e, g, rn", [(100.0, 0.2561, 6.0), (3000.0, 1.5, 3.0),
                                         (40.0, 0.7, 12.0)])
def test_poisson_skew_correction_equals_poisson_moments(sky_e, g, rn):
    """2.5 kappa3 / (6 sigma^2) of the ADU sky, with the moments of a Poisson law (scipy) plus
    Gaussian read noise, from the total sigma."""
    from scipy import stats

    from ezphot.background import poisson_skew_correction

    mean, var, skew = stats.poisson(sky_e).stats(moments="mvs")
    var_adu = (float(var) + rn ** 2) / g ** 2
    kappa3_adu = float(skew) * float(var) ** 1.5 / g ** 3
    got = poisson_skew_correction(np.sqrt(var_adu), g, rn)
    assert float(got) == pytest.approx(2.5 * kappa3_adu / (6 * var_adu), rel=1e-5)


# -- light curves --------------------------------------------------------------------------------
def test_light_curve_time_order_and_detection_rule(tmp_path):
    """MJD = astropy's Time(DATE-OBS).mjd; rows sorted by MJD then TARGET; DETECTED is
    FLUX/FLUXERR >= detection_snr (negative fluxes are not detections)."""
    from ezphot.photometry.lightcurve import light_curve

    paths = []
    for i, date in enumerate(["2025-09-03T04:00:00", "2025-09-01T22:30:00"]):
        spec = FrameSpec(shape=(160, 160), star_density=1e-9, n_galaxies_per_1000_stars=0,
                         mag_range=(25, 25.1), obsdate=date)
        paths.append(make_frame(tmp_path / f"f{i}.fits", spec, seed=4, noise_seed=i)[0])
    w = WCS(fits.getheader(paths[0]))
    xs, ys = np.meshgrid([30.0, 60.0, 90.0, 120.0], [40.0, 80.0, 120.0])
    ra, dec = w.pixel_to_world_values(xs.ravel(), ys.ravel())
    lc = light_curve(paths, ra, dec, aperture_diameter_arcsec=[4], detection_snr=0.3,
                     target_bkg=400.0)
    assert len(lc) == 24
    mjd = {str(p): Time(fits.getheader(p)["DATE-OBS"]).mjd for p in paths}
    np.testing.assert_allclose(lc["MJD"], [mjd[p] for p in lc["IMAGE"]], rtol=0, atol=1e-9)
    keys = list(zip(np.asarray(lc["MJD"]), np.asarray(lc["TARGET"]), strict=False))
    assert keys == sorted(keys) and lc["IMAGE"][0] == str(paths[1])
    snr = np.asarray(lc["FLUX_APER"] / lc["FLUXERR_APER"], float)
    np.testing.assert_array_equal(lc["DETECTED"], snr >= 0.3)
    assert (snr < -0.3).sum() >= 2 and (snr >= 0.3).sum() >= 2  # both sides are tested


# -- blank apertures -----------------------------------------------------------------------------
def test_blank_apertures_equal_direct_statistics(blank):
    """The table's columns from photutils' fluxes at the centres it reports: mean, mean per
    pixel (pi d^2 / 4), 1.4826 MAD, 5-sigma depths; every aperture clear of the source mask."""
    from ezphot.photometry.depth import blank_apertures

    img, bkg, rms = blank
    rng = np.random.default_rng(8)
    src = np.zeros(img.shape, bool)
    gy, gx = np.mgrid[0:256, 0:256]
    for xc, yc in rng.uniform(0, 256, (40, 2)):
        src |= (gx - xc) ** 2 + (gy - yc) ** 2 <= 8 ** 2
    zp = 27.0
    t = blank_apertures(img, aperture_diameter_arcsec=[6, 11] * u.pix, n_apertures=60,
                        source_mask=src, target_bkg=bkg, target_bkgrms=rms, zeropoint=zp,
                        seed=3)
    xy = np.column_stack([t.meta["x"], t.meta["y"]])
    assert len(xy) == 60
    data = np.asarray(img.data, float) - bkg.data.astype(float)
    for row, d in zip(t, (6, 11), strict=False):
        aps = CircularAperture(xy, r=d / 2)
        flux = np.asarray(aperture_photometry(data, aps)["aperture_sum"], float)
        med = np.median(flux)
        mad = 1.4826 * np.median(np.abs(flux - med))
        assert row["N"] == 60
        assert row["MEAN_FLUX"] == pytest.approx(flux.mean(), rel=1e-5, abs=1e-3)
        assert row["MEAN_PER_PIXEL"] == pytest.approx(flux.mean() / (np.pi * d * d / 4),
                                                      rel=1e-5, abs=1e-5)
        assert row["SCATTER_MAD"] == pytest.approx(mad, rel=1e-5)
        assert row["DEPTH5_BLANK"] == pytest.approx(zp - 2.5 * np.log10(5 * mad), abs=1e-6)
        assert row["DEPTH5_MODEL"] == pytest.approx(
            zp - 2.5 * np.log10(5 * row["NOISE_MODEL"]), abs=1e-9)
        assert row["SCATTER_RATIO"] == pytest.approx(mad / row["NOISE_MODEL"], rel=1e-9)
    # no aperture touches the source mask (photutils' exact overlap, the larger diameter)
    for m in CircularAperture(xy, r=11 / 2).to_mask(method="exact"):
        assert not np.any(m.multiply(src.astype(float)) > 0)


# -- DataBrowser: hidden names and folders named like files, as glob sees them -------------------
def test_browser_matches_glob_on_hidden_and_folder_names(tmp_path):
    root = tmp_path / "scidata"
    leaf = root / "7DT/7DT_C361K_HIGH_1x1/T00528/7DT03/m600"
    leaf.mkdir(parents=True)
    for name in ("a_100.fits", ".b_100.fits", "c_60.fits"):
        (leaf / name).touch()
    (leaf / "d_100.fits").mkdir()  # a folder, not a frame
    hidden = root / "7DT/7DT_C361K_HIGH_1x1/.trash/7DT03/m600"
    hidden.mkdir(parents=True)
    (hidden / "e_100.fits").touch()
    from ezphot.utils import DataBrowser

    for pattern in ("*.fits", "*100.fits", ".*.fits"):
        ref = sorted(Path(p) for p in glob.glob(str(root / "*/*/*/*/*" / pattern))
                     if os.path.isfile(p))
        assert DataBrowser(root).search(pattern) == ref, pattern
        assert ref  # every pattern finds something
    b = DataBrowser(root)
    assert b.keys["objname"] == ["T00528"]
    b.objname = ".tr*"
    assert b.search("*.fits") == [hidden / "e_100.fits"]


# -- exports ------------------------------------------------------------------------------------
def test_write_refuses_to_overwrite_unless_asked(blank, tmp_path):
    img, bkg, rms = blank
    cat = AP.circular_photometry(img, [50.0, 60.0], [50.0, 70.0], aperture_diameter_arcsec=[5],
                                 aperture_diameter_seeing=None, target_bkg=bkg,
                                 target_bkgrms=rms, **Q)
    path = cat.write(tmp_path / "c.csv", format="csv")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        cat.write(path, format="csv")
    assert path.read_bytes() == before
    back = Table.read(path, format="ascii.csv")
    assert back.colnames == cat.data.colnames
    # a CSV file has no place for ezphot's marker: never replaced, even with overwrite=True
    with pytest.raises(ForeignFileError, match="CSV"):
        cat.write(path, format="csv", overwrite=True)
    assert path.read_bytes() == before
    ecsv = cat.write(tmp_path / "c.ecsv")
    cat.data["FLUX_APER"][0] = 123.5
    cat.write(ecsv, overwrite=True)  # an ECSV file ezphot wrote is replaced
    assert Table.read(ecsv)["FLUX_APER"][0] == 123.5


def test_parquet_keeps_units(blank, tmp_path):
    pytest.importorskip("pyarrow")
    img, bkg, rms = blank
    cat = AP.circular_photometry(img, [50.0, 60.0], [50.0, 70.0], aperture_diameter_arcsec=[5],
                                 aperture_diameter_seeing=None, target_bkg=bkg,
                                 target_bkgrms=rms, **Q)
    back = Table.read(cat.write(tmp_path / "c.parquet", format="parquet"))
    for name in cat.data.colnames:
        assert back[name].unit == cat.data[name].unit, name
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(cat.data[name]))


def test_parquet_keeps_info(blank, tmp_path):
    pytest.importorskip("pyarrow")
    img, bkg, rms = blank
    cat = AP.circular_photometry(img, 50.0, 50.0, aperture_diameter_arcsec=[5],
                                 aperture_diameter_seeing=None, target_bkg=bkg,
                                 target_bkgrms=rms, **Q)
    back = Table.read(cat.write(tmp_path / "c.parquet", format="parquet"))
    assert back.meta["ezphot_info"] == cat.info.to_dict()


# -- telescope profile from a measured gain --------------------------------------------------------
@pytest.mark.parametrize("egain, name", [(0.7798, "7DT_C361K_LOW_1x1"),
                                         (0.75, "7DT_C361K_LOW_1x1"),
                                         (0.265, "7DT_C361K_HIGH_1x1")])
def test_profile_from_a_measured_gain(egain, name):
    """A measured EGAIN within 10 % of a profile's picks that profile."""
    from ezphot.profiles import select_profile

    h = fits.Header({"TELESCOP": "7DT03", "NAXIS1": 9576, "EGAIN": egain})
    assert select_profile(h).name == name


# -- command line and the Dask path ----------------------------------------------------------------
@pytest.fixture(scope="module")
def one_frame_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_forced") / "scidata"
    path, _ = make_frame(spec=FrameSpec(shape=(160, 240), star_density=4), seed=6, root=root)
    return root, path


def test_cli_forced_position_off_in_y_only(one_frame_tree, capsys):
    """A position inside the frame's width but above its height is on no frame: exit 1 and
    nothing measured (reference: the frame's WCS, by astropy)."""
    from ezphot import cli

    root, path = one_frame_tree
    w = WCS(fits.getheader(path))
    for (px, py), code in (((100.0, 200.0), 1), ((100.0, 150.0), 0)):
        ra, dec = map(float, w.pixel_to_world_values(px, py))
        got = cli.main(["forced", str(root), f"--ra={ra!r}", f"--dec={dec!r}", "--no-resume",
                        "--workers", "1"])
        out = capsys.readouterr()
        assert got == code, out
        for p in root.rglob("*.circ.*"):
            p.unlink()


def test_dask_resume_skips_and_no_resume_remeasures(one_frame_tree, tmp_path):
    distributed = pytest.importorskip("distributed")
    from ezphot.batch import run_batch

    _, path = one_frame_tree
    f = tmp_path / path.name
    shutil.copy(path, f)
    opts = dict(progress=False, aperture_diameter_arcsec=[5], aperture_diameter_seeing=[])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        first = run_batch([f], client=client, **opts)
        cat = Path(first["catalog"][0])
        stamp = cat.stat().st_mtime_ns
        again = run_batch([f], client=client, **opts)
        assert (again["status"][0], again["reason"][0]) == ("skipped", "unchanged")
        assert cat.stat().st_mtime_ns == stamp
        redo = run_batch([f], client=client, resume=False, **opts)
    assert first["status"][0] == "done" and redo["status"][0] == "done"
    assert redo["reason"][0] == "measured again (resume=False)"
    assert cat.stat().st_mtime_ns != stamp


@pytest.mark.parametrize("arcsec, seeing", [([5, 0], None), (0, None), ([5], [0.0]),
                                            ([-3], None), ([0] * u.pix, None)])
def test_zero_or_negative_diameters_refused(blank, arcsec, seeing):
    """A zero or negative diameter is refused by name (not a photutils error, not NaN)."""
    img, bkg, rms = blank
    name = "aperture_diameter_seeing" if seeing else "aperture_diameter_arcsec"
    with pytest.raises(ValueError, match=rf"{name} must be positive and finite, got \["):
        AP.circular_photometry(img, 50.0, 50.0, aperture_diameter_arcsec=arcsec,
                               aperture_diameter_seeing=seeing, target_bkg=bkg,
                               target_bkgrms=rms, **Q)


# -- photutils detection = the same photutils pipeline called here ---------------------------------
def test_photutils_detection_equals_the_pipeline_called_directly(tmp_path):
    """photutils_photometry with a background, an RMS map and a mask = detect_sources on the
    image minus the background convolved with SExtractor's 3x3 default kernel (threshold
    detection_sigma x RMS), deblend_sources, SourceCatalog with calc_total_error and Kron
    parameters (2.5, 3.5 / 2.5): every column, and THRESHOLD = sigma x RMS at the nearest
    pixel, MAG/MAGERR = the usual formulas."""
    from astropy.convolution import convolve
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources
    from photutils.utils import calc_total_error

    spec = FrameSpec(shape=(200, 240), star_density=12)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=13)
    img = ScienceImage(path)
    rng = np.random.default_rng(2)
    gy, gx = np.mgrid[0:200, 0:240]
    back = (398 + 0.03 * gx).astype(np.float32)
    rms = (38 + 8 * rng.random((200, 240))).astype(np.float32)
    mask = np.zeros((200, 240), bool)
    mask[60:90, 100:140] = True
    g, zp, sigma = 0.6, 24.5, 2.5
    cat = AP.photutils_photometry(img, target_bkg=Background(back, target_img=img.path),
                                  target_bkgrms=Errormap(rms, target_img=img.path),
                                  target_mask=Mask(mask, target_img=img.path),
                                  detection_sigma=sigma, aperture_diameter_arcsec=[4, 8],
                                  egain=g, zeropoint=zp, **Q)
    t = cat.data
    data = np.asarray(img.data, np.float32) - back
    data[mask] = 0.0
    kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16.0
    conv = convolve(data, kernel, boundary="extend", normalize_kernel=False)
    segm = detect_sources(conv, sigma * rms, n_pixels=5, mask=mask)
    segm = deblend_sources(conv, segm, n_pixels=5, n_levels=32, contrast=0.005,
                           progress_bar=False)
    ref = SourceCatalog(data, segm, error=calc_total_error(data, rms, effective_gain=g),
                        mask=mask, wcs=img.wcs, kron_params=(2.5, 3.5 / 2.5, 0.0))
    assert len(t) == len(ref) > 20
    x, y = np.asarray(t["X_IMAGE"], float), np.asarray(t["Y_IMAGE"], float)
    np.testing.assert_allclose(x, ref.x_centroid, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, ref.y_centroid, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t["FLUX_AUTO"], ref.kron_flux, rtol=1e-6)
    np.testing.assert_allclose(t["FLUXERR_AUTO"], ref.kron_flux_err, rtol=1e-6)
    scale = img.pixelscale
    for k, d in enumerate((4 / scale, 8 / scale)):
        s = "" if k == 0 else f"_{k}"
        flux, err = ref.circular_photometry(d / 2)
        np.testing.assert_allclose(t[f"FLUX_APER{s}"], flux, rtol=1e-6)
        np.testing.assert_allclose(t[f"FLUXERR_APER{s}"], err, rtol=1e-6)
        pos = np.asarray(flux) > 0
        np.testing.assert_allclose(t[f"MAG_APER{s}"][pos], zp - 2.5 * np.log10(flux[pos]),
                                   atol=1e-6)
        np.testing.assert_allclose(t[f"MAGERR_APER{s}"][pos],
                                   2.5 / np.log(10) * err[pos] / flux[pos], rtol=1e-6)
    f, e = np.asarray(t["FLUX_AUTO"], float), np.asarray(t["FLUXERR_AUTO"], float)
    pos = f > 0
    np.testing.assert_allclose(t["MAGERR_AUTO"][pos], 2.5 / np.log(10) * e[pos] / f[pos],
                               rtol=1e-6)
    np.testing.assert_allclose(t["THRESHOLD"],
                               sigma * rms[np.round(y).astype(int), np.round(x).astype(int)],
                               rtol=1e-6)
    assert t["SKYSIG"][0] == pytest.approx(float(np.median(rms)))
    sky = img.wcs.pixel_to_world(x, y).icrs
    np.testing.assert_allclose(t["X_WORLD"], sky.ra.deg, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t["Y_WORLD"], sky.dec.deg, rtol=0, atol=1e-9)


# -- a WCS with oblong pixels: 0.5" along x, 0.25" along y ----------------------------------
@pytest.fixture(scope="module")
def oblong(tmp_path_factory):
    spec = FrameSpec(shape=(160, 120), star_density=1e-9, n_galaxies_per_1000_stars=0,
                     mag_range=(25, 25.1))
    path, _ = make_frame(tmp_path_factory.mktemp("oblong") / spec.file_name(), spec, seed=1)
    with fits.open(path, mode="update") as hdul:
        h = hdul[0].header
        for k in [k for k in h if k.startswith(("CD", "PC", "CDELT", "CROTA", "A_", "B_",
                                                    "AP_", "BP_", "PV"))]:
            del h[k]
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -0.5 / 3600, 0.0, 0.0, 0.25 / 3600
    return ScienceImage(path)


@pytest.mark.parametrize("pa, a, b, want", [(0.0, 4.0, 2.0, (16.0, 4.0, 90.0)),
                                            (90.0, 4.0, 1.0, (8.0, 4.0, 0.0)),
                                            (30.0, 3.0, 3.0, None)])
def test_sky_ellipse_on_oblong_pixels(oblong, pa, a, b, want):
    """Axes in arcsec and PA east of north -> pixels: north is +y (0.25"/px), east is -x
    (0.5"/px) on this WCS (by hand from its CD matrix); theta mod 180 from +x."""
    img = oblong
    t = AP.elliptical_photometry(img, *img.wcs.pixel_to_world_values(60.0, 80.0), a, b, pa,
                                 unit="coord", target_bkg=400.0, **Q).data
    if want is None:  # PA 30: the a axis points to (-sin30 * 2, cos30 * 4) px per arcsec
        vx, vy = -np.sin(np.radians(30)) * 2, np.cos(np.radians(30)) * 4
        wx, wy = -np.sin(np.radians(120)) * 2, np.cos(np.radians(120)) * 4
        want = (a * np.hypot(vx, vy), b * np.hypot(wx, wy), np.degrees(np.arctan2(vy, vx)))
        if want[1] > want[0]:
            want = (want[1], want[0], want[2] + 90)
    assert t["SMA_IMAGE"][0] == pytest.approx(want[0], rel=1e-4)
    assert t["SMI_IMAGE"][0] == pytest.approx(want[1], rel=1e-4)
    assert (t["THETA_IMAGE"][0] - want[2] + 90) % 180 - 90 == pytest.approx(0, abs=0.01)


def test_circular_sky_mask_on_oblong_pixels(oblong):
    """unit='coord': the pixels whose centres lie within the radius on the sky (astropy's
    separation over every pixel of the frame), however oblong the pixels."""
    img = oblong
    ra, dec = img.wcs.pixel_to_world_values(60.0, 80.0)
    r = 12.0  # 24 px along x, 48 px along y
    m = img.calculate_circularmask(x_position=float(ra), y_position=float(dec),
                                   radius_arcsec=r, unit="coord", verbose=False).data
    gy, gx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    sep = img.wcs.pixel_to_world(gx.ravel(), gy.ravel()).separation(
        img.wcs.pixel_to_world(60.0, 80.0)).arcsec.reshape(gx.shape)
    np.testing.assert_array_equal(m, sep <= r)
    assert m[80, 60 - 23] and m[80 - 47, 60] and not m[80, 60 - 25]
