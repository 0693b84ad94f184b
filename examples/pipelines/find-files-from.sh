#!/usr/bin/env bash
# Blur every JPEG under a folder: find lists them NUL-separated, convcli reads the list.
# usage: find-files-from.sh [IMAGES_DIR] [OUT_DIR]
set -euo pipefail
images=${1:-"$(dirname "$0")/../images"}
out=${2:-blurred}
find "$images" -name '*.jpg' -print0 | convcli apply -k gaussian:sigma=2 --files-from - -0 -d "$out"
