"""The SExtractor adapter: binary discovery, keyword/parameter validation, LDAC reader."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from ezphot._io import run_directory
from ezphot.exceptions import SExtractorConfigError, SExtractorNotFoundError
from ezphot.sextractor import find_sextractor, read_ldac, run_sextractor
from ezphot.sextractor.binary import parse_keywords, parse_parameters
from ezphot.sextractor.configfile import validate_keywords, validate_parameters, write_param

from .conftest import shared


def test_binary_found_with_version(sextractor):
    assert sextractor.version.startswith("2.")
    # the lists the binary prints agree with the reference dumps of the Debian 2.25 binary
    ref_keys = parse_keywords(shared("sextractor-2.25", "default.sex.dd").read_text())
    ref_params = parse_parameters(shared("sextractor-2.25", "default.param.dp").read_text())
    assert set(ref_keys) == set(sextractor.keywords)
    assert set(ref_params) == set(sextractor.parameters)
    assert sextractor.parameters["FLUX_APER"] == "count"
    assert "PHOT_APERTURES" in sextractor.keywords


def test_binary_missing_env(monkeypatch):
    monkeypatch.setenv("EZPHOT_SEXTRACTOR", "/nonexistent/source-extractor")
    with pytest.raises(SExtractorNotFoundError, match="apt-get install source-extractor"):
        find_sextractor()


def test_binary_not_on_path(monkeypatch, tmp_path):
    monkeypatch.delenv("EZPHOT_SEXTRACTOR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SExtractorNotFoundError, match="No SExtractor binary on PATH"):
        find_sextractor()


def test_binary_that_is_not_sextractor(tmp_path):
    fake = tmp_path / "sex"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(SExtractorNotFoundError, match="does not look like SExtractor"):
        find_sextractor(str(fake))


def test_unknown_keyword_and_parameter(sextractor):
    with pytest.raises(SExtractorConfigError, match="DETECT_THRES.*DETECT_THRESH"):
        validate_keywords(["DETECT_THRES"], sextractor)
    with pytest.raises(SExtractorConfigError, match="FLUX_APPER"):
        validate_parameters(["FLUX_APPER"], sextractor)
    assert validate_parameters(["FLUX_RADIUS(3)", "NUMBER"], sextractor) == [
        ("FLUX_RADIUS", 3), ("NUMBER", None)]


@pytest.mark.parametrize("n", [1, 5])
def test_param_file_sizes_aperture_vectors(sextractor, tmp_path, n):
    lines = write_param(tmp_path / "p.param", ["NUMBER", "FLUX_APER", "MAGERR_APER(9)"], n,
                        sextractor)
    assert lines == ["NUMBER", f"FLUX_APER({n})", f"MAGERR_APER({n})"]


def test_ldac_reader_against_ascii_catalogue():
    """The full-precision LDAC file and SExtractor's own ASCII catalogue of the same run agree."""
    (cat,) = read_ldac(shared("sep", "generated-by-debian-2.25", "image_ldac_fullprecision.fits"))
    assert len(cat.table) == 65
    assert cat.version == "Source Extractor 2.25.0"
    assert cat.background == pytest.approx(6852.049316406)
    assert cat.background_rms == pytest.approx(65.46174621582)
    assert cat.table["X_IMAGE"].unit == "pix"
    assert cat.table["FLUX_AUTO"].unit == "ct"
    ascii_ = Table.read(shared("sep", "generated-by-debian-2.25", "image_225.cat"),
                        format="ascii.sextractor")
    np.testing.assert_allclose(cat.table["FLUX_AUTO"], ascii_["FLUX_AUTO"], rtol=1e-6)
    np.testing.assert_allclose(cat.table["X_IMAGE"], ascii_["X_IMAGE"], atol=5e-5)


def test_ldac_vector_columns_split(sextractor):
    with run_directory() as d:
        run = run_sextractor(shared("sep", "image.fits"), workdir=d,
                             config={"PHOT_APERTURES": "5,10,15", "PHOT_FLUXFRAC": "0.2,0.5"},
                             parameters=["NUMBER", "FLUX_APER", "FLUX_RADIUS(2)"], n_apertures=3,
                             binary=sextractor)
    t = run.catalogs[0].table
    assert t.colnames == ["NUMBER", "FLUX_APER", "FLUX_APER_1", "FLUX_APER_2", "FLUX_RADIUS",
                          "FLUX_RADIUS_1"]
    # larger apertures hold more flux for the isolated bright sources
    bright = t["FLUX_APER"] > 1e4
    assert np.all(t["FLUX_APER_2"][bright] > t["FLUX_APER"][bright])
