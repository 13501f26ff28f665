"""One-line mutations of ezphot/ and the test that must catch each (issue 14).

Run from the repository root: ``python -m tests._mutations [id ...]``. Each mutation is
applied to a copy of the committed tree (``git archive HEAD``) in a temporary directory,
the named tests run there, and the copy is discarded: the working tree is never touched.
``EZPHOT_SHARED_DATA`` must point at the shared data (default ../shared/data).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
R = "tests/test_references.py"
MUTATIONS = [
 # (id, file, old, new, tests)
 ("int-shift", "ezphot/photometry/sexphot.py", "            table[name] = col - 1", "            table[name] = col", [R + "::test_integer_positions_are_the_binarys_minus_one"]),
 ("zeropoint", "ezphot/photometry/sexphot.py", "MAG_ZEROPOINT=zeropoint,", "MAG_ZEROPOINT=0.0,", [R + "::test_zeropoint_enters_every_magnitude"]),
 ("satur-sign", "ezphot/sextractor/imagerun.py", 'config["SATUR_LEVEL"] = saturation_level - float(', 'config["SATUR_LEVEL"] = saturation_level + float(', [R + "::test_saturation_after_background_subtraction"]),
 ("satur-dropped", "ezphot/sextractor/imagerun.py", 'config["SATUR_LEVEL"] = saturation_level - float(np.nanmedian(bkg.data[::8, ::8]))', 'config["SATUR_LEVEL"] = saturation_level', [R + "::test_saturation_after_background_subtraction"]),
 ("rms-bias", "ezphot/background.py", "var += rn_adu2 / np.float32(n)", "var += rn_adu2", [R + "::test_rms_model_master_terms_equal_the_formula"]),
 ("rms-dark", "ezphot/background.py", "var += (np.maximum(data, 0) / (gain * n))", "var += (np.maximum(data, 0) / gain)", [R + "::test_rms_model_master_terms_equal_the_formula"]),
 ("rms-flat", "ezphot/background.py", "var += (back.astype(np.float32) ** 2 /", "var += (back.astype(np.float32) /", [R + "::test_rms_model_master_terms_equal_the_formula"]),
 ("rms-ncombine", "ezphot/background.py", "    var /= np.float32(n_img)", "    pass", [R + "::test_rms_model_master_terms_equal_the_formula"]),
 ("annulus-mask", "ezphot/photometry/forced.py", "            good &= ~mask[slc_l][w]", "            pass", [R + "::test_annulus_sky_ignores_masked_pixels"]),
 ("browser-filter", "ezphot/utils/databrowser.py", "                    if not _matches(entry.name, wanted):", "                    if not _matches(entry.name, '*'):", [R + "::test_browser_filters_equal_truth_table"]),
 ("browser-keys", "ezphot/utils/databrowser.py", "            for level, value in zip(LEVELS, rel):", "            for level, value in zip(LEVELS, rel[1:]):", [R + "::test_browser_filters_equal_truth_table"]),
 ("export-info", "ezphot/dataobjects/catalog.py", '            table.meta["ezphot_info"] = self.info.to_dict()', "            pass", [R + "::test_exports_keep_values_units_and_info"]),
 ("cli-exit1", "ezphot/cli.py", "    return 1 if failed else 0", "    return 0", [R + "::test_cli_exit_1_when_some_frames_fail"]),
 ("dask-raise", "ezphot/batch.py", '                if on_error == "raise" and row["status"] == "failed":', '                if False:', [R + "::test_dask_on_error_raise"]),
 ("srcmask-shift", "ezphot/masks.py", 'paint_disks(mask, np.asarray(t["X_IMAGE"], float) - 1,', 'paint_disks(mask, np.asarray(t["X_IMAGE"], float),', [R + "::test_source_mask_disks_centred_on_truth"]),
 ("circmask-radius", "ezphot/masks.py", "            inside = (xx - px) ** 2 + (yy - py) ** 2 <= (radius_arcsec / scale) ** 2", "            inside = (xx - px) ** 2 + (yy - py) ** 2 < (radius_arcsec / scale) ** 2 * 1.05", [R + "::test_pixel_unit_circular_mask"]),
 ("circmask-centre", "ezphot/masks.py", "            inside = (xx - px) ** 2 + (yy - py) ** 2 <= (radius_arcsec / scale) ** 2", "            inside = (xx - px) ** 2 + (yy - py - 1) ** 2 <= (radius_arcsec / scale) ** 2", [R + "::test_pixel_unit_circular_mask"]),
 ("mesh-centre", "ezphot/background.py", "    xc = (np.arange(nbx) + 0.5) * box - 0.5", "    xc = (np.arange(nbx) + 0.5) * box", [R + "::test_background_of_a_plane_is_the_plane"]),
 ("phot-aper", "ezphot/photometry/detect.py", "    fluxes = [cat.circular_photometry(d / 2.0) for d in diam_px]", "    fluxes = [cat.circular_photometry(d / 2.0 + 0.1) for d in diam_px]", [R + "::test_photutils_detection_fluxes_equal_direct_aperture_photometry"]),
 ("nproc-validate", "ezphot/photometry/detect.py", '    nproc = validate.size(nproc, "nproc", maximum=4096)\n', "", [R + "::test_photutils_detection_nproc"]),
 ("forced-one-pos", "ezphot/photometry/forced.py", "        masks = [CircularAperture(xy, r=d / 2.0).to_mask(", "        masks = [CircularAperture(xy + 0.5, r=d / 2.0).to_mask(", ["tests/test_forced.py::test_one_position_uses_cutouts_only"]),
]


def main(only: list[str]) -> int:
    env = dict(os.environ, MPLBACKEND="Agg",
               EZPHOT_SHARED_DATA=os.environ.get("EZPHOT_SHARED_DATA",
                                                 str(ROOT.parent / "shared" / "data")))
    survived = 0
    with tempfile.TemporaryDirectory(prefix="ezphot-mutations-") as tmp:
        copy = Path(tmp)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
        for mid, f, old, new, sel in MUTATIONS:
            if only and mid not in only:
                continue
            path = copy / f
            orig = path.read_text()
            if orig.count(old) != 1:
                print(f"{mid:16s} NOT APPLICABLE (the line changed)")
                continue
            path.write_text(orig.replace(old, new))
            t0 = time.time()
            try:
                p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                                    "no:cacheprovider", *sel], cwd=copy, env=env,
                                   capture_output=True, text=True, timeout=900, check=False)
            finally:
                path.write_text(orig)
            caught = p.returncode != 0
            survived += not caught
            print(f"{mid:16s} {'caught' if caught else 'SURVIVED'} ({time.time() - t0:.0f} s) "
                  f"by {' '.join(sel)}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
