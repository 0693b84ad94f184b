"""The example scripts run and make what the README shows."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT


@pytest.mark.slow
def test_gallery_renders_every_builtin_kernel(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "gallery.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.split() == [str(tmp_path / "gallery.png"), str(tmp_path / "seed-kernels.png")]
    import convcli

    builtins = [i for i in convcli.list_kernels() if i.where == "built-in"]
    with Image.open(tmp_path / "gallery.png") as sheet:
        columns = 6
        rows = -(-len(builtins) // columns)  # the original replaces identity
        assert sheet.size[1] > rows * 224
    with Image.open(tmp_path / "seed-kernels.png") as seed:
        assert seed.size[0] > 6 * 224


def test_committed_pictures_exist():
    for name in ("gallery.png", "seed-kernels.png"):
        with Image.open(ROOT / "docs" / name) as im:
            assert im.size[0] > 1000


def test_frames_picture_shows_every_frame_blurred(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "frames.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.split() == [str(tmp_path / "frames.png")]
    with (
        Image.open(tmp_path / "frames.png") as made,
        Image.open(ROOT / "docs" / "frames.png") as doc,
    ):
        assert made.size == doc.size == (110 + 4 * (192 + 6), 2 * (192 + 6))
