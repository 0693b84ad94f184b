"""Batch benchmark: a Gaussian blur (sigma 2) over a folder of 200 JPEG photos, JPEG out.

Every row is one whole command, timed from start to exit (wall clock), over the same input
folder, writing JPEG quality 90 with 4:2:0 chroma subsampling into a fresh empty folder:

* ``convcli apply -k gaussian:sigma=2 -r DIR -d OUT -j 1`` and ``-j 2`` (17x17 kernel, radius
  ``int(4*sigma+0.5)`` = 8, run as two 1-D passes, reflect boundary);
* a plain Python loop in one process: Pillow decode, ``scipy.ndimage.gaussian_filter`` (float32,
  sigma 2, radius 8, reflect), round and clip, Pillow encode;
* ImageMagick ``mogrify -morphology Convolve Gaussian:8x2`` (the 2-D 17x17 kernel with sigma 2,
  as one 2-D pass, IM's default edge handling) and ``mogrify -blur 8x2`` (IM's separable
  Gaussian with the same radius and sigma);
* libvips, once per file two at a time (``xargs -P 2``, ``VIPS_CONCURRENCY=1``): ``vips conv``
  with the same 17x17 mask as a .mat file in integers (``round(k * 4096)``, scale their sum:
  libvips's vectorised integer path, one 2-D pass, within 1 level of the float result) and
  ``vips gaussblur 2 --min-ampl 0.001`` (separable, integer precision, 15 taps).
  ``--vips-float-2d`` adds ``vips conv --precision float`` with the float mask, left out by
  default because libvips's float convolution is not vectorised (about 1 s per photo).

Each tool runs best of 3 (1 run when its first run takes over 60 s); the runs go round the
tools in turn so that a burst of other load on the machine does not hit one tool only. The
inputs are read once before timing, so every tool finds them in the page cache.

    python benchmarks/batch.py [--quick] [--out docs/batch.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import common
import data
import numpy as np

SIGMA = 2.0
RADIUS = 8  # scipy's int(4 * sigma + 0.5): convcli's gaussian:sigma=2 is 17x17
SPEC = "gaussian:sigma=2"
QUALITY = 90
CHECKED = 8  # images compared with convcli's output for the "mean |diff|" column


@dataclass
class Tool:
    name: str
    measures: str
    command: Callable[[Path, list[Path], Path], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    missing: str = ""
    best: common.Best = field(default_factory=common.Best)
    diff: str = ""


def python_loop(src: Path, dst: Path) -> None:
    """The reference loop: what a user would write with Pillow and scipy, one process."""
    from PIL import Image
    from scipy import ndimage

    for path in sorted(src.glob("*.jpg")):
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"), dtype=np.float32)
        out = ndimage.gaussian_filter(pixels, (SIGMA, SIGMA, 0), mode="reflect", radius=RADIUS)
        result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        Image.fromarray(result).save(dst / path.name, format="JPEG", quality=QUALITY)


MASK_SCALE = 4096  # the integer .mat holds round(k * 4096), divided by its sum


def write_masks(folder: Path) -> dict[str, Path]:
    """convcli's gaussian:sigma=2 as vips matrix files ('width height scale offset', rows):
    the 17x17 mask in integers (``round(k * 4096)``, scale = their sum; vips's fast integer
    path) and in floats. vips correlates, so it gets the mask flipped (the same here)."""
    import convcli

    k = convcli.get_kernel(SPEC).as_2d()[::-1, ::-1]
    ki = np.rint(k * MASK_SCALE).astype(np.int64)
    paths = {"int": folder / "gauss17-int.mat", "float": folder / "gauss17-float.mat"}
    lines = [f"{k.shape[1]} {k.shape[0]} {int(ki.sum())} 0"]
    lines += [" ".join(str(int(v)) for v in row) for row in ki]
    paths["int"].write_text("\n".join(lines) + "\n")
    lines = [f"{k.shape[1]} {k.shape[0]} 1 0"]
    lines += [" ".join(repr(float(v)) for v in row) for row in k]
    paths["float"].write_text("\n".join(lines) + "\n")
    return paths


def vips_list(files: list[Path], out: Path, path: Path, last: str) -> Path:
    """An xargs list: input, output with save options, and a last argument, one a line."""
    items = []
    for f in files:
        items += [str(f), f"{out / f.name}[Q={QUALITY},subsample-mode=on]", last]
    path.write_text("\n".join(items) + "\n")
    return path


def make_tools(work: Path, masks: dict[str, Path], vips_float_2d: bool) -> list[Tool]:
    convcli = common.convcli_cmd()
    _, mogrify = common.imagemagick()
    vips = common.tool("vips")
    xargs = common.tool("xargs")
    me = [sys.executable, str(Path(__file__).resolve())]
    im_out = ["-quality", str(QUALITY), "-sampling-factor", "2x2"]

    def cc(jobs: int) -> Callable[[Path, list[Path], Path], list[str]]:
        return lambda d, f, o: [
            *convcli,
            "apply",
            "-q",
            "-k",
            SPEC,
            "-r",
            str(d),
            "-d",
            str(o),
            "-j",
            str(jobs),
        ]

    def vips_cmd(op: list[str], last: str) -> Callable[[Path, list[Path], Path], list[str]]:
        def build(d: Path, files: list[Path], o: Path) -> list[str]:
            lst = vips_list(files, o, work / f"list-{op[0]}.txt", last)
            return [str(xargs), "-a", str(lst), "-d", "\n", "-n", "3", "-P", "2", str(vips), *op]

        return build

    tools = [
        Tool("convcli -j 1", f"convcli apply -k {SPEC} -r DIR -d OUT -j 1", cc(1)),
        Tool("convcli -j 2", f"convcli apply -k {SPEC} -r DIR -d OUT -j 2", cc(2)),
        Tool(
            "Python loop: Pillow + scipy.ndimage",
            "one process: Image.open, gaussian_filter(float32, 2, radius=8), Image.save",
            lambda d, f, o: [*me, "--python-loop", str(d), str(o)],
        ),
        Tool(
            "ImageMagick mogrify -morphology",
            f"mogrify -path OUT -morphology Convolve Gaussian:{RADIUS}x2 (2-D 17x17) *.jpg",
            lambda d, f, o: [
                str(mogrify),
                "-path",
                str(o),
                "-morphology",
                "Convolve",
                f"Gaussian:{RADIUS}x{SIGMA:g}",
                *im_out,
                *map(str, f),
            ],
            missing="" if mogrify else "mogrify not found",
        ),
        Tool(
            "ImageMagick mogrify -blur",
            f"mogrify -path OUT -blur {RADIUS}x2 (separable) *.jpg",
            lambda d, f, o: [
                str(mogrify),
                "-path",
                str(o),
                "-blur",
                f"{RADIUS}x{SIGMA:g}",
                *im_out,
                *map(str, f),
            ],
            missing="" if mogrify else "mogrify not found",
        ),
        Tool(
            "libvips conv (17x17 .mat)",
            "xargs -P 2: vips conv IN OUT gauss17-int.mat --precision integer, once per file",
            vips_cmd(["conv", "--precision", "integer"], str(masks["int"])),
            env={"VIPS_CONCURRENCY": "1"},
            missing="" if vips and xargs else "vips or xargs not found",
        ),
        Tool(
            "libvips gaussblur",
            "xargs -P 2: vips gaussblur IN OUT 2 --min-ampl 0.001 (separable, integer, 15 taps)",
            vips_cmd(["gaussblur", "--min-ampl", "0.001"], f"{SIGMA:g}"),
            env={"VIPS_CONCURRENCY": "1"},
            missing="" if vips and xargs else "vips or xargs not found",
        ),
    ]
    if vips_float_2d:
        tools.append(
            Tool(
                "libvips conv float (17x17 .mat)",
                "xargs -P 2: vips conv IN OUT gauss17-float.mat --precision float, once per file",
                vips_cmd(["conv", "--precision", "float"], str(masks["float"])),
                env={"VIPS_CONCURRENCY": "1"},
                missing="" if vips and xargs else "vips or xargs not found",
            )
        )
    return tools


def _outputs_by_stem(folder: Path) -> dict[str, Path]:
    return {p.name.split(".")[0]: p for p in folder.iterdir() if p.suffix == ".jpg"}


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--count", type=int, default=200, help="photos in the folder (200)")
    parser.add_argument("--runs", type=int, default=3, help="best of N runs (3)")
    parser.add_argument(
        "--single-over",
        type=float,
        default=60.0,
        help="a tool whose first run takes longer than this many seconds runs once (60)",
    )
    parser.add_argument(
        "--vips-float-2d",
        action="store_true",
        help="add vips conv with the float 17x17 mask (slow: its float path is not vectorised)",
    )
    parser.add_argument("--python-loop", nargs=2, metavar=("DIR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.python_loop:
        python_loop(Path(args.python_loop[0]), Path(args.python_loop[1]))
        return 0
    count = 6 if args.quick else args.count
    runs = 1 if args.quick else args.runs

    data.make_photos(max(count, 12))
    files = data.photo_files()[:count]
    if len(files) < count:
        raise SystemExit(f"batch: only {len(files)} photos in {data.PHOTOS}")
    megapixels = []
    for f in files:
        from PIL import Image

        with Image.open(f) as im:
            megapixels.append(im.width * im.height / 1e6)

    report = common.Report("convcli batch benchmark")
    work = Path(tempfile.mkdtemp(prefix="convcli-bench-batch-"))
    try:
        src = work / "in"
        src.mkdir()
        for f in files:  # a folder holding exactly these photos (copies: in the page cache)
            shutil.copyfile(f, src / f.name)
        inputs = sorted(src.iterdir())
        tools = make_tools(work, write_masks(work), args.vips_float_2d)
        reference: dict[str, np.ndarray] = {}
        for rep in range(runs):
            for t in tools:
                if t.missing or t.best.error:
                    continue
                if rep > 0 and (t.best.seconds or 0) > args.single_over:
                    continue
                out = work / f"out-{rep}-{tools.index(t)}"
                out.mkdir()
                m = common.run_cmd(t.command(src, inputs, out), env=t.env or None)
                written = len(_outputs_by_stem(out))
                if m.ok and written != len(inputs):
                    m.rc, m.stderr = 1, f"wrote {written} of {len(inputs)} files"
                t.best.add(m)
                print(
                    f"  run {rep + 1}: {t.name}: "
                    + (f"{m.seconds:.2f} s" if m.ok else f"failed: {t.best.error}"),
                    file=sys.stderr,
                    flush=True,
                )
                if rep == 0 and m.ok:
                    t.diff = _compare(out, inputs, reference)
                shutil.rmtree(out)
        _report(report, tools, len(inputs), megapixels, runs, args.single_over)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cmd = "python benchmarks/batch.py" + (" --quick" if args.quick else "")
    report.write(args.out, cmd)
    return 0


def _compare(out: Path, inputs: list[Path], reference: dict[str, np.ndarray]) -> str:
    """Mean absolute difference from convcli's output (8-bit levels) over the first images;
    the first tool to run (convcli -j 1) sets the reference."""
    found = _outputs_by_stem(out)
    diffs = []
    for f in inputs[:CHECKED]:
        stem = f.name.split(".")[0]
        image = _load(found[stem])
        if stem not in reference:
            reference[stem] = image
            continue
        ref = reference[stem]
        if ref.shape != image.shape:
            return "size differs"
        diffs.append(float(np.mean(np.abs(image - ref))))
    return f"{np.mean(diffs):.2f}" if diffs else "(reference)"


def _report(
    report: common.Report,
    tools: list[Tool],
    n: int,
    megapixels: list[float],
    runs: int,
    single_over: float,
) -> None:
    sources = data.photo_sources()
    report.add("## Batch: gaussian:sigma=2 over a folder of JPEG photos")
    report.add()
    report.add(
        f"{n} JPEG photos of {min(megapixels):.2f}-{max(megapixels):.2f} MP "
        f"({sum(megapixels):.0f} MP in all): random crops and rescales of {len(sources)} real "
        f"photographs that ship with scikit-image ({', '.join(sources)}; see "
        "benchmarks/data.py). JPEG quality 90 4:2:0 out. Each row is "
        f"one whole command (start-up included), best of {runs}"
        + (f" (1 run where the first took over {single_over:.0f} s)" if runs > 1 else "")
        + "; *runs* says how many were made. *mean abs diff* is the mean absolute difference "
        f"from convcli's JPEG output over the first {CHECKED} images, in 8-bit levels "
        "(JPEG re-encoding alone accounts for about 0.5-1). gauss17-int.mat is convcli's "
        f"17x17 mask times {MASK_SCALE}, rounded to integers, with their sum as the scale."
    )
    report.add()
    ref = next((t.best.seconds for t in tools if t.name == "convcli -j 2"), None)
    rows = []
    for t in tools:
        if t.missing:
            rows.append([t.name, "skipped: " + t.missing, "", "", "", "", "", ""])
            continue
        if t.best.seconds is None:
            rows.append([t.name, "failed: " + t.best.error, "", "", "", "", "", t.measures])
            continue
        s = t.best.seconds
        rows.append(
            [
                t.name,
                common.fmt_s(s),
                f"{n / s:.1f}",
                common.fmt_ratio(s / ref) if ref else "—",
                str(t.best.runs),
                common.fmt_mb(t.best.rss_mb),
                t.diff,
                t.measures,
            ]
        )
    report.table(
        [
            "tool",
            "wall s",
            "images/s",
            "vs convcli -j 2",
            "runs",
            "peak RSS MB",
            "mean abs diff",
            "what the row runs",
        ],
        rows,
    )
    j1 = next((t.best.seconds for t in tools if t.name == "convcli -j 1"), None)
    if j1 and ref:
        report.add(
            f"Speed-up of convcli -j 2 over -j 1: {j1 / ref:.2f}x ({os.cpu_count()} logical CPUs)."
        )
        report.add()
    report.add(
        "*vs convcli -j 2* is the row's wall time over convcli -j 2's (above 1 = slower than "
        "convcli). Peak RSS is that of the largest single process (GNU time %M), not the sum "
        "over parallel workers. Edges: convcli and scipy reflect (dcba|abcd); ImageMagick and "
        "libvips replicate the edge pixel, which changes only an 8-pixel border. mogrify works "
        "in 16-bit quanta (Q16); vips gaussblur's shorter 15-tap integer mask, and vips's "
        "truncation (not rounding) of float results to 8 bits, add a little difference."
    )
    report.add()


if __name__ == "__main__":
    sys.exit(main())
