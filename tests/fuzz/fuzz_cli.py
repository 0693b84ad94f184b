#!/usr/bin/env python
"""Coverage-guided fuzzing (atheris): the cli target.

Fuzzes the whole command line in-process (convcli.cli.app) on a fuzzed input or kernel file:

    python tests/fuzz/fuzz_cli.py -max_total_time=60 [libFuzzer options] [corpus dirs or files]

See tests/fuzz/README.md and fuzzlib.atheris_main.
"""

import sys

from fuzzlib import atheris_main

if __name__ == "__main__":
    atheris_main("cli", sys.argv)
