"""3-D convolution of a volume: convcli against scipy.ndimage, in one process, same input.

    python benchmarks/volume.py                  # a 256^3 float32 volume
    python benchmarks/volume.py --quick          # 96^3, one run, for a smoke run
    python benchmarks/volume.py --out docs/volume.md

Cases: a sigma-2 Gaussian (17x17x17, separable: ``scipy.ndimage.gaussian_filter`` against
``convcli.convolve(v, "gaussian:sigma=2,ndim=3", channel_axis=None)``) and a 5x5x5 random
kernel (not separable: ``scipy.ndimage.convolve``), both with the reflect boundary, on the
convcli backends ``--backends`` names (default ``auto,scipy,opencv``; those not installed are
left out). Best of 3 wall times; each result is
checked against scipy's (the largest difference is shown).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def best(work, runs: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - t0)
    assert result is not None
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--backends",
        default="auto,scipy,opencv",
        help="convcli backends to run, comma-separated (torch on a CPU takes minutes here)",
    )
    args = parser.parse_args(argv)
    from scipy import ndimage

    import convcli
    from convcli.compute.backends import available

    n, runs = (96, 1) if args.quick else (256, 3)
    rng = np.random.default_rng(0)
    volume = rng.random((n, n, n), dtype=np.float32)
    kernel = rng.random((5, 5, 5)).astype(np.float32)
    backends = [b for b in args.backends.split(",") if b == "auto" or available(b)]
    cases = [
        (
            "Gaussian sigma 2 (17x17x17, separable)",
            lambda: ndimage.gaussian_filter(volume, 2.0),
            "scipy.ndimage.gaussian_filter",
            "gaussian:sigma=2,ndim=3",
        ),
        (
            "5x5x5 random kernel",
            lambda: ndimage.convolve(volume, kernel),
            "scipy.ndimage.convolve",
            kernel,
        ),
    ]
    lines = [
        f"# 3-D convolution, {n}^3 float32\n",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, numpy {np.__version__}. Best of {runs}.\n",
        "| case | tool | time | vs scipy.ndimage | method | max difference |",
        "|---|---|---:|---:|---|---:|",
    ]
    for title, reference, name, spec in cases:
        print(f"{title}: {name}", file=sys.stderr)
        ref_time, ref = best(reference, runs)
        lines.append(f"| {title} | {name} | {ref_time * 1000:.0f} ms | 1.00 | | |")
        for backend in backends:
            print(f"{title}: convcli {backend}", file=sys.stderr)
            took, got = best(
                lambda b=backend, k=spec: convcli.convolve(volume, k, channel_axis=None, backend=b),
                runs,
            )
            from convcli.compute.backends import get_backend
            from convcli.compute.boundary import Boundary
            from convcli.compute.plan import Options
            from convcli.compute.volume import plan_volume_kernel
            from convcli.kernels.registry import for_ndim, get_kernel

            chosen = get_backend(backend, boundary=Boundary.REFLECT, fill=0.0)
            leaf = for_ndim(get_kernel(spec) if isinstance(spec, str) else convcli.Kernel(spec), 3)
            step = plan_volume_kernel(leaf, Options(), (n, n, n), chosen.name, np.float32)
            diff = float(np.max(np.abs(got - ref)))
            lines.append(
                f"| | convcli `{backend}` ({chosen.name}) | {took * 1000:.0f} ms | "
                f"{ref_time / took:.2f}x | {step.method} | {diff:.1e} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
