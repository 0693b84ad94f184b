"""The command line, in-process: every apply option, list-kernels, show-kernel, errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import convcli
from conftest import write_png


@pytest.fixture
def gray(tmp_path, photos):
    return write_png(tmp_path / "cam.png", photos["camera"][:96, :128])


@pytest.fixture
def rgb(tmp_path, photos):
    return write_png(tmp_path / "astro.png", photos["astronaut"][:80, :100])


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


class TestApplyOutputs:
    def test_writes_beside_the_input_and_prints_the_path(self, cli, gray):
        r = cli("apply", "-k", "sobel", str(gray))
        assert r.exit_code == 0, r.stderr
        out = gray.with_name("cam.sobel.png")
        assert r.stdout == f"{out}\n"
        want = np.clip(np.rint(convcli.convolve(read(gray), "sobel")), 0, 255)
        np.testing.assert_array_equal(read(out), want)

    def test_parametric_kernel_label(self, cli, gray):
        r = cli("apply", "-k", "gaussian:sigma=2", str(gray))
        assert r.stdout.strip().endswith("cam.gaussian-sigma2.png")

    def test_chain_label_and_result(self, cli, gray):
        r = cli(
            "apply", "-k", "box", "-k", "sharpen", str(gray), "--depth", "float", "--format", "tiff"
        )
        path = r.stdout.strip()
        assert path.endswith("cam.box+sharpen.tif")
        x = read(gray).astype(float)
        want = convcli.convolve(convcli.convolve(x, "box"), "sharpen")
        np.testing.assert_allclose(np.asarray(Image.open(path)), want, atol=1e-3)

    def test_output_file_and_format(self, cli, gray, tmp_path):
        r = cli("apply", "-k", "box", str(gray), "-o", str(tmp_path / "o.jpg"), "--quality", "80")
        assert r.exit_code == 0
        assert Image.open(tmp_path / "o.jpg").format == "JPEG"

    def test_out_dir_and_name_template(self, cli, gray, rgb, tmp_path):
        r = cli(
            "apply",
            "-k",
            "emboss",
            str(gray),
            str(rgb),
            "-d",
            str(tmp_path / "out"),
            "--name",
            "{kernel}-{stem}{ext}",
            "-j",
            "1",
        )
        assert r.exit_code == 0, r.stderr
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
            "emboss-astro.png",
            "emboss-cam.png",
        ]
        assert "2 done, 0 skipped, 0 failed" in r.stderr

    def test_stdout_image_bytes(self, cli, gray):
        r = cli("apply", "-k", "box", str(gray), "-o", "-", "--format", "png")
        assert r.exit_code == 0
        assert Image.open(io.BytesIO(r.stdout_bytes)).size == (128, 96)

    def test_stdin_image(self, cli, gray, tmp_path):
        r = cli("apply", "-k", "box", "-", "-o", str(tmp_path / "s.png"), input=gray.read_bytes())
        assert r.exit_code == 0, r.stderr
        assert read(tmp_path / "s.png").shape == (96, 128)

    def test_npy_output_of_an_image_is_the_float_result(self, cli, gray, tmp_path):
        cli("apply", "-k", "sobel-x", str(gray), "-o", str(tmp_path / "g.npy"))
        got = np.load(tmp_path / "g.npy")
        np.testing.assert_allclose(got, convcli.convolve(read(gray), "sobel-x"), atol=1e-4)
        assert got.min() < 0

    def test_stacked_bank_writes_one_file_per_member(self, cli, gray):
        r = cli(
            "apply",
            "-k",
            "sobel-x",
            "-k",
            "sobel-y",
            "--combine",
            "stack",
            "--range",
            "abs",
            str(gray),
        )
        assert r.stdout.split() == [
            str(gray.with_name("cam.sobel-x.png")),
            str(gray.with_name("cam.sobel-y.png")),
        ]

    def test_stacked_bank_as_npy_holds_the_stack(self, cli, gray, tmp_path):
        cli("apply", "-k", "sobel", "--combine", "stack", str(gray), "-o", str(tmp_path / "s.npy"))
        assert np.load(tmp_path / "s.npy").shape == (2, 96, 128)

    def test_print_image_result(self, cli, tmp_path):
        small = write_png(tmp_path / "s.png", np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
        r = cli("apply", "-k", "identity", str(small), "--print")
        assert r.exit_code == 0
        assert r.stdout.split()[:4] == ["0", "20", "40", "60"]
        assert not (tmp_path / "s.identity.png").exists()

    def test_print_array_with_precision(self, cli):
        r = cli(
            "apply",
            "-k",
            "box-1d:size=3",
            "[1,2,4]",
            "--print",
            "--precision",
            "2",
            "--boundary",
            "fill",
        )
        assert r.stdout.split() == ["1", "2.33", "2"]

    def test_array_files_in_and_out(self, cli, tmp_path):
        (tmp_path / "a.csv").write_text("1,2,3\n4,5,6\n7,8,9\n")
        r = cli("apply", "-k", "box", str(tmp_path / "a.csv"), "-d", str(tmp_path / "o"))
        assert r.exit_code == 0, r.stderr
        out = tmp_path / "o" / "a.box.csv"
        assert r.stdout.strip() == str(out)
        got = np.loadtxt(out, delimiter=",")
        np.testing.assert_allclose(got, convcli.convolve(np.arange(1, 10.0).reshape(3, 3), "box"))

    def test_array_printed_by_default(self, cli, tmp_path):
        np.save(tmp_path / "a.npy", np.arange(5.0))
        r = cli("apply", "-k", "[1, -1]", str(tmp_path / "a.npy"), "--mode", "valid")
        assert r.stdout.strip() == "[1. 1. 1. 1.]"

    def test_offset_and_range(self, cli, gray, tmp_path):
        cli("apply", "-k", "sobel-x", str(gray), "--offset", "50%", "-o", str(tmp_path / "o.png"))
        raw = convcli.convolve(read(gray), "sobel-x", dtype=np.float64)
        np.testing.assert_array_equal(
            read(tmp_path / "o.png"), np.clip(np.rint(raw + 127.5), 0, 255)
        )

    def test_gray_alpha_and_depth(self, cli, tmp_path, rng):
        rgba = (rng.random((20, 30, 4)) * 255).astype(np.uint8)
        src = write_png(tmp_path / "a.png", rgba)
        r = cli(
            "apply", "-k", "box", str(src), "--gray", "--depth", "16", "-o", str(tmp_path / "g.tif")
        )
        assert r.exit_code == 0, r.stderr
        got = convcli.read_image(tmp_path / "g.tif")
        assert got.shape == (20, 30, 2) and got.dtype == np.uint16
        np.testing.assert_array_equal(got[:, :, 1], rgba[:, :, 3].astype(np.uint16) * 257)
        luma = rgba[:, :, :3] @ np.array([0.299, 0.587, 0.114])
        want = np.rint(convcli.convolve(luma, "box") * 257)
        assert np.max(np.abs(got[:, :, 0] - want)) <= 1

    @pytest.mark.parametrize("mode, shape", [("full", (98, 130)), ("valid", (94, 126))])
    def test_modes(self, cli, gray, tmp_path, mode, shape):
        cli("apply", "-k", "box", str(gray), "--mode", mode, "-o", str(tmp_path / "m.png"))
        assert read(tmp_path / "m.png").shape == shape

    @pytest.mark.parametrize("boundary", ["fill", "reflect", "mirror", "nearest", "wrap"])
    def test_boundaries(self, cli, gray, tmp_path, boundary):
        cli(
            "apply",
            "-k",
            "box",
            str(gray),
            "--boundary",
            boundary,
            "--fill-value",
            "255",
            "-o",
            str(tmp_path / "b.npy"),
        )
        want = convcli.convolve(read(gray), "box", boundary=boundary, fill_value=255)
        np.testing.assert_allclose(np.load(tmp_path / "b.npy"), want, atol=1e-4)

    def test_correlate_normalize_method(self, cli, gray, tmp_path):
        cli(
            "apply",
            "-k",
            "[[1,2,3]]",
            "--correlate",
            "--normalize",
            "--method",
            "fft",
            str(gray),
            "-o",
            str(tmp_path / "c.npy"),
        )
        want = convcli.convolve(read(gray), [[1, 2, 3]], correlate=True, normalize=True)
        np.testing.assert_allclose(np.load(tmp_path / "c.npy"), want, atol=1e-3)

    def test_scipy_backend(self, cli, gray):
        assert cli("apply", "-k", "box", str(gray), "--backend", "scipy").exit_code == 0

    def test_in_place(self, cli, gray):
        before = read(gray)
        r = cli("apply", "-k", "box", str(gray), "--in-place")
        assert r.exit_code == 0, r.stderr
        assert r.stdout.strip() == str(gray)
        assert not np.array_equal(read(gray), before)


class TestApplyErrors:
    @pytest.mark.parametrize(
        "args, message",
        [
            (["-k", "sobl", "x.png"], "unknown kernel 'sobl'; did you mean 'sobel'"),
            (["-k", "gaussian:radius=2", "x.png"], "unknown parameter 'radius'"),
            (["-k", "[[1,2],[3]]", "x.png"], "row 2 has 1 value, expected 2"),
            (["-k", "sobel", "--normalize", "x.png"], "cannot normalize, its sum is 0"),
            (["x.png"], "give at least one kernel"),
            (["-k", "box"], "no input given"),
            (["-k", "box", "--mode", "middle", "x.png"], "Invalid value for '--mode'"),
            (["-k", "box", "--bogus", "x.png"], "No such option: --bogus"),
            (["-k", "box", "a.png", "b.png", "-o", "c.png"], "-o takes one input, got 2"),
            (["-k", "box", "a.png", "-o", "c.png", "-d", "d"], "-o and -d conflict"),
            (["-k", "box", "a.png", "--in-place", "-d", "d"], "--in-place conflicts"),
            (["-k", "box", "a.png", "--name", "{size}.png"], "unknown field {size}"),
            (["-k", "box", "a.png", "--name", "../x.png"], "may not contain a directory"),
            (["-k", "box", "a.png", "--offset", "5", "--range", "rescale"], "no effect with"),
            (["-k", "box", "a.png", "--offset", "half"], "offset 'half'"),
            (["-k", "box", "-", "--files-from", "-"], "stdin can be read only once"),
            (["-k", "box", "a.png", "-0"], "-0/--null goes with --files-from"),
            (["-k", "box", "a.png", "--quality", "0"], "Invalid value for '--quality'"),
        ],
    )
    def test_usage_errors_exit_2_with_one_line(self, cli, args, message):
        r = cli("apply", *args)
        assert r.exit_code == 2, (r.stdout, r.stderr)
        assert r.stderr.startswith("convcli: error: ")
        assert message in r.stderr
        assert r.stderr.count("\n") == 1
        assert "Traceback" not in r.stderr

    def test_a_failed_input_exits_1_and_the_others_are_written(self, cli, gray, tmp_path):
        bad = tmp_path / "bad.png"
        bad.write_text("not a png")
        r = cli("apply", "-k", "box", str(bad), str(gray), "-j", "1")
        assert r.exit_code == 1
        assert f"convcli: error: {bad}: not an image" in r.stderr
        assert gray.with_name("cam.box.png").exists()
        assert not list(tmp_path.glob("bad.box*"))

    def test_never_overwrites_an_input(self, cli, gray):
        r = cli("apply", "-k", "box", str(gray), "-o", str(gray))
        assert r.exit_code == 1
        assert "would overwrite the input" in r.stderr
        r2 = cli("apply", "-k", "box", str(gray), "--name", "{stem}{ext}")
        assert "would overwrite the input" in r2.stderr

    def test_valid_mode_kernel_larger_than_the_image(self, cli):
        r = cli("apply", "-k", "box:size=5", "--mode", "valid", "[[1,2],[3,4]]")
        assert r.exit_code == 1
        assert "larger than the 2x2 input" in r.stderr

    def test_debug_shows_the_traceback_of_internal_errors(self, cli, gray, monkeypatch):
        import convcli.run.process

        def boom(*a, **k):
            raise RuntimeError("kaboom")

        monkeypatch.setattr(convcli.run.process, "input_job", boom)
        r = cli("apply", "-k", "box", str(gray))
        assert r.exit_code == 1
        assert "internal error: RuntimeError: kaboom" in r.stderr
        assert "Traceback" not in r.stderr
        r = cli("apply", "-k", "box", str(gray), "--debug")
        assert "Traceback" in r.stderr

    def test_clip_warning(self, cli, gray):
        r = cli("apply", "-k", "sobel-x", str(gray))
        assert "were clipped to the output range" in r.stderr
        assert "--depth float clip none" in r.stderr
        assert cli("apply", "-k", "sobel-x", str(gray), "-q").stderr == ""


class TestKernelsCommands:
    def test_list_kernels_table(self, cli):
        r = cli("list-kernels")
        assert r.exit_code == 0
        for name in ("sobel", "gaussian", "gaussian-5x5-seed", "prewitt-1d"):
            assert name in r.stdout

    def test_list_kernels_json_and_tag(self, cli):
        rows = json.loads(cli("list-kernels", "--json", "--tag", "seed").stdout)
        assert {r["name"] for r in rows} == {"gaussian-1d-seed", "gaussian-5x5-seed", "prewitt-1d"}
        assert rows[0].keys() >= {"name", "size", "tags", "description"}

    def test_show_kernel(self, cli):
        r = cli("show-kernel", "sobel")
        assert "sobel-x" in r.stdout and "sobel-y" in r.stdout
        assert "combined by magnitude" in r.stdout
        assert "separable (rank 1)" in r.stdout
        assert "sum 0" in r.stdout

    def test_show_kernel_json(self, cli):
        data = json.loads(cli("show-kernel", "laplacian", "--json").stdout)
        assert data["matrix"] == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
        assert data["sum"] == 0 and data["separable"] is False and data["rank"] == 2
        bank = json.loads(cli("show-kernel", "prewitt", "--json").stdout)
        assert [k["name"] for k in bank["kernels"]] == ["prewitt-x", "prewitt-y"]

    def test_show_kernel_unknown(self, cli):
        r = cli("show-kernel", "nope")
        assert r.exit_code == 2
        assert r.stderr.startswith("convcli: error: unknown kernel 'nope'")


def test_version_and_help(cli):
    assert cli("--version").stdout.strip() == f"convcli {convcli.__version__}"
    r = cli("--help")
    assert r.exit_code == 0 and "apply" in r.stdout and "list-kernels" in r.stdout
    r = cli("apply", "--help")
    assert "--kernel" in r.stdout and "Example" in r.stdout


def _complete_bash(words: str, env_extra: dict[str, str] | None = None) -> list[str]:
    """What the shell completion installed by `convcli --install-completion` offers."""
    import os
    import shutil
    import subprocess

    script = shutil.which("convcli")
    if script is None:
        pytest.skip("the convcli script is not on PATH")
    env = os.environ | {
        "_CONVCLI_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    out = subprocess.run(
        [script], env=env | (env_extra or {}), capture_output=True, text=True, timeout=60
    )
    return out.stdout.split()


def test_shell_completion_of_kernel_names_and_options(tmp_path):
    assert _complete_bash("convcli apply -k sob") == ["sobel", "sobel-x", "sobel-y"]
    (tmp_path / "sobolev.toml").write_text("matrix = [[1, 2, 1]]\n")
    mine = _complete_bash("convcli apply -k sob", {"CONVCLI_KERNEL_PATH": str(tmp_path)})
    assert mine == ["sobel", "sobel-x", "sobel-y", "sobolev"]
    assert _complete_bash("convcli apply --bou") == ["--boundary"]
    assert _complete_bash("convcli show-kernel gaussian-1") == ["gaussian-1d", "gaussian-1d-seed"]


@pytest.mark.parametrize(
    "src, out, options, pixels, linear",
    [
        # OpenCV decodes and encodes in its own order, blue first: nothing is swapped
        ("jpg", "jpg", [], {}, False),
        ("jpg", "png", [], {}, False),
        ("jpg", "npy", [], {"depth": "float"}, False),
        ("jpg", "-", ["--format", "jpeg"], {}, False),  # JPEG bytes on stdout
        ("png", "jpg", [], {}, False),
        ("tif", "jpg", [], {}, False),  # decoded by tifffile, in RGB order
        ("tif", "tif", [], {}, False),
        ("jpg", "tif", [], {}, False),
        ("rgba.png", "jpg", [], {}, False),
        ("jpg", "jpg", ["--gray"], {"gray": True}, False),
        ("jpg", "jpg", ["--linear"], {}, True),
        ("jpg", "jpg", ["--range", "abs"], {"range": "abs"}, False),
    ],
)
def test_colour_channels_keep_their_order_on_every_route(
    tmp_path, cli, photos, src, out, options, pixels, linear
):
    """The command line may filter colour in OpenCV's order (blue first) to spare a pass at
    each end; whatever the input and output, its result is the library's, channel for
    channel: as decoded pixels (PNG, .npy) or as the very JPEG bytes."""
    from convcli.compute.transfer import SRGB
    from convcli.io.encode import encode

    rgb = np.ascontiguousarray(photos["astronaut"][:96, :128])
    path = tmp_path / f"in.{src}"
    if src == "rgba.png":
        alpha = np.linspace(40, 255, rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2])
        Image.fromarray(np.dstack([rgb, alpha.astype(np.uint8)])).save(path)
    elif src == "tif":
        Image.fromarray(rgb).save(path)
    else:
        Image.fromarray(rgb).save(path, quality=95)
    target = "-" if out == "-" else str(tmp_path / f"out.{out}")
    r = cli("apply", "-k", "sobel-x", *options, str(path), "-o", target)
    assert r.exit_code == 0, r.stderr
    expected = convcli.filter_image(
        convcli.read_image(path),
        "sobel-x",
        convcli.PixelOptions(**pixels),
        transfer=SRGB if linear else None,
    ).pixels
    if out in ("jpg", "-"):
        written = r.stdout_bytes if out == "-" else (tmp_path / "out.jpg").read_bytes()
        assert written == encode(expected, "JPEG")
    elif out == "npy":
        np.testing.assert_array_equal(np.load(target), expected)
    else:
        np.testing.assert_array_equal(convcli.read_image(target), expected)


def _script(tmp_path, prelude: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``convcli ARGS`` through the script's entry point, after ``prelude`` (Python code)."""
    code = f"{prelude}\nimport sys\nsys.argv = ['convcli', *{list(args)!r}]\n"
    code += "from convcli.cli import main\nmain()\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


