"""Hostile use of the SExtractor adapter (issue 9, items 1-3 and the binary's LDAC output).

The binary's output files are ezphot's; check images come back as objects; every legal file
name works; every value written into the ``.sex`` file is checked; a hanging or garbage-
writing binary (small fake scripts written here) gives a clear ezphot error in time and leaves
no process behind. Every case checks the inputs' checksums, and the autouse fixture of
conftest that no run directory is left.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ezphot._io import run_directory
from ezphot.exceptions import (
    SExtractorConfigError,
    SExtractorError,
    SExtractorOutputError,
    SExtractorTimeoutError,
)
from ezphot.imageobjects import Errormap, ScienceImage
from ezphot.masks import calculate_sourcemask
from ezphot.methods import AperturePhotometry
from ezphot.photometry.sexphot import measure_seeing
from ezphot.sextractor import find_sextractor, run_sextractor
from ezphot.sextractor.binary import default_run_timeout

from .conftest import ROOT, sha256, shared

# sep's real 256x256 frame has no WCS: pixel apertures through PIXEL_SCALE 1
OPTS = dict(save=False, visualize=False, verbose=False, aperture_diameter_seeing=None,
            aperture_diameter_arcsec=[5, 10], detection_sigma=3)
SEP_PARAMS = {"PIXEL_SCALE": 1.0}
REAL = shutil.which("source-extractor") or shutil.which("sex")


def phot(path, **kw):
    kw = {**OPTS, **kw}
    kw["sex_params"] = {**SEP_PARAMS, **(kw.get("sex_params") or {})}
    return AperturePhotometry().sex_photometry(path, **kw)


def assert_same_table(ours, ref, min_rows=10):
    assert ours.colnames == ref.colnames
    assert len(ours) == len(ref) > min_rows
    for name in ref.colnames:
        np.testing.assert_array_equal(np.asarray(ours[name]), np.asarray(ref[name]),
                                      err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The catalogue of a plain-named copy of sep's frame."""
    d = tmp_path_factory.mktemp("plain")
    plain = d / "plain.fits"
    shutil.copyfile(shared("sep", "image.fits"), plain)
    return phot(plain).data


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie whose parent will reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def assert_no_process(pidfile: Path, timeout: float = 3.0) -> None:
    pids = [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []
    assert pids, "the fake binary never ran"
    t0 = time.time()
    while any(_alive(p) for p in pids) and time.time() - t0 < timeout:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], f"processes left running: {pids}"


def fake_binary(tmp_path: Path, run_body: str, *, probe_body: str = "",
                name: str = "fake-sex") -> Path:
    """A shell script that answers the probes like the real binary (unless ``probe_body``
    says otherwise) and runs ``run_body`` for a run; it writes its pid to ``pids``."""
    pidfile = tmp_path / "pids"
    script = tmp_path / name
    script.write_text(
        "#!/bin/sh\n"
        f'{probe_body}\n'
        f'case "$1" in -v|-dd|-dp) exec "{REAL}" "$@";; esac\n'
        f'echo $$ >> "{pidfile}"\n'
        f"{run_body}\n")
    script.chmod(0o755)
    return script


# -- 1. the binary's output files are ezphot's ----------------------------------------------
@pytest.mark.parametrize("key", ["CATALOG_NAME", "CHECKIMAGE_NAME", "XML_NAME", "CATALOG_TYPE",
                                 "PARAMETERS_NAME"])
