"""Photometric calibration (issue 13): zero points, depth, calibrated light curves.

References nobody here wrote: the truth tables of generated frames (true magnitudes, the
frame's zero point, the Moffat enclosed fraction of each aperture), the real SExtractor
binary's catalogue, photutils forced photometry.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

from ezphot.calibration import (
    CAL_CLIPPED,
    CAL_USED,
    ReferenceCatalog,
    calibrate,
    plot_calibration,
    point_source_depth,
)
from ezphot.datasets import FrameSpec, make_frame, make_scene, moffat_enclosed_fraction
from ezphot.exceptions import ArgumentError, CalibrationError, ReferenceCatalogError
from ezphot.imageobjects import ScienceImage
from ezphot.photometry.forced import circular_photometry
from ezphot.photometry.lightcurve import light_curve
from ezphot.photometry.sexphot import sex_photometry

SPEC = FrameSpec(shape=(1024, 1536), star_density=3.0, mag_range=(11.0, 20.5), zeropoint=27.7)
APERTURES = [5.0, 10.0]  # arcsec: FLUX_APER, FLUX_APER_1
REF_LIMIT = 19.0         # reference catalogue's faint limit


def _blended(scene: Table, rng, n: int = 12) -> tuple[Table, np.ndarray, np.ndarray]:
    """Companions 0.3-1.5 mag fainter at 1.2-2 FWHM of some bright stars (not in the
    reference): their detections are blends."""
    stars = np.flatnonzero((scene["TYPE"] == "star") & (scene["MAG"] > 12.5)
                           & (scene["MAG"] < 16.5))
    hosts = rng.choice(stars, size=n, replace=False)
    comp = scene[hosts].copy()
    sep = rng.uniform(1.2, 2.0, n) * SPEC.fwhm_pixel
    ang = rng.uniform(0, 2 * np.pi, n)
    comp["X"] = comp["X"] + sep * np.cos(ang)
    comp["Y"] = comp["Y"] + sep * np.sin(ang)
    comp["MAG"] = comp["MAG"] + rng.uniform(0.3, 1.5, n)
    comp["FLUX"] = 10 ** (-0.4 * (comp["MAG"] - SPEC.zeropoint))
    comp["ID"] = np.arange(len(scene) + 1, len(scene) + n + 1)
    return vstack([scene, comp]), np.asarray(comp["ID"]), np.asarray(scene["ID"][hosts])


def _reference(truth: Table, rng, ids_out=()) -> Table:
    """Truth stars to REF_LIMIT with realistic errors (0.005 + rising with magnitude)."""
    st = truth[(truth["TYPE"] == "star") & (truth["MAG"] < REF_LIMIT)
               & ~np.isin(truth["ID"], ids_out)]
    err = 0.005 + 0.02 * 10 ** (0.4 * (np.asarray(st["MAG"]) - REF_LIMIT))
    t = Table()
    t["RA"], t["DEC"] = st["RA"], st["DEC"]
    t["MAG_m600"] = np.asarray(st["MAG"]) + rng.normal(0, err)
    t["MAGERR_m600"] = err
    t["TRUE_MAG"] = st["MAG"]
    return t


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    rng = np.random.default_rng(13)
    root = tmp_path_factory.mktemp("calib")
    scene = make_scene(SPEC, seed=13)
    # a third of the stars spread evenly over 11.5-17 mag: enough calibration stars on a
    # small frame (the power law puts few there); the rest keep the faint end for the depth
    bright = np.flatnonzero(scene["TYPE"] == "star")[::3]
    scene["MAG"][bright] = rng.uniform(11.5, 17.0, bright.size)
    scene["MAG"][bright[:8]] = rng.uniform(10.0, 11.2, 8)  # saturated (peak > 60000 ADU)
    scene["FLUX"] = 10 ** (-0.4 * (scene["MAG"] - SPEC.zeropoint))
    scene, companions, hosts = _blended(scene, rng)
    path, truth = make_frame(root / "frame.fits", SPEC, scene=scene, seed=13)
    # the deep-masked background (SExtractor's own mesh sits on the stars' wings here:
    # a few ADU/px, 3 % of a 16 mag star's 10" flux) and its noise model, as a pipeline would
    img = ScienceImage(path)
    bkg = img.calculate_bkg(box_size=128, filter_size=3, verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, ncombine=1, verbose=False)
    cat = sex_photometry(img, target_bkg=bkg, target_bkgrms=rms, detection_sigma=1.5,
                         aperture_diameter_arcsec=APERTURES, aperture_diameter_seeing=[],
                         save=False)
    ref = _reference(truth, rng, ids_out=companions)
    bad = ref.copy()
    wrong = rng.choice(len(bad), size=len(bad) // 10, replace=False)
    bad["MAG_m600"][wrong] += rng.choice([-1, 1], wrong.size) * rng.uniform(0.5, 1.5, wrong.size)
    return dict(path=path, truth=truth, cat=cat, ref=ref, bad=bad, wrong=wrong, root=root,
                companions=companions, hosts=hosts)


def _truth_zp(field, column: str) -> float:
    """The column's zero point from the true magnitudes: analytic for an aperture (Moffat
    enclosed fraction), else the median over bright isolated unsaturated truth stars."""
    if column.startswith("APER"):
        i = 0 if column == "APER" else int(column.split("_")[1])
        r_pix = APERTURES[i] / 2 / SPEC.pixel_scale
        return SPEC.zeropoint + 2.5 * math.log10(
            moffat_enclosed_fraction(r_pix, SPEC.fwhm_pixel, SPEC.moffat_beta))
    truth, t = field["truth"], field["cat"].data
    # MAG_AUTO misses more light at low S/N (Kron radius): its ZP drifts by ~0.03 mag from
    # 12 to 16.5 mag; the weighted mean follows the bright stars
    st = truth[(truth["TYPE"] == "star") & ~truth["SATURATED"] & (truth["MAG"] < 15.0)]
    cat_sky = SkyCoord(t["X_WORLD"], t["Y_WORLD"], unit="deg")
    idx, sep, _ = SkyCoord(st["RA"], st["DEC"], unit="deg").match_to_catalog_sky(cat_sky)
    all_sky = SkyCoord(truth["RA"], truth["DEC"], unit="deg")
    _, d2, _ = SkyCoord(st["RA"], st["DEC"], unit="deg").match_to_catalog_sky(all_sky, 2)
    ok = (sep.arcsec < 1) & (d2.arcsec > 15) & (np.asarray(t["FLAGS"])[idx] == 0)
    flux = np.asarray(t[f"FLUX_{column}"], float)[idx[ok]]
    return float(np.median(np.asarray(st["MAG"])[ok] + 2.5 * np.log10(flux)))


def _bootstrap(t: Table, column: str, n: int = 2000) -> float:
    """Spread of the inverse-variance mean of the used stars' ZPs over resamplings."""
    used = t[t["CAL_FLAG"] == CAL_USED]
    flux = np.asarray(used[f"FLUX_{column}"], float)
    zp = np.asarray(used["REF_MAG"]) + 2.5 * np.log10(flux)
    err2 = ((1.0857362 * np.asarray(used[f"FLUXERR_{column}"]) / flux) ** 2
            + np.asarray(used["REF_MAGERR"]) ** 2 + 0.005**2)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, zp.size, size=(n, zp.size))
    w = 1 / err2[pick]
    return float(np.std(np.sum(w * zp[pick], axis=1) / np.sum(w, axis=1)))