def test_the_script_leaves_with_the_exit_code_its_streams_flushed_and_exit_handlers_run(
    tmp_path, cli
):
    """The script ends without taking the interpreter apart (30-40 ms a command), but as
    any exit does: exit handlers run, every byte written reaches stdout, exit codes hold."""
    marker = tmp_path / "handler-ran"
    handler = f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').close())"
    done = _script(tmp_path, handler, "list-kernels", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == cli("list-kernels", "--json").stdout
    assert marker.exists()
    refused = _script(tmp_path, "", "apply", "-k", "box", "missing.png")
    assert refused.returncode == cli("apply", "-k", "box", "missing.png").exit_code != 0
    assert refused.stderr.count("\n") == 1 and "missing.png" in refused.stderr
    assert _script(tmp_path, "", "apply", "--no-such-option").returncode == 2


def test_the_script_leaves_quickly_after_its_compute_threads_worked(tmp_path):
    """The compute threads kept between calls are idle once the command is over: they are
    ended, and the script still leaves without taking the interpreter apart."""
    rng = np.random.default_rng(5)
    np.save(tmp_path / "in.npy", rng.random((900, 300)).astype(np.float32))
    marker = tmp_path / "left"
    prelude = (
        "import os\nreal = os._exit\n"
        f"def leave(code):\n    open({str(marker)!r}, 'w').write(str(code))\n    real(code)\n"
        "os._exit = leave"
    )
    args = ("apply", "-k", "gaussian:size=63", "--method", "fft", "in.npy", "-o", "out.npy")
    done = _script(tmp_path, prelude, *args)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "0"
    want = convcli.convolve(np.load(tmp_path / "in.npy"), "gaussian:size=63", method="fft")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)


