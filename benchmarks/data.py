"""Make the benchmark inputs, reproducibly and without network, in benchmarks/_data/.

* ``photos/``: at least 200 JPEG photographs (quality 90) of about 1-2 megapixels each, made
  by random crops, flips and Lanczos rescales of the real colour photographs that ship with
  scikit-image (astronaut, coffee, chelsea, rocket, the two stereo motorcycle views, the Hubble
  deep field, retina, immunohistochemistry: whichever load offline).
* ``big/photo12mp.{tif,jpg,png}``: one 4000x3000 RGB picture, a 4x3 mosaic of 1000x1000
  upscaled crops of those photographs, with mild Gaussian grain (sigma 2 levels) standing in
  for a camera's sensor noise (an upscaled photo alone is so smooth that the codecs would
  see far less detail than in a real 12 MP photo). TIFF uncompressed, JPEG quality 90, PNG
  at Pillow's default compression (6).

Files that already exist are kept (delete benchmarks/_data/ to remake them). The same seed
gives the same files for the same numpy and Pillow versions.

    python benchmarks/data.py [--count 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
PHOTOS = DATA / "photos"
BIG = DATA / "big"
SEED = 20240601

#: the real photographs of skimage.data used as sources (name -> how to load it)
SOURCES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
)


def load_sources() -> list[tuple[str, np.ndarray]]:
    """The skimage.data colour photographs that load without network, as (name, RGB uint8)."""
    import skimage.data

    out: list[tuple[str, np.ndarray]] = []
    for name in SOURCES:
        try:
            if name.startswith("motorcycle_"):
                left, right, _ = skimage.data.stereo_motorcycle()
                image = left if name.endswith("left") else right
            else:
                image = getattr(skimage.data, name)()
        except Exception as exc:  # a file that needs pooch/network: skip it
            print(f"data: skipping skimage.data.{name}: {type(exc).__name__}", file=sys.stderr)
            continue
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            out.append((name, image))
    if not out:
        raise SystemExit("data: no skimage.data photograph could be loaded")
    return out


def _save_jpeg(image: np.ndarray, path: Path, quality: int = 90) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.part")
    Image.fromarray(image).save(tmp, format="JPEG", quality=quality)
    tmp.replace(path)


def _crop_rescale(rng: np.random.Generator, image: np.ndarray, megapixels: float) -> np.ndarray:
    """A random crop (50-100% of each side), maybe mirrored, rescaled to ``megapixels``."""
    from PIL import Image

    h, w = image.shape[:2]
    ch = int(h * rng.uniform(0.5, 1.0))
    cw = int(w * rng.uniform(0.5, 1.0))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    crop = image[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    scale = (megapixels * 1e6 / (ch * cw)) ** 0.5
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.LANCZOS))


def make_photos(count: int = 200, dest: Path = PHOTOS) -> Path:
    """``count`` JPEG photos of 1-2 MP in ``dest``; existing files are kept."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = load_sources()
    made = 0
    for i in range(count):
        name, image = sources[i % len(sources)]
        path = dest / f"photo{i:03d}-{name}.jpg"
        if not path.exists():
            rng = np.random.default_rng([SEED, i])  # file i is the same whatever exists
            _save_jpeg(_crop_rescale(rng, image, float(rng.uniform(1.0, 2.0))), path)
            made += 1
    manifest = {
        "count": len(photo_files(dest)),
        "sources": [name for name, _ in sources],
        "how": "random crop (50-100% of each side), 50% mirrored, Lanczos rescale to 1-2 MP, "
        "JPEG quality 90 (Pillow, 4:2:0)",
        "seed": SEED,
    }
    (dest.parent / f"{dest.name}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"data: {dest}: {count} photos ({made} made now), crops of {len(sources)} real "
        f"photographs from skimage.data ({', '.join(n for n, _ in sources)})",
        file=sys.stderr,
    )
    return dest


def photo_files(dest: Path = PHOTOS) -> list[Path]:
    return sorted(dest.glob("photo*.jpg"))


def photo_sources(dest: Path = PHOTOS) -> list[str]:
    """The names of the skimage photographs the photos were cut from (from the manifest)."""
    try:
        return list(json.loads((dest.parent / f"{dest.name}.json").read_text())["sources"])
    except (OSError, ValueError, KeyError):
        return []


def make_big(dest: Path = BIG) -> dict[str, Path]:
    """The 4000x3000 RGB photo as TIFF, JPEG and PNG; existing files are kept."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    paths = {ext: dest / f"photo12mp.{ext}" for ext in ("tif", "jpg", "png")}
    if all(p.exists() for p in paths.values()):
        return paths
    sources = load_sources()
    rng = np.random.default_rng([SEED, 12])
    tile = 1000
    mosaic = np.empty((3 * tile, 4 * tile, 3), np.uint8)
    for k in range(12):
        _, image = sources[k % len(sources)]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.5, 0.9))
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(np.ascontiguousarray(image[y : y + side, x : x + side]))
        r, c = divmod(k, 4)
        mosaic[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = np.asarray(
            crop.resize((tile, tile), Image.LANCZOS)
        )
    grain = rng.normal(0.0, 2.0, mosaic.shape)
    mosaic = np.clip(np.rint(mosaic + grain), 0, 255).astype(np.uint8)
    im = Image.fromarray(mosaic)
    for ext, path in paths.items():
        tmp = path.with_name(f".{path.name}.part")
        if ext == "tif":
            im.save(tmp, format="TIFF")  # uncompressed
        elif ext == "jpg":
            im.save(tmp, format="JPEG", quality=90)
        else:
            im.save(tmp, format="PNG")
        tmp.replace(path)
    print(
        f"data: {dest}: 4000x3000 RGB mosaic of 12 upscaled crops of {len(sources)} real "
        "photographs (+ grain sigma 2) as TIFF, JPEG q90 and PNG",
        file=sys.stderr,
    )
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="number of photos (default 200)")
    parser.add_argument("--quick", action="store_true", help="only 12 photos (a smoke run)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    make_photos(12 if args.quick else args.count)
    make_big()
    print(f"data: ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
