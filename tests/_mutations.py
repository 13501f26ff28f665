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
F = "tests/test_formulas.py"
S = "tests/test_forced_sky_cache.py"
H = "tests/test_sky_cache_hostile.py"
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
 ("nproc-order", "ezphot/photometry/detect.py", "        col = np.concatenate([np.asarray(t[name]) for t in tables])[order]", "        col = np.concatenate([np.asarray(t[name]) for t in tables])", [R + "::test_photutils_detection_nproc"]),
 ("nproc-relabel", "ezphot/photometry/detect.py", "    for parent in sorted(owner):", "    for parent in owner:", [R + "::test_photutils_detection_nproc"]),
 ("nproc-neighbours", "ezphot/photometry/detect.py", '    segm.__dict__["_data"] = pixels', '    segm.__dict__["_data"] = np.where(pixels > 0, 1, 0)', [R + "::test_photutils_detection_nproc"]),
 ("nproc-piece-boxes", "ezphot/photometry/detect.py", "slice(s.start + o.start, s.stop + o.start)", "slice(s.start, s.stop + o.start)", [R + "::test_photutils_detection_nproc"]),
 ("nproc-piece-labels", "ezphot/photometry/detect.py", "        final[pieces] = [of_piece[g][int(n)] for n in number[pieces]]", "        final[pieces] = number[pieces]", [R + "::test_photutils_detection_nproc"]),
 ("strip-overlap", "ezphot/photometry/detect.py", "lo, hi = max(0, y0 - 1), min(ny, y1 + 1)", "lo, hi = y0, y1", [R + "::test_photutils_detection_strips_equal_one_pass"]),
 ("strip-median", "ezphot/photometry/detect.py", "    return float((float(part[:k].max()) + float(part[k])) / 2)", "    return float(part[k])", [R + "::test_photutils_detection_strips_equal_one_pass"]),
 ("nproc-worker-error", "ezphot/photometry/detect.py", "    except Exception as exc:  # raised in the worker, or the worker died", "    except ZeroDivisionError as exc:", [R + "::test_photutils_detection_worker_failure"]),
 ("map-hdu-name", "ezphot/_io.py", '    return suffix if hdu is None else f".hdu{int(hdu)}{suffix}"', "    return suffix", ["tests/test_structure.py::test_two_extensions_keep_two_maps"]),
 ("map-hdu-check", "ezphot/photometry/common.py", "        if obj.target_img and obj.target_hdu != img.product_hdu:", "        if False:", ["tests/test_structure.py::test_two_extensions_keep_two_maps"]),
 ("map-hdu-load", "ezphot/imageobjects/maps.py", '                target_hdu = header.get("EZHDU") if target_hdu is None else target_hdu', "                pass", ["tests/test_structure.py::test_two_extensions_keep_two_maps"]),
 ("forced-one-pos", "ezphot/photometry/forced.py", "        masks = [CircularAperture(xy, r=d / 2.0).to_mask(", "        masks = [CircularAperture(xy + 0.5, r=d / 2.0).to_mask(", ["tests/test_forced.py::test_one_position_uses_cutouts_only"]),
 # -- issue 14, second wave: away from the obvious spots (tests/test_formulas.py and others)
 ("forced-ul5", "ezphot/photometry/forced.py", "ul5 = -2.5 * np.log10(5 * skysig) + zeropoint", "ul5 = -2.5 * np.log10(3 * skysig) + zeropoint", [F + "::test_forced_columns_equal_photutils_and_formulas"]),
 ("forced-magerr", "ezphot/photometry/forced.py", "2.5 / math.log(10) * fluxerr / flux,", "2.5 * fluxerr / flux,", [F + "::test_forced_columns_equal_photutils_and_formulas"]),
 ("forced-poisson", "ezphot/photometry/forced.py", "poisson = np.maximum(flux, 0) / gain if gain", "poisson = np.maximum(flux, 0) * gain if gain", [F + "::test_forced_columns_equal_photutils_and_formulas"]),
 ("forced-annvar", "ezphot/photometry/forced.py", "var_est[i] = area[i] ** 2 * ann_std[i] ** 2 / ann_cnt[i]", "var_est[i] = area[i] * ann_std[i] ** 2 / ann_cnt[i]", [F + "::test_annulus_error_term_is_npix2_var_over_n"]),
 ("forced-swap", "ezphot/photometry/forced.py", "theta_rad = np.where(swap, theta_rad + np.pi / 2, theta_rad)", "theta_rad = np.where(swap, theta_rad, theta_rad)", [F + "::test_elliptical_axes_given_swapped"]),
 ("forced-partial", "ezphot/photometry/forced.py", "                    flags[i] |= FLAG_PARTIAL", "                    flags[i] |= FLAG_OFF", ["tests/test_forced.py"]),
 ("common-seeing", "ezphot/photometry/common.py", "diam_px = [d / pixelscale for d in fixed + [m * seeing for m in multiples]]", "diam_px = [d / pixelscale for d in fixed + [m / seeing for m in multiples]]", [F + "::test_forced_columns_equal_photutils_and_formulas"]),
 ("common-pix-seeing", "ezphot/photometry/common.py", "diam_px = fixed + [m * seeing / pixelscale for m in multiples]", "diam_px = fixed + [m * seeing for m in multiples]", [F + "::test_pixel_diameters_with_seeing_multiples"]),
 ("common-diam-arcsec", "ezphot/photometry/common.py", "diam_arcsec = [d * pixelscale for d in diam_px]", "diam_arcsec = [d / pixelscale for d in diam_px]", [F + "::test_pixel_diameters_with_seeing_multiples"]),
 ("common-info-ra", "ezphot/photometry/common.py", "ra=None if center is None else float(center.icrs.ra.deg),", "ra=None if center is None else float(center.icrs.dec.deg),", [F + "::test_forced_columns_equal_photutils_and_formulas"]),
 ("common-zero-diam", "ezphot/photometry/common.py", "bad = arr[~np.isfinite(arr) | (arr <= 0)]", "bad = arr[~np.isfinite(arr) | (arr < 0)]", [F + "::test_zero_or_negative_diameters_refused"]),
 ("srcmask-satx2", "ezphot/masks.py", "radius = mask_radius_factor * radius * np.where(saturated, 2.0, 1.0)", "radius = mask_radius_factor * radius * np.where(saturated, 1.0, 1.0)", [F + "::test_source_mask_equals_binary_by_hand"]),
 ("srcmask-iso", "ezphot/masks.py", "radius = np.maximum(np.sqrt(np.asarray(t[\"ISOAREA_IMAGE\"], float) / np.pi),", "radius = np.maximum(np.sqrt(np.asarray(t[\"ISOAREA_IMAGE\"], float) / 2.0),", [F + "::test_source_mask_equals_binary_by_hand"]),
 ("paint-int-edge", "ezphot/masks.py", "st = stencils[rc] = xx * xx + yy * yy <= rc * rc", "st = stencils[rc] = xx * xx + yy * yy < rc * rc", [F + "::test_paint_disks_integer_and_float_centres_equal_the_formula"]),
 ("paint-int-clip", "ezphot/masks.py", "cy0, cx0 = max(0, -y0), max(0, -x0)", "cy0, cx0 = max(0, -y0), max(0, -x0 - 1)", [F + "::test_paint_disks_integer_and_float_centres_equal_the_formula"]),
 ("mask-or", "ezphot/imageobjects/maps.py", "return Mask(self.data | other.data, header=self.header", "return Mask(self.data & other.data, header=self.header", [F + "::test_mask_union_and_errormap_checks_every_row"]),
 ("errormap-block", "ezphot/imageobjects/maps.py", "            block = data[y0:y0 + 1024]", "            block = data[y0:y0 + 1000]", [F + "::test_mask_union_and_errormap_checks_every_row"]),
 ("skew-six", "ezphot/background.py", "corr = np.where(var > 0, 2.5 * kappa3 / (6.0 * var), 0.0)", "corr = np.where(var > 0, 2.5 * kappa3 / (3.0 * var), 0.0)", [F + "::test_poisson_skew_correction_equals_poisson_moments"]),
 ("skew-rn", "ezphot/background.py", "kappa3 = np.maximum(var - (rdnoise_e / egain) ** 2, 0.0) / egain", "kappa3 = np.maximum(var - rdnoise_e ** 2 / egain, 0.0) / egain", [F + "::test_poisson_skew_correction_equals_poisson_moments"]),
 ("clip-centre", "ezphot/background.py", "    return centre + m1, np.sqrt(np.maximum(m2 - m1**2, 0.0)), n", "    return centre - m1, np.sqrt(np.maximum(m2 - m1**2, 0.0)), n", ["tests/test_maps.py"]),
 ("lc-mjd", "ezphot/photometry/lightcurve.py", "Time(obsdate).mjd if obsdate", "Time(obsdate).jd - 2400000 if obsdate", [F + "::test_light_curve_time_order_and_detection_rule"]),
 ("lc-sort", "ezphot/photometry/lightcurve.py", 'table.sort(["MJD", "TARGET"])', 'table.sort(["TARGET", "MJD"])', [F + "::test_light_curve_time_order_and_detection_rule"]),
 ("lc-detected", "ezphot/photometry/lightcurve.py", "np.nan_to_num(snr, nan=0.0) >= detection_snr", "np.abs(np.nan_to_num(snr, nan=0.0)) >= detection_snr", [F + "::test_light_curve_time_order_and_detection_rule"]),
 ("depth-mad", "ezphot/photometry/depth.py", "mad = float(1.4826 * np.median(np.abs(flux - med)))", "mad = float(np.median(np.abs(flux - med)))", [F + "::test_blank_apertures_equal_direct_statistics"]),
 ("depth-area", "ezphot/photometry/depth.py", "area = math.pi * d * d / 4.0", "area = math.pi * d * d / 2.0", [F + "::test_blank_apertures_equal_direct_statistics"]),
 ("depth-ul", "ezphot/photometry/depth.py", "-2.5 * math.log10(5 * model) + zp if model > 0", "-2.5 * math.log10(3 * model) + zp if model > 0", [F + "::test_blank_apertures_equal_direct_statistics"]),
 ("depth-touch", "ezphot/photometry/depth.py", "touched = dy[:, None] ** 2 + dx[None, :] ** 2 < radius * radius", "touched = dy[:, None] ** 2 + dx[None, :] ** 2 < (radius - 1) ** 2", [F + "::test_blank_apertures_equal_direct_statistics"]),
 ("browser-hidden", "ezphot/utils/databrowser.py", 'if name.startswith(".") and not pattern.startswith("."):', 'if name.startswith(".") and pattern.startswith("."):', [F + "::test_browser_matches_glob_on_hidden_and_folder_names"]),
 ("browser-isfile", "ezphot/utils/databrowser.py", "if _matches(entry.name, pattern) and entry.is_file():", "if _matches(entry.name, pattern):", [F + "::test_browser_matches_glob_on_hidden_and_folder_names"]),
 ("export-overwrite", "ezphot/dataobjects/catalog.py", "if path.exists() and not overwrite:", "if path.exists() and overwrite:", [F + "::test_write_refuses_to_overwrite_unless_asked"]),
 ("conv-nu-sqrt", "ezphot/sextractor/convfilter.py", "nu = math.sqrt(float((self.kernel ** 2).sum())) / float(self.kernel.sum())", "nu = float((self.kernel ** 2).sum()) / float(self.kernel.sum())", ["tests/test_convfilter.py"]),
 ("conv-mexhat", "ezphot/sextractor/convfilter.py", "- 0.5 * np.exp(-r2 / (4 * s * s))", "- 0.5 * np.exp(-r2 / (2 * s * s))", ["tests/test_convfilter.py"]),
 ("conv-tophat-size", "ezphot/sextractor/convfilter.py", "n = 2 * math.ceil((fwhm - 1.0) / 2.0) + 1", "n = 2 * math.ceil(fwhm / 2.0) + 1", ["tests/test_convfilter.py"]),
 ("profile-gain-tol", "ezphot/profiles.py", "abs(float(egain) - p.egain) <= 0.1 * p.egain", "abs(float(egain) - p.egain) <= 0.01 * p.egain", [F + "::test_profile_from_a_measured_gain"]),
 ("profile-comment", "ezphot/profiles.py", 'line = line.split("#", 1)[0].strip()', "line = line.strip()", ["tests/test_images_profiles.py"]),
 ("cli-off-y", "ezphot/cli.py", "(y >= -0.5) & (y < ny - 0.5)", "(y >= -0.5) & (y < nx - 0.5)", [F + "::test_cli_forced_position_off_in_y_only"]),
 ("cli-workers0", "ezphot/cli.py", "    if value < 1:", "    if value < 0:", ["tests/test_hostile_inputs.py::test_cli_bad_numbers_exit_2_before_any_work"]),
 ("dask-resume", "ezphot/batch.py", "resume=resume, pure=False)", "resume=False, pure=False)", [F + "::test_dask_resume_skips_and_no_resume_remeasures"]),
 ("batch-reuse-damaged", "ezphot/batch.py", 'if resume and state.state == "ok":', 'if resume and state.state != "missing":', ["tests/test_resume_provenance.py"]),
 ("detect-thresh", "ezphot/photometry/detect.py", "out[y0:y1] = detection_sigma * rms[y0:y1]", "out[y0:y1] = rms[y0:y1]", [F + "::test_photutils_detection_equals_the_pipeline_called_directly"]),
 ("detect-gain", "ezphot/photometry/detect.py", "error = _total_error(data, rms, gain if gain else np.inf)\n            table = _measure(", "error = _total_error(data, rms, np.inf)\n            table = _measure(", [F + "::test_photutils_detection_equals_the_pipeline_called_directly"]),
 ("detect-kronmin", "ezphot/photometry/detect.py", "kron_params=(kron_factor, _KRON_MIN / kron_factor, 0.0))", "kron_params=(kron_factor, _KRON_MIN, 0.0))", [F + "::test_photutils_detection_equals_the_pipeline_called_directly"]),
 ("detect-masked", "ezphot/photometry/detect.py", "        d[b] = 0.0\n", "        pass\n", [F + "::test_photutils_detection_equals_the_pipeline_called_directly"]),
 ("detect-threshold-col", "ezphot/photometry/detect.py", 't["THRESHOLD"] = detection_sigma * local * u.ct', 't["THRESHOLD"] = local * u.ct', [F + "::test_photutils_detection_equals_the_pipeline_called_directly"]),
 ("detect-local-round", "ezphot/photometry/detect.py", "ix = np.clip(np.round(x).astype(int), 0, rms_at.shape[1] - 1)", "ix = np.clip(np.floor(x).astype(int), 0, rms_at.shape[1] - 1)", [F + "::test_photutils_detection_equals_the_pipeline_called_directly"]),
 ("detect-magerr", "ezphot/photometry/detect.py", "magerr = np.where(flux > 0, 2.5 / math.log(10) * err / flux, np.nan)", "magerr = np.where(flux > 0, 2.5 * err / flux, np.nan)", [F + "::test_photutils_detection_equals_the_pipeline_called_directly"]),
 ("geom-theta", "ezphot/photometry/geometry.py", "theta = np.arctan2(ay_, ax_)", "theta = np.arctan2(ax_, ay_)", [F + "::test_sky_ellipse_on_oblong_pixels"]),
 ("geom-b-axis", "ezphot/photometry/geometry.py", "b_pix = b * np.hypot(bx_, by_)", "b_pix = b * np.hypot(ax_, ay_)", [F + "::test_sky_ellipse_on_oblong_pixels"]),
 ("circmask-window", "ezphot/masks.py", "    r_pix = radius_arcsec / scale * 1.2 + 2", "    r_pix = radius_arcsec / img.pixelscale * 1.2 + 2", [F + "::test_circular_sky_mask_on_oblong_pixels"]),
 ("bkg-odd-reflect", "ezphot/background.py", 'reflect_type="odd"', 'reflect_type="even"', [R + "::test_background_of_a_plane_is_the_plane"]),
 ("depth-edge", "ezphot/photometry/depth.py", "    edge = radius + 1 if edge is None else edge", "    edge = radius - 1 if edge is None else edge", [F + "::test_blank_apertures_equal_direct_statistics"]),
 ("tutorial-circle", "ezphot/visualization.py", "ax.add_patch(Circle((px, py), radius_arcsec / scale_px,", "ax.add_patch(Circle((px, py), radius_arcsec / scale_px / 2,", ["tests/test_tutorial.py"]),
 ("cal-clip", "ezphot/calibration.py", "        new = np.abs(pull) <= sigma * scale", "        new = np.ones_like(pull, bool)", ["tests/test_calibration.py::test_zero_point_robust_to_outliers_blends_saturation"]),
 ("cal-birge", "ezphot/calibration.py", "        zp_err *= math.sqrt(chi2 if n >= _BIRGE_MIN else max(chi2, 1.0))", "        pass", ["tests/test_calibration.py::test_zero_point_recovered"]),
 ("cal-sign", "ezphot/calibration.py", "        delta = ref_mag[use] - inst[use]", "        delta = ref_mag[use] + inst[use]", ["tests/test_calibration.py::test_zero_point_recovered"]),
 ("cal-colour-start", "ezphot/calibration.py", "    keep = np.abs(pull) <= sigma * max(", "    keep = np.abs(pull) >= 0 * max(", ["tests/test_calibration.py::test_multiband_field_reference_and_colour_term"]),
 ("cal-isolation", "ezphot/calibration.py", "    keep[np.unique(me[bad])] = False", "    pass", ["tests/test_calibration.py::test_isolation_excludes_blends_in_forced_catalogue"]),
 ("cal-gaia-err", "ezphot/calibration.py", "                e = 2.5 / math.log(10) * _as_float(raw[f\"{band}_flux_error\"]) \\", "                e = 2.5 * _as_float(raw[f\"{band}_flux_error\"]) \\", ["tests/test_calibration.py::test_reference_files_and_survey_mappings"]),
 ("depth-formula", "ezphot/calibration.py", "    flux5 = 0.5 * (a + math.sqrt(a * a + 4 * snr**2 * var))", "    flux5 = 0.5 * (a + math.sqrt(a * a + 4 * snr * var))", ["tests/test_calibration.py::test_depth_of_calibrated_catalogue"]),
 ("depth-given-zp", "ezphot/photometry/common.py", "    fill_depth(catalog, zeropoint, header=img.header, source=source)", "    pass", ["tests/test_calibration.py::test_depth_from_given_zero_point"]),
 ("lc-calibrated", "ezphot/photometry/lightcurve.py", '        t[f"MAG_APER{s}"] = t[f"MAG_APER{s}_CAL"] if r else t[f"MAG_APER{s}"] + zp', '        pass', ["tests/test_calibration.py::test_calibrated_light_curve"]),
 ("cli-cal-exit1", "ezphot/cli.py", "            print(f\"failed  {path}: {exc}\")", "            return 0", ["tests/test_calibration.py::test_cli_calibrate"]),
