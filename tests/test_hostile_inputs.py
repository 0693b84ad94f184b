"""The second hostile round, inputs side, for what the apply catalogue (test_hostile.py)
cannot hold: other commands, a core-like install (OpenCV hidden), real processes with endless
stdin, batches where the good inputs still run, and the fast text parsers against a reference."""

from __future__ import annotations

import io
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import hostile_inputs as hostile
from convcli.errors import InputError, LimitError
from convcli.io import decode
from convcli.io.arrays import parse_array, read_array
from convcli.run.pool import WORKERS_PER_CORE, worker_count

ERROR = "convcli: error: "


def one_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), stderr
    return lines[0]


# -- a core-like install: OpenCV hidden ------------------------------------------------------
def test_truncated_photo_is_refused_without_opencv_too(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "has_opencv", lambda: False)
    (tmp_path / "half.jpg").write_bytes(hostile.coffee_cut())
    r = cli("apply", "-k", "box", "-o", "t.png", "half.jpg", cwd=tmp_path)
    assert r.exit_code == 1
    assert "half.jpg" in one_error(r.stderr) and "truncated" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["half.jpg"]


def test_whole_photo_still_reads_with_and_without_opencv(monkeypatch):
    with_cv = decode.read_image(hostile.COFFEE)
    monkeypatch.setattr(decode, "has_opencv", lambda: False)
    without = decode.read_image(hostile.COFFEE)
    assert with_cv.shape == without.shape == (400, 600, 3)


def test_a_16_bit_colour_png_reads_at_16_bits_with_opencv(tmp_path):
    pytest.importorskip("cv2")
    rgb16 = (np.arange(16 * 20 * 3, dtype=np.uint16).reshape(16, 20, 3)) * 60
    path = tmp_path / "16.png"
    from convcli import write_image

    write_image(rgb16, path)
    assert np.array_equal(decode.read_image(path), rgb16)


def test_16_bit_png_refusal_names_the_input(tmp_path, monkeypatch):
    from convcli import write_image

    write_image(np.full((4, 4, 3), 40000, np.uint16), tmp_path / "c.png")
    monkeypatch.setattr(decode, "has_opencv", lambda: False)
    with pytest.raises(InputError, match=r"c\.png: 16-bit colour PNG"):
        decode.open_image(tmp_path / "c.png", "c.png")


# -- endless streams, in real processes, with a timeout -------------------------------------
def run_process(
    args: list[str], cwd: Path, stdin, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convcli", *args],
        stdin=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=timeout,  # a hang fails the test instead of the suite
    )


def test_endless_zeros_on_stdin_end_at_once(tmp_path):
    with open("/dev/zero", "rb") as zeros:
        proc = run_process(["apply", "-k", "box", "-o", "o.png", "-"], tmp_path, zeros)
    assert proc.returncode == 1
    assert "not an image" in one_error(proc.stderr.decode())
    assert os.listdir(tmp_path) == []


def test_endless_zeros_as_the_list_on_stdin_end(tmp_path):
    with open("/dev/zero", "rb") as zeros:
        proc = run_process(["apply", "-k", "box", "--files-from", "-", "-d", "o"], tmp_path, zeros)
    assert proc.returncode == 2
    assert "longer than 4096 bytes" in one_error(proc.stderr.decode())


