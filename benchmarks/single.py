"""One image, the whole command: ``convcli apply`` on the 12 MP photo against ``vips``, and
where the time goes (start-up, imports, decode, filter, encode).

    python benchmarks/single.py           # 5 interleaved rounds: about 1-2 minutes
    python benchmarks/single.py --quick   # one round

For the 12 MP JPEG (q90 out) and TIFF (uncompressed out) of benchmarks/data.py, with
``sobel-x`` and ``gaussian:sigma=2``: ``convcli apply -q -k SPEC IN -o OUT`` against ``vips
conv IN OUT sobel-x.mat --precision integer`` and ``vips gaussblur IN OUT 2 --min-ampl
0.001`` (libvips's integer paths, all its threads), and against ``python -c "import numpy,
cv2, PIL.Image"`` (what any Python tool built on these libraries pays before its first
pixel). Medians of interleaved rounds; ``convcli / vips`` is the median per-round ratio
(target: at most 2x). Then, in this process, the parts of convcli's own run on the JPEG:
decode, filter, encode.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import common

SPECS = ("sobel-x", "gaussian:sigma=2")
FORMATS = (("JPEG", "jpg", "[Q=90,subsample-mode=on]"), ("TIFF", "tif", ""))


def sobel_mat(folder: Path) -> Path:
    """sobel-x as a vips integer matrix, flipped (vips correlates, convcli convolves)."""
    import convcli

    k = convcli.get_kernel("sobel-x").as_2d()[::-1, ::-1]
    path = folder / "sobel-x.mat"
    rows = [" ".join(str(int(v)) for v in row) for row in k]
    path.write_text(f"{k.shape[1]} {k.shape[0]} 1 0\n" + "\n".join(rows) + "\n")
    return path


def parts(photo: Path, spec: str, out: Path) -> dict[str, float]:
    """convcli's decode, filter and encode of one image, in this process (warm)."""
    import convcli
    from convcli.io.decode import open_image
    from convcli.io.encode import write_image

    found: dict[str, list[float]] = {"decode": [], "filter": [], "encode": []}
    for _ in range(3):
        t0 = time.perf_counter()
        pixels = open_image(photo).pixels
        t1 = time.perf_counter()
        result = convcli.filter_image(pixels, spec).pixels
        t2 = time.perf_counter()
        write_image(result, out, quality=90)
        t3 = time.perf_counter()
        for name, took in zip(found, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            found[name].append(took)
    return {name: common.median(v) for name, v in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also time convcli from this source tree (an older commit's src/), interleaved",
    )
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    big = common.HERE / "_data" / "big"
    if not (big / "photo12mp.jpg").exists():
        sys.exit(f"{big} is missing: run python benchmarks/data.py first")
    vips = common.tool("vips")
    convcli = common.convcli_cmd()
    report = common.Report("convcli benchmarks: one image")
    report.add("## One 12 MP image, the whole command")
    report.add()
    report.add(
        f"Wall seconds, median of {rounds} interleaved round(s); 'convcli / vips' is the median "
        "per-round ratio (target: at most 2x). 'imports' is `python -c \"import numpy, cv2, "
        'PIL.Image"`: the start-up any Python tool on these libraries pays.'
    )
    report.add()
    rows = []
    with tempfile.TemporaryDirectory(prefix="convcli-single-") as tmp:
        work = Path(tmp)
        mat = sobel_mat(work)
        imports = [sys.executable, "-c", "import numpy, cv2, PIL.Image"]
        for fmt, ext, save in FORMATS:
            src = big / f"photo12mp.{ext}"
            for spec in SPECS:
                out = work / f"out.{ext}"
                ours = [*convcli, "apply", "-q", "-k", spec, str(src), "-o", str(out)]
                if spec == "sobel-x":
                    theirs = ["conv", str(src), f"{out}{save}", str(mat), "--precision", "integer"]
                else:
                    theirs = ["gaussblur", str(src), f"{out}{save}", "2", "--min-ampl", "0.001"]
                cmds = {"convcli": ours, "imports": imports}
                envs = {}
                if args.before:
                    cmds["before"] = [sys.executable, "-m", "convcli", *ours[len(convcli) :]]
                    envs["before"] = {"PYTHONPATH": str(Path(args.before).resolve())}
                if vips:
                    cmds["vips"] = [vips, *theirs]
                times: dict[str, list[float]] = {n: [] for n in cmds}
                names = list(cmds)
                print(f"single: {fmt} {spec} ...", file=sys.stderr, flush=True)
                for r in range(rounds):
                    for name in common.round_order(names, r):
                        m = common.run_cmd(cmds[name], env=envs.get(name))
                        if m.ok:
                            times[name].append(m.seconds)
                ratio = (
                    common.paired_ratio(times, "convcli", "vips")
                    if vips and len(times["vips"]) == len(times["convcli"])
                    else None
                )
                before = "—"
                if args.before and times["before"]:
                    before = common.fmt_s(common.median(times["before"]))
                rows.append(
                    (
                        fmt,
                        spec,
                        before,
                        common.fmt_s(common.median(times["convcli"])),
                        common.fmt_s(common.median(times["vips"])) if vips else "—",
                        common.fmt_s(common.median(times["imports"])),
                        common.fmt_ratio(ratio),
                    )
                )
        report.table(
            ["format", "kernel", "before s", "convcli s", "vips s", "imports s", "convcli / vips"],
            rows,
        )
        split = parts(big / "photo12mp.jpg", "sobel-x", work / "parts.jpg")
        report.add(
            "convcli's parts on the JPEG with sobel-x, in process (median of 3, ms): "
            + ", ".join(f"{name} {1000 * s:.0f}" for name, s in split.items())
        )
    report.write(args.out, "python benchmarks/single.py" + (" --quick" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
