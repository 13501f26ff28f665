"""Light curves: forced photometry of known positions across many images."""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Iterable

import astropy.units as u
import numpy as np
from astropy.table import Table, vstack
from astropy.time import Time
from tqdm.auto import tqdm

from .. import _validate as validate
from ..exceptions import ArgumentError, SkippedInputWarning
from ..imageobjects.scienceimage import progress_disable
from .common import as_image
from .forced import circular_photometry

log = logging.getLogger(__name__)

__all__ = ["light_curve", "plot_light_curve"]


def light_curve(images: Iterable, ra, dec, *, aperture_diameter_arcsec=(5,),
                aperture_diameter_seeing=(), zeropoint=None, reference=None,
                calibration: dict | None = None,
                detection_snr: float = 5.0, use_saved_maps: bool = False,
                progress: bool | None = None, on_error: str = "skip", **options) -> Table:
    """Forced photometry of one or more sky positions on every image.

    Parameters
    ----------
    images : ImageSet or iterable of images/paths
    ra, dec : float or array
        Positions (deg, ICRS).
    aperture_diameter_arcsec, aperture_diameter_seeing : float or list
        Aperture diameters: fixed (arcsec), then multiples of each image's seeing FWHM.
    zeropoint : float, str or sequence, optional
        Magnitude zero point, the header keyword holding it (read in each image: missing or
        not a number there is an `ImageError` naming the file and the keyword, and the
        image is skipped or raises as ``on_error`` says), or one number (or keyword) per
        image. Default 0 (instrumental magnitudes).
    reference : ReferenceCatalog or path, optional
        Calibrate every frame on its own: forced photometry of the reference stars on the
        frame with the targets, then `ezphot.calibration.calibrate` (one zero point per
        aperture and frame). MAG/UL5/UL3 are then calibrated; ZP_APER and ZPERR_APER give
        the zero point (``m = -2.5 log10(FLUX) + ZP``) and its error, which MAGERR does not
        include. A frame that cannot be calibrated is skipped (or raises, ``on_error``).
    calibration : dict, optional
        Options of `calibrate` (``band``, ``match_radius_arcsec``, ``snr_min``...).
    detection_snr : float
        A measurement with FLUX/FLUXERR below this is a non-detection (DETECTED False); its
        upper limit is UL5 of the same aperture.
    use_saved_maps : bool
        Use each image's saved ``.bkgmap``/``.bkgrms`` when present.
    progress : bool, optional
        Show a tqdm progress bar (None: tqdm's default; False: none).
    on_error : {'skip', 'raise'}
        Skip an unreadable image (logged, listed in ``meta['failed']``) or raise. Argument
        mistakes raise `ArgumentError` before any image is read.
    **options
        Passed to `circular_photometry` (``annulus_width_arcsec``, ``method``, ...).

    Returns
    -------
    astropy.table.Table
        One row per image and position, sorted by time: TARGET, RA, DEC, OBSDATE, MJD, FILTER,
        TELNAME, EXPTIME, then per aperture FLUX/FLUXERR/MAG/MAGERR/UL5/UL3 and DETECTED
        (with ``reference``: ZP_APER, ZPERR_APER too), then DEPTH (the frame's 5-sigma
        point-source limit in the first aperture when a zero point is known, else the
        header's), FLAGS and IMAGE.
    """
    ra, dec = validate.positions(ra, dec, "coord", names=("ra", "dec"))
    if ra.size != dec.size:
        raise ArgumentError(f"ra has {ra.size} values but dec {dec.size}")
    if on_error not in ("skip", "raise"):
        raise ArgumentError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    validate.number(detection_snr, "detection_snr", minimum=0, strict=False)
    images = list(images)
    zeropoint = _check_zeropoints(zeropoint, len(images))
    if reference is not None:
        from ..calibration import ReferenceCatalog

        if zeropoint is not None:
            raise ArgumentError("give zeropoint or reference, not both")
        if not isinstance(reference, ReferenceCatalog):
            reference = ReferenceCatalog.read(reference, survey=(calibration or {}).get("survey"))
    rows, failed = [], []
    for k, item in enumerate(tqdm(images, desc="Light curve",
                                  disable=progress_disable(progress, len(images)))):
        try:
            img = as_image(item)
            # a keyword is read from this image's header by circular_photometry
            zp = zeropoint[k] if isinstance(zeropoint, list) else zeropoint
            opts = dict(options)
            if use_saved_maps:
                opts.setdefault("target_bkg", img.bkgmap)
                opts.setdefault("target_bkgrms", img.bkgrms)
            pra, pdec = (ra, dec) if reference is None else _with_reference(img, ra, dec,
                                                                            reference)
            cat = circular_photometry(img, pra, pdec, unit="coord",
                                      aperture_diameter_arcsec=aperture_diameter_arcsec,
                                      aperture_diameter_seeing=aperture_diameter_seeing,
                                      zeropoint=0.0 if zp is None else zp, save=False,
                                      **opts)
            if reference is not None:
                cat = _calibrated(cat, reference, len(ra), calibration)
        except Exception as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"Light curve: {getattr(item, 'path', item)} skipped: {exc}",
                          SkippedInputWarning, stacklevel=2)
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
            if reference is not None:
                out[f"ZP_APER{s}"] = t[f"ZP_APER{s}"]
                out[f"ZPERR_APER{s}"] = t[f"ZPERR_APER{s}"]
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = np.asarray(t[f"FLUX_APER{s}"]) / np.asarray(t[f"FLUXERR_APER{s}"])
            out[f"DETECTED{s}"] = np.nan_to_num(snr, nan=0.0) >= detection_snr
        out["DEPTH"] = np.full(len(ra), cat.info.depth if cat.info.depth is not None
                               else np.nan) * u.mag
        out["FLAGS"] = t["FLAGS"]
        out["IMAGE"] = [cat.info.target_img] * len(ra)
        rows.append(out)
    table = vstack(rows) if rows else Table()
    if len(table):
        table.sort(["MJD", "TARGET"])
    if reference is not None:
        table.meta["zeropoint"] = f"calibrated ({reference.path or 'reference'})"
    elif isinstance(zeropoint, list):
        table.meta["zeropoint"] = "per image"
    elif zeropoint is not None:
        table.meta["zeropoint"] = zeropoint
    table.meta.update(detection_snr=detection_snr, failed=failed,
                      aperture_diameter_arcsec=list(np.atleast_1d(aperture_diameter_arcsec)))
    return table


