"""Old parameter names that keep working: one name per idea, the tutorial's spellings as aliases.

ezphot's API uses one name for each idea (README, "Names"):

=====================  ==============================  ========================================
idea                   name                            old spellings (deprecated aliases)
=====================  ==============================  ========================================
pixel / sky switch     ``unit`` ('pixel' or 'coord')   ``coord_type``
positions              ``x``, ``y``                    ``x_arr``/``y_arr``, ``x_position``/
                                                       ``y_position``
ellipse axes, angle    ``a``, ``b``, ``theta``         ``sma_arr``/``smi_arr``/``theta_arr``,
                                                       ``a_arcsec``/``b_arcsec``/``theta_deg``
read noise (e-)        ``rdnoise``                     ``rdnoise_e``
a mask given as input  ``target_mask``                 ``target_srcmask``
=====================  ==============================  ========================================

An old name still works and emits an `~astropy.utils.exceptions.AstropyDeprecationWarning`;
giving both the old and the new name is an error (TypeError, as Python's own for a doubled
argument).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping

from astropy.utils.exceptions import AstropyDeprecationWarning

__all__ = ["renamed", "resolve_renamed"]


def resolve_renamed(func: Callable, kwargs: Mapping, *, stacklevel: int = 3,
                    positional: tuple = ()) -> dict:
    """``kwargs`` with the old names of ``func``'s parameters (see `renamed`) replaced by the
    new ones, warning once per old name; TypeError when both are given (``positional``: the
    names already given by position)."""
    mapping = getattr(func, "renamed_parameters", None) or {}
    out = dict(kwargs)
    name = getattr(func, "__name__", "function")
    for old, new in mapping.items():
        if old in out:
            if new in out or new in positional:
                raise TypeError(f"{name}() got both {new!r} and its deprecated alias {old!r}: "
                                f"give {new!r} only")
            warnings.warn(f"{name}(): {old!r} is deprecated, use {new!r}",
                          AstropyDeprecationWarning, stacklevel=stacklevel)
            out[new] = out.pop(old)
    return out


def renamed(**old_to_new: str) -> Callable:
    """Decorator: accept the keyword arguments ``old=...`` as ``new=...`` (deprecated)."""

    def decorate(func: Callable) -> Callable:
        params = list(inspect.signature(func).parameters.values())
        by_position = [p.name for p in params
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if kwargs:
                kwargs = resolve_renamed(wrapper, kwargs, stacklevel=3,
                                         positional=tuple(by_position[:len(args)]))
            return func(*args, **kwargs)

        wrapper.renamed_parameters = dict(old_to_new)
        return wrapper

    return decorate
