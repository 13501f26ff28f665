"""Sphinx configuration of the ezphot documentation (``make docs``).

Offline by design: no intersphinx, no remote images; the tutorials are executed by myst-nb
with a cache inside the build directory, so an unchanged notebook is not executed again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
BUILD = Path(os.environ.get("EZPHOT_DOCS_BUILD", DOCS / "_build"))

# This checkout's ezphot, for autodoc and for the notebooks' kernels (they inherit the
# environment).
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ.setdefault("MPLBACKEND", "Agg")

import ezphot  # noqa: E402

project = "ezphot"
author = "The ezphot developers"
copyright = "The ezphot developers"
release = ezphot.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "ezphot_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_generated_cache", "**.ipynb_checkpoints", "conftest.py",
                    "README.md"]
templates_path = ["_templates"]

# -- warnings: errors in `make docs` (-W); nitpicky for ezphot's own cross-references ----------
nitpicky = True
# Third-party types (numpy, astropy, matplotlib...) cannot be resolved offline (no intersphinx):
# only references into ezphot itself are checked.
nitpick_ignore_regex = [
    # private modules and classes (ezphot._io, private base classes shown by show-inheritance)
    (r"py:.*", r"ezphot\.(\w+\.)*_\w+.*"),
    (r"py:.*", r"(?!ezphot\b).*"),
]
suppress_warnings = ["myst.header"]

# -- API reference ----------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"          # numpydoc's Parameters sections carry the types
# not True: the façade methods show their core function's signature (__signature__), which
# differs from their source, and preserve_defaults would parse the source
autodoc_preserve_defaults = False
autoclass_content = "class"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()   # validated by a separate test, not here

# -- notebooks (myst-nb) ----------------------------------------------------------------------
nb_execution_mode = "cache"
nb_execution_cache_path = str(BUILD / ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_in_temp = True
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "substitution"]
myst_heading_anchors = 3

# -- HTML -------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"ezphot {release}"
html_static_path: list[str] = []   # no static files of our own
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_show_sourcelink = False


def _reexported() -> dict[str, str]:
    """``module.name`` -> ``package.name`` for names a package re-exports from its submodules:
    their pages are generated once, under the package (the documented import path)."""
    import importlib
    import pkgutil

    out = {}
    for info in pkgutil.walk_packages(ezphot.__path__, "ezphot."):
        if not info.ispkg:
            continue
        pkg = importlib.import_module(info.name)
        for name in getattr(pkg, "__all__", []):
            obj = getattr(pkg, name, None)
            module = getattr(obj, "__module__", None)
            if module and module != info.name and module.startswith(info.name + "."):
                out[f"{module}.{name}"] = f"{info.name}.{name}"
    return out


autosummary_context = {"reexported": _reexported()}
