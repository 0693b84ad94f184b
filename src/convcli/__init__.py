"""convcli: convolve images and numeric arrays with named kernels, exactly as scipy does.

>>> import convcli
>>> k = convcli.get_kernel("gaussian:sigma=2")
>>> y = convcli.convolve([[0, 0, 0], [0, 9, 0], [0, 0, 0]], "box", boundary="fill")
>>> y.tolist()
[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]

The public names are imported on first use, so that importing the package (and starting the
command line) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "ConvcliError": "errors",
    "KernelError": "errors",
    "InputError": "errors",
    "UsageError": "errors",
    "Kernel": "kernels.model",
    "KernelBank": "kernels.model",
    "KernelChain": "kernels.model",
    "get_kernel": "kernels.registry",
    "list_kernels": "kernels.registry",
    "convolve": "compute.engine",
    "choose_method": "compute.engine",
    "read_image": "io.decode",
    "read_frames": "io.frames",
    "write_image": "io.encode",
    "read_array": "io.arrays",
    "filter_image": "compute.image",
    "PixelOptions": "compute.pixels",
}

__all__ = [
    "ConvcliError",
    "InputError",
    "Kernel",
    "KernelBank",
    "KernelChain",
    "KernelError",
    "PixelOptions",
    "UsageError",
    "__version__",
    "choose_method",
    "convolve",
    "filter_image",
    "get_kernel",
    "list_kernels",
    "read_array",
    "read_frames",
    "read_image",
    "write_image",
]

if TYPE_CHECKING:
    from .compute.engine import choose_method, convolve
    from .compute.image import filter_image
    from .compute.pixels import PixelOptions
    from .errors import ConvcliError, InputError, KernelError, UsageError
    from .io.arrays import read_array
    from .io.decode import read_image
    from .io.encode import write_image
    from .io.frames import read_frames
    from .kernels.model import Kernel, KernelBank, KernelChain
    from .kernels.registry import get_kernel, list_kernels


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'convcli' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
