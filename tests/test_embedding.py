"""A library safe to embed: importing or calling convcli changes nothing process-wide.

Pillow's decompression-bomb limit, the decoders' loggers, the warnings filters and file
descriptor 2 belong to the program that uses convcli. Only the command line, which owns its
process, changes them (convcli.cli.process), and only while a command runs.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convcli
from convcli.errors import InputError, LimitError
from convcli.io import decode
from convcli.io.decode import open_image, probe_image
from convcli.io.rows import TiffRows

tifffile = pytest.importorskip("tifffile")
HAS_CV2 = __import__("importlib").util.find_spec("cv2") is not None


def _state() -> dict[str, object]:
    """What convcli must leave as it found it."""
    loggers = {
        name: (log.level, list(log.handlers), log.propagate, log.disabled)
        for name, log in ((n, logging.getLogger(n)) for n in ("PIL", "tifffile"))
    }
    fd2 = os.fstat(2)
    return {
        "MAX_IMAGE_PIXELS": Image.MAX_IMAGE_PIXELS,
        "loggers": loggers,
        "filters": list(warnings.filters),
        "showwarning": warnings.showwarning,
        "fd2": (fd2.st_dev, fd2.st_ino),
        "stderr": sys.stderr,
    }


@pytest.fixture
def process_wide_calls(monkeypatch) -> list[str]:
    """Calls from convcli's modules that change process-wide state, even for a moment
    (``os.dup2`` on descriptor 2, the warnings filters), as ``module: function``."""
    calls: list[str] = []

    def spy(owner: object, name: str) -> None:
        real = getattr(owner, name)

        def recorded(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("convcli"):
                calls.append(f"{caller}: {name}")
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)

    for name in ("dup", "dup2"):
        spy(os, name)
    for name in ("simplefilter", "filterwarnings", "catch_warnings", "resetwarnings"):
        spy(warnings, name)
    return calls


def _images(tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    rgb = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    files = {}
    for name, fmt in [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.tif", "TIFF"), ("a.gif", "GIF")]:
        Image.fromarray(rgb).save(tmp / name, format=fmt)
        files[name] = tmp / name
    convcli.write_image((rgb.astype(np.uint16) * 257), tmp / "16.png")
    files["16.png"] = tmp / "16.png"
    tifffile.imwrite(tmp / "float.tif", rgb.astype(np.float32) / 255, photometric="rgb")
    files["float.tif"] = tmp / "float.tif"
    return files


def test_reading_and_writing_change_nothing_process_wide(tmp_path, process_wide_calls):
    files = _images(tmp_path)
    before = _state()
    for path in files.values():
        pixels = convcli.read_image(path)
        assert pixels.shape[:2] == (24, 32)
        probe_image(path)
        open_image(path.read_bytes(), "<stdin>")
        convcli.write_image(pixels, tmp_path / f"out-{path.name}")
    reader = TiffRows(files["a.tif"])
    try:
        assert reader.read(0, 5).shape == (5, 32, 3)
    finally:
        reader.close()
    assert _state() == before
    assert process_wide_calls == []


def test_refused_inputs_change_nothing_either(tmp_path, process_wide_calls):
    data = _images(tmp_path)["a.png"].read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "bad.png").write_bytes(_damaged(data))
    before = _state()
    for name in ("cut.png", "bad.png"):
        with pytest.raises(convcli.ConvcliError):
            convcli.read_image(tmp_path / name)
    assert _state() == before
    assert process_wide_calls == []


def _damaged(data: bytes) -> bytes:
    """The bytes with 16 of them flipped in the middle (in the compressed pixels)."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]


@pytest.mark.skipif(not HAS_CV2, reason="needs OpenCV")
def test_a_truncated_image_never_reaches_opencv(tmp_path, capfd, monkeypatch):
    """libpng, libjpeg and libtiff print on descriptor 2 about a truncated file; the library
    checks that the file holds all its data first, and leaves it to Pillow, which raises (or,
    for a PNG cut just before its IEND chunk, decodes it: OpenCV would fail, and print)."""
    import cv2

    decoded = []
    for name in ("imread", "imdecode"):
        monkeypatch.setattr(cv2, name, lambda *a, name=name: decoded.append(name))
    files = _images(tmp_path)
    for name in ("a.jpg", "a.tif", "a.png"):
        data = files[name].read_bytes()
        for cut in (data[:-200], data[:-12]):
            (tmp_path / f"cut-{name}").write_bytes(cut)
            if name == "a.png" and cut == data[:-12]:  # all but the IEND chunk
                assert convcli.read_image(tmp_path / f"cut-{name}").shape == (24, 32, 3)
                continue
            with pytest.raises(convcli.InputError):
                convcli.read_image(tmp_path / f"cut-{name}")
            with pytest.raises(convcli.InputError):
                open_image(cut, "<stdin>")
    assert decoded == []
    assert capfd.readouterr().err == ""