def test_zero_point_recovered(field):
    cal = calibrate(field["cat"], ReferenceCatalog(field["ref"]))
    res = cal.meta["calibration"]["columns"]
    for column in ("AUTO", "APER_1"):
        r = res[column]
        assert r["n_stars"] >= 50, r
        truth = _truth_zp(field, column)
        assert abs(r["zp"] - truth) < 0.01, (column, r, truth)
        # the error is that of the scatter: the spread of the weighted mean over bootstrap
        # resamplings of the stars used, within 30 %; the truth within 3 of it (+ 2 mmag for
        # the truth's own uncertainty)
        boot = _bootstrap(cal.data, column)
        assert boot / 1.3 < r["zp_err"] < 1.3 * boot, (column, r, boot)
        assert abs(r["zp"] - truth) < 3 * r["zp_err"] + 0.002, (column, r, truth)
    assert cal.info.zp == res["AUTO"]["zp"] and cal.info.zp_err == res["AUTO"]["zp_err"]
    t = cal.data
    # calibrated columns beside the instrumental ones, with units; the originals untouched
    for column in ("AUTO", "APER", "APER_1"):
        assert t[f"MAG_{column}_CAL"].unit == u.mag
        with np.errstate(invalid="ignore"):
            diff = np.asarray(t[f"MAG_{column}_CAL"] - t[f"MAG_{column}"])
        assert np.nanstd(diff) < 1e-4  # instrumental (zp 0) + ZP
        assert np.nanmedian(diff) == pytest.approx(res[column]["zp"], abs=1e-4)
    assert "MAG_AUTO_CAL" not in field["cat"].data.colnames
    # bright isolated stars: calibrated 10" magnitudes agree with the truth
    used = t[t["CAL_FLAG"] == CAL_USED]
    pull = (used["MAG_APER_1_CAL"] - used["REF_MAG"]) / np.hypot(used["MAGERR_APER_1_CAL"],
                                                                   used["REF_MAGERR"])
    assert abs(np.median(pull)) < 0.5


