"""Render the README's picture of ``convcli deconvolve`` and ``convcli fit``: a photograph
blurred by a known Gaussian plus noise, restored, and the original; and a kernel fitted from
a photograph and its blurred copy, next to the true kernel.

    python examples/restoration.py            # writes docs/restoration.png
    python examples/restoration.py --out DIR  # somewhere else

It prints the PSNR of the blurred and restored images against the original, and the fitted
kernel's largest error, which the README quotes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import convcli
from convcli.compute.deconvolve import DeconvolveOptions, deconvolve_image, psnr
from convcli.compute.fit import FitOptions, fit_kernel

HERE = Path(__file__).resolve().parent
PHOTO = HERE / "images" / "astronaut.jpg"
PSF = "gaussian:sigma=2"
NOISE = 0.01  # of full intensity
TRUE_KERNEL = "gaussian:size=7,sigma=1.5"
TILE = 256
LABEL = 28


def restore(original: np.ndarray) -> dict[str, np.ndarray]:
    """The blurred, noisy photo and its restorations, as 8-bit images."""
    psf = convcli.get_kernel(PSF)
    rng = np.random.default_rng(0)
    blurred = convcli.convolve(original, psf, dtype=np.float64) / 255.0
    blurred = np.clip(blurred + NOISE * rng.normal(size=blurred.shape), 0, 1)
    blurred8 = np.round(blurred * 255).astype(np.uint8)
    out = {"blurred + noise": blurred8}
    for name, options in (
        ("richardson-lucy 30", DeconvolveOptions(iterations=30)),
        ("richardson-lucy 30, tv 0.002", DeconvolveOptions(iterations=30, tv=0.002)),
        ("wiener, noise estimated", DeconvolveOptions(method="wiener")),
    ):
        out[name] = deconvolve_image(blurred8, psf, options).pixels
    out["original"] = original
    return out


def kernel_tile(matrix: np.ndarray, size: int) -> Image.Image:
    """A kernel drawn as gray blocks (its largest value white)."""
    levels = np.round(255 * np.clip(matrix / matrix.max(), 0, 1)).astype(np.uint8)
    return Image.fromarray(levels).resize((size, size), Image.Resampling.NEAREST)


def labelled(image: Image.Image, text: str) -> Image.Image:
    sheet = Image.new("RGB", (image.width, image.height + LABEL), "white")
    sheet.paste(image.convert("RGB"), (0, LABEL))
    ImageDraw.Draw(sheet).text((4, 6), text, fill="black", font=ImageFont.load_default())
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args()
    photo = convcli.read_image(PHOTO)
    crop = photo[40 : 40 + TILE, 120 : 120 + TILE]
    images = restore(crop)
    reference = crop / 255.0
    for name, pixels in images.items():
        if name != "original":
            print(f"PSNR {name}: {psnr(reference, pixels / 255.0):.2f} dB")
    true = convcli.get_kernel(TRUE_KERNEL).matrix
    gray = convcli.read_image(HERE / "images" / "camera.png")
    target = np.round(convcli.convolve(gray, true)).astype(np.uint8)
    fitted = fit_kernel([(gray, target)], FitOptions(size=true.shape)).kernel.matrix
    print(f"fitted 7x7 kernel: largest error {np.max(np.abs(fitted - true)):.2e}")
    tiles = [labelled(Image.fromarray(p), n) for n, p in images.items()]
    tiles.append(labelled(kernel_tile(true, TILE), f"true kernel ({TRUE_KERNEL})"))
    tiles.append(labelled(kernel_tile(fitted, TILE), "kernel fitted by convcli fit"))
    columns = 4
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + LABEL)), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * TILE, (i // columns) * (TILE + LABEL)))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "restoration.png"
    sheet.save(path, optimize=True)
    print(path)


if __name__ == "__main__":
    main()
