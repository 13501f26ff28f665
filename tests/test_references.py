"""Tests against independent references for the spots where a one-line bug used to survive
(issue 14): the binary run by hand with a configuration written here, direct photutils and
astropy calls, formulas and truth tables. Each test names the reference it trusts."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from ezphot.datasets import FrameSpec, make_frame
from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry
from ezphot.sextractor import read_ldac

from .conftest import shared

Q = {"save": False, "visualize": False, "verbose": False}
AP = AperturePhotometry()
ZP = 25.3
INTEGER_POSITIONS = ["XPEAK_IMAGE", "YPEAK_IMAGE", "XMIN_IMAGE", "YMIN_IMAGE", "XMAX_IMAGE",
                     "YMAX_IMAGE"]
PARAMS = ["NUMBER", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE", *INTEGER_POSITIONS,
          "FLUX_APER(2)", "FLUXERR_APER(2)", "MAG_APER(2)", "MAGERR_APER(2)", "FLUX_AUTO",
          "MAG_AUTO", "FLUX_MAX", "FLAGS"]


# -- sex_photometry with a background map and a zero point vs the binary run by hand -------
@pytest.fixture(scope="module")
def with_map(frame, tmp_path_factory):
    """ezphot given a background map and ZP, and the binary run by hand on the image minus the
    same map (written here), with MAG_ZEROPOINT and SATUR_LEVEL lowered by the map's level."""
    path, _ = frame
    img = ScienceImage(path)
    bkg = img.calculate_bkg(box_size=64, filter_size=3, deep_mask=False, verbose=False)
    ours = AP.sex_photometry(img, target_bkg=bkg, detection_sigma=3, zeropoint=ZP,
                             aperture_diameter_arcsec=[5, 10], aperture_diameter_seeing=None,
                             saturation_level=60000, parameters=[p.split("(")[0] for p in PARAMS],
                             detection_filter="default", **Q)
    d = tmp_path_factory.mktemp("byhand_map")
    header = fits.getheader(path)
    sub = (fits.getdata(path).astype(np.float32) - bkg.data.astype(np.float32))
    fits.PrimaryHDU(sub.astype(np.float32), header=WCS(header).to_header()).writeto(d / "sub.fits")
    scale = float(np.sqrt(np.prod(proj_plane_pixel_scales(WCS(header)) * 3600)))
    (d / "run.param").write_text("\n".join(PARAMS) + "\n")
    # the saturation level in the subtracted image: 60000 minus the (smooth) map's level
    satur = 60000 - float(np.median(bkg.data))
    config = {
        "CATALOG_NAME": d / "hand.ldac", "CATALOG_TYPE": "FITS_LDAC",
        "PARAMETERS_NAME": d / "run.param", "DETECT_MINAREA": 6, "DETECT_THRESH": 3,
        "ANALYSIS_THRESH": 3, "FILTER": "Y", "FILTER_NAME": shared("sep", "default.conv"),
        "DEBLEND_NTHRESH": 32, "DEBLEND_MINCONT": 0.005, "BACK_TYPE": "MANUAL",
        "BACK_VALUE": 0.0, "BACKPHOTO_TYPE": "GLOBAL", "SATUR_LEVEL": repr(satur),
        "SATUR_KEY": "NOSUCHKEY", "GAIN": 0.2561, "GAIN_KEY": "NOSUCHKEY",
        "PIXEL_SCALE": repr(scale), "PHOT_AUTOPARAMS": "2.5,3.5", "MAG_ZEROPOINT": ZP,
        "PHOT_APERTURES": f"{5 / scale!r},{10 / scale!r}", "VERBOSE_TYPE": "QUIET",
        "STARNNW_NAME": shared("sep", "default.nnw"),
        "MEMORY_OBJSTACK": 30000, "MEMORY_PIXSTACK": 3000000,
    }
    (d / "run.sex").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
    subprocess.run(["source-extractor", str(d / "sub.fits"), "-c", str(d / "run.sex")],
                   check=True, capture_output=True)
    (cat,) = read_ldac(d / "hand.ldac")
    return ours, cat.table, satur


