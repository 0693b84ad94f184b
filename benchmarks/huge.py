"""A 1-gigapixel image in bounded memory: convcli's streamed bands against libvips.

    python benchmarks/huge.py                 # 40000 x 25000 gray 8-bit TIFF (1 GB)
    python benchmarks/huge.py --quick         # 8000 x 5000, for a smoke run
    python benchmarks/huge.py --out docs/huge.md

Makes a synthetic gray 8-bit tiled TIFF (kept in benchmarks/_data/), then filters it with
``gaussian:sigma=3`` and ``sobel-x`` at ``--memory 256MiB`` and measures wall time and peak
resident memory (GNU time's %M) of each command, next to ``vips gaussblur`` (8-bit, which
vips approximates with integer arithmetic, and ``--precision float``) and ``vips conv`` with
the 3x3 integer Sobel mask. convcli's results are checked against the in-memory result on
sample bands (they must be identical).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def make_image(path: Path, height: int, width: int, tile: int = 512) -> None:
    """Smooth structure plus grain, written tile-row by tile-row (never whole in memory)."""
    import tifffile

    if path.exists():
        return
    rng = np.random.default_rng(1)
    x = np.arange(width, dtype=np.float32)

    def rows():
        for r0 in range(0, height, tile):
            y = np.arange(r0, min(r0 + tile, height), dtype=np.float32)[:, None]
            base = 128 + 60 * np.sin(x / 97.0) * np.cos(y / 131.0) + 30 * np.sin((x + y) / 23.0)
            grain = rng.normal(0, 12, size=base.shape).astype(np.float32)
            band = np.clip(base + grain, 0, 255).astype(np.uint8)
            for c0 in range(0, width, tile):
                piece = np.zeros((tile, tile), np.uint8)
                part = band[:, c0 : c0 + tile]
                piece[: part.shape[0], : part.shape[1]] = part
                yield piece

    tmp = path.with_suffix(".part.tif")
    tifffile.imwrite(tmp, rows(), shape=(height, width), dtype=np.uint8, tile=(tile, tile))
    tmp.replace(path)


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one command."""
    if GNU_TIME:
        with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
            start = time.perf_counter()
            subprocess.run(
                [GNU_TIME, "-f", "%M", "-o", report.name, *cmd],
                check=True,
                stdout=subprocess.DEVNULL,
                env=env,
            )
            wall = time.perf_counter() - start
            peak_kb = float(report.read().strip().splitlines()[-1])
        return wall, peak_kb / 1024
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def check_bands(
    source: Path, output: Path, spec: str, height: int, extra: list[str], samples: int = 3
) -> str:
    """Compare sample bands of the streamed output with the in-memory result of the same
    rows (plus a halo wide enough for the kernel)."""
    import tifffile

    import convcli
    from convcli.compute.pixels import PixelOptions

    halo = 16
    rng = np.random.default_rng(2)
    with tifffile.TiffFile(source) as src, tifffile.TiffFile(output) as out:
        full_in = src.pages.first.asarray(out="memmap") if src.pages.first.is_memmappable else None
        page_out = out.pages.first
        for r0 in rng.integers(halo, height - 2 * halo - 64, size=samples):
            r0 = int(r0)
            rows = slice(r0 - halo, r0 + 64 + halo)
            block = full_in[rows] if full_in is not None else src.pages.first.asarray()[rows]
            options = PixelOptions(range="abs" if "abs" in extra else "clip")
            want = convcli.filter_image(np.ascontiguousarray(block), spec, options).pixels[
                halo:-halo
            ]
            got = (
                page_out.asarray(out="memmap") if page_out.is_memmappable else page_out.asarray()
            )[r0 : r0 + 64]
            if not np.array_equal(got, want):
                return f"MISMATCH at rows {r0}..{r0 + 64}"
    return f"identical on {samples} sample bands"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8000 x 5000 instead of 40000 x 25000")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    parser.add_argument("--memory", default="256MiB")
    args = parser.parse_args()

    width, height = (8000, 5000) if args.quick else (40000, 25000)
    DATA.mkdir(parents=True, exist_ok=True)
    source = DATA / f"huge-{width}x{height}.tif"
    t0 = time.perf_counter()
    make_image(source, height, width)
    print(
        f"input: {source} ({source.stat().st_size / 2**20:.0f} MiB, made/checked in "
        f"{time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )

    convcli_bin = str(Path(sys.executable).with_name("convcli"))
    vips = shutil.which("vips")
    env = {**os.environ, "CONVCLI_MAX_PIXELS": str(width * height)}
    rows: list[tuple[str, str, float, float, str]] = []
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        work = Path(tmp)
        (work / "sobel.mat").write_text("3 3 1 0\n1 0 -1\n2 0 -2\n1 0 -1\n")  # vips: flipped
        cases = [("gaussian:sigma=3", []), ("sobel-x", ["--range", "abs"])]
        for spec, extra in cases:
            output = work / "out.tif"
            cmd = [
                convcli_bin,
                "apply",
                "-k",
                spec,
                *extra,
                str(source),
                "-o",
                str(output),
                "--memory",
                args.memory,
                "-q",
            ]
            wall, peak = measure(cmd, env)
            note = check_bands(source, output, spec, height, extra)
            rows.append(("convcli", " ".join([spec, *extra]), wall, peak, note))
            output.unlink()
        if vips:
            for name, cmd in [
                (
                    "gaussblur 3 (8-bit, approximate)",
                    [vips, "gaussblur", str(source), str(work / "v.tif"), "3"],
                ),
                (
                    "gaussblur 3 --precision float",
                    [
                        vips,
                        "gaussblur",
                        str(source),
                        str(work / "v.tif"),
                        "3",
                        "--precision",
                        "float",
                    ],
                ),
                (
                    "conv 3x3 integer (Sobel)",
                    [
                        vips,
                        "conv",
                        str(source),
                        str(work / "v.tif"),
                        str(work / "sobel.mat"),
                        "--precision",
                        "integer",
                    ],
                ),
            ]:
                wall, peak = measure(cmd)
                rows.append(("vips", name, wall, peak, ""))
                (work / "v.tif").unlink(missing_ok=True)
        else:
            print(
                "note: vips is not installed (apt-get install libvips-tools): skipped",
                file=sys.stderr,
            )

    lines = [
        f"### A {width} x {height} gray 8-bit image ({width * height / 1e9:.2f} gigapixels), "
        f"convcli at --memory {args.memory}",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{time.strftime('%Y-%m-%d')}. Wall time and peak resident memory of each command.",
        "",
        "| tool | case | wall s | peak MiB | check |",
        "|---|---|---:|---:|---|",
    ]
    for tool, case, wall, peak, note in rows:
        lines.append(f"| {tool} | {case} | {wall:.1f} | {peak:.0f} | {note} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
