"""Outputs that are not ordinary: names that choose a format, devices and FIFOs, closed and
full standard streams, part files of other writers, --in-place's file metadata, printing huge
results, the clipping warning, and outputs that do not fit their disk.

The bad-input cases that end in one error line are in tests/test_hostile.py (its section
"second round: outputs, streams, printing and the library"); these are the cases that
succeed, or need a real process, a device or another writer's files to check.
"""

from __future__ import annotations

import io
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

import convcli
from conftest import write_png
from convcli.errors import OutputError
from convcli.io import atomic

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def camera(tmp_path, photos) -> Path:
    path = tmp_path / "in.png"
    gray = photos["astronaut"][:96, :128].mean(axis=2).astype(np.uint8)
    write_png(path, gray)
    return path


def parts(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def convcli_process(args: list[str], cwd: Path, shell_redirect: str = "", **kw):
    """``python -m convcli ARGS`` through a shell, so that descriptors can be closed
    (``>&-``) or redirected (``> /dev/full``)."""
    import shlex

    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "convcli", *args])
    return subprocess.run(
        f"{command} {shell_redirect}",
        shell=True,
        cwd=cwd,
        capture_output=True,
        timeout=120,
        **kw,
    )


# -- names that choose the format ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "pil_format"),
    [("{stem}.x.tif", "TIFF"), ("{stem}.x.webp", "WEBP"), ("{stem}.x.jpg", "JPEG")],
)
def test_the_extension_of_a_name_decides_its_format(cli, camera, template, pil_format):
    r = cli("apply", "-k", "box", "--name", template, str(camera))
    assert r.exit_code == 0, r.stderr
    out = camera.parent / template.format(stem="in")
    assert r.stdout == f"{out}\n"
    with Image.open(out) as im:
        assert im.format == pil_format  # was PNG bytes in a .tif / .webp / .jpg file


def test_a_name_ending_in_ext_keeps_the_inputs_format(cli, camera):
    r = cli("apply", "-k", "box", "--name", "{stem}-blurred{ext}", str(camera))
    assert r.exit_code == 0, r.stderr
    with Image.open(camera.parent / "in-blurred.png") as im:
        assert im.format == "PNG"


def test_depth_float_without_output_writes_a_float_tiff(cli, camera):
    """The README: --depth float writes a float32 TIFF holding the raw result."""
    tifffile = pytest.importorskip("tifffile")
    r = cli("apply", "-k", "gaussian:sigma=1", "--depth", "float", str(camera))
    assert r.exit_code == 0, r.stderr
    out = camera.parent / "in.gaussian-sigma1.tif"
    assert r.stdout == f"{out}\n"
    got = tifffile.imread(out)
    assert got.dtype == np.float32
    pixels = np.asarray(Image.open(camera), np.float64)
    want = scipy.ndimage.gaussian_filter(pixels, 1.0, mode="reflect")
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_an_int32_colour_tiff_result_is_written_as_tiff(cli, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    pixels = (np.random.default_rng(2).random((10, 14, 3)) * 60000).astype(np.int32)
    tifffile.imwrite(tmp_path / "rgb.tif", pixels, photometric="rgb")
    r = cli("apply", "-k", "box", str(tmp_path / "rgb.tif"), "-o", str(tmp_path / "o.tif"))
    assert r.exit_code == 0, r.stderr  # was "internal error: TypeError"
    got = tifffile.imread(tmp_path / "o.tif")
    assert got.dtype == np.int32 and got.shape == pixels.shape
    for c in range(3):
        want = scipy.ndimage.uniform_filter(pixels[:, :, c].astype(np.float64), 3, mode="reflect")
        np.testing.assert_array_equal(got[:, :, c], np.clip(np.rint(want), 0, 65535))


# -- outputs that are not regular files ---------------------------------------------------------
def test_dev_null_stays_a_device_and_nothing_is_listed(cli, camera):
    before = os.stat("/dev/null")
    r = cli("apply", "-k", "box", str(camera), "-o", "/dev/null", "--format", "png")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""  # a device written to is no file written
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert not [n for n in os.listdir("/dev") if n.endswith(".part")]


def test_dev_stdout_is_written_as_a_stream(tmp_path, camera):
    cli_out = convcli_process(
        ["apply", "-k", "box", str(camera), "-o", "/dev/stdout", "--format", "png"], tmp_path
    )
    assert cli_out.returncode == 0, cli_out.stderr
    reference = convcli.filter_image(np.asarray(Image.open(camera)), "box").pixels
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(cli_out.stdout))), reference)
    assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)