def _with_reference(img, ra, dec, reference):
    """The targets, then the reference stars that fall on ``img`` (with a margin)."""
    ny, nx = img.shape
    rra = np.asarray(reference.table["RA"], float)
    rdec = np.asarray(reference.table["DEC"], float)
    x, y = img.require_wcs().all_world2pix(rra, rdec, 0, quiet=True)
    on = np.isfinite(x) & np.isfinite(y) & (x >= 10) & (y >= 10) & (x < nx - 10) & (y < ny - 10)
    return np.concatenate([ra, rra[on]]), np.concatenate([dec, rdec[on]])


def _calibrated(cat, reference, n_targets: int, options: dict | None):
    """The targets' rows of a forced catalogue calibrated on its reference-star rows."""
    from ..calibration import calibrate

    opts = {k: v for k, v in (options or {}).items() if k != "survey"}
    cal = calibrate(cat, reference, **opts)
    t = cal.data
    res = cal.meta["calibration"]["columns"]
    n_aper = sum(1 for c in t.colnames if c.startswith("FLUX_APER"))
    for i in range(n_aper):
        s = "" if i == 0 else f"_{i}"
        r = res.get(f"APER{s}")
        zp, zp_err = (r["zp"], r["zp_err"]) if r else (np.nan, np.nan)
        # forced photometry ran with zero point 0; _CAL carries the colour term, if any
        t[f"MAG_APER{s}"] = t[f"MAG_APER{s}_CAL"] if r else t[f"MAG_APER{s}"] + zp
        t[f"UL5_APER{s}"] = t[f"UL5_APER{s}"] + zp
        t[f"UL3_APER{s}"] = t[f"UL3_APER{s}"] + zp
        t[f"ZP_APER{s}"] = np.full(len(t), zp) * u.mag
        t[f"ZPERR_APER{s}"] = np.full(len(t), zp_err) * u.mag
    cal.data = t[:n_targets]
    return cal


def _check_zeropoints(zeropoint, n_images: int):
    """The ``zeropoint`` argument of `light_curve` checked before any image is read: None, a
    finite number, a keyword name (read per image), or a list of those, one per image."""
    def one(value, name: str):
        if isinstance(value, str):
            if not value.strip():
                raise ArgumentError(f"{name} must be a number or a header keyword, got ''")
            return value
        return validate.number(value, name)

    if zeropoint is None or isinstance(zeropoint, str | numbers.Real):
        return None if zeropoint is None else one(zeropoint, "zeropoint")
    try:
        values = list(zeropoint)
    except TypeError:
        raise ArgumentError("zeropoint must be a number, a header keyword or one per image, "
                            f"got {zeropoint!r}") from None
    if len(values) != n_images:
        raise ArgumentError(f"zeropoint has {len(values)} values for {n_images} images")
    return [one(v, f"zeropoint[{k}]") for k, v in enumerate(values)]


