#!/usr/bin/env bash
# Chain two convcli calls: the first prints the files it wrote, the second reads that list.
# usage: chain-two-calls.sh [IMAGES_DIR] [OUT_DIR]
set -euo pipefail
images=${1:-"$(dirname "$0")/../images"}
out=${2:-chained}
convcli apply -k gaussian:sigma=1 -d "$out/smooth" "$images"/*.jpg \
  | convcli apply -k sobel --range abs --files-from - -d "$out/edges"
