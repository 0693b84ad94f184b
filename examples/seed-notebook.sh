#!/usr/bin/env bash
# Every computation of the teaching notebook convcli grew out of (see the README's "The seed
# notebook"), run through convcli.
# Run from anywhere: ./examples/seed-notebook.sh
set -euo pipefail
cd "$(dirname "$0")"

section() { printf '\n# %s\n' "$*"; }

section "1-D running average: np.convolve(signal, np.ones(4) / 4, mode='valid')"
convcli apply -k box-1d:size=4 --mode valid '[1,2,3,4,5,4,3,2,1]'

section "1-D Prewitt [1, 0, -1]"
convcli apply -k prewitt-1d --mode valid '[1,2,3,4,5,4,3,2,1]'

section "1-D Gaussian [.25 .5 .75 .5 .25]"
convcli apply -k gaussian-1d-seed --mode valid '[1,2,3,4,5,4,3,2,1]'

# scipy.signal.convolve2d(signal, kernel, mode="full"): zero fill outside the image
for kernel in box prewitt-x sobel-x gaussian-5x5-seed; do
  section "convolve2d full, $kernel"
  convcli apply -k "$kernel" --mode full --boundary fill '[[1,2,3],[4,5,6],[7,8,9]]'
done

section "nn.Conv2d(1, 3, 3) on the 16x16 square: correlation, valid, stacked (3, 14, 14)"
convcli apply -k seed/conv-layer.toml --correlate --mode valid --precision 3 seed/square16.csv

section "the same layer, its kernels given inline"
convcli apply --combine stack --correlate --mode valid --precision 3 \
  -k '[[0.1111111111111111,0.1111111111111111,0.1111111111111111],[0.1111111111111111,0.1111111111111111,0.1111111111111111],[0.1111111111111111,0.1111111111111111,0.1111111111111111]]' \
  -k '[[-1,0,1],[-1,0,1],[-1,0,1]]' \
  -k '[[1,1,1],[0,0,0],[-1,-1,-1]]' \
  seed/square16.csv