def test_zero_point_robust_to_outliers_blends_saturation(field):
    t = field["cat"].data
    truth = field["truth"]
    # the frame does hold saturated stars and blends that match reference stars
    ref_sky = SkyCoord(field["bad"]["RA"], field["bad"]["DEC"], unit="deg")
    assert (truth["SATURATED"] & (truth["MAG"] < REF_LIMIT)).sum() >= 3
    cal = calibrate(field["cat"], ReferenceCatalog(field["bad"]))
    res = cal.meta["calibration"]["columns"]
    for column in ("AUTO", "APER_1"):
        assert abs(res[column]["zp"] - _truth_zp(field, column)) < 0.02, res[column]
    # the wrong reference magnitudes that reached the clipping were clipped
    flag = np.asarray(cal.data["CAL_FLAG"])
    sky = SkyCoord(t["X_WORLD"], t["Y_WORLD"], unit="deg")
    idx, sep, _ = ref_sky[field["wrong"]].match_to_catalog_sky(sky)
    reached = flag[idx[sep.arcsec < 1]]
    reached = reached[reached >= CAL_CLIPPED]
    assert reached.size >= 5 and (reached == CAL_CLIPPED).mean() > 0.9
    assert cal.meta["calibration"]["selection"]["saturation"] < \
        cal.meta["calibration"]["selection"]["flags"] or \
        cal.meta["calibration"]["selection"]["flags"] < cal.meta["calibration"]["selection"][
            "matched"]


def test_isolation_excludes_blends_in_forced_catalogue(field):
    """Forced photometry at the reference stars and at the companions of the blended ones
    (FLAGS say nothing of blends there): the isolation cut leaves the hosts out."""
    truth, ref = field["truth"], field["ref"]
    comp = truth[np.isin(truth["ID"], field["companions"])]
    ra = np.concatenate([ref["RA"], comp["RA"]])
    dec = np.concatenate([ref["DEC"], comp["DEC"]])
    cat = circular_photometry(field["path"], ra, dec, unit="coord",
                              aperture_diameter_arcsec=[APERTURES[1]],
                              aperture_diameter_seeing=[], save=False)
    hosts = truth[np.isin(truth["ID"], field["hosts"])]
    idx, sep, _ = SkyCoord(hosts["RA"], hosts["DEC"], unit="deg").match_to_catalog_sky(
        SkyCoord(cat.data["X_WORLD"], cat.data["Y_WORLD"], unit="deg"))
    assert (sep.arcsec < 0.01).all()
    for kw, n_host_used in ((dict(), 0), (dict(isolation_arcsec=0), None)):
        cal = calibrate(cat, ReferenceCatalog(ref), sigma=1000, **kw)  # no clipping
        flag = np.asarray(cal.data["CAL_FLAG"])[idx]
        if n_host_used == 0:
            assert (flag < CAL_USED).all(), flag
            assert abs(cal.info.zp - _truth_zp(field, "APER_1")) < 0.01
        else:
            assert (flag == CAL_USED).sum() >= 6, flag