def plot_light_curve(table: Table, target: int = 0, aperture: int = 0, *, time: str = "mjd",
                     zeropoint: float | str | None = None, ax=None):
    """Magnitude against time per filter; non-detections as upper-limit arrows (UL5).

    Parameters
    ----------
    table : astropy.table.Table
        A `light_curve` table.
    target : int
        Which position (TARGET).
    aperture : int
        Which aperture: 0 for the FLUX, MAG... columns, k for their ``_k`` columns.
    time : {'mjd', 'date'}
        Time axis in MJD (offset by the first whole day for readability) or as UTC dates.
    zeropoint : float or str, optional
        Zero point used by `light_curve`, for the axis label (default: ``table.meta``'s
        ``zeropoint``, if any).
    ax : matplotlib Axes, optional
        Draw into these axes. Otherwise the figure is shown under the cell in Jupyter.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..visualization import new_figure, present

    if time not in ("mjd", "date"):
        raise ValueError(f"time must be 'mjd' or 'date', got {time!r}")
    s = "" if aperture == 0 else f"_{aperture}"
    t = table[table["TARGET"] == target]
    owned = ax is None
    if owned:
        fig = new_figure((8, 5))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    mjd_all = np.asarray(t["MJD"], float) if len(t) else np.array([])
    finite = mjd_all[np.isfinite(mjd_all)]
    offset = float(np.floor(finite.min())) if time == "mjd" and finite.size else 0.0

    def xs(mjd):
        mjd = np.asarray(mjd, float)
        if time == "date":
            return Time(mjd, format="mjd").to_datetime()
        return mjd - offset

    for k, band in enumerate(sorted(set(t["FILTER"]))):
        b = t[t["FILTER"] == band]
        det = np.asarray(b[f"DETECTED{s}"], bool)
        color = f"C{k}"
        if det.any():
            ax.errorbar(xs(b["MJD"][det]), b[f"MAG_APER{s}"][det],
                        yerr=b[f"MAGERR_APER{s}"][det], fmt="o", color=color,
                        label=band or "no filter")
        if (~det).any():
            # a limit: the source is fainter (larger magnitude); the arrow points that way
            mjd, ul = xs(b["MJD"][~det]), np.asarray(b[f"UL5_APER{s}"][~det], float)
            ax.plot(mjd, ul, "_", color=color, ms=12, mew=2, label=f"{band} 5σ limit")
            ax.plot(mjd, ul + 0.35, linestyle="none", alpha=0)  # keep the arrows in view
            for xm, ym in zip(mjd, ul, strict=False):
                ax.annotate("", xy=(xm, ym + 0.3), xytext=(xm, ym),
                            arrowprops=dict(arrowstyle="->", color=color))
    ax.invert_yaxis()
    if time == "date":
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("date (UTC)")
    else:
        ax.set_xlabel(f"MJD − {offset:.0f} [days]" if offset else "MJD [days]")
    zp = table.meta.get("zeropoint") if zeropoint is None else zeropoint
    bands = ", ".join(b for b in sorted(set(t["FILTER"])) if b) if len(t) else ""
    aper = table.meta.get("aperture_diameter_arcsec") or []
    aper_text = f', {float(aper[aperture]):g}" aperture' if aperture < len(aper) else ""
    if zp is None:
        ylabel = "instrumental magnitude (zero point 0)"
    elif isinstance(zp, str) and zp.startswith(("calibrated", "per image")):
        ylabel = f"magnitude ({zp})"
    elif isinstance(zp, str):
        ylabel = f"magnitude (zero point: header {zp})"
    else:
        ylabel = f"magnitude (zero point {float(zp):.3f})"
    ax.set_ylabel(f"{bands} {ylabel}".strip())
    title = f"target {target}: RA {t['RA'][0]:.5f}, Dec {t['DEC'][0]:.5f}" if len(t) else ""
    ax.set_title(title + aper_text, fontsize="medium")
    ax.legend(loc="best", fontsize="small", title="filter")
    if owned:
        present(fig)
    return fig