def test_a_fifo_input_without_writer_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    proc = run_process(["apply", "-k", "box", "-d", "o", "pipe.png"], tmp_path, subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "not a regular file (a FIFO)" in one_error(proc.stderr.decode())


def test_a_pipe_with_a_writer_is_a_kernel_file_and_a_list(tmp_path):
    """Process substitution (``-k <(...)``, ``--files-from <(...)``) still works: a pipe
    with a writer is read to its end."""
    (tmp_path / "in.png").write_bytes(hostile.tiny_png())
    script = (
        'convcli() { "$PY" -m convcli "$@"; }; '
        "convcli apply -k <(echo 'matrix = [[1, 2]]') --files-from <(echo in.png) -d o"
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PY": sys.executable},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(os.listdir(tmp_path / "o")) == 1


# -- batches: the bad entry fails, the rest run --------------------------------------------
def test_a_nul_byte_in_one_listed_name_fails_that_entry_only(cli, tmp_path):
    (tmp_path / "a.png").write_bytes(hostile.tiny_png())
    (tmp_path / "list").write_bytes(b"a.png\nbad\0name.png\n")
    r = cli("apply", "-k", "box", "-j", "1", "-d", "o", "--files-from", "list", cwd=tmp_path)
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith(ERROR)]
    assert errors == [ERROR + "bad\\x00name.png: the name holds a NUL byte"]
    assert r.stdout == "o/a.box.png\n"


def test_workers_are_capped_by_inputs_and_cores():
    cores = os.cpu_count() or 1
    assert worker_count(300, 3) == 3
    assert worker_count(10_000, 10_000) == WORKERS_PER_CORE * cores
    assert worker_count(2, 50) == min(2, WORKERS_PER_CORE * cores)


def test_jobs_10000_on_two_inputs_runs(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(hostile.tiny_png())
    args = ["apply", "-k", "box", "-j", "10000", "-d", "o", "a.png", "b.png"]
    proc = run_process(args, tmp_path, subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path / "o")) == ["a.box.png", "b.box.png"]


def test_kernel_files_nest_at_most_64_deep(cli, tmp_path):
    for i in range(70):
        (tmp_path / f"k{i}.toml").write_text(f'kernels = ["./k{i + 1}.toml"]\n')
    (tmp_path / "k70.toml").write_text("matrix = [[1]]\n")
    r = cli("show-kernel", "./k0.toml", cwd=tmp_path)
    assert r.exit_code == 2
    assert "more than 64 deep" in one_error(r.stderr)


# -- TIFF on stdin reads as from a file -----------------------------------------------------
@pytest.mark.parametrize(
    "pixels",
    [
        (np.arange(24 * 32 * 3).reshape(24, 32, 3) * 50).astype(np.uint16),
        np.random.default_rng(2).random((24, 32, 3)).astype(np.float32),
        (np.arange(24 * 32) % 256).astype(np.uint8).reshape(24, 32),
    ],
    ids=["rgb16", "float-rgb", "gray8"],
)
def test_a_tiff_on_stdin_gives_what_the_file_gives(cli, tmp_path, pixels):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels)
    (tmp_path / "in.tif").write_bytes(buffer.getvalue())
    from_file = cli("apply", "-k", "box", "-o", "f.npy", "in.tif", cwd=tmp_path)
    from_stdin = cli(
        "apply", "-k", "box", "-o", "s.npy", "-", input=buffer.getvalue(), cwd=tmp_path
    )
    assert from_file.exit_code == from_stdin.exit_code == 0, from_stdin.stderr
    assert np.array_equal(np.load(tmp_path / "f.npy"), np.load(tmp_path / "s.npy"))


# -- other commands ---------------------------------------------------------------------------
def test_list_kernels_lists_the_rest_and_names_broken_files(cli, tmp_path, monkeypatch):
    (tmp_path / "good.toml").write_text("matrix = [[1, 2]]\n")
    (tmp_path / "self.toml").write_text(f'kernels = ["{tmp_path}/self.toml"]\n')
    (tmp_path / "ragged.toml").write_text("matrix = [[1, 2], [3]]\n")
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", str(tmp_path))
    r = cli("list-kernels", "--json")
    assert r.exit_code == 1
    names = {row["name"] for row in json.loads(r.stdout)}
    assert {"good", "sobel", "gaussian"} <= names and not {"self", "ragged"} & names
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith(ERROR) for line in lines), r.stderr
    assert any("self.toml" in line and "refers to itself" in line for line in lines)
    assert any("ragged.toml" in line and "row 2" in line for line in lines)


def test_show_kernel_refuses_a_cycle_by_path(cli, tmp_path):
    (tmp_path / "a.toml").write_text('kernels = ["./b.toml"]\n')
    (tmp_path / "b.toml").write_text('kernels = ["./a.toml"]\n')
    r = cli("show-kernel", "./a.toml", cwd=tmp_path)
    assert r.exit_code == 2
    assert "refers to itself" in one_error(r.stderr)