def test_integer_positions_are_the_binarys_minus_one(with_map):
    """XPEAK/XMIN/XMAX... are integers: 0-based = the binary's 1-based value - 1, exactly."""
    ours, ref, _ = with_map
    t = ours.data
    assert len(t) == len(ref) > 100
    for name in INTEGER_POSITIONS + ["X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE"]:
        np.testing.assert_array_equal(np.asarray(t[name], float),
                                      np.asarray(ref[name], float) - 1.0, err_msg=name)
        assert name in t.meta["zero_based_columns"], name
    # and the peak pixel is where the pixels peak: the image minus the map, at (y, x)
    assert np.all(t["XMIN_IMAGE"] <= t["XPEAK_IMAGE"]) and np.all(
        t["XPEAK_IMAGE"] <= t["XMAX_IMAGE"])


def test_zeropoint_enters_every_magnitude(with_map):
    """MAG_* equal the binary's with MAG_ZEROPOINT (and -2.5 log10(FLUX) + ZP)."""
    ours, ref, _ = with_map
    t = ours.data
    for name in ("MAG_APER", "MAG_APER_1", "MAG_AUTO", "FLUX_APER", "FLUX_AUTO", "MAGERR_APER"):
        expected = np.asarray(ref[name], float)  # read_ldac splits the vector columns
        np.testing.assert_array_equal(np.asarray(t[name], float), expected, err_msg=name)
    pos = t["FLUX_AUTO"] > 0
    np.testing.assert_allclose(t["MAG_AUTO"][pos], ZP - 2.5 * np.log10(t["FLUX_AUTO"][pos]),
                               atol=2e-4)
    assert float(ours.meta["sextractor_config"]["MAG_ZEROPOINT"]) == ZP


def test_saturation_after_background_subtraction(with_map, frame):
    """FLAGS (bit 4, saturated) equal the binary's on the subtracted image with SATUR_LEVEL
    lowered by the background; the 10-mag stars of the frame are among them."""
    ours, ref, satur = with_map
    t = ours.data
    np.testing.assert_array_equal(np.asarray(t["FLAGS"]), np.asarray(ref["FLAGS"]))
    assert float(ours.meta["sextractor_config"]["SATUR_LEVEL"]) == pytest.approx(satur,
                                                                                  abs=0.5)
    _, truth = frame
    sat = truth[truth["SATURATED"] & (truth["X"] > 5) & (truth["X"] < 1530)
                & (truth["Y"] > 5) & (truth["Y"] < 1018)]
    assert len(sat) >= 3
    for s in sat:
        j = int(np.argmin(np.hypot(t["X_IMAGE"] - s["X"], t["Y_IMAGE"] - s["Y"])))
        assert t["FLAGS"][j] & 4, f"saturated star at ({s['X']:.0f},{s['Y']:.0f}) not flagged"
    assert (np.asarray(t["FLAGS"]) & 4).sum() < 20  # and not every bright source


# -- the noise model ------------------------------------------------------------------------
class _Master:
    def __init__(self, data, ncombine):
        self.data, self.ncombine = data, ncombine


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    spec = FrameSpec(shape=(128, 160), star_density=3)
    return make_frame(tmp_path_factory.mktemp("small") / spec.file_name(), spec, seed=4)


def test_rms_model_master_terms_equal_the_formula(small):
    """calculate_bkgrms_from_propagation against the documented variance, term by term."""
    from ezphot.background import calculate_bkgrms_from_propagation

    img = ScienceImage(small[0])
    rng = np.random.default_rng(1)
    ny, nx = img.shape
    back = 300 + 200 * rng.random((ny, nx))
    dark = 5 + 20 * rng.random((ny, nx))
    flat = 18000 + 4000 * rng.random((ny, nx))
    g, rn, n = 0.7, 6.0, 3
    nb, nd, nf = 11, 7, 5
    got = calculate_bkgrms_from_propagation(
        img, back, mbias=_Master(np.zeros((ny, nx)), nb), mdark=_Master(dark, nd),
        mflat=_Master(flat, nf), ncombine=n, egain=g, rdnoise=rn).data
    back32 = back.astype(np.float32).astype(float)
    var = ((back32 / g + (rn / g) ** 2) / n + (rn / g) ** 2 / nb + dark / (g * nd)
           + back32 ** 2 / (g * nf * np.median(flat)))
    np.testing.assert_allclose(got, np.sqrt(var), rtol=2e-6)
    # each term is present: dropping any of them moves the map by far more than the tolerance
    only = calculate_bkgrms_from_propagation(img, back, ncombine=n, egain=g, rdnoise=rn).data
    np.testing.assert_allclose(only, np.sqrt((back32 / g + (rn / g) ** 2) / n), rtol=2e-6)
    # a normalised flat does not tell its counts: 20000 ADU per flat frame assumed
    norm = calculate_bkgrms_from_propagation(img, back, mflat=_Master(flat / 20000, nf),
                                             ncombine=n, egain=g, rdnoise=rn).data
    np.testing.assert_allclose(norm, np.sqrt((back32 / g + (rn / g) ** 2) / n
                                             + back32 ** 2 / (g * nf * 20000.0)), rtol=2e-6)


