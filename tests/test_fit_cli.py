"""``convcli fit`` and ``convcli deconvolve`` on the command line: kernel files apply reads,
apply's outputs, naming and batches, one error line and the exit codes, nothing left behind;
and the effective kernels of libvips' and ImageMagick's blurs."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import convcli
from conftest import CONVERT, VIPS, write_png


@pytest.fixture
def pair(tmp_path, photos, cli):
    src = write_png(tmp_path / "in.png", photos["camera"][100:180, 150:260])
    r = cli("apply", "-k", "gaussian:size=5,sigma=1", str(src), "-o", str(tmp_path / "out.png"))
    assert r.exit_code == 0, r.stderr
    return src, tmp_path / "out.png"


def _files(path):
    return sorted(p.name for p in path.iterdir())


def test_fit_writes_a_kernel_file_apply_reads(tmp_path, pair, cli):
    src, target = pair
    r = cli("fit", str(src), str(target), "--size", "5", "-o", str(tmp_path / "k.toml"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{tmp_path / 'k.toml'}\n"
    assert "residual RMS" in r.stderr and "levels of the target" in r.stderr
    kernel = convcli.get_kernel(str(tmp_path / "k.toml"))
    want = convcli.get_kernel("gaussian:size=5,sigma=1").matrix
    assert np.max(np.abs(kernel.matrix - want)) < 5e-3
    r = cli("apply", "-k", str(tmp_path / "k.toml"), str(src), "-o", str(tmp_path / "re.png"))
    assert r.exit_code == 0, r.stderr
    again = convcli.read_image(tmp_path / "re.png").astype(int)
    assert np.max(np.abs(again - convcli.read_image(target).astype(int))) <= 1


def test_fit_naming_json_stdout_and_explain(tmp_path, pair, cli):
    src, target = pair
    r = cli("fit", str(src), str(target), "-q")
    assert r.exit_code == 0 and r.stdout == f"{tmp_path / 'in.fit.toml'}\n" and not r.stderr
    r = cli(
        "fit",
        str(src),
        str(target),
        "-d",
        str(tmp_path / "k"),
        "--format",
        "json",
        "--kernel-name",
        "blur",
        "-q",
    )
    assert r.stdout == f"{tmp_path / 'k' / 'in.blur.json'}\n"
    assert convcli.get_kernel(str(tmp_path / "k" / "in.blur.json")).name == "blur"
    r = cli("fit", str(src), str(target), "-o", "-", "-q")
    assert r.stdout.startswith('name = "fit"')
    before = _files(tmp_path)
    r = cli("fit", str(src), str(target), "--explain")
    assert r.exit_code == 0 and "condition number" in r.stderr and not r.stdout
    assert _files(tmp_path) == before


def test_fit_pairs_files_from_and_constraints(tmp_path, photos, cli):
    names = []
    for i, crop in enumerate((photos["camera"][:60, :70], photos["coffee"][50:110, 60:140, 0])):
        src = write_png(tmp_path / f"a{i}.png", crop)
        out = tmp_path / f"b{i}.png"
        assert cli("apply", "-k", "box:size=3", str(src), "-o", str(out)).exit_code == 0
        names.append((src, out))
    (tmp_path / "list.txt").write_text("".join(f"{a}\t{b}\n" for a, b in names))
    for args in (
        [str(names[0][0]), str(names[0][1]), "--pair", str(names[1][0]), str(names[1][1])],
        ["--files-from", str(tmp_path / "list.txt")],
    ):
        r = cli("fit", *args, "--sum", "1", "--symmetric", "--separable", "-o", "-", "-q")
        assert r.exit_code == 0, r.stderr
        (tmp_path / "k.toml").write_text(r.stdout)
        m = convcli.get_kernel(str(tmp_path / "k.toml")).matrix
        assert abs(m.sum() - 1) < 1e-9
        assert np.max(np.abs(m - 1 / 9)) < 2e-3


def test_fit_arrays_bank_and_correlation(tmp_path, cli, rng):
    x = rng.random((40, 50))
    bank = convcli.get_kernel("sobel").with_combine("stack")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", convcli.convolve(x, bank, correlate=True, mode="valid"))
    r = cli(
        "fit",
        str(tmp_path / "x.npy"),
        str(tmp_path / "y.npy"),
        "--bank",
        "2",
        "--correlate",
        "--mode",
        "valid",
        "-o",
        str(tmp_path / "b.json"),
    )
    assert r.exit_code == 0, r.stderr
    got = convcli.get_kernel(str(tmp_path / "b.json"))
    for member, want in zip(got.members, bank.members, strict=True):
        np.testing.assert_allclose(member.matrix, want.matrix, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--size", "0"], 2, "--size"),
        (["--size", "900"], 1, "larger than the"),
        (["--ridge", "-1"], 2, "ridge"),
        (["-o", "k.png"], 2, "a kernel file ends in .toml or .json"),
        (["--channels", "some"], 2, "--channels"),
        (["--backend", "opencv"], 2, "--backend"),
        (["--backend", "torch", "--sum", "1"], 2, "least-squares"),
    ],
)
def test_fit_errors(tmp_path, pair, cli, args, code, message):
    src, target = pair
    before = _files(tmp_path)
    r = cli("fit", str(src), str(target), *args)
    assert r.exit_code == code
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convcli: error: ") and message in lines[0]
    assert _files(tmp_path) == before


def test_fit_refuses_flat_inputs_odd_pairs_and_overwriting(tmp_path, pair, cli):
    src, target = pair
    flat = write_png(tmp_path / "flat.png", np.full((30, 30), 9, np.uint8))
    before = _files(tmp_path)
    for args, code, message in (
        ([str(flat), str(flat)], 1, "flat.png: the input does not determine a 3x3 kernel"),
        ([str(src)], 2, "in pairs"),
        (
            [str(src), str(target), "-o", str(tmp_path / "in.png"), "--format", "toml"],
            1,
            "would overwrite an input",
        ),
        ([str(src), str(tmp_path / "missing.png")], 1, "missing.png"),
    ):
        r = cli("fit", *args)
        assert r.exit_code == code, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
        assert _files(tmp_path) == before


def test_fit_torch_backend_on_the_command_line(tmp_path, pair, cli):
    pytest.importorskip("torch")
    src, target = pair
    r = cli("fit", str(src), str(target), "--backend", "torch", "-o", str(tmp_path / "t.toml"))
    assert r.exit_code == 0, r.stderr
    r2 = cli("fit", str(src), str(target), "-o", str(tmp_path / "l.toml"))
    trained = convcli.get_kernel(str(tmp_path / "t.toml")).matrix
    exact = convcli.get_kernel(str(tmp_path / "l.toml")).matrix
    assert r2.exit_code == 0
    assert np.max(np.abs(trained - exact)) < 1e-5


def _effective_kernel_reproduces(tmp_path, cli, src, theirs, size):
    r = cli(
        "fit",
        str(src),
        str(theirs),
        "--size",
        str(size),
        "--boundary",
        "nearest",
        "-o",
        str(tmp_path / "eff.toml"),
        "-q",
    )
    assert r.exit_code == 0, r.stderr
    r = cli(
        "apply",
        "-k",
        str(tmp_path / "eff.toml"),
        "--boundary",
        "nearest",
        str(src),
        "-o",
        str(tmp_path / "ours.png"),
    )
    assert r.exit_code == 0, r.stderr
    ours = convcli.read_image(tmp_path / "ours.png").astype(int)
    return int(np.max(np.abs(ours - convcli.read_image(theirs).astype(int))))


@pytest.mark.peers
@pytest.mark.skipif(VIPS is None, reason="the vips command is not installed")
@pytest.mark.parametrize("photo", ["camera", "astronaut"])
def test_recovers_vips_gaussblur(tmp_path, photos, cli, photo):
    src = write_png(tmp_path / "in.png", photos[photo][100:220, 100:260])
    subprocess.run([VIPS, "gaussblur", str(src), str(tmp_path / "v.png"), "2"], check=True)
    assert _effective_kernel_reproduces(tmp_path, cli, src, tmp_path / "v.png", 13) <= 1


@pytest.mark.peers
@pytest.mark.skipif(CONVERT is None, reason="ImageMagick's convert is not installed")
@pytest.mark.parametrize("photo", ["camera", "astronaut"])
def test_recovers_imagemagick_blur(tmp_path, photos, cli, photo):
    src = write_png(tmp_path / "in.png", photos[photo][100:220, 100:260])
    subprocess.run([CONVERT, str(src), "-blur", "0x2", str(tmp_path / "m.png")], check=True)
    assert _effective_kernel_reproduces(tmp_path, cli, src, tmp_path / "m.png", 13) <= 1


# -- deconvolve --------------------------------------------------------------------------------
@pytest.fixture
def blurred(tmp_path, photos, cli):
    rgb = photos["astronaut"][:96, 200:328]
    src = write_png(tmp_path / "photo.png", rgb)
    r = cli("apply", "-k", "gaussian:sigma=1.5", str(src), "-o", str(tmp_path / "b.png"))
    assert r.exit_code == 0
    return rgb, tmp_path / "b.png"


def test_deconvolve_writes_beside_the_input_and_matches_the_library(tmp_path, blurred, cli):
    from convcli.compute.deconvolve import richardson_lucy

    rgb, path = blurred
    r = cli("deconvolve", "-k", "gaussian:sigma=1.5", str(path), "--iterations", "10")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "b.rl-gaussian-sigma1.5.png"
    assert r.stdout == f"{out}\n"
    got = convcli.read_image(out).astype(int)
    b = convcli.read_image(path)
    psf = convcli.get_kernel("gaussian:sigma=1.5")
    for c in range(3):
        want = np.clip(np.round(richardson_lucy(b[..., c] / 255.0, psf, 10) * 255), 0, 255)
        assert np.max(np.abs(got[..., c] - want)) <= 1
    error_before = np.abs(b.astype(int) - rgb).mean()
    assert np.abs(got - rgb).mean() < error_before


def test_deconvolve_batches_like_apply(tmp_path, blurred, cli):
    _, path = blurred
    other = tmp_path / "sub" / "c.png"
    other.parent.mkdir()
    shutil.copy(path, other)
    (tmp_path / "list.txt").write_text(f"{path}\n{other}\n")
    r = cli(
        "deconvolve",
        "-k",
        "gaussian:sigma=1.5",
        "--method",
        "wiener",
        "--files-from",
        str(tmp_path / "list.txt"),
        "-d",
        str(tmp_path / "out"),
        "-j",
        "2",
        "--name",
        "{stem}.restored{ext}",
    )
    assert r.exit_code == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(
        [str(tmp_path / "out" / "b.restored.png"), str(tmp_path / "out" / "c.restored.png")]
    )
    r = cli(
        "deconvolve",
        "-k",
        "gaussian:sigma=1.5",
        "--method",
        "wiener",
        "--files-from",
        str(tmp_path / "list.txt"),
        "-d",
        str(tmp_path / "out"),
        "--skip-existing",
        "--name",
        "{stem}.restored{ext}",
    )
    assert r.exit_code == 0 and r.stdout == ""


def test_deconvolve_depths_alpha_and_arrays(tmp_path, blurred, cli, rng):
    rgb, path = blurred
    alpha = np.full(rgb.shape[:2], 128, np.uint8)
    rgba = write_png(tmp_path / "rgba.png", np.dstack([convcli.read_image(path), alpha]))
    r = cli(
        "deconvolve",
        "-k",
        "gaussian:sigma=1.5",
        str(rgba),
        "-o",
        str(tmp_path / "r.png"),
        "--depth",
        "16",
    )
    assert r.exit_code == 0, r.stderr
    out = convcli.read_image(tmp_path / "r.png")
    assert out.dtype == np.uint16 and out.shape == (*rgb.shape[:2], 4)
    np.testing.assert_array_equal(out[..., 3], np.full(rgb.shape[:2], 128 * 257))
    x = rng.random((30, 40))
    psf = "gaussian:size=3,sigma=0.6"  # its spectrum has no zeros: the blur is invertible
    np.save(tmp_path / "x.npy", convcli.convolve(x, psf, boundary="wrap"))
    r = cli(
        "deconvolve",
        "-k",
        psf,
        "--method",
        "wiener",
        "--balance",
        "1e-12",
        "--boundary",
        "wrap",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "y.npy"),
    )
    assert r.exit_code == 0, r.stderr
    restored = np.load(tmp_path / "y.npy")
    assert restored.dtype == np.float64
    assert np.max(np.abs(restored - x)) < 1e-6


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-k", "sobel-x"], 2, "sums to 0"),
        (["-k", "sobel"], 2, "not a bank"),
        ([], 2, "PSF"),
        (["-k", "box", "--method", "blind"], 2, "--method"),
        (["-k", "box", "--balance", "0.1"], 2, "Wiener"),
        (["-k", "box", "--method", "wiener", "--noise", "x"], 2, "--noise"),
        (["-k", "gaussian:sigma=100"], 1, "larger than the"),
    ],
)
def test_deconvolve_errors(tmp_path, blurred, cli, args, code, message):
    _, path = blurred
    before = _files(tmp_path)
    r = cli("deconvolve", *args, str(path))
    assert r.exit_code == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convcli: error: ") and message in lines[0]
    assert _files(tmp_path) == before


def test_deconvolve_one_bad_input_fails_alone(tmp_path, blurred, cli):
    _, path = blurred
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    r = cli("deconvolve", "-k", "box", str(bad), str(path), "-d", str(tmp_path / "out"))
    assert r.exit_code == 1
    assert "bad.png" in r.stderr
    assert _files(tmp_path / "out") == ["b.rl-box.png"]


def test_fit_gray_and_torch_progress(tmp_path, photos, cli):
    rgb = photos["coffee"][100:160, 100:180]
    src = write_png(tmp_path / "c.png", rgb)
    r = cli(
        "apply", "-k", "box", "--gray", str(src), "-o", str(tmp_path / "g.tif"), "--depth", "float"
    )
    assert r.exit_code == 0, r.stderr
    r = cli("fit", str(src), str(tmp_path / "g.tif"), "--gray", "-o", "-", "-q")
    assert r.exit_code == 0, r.stderr
    (tmp_path / "k.toml").write_text(r.stdout)
    np.testing.assert_allclose(
        convcli.get_kernel(str(tmp_path / "k.toml")).matrix, 1 / 9, atol=1e-6
    )
    pytest.importorskip("torch")
    r = cli(
        "fit",
        str(src),
        str(tmp_path / "g.tif"),
        "--gray",
        "--backend",
        "torch",
        "--steps",
        "3",
        "--seed",
        "2",
        "--progress",
        "-o",
        str(tmp_path / "t.toml"),
    )
    assert r.exit_code == 0, r.stderr
    assert "convcli fit" in r.stderr and "loss" in r.stderr


def test_deconvolve_recursive_directory(tmp_path, blurred, cli):
    _, path = blurred
    tree = tmp_path / "tree" / "deep"
    tree.mkdir(parents=True)
    shutil.copy(path, tree / "x.png")
    r = cli(
        "deconvolve",
        "-k",
        "gaussian:sigma=1.5",
        "-r",
        str(tmp_path / "tree"),
        "-d",
        str(tmp_path / "out"),
        "--iterations",
        "2",
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{tmp_path / 'out' / 'deep' / 'x.rl-gaussian-sigma1.5.png'}\n"


def test_fit_offset_recovers_an_edge_filter_from_an_eight_bit_target(tmp_path, pair, cli):
    src, _ = pair
    edge = "[[-0.125, 0, 0.125], [-0.25, 0, 0.25], [-0.125, 0, 0.125]]"  # sobel-x / 8
    r = cli("apply", "-k", edge, "--offset", "50%", str(src), "-o", str(tmp_path / "e.png"))
    assert r.exit_code == 0, r.stderr
    r = cli("fit", str(src), str(tmp_path / "e.png"), "--offset", "-o", str(tmp_path / "k.toml"))
    assert r.exit_code == 0, r.stderr
    kernel = convcli.get_kernel(str(tmp_path / "k.toml"))
    assert np.max(np.abs(kernel.matrix - np.array(json.loads(edge)))) < 5e-3
    assert abs(kernel.offset - 127.5) < 0.5
    r = cli("apply", "-k", str(tmp_path / "k.toml"), str(src), "-o", str(tmp_path / "re.png"))
    assert r.exit_code == 0, r.stderr
    again = convcli.read_image(tmp_path / "re.png").astype(int)
    assert np.max(np.abs(again - convcli.read_image(tmp_path / "e.png").astype(int))) <= 1
