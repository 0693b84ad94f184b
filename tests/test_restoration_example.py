"""examples/restoration.py runs and makes the README's picture, with the figures it quotes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT


@pytest.mark.slow
def test_restoration_picture_and_its_figures(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "restoration.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = out.stdout.splitlines()
    assert lines[-1] == str(tmp_path / "restoration.png")
    figures = dict(re.findall(r"PSNR (.+): ([0-9.]+) dB", out.stdout))
    blurred = float(figures.pop("blurred + noise"))
    assert len(figures) == 3
    for name, value in figures.items():  # the README: each gains 2.4 dB or more
        assert round(float(value) - blurred, 1) >= 2.4, name
    error = float(re.search(r"largest error ([0-9.e+-]+)", out.stdout).group(1))
    assert error < 1e-3  # the README: within 0.001 of the true kernel, from an 8-bit target
    with Image.open(tmp_path / "restoration.png") as sheet:
        assert sheet.size == (4 * 256, 2 * (256 + 28))


def test_committed_restoration_picture_exists():
    with Image.open(ROOT / "docs" / "restoration.png") as im:
        assert im.size[0] == 4 * 256