@pytest.fixture
def pillow_limit(monkeypatch):
    """Pillow's limit as a host program might set it: 100 pixels (it refuses over 200)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.delenv("CONVCLI_MAX_PIXELS", raising=False)


def _png(tmp: Path, side: int) -> Path:
    path = tmp / f"{side}.png"
    Image.fromarray(np.zeros((side, side), np.uint8)).save(path)
    return path


@pytest.mark.usefixtures("pillow_limit")
def test_pillow_refusing_an_image_convcli_allows_names_pillows_limit(tmp_path):
    path = _png(tmp_path, 20)  # 400 pixels: convcli allows 256 M, Pillow refuses over 200
    for call in (lambda: open_image(path), lambda: probe_image(path)):
        with pytest.raises(LimitError, match=r"20x20 = 400 pixels.*PIL\.Image\.MAX_IMAGE_PIXELS"):
            call()
    with pytest.raises(LimitError, match="MAX_IMAGE_PIXELS"):
        open_image(path.read_bytes(), "<stdin>")
    assert Image.MAX_IMAGE_PIXELS == 100  # the host's setting, untouched


@pytest.mark.usefixtures("pillow_limit")
def test_convcli_limit_is_named_first(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCLI_MAX_PIXELS", "300")
    path = _png(tmp_path, 20)
    for call in (lambda: open_image(path), lambda: probe_image(path)):
        with pytest.raises(LimitError, match=r"over the limit of 300 pixels.*CONVCLI_MAX_PIXELS"):
            call()


@pytest.mark.usefixtures("pillow_limit")
def test_pillow_warns_the_host_where_its_limit_only_warns(tmp_path):
    path = _png(tmp_path, 12)  # 144 pixels: over 100, Pillow warns; under 200, it decodes
    with pytest.warns(Image.DecompressionBombWarning):
        assert convcli.read_image(path).shape == (12, 12)


def test_the_command_line_turns_pillows_limit_off_while_it_runs(cli, tmp_path, pillow_limit):
    path = _png(tmp_path, 20)
    before = _state()
    r = cli("apply", "-k", "box", "-j", "1", "-o", str(tmp_path / "o.png"), str(path))
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    assert _state() == before  # put back when the command ended


def test_a_16_bit_colour_png_without_opencv_is_refused_not_lowered(cli, tmp_path, monkeypatch):
    """16-bit colour PNG without OpenCV: Pillow alone would keep 8 of the 16 bits, which
    would be data lost, so the library and the command line (--explain too) refuse it."""
    rgb16 = (np.arange(24 * 32 * 3, dtype=np.uint16).reshape(24, 32, 3)) * 50
    path = tmp_path / "16.png"
    convcli.write_image(rgb16, path)
    monkeypatch.setattr(decode, "has_opencv", lambda: False)
    with pytest.raises(InputError, match=r"16-bit colour PNG.*OpenCV"):
        convcli.read_image(path)
    for extra in ((), ("--explain",)):
        r = cli("apply", "-k", "box", "-j", "1", "-o", str(tmp_path / "o.png"), str(path), *extra)
        assert r.exit_code == 1, r.stderr
        assert r.stderr.startswith("convcli: error: ") and "16-bit colour PNG" in r.stderr
        assert r.stdout == ""
        assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(not HAS_CV2, reason="needs OpenCV (whose libpng prints on stderr)")
def test_the_command_line_keeps_c_libraries_off_stderr(tmp_path):
    """A PNG whose data is damaged past its header: libpng inside OpenCV prints on file
    descriptor 2; the command line prints its one error line only."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (24, 32, 3), np.uint8)).save(
        buffer, format="PNG"
    )
    (tmp_path / "bad.png").write_bytes(_damaged(buffer.getvalue()))
    proc = subprocess.run(
        [sys.executable, "-m", "convcli", "apply", "-k", "box", "-o", "o.png", "bad.png"],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    lines = proc.stderr.decode("utf-8", "replace").splitlines()
    assert proc.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("convcli: error: bad.png: "), lines
