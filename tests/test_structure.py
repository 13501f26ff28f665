"""Structure (issue 14): image descriptors in batches, the method registry, one name per idea.

- A batch measures the HDU it is given: a multi-extension file made here from two generated
  frames (different scenes), compared with each frame measured on its own.
- The registry is what batch, façade, CLI and saving read.
- The tutorial's spellings still work, with an AstropyDeprecationWarning; old and new name
  together is an error.
"""

from __future__ import annotations

import inspect
import pickle
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyDeprecationWarning

from ezphot.batch import METHODS as BATCH_METHODS
from ezphot.batch import catalog_suffix, run_batch
from ezphot.imageobjects import ImageDescriptor, ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.photometry.registry import METHODS, get_method

QUIET = dict(save=False, verbose=False, visualize=False)


@pytest.fixture(scope="module")
def mef(tmp_path_factory):
    """Two small generated frames (different scenes): alone, and as HDU 0 and HDU 1 of one
    file."""
    from ezphot.datasets import FrameSpec, make_frame

    d = tmp_path_factory.mktemp("mef")
    spec = FrameSpec(shape=(400, 500), star_density=3.0)
    a, ta = make_frame(d / "a.fits", spec, seed=3)
    b, tb = make_frame(d / "b.fits", spec, seed=4)
    path = d / "mef.fits"
    with fits.open(a) as ha, fits.open(b) as hb:
        ext = fits.ImageHDU(hb[0].data, header=hb[0].header)
        fits.HDUList([fits.PrimaryHDU(ha[0].data, header=ha[0].header), ext]).writeto(path)
    return path, a, b, tb


def _positions(truth, n=12):
    stars = truth[(truth["TYPE"] == "star") & (truth["X"] > 20) & (truth["X"] < 480)
                  & (truth["Y"] > 20) & (truth["Y"] < 380)]
    stars.sort("MAG")
    stars = stars[:n]  # the brightest
    assert len(stars) >= 3
    return np.asarray(stars["X"], float), np.asarray(stars["Y"], float)


def test_descriptor_is_small_picklable_and_keeps_the_hdu(mef):
    path = mef[0]
    img = ScienceImage(f"{path}[1]")
    d = img.descriptor()
    assert (d.hdu, d.kind, d.label) == (1, "science", f"{path}[1]")
    back = pickle.loads(pickle.dumps(d))
    assert back == d and len(pickle.dumps(d)) < 500
    opened = back.open()
    assert opened.hdu == 1 and np.array_equal(opened.data, img.data)
    assert ImageDescriptor.of(f"{path}[1]").open().hdu == 1
    assert ImageDescriptor.of(img) == d


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_measures_the_given_extension(mef, tmp_path, monkeypatch, workers):
    """``ScienceImage('mef.fits[1]')`` in a batch is measured on HDU 1 (it was HDU 0)."""
    path, alone_a, alone_b, truth_b = mef
    monkeypatch.setenv("EZPHOT_OUTPUT_DIR", str(tmp_path / "out"))
    x, y = _positions(truth_b)
    opts = dict(x=x, y=y, aperture_diameter_arcsec=[5], aperture_diameter_seeing=None,
                annulus_width_arcsec=3)
    summary = run_batch([ScienceImage(f"{path}[1]")], "circular", workers=workers,
                        resume=False, progress=False, **opts)
    assert list(summary["status"]) == ["done"], summary["error"][0]
    assert summary["image"][0] == f"{path}[1]"
    from ezphot.dataobjects import Catalog

    got = Catalog(summary["catalog"][0])
    assert got.meta["provenance"]["input"]["hdu"] == 1
    ap = AperturePhotometry()
    want_b = ap.circular_photometry(str(alone_b), **opts, **QUIET)
    want_a = ap.circular_photometry(str(alone_a), **opts, **QUIET)
    np.testing.assert_allclose(got.data["FLUX_APER"], want_b.data["FLUX_APER"], rtol=1e-10)
    # the stars of frame B are not in frame A: measuring HDU 0 would have given other fluxes
    assert np.median(np.abs(want_a.data["FLUX_APER"] - want_b.data["FLUX_APER"])) > \
        10 * np.median(want_b.data["FLUXERR_APER"])


