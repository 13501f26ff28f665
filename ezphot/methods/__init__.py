"""The tutorial's entry points: ``from ezphot.methods import AperturePhotometry``."""

from .aperturephotometry import AperturePhotometry

__all__ = ["AperturePhotometry"]