# -- masks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("xy_r", [(60.0, 70.0, 20.0), (80.3, 50.7, 13.37)])
def test_pixel_unit_circular_mask(small, xy_r):
    """unit='pixel': the disk has ~pi r^2 pixels (r = radius_arcsec / pixel scale) centred on
    the 0-based position."""
    img = ScienceImage(small[0])
    x, y, r_px = xy_r
    m = img.calculate_circularmask(x_position=x, y_position=y,
                                   radius_arcsec=r_px * img.pixelscale, unit="pixel",
                                   verbose=False).data
    assert abs(m.sum() - np.pi * r_px ** 2) < 2 * r_px  # lattice-point error << perimeter
    yy, xx = np.nonzero(m)
    assert abs(xx.mean() - x) < 0.1 and abs(yy.mean() - y) < 0.1
    # the pixel centres inside are exactly those within r (astropy/numpy, 0-based)
    gy, gx = np.mgrid[0:m.shape[0], 0:m.shape[1]]
    np.testing.assert_array_equal(m, (gx - x) ** 2 + (gy - y) ** 2 <= r_px ** 2)


def test_source_mask_disks_centred_on_truth(frame):
    """Each isolated bright star's masked blob is centred on its true (0-based) position."""
    from scipy import ndimage

    path, truth = frame
    img = ScienceImage(path)
    m = img.calculate_sourcemask(sigma=5, mask_radius_factor=2, verbose=False).data
    lab, _ = ndimage.label(m)
    x, y = np.asarray(truth["X"]), np.asarray(truth["Y"])
    ny, nx = m.shape
    offsets = []
    for i, s in enumerate(truth):
        if s["TYPE"] != "star" or s["SATURATED"] or s["FLUX"] < 2e4:
            continue
        if not (30 < s["X"] < nx - 30 and 30 < s["Y"] < ny - 30):
            continue
        d = np.hypot(x - s["X"], y - s["Y"])
        d[i] = np.inf
        if np.any((d < 30) & (truth["FLUX"] > 0.01 * s["FLUX"])):
            continue
        k = lab[round(s["Y"]), round(s["X"])]
        assert k > 0, f"star at ({s['X']:.1f}, {s['Y']:.1f}) not masked"
        cy, cx = ndimage.center_of_mass(lab == k)
        offsets.append((cx - s["X"], cy - s["Y"]))
    offsets = np.array(offsets)
    assert len(offsets) >= 5
    assert np.all(np.abs(np.median(offsets, axis=0)) < 0.3), np.median(offsets, axis=0)
    # (a blob now and then merges with a neighbour's: a galaxy, a saturated star)
    assert np.mean(np.hypot(*offsets.T) < 0.3) > 0.6


# -- background mesh centres -------------------------------------------------------------------
@pytest.mark.parametrize("filter_size", [1, 3])
def test_background_of_a_plane_is_the_plane(tmp_path, filter_size):
    """A sky that is a plane: each mesh's clipped mean is the plane at the mesh centre
    ((i + 0.5) box - 0.5, 0-based) and the spline through them is the plane again; a mesh
    centre off by one pixel shows as an offset of the slope (1 ADU/px in x, 0.5 in y)."""
    spec = FrameSpec(shape=(256, 384), star_density=1e-9, n_galaxies_per_1000_stars=0,
                     mag_range=(25, 25.1))
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=2)
    gy, gx = np.mgrid[0:256, 0:384].astype(float)
    plane = 500 + 1.0 * gx + 0.5 * gy
    with fits.open(path, mode="update") as hdul:
        hdul[0].data = plane.astype(np.float32)
    img = ScienceImage(path)
    got = img.calculate_bkg(box_size=64, filter_size=filter_size, deep_mask=False,
                            verbose=False).data
    np.testing.assert_allclose(got, plane, atol=0.02)


