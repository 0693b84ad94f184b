"""``--compat LIBRARY``: adopt another library's flip, boundary, output size and alignment, so
that code ported from it gives the same pixels.

Each preset was checked against the library itself (tests/test_compat.py):

============  ===========  ======  ========  =================================================
preset        computes     mode    boundary  notes
============  ===========  ======  ========  =================================================
scipy         convolution  full    fill 0    ``scipy.signal.convolve2d(x, k)``
ndimage       convolution  same    reflect   ``scipy.ndimage.convolve``; even kernels centred
                                             at ``k // 2`` (scipy.signal uses ``(k-1) // 2``)
opencv        correlation  same    mirror    ``cv2.filter2D`` (BORDER_REFLECT_101, anchor
                                             ``k // 2``)
imagemagick   convolution  same    nearest   ``-morphology Convolve`` (edge pixels repeated);
                                             8-bit results truncated as IM 6 Q16 does
pillow        see notes    same    (edges)   ``ImageFilter.Kernel``: rows flipped, columns not;
                                             divided by the kernel's sum; the border pixels
                                             the kernel does not fit in are copied unchanged;
                                             results rounded half up
torch         correlation  valid   fill 0    ``nn.Conv2d`` (padding=0); with ``--mode same``
                                             even kernels align like ``padding="same"``
============  ===========  ======  ========  =================================================

Options given explicitly on the command line win over the preset's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from convcli.errors import UsageError
from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    correlate: bool
    mode: str
    boundary: str
    #: which element of an even-sized kernel (as given) lands on the output pixel: "low" is
    #: (k - 1) // 2, "high" is k // 2. None keeps convcli's default for the flip.
    anchor: str | None = None
    flip_rows: bool = False  # Pillow flips rows but not columns
    normalize_nonzero: bool = False  # Pillow divides by the sum unless it is 0
    keep_edges: bool = False  # Pillow copies the pixels the kernel does not fit over
    quantize: str = "nearest"  # how results become 8-bit levels (see PixelOptions)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("scipy", "scipy.signal.convolve2d defaults", False, "full", "fill"),
        Preset(
            "ndimage", "scipy.ndimage.convolve defaults", False, "same", "reflect", anchor="high"
        ),
        Preset("opencv", "cv2.filter2D defaults", True, "same", "mirror"),
        Preset(
            "imagemagick",
            "ImageMagick -morphology Convolve",
            False,
            "same",
            "nearest",
            quantize="imagemagick",
        ),
        Preset(
            "pillow",
            "Pillow ImageFilter.Kernel",
            True,
            "same",
            "nearest",
            flip_rows=True,
            normalize_nonzero=True,
            keep_edges=True,
            quantize="half-up",
        ),
        Preset(
            "torch", "torch.nn.Conv2d defaults (padding=0)", True, "valid", "fill", anchor="low"
        ),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"--compat {name!r} is not one of {', '.join(PRESETS)}") from None


def adapt(operation: AnyKernel, preset: Preset, correlate: bool) -> AnyKernel:
    """The kernels as the preset's library would apply them (orientation, anchor, scale)."""
    if isinstance(operation, KernelChain):
        return replace(operation, steps=tuple(adapt(s, preset, correlate) for s in operation.steps))
    if isinstance(operation, KernelBank):
        return replace(
            operation, members=tuple(adapt(m, preset, correlate) for m in operation.members)
        )
    return _adapt_kernel(operation, preset, correlate)


def _adapt_kernel(kernel: Kernel, preset: Preset, correlate: bool) -> Kernel:
    if preset.flip_rows:
        m = kernel.as_2d()
        if m.shape[0] % 2 == 0 or m.shape[1] % 2 == 0:
            raise UsageError(
                f"--compat pillow: Pillow takes only odd kernel sizes, "
                f"{kernel.name!r} is {kernel.size_text}"
            )
        kernel = replace(kernel, matrix=m[::-1, :])
    if preset.normalize_nonzero and abs(kernel.sum) > 1e-12:
        kernel = kernel.normalized()
    if preset.anchor is not None and kernel.origin is None:
        rule = (lambda n: (n - 1) // 2) if preset.anchor == "low" else (lambda n: n // 2)
        default = (lambda n: n // 2) if correlate else (lambda n: (n - 1) // 2)
        origin = tuple(rule(n) for n in kernel.shape)  # every axis (3-D kernels too)
        if origin != tuple(default(n) for n in kernel.shape):
            kernel = replace(kernel, origin=origin)
    return kernel
