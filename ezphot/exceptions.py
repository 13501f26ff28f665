"""Exceptions raised by ezphot.

Every exception names the file it is about (when there is one) and the problem, so that a
message read in a batch summary is enough to act on.
"""

from __future__ import annotations

__all__ = [
    "EzphotError",
    "ImageError",
    "MissingWCSError",
    "SExtractorNotFoundError",
    "SExtractorError",
    "SExtractorConfigError",
]


class EzphotError(Exception):
    """Base class of every error ezphot raises on purpose."""


class ImageError(EzphotError, ValueError):
    """An input image cannot be used (missing, not FITS, no 2-D data, all NaN...)."""


class MissingWCSError(ImageError):
    """Sky coordinates were asked for an image without a celestial WCS."""


class SExtractorNotFoundError(EzphotError, FileNotFoundError):
    """The SExtractor binary could not be found or is not executable."""

    INSTALL_HINT = (
        "Install SExtractor: 'apt-get install source-extractor' (Debian/Ubuntu), "
        "'conda install -c conda-forge astromatic-source-extractor', or use the ezphot "
        "Docker image (make docker). Point ezphot to a binary with the environment "
        "variable EZPHOT_SEXTRACTOR."
    )


class SExtractorError(EzphotError, RuntimeError):
    """The SExtractor binary failed; the message carries its stderr."""


class SExtractorConfigError(EzphotError, ValueError):
    """An unknown or invalid SExtractor configuration keyword or output parameter."""


class CatalogError(EzphotError, ValueError):
    """A saved catalogue is unreadable, damaged (checksum, truncation) or not ezphot's."""


class OutputError(EzphotError, OSError):
    """An output cannot be written (read-only folder, disk full...); the message names it."""


class ForeignFileError(OutputError, FileExistsError):
    """A file that ezphot did not write sits at an output path; it is left untouched."""


__all__ += ["CatalogError", "OutputError", "ForeignFileError"]


class SExtractorTimeoutError(SExtractorError, TimeoutError):
    """The SExtractor binary did not finish in time and was killed (with its process group)."""


class SExtractorOutputError(SExtractorError):
    """The binary's own output (its FITS_LDAC catalogue, a check image) is missing, empty,
    truncated or not what was asked for."""


__all__ += ["SExtractorTimeoutError", "SExtractorOutputError"]


class ArgumentError(EzphotError, ValueError):
    """A numeric argument or option is out of range (the message names the argument)."""


__all__ += ["ArgumentError"]


class MissingDependencyError(EzphotError, ImportError):
    """An optional package a feature needs is not installed (the message says how to get it)."""


__all__ += ["MissingDependencyError"]


# -- warnings (astropy style): what the user must look at or act on; progress is logging -----
from astropy.utils.exceptions import AstropyUserWarning  # noqa: E402


class EzphotWarning(AstropyUserWarning):
    """Base class of ezphot's warnings: a result was computed, but under a condition the user
    must look at (it may be incomplete, or rest on less than it should). Filter them all with
    ``warnings.simplefilter('ignore', EzphotWarning)``."""


class PositionWarning(EzphotWarning):
    """Positions are off the image, do not project onto it, or look like RA/Dec given as
    pixels."""


class SkippedInputWarning(EzphotWarning):
    """An unreadable image or folder was skipped (listed in the result's ``failed``)."""


class HeaderWarning(EzphotWarning):
    """The header lacks or muddles a fact ezphot needs (gain, the telescope configuration, a
    readable WCS): a profile's value was chosen, or the quantity is NaN or recomputed."""


class MeasurementWarning(EzphotWarning):
    """A measurement rests on less than it should (few stars for the seeing, fewer blank
    apertures or injected stars than asked, a fallback PSF model)."""


__all__ += ["EzphotWarning", "PositionWarning", "SkippedInputWarning", "HeaderWarning",
            "MeasurementWarning"]


class CalibrationError(EzphotError):
    """A photometric calibration cannot be made (too few usable reference stars, no sky
    positions...); the message names the catalogue and says why."""


class ReferenceCatalogError(EzphotError, ValueError):
    """A reference catalogue file cannot be read or lacks a needed column (names the file)."""


__all__ += ["CalibrationError", "ReferenceCatalogError"]


class PhotometryWorkerError(EzphotError, RuntimeError):
    """A process measuring part of a catalogue in parallel failed or died."""


__all__ += ["PhotometryWorkerError"]
