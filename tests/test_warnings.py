"""Diagnostics astropy-style: what a user must act on is a warning of an ezphot
`AstropyUserWarning` subclass (`ezphot.exceptions.EzphotWarning`), progress is logging, and the
library never touches the global logging configuration."""

from __future__ import annotations

import ast
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

import ezphot.exceptions as exc
from ezphot.datasets import FrameSpec, make_frame
from ezphot.exceptions import (
    EzphotWarning,
    HeaderWarning,
    MeasurementWarning,
    PositionWarning,
    SkippedInputWarning,
)
from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry

PACKAGE = Path(exc.__file__).resolve().parent
QUIET = dict(save=False, verbose=False, visualize=False)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A 7DT-like frame, and the same pixels with no WCS, no gain, no telescope."""
    root = tmp_path_factory.mktemp("warn")
    path, _ = make_frame(root / "frame.fits", FrameSpec(shape=(256, 256)), seed=4)
    bare = root / "bare.fits"
    fits.writeto(bare, fits.getdata(path).astype(np.float32),
                 fits.Header({"EXPTIME": 100.0, "FILTER": "m600"}))
    return path, bare


def test_hierarchy():
    for cls in (PositionWarning, SkippedInputWarning, HeaderWarning, MeasurementWarning):
        assert issubclass(cls, EzphotWarning) and cls.__name__ in exc.__all__
    assert issubclass(EzphotWarning, AstropyUserWarning)


def test_positions_off_the_image(frames):
    with pytest.warns(PositionWarning, match=r"none of the 2 positions is on the image"):
        cat = AperturePhotometry().circular_photometry(frames[0], [-500.0, 900.0],
                                                       [10.0, 10.0], **QUIET)
    assert (np.asarray(cat.data["FLAGS"]) != 0).all()


def test_missing_gain(frames):
    import astropy.units as u

    with pytest.warns(HeaderWarning, match=r"bare.fits: gain unknown; FLUXERR without"):
        AperturePhotometry().circular_photometry(frames[1], [128.0], [128.0],
                                                 aperture_diameter_arcsec=10 * u.pix,
                                                 aperture_diameter_seeing=(), **QUIET)


def test_unreadable_image_skipped(frames, tmp_path):
    from ezphot.utils.imageset import load_images

    junk = tmp_path / "junk.fits"
    junk.write_text("not a FITS file")
    with pytest.warns(SkippedInputWarning, match=r"Unreadable image skipped: .*junk.fits"):
        images = load_images([frames[0], junk], progress=False)
    assert len(images) == 1 and images.failed[0][0] == str(junk)


def _warn_calls():
    """(file, line, category expression) of every ``warnings.warn`` call in ezphot/."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("warnings.warn", "warn"):
                cat = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "category"), None)
                yield path.relative_to(PACKAGE.parent), node.lineno, \
                    None if cat is None else ast.unparse(cat)


def test_every_warning_is_an_ezphot_warning():
    """No bare UserWarning/RuntimeWarning (or no category) anywhere in the library; renamed
    parameters warn with astropy's own AstropyDeprecationWarning."""
    calls = list(_warn_calls())
    assert len(calls) >= 10
    def ezphot_category(c):
        return isinstance(getattr(exc, c, None), type) and issubclass(getattr(exc, c),
                                                                     EzphotWarning)

    wrong = [(str(f), n, c) for f, n, c in calls
             if c is None or not (ezphot_category(c) or c == "AstropyDeprecationWarning")]
    assert wrong == []


def test_library_never_configures_logging():
    """Only the CLI configures logging; the library's one level change is the ``ezphot``
    logger's own, for the duration of a ``verbose`` call (scienceimage._verbosity)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for _i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if any(w in code for w in ("basicConfig", "logging.disable", "setLevel(",
                                       "logging.root", "getLogger()")):
                found.append((path.name, code.strip()))
    allowed = {("cli.py", "logging.basicConfig(level=logging.INFO if args.verbose else "
                          "logging.WARNING,"),
               ("scienceimage.py", "_log.setLevel(min(logging.INFO, _gate.effective_before))"),
               ("scienceimage.py", "_log.setLevel(_gate.level_before)"),
               ("scienceimage.py", "root = logging.getLogger()")}
    assert set(found) <= allowed, set(found) - allowed


def test_verbose_call_leaves_global_logging_alone(frames, capsys):
    root = logging.getLogger()
    before = (root.level, list(root.handlers), logging.root.manager.disable)
    img = ScienceImage(frames[0])
    seen = []

    class Probe(logging.Handler):
        def emit(self, record):
            seen.append((root.level, logging.root.manager.disable))

    probe = Probe()
    logging.getLogger("ezphot.background").addHandler(probe)
    try:
        img.calculate_bkg(verbose=True)
    finally:
        logging.getLogger("ezphot.background").removeHandler(probe)
    assert seen and set(seen) == {before[::2]}  # during the call
    assert (root.level, list(root.handlers), logging.root.manager.disable) == before
    assert "[INFO] " in capsys.readouterr().out


def test_sextractor_stack_overflow_is_a_measurement_warning(frames, tmp_path):
    """SExtractor goes on after a memory-stack overflow with sources dropped or truncated and
    exit code 0: ezphot says so (the binary's own message, the image named); an ordinary run
    is silent."""
    from ezphot.photometry.sexphot import sex_photometry

    path = make_frame(tmp_path / "crowd.fits", FrameSpec(shape=(1200, 1200)), seed=2)[0]
    with pytest.warns(MeasurementWarning, match=r"crowd\.fits: SExtractor dropped or truncated "
                      r"sources: WARNING: Pixel stack overflow"):
        sex_photometry(path, sex_params={"MEMORY_PIXSTACK": 1000}, save=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeasurementWarning)
        sex_photometry(frames[0], save=False)
