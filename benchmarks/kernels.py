"""Per-call kernel timings on a 12-megapixel float32 gray image, in one process.

The image is the luminance (0.299 R + 0.587 G + 0.114 B, float32, 0-255) of the 4000x3000
photo of benchmarks/data.py. Three kernels, convolved with ``same`` output size:

* ``sobel-x``: 3x3 Sobel derivative (separable, rank 1);
* ``gaussian:size=15,sigma=2.5``: 15x15 Gaussian;
* ``gaussian:size=51,sigma=8``: 51x51 Gaussian.

For each kernel every row computes the same convolution of the same array, with the
boundary noted in the row (reflect, dcba|abcd, where the library has it; zero padding for
``fftconvolve`` and torch, which changes only a border as wide as the kernel's radius). The
*max rel diff* column checks each result against convcli's scipy backend away from that
border (largest absolute difference over the largest absolute value). Each in-process call
is timed best of 5 (fewer when the runs take over 20 s together). Calls that would take
tens of seconds (``scipy.signal.convolve2d`` and ``ndimage.correlate`` with the big kernels)
run once, in a child process, and are stopped after 40 s (shown as ``>40 s``).

``vips conv`` is timed from the shell, as a whole command reading and writing the image in
vips's own uncompressed ``.v`` format: its time includes process start-up and 48 MB of I/O
each way (the ``vips copy`` row shows that part alone).

A second table times 8-bit RGB filtering, where Pillow's ``ImageFilter.Kernel`` (3x3 and 5x5
kernels only, 8-bit images only) can take part.

    python benchmarks/kernels.py [--quick] [--out docs/kernels.md]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
import data
import numpy as np

KERNELS = (
    ("3x3 Sobel-x", "sobel-x"),
    ("15x15 Gaussian (sigma 2.5)", "gaussian:size=15,sigma=2.5"),
    ("51x51 Gaussian (sigma 8)", "gaussian:size=51,sigma=8"),
)
RGB_KERNELS = (("3x3 Sobel-x", "sobel-x"), ("5x5 Gaussian (sigma 1.1)", "gaussian:size=5"))
CAP_S = 40.0
RUNS = 5
BUDGET_S = 20.0


@dataclass
class Row:
    name: str
    kind: str  # "convcli", "peer" (in-process), "command" (vips), "slow" (child, capped)
    boundary: str
    call: Callable[[], Any] | None = None
    child: str = ""  # for "slow": the row's key for the child process
    command: list[str] | None = None
    seconds: float | None = None
    runs: int = 0
    note: str = ""
    diff: str = ""


# -- the image ------------------------------------------------------------------------------------
def gray_image(quick: bool) -> np.ndarray:
    rgb = rgb_image(quick)
    w = np.array([0.299, 0.587, 0.114], np.float32)
    return np.ascontiguousarray(rgb.astype(np.float32) @ w)


def rgb_image(quick: bool) -> np.ndarray:
    from PIL import Image

    paths = data.make_big()
    with Image.open(paths["png"]) as im:
        rgb = np.asarray(im.convert("RGB"))
    return rgb[:750, :1000].copy() if quick else rgb


# -- the calls ------------------------------------------------------------------------------------
def kernel_parts(spec: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, Any]:
    """(correlation weights of the convolution, column and row factors as correlation
    weights when separable, the Kernel)."""
    import convcli

    k = convcli.get_kernel(spec)
    weights = np.ascontiguousarray(k.as_2d()[::-1, ::-1], dtype=np.float32)
    col = row = None
    if k.separable:
        c, r = k.factors[0]
        col = np.ascontiguousarray(c[::-1], dtype=np.float32)
        row = np.ascontiguousarray(r[::-1], dtype=np.float32)
    return weights, col, row, k


def float_rows(x: np.ndarray, spec: str, work: Path, gray_v: Path | None) -> list[Row]:
    from scipy import ndimage, signal

    import convcli
    from convcli.compute import backends

    weights, col, row, k = kernel_parts(spec)
    kh, kw = weights.shape
    big = kh * kw > 300
    rows: list[Row] = []
    for b in ("auto", "scipy", "opencv", "torch"):
        if b != "auto" and not backends.available(b):
            rows.append(
                Row(
                    f'convcli.convolve(backend="{b}")',
                    "convcli",
                    "reflect",
                    note=f"skipped: {b} not installed",
                )
            )
            continue
        rows.append(
            Row(
                f'convcli.convolve(backend="{b}")',
                "convcli",
                "reflect",
                lambda b=b: convcli.convolve(x, spec, backend=b),
            )
        )
    try:
        import cv2

        rows.append(
            Row(
                "cv2.filter2D",
                "peer",
                "reflect",
                lambda: cv2.filter2D(x, cv2.CV_32F, weights, borderType=cv2.BORDER_REFLECT),
                note="DFT inside for kernels of 11x11 and up" if big else "",
            )
        )
        if col is not None:
            rows.append(
                Row(
                    "cv2.sepFilter2D",
                    "peer",
                    "reflect",
                    lambda: cv2.sepFilter2D(x, cv2.CV_32F, row, col, borderType=cv2.BORDER_REFLECT),
                )
            )
    except ImportError:
        rows.append(Row("cv2", "peer", "", note="skipped: opencv not installed"))
    if big:
        rows.append(
            Row(
                "scipy.ndimage.correlate",
                "slow",
                "reflect",
                child=f"ndimage:{spec}",
                note="one run, in a child process",
            )
        )
    else:
        rows.append(
            Row(
                "scipy.ndimage.correlate",
                "peer",
                "reflect",
                lambda: ndimage.correlate(x, weights, mode="reflect"),
            )
        )
    if spec.startswith("gaussian"):
        sigma = float(spec.split("sigma=")[1])
        radius = kh // 2
        rows.append(
            Row(
                f"scipy.ndimage.gaussian_filter({sigma:g}, radius={radius})",
                "peer",
                "reflect",
                lambda: ndimage.gaussian_filter(x, sigma, mode="reflect", radius=radius),
            )
        )
    if col is not None:

        def passes() -> np.ndarray:
            y = ndimage.correlate1d(x, col, axis=0, mode="reflect")
            return ndimage.correlate1d(y, row, axis=1, mode="reflect")

        rows.append(Row("scipy.ndimage.correlate1d x2", "peer", "reflect", passes))
    if kh * kw > 9:
        rows.append(
            Row(
                "scipy.signal.convolve2d",
                "slow",
                "reflect (symm)",
                child=f"convolve2d:{spec}",
                note="one run, in a child process",
            )
        )
    else:
        kern = k.as_2d().astype(np.float32)
        rows.append(
            Row(
                "scipy.signal.convolve2d",
                "peer",
                "reflect (symm)",
                lambda: signal.convolve2d(x, kern, mode="same", boundary="symm"),
            )
        )
    kern = k.as_2d().astype(np.float32)
    rows.append(
        Row(
            "scipy.signal.fftconvolve",
            "peer",
            "zero",
            lambda: signal.fftconvolve(x, kern, mode="same"),
        )
    )
    rows += torch_rows(x, weights, col, row)
    rows += vips_rows(spec, weights, col, row, work, gray_v)
    return rows


def torch_rows(
    x: np.ndarray, weights: np.ndarray, col: np.ndarray | None, row: np.ndarray | None
) -> list[Row]:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return [Row("torch F.conv2d", "peer", "", note="skipped: torch not installed")]
    t = torch.from_numpy(x)[None, None]
    w = torch.from_numpy(weights.copy())[None, None]
    note = f"{torch.get_num_threads()} threads"

    def conv2d() -> np.ndarray:
        with torch.no_grad():
            return F.conv2d(t, w, padding="same")[0, 0].numpy()

    rows = [Row("torch F.conv2d (CPU)", "peer", "zero", conv2d, note=note)]
    if col is not None and row is not None:
        wc = torch.from_numpy(col.copy()).reshape(1, 1, -1, 1)
        wr = torch.from_numpy(row.copy()).reshape(1, 1, 1, -1)

        def separable() -> np.ndarray:
            with torch.no_grad():
                y = F.conv2d(t, wc, padding="same")
                return F.conv2d(y, wr, padding="same")[0, 0].numpy()

        rows.append(Row("torch F.conv2d x2 (1-D passes)", "peer", "zero", separable, note=note))
    return rows


def _mat(path: Path, m: np.ndarray) -> Path:
    lines = [f"{m.shape[1]} {m.shape[0]} 1 0"] + [" ".join(repr(float(v)) for v in r) for r in m]
    path.write_text("\n".join(lines) + "\n")
    return path


def vips_rows(
    spec: str,
    weights: np.ndarray,
    col: np.ndarray | None,
    row: np.ndarray | None,
    work: Path,
    gray_v: Path | None,
) -> list[Row]:
    vips = common.tool("vips")
    if vips is None or gray_v is None:
        return [Row("vips conv", "command", "", note="skipped: vips not installed")]
    out = str(work / "out.v")
    slug = spec.replace(":", "-").replace(",", "-").replace("=", "")
    mask = _mat(work / f"{slug}.mat", weights)  # vips correlates: the flipped kernel
    rows = [
        Row(
            "vips conv --precision float (command)",
            "command",
            "edge",
            command=[vips, "conv", str(gray_v), out, str(mask), "--precision", "float"],
            note="whole command: start-up and .v I/O included",
        ),
    ]
    # convsep applies one 1-D mask along both axes: only for kernels like the Gaussians,
    # whose column and row factors are the same up to scale (col = row * c, g = row * sqrt(c))
    if (
        col is not None
        and row is not None
        and col.shape == row.shape
        and row.sum() != 0
        and np.allclose(col / col.sum(), row / row.sum())
    ):
        one = _mat(work / f"{slug}-1d.mat", row[np.newaxis, :] * np.sqrt(col.sum() / row.sum()))
        rows.append(
            Row(
                "vips convsep --precision float (command)",
                "command",
                "edge",
                command=[vips, "convsep", str(gray_v), out, str(one), "--precision", "float"],
                note="whole command: start-up and .v I/O included",
            )
        )
    return rows


def vips_copy_row(gray_v: Path | None, work: Path) -> Row | None:
    vips = common.tool("vips")
    if vips is None or gray_v is None:
        return None
    return Row(
        "vips copy (start-up and I/O only)",
        "command",
        "",
        command=[vips, "copy", str(gray_v), str(work / "out.v")],
        note="the I/O share of the vips rows",
    )


# -- measuring ------------------------------------------------------------------------------------
def measure(
    row: Row, x: np.ndarray, reference: np.ndarray | None, margin: int, npy: Path, quick: bool
) -> None:
    runs = 1 if quick else RUNS
    if row.call is not None:
        try:
            started = time.perf_counter()
            result = row.call()  # a first call: imports, plans, and the result to check
            first = time.perf_counter() - started
        except Exception as exc:
            row.note = f"error: {type(exc).__name__}: {str(exc)[:80]}"
            return
        if reference is not None:
            row.diff = _diff(np.asarray(result), reference, margin)
        del result
        if first > 2.0:  # slow enough that warm-up costs do not matter: it counts as a run
            more = 0 if quick else max(0, min(runs - 1, int(BUDGET_S / first) - 1))
            row.seconds, row.runs = first, 1
            if more:
                best, done = common.time_call(row.call, more, BUDGET_S)
                row.seconds, row.runs = min(first, best), 1 + done
        else:
            row.seconds, row.runs = common.time_call(row.call, runs, BUDGET_S)
    elif row.command is not None:
        best, spent = common.Best(), 0.0
        while best.runs < runs and spent < BUDGET_S and not best.error:
            m = common.run_cmd(row.command)
            best.add(m)
            spent += m.seconds
        row.seconds, row.runs = best.seconds, best.runs
        if best.error:
            row.note = f"error: {best.error}"
    elif row.child:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", row.child, str(npy)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=CAP_S + 15)
        except subprocess.TimeoutExpired:
            row.note, row.runs = f">{CAP_S:.0f} s (stopped)", 1
            return
        if out.returncode == 0 and out.stdout.strip():
            seconds = float(out.stdout.split()[-1])
            if seconds > CAP_S:
                row.note, row.runs = f">{CAP_S:.0f} s", 1
            else:
                row.seconds, row.runs = seconds, 1
        else:
            row.note = f">{CAP_S:.0f} s (stopped)" if out.returncode == 3 else "error"


def _diff(result: np.ndarray, reference: np.ndarray, margin: int) -> str:
    if result.shape != reference.shape:
        return f"shape {result.shape}"
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    a = result[inner].astype(np.float64)
    r = reference[inner].astype(np.float64)
    scale = float(np.max(np.abs(r))) or 1.0
    return f"{float(np.max(np.abs(a - r))) / scale:.0e}"


def child(key: str, npy: str) -> int:
    """Time one slow call once (in a child process, so that it can be stopped)."""
    import signal as _signal

    from scipy import ndimage, signal

    what, spec = key.split(":", 1)
    x = np.load(npy)
    weights, _, _, k = kernel_parts(spec)

    def stop(*_: Any) -> None:
        sys.exit(3)

    _signal.signal(_signal.SIGALRM, stop)
    _signal.alarm(int(CAP_S) + 1)
    started = time.perf_counter()
    if what == "ndimage":
        ndimage.correlate(x, weights, mode="reflect")
    else:
        signal.convolve2d(x, k.as_2d().astype(np.float32), mode="same", boundary="symm")
    print(f"{time.perf_counter() - started:.6f}")
    return 0


# -- 8-bit RGB ------------------------------------------------------------------------------------
def rgb_rows(rgb: np.ndarray, spec: str) -> list[Row]:
    from PIL import Image, ImageFilter

    import convcli

    weights, _, _, k = kernel_parts(spec)
    size = weights.shape
    # Pillow correlates with the kernel flipped upside down: give it the flipped weights so
    # that it computes the same convolution.
    pil_kernel = ImageFilter.Kernel(
        (size[1], size[0]), weights[::-1].flatten().tolist(), scale=1, offset=0
    )
    image = Image.fromarray(rgb)
    rows = [
        Row(
            "Pillow Image.filter(ImageFilter.Kernel)",
            "peer",
            "edge",
            lambda: np.asarray(image.filter(pil_kernel)),
            note="uint8 out, clipped",
        ),
        Row(
            "convcli.filter_image",
            "convcli",
            "reflect",
            lambda: convcli.filter_image(rgb, spec).pixels,
            note="uint8 out, clipped",
        ),
    ]
    try:
        import cv2

        rows.append(
            Row(
                "cv2.filter2D (CV_8U)",
                "peer",
                "reflect",
                lambda: cv2.filter2D(rgb, -1, weights, borderType=cv2.BORDER_REFLECT),
                note="uint8 out, saturated",
            )
        )
    except ImportError:
        pass
    del k
    return rows


# -- report ---------------------------------------------------------------------------------------
def _table(report: common.Report, rows: list[Row], show_boundary: bool = True) -> None:
    peers = [r.seconds for r in rows if r.kind == "peer" and r.seconds is not None]
    fastest = min(peers) if peers else None
    body = []
    for r in rows:
        ratio = common.fmt_ratio(r.seconds / fastest) if r.seconds and fastest else "—"
        ms = (
            common.fmt_ms(r.seconds)
            if r.seconds is not None
            else (r.note.split(" (")[0] if r.note.startswith(">") else "—")
        )
        body.append(
            [
                r.name,
                ms,
                ratio,
                str(r.runs or ""),
                r.boundary if show_boundary else "",
                r.diff,
                r.note,
            ]
        )
    report.table(
        ["call", "ms", "vs fastest peer", "runs", "boundary", "max rel diff", "notes"], body
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)

    report = common.Report("convcli kernel timings")
    x = gray_image(args.quick)
    h, w = x.shape
    work = Path(tempfile.mkdtemp(prefix="convcli-bench-kernels-"))
    try:
        npy = work / "gray.npy"
        np.save(npy, x)
        gray_v = _to_vips(x, work)
        report.add(f"## Kernels: one call on a {w}x{h} float32 gray image ({w * h / 1e6:.0f} MP)")
        report.add()
        report.add(
            f"In-process calls, best of {1 if args.quick else RUNS} (fewer, as *runs* says, "
            f"when they took over {BUDGET_S:.0f} s together) after one warm-up call, which "
            "counts as a run only when it took over 2 s. The warm-up's result is checked in "
            "*max rel diff*: the largest difference from convcli's scipy backend away from "
            "the border, over the largest value. *vs fastest peer* divides by the fastest "
            "in-process call that is not convcli. scipy is single-threaded; OpenCV and torch "
            "(also as convcli backends) use their own thread pools "
            f"({_threads()}). vips rows are whole commands (start-up and I/O included), "
            "and their results are not checked here."
        )
        report.add()
        copy_row = vips_copy_row(gray_v, work)
        if copy_row is not None:
            measure(copy_row, x, None, 0, npy, args.quick)
        for label, spec in KERNELS:
            import convcli

            reference = convcli.convolve(x, spec, backend="scipy")
            margin = max(convcli.get_kernel(spec).as_2d().shape)
            rows = float_rows(x, spec, work, gray_v)
            for row in rows:
                print(f"  {label}: {row.name} ...", file=sys.stderr, flush=True)
                measure(row, x, reference, margin, npy, args.quick)
            if copy_row is not None:
                rows.append(copy_row)
            del reference
            report.add(f"### {label}: `{spec}`")
            report.add()
            _table(report, rows)
        rgb = rgb_image(args.quick)
        report.add(f"## 8-bit RGB: {rgb.shape[1]}x{rgb.shape[0]}x3 uint8 in and out")
        report.add()
        report.add(
            "Pillow's ImageFilter.Kernel takes only 3x3 and 5x5 kernels and only 8-bit "
            "images, so it is compared here, on the same photo as 8-bit RGB, with "
            "convcli.filter_image (float32 inside, rounded and clipped to uint8) and "
            "cv2.filter2D on uint8 (OpenCV's integer path). Pillow extends edges by "
            "replication."
        )
        report.add()
        for label, spec in RGB_KERNELS:
            rows = rgb_rows(rgb, spec)
            import convcli

            reference = convcli.filter_image(rgb, spec).pixels
            for row in rows:
                measure(row, x, reference, 3, npy, args.quick)
            report.add(f"### {label}: `{spec}`")
            report.add()
            _table(report, rows)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report.add(
            f"Peak RSS of this process: {own:.0f} MB (the image is {x.nbytes / 2**20:.0f} MB "
            f"as float32); of the largest child (vips, capped scipy calls): {kids:.0f} MB."
        )
        report.add()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write(args.out, "python benchmarks/kernels.py" + (" --quick" if args.quick else ""))
    return 0


def _threads() -> str:
    parts = []
    try:
        import cv2

        parts.append(f"OpenCV {cv2.getNumThreads()} threads")
    except ImportError:
        pass
    try:
        import torch

        parts.append(f"torch {torch.get_num_threads()}")
    except ImportError:
        pass
    return ", ".join(parts) or "neither installed"


def _to_vips(x: np.ndarray, work: Path) -> Path | None:
    """The gray image as a float TIFF, then as vips's own .v format (``vips copy``)."""
    from PIL import Image

    vips = common.tool("vips")
    if vips is None:
        return None
    tif = work / "gray.tif"
    Image.fromarray(x, mode="F").save(tif)
    out = work / "gray.v"
    subprocess.run([vips, "copy", str(tif), str(out)], check=True)
    tif.unlink()
    return out


if __name__ == "__main__":
    sys.exit(main())
