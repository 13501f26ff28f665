"""The ``ezphot`` command: browse, photometry, forced, calibrate, multiband, demo.

Exit codes: 0 success; 1 some images failed; 2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import socket
import sys
from pathlib import Path

from . import __version__
from .photometry.registry import get_method, method_names

__all__ = ["main"]

log = logging.getLogger("ezphot.cli")


def _add_browse_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="data tree (e.g. scidata, or an absolute path)")
    for level in ("observatory", "telkey", "objname", "telname", "filter"):
        p.add_argument(f"--{level}", default=None, help=f"match this {level} (glob allowed)")
    p.add_argument("--pattern", default="*.fits", help="file-name glob (default: *.fits)")


def _browser(args):
    from .utils import DataBrowser

    b = DataBrowser(args.folder)
    for level in ("observatory", "telkey", "objname", "telname", "filter"):
        setattr(b, level, getattr(args, level))
    return b


def _floats(text: str) -> list[float]:
    """Comma-separated finite numbers."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _positive_floats(text: str) -> list[float]:
    """Comma-separated positive numbers (aperture diameters)."""
    values = _floats(text)
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _zeropoint(value: str):
    """A zero point: a finite number, or the header keyword that holds it (read per frame)."""
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        if not value or not value.replace("_", "").replace("-", "").isalnum():
            raise argparse.ArgumentTypeError(
                f"not a number or a header keyword: {value!r}") from None
        return value
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected a finite zero point, got {value!r}")
    return number


def _zeropoints(text: str):
    """A number, a header keyword, or comma-separated FILTER=VALUE (number or keyword)."""
    if "=" not in text:
        return _zeropoint(text)
    pairs = {}
    for item in text.split(","):
        band, sep, value = item.partition("=")
        if not sep or not band.strip():
            raise argparse.ArgumentTypeError(f"expected FILTER=VALUE pairs, got {item!r}")
        pairs[band.strip()] = _zeropoint(value)
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ezphot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version", version=f"ezphot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("browse", help="list frames of a data tree, or the values present")
    _add_browse_filters(p)
    p.add_argument("--keys", action="store_true", help="print the values present per level")

    p = sub.add_parser("photometry", help="detection photometry of every matching frame")
    _add_browse_filters(p)
    p.add_argument("--method", choices=method_names(detection=True), default="sextractor")
    p.add_argument("--detection-sigma", type=_positive_float, default=5.0)
    p.add_argument("--aperture-arcsec", type=_positive_floats, default=[5.0, 7.0, 10.0],
                   help="fixed aperture diameters, arcsec (comma-separated)")
    p.add_argument("--aperture-seeing", type=_positive_floats, default=[3.5, 4.5],
                   help="aperture diameters as multiples of the seeing (comma-separated)")
    _add_zeropoint_option(p)
    _add_run_options(p)

    p = sub.add_parser("forced", help="forced photometry at given positions on every frame")
    _add_browse_filters(p)
    p.add_argument("--ra", type=_floats, required=True, help="RA in degrees (comma-separated)")
    p.add_argument("--dec", type=_floats, required=True, help="Dec in degrees (comma-separated)")
    p.add_argument("--aperture-arcsec", type=_positive_floats, default=[5.0, 7.0, 10.0])
    p.add_argument("--aperture-seeing", type=_positive_floats, default=[])
    _add_zeropoint_option(p)
    _add_run_options(p)

    p = sub.add_parser("calibrate", help="zero points of catalogues from a reference file")
    p.add_argument("catalogs", nargs="+", type=Path, help="ezphot catalogues (.cat)")
    p.add_argument("--reference", type=Path, required=True,
                   help="reference catalogue file (FITS, ECSV, CSV, Parquet)")
    p.add_argument("--survey", default=None, help="column mapping: gaia, ps1, skymapper, apass")
    p.add_argument("--band", default=None, help="reference band (default: the filter)")
    p.add_argument("--column", default="AUTO", help="main column: AUTO, APER, APER_1, ...")
    p.add_argument("--match-radius", type=_positive_float, default=1.0, help="arcsec")
    p.add_argument("--output-suffix", default=".cal.cat",
                   help="output: the catalogue's path with .cat replaced by this")
    p.add_argument("--plot", action="store_true", help="also write <output>.png")

    p = sub.add_parser("multiband", help="one catalogue of a field in several filters: detect "
                       "on the deepest frame, forced photometry on every frame")
    _add_browse_filters(p)
    p.add_argument("--output", type=Path, required=True, help="catalogue file (.fits/.parquet)")
    p.add_argument("--overwrite", action="store_true", help="replace an ezphot catalogue there")
    p.add_argument("--detection-image", type=Path, default=None,
                   help="detect on this image (default: the deepest frame)")
    p.add_argument("--detection-sigma", type=_positive_float, default=3.0)
    p.add_argument("--aperture-arcsec", type=_positive_floats, default=[5.0])
    p.add_argument("--zeropoint", type=_zeropoints, default=None,
                   help="a number, a header keyword, or FILTER=VALUE pairs (comma-separated; "
                        "default: each frame's ZP keyword, else instrumental)")
    p.add_argument("--elliptical", action="store_true",
                   help="also measure the detections' Kron ellipses")
    _add_run_options(p)

    p = sub.add_parser("demo", help="generate sample 7DT-like frames and measure them")
    p.add_argument("--output", type=Path, default=Path("demo_output"))
    p.add_argument("--n-frames", type=_positive_int, default=4)
    p.add_argument("--full-size", action="store_true", help="9576x6388 frames (slow)")
    p.add_argument("--workers", type=_positive_int, default=None)
    return parser


