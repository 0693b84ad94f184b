"""Kernel specs: built-ins with exact values, parameters, files, banks, user paths, errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import convcli
from conftest import write_png
from convcli.errors import KernelError
from convcli.kernels import registry
from convcli.kernels.formats import KernelFileError
from convcli.kernels.model import Kernel, KernelBank
from convcli.kernels.registry import (
    KernelCycleError,
    Registry,
    builtin_dir,
    get_kernel,
    is_file_spec,
    list_kernels,
)

SPEC_BUILTINS = [
    "identity",
    "box",
    "box-1d",
    "gaussian",
    "sobel",
    "prewitt",
    "scharr",
    "sobel-x",
    "sobel-y",
    "prewitt-x",
    "prewitt-y",
    "scharr-x",
    "scharr-y",
    "laplacian",
    "log",
    "sharpen",
    "unsharp",
    "emboss",
    "prewitt-1d",
    "gaussian-1d-seed",
    "gaussian-5x5-seed",
]


@pytest.mark.parametrize("name", SPEC_BUILTINS)
def test_every_spec_builtin_exists(name):
    kernel = get_kernel(name)
    assert kernel.name.split(":")[0] == name
    assert any(i.name == name for i in list_kernels())


def test_exact_values_from_the_spec():
    assert get_kernel("sobel-x").matrix.tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert get_kernel("prewitt-x").matrix.tolist() == [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]
    assert get_kernel("prewitt-1d").matrix.tolist() == [1, 0, -1]
    assert get_kernel("gaussian-1d-seed").matrix.tolist() == [0.25, 0.5, 0.75, 0.5, 0.25]
    seed = get_kernel("gaussian-5x5-seed")
    assert seed.matrix[0].tolist() == [0.04, 0.08, 0.12, 0.08, 0.04]
    assert seed.matrix[2].tolist() == [0.12, 0.24, 0.36, 0.24, 0.12]
    assert seed.sum == pytest.approx(3.24)
    assert get_kernel("identity").matrix.tolist() == [[1.0]]


@pytest.mark.parametrize("name", ["sobel", "prewitt", "scharr"])
def test_gradient_banks_combine_by_magnitude(name):
    bank = get_kernel(name)
    assert isinstance(bank, KernelBank)
    assert bank.combine == "magnitude"
    assert [m.name for m in bank.members] == [f"{name}-x", f"{name}-y"]


def test_names_are_case_insensitive():
    assert get_kernel("Sobel-X").matrix.tolist() == get_kernel("sobel-x").matrix.tolist()
    assert get_kernel("GAUSSIAN:SIGMA=2").shape == get_kernel("gaussian:sigma=2").shape


class TestParametric:
    def test_gaussian_sigma_matches_ndimage_gaussian_filter(self, rng):
        x = rng.normal(size=(40, 40))
        for sigma in (0.7, 1.0, 2.0, 3.3):
            got = convcli.convolve(x, f"gaussian:sigma={sigma}")
            np.testing.assert_allclose(got, ndimage.gaussian_filter(x, sigma), atol=1e-12)

    def test_gaussian_sizes(self):
        assert get_kernel("gaussian:sigma=2").shape == (17, 17)
        k = get_kernel("gaussian:size=7,sigma=1.5")
        assert k.shape == (7, 7)
        assert k.sum == pytest.approx(1.0)
        assert k.name == "gaussian:size=7,sigma=1.5"
        assert k.label == "gaussian-size7-sigma1.5"

    def test_gaussian_size_alone_uses_opencvs_sigma(self):
        """OpenCV's rule sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8 (its sigma=0 tables are
        rounded to 1/256, so the comparison gives the sigma explicitly)."""
        cv2 = pytest.importorskip("cv2")
        k = get_kernel("gaussian:size=9")
        g = cv2.getGaussianKernel(9, 0.3 * (4 - 1) + 0.8, ktype=cv2.CV_64F)[:, 0]
        np.testing.assert_allclose(k.matrix, np.outer(g, g), atol=1e-12)

    def test_box_and_running_average(self):
        assert get_kernel("box:size=4").matrix.tolist() == (np.ones((4, 4)) / 16).tolist()
        np.testing.assert_array_equal(get_kernel("box-1d:size=4").matrix, np.ones(4) / 4)
        np.testing.assert_array_equal(get_kernel("box").matrix, np.ones((3, 3)) / 9)

    def test_log_matches_ndimage_gaussian_laplace(self, rng):
        x = rng.normal(size=(48, 40))
        got = convcli.convolve(x, "log:sigma=1.5")
        np.testing.assert_allclose(got, ndimage.gaussian_laplace(x, 1.5), atol=1e-10)

    def test_unsharp_sums_to_one_and_sharpens(self):
        k = get_kernel("unsharp:sigma=1,amount=2")
        assert k.sum == pytest.approx(1.0)
        centre = k.shape[0] // 2
        assert k.matrix[centre, centre] > 1

    @pytest.mark.parametrize(
        "spec, message",
        [
            ("gaussian:sigma=-1", "sigma must be a positive number"),
            ("gaussian:radius=3", "unknown parameter 'radius' (parameters: sigma, size, ndim)"),
            ("box:size=2.5", "must be a whole number"),
            ("box:size=abc", "is not a number"),
            ("box:size", "is not key=value"),
            ("box:size=3,size=4", "given twice"),
            ("sobel:size=3", "takes no parameters"),
            ("unsharp:size=4", "size must be odd"),
            ("box:size=0", "size must be at least 1"),
        ],
    )
    def test_bad_parameters_name_themselves(self, spec, message):
        with pytest.raises(KernelError, match=message.replace("(", r"\(").replace(")", r"\)")):
            get_kernel(spec)


class TestInline:
    def test_2d_and_1d_arrays(self):
        k = get_kernel("[[1,0,-1],[2,0,-2],[1,0,-1]]")
        assert k.shape == (3, 3)
        assert get_kernel("[0.25,0.25,0.25,0.25]").shape == (4,)

    @pytest.mark.parametrize(
        "spec, message",
        [
            ("[[1,2],[3]]", "row 2 has 1 value, expected 2"),
            ('[[1,2],[3,"a"]]', "'a' is not a number"),
            ("[]", "empty"),
            ("[[]]", "empty"),
            ("[[[[1]]]]", "more than 3 dimensions"),
            ("[1, NaN]", "not a finite number"),
            ("[1, Infinity]", "not a finite number"),
            ("[1, 2", "not a valid JSON array"),
            ("[true, 1]", "True is not a number"),
        ],
    )
    def test_malformed(self, spec, message):
        with pytest.raises(KernelError, match=message):
            get_kernel(spec)


class TestFiles:
    def test_toml_kernel_with_scale(self, tmp_path):
        path = tmp_path / "smooth.toml"
        path.write_text(
            'name = "smooth"\ndescription = "d"\ntags = ["blur"]\n'
            "matrix = [[1, 2, 1]]\nscale = 0.25\n"
        )
        k = get_kernel(str(path))
        assert k.matrix.tolist() == [[0.25, 0.5, 0.25]]
        assert k.tags == ("blur",)

    def test_json_kernel_and_bare_array(self, tmp_path):
        (tmp_path / "e.json").write_text(json.dumps({"name": "e", "matrix": [[0, 1], [1, 0]]}))
        assert get_kernel(str(tmp_path / "e.json")).shape == (2, 2)
        (tmp_path / "bare.json").write_text("[[1, 2, 3]]")
        assert get_kernel(str(tmp_path / "bare.json")).name == "bare"

    def test_bank_file_with_named_and_inline_members(self, tmp_path):
        path = tmp_path / "grad.toml"
        path.write_text(
            'name = "grad"\ncombine = "sum"\n[[kernels]]\nname = "sobel-x"\n'
            '[[kernels]]\nname = "mine"\nmatrix = [[-1, -2, -1], [0, 0, 0], '
            "[1, 2, 1]]\n"
        )
        bank = get_kernel(str(path))
        assert isinstance(bank, KernelBank)
        assert [m.name for m in bank.members] == ["sobel-x", "mine"]
        assert bank.combine == "sum"

    @pytest.mark.parametrize(
        "text, message",
        [
            ("matrix = [[1, 2], [3]]", "row 2 has 1 value, expected 2"),
            ("matrix = [[1, 2], [3, 'x']]", "'x' is not a number"),
            ("matrix = []", "empty"),
            ("matrix = [[[[1]]]]", "more than 3 dimensions"),
            ("matrix = [[1, nan]]", "not a finite number"),
            ("matrix = [[1, inf]]", "not a finite number"),
            ("matrix = [[1, 2]", "invalid TOML"),
            ("matirx = [[1]]", "unknown key 'matirx'"),
            ('name = "x"', "no matrix"),
            ('combine = "avg"\n[[kernels]]\nname = "box"', "combine 'avg' is not one of"),
            ('combine = "sum"\nkernels = []', "'kernels' must be a non-empty list"),
            ('combine = "sum"\n[[kernels]]\nname = "nosuch"', "member 1: unknown kernel 'nosuch'"),
            ("matrix = [[1]]\nscale = 'big'", "scale must be a number"),
            ("matrix = [[1]]\ntags = 'edge'", "'tags' must be a list of strings"),
        ],
    )
    def test_malformed_files_name_the_problem(self, tmp_path, text, message):
        path = tmp_path / "bad.toml"
        path.write_text(text + "\n")
        with pytest.raises(KernelError, match=message) as info:
            get_kernel(str(path))
        assert "\n" not in str(info.value)

    def test_missing_file(self, tmp_path):
        with pytest.raises(KernelError, match="no such file"):
            get_kernel(str(tmp_path / "nope.toml"))

    def test_not_utf8_and_bad_json(self, tmp_path):
        (tmp_path / "b.toml").write_bytes(b"matrix = [[1]] \xff\xfe")
        with pytest.raises(KernelError, match="not UTF-8"):
            get_kernel(str(tmp_path / "b.toml"))
        (tmp_path / "b.json").write_text("{matrix: [[1]]}")
        with pytest.raises(KernelError, match="invalid JSON"):
            get_kernel(str(tmp_path / "b.json"))


class TestFileOrName:
    """A spec is a file only with a kernel-file suffix or a path separator; a bare word is a
    name even where a file of that name lies in the working directory."""

    @pytest.mark.parametrize(
        "spec, is_file",
        [
            ("box", False),
            ("box:size=4", False),
            ("gaussian:sigma=1.5", False),
            ("my.toml", True),
            ("EDGES.JSON", True),
            ("sobel.mat", True),
            ("./box", True),
            ("kernels/box", True),
            ("/abs/box", True),
            ("~/k/edges", True),
            ("kdir/", True),
            ("notes.txt", False),
        ],
    )
    def test_is_file_spec(self, spec, is_file):
        assert is_file_spec(spec) is is_file

    def test_the_platforms_separators_count(self, monkeypatch):
        monkeypatch.setattr(os, "altsep", "\\")
        assert is_file_spec("k\\edges")
        monkeypatch.setattr(os, "altsep", None)
        assert not is_file_spec("k\\edges")

    def test_a_bare_name_is_the_builtin_beside_a_file_of_that_name(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / "box").write_text("this is [not TOML\n")
        (tmp_path / "sobel").write_text("matrix = [[7]]\n")
        np.testing.assert_array_equal(get_kernel("box").matrix, np.full((3, 3), 1 / 9))
        assert get_kernel("box:size=2").matrix.tolist() == [[0.25] * 2] * 2
        assert [m.name for m in get_kernel("sobel").members] == ["sobel-x", "sobel-y"]

    def test_a_path_with_a_separator_is_the_file(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / "box").write_text("this is [not TOML\n")
        (tmp_path / "sobel").write_text("matrix = [[7]]\n")
        # (the message names the file as pathlib spells it: 'box', not './box')
        with pytest.raises(KernelError, match=r"^kernel file 'box': invalid TOML"):
            get_kernel("./box")
        k = get_kernel("./sobel")
        assert k.matrix.tolist() == [[7.0]]
        assert k.name == "sobel"
        assert get_kernel(str(tmp_path / "sobel")).matrix.tolist() == [[7.0]]

    def test_a_bare_word_that_is_only_a_file_is_an_unknown_kernel(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / "mine").write_text("matrix = [[7]]\n")
        with pytest.raises(KernelError, match=r"^unknown kernel 'mine'"):
            get_kernel("mine")

    def test_a_suffixed_file_needs_no_separator(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / "box.toml").write_text("matrix = [[1, 2]]\n")
        (tmp_path / "box.mat").write_text("2 1\n1 3\n")
        assert get_kernel("box.toml").matrix.tolist() == [[1.0, 2.0]]
        assert get_kernel("box.mat").matrix.tolist() == [[3.0, 1.0]]  # vips correlates

    @pytest.mark.parametrize(
        "spec, named",
        [("nope.toml",) * 2, ("nope.JSON",) * 2, ("nope.mat",) * 2, ("./nope", "nope")],
    )
    def test_a_missing_file_is_named(self, tmp_path, monkeypatch, spec, named):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(KernelError, match=rf"^kernel file '{re.escape(named)}': no such file$"):
            get_kernel(spec)

    def test_cli_bare_name_beside_a_file_is_the_builtin(self, cli, tmp_path):
        pixels = (np.arange(48, dtype=np.uint8).reshape(6, 8) * 5).astype(np.uint8)
        write_png(tmp_path / "x.png", pixels)
        (tmp_path / "box").touch()
        r = cli("apply", "-k", "box", "x.png", cwd=tmp_path)
        assert r.exit_code == 0, r.stderr
        assert r.stdout == "x.box.png\n"
        want = np.clip(np.rint(convcli.convolve(pixels.astype(float), "box")), 0, 255)
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.box.png")), want)

    def test_cli_dot_slash_is_the_file(self, cli, tmp_path):
        write_png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
        (tmp_path / "box").touch()
        r = cli("show-kernel", "./box", "--json", cwd=tmp_path)
        assert r.exit_code == 2
        assert r.stderr.startswith("convcli: error: kernel file 'box': kernel 'box': no matrix")
        (tmp_path / "box").write_text("matrix = [[0, 2, 0]]\n")
        r = cli("show-kernel", "./box", "--json", cwd=tmp_path)
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["matrix"] == [[0, 2, 0]]
        r = cli("apply", "-k", "./box", "x.png", "--print", cwd=tmp_path)
        assert r.exit_code == 0, r.stderr

    @pytest.mark.parametrize("spec", ["gone.toml", "gone.json", "gone.mat"])
    def test_cli_missing_kernel_file(self, cli, tmp_path, spec):
        write_png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
        r = cli("apply", "-k", spec, "x.png", cwd=tmp_path)
        assert r.exit_code == 2
        assert r.stderr == f"convcli: error: kernel file '{spec}': no such file\n"
        assert not (tmp_path / "x.gone.png").exists()


class TestUserKernels:
    def test_kernel_path_and_xdg(self, tmp_path, monkeypatch):
        first, xdg = tmp_path / "a", tmp_path / "xdg"
        first.mkdir()
        (xdg / "convcli" / "kernels").mkdir(parents=True)
        (first / "edge5.toml").write_text("matrix = [[1, 0, -1]]\n")
        (xdg / "convcli" / "kernels" / "mine.json").write_text('{"matrix": [[2]]}')
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", f"{first}:{tmp_path / 'missing'}")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
        assert get_kernel("edge5").matrix.tolist() == [[1, 0, -1]]
        assert get_kernel("MINE").matrix.tolist() == [[2]]
        names = {i.name: i for i in list_kernels()}
        assert names["edge5"].where.endswith("edge5.toml")
        assert names["sobel"].where == "built-in"

    def test_a_home_that_cannot_be_found_is_skipped(self, tmp_path, monkeypatch):
        """``~nosuchuser`` in the path used to end in RuntimeError (an internal error)."""
        (tmp_path / "mine.toml").write_text("matrix = [[3]]\n")
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", f"~nosuchuser-convcli/k:{tmp_path}")
        assert registry.user_dirs()[:2] == [Path("~nosuchuser-convcli/k"), tmp_path]
        assert get_kernel("mine").matrix.tolist() == [[3.0]]
        assert "mine" in {i.name for i in list_kernels()}

    def test_kernel_path_expands_home(self, tmp_path, monkeypatch):
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", "~/k")
        monkeypatch.delenv("XDG_CONFIG_HOME")
        assert registry.user_dirs() == [tmp_path / "k", tmp_path / ".config/convcli/kernels"]

    def test_user_kernel_shadows_a_builtin(self, tmp_path, monkeypatch):
        (tmp_path / "sharpen.toml").write_text("matrix = [[9]]\n")
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", str(tmp_path))
        assert get_kernel("sharpen").matrix.tolist() == [[9]]

    def test_broken_user_file_is_listed_with_its_error(self, tmp_path, monkeypatch):
        (tmp_path / "broken.toml").write_text("matrix = [[1, 2], [3]]\n")
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", str(tmp_path))
        info = {i.name: i for i in list_kernels()}["broken"]
        assert "row 2 has 1 value" in info.error

    def test_bank_referring_to_itself(self, tmp_path, monkeypatch):
        (tmp_path / "loop.toml").write_text('combine = "sum"\n[[kernels]]\nname = "loop"\n')
        (tmp_path / "ping.toml").write_text('combine = "sum"\n[[kernels]]\nname = "pong"\n')
        (tmp_path / "pong.toml").write_text('combine = "sum"\n[[kernels]]\nname = "ping"\n')
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", str(tmp_path))
        with pytest.raises(KernelError, match=r"'loop' refers to itself \(loop -> loop\)"):
            get_kernel("loop")
        with pytest.raises(KernelError, match=r"ping -> pong -> ping"):
            get_kernel("ping")


class TestErrorContext:
    """Each layer adds where it is (file, bank member) by the kind of error, not its text."""

    def test_a_member_error_names_bank_and_file(self, tmp_path):
        path = tmp_path / "b.toml"
        path.write_text('combine = "sum"\n[[kernels]]\nname = "nosuch"\n')
        with pytest.raises(KernelError) as info:
            get_kernel(str(path))
        assert info.value.message == (
            f"kernel file {str(path)!r}: kernel bank 'b': member 1: unknown kernel 'nosuch' "
            "(convcli list-kernels shows them all)"
        )
        assert type(info.value) is KernelFileError and info.value.exit_code == 2

    def test_a_member_named_like_a_cycle_is_still_an_unknown_member(self, tmp_path):
        """A name holding "refers to itself" used to pass for a cycle, losing the context."""
        path = tmp_path / "b.toml"
        path.write_text('combine = "sum"\n[[kernels]]\nname = "x refers to itself"\n')
        with pytest.raises(KernelError) as info:
            get_kernel(str(path))
        assert info.value.message.startswith(
            f"kernel file {str(path)!r}: kernel bank 'b': member 1: "
            "unknown kernel 'x refers to itself'"
        )

    def test_a_cycle_passes_through_files_and_banks_unchanged(self, tmp_path, monkeypatch):
        (tmp_path / "ping.toml").write_text('combine = "sum"\nkernels = ["box", "pong"]\n')
        (tmp_path / "pong.toml").write_text('combine = "max"\nkernels = ["ping"]\n')
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", str(tmp_path))
        for spec in ("ping", str(tmp_path / "ping.toml")):
            with pytest.raises(KernelCycleError) as info:
                get_kernel(spec)
            assert info.value.message == "kernel 'ping' refers to itself (ping -> pong -> ping)"
            assert info.value.exit_code == 2

    def test_a_broken_member_file_is_named_inside_its_bank(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / "k").mkdir()
        (tmp_path / "k" / "inner.toml").write_text("matrix = [[1, 2], [3]]\n")
        (tmp_path / "k" / "inner.mat").write_text("2 2\n1 2\n")
        outer = tmp_path / "k" / "outer.toml"
        for member, problem in [
            ("k/inner.toml", "kernel 'inner': row 2 has 1 value, expected 2"),
            ("k/inner.mat", "the header says 2 rows, found 1"),
        ]:
            outer.write_text(f'combine = "sum"\nkernels = ["{member}"]\n')
            with pytest.raises(KernelError) as info:
                get_kernel("k/outer.toml")
            assert info.value.message == (
                "kernel file 'k/outer.toml': kernel bank 'outer': member 1: "
                f"kernel file {member!r}: {problem}"
            )

    def test_named_and_builtin_kernels_are_not_called_files(self, tmp_path, monkeypatch):
        (tmp_path / "wide.toml").write_text("matrix = [[1, 2], [3]]\n")
        monkeypatch.setenv("CONVCLI_KERNEL_PATH", str(tmp_path))
        with pytest.raises(KernelError) as info:
            get_kernel("wide")
        assert info.value.message == "kernel 'wide': row 2 has 1 value, expected 2"
        # the same file as a built-in, named by its path
        monkeypatch.setattr(registry, "builtin_dir", lambda: tmp_path)
        with pytest.raises(KernelError) as info:
            Registry([tmp_path]).get(str(tmp_path / "wide.toml"))
        assert info.value.message == "kernel 'wide': row 2 has 1 value, expected 2"

    def test_file_errors_are_kernel_file_errors(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        for name, problem in [
            ("a.toml", "invalid TOML"),
            ("a.json", "invalid JSON"),
            ("a.mat", "could not convert"),
        ]:
            (tmp_path / name).write_text("[[" if name != "a.mat" else "x\n")
            with pytest.raises(KernelFileError, match=rf"^kernel file '{name}': {problem}"):
                get_kernel(name)


def test_unknown_names_suggest_close_matches():
    with pytest.raises(KernelError, match=r"unknown kernel 'sobl'; did you mean 'sobel'"):
        get_kernel("sobl")
    with pytest.raises(KernelError, match="gaussian"):
        get_kernel("gausian")


def test_empty_spec():
    with pytest.raises(KernelError, match="empty kernel spec"):
        get_kernel("  ")


def test_builtin_dir_is_the_checkout_kernels_folder_here():
    assert (builtin_dir() / "sobel.toml").is_file()
    names = {p.stem for p in builtin_dir().glob("*.toml")}
    assert set(SPEC_BUILTINS) <= names


def test_registry_with_explicit_dirs(tmp_path):
    (tmp_path / "only.toml").write_text("matrix = [[1]]\n")
    reg = Registry([tmp_path])
    assert reg.names() == ["only"]
    assert isinstance(reg.get("only"), Kernel)


def test_list_kernels_by_tag():
    edge = {i.name for i in list_kernels("edge")}
    assert {"sobel", "sobel-x", "laplacian", "log"} <= edge
    assert "gaussian" not in edge


def test_every_builtin_file_loads(tmp_path):
    for path in Path(builtin_dir()).glob("*.toml"):
        kernel = get_kernel(path.stem)
        assert kernel.description, f"{path.name} has no description"
