"""Speed and memory of ezphot, measured side by side with a reference in the same run.

    python benchmarks/run_benchmarks.py [core maps forced forced_scale batch inject save show
                                         detect calibrate multiband]
                                         [--frames-dir DIR] [--repeat 3]

Every figure is a ratio against a reference measured in this same run on the same full-size
(9576x6388) generated 7DT-like frame, so the numbers do not depend on the machine's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def full_frame(frames_dir: Path, seed: int = 0) -> Path:
    """A full-size frame (generated once, then reused)."""
    from ezphot.datasets import FULL_SHAPE, FrameSpec, make_frame

    spec = FrameSpec(shape=FULL_SHAPE)
    path = frames_dir / f"seed{seed}" / spec.file_name()
    if not path.is_file():
        t0 = time.perf_counter()
        make_frame(path, spec, seed=seed)
        print(f"  generated {path.name} in {time.perf_counter() - t0:.1f} s")
    return path


def child(code: str) -> dict:
    """Run code in a fresh interpreter; it prints one JSON line; add the peak RSS (bytes).

    The peak is VmHWM of /proc/self/status: unlike ru_maxrss it is not inherited from the
    (large) parent through fork and exec.
    """
    wrapper = (
        "import json\n" + code +
        "\nhwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "res['maxrss'] = int(hwm.split()[1]) * 1024\n"
        "print(json.dumps(res))\n")
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _conv_for_bare_run(cat, config: dict, d: Path) -> None:
    """The catalogue's detection kernel (its .conv lived in the removed run directory) written
    for the bare binary: the same filter, byte for byte (meta['detection_filter'])."""
    from ezphot.sextractor.convfilter import write_conv

    kernel = cat.meta.get("detection_filter", {}).get("kernel")
    if kernel is not None:
        config["FILTER_NAME"] = str(write_conv(d / "bare.conv", kernel))


def bench_core(frames_dir: Path, repeat: int) -> dict:
    """sex_photometry vs the bare binary with the same configuration; memory; import time."""
    from ezphot.imageobjects import ScienceImage
    from ezphot.methods import AperturePhotometry

    print("core: sex_photometry vs bare source-extractor (SExtractor background, 5 apertures)")
    path = full_frame(frames_dir)
    img = ScienceImage(path)
    frame_bytes = img.shape[0] * img.shape[1] * 4
    opts = dict(detection_sigma=5, aperture_diameter_arcsec=[5, 7, 10],
                aperture_diameter_seeing=[2.5, 3.5], save=False, visualize=False, verbose=False)
    ap = AperturePhotometry()
    cat = ap.sex_photometry(img, **opts)  # warm-up (binary lists cached, file in page cache)
    config = dict(cat.meta["sextractor_config"])
    wrapper_t, bare_t = [], []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "bare.param").write_text("\n".join(cat.meta["sextractor_parameters"]) + "\n")
        config.update(CATALOG_NAME=str(d / "bare.ldac"), PARAMETERS_NAME=str(d / "bare.param"))
        _conv_for_bare_run(cat, config, d)
        (d / "bare.sex").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
        for _ in range(repeat):  # alternate, so drifts in machine load hit both alike
            t0 = time.perf_counter()
            subprocess.run(["source-extractor", str(path), "-c", str(d / "bare.sex")],
                           check=True, capture_output=True)
            bare_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cat = ap.sex_photometry(img, **opts)
            wrapper_t.append(time.perf_counter() - t0)
    mem = child(
        "from ezphot.methods import AperturePhotometry\n"
        f"c = AperturePhotometry().sex_photometry({str(path)!r}, **{opts!r})\n"
        "res = {'sources': len(c.data)}")
    imp = [child("import time; t0 = time.perf_counter(); import ezphot, ezphot.methods, "
                 "ezphot.utils; res = {'s': time.perf_counter() - t0}")["s"] for _ in range(3)]
    result = {
        "frame": f"{img.shape[1]}x{img.shape[0]}",
        "sources": len(cat.data),
        "bare_binary_s": statistics.median(bare_t),
        "sex_photometry_s": statistics.median(wrapper_t),
        "ratio_wall_time": statistics.median(wrapper_t) / statistics.median(bare_t),
        "peak_rss_over_frame_bytes": mem["maxrss"] / frame_bytes,
        "import_ezphot_s": statistics.median(imp),
    }
    print(f"  {result['sources']} sources; bare binary {result['bare_binary_s']:.2f} s, "
          f"sex_photometry {result['sex_photometry_s']:.2f} s -> ratio "
          f"{result['ratio_wall_time']:.3f} (target <= 1.05)")
    print(f"  peak RSS of a process running sex_photometry: {mem['maxrss'] / 2**20:.0f} MiB = "
          f"{result['peak_rss_over_frame_bytes']:.2f} x frame bytes (target < 2)")
    print(f"  import ezphot: {result['import_ezphot_s']:.3f} s (target < 1)")
    return result


def bench_maps(frames_dir: Path, repeat: int) -> dict:
    """Background (vs photutils Background2D), source mask, sex_photometry with three maps."""
    import numpy as np
    from photutils.background import Background2D, MedianBackground

    from ezphot.imageobjects import ScienceImage
    from ezphot.methods import AperturePhotometry

    print("maps: calculate_bkg vs photutils Background2D; source mask; sex_photometry + maps")
    path = full_frame(frames_dir)
    img = ScienceImage(path)
    frame_bytes = img.shape[0] * img.shape[1] * 4
    data = np.asarray(img.data)
    ours_t, pu_t, single_t = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        img.calculate_bkg(box_size=256, filter_size=5, verbose=False)  # deep mask included
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        Background2D(data, 256, filter_size=5, bkg_estimator=MedianBackground())
        pu_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        img.calculate_bkg(box_size=256, filter_size=5, deep_mask=False, verbose=False)
        single_t.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    srcmask = img.calculate_sourcemask(sigma=5, verbose=False)
    mask_s = time.perf_counter() - t0
    bkg = img.calculate_bkg(srcmask, box_size=256, filter_size=5, verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    star = img.calculate_circularmask(x=img.shape[1] / 2, y=img.shape[0] / 2,
                                      radius_arcsec=300, unit="pixel", verbose=False)
    ap = AperturePhotometry()
    opts = dict(detection_sigma=5, aperture_diameter_arcsec=[5, 7, 10],
                aperture_diameter_seeing=[2.5, 3.5], save=False, visualize=False, verbose=False)
    cat = ap.sex_photometry(img, target_bkg=bkg, target_bkgrms=rms, target_mask=star, **opts)
    config = dict(cat.meta["sextractor_config"])
    wrapper_t, bare_t, inside_t = [], [], []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        # the bare binary gets the same three inputs, prepared beforehand (not timed)
        from ezphot.sextractor.imagerun import prepare_maps

        cfg = {}
        image_path = prepare_maps(img, d, str(path), cfg, bkg, rms, star, 60000)
        config.update({k: v for k, v in cfg.items() if k in ("WEIGHT_IMAGE",)})
        _conv_for_bare_run(cat, config, d)
        (d / "bare.param").write_text("\n".join(cat.meta["sextractor_parameters"]) + "\n")
        config.update(CATALOG_NAME=str(d / "bare.ldac"), PARAMETERS_NAME=str(d / "bare.param"))
        (d / "bare.sex").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(["source-extractor", image_path, "-c", str(d / "bare.sex")],
                           check=True, capture_output=True)
            bare_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run = ap.sex_photometry(img, target_bkg=bkg, target_bkgrms=rms, target_mask=star,
                                    **opts)
            wrapper_t.append(time.perf_counter() - t0)
            inside_t.append(run.meta["seconds_binary"])
            print(f"    bare {bare_t[-1]:.2f} s | sex_photometry {wrapper_t[-1]:.2f} s, of which "
                  f"the binary {run.meta['seconds_binary']:.2f} s")
    mem = child(
        "from ezphot.imageobjects import ScienceImage\n"
        "from ezphot.methods import AperturePhotometry\n"
        f"img = ScienceImage({str(path)!r})\n"
        "m = img.calculate_sourcemask(sigma=5, verbose=False)\n"
        "b = img.calculate_bkg(m, box_size=256, filter_size=5, verbose=False)\n"
        "r = img.calculate_bkgrms_from_propagation(b, verbose=False)\n"
        f"c = AperturePhotometry().sex_photometry(img, target_bkg=b, target_bkgrms=r, "
        f"target_mask=m, **{opts!r})\n"
        "res = {'sources': len(c.data)}")
    result = {
        "calculate_bkg_s": statistics.median(ours_t),
        "photutils_background2d_s": statistics.median(pu_t),
        "ratio_bkg_vs_photutils": statistics.median(ours_t) / statistics.median(pu_t),
        "calculate_bkg_single_pass_s": statistics.median(single_t),
        "sourcemask_s": mask_s,
        "bare_binary_with_maps_s": statistics.median(bare_t),
        "sex_photometry_with_maps_s": statistics.median(wrapper_t),
        "ratio_with_maps": statistics.median(wrapper_t) / statistics.median(bare_t),
        # the same binary runs inside the wrapper: what ezphot adds, free of the binary's noise
        "overhead_outside_binary_s": statistics.median(
            w - b for w, b in zip(wrapper_t, inside_t, strict=False)),
        "peak_rss_over_frame_bytes": mem["maxrss"] / frame_bytes,
    }
    print(f"  calculate_bkg(256, 5) {result['calculate_bkg_s']:.2f} s vs photutils Background2D "
          f"(median) {result['photutils_background2d_s']:.2f} s -> ratio "
          f"{result['ratio_bkg_vs_photutils']:.3f} (target <= 0.25; deep source mask included;"
          f" without it {result['calculate_bkg_single_pass_s']:.2f} s)")
    print(f"  calculate_sourcemask(sigma=5) {mask_s:.2f} s (target <= 3)")
    print(f"  sex_photometry with Background+Errormap+Mask "
          f"{result['sex_photometry_with_maps_s']:.2f} s vs bare binary with the same files "
          f"{result['bare_binary_with_maps_s']:.2f} s -> "
          f"ratio {result['ratio_with_maps']:.3f} (target <= 1.15); ezphot's own part "
          f"{result['overhead_outside_binary_s']:.2f} s = "
          f"{result['overhead_outside_binary_s'] / result['bare_binary_with_maps_s']:.3f} x bare")
    print(f"  peak RSS (mask, background, RMS, photometry): {mem['maxrss'] / 2**20:.0f} MiB = "
          f"{result['peak_rss_over_frame_bytes']:.2f} x frame bytes (target <= 3)")
    return result


def bench_forced(frames_dir: Path, repeat: int) -> dict:
    """Forced photometry: one position; 10,000 positions x 5 apertures vs photutils directly;
    photutils_photometry on the full frame."""
    import numpy as np
    from photutils.aperture import CircularAperture, aperture_photometry

    from ezphot.imageobjects import ScienceImage
    from ezphot.methods import AperturePhotometry

    print("forced: circular_photometry vs photutils aperture_photometry on the same arrays")
    path = full_frame(frames_dir)
    img = ScienceImage(path)
    bkg = img.calculate_bkg(box_size=256, filter_size=5, verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    ap = AperturePhotometry()
    opts = dict(target_bkg=bkg, target_bkgrms=rms, aperture_diameter_arcsec=[5, 7, 10],
                aperture_diameter_seeing=[2.5, 3.5], save=False, visualize=False, verbose=False)
    ap.circular_photometry(img, 4000.0, 3000.0, **opts)  # warm-up (imports)
    one = []
    for _ in range(max(5, repeat)):
        t0 = time.perf_counter()
        ap.circular_photometry(ScienceImage(path), 4000.0, 3000.0, **opts)
        one.append(time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    ny, nx = img.shape
    x, y = rng.uniform(20, nx - 20, 10000), rng.uniform(20, ny - 20, 10000)
    cat = ap.circular_photometry(img, x, y, **opts)
    radii = [d / 2 for d in cat.meta["aperture_diameter_pixel"]]
    # the reference: photutils on arrays prepared beforehand (subtracted data, error)
    data = np.asarray(img.data, dtype=np.float32) - bkg.data
    error = rms.data
    ours_t, ref_t = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ap.circular_photometry(img, x, y, **opts)
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = aperture_photometry(data, [CircularAperture(np.column_stack([x, y]), r=r)
                                         for r in radii], error=error)
        ref_t.append(time.perf_counter() - t0)
    # without maps: the tile estimate (deep-masked clipped mean) against the former one
    # (SExtractor's mode by sep, skew-corrected) on the same positions, same run
    from ezphot.photometry import forced

    no_maps = {k: v for k, v in opts.items() if k not in ("target_bkg", "target_bkgrms")}
    new_t, old_t = [], []
    former = forced._sky_source

    def mode_estimate(img_, bkg_, rms_, mask_, annulus_, *args, **kwargs):
        sky = former(img_, bkg_, rms_, mask_, annulus_, *args, **kwargs)
        if sky.estimate is not None:
            sky.estimate = forced._TileEstimate(img_, mask_, estimator="sextractor")
        return sky

    for _ in range(max(1, repeat // 2)):
        t0 = time.perf_counter()
        ap.circular_photometry(ScienceImage(path), x, y, **no_maps)
        new_t.append(time.perf_counter() - t0)
        forced._sky_source = mode_estimate
        try:
            t0 = time.perf_counter()
            ap.circular_photometry(ScienceImage(path), x, y, **no_maps)
            old_t.append(time.perf_counter() - t0)
        finally:
            forced._sky_source = former
    agree = float(np.max(np.abs(np.asarray(cat.data["FLUX_APER_2"]) -
                                np.asarray(ref["aperture_sum_2"])) /
                         np.abs(np.asarray(ref["aperture_sum_2"]) + 1e-9)))
    del data
    t0 = time.perf_counter()
    det = ap.photutils_photometry(img, save=False, visualize=False, verbose=False)
    phot_s = time.perf_counter() - t0
    result = {
        "one_position_s": statistics.median(one),
        "positions_10000_s": statistics.median(ours_t),
        "photutils_direct_s": statistics.median(ref_t),
        "ratio_10000_vs_photutils": statistics.median(ours_t) / statistics.median(ref_t),
        "max_rel_diff_vs_photutils": agree,
        "positions_10000_no_maps_s": statistics.median(new_t),
        "positions_10000_no_maps_former_s": statistics.median(old_t),
        "ratio_no_maps_vs_former": statistics.median(new_t) / statistics.median(old_t),
        "photutils_photometry_full_frame_s": phot_s,
        "photutils_photometry_sources": len(det.data),
    }
    print(f"  one position (5 apertures, maps given): {result['one_position_s'] * 1e3:.1f} ms "
          "(target <= 50 ms)")
    print(f"  10,000 positions x 5 apertures: {result['positions_10000_s']:.2f} s vs photutils "
          f"directly {result['photutils_direct_s']:.2f} s -> ratio "
          f"{result['ratio_10000_vs_photutils']:.3f} (target <= 1.2); fluxes agree to "
          f"{agree:.1e}")
    print(f"  10,000 positions x 5 apertures without maps: "
          f"{result['positions_10000_no_maps_s']:.2f} s vs the former tile estimate (sep mode) "
          f"{result['positions_10000_no_maps_former_s']:.2f} s -> ratio "
          f"{result['ratio_no_maps_vs_former']:.2f} (target <= 2)")
    print(f"  photutils_photometry on the full frame: {phot_s:.1f} s, {len(det.data)} sources "
          "(target <= 30 s)")
    return result


def bench_forced_scale(frames_dir: Path, repeat: int) -> dict:
    """Forced photometry of 10^4, 10^5 and 10^6 positions x 5 apertures on a full frame with
    maps (loaded from files): time per position and peak memory, each size in a fresh
    interpreter (peak RSS = VmHWM), side by side in this run."""
    from ezphot.imageobjects import ScienceImage

    print("forced_scale: circular_photometry of 1e4, 1e5, 1e6 positions x 5 apertures, maps given")
    path = full_frame(frames_dir)
    img = ScienceImage(path)
    bkg_path, rms_path = Path(f"{path}.bench.bkgmap"), Path(f"{path}.bench.bkgrms")
    if not (bkg_path.is_file() and rms_path.is_file()):
        bkg = img.calculate_bkg(box_size=256, filter_size=5, verbose=False)
        rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
        bkg.save(bkg_path)
        rms.save(rms_path)
        del bkg, rms
    ny, nx = img.shape
    frame_bytes = ny * nx * abs(int(img.header["BITPIX"])) // 8
    sizes = [10_000, 100_000, 1_000_000]
    runs = {}
    for n in sizes:
        code = f"""