# -- annulus sky with a mask ------------------------------------------------------------------
def test_annulus_sky_ignores_masked_pixels(tmp_path):
    """Dead columns (sky - 300 ADU), masked, cut through each annulus but not the aperture: the
    fluxes of blank positions stay ~0 (within 4 sigma); without the mask they are far off.
    Reference: the blank frame's truth (no source brighter than 25 mag)."""
    from ezphot.imageobjects import Mask

    spec = FrameSpec(shape=(256, 256), star_density=1e-9, n_galaxies_per_1000_stars=0,
                     mag_range=(25, 25.1))
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=3)
    header = fits.getheader(path)
    data = fits.getdata(path).astype(np.float32)
    dead = np.zeros(data.shape, bool)
    dead[:, :128] = True
    data[dead] -= 300
    fits.writeto(path, data, header, overwrite=True)
    img = ScienceImage(path)
    r_ap = 2.5 / img.pixelscale
    xs = np.full(3, 128 + r_ap + 1.5)  # the aperture clear of the dead columns, the annulus not
    ys = np.array([60.0, 128.0, 190.0])
    kw = dict(aperture_diameter_arcsec=[5], aperture_diameter_seeing=None, unit="pixel",
              annulus_width_arcsec=6, **Q)
    masked = AP.circular_photometry(img, xs, ys, target_mask=Mask(dead), **kw).data
    # the noise model alone (the confusion term, from blank apertures on this broken sky,
    # would honestly cover the error)
    plain = AP.circular_photometry(img, xs, ys, confusion_error=False, **kw).data
    assert masked.meta.get("pixel_origin", 0) == 0
    pull = np.asarray(masked["FLUX_APER"] / masked["FLUXERR_APER"], float)
    assert np.all(np.abs(pull) < 4), pull
    assert np.all(masked["FLAGS"] == 0)
    assert np.all(np.asarray(plain["FLUX_APER"] / plain["FLUXERR_APER"], float) > 5)


# -- photutils detection vs photutils.aperture directly ---------------------------------------
def test_photutils_detection_fluxes_equal_direct_aperture_photometry(tmp_path):
    """FLUX_APER of photutils_photometry = aperture_photometry at the catalogue's centroids on
    the image minus the same background (a constant here)."""
    from photutils.aperture import CircularAperture, aperture_photometry
    from photutils.utils import calc_total_error

    spec = FrameSpec(shape=(256, 320), star_density=12)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=8)
    img = ScienceImage(path)
    sky = float(np.median(img.data))
    rms = np.full(img.shape, np.std(img.data[img.data < np.percentile(img.data, 80)]))
    cat = AP.photutils_photometry(img, target_bkg=sky, target_bkgrms=rms, detection_sigma=3,
                                  aperture_diameter_arcsec=[5, 10], **Q)
    t = cat.data
    assert len(t) >= 10
    xy = np.column_stack([np.asarray(t["X_IMAGE"], float), np.asarray(t["Y_IMAGE"], float)])
    diam = cat.meta["aperture_diameter_pixel"]
    data = np.asarray(img.data, float) - sky
    # photutils' SourceCatalog corrects pixels of neighbouring segments ('correct'): compare
    # the sources with no other detection within reach of the larger aperture
    d = np.hypot(xy[:, 0, None] - xy[None, :, 0], xy[:, 1, None] - xy[None, :, 1])
    np.fill_diagonal(d, np.inf)
    alone = d.min(axis=1) > diam[1] + 15
    assert alone.sum() >= 5
    # errors: photutils' own total error (background RMS and the sources' Poisson noise)
    error = calc_total_error(data, rms, effective_gain=img.egain)
    for k, suffix in enumerate(["", "_1"]):
        ref = aperture_photometry(data, CircularAperture(xy[alone], r=diam[k] / 2), error=error)
        np.testing.assert_allclose(np.asarray(t[f"FLUX_APER{suffix}"][alone], float),
                                   np.asarray(ref["aperture_sum"], float), rtol=1e-5, atol=1e-2)
        np.testing.assert_allclose(np.asarray(t[f"FLUXERR_APER{suffix}"][alone], float),
                                   np.asarray(ref["aperture_sum_err"], float), rtol=1e-5)
    np.testing.assert_allclose(diam, np.array([5, 10]) / img.pixelscale)