def test_dev_stdout_redirected_to_a_file(tmp_path, camera):
    r = convcli_process(
        ["apply", "-k", "box", str(camera), "-o", "/dev/stdout", "--format", "png"],
        tmp_path,
        shell_redirect="> redirected.png",
    )
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "redirected.png") as im:
        assert im.size == (128, 96)
    assert parts(tmp_path) == []


def test_a_fifo_output_is_written_as_a_stream(cli, tmp_path, camera):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    r = cli("apply", "-k", "box", str(camera), "-o", str(fifo))
    reader.join(30)
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    reference = convcli.filter_image(np.asarray(Image.open(camera)), "box").pixels
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(received[0]))), reference)
    assert parts(tmp_path) == []


# -- closed and full standard streams -----------------------------------------------------------
def test_closed_stdout_is_one_usage_error(tmp_path, camera):
    r = convcli_process(["apply", "-k", "box", str(camera), "-d", "out"], tmp_path, ">&-")
    assert r.returncode == 2
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convcli: error: stdout is closed"), lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "-k", "box-1d:size=2", "[1,2,3]"],  # a printed array
        ["apply", "-k", "box", "{camera}", "-o", "-", "--format", "png"],  # image bytes
        ["apply", "-k", "box", "{camera}", "-d", "out"],  # the names of the files written
        ["list-kernels"],
        ["show-kernel", "sobel"],
        ["show-kernel", "sobel-x", "--format", "vips"],
    ],
)
def test_stdout_on_a_full_disk_is_one_error_line(tmp_path, camera, args):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    args = [a.replace("{camera}", str(camera)) for a in args]
    r = convcli_process(args, tmp_path, "> /dev/full")
    assert r.returncode == 1
    lines = r.stderr.decode().splitlines()
    assert lines == ["convcli: error: stdout: cannot write the output: No space left on device"]


# -- part files: another writer's are never removed, stale ones always --------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _part(directory: Path, output: str, pid: int, host: str = atomic.HOST_TAG) -> Path:
    path = directory / f".{output}.{pid}-{host}cafe.part"
    path.write_bytes(b"someone's half-written output")
    return path


def test_writing_an_output_removes_no_other_writers_part_files(cli, tmp_path, camera):
    """The issue's case: writing out/in.box.png deleted the part file of the output
    in.box.png.999999-zz.png; now a part file is removed only when its own process is gone."""
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keep = [
            out / ".in.box.png.999999-zz.png.4242-cafe0001.part",  # another machine's tag
            _part(out, "in.box.png", sleeper.pid),  # a live writer of the same output
            _part(out, "other.png", sleeper.pid),
            _part(
                out, "in.box.png", _dead_pid(), host="ffff" if atomic.HOST_TAG != "ffff" else "eeee"
            ),
        ]
        keep[0].write_bytes(b"x")
        stale = [_part(out, "in.box.png", _dead_pid()), _part(out, "never.png", _dead_pid())]
        r = cli("apply", "-k", "box", str(camera), "-d", str(out))
        assert r.exit_code == 0, r.stderr
        for path in keep:
            assert path.exists(), path.name
        for path in stale:
            assert not path.exists(), path.name
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_zombie_writer_is_gone():
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(200):  # until it has exited (it stays a zombie: never waited for)
            with open(f"/proc/{zombie.pid}/stat", "rb") as fh:
                if fh.read().rpartition(b")")[2].split()[0] == b"Z":
                    break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the child did not exit")
        assert not atomic._alive(zombie.pid)
        assert atomic._alive(os.getpid())
    finally:
        zombie.wait()


def test_a_resumed_batch_sweeps_the_part_files_of_outputs_it_skips(cli, tmp_path, camera):
    """After kill -9 and --skip-existing, a part file of an output that exists (or is
    never written again) must not stay forever."""
    out = tmp_path / "out"
    r = cli("apply", "-k", "box", str(camera), "-d", str(out))
    assert r.exit_code == 0
    atomic.forget_sweeps()  # a new run: a fresh process
    stale = [_part(out, "in.box.png", _dead_pid()), _part(out, "gone.png", _dead_pid())]
    r = cli("apply", "-k", "box", "--skip-existing", str(camera), "-d", str(out))
    assert r.exit_code == 0 and r.stdout == "", r.stderr
    assert not any(p.exists() for p in stale)
    assert sorted(os.listdir(out)) == ["in.box.png"]