import time, numpy as np
from ezphot.imageobjects import Background, Errormap, ScienceImage
from ezphot.photometry.forced import circular_photometry
img = ScienceImage({str(path)!r})
bkg, rms = Background({str(bkg_path)!r}), Errormap({str(rms_path)!r})
opts = dict(target_bkg=bkg, target_bkgrms=rms, aperture_diameter_arcsec=[5, 7, 10],
            aperture_diameter_seeing=[2.5, 3.5], save=False)
circular_photometry(img, [4000.0], [3000.0], **opts)  # warm-up (imports)
rss = lambda key: int([ln for ln in open('/proc/self/status')
                      if ln.startswith(key)][0].split()[1]) * 1024
before = rss('VmRSS')
rng = np.random.default_rng(0)
x, y = rng.uniform(-10, {nx} + 10, {n}), rng.uniform(-10, {ny} + 10, {n})
times, cpu = [], []
for _ in range({max(1, repeat) if n <= 100_000 else 1}):  # best of a few: a conservative ratio
    t0, c0 = time.perf_counter(), time.process_time()
    cat = circular_photometry(img, x, y, **opts)
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
    measured = int((np.asarray(cat.data['FLAGS']) == 0).sum())
    del cat
res = dict(n={n}, seconds=min(times), cpu_seconds=min(cpu), rss_before_call=before,
           measured=measured)
