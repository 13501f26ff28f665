"""The tutorial's utilities: ``from ezphot.utils import DataBrowser``."""

from .databrowser import DataBrowser
from .imageset import CatalogSet, ImageSet

__all__ = ["DataBrowser", "ImageSet", "CatalogSet"]
