"""Render the README's picture of filtering in linear light (``--linear``) against filtering
the encoded (gamma) values, as every tool does by default.

    python examples/linear_light.py            # writes docs/linear-light.png
    python examples/linear_light.py --out DIR  # somewhere else

Two rows, each: the input, ``convcli apply -k gaussian:sigma=3`` and the same with
``--linear``. The first input is a 1-pixel black/white checkerboard beside red/green
stripes: blurred as encoded values the checkerboard turns sRGB 128 (too dark: half the light
is sRGB 188) and red/green a muddy brown; in linear light the grey is 188 and the stripes
blend to the yellow they look like from afar. The second is a photograph's highlights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import convcli
from convcli.compute.transfer import SRGB

HERE = Path(__file__).resolve().parent
PHOTO = HERE / "images" / "coffee.jpg"
TILE = 200
LABEL = 28
KERNEL = "gaussian:sigma=3"


def pattern() -> np.ndarray:
    """A 1-pixel checkerboard (left half) beside 1-pixel red/green stripes (right half)."""
    yy, xx = np.indices((TILE, TILE))
    out = np.zeros((TILE, TILE, 3), np.uint8)
    check = ((yy + xx) % 2 * 255).astype(np.uint8)
    left = xx < TILE // 2
    for c in range(3):
        out[..., c] = np.where(left, check, 0)
    red = ~left & (yy % 2 == 0)
    out[red, 0] = 255
    out[~left & ~red, 1] = 255
    return out


def photo() -> np.ndarray:
    pixels = convcli.read_image(PHOTO)
    return np.ascontiguousarray(pixels[60 : 60 + TILE, 330 : 330 + TILE])


def row(image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The input, its blur as encoded values and its blur in linear light."""
    gamma = convcli.filter_image(image, KERNEL).pixels
    linear = convcli.filter_image(image, KERNEL, transfer=SRGB).pixels
    return [("input", image), (f"-k {KERNEL}", gamma), (f"-k {KERNEL} --linear", linear)]


def sheet(rows: list[list[tuple[str, np.ndarray]]]) -> Image.Image:
    columns = len(rows[0])
    out = Image.new("RGB", (columns * TILE, len(rows) * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for r, tiles in enumerate(rows):
        for c, (label, pixels) in enumerate(tiles):
            x, y = c * TILE, r * (TILE + LABEL)
            out.paste(Image.fromarray(pixels), (x, y + LABEL))
            draw.text((x + 6, y + 8), label, fill="black", font=font)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "linear-light.png"
    sheet([row(pattern()), row(photo())]).save(target, optimize=True)
    print(target)


if __name__ == "__main__":
    main()
