"""Shared fixtures: real external data from ../shared/data and generated 7DT-like frames."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EZPHOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    """A file of ../shared/data (external reference data); the test fails if it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"external test data missing: {path} (set EZPHOT_SHARED_DATA)")
    return path


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def private_tmpdir(tmp_path_factory, monkeypatch):
    """Every test's SExtractor runs go to a directory the test can inspect afterwards."""
    runs = tmp_path_factory.mktemp("runs")
    monkeypatch.setenv("EZPHOT_TMPDIR", str(runs))
    yield runs
    leftovers = list(runs.iterdir())
    assert not leftovers, f"run directories left behind: {leftovers}"


@pytest.fixture(scope="session")
def frame(tmp_path_factory):
    """A generated 7DT-like frame (1024x1536, ~500 sources) and its truth table."""
    from ezphot.datasets import FrameSpec, make_frame, make_scene

    root = tmp_path_factory.mktemp("frame") / "scidata"
    spec = FrameSpec(shape=(1024, 1536), star_density=3.0)
    scene = make_scene(spec, seed=7)
    # three bright stars well inside the frame: their cores saturate at 60000 ADU
    stars = [i for i, t in enumerate(scene["TYPE"]) if t == "star"][:3]
    for k, i in enumerate(stars):
        scene["X"][i], scene["Y"][i], scene["MAG"][i] = 300 + 400 * k, 500 + 50 * k, 10.0
    scene["FLUX"] = 10 ** (-0.4 * (scene["MAG"] - spec.zeropoint))
    path, truth = make_frame(spec=spec, seed=7, root=root, scene=scene)
    return path, truth


@pytest.fixture(scope="session")
def dense_frame(tmp_path_factory):
    """A denser generated frame (2048x2048, 3x star density) for recovery statistics."""
    from ezphot.datasets import FrameSpec, make_frame

    d = tmp_path_factory.mktemp("dense")
    spec = FrameSpec(shape=(2048, 2048), star_density=3.0)
    path, truth = make_frame(d / spec.file_name(), spec, seed=11)
    return path, truth


@pytest.fixture(scope="session")
def sextractor():
    from ezphot.sextractor import find_sextractor

    return find_sextractor()
