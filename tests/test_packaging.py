"""The package as a user installs it: a wheel (not the editable checkout), run from elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory):
    """The project's wheel built by pip and installed (no dependencies: the test environment
    has them) into a folder of its own; returns (wheel, target folder). Built without build
    isolation (the test extra brings setuptools), so no package index is needed."""
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src")
    # a copy: building writes build/ and *.egg-info, never into the checkout
    shutil.copytree(ROOT, src, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".venv-*", "build", "*.egg-info", "__pycache__", ".pytest_cache",
        "demo_output", "benchmarks", "_build", "_generated"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    (wheel,) = out.glob("ezphot-*.whl")
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                        str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return wheel, target


def _run(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # the installed copy first on the path, and no way back to the checkout
    env = {k: v for k, v in os.environ.items() if k != "EZPHOT_SEXTRACTOR_CONFIGS"}
    env["PYTHONPATH"] = str(target)
    return subprocess.run([str(target / "bin" / "ezphot"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_wheel_contents(wheel_install):
    wheel, _ = wheel_install
    names = zipfile.ZipFile(wheel).namelist()
    assert "ezphot/__main__.py" in names and "ezphot/cli.py" in names
    for f in ("default.sex", "default.param", "default.conv", "default.nnw"):
        assert f"ezphot/sextractor_configs/{f}" in names, f
    assert any(n.startswith("ezphot/sextractor_configs/profiles/") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in meta
    assert "Provides-Extra: parquet" in meta and "Provides-Extra: dask" in meta
    for extra in ("notebook", "test"):
        assert f"Provides-Extra: {extra}" in meta, extra
    # Parquet export needs pyarrow: the parquet extra brings it (Catalog.write says so)
    assert 'Requires-Dist: pyarrow>=16; extra == "parquet"' in meta
    assert "Requires-Python: >=3.11" in meta
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_runs_from_another_directory(wheel_install, tmp_path):
    """``ezphot --version`` and ``ezphot demo`` of the installed wheel, run from a folder
    that is not the checkout: the configuration files come from inside the package."""
    import ezphot

    _, target = wheel_install
    r = _run(target, tmp_path, "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"ezphot {ezphot.__version__}", r
    probe = subprocess.run(
        [sys.executable, "-c", "import ezphot, ezphot.config as c; "
         "print(ezphot.__file__); print(c.sextractor_config_dir())"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True,
        text=True, timeout=120)
    module, configs = probe.stdout.split()
    assert Path(module).is_relative_to(target) and Path(configs).is_relative_to(target)
    r = _run(target, tmp_path, "demo", "--n-frames", "1", "--workers", "1", "--output",
             str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert list((tmp_path / "out").rglob("*.cat")), r.stdout
