#!/usr/bin/env python
"""Coverage-guided fuzzing (atheris): the arrays target.

Fuzzes the array readers (convcli.io.arrays.read_array on .npy/.csv/.txt/.json, parse_array):

    python tests/fuzz/fuzz_arrays.py -max_total_time=60 [libFuzzer options] [corpus dirs or files]

See tests/fuzz/README.md and fuzzlib.atheris_main.
"""

import sys

from fuzzlib import atheris_main

if __name__ == "__main__":
    atheris_main("arrays", sys.argv)