def test_output_file_keywords_refused(tmp_path, key):
    frame = tmp_path / "frame.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    other = tmp_path / "other.txt"
    other.write_text("precious")
    before = sha256(frame), sha256(other)
    params = {key: str(other), "CHECKIMAGE_TYPE": "BACKGROUND"}
    with pytest.raises(SExtractorConfigError, match=f"{key} cannot be set"):
        phot(frame, sex_params=params)
    with pytest.raises(SExtractorConfigError, match=f"{key} cannot be set"):
        phot(frame, sex_params={key.lower(): str(frame)})  # any case, the input itself
    assert (sha256(frame), sha256(other)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.fits", "other.txt"]


def test_runner_refuses_output_keywords(tmp_path, sextractor):
    frame = shared("sep", "image.fits")
    with pytest.raises(SExtractorConfigError, match="CHECKIMAGE_NAME cannot be set"):
        run_sextractor(frame, workdir=tmp_path, config={"CHECKIMAGE_NAME": str(frame)},
                       parameters=["NUMBER"], n_apertures=1, binary=sextractor)


def test_write_xml_stays_in_run_directory(tmp_path, reference, monkeypatch):
    frame = tmp_path / "frame.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    monkeypatch.chdir(tmp_path)
    cat = phot(frame, sex_params={"WRITE_XML": "Y"})
    assert_same_table(cat.data, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.fits"]  # no sex.xml here


def test_checkimages_are_objects_equal_to_sextractors_own(tmp_path, reference):
    frame = tmp_path / "frame.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    before = sha256(frame)
    cat = phot(frame, checkimages=["BACKGROUND", "SEGMENTATION", "-BACKGROUND",
                                   "BACKGROUND_RMS"])
    assert_same_table(cat.data, reference)  # asking for check images changes no number
    checks = cat.checkimages
    assert list(checks) == ["BACKGROUND", "SEGMENTATION", "-BACKGROUND", "BACKGROUND_RMS"]
    # SExtractor's own check images of this frame (sep's reference files)
    np.testing.assert_array_equal(checks["BACKGROUND"].data,
                                  fits.getdata(shared("sep", "back.fits")))
    np.testing.assert_array_equal(checks["BACKGROUND_RMS"].data,
                                  fits.getdata(shared("sep", "rms.fits")))
    image = fits.getdata(frame).astype(np.float64)
    np.testing.assert_allclose(checks["-BACKGROUND"].data, image - checks["BACKGROUND"].data,
                               atol=1e-3)
    seg = checks["SEGMENTATION"].data
    assert seg.shape == image.shape and seg.max() == len(cat.data)
    x = np.round(np.asarray(cat.data["X_IMAGE"])).astype(int)  # 0-based positions
    y = np.round(np.asarray(cat.data["Y_IMAGE"])).astype(int)
    assert np.mean(seg[y, x] == np.asarray(cat.data["NUMBER"])) > 0.9
    assert checks["BACKGROUND"].target_img == str(frame)
    assert sha256(frame) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.fits"]  # save=False


def test_checkimages_saved_beside_catalogue(tmp_path):
    frame = tmp_path / "my frame, 1.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    # CHECKIMAGE_TYPE in sex_params means the same as checkimages=
    cat = phot(frame, save=True, sex_params={"CHECKIMAGE_TYPE": "SEGMENTATION,-BACKGROUND"},
               checkimages=["BACKGROUND"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["my frame, 1.fits", "my frame, 1.fits.cat",
                     "my frame, 1.fits.cat.background.fits",
                     "my frame, 1.fits.cat.minus_background.fits",
                     "my frame, 1.fits.cat.segmentation.fits"]
    for kind, suffix in (("BACKGROUND", "background"), ("SEGMENTATION", "segmentation"),
                         ("-BACKGROUND", "minus_background")):
        with fits.open(tmp_path / f"my frame, 1.fits.cat.{suffix}.fits") as hdul:
            np.testing.assert_array_equal(hdul[0].data, cat.checkimages[kind].data)
            assert hdul[0].header["EZCHECK"] == kind
            assert hdul[0].header["EZTARGET"] == str(frame)


def test_bad_checkimage_type(tmp_path):
    with pytest.raises(SExtractorConfigError, match="CHECKIMAGE_TYPE.*BACKGROUNDD"):
        phot(shared("sep", "image.fits"), checkimages=["BACKGROUNDD"])


@pytest.mark.parametrize("key, name", [("FILTER_NAME", "default.conv"),
                                       ("STARNNW_NAME", "default.nnw"),
                                       ("ASSOC_NAME", "sky.list"),
                                       ("WEIGHT_IMAGE", "weight.fits"),
                                       ("FLAG_IMAGE", "flag.fits"),
                                       ("PSF_NAME", "default.psf")])
def test_input_files_must_exist(tmp_path, key, name):
    missing = tmp_path / "nowhere" / name
    with pytest.raises(SExtractorConfigError, match=f"{key}: {missing}: no such file"):
        phot(shared("sep", "image.fits"), sex_params={key: str(missing)})
    with pytest.raises(SExtractorConfigError, match=f"{key}: {tmp_path}: no such file"):
        phot(shared("sep", "image.fits"), sex_params={key: str(tmp_path)})  # a directory


@pytest.mark.parametrize("dirname", ["conf dir, with $(echo x); `y`", "-dash", "ünï [2]"])
def test_input_files_with_hostile_names_only_read(tmp_path, reference, dirname):
    d = tmp_path / dirname
    d.mkdir()
    conv = d / "my filter,1.conv"
    nnw = d / "my nnw;1.nnw"
    shutil.copyfile(shared("sep", "default.conv"), conv)
    shutil.copyfile(shared("sep", "default.nnw"), nnw)
    before = sha256(conv), sha256(nnw)
    ours = phot(shared("sep", "image.fits"), sex_params={"FILTER_NAME": conv,
                                                        "STARNNW_NAME": str(nnw)})
    # sep's default.conv/.nnw are ezphot's defaults too: same catalogue as the plain run
    assert_same_table(ours.data, reference)
    assert (sha256(conv), sha256(nnw)) == before
    assert ours.meta["sextractor_config"]["FILTER_NAME"] == str(conv)  # provenance: their path


# -- every value is checked against its keyword -----------------------------------------------
BAD_VALUES = [
    ("DETECT_THRESH", "1.5x", "takes numbers"),
    ("DETECT_THRESH", float("nan"), "finite"),
    ("MAG_ZEROPOINT", float("inf"), "finite"),
    ("DETECT_MINAREA", 5.5, "integers"),
    ("BACK_SIZE", "64\nCATALOG_NAME /tmp/evil", "control character"),
    ("SATUR_KEY", "SAT\x00URATE", "control character"),
    ("CLEAN", "maybe", "Y or N"),
    ("BACKPHOTO_TYPE", "LOCALL", "one of GLOBAL, LOCAL"),
    ("GAIN", -1, "out of range"),
    ("DEBLEND_MINCONT", 2.0, "out of range"),
    ("PHOT_AUTOPARAMS", 2.5, "takes 2 value"),
    ("GAIN_KEY", "TOOLONGKEY", "FITS keyword"),
    ("SATUR_KEY", "NOT A KEY", "takes 1 value"),
    ("SEEING_FWHM", "@list.txt", "takes numbers"),
    ("HEADER_SUFFIX", "$HOME", "not a plain word"),
]


@pytest.mark.parametrize("key, value, problem", BAD_VALUES, ids=[f"{k}-{i}" for i, (k, *_)
                                                                 in enumerate(BAD_VALUES)])
def test_invalid_values_refused_before_the_binary_runs(tmp_path, key, value, problem):
    log = tmp_path / "calls"
    spy = tmp_path / "spy-sex"  # the real binary, recording every call
    spy.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{REAL}" "$@"\n')
    spy.chmod(0o755)
    frame = shared("sep", "image.fits")
    with pytest.raises(SExtractorConfigError, match=f"{key}.*{problem}"):
        phot(frame, sex_params={key: value}, binary=str(spy))
    runs = [c for c in log.read_text().splitlines() if c.split()[0] not in ("-v", "-dd", "-dp")]
    assert runs == []


def test_valid_values_normalised(tmp_path, reference):
    cat = phot(shared("sep", "image.fits"),
               sex_params={"CLEAN": True, "FILTER": "y", "DETECT_MINAREA": 5.0,
                           "MASK_TYPE": "correct", "BACK_SIZE": [64, 64]})
    cfg = cat.meta["sextractor_config"]
    assert (cfg["CLEAN"], cfg["FILTER"], cfg["DETECT_MINAREA"], cfg["MASK_TYPE"],
            cfg["BACK_SIZE"]) == ("Y", "Y", "5", "CORRECT", "64,64")
    assert_same_table(cat.data, reference)


# -- 2. every legal file name works ----------------------------------------------------------
HOSTILE_NAMES = ["with space.fits", "quote'single.fits", 'double"quote.fits',
                 "comma,name.fits", "semi;colon.fits", "brackets[x].fits", "x.fits[0]",
                 "$(touch pwned).fits", "`touch pwned`.fits", "ünïcödé 星.fits",
                 "-leading-dash.fits", "hash#name.fits", "at@name.fits", "eq=name.fits",
                 "back\\slash.fits"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_image_names(tmp_path, reference, monkeypatch, name):
    frame = tmp_path / name
    shutil.copyfile(shared("sep", "image.fits"), frame)
    before = sha256(frame)
    monkeypatch.chdir(tmp_path)
    ours = phot(frame)
    assert_same_table(ours.data, reference)
    assert sha256(frame) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing made (pwned ...)


def test_hostile_directory_tmpdir_and_maps(tmp_path, monkeypatch):
    """Image, saved RMS map (linked, not copied) and EZPHOT_TMPDIR under hostile names."""
    d = tmp_path / "data dir, $(x); `y` -z"
    d.mkdir()
    frame = d / "-frame #1.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain = plain_dir / "frame.fits"
    shutil.copyfile(frame, plain)
    rms = np.full((256, 256), 70.0, np.float32)
    Errormap(rms, target_img=frame).save(d / "rms map, 1.fits")
    Errormap(rms, target_img=plain).save(plain_dir / "rms.fits")
    before = sha256(frame), sha256(d / "rms map, 1.fits")
    runs = tmp_path / "tmp dir, $(y); `z` ü"
    runs.mkdir()
    monkeypatch.setenv("EZPHOT_TMPDIR", str(runs))
    ours = phot(frame, target_bkgrms=d / "rms map, 1.fits")
    ref = phot(plain, target_bkgrms=plain_dir / "rms.fits")
    assert_same_table(ours.data, ref.data)
    assert (sha256(frame), sha256(d / "rms map, 1.fits")) == before
    assert list(runs.iterdir()) == []


def test_extension_selection_decam(tmp_path):
    """``file.fits[1]`` (DECam: empty primary HDU) under a hostile name equals a plain copy of
    extension 1; its weight map in extension 1 too."""
    src = shared("decam", "c4d_170316_062107_ooi_z_ls9.N2.fits")
    wsrc = shared("decam", "c4d_170316_062107_oow_z_ls9.N2.fits")
    hostile = tmp_path / "de cam, $(n2).fits"
    whostile = tmp_path / "we ight;1.fits"
    shutil.copyfile(src, hostile)
    shutil.copyfile(wsrc, whostile)
    before = sha256(hostile), sha256(whostile)
    plain, wplain = tmp_path / "plain.fits", tmp_path / "wplain.fits"
    with fits.open(src) as hdul:
        fits.PrimaryHDU(hdul[1].data, hdul[1].header).writeto(plain)
    with fits.open(wsrc) as hdul:
        fits.PrimaryHDU(hdul[1].data, hdul[1].header).writeto(wplain)
    opts = dict(aperture_diameter_arcsec=[3, 5], detection_sigma=2, parameters=[
        "NUMBER", "X_IMAGE", "Y_IMAGE", "FLUX_APER", "FLUX_AUTO", "FLAGS", "ALPHA_J2000",
        "DELTA_J2000"])
    ap = AperturePhotometry()
    kw = dict(save=False, visualize=False, verbose=False, aperture_diameter_seeing=None, **opts)
    ref = ap.sex_photometry(plain, **kw).data
    for target in (f"{hostile}[1]", str(hostile)):  # explicit, and the first image HDU
        assert_same_table(ap.sex_photometry(target, **kw).data, ref, min_rows=5)
    weighted = dict(kw, sex_params={"WEIGHT_TYPE": "MAP_WEIGHT"})
    ref_w = ap.sex_photometry(plain, **dict(weighted, sex_params={
        **weighted["sex_params"], "WEIGHT_IMAGE": str(wplain)})).data
    ours_w = ap.sex_photometry(f"{hostile}[1]", **dict(weighted, sex_params={
        **weighted["sex_params"], "WEIGHT_IMAGE": f"{whostile}[1]"})).data
    assert_same_table(ours_w, ref_w, min_rows=5)
    # the weight map was used: the catalogue differs from the unweighted one
    assert len(ours_w) != len(ref) or not np.array_equal(np.asarray(ours_w["FLUX_AUTO"]),
                                                         np.asarray(ref["FLUX_AUTO"]))
    assert (sha256(hostile), sha256(whostile)) == before


# -- 3. no hang, no orphan -------------------------------------------------------------------
HANG = 'sleep 1000 &\necho $! >> "$(dirname "$0")/pids"\nsleep 1000\n'


def test_hanging_binary_killed_at_timeout_argument(tmp_path):
    fake = fake_binary(tmp_path, HANG)
    frame = tmp_path / "frame.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    before = sha256(frame)
    t0 = time.time()
    with pytest.raises(SExtractorTimeoutError) as err:
        phot(frame, binary=str(fake), timeout=1.5)
    assert time.time() - t0 < 1.5 + 5
    msg = str(err.value)
    assert str(frame) in msg and str(fake) in msg and "1.5 s" in msg
    assert_no_process(tmp_path / "pids")
    assert sha256(frame) == before


def test_hanging_binary_killed_at_environment_timeout(tmp_path, monkeypatch):
    fake = fake_binary(tmp_path, HANG)
    monkeypatch.setenv("EZPHOT_SEXTRACTOR_TIMEOUT", "2")
    t0 = time.time()
    with pytest.raises(SExtractorTimeoutError, match=r"within 2 s"):
        phot(shared("sep", "image.fits"), binary=str(fake))
    assert time.time() - t0 < 2 + 5
    assert_no_process(tmp_path / "pids")


def test_hanging_source_mask_and_seeing(tmp_path):
    fake = fake_binary(tmp_path, HANG)
    img = ScienceImage(shared("sep", "image.fits"))
    with pytest.raises(SExtractorTimeoutError, match="image.fits"):
        calculate_sourcemask(img, binary=find_sextractor(fake), timeout=1)
    assert_no_process(tmp_path / "pids")
    (tmp_path / "pids").unlink()
    frame = tmp_path / "wcs.fits"
    with fits.open(shared("decam", "c4d_170316_062107_ooi_z_ls9.N2.fits")) as hdul:
        fits.PrimaryHDU(hdul[1].data, hdul[1].header).writeto(frame)
    with pytest.raises(SExtractorTimeoutError, match="wcs.fits"):
        measure_seeing(ScienceImage(frame), binary=find_sextractor(fake), timeout=1)
    assert_no_process(tmp_path / "pids")


@pytest.mark.parametrize("probe", ["-v", "-dd", "-dp"])
def test_hanging_probe(tmp_path, monkeypatch, probe):
    fake = fake_binary(tmp_path, "", probe_body=(
        f'if [ "$1" = "{probe}" ]; then echo $$ >> "{tmp_path}/pids"; sleep 1000; fi'))
    monkeypatch.setenv("EZPHOT_SEXTRACTOR", str(fake))
    monkeypatch.setenv("EZPHOT_SEXTRACTOR_TIMEOUT", "1")
    t0 = time.time()
    with pytest.raises(SExtractorTimeoutError) as err:
        find_sextractor()
    assert time.time() - t0 < 1 + 5
    assert str(fake) in str(err.value) and probe in str(err.value) and "1 s" in str(err.value)
    assert_no_process(tmp_path / "pids")


@pytest.mark.parametrize("value", ["abc", "-1", "0", "inf", "nan"])
def test_invalid_timeout_environment(monkeypatch, value):
    monkeypatch.setenv("EZPHOT_SEXTRACTOR_TIMEOUT", value)
    with pytest.raises(SExtractorConfigError, match="EZPHOT_SEXTRACTOR_TIMEOUT"):
        phot(shared("sep", "image.fits"))


@pytest.mark.parametrize("value", [0, -5, float("nan"), "soon", True])
def test_invalid_timeout_argument(value):
    with pytest.raises(SExtractorConfigError, match="timeout must be a positive number"):
        phot(shared("sep", "image.fits"), timeout=value)


def test_huge_timeout_means_no_limit(reference):
    assert_same_table(phot(shared("sep", "image.fits"), timeout=1e300).data, reference)


def test_default_timeout_grows_with_image_size():
    small, full = default_run_timeout(256 * 256), default_run_timeout(9576 * 6388)
    assert 600 <= small < full and full >= 1800


def test_binary_fails_exit_code(tmp_path):
    fake = fake_binary(tmp_path, 'echo "> *Error*: something broke" >&2\nexit 3')
    with pytest.raises(SExtractorError, match=r"image.fits with exit code 3.*something broke"):
        phot(shared("sep", "image.fits"), binary=str(fake))
    assert_no_process(tmp_path / "pids")


# -- 8 (part). the binary's own LDAC output ---------------------------------------------------
def _writes(content: str) -> str:
    """Run body: write ``content`` (shell) to the CATALOG_NAME of the .sex file, exit 0."""
    return (f'cat_name=$(awk \'$1=="CATALOG_NAME"{{print $2}}\' "$3")\n'
            f'{content}\nexit 0')


LDAC_FAULTS = {
    "garbage": (_writes('head -c 20000 /dev/urandom > "$cat_name"'),
                "not a readable FITS_LDAC catalogue"),
    "empty": (_writes(': > "$cat_name"'), "empty file"),
    "truncated": (_writes('head -c 9000 "{ldac}" > "$cat_name"'),
                  "not a readable FITS_LDAC catalogue"),
    "truncated in the data": (_writes('head -c 46080 "{ldac}" > "$cat_name"'),
                              "not a readable FITS_LDAC catalogue"),
    # only the last block's padding is missing: astropy reads all 65 rows and merely warns
    "truncated padding": (_writes('head -c 48860 "{ldac}" > "$cat_name"'),
                          ".*File may have been truncated"),
    "image": (_writes('cp "{back}" "$cat_name"'), "no LDAC_OBJECTS"),
    "other columns": (_writes('cp "{ldac}" "$cat_name"'),
                      "column FLUX_APER\\(2\\) asked for"),
    "nothing": ("exit 0", "wrote no catalogue"),
}


@pytest.mark.parametrize("fault", list(LDAC_FAULTS))
def test_bad_ldac_output(tmp_path, fault):
    body, problem = LDAC_FAULTS[fault]
    body = body.replace("{ldac}", str(shared("sep", "generated-by-debian-2.25",
                                             "image_ldac_fullprecision.fits")))
    body = body.replace("{back}", str(shared("sep", "back.fits")))
    fake = fake_binary(tmp_path, body)
    frame = tmp_path / "frame.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    before = sha256(frame)
    # the problem right after the file's name (the test's own path holds the fault's name)
    match = problem if fault == "nothing" else rf"catalog\.ldac\): {problem}"
    with pytest.raises(SExtractorOutputError, match=match) as err:
        phot(frame, binary=str(fake), parameters=["NUMBER", "X_IMAGE", "Y_IMAGE", "FLUX_APER"])
    assert str(frame) in str(err.value)
    assert sha256(frame) == before
    assert_no_process(tmp_path / "pids")


def test_sigkill_free_run_leaves_no_process(tmp_path):
    """A binary that leaves a background child behind after exiting: the group is killed."""
    body = (f'sleep 1000 > /dev/null 2>&1 &\necho $! >> "{tmp_path}/pids"\n'
            f'exec "{REAL}" "$@"')
    fake = fake_binary(tmp_path, body)
    cat = phot(shared("sep", "image.fits"), binary=str(fake))
    assert len(cat.data) > 10
    assert_no_process(tmp_path / "pids")


def test_environment_timeout_does_not_leak_into_cache(tmp_path, monkeypatch):
    """A probe that timed out is not cached: the same binary works once it answers."""
    flag = tmp_path / "hang"
    flag.touch()
    fake = fake_binary(tmp_path, f'exec "{REAL}" "$@"', probe_body=(
        f'if [ -e "{flag}" ]; then echo $$ >> "{tmp_path}/pids"; sleep 1000; fi'))
    with pytest.raises(SExtractorTimeoutError):
        find_sextractor(fake, timeout=0.5)
    assert_no_process(tmp_path / "pids")
    os.unlink(flag)
    assert find_sextractor(fake, timeout=10).version.startswith("2.")


def test_binary_dies_with_the_process_that_started_it(tmp_path):
    """SIGKILL of the Python process running a (hanging) binary: the binary dies too."""
    import signal
    import subprocess
    import sys

    fake = fake_binary(tmp_path, "exec sleep 1000")
    code = ("from ezphot.methods import AperturePhotometry\n"
            f"AperturePhotometry().sex_photometry({str(shared('sep', 'image.fits'))!r}, "
            f"binary={str(fake)!r}, sex_params={{'PIXEL_SCALE': 1.0}}, "
            "aperture_diameter_arcsec=[5], aperture_diameter_seeing=None, save=False, "
            "visualize=False)\n")
    # this worktree's ezphot (the child's cwd is elsewhere)
    env = dict(os.environ, EZPHOT_TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path)
    pidfile = tmp_path / "pids"
    t0 = time.time()
    while not pidfile.exists() and time.time() - t0 < 60:
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert_no_process(pidfile)


def test_external_header_beside_hostile_image_still_read(tmp_path, sextractor):
    """SExtractor reads ``<stem>.head`` beside an image (HEADER_SUFFIX); behind the plain name
    the binary is given, a WCS in ``my frame, 1.head`` is still applied."""
    frame = tmp_path / "my frame, 1.fits"
    shutil.copyfile(shared("sep", "image.fits"), frame)
    head = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0,
                        "CRVAL2": 2.0, "CRPIX1": 128.0, "CRPIX2": 128.0,
                        "CD1_1": -1e-4, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 1e-4})
    params = ["NUMBER", "X_IMAGE", "ALPHA_J2000", "DELTA_J2000"]
    kw = dict(config={"PIXEL_SCALE": 1.0}, parameters=params, n_apertures=1, binary=sextractor)
    with run_directory() as d:
        bare = run_sextractor(frame, workdir=d, **kw).catalogs[0].table
    (tmp_path / "my frame, 1.head").write_text(head.tostring(sep="\n") + "\nEND\n")
    with run_directory() as d:
        headed = run_sextractor(frame, workdir=d, **kw).catalogs[0].table
    assert len(bare) == len(headed) > 10
    assert np.all(np.abs(np.asarray(headed["ALPHA_J2000"]) - 150.0) < 0.05)
    assert not np.any(np.abs(np.asarray(bare["ALPHA_J2000"]) - 150.0) < 0.05)
