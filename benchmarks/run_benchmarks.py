"""Speed and memory of ezphot, measured side by side with a reference in the same run.

    python benchmarks/run_benchmarks.py [core] [--frames-dir DIR] [--repeat 3]

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


BENCHES = {"core": bench_core}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", default=list(BENCHES), choices=list(BENCHES))
    parser.add_argument("--frames-dir", type=Path, default=HERE / "output" / "frames")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for name in args.which:
        results[name] = BENCHES[name](args.frames_dir, args.repeat)
    out = HERE / "output" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