def test_batch_sextractor_on_extension_equals_the_frame_alone(mef, tmp_path, monkeypatch):
    path, _, alone_b, _ = mef
    monkeypatch.setenv("EZPHOT_OUTPUT_DIR", str(tmp_path / "out"))
    opts = dict(detection_sigma=5, aperture_diameter_arcsec=[5], aperture_diameter_seeing=None,
                detection_filter="default")
    summary = run_batch([f"{path}[1]"], "sextractor", workers=1, resume=False, progress=False,
                        **opts)
    assert list(summary["status"]) == ["done"], summary["error"][0]
    alone = AperturePhotometry().sex_photometry(str(alone_b), **opts, **QUIET)
    assert summary["sources"][0] == len(alone.data) > 10


def test_two_extensions_keep_two_catalogues(mef, tmp_path, monkeypatch):
    """Both HDUs of one file in one batch: two catalogues, each with its own HDU's numbers."""
    path, alone_a, alone_b, truth_b = mef
    monkeypatch.setenv("EZPHOT_OUTPUT_DIR", str(tmp_path / "out"))
    x, y = _positions(truth_b, n=4)
    opts = dict(x=x, y=y, aperture_diameter_arcsec=[5], aperture_diameter_seeing=None)
    summary = run_batch([f"{path}[0]", f"{path}[1]"], "circular", workers=1, resume=False,
                        progress=False, **opts)
    assert list(summary["status"]) == ["done", "done"]
    assert summary["catalog"][0] != summary["catalog"][1]
    assert ".hdu1." in summary["catalog"][1]
    from ezphot.dataobjects import Catalog

    for row, alone in zip(summary, (alone_a, alone_b), strict=False):
        want = AperturePhotometry().circular_photometry(str(alone), **opts, **QUIET)
        got = Catalog(row["catalog"])
        np.testing.assert_allclose(got.data["FLUX_APER"], want.data["FLUX_APER"], rtol=1e-10)


def test_two_extensions_keep_two_maps(mef, tmp_path, monkeypatch):
    """Saved maps of HDU 0 and HDU 1 of one file (same shape) are two files, each found again
    by its own extension, in a batch with ``use_saved_maps`` too; a map of one extension given
    for the other is refused (it would pass the shape check)."""
    from ezphot.exceptions import ImageError

    path = mef[0]
    monkeypatch.setenv("EZPHOT_OUTPUT_DIR", str(tmp_path / "out"))
    hdu0, hdu1 = ScienceImage(f"{path}[0]"), ScienceImage(f"{path}[1]")
    bkg0 = hdu0.calculate_bkg(box_size=64, save=True, verbose=False)
    bkg1 = hdu1.calculate_bkg(box_size=64, save=True, verbose=False)
    assert bkg0.path != bkg1.path and ".hdu1." in bkg1.path.name
    assert fits.getheader(bkg1.path)["EZHDU"] == 1
    # independently: the same estimate on HDU 1's pixels alone
    alone = ScienceImage(str(mef[2])).calculate_bkg(box_size=64, verbose=False)
    np.testing.assert_array_equal(hdu1.bkgmap.data, alone.data)
    assert not np.array_equal(hdu0.bkgmap.data, hdu1.bkgmap.data)
    assert hdu1.bkgmap.target_hdu == 1 and hdu0.bkgmap.target_hdu == 0
    with pytest.raises(ImageError, match=r"belongs to .*mef.fits\[0\], not to .*mef.fits\[1\]"):
        AperturePhotometry().circular_photometry(hdu1, x=[100.0], y=[100.0],
                                                 target_bkg=hdu0.bkgmap, **QUIET)
    # a map given by its file name says its HDU in its header (EZHDU)
    by_name = AperturePhotometry().circular_photometry(hdu1, x=[100.0], y=[100.0],
                                                       target_bkg=str(bkg1.path), **QUIET)
    assert np.isfinite(by_name.data["FLUX_APER"][0])
    with pytest.raises(ImageError, match="belongs to"):
        AperturePhotometry().circular_photometry(hdu0, x=[100.0], y=[100.0],
                                                 target_bkg=str(bkg1.path), **QUIET)
    opts = dict(x=[100.0, 250.0], y=[100.0, 200.0], aperture_diameter_arcsec=[5],
                aperture_diameter_seeing=None)
    summary = run_batch([f"{path}[1]"], "circular", workers=1, resume=False, progress=False,
                        use_saved_maps=True, **opts)
    assert list(summary["status"]) == ["done"], summary["error"][0]
    from ezphot.dataobjects import Catalog

    got = Catalog(summary["catalog"][0]).data["FLUX_APER"]
    want = AperturePhotometry().circular_photometry(hdu1, target_bkg=bkg1, **opts, **QUIET)
    np.testing.assert_array_equal(got, want.data["FLUX_APER"])


