"""fit and deconvolve read their inputs as apply does: stdin and --files-from boundedly, a
FIFO without a writer as empty, a closed stdin as one usage error; and since they take one
image an input, an animation is refused, never read as its first frame."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def _one_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convcli: error: "), stderr
    return lines[0]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_pair_list_is_refused(cli):
    r = cli("fit", "--size", "3", "--files-from", "/dev/zero")
    assert r.exit_code == 2
    assert "--files-from /dev/zero" in _one_error(r.stderr)


def test_a_pair_list_fifo_without_a_writer_does_not_wait(cli, tmp_path):
    fifo = tmp_path / "pairs"
    os.mkfifo(fifo)
    r = cli("fit", "--size", "3", "--files-from", str(fifo))
    assert r.exit_code == 2  # read as empty: no pairs
    assert "INPUT and a TARGET" in _one_error(r.stderr)


def test_deconvolve_refuses_stdin_that_is_no_image(cli):
    r = cli("deconvolve", "-k", "box", "-", "-o", "out.png", input=b"\0" * (1 << 20))
    assert r.exit_code == 1
    assert "<stdin>" in _one_error(r.stderr)


def test_deconvolve_with_a_closed_stdin(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "convcli", "deconvolve", "-k", "box", "-", "-o", "out.png"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.close(0),
    )
    assert r.returncode == 2
    assert "stdin is closed" in _one_error(r.stderr)
    assert not (tmp_path / "out.png").exists()


def _animation(path):
    frames = [Image.fromarray(np.full((12, 16), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)


def test_deconvolve_refuses_an_animation(cli, tmp_path):
    _animation(tmp_path / "a.gif")
    r = cli("deconvolve", "-k", "box", str(tmp_path / "a.gif"), "-o", str(tmp_path / "r.gif"))
    assert r.exit_code == 1
    assert "3 frames" in _one_error(r.stderr)
    assert not (tmp_path / "r.gif").exists()


def test_fit_refuses_an_animation(cli, tmp_path):
    _animation(tmp_path / "a.gif")
    _animation(tmp_path / "b.gif")
    out = tmp_path / "k.toml"
    r = cli("fit", "--size", "3", str(tmp_path / "a.gif"), str(tmp_path / "b.gif"), "-o", str(out))
    assert r.exit_code == 1
    assert "3 frames" in _one_error(r.stderr)
    assert not out.exists()


def test_deconvolve_checks_its_request_as_apply_does(cli, tmp_path, monkeypatch):
    """Once, before any input: an -o name contradicting --format, and nonsense limits."""
    _animation(tmp_path / "unused.gif")  # (never read: the request is refused first)
    r = cli(
        "deconvolve", "-k", "box", str(tmp_path / "unused.gif"), "-o", "q.jpg", "--format", "png"
    )
    assert r.exit_code == 2
    assert "--format" in _one_error(r.stderr)
    monkeypatch.setenv("CONVCLI_MAX_KERNELS", "-1")
    r = cli("deconvolve", "-k", "box", str(tmp_path / "unused.gif"), "-o", str(tmp_path / "r.png"))
    assert r.exit_code == 2
    assert "CONVCLI_MAX_KERNELS" in _one_error(r.stderr)
