"""Print the before/after table of tests/test_background_accuracy.py (not a test).

    python -m tests._bkg_table [crowded] [sparse]
"""
import sys
import tempfile
import time
from pathlib import Path

from . import test_background_accuracy as T


class _Factory:
    def __init__(self, root):
        self.root = Path(root)

    def mktemp(self, name):
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p


def main(which):
    with tempfile.TemporaryDirectory() as d:
        for name in which:
            t0 = time.perf_counter()
            scn = T.make_scenario(_Factory(d), name, **T.SPECS[name])
            print(f"{name}: generated in {time.perf_counter() - t0:.1f} s; limit "
                  f"{scn['frame'].mag_limit:.2f} mag, {len(scn['xy_inj'])} injected, "
                  f"{len(scn['xy_blank'])} blank")
            for p in ("true_sky",) + T.PATHS:
                t0 = time.perf_counter()
                blank, rows = T.summary(scn, p)
                dt = time.perf_counter() - t0
                cells = " ".join(f"{a:g}\"/SN{lo}+: {v[0]:.3f} pull {v[1]:.2f} (n {v[2]})"
                                 if lo not in ("all", "interval")
                                 else f"{a:g}\" pulls {v[1]:.2f}" if lo == "all"
                                 else f"[{v[0]:.2f}, {v[1]:.2f}]"
                                 for (a, lo), v in rows.items())
                conf = T.measure(scn, p).get("confusion")
                if conf:
                    cells += " | term " + " ".join(
                        f"{c['diameter_pixel']:.1f}px ratio {c['ratio']:.3f}+-{c['ratio_err']:.3f}"
                        for c in conf["apertures"] if c.get("ratio") is not None)
                    cells += " | truth-blank " + " ".join(
                        f"{a:g}\" {e['ratio']:.3f}+-{e['ratio_err']:.3f}"
                        for a, e in T.measure(scn, p)["blank_excess"].items())
                print(f"  {p:15s} {dt:5.1f}s blank 5\" {blank[5.0]:+.3f} 10\" {blank[10.0]:+.3f} | "
                      f"{cells} | {T.measure(scn, p)['meta']}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["crowded", "sparse"])
