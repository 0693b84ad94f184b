"""Rows of an image or array, read on demand: how an input larger than the memory budget is
read band by band (TIFF strips or tiles through tifffile, ``.npy`` through a memory map)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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
        self._rows_per_segment = page.tilelength if page.is_tiled else page.rowsperstrip
        across = -(-page.imagewidth // page.tilewidth) if page.is_tiled else 1
        self._segments_per_band = across
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
        page, fh = self._page, self._tif.filehandle
        rps = self._rows_per_segment
        height = min(rps, self.shape[0] - band * rps)
        rows = np.empty((height, *self.shape[1:]), dtype=self.dtype)
        first = band * self._segments_per_band
        indices = list(range(first, first + self._segments_per_band))
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        for data, index in fh.read_segments(offsets, counts, indices=indices):
            decoded, (_, _, _, x, _), _ = page.decode(data, index)
            if decoded is None:
                raise InputError(f"TIFF segment {index} is empty", subject=str(self.path))
            segment = decoded[0]  # drop the depth axis
            if len(self.shape) == 2:
                segment = segment[..., 0]
            width = min(segment.shape[1], self.shape[1] - x)
            rows[:, x : x + width] = segment[:height, :width]
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
