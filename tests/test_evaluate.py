"""Row bands and streaming: bit-for-bit the in-memory numbers for any band height, mode,
boundary, chain and bank; TIFF and .npy read and written incrementally; the memory budget."""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convcli
from conftest import BOUNDARIES, MODES
from convcli.compute.evaluate import convolve_strips, read_rows
from convcli.compute.image import filter_image
from convcli.compute.pixels import PixelOptions
from convcli.errors import LimitError, UsageError
from convcli.io.rows import ArrayRows, TiffRows
from convcli.kernels.model import Kernel
from convcli.memory import parse_size

tifffile = pytest.importorskip("tifffile")

OPERATIONS = {
    "gaussian": "gaussian:sigma=1.5",
    "even": [[1.0, 2.0, -1.0, 0.5], [0.25, -3.0, 2.0, 1.0]],
    "bank": "sobel",
    "chain": ["box:size=4", "sharpen"],
    "low-rank": "log:sigma=1",
}


BACKENDS = [
    name
    for name, module in (("scipy", "scipy"), ("opencv", "cv2"), ("torch", "torch"))
    if __import__("importlib").util.find_spec(module)
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize("rows", [1, 4, 11])
def test_bands_give_the_in_memory_numbers_bit_for_bit(rng, backend, mode, boundary, name, rows):
    """Any band height gives the one-band (in-memory) numbers, which are convolve()'s, bit
    for bit, on every backend."""
    x = rng.normal(size=(25, 19))
    kw = {"mode": mode, "boundary": boundary, "fill_value": 0.5, "backend": backend}
    whole = convolve_strips(x, OPERATIONS[name], rows=100, **kw)
    got = convolve_strips(x, OPERATIONS[name], rows=rows, **kw)
    np.testing.assert_array_equal(got, whole)
    direct = convcli.convolve(x, OPERATIONS[name], **kw)
    np.testing.assert_array_equal(got, direct)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    h=st.integers(3, 30),
    w=st.integers(3, 20),
    kh=st.integers(1, 6),
    kw=st.integers(1, 6),
    rows=st.integers(1, 40),
    mode=st.sampled_from(MODES),
    boundary=st.sampled_from(BOUNDARIES),
    method=st.sampled_from(["direct", "separable", "fft"]),
    backend=st.sampled_from(BACKENDS),
    seed=st.integers(0, 2**31),
)
def test_any_band_height_property(h, w, kh, kw, rows, mode, boundary, method, backend, seed):
    """For any image, kernel, band height, mode, boundary, method and backend, the banded
    result is identical to the one-band result, which is convolve()'s."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(h, w))
    k = rng.normal(size=(kh, kw))
    kwargs = {
        "mode": mode,
        "boundary": boundary,
        "fill_value": -1.25,
        "method": method,
        "backend": backend,
    }
    if mode == "valid" and (kh > h or kw > w):
        return
    whole = convolve_strips(x, k, rows=h + 1, **kwargs)
    np.testing.assert_array_equal(convolve_strips(x, k, rows=rows, **kwargs), whole)
    np.testing.assert_array_equal(whole, convcli.convolve(x, k, **kwargs))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("rows", "shape"),
    [(1, (400, 90)), (7, (400, 90)), (128, (400, 90)), (300, (400, 90)), (37, (420, 800))],
)
def test_fft_bands_are_bit_identical(rng, backend, rows, shape):
    """The FFT runs in tiles of rows at fixed places, so any cut into bands (one band: the
    in-memory result) gives the same numbers, bit for bit; also where a row of blocks ends
    in a narrower one."""
    x = rng.normal(size=shape)
    k = rng.normal(size=(9, 9))
    want = convcli.convolve(x, k, method="fft", backend=backend)
    got = convolve_strips(x, k, rows=rows, method="fft", backend=backend)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(want, convcli.convolve(x, k, method="direct"), atol=1e-10)


def test_stacked_banks_and_chains_after_them(rng):
    x = rng.normal(size=(20, 16))
    stack = convcli.get_kernel("sobel").with_combine("stack")
    want = convcli.convolve(x, [stack, "box"], backend="scipy")
    np.testing.assert_array_equal(convolve_strips(x, [stack, "box"], rows=3, backend="scipy"), want)


@pytest.mark.parametrize("alpha", ["keep", "filter", "premultiplied"])
@pytest.mark.parametrize("mode", MODES)
def test_filter_image_in_small_bands_equals_one_band(rng, alpha, mode):
    rgba = (rng.random((33, 21, 4)) * 255).astype(np.uint8)
    options = PixelOptions(alpha=alpha, range="abs")
    whole = filter_image(rgba, "sobel-x", options, mode=mode, band_bytes=1 << 30)
    small = filter_image(rgba, "sobel-x", options, mode=mode, band_bytes=1)
    np.testing.assert_array_equal(small.pixels, whole.pixels)
    assert small.clipped == whole.clipped


def test_rescale_uses_the_whole_images_range(photos):
    x = photos["camera"][:120, :90]
    options = PixelOptions(range="rescale")
    whole = filter_image(x, "laplacian", options, band_bytes=1 << 30).pixels
    small = filter_image(x, "laplacian", options, band_bytes=1).pixels
    np.testing.assert_array_equal(small, whole)
    assert whole.min() == 0 and whole.max() == 255


def test_pillow_edges_in_bands(photos):
    x = photos["astronaut"][:50, :40]
    kw = {"correlate": True, "boundary": "nearest", "keep_edges": True}
    k = Kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]], scale=1 / 16)
    whole = filter_image(x, k, band_bytes=1 << 30, **kw).pixels
    small = filter_image(x, k, band_bytes=1, **kw).pixels
    np.testing.assert_array_equal(small, whole)
    np.testing.assert_array_equal(whole[0], x[0])  # the edge rows are the input's


@pytest.mark.parametrize("layout", [{"tile": (16, 32)}, {"rowsperstrip": 7}, {}])
@pytest.mark.parametrize("channels", [1, 3])
def test_tiff_rows_read_any_range(tmp_path, rng, layout, channels):
    shape = (53, 70, channels) if channels > 1 else (53, 70)
    x = (rng.random(shape) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", x, compression="zlib", **layout)
    reader = TiffRows(tmp_path / "x.tif")
    try:
        assert reader.shape == shape
        for r0, r1 in [(0, 53), (5, 9), (15, 17), (50, 53), (16, 48)]:
            np.testing.assert_array_equal(reader.read(r0, r1), x[r0:r1])
        rows = np.array([0, 1, 2, 30, 31, 52])
        np.testing.assert_array_equal(read_rows(reader, rows), x[rows])
    finally:
        reader.close()


@pytest.mark.parametrize(
    "layout, touched", [({"tile": (16, 32)}, [3, 4, 5]), ({"rowsperstrip": 7}, [2, 3])]
)
def test_tiff_rows_decode_only_the_segments_a_band_touches(
    tmp_path, rng, monkeypatch, layout, touched
):
    x = (rng.random((53, 70, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "x.tif", x, compression="zlib", photometric="rgb", **layout)
    read = []
    real = tifffile.FileHandle.read_segments

    def spy(self, offsets, counts, *args, indices=None, **kwargs):
        read.extend(indices)
        return real(self, offsets, counts, *args, indices=indices, **kwargs)

    monkeypatch.setattr(tifffile.FileHandle, "read_segments", spy)
    reader = TiffRows(tmp_path / "x.tif")
    try:
        np.testing.assert_array_equal(reader.read(16, 26), x[16:26])
        assert sorted(read) == touched
    finally:
        reader.close()


def test_array_rows():
    x = np.arange(12).reshape(4, 3)
    assert read_rows(ArrayRows(x), np.array([0, 2, 3])).tolist() == [
        [0, 1, 2],
        [6, 7, 8],
        [9, 10, 11],
    ]


def test_parse_size():
    assert parse_size("256MiB") == 256 * 1024**2
    assert parse_size("2 GB") == 2 * 1000**3
    assert parse_size("1.5k") == 1536
    assert parse_size("4096") == 4096
    for bad in ("lots", "-1G", "5 parsecs", "0"):
        with pytest.raises(UsageError, match="memory size"):
            parse_size(bad)


# -- through the command line ------------------------------------------------------------------
@pytest.fixture
def big_tiff(tmp_path, photos):
    x = np.tile(photos["astronaut"], (2, 1, 1))  # 1024 x 512 RGB
    tifffile.imwrite(tmp_path / "big.tif", x, tile=(128, 128), photometric="rgb")
    return tmp_path / "big.tif"


@pytest.mark.parametrize("spec", ["gaussian:sigma=2", "sobel", "3x3: 1,2,1, 0,0,0, -1,-2,-1"])
def test_streamed_command_equals_in_memory(cli, big_tiff, tmp_path, spec):
    args = ["apply", "-k", spec, str(big_tiff), "--range", "abs"]
    assert cli(*args, "-o", str(tmp_path / "mem.tif")).exit_code == 0
    r = cli(*args, "-o", str(tmp_path / "str.tif"), "--memory", "4MiB")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(
        convcli.read_image(tmp_path / "str.tif"), convcli.read_image(tmp_path / "mem.tif")
    )


def test_streamed_npy_and_stacks(cli, tmp_path, rng):
    x = rng.normal(size=(300, 200))
    np.save(tmp_path / "a.npy", x)
    r = cli(
        "apply",
        "-k",
        "sobel",
        "--combine",
        "stack",
        str(tmp_path / "a.npy"),
        "-o",
        str(tmp_path / "s.npy"),
        "--memory",
        "1MiB",
    )
    assert r.exit_code == 0, r.stderr
    got = np.load(tmp_path / "s.npy")
    assert got.shape == (2, 300, 200) and got.dtype == np.float64
    whole = cli(
        "apply",
        "-k",
        "sobel",
        "--combine",
        "stack",
        str(tmp_path / "a.npy"),
        "-o",
        str(tmp_path / "w.npy"),
    )
    assert whole.exit_code == 0
    np.testing.assert_array_equal(got, np.load(tmp_path / "w.npy"))
    np.testing.assert_array_equal(got, convcli.convolve(x, "sobel", combine="stack"))


def test_over_the_budget_and_not_streamable(cli, tmp_path, photos, big_tiff):
    from PIL import Image

    Image.fromarray(photos["astronaut"]).save(tmp_path / "a.png")
    r = cli(
        "apply", "-k", "box", str(tmp_path / "a.png"), "--memory", "1MiB", "-d", str(tmp_path / "o")
    )
    assert r.exit_code == 1
    assert "only TIFF and .npy inputs can be streamed" in r.stderr
    assert "--memory" in r.stderr
    r = cli("apply", "-k", "box", str(big_tiff), "--memory", "1MiB", "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 1 and "written as TIFF or .npy" in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_an_image_filtered_in_memory_has_its_header_read_once(tmp_path, photos, monkeypatch):
    """Whether an image fits in memory is decided from the header its decoder reads: one
    open per image, not one to decide and another to decode."""
    from PIL import Image

    from convcli.io import decode
    from convcli.run.process import process
    from convcli.run.request import build_request
    from convcli.run.sources import Source

    Image.fromarray(photos["astronaut"]).save(tmp_path / "a.jpg")
    opened = []
    real = decode._pillow_open

    def counting(source, label):  # type: ignore[no-untyped-def]
        opened.append(label)
        return real(source, label)

    monkeypatch.setattr(decode, "_pillow_open", counting)
    (tmp_path / "o").mkdir()
    request = build_request(["box"], out_dir=tmp_path / "o")
    outcome = process(Source("a.jpg", tmp_path / "a.jpg"), request)
    assert outcome.error is None and len(outcome.written) == 1
    assert opened == ["a.jpg"]


def test_memory_env_variable(cli, big_tiff, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCLI_MEMORY", "1MiB")
    r = cli("apply", "-k", "box", str(big_tiff), "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 1 and "budget of 1.0 MiB" in r.stderr


def test_limit_error_is_per_input():
    assert LimitError.exit_code == 1


@pytest.mark.parametrize("mode, boundary", list(itertools.product(MODES, ("reflect", "wrap"))))
def test_streamed_modes_through_the_cli(cli, big_tiff, tmp_path, mode, boundary):
    args = [
        "apply",
        "-k",
        "box:size=4",
        "-k",
        "emboss",
        str(big_tiff),
        "--mode",
        mode,
        "--boundary",
        boundary,
    ]
    cli(*args, "-o", str(tmp_path / "m.tif"))
    r = cli(*args, "-o", str(tmp_path / "s.tif"), "--memory", "3MiB")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(
        convcli.read_image(tmp_path / "s.tif"), convcli.read_image(tmp_path / "m.tif")
    )


def _tile_threads(monkeypatch) -> list[threading.Thread]:
    """The threads that run convcli's FFT blocks, recorded as they run."""
    from convcli.compute import blocks

    seen: list[threading.Thread] = []
    valid = blocks.BlockCorrelator.valid

    def spy(self, *args):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread())
        valid(self, *args)

    monkeypatch.setattr(blocks.BlockCorrelator, "valid", spy)
    return seen


