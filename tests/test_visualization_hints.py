"""Hints for likely mistakes: RA/Dec with unit='pixel'; run_batch without the __main__ guard."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from astropy.utils.exceptions import AstropyUserWarning

from ezphot.datasets import FrameSpec, make_frame
from ezphot.exceptions import PositionWarning
from ezphot.imageobjects import ScienceImage
from ezphot.methods import AperturePhotometry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("hints")
    return [make_frame(root / f"f{i}.fits", FrameSpec(shape=(200, 260)), seed=1,
                       noise_seed=i)[0] for i in range(2)]


def test_radec_with_pixel_unit_warns(frames):
    img = ScienceImage(frames[0])
    c = img.center
    ap = AperturePhotometry()
    with pytest.warns(PositionWarning, match="did you mean unit='coord'"):
        cat = ap.circular_photometry(img, c.ra.deg, c.dec.deg, save=False, verbose=False,
                                     visualize=False)
    assert cat.data["FLAGS"][0] != 0  # still measured as asked (off the image)
    with pytest.warns(PositionWarning, match="did you mean unit='coord'"):
        ap.elliptical_photometry(img, c.ra.deg, c.dec.deg, 5, 3, 10, save=False, verbose=False,
                                 visualize=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)
        ap.circular_photometry(img, c.ra.deg, c.dec.deg, unit="coord", save=False,
                               verbose=False, visualize=False)
        ap.circular_photometry(img, 100.0, 80.0, save=False, verbose=False, visualize=False)


SCRIPT = """
from ezphot.batch import run_batch
{indent_head}rows = run_batch({paths!r}, "sextractor", workers=2, progress=False,
{indent}              save=False, on_error="raise")
{indent}print("OK", len(rows))
"""


@pytest.mark.parametrize("guarded", [False, True])
def test_run_batch_script_main_guard(frames, tmp_path, guarded):
    head = "if __name__ == '__main__':\n    " if guarded else ""
    script = tmp_path / "batch_script.py"
    script.write_text(SCRIPT.format(indent_head=head, indent="    " if guarded else "",
                                    paths=[str(p) for p in frames]))
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    if guarded:
        assert r.returncode == 0 and "OK 2" in r.stdout, r.stderr
    else:
        assert r.returncode != 0
        assert "if __name__ == '__main__':" in r.stderr and "batch_script.py" in r.stderr
        assert "worker process died" not in r.stderr