def test_the_script_ends_as_usual_while_another_thread_runs(tmp_path):
    """A thread still running when the command ends is waited for, as the interpreter does."""
    marker = tmp_path / "thread-done"
    thread = (
        "import threading, time\n"
        f"def late():\n    time.sleep(0.5)\n    open({str(marker)!r}, 'w').close()\n"
        "threading.Thread(target=late).start()"
    )
    done = _script(tmp_path, thread, "list-kernels")
    assert done.returncode == 0, done.stderr
    assert marker.exists()


def test_a_message_as_exit_code_is_printed_and_exits_1():
    code = "from convcli.cli.program import _leave\n_leave('stopped: because')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (1, "stopped: because\n")


def test_the_script_builds_the_command_named_first_and_all_of_them_otherwise(monkeypatch):
    """main() lets Typer build only the command named first (its options take a tenth of a
    small command's time); --help, a misspelt command and later calls still see them all."""
    import sys

    from convcli.cli import app, main

    before = list(app.registered_commands)
    seen: list[list[str]] = []

    def built(self: object) -> None:  # stands for Typer building and running the app
        seen.append([c.name or c.callback.__name__ for c in app.registered_commands])

    monkeypatch.setattr(type(app), "__call__", built)
    for argv in (["apply", "-k", "box", "x.png"], ["--help"], ["aply"], []):
        monkeypatch.setattr(sys, "argv", ["convcli", *argv])
        main()
    assert seen[0] == ["apply"]
    assert all(len(names) == len(before) for names in seen[1:])
    assert app.registered_commands == before