# -- DataBrowser on a tree with several values at every level --------------------------------
LEVEL_VALUES = {"observatory": ["7DT", "KCT"], "telkey": ["7DT_C361K_HIGH_1x1", "KCT_STX"],
                "objname": ["T00528", "NGC0300"], "telname": ["7DT03", "7DT14"],
                "filter": ["m600", "m625"]}


@pytest.fixture(scope="module")
def browser_tree(tmp_path_factory):
    """Empty files at every combination of two values per level, but NGC0300 has no m600:
    the truth table is the list of relative paths."""
    import itertools

    root = tmp_path_factory.mktemp("browse") / "scidata"
    truth = []
    for combo in itertools.product(*LEVEL_VALUES.values()):
        if combo[2] == "NGC0300" and combo[4] == "m600":
            continue
        folder = root.joinpath(*combo)
        folder.mkdir(parents=True)
        for name in ("a_100.fits", "b_60.fits"):
            (folder / name).touch()
            truth.append((*combo, name))
    return root, truth


def test_browser_filters_equal_truth_table(browser_tree):
    import fnmatch
    import itertools

    from ezphot.utils import DataBrowser
    from ezphot.utils.databrowser import LEVELS

    root, truth = browser_tree

    def expected(setting: dict, pattern: str) -> list:
        keep = [t for t in truth
                if all(v is None or fnmatch.fnmatchcase(t[i], v)
                       for i, v in enumerate(setting.get(lv) for lv in LEVELS))
                and fnmatch.fnmatchcase(t[-1], pattern)]
        return sorted(root.joinpath(*t) for t in keep)

    n = 0
    choices = {lv: [None, *vals, vals[0][:3] + "*"] for lv, vals in LEVEL_VALUES.items()}
    for combo in itertools.product(*choices.values()):
        setting = dict(zip(LEVEL_VALUES, combo, strict=False))
        if sum(v is not None for v in combo) not in (1, 2, 5):
            continue
        b = DataBrowser(root)
        for lv, v in setting.items():
            setattr(b, lv, v)
        for pattern in ("*.fits", "*100.fits"):
            assert b.search(pattern) == expected(setting, pattern), (setting, pattern)
            n += 1
        keys = b.keys
        hits = expected(setting, "*.fits")
        for i, lv in enumerate(LEVELS):
            assert keys[lv] == sorted({p.relative_to(root).parts[i] for p in hits}), (setting, lv)
    assert n > 200
    b = DataBrowser(root)
    b.objname = "NGC0300"
    assert b.keys["filter"] == ["m625"]


# -- exports --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["ecsv", "parquet", "csv"])
def test_exports_keep_values_units_and_info(with_map, tmp_path, fmt):
    """Catalog.write: values (every column), units (ECSV, Parquet) and the info (ECSV) come
    back through astropy's own readers."""
    catalog = with_map[0]
    path = catalog.write(tmp_path / f"x.{fmt}", format=fmt)
    back = Table.read(path, format={"csv": "ascii.csv", "ecsv": "ascii.ecsv"}.get(fmt, fmt))
    assert back.colnames == catalog.data.colnames
    for name in catalog.data.colnames:
        np.testing.assert_allclose(np.asarray(back[name], float),
                                   np.asarray(catalog.data[name], float), rtol=1e-6,
                                   err_msg=name)
        if fmt != "csv":  # plain CSV holds no units
            assert back[name].unit == catalog.data[name].unit, name
    if fmt == "ecsv":
        assert back.meta["ezphot_info"] == catalog.info.to_dict()
        assert back["MAG_AUTO"].unit == u.mag and back["X_IMAGE"].unit == u.pix


# -- CLI exit code 1 and the Dask path's on_error='raise' ---------------------------------------
@pytest.fixture(scope="module")
def good_and_bad(tmp_path_factory):
    """A tree with one good small frame and one truncated (hence failing) frame beside it."""
    root = tmp_path_factory.mktemp("cli1") / "scidata"
    path, _ = make_frame(spec=FrameSpec(shape=(192, 256), star_density=6), seed=2, root=root)
    bad = path.with_name(path.name.replace("025855", "030000"))
    bad.write_bytes(path.read_bytes()[:20000])
    return root, path, bad


