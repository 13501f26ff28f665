"""Multi-band catalogues (ezphot.multiband) on a generated field in four filters.

The field (ezphot.datasets.make_multiband_field) has two frames per filter: one on the
reference grid, one shifted by (25", -15") and rotated by 30 degrees; every star has a
blackbody SED, every galaxy a power law, every filter its own zero point. References: the
truth tables, the binary's own FLUX_AUTO, and a direct inverse-variance formula.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from ezphot.dataobjects import Catalog
from ezphot.datasets import (
    FrameSpec,
    make_multiband_field,
    make_reference_catalog,
    moffat_enclosed_fraction,
)
from ezphot.multiband import (
    MultibandError,
    combine_inverse_variance,
    multiband_catalog,
    plot_sed,
)

FILTERS = ("m400", "m600", "g", "z")
APERTURES = [5.0, 8.0]
SHIFT = (25.0, -15.0, 30.0)  # dx", dy", rotation (deg) of the second frame of each filter
ZEROPOINTS = {"m400": 27.0, "m600": 27.5, "g": 28.5, "z": 28.0}


@pytest.fixture(scope="session")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiband") / "scidata"
    spec = FrameSpec(shape=(900, 1200), star_density=2.5, mag_range=(12.0, 21.0))
    return make_multiband_field(root, FILTERS, spec=spec, frames_per_filter=2,
                                zeropoints=ZEROPOINTS, temperature_range=(4500.0, 15000.0),
                                pointings=[(0.0, 0.0, 0.0), SHIFT], seed=5)


@pytest.fixture(scope="session")
def mb(field):
    # detection_sigma is per pixel of the filtered image: 1.5 reaches aperture S/N ~7
    return multiband_catalog(field.paths, zeropoints=field.zeropoints, elliptical=True,
                             aperture_diameter_arcsec=APERTURES, detection_sigma=1.5,
                             workers=1, progress=False)


def _match(cat, truth, max_sep=1.0):
    """Truth row of every catalogue row (-1 beyond max_sep arcsec)."""
    c = SkyCoord(cat["ALPHA_J2000"], cat["DELTA_J2000"], unit="deg")
    t = SkyCoord(truth["RA"], truth["DEC"], unit="deg")
    idx, sep, _ = c.match_to_catalog_sky(t)
    return np.where(sep.arcsec < max_sep, idx, -1)


def _isolated(truth, band, radius_arcsec=8.0, dmag=3.0):
    """No other source within ``radius`` brighter than ``mag + dmag`` in that filter."""
    t = SkyCoord(truth["RA"], truth["DEC"], unit="deg")
    mag = np.asarray(truth[f"MAG_{band}"], float)
    i, j, _, _ = t.search_around_sky(t, radius_arcsec * u.arcsec)
    other = i != j
    crowded = np.zeros(len(truth), bool)
    crowded[i[other & (mag[j] < mag[i] + dmag)]] = True
    return ~crowded


def test_field_truth(field):
    """The generated field: per-filter zero points in the headers, the sources where the
    frames' WCS puts them, magnitudes from each source's SED."""
    assert len(field.paths) == 2 * len(FILTERS)
    for row in field.frames:
        header = fits.getheader(row["PATH"])
        assert header["FILTER"] == row["FILTER"]
        assert header["EZZP"] == pytest.approx(field.zeropoints[row["FILTER"]])
        per_frame = Table.read(f"{row['PATH']}.truth.ecsv")
        x, y = WCS(header).world_to_pixel_values(per_frame["RA"], per_frame["DEC"])
        assert np.allclose(x, per_frame["X"], atol=1e-6)
        assert np.allclose(y, per_frame["Y"], atol=1e-6)
        sel = np.isin(field.truth["ID"], per_frame["ID"])
        assert np.allclose(per_frame["MAG"], field.truth[f"MAG_{row['FILTER']}"][sel])
    # hot stars are bluer than cool ones (m400 - z falls with temperature)
    stars = field.truth[field.truth["TYPE"] == "star"]
    colour = np.asarray(stars["MAG_m400"] - stars["MAG_z"])
    assert np.corrcoef(np.log(stars["TEFF"]), colour)[0, 1] < -0.95


def test_reference_catalog(field, tmp_path):
    truth = make_reference_catalog(field.truth, tmp_path / "ref.ecsv", outlier_fraction=0.1,
                                   seed=1)
    ref = Table.read(tmp_path / "ref.ecsv")
    assert {"ra", "dec", "m600_mag", "m600_magerr"} <= set(ref.colnames)
    for band in FILTERS:
        good = np.isfinite(truth[f"MAG_{band}"]) & ~truth[f"OUTLIER_{band}"]
        pull = (truth[f"MAG_{band}"] - truth[f"MAG_TRUE_{band}"])[good] / \
            truth[f"MAGERR_{band}"][good]
        assert 0.85 < np.std(pull) < 1.15
        seen = np.isfinite(truth[f"MAG_{band}"])
        out = np.asarray(truth[f"OUTLIER_{band}"])
        assert not out[~seen].any()
        assert 0.05 < out[seen].mean() < 0.15
        assert np.all(np.abs(truth[f"MAG_{band}"] - truth[f"MAG_TRUE_{band}"])[out] >= 0.5)
    with pytest.raises(FileExistsError):
        make_reference_catalog(field.truth, tmp_path / "ref.ecsv")


def _pixel_enclosed_fraction(radius: float, fwhm: float, beta: float = 2.5) -> float:
    """Enclosed fraction of the generator's Moffat stars as rendered (sampled at pixel
    centres), in an exact circular aperture, averaged over sub-pixel positions."""
    from photutils.aperture import CircularAperture, aperture_photometry

    from ezphot.datasets import _moffat_stamp

    rng = np.random.default_rng(0)
    out = []
    for x, y in rng.uniform(50, 51, size=(16, 2)):
        x0, y0, stamp = _moffat_stamp(x, y, 1.0, fwhm, beta, 40)
        ap = CircularAperture([(x - x0, y - y0)], r=radius)
        out.append(float(aperture_photometry(stamp, ap)["aperture_sum"][0]))
    frac = float(np.mean(out))
    # the sampled profile within 40 px holds about what the continuous one does
    assert abs(frac - moffat_enclosed_fraction(radius, fwhm, beta)) < 0.02
    return frac


def test_star_magnitudes_every_filter(field, mb):
    """Calibrated aperture magnitudes of isolated stars minus their true magnitudes (in the
    aperture: the rendered Moffat profile's enclosed fraction), over their errors; S/N 7 to
    100 (beyond, the detections' centroid errors, ~0.1 px, cost more than the errors)."""
    from astropy.stats import sigma_clip

    t = mb.data
    truth = field.truth
    m = _match(t, truth)
    fwhm_px = 2.8 / 0.505
    pulls = {}
    for band in FILTERS:
        for k, diam in enumerate(APERTURES):
            s = "APER" if k == 0 else f"APER_{k}"
            frac = _pixel_enclosed_fraction(diam / 0.505 / 2, fwhm_px)
            ok = (m >= 0) & (t[f"NFRAMES_{band}"] == 2) & (t[f"FLAGS_{band}"] == 0)
            tr = truth[np.where(ok, m, 0)]
            true_mag = np.asarray(tr[f"MAG_{band}"], float) - 2.5 * math.log10(frac)
            snr = 1.0857 / np.asarray(t[f"MAGERR_{s}_{band}"], float)
            ok &= (np.asarray(tr["TYPE"]) == "star") & _isolated(truth, band)[np.where(ok, m, 0)]
            ok &= (snr > 7) & (snr < 100) & (np.asarray(tr[f"MAG_{band}"]) > 13.5)
            pull = (np.asarray(t[f"MAG_{s}_{band}"], float) - true_mag)[ok] / \
                np.asarray(t[f"MAGERR_{s}_{band}"], float)[ok]
            pulls[band, k] = pull
    for band in FILTERS:  # every filter (few stars each: loose bounds)
        p = pulls[band, 0]
        assert p.size >= 15, (band, p.size)
        assert abs(np.median(p)) < 0.4, (band, np.median(p))
        assert 0.7 < np.std(p) < 1.3, (band, np.std(p))
    for k in range(len(APERTURES)):  # all filters together; a rare blend (> 5 sigma) aside
        p = np.concatenate([pulls[b, k] for b in FILTERS])
        clipped = sigma_clip(p, sigma=5, maxiters=None)
        assert p.size >= 150 and clipped.mask.mean() < 0.02, (p.size, clipped.mask.sum())
        assert 0.9 < np.std(clipped.compressed()) < 1.1, (k, np.std(clipped.compressed()))
        assert abs(np.median(p)) < 0.15, (k, np.median(p))


def _frame_catalogs(mb, band, key="catalog"):
    rows = [f for f in mb.meta["frames"] if f["filter"] == band]
    return [Catalog(r[key]).data for r in rows], rows


def test_rotated_grid_same_fluxes(field, mb):
    """The frame on a shifted, rotated grid measures what the aligned one does. (Not in the
    detection's filter: there the detection frame's own noise peaks, where the positions
    come from, lift its faint fluxes.)"""
    all_pulls = []
    det_image = mb.meta["detection"]["image"]
    for band in FILTERS:
        if any(f["image"] == det_image for f in mb.meta["frames"] if f["filter"] == band):
            continue
        (a, b), rows = _frame_catalogs(mb, band)
        assert [r["image"] for r in rows] == [str(p) for p in field.paths
                                              if f"_{band}_" in p.name]
        ok = (a["FLAGS"] == 0) & (b["FLAGS"] == 0)
        # same sky position, different pixels
        assert np.median(np.hypot(a["X_IMAGE"] - b["X_IMAGE"], a["Y_IMAGE"] - b["Y_IMAGE"])
                         [ok]) > 20
        for s in ("APER", "APER_1"):
            fa, fb = np.asarray(a[f"FLUX_{s}"], float), np.asarray(b[f"FLUX_{s}"], float)
            ea, eb = np.asarray(a[f"FLUXERR_{s}"], float), np.asarray(b[f"FLUXERR_{s}"], float)
            pull = ((fa - fb) / np.hypot(ea, eb))[ok]
            assert abs(np.median(pull)) < 0.15, (band, s)
            all_pulls.append(pull)
    p = np.concatenate(all_pulls)
    assert p.size > 600
    assert 0.85 < np.std(p) < 1.2, np.std(p)
    assert np.mean(np.abs(p) > 5) < 0.01


def test_galaxy_elliptical(field, mb):
    """Galaxies' Kron ellipses: on the detection frame the binary's own FLUX_AUTO; on the
    rotated grid the same ellipse turned by the grids' angle, and the same flux."""
    det = Catalog(mb.meta["detection"]["catalog"]).data
    truth = field.truth
    m = _match(mb.data, truth)
    galaxy = (m >= 0) & (np.asarray(truth["TYPE"])[np.where(m >= 0, m, 0)] == "galaxy")
    det_band = next(f["filter"] for f in mb.meta["frames"]
                    if f["image"] == mb.meta["detection"]["image"])
    (a, b), rows = _frame_catalogs(mb, det_band, "catalog_elliptical")
    on_det = [r["image"] for r in rows].index(mb.meta["detection"]["image"])
    same, other = (a, b) if on_det == 0 else (b, a)
    bright = galaxy & (np.asarray(det["FLUX_AUTO"]) / np.asarray(det["FLUXERR_AUTO"]) > 15) & \
        (same["FLAGS"] == 0) & (other["FLAGS"] == 0) & (np.asarray(det["FLAGS"]) == 0)
    assert bright.sum() >= 8
    # the detection frame: the binary's Kron ellipse, in pixels
    kron = np.asarray(det["KRON_RADIUS"])
    assert np.allclose(same["SMA_IMAGE"][bright], (kron * det["A_IMAGE"])[bright], rtol=1e-3)
    assert np.allclose(same["SMI_IMAGE"][bright], (kron * det["B_IMAGE"])[bright], rtol=1e-3)
    dtheta = (np.asarray(same["THETA_IMAGE"]) - np.asarray(det["THETA_IMAGE"]) + 90) % 180 - 90
    assert np.all(np.abs(dtheta[bright]) < 0.2)
    ratio = np.asarray(same["FLUX_ELIP"]) / np.asarray(det["FLUX_AUTO"])
    assert abs(np.median(ratio[bright]) - 1) < 0.02, np.median(ratio[bright])
    # the other grid is rotated: the pixel ellipse turns by the angle between the grids
    w_same = WCS(fits.getheader(rows[on_det]["image"]))
    w_other = WCS(fits.getheader(rows[1 - on_det]["image"]))
    x, y = np.asarray(det["X_IMAGE"])[bright], np.asarray(det["Y_IMAGE"])[bright]
    th = np.radians(np.asarray(det["THETA_IMAGE"])[bright])
    p0 = w_other.world_to_pixel(w_same.pixel_to_world(x, y))
    p1 = w_other.world_to_pixel(w_same.pixel_to_world(x + np.cos(th), y + np.sin(th)))
    expect = np.degrees(np.arctan2(p1[1] - p0[1], p1[0] - p0[0]))
    dtheta = (np.asarray(other["THETA_IMAGE"])[bright] - expect + 90) % 180 - 90
    assert np.all(np.abs(dtheta) < 0.2), dtheta
    assert np.allclose(other["SMA_IMAGE"][bright], same["SMA_IMAGE"][bright], rtol=1e-3)
    pull = ((np.asarray(same["FLUX_ELIP"]) - np.asarray(other["FLUX_ELIP"]))
            / np.hypot(same["FLUXERR_ELIP"], other["FLUXERR_ELIP"]))[bright]
    assert np.all(np.abs(pull) < 4), pull
    # combined: the galaxy's SED columns exist in every filter
    for band in FILTERS:
        assert np.isfinite(mb.data[f"FLUX_ELIP_{band}"][bright]).all()


def test_inverse_variance_combination(field, mb):
    """Each filter's combined flux against the direct formula on the per-frame catalogues
    (ADU to µJy with each frame's zero point)."""
    t = mb.data
    for band in FILTERS:
        cats, rows = _frame_catalogs(mb, band)
        f = np.array([np.asarray(c["FLUX_APER"], float) * 10 ** (-0.4 * (r["zeropoint"] - 23.9))
                      for c, r in zip(cats, rows, strict=False)])
        e = np.array([np.asarray(c["FLUXERR_APER"], float) * 10 ** (-0.4 * (r["zeropoint"]
                                                                            - 23.9))
                      for c, r in zip(cats, rows, strict=False)])
        clean = np.array([np.asarray(c["FLAGS"]) == 0 for c in cats]) & np.isfinite(f)
        both = clean.all(axis=0)
        w = 1 / e[:, both] ** 2
        expect = (w * f[:, both]).sum(axis=0) / w.sum(axis=0)
        assert np.allclose(t[f"FLUX_APER_{band}"][both], expect, rtol=1e-10)
        assert np.allclose(t[f"FLUXERR_APER_{band}"][both], w.sum(axis=0) ** -0.5, rtol=1e-10)
        assert np.all(t[f"NFRAMES_{band}"][both] == 2)
        one = clean[0] & ~clean[1]
        assert np.allclose(t[f"FLUX_APER_{band}"][one], f[0, one], rtol=1e-10)
        assert np.all(t[f"NFRAMES_{band}"][one] == 1)
        assert t[f"FLUX_APER_{band}"].unit == u.uJy
        with np.errstate(invalid="ignore"):
            mag = -2.5 * np.log10(np.asarray(t[f"FLUX_APER_{band}"][both])) + 23.9
        assert np.allclose(t[f"MAG_APER_{band}"][both], mag, equal_nan=True)
    # the function itself, on numbers: NaN and non-positive errors left out
    flux, err, n = combine_inverse_variance([[1.0, np.nan, 3.0], [3.0, 2.0, 5.0]],
                                            [[1.0, 1.0, 0.0], [2.0, 1.0, 1.0]])
    assert np.allclose(flux, [(1 + 3 / 4) / 1.25, 2.0, 5.0])
    assert np.allclose(err, [1.25 ** -0.5, 1.0, 1.0])
    assert list(n) == [2, 1, 1]


def test_detection_on_deepest(field, mb):
    depths = mb.meta["detection"]["depths"]
    assert mb.meta["detection"]["image"] == max(depths, key=depths.get)
    assert mb.info.catalog_type == "multiband"
    assert [f["filter"] for f in mb.meta["filters"]] == ["m400", "g", "m600", "z"]


def test_save_and_sed(field, mb, tmp_path):
    path = tmp_path / "mb.fits"
    from ezphot.multiband import save_multiband

    save_multiband(mb, path)
    back = Catalog(path)
    assert back.data.colnames == mb.data.colnames
    assert np.array_equal(back.data["FLUX_APER_g"], mb.data["FLUX_APER_g"], equal_nan=True)
    with pytest.raises(FileExistsError):
        save_multiband(mb, path)
    foreign = tmp_path / "theirs.parquet"
    foreign.write_bytes(b"not ours")
    from ezphot.exceptions import ForeignFileError

    with pytest.raises(ForeignFileError):
        save_multiband(mb, foreign, overwrite=True)
    assert foreign.read_bytes() == b"not ours"
    pq = tmp_path / "mb.parquet"
    save_multiband(mb, pq)
    save_multiband(mb, pq, overwrite=True)  # ours: replaced
    assert len(Table.read(pq)) == len(mb.data)
    fig = plot_sed(mb, int(np.nanargmax(mb.data["FLUX_APER_z"])))
    ax = fig.axes[0]
    assert "µJy" in ax.get_ylabel()
    xs = sorted(x for line in ax.lines for x in np.atleast_1d(line.get_xdata()))
    assert {400.0, 600.0} <= set(xs)


def test_cli(field, mb, tmp_path, capsys):
    """``ezphot multiband``: exit 0 with the catalogue (the batch resumes the fixture's
    per-frame catalogues: same fluxes), 1 when no frame matches, 2 on bad arguments or an
    output that is not ezphot's (left untouched)."""
    from ezphot.cli import main

    root = str(field.paths[0]).split("/7DT/")[0]
    out = tmp_path / "field.fits"
    args = ["multiband", root, "--objname", "T00528", "--zeropoint", "EZZP",
            "--aperture-arcsec", "5,8", "--detection-sigma", "1.5", "--workers", "2",
            "--output", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{len(mb.data)} sources" in text and str(out) in text
    back = Catalog(out)
    for band in FILTERS:
        assert np.array_equal(back.data[f"FLUX_APER_1_{band}"], mb.data[f"FLUX_APER_1_{band}"],
                              equal_nan=True)
    assert main(args) == 2  # exists: not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    foreign = tmp_path / "theirs.fits"
    fits.PrimaryHDU().writeto(foreign)
    before = foreign.read_bytes()
    bad = args[:-1] + [str(foreign), "--overwrite"]
    assert main(bad) == 2 and foreign.read_bytes() == before
    assert "not an ezphot catalogue" in capsys.readouterr().err
    assert main(args[:-1] + [str(tmp_path / "x.txt")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(args + ["--aperture-arcsec=-1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(args[:4] + ["--zeropoint", "m400=1,=2", "--output", str(out)])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["multiband", root, "--objname", "NOPE", "--output", str(out)]) == 1
    assert "no image matches" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.part"))


def test_variable_star_and_bad_input(field, tmp_path):
    """The variable star's magnitude in each frame is its mean plus the frame's VAR_DMAG;
    frames of one filter with and without a zero point, or no WCS, are refused before any
    work, naming the file."""
    from ezphot.exceptions import ArgumentError, MissingWCSError

    small = make_multiband_field(tmp_path / "var", ["m500", "r"],
                                 spec=FrameSpec(shape=(256, 320)), frames_per_filter=3,
                                 variable={"amplitude": 0.8, "period_days": 0.01}, seed=2)
    vid = small.variable_id
    assert vid is not None
    mean = small.truth[small.truth["ID"] == vid]
    dmags = []
    for row in small.frames:
        per_frame = Table.read(f"{row['PATH']}.truth.ecsv")
        star = per_frame[per_frame["ID"] == vid][0]
        assert star["MAG"] == pytest.approx(mean[f"MAG_{row['FILTER']}"][0] + row["VAR_DMAG"])
        other = per_frame[per_frame["ID"] != vid]
        keep = np.isin(small.truth["ID"], other["ID"])
        assert np.allclose(other["MAG"], small.truth[f"MAG_{row['FILTER']}"][keep])
        dmags.append(row["VAR_DMAG"])
    assert np.ptp(dmags) > 0.5
    m500 = [p for p in small.paths if "_m500_" in p.name]
    with pytest.raises(ArgumentError, match="without a zero point"):
        multiband_catalog(small.paths, zeropoints={str(m500[0]): 27.0}, workers=1)
    flat = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.zeros((64, 64), np.float32), header=fits.Header({"FILTER": "g"})) \
        .writeto(flat)
    with pytest.raises(MissingWCSError, match="nowcs.fits"):
        multiband_catalog([small.paths[0], flat], workers=1)
    assert not list((tmp_path / "var").rglob("*.cat"))  # nothing was measured


def _record_run_directories(monkeypatch) -> list:
    """Wrap `ezphot._io.run_directory`: [(path, files in it when the run ended)] of the
    ``ezphot-multiband-`` directories."""
    import contextlib

    from ezphot import _io

    seen, real = [], _io.run_directory

    @contextlib.contextmanager
    def recording(prefix="ezphot-", keep=False, *, parent=None):
        with real(prefix, keep, parent=parent) as path:
            try:
                yield path
            finally:
                if prefix.startswith("ezphot-multiband-"):
                    seen.append((path, sorted(p.name for p in path.iterdir())))

    monkeypatch.setattr(_io, "run_directory", recording)
    return seen


def _same_catalogue(two, mb, names=None):
    """Columns equal: integers exactly, floats to 1e-6 relative (magnitudes at S/N >= 5)."""
    names = mb.data.colnames if names is None else names
    assert two.data.colnames == names
    for name in names:
        a, b = np.asarray(two.data[name]), np.asarray(mb.data[name])
        if a.dtype.kind == "f":
            # the workers run one BLAS thread, this process several: the deep mask's first
            # background map (a BLAS product) then rounds differently, far below any change
            # of method (e.g. 'center' pixels: per cent); magnitudes compared where they are
            # defined (S/N >= 5)
            if name.startswith(("MAG_", "MAGERR_")):
                rest = name.split("_", 1)[1]
                flux, err = (np.asarray(mb.data[f"{k}_{rest}"]) for k in ("FLUX", "FLUXERR"))
                with np.errstate(invalid="ignore", divide="ignore"):
                    keep = np.abs(flux) >= 5 * err
                a, b = a[keep], b[keep]
            scale = np.nanmax(np.abs(b)) if np.isfinite(b).any() else 0.0
            assert np.allclose(a, b, rtol=1e-6, atol=1e-7 * scale, equal_nan=True), name
        else:
            assert np.array_equal(a, b), name


def test_two_workers_equal_one(field, mb, monkeypatch):
    """workers=2 (a local pool started with the call, warm when the detection ends) gives
    the catalogue of workers=1 (the ``mb`` fixture, measured in this process), column for
    column (integers exactly, floats to 1e-6 relative); the frames are measured again
    (resume=False). The frames' whole-frame sky — made by a worker while the call detects,
    or by the forced call — is kept in the call's run directory (one entry per frame, read
    by the elliptical pass), which goes with the call."""
    runs = _record_run_directories(monkeypatch)
    two = multiband_catalog(field.paths, zeropoints=field.zeropoints, elliptical=True,
                            aperture_diameter_arcsec=APERTURES, detection_sigma=1.5,
                            workers=2, progress=False, resume=False)
    assert len(runs) == 1
    path, files = runs[0]
    assert not path.exists()
    sky = [f for f in files if f.startswith("sky-") and f.endswith(".npz")]
    assert len(sky) == len(field.paths)
    # the first frame's is submitted before the detection starts
    assert 1 <= two.meta["sky_prepared"] <= len(field.paths)
    assert mb.meta["sky_prepared"] == 0  # workers=1: none made beside the detection
    _same_catalogue(two, mb)
    assert all(f["used"] for f in two.meta["frames"]) and not two.meta["failed"]
    assert [f["depth"] for f in two.meta["frames"]] == [f["depth"] for f in mb.meta["frames"]]
    assert set(two.meta["timing"]) == {"choice_s", "detection_s", "forced_s", "combine_s"}


def test_failed_sky_preparation_changes_nothing(field, mb, monkeypatch):
    """Sky preparations that fail in the workers leave the run as it was (each forced call
    makes its own sky): two filters' frames with workers=2 give ``mb``'s columns of those
    filters; a run that fails (nothing detected) removes its run directory too."""
    import operator

    from ezphot.photometry import forced

    runs = _record_run_directories(monkeypatch)
    # pickled by name, so the workers run it too: TypeError (str / str)
    monkeypatch.setattr(forced, "prepare_sky_cache", operator.truediv)
    bands = ("m400", "z")
    paths = [p for p, b in zip(field.paths, field.frames["FILTER"], strict=True) if b in bands]
    two = multiband_catalog(paths, zeropoints=field.zeropoints,
                            detection_image=mb.meta["detection"]["image"],
                            aperture_diameter_arcsec=APERTURES, detection_sigma=1.5,
                            workers=2, progress=False, resume=False)
    assert not two.meta["failed"] and two.meta["sky_prepared"] == 0
    names = [c for c in mb.data.colnames if not c.endswith(tuple(f"_{b}" for b in FILTERS))
             or c.endswith(tuple(f"_{b}" for b in bands)) and "ELIP" not in c]
    _same_catalogue(two, mb, names)
    # nothing prepared: the forced calls stored their own (and the run's owner marker)
    assert len(runs) == 1 and not runs[0][0].exists() and len(runs[0][1]) == len(paths) + 1
    with pytest.raises(MultibandError, match="no source detected"):
        multiband_catalog(paths, zeropoints=field.zeropoints, detection_sigma=1e5, workers=2,
                          progress=False, resume=False)
    assert len(runs) == 2 and not runs[1][0].exists()


@pytest.mark.parametrize("user", [None, "3"])
def test_workers_get_one_blas_thread(monkeypatch, user):
    """Local workers start with one BLAS thread each (with a worker per core, BLAS's own
    threads oversubscribe the cores), unless the user chose a number; this process's
    environment is left as it was."""
    import os

    from ezphot import batch

    for k in batch._BLAS_THREADS:
        if user is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, user)
    with batch.local_pool(2) as n:
        assert n == 2
        pool = batch._SHARED_POOL.get()["pool"]
        seen = [pool.submit(os.getenv, k).result() for k in batch._BLAS_THREADS]
    assert seen == [user or "1"] * len(batch._BLAS_THREADS)
    assert [os.environ.get(k) for k in batch._BLAS_THREADS] == [user] * len(seen)


def test_local_pool_starts_workers_at_once(field):
    """`local_pool` spawns its workers on entry (they import while the caller works) and the
    `run_batch` calls inside use those processes; the results equal a batch of its own."""
    from ezphot import batch

    paths = [str(p) for p in field.paths[:2]]
    t = field.truth[:20]
    opts = dict(x=np.asarray(t["RA"], float), y=np.asarray(t["DEC"], float), unit="coord",
                aperture_diameter_arcsec=[5.0], aperture_diameter_seeing=[],
                confusion_error=False)
    with batch.local_pool(2, warm_up=["ezphot.photometry.forced"]) as n:
        assert n == 2
        pool = batch._SHARED_POOL.get()["pool"]
        started = set(pool._processes)
        assert len(started) == 2  # spawned before any run_batch call
        one = batch.run_batch(paths, "circular", workers=2, resume=False, progress=False,
                              on_error="raise", **opts)
        cats = [Catalog(p).data for p in one["catalog"]]
        assert set(pool._processes) == started  # the same processes measured them
    assert batch._SHARED_POOL.get() is None and not pool._processes
    with batch.local_pool(1) as n:
        assert n == 0 and batch._SHARED_POOL.get() is None
    own = batch.run_batch(paths, "circular", workers=2, resume=False, progress=False,
                          on_error="raise", **opts)
    for a, p in zip(cats, own["catalog"], strict=True):
        b = Catalog(p).data
        assert np.array_equal(np.asarray(a["FLUX_APER"]), np.asarray(b["FLUX_APER"]),
                              equal_nan=True)


def test_depth_per_frame_and_filter(field, mb):
    """Each calibrated frame's depth is the 5-sigma limit of its own catalogue in the first
    aperture; a filter's depth (two frames combined) is deeper than either frame's, by what
    inverse-variance weighting of their sky-limited noise gives."""
    from ezphot.calibration import point_source_depth

    for band in FILTERS:
        rows = [f for f in mb.meta["frames"] if f["filter"] == band]
        depths = [r["depth"] for r in rows]
        for r in rows:
            assert r["depth"] == pytest.approx(
                point_source_depth(Catalog(r["catalog"]), r["zeropoint"], column="APER"),
                abs=1e-4)
        f = next(f for f in mb.meta["filters"] if f["filter"] == band)
        # sky-limited: sigma_i = F5_i / 5 (µJy); combined sigma = (sum sigma_i^-2)^-1/2
        sig = np.array([10 ** (-0.4 * (d - 23.9)) / 5 for d in depths])
        expect = 23.9 - 2.5 * math.log10(5 * np.sum(sig**-2) ** -0.5)
        assert f["depth"] > max(depths)
        assert abs(f["depth"] - expect) < 0.1, (band, f["depth"], expect, depths)
