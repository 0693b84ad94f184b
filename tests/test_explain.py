"""``apply --explain``: what would be done, per input, and nothing written."""

from __future__ import annotations

import numpy as np
import pytest

import convcli
from conftest import write_png
from convcli.compute.engine import choose_method


def _files(path):
    return sorted(p.name for p in path.iterdir())


def test_an_image_explained_and_nothing_written(cli, tmp_path, photos):
    src = write_png(tmp_path / "coffee.png", photos["coffee"][:120, :160])
    before = _files(tmp_path)
    r = cli("apply", "-k", "gaussian:sigma=2", "-k", "sobel", str(src), "--explain")
    assert r.exit_code == 0, r.stderr
    assert _files(tmp_path) == before
    lines = r.stdout.splitlines()
    assert lines[0] == f"{src}: image 120x160x3 uint8"
    assert lines[1].startswith("  backend: ")
    text = r.stdout
    # the kernels after parsing: sizes, sums, ranks, each member of the bank
    assert "kernel gaussian:sigma=2: 17x17, sum 1, rank 1; 120x160 -> 120x160" in text
    assert "kernel sobel-x (in bank sobel): 3x3, sum 0, rank 1" in text
    assert "kernel sobel-y (in bank sobel): 3x3, sum 0, rank 1" in text
    # the method and why
    assert "method separable: a separable kernel: 2 passes of 1-D taps instead of 289" in text
    assert "  output: 120x160x3 uint8; rounded to nearest (ties to even), clipped to 0..255" in text
    assert "  memory: in memory" in text
    assert lines[-1] == f"  -> {tmp_path / 'coffee.gaussian-sigma2+sobel.png'}"


def test_the_method_explained_is_the_method_used(cli, tmp_path, rng):
    """A large non-separable kernel: the explanation's method is choose_method's."""
    matrix = rng.normal(size=(41, 41)).round(3).tolist()
    src = write_png(tmp_path / "a.png", rng.integers(0, 255, (300, 400), dtype=np.uint8))
    r = cli(
        "apply", "-k", str(matrix).replace(" ", ""), str(src), "--explain", "--backend", "scipy"
    )
    assert r.exit_code == 0, r.stderr
    chosen = choose_method((41, 41), 41, (300, 400), backend="scipy", dtype=np.float32)
    assert f"method {chosen.method}: {chosen.reason}" in r.stdout
    assert "rank 41" in r.stdout


def test_normalisation_and_range_mapping_shown(cli, tmp_path, rng):
    src = write_png(tmp_path / "a.png", rng.integers(0, 255, (30, 40), dtype=np.uint8))
    r = cli(
        "apply", "-k", "[[1,2,1]]", "--normalize", "--range", "abs", "--offset", "10", str(src),
        "--explain",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "1x3, sum 1, rank 1" in r.stdout  # normalised: [0.25, 0.5, 0.25]
    assert "0.25" in r.stdout and "0.5" in r.stdout
    assert "output: 30x40 uint8; absolute value" in r.stdout


def test_an_array_explained_with_its_destination(cli, tmp_path):
    r = cli("apply", "-k", "box-1d:size=4", "--mode", "valid", "[1,2,3,4,5,4,3,2,1]", "--explain")
    assert r.exit_code == 0, r.stderr
    assert "array 9 int64" in r.stdout or "array 9 float64" in r.stdout
    assert "output: 6 float64" in r.stdout
    assert "-> printed on stdout" in r.stdout
    out = tmp_path / "o.npy"
    r = cli("apply", "-k", "box", "[[1,2],[3,4]]", "-o", str(out), "--explain")
    assert r.exit_code == 0 and f"-> {out}" in r.stdout and not out.exists()


def test_a_stack_names_one_output_per_member(cli, tmp_path, rng):
    src = write_png(tmp_path / "a.png", rng.integers(0, 255, (30, 40), dtype=np.uint8))
    r = cli("apply", "-k", "sobel-x", "-k", "sobel-y", "--combine", "stack", str(src), "--explain")
    assert r.exit_code == 0, r.stderr
    assert "output: 2x30x40 uint8" in r.stdout
    assert f"-> {tmp_path / 'a.sobel-x.png'}" in r.stdout
    assert f"-> {tmp_path / 'a.sobel-y.png'}" in r.stdout


@pytest.mark.parametrize(
    "output, says",
    [
        ("o.tif", "memory: streamed in bands of about"),
        ("o.png", "memory: refused: it needs more memory than the budget of 4.0 MiB"),
    ],
)
def test_an_input_over_the_memory_budget(cli, tmp_path, output, says):
    tifffile = pytest.importorskip("tifffile")
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, np.zeros((2000, 3000), np.uint8))
    r = cli("apply", "-k", "sobel", str(src), "--memory", "4MiB", "-o", str(tmp_path / output),
            "--explain")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert says in r.stdout
    assert not (tmp_path / output).exists()


def test_explain_matches_what_apply_then_does(cli, tmp_path, rng):
    src = write_png(tmp_path / "a.png", rng.integers(0, 255, (50, 60, 3), dtype=np.uint8))
    args = [
        "apply",
        "-k",
        "gaussian:sigma=1.5",
        "--mode",
        "valid",
        str(src),
        "-d",
        str(tmp_path / "o"),
    ]
    planned = cli(*args, "--explain")
    target = planned.stdout.splitlines()[-1].removeprefix("  -> ")
    done = cli(*args)
    assert done.exit_code == 0 and done.stdout.strip() == target
    assert "output: 38x48x3 uint8" in planned.stdout  # 13x13 kernel
    assert convcli.read_image(target).shape == (38, 48, 3)