def test_a_250_character_output_name_is_written(cli, tmp_path, camera):
    name = "n" * 246 + ".png"
    r = cli("apply", "-k", "box", str(camera), "-o", str(tmp_path / name))
    assert r.exit_code == 0, r.stderr  # its part name had 270 bytes: "File name too long"
    assert (tmp_path / name).is_file() and parts(tmp_path) == []
    for long_name in (name, "é" * 127 + ".png"):
        part = atomic.part_name(long_name)
        assert len(os.fsencode(part)) <= 255
        assert atomic.part_name(long_name) != part  # still unique per writer


# -- --in-place keeps the file's metadata; links -------------------------------------------------
def _box_once(path: Path) -> np.ndarray:
    return convcli.filter_image(np.asarray(Image.open(path)), "box").pixels


def test_in_place_keeps_the_mode(cli, camera):
    camera.chmod(0o600)
    r = cli("apply", "-k", "box", "--in-place", str(camera))
    assert r.exit_code == 0, r.stderr
    assert stat.S_IMODE(camera.stat().st_mode) == 0o600  # was 0644


@pytest.mark.skipif(not ROOT_USER, reason="giving a file to another user needs root")
def test_in_place_keeps_owner_and_group(cli, camera):
    os.chown(camera, 1234, 4321)
    r = cli("apply", "-k", "box", "--in-place", str(camera))
    assert r.exit_code == 0, r.stderr
    st = camera.stat()
    assert (st.st_uid, st.st_gid) == (1234, 4321)  # was root's


def test_an_output_written_over_keeps_its_mode(cli, camera):
    out = camera.parent / "out.png"
    out.write_bytes(b"an older result")
    out.chmod(0o640)
    r = cli("apply", "-k", "box", str(camera), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    np.testing.assert_array_equal(np.asarray(Image.open(out)), _box_once(camera))


def test_an_output_that_is_a_symlink_is_followed(cli, camera):
    target = camera.parent / "target.png"
    target.write_bytes(b"an older result")
    link = camera.parent / "out.png"
    link.symlink_to(target.name)
    r = cli("apply", "-k", "box", str(camera), "-o", str(link))
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink()
    np.testing.assert_array_equal(np.asarray(Image.open(target)), _box_once(camera))
    assert parts(camera.parent) == []


def test_in_place_follows_a_symlink(cli, camera):
    link = camera.parent / "link.png"
    link.symlink_to(camera.name)
    expected = _box_once(camera)
    r = cli("apply", "-k", "box", "--in-place", str(link))
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == camera.name  # still the link
    np.testing.assert_array_equal(np.asarray(Image.open(camera)), expected)


def test_in_place_on_a_hard_link_leaves_the_other_name_as_it_was(cli, camera):
    """As the README says: the file is replaced by a new one, so another hard link keeps
    the original content (nothing is lost; the names no longer share one file)."""
    other = camera.parent / "other.png"
    os.link(camera, other)
    original = other.read_bytes()
    expected = _box_once(camera)
    r = cli("apply", "-k", "box", "--in-place", str(camera))
    assert r.exit_code == 0, r.stderr
    assert other.read_bytes() == original
    np.testing.assert_array_equal(np.asarray(Image.open(camera)), expected)


def test_in_place_takes_a_file_named_twice_once(cli, camera):
    link = camera.parent / "alias.png"
    link.symlink_to(camera.name)
    expected = _box_once(camera)
    r = cli("apply", "-k", "box", "--in-place", "-j", "2", str(camera), str(camera), str(link))
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(camera)), expected)  # not twice
    assert r.stdout.splitlines() == [str(camera)]


