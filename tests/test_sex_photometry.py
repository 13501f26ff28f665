"""`sex_photometry` against the binary run by hand, the column contract and the truth."""

from __future__ import annotations

import copy
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from ezphot.datasets import moffat_enclosed_fraction
from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.sextractor import read_ldac

from .conftest import sha256, shared

TUTORIAL_COLUMNS = [
    "NUMBER", "FLUX_AUTO", "FLUXERR_AUTO", "FLUX_APER", "FLUX_APER_1", "FLUX_APER_2",
    "FLUX_APER_3", "FLUX_APER_4", "FLUXERR_APER", "FLUXERR_APER_1", "FLUXERR_APER_2",
    "FLUXERR_APER_3", "FLUXERR_APER_4", "MAG_AUTO", "MAGERR_AUTO", "MAG_APER", "MAG_APER_1",
    "MAG_APER_2", "MAG_APER_3", "MAG_APER_4", "MAGERR_APER", "MAGERR_APER_1", "MAGERR_APER_2",
    "MAGERR_APER_3", "MAGERR_APER_4", "FWHM_IMAGE", "FWHM_WORLD", "X_IMAGE", "Y_IMAGE",
    "XWIN_IMAGE", "YWIN_IMAGE", "X_WORLD", "Y_WORLD", "ALPHA_J2000", "DELTA_J2000", "FLAGS",
    "CLASS_STAR", "THRESHOLD", "A_IMAGE", "B_IMAGE", "ELONGATION", "ELLIPTICITY", "KRON_RADIUS",
    "FLUX_RADIUS", "THETA_IMAGE", "THETA_WORLD", "THETA_SKY", "THETA_J2000", "BACKGROUND",
    "FLUX_MAX", "ISOAREA_IMAGE", "SKYSIG", "SKYVAL", "DETECT_THRESH", "NPIX_AUTO", "NPIX_APER",
    "PIXSIZE_APER", "NPIX_APER_1", "PIXSIZE_APER_1", "NPIX_APER_2", "PIXSIZE_APER_2",
    "NPIX_APER_3", "PIXSIZE_APER_3", "NPIX_APER_4", "PIXSIZE_APER_4",
]


@pytest.fixture(scope="module")
def tutorial_call(frame):
    path, _ = frame
    sex_params = {"DEBLEND_MINCONT": 0.005, "BACK_SIZE": 64}
    frozen = copy.deepcopy(sex_params)
    before = sha256(path)
    catalog = AperturePhotometry().sex_photometry(
        ScienceImage(path), target_bkg=None, target_bkgrms=None, target_mask=None,
        sex_params=sex_params, detection_sigma=3, aperture_diameter_arcsec=[5, 7, 10],
        aperture_diameter_seeing=[2.5, 3.5], saturation_level=60000, kron_factor=2.5,
        save=False, verbose=False, visualize=False, save_fig=False,
        detection_filter="default")  # the binary by hand runs the shipped 3x3 default.conv
    assert sex_params == frozen, "the caller's sex_params was modified"
    assert sha256(path) == before, "the input image was modified"
    return catalog


