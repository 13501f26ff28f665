"""Light curves: forced photometry of known positions across many images."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import astropy.units as u
import numpy as np
from astropy.table import Table, vstack
from astropy.time import Time
from tqdm.auto import tqdm

from .common import as_image
from .forced import circular_photometry

log = logging.getLogger(__name__)

__all__ = ["light_curve", "plot_light_curve"]


def light_curve(images: Iterable, ra, dec, *, aperture_diameter_arcsec=(5,),
                aperture_diameter_seeing=(), zeropoint: float | str | None = None,
                detection_snr: float = 5.0, use_saved_maps: bool = False,
                progress: bool | None = None, on_error: str = "skip", **options) -> Table:
    """Forced photometry of one or more sky positions on every image.

    Parameters
    ----------
    images : ImageSet or iterable of images/paths
    ra, dec : float or array
        Positions (deg, ICRS).
    zeropoint : float or str, optional
        Magnitude zero point, or the header keyword holding it (per image). Default 0
        (instrumental magnitudes).
    detection_snr : float
        A measurement with FLUX/FLUXERR below this is a non-detection (DETECTED False); its
        upper limit is UL5 of the same aperture.
    use_saved_maps : bool
        Use each image's saved ``.bkgmap``/``.bkgrms`` when present.
    on_error : {'skip', 'raise'}
        Skip an unreadable image (logged, listed in ``meta['failed']``) or raise.
    **options
        Passed to `circular_photometry` (``annulus_width_arcsec``, ``method``, ...).

    Returns
    -------
    astropy.table.Table
        One row per image and position, sorted by time: TARGET, RA, DEC, OBSDATE, MJD, FILTER,
        TELNAME, EXPTIME, then per aperture FLUX/FLUXERR/MAG/MAGERR/UL5/UL3 and DETECTED,
        then FLAGS and IMAGE.
    """
    ra = np.atleast_1d(np.asarray(ra, float))
    dec = np.atleast_1d(np.asarray(dec, float))
    images = list(images)
    rows, failed = [], []
    for item in tqdm(images, desc="Light curve", disable=progress is False
                     or (progress is None and len(images) < 2)):
        try:
            img = as_image(item)
            zp = _zeropoint(img, zeropoint)
            opts = dict(options)
            if use_saved_maps:
                opts.setdefault("target_bkg", img.bkgmap)
                opts.setdefault("target_bkgrms", img.bkgrms)
            cat = circular_photometry(img, ra, dec, unit="coord",
                                      aperture_diameter_arcsec=aperture_diameter_arcsec,
                                      aperture_diameter_seeing=aperture_diameter_seeing,
                                      zeropoint=zp, save=False, **opts)
        except Exception as exc:
            if on_error == "raise":
                raise
            log.warning("Light curve: %s skipped: %s", getattr(item, "path", item), exc)
            failed.append((str(getattr(item, "path", item)), str(exc)))
            continue
        t = cat.data
        out = Table()
        out["TARGET"] = np.arange(len(ra))
        out["RA"] = ra * u.deg
        out["DEC"] = dec * u.deg
        obsdate = cat.info.obsdate
        out["OBSDATE"] = [obsdate or ""] * len(ra)
        out["MJD"] = np.full(len(ra), Time(obsdate).mjd if obsdate else np.nan)
        out["FILTER"] = [cat.info.filter or ""] * len(ra)
        out["TELNAME"] = [cat.info.telname or ""] * len(ra)
        out["EXPTIME"] = np.full(len(ra), cat.info.exptime if cat.info.exptime else np.nan)
        n_aper = sum(1 for c in t.colnames if c.startswith("FLUX_APER"))
        for i in range(n_aper):
            s = "" if i == 0 else f"_{i}"
            for name in ("FLUX", "FLUXERR", "MAG", "MAGERR", "UL5", "UL3"):
                out[f"{name}_APER{s}"] = t[f"{name}_APER{s}"]
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = np.asarray(t[f"FLUX_APER{s}"]) / np.asarray(t[f"FLUXERR_APER{s}"])
            out[f"DETECTED{s}"] = np.nan_to_num(snr, nan=0.0) >= detection_snr
        out["FLAGS"] = t["FLAGS"]
        out["IMAGE"] = [cat.info.target_img] * len(ra)
        rows.append(out)
    table = vstack(rows) if rows else Table()
    if len(table):
        table.sort(["MJD", "TARGET"])
    table.meta.update(detection_snr=detection_snr, failed=failed,
                      aperture_diameter_arcsec=list(np.atleast_1d(aperture_diameter_arcsec)))
    return table


def _zeropoint(img, zeropoint) -> float:
    if zeropoint is None:
        return 0.0
    if isinstance(zeropoint, str):
        if zeropoint not in img.header:
            raise KeyError(f"{img.path}: no zero-point keyword {zeropoint!r} in the header")
        return float(img.header[zeropoint])
    return float(zeropoint)


def plot_light_curve(table: Table, target: int = 0, aperture: int = 0):
    """Magnitude against time per filter; non-detections as upper-limit arrows (UL5).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    s = "" if aperture == 0 else f"_{aperture}"
    t = table[table["TARGET"] == target]
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot(1, 1, 1)
    for k, band in enumerate(sorted(set(t["FILTER"]))):
        b = t[t["FILTER"] == band]
        det = np.asarray(b[f"DETECTED{s}"], bool)
        color = f"C{k}"
        ax.errorbar(b["MJD"][det], b[f"MAG_APER{s}"][det], yerr=b[f"MAGERR_APER{s}"][det],
                    fmt="o", color=color, label=band)
        if (~det).any():
            # a limit: the source is fainter (larger magnitude); the arrow points that way
            mjd, ul = b["MJD"][~det], b[f"UL5_APER{s}"][~det]
            ax.plot(mjd, ul, "_", color=color, ms=12, mew=2, label=f"{band} 5σ limit")
            ax.plot(mjd, ul + 0.35, linestyle="none", alpha=0)  # keep the arrows in view
            for xm, ym in zip(mjd, ul):
                ax.annotate("", xy=(xm, ym + 0.3), xytext=(xm, ym),
                            arrowprops=dict(arrowstyle="->", color=color))
    ax.invert_yaxis()
    ax.set_xlabel("MJD")
    ax.set_ylabel("magnitude")
    ax.set_title(f"target {target}: RA {t['RA'][0]:.5f}, Dec {t['DEC'][0]:.5f}" if len(t) else "")
    ax.legend(loc="best", fontsize="small")
    return fig
