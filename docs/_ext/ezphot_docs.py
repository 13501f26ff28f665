"""Sphinx helpers of the ezphot documentation.

- ``.. ezphot-cli:: module:function`` documents an argparse parser (the function returns it):
  usage, description and every option of the parser and of each sub-command, with defaults
  and choices. Help strings are set as plain text (never parsed as reStructuredText, so a
  ``*.fits`` in a help string stays a ``*.fits``).

- The landing page's picture is made by ezphot at build time: a small generated 7DT-like frame
  (:mod:`ezphot.datasets`), measured by :meth:`~ezphot.methods.AperturePhotometry.sex_photometry`
  and drawn by :func:`ezphot.visualization.plot_catalog`. It is kept in ``_generated/`` and made
  again only when ezphot's version changes or the file is missing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

log = logging.getLogger(__name__)

PICTURE = "_generated/landing.png"


def make_landing_picture(out: Path) -> None:
    """Generate a small frame, measure it, and save the catalogue's picture as ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ezphot.datasets import FrameSpec, make_frame
    from ezphot.methods import AperturePhotometry
    from ezphot.visualization import plot_catalog

    with tempfile.TemporaryDirectory(prefix="ezphot-docs-") as tmp:
        spec = FrameSpec(shape=(500, 800), star_density=3)
        path, _ = make_frame(Path(tmp) / spec.file_name(), spec, seed=3)
        catalog = AperturePhotometry().sex_photometry(
            str(path), detection_sigma=3, aperture_diameter_arcsec=[7],
            aperture_diameter_seeing=[], save=False, verbose=False, visualize=False)
        fig = plot_catalog(catalog, display=False)
        fig.set_size_inches(9, 5.9)
        fig.axes[0].set_title(f"sex_photometry: {len(catalog.data)} sources, 7\" apertures "
                              "(a generated 7DT-like frame)")
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part.png")
        fig.savefig(part, dpi=80, bbox_inches="tight")
        plt.close(fig)
        os.replace(part, out)


def _landing(app) -> None:
    import ezphot

    out = Path(app.srcdir) / PICTURE
    stamp = out.with_suffix(".version")
    if out.exists() and stamp.exists() and stamp.read_text() == ezphot.__version__:
        return
    log.info("ezphot docs: making the landing picture")
    make_landing_picture(out)
    stamp.write_text(ezphot.__version__)


def _option_text(action) -> tuple[str, str]:
    """(flags with metavar, help with choices and default) of one argparse action."""
    import argparse

    if action.option_strings:
        flags = ", ".join(action.option_strings)
        if action.nargs != 0:
            flags += " " + (action.metavar or action.dest.upper().replace("-", "_"))
    else:
        flags = action.metavar or action.dest
    parts = [action.help or ""]
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        parts.append("choices: " + ", ".join(str(c) for c in action.choices))
    default = action.default
    if action.option_strings and action.nargs != 0 and default is not None \
            and default is not argparse.SUPPRESS and "default" not in (action.help or ""):
        if isinstance(default, (list, tuple)):
            default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
        parts.append(f"default: {default}")
    if action.required and action.option_strings:
        parts.append("required")
    return flags, "; ".join(p for p in parts if p)


class CliDirective(Directive):
    """Document the argparse parser returned by ``module:function``."""

    required_arguments = 1
    has_content = False

    def run(self):
        import argparse
        import importlib

        module, _, func = self.arguments[0].partition(":")
        parser = getattr(importlib.import_module(module), func)()
        out = []
        subactions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        out.extend(self._parser_nodes(parser, skip=subactions))
        for sub in subactions:
            helps = {c.dest: c.help for c in sub._choices_actions}
            for name, subparser in sub.choices.items():
                section = nodes.section(ids=[nodes.make_id(f"ezphot-{name}")])
                section += nodes.title(text=f"ezphot {name}")
                if helps.get(name):
                    section += nodes.paragraph(text=helps[name][0].upper() + helps[name][1:] + ".")
                section.extend(self._parser_nodes(subparser))
                self.state.document.note_implicit_target(section)
                out.append(section)
        return out

    def _parser_nodes(self, parser, skip=()):
        import argparse

        usage = parser.format_usage().strip().removeprefix("usage: ")
        result = [nodes.literal_block(usage, usage)]
        if parser.description:
            result.append(nodes.paragraph(text=parser.description.replace("``", "")))
        items = nodes.definition_list()
        for action in parser._actions:
            if action in skip or isinstance(action, argparse._HelpAction):
                continue
            flags, text = _option_text(action)
            term = nodes.term()
            term += nodes.literal(flags, flags)
            definition = nodes.definition()
            definition += nodes.paragraph(text=text or "(no description)")
            items += nodes.definition_list_item("", term, definition)
        if len(items):
            result.append(items)
        return result


def setup(app):
    app.add_directive("ezphot-cli", CliDirective)
    app.connect("builder-inited", _landing)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
