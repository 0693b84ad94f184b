"""The GPU path: ``--backend torch --device cuda`` against torch itself on the GPU and OpenCV
on the CPU, in one short run (about a minute on a GPU machine).

    python benchmarks/gpu.py            # skips cleanly (exit 0) where CUDA is not available
    python benchmarks/gpu.py --quick    # a 1 MP image, one round
    python benchmarks/gpu.py --quick --device cpu   # the script's own check, without a GPU

On a 12 MP float32 plane (the luminance of the 12 MP photo of benchmarks/data.py, or a
seeded random plane when that file is missing): ``convcli.convolve(..., backend="torch",
device="cuda")`` (numpy in, numpy out: the transfers included), ``F.conv2d`` on tensors
already on the GPU (the device's own speed, no transfers), the same with the transfers, and
``convcli.convolve`` with OpenCV on the CPU; for ``sobel-x`` (3x3), ``gaussian:sigma=2``
(17x17, separable) and a random 51x51 kernel (FFT). Medians over interleaved rounds after a
warm-up (CUDA start-up and cuDNN's algorithm search are not counted; the first-call time
is shown apart). Then the whole command, ``convcli apply --backend torch --device cuda`` on
the 12 MP JPEG, against the same command on the CPU. Every result is checked against the
CPU's (max abs difference, float32 tolerance).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

SPECS = ("sobel-x", "gaussian:sigma=2", "random51")


def cuda_or_none(device: str) -> str | None:
    """Why the GPU benchmark cannot run here, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if device == "cuda" and not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def plane(quick: bool) -> np.ndarray:
    path = common.HERE / "_data" / "big" / "photo12mp.tif"
    if path.exists():
        from PIL import Image

        x = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    else:
        x = np.random.default_rng(0).random((3000, 4000), dtype=np.float32)
    return np.ascontiguousarray(x[:1000, :1000]) if quick else x


def kernel_of(spec: str) -> object:
    if spec == "random51":
        return np.random.default_rng(51).standard_normal((51, 51)).astype(np.float32) / 51
    return spec


def torch_peer(x: np.ndarray, spec: str, device: str):  # type: ignore[no-untyped-def]
    """F.conv2d on the GPU with the kernel convcli applies (flipped), reflect-padded."""
    import torch
    import torch.nn.functional as F

    from convcli.compute.engine import as_operation

    k = as_operation(kernel_of(spec)).as_2d()[::-1, ::-1].copy()
    kh, kw = k.shape
    weight = torch.from_numpy(k.astype(np.float32))[None, None].to(device)
    on_gpu = torch.from_numpy(x)[None, None].to(device)
    pads = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)

    def resident() -> object:
        out = F.conv2d(F.pad(on_gpu, pads, mode="replicate"), weight)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    def transfers() -> np.ndarray:
        t = torch.from_numpy(x)[None, None].to(device)
        return F.conv2d(F.pad(t, pads, mode="replicate"), weight)[0, 0].cpu().numpy()

    return resident, transfers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--device", default="cuda", choices=("cuda", "cpu"), help="cpu: check the script itself"
    )
    args = parser.parse_args(argv)
    device = args.device
    report = common.Report("convcli benchmarks: the GPU path")
    why = cuda_or_none(device)
    if why is not None:
        report.add(f"## GPU path (`--backend torch --device cuda`): skipped, {why}")
        report.write(args.out, "python benchmarks/gpu.py")
        return 0
    import torch

    import convcli

    x = plane(args.quick)
    rounds = 1 if args.quick else args.rounds
    name = torch.cuda.get_device_name(0) if device == "cuda" else "the CPU (a check, not a GPU)"
    report.add(f"## GPU path on {name}: {x.shape[1]}x{x.shape[0]} float32, in process")
    report.add()
    report.add(
        "Median ms over interleaved rounds (after a warm-up call, whose time is the first "
        "column). 'F.conv2d resident' has its tensors on the GPU already; 'F.conv2d + "
        "transfers' and convcli move numpy arrays there and back."
    )
    report.add()
    rows = []
    for spec in SPECS:
        kernel = kernel_of(spec)
        print(f"gpu: {spec} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        gpu = convcli.convolve(x, kernel, backend="torch", device=device)
        first = time.perf_counter() - t0
        cpu = convcli.convolve(x, kernel, backend="opencv")
        resident, transfers = torch_peer(x, spec, device)
        calls = {
            "convcli cuda": lambda k=kernel: convcli.convolve(x, k, backend="torch", device=device),
            "F.conv2d resident": resident,
            "F.conv2d + transfers": transfers,
            "convcli opencv (CPU)": lambda k=kernel: convcli.convolve(x, k, backend="opencv"),
        }
        times = common.interleaved(calls, rounds, budget=20.0)
        rows.append(
            (
                spec,
                common.fmt_ms(first),
                *(common.fmt_ms(common.median(times[c])) for c in calls),
                common.fmt_ratio(
                    common.paired_ratio(times, "convcli cuda", "F.conv2d + transfers")
                ),
                f"{float(np.max(np.abs(gpu - cpu))):.1e}",
            )
        )
    report.table(
        [
            "kernel",
            "first call ms",
            "convcli cuda ms",
            "F.conv2d resident ms",
            "F.conv2d + transfers ms",
            "convcli opencv (CPU) ms",
            "convcli / F.conv2d + transfers",
            "max |cuda - CPU|",
        ],
        rows,
    )
    report.add(command_rows(args.quick, device))
    report.write(args.out, "python benchmarks/gpu.py")
    return 0


def command_rows(quick: bool, device: str) -> str:
    """The whole command on the 12 MP JPEG: cuda against the CPU."""
    photo = common.HERE / "_data" / "big" / "photo12mp.jpg"
    if not photo.exists():
        return "(whole command: skipped, benchmarks/_data/big/photo12mp.jpg is missing)\n"
    cmd = common.convcli_cmd()
    rows = []
    with tempfile.TemporaryDirectory(prefix="convcli-gpu-") as tmp:
        for spec in ("sobel-x", "gaussian:sigma=2"):
            runs = {}
            for label, extra in (
                ("cuda", ["--backend", "torch", "--device", device]),
                ("cpu", []),
            ):
                out = Path(tmp) / f"{label}.jpg"
                argv = [*cmd, "apply", "-q", "-k", spec, str(photo), "-o", str(out), *extra]
                runs[label] = common.best_of(lambda a=argv: common.run_cmd(a), 1 if quick else 3)
            rows.append(
                (
                    spec,
                    common.fmt_s(runs["cuda"].seconds),
                    common.fmt_s(runs["cpu"].seconds),
                    runs["cuda"].error or runs["cpu"].error or "",
                )
            )
    return "Whole command on the 12 MP JPEG (best of 3, s):\n\n" + common.md_table(
        ["kernel", "--device cuda", "CPU (auto)", "error"], rows
    )


if __name__ == "__main__":
    sys.exit(main())