# -- printing ------------------------------------------------------------------------------------
def test_print_on_an_image_prints_its_numbers_summarised(cli, tmp_path, photos):
    camera = tmp_path / "in.png"
    write_png(camera, photos["astronaut"][:400, :320].mean(axis=2).astype(np.uint8))
    r = cli("apply", "-k", "box", "--print", str(camera))
    assert r.exit_code == 0, r.stderr
    assert "..." in r.stdout and len(r.stdout) < 5000  # was 512 blank lines
    assert r.stdout.strip().startswith("[[")
    assert "printed summarised; write it whole with -o" in r.stderr
    assert sorted(os.listdir(camera.parent)) == ["in.png"]  # nothing written


def test_print_on_a_small_image_is_a_table_of_its_values(cli, tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    write_png(tmp_path / "tiny.png", pixels)
    r = cli("apply", "-k", "identity", "--print", str(tmp_path / "tiny.png"))
    assert r.exit_code == 0, r.stderr
    rows = [[float(v) for v in line.split()] for line in r.stdout.splitlines()]
    np.testing.assert_array_equal(rows, pixels)
    assert r.stderr == ""


def test_a_table_wider_than_the_terminal_is_printed_as_numpy_prints_it(cli, tmp_path):
    wide = np.random.default_rng(0).random((3, 60))
    np.save(tmp_path / "wide.npy", wide)
    r = cli("apply", "-k", "identity", "--print", str(tmp_path / "wide.npy"))
    assert r.exit_code == 0
    assert r.stdout.startswith("[[")
    assert r.stderr == ""  # every number is printed: nothing to say


def test_a_table_of_more_than_ten_thousand_cells_is_numpys_text(cli, tmp_path):
    np.save(tmp_path / "tall.npy", np.ones((20_001, 1)))
    r = cli("apply", "-k", "identity", "--print", str(tmp_path / "tall.npy"))
    assert r.exit_code == 0
    assert r.stdout.startswith("[[1.]") and r.stderr == ""


def test_printing_a_huge_result_is_summarised(cli, tmp_path):
    """10^7 numbers took gigabytes and never finished: above 100,000 numbers the result is
    summarised as numpy summarises it, and a note says how to write it whole."""
    signal_ = np.arange(300_000, dtype=np.float64)
    np.save(tmp_path / "long.npy", signal_)
    r = cli("apply", "-k", "box-1d:size=2", "--mode", "valid", str(tmp_path / "long.npy"))
    assert r.exit_code == 0, r.stderr
    text = r.stdout.strip()
    assert len(text) < 500 and "..." in text
    want = np.convolve(signal_, [0.5, 0.5], mode="valid")
    with np.printoptions(threshold=1000, edgeitems=3, linewidth=120):
        assert text == str(want)  # numpy's own summary
    assert "(.npy, .csv, .txt, .json)" in r.stderr
    quiet = cli("apply", "-k", "box-1d:size=2", "-q", str(tmp_path / "long.npy"))
    assert quiet.stderr == ""


def test_a_result_up_to_the_limit_is_printed_whole(cli):
    r = cli("apply", "-k", "box-1d:size=1", "[1.5,2.5,3.5]")
    assert r.exit_code == 0
    assert r.stdout == "[1.5 2.5 3.5]\n" and r.stderr == ""


# -- the clipping warning ------------------------------------------------------------------------
def _clip_shares(result: np.ndarray) -> tuple[float, float, float, float]:
    """Independently: the share clipped, the magnitude lost, and what abs / offset 50%
    would clip, of float results in 0..255 units."""
    low, high = -0.5, 255.5
    clipped = np.count_nonzero((result < low) | (result > high)) / result.size
    lost = (np.maximum(low - result, 0).sum() + np.maximum(result - high, 0).sum()) / np.abs(
        result
    ).sum()
    shifted = result + 127.5
    return (
        clipped,
        lost,
        np.count_nonzero(np.abs(result) > high) / result.size,
        np.count_nonzero((shifted < low) | (shifted > high)) / result.size,
    )


def _warning(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("convcli: warning:")]
    return lines[0] if lines else ""


def test_the_warning_of_an_edge_filter_says_what_each_option_would_clip(cli, camera):
    r = cli("apply", "-k", "sobel-x", str(camera), "-o", str(camera.parent / "e.png"))
    pixels = np.asarray(Image.open(camera), np.float32)
    result = convcli.convolve(pixels, "sobel-x")
    clipped, lost, by_abs, by_offset = _clip_shares(result)
    warning = _warning(r.stderr)
    assert f"({100 * clipped:.1f}%) were clipped" in warning
    assert f"cutting off {100 * lost:.0f}% of their magnitude" in warning
    assert f"--range abs would clip {100 * by_abs:.1f}%" in warning
    assert f"--offset 50% would clip {100 * by_offset:.1f}%" in warning
    assert "--depth float clip none" in warning


def test_no_option_is_suggested_that_is_already_given_or_would_not_help(cli, camera):
    out = str(camera.parent / "e.png")
    given_abs = _warning(
        cli("apply", "-k", "sobel-x", "--range", "abs", str(camera), "-o", out).stderr
    )
    given_offset = _warning(
        cli("apply", "-k", "sobel-x", "--offset", "50%", str(camera), "-o", out).stderr
    )
    magnitude = _warning(cli("apply", "-k", "sobel", str(camera), "-o", out).stderr)
    for warning in (given_abs, given_offset, magnitude):
        if warning:  # sobel's magnitude: abs changes nothing, an offset clips more
            assert "--range abs would" not in warning and "--offset 50% would" not in warning
    pixels = np.asarray(Image.open(camera), np.float32)
    sobel = np.hypot(convcli.convolve(pixels, "sobel-x"), convcli.convolve(pixels, "sobel-y"))
    clipped, _, by_abs, by_offset = _clip_shares(sobel)
    assert by_abs == clipped and by_offset > clipped  # why neither may be suggested


def test_ordinary_sharpening_does_not_warn(cli, camera, photos, tmp_path):
    """Sharpening overshoots at edges and clips a few percent of the results by a few
    levels: not the lost half of an edge filter, so no warning (the README's demo of
    --range abs neither)."""
    out = str(tmp_path / "s.png")
    for kernel in ("sharpen", "unsharp:sigma=2,amount=1.5"):
        r = cli("apply", "-k", kernel, str(camera), "-o", out)
        assert r.exit_code == 0 and r.stderr == "", r.stderr
        result = convcli.convolve(np.asarray(Image.open(camera), np.float32), kernel)
        clipped, lost, _, _ = _clip_shares(result)
        assert clipped > 0.01 and lost < 0.05  # it clips, but cuts off little
    r = cli(
        "apply", "-k", "gaussian:sigma=1", "-k", "sobel", "--range", "abs", str(camera), "-o", out
    )
    assert r.stderr == ""


# -- outputs that do not fit their disk ---------------------------------------------------------
def test_a_streamed_result_larger_than_the_free_space_is_refused_before_writing(
    cli, tmp_path, monkeypatch
):
    np.save(tmp_path / "big.npy", np.zeros((600, 500), np.float32))

    class Full:
        f_bavail, f_frsize = 10, 4096  # 40 KiB free

    monkeypatch.setattr(atomic.os, "statvfs", lambda path: Full())
    r = cli(
        "apply",
        "-k",
        "box",
        "--memory",
        "64KiB",
        str(tmp_path / "big.npy"),
        "-o",
        str(tmp_path / "out.npy"),
    )
    assert r.exit_code == 1
    assert "not enough free space" in r.stderr and "big.npy" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["big.npy"]  # no output, no part file


def test_a_write_beyond_the_file_size_limit_leaves_no_part_file(tmp_path):
    """A filesystem without room, made small with RLIMIT_FSIZE: the streamed .npy (once a
    memory map, which died by SIGBUS) is written through calls that raise."""
    np.save(tmp_path / "big.npy", np.zeros((1000, 500), np.float32))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "convcli",
            "apply",
            "-k",
            "box",
            "--memory",
            "64KiB",
            "big.npy",
            "-o",
            "out.npy",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        preexec_fn=limit,
    )
    assert r.returncode == 1, r.stderr
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "big.npy" in lines[0] and "too large" in lines[0].lower(), lines
    assert sorted(os.listdir(tmp_path)) == ["big.npy"]


