"""The command line's allocator settings: applied on glibc, never over a user's own."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = "from convcli.cli.allocator import keep_freed_memory; print(keep_freed_memory())"


def _run(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=clean | env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applied_on_glibc():
    assert _run() == "True"


def test_a_users_malloc_settings_are_kept():
    assert _run(MALLOC_ARENA_MAX="2") == "False"