def test_reference_files_and_survey_mappings(field, tmp_path):
    ref = field["ref"]
    base = calibrate(field["cat"], ReferenceCatalog(ref))
    # Pan-STARRS1 (MAST names) as Parquet, SkyMapper as FITS, APASS (VizieR) as CSV,
    # Gaia synthetic photometry (flux errors) as ECSV
    ps1 = Table({"objID": np.arange(len(ref)), "raMean": ref["RA"], "decMean": ref["DEC"],
                 "rMeanPSFMag": ref["MAG_m600"], "rMeanPSFMagErr": ref["MAGERR_m600"]})
    ps1.write(tmp_path / "ps1.parquet")
    sm = Table({"raj2000": ref["RA"], "dej2000": ref["DEC"], "r_psf": ref["MAG_m600"],
                "e_r_psf": ref["MAGERR_m600"]})
    sm.write(tmp_path / "sm.fits")
    ap = Table({"RAJ2000": ref["RA"], "DEJ2000": ref["DEC"], "r'mag": ref["MAG_m600"],
                "e_r'mag": ref["MAGERR_m600"]})
    ap.write(tmp_path / "apass.csv")
    flux = 10 ** (-0.4 * (np.asarray(ref["MAG_m600"]) - 25))
    gaia = Table({"ra": ref["RA"], "dec": ref["DEC"], "m600_mag": ref["MAG_m600"],
                  "m600_flux": flux, "m600_flux_error": flux * ref["MAGERR_m600"] / 1.0857362})
    gaia.write(tmp_path / "gaia.ecsv")
    custom = Table({"RA_ICRS": ref["RA"], "DE_ICRS": ref["DEC"], "mag": ref["MAG_m600"]})
    custom.write(tmp_path / "custom.csv")
    for name, survey, band in (("ps1.parquet", "ps1", "r"), ("sm.fits", "skymapper", "r"),
                               ("apass.csv", "apass", "r"), ("gaia.ecsv", "gaia", "m600")):
        rc = ReferenceCatalog.read(tmp_path / name, survey=survey)
        assert len(rc) == len(ref) and band in rc.bands
        np.testing.assert_allclose(rc.table[f"MAGERR_{band}"], ref["MAGERR_m600"], rtol=1e-6)
        cal = calibrate(field["cat"], rc, band=band)
        assert cal.info.zp == pytest.approx(base.info.zp, abs=1e-6), name
    rc = ReferenceCatalog.read(tmp_path / "custom.csv",
                               columns={"ra": "RA_ICRS", "dec": "DE_ICRS", "m600": "mag"})
    assert calibrate(field["cat"], rc, error_floor=0.02).info.zp == pytest.approx(
        base.info.zp, abs=0.01)
    # saved and loaded losslessly; the picture
    path = calibrate(field["cat"], str(tmp_path / "gaia.ecsv"), survey="gaia").save(
        tmp_path / "cal.cat")
    from ezphot.dataobjects import Catalog

    back = Catalog(path)
    assert back.info.zp == pytest.approx(base.info.zp, abs=1e-6)
    assert back.meta["calibration"]["band"] == "m600"
    fig = plot_calibration(back)
    assert len(fig.axes) == 3


def test_bad_reference_and_options(field, tmp_path):
    cat = field["cat"]
    with pytest.raises(ReferenceCatalogError, match="no such"):
        ReferenceCatalog.read(tmp_path / "missing.csv")
    (tmp_path / "junk.fits").write_bytes(b"not a fits file" * 10)
    with pytest.raises(ReferenceCatalogError, match="junk.fits"):
        ReferenceCatalog.read(tmp_path / "junk.fits")
    Table({"x": [1.0]}).write(tmp_path / "nora.csv")
    with pytest.raises(ReferenceCatalogError, match="nora.csv.*RA"):
        ReferenceCatalog.read(tmp_path / "nora.csv")
    with pytest.raises(ReferenceCatalogError, match="survey"):
        ReferenceCatalog.read(tmp_path / "nora.csv", survey="sdss99")
    ref = ReferenceCatalog(field["ref"])
    with pytest.raises(ReferenceCatalogError, match="no band 'g'"):
        calibrate(cat, ref, band="g")
    for kw in (dict(match_radius_arcsec=-1), dict(sigma=0.5), dict(mag_range=(18, 12)),
               dict(class_star_min=2), dict(flag_mask=-1), dict(elongation_max=0.5)):
        with pytest.raises(ArgumentError):
            calibrate(cat, ref, **kw)
    with pytest.raises(CalibrationError, match="only .* reference stars"):
        calibrate(cat, ref, mag_range=(11.0, 11.5))
    with pytest.raises(ArgumentError, match="FLUX_ISO"):
        calibrate(cat, ref, column="ISO")


