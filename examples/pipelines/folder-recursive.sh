#!/usr/bin/env bash
# A whole folder tree with two workers; the layout below the folder is kept in the output,
# and --skip-existing makes a re-run (after Ctrl-C, say) finish only what is missing.
# usage: folder-recursive.sh [IMAGES_DIR] [OUT_DIR]
set -euo pipefail
images=${1:-"$(dirname "$0")/../images"}
out=${2:-sharpened}
convcli apply -k sharpen -r "$images" -d "$out" -j 2 --skip-existing
