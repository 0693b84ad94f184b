"""Reading and writing images and arrays: every Pillow mode, bit depths, EXIF, atomic writes."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from convcli.errors import InputError, LimitError, OutputError, UsageError
from convcli.io.arrays import parse_array, read_array
from convcli.io.atomic import atomic_write
from convcli.io.decode import open_image, read_image
from convcli.io.encode import encode, write_image
from convcli.io.formats import format_for


def _save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


@pytest.mark.parametrize(
    "mode, shape, dtype",
    [
        ("L", (5, 6), np.uint8),
        ("LA", (5, 6, 2), np.uint8),
        ("RGB", (5, 6, 3), np.uint8),
        ("RGBA", (5, 6, 4), np.uint8),
        ("I;16", (5, 6), np.uint16),
        ("I", (5, 6), np.int32),
        ("F", (5, 6), np.float32),
    ],
)
def test_modes_read_as_documented(tmp_path, rng, mode, shape, dtype):
    ext = "tif" if mode in ("I", "F") else "png"
    data = (rng.random(shape) * (200 if dtype == np.uint8 else 60000)).astype(dtype)
    im = Image.fromarray(data, mode=mode) if mode != "I;16" else Image.fromarray(data)
    path = _save(im, tmp_path / f"x.{ext}")
    got = read_image(path)
    assert got.shape == shape
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, data)


def test_palette_and_bilevel_are_converted(tmp_path, rng):
    rgb = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    p = Image.fromarray(rgb).convert("P")
    got = read_image(_save(p, tmp_path / "p.png"))
    assert got.shape == (8, 8, 3)
    np.testing.assert_array_equal(got, np.asarray(p.convert("RGB")))
    p.info["transparency"] = 0
    got = read_image(_save(p, tmp_path / "pt.png", transparency=0))
    assert got.shape == (8, 8, 4)
    one = Image.fromarray(rgb[:, :, 0] > 128)
    got = read_image(_save(one, tmp_path / "b.png"))
    assert got.dtype == np.uint8
    assert set(np.unique(got)) <= {0, 255}


def test_cmyk_is_read_as_rgb(tmp_path, rng):
    rgb = (rng.random((6, 7, 3)) * 255).astype(np.uint8)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    got = read_image(_save(cmyk, tmp_path / "c.jpg", quality=100))
    assert got.shape == (6, 7, 3)


def test_exif_orientation_is_applied(tmp_path):
    data = np.zeros((4, 6), np.uint8)
    data[0, :] = 255  # top row white
    im = Image.fromarray(data)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    path = tmp_path / "o.jpg"
    im.save(path, exif=exif, quality=100)
    got = read_image(path)
    assert got.shape == (6, 4)
    assert got[:, -1].mean() > 200  # the white top row is now the right column


def test_16bit_colour_png_roundtrip_with_opencv(tmp_path, rng):
    pytest.importorskip("cv2")
    data = (rng.random((5, 7, 3)) * 65535).astype(np.uint16)
    write_image(data, tmp_path / "c16.png")
    got = read_image(tmp_path / "c16.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("dtype, channels", [(np.uint16, 3), (np.uint16, 4), (np.float32, 3)])
def test_deep_colour_tiff_roundtrip_with_tifffile(tmp_path, rng, dtype, channels):
    pytest.importorskip("tifffile")
    data = (rng.random((5, 7, channels)) * 60000).astype(dtype)
    write_image(data, tmp_path / "c.tif")
    got = read_image(tmp_path / "c.tif")
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, data)


def test_write_refuses_what_a_format_cannot_hold(rng):
    with pytest.raises(OutputError, match="JPEG cannot store 16-bit"):
        encode(np.zeros((4, 4), np.uint16), "JPEG")
    with pytest.raises(OutputError, match="PNG cannot store float"):
        encode(np.zeros((4, 4), np.float32), "PNG")
    with pytest.raises(OutputError, match="not an image"):
        encode(np.zeros((2, 4, 5), np.uint8), "PNG")


def test_jpeg_drops_alpha(rng):
    rgba = (rng.random((4, 4, 4)) * 255).astype(np.uint8)
    im = Image.open(io.BytesIO(encode(rgba, "JPEG")))
    assert im.mode == "RGB"


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("quality", [None, 1, 50, 75, 95, 100])
def test_jpeg_bytes_are_pillows(photos, channels, quality):
    # with OpenCV installed, its encoder writes 8-bit JPEG: the same bytes as Pillow's
    pytest.importorskip("cv2")
    from convcli.io.encode import _encode_pillow

    photo = photos["coffee"][:97, :131]
    pixels = {1: photo[:, :, 0], 2: photo[:, :, :2], 3: photo}.get(channels)
    if pixels is None:
        pixels = np.dstack([photo, photo[:, :, 1]])
    pillow = io.BytesIO()
    _encode_pillow(pillow, pixels, "JPEG", quality, None, None)
    assert encode(pixels, "JPEG", quality=quality) == pillow.getvalue()


def test_icc_profile_is_carried(tmp_path):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png", icc_profile=profile)
    assert open_image(tmp_path / "a.png").icc_profile == profile


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"this is text, not a PNG", "not an image"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "corrupt or truncated"),
    ],
)
def test_bad_image_files(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_image(path)
    assert str(info.value).startswith(str(path))


def test_truncated_png(tmp_path, rng):
    path = tmp_path / "t.png"
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a directory"):
        read_image(tmp_path)


def test_pixel_limit_names_itself(tmp_path, monkeypatch):
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setenv("CONVCLI_MAX_PIXELS", "5000")
    with pytest.raises(
        LimitError,
        match=r"100x100 = 10000 pixels, over the limit of 5000 pixels.*"
        r"CONVCLI_MAX_PIXELS",
    ):
        read_image(tmp_path / "big.png")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    class Boom(Exception):
        pass

    def explode(*a, **k):
        raise Boom

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(Boom):
        atomic_write(target, b"new data")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_errors_name_the_path(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        atomic_write(tmp_path / "no" / "dir" / "x.png", b"")


class TestArrays:
    def test_npy_csv_txt_json(self, tmp_path):
        a = np.arange(12.0).reshape(3, 4)
        np.save(tmp_path / "a.npy", a)
        (tmp_path / "a.csv").write_text("0,1,2,3\n4,5,6,7\n8,9,10,11\n")
        (tmp_path / "a.txt").write_text("# comment\n0 1 2 3\n4 5 6 7\n\n8 9 10 11\n")
        (tmp_path / "a.json").write_text(json.dumps(a.tolist()))
        for ext in ("npy", "csv", "txt", "json"):
            np.testing.assert_array_equal(read_array(tmp_path / f"a.{ext}"), a)

    def test_one_row_is_a_signal(self, tmp_path):
        (tmp_path / "s.csv").write_text("1,2,3,4\n")
        assert read_array(tmp_path / "s.csv").shape == (4,)

    @pytest.mark.parametrize(
        "name, content, message",
        [
            ("r.csv", "1,2,3\n4,5\n", "line 2 has 2 values, expected 3"),
            ("n.csv", "1,2\n3,abc\n", "line 2: 'abc' is not a number"),
            ("i.csv", "1,2\n3,nan\n", "line 2: nan is not a finite number"),
            ("e.csv", "\n\n", "no numbers"),
            ("r.json", "[[1,2],[3]]", "row 2 has 1 value"),
            ("s.json", "5", "a single number"),
            ("b.json", "[1,2", "not a valid JSON array"),
            ("o.json", '{"a": 1}', "is not an array"),
        ],
    )
    def test_bad_text_arrays(self, tmp_path, name, content, message):
        (tmp_path / name).write_text(content)
        with pytest.raises(InputError, match=message):
            read_array(tmp_path / name)

    @pytest.mark.parametrize(
        "array, message",
        [
            (np.array(3.0), "single number"),
            (np.zeros((2, 2, 2, 2)), "4-D"),
            (np.array([1.0, np.inf]), "NaN or infinity"),
            (np.array(["a", "b"]), "expected numbers"),
            (np.zeros((0,)), "empty"),
        ],
    )
    def test_bad_npy(self, tmp_path, array, message):
        np.save(tmp_path / "x.npy", array)
        with pytest.raises(InputError, match=message):
            read_array(tmp_path / "x.npy")

    def test_pickled_npy_is_refused(self, tmp_path):
        np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        with pytest.raises(InputError, match="holds Python objects"):
            read_array(tmp_path / "o.npy")

    def test_inline(self):
        assert parse_array("[1, 2, 3]").tolist() == [1.0, 2.0, 3.0]
        with pytest.raises(InputError, match="ragged"):
            parse_array("[1, [2]]")

    def test_encode_roundtrip(self):
        a = np.array([[0.1, 2.0], [1 / 3, -4.5]])
        assert np.array_equal(np.load(io.BytesIO(encode(a, "NPY"))), a)
        assert json.loads(encode(a, "JSON")) == a.tolist()
        text = encode(a, "CSV").decode()
        assert text.splitlines()[0] == "0.1,2"
        assert float(text.splitlines()[1].split(",")[0]) == 1 / 3
        with pytest.raises(OutputError, match="3-D"):
            encode(np.zeros((2, 2, 2)), "CSV")


def test_format_for():
    assert format_for("a.JPG") == "JPEG"
    assert format_for("a.tiff") == "TIFF"
    assert format_for("a.npy") == "NPY"
    assert format_for("-", "png") == "PNG"
    with pytest.raises(UsageError, match="needs --format"):
        format_for("-")
    with pytest.raises(UsageError, match="cannot tell the output format"):
        format_for("a.xyz")
    with pytest.raises(UsageError, match="unknown output format"):
        format_for("a.png", "nope")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_match_pillow(tmp_path, orientation):
    from PIL import ImageOps

    from convcli.io.decode import orient

    data = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 9
    im = Image.fromarray(data)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.jpg", exif=exif, quality=100, subsampling=0)
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")))
    np.testing.assert_array_equal(read_image(tmp_path / "o.jpg"), want)  # the OpenCV path
    np.testing.assert_array_equal(
        orient(data, orientation),
        np.asarray(ImageOps.exif_transpose(_exif_png(tmp_path, data, orientation))),
    )


def _exif_png(tmp_path, data, orientation):
    im = Image.fromarray(data)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif)
    return Image.open(tmp_path / "o.png")


@pytest.mark.parametrize(
    "ext, mode",
    [
        ("jpg", "RGB"),
        ("png", "RGBA"),
        ("png", "L"),
        ("tif", "RGB"),
        ("bmp", "RGB"),
        ("webp", "RGB"),
    ],
)
def test_opencv_decoder_gives_pillows_pixels(tmp_path, photos, ext, mode):
    pytest.importorskip("cv2")
    im = Image.fromarray(photos["astronaut"][:64, :96]).convert(mode)
    im.save(tmp_path / f"x.{ext}")
    np.testing.assert_array_equal(
        read_image(tmp_path / f"x.{ext}"), np.asarray(Image.open(tmp_path / f"x.{ext}"))
    )


def test_opencv_png_encoder_roundtrips(rng):
    pytest.importorskip("cv2")
    for shape in ((20, 30), (20, 30, 2), (20, 30, 3), (20, 30, 4)):
        data = (rng.random(shape) * 255).astype(np.uint8)
        back = np.asarray(Image.open(io.BytesIO(encode(data, "PNG"))))
        np.testing.assert_array_equal(back, data)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_permissions_of_any_new_file(tmp_path, umask):
    """The part file is renamed into place, so its mode is the output's: 0666 less the umask,
    as for a file the user's shell would create (not mkstemp's private 0600)."""
    old = os.umask(umask)
    try:
        write_image(np.zeros((2, 2), np.uint8), tmp_path / "a.png")
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize("formats", ["", "default,ppm"])
def test_decoding_loads_only_the_allowed_formats_plugins(tmp_path, formats):
    """Importing Pillow's forty plugins costs a small image's command a quarter of its time,
    and a plugin that is not allowed has no business running: a decode loads the allowed
    formats' plugins alone (all of them only for a list beyond the default six)."""
    import subprocess
    import sys

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(path)
    code = (
        "import sys, convcli; convcli.read_image(sys.argv[1]); "
        "print(sorted(m[4:] for m in sys.modules if m.startswith('PIL.') and "
        "m.endswith('ImagePlugin')))"
    )
    env = {**os.environ, "CONVCLI_FORMATS": formats}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.replace("'", '"')))
    if formats:
        assert {"PpmImagePlugin", "EpsImagePlugin"} <= loaded  # beyond the defaults: all
    else:
        defaults = {"Png", "Jpeg", "Tiff", "WebP", "Bmp", "Gif"}
        assert loaded == {f"{name}ImagePlugin" for name in defaults}


