"""The parallel PNG writer: standard files that every reader decodes to the samples written."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import CONVERT, VIPS
from convcli.io import png
from convcli.io.decode import read_image
from convcli.io.encode import write_image

SHAPES = [(37, 53), (37, 53, 2), (37, 53, 3), (37, 53, 4)]


def _encode(pixels, **kwargs) -> bytes:
    out = io.BytesIO()
    png.write(out, pixels, **kwargs)
    return out.getvalue()


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The file's chunks, each CRC checked."""
    assert data[:8] == png.SIGNATURE
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(body, zlib.crc32(kind)), kind
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def _samples(rng, shape, dtype):
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of a few rows, so that small images are deflated in many pieces."""
    monkeypatch.setattr(png, "BAND_BYTES", 512)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("threads", [1, 3])
def test_pillow_reads_back_the_samples(rng, small_bands, shape, dtype, threads):
    pixels = _samples(rng, shape, dtype)
    got = np.asarray(Image.open(io.BytesIO(_encode(pixels, threads=threads))))
    if dtype == np.uint16 and len(shape) == 3:
        # Pillow keeps 16-bit gray only; it reads 16-bit colour and gray + alpha as their
        # high bytes (OpenCV and convcli's reader keep all 16 bits)
        high = (pixels >> 8).astype(np.uint8)
        if shape[2] == 2:  # ... and gray + alpha as RGBA
            high = high[..., [0, 0, 0, 1]]
        np.testing.assert_array_equal(got, high)
    else:
        np.testing.assert_array_equal(got.astype(dtype), pixels)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_convcli_reads_back_every_mode_and_depth(tmp_path, rng, small_bands, shape, dtype):
    pixels = _samples(rng, shape, dtype)
    path = tmp_path / "x.png"
    path.write_bytes(_encode(pixels, threads=2))
    np.testing.assert_array_equal(read_image(path), pixels)


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (37, 53, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_opencv_reads_back_the_samples(rng, small_bands, shape, dtype):
    cv2 = pytest.importorskip("cv2")
    pixels = _samples(rng, shape, dtype)
    got = cv2.imdecode(np.frombuffer(_encode(pixels), np.uint8), cv2.IMREAD_UNCHANGED)
    if len(shape) == 3:
        got = got[..., [2, 1, 0, 3][: shape[2]]]  # BGR(A) -> RGB(A)
    np.testing.assert_array_equal(got, pixels)


def test_the_stream_is_one_valid_zlib_stream(rng, small_bands):
    """The bands' deflate streams join into one zlib stream whose Adler-32 (checked by zlib)
    is combined from theirs; each piece is its own IDAT chunk."""
    pixels = _samples(rng, (64, 40, 3), np.uint8)
    chunks = _chunks(_encode(pixels, threads=2))
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    assert kinds.count(b"IDAT") > 3
    raw = zlib.decompress(idat)  # raises on a bad Adler-32
    rows = np.frombuffer(raw, np.uint8).reshape(64, 1 + 40 * 3)
    assert (rows[:, 0] == 1).all()  # the Sub filter on every row
    assert np.array_equal(np.cumsum(rows[:, 1:].reshape(64, 40, 3), axis=1, dtype=np.uint8), pixels)


def test_the_same_image_gives_the_same_bytes_on_any_thread_count(rng, small_bands):
    pixels = _samples(rng, (80, 31, 4), np.uint16)
    assert len({_encode(pixels, threads=t) for t in (1, 2, 5)}) == 1


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_every_compression_level_decodes(rng, level):
    pixels = _samples(rng, (20, 20, 3), np.uint8)
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(_encode(pixels, level=level)))), pixels
    )


def test_adler32_combine_matches_zlib(rng):
    for _ in range(50):
        a = rng.bytes(int(rng.integers(0, 3000)))
        b = rng.bytes(int(rng.integers(0, 200_000)))
        assert png._adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.mark.parametrize("shape", SHAPES)
def test_icc_profile_is_kept_for_every_mode(tmp_path, shape):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = np.zeros(shape, np.uint16)
    write_image(pixels, tmp_path / "p.png", icc_profile=profile)
    assert Image.open(tmp_path / "p.png").info["icc_profile"] == profile


def test_refuses_samples_png_cannot_hold():
    with pytest.raises(ValueError, match="8- or 16-bit"):
        _encode(np.zeros((2, 2), np.float32))


@pytest.mark.skipif(CONVERT is None, reason="ImageMagick is not installed")
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_imagemagick_reads_it(tmp_path, rng, small_bands, dtype):
    pixels = _samples(rng, (30, 20, 3), dtype)
    path = tmp_path / "x.png"
    path.write_bytes(_encode(pixels, threads=2))
    out = subprocess.run(
        [CONVERT, str(path), "-depth", "16", "-endian", "MSB", "rgb:-"],
        capture_output=True,
        check=True,
    ).stdout
    got = np.frombuffer(out, ">u2").reshape(30, 20, 3)
    scale = 257 if dtype == np.uint8 else 1
    np.testing.assert_array_equal(got, pixels.astype(np.uint32) * scale)


@pytest.mark.skipif(VIPS is None, reason="libvips is not installed")
def test_libvips_reads_it(tmp_path, rng, small_bands):
    pixels = _samples(rng, (30, 20, 4), np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(_encode(pixels, threads=2))
    out = subprocess.run(
        [VIPS, "avg", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert float(out) == pytest.approx(pixels.mean())
