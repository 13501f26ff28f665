"""Detection filters: kernels against the shipped .conv files, and the binary using them."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from ezphot.photometry.sexphot import sex_photometry
from ezphot.sextractor.convfilter import (
    kernel_size,
    make_kernel,
    read_conv,
    resolve_detection_filter,
    write_conv,
)

SHIPPED = Path("/usr/share/source-extractor")
SHIPPED_FILES = sorted(p.name for p in SHIPPED.glob("*.conv")
                       if re.match(r"(gauss|mexhat|tophat)_[\d.]+_\d+x\d+\.conv$", p.name))


def _parse(name: str) -> tuple[str, float, int]:
    kind, fwhm, size = re.match(r"([a-z]+)_([\d.]+)_(\d+)x", name).groups()
    return kind, float(fwhm), int(size)


def test_shipped_files_present():
    # the Debian package ships 8 gauss, 6 mexhat and 6 tophat kernels
    assert len(SHIPPED_FILES) >= 20


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_reproduces_shipped_kernel(name):
    """Every value of SExtractor's own file, to its six printed decimals."""
    kind, fwhm, size = _parse(name)
    ref = read_conv(SHIPPED / name)
    if kind == "mexhat":
        # the shipped mexhats were made from the inner Gaussian's FWHM, FWHM/sqrt(2), rounded
        # to 0.01 px (1.06, 1.41, 1.77, 2.12, 2.83, 3.54): give the FWHM that rounding implies
        fwhm = round(fwhm / math.sqrt(2), 2) * math.sqrt(2)
    ours = make_kernel(kind, fwhm, size)
    assert ours.shape == ref.shape == (size, size)
    np.testing.assert_array_equal(np.round(ours, 6), ref)


@pytest.mark.parametrize("name", [n for n in SHIPPED_FILES
                                  if not re.match(r"mexhat_[45]|gauss_(2\.0_5|3\.0_7)", n)])
def test_default_size_is_sextractors_choice(name):
    kind, fwhm, size = _parse(name)
    assert kernel_size(fwhm, kind) == size


def test_write_read_roundtrip(tmp_path):
    k = make_kernel("gauss", 5.5)
    assert k.shape == (11, 11)
    path = write_conv(tmp_path / "k.conv", k, "test")
    assert path.read_text().startswith("CONV NORM\n# test\n")
    np.testing.assert_allclose(read_conv(path), k, atol=5e-7)


@pytest.mark.parametrize("bad, match", [
    ("gaussian", "detection_filter must be one of"),
    (np.ones((4, 4)), "detection_filter array"),
    (np.ones(5), "detection_filter array"),
    (np.zeros((3, 3)), "detection_filter array"),
    (np.full((3, 3), np.nan), "detection_filter array"),
])
def test_bad_choice_names_the_argument(bad, match, frame):
    with pytest.raises(ValueError, match=match):
        resolve_detection_filter(bad, seeing_pixel=5.0)
    with pytest.raises(ValueError, match="detection_filter"):
        sex_photometry(frame[0], detection_filter=bad, save=False)


@pytest.mark.parametrize("kw, match", [
    (dict(fwhm=-1.0), "detection_filter_fwhm"), (dict(fwhm=float("nan")), "detection_filter_fwhm"),
    (dict(fwhm=3.0, size=4), "detection_filter_size"), (dict(fwhm=3.0, size=99),
                                                        "detection_filter_size"),
])
def test_bad_overrides(kw, match):
    with pytest.raises(ValueError, match=match):
        resolve_detection_filter("gauss", **kw)
    with pytest.raises(ValueError, match="detection_filter"):
        resolve_detection_filter(np.ones((3, 3)), fwhm=3.0)
    with pytest.raises(ValueError, match="detection_filter_fwhm"):
        resolve_detection_filter("tophat")  # no seeing known, no FWHM given


def _same(a, b):
    assert len(a) == len(b) > 20
    np.testing.assert_array_equal(a["X_IMAGE"], b["X_IMAGE"])
    np.testing.assert_array_equal(a["FLUX_AUTO"], b["FLUX_AUTO"])


@pytest.fixture(scope="module")
def seeing_default(frame):
    """The catalogue with the default choice (Gaussian at the header seeing)."""
    return sex_photometry(frame[0], detection_sigma=3, aperture_diameter_seeing=None,
                          save=False)


def test_gauss_default_follows_header_seeing(frame, seeing_default):
    _, truth = frame
    meta = seeing_default.meta["detection_filter"]
    fwhm = truth.meta["fwhm_pixel"]
    assert meta["kind"] == "gauss" and meta["fwhm_pixel"] == pytest.approx(fwhm)
    assert meta["size"] == kernel_size(fwhm) == 11
    np.testing.assert_allclose(meta["kernel"], np.round(make_kernel("gauss", fwhm), 6))
    # the file went to the run directory (removed since) under a plain name
    name = seeing_default.meta["sextractor_config"]["FILTER_NAME"]
    assert Path(name).name == "detection.conv"
    assert Path(name).parent.name.startswith("ezphot-sex-") and not Path(name).exists()
    thresh = float(seeing_default.meta["sextractor_config"]["DETECT_THRESH"])
    assert thresh == pytest.approx(3 * meta["threshold_scale"]) and meta["threshold_scale"] < 0.4