# confusion term (issue 15, fourth wave)
 ("conf-centre-rule", "ezphot/photometry/depth.py", "    oy, ox = np.nonzero(off[:, None] ** 2 + off[None, :] ** 2 <= (radius + 0.5) ** 2)", "    oy, ox = np.nonzero(off[:, None] ** 2 + off[None, :] ** 2 <= (radius - 0.5) ** 2)", ["tests/test_confusion_seeing.py::test_centre_placement_is_the_disk_rule"]),
 ("conf-se", "ezphot/photometry/depth.py", "    s2_err = math.sqrt(max(mu4 - s2 * s2, 0.0) / n)", "    s2_err = math.sqrt(max(mu4 - s2 * s2, 0.0) / (2 * n))", ["tests/test_confusion_seeing.py::test_excess_scatter_statistics"]),
 ("conf-noclip", "ezphot/photometry/depth.py", "    kept = sigma_clip(flux, sigma=CONFUSION_CLIP, maxiters=10, masked=False)", "    kept = flux", ["tests/test_confusion_seeing.py::test_excess_scatter_statistics"]),
 ("conf-none", "ezphot/photometry/depth.py", '"sigma_conf": math.sqrt(excess) if excess > 0 else 0.0}', '"sigma_conf": 0.0}', ["tests/test_confusion_seeing.py::test_confusion_term_added_in_quadrature"]),
