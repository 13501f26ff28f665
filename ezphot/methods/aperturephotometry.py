"""`AperturePhotometry`: the tutorial's façade over ezphot's photometry methods."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator

from ..dataobjects.catalog import Catalog

log = logging.getLogger("ezphot")

__all__ = ["AperturePhotometry"]


@contextlib.contextmanager
def _verbosity(verbose: bool) -> Iterator[None]:
    """``verbose=False`` lowers ezphot's logging to warnings for the call (thread-safe)."""
    from ..imageobjects.scienceimage import _verbosity as shared

    with shared(verbose):
        yield


def _hint_unit(target_img, x_arr, y_arr, unit) -> None:
    """Warn when ``unit='pixel'`` positions are all off the image but, read as RA/Dec, fall on
    it: the usual slip of passing coordinates without ``unit='coord'``."""
    import warnings

    import numpy as np
    from astropy.utils.exceptions import AstropyUserWarning

    if unit != "pixel":
        return
    try:
        x = np.atleast_1d(np.asarray(x_arr, dtype=float)).ravel()
        y = np.atleast_1d(np.asarray(y_arr, dtype=float)).ravel()
        if x.size == 0 or x.size != y.size or not (np.isfinite(x).all() and np.isfinite(y).all()):
            return
        from ..photometry.common import as_image

        img = as_image(target_img)
        ny, nx = img.shape
        if ((x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)).any():
            return
        if not ((x >= 0) & (x < 360) & (np.abs(y) <= 90)).all() or img.wcs is None:
            return
        px, py = img.wcs.all_world2pix(x, y, 0, quiet=True)
    except Exception:  # noqa: BLE001 - only a hint: the measurement reports real problems
        return
    on = (px >= -0.5) & (px < nx - 0.5) & (py >= -0.5) & (py < ny - 0.5)
    if on.any():
        warnings.warn(f"{img.path}: none of the {x.size} position(s) is on the image in pixels, "
                      f"but {int(on.sum())} would be as RA/Dec: did you mean unit='coord'?",
                      AstropyUserWarning, stacklevel=3)


def _call_signature(func) -> str:
    """``(target_img, *, save=True, ...)``: the call as a user types it (no ``self``, no
    annotations, defaults as literals)."""
    params = [p.replace(annotation=inspect.Parameter.empty)
              for p in inspect.signature(func).parameters.values() if p.name != "self"]
    return str(inspect.Signature(params))


