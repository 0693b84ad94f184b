#!/usr/bin/env python
"""Coverage-guided fuzzing (atheris): the images target.

Fuzzes the image reader (convcli.io.decode.open_image on bytes), probe_image, filter_image and
the writers:

    python tests/fuzz/fuzz_images.py -max_total_time=60 [libFuzzer options] [corpus dirs or files]

See tests/fuzz/README.md and fuzzlib.atheris_main.
"""

import sys

from fuzzlib import atheris_main

if __name__ == "__main__":
    atheris_main("images", sys.argv)
