#!/usr/bin/env bash
# Image bytes through a pipe: convcli reads '-' and writes '-o -' (which needs --format).
# usage: stdin-stdout.sh [IMAGE] [OUTPUT]
set -euo pipefail
image=${1:-"$(dirname "$0")/../images/astronaut.jpg"}
output=${2:-astronaut-soft-edges.png}
cat "$image" \
  | convcli apply -k sobel --range abs - -o - --format png \
  | convcli apply -k gaussian - -o "$output"
