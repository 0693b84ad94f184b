"""Replay the fuzzers' crashers: every input in tests/fuzz/crashers/ through its target.

A crasher is the raw input of one target (the file name starts with it: ``kernels-``,
``arrays-``, ``images-``, ``cli-``); fuzzlib says how each target reads its bytes. A crasher
passes when the target raises no Finding: the bad input became a one-line ConvcliError
(exit 1 or 2 for the command line) and every oracle held. The known bugs are marked xfail,
strictly (a fix makes the test fail until its mark is removed), and only for the bug they
show: a crasher failing some other way fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fuzzlib
import pytest

#: crasher file stem -> the fuzzlib.KNOWN_BUGS id of the bug it shows (see README.md)
KNOWN: dict[str, str] = {}


class WrongBug(Exception):
    """A known crasher failed, but not with the bug it is kept for (not covered by xfail)."""


def _cases() -> list:
    cases = []
    for path in sorted(fuzzlib.CRASHERS.glob("*.bin")):
        marks = []
        bug = KNOWN.get(path.stem)
        if bug is not None:
            reason = f"BUG ({bug}): {fuzzlib.KNOWN_BUGS[bug][1]}"
            marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason))
        cases.append(pytest.param(path, marks=marks, id=path.stem))
    return cases


def test_every_known_crasher_exists_and_names_a_known_bug():
    stems = {p.stem for p in fuzzlib.CRASHERS.glob("*.bin")}
    assert set(KNOWN) <= stems
    assert set(KNOWN.values()) <= set(fuzzlib.KNOWN_BUGS)


@pytest.mark.parametrize("path", _cases())
def test_crasher(path: Path) -> None:
    """The crasher's target raises no Finding for it."""
    target = path.name.split("-", 1)[0]
    assert target in fuzzlib.TARGETS, f"{path.name}: no target {target!r}"
    data = path.read_bytes()  # (before the sandbox, whose guard refuses paths outside it)
    with fuzzlib.session(), fuzzlib.alarm(10.0):
        finding = fuzzlib.run_one(target, data)
    if finding is None:
        return
    expected = KNOWN.get(path.stem)
    if expected is not None and fuzzlib.known_bug(finding) != expected:
        raise WrongBug(f"expected bug {expected!r}, got {finding}")
    raise AssertionError(
        f"{finding.kind} {finding.signature}: {finding.message}\n{finding.detail[-3000:]}"
    )


_UNDER_A_MEMORY_LIMIT = """
import sys
sys.path.insert(0, {here!r})
import fuzzlib
fuzzlib.prepare_environment()
fuzzlib.import_target_modules({target!r})
fuzzlib.limit_memory(1024)
data = open({path!r}, "rb").read()
with fuzzlib.session():
    finding = fuzzlib.run_one({target!r}, data)
print(finding or "no finding")
sys.exit(1 if finding else 0)
"""


@pytest.mark.parametrize(
    "stem", ["arrays-npy-header-length-gigabytes", "cli-png-idat-length-gigabytes"]
)
def test_huge_length_fields_under_a_memory_limit(stem: str) -> None:
    """With the address space capped 1 GiB above what the process maps, a tiny file that
    declares a huge header or chunk is still refused as corrupt (an InputError)."""
    path = fuzzlib.CRASHERS / f"{stem}.bin"
    target = stem.split("-", 1)[0]
    code = _UNDER_A_MEMORY_LIMIT.format(here=str(fuzzlib.HERE), target=target, path=str(path))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