"""
        r = child(code)
        r["us_per_position"] = r["seconds"] / n * 1e6
        r["cpu_us_per_position"] = r["cpu_seconds"] / n * 1e6
        runs[n] = r
        print(f"  {n:>9,d} positions: {r['seconds']:8.1f} s, {r['us_per_position']:7.1f} us per "
              f"position ({r['cpu_us_per_position']:.1f} us CPU), peak RSS "
              f"{r['maxrss'] / 1e6:7.0f} MB ({r['maxrss'] / frame_bytes:.2f}x "
              f"the frame; {r['rss_before_call'] / 1e6:.0f} MB before the call)")
    lo, hi = runs[sizes[0]], runs[sizes[-1]]
    result = {
        "frame_bytes": frame_bytes,
        "runs": {str(n): r for n, r in runs.items()},
        "ratio_time_per_position_1e6_vs_1e4": hi["us_per_position"] / lo["us_per_position"],
        # CPU time: robust to other processes sharing the machine during the long 1e6 run
        "ratio_cpu_per_position_1e6_vs_1e4":
            hi["cpu_us_per_position"] / lo["cpu_us_per_position"],
        "peak_rss_1e6_vs_frame": hi["maxrss"] / frame_bytes,
        "peak_rss_increase_1e6_vs_frame": (hi["maxrss"] - hi["rss_before_call"]) / frame_bytes,
    }
    print(f"  time per position 1e6 / 1e4: {result['ratio_time_per_position_1e6_vs_1e4']:.3f} "
          f"wall, {result['ratio_cpu_per_position_1e6_vs_1e4']:.3f} CPU (target <= 1.3); peak "
          f"RSS at 1e6: {result['peak_rss_1e6_vs_frame']:.2f}x the frame "
          f"({frame_bytes / 1e6:.0f} MB; target <= 4), of which the call itself "
          f"{result['peak_rss_increase_1e6_vs_frame']:.2f}x")
    return result


def bench_batch(frames_dir: Path, repeat: int) -> dict:
    """8 full frames: 1 vs 2 local workers, Dask LocalCluster; memory of a worker; browsing.

    Must run under ``if __name__ == '__main__'`` (process pools use 'spawn').
    """
    import shutil

    import numpy as np
    from astropy.io import fits

    from ezphot.batch import run_batch
    from ezphot.datasets import FrameSpec, frame_header
    from ezphot.utils import DataBrowser

    print("batch: 8 full-size frames, 1 vs 2 local workers, Dask LocalCluster of 2")
    paths = [full_frame(frames_dir, seed) for seed in range(8)]
    opts = dict(detection_sigma=5, aperture_diameter_arcsec=[5, 7, 10],
                aperture_diameter_seeing=[2.5, 3.5], resume=False, progress=False)
    t0 = time.perf_counter()
    one = run_batch(paths, workers=1, **opts)
    t1 = time.perf_counter() - t0
    from distributed import Client, LocalCluster

    two_t, dask_t = [], []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(sum, [1]).result()  # workers up before the clock starts
        for _ in range(repeat):  # alternate, so drifts in machine state hit both alike
            t0 = time.perf_counter()
            two = run_batch(paths, workers=2, **opts)
            two_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dask = run_batch(paths, client=client, **opts)
            dask_t.append(time.perf_counter() - t0)
    t2, td = statistics.median(two_t), statistics.median(dask_t)
    assert all(s == "done" for s in list(one["status"]) + list(two["status"]) +
               list(dask["status"]))
    mem = child(
        "from ezphot.batch import process_image\n"
        f"row = process_image({str(paths[0])!r}, 'sextractor', "
        "{'detection_sigma': 5, 'aperture_diameter_arcsec': [5, 7, 10], "
        "'aperture_diameter_seeing': [2.5, 3.5]}, False)\n"
        "res = {'status': row['status']}")
    frame_bytes = 9576 * 6388 * 4
    # browsing: 1,000 small frames with 7DT headers in a 7DT tree
    tree = HERE / "output" / "browse"
    if not tree.is_dir() or len(list(tree.rglob("*.fits"))) < 1000:
        shutil.rmtree(tree, ignore_errors=True)
        for i in range(1000):
            spec = FrameSpec(shape=(16, 16), telname=f"7DT{1 + i % 20:02d}",
                             filter=["m400", "m600", "r", "g"][i % 4],
                             obsdate=f"2025-09-{1 + i % 28:02d}T0{i % 10}:00:{i % 60:02d}")
            d = spec.tree_dir(tree)
            d.mkdir(parents=True, exist_ok=True)
            fits.writeto(d / f"calib_{spec.telname}_{spec.objname}_{i:05d}_100.fits",
                         np.zeros((16, 16), np.float32), frame_header(spec))
    browse_t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = DataBrowser(tree).search("*.fits", return_type="science")
        browse_t.append(time.perf_counter() - t0)
    assert len(found) == 1000
    result = {
        "one_worker_s": t1, "two_workers_s": t2, "throughput_2_vs_1": t1 / t2,
        "dask_2_workers_s": td, "dask_vs_local_pool": td / t2,
        "worker_peak_rss_over_frame_bytes": mem["maxrss"] / frame_bytes,
        "browse_1000_headers_s": statistics.median(browse_t),
    }
    print(f"  1 worker {t1:.1f} s, 2 workers {t2:.1f} s -> throughput x{t1 / t2:.2f} "
          "(target >= 1.7)")
    print(f"  Dask LocalCluster(2) {td:.1f} s = {td / t2:.2f} x the local pool "
          "(target within 10 %)")
    print(f"  peak RSS of a worker measuring one frame: {mem['maxrss'] / 2**20:.0f} MiB = "
          f"{result['worker_peak_rss_over_frame_bytes']:.2f} x frame bytes (target <= 2.5)")
    print(f"  browsing 1,000 frame headers: {result['browse_1000_headers_s']:.2f} s (target <= 2)")
    return result


def bench_inject(frames_dir: Path, repeat: int) -> dict:
    """Injection-recovery of 500 stars (forced workflow) vs one forced-photometry call of 500
    positions plus one background map, in the same run."""
    import numpy as np

    from ezphot.imageobjects import ScienceImage
    from ezphot.photometry.forced import circular_photometry
    from ezphot.validation import injection_recovery

    print("inject: injection_recovery(500 stars, forced) vs circular_photometry(500) + "
          "calculate_bkg")
    path = full_frame(frames_dir)
    rng = np.random.default_rng(0)
    ny, nx = ScienceImage(path).shape
    x, y = rng.uniform(30, nx - 30, 500), rng.uniform(30, ny - 30, 500)
    ours_t, ref_t = [], []
    res = None
    for k in range(repeat):
        t0 = time.perf_counter()
        img = ScienceImage(path)
        img.calculate_bkg(verbose=False)
        circular_photometry(img, x, y, save=False)
        ref_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = injection_recovery(path, n_stars=500, workflow="forced", seed=k)
        ours_t.append(time.perf_counter() - t0)
    result = {
        "injection_recovery_500_s": statistics.median(ours_t),
        "forced_500_plus_bkg_s": statistics.median(ref_t),
        "ratio": statistics.median(ours_t) / statistics.median(ref_t),
        "psf": res.meta["psf"]["kind"],
        "mag50": res.mag50,
    }
    print(f"  injection-recovery of 500 stars: {result['injection_recovery_500_s']:.1f} s vs "
          f"forced 500 + background map {result['forced_500_plus_bkg_s']:.1f} s -> ratio "
          f"{result['ratio']:.2f} (target <= 3); PSF {result['psf']}, 50 % completeness at "
          f"{result['mag50']:.2f} (instrumental)")
    return result


def bench_save(frames_dir: Path, repeat: int) -> dict:
    """Saving a full-frame catalogue with CHECKSUM/DATASUM vs without, against one
    sex_photometry of the frame; and loading it back (checksum verified, as resume does)."""
    from ezphot.dataobjects import Catalog
    from ezphot.dataobjects import catalog as catalog_module
    from ezphot.methods import AperturePhotometry

    print("save: catalogue save with checksum vs without, relative to one sex_photometry")
    path = full_frame(frames_dir)
    opts = dict(detection_sigma=5, aperture_diameter_arcsec=[5, 7, 10],
                aperture_diameter_seeing=[2.5, 3.5], save=False, visualize=False, verbose=False)
    ap = AperturePhotometry()
    ap.sex_photometry(path, **opts)  # warm-up
    sexphot_t, with_t, without_t, load_t = [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "full.cat"
        for _ in range(repeat):
            t0 = time.perf_counter()
            cat = ap.sex_photometry(path, **opts)
            sexphot_t.append(time.perf_counter() - t0)
            for _ in range(3):  # alternate, so drifts in machine load hit both alike
                catalog_module._CHECKSUM = False
                t0 = time.perf_counter()
                cat.save(out)
                without_t.append(time.perf_counter() - t0)
                catalog_module._CHECKSUM = True
                t0 = time.perf_counter()
                cat.save(out)
                with_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                Catalog(out)
                load_t.append(time.perf_counter() - t0)
        size = out.stat().st_size
        # a crowded field: the same rows tiled to 50 000 sources (the checksum grows with bytes)
        from astropy.table import vstack

        big = Catalog(vstack([cat.data] * (50_000 // max(len(cat.data), 1) + 1))[:50_000],
                      info=cat.info, meta=cat.meta)
        big_with, big_without = [], []
        for _ in range(3):
            catalog_module._CHECKSUM = False
            t0 = time.perf_counter()
            big.save(out)
            big_without.append(time.perf_counter() - t0)
            catalog_module._CHECKSUM = True
            t0 = time.perf_counter()
            big.save(out)
            big_with.append(time.perf_counter() - t0)
        big_size = out.stat().st_size
    extra = statistics.median(with_t) - statistics.median(without_t)
    big_extra = statistics.median(big_with) - statistics.median(big_without)
    result = {
        "sources": len(cat.data), "columns": len(cat.data.colnames), "file_bytes": size,
        "sex_photometry_s": statistics.median(sexphot_t),
        "save_without_checksum_s": statistics.median(without_t),
        "save_with_checksum_s": statistics.median(with_t),
        "load_verified_s": statistics.median(load_t),
        "checksum_extra_over_sex_photometry": extra / statistics.median(sexphot_t),
        "big_rows": 50_000, "big_file_bytes": big_size,
        "big_save_without_checksum_s": statistics.median(big_without),
        "big_save_with_checksum_s": statistics.median(big_with),
        "big_checksum_extra_over_sex_photometry": big_extra / statistics.median(sexphot_t),
    }
    print(f"  {result['sources']} rows x {result['columns']} columns ({size / 2**20:.1f} MiB); "
          f"sex_photometry {result['sex_photometry_s']:.2f} s")
    print(f"  save {result['save_without_checksum_s'] * 1e3:.0f} ms without checksum, "
          f"{result['save_with_checksum_s'] * 1e3:.0f} ms with -> checksum adds "
          f"{100 * result['checksum_extra_over_sex_photometry']:.2f} % of a sex_photometry "
          "(target < 2 %)")
    print(f"  load with checksum verification: {result['load_verified_s'] * 1e3:.0f} ms")
    print(f"  50 000 rows ({big_size / 2**20:.1f} MiB): save "
          f"{result['big_save_without_checksum_s'] * 1e3:.0f} ms without checksum, "
          f"{result['big_save_with_checksum_s'] * 1e3:.0f} ms with -> adds "
          f"{100 * result['big_checksum_extra_over_sex_photometry']:.2f} % of a sex_photometry")
    return result


def bench_show(frames_dir: Path, repeat: int) -> dict:
    """``show('coord')`` of a full frame (binning, zscale, WCSAxes, drawing) vs plain
    matplotlib ``imshow`` of the same binned array (zscale norm, drawing), side by side."""
    from astropy.visualization import ImageNormalize, ZScaleInterval
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ezphot.imageobjects import ScienceImage
    from ezphot.visualization import bin_image

    print("show: show('coord') of a full frame vs plain imshow of the binned array")
    img = ScienceImage(full_frame(frames_dir))
    _ = img.data  # pixels loaded once: both sides draw from memory
    binned = bin_image(img.data, 4)

    def ours() -> None:
        fig, _ = img.show("coord")
        FigureCanvasAgg(fig)  # a plain Figure's base canvas draws nothing: render for real
        fig.canvas.draw()

    def plain(projection=None) -> None:
        fig = Figure(figsize=(8, 6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(projection=projection)
        im = ax.imshow(binned, origin="lower", cmap="gray",
                       norm=ImageNormalize(binned, interval=ZScaleInterval()))
        fig.colorbar(im, ax=ax, label="ADU")  # the same picture: show() has a colour bar
        fig.canvas.draw()

    def plain_wcs() -> None:  # what a user types: matplotlib + astropy's WCSAxes
        plain(img.wcs)

    ours(), plain(), plain_wcs()  # warm-up (WCS, fonts)
    ours_t, plain_t, wcs_t = [], [], []
    for _ in range(repeat):
        for f, ts in ((ours, ours_t), (plain_wcs, wcs_t), (plain, plain_t)):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
    result = {"show_coord_s": statistics.median(ours_t),
              "plain_imshow_wcsaxes_s": statistics.median(wcs_t),
              "plain_imshow_pixel_axes_s": statistics.median(plain_t)}
    result["ratio"] = result["show_coord_s"] / result["plain_imshow_wcsaxes_s"]
    print(f"  show('coord') {result['show_coord_s']:.2f} s (binning included) vs plain imshow "
          f"of the binned array on WCSAxes {result['plain_imshow_wcsaxes_s']:.2f} s -> ratio "
          f"{result['ratio']:.2f} (target <= 1.5); on pixel axes "
          f"{result['plain_imshow_pixel_axes_s']:.2f} s")
    return result


def bench_detect(frames_dir: Path, repeat: int) -> dict:
    """``photutils_photometry`` on a full frame with 1 and 2 processes vs the same photutils
    pipeline called directly (subtract, 3x3 filter, detect_sources, deblend_sources with 2
    processes, SourceCatalog and the properties ezphot reports), same maps, same run."""
    import numpy as np
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources
    from photutils.utils import calc_total_error
    from scipy.ndimage import convolve

    from ezphot.imageobjects import ScienceImage
    from ezphot.photometry.detect import photutils_photometry

    print("detect: photutils_photometry nproc=1 / nproc=2 vs photutils called directly")
    img = ScienceImage(full_frame(frames_dir))
    bkg = img.calculate_bkg(box_size=64, filter_size=3, verbose=False)
    rms = img.calculate_bkgrms_from_propagation(bkg, verbose=False)
    kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16.0
    sigma, npix = 1.5, 5
    radii = None
    phases: dict[str, float] = {}

    def ours(nproc: int) -> int:
        nonlocal radii
        cat = photutils_photometry(img, target_bkg=bkg, target_bkgrms=rms, nproc=nproc,
                                   detection_sigma=sigma, minarea_pixels=npix, save=False)
        radii = [d / 2 for d in cat.meta["aperture_diameter_pixel"]]
        return len(cat.data)

    def direct(nproc: int) -> int:
        t = [time.perf_counter()]
        data = np.asarray(img.data, dtype=np.float32) - bkg.data
        bad = ~np.isfinite(data)
        data[bad] = 0.0
        conv = convolve(data, kernel, mode="nearest")
        t.append(time.perf_counter())
        segm = detect_sources(conv, sigma * rms.data, n_pixels=npix, mask=bad)
        t.append(time.perf_counter())
        segm = deblend_sources(conv, segm, n_pixels=npix, n_levels=32, contrast=0.005,
                               n_processes=nproc, progress_bar=False)
        t.append(time.perf_counter())
        error = calc_total_error(data, rms.data, effective_gain=img.egain)
        cat = SourceCatalog(data, segm, error=error, mask=bad, wcs=img.wcs,
                            kron_params=(2.5, 3.5 / 2.5, 0.0))
        _ = cat.sky_centroid_icrs, cat.kron_flux, cat.kron_flux_err
        for r in radii:
            cat.circular_photometry(r)
        for name in ("semimajor_axis", "semiminor_axis", "orientation", "elongation",
                     "ellipticity", "kron_radius", "fwhm", "area", "max_value"):
            getattr(cat, name)
        cat.flux_radius(0.5)
        t.append(time.perf_counter())
        for k, name in enumerate(("subtract_filter", "detect", "deblend", "catalog")):
            phases[f"direct_{name}_s"] = t[k + 1] - t[k]
        return len(cat)

    one, two, ref = [], [], []
    n_ours = n_ref = 0
    for _ in range(repeat):
        for f, arg, ts in ((ours, 1, one), (ours, 2, two), (direct, 2, ref)):
            t0 = time.perf_counter()
            n = f(arg)
            ts.append(time.perf_counter() - t0)
            if f is ours:
                n_ours = n
            else:
                n_ref = n
    # the first nproc=2 call of a session also starts Python's fork server (photutils
    # imported once, overlapping the detection); the median is the steady state
    result = {"nproc1_s": statistics.median(one), "nproc2_s": statistics.median(two),
              "nproc2_first_call_s": two[0],
              "direct_nproc2_s": statistics.median(ref), "sources": n_ours,
              "direct_sources": n_ref, **phases}
    result["speedup_2_over_1"] = result["nproc1_s"] / result["nproc2_s"]
    result["ratio_to_direct"] = result["nproc2_s"] / result["direct_nproc2_s"]
    print(f"  {n_ours} sources ({n_ref} directly); nproc=1 {result['nproc1_s']:.1f} s, nproc=2 "
          f"{result['nproc2_s']:.1f} s -> speed-up {result['speedup_2_over_1']:.2f} (target >= "
          f"1.5); direct photutils (2 processes) {result['direct_nproc2_s']:.1f} s -> ratio "
          f"{result['ratio_to_direct']:.2f} (target <= 1.1); first nproc=2 call of the session "
          f"{two[0]:.1f} s")
    print("  direct phases: " + ", ".join(f"{k[7:-2]} {v:.1f} s" for k, v in phases.items()))
    return result


def bench_calibrate(frames_dir: Path, repeat: int) -> dict:
    """``calibrate`` of a full-frame catalogue against a 10^5-row reference file vs a direct
    astropy ``match_to_catalog_sky`` + ``sigma_clipped_stats`` median on the same data."""
    import numpy as np
    from astropy.coordinates import SkyCoord
    from astropy.stats import sigma_clipped_stats
    from astropy.table import Table

    from ezphot.calibration import ReferenceCatalog, calibrate
    from ezphot.photometry.sexphot import sex_photometry

    print("calibrate: calibrate() vs match_to_catalog_sky + sigma_clipped_stats (same files)")
    path = full_frame(frames_dir)
    truth = Table.read(f"{path}.truth.ecsv")
    cat = sex_photometry(path, detection_sigma=5, aperture_diameter_arcsec=[5, 7, 10],
                         aperture_diameter_seeing=[2.5, 3.5], save=False)
    # the frame's stars to 19 mag, then field stars over 3 x 3 deg around it: 10^5 rows
    rng = np.random.default_rng(0)
    st = truth[(truth["TYPE"] == "star") & (truth["MAG"] < 19)]
    n_more = 100_000 - len(st)
    ra0, dec0 = float(np.median(st["RA"])), float(np.median(st["DEC"]))
    ra = np.concatenate([st["RA"], ra0 + rng.uniform(-1.5, 1.5, n_more)
                         / np.cos(np.radians(dec0))])
    dec = np.concatenate([st["DEC"], dec0 + rng.uniform(-1.5, 1.5, n_more)])
    mag = np.concatenate([st["MAG"] + rng.normal(0, 0.02, len(st)),
                          rng.uniform(10, 19, n_more)])
    ref_table = Table({"ra": ra, "dec": dec, "m600_mag": mag,
                       "m600_mag_error": np.full(ra.size, 0.02)})
    with tempfile.TemporaryDirectory() as d:
        ref_path = Path(d) / "reference.fits"
        ref_table.write(ref_path)
        ours_t, ours_pre_t, ref_t, ref_pre_t = [], [], [], []

        def direct(table):
            sky = SkyCoord(cat.data["X_WORLD"], cat.data["Y_WORLD"], unit="deg")
            ref_sky = SkyCoord(table["ra"], table["dec"], unit="deg")
            idx, sep, _ = sky.match_to_catalog_sky(ref_sky)
            ok = sep.arcsec < 1.0
            delta = np.asarray(table["m600_mag"])[idx[ok]] - np.asarray(cat.data["MAG_AUTO"])[ok]
            return sigma_clipped_stats(delta[np.isfinite(delta)], sigma=3)[1]

        calibrate(cat, ReferenceCatalog.read(ref_path, survey="gaia"))  # warm-up
        direct(Table.read(ref_path))
        for _ in range(max(repeat, 3)):
            t0 = time.perf_counter()
            cal = calibrate(cat, ReferenceCatalog.read(ref_path, survey="gaia"))
            ours_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            zp_direct = direct(Table.read(ref_path))
            ref_t.append(time.perf_counter() - t0)
            # the same without reading the file (tables in memory)
            rc = ReferenceCatalog.read(ref_path, survey="gaia")
            t0 = time.perf_counter()
            calibrate(cat, rc)
            ours_pre_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            direct(ref_table)
            ref_pre_t.append(time.perf_counter() - t0)
    result = {"sources": len(cat), "reference_rows": len(ref_table),
              "calibrate_s": statistics.median(ours_t), "direct_s": statistics.median(ref_t),
              "calibrate_in_memory_s": statistics.median(ours_pre_t),
              "direct_in_memory_s": statistics.median(ref_pre_t),
              "zp_auto": cal.info.zp, "zp_direct_median": float(zp_direct),
              "n_stars": cal.meta["calibration"]["columns"]["AUTO"]["n_stars"]}
    result["ratio"] = result["calibrate_s"] / result["direct_s"]
    result["ratio_in_memory"] = result["calibrate_in_memory_s"] / result["direct_in_memory_s"]
    print(f"  {len(cat)} sources, {len(ref_table)} reference rows (FITS file): calibrate "
          f"{result['calibrate_s']:.3f} s (all {len(cal.meta['calibration']['columns'])} "
          f"columns, selection, isolation, depth) vs direct {result['direct_s']:.3f} s -> "
          f"ratio {result['ratio']:.2f} (target <= 1.5); tables in memory "
          f"{result['calibrate_in_memory_s']:.3f} vs {result['direct_in_memory_s']:.3f} s -> "
          f"{result['ratio_in_memory']:.2f}; ZP_AUTO {cal.info.zp:.4f} ({result['n_stars']} "
          f"stars) vs direct median {zp_direct:.4f}")
    return result



MULTIBAND_SHAPE = None  # None: full frames; a smaller (ny, nx) only to try the code quickly


def multiband_field(frames_dir: Path):
    """8 full-size frames of one field in 4 filters (2 per filter, the second shifted by
    30", -20"), generated once and reused."""
    from astropy.table import Table

    from ezphot.datasets import FULL_SHAPE, FrameSpec, make_multiband_field

    shape = MULTIBAND_SHAPE or FULL_SHAPE
    root = frames_dir / f"multiband_{shape[1]}x{shape[0]}"
    listing = root / "T00528.multiband.frames.ecsv"
    if listing.is_file():
        paths = [Path(p) for p in Table.read(listing)["PATH"]]
        if all(p.is_file() for p in paths):
            return paths
    t0 = time.perf_counter()
    field = make_multiband_field(root, ["m400", "m500", "m600", "m700"],
                                 spec=FrameSpec(shape=shape), frames_per_filter=2,
                                 pointings=[(0.0, 0.0, 0.0), (30.0, -20.0, 0.0)], seed=0)
    print(f"  generated 8 frames in {time.perf_counter() - t0:.0f} s")
    return field.paths


def bench_multiband(frames_dir: Path, repeat: int) -> dict:
    """multiband_catalog over 8 full-size frames in 4 filters: 1 vs 2 local workers.

    The whole call is timed: the choice of the deepest frame, the detection (one frame,
    serial; the 2 workers are started with the call, import meanwhile, and one of them makes
    the frames' whole-frame sky while it runs) and the forced
    photometry of every frame (the batch engine). ``resume=False``: every run measures
    everything again. The two catalogues must be equal column for column. Must run under
    ``if __name__ == '__main__'``.
    """
    import multiprocessing
    import tempfile

    import numpy as np

    from ezphot.multiband import multiband_catalog

    print("multiband: 8 full-size frames in 4 filters, 1 vs 2 local workers")
    paths = multiband_field(frames_dir)
    opts = dict(aperture_diameter_arcsec=[5, 7], zeropoints="EZZP", detection_sigma=3,
                resume=False, progress=False)
    one_t, two_t, one_cpu, two_cpu = [], [], [], []

    def cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    with tempfile.TemporaryDirectory() as d:
        for i in range(max(1, min(repeat, 2))):  # heavy: at most two pairs, alternated
            t0, c0 = time.perf_counter(), cpu()
            one = multiband_catalog(paths, workers=1, output=Path(d) / f"one{i}.fits", **opts)
            one_t.append(time.perf_counter() - t0)
            one_cpu.append(cpu() - c0)
            t0, c0 = time.perf_counter(), cpu()
            two = multiband_catalog(paths, workers=2, output=Path(d) / f"two{i}.fits", **opts)
            two_t.append(time.perf_counter() - t0)
            # the call returns while its idle workers finish exiting: reap them (their CPU
            # is counted here, and their exit does not overlap the next timed call)
            for p in multiprocessing.active_children():
                p.join()
            two_cpu.append(cpu() - c0)
    assert not one.meta["failed"] and not two.meta["failed"]
    assert one.data.colnames == two.data.colnames
    # the same catalogue: integers exactly; floats but for the rounding of the workers' one
    # BLAS thread against this process's several (~1e-4 ADU in the background map), measured
    # against each column's scale; magnitudes where defined (S/N >= 5)
    worst = 0.0
    for name in one.data.colnames:
        a, b = np.asarray(one.data[name]), np.asarray(two.data[name])
        if a.dtype.kind == "f":
            if name.startswith(("MAG_", "MAGERR_")):
                rest = name.split("_", 1)[1]
                flux, err = (np.asarray(one.data[f"{k}_{rest}"]) for k in ("FLUX", "FLUXERR"))
                with np.errstate(invalid="ignore"):
                    keep = np.abs(flux) >= 5 * err
                a, b = a[keep], b[keep]
            scale = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 0.0
            assert np.allclose(a, b, rtol=1e-6, atol=1e-7 * scale, equal_nan=True), name
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.abs(a - b) / max(scale, 1e-300)
            worst = max(worst, float(np.nanmax(rel, initial=0.0)))
        else:
            assert np.array_equal(a, b), name
    t1, t2 = statistics.median(one_t), statistics.median(two_t)
    # the phases (wall s) of both runs; the 2-worker run's serial part is the choice of the
    # deepest frame, the detection and the combination (its workers start meanwhile); its
    # frames' forced photometry shares the 2 workers
    ph1, ph2 = one.meta["timing"], two.meta["timing"]
    frames_s = sorted((f["seconds"] for f in one.meta["frames"]), reverse=True)
    serial = ph1["choice_s"] + ph1["detection_s"] + ph1["combine_s"]
    loads = [0.0, 0.0]
    for s in frames_s:  # longest first onto the less loaded worker
        loads[loads.index(min(loads))] += s
    bound = t1 / (serial + max(loads))
    # CPU seconds (this process and its children: workers, SExtractor) per wall second: the
    # 1-worker run already uses more than one core (numpy's BLAS threads in the background
    # maps), so 2 cores give at most 2 x t1 / CPU(2 workers)
    cpu1, cpu2 = statistics.median(one_cpu), statistics.median(two_cpu)
    result = {"frames": len(paths), "sources": len(one.data), "one_worker_s": t1,
              "two_workers_s": t2, "throughput_2_vs_1": t1 / t2,
              "phases_one_worker_s": ph1, "phases_two_workers_s": ph2,
              "serial_s": serial, "detection_s": ph1["detection_s"],
              "forced_per_frame_s": statistics.median(frames_s),
              "ideal_throughput_2_vs_1": bound, "cpu_one_worker_s": cpu1,
              "cpu_two_workers_s": cpu2, "cores_used_one_worker": cpu1 / t1,
              "cpu_bound_2_vs_1": 2 * t1 / cpu2, "max_relative_difference": worst,
              "load_average": os.getloadavg()[0], "sky_prepared": two.meta["sky_prepared"]}
    print(f"  {len(one.data)} sources x 8 frames; 1 worker {t1:.1f} s, 2 workers {t2:.1f} s "
          f"-> throughput x{t1 / t2:.2f} (target >= 1.7); catalogues equal (floats to "
          f"{worst:.1e} of the column scale)")
    for name, ph in (("1 worker ", ph1), ("2 workers", ph2)):
        print(f"  {name}: choice {ph['choice_s']:.1f} s, detection {ph['detection_s']:.1f} s, "
              f"forced {ph['forced_s']:.1f} s, combination {ph['combine_s']:.1f} s")
    print(f"  2 workers: {two.meta['sky_prepared']} of {len(paths)} frames' sky made while "
          "the detection ran")
    print(f"  1 worker: serial part {serial:.1f} s, forced photometry "
          f"{statistics.median(frames_s):.1f} s per frame -> with 2 idle cores at most "
          f"x{bound:.2f}; CPU {cpu1:.0f} s (x{cpu1 / t1:.2f} cores) vs {cpu2:.0f} s with 2 "
          f"workers -> at most x{2 * t1 / cpu2:.2f}; load average "
          f"{result['load_average']:.1f} on {os.cpu_count()} cores (other processes share "
          "them: the measured ratio is noisy)")
    return result


BENCHES = {"core": bench_core, "maps": bench_maps, "forced": bench_forced,
           "forced_scale": bench_forced_scale, "batch": bench_batch, "inject": bench_inject,
           "save": bench_save, "show": bench_show, "detect": bench_detect,
           "calibrate": bench_calibrate, "multiband": bench_multiband}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", default=list(BENCHES), choices=list(BENCHES))
    parser.add_argument("--frames-dir", type=Path, default=HERE / "output" / "frames")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    out = HERE / "output" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}  # keep other benches' figures
    for name in args.which:
        results[name] = BENCHES[name](args.frames_dir, args.repeat)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
