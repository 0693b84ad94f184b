"""Kernels from and to other tools: ImageMagick kernel strings and libvips matrix files give
those tools' pixels (checked against the real tools when they are installed)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import convcli
from conftest import CONVERT, VIPS, write_png
from convcli.errors import KernelError
from convcli.kernels.formats import export, parse_imagemagick, read_vips_matrix
from convcli.kernels.model import Kernel, KernelChain
from convcli.kernels.registry import get_kernel

needs_im = pytest.mark.skipif(
    CONVERT is None, reason="ImageMagick (convert) is not installed; apt-get install imagemagick"
)
needs_vips = pytest.mark.skipif(
    VIPS is None, reason="libvips (vips) is not installed; apt-get install libvips-tools"
)


class TestImageMagickStrings:
    def test_geometry_and_values(self):
        k = get_kernel("3x3: -1,0,1, -2,0,2, -1,0,1")
        assert k.matrix.tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
        assert k.origin is None

    def test_width_by_height_and_origin(self):
        k = get_kernel("4x2+0+1: 1 2 3 4 5 6 7 8")
        assert k.shape == (2, 4)
        assert k.origin == (1, 0)  # +X+Y is column 0, row 1

    def test_square_shorthand_and_old_style(self):
        assert get_kernel("3: 0,1,0 1,-4,1 0,1,0").shape == (3, 3)
        assert get_kernel("1,2,1,2,4,2,1,2,1").shape == (3, 3)

    def test_nan_means_not_in_the_neighbourhood(self):
        assert get_kernel("3x1: 1,nan,1").matrix.tolist() == [[1, 0, 1]]

    def test_semicolon_list_is_a_chain(self):
        chain = get_kernel("3x1: 1,2,1; 1x3: 1,2,1")
        assert isinstance(chain, KernelChain)
        assert [s.shape for s in chain.steps] == [(1, 3), (3, 1)]

    @pytest.mark.parametrize(
        "spec, message",
        [
            ("3x3: 1,2,3", "3x3 needs 9 values, got 3"),
            ("3x3: 1,2,x,4,5,6,7,8,9", "'x' is not a number"),
            ("3x3+3+0: 1,2,3,4,5,6,7,8,9", r"origin \+3\+0 lies outside 3x3"),
            ("1,2,3,4", "odd square"),
        ],
    )
    def test_errors(self, spec, message):
        with pytest.raises(KernelError, match=message):
            parse_imagemagick(spec)


class TestVipsMatrix:
    def test_read_flips_scales_and_keeps_offset(self, tmp_path):
        path = tmp_path / "k.mat"
        path.write_text("3 2 2 10\n1 2 3\n4 5 6\n")
        k = read_vips_matrix(path)
        assert k.matrix.tolist() == [[3.0, 2.5, 2.0], [1.5, 1.0, 0.5]]
        assert k.offset == 10
        assert get_kernel(str(path)).matrix.tolist() == k.matrix.tolist()

    @pytest.mark.parametrize(
        "text, message",
        [
            ("3 2\n1 2 3\n", "the header says 2 rows, found 1"),
            ("3 2\n1 2 3\n4 5\n", "row 2 has 2 values, expected 3"),
            ("3\n1 2 3\n", "header must be"),
            ("3 1 0\n1 2 3\n", "scale is 0"),
            ("", "empty matrix file"),
        ],
    )
    def test_errors(self, tmp_path, text, message):
        path = tmp_path / "bad.mat"
        path.write_text(text)
        with pytest.raises(KernelError, match=message):
            read_vips_matrix(path)

    def test_unreadable_files_say_why_as_other_kernel_files_do(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / "dir.mat").mkdir()
        (tmp_path / "latin1.mat").write_bytes(b"1 1\n1 # caf\xe9\n")
        for spec, problem in [
            ("dir.mat", "is a directory"),
            ("latin1.mat", "not UTF-8 text"),
            ("gone.mat", "no such file"),
        ]:
            with pytest.raises(KernelError) as info:
                get_kernel(spec)
            assert info.value.message == f"kernel file {spec!r}: {problem}"


class TestExport:
    def test_roundtrips_through_every_format(self, tmp_path):
        original = Kernel([[1, 2, 0], [0, -1, 3]], name="odd", origin=(0, 2))
        im = export(original, "imagemagick").strip()
        assert im == "3x2+2+0: 1,2,0,0,-1,3"
        back = parse_imagemagick(im)
        assert back.matrix.tolist() == original.matrix.tolist() and back.origin == (0, 2)
        (tmp_path / "odd.mat").write_text(export(original, "vips"))
        x = np.random.default_rng(1).normal(size=(9, 11))
        want = convcli.convolve(x, original, boundary="nearest")
        for path in ("odd.mat",):
            got = convcli.convolve(x, str(tmp_path / path), boundary="nearest")
            np.testing.assert_allclose(got, want, atol=1e-12)
        (tmp_path / "odd.toml").write_text(export(original, "toml"))
        (tmp_path / "odd.json").write_text(export(original, "json"))
        for path in ("odd.toml", "odd.json"):
            got = convcli.convolve(x, str(tmp_path / path), boundary="nearest")
            np.testing.assert_allclose(got, want, atol=1e-12)

    def test_banks(self, tmp_path):
        (tmp_path / "sobel.toml").write_text(export(get_kernel("sobel"), "toml"))
        bank = get_kernel(str(tmp_path / "sobel.toml"))
        assert bank.combine == "magnitude" and len(bank.members) == 2
        with pytest.raises(KernelError, match="is a bank"):
            export(get_kernel("sobel"), "imagemagick")


def _photo(tmp_path, photos):
    return write_png(tmp_path / "in.png", photos["camera"][100:164, 200:280])


@needs_im
@pytest.mark.peers
@pytest.mark.parametrize(
    "spec",
    [
        "3x3: -1,0,1, -2,0,2, -1,0,1",
        "3x3: 0,-1,0, -1,5,-1, 0,-1,0",
        "4x2: 1,2,3,4, 5,6,7,8",
        "3x3: 0.1,0.1,0.1, 0.1,0.2,0.1, 0.1,0.1,0.1",
        "2x2: 0.3,0.2, 0.1,0.4",
        "3x3+0+0: 0,0,0, 0,0,1, 0,1,1",
        "5x1: 0.1,0.2,0.4,0.2,0.1; 1x3: 0.25,0.5,0.25",
    ],
)
def test_imagemagick_string_gives_imagemagicks_pixels(tmp_path, photos, cli, spec):
    src = _photo(tmp_path, photos)
    subprocess.run(
        [CONVERT, str(src), "-morphology", "Convolve", spec, str(tmp_path / "im.png")],
        check=True,
        capture_output=True,
    )
    r = cli(
        "apply", "-k", spec, str(src), "--compat", "imagemagick", "-o", str(tmp_path / "ours.png")
    )
    assert r.exit_code == 0, r.stderr
    theirs = convcli.read_image(tmp_path / "im.png").astype(int)
    ours = convcli.read_image(tmp_path / "ours.png").astype(int)
    assert theirs.shape == ours.shape
    if ";" not in spec:
        np.testing.assert_array_equal(ours, theirs)
    else:  # IM stores the chain's intermediate at 16 bits: a level apart, rarely
        assert np.max(np.abs(theirs - ours)) <= 1
        assert np.mean(theirs != ours) < 0.02


@needs_vips
@pytest.mark.peers
@pytest.mark.parametrize(
    "mask",
    [
        "3 3 1\n-1 0 1\n-2 0 2\n-1 0 1\n",
        "4 2 4 20\n1 2 3 4\n5 6 7 8\n",
        "3 3 1 0\n1 0 0\n0 0 0\n0 0 2\n",
    ],
)
def test_vips_matrix_gives_vips_pixels(tmp_path, photos, mask):
    src = _photo(tmp_path, photos)
    (tmp_path / "m.mat").write_text(mask)
    subprocess.run(
        [
            VIPS,
            "conv",
            str(src),
            str(tmp_path / "vips.tif"),
            str(tmp_path / "m.mat"),
            "--precision",
            "float",
        ],
        check=True,
        capture_output=True,
    )
    theirs = convcli.read_image(tmp_path / "vips.tif").astype(np.float64)
    ours = convcli.convolve(
        convcli.read_image(src), str(tmp_path / "m.mat"), boundary="nearest", dtype=np.float64
    )
    # vips carries out the sum in float, the edges by copying the edge pixel
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


@needs_vips
@pytest.mark.peers
def test_show_kernel_vips_format_feeds_vips(tmp_path, photos, cli):
    src = _photo(tmp_path, photos)
    r = cli("show-kernel", "emboss", "--format", "vips")
    (tmp_path / "e.mat").write_text(r.stdout)
    subprocess.run(
        [
            VIPS,
            "conv",
            str(src),
            str(tmp_path / "v.tif"),
            str(tmp_path / "e.mat"),
            "--precision",
            "float",
        ],
        check=True,
        capture_output=True,
    )
    theirs = convcli.read_image(tmp_path / "v.tif")
    ours = convcli.convolve(convcli.read_image(src), "emboss", boundary="nearest")
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_show_kernel_formats_on_the_command_line(cli):
    assert (
        cli("show-kernel", "sobel-x", "--format", "imagemagick").stdout
        == "3x3: -1,0,1,-2,0,2,-1,0,1\n"
    )
    assert cli("show-kernel", "sobel-x", "--format", "vips").stdout.splitlines()[:2] == [
        "3 3 1",
        "1 0 -1",
    ]
    assert "matrix = [" in cli("show-kernel", "sobel-x", "--format", "toml").stdout
    bad = cli("show-kernel", "sobel", "--format", "vips")
    assert bad.exit_code == 2 and "a vips matrix holds one kernel" in bad.stderr