def _snr_crossing(mag, snr, level=5.0) -> float:
    """Magnitude where the binned median S/N of the truth stars crosses ``level``."""
    edges = np.arange(16.0, 21.01, 0.2)
    centre, med = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        m = (mag >= lo) & (mag < hi)
        if m.sum() >= 8:
            centre.append(0.5 * (lo + hi))
            med.append(np.median(snr[m]))
    centre, med = np.array(centre), np.log10(np.clip(med, 0.1, None))
    k = np.flatnonzero((med[:-1] >= math.log10(level)) & (med[1:] < math.log10(level)))[0]
    return float(np.interp(math.log10(level), med[k:k + 2][::-1], centre[k:k + 2][::-1]))


def test_depth_of_calibrated_catalogue(field):
    """info.depth (MAG_AUTO, calibrated) against the S/N of the truth stars SExtractor found."""
    cal = calibrate(field["cat"], ReferenceCatalog(field["ref"]))
    t, truth = cal.data, field["truth"]
    st = truth[truth["TYPE"] == "star"]
    idx, sep, _ = SkyCoord(st["RA"], st["DEC"], unit="deg").match_to_catalog_sky(
        SkyCoord(t["X_WORLD"], t["Y_WORLD"], unit="deg"))
    ok = sep.arcsec < 1
    snr = np.asarray(t["FLUX_AUTO"] / t["FLUXERR_AUTO"])[idx[ok]]
    crossing = _snr_crossing(np.asarray(st["MAG"])[ok], snr)
    assert abs(cal.info.depth - crossing) < 0.2, (cal.info.depth, crossing)
    assert cal.meta["depth"]["source"] == "calibrate"


def test_depth_from_given_zero_point(field, tmp_path):
    """Forced photometry at every truth star with a zero point: info.depth from the data
    (the header's DEPTH only without one)."""
    from astropy.io import fits

    path = tmp_path / "frame_depth.fits"
    with fits.open(field["path"]) as hdul:
        hdul[0].header["DEPTH"] = 17.6
        hdul.writeto(path)
    truth = field["truth"]
    st = truth[(truth["TYPE"] == "star") & (truth["MAG"] > 16)]
    zp = _truth_zp(field, "APER_1")
    # the noise model alone: with the confusion term (forced photometry's default) the depth
    # comes out 0.20 mag shallower than the crossing on this frame (open, issue 15 note)
    kw = dict(unit="coord", aperture_diameter_arcsec=[APERTURES[1]], aperture_diameter_seeing=[],
              save=False, confusion_error=False)
    plain = circular_photometry(path, st["RA"], st["DEC"], **kw)
    assert plain.info.depth == 17.6 and plain.meta["depth"]["source"] == "header"
    cat = circular_photometry(path, st["RA"], st["DEC"], zeropoint=zp, **kw)
    snr = np.asarray(cat.data["FLUX_APER"] / cat.data["FLUXERR_APER"])
    crossing = _snr_crossing(np.asarray(st["MAG"]), snr)
    assert cat.info.depth != 17.6 and cat.meta["depth"]["source"] == "zeropoint"
    assert abs(cat.info.depth - crossing) < 0.2, (cat.info.depth, crossing)
    assert point_source_depth(cat, zp) == pytest.approx(cat.info.depth, abs=1e-3)



def test_depth_from_header_zero_point(field, tmp_path):
    """No zero point given but one in the header (ZP_AUTO, as a survey pipeline writes):
    info.depth is measured on the data with it (the header's DEPTH only without one); the
    magnitudes stay instrumental. A non-numeric ZP keyword is passed over."""
    from astropy.io import fits

    truth = field["truth"]
    st = truth[(truth["TYPE"] == "star") & (truth["MAG"] > 16)]
    zp = _truth_zp(field, "APER_1")
    kw = dict(unit="coord", aperture_diameter_arcsec=[APERTURES[1]], aperture_diameter_seeing=[],
              save=False, confusion_error=False)
    cards = {"with_zp": [("DEPTH", 17.6), ("ZP", "n/a"), ("ZP_AUTO", zp)],
             "text_zp": [("DEPTH", 17.6), ("ZP", "n/a")]}
    cats = {}
    for name, header_cards in cards.items():
        path = tmp_path / f"{name}.fits"
        with fits.open(field["path"]) as hdul:
            for key, value in header_cards:
                hdul[0].header[key] = value
            hdul.writeto(path)
        cats[name] = circular_photometry(path, st["RA"], st["DEC"], **kw)
    cat = cats["with_zp"]
    given = circular_photometry(field["path"], st["RA"], st["DEC"], zeropoint=zp, **kw)
    assert cat.meta["depth"]["source"] == "header ZP_AUTO"
    assert cat.meta["depth"]["zeropoint"] == pytest.approx(zp)
    assert cat.info.depth == given.info.depth != 17.6
    snr = np.asarray(cat.data["FLUX_APER"] / cat.data["FLUXERR_APER"])
    assert abs(cat.info.depth - _snr_crossing(np.asarray(st["MAG"]), snr)) < 0.2
    flux = np.asarray(cat.data["FLUX_APER"], float)
    ok = flux > 0
    assert np.allclose(np.asarray(cat.data["MAG_APER"])[ok], -2.5 * np.log10(flux[ok]),
                       atol=1e-5)  # instrumental, as without a zero point
    assert cats["text_zp"].info.depth == 17.6
    assert cats["text_zp"].meta["depth"]["source"] == "header"