@pytest.fixture(scope="module")
def by_hand(frame, tmp_path_factory):
    """The binary run by hand with the contract's 7DT settings, FITS_LDAC output."""
    path, _ = frame
    d = tmp_path_factory.mktemp("byhand")
    header = fits.getheader(path)
    scale = float(np.sqrt(np.prod(proj_plane_pixel_scales(WCS(header)) * 3600)))
    seeing = header["SEEING"]
    diameters = [d_ / scale for d_ in (5, 7, 10, 2.5 * seeing, 3.5 * seeing)]
    params = [p for p in TUTORIAL_COLUMNS[:51] if p[-2:] not in ("_1", "_2", "_3", "_4")]
    params = [f"{p}(5)" if p.endswith("_APER") else p for p in params]
    (d / "run.param").write_text("\n".join(params) + "\n")
    config = {
        "CATALOG_NAME": d / "hand.ldac", "CATALOG_TYPE": "FITS_LDAC",
        "PARAMETERS_NAME": d / "run.param", "DETECT_MINAREA": 6, "DETECT_THRESH": 3,
        "ANALYSIS_THRESH": 3, "FILTER": "Y", "FILTER_NAME": shared("sep", "default.conv"),
        "DEBLEND_NTHRESH": 32, "DEBLEND_MINCONT": 0.005, "BACK_SIZE": 64, "BACK_FILTERSIZE": 3,
        "BACKPHOTO_TYPE": "GLOBAL", "SATUR_LEVEL": 60000, "SATUR_KEY": "NOSUCHKEY",
        "GAIN": 0.2561, "GAIN_KEY": "NOSUCHKEY", "PIXEL_SCALE": repr(scale),
        "SEEING_FWHM": seeing, "PHOT_AUTOPARAMS": "2.5,3.5", "MAG_ZEROPOINT": 0,
        "PHOT_APERTURES": ",".join(repr(x) for x in diameters),
        "STARNNW_NAME": shared("sep", "default.nnw"), "VERBOSE_TYPE": "QUIET",
        "MEMORY_OBJSTACK": 30000, "MEMORY_PIXSTACK": 3000000,
    }
    (d / "run.sex").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
    subprocess.run(["source-extractor", str(path), "-c", str(d / "run.sex")], check=True,
                   capture_output=True)
    (cat,) = read_ldac(d / "hand.ldac")
    return cat


def test_columns_in_contract_order(tutorial_call):
    assert tutorial_call.data.colnames == TUTORIAL_COLUMNS


def test_equals_binary_run_by_hand(tutorial_call, by_hand):
    ours, ref = tutorial_call.data, by_hand.table
    assert len(ours) == len(ref) > 100
    for name in ref.colnames:
        expected = np.asarray(ref[name], dtype=float)
        if name in ("X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE"):
            expected = expected - 1.0  # 0-based
        np.testing.assert_array_equal(np.asarray(ours[name], dtype=float), expected,
                                      err_msg=name)
        assert ours[name].unit == ref[name].unit, name
    np.testing.assert_array_equal(ours["SKYVAL"], by_hand.background)
    np.testing.assert_array_equal(ours["SKYSIG"], by_hand.background_rms)


def test_contract_formulas(tutorial_call):
    t = tutorial_call.data
    pixsize = [t[c][0] for c in ("PIXSIZE_APER", "PIXSIZE_APER_1", "PIXSIZE_APER_2",
                                 "PIXSIZE_APER_3", "PIXSIZE_APER_4")]
    scale = ScienceImage(tutorial_call.info.target_img).pixelscale
    seeing = tutorial_call.info.seeing
    np.testing.assert_allclose(pixsize, np.array([5, 7, 10, 2.5 * seeing, 3.5 * seeing]) / scale)
    for i, suffix in enumerate(["", "_1", "_2", "_3", "_4"]):
        np.testing.assert_allclose(t[f"NPIX_APER{suffix}"], np.pi * (pixsize[i] / 2) ** 2)
        pos = t[f"FLUX_APER{suffix}"] > 0
        np.testing.assert_allclose(t[f"MAG_APER{suffix}"][pos],
                                   -2.5 * np.log10(t[f"FLUX_APER{suffix}"][pos]), atol=2e-4)
    np.testing.assert_allclose(t["NPIX_AUTO"], np.pi * t["KRON_RADIUS"] ** 2 * t["A_IMAGE"]
                               * t["B_IMAGE"], rtol=1e-6)
    assert np.all(t["DETECT_THRESH"] == 3.0)
    for name in ("SKYSIG", "SKYVAL", "DETECT_THRESH", "NPIX_AUTO"):
        assert t[name].dtype.kind == "f", name
    assert tutorial_call.info.aperture_diameter_arcsec == pytest.approx(
        [5, 7, 10, 2.5 * seeing, 3.5 * seeing])
    assert t.meta["pixel_origin"] == 0
    assert set(t.meta["zero_based_columns"]) == {"X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE"}


