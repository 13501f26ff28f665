"""SExtractor detection filters (``.conv`` files): kernels matched to the seeing.

SExtractor convolves the image with the ``FILTER_NAME`` kernel before thresholding; detection
of faint point sources is best when the kernel matches the PSF. The shipped 3x3
``default.conv`` (FWHM ~2 px) is much smaller than a 7DT star (2.5-3.5" at 0.505"/px = 5-7 px).

The kernels here reproduce the ones SExtractor ships (``/usr/share/source-extractor/*.conv``,
to their printed six decimals; tests/test_convfilter.py): each pixel is the mean of the
profile over a 10x10 sub-pixel grid, with SExtractor's FWHM = 2.35 sigma, not normalised
(``CONV NORM`` tells the binary to normalise):

- ``gauss``: exp(-r²/2σ²), σ = FWHM/2.35;
- ``mexhat``: exp(-r²/2s²) - ½ exp(-r²/4s²) with s = FWHM/(2.35 √2) — a Gaussian of width
  FWHM/√2 minus half of one of width FWHM: a band-pass "wavelet" for crowded fields;
- ``tophat``: the fraction of the pixel inside a disk of diameter FWHM.

Default size: :func:`kernel_size` (about 2 x FWHM, odd, 3 to 31 px, as SExtractor's own
choices; a 7DT star of 5.6 px gets an 11x11 Gaussian).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["KINDS", "DetectionFilter", "make_kernel", "kernel_size", "write_conv",
           "read_conv", "resolve_detection_filter"]

KINDS = ("gauss", "tophat", "mexhat", "default")
#: SExtractor's FWHM/sigma convention in its shipped kernels.
FWHM_PER_SIGMA = 2.35
_SUBPIXELS = 10
# white-noise reduction sqrt(sum k²)/sum k of the shipped 3x3 default.conv (1 2 1 / 2 4 2 / 1 2 1)
_DEFAULT_NU = 6.0 / 16.0
_MAX_SIZE = 31


def kernel_size(fwhm: float, kind: str = "gauss") -> int:
    """Default odd kernel size (pixels) for a filter of ``fwhm`` pixels.

    ``gauss``: 2 x round(FWHM) - 1 (the kernel reaches ~1 FWHM from the centre, where the
    Gaussian is down to ~10 %); ``tophat``: the smallest odd size holding the disk;
    ``mexhat``: 2 x floor(FWHM) + 3 (room for the negative ring). Bounded to 3..31. These
    give the sizes of SExtractor's shipped gauss_1.5_3x3, 2.0_3x3, 2.5_5x5, 3.0_5x5,
    4.0_7x7, 5.0_9x9, all tophat_* and mexhat_1.5 to 3.0 files.

    Parameters
    ----------
    fwhm : float
        FWHM in pixels (``tophat``: the disk diameter).
    kind : {'gauss', 'tophat', 'mexhat'}
        Profile.

    Returns
    -------
    int
        Odd size in pixels, 3 to 31.
    """
    if kind == "tophat":
        n = 2 * math.ceil((fwhm - 1.0) / 2.0) + 1
    elif kind == "mexhat":
        n = 2 * math.floor(fwhm) + 3
    else:
        n = 2 * math.floor(fwhm + 0.5) - 1
    return int(min(max(n, 3), _MAX_SIZE))


def make_kernel(kind: str, fwhm: float, size: int | None = None) -> np.ndarray:
    """A ``size`` x ``size`` detection kernel (peak ~1, not normalised).

    Parameters
    ----------
    kind : {'gauss', 'tophat', 'mexhat'}
        Profile; see the module docstring.
    fwhm : float
        FWHM in pixels (``tophat``: the disk diameter).
    size : int, optional
        Odd kernel size; default :func:`kernel_size`.

    Returns
    -------
    numpy.ndarray
        The ``size`` x ``size`` kernel.
    """
    if kind not in ("gauss", "tophat", "mexhat"):
        raise ValueError(f"detection_filter kind must be 'gauss', 'tophat' or 'mexhat', "
                         f"got {kind!r}")
    if not (isinstance(fwhm, (int, float, np.floating, np.integer)) and math.isfinite(fwhm)
            and fwhm > 0):
        raise ValueError(f"detection_filter_fwhm must be a positive number of pixels, got {fwhm!r}")
    size = kernel_size(fwhm, kind) if size is None else size
    if int(size) != size or size < 1 or size % 2 == 0 or size > _MAX_SIZE:
        raise ValueError(f"detection_filter_size must be an odd integer from 1 to {_MAX_SIZE}, "
                         f"got {size!r}")
    size = int(size)
    sub = (np.arange(_SUBPIXELS) + 0.5) / _SUBPIXELS - 0.5
    t = np.arange(size) - size // 2
    x = (t[:, None] + sub[None, :]).ravel()  # sub-pixel centres along one axis
    r2 = (x[None, :] ** 2 + x[:, None] ** 2)
    if kind == "gauss":
        s = fwhm / FWHM_PER_SIGMA
        prof = np.exp(-r2 / (2 * s * s))
    elif kind == "mexhat":
        s = fwhm / (FWHM_PER_SIGMA * math.sqrt(2.0))
        prof = np.exp(-r2 / (2 * s * s)) - 0.5 * np.exp(-r2 / (4 * s * s))
    else:
        prof = (r2 <= (fwhm / 2.0) ** 2).astype(float)
    return prof.reshape(size, _SUBPIXELS, size, _SUBPIXELS).mean(axis=(1, 3))


def write_conv(path: str | Path, kernel: np.ndarray, comment: str = "") -> Path:
    """Write ``kernel`` as a SExtractor ``CONV NORM`` file (six decimals).

    Parameters
    ----------
    path : path-like
        Destination (in a run directory: written directly).
    kernel : 2-D numpy.ndarray
        The kernel.
    comment : str
        A comment line for the file's head.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    kernel = np.asarray(kernel, dtype=float)
    lines = ["CONV NORM"]
    if comment:
        lines.append("# " + comment.replace("\n", " "))
    lines += [" ".join(f"{v:.6f}" for v in row) for row in kernel]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_conv(path: str | Path) -> np.ndarray:
    """Read the kernel of a ``.conv`` file (comment and ``CONV`` lines skipped).

    Parameters
    ----------
    path : path-like
        The ``.conv`` file.

    Returns
    -------
    numpy.ndarray
        The 2-D kernel.
    """
    rows = [line.split() for line in Path(path).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith(("#", "CONV"))]
    return np.array(rows, dtype=float)


