"""``zeropoint=`` given as a header keyword (issue 13, "depth everywhere"): every photometry
function, the façade, the CLI, the batch and its resume key, and `light_curve`'s errors.

References: the header written here (a known keyword value, and a decoy ``ZP`` that the
default header search would find); the same call with the number; the magnitude formula
``-2.5 log10(FLUX) + ZP``; the exception types and messages."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from ezphot import _validate as validate
from ezphot.calibration import header_zeropoint, point_source_depth
from ezphot.datasets import FrameSpec, make_frame
from ezphot.exceptions import ArgumentError, ImageError
from ezphot.methods import AperturePhotometry
from ezphot.photometry.lightcurve import light_curve

MYZP = 26.789    # the zero point the header keyword holds
DECOY = 20.0     # header ZP: what the default search (ZP, ZP_AUTO...) would take instead
AP = AperturePhotometry()
SPEC = FrameSpec(shape=(400, 480), star_density=6)
Q = {"save": False, "visualize": False, "verbose": False}
# each method with small, quick options (pixel positions for forced photometry)
CALLS = {
    "sex_photometry": dict(detection_sigma=3, aperture_diameter_arcsec=[5],
                           aperture_diameter_seeing=None),
    "photutils_photometry": dict(detection_sigma=3, aperture_diameter_arcsec=[5]),
    "circular_photometry": dict(aperture_diameter_arcsec=[5], aperture_diameter_seeing=[],
                                confusion_error=False),
    "elliptical_photometry": dict(),
}


@pytest.fixture(scope="module")
def zp_frame(tmp_path_factory):
    """A small generated frame whose header holds MYZP, a decoy ZP, a text and a logical."""
    d = tmp_path_factory.mktemp("zpkey")
    path, truth = make_frame(d / SPEC.file_name(), SPEC, seed=3)
    with fits.open(path, mode="update") as hdul:
        h = hdul[0].header
        h["MYZP"] = (MYZP, "zero point written by the test")
        h["ZP"] = DECOY
        h["TEXTZP"] = "n/a"
        h["BOOLZP"] = True
    stars = truth[(truth["TYPE"] == "star") & (truth["X"] > 20) & (truth["X"] < 460)
                  & (truth["Y"] > 20) & (truth["Y"] < 380)]
    return path, stars[:40]


def _call(name, path, stars, zeropoint, **extra):
    kw = {**CALLS[name], **Q, **extra}
    if name == "circular_photometry":
        return AP.circular_photometry(path, stars["X"], stars["Y"], zeropoint=zeropoint, **kw)
    if name == "elliptical_photometry":
        n = len(stars)
        return AP.elliptical_photometry(path, stars["X"], stars["Y"], np.full(n, 4.0),
                                        np.full(n, 3.0), np.full(n, 30.0), zeropoint=zeropoint,
                                        **kw)
    return getattr(AP, name)(path, zeropoint=zeropoint, **kw)


def _mag_pairs(table):
    """(MAG column, FLUX column) pairs of a catalogue."""
    out = []
    for c in table.colnames:
        if c.startswith("MAG_") and not c.startswith("MAGERR_"):
            flux = "FLUX_" + c[4:]
            if flux in table.colnames:
                out.append((c, flux))
    return out


@pytest.mark.parametrize("name", list(CALLS))
def test_keyword_is_the_number_it_names(zp_frame, name):
    """zeropoint='MYZP' gives the catalogue of zeropoint=26.789: the same magnitudes
    (= -2.5 log10(FLUX) + 26.789), info.depth measured on the data with 26.789 (not with the
    decoy ZP = 20 that the header search would take), and the source recorded."""
    path, stars = zp_frame
    by_key = _call(name, path, stars, "MYZP")
    by_number = _call(name, path, stars, MYZP)
    t, n = by_key.data, by_number.data
    assert len(t) >= 5 and t.colnames == n.colnames
    pairs = _mag_pairs(t)
    assert pairs, t.colnames
    for mag, flux in pairs:
        np.testing.assert_array_equal(np.asarray(t[mag]), np.asarray(n[mag]), mag)
        f = np.asarray(t[flux], float)
        ok = f > 0
        np.testing.assert_allclose(np.asarray(t[mag], float)[ok],
                                   -2.5 * np.log10(f[ok]) + MYZP, atol=2e-4, err_msg=mag)
    assert by_key.meta["zeropoint"] == {"value": MYZP, "source": "header MYZP"}
    assert by_number.meta["zeropoint"] == {"value": MYZP, "source": "zeropoint"}
    # depth: from the data with the keyword's value, exactly as with the number
    assert by_key.info.depth is not None
    assert by_key.info.depth == by_number.info.depth
    assert by_key.info.depth == pytest.approx(point_source_depth(by_key, MYZP), abs=1e-4)
    assert by_key.meta["depth"]["source"] == "header MYZP"
    assert by_key.meta["depth"]["zeropoint"] == MYZP
    assert by_number.meta["depth"]["source"] == "zeropoint"
    # without a zero point the header search takes the decoy: a different depth
    plain = _call(name, path, stars, 0.0)
    assert plain.meta["depth"]["source"] == "header ZP"
    assert plain.info.depth == pytest.approx(by_key.info.depth + DECOY - MYZP, abs=1e-3)
    assert plain.meta["zeropoint"] == {"value": 0.0, "source": "zeropoint"}


@pytest.mark.parametrize("name", list(CALLS))
def test_bad_keyword_is_an_image_error(zp_frame, tmp_path, name):
    """A missing keyword, a text or a logical value: ImageError naming the file and the
    keyword, before any work (nothing saved); an empty name is an ArgumentError."""
    path, stars = zp_frame
    before = sorted(path.parent.iterdir())
    for key, what in (("NOPE", "no zero-point keyword 'NOPE'"), ("TEXTZP", "TEXTZP = 'n/a'"),
                      ("BOOLZP", "BOOLZP = True")):
        with pytest.raises(ImageError, match=rf"{path.name}.*{what}"):
            _call(name, path, stars, key, save=True)
    assert sorted(path.parent.iterdir()) == before  # nothing written
    with pytest.raises(ArgumentError, match="zeropoint"):
        _call(name, path, stars, "  ")
    with pytest.raises(ArgumentError, match="zeropoint"):
        _call(name, path, stars, float("nan"))


def test_header_reading_is_shared():
    """One reading of a header number: the explicit keyword refuses what the header search
    passes over (absent, text, logical, not finite)."""
    header = {"A": "n/a", "B": True, "C": float("inf"), "D": 24.5}
    for key in "ABC":
        with pytest.raises(ImageError, match=f"f.fits: header {key} = "):
            validate.zeropoint(key, header, "f.fits")
    with pytest.raises(ImageError, match="f.fits: no zero-point keyword 'E'"):
        validate.zeropoint("E", header, "f.fits")
    assert validate.zeropoint("D", header, "f.fits") == 24.5
    assert validate.zeropoint("D", header).source == "header D"
    assert header_zeropoint(header, ["A", "B", "C", "E", "D"]) == (24.5, "header D")
    assert header_zeropoint(header, ["A", "B", "C"]) == (None, "none")


def test_batch_resume_key_holds_the_keyword_value(zp_frame, tmp_path):
    """The batch measures with the keyword; a resume reuses the catalogue, but not after
    the keyword's value changed (even with the file's size and modification time kept), and
    not for another zero point; a frame without the keyword fails, naming it."""
    from ezphot.batch import run_batch
    from ezphot.dataobjects import Catalog

    src, stars = zp_frame
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes())
    other = tmp_path / "nokey.fits"
    with fits.open(src) as hdul:
        del hdul[0].header["MYZP"]
        hdul.writeto(other)
    opts = dict(x=list(stars["X"][:10]), y=list(stars["Y"][:10]), unit="pixel",
                aperture_diameter_arcsec=[5], aperture_diameter_seeing=[], zeropoint="MYZP",
                confusion_error=False)
    first = run_batch([path, other], "circular", workers=1, progress=False, **opts)
    assert list(first["status"]) == ["done", "failed"]
    assert "nokey.fits: no zero-point keyword 'MYZP'" in first["error"][1]
    cat = Catalog(first["catalog"][0])
    assert cat.meta["zeropoint"] == {"value": MYZP, "source": "header MYZP"}
    assert cat.meta["provenance"]["options"]["zeropoint"] == {"keyword": "MYZP", "value": MYZP}
    again = run_batch([path], "circular", workers=1, progress=False, **opts)
    assert list(again["status"]) == ["skipped"]
    # the value changes, the file's size and modification time do not
    st = os.stat(path)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["MYZP"] = MYZP + 0.5
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size
    changed = run_batch([path], "circular", workers=1, progress=False, **opts)
    assert list(changed["status"]) == ["done"], changed
    assert changed["reason"][0].startswith("remeasured")
    new = Catalog(changed["catalog"][0])
    np.testing.assert_allclose(np.asarray(new.data["MAG_APER"]),
                               np.asarray(cat.data["MAG_APER"]) + 0.5, atol=1e-9)
    number = run_batch([path], "circular", workers=1, progress=False,
                       **{**opts, "zeropoint": 25.0})
    assert list(number["status"]) == ["done"] and number["reason"][0].startswith("remeasured")


def test_cli_zeropoint_keyword(zp_frame, tmp_path, capsys):
    """``ezphot photometry/forced --zeropoint KEY``: the catalogues carry the keyword's value;
    a malformed value is refused by the parser (exit code 2)."""
    from ezphot.cli import main
    from ezphot.dataobjects import Catalog

    src, stars = zp_frame
    root = tmp_path / "scidata"
    path = SPEC.tree_dir(root) / src.name
    path.parent.mkdir(parents=True)
    path.write_bytes(src.read_bytes())
    assert main(["photometry", str(root), "--pattern", "*.fits", "--zeropoint", "MYZP",
                 "--workers", "1", "--aperture-seeing", "2"]) == 0
    cat = Catalog(f"{path}.cat")
    assert cat.meta["zeropoint"] == {"value": MYZP, "source": "header MYZP"}
    assert float(cat.meta["sextractor_config"]["MAG_ZEROPOINT"]) == MYZP
    ra, dec = (float(v) for v in (stars["RA"][0], stars["DEC"][0]))
    assert main(["forced", str(root), "--pattern", "*.fits", f"--ra={ra}", f"--dec={dec}",
                 "--zeropoint", "MYZP", "--workers", "1"]) == 0
    forced = Catalog(next(root.rglob("*.circ.*.cat")))
    assert forced.meta["zeropoint"] == {"value": MYZP, "source": "header MYZP"}
    assert main(["forced", str(root), "--pattern", "*.fits", f"--ra={ra}", f"--dec={dec}",
                 "--zeropoint", "NOPE", "--workers", "1"]) == 1
    assert "no zero-point keyword 'NOPE'" in capsys.readouterr().out
    for bad in ("nan", "a b"):
        with pytest.raises(SystemExit) as exc:
            main(["forced", str(root), f"--ra={ra}", f"--dec={dec}", "--zeropoint", bad])
        assert exc.value.code == 2


def test_light_curve_errors(zp_frame, tmp_path):
    """light_curve: a keyword is read per image (its value, recorded as the frame's zero
    point); a missing one is an ImageError naming the file and the keyword (raised, or the
    frame skipped and listed); argument mistakes are ArgumentErrors naming the argument."""
    path, stars = zp_frame
    ra, dec = float(stars["RA"][0]), float(stars["DEC"][0])
    kw = dict(aperture_diameter_arcsec=[5], progress=False, confusion_error=False)
    by_key = light_curve([path], ra, dec, zeropoint="MYZP", **kw)
    by_number = light_curve([path], ra, dec, zeropoint=MYZP, **kw)
    assert by_key["MAG_APER"][0] == by_number["MAG_APER"][0]
    assert by_key["DEPTH"][0] == by_number["DEPTH"][0]
    with pytest.raises(ImageError, match=rf"{path.name}: no zero-point keyword 'NOPE'"):
        light_curve([path], ra, dec, zeropoint="NOPE", on_error="raise", **kw)
    with pytest.warns(UserWarning, match="NOPE"):
        skipped = light_curve([path, path], ra, dec, zeropoint=["MYZP", "NOPE"], **kw)
    assert len(skipped) == 1 and "no zero-point keyword 'NOPE'" in skipped.meta["failed"][0][1]
    bad_args = [
        (dict(zeropoint=[1.0, 2.0]), "zeropoint has 2 values for 1 images"),
        (dict(zeropoint=[float("nan")]), r"zeropoint\[0\] must be a finite number"),
        (dict(zeropoint=""), "zeropoint must be a number or a header keyword"),
        (dict(zeropoint=object()), "zeropoint must be a number, a header keyword"),
        (dict(zeropoint=25.0, reference="ref.fits"), "give zeropoint or reference, not both"),
        (dict(on_error="ignore"), "on_error must be 'skip' or 'raise'"),
        (dict(detection_snr=-1), "detection_snr must be >= 0"),
    ]
    for extra, message in bad_args:
        with pytest.raises(ArgumentError, match=message):
            light_curve([path], ra, dec, **{**kw, **extra})
    with pytest.raises(ArgumentError, match="ra has 2 values but dec 1"):
        light_curve([path], [ra, ra], dec, **kw)
    with pytest.raises(ArgumentError, match="dec"):
        light_curve([path], ra, 95.0, **kw)
