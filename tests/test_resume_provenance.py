"""Resume trusts only what it can verify; cleanup removes only what ezphot made (issue 9).

- catalogues carry FITS CHECKSUM/DATASUM and a provenance key; a truncated, bit-flipped,
  other-settings or other-input catalogue is measured again (the summary says why);
- a file ezphot did not write at an output path is never touched: that frame fails;
- forced photometry of different target lists keeps one catalogue per list;
- the Dask path does the same; local workers exit when the batch parent is SIGKILLed;
- leftovers are removed only with a valid ownership marker of a dead process;
- read-only folders and a full disk give ezphot errors naming the path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ezphot.batch import run_batch
from ezphot.dataobjects import Catalog
from ezphot.datasets import make_sample_tree
from ezphot.exceptions import CatalogError, EzphotError, ForeignFileError, OutputError

from .conftest import sha256

OPTS = dict(detection_sigma=5, aperture_diameter_arcsec=[5, 7], aperture_diameter_seeing=[])


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return make_sample_tree(root / "scidata", 3, shape=(384, 512), seed=3)


@pytest.fixture()
def files(frames, tmp_path):
    """Private copies of the frames (each test measures in its own folder)."""
    out = []
    for p in frames:
        shutil.copy(p, tmp_path / p.name)
        out.append(tmp_path / p.name)
    return sorted(out)


def by_image(summary) -> dict[str, dict]:
    return {row["image"]: {n: row[n] for n in summary.colnames} for row in summary}


def batch(files, **kw):
    kw = {"workers": 1, "progress": False, **OPTS, **kw}
    return by_image(run_batch([str(f) for f in files], **kw))


def cat_of(frame: Path, suffix: str = ".cat") -> Path:
    return Path(f"{frame}{suffix}")


def flipped(path: Path) -> bytes:
    """The file's bytes with one bit flipped inside the table's data (not its padding)."""
    with fits.open(path) as hdul:
        offset = hdul["CATALOG"].fileinfo()["datLoc"] + 100
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    return bytes(raw)


# -- Catalog itself ------------------------------------------------------------------------
def test_catalog_checksum_and_broken_files(files, tmp_path):
    run = batch(files[:1])
    good = cat_of(files[0])
    assert run[str(files[0])]["status"] == "done"
    with fits.open(good) as hdul:  # CHECKSUM/DATASUM in both HDUs, verified by astropy
        assert all("CHECKSUM" in h.header and "DATASUM" in h.header for h in hdul)
        assert hdul[0].header["EZPHOT"] == "catalog" and len(hdul[0].header["EZPROV"]) == 64
    assert Catalog(good).verified and Catalog.is_complete(good)
    raw = good.read_bytes()
    cases = {"truncated.cat": raw[: len(raw) // 2], "header-only.cat": raw[:2880],
             "flipped.cat": flipped(good), "empty.cat": b"", "garbage.cat": b"\x00\xff" * 999,
             "text.cat": b"NUMBER X_IMAGE\n1 2.0\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "foreign.cat")
    for name in [*cases, "foreign.cat"]:
        path = tmp_path / name
        before = sha256(path)
        with pytest.raises(CatalogError, match=name) as info:
            Catalog(path)
        assert isinstance(info.value, ValueError) and isinstance(info.value, EzphotError)
        assert not Catalog.is_complete(path)
        assert sha256(path) == before
    assert "Checksum verification failed" in str(pytest.raises(
        CatalogError, Catalog, tmp_path / "flipped.cat").value)
    assert Catalog.check(tmp_path / "text.cat").state == "foreign"
    assert Catalog.check(tmp_path / "truncated.cat").state == "damaged"


# -- resume ---------------------------------------------------------------------------------
def test_truncated_and_bitflipped_catalogues_are_measured_again(files):
    first = batch(files)
    assert [r["status"] for r in first.values()] == ["done"] * 3
    assert [r["reason"] for r in first.values()] == ["new"] * 3
    ref = {f: Catalog(cat_of(f)).data for f in files}
    raw = cat_of(files[0]).read_bytes()
    cat_of(files[0]).write_bytes(raw[: len(raw) * 2 // 3])
    cat_of(files[1]).write_bytes(flipped(cat_of(files[1])))
    again = batch(files)
    status = {Path(k): (r["status"], r["reason"]) for k, r in again.items()}
    assert status[files[0]][0] == "done" and status[files[0]][1].startswith(
        "remeasured: damaged catalogue")
    assert status[files[1]] == ("done", "remeasured: damaged catalogue (Checksum verification "
                                "failed for HDU ('CATALOG', 1).; Datasum verification failed "
                                "for HDU ('CATALOG', 1).)")
    assert status[files[2]] == ("skipped", "unchanged")
    for f in files:  # the same numbers again, in sound files
        got = Catalog(cat_of(f)).data
        np.testing.assert_array_equal(got["FLUX_APER"], ref[f]["FLUX_APER"])
    assert [r["status"] for r in batch(files).values()] == ["skipped"] * 3


def test_changed_options_or_input_are_measured_again(files):
    batch(files)
    # the same options written differently: still the same key
    same = batch(files, detection_sigma=5.0, aperture_diameter_arcsec=(5.0, 7),
                 aperture_diameter_seeing=())
    assert [r["status"] for r in same.values()] == ["skipped"] * 3
    changed = batch(files, detection_sigma=8)
    assert [(r["status"], r["reason"]) for r in changed.values()] == \
        [("done", "remeasured: options changed")] * 3
    n5 = len(Catalog(cat_of(files[0])).data)
    assert [r["status"] for r in batch(files, detection_sigma=8).values()] == ["skipped"] * 3
    back = batch(files)  # the old settings again: measured again, not the sigma=8 file
    assert [r["reason"] for r in back.values()] == ["remeasured: options changed"] * 3
    assert len(Catalog(cat_of(files[0])).data) > n5 or n5 == 0
    # the input changes (rewritten, or only touched): measured again
    os.utime(files[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    with fits.open(files[1], mode="update") as hdul:
        hdul[0].data[10, 10] += 1000.0
    again = batch(files)
    assert again[str(files[0])]["reason"] == "remeasured: input changed"
    assert again[str(files[1])]["reason"] == "remeasured: input changed"
    assert again[str(files[2])]["status"] == "skipped"
    # the saved maps changed: measured again
    from ezphot.imageobjects import ScienceImage

    img = ScienceImage(files[2])
    img.calculate_bkg(verbose=False, save=True)
    with_maps = batch(files, use_saved_maps=True)
    assert with_maps[str(files[2])]["reason"] == "remeasured: options changed"
    assert [r["status"] for r in batch(files, use_saved_maps=True).values()] == ["skipped"] * 3
    img.calculate_bkg(box_size=32, verbose=False, save=True)
    assert batch(files, use_saved_maps=True)[str(files[2])]["reason"] == \
        "remeasured: options changed"


def test_catalogue_of_a_direct_call_is_not_taken_for_the_batch(files):
    from ezphot.methods import AperturePhotometry

    AperturePhotometry().sex_photometry(files[0], save=True, visualize=False, verbose=False,
                                        **{**OPTS, "detection_sigma": 20})
    run = batch(files[:1])
    assert run[str(files[0])]["reason"] == "remeasured: options unknown (saved outside run_batch)"
    assert batch(files[:1])[str(files[0])]["status"] == "skipped"


def test_foreign_files_at_the_output_path_are_never_touched(files):
    fits.PrimaryHDU(np.arange(12.0).reshape(3, 4)).writeto(cat_of(files[0]))
    cat_of(files[1]).write_text("my own notes, not a catalogue\n")
    sums = {f: sha256(cat_of(f)) for f in files[:2]}
    for resume in (True, False):
        run = batch(files, resume=resume)
        for f in files[:2]:
            row = run[str(f)]
            assert row["status"] == "failed"
            assert row["error"].startswith(f"ForeignFileError: {cat_of(f)}: exists and is not "
                                           "an ezphot catalogue")
            assert sha256(cat_of(f)) == sums[f]
        assert run[str(files[2])]["status"] in ("done", "skipped")
    # any save=True: the catalogue and the maps
    from ezphot.imageobjects import ScienceImage
    from ezphot.methods import AperturePhotometry

    with pytest.raises(ForeignFileError, match=str(cat_of(files[1]))):
        AperturePhotometry().sex_photometry(files[1], save=True, visualize=False, verbose=False,
                                            **OPTS)
    bkg_path = cat_of(files[0], ".bkgmap")
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(bkg_path)
    before = sha256(bkg_path)
    with pytest.raises(ForeignFileError, match=str(bkg_path)):
        ScienceImage(files[0]).calculate_bkg(verbose=False, save=True)
    assert sha256(bkg_path) == before
    link = cat_of(files[2], ".phot.cat")
    link.symlink_to(cat_of(files[0]))  # a symlink is not ezphot's either
    row = by_image(run_batch([str(files[2])], "photutils", workers=1, progress=False,
                             aperture_diameter_arcsec=[5]))[str(files[2])]
    assert row["status"] == "failed" and row["error"].startswith(
        f"ForeignFileError: {link}: exists and is not an ezphot catalogue")
    assert link.is_symlink() and sha256(cat_of(files[0])) == sums[files[0]]
    assert not list(files[0].parent.glob(".*"))  # no .part, no marker left


def test_two_forced_target_lists_keep_both(files):
    xa, ya = [100.0, 200.0, 300.0], [100.0, 150.0, 200.0]
    xb, yb = [50.0, 60.0], [70.0, 80.0]
    kw = dict(method="circular", unit="pixel", aperture_diameter_arcsec=[5],
              aperture_diameter_seeing=[])

    def forced(x, y, **extra):
        return by_image(run_batch([str(f) for f in files], workers=1, progress=False,
                                  **{**kw, **extra}, x_arr=x, y_arr=y))

    a = forced(xa, ya)
    b = forced(xb, yb)
    assert all(r["status"] == "done" for r in [*a.values(), *b.values()])
    for f in files:
        cats = sorted(f.parent.glob(f"{f.name}.circ.*.cat"))
        assert len(cats) == 2
        ca, cb = Catalog(a[str(f)]["catalog"]), Catalog(b[str(f)]["catalog"])
        np.testing.assert_array_equal(ca.data["X_IMAGE"], xa)
        np.testing.assert_array_equal(cb.data["X_IMAGE"], xb)
    assert all(r["status"] == "skipped" for r in forced(xa, ya).values())
    assert all(r["status"] == "skipped" for r in forced(np.array(xb), tuple(yb)).values())
    # same targets, other apertures: that list's file is measured again, the other kept
    c = forced(xa, ya, aperture_diameter_arcsec=[6])
    assert [r["reason"] for r in c.values()] == ["remeasured: options changed"] * 3
    assert all(r["status"] == "skipped" for r in forced(xb, yb).values())
    # direct calls write the same file name for the same targets
    from ezphot.methods import AperturePhotometry

    direct = AperturePhotometry().circular_photometry(files[0], xb, yb, save=True,
                                                      visualize=False, verbose=False,
                                                      aperture_diameter_arcsec=[5],
                                                      aperture_diameter_seeing=[])
    assert direct.info.path == b[str(files[0])]["catalog"]


def test_dask_path_honours_resume_rules(files):
    distributed = pytest.importorskip("distributed")
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(cat_of(files[2]))
    before = sha256(cat_of(files[2]))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        def run(**kw):
            return batch(files, client=client, **kw)

        first = run()
        assert [first[str(f)]["status"] for f in files] == ["done", "done", "failed"]
        assert "ForeignFileError" in first[str(files[2])]["error"]
        raw = cat_of(files[0]).read_bytes()
        cat_of(files[0]).write_bytes(raw[:4000])
        second = run()
        assert second[str(files[0])]["reason"].startswith("remeasured: damaged catalogue")
        assert second[str(files[1])]["status"] == "skipped"
        third = run(detection_sigma=9)
        assert third[str(files[1])]["reason"] == "remeasured: options changed"
        forced = dict(method="circular", unit="pixel", aperture_diameter_arcsec=[5],
                      aperture_diameter_seeing=[])
        fa = by_image(run_batch([str(f) for f in files[:2]], client=client, progress=False,
                                x_arr=[100.0], y_arr=[100.0], **forced))
        fb = by_image(run_batch([str(f) for f in files[:2]], client=client, progress=False,
                                x_arr=[120.0], y_arr=[90.0], **forced))
        again = by_image(run_batch([str(f) for f in files[:2]], client=client, progress=False,
                                   x_arr=[100.0], y_arr=[100.0], **forced))
    assert all(r["status"] == "done" for r in [*fa.values(), *fb.values()])
    assert all(r["status"] == "skipped" for r in again.values())
    assert len(list(files[0].parent.glob(f"{files[0].name}.circ.*.cat"))) == 2
    assert sha256(cat_of(files[2])) == before


# -- the batch parent dies --------------------------------------------------------------------
KILLED_BATCH = """
import sys
from ezphot.batch import run_batch
run_batch(sys.argv[1:], workers=2, progress=False, detection_sigma=3)
"""
# the real binary, except that a measurement (-c run.sex) hangs: the batch is surely busy
SLOW_BINARY = """#!/bin/sh
case " $* " in *" -c "*) exec sleep 120;; esac
exec {real} "$@"
"""


def _processes() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (ppid, state, cmdline) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(d.name)] = (int(stat[1]), stat[0], (d / "cmdline").read_bytes())
        except (OSError, IndexError, ValueError):
            continue
    return out


def _alive(pid: int) -> bool:
    info = _processes().get(pid)
    return info is not None and info[1] not in ("Z", "X")


def test_sigkill_of_batch_parent_ends_its_workers(files, tmp_path, private_tmpdir, sextractor):
    fake = tmp_path / "slow-sextractor"
    fake.write_text(SLOW_BINARY.format(real=sextractor.path))
    fake.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BATCH, *map(str, files)],
                            env={**os.environ, "EZPHOT_SEXTRACTOR": str(fake)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        workers: list[int] = []
        binaries: list[int] = []
        while time.time() - t0 < 120 and proc.poll() is None:
            procs = _processes()
            workers = [pid for pid, (ppid, _, cmd) in procs.items()
                       if ppid == proc.pid and b"spawn_main" in cmd]
            binaries = [pid for pid, (ppid, _, cmd) in procs.items()
                        if ppid in workers and cmd.startswith(b"sleep")]
            if len(workers) == 2 and len(binaries) == 2:  # both workers inside the binary
                break
            time.sleep(0.02)
        assert len(binaries) == 2 and proc.poll() is None, "the batch never got busy"
        assert list(private_tmpdir.iterdir())  # their run directories
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    t_kill = time.time()
    try:
        while time.time() - t_kill < 10 and any(_alive(p) for p in workers + binaries):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "workers outlived their batch by 10 s"
        assert not [b for b in binaries if _alive(b)], "their binaries outlived the batch by 10 s"
        assert not list(private_tmpdir.iterdir())  # the workers unwound: run dirs removed
        assert not list(tmp_path.glob(".*.part"))
    finally:  # (when this fails) leave no process behind
        for pid in workers + binaries:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for d in private_tmpdir.iterdir():
            shutil.rmtree(d)


# -- stale cleanup ------------------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def _marker(name: str, pid: int, start: int | None, host: str | None = None, **extra) -> str:
    from ezphot._io import boot_id

    rec = {"ezphot": "owner", "name": name, "pid": pid, "host": host or socket.gethostname(),
           "boot": boot_id(), "start": start, "created": time.time(), **extra}
    return json.dumps(rec)


def test_stale_cleanup_needs_a_valid_marker_of_a_dead_process(tmp_path, monkeypatch):
    from ezphot._io import OWNER_MARKER, atomic_write, run_directory

    host, dead = socket.gethostname(), _dead_pid()
    live = os.getppid()
    runs = tmp_path / "runs"
    runs.mkdir()

    def run_dir(name: str, marker: str | None) -> Path:
        d = runs / name
        d.mkdir()
        (d / "data.fits").write_bytes(b"user data")
        if marker is not None:
            (d / OWNER_MARKER).write_text(marker)
        return d

    n = f"ezphot-sex-{dead}@{host}-"
    removed = [run_dir(n + "a", _marker(n + "a", dead, 12345)),
               # the pid now runs another program (other start time): the owner is dead
               run_dir(f"ezphot-sex-{live}@{host}-b", _marker(f"ezphot-sex-{live}@{host}-b",
                                                              live, _start_time(live) + 1))]
    kept = [run_dir(n + "c", None),  # the name alone proves nothing
            run_dir(n + "d", "{not json"),
            run_dir(n + "e", json.dumps({"pid": dead, "name": n + "e", "host": host})),
            run_dir(n + "f", _marker(n + "other", dead, 1)),  # a marker of another entry
            run_dir(n + "g", _marker(n + "g", dead, 1, host="another-host")),
            run_dir(f"ezphot-sex-{live}@{host}-h", _marker(f"ezphot-sex-{live}@{host}-h",
                                                           live, _start_time(live))),
            run_dir("ezphot-user-folder", None)]
    parts = tmp_path / "out"
    parts.mkdir()
    stale_part = parts / f".f.fits.{dead}@{host}.1a2b.part"
    kept_parts = [parts / f".f.fits.{dead}@{host}.3c4d.part",  # no marker
                  parts / f".f.fits.{live}@{host}.5e6f.part"]  # a live writer
    for p in [stale_part, *kept_parts]:
        p.write_bytes(b"x")
    Path(f"{stale_part}.owner").write_text(_marker(stale_part.name, dead, 7))
    Path(f"{kept_parts[1]}.owner").write_text(_marker(kept_parts[1].name, live,
                                                      _start_time(live)))
    orphan_marker = parts / f".f.fits.{dead}@{host}.9z9z.part.owner"
    orphan_marker.write_text(_marker(orphan_marker.name[:-6], dead, 7))
    monkeypatch.setenv("EZPHOT_TMPDIR", str(runs))
    with run_directory("ezphot-sex-") as mine:
        assert (mine / OWNER_MARKER).is_file()
        assert [d.exists() for d in removed] == [False] * len(removed)
        assert [d.exists() for d in kept] == [True] * len(kept)
        assert all((d / "data.fits").read_bytes() == b"user data" for d in kept)
    assert not mine.exists()
    atomic_write(parts / "f.fits", lambda t: t.write_bytes(b"y"))
    assert not stale_part.exists() and not Path(f"{stale_part}.owner").exists()
    assert not orphan_marker.exists()
    assert all(p.read_bytes() == b"x" for p in kept_parts)
    assert (parts / "f.fits").read_bytes() == b"y"
    for d in kept:  # the autouse fixture checks EZPHOT_TMPDIR of its own; tidy ours
        shutil.rmtree(d)


# -- output errors ------------------------------------------------------------------------------
def _mount(*args: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture()
def readonly_copy(files, tmp_path):
    """The frames in a read-only folder (a read-only bind mount; root only)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    for f in files[:1]:
        shutil.copy(f, src / f.name)
    if not _mount("--bind", str(src), str(ro)):
        pytest.skip("needs root and mount (read-only bind mount)")
    try:
        if not _mount("-o", "remount,ro,bind", str(ro)):
            pytest.skip("cannot remount read-only")
        yield ro / files[0].name
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_readonly_folder_follows_output_dir(readonly_copy, tmp_path, monkeypatch):
    from ezphot.imageobjects import ScienceImage
    from ezphot.methods import AperturePhotometry

    frame = readonly_copy
    assert not os.access(frame.parent, os.W_OK)
    monkeypatch.delenv("EZPHOT_OUTPUT_DIR", raising=False)
    ap = AperturePhotometry()
    with pytest.raises(OutputError, match=f"{frame.parent} is read-only; set EZPHOT_OUTPUT_DIR"):
        ap.sex_photometry(frame, save=True, visualize=False, verbose=False, **OPTS)
    img = ScienceImage(frame)
    with pytest.raises(OutputError, match="EZPHOT_OUTPUT_DIR"):
        img.calculate_bkg(verbose=False, save=True)
    row = batch([frame])[str(frame)]
    assert row["status"] == "failed" and "OutputError" in row["error"] and \
        str(frame.parent) in row["error"]
    monkeypatch.setenv("EZPHOT_OUTPUT_DIR", str(frame.parent / "products"))  # read-only too
    with pytest.raises(OutputError, match=f"{frame.parent / 'products'}.*: cannot create its "
                                          "folder: Read-only file system"):
        ap.sex_photometry(frame, save=True, visualize=False, verbose=False, **OPTS)
    out = tmp_path / "products"
    monkeypatch.setenv("EZPHOT_OUTPUT_DIR", str(out))
    mirror = out / frame.parent.relative_to("/")
    cat = ap.sex_photometry(frame, save=True, visualize=False, verbose=False, **OPTS)
    assert cat.info.path == str(mirror / f"{frame.name}.cat")
    bkg = img.calculate_bkg(verbose=False, save=True)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False, save=True)
    assert bkg.path == mirror / f"{frame.name}.bkgmap"
    assert rms.path == mirror / f"{frame.name}.bkgrms"
    assert img.bkgmap is not None and img.bkgmap.path == bkg.path  # found where it was saved
    run = batch([frame], use_saved_maps=True)[str(frame)]
    assert run["status"] == "done" and run["catalog"] == cat.info.path
    assert Catalog(run["catalog"]).meta["background"] == "map"
    assert batch([frame], use_saved_maps=True)[str(frame)]["status"] == "skipped"