def test_cli_exit_1_when_some_frames_fail(good_and_bad, capsys):
    from ezphot import cli

    root, good, bad = good_and_bad
    code = cli.main(["photometry", str(root), "--no-resume", "--workers", "1"])
    out = capsys.readouterr()
    assert code == 1, out
    assert "2 images: 1 ok, 1 failed" in out.out + out.err
    assert Path(f"{good}.cat").exists() and not Path(f"{bad}.cat").exists()
    Path(f"{good}.cat").unlink()


def test_dask_on_error_raise(good_and_bad, tmp_path):
    distributed = pytest.importorskip("distributed")
    from ezphot.batch import BatchError, run_batch

    _, good, bad = good_and_bad
    files = []
    for p in (good, bad):
        files.append(tmp_path / p.name)
        shutil.copy(p, files[-1])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with pytest.raises(BatchError, match=bad.name):
            run_batch(files, client=client, progress=False, on_error="raise", resume=False,
                      aperture_diameter_arcsec=[5], aperture_diameter_seeing=[])
        skip = run_batch(files, client=client, progress=False, on_error="skip",
                         aperture_diameter_arcsec=[5], aperture_diameter_seeing=[])
    status = dict(zip(skip["image"], skip["status"], strict=False))
    # the good frame may have finished before the failure raised: then it is resumed
    assert status[str(files[0])] in ("done", "skipped") and status[str(files[1])] == "failed"
    from ezphot.dataobjects import Catalog

    assert Catalog.is_complete(f"{files[0]}.cat") and not Path(f"{files[1]}.cat").exists()


def test_photutils_detection_nproc(tmp_path, monkeypatch):
    """nproc splits the deblending (photutils' n_processes) and the measurements (sources dealt
    out to spawned processes): the same catalogue as with 1 process, bit for bit, every
    column, units and order; a bad value is refused before any work."""
    from ezphot.exceptions import ArgumentError
    from ezphot.photometry import detect

    spec = FrameSpec(shape=(256, 320), star_density=12)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=8)
    one = AP.photutils_photometry(path, aperture_diameter_arcsec=[5, 7], **Q).data
    shared = []

    def record(file, arr):
        shared.append(Path(file))
        write(file, arr)

    def record_empty(file, shape, dtype):
        shared.append(Path(file))
        return empty(file, shape, dtype)

    write, empty = detect._write_shared, detect._shared_empty
    monkeypatch.setattr(detect, "_write_shared", record)
    monkeypatch.setattr(detect, "_shared_empty", record_empty)
    # without EZPHOT_TMPDIR the workers' arrays go to /dev/shm (memory) when it has room
    monkeypatch.delenv("EZPHOT_TMPDIR")
    expected = detect._shared_parent(1 << 20) or Path(tempfile.gettempdir())
    for nproc in (2, 3):
        two = AP.photutils_photometry(path, aperture_diameter_arcsec=[5, 7], nproc=nproc,
                                      **Q).data
        assert len(one) > 10 and one.colnames == two.colnames
        assert {f.name for f in shared} == {"convolved.npy", "segm.npy", "data.npy",
                                            "error.npy", "mask.npy"}
        assert all(f.parent.parent == expected and not f.parent.exists() for f in shared)
        shared.clear()
        for name in one.colnames:
            assert one[name].unit == two[name].unit, name
            np.testing.assert_array_equal(np.asarray(one[name]), np.asarray(two[name]),
                                          f"{name} nproc={nproc}")
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises((ArgumentError, TypeError), match="nproc"):
            AP.photutils_photometry(path, nproc=bad, **Q)