# -- calibrated light curve of a variable star ----------------------------------------------
LC_SPEC = dict(shape=(640, 896), star_density=3.0, mag_range=(11.0, 19.5))
EPOCHS = [(27.75, 15.30), (28.10, 15.85), (27.55, 16.40), (28.00, 15.60)]  # (zp, variable mag)


@pytest.fixture(scope="module")
def variable_frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("lc")
    base = FrameSpec(**LC_SPEC)
    scene = make_scene(base, seed=21)
    # the variable: a star near the centre, apart from its neighbours
    var = scene[:1].copy()
    var["ID"], var["TYPE"], var["X"], var["Y"] = len(scene) + 1, "star", 431.3, 322.7
    scene = vstack([scene, var])
    paths, truths = [], []
    for k, (zp, mag) in enumerate(EPOCHS):
        spec = FrameSpec(**LC_SPEC, zeropoint=zp, obsdate=f"2025-09-0{k + 1}T03:00:00")
        sc = scene.copy()
        sc["MAG"][-1] = mag
        sc["FLUX"] = 10 ** (-0.4 * (sc["MAG"] - zp))
        p, truth = make_frame(root / f"epoch{k}.fits", spec, scene=sc, seed=21,
                              noise_seed=100 + k)
        paths.append(p)
        truths.append(truth)
    rng = np.random.default_rng(5)
    ref = _reference(truths[0][:-1], rng)
    return paths, truths, ReferenceCatalog(ref)


def test_calibrated_light_curve(variable_frames):
    paths, truths, ref = variable_frames
    ra, dec = truths[0]["RA"][-1], truths[0]["DEC"][-1]
    lc = light_curve(paths, ra, dec, aperture_diameter_arcsec=[7.0], reference=ref,
                     calibration={"band": "m600"})
    assert len(lc) == len(EPOCHS) and not lc.meta["failed"]
    for row, (zp, mag) in zip(lc, EPOCHS, strict=False):
        err = math.hypot(row["MAGERR_APER"], row["ZPERR_APER"])
        assert abs(row["MAG_APER"] - mag) < 3 * err, (row["MAG_APER"], mag, err)
        # the zero point includes the 7" aperture's loss of the Moffat wings
        r_pix = 3.5 / 0.505
        expect = zp + 2.5 * math.log10(moffat_enclosed_fraction(
            r_pix, FrameSpec().fwhm_pixel, 2.5))
        assert abs(row["ZP_APER"] - expect) < 0.02
        assert np.isfinite(row["DEPTH"])
    # instrumental light curve: the zero points' changes are in it, not in the calibrated one
    raw = light_curve(paths, ra, dec, aperture_diameter_arcsec=[7.0])
    assert np.ptp(np.asarray(raw["MAG_APER"]) - [m for _, m in EPOCHS]) > 0.4
    # per-image zero points given: the calibration's magnitudes (the sky is estimated on
    # other tiles without the reference positions: a fraction of the error apart)
    given = light_curve(paths, ra, dec, aperture_diameter_arcsec=[7.0],
                        zeropoint=list(lc["ZP_APER"]))
    assert given.meta["zeropoint"] == "per image"
    assert (np.abs(given["MAG_APER"] - lc["MAG_APER"]) < 0.5 * lc["MAGERR_APER"]).all()
    assert (np.abs(given["DEPTH"] - lc["DEPTH"]) < 0.1).all()