def _add_zeropoint_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zeropoint", type=_zeropoint, default=0.0,
                   help="magnitude zero point: a number, or the header keyword that holds each "
                        "frame's (e.g. ZP; a frame without it fails); default 0: instrumental")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_positive_int, default=None, help="local worker processes")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786)")
    p.add_argument("--on-error", choices=["skip", "raise"], default="skip")
    p.add_argument("--no-resume", action="store_true", help="measure again even if done")


def _print_summary(summary) -> int:
    for row in summary:
        extra = row["error"] if row["status"] == "failed" else row["catalog"]
        reason = row["reason"] if "reason" in row.colnames else ""
        if reason.startswith("remeasured"):  # why a finished frame was measured again
            extra = f"{extra}  ({reason})"
        print(f"{row['status']:8s} {row['sources']:6d} {row['seconds']:8.2f}s  {row['image']}  "
              f"{extra}")
    failed = int((summary["status"] == "failed").sum()) if len(summary) else 0
    print(f"{len(summary)} images: {len(summary) - failed} ok, {failed} failed")
    return 1 if failed else 0


def _cmd_browse(args) -> int:
    b = _browser(args)
    if args.keys:
        for level, values in b.keys.items():
            print(f"{level}: {', '.join(values)}")
        return 0
    for path in b.search(args.pattern, return_type="path"):
        print(path)
    return 0


class _NoImage(Exception):
    """No image matched the command's filters (exit code 1)."""


def _check_scheduler(address: str | None, timeout: float = 5.0) -> None:
    """Refuse an unreachable Dask scheduler at once (Dask itself retries for a long time)."""
    if not address:
        return
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "tls"):
        return  # other transports: left to Dask
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--scheduler {address!r}: expected tcp://host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ValueError(f"--scheduler {address}: cannot connect "
                         f"({exc.strerror or exc})") from exc


def _search(args) -> list:
    browser = _browser(args)
    paths = browser.search(args.pattern, return_type="path")
    if not paths:
        filters = {k: getattr(args, k) for k in ("observatory", "telkey", "objname", "telname",
                                                  "filter") if getattr(args, k)}
        raise _NoImage(f"no image matches {args.pattern!r} under {browser.basepath}"
                       + (f" with {filters}" if filters else ""))
    return paths


def _cmd_photometry(args) -> int:
    from .batch import run_batch

    _check_scheduler(args.scheduler)
    paths = _search(args)
    options = dict(detection_sigma=args.detection_sigma,
                   aperture_diameter_arcsec=args.aperture_arcsec, zeropoint=args.zeropoint)
    if "aperture_diameter_seeing" in inspect.signature(get_method(args.method).func).parameters:
        options["aperture_diameter_seeing"] = args.aperture_seeing
    summary = run_batch(paths, args.method, workers=args.workers, scheduler=args.scheduler,
                        on_error=args.on_error, resume=not args.no_resume, **options)
    return _print_summary(summary)