def test_zero_based_positions_match_truth(tutorial_call, frame):
    """0-based X_IMAGE of bright stars coincides with the generator's 0-based truth."""
    _, truth = frame
    t = tutorial_call.data
    stars = truth[(truth["TYPE"] == "star") & ~truth["SATURATED"] & (truth["FLUX"] > 2e4)]
    dx = []
    for s in stars:
        d = np.hypot(t["XWIN_IMAGE"] - s["X"], t["YWIN_IMAGE"] - s["Y"])
        if d.min() < 2:
            j = int(np.argmin(d))
            dx.append((t["XWIN_IMAGE"][j] - s["X"], t["YWIN_IMAGE"][j] - s["Y"]))
    dx = np.array(dx)
    assert len(dx) > 10
    assert abs(np.median(dx[:, 0])) < 0.05 and abs(np.median(dx[:, 1])) < 0.05


def test_single_aperture(frame):
    catalog = AperturePhotometry().sex_photometry(
        frame[0], aperture_diameter_arcsec=5, aperture_diameter_seeing=None, save=False,
        visualize=False, verbose=False)
    cols = catalog.data.colnames
    assert [c for c in cols if "APER" in c] == [
        "FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER", "NPIX_APER", "PIXSIZE_APER"]
    assert catalog.data["FLUX_APER"].ndim == 1
    assert catalog.info.aperture_diameter_arcsec == [5.0]


def test_header_does_not_override_arguments(frame, tutorial_call):
    """The frame's header says SATURATE=65535 and GAIN=2750 (a camera setting)."""
    path, truth = frame
    header = fits.getheader(path)
    assert header["SATURATE"] == 65535 and header["GAIN"] == 2750
    cfg = tutorial_call.meta["sextractor_config"]
    assert float(cfg["SATUR_LEVEL"]) == 60000 and float(cfg["GAIN"]) == 0.2561
    # the pixels clip at 60000: SExtractor flags those stars saturated (FLAGS bit 4) only if
    # it used 60000 and not the header's 65535
    t = tutorial_call.data
    sat = truth[truth["SATURATED"] & (truth["X"] > 5) & (truth["X"] < 1530)
                & (truth["Y"] > 5) & (truth["Y"] < 1018)]
    assert len(sat) >= 1
    for s in sat:
        j = int(np.argmin(np.hypot(t["X_IMAGE"] - s["X"], t["Y_IMAGE"] - s["Y"])))
        assert t["FLAGS"][j] & 4, f"saturated star at ({s['X']:.0f},{s['Y']:.0f}) not flagged"


def test_world_coordinates_agree_with_astropy(tutorial_call, frame):
    t = tutorial_call.data
    w = WCS(fits.getheader(frame[0]))
    ra, dec = w.all_pix2world(np.asarray(t["X_IMAGE"], float), np.asarray(t["Y_IMAGE"], float), 0)
    np.testing.assert_allclose(t["X_WORLD"], ra, atol=0.01 / 3600)
    np.testing.assert_allclose(t["DELTA_J2000"], dec, atol=0.01 / 3600)


@pytest.mark.parametrize("name", ["sip", "tpv"])
def test_world_coordinates_real_sip_and_tpv(name):
    """Real headers: a TAN-SIP cutout (ccdproc) and a TPV-distorted DECam CCD (extension 1)."""
    path = shared("ccdproc", "sip-wcs.fit") if name == "sip" else \
        shared("decam", "c4d_170316_062107_ooi_z_ls9.N2.fits")
    img = ScienceImage(path)
    catalog = AperturePhotometry().sex_photometry(
        img, detection_sigma=3, aperture_diameter_arcsec=[3], aperture_diameter_seeing=None,
        seeing=1.5, save=False, visualize=False, verbose=False)
    t = catalog.data
    assert len(t) > 3
    ra, dec = img.wcs.all_pix2world(np.asarray(t["X_IMAGE"], float),
                                    np.asarray(t["Y_IMAGE"], float), 0)
    cosd = np.cos(np.radians(dec))
    sep = np.hypot((np.asarray(t["X_WORLD"]) - ra) * cosd, np.asarray(t["Y_WORLD"]) - dec) * 3600
    assert sep.max() < 0.01  # arcsec


