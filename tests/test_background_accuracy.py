"""Backgrounds that stay unbiased for faint sources (issue 15), on frames made independently of
``ezphot.datasets`` (tests/skygen.py: Moffat beta 2.5 stars with their wings, a sky known per
pixel, 7DT C361K noise).

Two frames, each generated once per session: a sparse full-size 7DT frame (9576x6388, 8000
stars of 10-21 mag and one of 9.5) and a crowded 2048x2048 frame (three times the stars per
area, plus three stars of 9-10.5 mag with wide wings). Known Moffat stars are injected into a
copy of each frame at random isolated positions with chosen S/N (5-60 in a 5" aperture).

"Blank" 10" apertures are random positions at least 25 px from every truth star brighter than the
detection limit (matched-filter S/N 5, `SkyFrame.mag_limit`) and outside the radius where such
a star's profile is above 0.02 ADU/px: their mean flux per pixel must be 0 within 0.1 ADU/px.
Stars below the detection limit are part of the scene, as in the sky: a blank aperture holds
their light at the mean rate, and so must the background.

Paths: forced photometry without maps (tile estimate), with the tutorial's maps (source mask
sigma 5 x 2, ``calculate_bkg(256, 5)``, RMS by propagation), with an unmasked
``calculate_bkg(256, 5)``, the annulus option, and ``sex_photometry`` given the tutorial's
maps (its apertures are sums of the frame minus our map: the injected stars it detects are
checked; blank apertures for it are those of the tutorial maps' path).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.photometry.depth import excess_scatter
from ezphot.photometry.forced import circular_photometry

from .skygen import inject, isolated_positions, make_sky_frame

APER = [5.0, 10.0]  # arcsec: injected stars in both; blank apertures held to 0 in the 10" one
BLANK_APER = 10.0   # a 5" blank mean is only known to +-0.07 ADU/px from 10^4 apertures
N_BLANK, N_INJECT = 12000, 400
PATHS = ("default", "tutorial_maps", "unmasked_map", "annulus", "sex_photometry")
# on the full-size frame the paths of the table run by default (test time); all of
# them with EZPHOT_TEST_FULL=1 (about 2 minutes more on a loaded 2-core machine)
FULL_FRAME_PATHS = PATHS if os.environ.get("EZPHOT_TEST_FULL") else ("default", "tutorial_maps")


def _aperture_truth(stamps, xy, radius):
    """Noiseless flux of each injected stamp inside a circle (photutils, exact overlap)."""
    from photutils.aperture import CircularAperture

    out = np.empty(len(stamps))
    for i, ((x0, y0, st), (x, y)) in enumerate(zip(stamps, xy, strict=False)):
        out[i] = CircularAperture((x - x0, y - y0), r=radius).do_photometry(st)[0][0]
    return out


def make_scenario(tmp_path_factory, name, **kw):
    d = tmp_path_factory.mktemp(name)
    frame = make_sky_frame(d / f"{name}.fits", **kw)
    rng = np.random.default_rng(kw["seed"] + 100)
    xy_inj = isolated_positions(frame, N_INJECT, rng, mutual=True, min_dist=30)
    r5 = APER[0] / 2 / 0.505
    frac5 = 1 - (1 + (r5 / frame.alpha) ** 2) ** (1 - frame.beta)
    # half at S/N 5-10, half 10-60 (log-uniform) in the 5" aperture
    k = len(xy_inj)
    snr = np.where(np.arange(k) % 2 == 0, rng.uniform(5, 10, k),
                   np.exp(rng.uniform(np.log(10), np.log(60), k)))
    flux = np.array([frame.flux_for_snr(s, math.pi * r5 ** 2) for s in snr]) / frac5
    path, stamps = inject(frame, d / f"{name}_inj.fits", xy_inj, flux, seed=kw["seed"] + 7)
    xy_blank = isolated_positions(frame, N_BLANK, rng, avoid=xy_inj, min_dist=30)
    truth_ap = {a: _aperture_truth(stamps, xy_inj, a / 2 / 0.505) for a in APER}
    return dict(frame=frame, path=path, xy_inj=xy_inj, xy_blank=xy_blank, truth_ap=truth_ap,
                results={})


# the crowded frame: three times the stars per area of the sparse one, and bright-star wings
SPECS = {
    "sparse": dict(shape=(6388, 9576), n_stars=8000, seed=1, bright=(9.5,)),
    "crowded": dict(shape=(2048, 2048), n_stars=int(round(3 * 8000 * 2048**2 / (6388 * 9576))),
                    seed=2, bright=(9.0, 9.8, 10.5)),
}


@pytest.fixture(scope="session")
def sparse(tmp_path_factory):
    return make_scenario(tmp_path_factory, "sparse", **SPECS["sparse"])


@pytest.fixture(scope="session")
def crowded(tmp_path_factory):
    return make_scenario(tmp_path_factory, "crowded", **SPECS["crowded"])


def _forced(img, xy, **kw):
    return circular_photometry(img, xy[:, 0], xy[:, 1], unit="pixel",
                               aperture_diameter_arcsec=APER, aperture_diameter_seeing=None,
                               save=False, **kw)


def _maps(scn):
    img = ScienceImage(scn["path"])
    if "maps" not in scn:
        srcmask = img.calculate_sourcemask(sigma=5, mask_radius_factor=2, verbose=False)
        bkg = img.calculate_bkg(srcmask, box_size=256, filter_size=5, verbose=False)
        rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
        scn["maps"] = (bkg, rms)
    return img, scn["maps"]


def measure(scn, path_name):
    """{'blank': mean ADU/px per aperture, 'inj': (recovered, error) per aperture, 'meta'}."""
    if path_name in scn["results"]:
        return scn["results"][path_name]
    img = ScienceImage(scn["path"])
    if path_name == "default":
        kw = {}
    elif path_name == "tutorial_maps":
        img, (bkg, rms) = _maps(scn)
        kw = dict(target_bkg=bkg, target_bkgrms=rms)
    elif path_name == "unmasked_map":
        bkg = img.calculate_bkg(box_size=256, filter_size=5, verbose=False)
        kw = dict(target_bkg=bkg,
                  target_bkgrms=img.calculate_bkgrms_from_propagation(bkg, verbose=False))
    elif path_name == "annulus":
        kw = dict(annulus_width_arcsec=5.0)
    elif path_name == "true_sky":  # reference: the sky model itself (not a path under test)
        from ezphot.imageobjects import Background

        ny, nx = img.shape
        yy, xx = np.mgrid[0:ny, 0:nx]
        bkg = Background(scn["frame"].sky(yy, xx).astype(np.float32), target_img=img.path)
        del yy, xx
        kw = dict(target_bkg=bkg,
                  target_bkgrms=img.calculate_bkgrms_from_propagation(bkg, verbose=False))
    if path_name == "sex_photometry":
        img, (bkg, rms) = _maps(scn)
        cat = AperturePhotometry().sex_photometry(
            img, target_bkg=bkg, target_bkgrms=rms, aperture_diameter_arcsec=APER,
            aperture_diameter_seeing=None, save=False, visualize=False, verbose=False)
        t = cat.data
        xy = scn["xy_inj"]
        from scipy.spatial import cKDTree

        d, j = cKDTree(np.column_stack([t["X_IMAGE"], t["Y_IMAGE"]])).query(xy)
        found = d < 2.0
        inj = {}
        for k, a in enumerate(APER):
            col = "" if k == 0 else f"_{k}"
            f = np.where(found, np.asarray(t[f"FLUX_APER{col}"])[j], np.nan)
            e = np.where(found, np.asarray(t[f"FLUXERR_APER{col}"])[j], np.nan)
            inj[a] = (f, e)
        res = dict(blank=measure(scn, "tutorial_maps")["blank"], inj=inj,
                   meta=cat.meta.get("background"))
    else:
        n_inj = len(scn["xy_inj"])
        cat = _forced(img, np.concatenate([scn["xy_inj"], scn["xy_blank"]]), **kw)
        inj, blank, blank_excess = {}, {}, {}
        for k, a in enumerate(APER):
            col = "" if k == 0 else f"_{k}"
            f = np.asarray(cat.data[f"FLUX_APER{col}"])
            e = np.asarray(cat.data[f"FLUXERR_APER{col}"])
            inj[a] = (f[:n_inj], e[:n_inj])
            npix = np.asarray(cat.data[f"NPIX_APER{col}"])
            blank[a] = float(np.nanmean(f[n_inj:] / npix[n_inj:]))
            # the truth-defined blank positions' scatter over the noise model (the model
            # alone: the confusion term taken out again)
            conf = cat.meta.get("confusion_error")
            sc = conf["apertures"][k]["sigma_conf"] if conf else 0.0
            fb, eb = f[n_inj:], np.sqrt(np.maximum(e[n_inj:] ** 2 - sc ** 2, 0.0))
            ok = np.isfinite(fb) & np.isfinite(eb)
            blank_excess[a] = excess_scatter(fb[ok], eb[ok])
        res = dict(blank=blank, inj=inj, meta=cat.meta.get("background_details"),
                   confusion=cat.meta.get("confusion_error"), blank_excess=blank_excess)
    scn["results"][path_name] = res
    return res


def _std(p: np.ndarray) -> float:
    """Standard deviation after 4-sigma clipping (a stray neighbour must not decide it)."""
    from astropy.stats import sigma_clipped_stats

    return float(sigma_clipped_stats(p, sigma=4, maxiters=5)[2])


def _std_interval(p: np.ndarray, n_boot: int = 200) -> tuple[float, float]:
    """16th-84th percentile of `_std` over bootstrap resamples: with ~330 stars and confusion
    that a few faint neighbours dominate, the spread itself is only known to +-0.04."""
    rng = np.random.default_rng(0)
    boot = [_std(p[rng.integers(0, p.size, p.size)]) for _ in range(n_boot)]
    lo, hi = np.percentile(boot, [16, 84])
    return float(lo), float(hi)


def summary(scn, path_name):
    """Blank mean (ADU/px) per aperture; per aperture and S/N bin (5-10, >= 10) the median
    recovered/injected flux, the pulls' spread and the count; per aperture the pulls' spread
    over all injected stars (key (aperture, 'all'))."""
    res = measure(scn, path_name)
    rows = {}
    for a in APER:
        f, e = res["inj"][a]
        truth = scn["truth_ap"][a]
        r_ap = a / 2 / 0.505
        snr = truth / np.sqrt(math.pi * r_ap ** 2 * scn["frame"].sigma ** 2 + truth / 0.2561)
        ok = np.isfinite(f)
        ratio = f / truth
        pull = (f - truth) / e
        for lo, hi in ((5, 10), (10, 1e9)):
            sel = ok & (snr >= lo) & (snr < hi)
            if sel.sum() < 10:
                rows[(a, lo)] = (np.nan, np.nan, int(sel.sum()))
                continue
            rows[(a, lo)] = (float(np.median(ratio[sel])), _std(pull[sel]), int(sel.sum()))
        sel = ok & (snr >= 5)
        rows[(a, "all")] = (np.nan, _std(pull[sel]) if sel.sum() >= 10 else np.nan,
                            int(sel.sum()))
        rows[(a, "interval")] = _std_interval(pull[sel]) if sel.sum() >= 10 else (np.nan,) * 2
    return res["blank"], rows


CASES = [("crowded", p) for p in PATHS] + [("sparse", p) for p in FULL_FRAME_PATHS]


@pytest.mark.parametrize("scenario, path_name", CASES)
def test_blank_and_injected(scenario, path_name, request):
    """Blank apertures average 0 within 0.1 ADU/px; injected stars come back with their flux
    (median within 2 % at S/N >= 10, 5 % at S/N 5-10) and errors that describe their scatter
    (pulls' standard deviation 0.9-1.1 over all injected stars of S/N >= 5, within its own
    1-sigma bootstrap interval: ~330 stars know it to +-0.04; per S/N bin, with ~200 stars,
    only to +-0.05). Where confusion by stars below the detection limit dominates (10"
    apertures, crowded frame: 1.10-1.16 without the confusion term, 1.13 with the true sky
    itself), the reported error holds it: forced photometry adds the blank apertures' excess
    scatter (`confusion_error=True`, the default), which must agree with the excess of the
    test's own blank positions (truth-defined: 30 px from every detectable star) within
    3 standard errors."""
    scn = request.getfixturevalue(scenario)
    blank, rows = summary(scn, path_name)
    assert abs(blank[BLANK_APER]) <= 0.1, (scenario, path_name, blank)
    for (a, lo), values in rows.items():
        if lo == "interval":
            continue
        ratio, spread, n = values
        if lo == "all":
            if path_name == "sex_photometry":
                continue  # detected ones only: a biased sample
            low, high = rows[(a, "interval")]
            assert low <= 1.1 and high >= 0.9, (scenario, path_name, a, spread, low, high)
            res = measure(scn, path_name)
            conf = res["confusion"]["apertures"][APER.index(a)]
            ref = res["blank_excess"][a]
            # the term's blank apertures (600, in a strip, clear of the deep mask) measure the
            # excess the truth-defined blank positions (12000, whole frame) show
            tol = 3 * math.hypot(conf["ratio_err"], ref["ratio_err"])
            assert abs(conf["ratio"] - ref["ratio"]) <= tol, (scenario, path_name, a, conf, ref)
            if scenario == "crowded" and a == 10.0:
                # confusion is there: the blank positions scatter more than the model says
                assert ref["significance"] > 3 and conf["sigma_conf"] > 0, (conf, ref)
            continue
        if path_name == "sex_photometry" and lo == 5:
            continue  # S/N 5-10 stars are mostly not detected: the detected ones are biased high
        tol = 0.05 if lo == 5 else 0.02
        assert n >= 10, (scenario, path_name, a, lo, n)
        assert abs(ratio - 1) <= tol, (scenario, path_name, a, lo, ratio)


def test_catalogue_records_the_background(crowded):
    """Which estimator and masks made the sky is in the catalogue's metadata."""
    img = ScienceImage(crowded["path"])
    xy = crowded["xy_inj"][:5]
    tiles = _forced(img, xy).meta["background_details"]
    assert tiles["source"] == "tiles" and "deep source mask" in tiles["estimator"]
    bkg = img.calculate_bkg(box_size=256, filter_size=5, verbose=False)
    assert bkg.header["BKGDEEP"] is True and bkg.header["BKGDSRC"] > 100
    assert 0.05 < bkg.header["BKGDFRAC"] < 0.6
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    mapped = _forced(img, xy, target_bkg=bkg, target_bkgrms=rms).meta["background_details"]
    assert mapped == {"source": "map", "estimator": "mean", "mesh": 256, "filter": 5,
                      "deep_mask": True, "masked_pixels": 0}
    from ezphot.photometry.sexphot import sex_photometry

    sex = sex_photometry(img, target_bkg=bkg, target_bkgrms=rms, aperture_diameter_seeing=None,
                         save=False).meta["background_details"]
    assert sex == mapped
    own = sex_photometry(img, aperture_diameter_seeing=None, save=False)
    assert own.meta["background_details"]["source"] == "sextractor"
    ann = _forced(img, xy, annulus_width_arcsec=5.0).meta["background_details"]
    assert ann["source"] == "annulus" and ann["deep_mask"] is True
    single = img.calculate_bkg(box_size=256, filter_size=5, deep_mask=False, verbose=False)
    assert single.header["BKGDEEP"] is False
    # the single pass (the former default) takes in the sources' light: 1-2 ADU/px here
    assert np.median(single.data - bkg.data) > 0.5