def test_tiles_run_on_threads_kept_between_calls(rng, monkeypatch):
    """A call's tiles run on this thread and the process's compute threads, the same ones
    in every call (starting threads per call cost a 1 MP FFT a quarter of its time); with
    one thread, all in this one; closing them ends them."""
    from convcli import machine
    from convcli.compute import evaluate

    x = rng.random((900, 300)).astype(np.float32)
    k = Kernel(rng.normal(size=(63, 63)))
    seen = _tile_threads(monkeypatch)
    monkeypatch.setattr(machine, "_threads", 2)
    first = convcli.convolve(x, k, method="fft")
    for _ in range(5):
        np.testing.assert_array_equal(convcli.convolve(x, k, method="fft"), first)
    helpers = set(seen) - {threading.current_thread()}
    assert all(t.name.startswith(evaluate.BAND_THREAD) for t in helpers)
    assert len(helpers) <= 2  # the pool's two threads at most, over six calls
    monkeypatch.setattr(machine, "_threads", 1)
    seen.clear()
    np.testing.assert_array_equal(convcli.convolve(x, k, method="fft"), first)
    assert set(seen) == {threading.current_thread()}
    monkeypatch.setattr(machine, "_threads", 2)
    convcli.convolve(x, k, method="fft")
    evaluate.close_threads()
    assert not [t for t in threading.enumerate() if t.name.startswith(evaluate.BAND_THREAD)]


