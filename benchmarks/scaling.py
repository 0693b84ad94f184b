"""Scaling: ``convcli.convolve`` against the best of ``cv2.filter2D``,
``scipy.signal.fftconvolve`` and ``scipy.signal.oaconvolve`` over image and kernel sizes.

    python benchmarks/scaling.py              # 1, 4, 16 MP; kernels 3..255: about 5 minutes
    python benchmarks/scaling.py --big        # adds one 64 MP point per kernel kind
    python benchmarks/scaling.py --quick      # 0.25 and 1 MP, one round

A float32 plane (seeded noise: the arithmetic does not depend on the values), zero fill
outside (the boundary all three peers share: ``boundary="fill"``, ``BORDER_CONSTANT``,
scipy's zero padding), ``same`` output. Kernels: a Gaussian (sigma = size / 6: separable,
rank 1) and a random one (non-separable, full rank) of 3, 15, 63 and 255 taps a side.
Each point times every tool in turns (balanced orders, medians); ``convcli / best`` is the
median of the per-round ratio of convcli to the fastest peer of that round (target: at most
1.3x), and ``method`` is what convcli's chooser picked. ``--methods`` also times convcli with
every ``--method`` forced, to check the chooser's costs.
"""

from __future__ import annotations

import argparse
import sys

import common
import numpy as np

SIZES_MP = (1, 4, 16)
KERNEL_SIDES = (3, 15, 63, 255)


def plane(mp: float) -> np.ndarray:
    h = round((mp * 1e6 * 3 / 4) ** 0.5)
    w = round(mp * 1e6 / h)
    return np.random.default_rng(int(mp * 100)).random((h, w), dtype=np.float32)


def kernel(kind: str, side: int) -> np.ndarray:
    """The kernel as float64 (convcli takes it so; the peers get the same numbers in
    float32). The Gaussian is convcli's own, found separable (rank 1)."""
    if kind == "gaussian":
        import convcli

        return convcli.get_kernel(f"gaussian:size={side},sigma={side / 6:g}").as_2d()
    return np.random.default_rng(side).standard_normal((side, side)) / side


def calls(x: np.ndarray, k: np.ndarray, methods: bool) -> dict[str, object]:
    import cv2
    from scipy import signal

    import convcli

    flipped = np.ascontiguousarray(k[::-1, ::-1], np.float32)  # filter2D correlates
    k32 = k.astype(np.float32)
    kh, kw = k.shape
    anchor = (kw // 2, kh // 2)
    out = {
        "convcli": lambda: convcli.convolve(x, k, boundary="fill"),
        "cv2.filter2D": lambda: cv2.filter2D(
            x, -1, flipped, anchor=anchor, borderType=cv2.BORDER_CONSTANT
        ),
        "fftconvolve": lambda: signal.fftconvolve(x, k32, mode="same"),
        "oaconvolve": lambda: signal.oaconvolve(x, k32, mode="same"),
    }
    if methods:
        rank = convcli.Kernel(k).rank
        for m in ("direct", "separable", "fft"):
            if m == "separable" and rank > 4:
                continue  # hundreds of 1-D passes: minutes, and never the choice
            out[f"convcli {m}"] = lambda m=m: convcli.convolve(x, k, boundary="fill", method=m)
    return out


PEERS = ("cv2.filter2D", "fftconvolve", "oaconvolve")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--big", action="store_true", help="add a 64 MP point per kernel kind")
    parser.add_argument("--methods", action="store_true", help="time every --method as well")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from convcli.compute.backends import get_backend
    from convcli.compute.engine import Options, as_operation
    from convcli.compute.evaluate import StripEngine

    sizes: tuple[float, ...] = (0.25, 1) if args.quick else SIZES_MP
    sides = (3, 15) if args.quick else KERNEL_SIDES
    points = [(mp, kind, side) for mp in sizes for kind in ("gaussian", "random") for side in sides]
    if args.big and not args.quick:
        points += [(64, "gaussian", 63), (64, "random", 63)]
    report = common.Report("convcli benchmarks: scaling")
    report.add("## Scaling: float32 plane, zero fill, same output; convcli against the best peer")
    report.add()
    report.add(
        "Median ms over interleaved rounds; 'convcli / best' is the median per-round ratio to "
        "the fastest of cv2.filter2D, fftconvolve and oaconvolve (target: at most 1.3x)."
    )
    report.add()
    rows = []
    worst = 0.0
    for mp, kind, side in points:
        x = plane(mp)
        k = kernel(kind, side)
        fns = calls(x, k, args.methods)
        # calls of a few ms take more rounds for a steady median (the first ones after the
        # warm-up still fault in fresh pages); the budget bounds them
        rounds = args.rounds * 5 if mp < 4 else args.rounds if mp < 16 else max(2, args.rounds - 1)
        rounds = 1 if args.quick else rounds
        print(f"scaling: {mp} MP {kind} {side}x{side} ...", file=sys.stderr, flush=True)
        times = common.interleaved(fns, rounds, budget=20.0, least=1 if mp >= 16 else 2)  # type: ignore[arg-type]
        ratios = [t / min(times[p][i] for p in PEERS) for i, t in enumerate(times["convcli"])]
        ratio = common.median(ratios)
        worst = max(worst, ratio)
        backend = get_backend("auto", boundary=Options.make(boundary="fill").boundary, fill=0.0)
        engine = StripEngine(
            as_operation(k), Options.make(boundary="fill"), backend, x.shape, dtype=np.float32
        )
        method = engine.steps()[0].plan.method
        best_peer = min(PEERS, key=lambda p: common.median(times[p]))
        row = [
            f"{x.size / 1e6:.0f}" if x.size >= 1e6 else f"{x.size / 1e6:.2f}",
            kind,
            f"{side}x{side}",
            method,
            *(common.fmt_ms(common.median(times[n])) for n in ("convcli", *PEERS)),
            best_peer,
            common.fmt_ratio(ratio),
        ]
        if args.methods:
            row += [
                common.fmt_ms(common.median(times[f"convcli {m}"]))
                if f"convcli {m}" in times
                else "—"
                for m in ("direct", "separable", "fft")
            ]
        rows.append(row)
    headers = [
        "MP",
        "kernel",
        "size",
        "convcli method",
        "convcli ms",
        "cv2.filter2D ms",
        "fftconvolve ms",
        "oaconvolve ms",
        "best peer",
        "convcli / best",
    ]
    if args.methods:
        headers += ["forced direct ms", "forced separable ms", "forced fft ms"]
    report.table(headers, rows)
    report.add(f"Worst point: {worst:.2f}x the best peer.")
    command = "python benchmarks/scaling.py" + (" --quick" if args.quick else "")
    report.write(args.out, command + (" --big" if args.big else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
