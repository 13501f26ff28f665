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
    """``verbose=False`` lowers ezphot's logging to warnings for the call."""
    previous = log.level
    if not verbose:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(previous)


class AperturePhotometry:
    """Aperture photometry of FITS images (CONTRACT §4).

    Every method takes the image first, keyword-only options after, and returns a `Catalog`.
    Common options: ``save`` (write the catalogue beside the image, atomically; False writes
    and deletes nothing), ``verbose`` (log at INFO, else warnings only), ``visualize`` (draw
    the sources/apertures; the figure is in ``catalog.figure``), ``save_fig`` (PNG beside the
    catalogue).
    """

    def help(self) -> None:
        """Print each public method with its signature."""
        lines = ["Help for AperturePhotometry", "Public methods:"]
        for name, member in inspect.getmembers(type(self), inspect.isfunction):
            if not name.startswith("_") and name != "help":
                lines.append(f"- {name}{inspect.signature(member)}")
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
            ``binary``.

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

    def photutils_photometry(self, target_img, **kwargs) -> Catalog:
        """Detection photometry with photutils (segmentation, Kron and circular apertures)."""
        raise NotImplementedError("photutils_photometry is not available yet (issue 4)")

    @staticmethod
    def _figure(catalog: Catalog, visualize: bool, save_fig: bool) -> Catalog:
        if not (visualize or save_fig):
            return catalog
        from ..visualization import plot_catalog

        catalog.figure = plot_catalog(catalog, save=save_fig)
        return catalog