def test_a_streamed_stack_is_written_member_after_member(tmp_path):
    """The stacked .npy, written through seeks and writes now, holds what convolve gives."""
    from convcli.run.request import build_request
    from convcli.run.runner import execute
    from convcli.run.sources import discover

    data = np.random.default_rng(6).random((300, 200)).astype(np.float32)
    np.save(tmp_path / "in.npy", data)
    request = build_request(
        ["sobel-x", "sobel-y"],
        combine="stack",
        output=str(tmp_path / "out.npy"),
        memory="64KiB",
    )
    summary = execute(list(discover([str(tmp_path / "in.npy")])), request)
    assert summary.failed == 0
    got = np.load(tmp_path / "out.npy")
    want = convcli.convolve(data, ["sobel-x", "sobel-y"], combine="stack")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_check_free_space_names_the_sizes(tmp_path, monkeypatch):
    class Full:
        f_bavail, f_frsize = 1, 1024

    monkeypatch.setattr(atomic.os, "statvfs", lambda path: Full())
    expected = "needs 1.0 MiB and its filesystem has 1.0 KiB free"
    with pytest.raises(OutputError, match=re.escape(expected)):
        atomic.check_free_space(tmp_path / "x.npy", 1 << 20)


def test_a_process_lists_an_output_folder_once(tmp_path, monkeypatch):
    # listing at every write would make a batch's time grow with the square of its size
    listed = []
    real = os.listdir
    monkeypatch.setattr(atomic.os, "listdir", lambda d: listed.append(d) or real(d))
    atomic.forget_sweeps()
    for i in range(5):
        atomic.atomic_write(tmp_path / f"{i}.bin", b"x")
    assert len(listed) == 1
    assert sorted(os.listdir(tmp_path)) == [f"{i}.bin" for i in range(5)]


