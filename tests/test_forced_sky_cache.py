"""The whole-frame sky of forced photometry: decided once from all the positions, evaluated in
the apertures' cut-outs (`MeshSpline`), and kept in a ``sky_cache`` directory — the same
numbers with or without the cache, never an entry of a file that changed since."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ezphot.background import MeshSpline, _mesh_to_map
from ezphot.photometry.forced import (
    circular_photometry,
    elliptical_photometry,
    prepare_sky_cache,
)

Q = dict(aperture_diameter_arcsec=[5, 10], aperture_diameter_seeing=[], save=False)


def _positions(shape, n=300, seed=2):
    # spread over the frame: their tiles pass 15 % of it, so the whole frame is used
    rng = np.random.default_rng(seed)
    return rng.uniform(20, shape[1] - 20, n), rng.uniform(20, shape[0] - 20, n)


def _equal(a, b):
    assert a.colnames == b.colnames
    for name in a.colnames:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def _entries(d):
    return sorted(p.name for p in d.iterdir())


def _doctor(entry, add):
    """Rewrite a cache entry with its mesh levels raised by ``add`` ADU."""
    with np.load(entry) as z:
        key, mesh, spread = z["key"], z["mesh"], z["spread"]
    with open(entry, "wb") as fh:
        np.savez(fh, key=key, mesh=mesh + add, spread=spread)


@pytest.fixture
def copy(frame, tmp_path):
    path = tmp_path / "frame.fits"
    shutil.copy(frame[0], path)
    return path


@pytest.mark.parametrize("shape, box", [((700, 900), 64), ((300, 1000), 50), ((64, 500), 64),
                                        ((130, 40), 64), ((60, 60), 64)])
def test_mesh_spline_boxes_are_scipys_spline(shape, box):
    """Any box of `MeshSpline` is scipy's own spline through the prepared meshes evaluated at
    those pixels (`RectBivariateSpline.__call__`), and the whole-frame map of `_mesh_to_map`
    there, to float32 rounding; grids of one row or one mesh take the 1-D/constant map."""
    from scipy import ndimage
    from scipy.interpolate import RectBivariateSpline

    rng = np.random.default_rng(5)
    nby, nbx = -(-shape[0] // box), -(-shape[1] // box)
    mesh = 100 + rng.normal(size=(nby, nbx)).cumsum(axis=0)
    mesh[rng.random(mesh.shape) < 0.1] = np.nan
    mesh.flat[0] = 100.0
    spline = MeshSpline(mesh, 3, shape, box)
    full = _mesh_to_map(mesh, 3, shape, box)
    reference = None
    if nby > 1 and nbx > 1:
        # the reference: fill, odd-reflect pad, 3x3 median, then scipy's spline itself
        bad = ~np.isfinite(mesh)
        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        filled = np.pad(mesh[tuple(idx)], 1, mode="reflect", reflect_type="odd")
        prepared = ndimage.median_filter(filled, size=3, mode="nearest")[1:-1, 1:-1]
        yc, xc = (np.arange(nby) + 0.5) * box - 0.5, (np.arange(nbx) + 0.5) * box - 0.5
        reference = RectBivariateSpline(yc, xc, prepared, kx=min(3, nby - 1),
                                        ky=min(3, nbx - 1),
                                        bbox=[-0.5, max(shape[0] - 0.5, yc[-1]), -0.5,
                                              max(shape[1] - 0.5, xc[-1])])
    for _ in range(60):
        y0, x0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        y1 = min(shape[0], y0 + int(rng.integers(1, 90)))
        x1 = min(shape[1], x0 + int(rng.integers(1, 90)))
        got = spline.box(y0, y1, x0, x1)
        assert got.dtype == np.float32 and got.shape == (y1 - y0, x1 - x0)
        np.testing.assert_allclose(got, full[y0:y1, x0:x1], rtol=2e-7, atol=2e-5)
        if reference is not None:
            want = reference(np.arange(y0, y1), np.arange(x0, x1))
            np.testing.assert_allclose(got, want, rtol=2e-7, atol=2e-5)


def test_every_position_gets_the_same_sky(copy, dense_frame):
    """The whole frame is chosen before the first position is measured: adding positions
    (here 40 near the top, measured first) leaves every other position's numbers as they
    were, bit for bit. (When the choice came only after tiles covered 15 % of the frame, the
    positions before the switch had tile estimates, and more positions moved the switch.)"""
    shape = fits.getdata(copy).shape
    x, y = _positions(shape)
    rng = np.random.default_rng(9)
    ex, ey = rng.uniform(20, shape[1] - 20, 40), rng.uniform(10, 60, 40)
    opts = dict(Q, confusion_error=False)  # (the blank apertures depend on all positions)
    alone = circular_photometry(copy, x, y, **opts)
    more = circular_photometry(copy, np.r_[ex, x], np.r_[ey, y], **opts)
    assert alone.meta["background_details"]["whole_frame"]
    _equal(alone.data, more.data[40:])
    # a few positions keep tiles of their own (a 2048-px frame: one tile is under 15 %)
    few = circular_photometry(dense_frame[0], [300.0, 400.0], [300.0, 350.0], **opts)
    assert not few.meta["background_details"]["whole_frame"]


def test_cached_equals_uncached(copy, tmp_path):
    """Circular and elliptical catalogues with the cache (made, then read) equal those
    without it bit for bit; the entry is what is read (a doctored entry moves every flux)."""
    x, y = _positions(fits.getdata(copy).shape)
    cache = tmp_path / "cache"
    cache.mkdir()
    plain = circular_photometry(copy, x, y, **Q)
    made = circular_photometry(copy, x, y, sky_cache=cache, **Q)
    assert len(_entries(cache)) == 1 and _entries(cache)[0].endswith(".npz")
    read = circular_photometry(copy, x, y, sky_cache=cache, **Q)
    for cat in (made, read):
        _equal(plain.data, cat.data)
        assert cat.meta["background_details"] == plain.meta["background_details"]
    ell = dict(a=4.0, b=2.5, theta=30.0, save=False)
    _equal(elliptical_photometry(copy, x, y, **ell).data,
           elliptical_photometry(copy, x, y, sky_cache=cache, **ell).data)
    assert len(_entries(cache)) == 1  # the elliptical pass read the circular one's meshes
    _doctor(cache / _entries(cache)[0], 100.0)
    doctored = circular_photometry(copy, x, y, sky_cache=cache, **Q).data
    # 100 ADU more sky in every aperture: every flux lower by 100 x its area
    ok = np.isfinite(plain.data["FLUX_APER"])
    drop = np.asarray(plain.data["FLUX_APER"] - doctored["FLUX_APER"])[ok]
    np.testing.assert_allclose(drop, 100.0 * np.asarray(plain.data["NPIX_APER"])[ok],
                               rtol=1e-3)


def test_changed_file_never_served(copy, tmp_path):
    """An entry of the file before it was rewritten (other pixels, same size) or touched
    (new mtime only) is not used: the numbers are those of the file as it is now."""
    x, y = _positions(fits.getdata(copy).shape)
    cache = tmp_path / "cache"
    cache.mkdir()
    circular_photometry(copy, x, y, sky_cache=cache, **Q)
    old = _entries(cache)
    size = copy.stat().st_size
    with fits.open(copy, mode="update") as hdul:  # +50 ADU everywhere: the same size
        hdul[0].data = hdul[0].data + np.float32(50.0)
    assert copy.stat().st_size == size
    now = circular_photometry(copy, x, y, **Q).data
    _equal(now, circular_photometry(copy, x, y, sky_cache=cache, **Q).data)
    assert len(_entries(cache)) == 2
    # only the mtime changes: a doctored entry of the old mtime must not be read either
    for name in _entries(cache):
        _doctor(cache / name, 100.0)
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _equal(now, circular_photometry(copy, x, y, sky_cache=cache, **Q).data)
    assert len(_entries(cache)) == 3 and set(old) < set(_entries(cache))


def test_damaged_or_foreign_entry(copy, tmp_path, caplog):
    """A damaged entry (garbage, or another image's meshes under this name) is not used and
    not replaced: a warning names it, the sky is computed, the numbers are the uncached ones,
    and the file stays as it was."""
    x, y = _positions(fits.getdata(copy).shape)
    cache = tmp_path / "cache"
    cache.mkdir()
    plain = circular_photometry(copy, x, y, **Q).data
    circular_photometry(copy, x, y, sky_cache=cache, **Q)
    entry = cache / _entries(cache)[0]
    with np.load(entry) as z:
        foreign = dict(key=np.array('{"file": "another"}'), mesh=z["mesh"] + 7,
                       spread=z["spread"])
    for content in (b"not a zip at all", None):
        if content is None:
            with open(entry, "wb") as fh:
                np.savez(fh, **foreign)
        else:
            entry.write_bytes(content)
        before = entry.read_bytes()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ezphot"):
            got = circular_photometry(copy, x, y, sky_cache=cache, **Q).data
        _equal(plain, got)
        assert any(str(entry) in r.getMessage() for r in caplog.records)
        assert entry.read_bytes() == before and _entries(cache) == [entry.name]


def test_prepared_entry_is_the_forced_one(copy, tmp_path):
    """`prepare_sky_cache` makes exactly the entry a forced call looks for (same estimate
    parameters): the call adds none and gives the uncached numbers; a bad image only
    returns False."""
    x, y = _positions(fits.getdata(copy).shape)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert prepare_sky_cache(str(copy), cache)
    entries = _entries(cache)
    assert len(entries) == 1
    _equal(circular_photometry(copy, x, y, **Q).data,
           circular_photometry(copy, x, y, sky_cache=cache, **Q).data)
    assert _entries(cache) == entries
    assert not prepare_sky_cache(str(tmp_path / "missing.fits"), cache)


def test_bad_sky_cache(copy, tmp_path):
    from ezphot.exceptions import ArgumentError

    with pytest.raises(ArgumentError, match="not a directory"):
        circular_photometry(copy, 10.0, 10.0, sky_cache=tmp_path / "nowhere", **Q)


def test_sky_cache_not_in_resume_key(copy, tmp_path):
    """The cache directory does not change the numbers, so not the resume key: a batch
    with another ``sky_cache`` reuses the catalogue."""
    from ezphot.batch import run_batch

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    opts = dict(x=[100.0, 200.0], y=[150.0, 250.0], aperture_diameter_arcsec=[5],
                aperture_diameter_seeing=[], confusion_error=False, workers=1,
                progress=False)
    first = run_batch([str(copy)], "circular", sky_cache=str(a), resume=True, **opts)
    again = run_batch([str(copy)], "circular", sky_cache=str(b), resume=True, **opts)
    assert list(first["status"]) == ["done"] and list(again["status"]) == ["skipped"]


def test_meshes_of_a_file_changed_meanwhile_are_not_stored(copy, tmp_path):
    """Meshes made while the file was rewritten are not stored under the identity the entry
    was looked up with (a later reader of that identity would get other pixels' sky)."""
    from ezphot.imageobjects import ScienceImage
    from ezphot.photometry.forced import _MeshCache, _TileEstimate

    img = ScienceImage(copy)
    est = _TileEstimate(img, None)
    cache = _MeshCache(tmp_path, img, est.box, est.filt, est.fwhm)
    mesh, spread = est.frame_meshes()
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten meanwhile
    assert not cache.store(mesh, spread) and cache.load() is None
    assert not any(p.suffix == ".npz" for p in tmp_path.iterdir())
