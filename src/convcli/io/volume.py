"""Volumes in and out: a 3-D ``.npy`` array, or a multi-page TIFF read as a z-stack (one
gray page per slice), read slice by slice on demand; results written slab by slab.

A volume is (D, H, W). Only what the user says is a volume (``--volume``) is read as one;
this module never guesses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import InputError, OutputError
from convcli.io.arrays import check_array, npy_header
from convcli.io.atomic import atomic_file, write_bands
from convcli.io.inputs import check_readable, reason
from convcli.io.limits import check_pixels
from convcli.machine import has_tifffile
from convcli.numeric import finite

#: the input files a volume is read from
VOLUME_SUFFIXES = (".npy", ".tif", ".tiff")
#: sample types a TIFF z-stack may hold (as the 2-D reader documents them)
_TIFF_TYPES = {np.dtype(t) for t in (np.uint8, np.uint16, np.int32, np.float32)}


class VolumeReader:
    """Slices of a volume, read on demand (``.npy`` through a memory map, TIFF page by
    page); close it after."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label
        suffix = path.suffix.lower()
        if suffix not in VOLUME_SUFFIXES:
            raise InputError(
                "a volume is read from a 3-D .npy array or a multi-page TIFF (one page a slice)",
                subject=label,
            )
        check_readable(path, label)
        self._tif: Any = None
        self._lock = threading.Lock()
        if suffix == ".npy":
            self._open_npy()
        else:
            self._open_tiff()

    def _open_npy(self) -> None:
        shape, dtype = npy_header(self.path, self.label)
        if len(shape) != 3:
            raise InputError(
                f"is {len(shape)}-D; a volume is a 3-D array (depth, rows, columns)",
                subject=self.label,
            )
        if dtype.kind not in "biuf":
            raise InputError(f"expected numbers, got dtype {dtype}", subject=self.label)
        if 0 in shape:
            raise InputError("the input array is empty", subject=self.label)
        try:
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise InputError(
                f"cannot map the .npy file ({reason(exc)})", subject=self.label
            ) from None
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.dtype = np.dtype(dtype)
        self.kind = "array"

    def _open_tiff(self) -> None:
        if not has_tifffile():
            raise InputError(
                "a TIFF z-stack is read with tifffile: pip install 'convcli[tiff]'",
                subject=self.label,
            )
        import tifffile

        try:
            self._tif = tifffile.TiffFile(self.path)
            pages = self._tif.pages
            count = len(pages)
        except Exception as exc:
            self.close()
            raise InputError(
                f"corrupt or unsupported TIFF ({reason(exc)})", subject=self.label
            ) from None
        try:
            if count == 0:
                raise InputError("the TIFF holds no images (0 pages)", subject=self.label)
            first = pages.first
            shape = tuple(int(n) for n in first.shape)
            if len(shape) != 2:
                raise InputError(
                    f"page 1 is {'x'.join(map(str, shape))}: a TIFF z-stack holds one gray "
                    "sample per pixel",
                    subject=self.label,
                )
            check_pixels(shape[1], shape[0] * count, self.label)
            dtype = np.dtype(first.dtype)
            if dtype not in _TIFF_TYPES:
                raise InputError(
                    f"TIFF samples of type {dtype} (a z-stack holds 8/16-bit, 32-bit integer "
                    "or float32 samples)",
                    subject=self.label,
                )
            self.dtype = dtype
            self.shape = (count, shape[0], shape[1])
            self._pages = [pages[i] for i in range(count)]
            for i, page in enumerate(self._pages, start=1):
                if tuple(page.shape) != shape or np.dtype(page.dtype) != dtype:
                    raise InputError(
                        f"page {i} is {'x'.join(map(str, page.shape))} {page.dtype}, page 1 "
                        f"{'x'.join(map(str, shape))} {dtype}: the slices of a volume must "
                        "match",
                        subject=self.label,
                    )
        except InputError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise InputError(
                f"corrupt or unsupported TIFF ({reason(exc)})", subject=self.label
            ) from None
        self.kind = "image"

    def read(self, zs: np.ndarray) -> np.ndarray:
        """The slices at sorted z (len(zs), H, W), checked to hold finite numbers."""
        if self._tif is None:
            data = np.asarray(self._array[zs])
        else:
            with self._lock:
                try:
                    data = np.stack([self._pages[int(z)].asarray() for z in zs])
                except Exception as exc:
                    raise InputError(
                        f"corrupt TIFF page ({reason(exc)})", subject=self.label
                    ) from None
        if not finite(data):
            check_array(data, self.label)
            raise InputError("the volume holds NaN or infinity", subject=self.label)
        return data

    def read_all(self) -> np.ndarray:
        return self.read(np.arange(self.shape[0]))

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
            self._tif = None


def write_volume(
    path: Path,
    fmt: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    slabs: Iterator[tuple[int, int, np.ndarray]],
    *,
    stacked: bool = False,
    compress: int | None = None,
) -> None:
    """Write a volume that arrives slab by slab (slices ``z0:z1``), atomically: a ``.npy``
    (a stack's slabs carry the stack axis first), or a multi-page TIFF, one page a slice."""
    if fmt == "NPY":
        write_bands(path, "NPY", shape, dtype, slabs, rows_per_band=1, stacked=stacked)
        return
    if fmt != "TIFF" or stacked:
        what = "a stacked volume is written as .npy" if stacked else "a volume is written as"
        raise OutputError(
            f"{what} .npy or a multi-page TIFF, not {fmt}" if not stacked else f"{what}, not {fmt}",
            subject=str(path),
        )
    import tifffile

    def pages() -> Iterator[np.ndarray]:
        for _, _, slab in slabs:
            yield from slab

    with atomic_file(path) as fh:
        tifffile.imwrite(
            fh,
            pages(),
            shape=tuple(shape),
            dtype=dtype,
            photometric="minisblack",
            rowsperstrip=int(shape[1]),
            compression="zlib" if compress else None,
        )
