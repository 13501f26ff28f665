"""The photometry methods ezphot knows: name -> function, catalogue suffix, resume-key options.

Everything that dispatches on a method name reads this table: the batch engine
(`ezphot.batch`), `AperturePhotometry.run_photometry`, the command line (``--method``), the
provenance (resume) key and the saving of catalogues (`ezphot.photometry.common`). Adding a
method means one entry here and its own module; nothing else names it.

An entry holds the *core* function (not the tutorial façade): its signature is the one place
where the method's defaults are written.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PhotometryMethod", "METHODS", "get_method", "method_names"]

# Options no method's numbers depend on: they never enter a resume (provenance) key.
# Process and worker counts are among them: results do not depend on them.
NOT_RESULT = frozenset({"target_img", "save", "verbose", "visualize", "save_fig", "binary",
                        "timeout", "progress", "nproc", "workers"})


@dataclass(frozen=True)
class PhotometryMethod:
    """One photometry method.

    The parameters are also the (frozen) attributes.

    Parameters
    ----------
    name : str
        Its name (``'sextractor'``, ...), also ``Catalog.meta['method']``.
    function : str
        ``'module:function'`` of the core function (imported when first called).
    suffix : str
        Suffix of the catalogue saved beside the image. Forced photometry inserts a digest of
        the targets before ``.cat`` (one file per target list).
    targets : tuple of str
        The arguments that name the targets (forced photometry): they enter the file name and
        the resume key by their digest, not as options.
    not_result : frozenset of str
        The method's own options that do not change its numbers (besides `NOT_RESULT`).
    versions : tuple of str
        The software whose version enters the resume key (``'sextractor'``, ``'photutils'``).
    detection : bool
        A detection method (offered by ``ezphot photometry --method``).
    """

    name: str
    function: str
    suffix: str
    targets: tuple[str, ...] = ()
    not_result: frozenset = frozenset()
    versions: tuple[str, ...] = ()
    detection: bool = False

    @property
    def func(self) -> Callable:
        """The core function (``target_img`` first, keyword-only options, returns a Catalog)."""
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)

    @property
    def facade_name(self) -> str:
        """Name of the `AperturePhotometry` method (the core function's name)."""
        return self.function.split(":")[1]

    def excluded(self) -> frozenset:
        """Options left out of the resume key.

        Returns
        -------
        frozenset of str
            `NOT_RESULT` and the method's own ``not_result``.
        """
        return NOT_RESULT | self.not_result


METHODS: dict[str, PhotometryMethod] = {
    m.name: m for m in (
        PhotometryMethod("sextractor", "ezphot.photometry.sexphot:sex_photometry", ".cat",
                         versions=("sextractor",), detection=True),
        PhotometryMethod("photutils", "ezphot.photometry.detect:photutils_photometry",
                         ".phot.cat", versions=("photutils",), detection=True),
        # sky_cache: where the whole-frame sky is kept (the same numbers without it)
        PhotometryMethod("circular", "ezphot.photometry.forced:circular_photometry",
                         ".circ.cat", targets=("x", "y"), not_result=frozenset({"sky_cache"}),
                         versions=("photutils",)),
        PhotometryMethod("elliptical", "ezphot.photometry.forced:elliptical_photometry",
                         ".ellip.cat", targets=("x", "y", "a", "b", "theta"),
                         not_result=frozenset({"sky_cache"}), versions=("photutils",)),
    )
}


def method_names(*, detection: bool | None = None) -> tuple[str, ...]:
    """The registered names (``detection=True``: detection methods only).

    Parameters
    ----------
    detection : bool or None
        True: detection methods only; False: the others (forced photometry); None: all.

    Returns
    -------
    tuple of str
        The method names, in registration order.
    """
    return tuple(n for n, m in METHODS.items() if detection is None or m.detection == detection)


def get_method(name: str) -> PhotometryMethod:
    """The registered method ``name``; ValueError naming the choices otherwise.

    Parameters
    ----------
    name : str
        A method name (``'sextractor'``, ``'photutils'``, ``'circular'``, ``'elliptical'``).

    Returns
    -------
    PhotometryMethod
        Its registry entry.

    Raises
    ------
    ValueError
        For a name that is not registered.
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {method_names()}, got {name!r}") from None
