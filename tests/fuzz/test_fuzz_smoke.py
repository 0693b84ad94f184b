"""A short fuzzing run of every target, as part of the normal suite.

Each target gets a few hundred inputs from the plain mutational engine (seeded, so every run
tries the same inputs) in a subprocess with the fuzz environment and memory cap; the run must
find nothing that is not a known bug (fuzzlib.KNOWN_BUGS). With atheris installed, one
coverage-guided entry point is started too, to keep it working.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import fuzzlib
import pytest

#: inputs per target: about a second or two each on one core
RUNS = {"kernels": 500, "arrays": 600, "images": 400, "cli": 100}


def _run(args: list[str], timeout: float = 120, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env_extra}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("target", fuzzlib.TARGETS)
def test_fuzz_smoke(target: str) -> None:
    """A seeded run of the target finds no new bug."""
    proc = _run(
        [
            str(fuzzlib.HERE / "run.py"),
            "--engine",
            "plain",
            "--target",
            target,
            "--runs",
            str(RUNS[target]),
            "--seed",
            "1",
            "--no-save",
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert f"{RUNS[target]} executions" in proc.stdout, proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="needs atheris")
def test_atheris_entry_point_runs(tmp_path: Path) -> None:
    """fuzz_kernels.py starts, runs its seeds and mutants under libFuzzer, and stops."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(b"\x00sobel")
    proc = _run(
        [str(fuzzlib.HERE / "fuzz_kernels.py"), "-runs=200", "-seed=1", str(corpus)],
        CONVCLI_FUZZ_FINDINGS=str(tmp_path / "findings"),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done 200 runs" in proc.stderr, proc.stderr[-2000:]