@dataclass(frozen=True)
class DetectionFilter:
    """A resolved detection filter: its kind, FWHM (px), size and kernel.

    Parameters
    ----------
    kind : str
        'gauss', 'tophat', 'mexhat', 'default' or 'array'.
    fwhm : float or None
        FWHM in pixels of a generated kernel.
    kernel : numpy.ndarray or None
        The kernel; None for the shipped ``default.conv``.
    """

    kind: str
    fwhm: float | None
    kernel: np.ndarray | None = field(default=None, repr=False)  # None: shipped default.conv

    @property
    def size(self) -> int:
        return 3 if self.kernel is None else int(self.kernel.shape[0])

    @property
    def threshold_scale(self) -> float:
        """Factor for DETECT_THRESH that keeps the shipped default's false-alarm level.

        SExtractor compares the filtered image with DETECT_THRESH x the RMS of the
        *unfiltered* image, while a normalised kernel k lowers white noise by
        nu = sqrt(sum k²)/sum k (0.375 for the 3x3 default, 0.12 for an 11x11 Gaussian of
        FWHM 5.5 px). Without rescaling, a matched filter at the same DETECT_THRESH would
        be a 3x higher cut in filtered-noise units and detect *fewer* faint stars.
        ``nu(k) / nu(default)`` makes ``detection_sigma`` mean the same significance in the
        filtered image for every filter. Kernels with negative values (mexhat) are
        band-pass filters whose sum is ~0: left at 1 (SExtractor's own meaning).
        """
        if self.kernel is None or (self.kernel < 0).any():
            return 1.0
        nu = math.sqrt(float((self.kernel ** 2).sum())) / float(self.kernel.sum())
        return nu / _DEFAULT_NU

    def meta(self) -> dict:
        """What a catalogue records (Catalog.meta['detection_filter']).

        Returns
        -------
        dict
            kind, fwhm_pixel, size, threshold_scale and (when generated) the kernel.
        """
        out = {"kind": self.kind, "fwhm_pixel": self.fwhm, "size": self.size,
               "threshold_scale": self.threshold_scale}
        if self.kernel is not None:
            out["kernel"] = np.round(self.kernel, 6).tolist()
        return out

    def write(self, workdir: str | Path) -> str | None:
        """Write ``detection.conv`` into ``workdir``; None for the shipped default.

        Parameters
        ----------
        workdir : path-like
            The run directory.

        Returns
        -------
        str or None
            The file written, or None (use the shipped ``default.conv``).
        """
        if self.kernel is None:
            return None
        what = ("explicit kernel" if self.kind == "array"
                else f"{self.kind} kernel, FWHM {self.fwhm:.3f} px")
        return str(write_conv(Path(workdir) / "detection.conv", self.kernel,
                              f"{self.size}x{self.size} ezphot {what}"))


