"""Render the README's picture of a blurred animated GIF: its frames as a viewer shows them
(top row) and what ``convcli apply -k gaussian:sigma=2`` wrote (bottom row).

    python examples/frames.py            # writes docs/frames.png
    python examples/frames.py --out DIR  # somewhere else

The animation is made here: a photograph as the first frame, then small partial frames (a
square moving across it, each disposed to what was there before it, so the GIF holds only the
square's rectangle), the case where filtering the stored frames instead of the shown ones
gives a wrong picture. convcli composes each frame, filters it on its own and writes a GIF of
the same frames, delays and loop count; the strip is drawn from that GIF read back.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from convcli.io import gif

HERE = Path(__file__).resolve().parent
PHOTO = HERE / "images" / "astronaut.jpg"
FRAMES = 4
SCALE = 2  # each frame is drawn at twice its size so that the blur shows


def make_animation(path: Path) -> None:
    """A 4-frame GIF: the photograph, then a red square at four places, each disposed to
    the previous canvas (ImageMagick's and browsers' "previous")."""
    with Image.open(PHOTO) as im:
        base = np.array(im.convert("RGB").resize((96, 96)))
    square = np.zeros((24, 24, 3), np.uint8)
    square[..., 0] = 230
    square[6:18, 6:18] = 255
    out = [b"GIF89a" + struct.pack("<HHBBB", 96, 96, 0, 0, 0)]
    out.append(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loops forever
    places = [(0, 0, base)] + [(8 + 20 * i, 10 + 18 * i, square) for i in range(FRAMES - 1)]
    for x, y, pixels in places:
        palette, data, _ = gif.frame_bytes(pixels)
        disposal = 1 if pixels is base else 3
        height, width = pixels.shape[:2]
        out.append(b"!\xf9\x04" + struct.pack("<BHB", disposal << 2, 50, 0) + b"\0")
        out.append(b"," + struct.pack("<HHHHB", x, y, width, height, 0x87) + palette + data)
    out.append(b";")
    path.write_bytes(b"".join(out))


def shown_frames(path: Path) -> list[np.ndarray]:
    """The frames of a GIF as a viewer shows them."""
    parsed = gif.parse(path.read_bytes(), str(path))
    composer = gif.Composer(parsed)
    return [composer.show(frame)[..., :3] for frame in parsed.frames]


def strip(rows: list[tuple[str, list[np.ndarray]]], path: Path) -> None:
    size = 96 * SCALE
    label = 110
    sheet = Image.new(
        "RGB", (label + len(rows[0][1]) * (size + 6), len(rows) * (size + 6)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for r, (title, frames) in enumerate(rows):
        draw.text((6, r * (size + 6) + size // 2), title, fill="black")
        for c, frame in enumerate(frames):
            tile = Image.fromarray(frame).resize((size, size), Image.Resampling.NEAREST)
            sheet.paste(tile, (label + c * (size + 6), r * (size + 6)))
    sheet.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source, blurred = Path(tmp) / "square.gif", Path(tmp) / "square.blurred.gif"
        make_animation(source)
        command = ["apply", "-k", "gaussian:sigma=2", str(source), "-o", str(blurred)]
        subprocess.run(
            [sys.executable, "-m", "convcli", *command],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        rows = [("input", shown_frames(source)), ("gaussian:sigma=2", shown_frames(blurred))]
    target = args.out / "frames.png"
    strip(rows, target)
    print(target)


if __name__ == "__main__":
    main()
