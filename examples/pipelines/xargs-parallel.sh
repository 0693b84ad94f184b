#!/usr/bin/env bash
# One convcli per file, two at a time, with xargs -P (convcli -j does the same in one process,
# paying its start-up once).
# usage: xargs-parallel.sh [IMAGES_DIR] [OUT_DIR]
set -euo pipefail
images=${1:-"$(dirname "$0")/../images"}
out=${2:-edges}
mkdir -p "$out"
find "$images" -name '*.jpg' -print0 \
  | xargs -0 -n 1 -P 2 convcli apply -k sobel --range abs -q -d "$out"