def test_ordered_map_shares_items_with_a_compute_thread(monkeypatch):
    """Items 0 and 1 each wait for the other to start: they can only finish on two threads
    at once, this one and a compute thread. Results come in order."""
    from convcli import machine
    from convcli.compute.evaluate import ordered_map

    monkeypatch.setattr(machine, "_threads", 2)
    both = threading.Barrier(2, timeout=30)
    where: dict[int, threading.Thread] = {}

    def work(i: int) -> int:
        where[i] = threading.current_thread()
        if i < 2:
            both.wait()
        return i * i

    assert list(ordered_map(work, list(range(8)))) == [i * i for i in range(8)]
    assert where[0] is not where[1]


def test_ordered_map_raises_in_order_and_works_alone_when_the_pool_is_busy(monkeypatch):
    """An item's exception is raised where its result would come, after the earlier ones;
    with every compute thread busy elsewhere, this thread does all the items itself rather
    than wait for one to come free."""
    from convcli import machine
    from convcli.compute import evaluate

    monkeypatch.setattr(machine, "_threads", 2)
    release = threading.Event()
    pool = evaluate._shared_pool(2)
    blockers = [pool.submit(release.wait, 30) for _ in range(2)]
    try:
        where = set()

        def work(i: int) -> int:
            where.add(threading.current_thread())
            if i == 5:
                raise ValueError("item 5")
            return i

        got = []
        with pytest.raises(ValueError, match="item 5"):
            for value in evaluate.ordered_map(work, list(range(9))):
                got.append(value)
        assert got == [0, 1, 2, 3, 4]
        assert where == {threading.current_thread()}
    finally:
        release.set()
        for blocker in blockers:
            blocker.result(timeout=30)


