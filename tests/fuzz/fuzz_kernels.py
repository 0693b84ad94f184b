#!/usr/bin/env python
"""Coverage-guided fuzzing (atheris): the kernels target.

Fuzzes the kernel spec parser (convcli.kernels.registry.get_kernel) and kernel files
(TOML, JSON, .mat):

    python tests/fuzz/fuzz_kernels.py -max_total_time=60 [libFuzzer options] [corpus dirs or files]

See tests/fuzz/README.md and fuzzlib.atheris_main.
"""

import sys

from fuzzlib import atheris_main

if __name__ == "__main__":
    atheris_main("kernels", sys.argv)