def resolve_detection_filter(detection_filter: str | np.ndarray | None = "gauss", *,
                             fwhm: float | None = None, size: int | None = None,
                             seeing_pixel: float | None = None) -> DetectionFilter:
    """Validate a ``detection_filter`` choice and build its kernel.

    Parameters
    ----------
    detection_filter : {'gauss', 'tophat', 'mexhat', 'default'} or 2-D array
        ``'default'`` is the shipped 3x3 ``default.conv``; an array is used as given.
    fwhm : float, optional
        Kernel FWHM in pixels (``detection_filter_fwhm``); default ``seeing_pixel``.
    size : int, optional
        Odd kernel size (``detection_filter_size``); default :func:`kernel_size`.
    seeing_pixel : float, optional
        The measured or header seeing in pixels. Without it (and without ``fwhm``) a
        ``gauss`` choice falls back to the shipped default; other kinds raise.

    Returns
    -------
    DetectionFilter
        The filter, its kernel built.
    """
    if detection_filter is None:
        detection_filter = "gauss"
    if not isinstance(detection_filter, str):
        kernel = np.asarray(detection_filter, dtype=float)
        if (kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0
                or kernel.shape[0] > _MAX_SIZE or not np.isfinite(kernel).all()
                or not np.any(kernel)):
            raise ValueError("detection_filter array must be a finite, non-zero, square 2-D "
                             f"kernel of odd size <= {_MAX_SIZE}, got shape {kernel.shape}")
        if fwhm is not None or size is not None:
            raise ValueError("detection_filter_fwhm/detection_filter_size apply to named "
                             "filters, not to an explicit kernel")
        return DetectionFilter("array", None, kernel)
    kind = detection_filter.lower()
    if kind not in KINDS:
        raise ValueError(f"detection_filter must be one of {KINDS} or a 2-D kernel array, "
                         f"got {detection_filter!r}")
    if kind == "default":
        return DetectionFilter("default", 2.0, None)
    if fwhm is None:
        fwhm = seeing_pixel
        if fwhm is None or not math.isfinite(fwhm) or fwhm <= 0:
            if kind == "gauss":
                return DetectionFilter("default", 2.0, None)
            raise ValueError(f"detection_filter={kind!r} needs detection_filter_fwhm or a "
                             "known seeing")
    return DetectionFilter(kind, float(fwhm), make_kernel(kind, float(fwhm), size))


def detection_filter_config(flt: DetectionFilter, workdir: str | Path) -> Mapping[str, str]:
    """Configuration keywords for ``flt`` (``FILTER_NAME`` of the file written in workdir)."""
    path = flt.write(workdir)
    return {} if path is None else {"FILTER": "Y", "FILTER_NAME": path}
