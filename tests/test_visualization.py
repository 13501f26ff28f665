"""Pictures and messages as a notebook user gets them: ax=, binning, no figure left open on
Agg, verbose messages per thread through logging."""

from __future__ import annotations

import logging
import re
import threading

import matplotlib
import numpy as np
import pytest

from ezphot.datasets import FrameSpec, make_frame
from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    paths = []
    for i, tel in enumerate(["7DT14", "7DT16"]):
        spec = FrameSpec(shape=(300, 400), telname=tel)
        paths.append(make_frame(root / f"frame_{tel}.fits", spec, seed=3, noise_seed=i)[0])
    return paths


def test_headless_pictures_leave_no_open_figure(small):
    import matplotlib.pyplot as plt

    assert matplotlib.get_backend().lower() == "agg"
    before = plt.get_fignums()
    img = ScienceImage(small[0])
    img.show("coord")
    img.show_position(100.0, 100.0, radius_arcsec=5)
    img.calculate_bkg(visualize=True, verbose=False)
    cat = AperturePhotometry().circular_photometry(img, [100.0], [120.0], save=False,
                                                   verbose=False, visualize=True)
    assert cat.figure is not None
    assert plt.get_fignums() == before


def test_ax_is_used_and_frame_binned(small):
    from matplotlib.figure import Figure

    img = ScienceImage(small[0])
    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    fig2, ax2 = img.show(ax=ax, downsample=4)
    assert fig2 is fig and ax2 is ax
    (im,) = ax.images
    shown = np.asarray(im.get_array())
    assert shown.shape == (300 // 4, 400 // 4)
    # block means, not every 4th pixel
    np.testing.assert_allclose(shown[3, 5], img.data[12:16, 20:24].mean(), rtol=1e-5)
    assert im.get_extent() == pytest.approx((-0.5, 399.5, -0.5, 299.5))
    # WCS axes are needed for 'coord'
    with pytest.raises(ValueError, match="WCSAxes"):
        img.show("coord", ax=Figure().add_subplot(1, 1, 1))
    wfig = Figure()
    wax = wfig.add_subplot(1, 1, 1, projection=img.wcs)
    assert img.show("coord", ax=wax)[1] is wax
    pfig = Figure()
    pax = pfig.add_subplot(1, 1, 1)
    assert img.show_position(50.0, 60.0, radius_arcsec=4, ax=pax)[1] is pax


def test_verbose_messages_per_thread(small, capsys):
    """Two threads at once: the verbose one's lines appear, the quiet one's never do, and the
    ezphot logger is left as it was."""
    logger = logging.getLogger("ezphot")
    state = (logger.level, logger.propagate, list(logger.handlers))
    loud, quiet = ScienceImage(small[0]), ScienceImage(small[1])
    errors = []
    start = threading.Barrier(2)

    def run(img, verbose):
        try:
            start.wait()
            for _ in range(3):
                img.calculate_bkg(verbose=verbose, box_size=64, deep_mask=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(loud, True)),
               threading.Thread(target=run, args=(quiet, False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line]
    assert sum(f"[INFO] {loud.path}: background" in line for line in lines) == 3
    assert str(quiet.path) not in out
    assert (logger.level, logger.propagate, list(logger.handlers)) == state
    # after the calls, INFO stays silent as the user configured it
    logging.getLogger("ezphot.background").info("nothing to see")
    assert "nothing to see" not in capsys.readouterr().out


def test_user_logging_configuration_is_respected(small, caplog):
    """verbose=False means warnings only, and the warnings reach the user's handlers; an
    assumption (read noise from the profile) is INFO: it reaches a handler configured for
    INFO, not one for warnings."""
    img = ScienceImage(small[0])
    with caplog.at_level(logging.WARNING):
        img.calculate_bkgrms_from_propagation(img.calculate_bkg(verbose=False), verbose=False)
        logging.getLogger("ezphot.photometry.forced").warning("a warning to act on")
    assert "read noise 6.0 e- from the telescope profile" not in caplog.text
    assert "a warning to act on" in caplog.text
    assert "background 4" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ezphot"):
        img.calculate_bkgrms_from_propagation(img.calculate_bkg(verbose=True), verbose=True)
    (record,) = [r for r in caplog.records if "read noise 6.0 e- from the telescope" in r.msg
                 % r.args]
    assert record.levelno == logging.INFO


def test_overlapping_calls_keep_their_own_verbosity(capsys):
    """Deterministic overlap: both threads are inside their calls when each logs."""
    from ezphot.imageobjects.scienceimage import verbosity

    logger = logging.getLogger("ezphot")
    state = (logger.level, logger.propagate, list(logger.handlers))
    inside, logged = threading.Barrier(2), threading.Barrier(2)
    log = logging.getLogger("ezphot.photometry.forced")

    def run(name, verbose, first):
        if not first:
            inside.wait()  # enter second, leave first: exercises the shared bookkeeping
        with verbosity(verbose):
            if first:
                inside.wait()
            log.info("%s: working", name)
            logged.wait()

    threads = [threading.Thread(target=run, args=("loud", True, True)),
               threading.Thread(target=run, args=("quiet", False, False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = capsys.readouterr().out
    assert out == "[INFO] loud: working\n"
    assert (logger.level, logger.propagate, list(logger.handlers)) == state


def test_forced_pictures_are_cutouts_with_true_apertures(small):
    from matplotlib.patches import Circle, Ellipse

    img = ScienceImage(small[0])
    ap = AperturePhotometry()
    xs, ys = [100.0, 250.5, 390.0], [120.0, 80.2, 150.0]
    cat = ap.circular_photometry(img, xs, ys, aperture_diameter_arcsec=[5, 10],
                                 aperture_diameter_seeing=[], save=False, verbose=False,
                                 visualize=True)
    axes = cat.figure.axes
    assert len(axes) == 3
    diam = np.asarray(cat.meta["aperture_diameter_pixel"])
    np.testing.assert_allclose(diam, np.array([5, 10]) / img.pixelscale)
    for a, row in zip(axes, cat.data, strict=False):
        circles = [p for p in a.patches if isinstance(p, Circle)]
        assert [c.radius for c in circles] == pytest.approx(list(diam / 2))
        assert all(c.center == pytest.approx((row["X_IMAGE"], row["Y_IMAGE"])) for c in circles)
        # a cut-out, not the frame: a few aperture radii around the position
        (x0, x1), (y0, y1) = a.get_xlim(), a.get_ylim()
        assert x1 - x0 < 6.5 * diam.max() / 2 + 3 and x0 < row["X_IMAGE"] < x1
        assert abs(y1 - y0) < 6.5 * diam.max() / 2 + 3
        assert min(y0, y1) < row["Y_IMAGE"] < max(y0, y1)
        first = a.texts[0].get_text().splitlines()[0]
        flux, err = float(row["FLUX_APER"]), float(row["FLUXERR_APER"])
        shown = re.search(r"(-?[0-9.]+) ± ([0-9.]+) ct", first)
        assert float(shown[1]) == pytest.approx(flux, abs=0.51)
        assert float(shown[2]) == pytest.approx(err, abs=0.51)
        if flux >= 3 * err:
            assert "< " not in first
        else:
            assert f"< {float(row['UL5_APER']):.2f} mag (5σ)" in first
    cat = ap.elliptical_photometry(img, [200.0], [150.0], [6.0], [3.0], [30.0], save=False,
                                   verbose=False, visualize=True)
    (a,) = cat.figure.axes
    (ell,) = [p for p in a.patches if isinstance(p, Ellipse)]
    assert (ell.width, ell.height, ell.angle) == pytest.approx((12.0, 6.0, 30.0))
    assert ell.center == pytest.approx((200.0, 150.0))
    # the local-sky annulus at its true size: photutils' own annulus radii / the scaled ellipse
    cat = ap.circular_photometry(img, [200.0], [150.0], aperture_diameter_arcsec=[5],
                                 aperture_diameter_seeing=[], annulus_width_arcsec=4,
                                 save=False, verbose=False, visualize=True)
    r_in, r_out = cat.meta["annulus_pixel"]
    assert r_out - r_in == pytest.approx(4 / img.pixelscale)
    (a,) = cat.figure.axes
    dashed = sorted(p.radius for p in a.patches if isinstance(p, Circle) and p.get_linestyle()
                    == "--")
    assert dashed == pytest.approx([r_in, r_out])
    (x0, x1) = a.get_xlim()
    assert x1 - x0 > 2 * r_out
    cat = ap.elliptical_photometry(img, [200.0], [150.0], [6.0], [3.0], [30.0], save=False,
                                   annulus_ratio=2.0, verbose=False, visualize=True)
    outer = [p for p in cat.figure.axes[0].patches if isinstance(p, Ellipse)
             and p.get_linestyle() == "--"]
    assert [(p.width, p.height, p.angle) for p in outer] == [pytest.approx((24.0, 12.0, 30.0))]


def test_detection_picture_zoom(small):
    from ezphot.visualization import plot_catalog

    cat = AperturePhotometry().sex_photometry(small[0], save=False, verbose=False,
                                              visualize=False)
    fig = plot_catalog(cat, zoom=(200, 150, 40))
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((159.5, 240.5)) and ax.images[0].get_array().shape \
        == (81, 81)
    assert len(ax.collections[0].get_offsets()) == len(cat.data)


def test_light_curve_labels():
    from astropy.table import Table
    from matplotlib.figure import Figure

    from ezphot.photometry.lightcurve import plot_light_curve

    t = Table(dict(TARGET=[0, 0, 0], FILTER=["m600", "m600", "m625"],
                   MJD=[60924.12, 60925.5, 60926.25], RA=[326.25] * 3, DEC=[-77.26] * 3,
                   MAG_APER=[16.0, 16.2, 99.0], MAGERR_APER=[0.02, 0.03, 0.0],
                   UL5_APER=[20.0, 20.1, 19.5], DETECTED=[True, True, False]))
    t.meta["aperture_diameter_arcsec"] = [5.0]
    fig = plot_light_curve(t, zeropoint=28.0)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "MJD − 60924 [days]"
    assert ax.get_ylabel() == "m600, m625 magnitude (zero point 28.000)"
    np.testing.assert_allclose(ax.containers[0].lines[0].get_xdata(), [0.12, 1.5])
    assert '5" aperture' in ax.get_title()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"m600", "m625 5σ limit"}
    own = Figure().add_subplot(1, 1, 1)
    fig = plot_light_curve(t, time="date", zeropoint="EZZP", ax=own)
    assert fig is own.figure and own.get_xlabel() == "date (UTC)"
    assert "zero point: header EZZP" in own.get_ylabel()
    assert len([a for a in own.texts if getattr(a, "arrow_patch", None) is not None]) == 1


def test_help_signatures_are_plain(capsys):
    import inspect
    import pydoc

    ap = AperturePhotometry()
    sig = str(inspect.signature(ap.circular_photometry))
    assert sig.startswith("(target_img, x, y, *, aperture_diameter_arcsec=(5, 7, 10)")
    assert "'" not in sig.replace("'pixel'", "").replace("'exact'", "") and ":" not in sig
    text = pydoc.render_doc(ap.sex_photometry, renderer=pydoc.plaintext)
    assert "self" not in text.splitlines()[2] and "'bool'" not in text
    show = pydoc.render_doc(ScienceImage.show, renderer=pydoc.plaintext)
    assert "show(self, unit='pixel', scale='zscale', downsample=4, figsize=(8, 6), *, " \
        "ax=None)" in show
    ap.help()
    out = capsys.readouterr().out
    assert "- elliptical_photometry(target_img, x, y, a, b, theta, *," in out
    assert "    Forced photometry in elliptical apertures at given positions." in out


@pytest.mark.parametrize("figsize, step", [((3, 2), 1), ((8, 6), 2)])
def test_show_pixels_are_the_full_colour_mapped_frame(small, tmp_path, figsize, step):
    """show() draws with nearest neighbour on the data stage (fast); the screen pixels are
    those of colour-mapping the whole block-averaged frame first (matplotlib's 'rgba' stage)
    with a zscale computed here from the pixels: shrunk (3x2 in) and enlarged (8x6 in),
    with a NaN patch."""
    from astropy.io import fits
    from astropy.visualization import ImageNormalize, ZScaleInterval
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ezphot.visualization import show_image

    with fits.open(small[0]) as hdul:
        data, header = hdul[0].data.astype(np.float32), hdul[0].header
    data[40:90, 100:180] = np.nan
    path = tmp_path / "nan_patch.fits"
    fits.writeto(path, data, header)
    img = ScienceImage(path)
    fig, ax = show_image(img, "coord", downsample=step, figsize=figsize)
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    (im,) = ax.images
    renderer = fig.canvas.get_renderer()
    ours = im.make_image(renderer)[0].copy()
    blocks = data.reshape(300 // step, step, 400 // step, step).mean(axis=(1, 3))
    im.set_norm(ImageNormalize(blocks, interval=ZScaleInterval()))
    im.set_interpolation_stage("rgba")
    reference = im.make_image(renderer)[0]
    assert ours.shape == reference.shape and ours.shape[0] > 50
    assert (ours[..., 3] == 0).sum() == (reference[..., 3] == 0).sum()
    np.testing.assert_array_equal(ours, reference)


def test_progress_bars_follow_verbose(small, capsys):
    """One rule for tqdm bars: shown inside a verbose=True call, hidden inside verbose=False,
    tqdm's own choice (None: terminal or Jupyter only) outside any call; progress= wins."""
    from ezphot.imageobjects.scienceimage import progress_disable, verbosity
    from ezphot.utils.imageset import load_images

    assert progress_disable(None, 5) is None
    assert progress_disable(None, 1) is True
    assert progress_disable(True, 1) is False and progress_disable(False, 5) is True
    for verbose in (True, False):
        with verbosity(verbose):
            assert progress_disable(None, 5) is (not verbose)
            assert progress_disable(not verbose, 5) is verbose
            load_images(small)
        err = capsys.readouterr().err
        assert ("Loading Science Images" in err) is verbose
