"""``fit`` and ``deconvolve`` on a 12 MP photograph (benchmarks/data.py's), in-process, with
scikit-image's deconvolutions on the same inputs and parameters as the peers, and writes
docs/restore.md.

    python benchmarks/restore.py [--runs 1] [--iterations 10]

Measured: fitting a 3x3 and a 7x7 kernel (least squares) from the photo and its blurred copy
(gray, and RGB sharing one kernel), and the fitted kernel's largest error; Richardson-Lucy
(``--iterations``, default 10) and Wiener on the gray photo, against skimage.restoration's,
and the largest difference between the two, relative to the result's range.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import common
import data
import numpy as np

import convcli
from convcli.compute.deconvolve import richardson_lucy, wiener
from convcli.compute.fit import FitOptions, fit_kernel


def _timed(call: Callable[[], Any], runs: int) -> tuple[Any, float]:
    """What ``call`` returns, and its best time over ``runs`` runs."""
    results: list[Any] = []
    seconds, _ = common.time_call(lambda: results.append(call()), runs)
    return results[-1], seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=10, help="of Richardson-Lucy")
    args = parser.parse_args(argv)
    photo = convcli.read_image(data.make_big()["tif"])
    gray = np.round(photo @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    rows = []
    for name, spec, image in (
        ("3x3 sobel-x, gray", "sobel-x", gray),
        ("7x7 Gaussian, gray", "gaussian:size=7,sigma=1.5", gray),
        ("7x7 Gaussian, RGB shared", "gaussian:size=7,sigma=1.5", photo),
    ):
        kernel = convcli.get_kernel(spec)
        target = convcli.convolve(image, kernel, dtype=np.float64).astype(np.float32)
        options = FitOptions(size=kernel.shape)
        fitted, seconds = _timed(
            lambda i=image, t=target, o=options: fit_kernel([(i, t)], o), args.runs
        )
        error = float(np.max(np.abs(fitted.kernel.matrix - kernel.matrix)))
        rows.append([f"fit {name}", common.fmt_s(seconds), "", "", f"{error:.1e}"])
        print(" | ".join(rows[-1]), file=sys.stderr)
    psf = convcli.get_kernel("gaussian:sigma=2")
    plane = gray / 255.0
    blurred = convcli.convolve(plane, psf, boundary="fill", dtype=np.float64)
    from skimage import restoration

    n = args.iterations

    for name, ours, theirs in (
        (
            f"Richardson-Lucy, {n} iterations, gray",
            lambda: richardson_lucy(blurred, psf, n, boundary="fill"),
            lambda: restoration.richardson_lucy(blurred, np.array(psf.matrix), n, clip=False),
        ),
        (
            "Wiener, balance 0.01, gray",
            lambda: wiener(blurred, psf, 0.01, boundary="wrap"),
            lambda: restoration.wiener(blurred, np.array(psf.matrix), 0.01, clip=False),
        ),
    ):
        got, mine = _timed(ours, args.runs)
        want, peer = _timed(theirs, args.runs)
        diff = float(np.max(np.abs(got - want)) / np.ptp(want))
        rows.append(
            [
                name,
                common.fmt_s(mine),
                common.fmt_s(peer),
                common.fmt_ratio(peer / mine),
                f"{diff:.1e}",
            ]
        )
        print(" | ".join(rows[-1]), file=sys.stderr)
    table = common.md_table(
        ["12 MP (4000x3000)", "convcli", "skimage.restoration", "speed-up", "error"], rows
    )
    text = (
        "# fit and deconvolve on a 12 MP photograph\n\n"
        "Made by `python benchmarks/restore.py`. *error*: for fits, the fitted kernel's "
        "largest difference from the true one (float32 targets); for deconvolutions, the "
        "largest difference from scikit-image's result, relative to its range.\n\n"
        f"{table}\n\n{common.PRELIMINARY}\n\n{common.machine_markdown()}\n"
    )
    out = common.ROOT / "docs" / "restore.md"
    out.write_text(text)
    print(table)
    print(out, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
