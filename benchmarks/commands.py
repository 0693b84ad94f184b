"""Whole-command benchmark: one 12-megapixel RGB photo, 8-bit in and out, from the shell.

Every row is one command, timed from start to exit (wall clock, best of 3; a command whose
first run takes over 60 s runs once) with its peak resident memory (GNU time's ``%M``: the
largest single process). The runs of the tools of one case alternate, so that other load on
the machine does not fall on one tool only.

* Filters: ``sobel-x`` (3x3; negative results clip to 0 in every tool) and
  ``gaussian:sigma=2.5`` (convcli's 21x21, radius ``int(4*sigma+0.5)`` = 10).
* convcli: ``convcli apply -q -k SPEC IN -o OUT`` (float32 inside, separable passes).
* libvips: ``vips conv --precision integer`` with the 3x3 integer mask; for the Gaussian
  ``vips gaussblur 2.5 --min-ampl 0.001`` (separable, integer precision, 19 taps) and
  ``vips conv --precision integer`` with the 21x21 mask in integers (``round(k * 4096)``,
  scale their sum; one 2-D pass).
* ImageMagick: ``convert IN -morphology Convolve KERNEL OUT`` with ``3x3: -1,0,1 ...`` and
  ``Gaussian:10x2.5`` (the 2-D 21x21 kernel, one 2-D pass); and ``convert -blur 10x2.5``
  (IM's separable Gaussian, the same radius and sigma).
* Each of TIFF->TIFF (uncompressed), JPEG->JPEG (quality 90, 4:2:0) and PNG->PNG (zlib
  level 1, each tool's default row filters): the output settings are made the same.

Then start-up (``convcli --help``, ``convcli list-kernels`` against ``python -c pass``) and a
folder: ``convcli apply -j 2`` over 50 photos against ``vips`` once per file, two at a time
(``xargs -P 2``, ``VIPS_CONCURRENCY=1``).

    python benchmarks/commands.py [--quick] [--out docs/commands.md]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import common
import data
import numpy as np

FILTERS = (("3x3 Sobel-x", "sobel-x"), ("Gaussian sigma 2.5 (21x21)", "gaussian:sigma=2.5"))
FORMATS = (("TIFF", "tif"), ("JPEG", "jpg"), ("PNG", "png"))
QUALITY = 90
MASK_SCALE = 4096
FOLDER_COUNT = 50


@dataclass
class Cmd:
    tool: str
    measures: str
    argv: list[str]
    output: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    best: common.Best = field(default_factory=common.Best)
    diff: str = ""
    missing: str = ""


def round_robin(
    cmds: list[Cmd], runs: int, single_over: float, prepare: Callable[[Cmd], None]
) -> None:
    """Run every command ``runs`` times in turn, keeping the best; ``prepare`` clears the
    command's output before each run (the last run's output stays)."""
    for rep in range(runs):
        for c in cmds:
            if c.missing or c.best.error:
                continue
            if rep > 0 and (c.best.seconds or 0) > single_over:
                continue
            prepare(c)
            m = common.run_cmd(c.argv, env=c.env or None)
            if m.ok and c.output is not None and not c.output.exists():
                m.rc, m.stderr = 1, "no output written"
            c.best.add(m)
            print(
                f"  run {rep + 1}: {c.tool}: "
                + (f"{m.seconds:.2f} s" if m.ok else f"failed: {c.best.error}"),
                file=sys.stderr,
                flush=True,
            )


# -- masks ---------------------------------------------------------------------------------------
def write_masks(work: Path) -> dict[str, Path]:
    """vips matrix files ('width height scale offset', rows); vips correlates, so they hold
    each kernel flipped."""
    import convcli

    sobel = convcli.get_kernel("sobel-x").as_2d()[::-1, ::-1].astype(int)
    gauss = convcli.get_kernel("gaussian:sigma=2.5").as_2d()[::-1, ::-1]
    gi = np.rint(gauss * MASK_SCALE).astype(np.int64)
    masks = {"sobel-x": work / "sobel-x.mat", "gauss": work / "gauss21-int.mat"}
    rows = ["3 3 1 0", *(" ".join(str(int(v)) for v in r) for r in sobel)]
    masks["sobel-x"].write_text("\n".join(rows) + "\n")
    rows = [f"{gi.shape[1]} {gi.shape[0]} {int(gi.sum())} 0"]
    rows += [" ".join(str(int(v)) for v in r) for r in gi]
    masks["gauss"].write_text("\n".join(rows) + "\n")
    return masks


def _vips_out(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".jpg":
        return f"{path}[Q={QUALITY},subsample-mode=on]"
    if ext == ".png":
        return f"{path}[compression=1]"
    return f"{path}[compression=none]"


def _im_out(ext: str) -> list[str]:
    if ext == "jpg":
        return ["-quality", str(QUALITY), "-sampling-factor", "2x2"]
    if ext == "png":
        return ["-define", "png:compression-level=1"]
    return ["-compress", "none"]


def image_cmds(spec: str, src: Path, ext: str, out: Path, masks: dict[str, Path]) -> list[Cmd]:
    convcli = common.convcli_cmd()
    vips = common.tool("vips")
    convert, _ = common.imagemagick()
    no_vips = "" if vips else "vips not found"
    no_im = "" if convert else "ImageMagick convert not found"
    o = {name: out / f"{name}.{ext}" for name in ("convcli", "vips", "vips2", "im", "im2")}
    cmds = [
        Cmd(
            "convcli apply",
            f"convcli apply -k {spec} IN -o OUT",
            [*convcli, "apply", "-q", "-k", spec, str(src), "-o", str(o["convcli"])],
            o["convcli"],
        )
    ]
    if spec == "sobel-x":
        cmds += [
            Cmd(
                "vips conv",
                "vips conv IN OUT sobel-x.mat --precision integer",
                [
                    str(vips),
                    "conv",
                    str(src),
                    _vips_out(o["vips"]),
                    str(masks["sobel-x"]),
                    "--precision",
                    "integer",
                ],
                o["vips"],
                missing=no_vips,
            ),
            Cmd(
                "ImageMagick convert -morphology",
                "convert IN -morphology Convolve '3x3: -1,0,1 -2,0,2 -1,0,1' OUT",
                [
                    str(convert),
                    str(src),
                    "-morphology",
                    "Convolve",
                    "3x3: -1,0,1 -2,0,2 -1,0,1",
                    "-depth",
                    "8",
                    *_im_out(ext),
                    str(o["im"]),
                ],
                o["im"],
                missing=no_im,
            ),
        ]
    else:
        cmds += [
            Cmd(
                "vips gaussblur",
                "vips gaussblur IN OUT 2.5 --min-ampl 0.001 (separable, integer, 19 taps)",
                [
                    str(vips),
                    "gaussblur",
                    str(src),
                    _vips_out(o["vips"]),
                    "2.5",
                    "--min-ampl",
                    "0.001",
                ],
                o["vips"],
                missing=no_vips,
            ),
            Cmd(
                "vips conv (21x21 .mat)",
                f"vips conv IN OUT gauss21-int.mat --precision integer (x{MASK_SCALE}, 2-D)",
                [
                    str(vips),
                    "conv",
                    str(src),
                    _vips_out(o["vips2"]),
                    str(masks["gauss"]),
                    "--precision",
                    "integer",
                ],
                o["vips2"],
                missing=no_vips,
            ),
            Cmd(
                "ImageMagick convert -morphology",
                "convert IN -morphology Convolve Gaussian:10x2.5 OUT (2-D 21x21)",
                [
                    str(convert),
                    str(src),
                    "-morphology",
                    "Convolve",
                    "Gaussian:10x2.5",
                    "-depth",
                    "8",
                    *_im_out(ext),
                    str(o["im"]),
                ],
                o["im"],
                missing=no_im,
            ),
            Cmd(
                "ImageMagick convert -blur",
                "convert IN -blur 10x2.5 OUT (separable)",
                [
                    str(convert),
                    str(src),
                    "-blur",
                    "10x2.5",
                    "-depth",
                    "8",
                    *_im_out(ext),
                    str(o["im2"]),
                ],
                o["im2"],
                missing=no_im,
            ),
        ]
    return cmds


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def _diffs(cmds: list[Cmd], margin: int) -> None:
    """Mean absolute difference of each tool's output from convcli's (away from the border,
    where the edge rules differ), in 8-bit levels."""
    ref_cmd = cmds[0]
    if ref_cmd.output is None or not ref_cmd.output.exists():
        return
    ref = _load(ref_cmd.output)[margin:-margin, margin:-margin]
    ref_cmd.diff = "(reference)"
    for c in cmds[1:]:
        if c.output is None or not c.output.exists():
            continue
        img = _load(c.output)
        if img.shape[:2] != (ref.shape[0] + 2 * margin, ref.shape[1] + 2 * margin):
            c.diff = "size differs"
            continue
        c.diff = f"{float(np.mean(np.abs(img[margin:-margin, margin:-margin] - ref))):.2f}"


def _rows(cmds: list[Cmd], label: str) -> list[list[str]]:
    ref = cmds[0].best.seconds
    rows = []
    for c in cmds:
        if c.missing:
            rows.append([label, c.tool, "skipped: " + c.missing, "", "", "", "", c.measures])
        elif c.best.seconds is None:
            rows.append([label, c.tool, "failed: " + c.best.error, "", "", "", "", c.measures])
        else:
            rows.append(
                [
                    label,
                    c.tool,
                    common.fmt_s(c.best.seconds),
                    common.fmt_ratio(c.best.seconds / ref) if ref else "—",
                    str(c.best.runs),
                    common.fmt_mb(c.best.rss_mb),
                    c.diff,
                    c.measures,
                ]
            )
    return rows


HEADERS = [
    "in -> out",
    "tool",
    "wall s",
    "vs convcli",
    "runs",
    "peak RSS MB",
    "mean abs diff",
    "what the row runs",
]


def inputs(quick: bool, work: Path) -> dict[str, Path]:
    paths = data.make_big()
    if not quick:
        return paths
    from PIL import Image

    with Image.open(paths["png"]) as im:
        small = im.convert("RGB").resize((1000, 750), Image.LANCZOS)
    out = {"tif": work / "small.tif", "jpg": work / "small.jpg", "png": work / "small.png"}
    small.save(out["tif"])
    small.save(out["jpg"], quality=QUALITY)
    small.save(out["png"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--runs", type=int, default=3, help="best of N runs (3)")
    parser.add_argument(
        "--single-over",
        type=float,
        default=60.0,
        help="a command whose first run takes longer than this many seconds runs once (60)",
    )
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    report = common.Report("convcli whole-command benchmark")
    work = Path(tempfile.mkdtemp(prefix="convcli-bench-commands-"))
    try:
        srcs = inputs(args.quick, work)
        masks = write_masks(work)
        out = work / "out"
        out.mkdir()

        def clear(c: Cmd) -> None:
            if c.output is not None:
                c.output.unlink(missing_ok=True)

        from PIL import Image

        with Image.open(srcs["png"]) as im:
            width, height = im.size
        report.add(
            f"## One {width}x{height} RGB photo ({width * height / 1e6:.0f} MP), 8-bit in and out"
        )
        report.add()
        report.add(
            f"Whole commands, best of {runs}"
            + (f" (1 run where the first took over {args.single_over:.0f} s)" if runs > 1 else "")
            + "; *vs convcli* is the row's time over convcli's for the same case (above 1 = "
            "slower than convcli). *mean abs diff* is the mean absolute difference from "
            "convcli's output in 8-bit levels, away from a 12-pixel border (edges: convcli "
            "reflects, ImageMagick and libvips replicate); for JPEG it includes the encoders' "
            "differences. Input files: "
            + ", ".join(f"{k.upper()} {v.stat().st_size / 1e6:.1f} MB" for k, v in srcs.items())
            + "."
        )
        report.add()
        for label, spec in FILTERS:
            rows: list[list[str]] = []
            for fmt, ext in FORMATS:
                cmds = image_cmds(spec, srcs[ext], ext, out, masks)
                print(f"{label}, {fmt}:", file=sys.stderr, flush=True)
                round_robin(cmds, runs, args.single_over, clear)
                _diffs(cmds, 12)
                for c in cmds:
                    clear(c)
                rows += _rows(cmds, f"{fmt} -> {fmt}")
            report.add(f"### {label}: `{spec}`")
            report.add()
            report.table(HEADERS, rows)
        startup(report, runs)
        folder(report, runs, args.quick, masks, work, args.single_over)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write(args.out, "python benchmarks/commands.py" + (" --quick" if args.quick else ""))
    return 0


def startup(report: common.Report, runs: int) -> None:
    convcli = common.convcli_cmd()
    py = sys.executable
    cmds = [
        Cmd("python -c pass", "the interpreter alone", [py, "-c", "pass"]),
        Cmd(
            "python -c 'import numpy, scipy.ndimage, PIL.Image'",
            "the libraries every apply needs",
            [py, "-c", "import numpy, scipy.ndimage, PIL.Image"],
        ),
        Cmd("convcli --help", "", [*convcli, "--help"]),
        Cmd("convcli list-kernels", "", [*convcli, "list-kernels"]),
    ]
    if common.tool("vips"):
        cmds.append(Cmd("vips --version", "", ["vips", "--version"]))
    convert, _ = common.imagemagick()
    if convert:
        cmds.append(Cmd("convert -version", "", [convert, "-version"]))
    print("start-up:", file=sys.stderr, flush=True)
    round_robin(cmds, max(runs, 5) if runs > 1 else 1, float("inf"), lambda c: None)
    base = cmds[0].best.seconds
    rows = [
        [
            c.tool,
            common.fmt_ms(c.best.seconds),
            f"{(c.best.seconds - base) * 1000:+.0f}" if c.best.seconds and base else "—",
            str(c.best.runs),
            common.fmt_mb(c.best.rss_mb),
            c.measures,
        ]
        for c in cmds
    ]
    report.add("## Start-up")
    report.add()
    report.add(
        f"Best of {max(runs, 5) if runs > 1 else 1}; *ms over python* is the time "
        "beyond `python -c pass`."
    )
    report.add()
    report.table(["command", "ms", "ms over python", "runs", "peak RSS MB", "what"], rows)


def folder(
    report: common.Report,
    runs: int,
    quick: bool,
    masks: dict[str, Path],
    work: Path,
    single_over: float,
) -> None:
    count = 8 if quick else FOLDER_COUNT
    data.make_photos(max(count, 12))
    files = data.photo_files()[:count]
    src = work / "photos"
    src.mkdir()
    for f in files:
        shutil.copyfile(f, src / f.name)
    inputs_ = sorted(src.iterdir())
    out = work / "folder-out"
    convcli = common.convcli_cmd()
    vips = common.tool("vips")
    xargs = common.tool("xargs")

    def fresh(c: Cmd) -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()

    def vips_list(last: str, name: str) -> Path:
        items = []
        for f in inputs_:
            items += [str(f), f"{out / f.name}[Q={QUALITY},subsample-mode=on]", last]
        path = work / name
        path.write_text("\n".join(items) + "\n")
        return path

    missing = "" if vips and xargs else "vips or xargs not found"
    rows: list[list[str]] = []
    for label, spec in FILTERS:
        if spec == "sobel-x":
            op = ["conv", "--precision", "integer"]
            last = str(masks["sobel-x"])
            what = "vips conv IN OUT sobel-x.mat --precision integer"
        else:
            op = ["gaussblur", "--min-ampl", "0.001"]
            last = "2.5"
            what = "vips gaussblur IN OUT 2.5 --min-ampl 0.001"
        lst = vips_list(last, f"list-{spec.split(':')[0]}.txt")
        cmds = [
            Cmd(
                "convcli apply -j 2",
                f"convcli apply -k {spec} -r DIR -d OUT -j 2",
                [*convcli, "apply", "-q", "-k", spec, "-r", str(src), "-d", str(out), "-j", "2"],
            ),
            Cmd(
                "vips, xargs -P 2",
                f"xargs -P 2: {what}, once per file",
                [str(xargs), "-a", str(lst), "-d", "\n", "-n", "3", "-P", "2", str(vips), *op],
                env={"VIPS_CONCURRENCY": "1"},
                missing=missing,
            ),
        ]
        print(f"folder, {label}:", file=sys.stderr, flush=True)
        round_robin(cmds, runs, single_over, fresh)
        for c, r in zip(cmds, _rows(cmds, label), strict=True):
            rate = f"{count / c.best.seconds:.1f}" if c.best.seconds else ""
            rows.append([*r[:5], rate, r[5], r[7]])
    report.add(f"## A folder of {count} JPEG photos (1-2 MP each), JPEG quality 90 out")
    report.add()
    report.add(
        f"Best of {runs}. libvips runs once per file, two at a time, each with one "
        "thread; convcli's two workers also take one thread each."
    )
    report.add()
    report.table(
        [
            "filter",
            "tool",
            "wall s",
            "vs convcli",
            "runs",
            "images/s",
            "peak RSS MB",
            "what the row runs",
        ],
        rows,
    )


if __name__ == "__main__":
    sys.exit(main())
