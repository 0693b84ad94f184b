"""The batch against its floor: ``convcli apply -j 2`` over the 200 photos, against the
fastest ways to do the same in Python, and against decoding and encoding alone.

    python benchmarks/floor.py            # 200 photos, 3 interleaved rounds: about 2 minutes
    python benchmarks/floor.py --quick    # 20 photos, one round

``gaussian:sigma=2`` (17 taps each way), JPEG quality 90 (4:2:0) out, each row one whole
command timed from start to exit (start-up included) into a fresh folder:

* ``convcli apply -q -k gaussian:sigma=2 -r DIR -d OUT -j 2``;
* one Python process looping pyvips over the folder (``gaussblur(2, min_ampl=0.001)``,
  ``jpegsave(Q=90)``, ``VIPS_CONCURRENCY=2``: libvips's own threads on the 2 cores);
* a ``multiprocessing.Pool(2)`` of ``cv2.imread`` + ``cv2.sepFilter2D`` (uint8, the same 17
  taps, BORDER_REFLECT) + ``cv2.imwrite`` (q90), one OpenCV thread per worker;
* the same pool doing ``cv2.imread`` + ``cv2.imwrite`` only: the floor any tool that decodes
  and encodes these files with libjpeg-turbo pays.

Rounds go round the tools in a balanced order (each follows every other equally often);
the table shows the median seconds, images/s and the median of the per-round ratio to
convcli. Targets: convcli at most 1.15x the cv2 pool, and faster than the pyvips loop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import common
import numpy as np

SPEC = "gaussian:sigma=2"
QUALITY = 90


def _factors() -> tuple[np.ndarray, np.ndarray]:
    """convcli's gaussian:sigma=2 as OpenCV's row and column taps (flipped: convolution)."""
    import convcli

    col, row = convcli.get_kernel(SPEC).factors[0]
    return (
        np.ascontiguousarray(row[::-1], np.float32),
        np.ascontiguousarray(col[::-1], np.float32),
    )


def _cv2_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def _cv2_filter(job: tuple[str, str, np.ndarray, np.ndarray]) -> None:
    import cv2

    src, dst, row, col = job
    x = cv2.imread(src, cv2.IMREAD_COLOR)
    y = cv2.sepFilter2D(x, -1, row, col, borderType=cv2.BORDER_REFLECT)
    cv2.imwrite(dst, y, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])


def _cv2_copy(job: tuple[str, str, np.ndarray, np.ndarray]) -> None:
    import cv2

    src, dst = job[0], job[1]
    cv2.imwrite(dst, cv2.imread(src, cv2.IMREAD_COLOR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])


def child(kind: str, src: str, dst: str) -> int:
    """One tool's whole run (this script started again as a child)."""
    files = sorted(Path(src).glob("*.jpg"))
    if kind == "pyvips":
        import pyvips

        for f in files:
            image = pyvips.Image.new_from_file(str(f), access="sequential")
            image.gaussblur(2, min_ampl=0.001).jpegsave(
                str(Path(dst) / f.name), Q=QUALITY, subsample_mode="on"
            )
        return 0
    import multiprocessing

    row, col = _factors()
    jobs = [(str(f), str(Path(dst) / f.name), row, col) for f in files]
    work = _cv2_filter if kind == "cv2" else _cv2_copy
    with multiprocessing.get_context("fork").Pool(2, initializer=_cv2_init) as pool:
        pool.map(work, jobs, chunksize=4)
    return 0


def _have_pyvips() -> bool:
    try:
        import pyvips  # noqa: F401
    except Exception:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also time convcli from this source tree (e.g. a worktree of an older commit's "
        "src/), interleaved with the rest",
    )
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)
    photos = common.HERE / "_data" / "photos"
    files = sorted(photos.glob("*.jpg"))
    if len(files) < 200:
        sys.exit(f"{photos} is missing photos: run python benchmarks/data.py first")
    files = files[:20] if args.quick else files
    rounds = 1 if args.quick else args.rounds
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    tools: dict[str, tuple[list[str], dict[str, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="convcli-floor-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for f in files:  # read once: every tool finds them in the page cache
            shutil.copyfile(f, src / f.name)
        out = Path(tmp) / "out"
        tools["convcli -j 2"] = (
            [
                *common.convcli_cmd(),
                "apply",
                "-q",
                "-k",
                SPEC,
                "-r",
                str(src),
                "-d",
                "{out}",
                "-j",
                "2",
            ],
            {},
        )
        if args.before:
            ours = tools["convcli -j 2"][0][len(common.convcli_cmd()) :]
            tools["convcli -j 2 (before)"] = (
                [sys.executable, "-m", "convcli", *ours],
                {"PYTHONPATH": str(Path(args.before).resolve())},
            )
        if _have_pyvips():
            tools["pyvips loop (2 threads)"] = (
                [*me, "pyvips", str(src), "{out}"],
                {"VIPS_CONCURRENCY": "2"},
            )
        tools["cv2 Pool(2): read + sepFilter2D + write"] = ([*me, "cv2", str(src), "{out}"], {})
        tools["cv2 Pool(2): read + write (the floor)"] = ([*me, "copy", str(src), "{out}"], {})
        names = list(tools)
        times: dict[str, list[float]] = {n: [] for n in names}
        errors: dict[str, str] = {}
        for r in range(rounds):
            for name in common.round_order(names, r):
                print(f"floor: round {r + 1}: {name}", file=sys.stderr, flush=True)
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                cmd, env = tools[name]
                m = common.run_cmd([c.replace("{out}", str(out)) for c in cmd], env=env)
                if not m.ok:
                    errors[name] = common._last_line(m.stderr) or f"exit {m.rc}"
                    continue
                if len(list(out.iterdir())) < len(files):
                    errors[name] = "wrote fewer files than it read"
                times[name].append(m.seconds)
    report = common.Report("convcli benchmarks: the batch at its floor")
    report.add(f"## Batch at the floor: {len(files)} JPEG photos, `{SPEC}`, JPEG q90 out")
    report.add()
    report.add(
        f"Whole commands, median of {rounds} interleaved round(s); 'vs convcli' is the median "
        "of the per-round ratio convcli / tool (above 1: convcli is slower)."
    )
    report.add()
    rows = []
    ours = times["convcli -j 2"]
    for name in names:
        t = times[name]
        if not t:
            rows.append((name, "—", "—", "—", errors.get(name, "no run")))
            continue
        ratio = common.median([a / b for a, b in zip(ours, t, strict=False)]) if ours else None
        rows.append(
            (
                name,
                common.fmt_s(common.median(t)),
                f"{len(files) / common.median(t):.1f}",
                common.fmt_ratio(ratio),
                errors.get(name, ""),
            )
        )
    report.table(["tool", "seconds", "images/s", "convcli / tool", "note"], rows)
    report.write(args.out, "python benchmarks/floor.py" + (" --quick" if args.quick else ""))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