def test_cli_calibrate(field, tmp_path, capsys):
    from ezphot.cli import main
    from ezphot.dataobjects import Catalog

    cat_path = field["cat"].save(tmp_path / "frame.fits.cat")
    ref = field["ref"]
    ref.write(tmp_path / "ref.fits")
    assert main(["calibrate", str(cat_path), "--reference", str(tmp_path / "ref.fits"),
                 "--plot"]) == 0
    out = tmp_path / "frame.fits.cal.cat"
    cal = Catalog(out)
    assert cal.verified and cal.info.zp == pytest.approx(
        calibrate(field["cat"], ReferenceCatalog(ref)).info.zp, abs=1e-6)
    assert (tmp_path / "frame.fits.cal.cat.png").stat().st_size > 0
    assert "ZP_AUTO" in capsys.readouterr().out
    # too few reference stars: that catalogue fails (exit 1), nothing written for it
    ref[:3].write(tmp_path / "few.fits")
    assert main(["calibrate", str(cat_path), "--reference", str(tmp_path / "few.fits"),
                 "--output-suffix", ".few.cat"]) == 1
    assert not (tmp_path / "frame.fits.few.cat").exists()
    # bad input before any work: exit 2
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert main(["calibrate", str(cat_path), "--reference", str(tmp_path / "bad.csv")]) == 2
    assert main(["calibrate", str(tmp_path / "none.cat"), "--reference",
                 str(tmp_path / "ref.fits")]) == 2
    (tmp_path / "foreign.cat").write_text("not mine")
    assert main(["calibrate", str(tmp_path / "foreign.cat"), "--reference",
                 str(tmp_path / "ref.fits")]) == 2


def test_multiband_field_reference_and_colour_term(tmp_path):
    """A field of ezphot.datasets.make_multiband_field and its survey-like reference file
    (10 % outliers): the per-filter zero point, and an injected colour term recovered."""
    from ezphot.datasets import make_multiband_field, make_reference_catalog

    spec = FrameSpec(shape=(768, 1024), star_density=4.0, mag_range=(12.0, 19.5))
    field = make_multiband_field(tmp_path / "scidata", ("m500", "m700"), spec=spec, seed=3)
    ref_path = tmp_path / "ref.parquet"
    make_reference_catalog(field.truth, ref_path, outlier_fraction=0.1, seed=4)
    ref = ReferenceCatalog.read(ref_path)
    assert set(ref.bands) == {"m500", "m700"}
    k = int(np.flatnonzero(field.frames["FILTER"] == "m700")[0])
    cat = sex_photometry(field.paths[k], detection_sigma=3, aperture_diameter_arcsec=[10.0],
                         aperture_diameter_seeing=[], save=False)
    cal = calibrate(cat, ref, column="APER", snr_min=10)
    r_pix = 5.0 / spec.pixel_scale
    fwhm = float(fits_header(field.paths[k])["EZFWHM"]) / spec.pixel_scale
    truth = field.zeropoints["m700"] + 2.5 * math.log10(
        moffat_enclosed_fraction(r_pix, fwhm, spec.moffat_beta))
    assert abs(cal.info.zp - truth) < 0.02, (cal.meta["calibration"]["columns"]["APER"], truth)
    # a colour term put into the reference: m_ref + 0.15 (m500 - m700 - 0.5)
    t = ref.table.copy()
    t["MAG_m700"] = t["MAG_m700"] + 0.15 * (t["MAG_m500"] - t["MAG_m700"] - 0.5)
    col = calibrate(cat, ReferenceCatalog(t), column="APER", snr_min=10,
                    color=("m500", "m700"))
    res = col.meta["calibration"]["columns"]["APER"]
    assert abs(res["color_term"] - 0.15) < 3 * res["color_term_err"] + 0.01, res
    # the calibrated magnitudes of the stars used follow the reference, colour term included:
    # no offset, and a smaller scatter than without the term
    plain = calibrate(cat, ReferenceCatalog(t), column="APER", snr_min=10)
    used = col.data[col.data["CAL_FLAG"] == CAL_USED]
    resid = np.asarray(used["MAG_APER_CAL"] - used["REF_MAG"])
    assert abs(np.median(resid)) < 0.01, np.median(resid)
    assert np.std(resid) < 0.9 * plain.meta["calibration"]["columns"]["APER"]["std"]
    assert "REF_COLOR" in col.data.colnames


def fits_header(path):
    from astropy.io import fits

    return fits.getheader(path)