def test_strong_sip_is_detected_and_recomputed(tmp_path, caplog):
    """SExtractor 2.25 ignores SIP terms: the wrapper notices and uses astropy's WCS."""
    from ezphot.datasets import FrameSpec, make_frame

    spec = FrameSpec(shape=(512, 512), star_density=20)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=3)
    with fits.open(path, mode="update") as hdul:
        h = hdul[0].header
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
        h["A_ORDER"] = h["B_ORDER"] = 2
        h["A_2_0"], h["B_0_2"], h["A_1_1"] = 2e-4, 2e-4, 1e-4
    from ezphot.exceptions import HeaderWarning

    with pytest.warns(HeaderWarning, match="recomputed with astropy"):
        catalog = AperturePhotometry().sex_photometry(
            path, detection_sigma=3, aperture_diameter_seeing=None, save=False,
            visualize=False, verbose=False)
    t = catalog.data
    assert t.meta["world_from"] == "astropy"
    w = WCS(fits.getheader(path))
    ra, dec = w.all_pix2world(np.asarray(t["X_IMAGE"], float), np.asarray(t["Y_IMAGE"], float), 0)
    np.testing.assert_allclose(t["ALPHA_J2000"], ra, atol=1e-4 / 3600)
    np.testing.assert_allclose(t["DELTA_J2000"], dec, atol=1e-4 / 3600)


def test_recovery_and_aperture_fraction(dense_frame):
    """With the tutorial's DETECT_THRESH 3: >= 95 % of isolated unsaturated stars above the
    run's 5-sigma depth (peak pixel 5 sigma above the sky) are found, and their 10" FLUX_APER
    is the Moffat aperture fraction of the true flux (median within 3 %)."""
    path, truth = dense_frame
    catalog = AperturePhotometry().sex_photometry(
        path, detection_sigma=3, aperture_diameter_arcsec=[5, 7, 10], aperture_diameter_seeing=[],
        save=False, visualize=False, verbose=False)
    t = catalog.data
    meta = truth.meta
    sigma = t["SKYSIG"][0]
    x, y = np.asarray(truth["X"]), np.asarray(truth["Y"])
    ny, nx = fits.getdata(path).shape
    chosen = []
    for i, s in enumerate(truth):
        if s["TYPE"] != "star" or s["SATURATED"] or s["PEAK"] < 5 * sigma:
            continue
        if not (20 < s["X"] < nx - 20 and 20 < s["Y"] < ny - 20):
            continue
        d = np.hypot(x - s["X"], y - s["Y"])
        d[i] = np.inf
        if np.any((d < 25) & (truth["FLUX"] > 0.01 * s["FLUX"])):
            continue
        chosen.append(i)
    assert len(chosen) > 50
    found, ratios = 0, []
    frac = moffat_enclosed_fraction(5.0 / meta["pixel_scale"], meta["fwhm_pixel"],
                                    meta["moffat_beta"])
    for i in chosen:
        d = np.hypot(t["X_IMAGE"] - x[i], t["Y_IMAGE"] - y[i])
        if d.min() < 2:
            found += 1
            j = int(np.argmin(d))
            if truth["PEAK"][i] > 20 * sigma:
                ratios.append(t["FLUX_APER_2"][j] / (truth["FLUX"][i] * frac))
    assert found / len(chosen) >= 0.95
    assert len(ratios) > 20
    assert abs(np.median(ratios) - 1) < 0.03


def test_seeing_measured_when_header_has_none(tmp_path, caplog):
    from ezphot.datasets import FrameSpec, make_frame

    spec = FrameSpec(shape=(1024, 1024), star_density=6, seeing=3.1, write_seeing_keyword=False)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=12)
    assert ScienceImage(path).seeing is None
    with caplog.at_level("INFO", logger="ezphot"):
        cat = AperturePhotometry().sex_photometry(path, aperture_diameter_arcsec=[5],
                                                  aperture_diameter_seeing=[2.5], save=False,
                                                  visualize=False)
    assert cat.info.seeing == pytest.approx(3.1, rel=0.1)
    assert "seeing measured" in caplog.text
    assert cat.info.aperture_diameter_arcsec[1] == pytest.approx(2.5 * cat.info.seeing)