def _cmd_forced(args) -> int:
    from .batch import run_batch

    if len(args.ra) != len(args.dec):
        raise ValueError(f"--ra has {len(args.ra)} values but --dec {len(args.dec)}")
    if not args.ra:
        raise ValueError("--ra and --dec give no position")
    if any(abs(d) > 90 for d in args.dec):
        raise ValueError(f"--dec must be within [-90, 90], got {args.dec}")
    _check_scheduler(args.scheduler)
    paths = _search(args)
    if not _report_off_positions(paths, args.ra, args.dec):
        raise _NoImage(f"none of the {len(args.ra)} position(s) falls on any of the "
                       f"{len(paths)} matching frame(s)")
    summary = run_batch(paths, "circular", workers=args.workers, scheduler=args.scheduler,
                        on_error=args.on_error, resume=not args.no_resume,
                        x=args.ra, y=args.dec, unit="coord",
                        aperture_diameter_arcsec=args.aperture_arcsec,
                        aperture_diameter_seeing=args.aperture_seeing, zeropoint=args.zeropoint)
    return _print_summary(summary)


def _report_off_positions(paths, ra: list[float], dec: list[float]) -> bool:
    """Warn (stderr) about positions on none of the frames (headers only); True when at
    least one position is on at least one frame, or when that cannot be told."""
    import numpy as np

    from .imageobjects import ScienceImage

    on_some = np.zeros(len(ra), dtype=bool)
    for path in paths:
        try:
            img = ScienceImage(path)
            wcs = img.wcs
        except Exception:  # an unreadable frame fails in the batch, with its own message
            return True
        if wcs is None:
            return True
        ny, nx = img.shape
        with np.errstate(invalid="ignore"):
            x, y = wcs.world_to_pixel_values(np.asarray(ra), np.asarray(dec))
            on_some |= (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    for i in np.flatnonzero(~on_some):
        print(f"ezphot forced: position {i} (RA {ra[i]}, Dec {dec[i]}) is on none of the "
              f"{len(paths)} frame(s)", file=sys.stderr)
    return bool(on_some.any())


def _cmd_multiband(args) -> int:
    from .multiband import MultibandError, multiband_catalog

    _check_scheduler(args.scheduler)
    paths = _search(args)
    try:
        catalog = multiband_catalog(
            paths, detection_image=args.detection_image,
            aperture_diameter_arcsec=args.aperture_arcsec, zeropoints=args.zeropoint,
            detection_sigma=args.detection_sigma, elliptical=args.elliptical,
            workers=args.workers, scheduler=args.scheduler, on_error=args.on_error,
            resume=not args.no_resume, output=args.output, overwrite=args.overwrite)
    except MultibandError as exc:  # the detection failed: a frame failed, not the arguments
        print(f"ezphot multiband: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:  # the output exists (without --overwrite)
        print(f"ezphot multiband: error: {exc} (use --overwrite)", file=sys.stderr)
        return 2
    for f in catalog.meta["filters"]:
        unit = "µJy, AB" if f["calibrated"] else "ADU, instrumental"
        print(f"{f['filter']:>6s}  {f['frames']} frame(s)  ({unit})")
    for image, error in catalog.meta["failed"]:
        print(f"failed  {image}  {error}")
    print(f"{len(catalog.data)} sources detected on {catalog.meta['detection']['image']}")
    print(f"Catalogue: {catalog.info.path}")
    return 1 if catalog.meta["failed"] else 0


def _cmd_demo(args) -> int:
    import numpy as np

    from .batch import run_batch
    from .dataobjects import Catalog
    from .datasets import FULL_SHAPE, make_sample_tree
    from .visualization import plot_catalog, save_figure

    out = args.output.absolute()
    scidata = out / "scidata"
    shape = FULL_SHAPE if args.full_size else (2048, 3072)
    existing = sorted(scidata.rglob("calib_*.fits")) if scidata.is_dir() else []
    if len(existing) >= args.n_frames:
        paths = existing[: args.n_frames]
        print(f"Using {len(paths)} sample frames already in {scidata}")
    else:
        print(f"Generating {args.n_frames} sample 7DT-like frames {shape[1]}x{shape[0]} in "
              f"{scidata}")
        paths = make_sample_tree(scidata, args.n_frames, shape=shape)
    summary = run_batch(paths, "sextractor", workers=args.workers, detection_sigma=3,
                        aperture_diameter_arcsec=[5, 7, 10], aperture_diameter_seeing=[2.5, 3.5],
                        resume=False)
    status = _print_summary(summary)
    done = [r for r in summary if r["status"] != "failed"]
    if done:
        from .imageobjects import ScienceImage

        catalog = Catalog(done[0]["catalog"])
        img = ScienceImage(done[0]["image"])
        t = catalog.data
        star = t[np.argmax(np.where(t["FLAGS"] == 0, t["FLUX_AUTO"], -np.inf))]
        pictures = [save_figure(plot_catalog(catalog), out / "sources.png"),
                    save_figure(img.show("coord")[0], out / "image_radec.png")]
        fig, _ = img.show_position(star["ALPHA_J2000"], star["DELTA_J2000"], unit="coord",
                                   radius_arcsec=5, zoom_radius_pixel=60)
        pictures.append(save_figure(fig, out / "star_aperture.png"))
        print(f"\nFirst catalogue: {done[0]['catalog']}")
        print(f"  {len(t)} sources; SKYVAL {t['SKYVAL'][0]:.1f} ADU, SKYSIG {t['SKYSIG'][0]:.2f} "
              f"ADU, seeing {catalog.info.seeing:.2f} arcsec")
        print("Pictures: " + ", ".join(str(p) for p in pictures))
    print(f"Results: catalogues (<frame>.fits.cat) beside the frames under {scidata}")
    return status


def _cmd_calibrate(args) -> int:
    """Calibrate each catalogue; exit 1 when some could not be calibrated."""
    from .calibration import ReferenceCatalog, calibrate, plot_calibration
    from .dataobjects import Catalog
    from .exceptions import CalibrationError
    from .visualization import save_figure

    if not args.output_suffix.endswith(".cat") or "/" in args.output_suffix:
        raise ValueError(f"--output-suffix must be a file-name ending in .cat, got "
                         f"{args.output_suffix!r}")
    # inputs checked before any work: every catalogue exists, the reference reads
    for c in args.catalogs:
        state = Catalog.check(c)
        if state.state in ("missing", "foreign", "damaged"):
            raise FileNotFoundError(f"{c}: {state.reason}") if state.state == "missing" \
                else ValueError(f"{c}: not a usable ezphot catalogue ({state.reason})")
    reference = ReferenceCatalog.read(args.reference, survey=args.survey)
    failed = 0
    for path in args.catalogs:
        out = path.with_name(path.name.removesuffix(".cat") + args.output_suffix)
        if out.resolve() == path.resolve():
            raise ValueError(f"{path}: the output would replace the input")
        try:
            cal = calibrate(Catalog(path), reference, band=args.band, column=args.column,
                            match_radius_arcsec=args.match_radius)
        except CalibrationError as exc:
            print(f"failed  {path}: {exc}")
            failed += 1
            continue
        cal.save(out)
        r = cal.meta["calibration"]["columns"][cal.meta["calibration"]["column"]]
        line = (f"ok      ZP_{cal.meta['calibration']['column']} {r['zp']:.4f} +- "
                f"{r['zp_err']:.4f} ({r['n_stars']} stars, {r['n_clipped']} clipped), depth "
                f"{cal.info.depth}  {out}")
        if args.plot:
            line += f"  {save_figure(plot_calibration(cal), str(out) + '.png')}"
        print(line)
    print(f"{len(args.catalogs)} catalogues: {len(args.catalogs) - failed} ok, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ezphot`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 ok, 1 some frames failed, 2 bad arguments or input, 130 interrupted.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="[%(levelname)s] %(name)s: %(message)s")
    from .exceptions import EzphotError

    handlers = {"browse": _cmd_browse, "photometry": _cmd_photometry, "forced": _cmd_forced,
                "multiband": _cmd_multiband, "demo": _cmd_demo}
    handlers["calibrate"] = _cmd_calibrate
    try:
        return handlers[args.command](args)
    except _NoImage as exc:
        print(f"ezphot {args.command}: {exc}", file=sys.stderr)
        return 1
    except (EzphotError, FileNotFoundError, ValueError) as exc:
        print(f"ezphot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ezphot {args.command}: interrupted; catalogues already written are complete, "
              "run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
