"""Shared fixtures: references, real photographs, and an in-process CLI runner."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from convcli.vocabulary import Boundary, Method, Mode, values

ROOT = Path(__file__).resolve().parents[1]

# Isolate every test from the developer's own kernels and terminal.
os.environ.pop("CONVCLI_KERNEL_PATH", None)
os.environ.setdefault("XDG_CONFIG_HOME", str(ROOT / "tests" / "_no_config"))
os.environ["NO_COLOR"] = "1"


def peer_tool(name: str, signature: str) -> str | None:
    """The path of a peer's command-line tool, or None where it is absent or is not the peer:
    some machines put a stand-in called ``convert`` on the path that is not ImageMagick."""
    path = shutil.which(name)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if signature in done.stdout + done.stderr else None


#: ImageMagick's convert and libvips' vips, or None where not installed
CONVERT = peer_tool("convert", "Version: ImageMagick")
VIPS = peer_tool("vips", "vips")


#: every mode, boundary and (concrete) method, for parametrizing
MODES = values(Mode)
BOUNDARIES = values(Boundary)
METHODS = tuple(m for m in values(Method) if m != "auto")

#: named kernels of every kind, for comparing a backend with scipy's
PARITY_KERNELS = [
    "sobel-x",
    "box:size=4",  # even
    "laplacian",  # rank 2
    "gaussian:sigma=2",  # separable 17x17
    "box-1d:size=4",  # 1-D
]


def close32(got: np.ndarray, want: np.ndarray) -> None:
    """float32 agreement relative to the scale of the data."""
    assert got.shape == want.shape
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


BOUNDARY_TO_NUMPY = {
    "fill": "constant",
    "reflect": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "wrap": "wrap",
}


def reference(
    x: np.ndarray,
    k: np.ndarray,
    mode: str,
    boundary: str,
    fill: float = 0.0,
    correlate: bool = False,
) -> np.ndarray:
    """A slow, obviously correct 2-D convolution in float64: numpy.pad by the SPEC's boundary
    picture, then a sum of shifted copies (valid correlation with the flipped kernel)."""
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 1:
        k = k[np.newaxis]
    w = k if correlate else k[::-1, ::-1]
    kh, kw = w.shape
    # the weight on the output pixel: convolution uses scipy's (k-1)//2 on the flipped kernel,
    # correlation numpy's k//2
    cy = kh // 2 if correlate else kh - 1 - (kh - 1) // 2
    cx = kw // 2 if correlate else kw - 1 - (kw - 1) // 2
    pads = {
        "full": ((kh - 1, kh - 1), (kw - 1, kw - 1)),
        "same": ((cy, kh - 1 - cy), (cx, kw - 1 - cx)),
        "valid": ((0, 0), (0, 0)),
    }[mode]
    extra = {"constant_values": fill} if boundary == "fill" else {}
    xp = np.pad(x, pads, mode=BOUNDARY_TO_NUMPY[boundary], **extra)
    h, wd = xp.shape[0] - kh + 1, xp.shape[1] - kw + 1
    out = np.zeros((h, wd))
    for i in range(kh):
        for j in range(kw):
            out += w[i, j] * xp[i : i + h, j : j + wd]
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261126)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs shipped with scikit-image (no network)."""
    data = pytest.importorskip("skimage.data")
    return {"camera": data.camera(), "astronaut": data.astronaut(), "coffee": data.coffee()}


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``convcli ARGS`` in-process through the same entry point as the script, with
    stdout and stderr captured separately (stdin from ``input=`` bytes)."""
    from convcli.cli import app

    def run(*args: str, input: bytes | None = None, cwd: Path | None = None) -> Result:
        out, err = io.BytesIO(), io.BytesIO()
        out_text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
        err_text = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
        in_text = io.TextIOWrapper(io.BytesIO(input or b""), encoding="utf-8")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "stdout", out_text)
            mp.setattr(sys, "stderr", err_text)
            mp.setattr(sys, "stdin", in_text)
            if cwd is not None:
                mp.chdir(cwd)
            code = app(args=list(args), prog_name="convcli", standalone_mode=False)
        return Result(
            int(code or 0),
            out.getvalue().decode("utf-8", "replace"),
            err.getvalue().decode("utf-8", "replace"),
            out.getvalue(),
        )

    return run


def write_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    from PIL import Image

    Image.fromarray(pixels, mode=mode).save(path) if mode else Image.fromarray(pixels).save(path)
    return path
