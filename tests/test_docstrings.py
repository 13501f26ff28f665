"""numpydoc validation of the public API: every public function, class and method documents
its parameters (a Parameters section naming exactly the signature's arguments) and what it
returns (a Returns or Yields section when it returns a value).

Public: in a module whose dotted name has no part starting with ``_``, a function or class
defined in that module (not imported into it) whose name does not start with ``_`` and that
is in the module's ``__all__`` when the module has one; of a public class, the methods,
static methods and class methods defined in its body whose names do not start with ``_``.
A class is validated against its constructor's signature (numpydoc: the class docstring
documents ``__init__``'s parameters).

Checks (numpydoc.validate codes):

- GL08  the object has no docstring
- PR01  a parameter of the signature is not documented
- PR02  a documented parameter is not in the signature
- PR10  a parameter line lacks the space before its colon (``x: int`` instead of ``x : int``)
- RT01  the function returns a value but has no Returns section

Not checked: PR03 (documented order = signature order; the options are keyword-only and
related ones are documented together, e.g. ``target_bkg, target_bkgrms, target_mask``), the
summary-line and style checks (SS*, GL01-GL03, ES01, SA01, EX01: prose, not consistency).

Names not yet fixed are listed in ``tests/numpydoc_todo.txt`` (``name CODE`` per line):
the test fails on a failure that is not listed (a new or changed docstring) and on a listed
one that is fixed (remove its line), so the list only shrinks.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

import ezphot  # noqa: E402

CHECKS = {"GL08", "PR01", "PR02", "PR10", "RT01"}
TODO = Path(__file__).with_name("numpydoc_todo.txt")


def public_modules() -> list[str]:
    """Dotted names of ezphot's public modules (no part starting with ``_``)."""
    names = ["ezphot"]
    for info in pkgutil.walk_packages(ezphot.__path__, "ezphot."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def public_objects(module_name: str) -> list[str]:
    """Dotted names of the public functions, classes and methods defined in a module."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    out = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if exported is not None and name not in exported:
            continue
        if inspect.isfunction(obj):
            out.append(f"{module_name}.{name}")
        elif inspect.isclass(obj):
            out.append(f"{module_name}.{name}")
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(value, staticmethod | classmethod):
                    value = value.__func__
                if inspect.isfunction(value):
                    out.append(f"{module_name}.{name}.{attr}")
    return out


def failures() -> dict[tuple[str, str], str]:
    """``{(name, code): message}`` of every selected check that fails."""
    found = {}
    for module_name in public_modules():
        for name in public_objects(module_name):
            for code, message in numpydoc_validate.validate(name)["errors"]:
                if code in CHECKS:
                    found[(name, code)] = message
    return found


def read_todo() -> set[tuple[str, str]]:
    entries = set()
    for line in TODO.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, code = line.split()
            entries.add((name, code))
    return entries


def test_public_api_is_walked():
    """The walk reaches the public names users import (a broken walk would check nothing)."""
    names = {n for m in public_modules() for n in public_objects(m)}
    for expected in ("ezphot.methods.aperturephotometry.AperturePhotometry",
                     "ezphot.methods.aperturephotometry.AperturePhotometry.sex_photometry",
                     "ezphot.dataobjects.catalog.Catalog.write",
                     "ezphot.batch.run_batch",
                     "ezphot.utils.databrowser.DataBrowser"):
        assert expected in names, expected
    assert not any("._" in n for n in names)
    assert len(names) > 100


def test_numpydoc_parameters_and_returns():
    from ezphot.methods import AperturePhotometry

    # the façade's signatures are the core functions', completed by its first instance
    # (this test alone, before any other made one, saw *args/**kwargs)
    AperturePhotometry()
    found = failures()
    todo = read_todo()
    new = sorted(set(found) - todo)
    fixed = sorted(todo - set(found))
    lines = []
    if new:
        lines.append(f"{len(new)} docstring problem(s) to fix (numpydoc codes, see this "
                     "test's docstring):")
        lines += [f"  {name}: {code} {found[(name, code)]}" for name, code in new]
    if fixed:
        lines.append(f"{len(fixed)} line(s) of {TODO.name} are fixed: remove them:")
        lines += [f"  {name} {code}" for name, code in fixed]
    assert not lines, "\n".join(lines)


if __name__ == "__main__":  # python -m tests.test_docstrings > tests/numpydoc_todo.txt
    print("# numpydoc checks still failing (tests/test_docstrings.py); fix, then delete the line")
    for name, code in sorted(failures()):
        print(name, code)
