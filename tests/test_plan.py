"""One plan: --explain shows the plan the run executes, made once by the same function, for
every --compat preset, sample type, method and memory route."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import write_png
from convcli.run.explain import explain
from convcli.run.process import process
from convcli.run.request import build_request
from convcli.run.sources import discover
from convcli.vocabulary import Compat, values

pytest.importorskip("tifffile")


@pytest.fixture
def inputs(tmp_path, photos):
    """One input of each kind: 8-bit RGB, 16-bit gray, RGBA, JPEG, float32/float64/int16
    arrays and a 1-D signal."""
    root = tmp_path / "in"
    root.mkdir()
    write_png(root / "rgb8.png", photos["astronaut"][:40, :52])
    write_png(root / "gray16.png", (photos["camera"][:36, :44].astype(np.uint16) * 257))
    rgba = np.dstack([photos["astronaut"][:30, :30], np.full((30, 30), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    Image.fromarray(photos["astronaut"][:40, :50]).save(root / "photo.jpg")
    rng = np.random.default_rng(5)
    np.save(root / "f32.npy", rng.random((20, 24)).astype(np.float32))
    np.save(root / "f64.npy", rng.random((20, 24)))
    np.save(root / "i16.npy", rng.integers(-300, 300, (20, 24)).astype(np.int16))
    np.save(root / "signal.npy", rng.random(50))
    return root


def _pairs(root, out, **options):
    request = build_request(out_dir=out, **options)
    for source in discover([str(root)], recursive=True):
        if source.path.name == "signal.npy" and options["kernels"][0] != "box-1d:size=5":
            continue
        explained = explain(source, request)
        outcome = process(source, request)
        assert outcome.error is None, outcome.error
        yield source, explained.plan, outcome.plan


@pytest.mark.parametrize("compat", [None, *values(Compat)])
def test_every_compat_preset(inputs, tmp_path, compat):
    for source, explained, executed in _pairs(
        inputs, tmp_path / "out", kernels=["sobel-x", "box:size=5"], compat=compat
    ):
        assert explained == executed, source.label


@pytest.mark.parametrize("method", ["auto", "direct", "separable", "fft"])
@pytest.mark.parametrize("kernel", ["gaussian:sigma=2", "box-1d:size=5", "laplacian"])
def test_every_method(inputs, tmp_path, method, kernel):
    for source, explained, executed in _pairs(
        inputs, tmp_path / "out", kernels=[kernel], method=method, value_range="abs"
    ):
        assert explained == executed, source.label
        assert {s.method for s in executed.steps} <= {"direct", "separable", "fft"}


def test_what_the_plan_says_about_the_samples(inputs, tmp_path):
    """The facts that --explain used to re-derive wrongly: a float32 array is computed in
    float32; Pillow rounds half up; ImageMagick truncates 8-bit results."""
    plans = {}
    for compat in (None, "pillow", "imagemagick"):
        for source, explained, _ in _pairs(
            inputs, tmp_path / str(compat), kernels=["gaussian:sigma=1"], compat=compat
        ):
            plans[compat, source.path.name] = explained
    assert plans[None, "f32.npy"].work_dtype == "float32"
    assert plans[None, "f64.npy"].work_dtype == "float64"
    assert plans[None, "rgb8.png"].work_dtype == "float32"
    assert plans[None, "gray16.png"].work_dtype == "float64"
    assert "rounded to nearest" in plans[None, "rgb8.png"].mapping
    assert "rounded half up" in plans["pillow", "rgb8.png"].mapping
    assert plans["pillow", "rgb8.png"].keep_edges
    assert "truncated to 8" in plans["imagemagick", "rgb8.png"].mapping
    assert plans[None, "rgba.png"].out_shape == (30, 30, 4)


def test_a_streamed_input(tmp_path, photos):
    """Over the memory budget the plan has the streamed bands, and is still the run's."""
    tifffile = pytest.importorskip("tifffile")
    root = tmp_path / "in"
    root.mkdir()
    tifffile.imwrite(root / "big.tif", np.tile(photos["camera"], (3, 3)))
    request = build_request(["gaussian:sigma=2"], out_dir=tmp_path / "out", memory="8MiB")
    (source,) = discover([str(root)], recursive=True)
    explained = explain(source, request)
    outcome = process(source, request)
    assert "streamed" in explained.memory
    assert explained.plan == outcome.plan
    assert outcome.plan.band_rows < outcome.plan.out_shape[0]


def test_a_multi_frame_input(tmp_path, photos):
    """An animated GIF and a multi-page TIFF whose pages differ in depth and size: the plan
    of every frame, from the file's structure, is the plan the run executes."""
    tifffile = pytest.importorskip("tifffile")
    root = tmp_path / "in"
    root.mkdir()
    frames = [Image.fromarray(photos["astronaut"][i * 20 : i * 20 + 30, :40]) for i in range(3)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    with tifffile.TiffWriter(root / "pages.tif") as tw:
        tw.write(photos["camera"][:30, :40], contiguous=False)
        tw.write(photos["astronaut"][:20, :24].astype(np.uint16) * 257, contiguous=False)
    for fmt in (None, "png"):
        request = build_request(["sobel-x", "box:size=5"], out_dir=tmp_path / "out", format=fmt)
        for source in discover([str(root)], recursive=True):
            explained = explain(source, request)
            outcome = process(source, request)
            assert outcome.error is None, outcome.error
            assert explained.frames is not None and explained.frames == outcome.frames
            assert explained.plan == outcome.plan
            assert explained.destination == outcome.written
    assert [p.in_dtype for p in outcome.frames.plans] == ["uint8", "uint16"]


@pytest.mark.parametrize("alpha", ["keep", "premultiplied"])
def test_linear_light(inputs, tmp_path, alpha):
    """--linear: the transfer each image's header gives is the one the run applies."""
    request = build_request(
        ["gaussian:sigma=1"], out_dir=tmp_path / "out", linear=True, alpha=alpha
    )
    images = [s for s in discover([str(inputs)], recursive=True) if not s.is_array]
    assert len(images) == 4
    for source in images:
        explained = explain(source, request).plan
        outcome = process(source, request)
        assert outcome.error is None, outcome.error
        assert explained == outcome.plan, source.label
        assert explained.linear.startswith("decoded to linear light by the sRGB curve")


@pytest.mark.parametrize("memory", [None, "1MiB"])
@pytest.mark.parametrize("kernels", [["gaussian:sigma=1"], ["box:size=3", "sobel-x"]])
def test_a_volume(tmp_path, memory, kernels):
    """--volume: the N-D plan, held in memory or streamed in slabs of z."""
    import tifffile

    root = tmp_path / "vol"
    root.mkdir()
    rng = np.random.default_rng(12)
    np.save(root / "v.npy", rng.random((40, 60, 64)).astype(np.float32))
    tifffile.imwrite(root / "s.tif", (rng.random((40, 60, 64)) * 255).astype(np.uint8))
    request = build_request(kernels, out_dir=tmp_path / "out", volume=True, memory=memory)
    for source in discover([str(root)], recursive=True):
        explained = explain(source, request)
        outcome = process(source, request)
        assert outcome.error is None, outcome.error
        assert explained.plan == outcome.plan, source.label
        assert explained.kind == "volume"
        assert (explained.plan.slab_depth < 40) == (memory is not None)
        assert explained.memory.startswith("streamed" if memory else "in memory")
