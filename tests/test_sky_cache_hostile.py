"""Hostile cases of forced photometry's ``sky_cache`` (issue 13's whole-frame sky): a file
rewritten with its mtime put back, an empty directory name, a cache directory removed
while the meshes are made, and multi-extension files."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ezphot.photometry.forced import circular_photometry

Q = dict(aperture_diameter_arcsec=[5, 10], aperture_diameter_seeing=[], save=False,
         confusion_error=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small generated frame (384x512) and positions whose tiles cover it all."""
    from ezphot.datasets import FrameSpec, make_frame

    root = tmp_path_factory.mktemp("hostile7")
    spec = FrameSpec(shape=(384, 512), star_density=3.0)
    path, _ = make_frame(root / spec.file_name(), spec, seed=3)
    rng = np.random.default_rng(1)
    return path, rng.uniform(20, 490, 120), rng.uniform(20, 360, 120)


def _equal(a, b):
    assert a.colnames == b.colnames
    for name in a.colnames:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def test_rewrite_with_mtime_put_back_is_not_served(small, tmp_path):
    """Pixels rewritten in place (same inode, same size) and the mtime put back with
    os.utime: the old entry must not give the sky (the ctime, which only the kernel sets,
    changed)."""
    src, x, y = small
    path = tmp_path / "frame.fits"
    shutil.copy(src, path)
    cache = tmp_path / "cache"
    cache.mkdir()
    circular_photometry(path, x, y, sky_cache=cache, **Q)
    st = path.stat()
    with fits.open(path, mode="update") as hdul:
        hdul[0].data = hdul[0].data + np.float32(50.0)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = path.stat()
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns,
                                                          st.st_ino)
    _equal(circular_photometry(path, x, y, **Q).data,
           circular_photometry(path, x, y, sky_cache=cache, **Q).data)


def test_empty_sky_cache_is_refused(small, tmp_path, monkeypatch):
    """``sky_cache=''`` is not the current directory (an unset variable must not fill it
    with entries)."""
    from ezphot.exceptions import ArgumentError

    src, x, y = small
    monkeypatch.chdir(tmp_path)
    for bad in ("", "  "):
        with pytest.raises(ArgumentError, match="sky_cache"):
            circular_photometry(src, x, y, sky_cache=bad, **Q)
    assert list(tmp_path.iterdir()) == []


def test_vanished_cache_directory_is_not_remade(small, tmp_path):
    """A cache directory removed while the meshes were made (a run directory cleaned up)
    is not created again by the write."""
    from ezphot.imageobjects import ScienceImage
    from ezphot.photometry.forced import _MeshCache, _TileEstimate

    src, _, _ = small
    cache_dir = tmp_path / "gone"
    cache_dir.mkdir()
    img = ScienceImage(src)
    est = _TileEstimate(img, None)
    cache = _MeshCache(cache_dir, img, est.box, est.filt, est.fwhm)
    mesh, spread = est.frame_meshes()
    cache_dir.rmdir()
    assert not cache.store(mesh, spread)
    assert not cache_dir.exists()
    img.close()


def test_band_whose_only_frame_fails_is_skipped(tmp_path):
    """on_error='skip' with the only frame of a band unreadable: the catalogue is made (the
    band's combination has no frame: NaN, NFRAMES 0), the frame listed in meta['failed'];
    it crashed with a numpy TypeError (the band's FLAGS array of no frame was float64)."""
    from ezphot.datasets import FrameSpec, make_multiband_field
    from ezphot.multiband import multiband_catalog

    spec = FrameSpec(shape=(400, 500), star_density=2.5, mag_range=(12.0, 21.0))
    field = make_multiband_field(tmp_path / "scidata", ("m400", "g"), spec=spec, seed=5)
    bands = list(field.frames["FILTER"])
    good, bad = (str(field.paths[bands.index(b)]) for b in ("m400", "g"))
    with open(bad, "r+b") as fh:
        fh.truncate(20000)
    cat = multiband_catalog([good, bad], detection_image=good, zeropoints=field.zeropoints,
                            aperture_diameter_arcsec=[5.0], detection_sigma=1.5, workers=1,
                            on_error="skip", progress=False, resume=False)
    assert [f for f, _ in cat.meta["failed"]] == [bad]
    assert len(cat.data) > 0
    assert np.all(np.isnan(np.asarray(cat.data["FLUX_APER_g"])))
    assert np.all(np.asarray(cat.data["NFRAMES_g"]) == 0)
    assert np.isfinite(np.asarray(cat.data["FLUX_APER_m400"])).any()