def test_photutils_detection_strips_equal_one_pass():
    """With nproc > 1 the full-frame steps before the detection run in row strips, in
    threads: filtered image, total error, subtraction and SKYSIG equal one pass of scipy,
    photutils and numpy, bit for bit (row counts that do not divide evenly, a masked and a
    non-finite pixel on the strips' edges)."""
    from photutils.utils import calc_total_error
    from scipy.ndimage import convolve

    from ezphot.photometry import detect

    rng = np.random.default_rng(3)
    data = rng.normal(100, 10, (101, 37)).astype(np.float32)
    data[33, 5] = np.nan
    rms = rng.uniform(1, 3, data.shape).astype(np.float32)
    back = rng.normal(90, 1, data.shape).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[34, 7] = mask[67, 0] = True

    class Frame:
        pass

    img = Frame()
    img.data = data
    ref = data - back
    ref_bad = ~np.isfinite(ref) | mask
    ref[ref_bad] = 0.0
    for threads in (1, 2, 3, 7):
        sub, bad = detect._subtracted(detect._Arrays(None), img, back, mask, threads)
        np.testing.assert_array_equal(sub, ref)
        np.testing.assert_array_equal(bad, ref_bad)
        conv = detect._filtered(detect._Arrays(None), sub, threads)
        np.testing.assert_array_equal(conv, convolve(ref, detect._DEFAULT_CONV, mode="nearest"))
        err = detect._total_error(sub, rms, 2.5, threads=threads)
        np.testing.assert_array_equal(err, calc_total_error(ref, rms, effective_gain=2.5))
    # the error's row chunks (4 Mpx) end inside a strip too
    tall = rng.normal(0, 5, (1100, 4096)).astype(np.float32)
    np.testing.assert_array_equal(detect._total_error(tall, 2.0, 1.7, threads=3),
                                  calc_total_error(tall, np.full(tall.shape, 2.0, np.float32),
                                                   effective_gain=1.7))
    for n in (1, 2, 5, 6, 1001):
        values = rng.normal(0, 1, n).astype(np.float32)
        assert detect._median(values) == float(np.median(values.astype(float)))
    assert np.isnan(detect._median(np.array([1, 2, np.nan, 3], np.float32)))


def test_photutils_detection_workers_run_the_callers_code(tmp_path, monkeypatch):
    """A worker that imported another copy of a module than the calling process (a fork
    server started with another sys.path) refuses to measure: an ezphot error naming both
    files, no catalogue from other code."""
    from ezphot.exceptions import PhotometryWorkerError
    from ezphot.photometry import detect

    spec = FrameSpec(shape=(256, 320), star_density=12)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=8)
    real = detect._code_origin()
    assert real["photutils"].endswith("photutils/__init__.py")
    monkeypatch.setattr(detect, "_code_origin",
                        lambda: {**real, "photutils": "/elsewhere/photutils/__init__.py"})
    with pytest.raises(PhotometryWorkerError,
                       match=r"imported photutils from .*photutils/__init__.py, the calling "
                             r"process from /elsewhere/photutils"):
        AP.photutils_photometry(path, aperture_diameter_arcsec=[5], nproc=2, **Q)


def test_photutils_detection_shared_arrays_fall_back(monkeypatch):
    """/dev/shm only when it has room for the arrays twice over and EZPHOT_TMPDIR is unset
    (a container's /dev/shm is often 64 MB): else None, the run directories' usual place."""
    import os

    from ezphot.photometry import detect

    monkeypatch.delenv("EZPHOT_TMPDIR")
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm here")
    st = os.statvfs("/dev/shm")
    free = st.f_bavail * st.f_frsize
    assert detect._shared_parent(free // 2 - 4096) == Path("/dev/shm")
    assert detect._shared_parent(free // 2 + 4096) is None
    monkeypatch.setenv("EZPHOT_TMPDIR", "/somewhere")
    assert detect._shared_parent(1) is None


def test_photutils_detection_worker_failure(tmp_path, monkeypatch):
    """A measurement process that fails (here: its input file is garbage) gives an ezphot
    error naming the image; no worker process is left and the run directory is gone (the
    autouse fixture checks run directories)."""
    import multiprocessing

    from ezphot.exceptions import PhotometryWorkerError
    from ezphot.photometry import detect

    spec = FrameSpec(shape=(256, 320), star_density=12)
    path, _ = make_frame(tmp_path / spec.file_name(), spec, seed=8)

    def garbage(file, arr):
        Path(file).write_bytes(b"not an array")

    monkeypatch.setattr(detect, "_write_shared", garbage)
    with pytest.raises(PhotometryWorkerError, match=f"{path.name}.*process failed"):
        AP.photutils_photometry(path, aperture_diameter_arcsec=[5], nproc=2, **Q)
    assert multiprocessing.active_children() == []
