"""Rows of an image or array, read on demand: how an input larger than the memory budget is
read band by band (TIFF strips or tiles through tifffile, ``.npy`` through a memory map)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from convcli.errors import InputError
from convcli.io.arrays import check_array, npy_header
from convcli.io.tiff import tiff_header


class RowReader(Protocol):
    """Rows of an image or array, read on demand."""

    @property
    def shape(self) -> tuple[int, ...]: ...  # (H, W) or (H, W, C)

    @property
    def dtype(self) -> np.dtype: ...

    def read(self, r0: int, r1: int) -> np.ndarray: ...


@dataclass
class ArrayRows:
    """Rows of an array already in memory."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def read(self, r0: int, r1: int) -> np.ndarray:
        return self.array[r0:r1]


@dataclass(frozen=True)
class HeaderRows:
    """The shape and sample type of an input, from its header, without its rows: enough to
    plan its filtering (``--explain``), never read."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def read(self, r0: int, r1: int) -> np.ndarray:
        raise RuntimeError("a header has no rows to read")


class NpyRows(ArrayRows):
    """Rows of a ``.npy`` file through a read-only memory map."""

    def __init__(self, path: Path) -> None:
        npy_header(path, str(path))
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise InputError(f"cannot map the .npy file ({exc})", subject=str(path)) from None
        if array.ndim not in (2, 3):
            check_array(array, str(path))
            raise InputError(
                f"is {array.ndim}-D; only 2-D and 3-D arrays are streamed", subject=str(path)
            )
        super().__init__(array)


class TiffRows:
    """Rows of a (striped or tiled) TIFF, decoding only the segments a band touches."""

    def __init__(self, path: Path) -> None:
        import tifffile

        self.path = path
        try:
            self._tif = tifffile.TiffFile(path)
        except Exception as exc:
            raise InputError(
                f"not a TIFF that can be streamed ({exc})", subject=str(path)
            ) from None
        try:
            shape, dtype = tiff_header(self._tif, str(path))  # also the pixel limit
            page = self._tif.pages.first
            if page.planarconfig == 2 and page.samplesperpixel > 1:
                raise InputError(
                    "planar (separate-plane) TIFFs cannot be streamed; save it "
                    "with interleaved samples",
                    subject=str(path),
                )
            if np.dtype(page.dtype) != dtype or tuple(page.shape) != shape:
                raise InputError(
                    f"TIFF samples of type {page.dtype} cannot be streamed "
                    "(8/16-bit, 32-bit integer and float32 can)",
                    subject=str(path),
                )
        except Exception:
            self._tif.close()
            raise
        self._page = page
        self.shape = shape
        self.dtype = dtype
        # a band of rows is one strip, or one row of tiles (segments are numbered across)
        self._rows_per_segment = page.tilelength if page.is_tiled else page.rowsperstrip
        self._segment_width = page.tilewidth if page.is_tiled else page.imagewidth
        self._segments_per_band = -(-page.imagewidth // self._segment_width)
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # bands are read from several threads

    def read(self, r0: int, r1: int) -> np.ndarray:
        rps = self._rows_per_segment
        out = np.empty((r1 - r0, *self.shape[1:]), dtype=self.dtype)
        for band in range(r0 // rps, (r1 - 1) // rps + 1):
            rows = self._segment_rows(band)
            top, bottom = max(band * rps, r0), min((band + 1) * rps, r1)
            out[top - r0 : bottom - r0] = rows[top - band * rps : bottom - band * rps]
        return out

    def _segment_rows(self, band: int) -> np.ndarray:
        """The decoded rows of one strip (or one row of tiles), kept for the next bands,
        which read most of them again as their halo."""
        with self._lock:
            return self._decode_rows(band)

    def _decode_rows(self, band: int) -> np.ndarray:
        cached = self._cache.get(band)
        if cached is not None:
            return cached
        page, rps = self._page, self._rows_per_segment
        height = min(rps, self.shape[0] - band * rps)
        rows = np.empty((height, *self.shape[1:]), dtype=self.dtype)
        first = band * self._segments_per_band
        indices = list(range(first, first + self._segments_per_band))
        # FileHandle.read_segments yields (bytes or None, index); TiffPage.decode returns the
        # decoded segment (None if empty), its position and its shape, the segment in the
        # normalized shape (depth, length, width, samples). Where it lies comes from its
        # index, the number of the tile across the band.
        segments = self._tif.filehandle.read_segments(
            [page.dataoffsets[i] for i in indices],
            [page.databytecounts[i] for i in indices],
            indices=indices,
            flat=True,
        )
        for data, index in cast(Iterator[tuple[bytes | None, int]], segments):
            segment, _position, _shape = page.decode(data, index, jpegtables=page.jpegtables)
            if segment is None:
                raise InputError(f"TIFF segment {index} is empty", subject=str(self.path))
            pixels = segment.reshape(-1, *segment.shape[-2:])  # (length, width, samples)
            if len(self.shape) == 2:
                pixels = pixels[..., 0]
            x = (index - first) * self._segment_width
            width = min(pixels.shape[1], self.shape[1] - x)
            rows[:, x : x + width] = pixels[:height, :width]
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[band] = rows
        return rows

    def close(self) -> None:
        self._tif.close()


def open_rows(path: Path) -> RowReader:
    """A row reader for a file that can be streamed (TIFF, .npy), else an error."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyRows(path)
    if suffix in (".tif", ".tiff"):
        return TiffRows(path)
    raise InputError("only TIFF and .npy inputs can be streamed", subject=str(path))