def test_disk_full_gives_an_ezphot_error(files, tmp_path, monkeypatch):
    from ezphot.imageobjects import ScienceImage
    from ezphot.methods import AperturePhotometry

    small = tmp_path / "small"
    small.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=12k", "tmpfs", str(small)):
        pytest.skip("needs root and mount (tiny tmpfs)")
    try:
        frame = small.parent / files[0].name
        cat = small / "c.cat"
        with pytest.raises(OutputError, match=f"{cat}: cannot write: No space left on device"):
            AperturePhotometry().sex_photometry(frame, save=False, visualize=False,
                                                verbose=False, **OPTS).save(cat)
        bkg = ScienceImage(frame).calculate_bkg(verbose=False, save=False)
        with pytest.raises(OutputError, match=str(small / "b.bkgmap")):
            bkg.save(small / "b.bkgmap")
        assert not list(small.iterdir())  # no .part and no marker left
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_write_errors_name_the_path(tmp_path):
    """At the OS boundary: a writer failing with ENOSPC or EROFS becomes an OutputError."""
    import errno

    from ezphot._io import atomic_write

    def full(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = tmp_path / "x.cat"
    with pytest.raises(OutputError, match=f"{target}: cannot write: No space left on device "
                                          r"\(disk full\)") as info:
        atomic_write(target, full)
    assert info.value.errno == errno.ENOSPC
    assert not list(tmp_path.iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create its folder"):
        atomic_write(tmp_path / "file" / "sub" / "x.cat", lambda t: t.write_bytes(b"y"))
