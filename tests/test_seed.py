"""The seed notebook (the teaching notebook convcli grew out of): every computation
reproduced through convcli and checked against numpy / scipy / torch computed here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from conftest import ROOT

EXAMPLES = ROOT / "examples"
SIGNAL = [1, 2, 3, 4, 5, 4, 3, 2, 1]
IMAGE = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
SEED_GAUSSIAN = np.array(
    [
        [0.04, 0.08, 0.12, 0.08, 0.04],
        [0.08, 0.16, 0.24, 0.16, 0.08],
        [0.12, 0.24, 0.36, 0.24, 0.12],
        [0.08, 0.16, 0.24, 0.16, 0.08],
        [0.04, 0.08, 0.12, 0.08, 0.04],
    ]
)
LAYER_WEIGHTS = np.array(
    [
        np.ones((3, 3)) / 9,
        [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
        [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
    ]
)


def square16() -> np.ndarray:
    x = np.zeros((16, 16))
    x[0:4, 0:4] = 1
    return x


def run_json(cli, *args: str) -> np.ndarray:
    result = cli("apply", *args, "-o", "-", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return np.array(json.loads(result.stdout))


@pytest.mark.parametrize(
    "kernel, values",
    [
        ("box-1d:size=4", np.ones(4) / 4),
        ("prewitt-1d", [1, 0, -1]),
        ("gaussian-1d-seed", [0.25, 0.5, 0.75, 0.5, 0.25]),
    ],
)
def test_1d_convolutions(cli, kernel, values):
    got = run_json(cli, "-k", kernel, "--mode", "valid", json.dumps(SIGNAL))
    np.testing.assert_allclose(got, np.convolve(SIGNAL, values, mode="valid"), rtol=1e-15)


def test_running_average_prints_like_the_notebook(cli):
    result = cli("apply", "-k", "box-1d:size=4", "--mode", "valid", json.dumps(SIGNAL))
    assert result.stdout.strip() == "[2.5 3.5 4.  4.  3.5 2.5]"
    assert str(np.convolve(SIGNAL, np.ones(4) / 4, mode="valid")) == result.stdout.strip()


@pytest.mark.parametrize(
    "kernel, matrix",
    [
        ("box", np.ones((3, 3)) / 9),
        ("prewitt-x", [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]),
        ("sobel-x", [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
        ("gaussian-5x5-seed", SEED_GAUSSIAN),
    ],
)
def test_convolve2d_full(cli, kernel, matrix):
    got = run_json(cli, "-k", kernel, "--mode", "full", "--boundary", "fill", json.dumps(IMAGE))
    want = signal.convolve2d(IMAGE, matrix, mode="full")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


def _layer_reference() -> np.ndarray:
    """nn.Conv2d(1, 3, 3) with zero bias is a valid cross-correlation per output channel."""
    x = square16()
    return np.stack([signal.correlate2d(x, w, mode="valid") for w in LAYER_WEIGHTS])


def _layer_from_the_bank_file(cli) -> np.ndarray:
    """examples/seed/conv-layer.toml applied as the layer: correlation, valid."""
    return run_json(
        cli,
        "-k",
        str(EXAMPLES / "seed" / "conv-layer.toml"),
        "--correlate",
        "--mode",
        "valid",
        str(EXAMPLES / "seed" / "square16.csv"),
    )


def test_conv_layer_bank_file(cli):
    got = _layer_from_the_bank_file(cli)
    assert got.shape == (3, 14, 14)
    np.testing.assert_allclose(got, _layer_reference(), rtol=1e-14, atol=1e-14)


def test_conv_layer_inline(cli):
    specs = []
    for w in LAYER_WEIGHTS:
        specs += ["-k", json.dumps(np.asarray(w).tolist())]
    got = run_json(
        cli,
        "--combine",
        "stack",
        "--correlate",
        "--mode",
        "valid",
        *specs,
        str(EXAMPLES / "seed" / "square16.csv"),
    )
    np.testing.assert_allclose(got, _layer_reference(), rtol=1e-14, atol=1e-14)


@pytest.mark.torch
def test_conv_layer_matches_torch_itself(cli):
    torch = pytest.importorskip("torch")
    model = torch.nn.Conv2d(in_channels=1, out_channels=3, kernel_size=3)
    weights = torch.zeros(model.out_channels, model.in_channels, *model.kernel_size)
    for i, w in enumerate(LAYER_WEIGHTS):
        weights[i, 0] = torch.Tensor(np.asarray(w))
    model.weight = torch.nn.Parameter(weights)
    model.bias = torch.nn.Parameter(torch.zeros(3))
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 0:4, 0:4] = 1
    want = model(x).detach().numpy()[0]
    got = _layer_from_the_bank_file(cli)
    assert got.shape == want.shape == (3, 14, 14)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # torch works in float32


@pytest.mark.slow
def test_the_example_script_runs(tmp_path):
    if shutil.which("convcli") is None:
        pytest.skip("the convcli script is not on PATH")
    out = subprocess.run(
        [str(EXAMPLES / "seed-notebook.sh")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert "[2.5 3.5 4.  4.  3.5 2.5]" in out.stdout
    assert "[ 2.  2.  2.  0. -2. -2. -2.]" in out.stdout
    assert "[6.75 8.5  9.25 8.5  6.75]" in out.stdout
    assert out.stdout.count("# convolve2d full") == 4
    assert out.stderr == ""
    assert Path(EXAMPLES / "seed" / "square16.csv").exists()