def test_named_filter_equals_shipped_file(frame):
    """gauss FWHM 3 px, 5x5 = the binary given SExtractor's own gauss_3.0_5x5.conv."""
    ours = sex_photometry(frame[0], detection_filter="gauss", detection_filter_fwhm=3.0,
                          detection_filter_size=5, aperture_diameter_seeing=None, save=False)
    scale = ours.meta["detection_filter"]["threshold_scale"]
    ref = sex_photometry(frame[0], detection_filter="default", aperture_diameter_seeing=None,
                         sex_params={"FILTER_NAME": str(SHIPPED / "gauss_3.0_5x5.conv"),
                                     "DETECT_THRESH": 5 * scale}, save=False)
    assert ref.meta["detection_filter"]["kind"] == "sex_params"
    _same(ours.data, ref.data)


def test_explicit_kernel_and_tophat(frame):
    """An explicit array, and the 'tophat' choice, = the shipped tophat_3.0_3x3.conv."""
    kernel = read_conv(SHIPPED / "tophat_3.0_3x3.conv")
    arr = sex_photometry(frame[0], detection_filter=kernel, aperture_diameter_seeing=None,
                         save=False)
    meta = arr.meta["detection_filter"]
    assert meta["kind"] == "array" and meta["size"] == 3
    np.testing.assert_array_equal(meta["kernel"], kernel)
    top = sex_photometry(frame[0], detection_filter="tophat", detection_filter_fwhm=3.0,
                         aperture_diameter_seeing=None, save=False)
    assert top.meta["detection_filter"]["kind"] == "tophat"
    _same(arr.data, top.data)
    ref = sex_photometry(frame[0], detection_filter="default", aperture_diameter_seeing=None,
                         sex_params={"FILTER_NAME": str(SHIPPED / "tophat_3.0_3x3.conv"),
                                     "DETECT_THRESH": 5 * meta["threshold_scale"]}, save=False)
    _same(arr.data, ref.data)


def test_mexhat_runs(frame):
    cat = sex_photometry(frame[0], detection_filter="mexhat", detection_sigma=10,
                         aperture_diameter_seeing=None, save=False)
    meta = cat.meta["detection_filter"]
    assert meta["kind"] == "mexhat" and meta["threshold_scale"] == 1.0 and len(cat.data) > 10


def test_matched_filter_finds_more_faint_stars(frame, seeing_default):
    """At the same detection_sigma (same false-alarm level in the filtered image), the
    Gaussian matched to the seeing recovers more 18-19 mag stars than the 3x3 default."""
    _, truth = frame
    default = sex_photometry(frame[0], detection_sigma=3, detection_filter="default",
                             aperture_diameter_seeing=None, save=False)

    def found(cat):
        t = cat.data
        stars = truth[(truth["TYPE"] == "star") & (truth["MAG"] > 18) & (truth["MAG"] < 19)]
        d = np.hypot(np.subtract.outer(stars["X"], t["X_IMAGE"]),
                     np.subtract.outer(stars["Y"], t["Y_IMAGE"]))
        return int((d.min(axis=1) < 2).sum()), len(stars)

    n_default, n = found(default)
    n_gauss, _ = found(seeing_default)
    assert n > 20 and n_gauss > n_default + 0.2 * n


def test_sourcemask_records_filter(frame):
    from ezphot.imageobjects import ScienceImage
    from ezphot.masks import calculate_sourcemask

    img = ScienceImage(frame[0])
    gauss = calculate_sourcemask(img, sigma=3)
    default = calculate_sourcemask(img, sigma=3, detection_filter="default")
    assert gauss.header["MASKFILT"] == "gauss" and default.header["MASKFILT"] == "default"
    assert gauss.header["MASKFFWH"] == pytest.approx(frame[1].meta["fwhm_pixel"])
    assert gauss.header["MASKNSRC"] > default.header["MASKNSRC"]
    # a filter whose threshold is not rescaled (mexhat): a different mask only if the binary
    # really ran it
    mexhat = calculate_sourcemask(img, sigma=10, detection_filter="mexhat")
    default10 = calculate_sourcemask(img, sigma=10, detection_filter="default")
    assert mexhat.header["MASKFILT"] == "mexhat"
    assert mexhat.header["MASKNSRC"] != default10.header["MASKNSRC"]
    assert (mexhat.data != default10.data).any()
    with pytest.raises(ValueError, match="detection_filter"):
        calculate_sourcemask(img, detection_filter="box")