# zero point given as a header keyword (issue 13)
 ("zp-key-resume", "ezphot/photometry/common.py", '    if isinstance(opts.get("zeropoint"), str):', "    if False:", ["tests/test_zeropoint_keyword.py::test_batch_resume_key_holds_the_keyword_value"]),
 ("zp-key-source", "ezphot/photometry/common.py", '    source = getattr(zeropoint, "source", "zeropoint")', '    source = "zeropoint"', ["tests/test_zeropoint_keyword.py::test_keyword_is_the_number_it_names"]),
 ("zp-ellip-depth", "ezphot/photometry/forced.py", "                          targets=targets, unit=unit, zeropoint=zeropoint)", "                          targets=targets, unit=unit)", ["tests/test_zeropoint_keyword.py::test_keyword_is_the_number_it_names"]),
 ("zp-key-logical", "ezphot/_validate.py", "        if isinstance(raw, bool | np.bool_):", "        if False:", ["tests/test_zeropoint_keyword.py::test_header_reading_is_shared"]),
 ("zp-cli", "ezphot/cli.py", "                   aperture_diameter_arcsec=args.aperture_arcsec, zeropoint=args.zeropoint)", "                   aperture_diameter_arcsec=args.aperture_arcsec)", ["tests/test_zeropoint_keyword.py::test_cli_zeropoint_keyword"]),
 ("lc-arg-error", "ezphot/photometry/lightcurve.py", '        raise ArgumentError(f"zeropoint has', '        raise ValueError(f"zeropoint has', ["tests/test_zeropoint_keyword.py::test_light_curve_errors"]),
 ("watchdog-off", "ezphot/photometry/detect.py", "    threading.Thread(target=watch, daemon=True, name=\"ezphot-caller-watchdog\").start()", "    pass", ["tests/test_worker_watchdog.py"]),
 # the whole-frame sky of forced photometry (issue 13)
 ("sky-plan", "ezphot/photometry/forced.py", "    est.plan(px[usable], py[usable], extent)", "    pass", [S + "::test_every_position_gets_the_same_sky"]),
 ("sky-plan-threshold", "ezphot/photometry/forced.py", "        if area >= 0.15 * ny * nx:", "        if area >= 0.0:", [S + "::test_every_position_gets_the_same_sky"]),
 ("spline-band", "ezphot/background.py", "        ka, kb = int(self._y_first[y0:y1].min()), int(self._y_last[y0:y1].max()) + 1", "        ka, kb = int(self._y_first[y0:y1].min()), int(self._y_last[y0:y1].max())", [S + "::test_mesh_spline_boxes_are_scipys_spline"]),
 # ctime: a rewrite whose mtime was put back (the mtime alone is now covered by the ctime)
 ("sky-cache-ctime", "ezphot/photometry/forced.py", "            st.st_ctime_ns)", "            0)", [H + "::test_rewrite_with_mtime_put_back_is_not_served"]),
 ("sky-cache-reopen", "ezphot/photometry/forced.py", "            self.img.close()", "            pass", [H + "::test_pixels_of_a_replaced_file_never_stored_as_the_new_ones"]),
 ("sky-cache-empty", "ezphot/photometry/forced.py", "    if isinstance(sky_cache, str) and not sky_cache.strip():", "    if False:", [H + "::test_empty_sky_cache_is_refused"]),
 ("sky-cache-gone", "ezphot/photometry/forced.py", "        if not self.path.parent.is_dir():", "        if False:", [H + "::test_vanished_cache_directory_is_not_remade"]),
 ("sky-cache-grid", "ezphot/photometry/forced.py", "                or mesh.shape != grid or spread.dtype != np.float64:", "                or spread.dtype != np.float64:", [H + "::test_entry_of_another_mesh_grid_is_not_used"]),
 ("multiband-hdu", "ezphot/multiband.py", "        paths = [_label(img) for img in imgs]", "        paths = [str(img.path) for img in imgs]", [H + "::test_multiband_measures_the_hdu_it_was_given"]),
 ("multiband-link", "ezphot/multiband.py", "            key = (st.st_dev, st.st_ino, img.hdu)", "            key = (img.path, img.hdu)", [H + "::test_multiband_refuses_one_file_under_two_names"]),
 ("multiband-no-frame", "ezphot/multiband.py", "                          np.int32).reshape(shape)", "                          ).reshape(shape)", [H + "::test_band_whose_only_frame_fails_is_skipped"]),
 ("sky-cache-key", "ezphot/photometry/forced.py", "        if key != self.key or mesh.dtype != np.float64 or mesh.shape != spread.shape \\", "        if mesh.dtype != np.float64 or mesh.shape != spread.shape \\", [S + "::test_damaged_or_foreign_entry"]),
 ("multiband-sky", "ezphot/multiband.py", "        sky = {\"sky_cache\": str(run)} if run is not None else {}", "        sky = {}", ["tests/test_multiband.py::test_failed_sky_preparation_changes_nothing"]),
]

# Mutants judged equivalent (no test can tell them apart on real data): listed, never run.
EQUIVALENT = [
 # m1 is the shift of the clipped mean in the last pass, ~1e-2 ADU once the clip has
 # converged: sqrt(m2 + m1^2) and sqrt(m2 - m1^2) differ by ~1e-8 relative on a 7DT sky
 ("clip-spread", "ezphot/background.py", "    return centre + m1, np.sqrt(np.maximum(m2 - m1**2, 0.0)), n", "    return centre + m1, np.sqrt(np.maximum(m2 + m1**2, 0.0)), n"),
 # fnmatch.fnmatch applies os.path.normcase, a no-op on POSIX: identical on Linux
 ("browser-case", "ezphot/utils/databrowser.py", "    return fnmatch.fnmatchcase(name, pattern)", "    return fnmatch.fnmatch(name, pattern)"),
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
