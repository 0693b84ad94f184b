"""Render the README's pictures: every built-in kernel on a real photograph, tiled into one
labelled contact sheet, and the seed notebook's kernels before and after.

    python examples/gallery.py            # writes docs/gallery.png and docs/seed-kernels.png
    python examples/gallery.py --out DIR  # somewhere else

Each tile is what ``convcli apply -k NAME`` writes for one built-in kernel, with the options
its label gives: kernels whose sum is 0 (edges) as ``--range abs`` (second derivatives with
``--range rescale``), so their negative half is not clipped away; kernels that are not
normalised (the seed notebook's) with ``--normalize``. 1-D kernels filter along rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import convcli
from convcli.compute.pixels import PixelOptions
from convcli.kernels.model import Kernel

HERE = Path(__file__).resolve().parent
PHOTO = HERE / "images" / "astronaut.jpg"
TILE = 224
LABEL = 30

#: parametric kernels at parameters that show at this scale
PARAMS = {
    "box": "box:size=5",
    "box-1d": "box-1d:size=9",
    "gaussian": "gaussian:sigma=2",
    "gaussian-1d": "gaussian-1d:sigma=3",
    "log": "log:sigma=2",
    "unsharp": "unsharp:sigma=2,amount=1.5",
}


def display(name: str) -> tuple[str, str, dict, dict]:
    """(label, spec, pixel options, convolve options) that show a built-in kernel well:
    zero-sum kernels (edges) as --range abs, second derivatives around mid-gray, kernels
    that are not normalised (the seed's) with --normalize."""
    spec = PARAMS.get(name, name)
    kernel = convcli.get_kernel(spec)
    pixel: dict = {}
    conv: dict = {}
    flags = ""
    if isinstance(kernel, Kernel):
        if "second-derivative" in kernel.tags:
            pixel, flags = {"range": "rescale"}, " --range rescale"
        elif abs(kernel.sum) < 1e-9:
            pixel, flags = {"range": "abs"}, " --range abs"
        elif abs(kernel.sum - 1) > 1e-6:
            conv = {"normalize": True}
            flags = " --normalize"
    return spec + flags, spec, pixel, conv


SEED = [
    ("box (np.ones((3, 3)) / 9)", "box", {}, {}),
    ("prewitt-x --range abs", "prewitt-x", {"range": "abs"}, {}),
    ("sobel-x --range abs", "sobel-x", {"range": "abs"}, {}),
    ("gaussian-5x5-seed --normalize", "gaussian-5x5-seed", {}, {"normalize": True}),
    (
        "conv layer: horizontal edge",
        "[[1,1,1],[0,0,0],[-1,-1,-1]]",
        {"range": "abs"},
        {"correlate": True},
    ),
]


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def labelled(pixels: np.ndarray, label: str) -> Image.Image:
    """One tile: the picture with its label underneath."""
    im = Image.fromarray(pixels).convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (TILE, TILE + LABEL), "white")
    tile.paste(im, (0, 0))
    draw = ImageDraw.Draw(tile)
    draw.text((TILE // 2, TILE + LABEL // 2), label, fill="black", anchor="mm", font=font(13))
    return tile


def sheet(tiles: list[Image.Image], columns: int) -> Image.Image:
    rows = -(-len(tiles) // columns)
    gap = 6
    out = Image.new(
        "RGB", (columns * (TILE + gap) + gap, rows * (TILE + LABEL + gap) + gap), (235, 235, 235)
    )
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out.paste(tile, (gap + c * (TILE + gap), gap + r * (TILE + LABEL + gap)))
    return out


def apply(photo: np.ndarray, spec: str, pixel: dict, conv: dict) -> np.ndarray:
    return convcli.filter_image(photo, spec, PixelOptions(**pixel), **conv).pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photo = convcli.read_image(PHOTO)

    tiles = [labelled(photo, "original")]
    for info in convcli.list_kernels():
        if info.where == "built-in" and info.name != "identity":
            label, spec, pixel, conv = display(info.name)
            tiles.append(labelled(apply(photo, spec, pixel, conv), label))
    sheet(tiles, columns=6).save(args.out / "gallery.png", optimize=True)

    gray = convcli.read_image(PHOTO).astype(float) @ np.array([0.299, 0.587, 0.114])
    gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    seed = [labelled(gray, "before")]
    for name, spec, pixel, conv in SEED:
        seed.append(labelled(apply(gray, spec, pixel, conv), name))
    sheet(seed, columns=len(seed)).save(args.out / "seed-kernels.png", optimize=True)
    for name in ("gallery.png", "seed-kernels.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
