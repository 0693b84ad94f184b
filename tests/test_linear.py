"""--linear: filtering in linear light. Checked against the IEC 61966-2-1 formula written out
here, LittleCMS (Pillow's ImageCms) for ICC profiles, and ImageMagick's and libvips's own
linear-light pipelines on the example photographs."""

from __future__ import annotations

import io
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import convcli
from conftest import CONVERT, ROOT, VIPS, write_png
from convcli.compute.transfer import SRGB, Curve, transfer_for


def srgb_decode(v):
    """IEC 61966-2-1, encoded 0..1 -> linear 0..1 (written out independently)."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v):
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.maximum(v, 0) ** (1 / 2.4) - 0.055)


def checkerboard(n=32):
    return ((np.indices((n, n)).sum(0) % 2) * 255).astype(np.uint8)


def test_a_blurred_checkerboard_is_the_linear_mid_grey(tmp_path, cli):
    write_png(tmp_path / "c.png", checkerboard())
    write_png(tmp_path / "rgb.png", np.dstack([checkerboard()] * 3))
    for name in ("c.png", "rgb.png"):
        for linear, want in ((True, 188), (False, 128)):
            flag = ["--linear"] if linear else []
            out = tmp_path / f"out-{linear}-{name}"
            r = cli("apply", *flag, "-k", "box:size=2", str(tmp_path / name), "-o", str(out))
            assert r.exit_code == 0, r.stderr
            inner = convcli.read_image(out)[1:-1, 1:-1]
            assert np.all(inner == want), (name, linear, np.unique(inner))
    assert round(float(srgb_encode(0.5)) * 255) == 188


def test_sixteen_bit_mid_grey(tmp_path, cli):
    write_png(tmp_path / "c16.png", checkerboard().astype(np.uint16) * 257)
    r = cli("apply", "--linear", "-k", "box:size=2", str(tmp_path / "c16.png"), "-o",
            str(tmp_path / "o.png"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    out = convcli.read_image(tmp_path / "o.png")
    assert out.dtype == np.uint16
    assert np.all(out[1:-1, 1:-1] == round(float(srgb_encode(0.5)) * 65535))


@pytest.mark.parametrize("alpha", ["keep", "filter", "premultiplied"])
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_identity_is_bit_exact(tmp_path, cli, photos, alpha, depth, channels):
    rng = np.random.default_rng(channels)
    top = 255 if depth == 8 else 65535
    dtype = np.uint8 if depth == 8 else np.uint16
    data = rng.integers(0, top + 1, (23, 29, channels), endpoint=False).astype(dtype)
    data[0, :, 0] = np.linspace(0, top, 29).astype(dtype)  # every range of levels
    if depth == 8:
        data[1, :, 0] = np.arange(29, dtype=np.uint8)  # the linear foot of the curve
    if channels in (2, 4):
        data[..., -1] = np.maximum(data[..., -1], 1)  # premultiplied: alpha 0 loses colour
    pixels = data[..., 0] if channels == 1 else data
    ext = ".png" if depth == 8 or channels in (1, 3, 4) else ".tif"
    src = tmp_path / f"in{ext}"
    convcli.write_image(pixels, src)
    assert np.array_equal(convcli.read_image(src), pixels)
    r = cli("apply", "--linear", "--alpha", alpha, "-k", "identity", str(src), "-o",
            str(tmp_path / f"out{ext}"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    out = convcli.read_image(tmp_path / f"out{ext}")
    if alpha == "premultiplied" and channels in (2, 4):
        # colour x alpha / alpha in float: exact where alpha is not tiny
        colour = out[..., :-1].astype(float) - pixels[..., :-1]
        assert np.abs(colour).max() <= 1 and np.array_equal(out[..., -1], pixels[..., -1])
        exact = pixels[..., -1] >= (16 if depth == 8 else 4096)
        assert np.array_equal(out[exact], pixels[exact])
    else:
        assert out.dtype == pixels.dtype and np.array_equal(out, pixels)


def test_every_level_round_trips_through_the_tables():
    for dtype, full, work in ((np.uint8, 255.0, np.float32), (np.uint16, 65535.0, np.float64)):
        levels = np.arange(int(full) + 1, dtype=dtype)
        linear = SRGB.decode(levels, 0, full, work)
        np.testing.assert_allclose(linear / full, srgb_decode(levels / full), rtol=1e-6)
        assert np.array_equal(np.rint(SRGB.encode(linear, 0, full)), levels)


@pytest.mark.parametrize("alpha", ["keep", "filter", "premultiplied"])
def test_rgba_against_a_numpy_reference(photos, alpha):
    rgb = photos["astronaut"][100:160, 200:270]
    a = np.tile(np.linspace(40, 255, 70), (60, 1)).astype(np.uint8)
    rgba = np.dstack([rgb, a])
    got = convcli.filter_image(
        rgba,
        "gaussian:sigma=1.5",
        convcli.PixelOptions(alpha=alpha),
        boundary="nearest",
        backend="scipy",
        transfer=SRGB,
    ).pixels
    lin = srgb_decode(rgb / 255.0)
    weight = a / 255.0
    blur = lambda p: ndimage.gaussian_filter(p, 1.5, mode="nearest")  # noqa: E731
    if alpha == "premultiplied":
        w = blur(weight)
        colour = np.stack([blur(lin[..., c] * weight) / w for c in range(3)], -1)
        alpha_out = np.rint(w * 255)
    else:
        colour = np.stack([blur(lin[..., c]) for c in range(3)], -1)
        alpha_out = np.rint(blur(a.astype(float))) if alpha == "filter" else a
    want = np.rint(np.clip(srgb_encode(colour), 0, 1) * 255)
    assert np.abs(got[..., :3].astype(int) - want).max() <= 1
    assert np.mean(got[..., :3] != want) < 0.01  # float32 ties, rarely
    assert np.abs(got[..., 3].astype(int) - alpha_out).max() <= 1


def test_png_gamma_and_icc_profiles_give_their_curves():
    from PIL import ImageCms

    srgb_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    x = np.linspace(0, 1, 101)
    by_profile = transfer_for(srgb_icc, None, False).curve(0)
    np.testing.assert_allclose(by_profile.decode(x), srgb_decode(x), atol=2e-5)
    assert "sRGB built-in" in transfer_for(srgb_icc, None, False).describe()
    gamma = transfer_for(None, 0.5, False).curve(0)
    np.testing.assert_allclose(gamma.decode(x), x**2.0)
    assert transfer_for(None, 0.45455, False).curve(0) == Curve("srgb")  # PNG's sRGB value
    assert transfer_for(None, 0.5, True).curve(0) == Curve("srgb")  # the sRGB chunk wins
    assert transfer_for(None, None, False) is SRGB


def _icc_with_gamma(gamma: float) -> bytes:
    """A minimal ICC v2 RGB display profile (sRGB primaries, D50-adapted) whose three tone
    curves are the power ``gamma``: read by LittleCMS as the reference."""

    def xyz(x, y, z):
        return b"XYZ " + b"\0" * 4 + struct.pack(">3i", *(round(v * 65536) for v in (x, y, z)))

    text = b"test gamma\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 79
    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curv),
        (b"gTRC", curv),
        (b"bTRC", curv),
        (b"cprt", b"text" + b"\0" * 4 + b"none\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">3i", 63190, 65536, 54061)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def test_an_icc_tone_curve_agrees_with_littlecms(tmp_path, cli):
    """A gray ramp in a gamma-1.8 profile: convcli's decode then sRGB encode against
    LittleCMS's own transform from that profile to sRGB (the primaries are the same)."""
    from PIL import ImageCms

    icc = _icc_with_gamma(1.8)
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    im = Image.fromarray(np.dstack([ramp] * 3))
    lcms = ImageCms.profileToProfile(
        im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB")
    )
    theirs = np.asarray(lcms)[0, :, 1].astype(int)
    curve = transfer_for(icc, None, False).curve(0)
    ours = np.rint(srgb_encode(curve.decode(np.arange(256) / 255.0)) * 255)
    assert np.abs(ours - theirs).max() <= 1
    # the whole command: the profile's curve, not sRGB's, and carried to the output
    im.save(tmp_path / "g18.png", icc_profile=icc)
    r = cli("apply", "--linear", "-k", "identity", str(tmp_path / "g18.png"), "--explain")
    assert "a 1.801 power" in r.stdout and "'test gamma'" in r.stdout
    checks = np.dstack([checkerboard()] * 3)
    Image.fromarray(checks).save(tmp_path / "c18.png", icc_profile=icc)
    r = cli("apply", "--linear", "-k", "box:size=2", str(tmp_path / "c18.png"), "-o",
            str(tmp_path / "o.png"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    with Image.open(tmp_path / "o.png") as out:
        assert out.info.get("icc_profile") == icc
        grey = np.asarray(out)[5, 5, 0]
    assert grey == round(0.5 ** (1 / (round(1.8 * 256) / 256)) * 255)


def test_explain_and_errors(tmp_path, cli):
    write_png(tmp_path / "c.png", checkerboard())
    r = cli("apply", "--linear", "-k", "box", str(tmp_path / "c.png"), "--explain")
    assert "linear light: decoded to linear light by the sRGB curve (IEC 61966-2-1)" in r.stdout
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    r = cli("apply", "--linear", "-k", "box", str(tmp_path / "a.npy"))
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        f"convcli: error: {tmp_path / 'a.npy'}: --linear is for images; an array's values "
        "are filtered as they are"
    )
    Image.fromarray(checkerboard()).save(tmp_path / "lab.png", icc_profile=b"garbage" * 40)
    r = cli("apply", "--linear", "-k", "box", str(tmp_path / "lab.png"), "-o",
            str(tmp_path / "x.png"))  # fmt: skip
    assert r.exit_code == 1 and "ICC profile" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()


PHOTOS = ["coffee.jpg", "astronaut.jpg", "camera.png"]


def _png(tmp_path, name):
    """The example photograph as an untagged PNG (what the peers and convcli all read as
    sRGB)."""
    pixels = convcli.read_image(ROOT / "examples" / "images" / name)
    return write_png(tmp_path / (name.split(".")[0] + ".png"), pixels)


@pytest.mark.peers
@pytest.mark.skipif(CONVERT is None, reason="ImageMagick (convert) is not installed")
@pytest.mark.parametrize("name", PHOTOS)
def test_imagemagick_linear_pipeline_within_one_level(tmp_path, cli, name):
    src = _png(tmp_path, name)
    spec = cli("show-kernel", "gaussian:sigma=1.5", "--format", "imagemagick").stdout.strip()
    subprocess.run(
        [CONVERT, str(src), "-colorspace", "RGB", "-morphology", "Convolve", spec,
         "-colorspace", "sRGB", str(tmp_path / "im.png")],
        check=True, capture_output=True,
    )  # fmt: skip
    r = cli("apply", "--linear", "-k", "gaussian:sigma=1.5", "--boundary", "nearest", str(src),
            "-o", str(tmp_path / "ours.png"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    theirs = convcli.read_image(tmp_path / "im.png").astype(int)
    ours = convcli.read_image(tmp_path / "ours.png").astype(int)
    assert np.abs(ours - theirs).max() <= 1
    gamma = convcli.filter_image(convcli.read_image(src), "gaussian:sigma=1.5",
                                 boundary="nearest").pixels  # fmt: skip
    assert np.abs(gamma.astype(int) - theirs).max() > 10  # the difference is real


@pytest.mark.peers
@pytest.mark.skipif(VIPS is None, reason="libvips (vips) is not installed")
@pytest.mark.parametrize("name", PHOTOS)
def test_vips_scrgb_pipeline_within_one_level(tmp_path, cli, name):
    src = _png(tmp_path, name)
    (tmp_path / "g.mat").write_text(
        cli("show-kernel", "gaussian:sigma=1.5", "--format", "vips").stdout
    )
    gray = convcli.read_image(src).ndim == 2
    steps = [
        ["colourspace", str(src), str(tmp_path / "lin.v"), "scrgb"],
        ["conv", str(tmp_path / "lin.v"), str(tmp_path / "conv.v"), str(tmp_path / "g.mat"),
         "--precision", "float"],
        ["colourspace", str(tmp_path / "conv.v"), str(tmp_path / "vips.png"),
         "b-w" if gray else "srgb"],
    ]  # fmt: skip
    for step in steps:
        subprocess.run([VIPS, *step], check=True, capture_output=True)
    r = cli("apply", "--linear", "-k", "gaussian:sigma=1.5", "--boundary", "nearest", str(src),
            "-o", str(tmp_path / "ours.png"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    theirs = convcli.read_image(tmp_path / "vips.png").astype(int)
    ours = convcli.read_image(tmp_path / "ours.png").astype(int)
    assert theirs.shape == ours.shape
    assert np.abs(ours - theirs).max() <= 1


@pytest.mark.slow
def test_the_readme_picture_is_made_by_its_script(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "linear_light.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.split() == [str(tmp_path / "linear-light.png")]
    with Image.open(tmp_path / "linear-light.png") as sheet:
        pixels = np.asarray(sheet.convert("RGB"))
    # the blurred checkerboards: gamma 128, linear light 188 (tile 200, label 28)
    assert abs(int(pixels[128, 250, 0]) - 128) <= 1
    assert abs(int(pixels[128, 450, 0]) - 188) <= 1
    with Image.open(ROOT / "docs" / "linear-light.png") as committed:
        assert committed.size == (600, 456)


def test_a_streamed_image_in_linear_light_is_the_in_memory_one(tmp_path, cli, photos):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "big.tif", np.tile(photos["astronaut"], (2, 2, 1)))
    outs = []
    for memory in ("4GiB", "4MiB"):
        target = tmp_path / f"o-{memory}.tif"
        r = cli("apply", "--linear", "-k", "gaussian:sigma=2", "--memory", memory,
                str(tmp_path / "big.tif"), "-o", str(target))  # fmt: skip
        assert r.exit_code == 0, r.stderr
        outs.append(tifffile.imread(target))
    assert np.array_equal(outs[0], outs[1])
    r = cli("apply", "--linear", "-k", "gaussian:sigma=2", "--memory", "4MiB",
            str(tmp_path / "big.tif"), "-o", str(tmp_path / "x.tif"), "--explain")  # fmt: skip
    assert "streamed" in r.stdout and "linear light: decoded" in r.stdout


def test_every_frame_of_an_animation_in_linear_light(tmp_path, cli):
    """Each page of a multi-page TIFF is filtered in linear light, as the same page alone."""
    tifffile = pytest.importorskip("tifffile")
    pages = [checkerboard(), 255 - checkerboard()]
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tw:
        for page in pages:
            tw.write(page, contiguous=False)
    r = cli(
        "apply",
        "--linear",
        "-k",
        "box:size=2",
        str(tmp_path / "pages.tif"),
        "-o",
        str(tmp_path / "out.tif"),
    )
    assert r.exit_code == 0, r.output
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        got = [page.asarray() for page in tif.pages]
    assert len(got) == len(pages)
    for i, page in enumerate(pages):
        write_png(tmp_path / f"p{i}.png", page)
        r = cli(
            "apply",
            "--linear",
            "-k",
            "box:size=2",
            str(tmp_path / f"p{i}.png"),
            "-o",
            str(tmp_path / f"o{i}.png"),
        )
        assert r.exit_code == 0, r.output
        assert np.array_equal(got[i], convcli.read_image(tmp_path / f"o{i}.png"))
    assert got[0][1:-1, 1:-1].min() == 188


def test_frames_are_not_for_volumes(tmp_path, cli):
    np.save(tmp_path / "v.npy", np.zeros((4, 5, 6), np.float32))
    r = cli("apply", "--volume", "--frames", "0", "-k", "box", str(tmp_path / "v.npy"))
    assert r.exit_code == 2
    assert r.stderr.strip().startswith("convcli: error:") and "--frames" in r.stderr


@pytest.mark.parametrize("backend", ["scipy", "opencv"])
def test_an_integer_kernel_is_filtered_in_linear_light(photos, backend):
    """Integer kernels on 8-bit images have an exact integer path; in linear light the samples
    are not the values filtered, so that path must not be taken."""
    if backend == "opencv":
        pytest.importorskip("cv2")
    rgb = photos["astronaut"][100:160, 200:270]
    kernel = np.array([[1.0, 1.0], [-1.0, 0.0]])
    got = convcli.filter_image(
        rgb, kernel, boundary="nearest", backend=backend, transfer=SRGB
    ).pixels
    lin = srgb_decode(rgb / 255.0)
    filtered = np.stack(
        [ndimage.convolve(lin[..., c], kernel, mode="nearest", origin=-1) for c in range(3)], -1
    )
    want = np.rint(np.clip(srgb_encode(filtered), 0, 1) * 255)
    assert np.abs(got.astype(int) - want).max() <= 1
