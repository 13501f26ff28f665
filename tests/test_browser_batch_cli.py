"""DataBrowser, ImageSet, the batch runner (local pool, Dask) and the CLI."""

from __future__ import annotations

import glob
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from ezphot.batch import run_batch
from ezphot.dataobjects import Catalog
from ezphot.datasets import make_sample_tree
from ezphot.methods import AperturePhotometry
from ezphot.utils import DataBrowser, ImageSet


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    paths = make_sample_tree(root / "scidata", 8, shape=(384, 512), seed=1)
    return root, paths


def test_browser_filters_equal_hand_glob(tree, monkeypatch):
    root, paths = tree
    monkeypatch.setenv("EZPHOT_DATA_DIR", str(root))
    b = DataBrowser("scidata")
    assert b.basepath == root / "scidata"
    assert b.search("*.fits") == sorted(map(type(paths[0]), glob.glob(
        str(root / "scidata/*/*/*/*/*/*.fits"))))
    for level, value, pattern in [("telname", "7DT16", "*/*/*/7DT16/*/*.fits"),
                                  ("filter", "m625", "*/*/*/*/m625/*.fits"),
                                  ("objname", "T00528", "*/*/T00528/*/*/*100.fits")]:
        b = DataBrowser(root / "scidata")
        setattr(b, level, value)
        found = b.search("*100.fits" if level == "objname" else "*.fits")
        assert found == sorted(map(type(paths[0]), glob.glob(str(root / "scidata" / pattern))))
        assert found
    b = DataBrowser(root / "scidata")
    keys = b.keys
    assert keys["telname"] == ["7DT03", "7DT14", "7DT16"]
    # make_sample_tree's 8 frames: filters m600, m625, r in turn every 3 frames
    assert keys["filter"] == ["m600", "m625", "r"]
    assert keys["telkey"] == ["7DT_C361K_HIGH_1x1"]


def test_imageset_reports_unreadable(tree, tmp_path):
    root, paths = tree
    bad = tmp_path / "scidata/7DT/7DT_C361K_HIGH_1x1/T00528/7DT14/m600"
    bad.mkdir(parents=True)
    (bad / "calib_broken_100.fits").write_text("not fits")
    os.symlink(paths[0], bad / paths[0].name)
    imgs = DataBrowser(tmp_path / "scidata").search("*100.fits", return_type="science")
    assert isinstance(imgs, ImageSet) and len(imgs) == 1
    assert len(imgs.failed) == 1 and "calib_broken_100.fits" in imgs.failed[0][0]
    assert len(pickle.dumps(imgs)) < 5000
    assert imgs.select(telname="7DT14")[0].telname == "7DT14"
    assert len(imgs.exclude(telname="7DT14")) == 0


def test_batch_local_pool_equals_one_by_one(tree, tmp_path):
    root, paths = tree
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for p in paths[:4]:
            shutil.copy(p, d / p.name)
    opts = dict(detection_sigma=3, aperture_diameter_arcsec=[5, 10])
    pool = run_batch(sorted(a.glob("*.fits")), workers=2, progress=False, **opts)
    one = run_batch(sorted(b.glob("*.fits")), workers=1, progress=False, **opts)
    assert list(pool["status"]) == ["done"] * 4 == list(one["status"])
    for pa, pb in zip(pool["catalog"], one["catalog"], strict=False):
        ta, tb = Catalog(pa).data, Catalog(pb).data
        np.testing.assert_array_equal(ta["FLUX_APER_1"], tb["FLUX_APER_1"])
    again = run_batch(sorted(a.glob("*.fits")), workers=2, progress=False, **opts)
    assert list(again["status"]) == ["skipped"] * 4


def test_batch_reports_corrupt_frame(tree, tmp_path):
    root, paths = tree
    import shutil

    for p in paths[:2]:
        shutil.copy(p, tmp_path / p.name)
    corrupt = tmp_path / "calib_7DT01_T00528_20250906_000000_m600_100.fits"
    corrupt.write_bytes(paths[0].read_bytes()[:20000])
    files = sorted(tmp_path.glob("*.fits"))
    summary = run_batch(files, workers=2, progress=False, on_error="skip")
    status = dict(zip(summary["image"], summary["status"], strict=False))
    assert status[str(corrupt)] == "failed"
    assert sum(s == "done" for s in status.values()) == 2
    err = summary["error"][list(summary["image"]).index(str(corrupt))]
    assert "SExtractorError" in err
    from ezphot.batch import BatchError

    with pytest.raises(BatchError, match=corrupt.name):
        run_batch(files, workers=1, progress=False, on_error="raise", resume=False)


def test_batch_dask_local_cluster(tree, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, paths = tree
    import shutil

    for p in paths[:3]:
        shutil.copy(p, tmp_path / p.name)
    files = sorted(tmp_path.glob("*.fits"))
    opts = dict(detection_sigma=3, aperture_diameter_arcsec=[5])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        summary = run_batch(files, client=client, progress=False, **opts)
    assert list(summary["status"]) == ["done"] * 3
    for row in summary:  # each catalogue equals the one measured here, in this process
        ref = AperturePhotometry().sex_photometry(row["image"], save=False, visualize=False,
                                                  verbose=False, **opts)
        got = Catalog(row["catalog"]).data
        assert len(got) == len(ref.data) > 0
        np.testing.assert_array_equal(got["FLUX_APER"], ref.data["FLUX_APER"])


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ezphot.cli", *args], capture_output=True,
                          text=True, timeout=300, **kw)