def test_no_passwd_entry_and_no_home(cli, tmp_path, monkeypatch):
    """The user kernel directory is then simply absent: every command works."""

    def no_entry(uid):
        raise KeyError(uid)

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(RuntimeError):
        Path("~").expanduser()  # what used to end every command
    (tmp_path / "in.png").write_bytes(hostile.tiny_png())
    assert cli("list-kernels").exit_code == 0
    assert cli("show-kernel", "box").exit_code == 0
    r = cli("apply", "-k", "box", "-d", "o", "in.png", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr


def test_environment_limits_are_one_usage_error_for_list_and_show(cli, monkeypatch):
    monkeypatch.setenv("CONVCLI_MAX_KERNEL_SIZE", "-1")
    r = cli("show-kernel", "box")
    assert r.exit_code == 2
    assert "CONVCLI_MAX_KERNEL_SIZE" in one_error(r.stderr)


def test_formats_widen_the_allow_list_for_a_command_only(cli, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "i.ppm")
    refused = cli("apply", "-k", "box", "-o", "a.png", "i.ppm", cwd=tmp_path)
    assert refused.exit_code == 1 and "--formats default,ppm" in refused.stderr
    r = cli("apply", "-k", "box", "--formats", "default,ppm", "-o", "a.png", "i.ppm", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert "CONVCLI_FORMATS" not in os.environ  # put back when the command ended
    with Image.open(tmp_path / "a.png") as im:
        assert im.getpixel((4, 4)) == (10, 20, 30)


def test_a_directory_walk_leaves_other_formats_alone(cli, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(hostile.tiny_png())
    (tmp_path / "in" / "stray.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n{} loop\n")
    r = cli("apply", "-k", "box", "-r", "in", "-d", "o", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert os.listdir(tmp_path / "o") == ["a.box.png"]


# -- text arrays: numpy's parser, checked against an independent reference ------------------
def test_a_csv_with_excel_bom_reads(tmp_path):
    (tmp_path / "x.csv").write_bytes("\ufeff1,2,3\r\n4,5,6\r\n".encode())
    assert read_array(tmp_path / "x.csv").tolist() == [[1, 2, 3], [4, 5, 6]]
    (tmp_path / "x.json").write_bytes("\ufeff[1, 2]".encode())
    assert read_array(tmp_path / "x.json").tolist() == [1, 2]


def test_fast_parsers_give_python_floats(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.standard_normal((300, 40)) * 10.0 ** rng.integers(-30, 30, (300, 40))
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in values) + "\n"
    (tmp_path / "t.csv").write_text(text)
    (tmp_path / "t.txt").write_text(text.replace(",", "  "))
    (tmp_path / "t.json").write_text(json.dumps(values.tolist()))
    expected = [[float(v) for v in line.split(",")] for line in text.splitlines()]
    for name in ("t.csv", "t.txt", "t.json"):
        assert read_array(tmp_path / name).tolist() == expected, name
    assert parse_array(json.dumps(values[0].tolist())).tolist() == expected[0]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[1,]", "not a valid JSON array"),
        ("[[1, 2], [3]]", "row 2 has 1 value"),
        ("[1, NaN]", "not a finite number"),
        ("[+1]", None),
        ("[[1, 2], [3, 4]], [5, 6]]", "not a valid JSON array"),
    ],
)
def test_json_fast_path_refuses_what_json_refuses(text, problem):
    if problem is None:
        assert parse_array(text).tolist() == [1.0]  # numpy's parser is lenient about '+'
        return
    with pytest.raises(InputError, match=problem):
        parse_array(text)


def test_a_million_numbers_parse_within_the_budget(tmp_path):
    values = np.arange(1_000_000) % 977 / 8
    (tmp_path / "m.csv").write_text(",".join(f"{v:g}" for v in values) + "\n")
    assert np.array_equal(read_array(tmp_path / "m.csv", memory=256 << 20), values)
    with pytest.raises(LimitError, match="over the budget"):
        read_array(tmp_path / "m.csv", memory=4 << 20)
