"""Result objects: `Catalog` (and, for many images, `CatalogSet`)."""

from .catalog import Catalog, CatalogInfo

__all__ = ["Catalog", "CatalogInfo"]