class AperturePhotometry:
    """Aperture photometry of FITS images (columns and formulas: docs/catalogue.md).

    Every method takes the image first, keyword-only options after, and returns a `Catalog`.
    Common options: ``save`` (write the catalogue beside the image, atomically; False writes
    and deletes nothing), ``verbose`` (log at INFO, else warnings only), ``visualize`` (draw
    the sources/apertures; the figure is in ``catalog.figure``), ``save_fig`` (PNG beside the
    catalogue).
    """

    def help(self) -> None:
        """Print each public method as you would call it, with a one-line description."""
        lines = ["Help for AperturePhotometry", "Public methods:"]
        for name, member in inspect.getmembers(type(self), inspect.isfunction):
            if not name.startswith("_") and name != "help":
                doc = (inspect.getdoc(member) or "").strip().split("\n\n")[0]
                lines.append(f"- {name}{_call_signature(member)}")
                first = " ".join(doc.split()).split(". ")[0].rstrip(".")
                lines.append(f"    {first}.")
        print("\n".join(lines))  # noqa: T201 - help() is the one place that prints

    def sex_photometry(self, target_img, *, target_bkg=None, target_bkgrms=None, target_mask=None,
                       sex_params: dict | None = None, detection_sigma: float = 5,
                       aperture_diameter_arcsec=(5, 7, 10), aperture_diameter_seeing=(3.5, 4.5),
                       annulus_width_arcsec: float | None = None, saturation_level: float = 60000,
                       kron_factor: float = 2.5, save: bool = True, verbose: bool = True,
                       visualize: bool = True, save_fig: bool = False, **kwargs) -> Catalog:
        """Detect and measure sources with the SExtractor binary.

        Parameters
        ----------
        target_img : ScienceImage, ReferenceImage, CalibrationImage or path
        target_bkg : Background, float or None
            Background to subtract (BACK_TYPE MANUAL); None: SExtractor's own mesh background.
        target_bkgrms : Errormap or None
            Background RMS map used as the weight (MAP_RMS).
        target_mask : Mask or None
            Pixels excluded from detection and measurement.
        sex_params : dict, optional
            Any SExtractor keyword (validated against the binary); not modified.
        detection_sigma : float
            DETECT_THRESH and ANALYSIS_THRESH in sigmas.
        aperture_diameter_arcsec, aperture_diameter_seeing : float or list
            Aperture diameters: fixed (arcsec) first, then multiples of the seeing FWHM.
        annulus_width_arcsec : float, optional
            Local background annulus thickness (BACKPHOTO_TYPE LOCAL).
        saturation_level : float
            SATUR_LEVEL in ADU (header SATURATE does not override it).
        kron_factor : float
            First PHOT_AUTOPARAMS value.
        **kwargs
            ``parameters`` (output parameter list), ``egain``, ``zeropoint``, ``seeing``,
            ``binary``; ``detection_filter`` ('gauss' matched to the seeing (default),
            'tophat', 'mexhat', 'default' = the shipped 3x3, or a 2-D kernel array),
            ``detection_filter_fwhm`` (px), ``detection_filter_size`` (odd px); see
            `ezphot.sextractor.convfilter`;
            ``checkimages`` (SExtractor check-image types, e.g.
            ``['BACKGROUND', 'SEGMENTATION']``: returned in ``catalog.checkimages`` as
            `CheckImage` objects and, with ``save=True``, saved as
            ``<frame>.cat.<type>.fits``, ``-TYPE`` as ``minus_type``); ``timeout`` (seconds
            allowed to the binary; default ``$EZPHOT_SEXTRACTOR_TIMEOUT``, else 10 min + 20 s
            per million pixels). Keywords naming the binary's output files (CATALOG_NAME,
            CHECKIMAGE_NAME, XML_NAME) are refused in ``sex_params``.

        Returns
        -------
        Catalog
        """
        from ..photometry.sexphot import sex_photometry

        with _verbosity(verbose):
            catalog = sex_photometry(
                target_img, target_bkg=target_bkg, target_bkgrms=target_bkgrms,
                target_mask=target_mask, sex_params=sex_params, detection_sigma=detection_sigma,
                aperture_diameter_arcsec=aperture_diameter_arcsec,
                aperture_diameter_seeing=aperture_diameter_seeing,
                annulus_width_arcsec=annulus_width_arcsec, saturation_level=saturation_level,
                kron_factor=kron_factor, save=save, **kwargs)
            return self._figure(catalog, visualize, save_fig)

    def run_photometry(self, target_img, *, method: str = "sextractor", **kwargs) -> Catalog:
        """`sex_photometry` (``method='sextractor'``) or `photutils_photometry` (``'photutils'``)."""
        if method == "sextractor":
            return self.sex_photometry(target_img, **kwargs)
        if method == "photutils":
            return self.photutils_photometry(target_img, **kwargs)
        raise ValueError(f"method must be 'sextractor' or 'photutils', got {method!r}")

    def photutils_photometry(self, target_img, *, target_bkg=None, target_bkgrms=None,
                             target_mask=None, detection_sigma: float = 1.5,
                             aperture_diameter_arcsec=(5, 7, 10), kron_factor: float = 2.5,
                             minarea_pixels: int = 5, save: bool = True, verbose: bool = True,
                             visualize: bool = True, save_fig: bool = False, **kwargs) -> Catalog:
        """Detection photometry with photutils (segmentation, deblending, Kron and circular
        apertures); columns named as SExtractor's. The background is always subtracted
        (estimated when not given). ``**kwargs``: ``deblend_contrast``, ``deblend_nlevels``,
        ``egain``, ``seeing``, ``zeropoint``.
        """
        from ..photometry.detect import photutils_photometry

        with _verbosity(verbose):
            catalog = photutils_photometry(
                target_img, target_bkg=target_bkg, target_bkgrms=target_bkgrms,
                target_mask=target_mask, detection_sigma=detection_sigma,
                aperture_diameter_arcsec=aperture_diameter_arcsec, kron_factor=kron_factor,
                minarea_pixels=minarea_pixels, save=save, **kwargs)
            return self._figure(catalog, visualize, save_fig)

    def circular_photometry(self, target_img, x_arr, y_arr, *, aperture_diameter_arcsec=(5, 7, 10),
                            aperture_diameter_seeing=(3.5, 4.5), annulus_width_arcsec=None,
                            unit: str = "pixel", target_bkg=None, target_mask=None,
                            target_bkgrms=None, save: bool = True, verbose: bool = True,
                            visualize: bool = True, save_fig: bool = False, **kwargs) -> Catalog:
        """Forced photometry in circular apertures at given positions.

        Parameters
        ----------
        x_arr, y_arr : float, list or array (or a SkyCoord as ``x_arr``)
            0-based pixels (``unit='pixel'``) or RA/Dec in degrees (``unit='coord'``).
        aperture_diameter_arcsec, aperture_diameter_seeing : float, list or Quantity
            Diameters: fixed (arcsec, or a Quantity in angle or pixels), then seeing multiples.
        annulus_width_arcsec : float, optional
            Local sky (sigma-clipped median) from an annulus of this width starting at
            4 × the seeing FWHM or at the largest aperture, whichever is larger (used when no
            ``target_bkg`` is given); its uncertainty enters FLUXERR.
        target_bkg, target_bkgrms, target_mask
            Background map or value, RMS map, mask. Without them the background and RMS are
            estimated on tiles around the positions.
        **kwargs
            ``method`` ('exact', 'center', 'subpixel'), ``subpixels``, ``egain``, ``seeing``,
            ``zeropoint``.

        Returns
        -------
        Catalog
            See `ezphot.photometry.forced` for the columns and formulas.
        """
        from ..photometry.forced import circular_photometry

        _hint_unit(target_img, x_arr, y_arr, unit)
        with _verbosity(verbose):
            catalog = circular_photometry(
                target_img, x_arr, y_arr, aperture_diameter_arcsec=aperture_diameter_arcsec,
                aperture_diameter_seeing=aperture_diameter_seeing,
                annulus_width_arcsec=annulus_width_arcsec, unit=unit, target_bkg=target_bkg,
                target_mask=target_mask, target_bkgrms=target_bkgrms, save=save, **kwargs)
            return self._figure(catalog, visualize, save_fig)

    def elliptical_photometry(self, target_img, x_arr, y_arr, sma_arr, smi_arr, theta_arr, *,
                              unit: str = "pixel", annulus_ratio: float | None = None,
                              target_bkg=None, target_mask=None, target_bkgrms=None,
                              save: bool = True, verbose: bool = True, visualize: bool = True,
                              save_fig: bool = False, **kwargs) -> Catalog:
        """Forced photometry in elliptical apertures at given positions.

        ``unit='coord'``: RA/Dec (deg), semi-axes in arcsec, theta = position angle east of
        north (deg, as THETA_J2000). ``unit='pixel'``: pixels, theta counter-clockwise from +x
        (deg, as THETA_IMAGE). ``annulus_ratio``: local sky in an elliptical annulus from the
        aperture to ``annulus_ratio`` times its size. ``**kwargs``: ``method``, ``subpixels``,
        ``egain``, ``zeropoint``.
        """
        from ..photometry.forced import elliptical_photometry

        _hint_unit(target_img, x_arr, y_arr, unit)
        with _verbosity(verbose):
            catalog = elliptical_photometry(
                target_img, x_arr, y_arr, sma_arr, smi_arr, theta_arr, unit=unit,
                annulus_ratio=annulus_ratio, target_bkg=target_bkg, target_mask=target_mask,
                target_bkgrms=target_bkgrms, save=save, **kwargs)
            return self._figure(catalog, visualize, save_fig)

    @staticmethod
    def _figure(catalog: Catalog, visualize: bool, save_fig: bool) -> Catalog:
        if not (visualize or save_fig):
            return catalog
        from ..visualization import plot_catalog, plot_forced

        if catalog.info.catalog_type in ("circular", "elliptical"):
            catalog.figure = plot_forced(catalog, save=save_fig, display=visualize)
        else:
            catalog.figure = plot_catalog(catalog, save=save_fig, display=visualize)
        return catalog


def _readable_help() -> None:
    from ..imageobjects.scienceimage import _plain_signatures

    _plain_signatures(AperturePhotometry)


_readable_help()