def test_registry_is_what_everyone_reads():
    assert BATCH_METHODS == tuple(METHODS)
    AperturePhotometry()  # the façade's signatures are completed by its first instance
    for name, spec in METHODS.items():
        assert catalog_suffix(name) == spec.suffix
        assert callable(spec.func) and spec.func.__name__ == spec.facade_name
        # the façade shows the core function's parameters and defaults, adds only three
        facade = inspect.signature(getattr(AperturePhotometry, spec.facade_name))
        core = inspect.signature(spec.func)
        extra = set(facade.parameters) - set(core.parameters)
        assert extra == {"self", "verbose", "visualize", "save_fig"}
        for p in core.parameters.values():
            assert facade.parameters[p.name].default == p.default
        for t in spec.targets:
            assert t in core.parameters
    assert len({m.suffix for m in METHODS.values()}) == len(METHODS)
    with pytest.raises(ValueError, match="method must be one of"):
        get_method("aperture")
    from ezphot.cli import main

    try:  # forced photometry is not a detection method: refused as a bad argument
        rc = main(["photometry", "nowhere", "--method", "circular"])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2


def test_resume_key_ignores_process_counts(mef):
    from ezphot.photometry.common import provenance

    img = ScienceImage(mef[1])
    one = provenance("photutils", img, {"nproc": 1})
    two = provenance("photutils", img, {"nproc": 2})
    assert one == two
    assert provenance("photutils", img, {"detection_sigma": 2.0}) != one


def test_defaults_come_from_the_profile(mef):
    img = ScienceImage(mef[1])  # a 7DT frame: profile saturation 60000, mask level 50000
    assert (img.profile.saturation, img.profile.mask_saturation) == (60000.0, 50000.0)
    sig = inspect.signature(AperturePhotometry.sex_photometry)
    assert sig.parameters["saturation_level"].default is None
    assert inspect.signature(ScienceImage.calculate_sourcemask).parameters[
        "saturation_level"].default is None
    mask = img.calculate_sourcemask(sigma=5, verbose=False)
    assert mask.header["MASKSAT"] == 50000.0


# -- one name per idea: old spellings are deprecated aliases ------------------------------------
def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_old_position_and_shape_names_warn_and_agree(mef):
    img = ScienceImage(mef[2])
    x, y = _positions(mef[3], n=3)
    ap = AperturePhotometry()
    new = ap.circular_photometry(img, x=x, y=y, aperture_diameter_arcsec=[5], **QUIET)
    with pytest.warns(AstropyDeprecationWarning, match="'x_arr' is deprecated, use 'x'"):
        old = ap.circular_photometry(img, x_arr=x, y_arr=y, aperture_diameter_arcsec=[5],
                                     **QUIET)
    _same(old.data["FLUX_APER"], new.data["FLUX_APER"])
    kw = dict(unit="pixel")
    new = ap.elliptical_photometry(img, x, y, 4.0, 2.0, 30.0, **kw, **QUIET)
    with pytest.warns(AstropyDeprecationWarning) as rec:
        old = ap.elliptical_photometry(img, x_arr=x, y_arr=y, sma_arr=4.0, smi_arr=2.0,
                                       theta_arr=30.0, **kw, **QUIET)
    assert {str(w.message).split("'")[1] for w in rec} >= {"x_arr", "y_arr", "sma_arr",
                                                           "smi_arr", "theta_arr"}
    _same(old.data["FLUX_ELIP"], new.data["FLUX_ELIP"])
    with pytest.raises(TypeError, match="both 'x' and its deprecated alias 'x_arr'"):
        ap.circular_photometry(img, x=x, x_arr=x, y=y, **QUIET)
    # the core function too
    from ezphot.photometry.forced import circular_photometry

    with pytest.warns(AstropyDeprecationWarning):
        circular_photometry(img, x_arr=x, y_arr=y, aperture_diameter_arcsec=[5], save=False)