def test_ctrl_c_in_the_callers_own_item_stops_it_at_once(monkeypatch):
    """Ctrl-C (or a stop signal) during an item this thread took stops it there and then,
    not once that item's turn comes after items still running elsewhere."""
    import time

    from convcli import machine
    from convcli.compute.evaluate import ordered_map

    monkeypatch.setattr(machine, "_threads", 2)
    caller = threading.current_thread()
    release = threading.Event()

    def work(i: int) -> int:
        if threading.current_thread() is caller:
            raise KeyboardInterrupt
        release.wait(30)  # a compute thread's item, still running
        return i

    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(ordered_map(work, list(range(6))))
        assert time.monotonic() - started < 15
    finally:
        release.set()


def test_ordered_map_takes_at_most_a_few_items_ahead(monkeypatch):
    """At most one more item than there are threads is taken at a time, counting the one
    being handed back (bands of a large image bound the memory so)."""
    from convcli import machine
    from convcli.compute.evaluate import ordered_map

    monkeypatch.setattr(machine, "_threads", 2)
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        return i

    for value in ordered_map(work, list(range(40))):
        assert max(started) <= value + 2
    assert sorted(started) == list(range(40))


def test_a_program_ends_with_the_compute_threads_idle():
    """A program that convolved (its compute threads kept, idle) ends as usual."""
    import subprocess
    import sys

    code = (
        "import numpy as np, convcli\n"
        "from convcli import machine\n"
        "machine.set_threads_per_worker(2)\n"
        "x = np.random.default_rng(1).random((900, 300)).astype(np.float32)\n"
        "print(convcli.convolve(x, np.ones((63, 63)), method='fft').shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "(900, 300)\n", "")


def _in_child(x, k, results) -> None:  # type: ignore[no-untyped-def]
    """In a forked child: a convolution, and two items that finish only side by side."""
    from convcli.compute.evaluate import ordered_map

    both = threading.Barrier(2, timeout=10)

    def meet(i: int) -> int:
        both.wait()
        return i

    try:
        paired = list(ordered_map(meet, [0, 1]))
    except threading.BrokenBarrierError:
        paired = "no compute thread came"
    results.put((convcli.convolve(x, k, method="fft"), paired))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_compute_threads_of_its_own(rng, monkeypatch):
    """A child forked after the parent computed inherits the pool without its threads: it
    makes its own (whose threads do come), rather than queueing work for threads that do
    not exist."""
    import multiprocessing

    from convcli import machine

    monkeypatch.setattr(machine, "_threads", 2)
    x = rng.random((900, 300)).astype(np.float32)
    k = Kernel(rng.normal(size=(63, 63)))
    want = convcli.convolve(x, k, method="fft")  # the parent's pool now exists
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_in_child, args=(x, k, results))
    child.start()
    got, paired = results.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(got, want)
    assert paired == [0, 1]
