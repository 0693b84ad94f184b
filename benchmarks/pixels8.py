"""8-bit RGB in and out, in process: ``convcli.filter_image`` against OpenCV on uint8.

    python benchmarks/pixels8.py            # the 12 MP photo, about 2 minutes
    python benchmarks/pixels8.py --quick    # a 1 MP crop, one round

For ``sobel-x`` (3x3), ``gaussian:size=5`` (5x5) and ``gaussian:sigma=2`` (17x17) on the
12 MP photo (benchmarks/data.py), each round times, in turns: ``convcli.filter_image``; the
same call on the general path (planes split, float32 filtering, mapped and merged: what every
kernel took before the integer path, which computes integer kernels from the interleaved
samples); ``cv2.filter2D`` / ``cv2.sepFilter2D`` on the uint8 image with ``ddepth=-1``
(OpenCV's own 8-bit path, rounding and saturating inside). Ratios are medians over rounds of
the ratio within a round. The last column is how many samples differ from the general path's
(the integer path must give 0) and from OpenCV's 8-bit output (which for float kernels
rounds its own float sums, off by one level at some pixels).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import common
import numpy as np

import convcli
from convcli.compute.engine import Options, as_operation
from convcli.compute.image import plan_image
from convcli.compute.pixels import Filtered, PixelOptions
from convcli.io.rows import ArrayRows

KERNELS = ("sobel-x", "gaussian:size=5", "gaussian:sigma=2")


def photo(quick: bool) -> np.ndarray:
    from PIL import Image

    path = common.HERE / "_data" / "big" / "photo12mp.tif"
    if not path.exists():
        sys.exit(f"{path} is missing: run python benchmarks/data.py first")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(rgb[:1000, :1000]) if quick else rgb


def general(rgb: np.ndarray, spec: str) -> np.ndarray:
    """filter_image's numbers on the general path (no integer path)."""
    job = plan_image(ArrayRows(rgb), as_operation(spec), PixelOptions(), options=Options())
    job = replace(job, exact=None)
    return job.collect(Filtered(np.empty(0), None))


def opencv_call(rgb: np.ndarray, spec: str):  # type: ignore[no-untyped-def]
    """OpenCV's uint8 filter for the kernel as convcli applies it (flipped: convolution;
    convcli's reflect boundary is OpenCV's BORDER_REFLECT)."""
    import cv2

    kernel = as_operation(spec)
    k = kernel.as_2d()[::-1, ::-1]
    border = cv2.BORDER_REFLECT
    if kernel.rank == 1 and min(k.shape) > 1 and "gaussian" in spec:
        col, row = kernel.factors[0]
        row32 = np.ascontiguousarray(row[::-1], np.float32)
        col32 = np.ascontiguousarray(col[::-1], np.float32)
        return "cv2.sepFilter2D", lambda: cv2.sepFilter2D(rgb, -1, row32, col32, borderType=border)
    k32 = np.ascontiguousarray(k, np.float32)
    return "cv2.filter2D", lambda: cv2.filter2D(rgb, -1, k32, borderType=border)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=15, help="rounds per kernel (default 15)")
    args = parser.parse_args(argv)
    rgb = photo(args.quick)
    rounds = 1 if args.quick else args.rounds
    report = common.Report("convcli benchmarks: 8-bit RGB in and out")
    h, w = rgb.shape[:2]
    report.add(f"## 8-bit RGB in and out, in process: {w}x{h}x3 uint8 ({h * w / 1e6:.0f} MP)")
    report.add()
    report.add(
        "Median ms over interleaved rounds; ratios are medians of the per-round ratio against "
        "OpenCV's uint8 call (target: convcli within 1.2x). 'general path' is filter_image "
        "without the integer path (planes split, float32, mapped, merged)."
    )
    report.add()
    rows = []
    for spec in KERNELS:
        peer_name, peer = opencv_call(rgb, spec)
        calls = {
            "convcli": lambda spec=spec: convcli.filter_image(rgb, spec),
            "general": lambda spec=spec: general(rgb, spec),
            "opencv": peer,
        }
        print(f"pixels8: {spec} ...", file=sys.stderr, flush=True)
        times = common.interleaved(calls, rounds, budget=10.0 if args.quick else 50.0)
        ours = convcli.filter_image(rgb, spec).pixels
        diff_general = int(np.count_nonzero(ours != general(rgb, spec)))
        diff_cv = int(np.count_nonzero(ours != peer()))
        rows.append(
            (
                spec,
                peer_name,
                common.fmt_ms(common.median(times["opencv"])),
                common.fmt_ms(common.median(times["general"])),
                common.fmt_ms(common.median(times["convcli"])),
                common.fmt_ratio(common.paired_ratio(times, "general", "opencv")),
                common.fmt_ratio(common.paired_ratio(times, "convcli", "opencv")),
                len(times["convcli"]),
                f"{diff_general} / {diff_cv}",
            )
        )
    report.table(
        [
            "kernel",
            "OpenCV uint8",
            "OpenCV ms",
            "general path ms",
            "convcli ms",
            "general / OpenCV",
            "convcli / OpenCV",
            "rounds",
            "samples differing from general / OpenCV",
        ],
        rows,
    )
    report.write(args.out, "python benchmarks/pixels8.py" + (" --quick" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