def test_old_mask_names_warn_and_agree(mef):
    img = ScienceImage(mef[2])
    new = img.calculate_circularmask(x=250, y=200, radius_arcsec=20, unit="pixel",
                                     verbose=False)
    with pytest.warns(AstropyDeprecationWarning, match="'x_position' is deprecated"):
        old = img.calculate_circularmask(x_position=250, y_position=200, radius_arcsec=20,
                                         unit="pixel", verbose=False)
    _same(old.data, new.data)
    assert 0 < new.data.sum()
    with pytest.warns(AstropyDeprecationWarning, match="'target_srcmask' is deprecated"):
        both = img.calculate_circularmask(target_srcmask=new, x=100, y=100, radius_arcsec=5,
                                          unit="pixel", verbose=False)
    assert both.data.sum() > new.data.sum() and not (new.data & ~both.data).any()
    with pytest.raises(TypeError, match="'target_mask' and its deprecated alias"):
        img.calculate_circularmask(new, target_srcmask=new, x=1, y=1, radius_arcsec=1,
                                   unit="pixel", verbose=False)
    bkg_new = img.calculate_bkg(target_mask=new, box_size=64, verbose=False, deep_mask=False)
    with pytest.warns(AstropyDeprecationWarning):
        bkg_old = img.calculate_bkg(target_srcmask=new, box_size=64, verbose=False,
                                    deep_mask=False)
    _same(bkg_old.data, bkg_new.data)


def test_old_picture_and_noise_names_warn_and_agree(mef):
    import matplotlib.pyplot as plt

    from ezphot.background import poisson_skew_correction
    from ezphot.profiles import get_profile

    img = ScienceImage(mef[2])
    fig, ax = img.show_position(250, 200, unit="pixel", a=6, b=3, theta=30)
    new_patch = ax.patches[0]
    with pytest.warns(AstropyDeprecationWarning, match="'coord_type' is deprecated"):
        fig2, ax2 = img.show_position(250, 200, coord_type="pixel", a_arcsec=6, b_arcsec=3,
                                      theta_deg=30)
    old_patch = ax2.patches[0]
    assert (old_patch.width, old_patch.height, old_patch.angle) == \
        (new_patch.width, new_patch.height, new_patch.angle)
    np.testing.assert_allclose([new_patch.width, new_patch.height, new_patch.angle],
                               [12.0, 6.0, 30.0])
    with pytest.warns(AstropyDeprecationWarning):
        fig3, _ = img.show(coord_type="pixel", downsample=8)
    plt.close("all")
    with pytest.warns(AstropyDeprecationWarning, match="'rdnoise_e' is deprecated"):
        old = poisson_skew_correction(np.array([20.0]), 0.26, rdnoise_e=6.0)
    _same(old, poisson_skew_correction(np.array([20.0]), 0.26, rdnoise=6.0))
    p = get_profile("7DT_C361K_HIGH_1x1")
    with pytest.warns(AstropyDeprecationWarning):
        assert p.read_noise == p.rdnoise == 6.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names are silent
        img.calculate_circularmask(x=250, y=200, radius_arcsec=2, unit="pixel", verbose=False)
