"""Multi-frame inputs: animated GIF, APNG, animated WebP and multi-page TIFF have every frame
filtered on its own, composed as a viewer shows it (ImageMagick's -coalesce), and written back
as the same kind of file with its frame count, timing, loop count and disposal (or page order
and bit depth), or as one file per frame to a format that holds one frame.

References: ImageMagick (coalescing, and -morphology Convolve on each frame), scipy.ndimage
per frame and channel, and Pillow reading the written files back."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from conftest import CONVERT
from convcli.io import gif
from convcli.io.frames import probe

needs_im = pytest.mark.skipif(
    CONVERT is None, reason="ImageMagick (convert) is not installed; apt-get install imagemagick"
)
BOX = np.full((3, 3), 1 / 9)


def box_reference(frame: np.ndarray) -> np.ndarray:
    """convcli's default box filter (reflect boundary, alpha kept) by scipy.ndimage, as
    float: each colour channel on its own."""
    out = frame.astype(np.float64)
    colours = frame.shape[2] - (1 if frame.shape[2] in (2, 4) else 0) if frame.ndim == 3 else 0
    if frame.ndim == 2:
        return ndimage.correlate(out, BOX, mode="reflect")
    for c in range(colours):
        out[..., c] = ndimage.correlate(out[..., c], BOX, mode="reflect")
    return out


def close_to(got: np.ndarray, want: np.ndarray, top: int) -> None:
    """``got`` is ``want`` rounded and clipped to the samples (within one level: the
    float32 computation may round a tie the other way)."""
    expected = np.clip(np.rint(want), 0, top)
    assert got.shape == expected.shape
    assert np.abs(got.astype(np.float64) - expected).max() <= 1


def frames_of(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        out = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            out.append(np.array(im.convert("RGBA")))
        return out


def timing_of(path) -> tuple[int, list, list, object]:
    """Frame count, durations, disposals and loop count as Pillow reads them back."""
    with Image.open(path) as im:
        durations, disposals = [], []
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            durations.append(im.info.get("duration"))
            disposals.append(getattr(im, "disposal_method", im.info.get("disposal")))
        return im.n_frames, durations, disposals, im.info.get("loop")


# -- inputs ---------------------------------------------------------------------------------
@pytest.fixture
def opaque_gif(tmp_path, photos):
    """A GIF of 4 frames made by ImageMagick from photographs: a full first frame, then
    partial frames at offsets with disposals none, previous and background (the last one
    covers what the background disposal clears, so every shown frame is opaque)."""
    if CONVERT is None:
        pytest.skip("ImageMagick (convert) is not installed")
    coffee = photos["coffee"][::8, ::8][:40, :56]
    (tmp_path / "base.png").write_bytes(_png(coffee))
    (tmp_path / "a.png").write_bytes(_png(photos["astronaut"][100:116:1, 200:220]))
    (tmp_path / "b.png").write_bytes(_png(photos["astronaut"][300:312, 50:62]))
    (tmp_path / "c.png").write_bytes(_png(photos["coffee"][200:240, 300:356]))
    path = tmp_path / "anim.gif"
    subprocess.run(
        [
            CONVERT,
            *("-dispose", "none", "-delay", "10", "base.png"),
            *("-dispose", "previous", "-delay", "20", "-page", "+5+6", "a.png"),
            *("-dispose", "background", "-delay", "30", "-page", "+30+20", "b.png"),
            *("-dispose", "none", "-delay", "40", "-page", "+0+0", "c.png"),
            *("-loop", "3", "anim.gif"),
        ],
        cwd=tmp_path,
        check=True,
    )
    return path


@pytest.fixture
def holey_gif(tmp_path):
    """A GIF whose second frame is disposed to the background, leaving a transparent hole
    in the third (as viewers and ImageMagick show it)."""
    canvas = np.zeros((20, 30, 3), np.uint8)
    canvas[..., 0] = np.arange(30) * 8
    canvas[..., 1] = np.arange(20)[:, None] * 12
    frames = [canvas, np.full((6, 8, 3), (0, 200, 0), np.uint8), np.full((4, 4, 3), 250, np.uint8)]
    buffer = io.BytesIO()
    _write_partial_gif(buffer, (30, 20), frames, [(0, 0), (10, 5), (1, 1)], [5, 6, 7], [1, 2, 1])
    path = tmp_path / "holey.gif"
    path.write_bytes(buffer.getvalue())
    return path


def _write_partial_gif(out, size, frames, offsets, delays, disposals):
    """A GIF of frames placed at offsets, with the given delays and disposals."""
    import struct

    out.write(b"GIF89a" + struct.pack("<HHBBB", *size, 0, 0, 0))
    out.write(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")
    for pixels, (x, y), delay, disposal in zip(frames, offsets, delays, disposals, strict=True):
        palette, data, _ = gif.frame_bytes(pixels)
        height, width = pixels.shape[:2]
        out.write(b"!\xf9\x04" + struct.pack("<BHB", disposal << 2, delay, 0) + b"\0")
        out.write(b"," + struct.pack("<HHHHB", x, y, width, height, 0x87))
        out.write(palette + data)
    out.write(b";")


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def apng(tmp_path, photos):
    """An APNG written by Pillow, which stores the later frames as the rectangles that
    changed (partial frames, blended over or replacing the canvas), with disposals."""
    base = photos["astronaut"][::8, ::8][:48, :64].copy()
    second = base.copy()
    second[10:20, 15:40] = photos["coffee"][100:110, 100:125]
    third = second.copy()
    third[30:40, 5:20] = 255
    rgba = [np.dstack([f, np.full(f.shape[:2], 255, np.uint8)]) for f in (base, second, third)]
    rgba[2][0:5, 0:5, 3] = 0
    images = [Image.fromarray(f) for f in rgba]
    path = tmp_path / "anim.png"
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=[50, 120, 80],
        loop=4,
        disposal=[0, 1, 0],
        blend=[0, 1, 0],
    )
    return path, rgba


@pytest.fixture
def webp(tmp_path, photos):
    """A lossless animated WebP of three frames, encoded by libwebp (through Pillow), which
    stores changed rectangles blended over the canvas."""
    base = photos["coffee"][::8, ::8][:40, :60].copy()
    frames = [base, base.copy(), base.copy()]
    frames[1][5:15, 5:25] = 0
    frames[2][20:30, 30:50] = 255
    images = [Image.fromarray(f) for f in frames]
    path = tmp_path / "anim.webp"
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=[40, 70, 100], loop=0, lossless=True
    )
    return path, frames


@pytest.fixture
def pages(tmp_path, photos):
    """A multi-page TIFF: 8-bit gray, 16-bit RGB and 8-bit RGB of another size."""
    tifffile = pytest.importorskip("tifffile")
    gray = photos["camera"][::8, ::8][:40, :50]
    rgb16 = photos["astronaut"][::8, ::8][:30, :44].astype(np.uint16) * 257 + 3
    rgb8 = photos["coffee"][::10, ::10][:25, :35]
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(gray, contiguous=False)
        tw.write(rgb16, photometric="rgb", contiguous=False)
        tw.write(rgb8, photometric="rgb", contiguous=False)
    return path, [gray, rgb16, rgb8]


# -- GIF --------------------------------------------------------------------------------------
@needs_im
def test_gif_frames_are_coalesced_as_imagemagick_shows_them(opaque_gif, cli, tmp_path):
    subprocess.run([CONVERT, str(opaque_gif), "-coalesce", str(tmp_path / "im_%d.png")], check=True)
    r = cli("apply", "-k", "identity", str(opaque_gif), "-o", str(tmp_path / "id.png"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / f"id.{i}.png") for i in range(4)]
    for i in range(4):
        want = np.array(Image.open(tmp_path / f"im_{i}.png").convert("RGB"))
        got = np.array(Image.open(tmp_path / f"id.{i}.png").convert("RGB"))
        assert np.array_equal(got, want), i


@needs_im
def test_each_gif_frame_is_filtered_as_imagemagick_filters_it(opaque_gif, cli, tmp_path):
    spec = "3x3: 0.0625,0.125,0.0625 0.125,0.25,0.125 0.0625,0.125,0.0625"
    subprocess.run(
        [CONVERT, str(opaque_gif), "-coalesce", "-morphology", "Convolve", spec,
         str(tmp_path / "im_%d.png")],
        check=True,
    )  # fmt: skip
    r = cli(
        "apply", "-k", spec, "--compat", "imagemagick", str(opaque_gif),
        "-o", str(tmp_path / "out.png"),
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    for i in range(4):
        want = np.array(Image.open(tmp_path / f"im_{i}.png").convert("RGB")).astype(int)
        got = np.array(Image.open(tmp_path / f"out.{i}.png").convert("RGB")).astype(int)
        assert np.abs(got - want).max() <= 1, i


@needs_im
def test_a_gif_stays_a_gif_with_its_timing_loop_and_disposal(opaque_gif, cli, tmp_path):
    out = tmp_path / "out.gif"
    r = cli("apply", "-k", "box", str(opaque_gif), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{out}\n"
    n, durations, disposals, loop = timing_of(out)
    _, durations_in, disposals_in, loop_in = timing_of(opaque_gif)
    assert (n, durations, disposals, loop) == (4, durations_in, disposals_in, loop_in)
    assert durations == [100, 200, 300, 400]
    # each frame is convcli's own RGB result (one PNG per frame) reduced to a palette the
    # same way the GIF writer does: the comparable part of a palette format
    assert (
        cli("apply", "-k", "box", str(opaque_gif), "-o", str(tmp_path / "rgb.png")).exit_code == 0
    )
    for i, shown in enumerate(frames_of(out)):
        rgb = np.array(Image.open(tmp_path / f"rgb.{i}.png").convert("RGB"))
        indices, palette = gif.quantize(rgb)
        want = np.frombuffer(palette, np.uint8).reshape(-1, 3)[indices]
        assert np.array_equal(shown[..., :3], want), i
        assert (shown[..., 3] == 255).all()


def test_transparency_left_by_a_background_disposal_is_kept(holey_gif, cli, tmp_path):
    r = cli("apply", "-k", "identity", str(holey_gif), "-o", str(tmp_path / "f.png"))
    assert r.exit_code == 0, r.stderr
    third = np.array(Image.open(tmp_path / "f.2.png"))
    assert third.shape == (20, 30, 4)
    assert (third[5:11, 10:18, 3] == 0).all()  # the hole the second frame's disposal left
    assert (third[1:5, 1:5, :3] == 250).all() and (third[1:5, 1:5, 3] == 255).all()
    assert (third[0, 20:, 3] == 255).all()
    # written back as a GIF, the hole stays transparent in what a viewer shows
    r = cli("apply", "-k", "identity", str(holey_gif), "-o", str(tmp_path / "back.gif"))
    assert r.exit_code == 0, r.stderr
    parsed = gif.parse((tmp_path / "back.gif").read_bytes(), "back.gif")
    composer = gif.Composer(parsed)
    shown = [composer.show(f) for f in parsed.frames]
    assert (shown[2][5:11, 10:18, 3] == 0).all()
    assert np.array_equal(shown[2][..., 3] > 0, third[..., 3] > 0)
    assert [f.delay for f in parsed.frames] == [5, 6, 7]


def test_identical_frames_are_not_merged(tmp_path, cli):
    """Pillow's animation writers merge equal frames (adding durations); convcli keeps the
    count. Two equal frames stay two frames."""
    frame = Image.fromarray(np.full((10, 12, 3), 90, np.uint8))
    other = Image.fromarray(np.full((10, 12, 3), 200, np.uint8))
    src = tmp_path / "same.gif"
    frame.save(src, save_all=True, append_images=[other], duration=[30, 40], loop=0)
    # the input, made by ImageMagick-free means: two different frames; blurred by a kernel
    # that makes every frame the same flat image
    out = tmp_path / "flat.gif"
    r = cli("apply", "-k", "[[0]]", "--offset", "7", str(src), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert timing_of(out)[:2] == (2, [30, 40])
    flat = Image.fromarray(np.full((10, 12, 3), 7, np.uint8))
    merged = tmp_path / "pillow.gif"  # what Pillow's GIF writer makes of the same frames
    flat.save(merged, save_all=True, append_images=[flat.copy()], duration=[30, 40])
    with Image.open(merged) as im:
        assert getattr(im, "n_frames", 1) == 1


def test_an_animation_to_another_animation_format_is_one_file_per_frame(opaque_gif, cli):
    out = opaque_gif.parent / "w.webp"
    r = cli("apply", "-k", "box", str(opaque_gif), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(opaque_gif.parent / f"w.{i}.webp") for i in range(4)]
    assert all(probe(opaque_gif.parent / f"w.{i}.webp", "w") is None for i in range(4))


def test_a_single_frame_gif_behaves_as_before(tmp_path, cli, photos):
    src = tmp_path / "one.gif"
    Image.fromarray(photos["astronaut"][:30, :40]).save(src)
    assert probe(src, "one.gif") is None
    r = cli("apply", "-k", "box", str(src), "-o", str(tmp_path / "one.png"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{tmp_path / 'one.png'}\n"
    with Image.open(src) as im:
        reference = box_reference(np.array(im.convert("RGB")))
    close_to(np.array(Image.open(tmp_path / "one.png")), reference, 255)


def test_frames_selects_frames(opaque_gif, cli, tmp_path):
    out = tmp_path / "sel.gif"
    r = cli("apply", "-k", "box", "--frames", "1,3", str(opaque_gif), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert timing_of(out)[:2] == (2, [200, 400])
    r = cli("apply", "-k", "box", "--frames", "0,2-3", str(opaque_gif), "-d", str(tmp_path / "d"),
            "--format", "png")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "d" / f"anim.box.{i}.png") for i in (0, 2, 3)]


def test_frames_out_of_range_names_the_input_and_its_count(opaque_gif, cli, tmp_path):
    r = cli("apply", "-k", "box", "--frames", "2-9", str(opaque_gif), "-d", str(tmp_path / "o"))
    assert r.exit_code == 1
    assert "anim.gif" in r.stderr and "4 frames" in r.stderr
    assert not (tmp_path / "o").exists()


def test_an_animation_to_stdout(opaque_gif, cli):
    r = cli("apply", "-k", "box", str(opaque_gif), "-o", "-", "--format", "gif")
    assert r.exit_code == 0, r.stderr
    with Image.open(io.BytesIO(r.stdout_bytes)) as im:
        assert im.n_frames == 4
    r = cli("apply", "-k", "box", str(opaque_gif), "-o", "-", "--format", "png")
    assert r.exit_code == 2
    assert "one file per frame" in r.stderr


# -- APNG ------------------------------------------------------------------------------------
def test_apng_partial_frames_are_composed(apng, cli, tmp_path):
    path, frames = apng
    animation = probe(path, "anim.png")
    assert animation is not None and animation.count == 3
    assert animation.blends[1] == 1 and animation.disposals == (0, 1, 0)
    r = cli("apply", "-k", "identity", str(path), "-o", str(tmp_path / "id.tif"))
    assert r.exit_code == 0, r.stderr
    for i, want in enumerate(frames):
        assert np.array_equal(np.array(Image.open(tmp_path / f"id.{i}.tif")), want), i


def test_apng_stays_apng_with_timing_loop_and_disposal(apng, cli, tmp_path):
    path, frames = apng
    out = tmp_path / "out.png"
    r = cli("apply", "-k", "box", str(path), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    n, durations, disposals, loop = timing_of(out)
    assert (n, durations, disposals, loop) == (3, [50, 120, 80], [0, 1, 0], 4)
    written, given = probe(out, "out.png"), probe(path, "anim.png")
    assert written is not None and given is not None
    assert written.delays == given.delays and written.blends == (0, 0, 0)  # whole frames
    for i, got in enumerate(frames_of(out)):
        close_to(got, box_reference(frames[i]), 255)
        assert np.array_equal(got[..., 3], frames[i][..., 3])


# -- WebP ------------------------------------------------------------------------------------
def test_lossless_webp_stays_a_lossless_animation(webp, cli, tmp_path):
    path, frames = webp
    out = tmp_path / "out.webp"
    r = cli("apply", "-k", "box", str(path), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    animation = probe(out, "out.webp")
    assert animation is not None and animation.lossless
    assert animation.blends == (0, 0, 0)  # whole frames, not blended
    n, durations, _, loop = timing_of(out)
    assert (n, durations, loop) == (3, [40, 70, 100], 0)
    for i, got in enumerate(frames_of(out)):
        close_to(got[..., :3], box_reference(frames[i]), 255)


# -- multi-page TIFF -------------------------------------------------------------------------
def test_tiff_pages_keep_their_order_and_depth(pages, cli, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path, want = pages
    out = tmp_path / "out.tif"
    r = cli("apply", "-k", "box", str(path), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    with tifffile.TiffFile(out) as tif:
        got = [page.asarray() for page in tif.pages]
    assert [g.dtype for g in got] == [np.uint8, np.uint16, np.uint8]
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want, strict=True):
        close_to(g, box_reference(w), np.iinfo(w.dtype).max)


def test_tiff_pages_to_png_are_one_file_each(pages, cli, tmp_path):
    path, want = pages
    r = cli("apply", "-k", "box", str(path), "-d", str(tmp_path / "o"), "--format", "png")
    assert r.exit_code == 0, r.stderr
    names = [tmp_path / "o" / f"pages.box.{i}.png" for i in range(3)]
    assert r.stdout.split() == [str(n) for n in names]
    pytest.importorskip("cv2")  # 16-bit colour PNG is read back through OpenCV
    from convcli import read_image

    close_to(read_image(names[1]), box_reference(want[1]), 65535)  # still 16-bit
    close_to(read_image(names[0]), box_reference(want[0]), 255)


def test_explain_says_how_many_frames_and_what_is_kept(opaque_gif, cli):
    r = cli("apply", "-k", "box", "--frames", "1-2", str(opaque_gif), "--explain")
    assert r.exit_code == 0, r.stderr
    assert "frames: 2 of the 4 of this animated GIF (1, 2)" in r.stdout
    loop = timing_of(opaque_gif)[3]
    assert f"one animated GIF of 2 frames: their delays (200 ms, 300 ms), loop count {loop}" in (
        r.stdout
    )
    assert "disposal" in r.stdout


# -- bounds ----------------------------------------------------------------------------------
def test_frames_count_against_the_pixel_limit(opaque_gif, monkeypatch):
    from convcli.errors import LimitError

    monkeypatch.setenv("CONVCLI_MAX_PIXELS", str(3 * 40 * 56))
    with pytest.raises(LimitError, match="4 frames of 56x40"):
        probe(opaque_gif, "anim.gif")
    monkeypatch.setenv("CONVCLI_MAX_PIXELS", str(4 * 64 * 64))
    assert probe(opaque_gif, "anim.gif") is not None


def test_lossy_webp_stays_lossy_with_its_background(webp, cli, tmp_path):
    _, frames = webp
    lossy = tmp_path / "lossy.webp"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        lossy, save_all=True, append_images=images[1:], duration=[40, 70, 100], loop=2,
        quality=80, background=(10, 20, 30, 255),
    )  # fmt: skip
    out = tmp_path / "out.webp"
    r = cli("apply", "-k", "box", str(lossy), "-o", str(out), "--quality", "95")
    assert r.exit_code == 0, r.stderr
    before, after = probe(lossy, "lossy.webp"), probe(out, "out.webp")
    assert before is not None and after is not None
    assert not after.lossless
    assert (after.count, after.delays, after.loop) == (3, before.delays, 2)
    assert after.background == before.background
    shown = frames_of(lossy)  # what was filtered: the lossy frames as decoded
    for i, got in enumerate(frames_of(out)):  # encoded lossy once more: near, not equal
        want = box_reference(shown[i][..., :3])
        assert np.abs(got[..., :3].astype(float) - want).mean() < 3


def test_sixteen_bit_apng_is_refused(tmp_path, cli):
    """Pillow reads APNG frames as 8-bit: refused rather than silently made 8-bit."""
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = zlib.compress(b"".join(b"\0" + b"\x12\x34" * 4 for _ in range(4)))
    control = [struct.pack(">IIIIIHHBB", i, 4, 4, 0, 0, 1, 10, 0, 0) for i in (0, 1, 3)]
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 16, 0, 0, 0, 0))
        + chunk(b"acTL", struct.pack(">II", 2, 0))
        + chunk(b"fcTL", control[0])
        + chunk(b"IDAT", rows)
        + chunk(b"fcTL", control[1])
        + chunk(b"fdAT", struct.pack(">I", 2) + rows)
        + chunk(b"IEND", b"")
    )
    (tmp_path / "deep.png").write_bytes(data)
    r = cli("apply", "-k", "box", "deep.png", "-d", "out", cwd=tmp_path)
    assert r.exit_code == 1
    assert "deep.png" in r.stderr and "16-bit APNG" in r.stderr
    assert not (tmp_path / "out").exists()


def test_float_and_alpha_tiff_pages(tmp_path, cli, photos):
    tifffile = pytest.importorskip("tifffile")
    floats = photos["camera"][:20, :30].astype(np.float32) / 7
    rgba = np.dstack([photos["astronaut"][:20, :30], np.full((20, 30), 128, np.uint8)])
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(floats, contiguous=False)
        tw.write(rgba, photometric="rgb", extrasamples=["unassalpha"], contiguous=False)
    out = tmp_path / "out.tif"
    r = cli("apply", "-k", "box", str(path), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    with tifffile.TiffFile(out) as tif:
        got = [page.asarray() for page in tif.pages]
    assert got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], box_reference(floats), rtol=1e-5, atol=1e-4)
    assert got[1].shape == (20, 30, 4) and (got[1][..., 3] == 128).all()
    close_to(got[1], box_reference(rgba), 255)


def test_frame_file_names_sort_in_frame_order():
    from pathlib import Path

    from convcli.run.naming import frame_target

    assert frame_target(Path("d/a.box.png"), 3, 2) == Path("d/a.box.03.png")
    assert frame_target(Path("noext"), 12, 3) == Path("noext.012")


def test_the_library_reads_every_frame_and_never_just_the_first(opaque_gif, pages):
    import convcli
    from convcli.errors import InputError

    with pytest.raises(InputError, match="animated GIF of 4 frames"):
        convcli.read_image(opaque_gif)
    path, want = pages
    with pytest.raises(InputError, match="multi-page TIFF of 3 frames"):
        convcli.read_image(path)
    got = list(convcli.read_frames(path))
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    assert len(list(convcli.read_frames(opaque_gif, [1, 3]))) == 2
    with pytest.raises(InputError, match="4 frame"):
        list(convcli.read_frames(opaque_gif, [4]))


def test_a_multi_page_tiff_over_the_memory_budget_is_not_streamed_as_its_first_page(
    tmp_path, cli, photos
):
    """Only one-frame TIFFs are streamed; the pages of a multi-page TIFF are filtered one
    at a time, and a page over the budget is refused (never just the first page written)."""
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "big.tif"
    with tifffile.TiffWriter(path) as tw:
        for _ in range(2):
            tw.write(np.tile(photos["camera"], (3, 3)), contiguous=False)
    r = cli("apply", "-k", "box", str(path), "-o", str(tmp_path / "o.tif"), "--memory", "8MiB")
    assert r.exit_code == 1
    assert "big.tif" in r.stderr and "not streamed" in r.stderr
    assert not (tmp_path / "o.tif").exists()
    r = cli("apply", "-k", "box", str(path), "-o", str(tmp_path / "o.tif"), "--memory", "200MiB")
    assert r.exit_code == 0, r.stderr
    with tifffile.TiffFile(tmp_path / "o.tif") as tif:
        assert len(tif.pages) == 2


@pytest.mark.parametrize("kind", ["gif", "png", "webp"])
def test_a_damaged_animation_is_refused_cleanly_or_read_whole(kind, tmp_path, cli):
    """Bytes flipped inside an animation's frame data: a decoder may notice or not; either
    a clean one-line refusal or a complete animation of every frame, never a traceback."""
    rng = np.random.default_rng(3)
    images = [Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    src = tmp_path / f"anim.{kind}"
    options = {"lossless": True} if kind == "webp" else {}
    images[0].save(src, save_all=True, append_images=images[1:], duration=50, **options)
    data = bytearray(src.read_bytes())
    for i in range(len(data) * 2 // 3, len(data) * 2 // 3 + 12):
        data[i] ^= 0x5A
    src.write_bytes(bytes(data))
    r = cli("apply", "-k", "box", src.name, "-d", "out", cwd=tmp_path)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if r.exit_code == 0:
        out = tmp_path / "out" / f"anim.box.{kind}"
        assert probe(out, out.name).count == 3
    else:
        assert r.exit_code == 1
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("convcli: error: anim."), r.stderr
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_explain_counts_one_selected_frame_in_the_singular(cli, tmp_path):
    frames = [Image.fromarray(np.full((8, 10, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:], duration=50)
    r = cli("apply", "-k", "box", "--frames", "1", "--explain", str(tmp_path / "a.png"))
    assert r.exit_code == 0, r.stderr
    assert "one APNG of 1 frame: its delay (50 ms)" in r.stdout