def test_large_writes_reach_the_kernel_in_pieces(tmp_path, monkeypatch):
    """A part file hands the kernel at most WRITE_PIECE bytes a write (one write of several
    megabytes into a new file is many times slower on Linux 6.18 with ext4), and the file
    holds every byte, in order, whatever the buffer's shape."""
    sizes: list[int] = []
    real_write = io.FileIO.write

    class Recording(io.FileIO):
        def write(self, data):  # type: ignore[no-untyped-def]
            sizes.append(memoryview(data).nbytes)
            return real_write(self, data)

    monkeypatch.setattr(atomic.io, "FileIO", Recording)
    big = np.random.default_rng(0).integers(0, 256, (700, 999, 3), dtype=np.uint8)
    with atomic.atomic_file(tmp_path / "out.raw") as fh:
        assert fh.write(big.data) == big.nbytes
        fh.write(b"tail")
    assert max(sizes) <= atomic.WRITE_PIECE and len(sizes) > big.nbytes // atomic.WRITE_PIECE
    assert (tmp_path / "out.raw").read_bytes() == big.tobytes() + b"tail"


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [
        (np.uint8, (3000, 1000, 3)),
        (np.uint8, (2, 5, 3)),
        (np.uint8, (700, 300)),
        (np.uint16, (400, 500, 3)),  # 16-bit colour: tifffile's alone
        (np.float32, (300, 700, 3)),
    ],
)
def test_an_uncompressed_tiff_written_in_pieces_is_tifffiles_own(tmp_path, dtype, shape):
    """Uncompressed TIFF pixels go to tifffile row piece by row piece (it would hand a whole
    array to one write): the file is byte for byte the one it writes from the whole array."""
    tifffile = pytest.importorskip("tifffile")
    from convcli.io.encode import write_image

    pixels = np.random.default_rng(1).random(shape).astype(dtype)
    if dtype != np.float32:
        pixels = (pixels * np.iinfo(dtype).max).astype(dtype)
    out = tmp_path / "out.tif"
    write_image(pixels, out)
    whole = io.BytesIO()
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert len(page.dataoffsets) == 1  # one strip, as from the whole array
        photometric = page.photometric
    tifffile.imwrite(whole, pixels, photometric=photometric, metadata=None)
    assert out.read_bytes() == whole.getvalue()
    np.testing.assert_array_equal(tifffile.imread(out), pixels)


@pytest.mark.parametrize("shape", [(3000, 1000, 3), (1, 10), (5, 300000)])
def test_row_pieces_are_whole_rows_of_at_most_a_write_piece(shape):
    pixels = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    pieces = list(atomic.row_pieces(pixels))
    np.testing.assert_array_equal(np.concatenate(pieces), pixels)
    row = pixels[0].nbytes
    assert all(p.nbytes <= max(atomic.WRITE_PIECE, row) for p in pieces)
