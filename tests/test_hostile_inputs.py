"""Hostile input (issue 9, items 6-10 and the pixel part of 8): every bad number, map, file,
option or name gives the right answer or an ezphot exception naming the argument or file
and the problem; the inputs are never modified; threads sharing one image agree with
sequential calls; forced photometry is chunked."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ezphot import cli
from ezphot.background import calculate_bkgrms_from_propagation
from ezphot.exceptions import ArgumentError, EzphotError, ImageError
from ezphot.imageobjects import Background, Errormap, Mask, ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.photometry import forced
from ezphot.photometry.forced import FLAG_BADSKY, FLAG_MASKED, FLAG_OFF

from .conftest import ROOT, sha256

AP = AperturePhotometry()
Q = dict(save=False, visualize=False, verbose=False)
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from([0.0, -1.0, 1e-300, 1e300, math.nan, math.inf, -math.inf]))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small generated 7DT-like frame (256x384) with its maps, and its sha256."""
    from ezphot.datasets import FrameSpec, make_frame

    d = tmp_path_factory.mktemp("small")
    path, truth = make_frame(d / "small.fits", FrameSpec(shape=(256, 384)), seed=5)
    img = ScienceImage(path)
    bkg = img.calculate_bkg(box_size=64, filter_size=3, verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    return path, truth, bkg, rms, sha256(path)


def _unchanged(small):
    assert sha256(small[0]) == small[4]


# -- item 7: numbers, named ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(egain=-1), r"egain must be >= 0, got -1"),
    (dict(egain=math.nan), r"egain must be a finite number"),
    (dict(saturation_level=-5), r"saturation_level must be > 0, got -5"),
    (dict(saturation_level=0), r"saturation_level must be > 0, got 0"),
    (dict(seeing=0), r"seeing must be > 0, got 0"),
    (dict(seeing=math.nan), r"seeing must be a finite number, got nan"),
    (dict(kron_factor=-2.5), r"kron_factor must be > 0"),
    (dict(aperture_diameter_arcsec=[5, 1e5]), r"aperture diameters.*larger than the image"),
])
def test_sex_photometry_refuses_bad_numbers(small, private_tmpdir, kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        AP.sex_photometry(small[0], aperture_diameter_seeing=None, **{**Q, **kwargs})
    _unchanged(small)
    assert not list(private_tmpdir.iterdir())  # refused before any run directory


def test_egain_zero_means_unknown_gain(small):
    cat = AP.circular_photometry(small[0], 200.0, 100.0, egain=0, aperture_diameter_seeing=None,
                                 target_bkg=small[2], target_bkgrms=small[3],
                                 confusion_error=False, **Q)
    # no Poisson term (and no confusion term): FLUXERR is the sky noise alone
    assert cat.data["FLUXERR_APER"][0] == pytest.approx(cat.data["SKYSIG_APER"][0])


@pytest.mark.parametrize("x, y, unit, message", [
    ([1.0, math.nan], [1.0, 2.0], "pixel", r"x has 1 non-finite value"),
    ([1.0], [math.inf], "pixel", r"y has 1 non-finite value"),
    ([1e12], [10.0], "pixel", r"x \(pixels\) has 1 absurd value"),
    ([326.25], [100.0], "coord", r"y \(Dec, degrees\) must be within \[-90, 90\]"),
    ([1.0], [1.0], "furlong", r"unit must be 'pixel' or 'coord'"),
])
def test_forced_refuses_bad_positions(small, x, y, unit, message):
    with pytest.raises(ArgumentError, match=message):
        AP.circular_photometry(small[0], x, y, unit=unit, aperture_diameter_seeing=None, **Q)


def test_forced_position_on_the_far_side_of_the_sky_is_flagged_off(small):
    """A target far from the frame (its TAN projection undefined) is a row flagged off."""
    cat = AP.circular_photometry(small[0], [326.2509829204 + 180, 326.2509829204],
                                 [77.0, -77.26234951715], unit="coord",
                                 aperture_diameter_seeing=None, target_bkg=small[2],
                                 target_bkgrms=small[3], **Q).data
    assert list(cat["FLAGS"]) == [FLAG_OFF, 0]
    assert np.isnan(cat["FLUX_APER"][0]) and np.isfinite(cat["FLUX_APER"][1])


def test_forced_aperture_larger_than_image(small):
    with pytest.raises(ArgumentError, match=r"aperture_diameter.*larger than the image"):
        AP.circular_photometry(small[0], 10, 10, aperture_diameter_arcsec=[500],
                               aperture_diameter_seeing=None, **Q)
    with pytest.raises(ArgumentError, match=r"semi-major axis.*larger than the image"):
        AP.elliptical_photometry(small[0], 10, 10, 1000, 5, 0, **Q)
    with pytest.raises(ArgumentError, match=r"annulus_width_arcsec.*larger than the image"):
        AP.circular_photometry(small[0], 10, 10, aperture_diameter_arcsec=[5],
                               aperture_diameter_seeing=None, annulus_width_arcsec=1e4, **Q)


@pytest.mark.parametrize("kwargs, message", [
    (dict(box_size=0), r"box_size must be >= 1, got 0"),
    (dict(box_size=2.5), r"box_size must be a whole number, got 2.5"),
    (dict(box_size=1e9), r"box_size = 1000000000 is larger than the image \(384x256 pixels\)"),
    (dict(box_size=math.nan), r"box_size must be a finite number"),
    (dict(filter_size=0), r"filter_size must be >= 1, got 0"),
    (dict(filter_size=10**6), r"filter_size = 1000000 is larger than the 13 meshes"),
])
def test_calculate_bkg_refuses_bad_mesh(small, kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        ScienceImage(small[0]).calculate_bkg(verbose=False, **kwargs)


def test_mesh_larger_than_half_the_image_still_works(small):
    bkg = ScienceImage(small[0]).calculate_bkg(box_size=384, filter_size=1, verbose=False)
    assert bkg.shape == (256, 384) and np.isfinite(bkg.data).all()


@pytest.mark.parametrize("call, message", [
    (lambda img, b: calculate_bkgrms_from_propagation(img, b, egain=-1),
     r"egain must be >= 0"),
    (lambda img, b: img.calculate_bkgrms_from_propagation(b, ncombine=0, verbose=False),
     r"ncombine must be >= 1, got 0"),
    (lambda img, b: img.calculate_bkgrms_from_propagation(math.nan, verbose=False),
     r"target_bkg must be a finite number"),
    (lambda img, b: img.calculate_sourcemask(sigma=0, verbose=False), r"sigma must be > 0"),
    (lambda img, b: img.calculate_sourcemask(saturation_level=-1, verbose=False),
     r"saturation_level must be > 0"),
    (lambda img, b: img.calculate_circularmask(x_position=math.nan, y_position=3,
                                               radius_arcsec=5, unit="pixel", verbose=False),
     r"x has 1 non-finite value"),
    (lambda img, b: img.calculate_circularmask(x_position=3, y_position=3,
                                               radius_arcsec=-5, unit="pixel", verbose=False),
     r"radius_arcsec must be > 0, got -5"),
    (lambda img, b: img.calculate_circularmask(x_position=326.0, y_position=-95,
                                               radius_arcsec=5, verbose=False),
     r"y \(Dec, degrees\) must be within"),
])
def test_maps_and_masks_refuse_bad_numbers(small, call, message):
    with pytest.raises(ArgumentError, match=message):
        call(ScienceImage(small[0]), small[2])
    _unchanged(small)


@pytest.mark.parametrize("kwargs, message", [
    (dict(minarea_pixels=0), r"minarea_pixels must be >= 1, got 0"),
    (dict(deblend_contrast=2), r"deblend_contrast must be <= 1, got 2"),
    (dict(detection_sigma=math.inf), r"detection_sigma must be a finite number"),
    (dict(egain=-0.5), r"egain must be >= 0, got -0.5"),
])
def test_photutils_photometry_refuses_bad_numbers(small, kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        AP.photutils_photometry(small[0], **{**Q, **kwargs})


def test_empty_image_is_refused(tmp_path):
    p = tmp_path / "empty.fits"
    fits.writeto(p, np.zeros((0, 5), np.float32))
    with pytest.raises(ImageError, match=r"empty.fits: HDU 0 is an empty image \(shape 0x5\)"):
        ScienceImage(p)


# -- item 7: maps ----------------------------------------------------------------------------

def test_rms_map_with_zeros_is_refused_unless_masked(small):
    img = ScienceImage(small[0])
    zeros = small[3].data.copy()
    zeros[50:60, 50:60] = 0.0
    rms = Errormap(zeros, target_img=img.path)
    opts = dict(aperture_diameter_seeing=None, target_bkg=small[2], **Q)
    with pytest.raises(ImageError, match=r"target_bkgrms has 100 zero, negative or "
                                         r"non-finite pixel\(s\) outside the mask"):
        AP.sex_photometry(img, target_bkgrms=rms, **opts)
    with pytest.raises(ImageError, match=r"target_bkgrms has 100 zero, negative or "
                                         r"non-finite pixel\(s\) outside the mask"):
        AP.photutils_photometry(img, target_bkg=small[2], target_bkgrms=rms, **Q)
    # forced photometry checks the pixels it uses (no full-frame pass per call)
    with pytest.raises(ImageError, match=r"target_bkgrms has zero or negative pixels in the "
                                         r"aperture at x \d+:\d+, y \d+:\d+ \(not masked\)"):
        AP.circular_photometry(img, [200, 55], [100, 55], target_bkgrms=rms, **opts)
    mask = np.zeros(img.shape, bool)
    mask[50:60, 50:60] = True
    masked = AP.circular_photometry(img, [200, 55], [100, 55], target_bkgrms=rms,
                                    target_mask=mask, **opts).data
    ref = AP.circular_photometry(img, [200, 55], [100, 55], target_bkgrms=small[3],
                                 target_mask=mask, **opts).data
    assert masked["FLUX_APER"][0] == ref["FLUX_APER"][0]
    assert masked["FLUXERR_APER"][0] == ref["FLUXERR_APER"][0]
    assert masked["FLAGS"][1] & FLAG_MASKED and np.isnan(masked["FLUX_APER"][1])


def test_negative_rms_array_is_refused_naming_the_argument(small):
    neg = small[3].data.copy()
    neg[0, 0] = -1
    with pytest.raises(ImageError, match=r"target_bkgrms: background RMS map has 1 negative"):
        AP.circular_photometry(small[0], 200, 100, aperture_diameter_seeing=None,
                               target_bkgrms=neg, **Q)


def test_nan_background_pixels_are_refused_masked_or_flagged(small):
    img = ScienceImage(small[0])
    data = small[2].data.copy()
    data[100:104, 10:20] = np.nan
    bkg = Background(data, target_img=img.path)
    opts = dict(aperture_diameter_seeing=None, target_bkgrms=small[3], **Q)
    for call in (lambda: AP.sex_photometry(img, target_bkg=bkg, **opts),
                 lambda: AP.photutils_photometry(img, target_bkg=bkg, target_bkgrms=small[3],
                                                 **Q)):
        with pytest.raises(ImageError, match=r"target_bkg has 40 non-finite \(NaN or "
                                             r"infinite\) pixel\(s\)(:| outside the mask)"):
            call()
    # forced photometry: a NaN background at a position is flagged, never FLAGS 0
    cat = AP.circular_photometry(img, [200, 15], [100, 102], target_bkg=bkg, **opts).data
    assert list(cat["FLAGS"]) == [0, FLAG_BADSKY]
    assert np.isfinite(cat["FLUX_APER"][0]) and np.isnan(cat["FLUX_APER"][1])
    mask = np.isnan(data)
    # SExtractor sees masked pixels too (its global sky and local BACKGROUND change): refused
    with pytest.raises(ImageError, match=r"target_bkg has 40 non-finite \(NaN or infinite\) "
                                         r"pixel\(s\): fill them \(SExtractor sees them"):
        AP.sex_photometry(img, target_bkg=bkg, target_mask=mask, **opts)
    cat = AP.circular_photometry(img, [200, 15], [100, 102], target_bkg=bkg, target_mask=mask,
                                 **opts).data
    ref = AP.circular_photometry(img, [200, 15], [100, 102], target_bkg=small[2],
                                 target_mask=mask, **opts).data
    assert cat["FLUX_APER"][0] == ref["FLUX_APER"][0] and cat["FLAGS"][0] == 0
    assert cat["FLAGS"][1] == FLAG_MASKED and np.isnan(cat["FLUX_APER"][1])
    det = AP.photutils_photometry(img, target_bkg=bkg, target_bkgrms=small[3],
                                  target_mask=mask, **Q).data
    ref = AP.photutils_photometry(img, target_bkg=small[2], target_bkgrms=small[3],
                                  target_mask=mask, **Q).data
    assert len(det) == len(ref) > 0 and _same(det, ref)


def test_no_usable_sky_sets_a_flag_never_flags_zero_with_nan_flux(small):
    """The annulus entirely masked (the aperture not): the flux is NaN, and FLAGS say why."""
    img = ScienceImage(small[0])
    yy, xx = np.mgrid[0:256, 0:384]
    r = np.hypot(xx - 200, yy - 128)
    ring = (r > 12) & (r < 60)
    cat = AP.circular_photometry(img, [200, 300], [128, 60], aperture_diameter_arcsec=[5],
                                 aperture_diameter_seeing=None, annulus_width_arcsec=5,
                                 target_mask=ring, **Q).data
    assert cat["FLAGS"][0] == FLAG_BADSKY and np.isnan(cat["FLUX_APER"][0])
    assert cat["FLAGS"][1] == 0 and np.isfinite(cat["FLUX_APER"][1])
    bad = np.isnan(np.asarray(cat["FLUX_APER"]))
    assert (np.asarray(cat["FLAGS"])[bad] != 0).all()


# -- item 8 (pixels): truncated and garbage files ----------------------------------------------

def _truncated(src: Path, dst: Path, keep: int) -> Path:
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


def test_truncated_image_through_every_pixel_path(small, tmp_path):
    p = _truncated(small[0], tmp_path / "cut.fits", 2880 * 4 + 10000)
    before = sha256(p)
    img = ScienceImage(p)  # the header is intact
    message = r"cut.fits: truncated FITS file: HDU 0 needs \d+ bytes for its pixels, the file has"
    for call in (lambda: img.data, lambda: img.read_rows(0, 10), lambda: img.read_native(),
                 lambda: img.calculate_bkg(verbose=False),
                 lambda: img.calculate_bkg(estimator="sextractor", verbose=False),
                 lambda: AP.circular_photometry(img, 10, 10, aperture_diameter_seeing=None,
                                                target_bkg=100.0, **Q),
                 lambda: AP.photutils_photometry(img, **Q),
                 lambda: AP.sex_photometry(img, target_bkg=small[2].data,
                                           aperture_diameter_seeing=None, **Q)):
        with pytest.raises(ImageError, match=message):
            call()
    assert sha256(p) == before


@pytest.mark.parametrize("content, problem", [
    (b"", r"Empty or corrupt FITS file"),
    (bytes(np.random.default_rng(0).integers(0, 256, 5760, dtype=np.uint8)), r"No SIMPLE card"),
    (b"SIMPLE  =                    T" + b" " * 50 + b"NAXIS   =                    2" + b" " * 50,
     r"Empty or corrupt FITS file"),
])
def test_garbage_image_files(tmp_path, content, problem):
    p = tmp_path / "garbage.fits"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=rf"garbage.fits: not a readable FITS file \(.*{problem}"):
        AP.circular_photometry(p, 1, 1, aperture_diameter_seeing=None, **Q)


def test_image_truncated_after_opening(small, tmp_path):
    """The file cut short after the header was read: the pixels are refused, not misread."""
    p = tmp_path / "later.fits"
    p.write_bytes(small[0].read_bytes())
    img = ScienceImage(p)
    _truncated(small[0], p, 2880 * 5)
    with pytest.raises(ImageError, match=r"later.fits: truncated FITS file"):
        img.read_rows(200, 256)


def test_truncated_and_garbage_map_files(small, tmp_path):
    saved = small[3].save(tmp_path / "small.bkgrms")
    cut = _truncated(saved, tmp_path / "cut.bkgrms", 2880 * 3 + 100)
    with pytest.raises(ImageError, match=r"cut.bkgrms: truncated FITS background RMS map"):
        Errormap(cut)
    junk = tmp_path / "junk.bkgmap"
    junk.write_bytes(b"SIMPLE  = garbage" + bytes(range(256)) * 20)
    with pytest.raises(ImageError, match=r"junk.bkgmap: not a readable FITS background"):
        Background(junk)
    headonly = tmp_path / "head.srcmask"
    fits.PrimaryHDU().writeto(headonly)
    with pytest.raises(ImageError, match=r"head.srcmask: no pixels in the primary HDU"):
        Mask(headonly)
    before = sha256(cut)
    with pytest.raises(ImageError, match=r"cut.bkgrms: truncated"):
        AP.circular_photometry(small[0], 200, 100, aperture_diameter_seeing=None,
                               target_bkgrms=str(cut), **Q)
    assert sha256(cut) == before


# -- item 6: threads ---------------------------------------------------------------------------

def _same(a, b) -> bool:
    if a.colnames != b.colnames or len(a) != len(b):
        return False
    return all(np.array_equal(np.asarray(a[c]), np.asarray(b[c]), equal_nan=True)
               for c in a.colnames)


def test_four_threads_on_one_shared_image_with_maps(frame, tmp_path):
    """sex_photometry and circular_photometry from 4 threads on one ScienceImage (with saved
    maps and a mask) give exactly the sequential catalogues."""
    img = ScienceImage(frame[0])
    bkg = img.calculate_bkg(box_size=64, verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    bkg = Background(bkg.save(tmp_path / "f.bkgmap"))
    rms = Errormap(rms.save(tmp_path / "f.bkgrms"))
    m = np.zeros(img.shape, bool)
    m[100:180, 200:400] = True
    mask = Mask(m)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1536, 400), rng.uniform(0, 1024, 400)
    shared_img = ScienceImage(frame[0])
    opts = dict(target_bkg=bkg, target_bkgrms=rms, target_mask=mask,
                aperture_diameter_seeing=None, **Q)
    calls = {"sex": lambda im: AP.sex_photometry(im, **opts).data,
             "circ": lambda im: AP.circular_photometry(im, x, y, **opts).data}
    reference = {k: f(ScienceImage(frame[0])) for k, f in calls.items()}
    results, errors = [], []
    level_before = logging.getLogger("ezphot").level

    def work(kind):
        try:
            results.append((kind, calls[kind](shared_img)))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    for _ in range(2):
        threads = [threading.Thread(target=work, args=(k,))
                   for k in ("sex", "circ", "sex", "sex")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        shared_img.clear()
    assert not errors, errors
    assert logging.getLogger("ezphot").level == level_before  # verbose=False undone
    assert len(results) == 8
    for kind, table in results:
        assert _same(table, reference[kind]), kind


# -- item 9: chunks ----------------------------------------------------------------------------

def test_chunked_forced_photometry_equals_one_chunk(small, monkeypatch):
    """Chunks of at most 7 positions a few rows apart (sorted along y, rows read per chunk)
    give exactly the result of one chunk, in the caller's order."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-20, 404, 60), [5000.0]])
    y = np.concatenate([rng.uniform(-20, 276, 60), [-4000.0]])
    opts = dict(target_bkg=small[2], target_bkgrms=small[3], aperture_diameter_seeing=None, **Q)
    whole = AP.circular_photometry(small[0], x, y, **opts).data
    ellw = AP.elliptical_photometry(small[0], x, y, 4, 2, 30, **Q).data
    monkeypatch.setattr(forced, "_CHUNK", 7)
    monkeypatch.setattr(forced, "_BLOCK_BYTES", 384 * 4 * 60)  # and at most ~20 rows apart
    chunked = AP.circular_photometry(small[0], x, y, **opts).data
    ellc = AP.elliptical_photometry(small[0], x, y, 4, 2, 30, **Q).data
    assert _same(whole, chunked) and _same(ellw, ellc)
    assert whole["FLAGS"][-1] == FLAG_OFF
    # and equal to photutils directly on the same arrays
    from photutils.aperture import CircularAperture, aperture_photometry

    data = np.asarray(ScienceImage(small[0]).data, np.float32) - small[2].data
    d = AP.circular_photometry(small[0], x, y, **opts).meta["aperture_diameter_pixel"][0]
    ref = aperture_photometry(data, CircularAperture(np.column_stack([x, y])[:-1], r=d / 2))
    ok = np.asarray(whole["FLAGS"][:-1]) == 0
    assert ok.sum() > 40
    assert np.allclose(np.asarray(whole["FLUX_APER"][:-1])[ok],
                       np.asarray(ref["aperture_sum"])[ok], rtol=1e-6)


# -- item 10: command line, browser, datasets ---------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["photometry", "x", "--detection-sigma", "nan"],
    ["photometry", "x", "--detection-sigma=-3"],
    ["photometry", "x", "--aperture-arcsec", "5,-7"],
    ["photometry", "x", "--workers", "0"],
    ["forced", "x", "--ra", "1", "--dec", "inf"],
    ["demo", "--n-frames", "0"],
    ["demo", "--n-frames=-3"],
])
def test_cli_bad_numbers_exit_2_before_any_work(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_cli_unreachable_scheduler(small, tmp_path):
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "ezphot.cli", "photometry", str(tmp_path),
                          "--scheduler", "tcp://127.0.0.1:1"], capture_output=True, text=True,
                         timeout=30, cwd=ROOT)
    assert time.monotonic() - t0 < 10
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == ["ezphot photometry: error: --scheduler tcp://127.0.0.1:1: cannot connect "
                     "(Connection refused)"]


def test_cli_no_image_matched_and_positions_off_every_frame(small, tmp_path, capsys):
    from ezphot.datasets import FrameSpec, make_frame

    root = tmp_path / "scidata"
    path, _ = make_frame(spec=FrameSpec(shape=(128, 128)), seed=2, root=root)
    assert cli.main(["photometry", str(root), "--filter", "nosuchfilter"]) == 1
    assert "no image matches '*.fits'" in capsys.readouterr().err
    before = sha256(path)
    code = cli.main(["forced", str(root), "--ra=10", "--dec=-10", "--no-resume"])
    err = capsys.readouterr().err
    assert code == 1
    assert "position 0 (RA 10.0, Dec -10.0) is on none of the 1 frame(s)" in err
    assert "none of the 1 position(s) falls on any" in err
    assert sha256(path) == before and not Path(f"{path}.circ.cat").exists()


def test_browser_reports_unreadable_folders(small, tmp_path):
    """A dangling link where a folder is expected (root reads chmod-000 folders anyway)."""
    from ezphot.datasets import FrameSpec, make_frame
    from ezphot.utils import DataBrowser

    root = tmp_path / "scidata"
    good, _ = make_frame(spec=FrameSpec(shape=(64, 64)), seed=2, root=root)
    broken = good.parents[1] / "7DT99"
    broken.symlink_to(tmp_path / "gone")
    b = DataBrowser(root)
    from ezphot.exceptions import SkippedInputWarning

    with pytest.warns(SkippedInputWarning, match=r"1 folder\(s\) of .* could not be read.*7DT99: "
                                         r"dangling symbolic link"):
        found = b.search("*.fits")
    assert found == [good]
    assert b.failed == [(str(broken), "dangling symbolic link, not a folder")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a non-root subprocess")
def test_browser_reports_permission_denied_as_non_root(tmp_path_factory):
    """chmod 000 does not stop root: the search runs in a subprocess as user 'nobody'."""
    import tempfile

    from ezphot.datasets import FrameSpec, make_frame

    base = Path(tempfile.mkdtemp(prefix="ezphot-browse-"))
    locked = base / "none"
    try:
        base.chmod(0o755)
        good, _ = make_frame(spec=FrameSpec(shape=(64, 64)), seed=2, root=base / "scidata")
        locked = good.parents[1] / "7DT77"
        locked.mkdir()
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        locked.chmod(0o000)
        code = ("import warnings, json; from ezphot.utils import DataBrowser\n"
                f"b = DataBrowser({str(base / 'scidata')!r})\n"
                "with warnings.catch_warnings(record=True) as w:\n"
                "    warnings.simplefilter('always'); found = b.search('*.fits')\n"
                "print(json.dumps([[str(p) for p in found], b.failed, "
                "[str(x.message) for x in w]]))")
        try:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 cwd=base, user=65534, timeout=60,
                                 env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(base)})
        except PermissionError as exc:  # e.g. the interpreter lives under /root
            pytest.skip(f"user nobody cannot run {sys.executable}: {exc}")
        if out.returncode != 0 and "Permission denied" in out.stderr:
            pytest.skip(f"user nobody cannot run the interpreter: {out.stderr[-200:]}")
        import json

        found, failed, warned = json.loads(out.stdout.strip().splitlines()[-1])
        assert found == [str(good)]
        assert failed == [[str(locked), "cannot be read: Permission denied"]]
        assert "7DT77: cannot be read: Permission denied" in warned[0]
    finally:
        import shutil

        if locked.exists():
            locked.chmod(0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize("field, value", [("objname", ".."), ("objname", "../../etc"),
                                           ("filter", "/tmp/x"), ("telname", "a\\b"),
                                           ("filter", "m600\n")])
def test_datasets_refuse_names_escaping_the_root(tmp_path, field, value):
    from ezphot.datasets import FrameSpec, make_sample_tree

    with pytest.raises(ArgumentError, match=rf"{field} .* cannot be used as a file or folder"):
        FrameSpec(**{field: value})
    spec = FrameSpec(shape=(32, 32))
    setattr(spec, field, value)  # changed after construction: refused when used
    with pytest.raises(ArgumentError, match=field):
        spec.tree_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []
    make_sample_tree(tmp_path / "ok", 1, shape=(32, 32))  # ordinary names still work


# -- property-based: any float is a valid result or the documented exception ---------------------

@SETTINGS
@given(egain=ANY_FLOAT, seeing=ANY_FLOAT, diameter=ANY_FLOAT, x=ANY_FLOAT, y=ANY_FLOAT)
def test_property_circular_photometry_numbers(small, egain, seeing, diameter, x, y):
    try:
        cat = AP.circular_photometry(small[0], x, y, egain=egain, seeing=seeing,
                                     aperture_diameter_arcsec=[diameter],
                                     aperture_diameter_seeing=[2.0], target_bkg=small[2],
                                     target_bkgrms=small[3], **Q)
    except (ArgumentError, ImageError):
        return
    t = cat.data
    assert len(t) == 1
    assert math.isfinite(t["FLUX_APER"][0]) == (t["FLAGS"][0] == 0)


@SETTINGS
@given(box=st.one_of(ANY_FLOAT, st.integers(-5, 10**7)),
       filt=st.one_of(ANY_FLOAT, st.integers(-5, 10**7)))
def test_property_calculate_bkg_sizes(small, box, filt):
    img = ScienceImage(small[0])
    try:
        bkg = img.calculate_bkg(box_size=box, filter_size=filt, verbose=False)
    except ArgumentError:
        return
    assert bkg.shape == img.shape and np.isfinite(bkg.data).all()


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(egain=ANY_FLOAT, saturation=ANY_FLOAT, seeing=ANY_FLOAT)
def test_property_sex_photometry_numbers(small, egain, saturation, seeing):
    try:
        cat = AP.sex_photometry(small[0], egain=egain, saturation_level=saturation,
                                seeing=seeing, aperture_diameter_arcsec=[5],
                                aperture_diameter_seeing=None, **Q)
    except ArgumentError:
        assert not (egain >= 0 and saturation > 0 and seeing > 0
                    and all(map(math.isfinite, (egain, saturation, seeing))))
        return
    assert len(cat.data) > 0


@SETTINGS
@given(x=ANY_FLOAT, y=ANY_FLOAT, radius=ANY_FLOAT)
def test_property_circularmask(small, x, y, radius):
    img = ScienceImage(small[0])
    try:
        m = img.calculate_circularmask(x_position=x, y_position=y, radius_arcsec=radius,
                                       unit="pixel", verbose=False)
    except ArgumentError:
        return
    assert m.shape == img.shape and m.data.dtype == bool


def test_every_refusal_is_an_ezphot_value_error():
    assert issubclass(ArgumentError, EzphotError) and issubclass(ArgumentError, ValueError)


@SETTINGS
@given(sma=ANY_FLOAT, smi=ANY_FLOAT, theta=ANY_FLOAT,
       ratio=st.one_of(st.none(), ANY_FLOAT))
def test_property_elliptical_photometry_shapes(small, sma, smi, theta, ratio):
    try:
        cat = AP.elliptical_photometry(small[0], 200.0, 120.0, sma, smi, theta,
                                       annulus_ratio=ratio, target_bkgrms=small[3], **Q)
    except ArgumentError:
        return
    t = cat.data
    assert len(t) == 1 and t["SMA_IMAGE"][0] >= t["SMI_IMAGE"][0] > 0
    assert math.isfinite(t["FLUX_ELIP"][0]) == (t["FLAGS"][0] == 0)


def test_chunked_annulus_photometry_equals_one_chunk(small, monkeypatch):
    """The annulus sky masks its neighbours with a deep mask of the tile around it: built on
    the whole frame, not on the few rows a chunk reads, so chunks change nothing."""
    rng = np.random.default_rng(2)
    x, y = rng.uniform(30, 354, 40), rng.uniform(30, 226, 40)
    opts = dict(annulus_width_arcsec=3, aperture_diameter_arcsec=[5, 7],
                aperture_diameter_seeing=None, **Q)
    whole = AP.circular_photometry(small[0], x, y, **opts).data
    monkeypatch.setattr(forced, "_CHUNK", 5)
    monkeypatch.setattr(forced, "_BLOCK_BYTES", 384 * 4 * 80)  # chunks of a few dozen rows
    chunked = AP.circular_photometry(small[0], x, y, **opts).data
    assert np.isfinite(np.asarray(whole["FLUX_APER"])).sum() > 30
    assert _same(whole, chunked)