@pytest.mark.parametrize("compressed", [False, True])
def test_pixels_of_a_replaced_file_never_stored_as_the_new_ones(small, tmp_path, compressed):
    """An image object whose pixels were opened (a read handle, or a tile-compressed HDU's
    decompressed pixels) before its path got another file (os.replace: new inode): its
    forced call with a cache must not store the old file's meshes under the new file's
    identity (later calls on the new file would get the old sky: here +40 ADU apart)."""
    from ezphot.imageobjects import ScienceImage

    src, x, y = small
    header, data = fits.getheader(src), fits.getdata(src)

    def write(path, pixels):
        if compressed:
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
                pixels, header, compression_type="GZIP_2")]).writeto(path)
        else:
            fits.writeto(path, pixels, header)

    path, cache = tmp_path / "frame.fits", tmp_path / "cache"
    cache.mkdir()
    write(path, data)
    img = ScienceImage(path)
    if compressed:
        assert img.data is not None
    else:
        img.read_rows(0, 2)
    write(tmp_path / "new.fits", data + np.float32(40.0))
    os.replace(tmp_path / "new.fits", path)
    circular_photometry(img, x, y, sky_cache=cache, **Q)
    img.close()
    _equal(circular_photometry(path, x, y, **Q).data,
           circular_photometry(path, x, y, sky_cache=cache, **Q).data)


@pytest.fixture(scope="module")
def field3(tmp_path_factory):
    """Three filters' frames (400x500): paths of m400, m600, g, and the field."""
    from ezphot.datasets import FrameSpec, make_multiband_field

    spec = FrameSpec(shape=(400, 500), star_density=2.5, mag_range=(12.0, 21.0))
    field = make_multiband_field(tmp_path_factory.mktemp("field3") / "scidata",
                                 ("m400", "m600", "g"), spec=spec, seed=5)
    bands = list(field.frames["FILTER"])
    return tuple(str(field.paths[bands.index(b)]) for b in ("m400", "m600", "g")), field


def test_multiband_refuses_one_file_under_two_names(field3, tmp_path):
    """A frame and a symbolic or hard link to it are one image: refused as given twice
    (it was measured twice and entered its filter's combination twice: errors 1/sqrt(2)
    too small)."""
    from ezphot.exceptions import ArgumentError
    from ezphot.multiband import multiband_catalog

    (m400, m600, g), field = field3
    for kind in ("symlink", "hardlink"):
        link = tmp_path / f"{kind}.fits"
        (link.symlink_to if kind == "symlink" else link.hardlink_to)(m400)
        with pytest.raises(ArgumentError, match="given twice"):
            multiband_catalog([m400, str(link), g], zeropoints=field.zeropoints,
                              aperture_diameter_arcsec=[5.0], detection_sigma=1.5,
                              workers=1, progress=False, resume=False)


def test_multiband_measures_the_hdu_it_was_given(field3, tmp_path):
    """Two filters' frames as the two image HDUs of one file: `multiband_catalog` measures
    (and prepares the sky of) the HDU each image names — the same columns as the frames in
    files of their own. It measured the path's first image HDU (the m400 pixels as m600:
    silently wrong) and refused both HDUs as one image given twice."""
    from ezphot.imageobjects import ScienceImage
    from ezphot.multiband import multiband_catalog

    (m400, m600, g), field = field3
    mef = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(fits.getdata(p), fits.getheader(p))
                                        for p in (m400, m600)]).writeto(mef)
    opts = dict(detection_image=g, zeropoints=field.zeropoints, aperture_diameter_arcsec=[5.0],
                detection_sigma=1.5, workers=1, progress=False, resume=False)
    ref = multiband_catalog([m400, m600, g], **opts).data
    both = multiband_catalog([ScienceImage(mef, hdu=1), ScienceImage(mef, hdu=2), g],
                             **opts).data
    one = multiband_catalog([ScienceImage(mef, hdu=2), g], **opts).data
    for name in ("FLUX_APER_m400", "FLUX_APER_m600", "FLUX_APER_g"):
        np.testing.assert_array_equal(np.asarray(both[name]), np.asarray(ref[name]))
    np.testing.assert_array_equal(np.asarray(one["FLUX_APER_m600"]),
                                  np.asarray(ref["FLUX_APER_m600"]))


def test_entry_of_another_mesh_grid_is_not_used(small, tmp_path, caplog):
    """An entry under the right name and key whose meshes are not the frame's grid (edited,
    or written by other code) is warned about and not used: the uncached numbers."""
    import logging

    src, x, y = small
    cache = tmp_path / "cache"
    cache.mkdir()
    plain = circular_photometry(src, x, y, **Q).data
    circular_photometry(src, x, y, sky_cache=cache, **Q)
    (entry,) = cache.iterdir()
    with np.load(entry) as z:
        key, mesh, spread = z["key"], z["mesh"], z["spread"]
    with open(entry, "wb") as fh:
        np.savez(fh, key=key, mesh=mesh[:2, :2], spread=spread[:2, :2])
    with caplog.at_level(logging.WARNING, logger="ezphot"):
        _equal(plain, circular_photometry(src, x, y, sky_cache=cache, **Q).data)
    assert any(str(entry) in r.getMessage() for r in caplog.records)