@pytest.mark.parametrize(
    "mode, compression, orientation",
    [
        ("RGB", None, None),
        ("RGB", "tiff_lzw", None),
        ("RGB", "tiff_adobe_deflate", 6),  # EXIF-style orientation: rotated as Pillow does
        ("RGB", "packbits", None),
        ("RGBA", None, None),
        ("L", None, 3),
        ("L", "tiff_lzw", None),
        ("1", None, None),  # 1-bit: Pillow's decoder (not 8-bit samples)
        ("P", None, None),  # palette: Pillow's decoder
        ("CMYK", None, None),
    ],
)
def test_tiffs_decoded_by_tifffile_match_pillow(tmp_path, photos, mode, compression, orientation):
    """Plain 8-bit TIFFs are decoded by tifffile (9 ms for 12 MP where libtiff takes 80):
    the very pixels Pillow decodes, orientation applied; other kinds stay with Pillow."""
    pytest.importorskip("tifffile")
    from PIL import ImageOps

    rgb = np.ascontiguousarray(photos["astronaut"][:50, :70])
    im = Image.fromarray(rgb)
    if mode == "RGBA":
        im.putalpha(Image.fromarray(rgb[:, :, 1]))
    elif mode != "RGB":
        im = im.convert(mode)
    path = tmp_path / "a.tif"
    options: dict = {"compression": compression} if compression else {}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    im.save(path, **options)
    with Image.open(path) as ref:
        expected = np.asarray(
            (ImageOps.exif_transpose(ref) or ref).convert(
                {"1": "L", "P": "RGB", "CMYK": "RGB"}.get(mode, mode)
            )
        )
    np.testing.assert_array_equal(read_image(path), expected)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("compress", [None, 6])
def test_8bit_tiff_written_by_tifffile_reads_back(tmp_path, rng, channels, compress):
    """8-bit TIFF is written by tifffile (13 ms for 12 MP where Pillow takes 80): a baseline
    TIFF Pillow reads back sample for sample, alpha unassociated, deflated with --compress."""
    tifffile = pytest.importorskip("tifffile")
    shape = (9, 11) if channels == 1 else (9, 11, channels)
    pixels = rng.integers(0, 256, shape).astype(np.uint8)
    path = tmp_path / "o.tif"
    write_image(pixels, path, compress=compress)
    with Image.open(path) as im:
        assert im.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        np.testing.assert_array_equal(np.asarray(im), pixels)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert page.compression == (8 if compress else 1)
        assert "ImageDescription" not in page.tags