def test_cli_end_to_end(tree, tmp_path):
    root, paths = tree
    r = run_cli("--help")
    assert r.returncode == 0 and "photometry" in r.stdout
    r = run_cli("browse", str(root / "scidata"), "--telname", "7DT16")
    assert r.returncode == 0
    assert r.stdout.split() == [str(p) for p in sorted(p for p in paths if "7DT16" in p.name)]
    r = run_cli("photometry", str(root / "scidata"), "--bogus")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    r = run_cli("browse", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no such data directory" in r.stderr
    r = run_cli("browse", str(root / "scidata"), "--keys")
    assert r.returncode == 0 and "telname: 7DT03, 7DT14, 7DT16" in r.stdout


def test_cli_forced(tree, tmp_path):
    import shutil

    root, paths = tree
    d = tmp_path / "scidata" / "7DT" / "7DT_C361K_HIGH_1x1" / "T00528" / "7DT14" / "m600"
    d.mkdir(parents=True)
    shutil.copy(paths[0], d / paths[0].name)
    img = DataBrowser(tmp_path / "scidata").search(return_type="science")[0]
    c = img.center
    r = run_cli("forced", str(tmp_path / "scidata"), f"--ra={c.ra.deg},{c.ra.deg + 0.001}",
                f"--dec={c.dec.deg},{c.dec.deg}", "--aperture-arcsec", "5,8", "--workers", "1")
    assert r.returncode == 0, r.stderr
    from ezphot.photometry.common import forced_suffix

    # one catalogue per target list: its name carries the digest of the positions
    suffix = forced_suffix("circular", [c.ra.deg, c.ra.deg + 0.001], [c.dec.deg, c.dec.deg],
                           unit="coord")
    assert [p.name for p in d.glob("*.cat")] == [f"{paths[0].name}{suffix}"]
    cat = Catalog(f"{d / paths[0].name}{suffix}")
    assert len(cat.data) == 2 and "FLUX_APER_1" in cat.data.colnames
    assert cat.data["X_WORLD"][0] == pytest.approx(c.ra.deg)
    # the same command again: skipped; other apertures: measured again, and the output says why
    r = run_cli("forced", str(tmp_path / "scidata"), f"--ra={c.ra.deg},{c.ra.deg + 0.001}",
                f"--dec={c.dec.deg},{c.dec.deg}", "--aperture-arcsec", "5,8", "--workers", "1")
    assert r.returncode == 0 and r.stdout.startswith("skipped"), r.stdout + r.stderr
    r = run_cli("forced", str(tmp_path / "scidata"), f"--ra={c.ra.deg},{c.ra.deg + 0.001}",
                f"--dec={c.dec.deg},{c.dec.deg}", "--aperture-arcsec", "5,9", "--workers", "1")
    assert r.returncode == 0 and "(remeasured: options changed)" in r.stdout, r.stdout


def test_version():
    """``ezphot --version`` and ``python -m ezphot`` (the package's __main__) print the version."""
    import ezphot

    for cmd in (["-m", "ezphot.cli"], ["-m", "ezphot"]):
        r = subprocess.run([sys.executable, *cmd, "--version"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == f"ezphot {ezphot.__version__}", r


def _tutorial_cell_11(target_img):
    from ezphot.methods import AperturePhotometry

    return AperturePhotometry().sex_photometry(
        target_img=target_img, target_bkg=target_img.bkgmap, target_bkgrms=target_img.bkgrms,
        target_mask=None, sex_params=None, detection_sigma=5, aperture_diameter_arcsec=[5, 7, 10],
        aperture_diameter_seeing=[2.5, 3.5], saturation_level=60000, kron_factor=2.5, save=True,
        verbose=False, visualize=False, save_fig=False)


def test_tutorial_cell_11_multiprocessing_pool(tree, tmp_path):
    """The tutorial's own loop (multiprocessing.Pool over ScienceImages) works as written."""
    import shutil
    from multiprocessing import get_context

    root, paths = tree
    for p in paths[:3]:
        shutil.copy(p, tmp_path / p.name)
    from ezphot.utils.imageset import load_images

    target_imglist = load_images(sorted(tmp_path.glob("*.fits"))).target_images
    for img in target_imglist:  # maps saved beside each frame, as cell 11 expects
        bkg = img.calculate_bkg(verbose=False, save=True)
        img.calculate_bkgrms_from_propagation(bkg, verbose=False, save=True)
    with get_context("spawn").Pool(processes=2) as pool:
        catalogs = pool.map(_tutorial_cell_11, target_imglist)
    assert [c.info.path for c in catalogs] == [f"{i.path}.cat" for i in target_imglist]
    assert all(c.meta["background"] == "map" and len(c.data) > 0 for c in catalogs)
