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
KNOWN: dict[str, str] = {
    "arrays-big-integer-json-file": "big-int",
    "arrays-deep-inline-json": "json-depth",
    "arrays-deep-json-file": "json-depth",
    "arrays-long-integer-inline": "int-digits",
    "arrays-npy-header-bytes-key": "npy-header",
    "arrays-npy-header-indentation-error": "npy-header",
    "arrays-npy-header-syntax-error": "npy-header",
    "arrays-npy-header-token-error": "npy-header",
    "cli-big-integer-json-input": "big-int",
    "cli-gray-alpha-16-bit-png": "la16-png",
    "cli-long-inline-array": "long-name",
    "cli-long-kernel-name": "long-name",
    "cli-npy-header-syntax-error": "npy-header",
    "cli-pillow-log-on-stderr": "stray-stderr",
    "cli-pillow-warning-on-stderr": "stray-stderr",
    "cli-tiff-empty-array-stdin": "tifffile-unchecked",
    "images-16-bit-colour-png": "png16-bytes",
    "images-gray-alpha-16-bit-png-result": "la16-png",
    "images-probe-16-bit-colour-tiff": "probe-16bit",
    "images-probe-float-colour-tiff": "probe-tifffile",
    "images-tiff-bool-samples": "tifffile-unchecked",
    "images-tiff-empty-array": "tifffile-unchecked",
    "images-tiff-missing-dimensions": "decoder-exceptions",
    "images-tiff-one-channel-axis": "tifffile-unchecked",
    "images-tiff-rational-strip-offset": "decoder-exceptions",
    "images-tiff-tuple-image-length": "decoder-exceptions",
    "images-tiff-uint32-samples": "tifffile-unchecked",
    "images-tiff-unknown-predictor": "decoder-exceptions",
    "kernels-big-integer-inline": "big-int",
    "kernels-big-integer-toml": "big-int",
    "kernels-chain-member-export": "chain-member-roundtrip",
    "kernels-control-character-name": "toml-control-chars",
    "kernels-deep-inline-json": "json-depth",
    "kernels-deep-json-file": "json-depth",
    "kernels-deep-toml-file": "json-depth",
    "kernels-gaussian-sigma-overflow": "generator-size",
    "kernels-gaussian-sigma-underflow": "generator-size",
    "kernels-long-bank-member": "long-name",
    "kernels-long-integer-inline": "int-digits",
    "kernels-long-integer-toml": "int-digits",
    "kernels-long-name": "long-name",
    "kernels-nul-byte-in-bank-member": "nul-path",
    "kernels-nul-byte-in-spec": "nul-path",
    "kernels-offset-export": "offset-roundtrip",
    "kernels-origin-infinity": "origin-validation",
    "kernels-origin-integer": "origin-validation",
    "kernels-origin-string": "origin-validation",
    "kernels-scale-overflow": "scale-overflow",
    "kernels-tiny-weights": "tiny-weights",
    "kernels-unknown-home-directory": "home-dir",
}


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


@pytest.mark.xfail(
    strict=True,
    reason="BUG (huge-length-field): a 12-byte .npy whose header length field says 3.4 GB, or "
    "a 56-byte PNG whose IDAT chunk says 4.3 GB, makes numpy / Pillow allocate a buffer that "
    "size; under a memory limit (ulimit -v, containers) read_array and open_image raise "
    "MemoryError and the CLI says 'out of memory (try a smaller image or --memory)'",
)
@pytest.mark.parametrize(
    "stem", ["arrays-npy-header-length-gigabytes", "cli-png-idat-length-gigabytes"]
)
def test_huge_length_fields_under_a_memory_limit(stem: str) -> None:
    """With the address space capped 1 GiB above what the process maps, a tiny file that
    declares a huge header or chunk is still refused as corrupt (an InputError)."""
    path = fuzzlib.CRASHERS / f"{stem}.bin"
    target = stem.split("-", 1)[0]
    code = _UNDER_A_MEMORY_LIMIT.format(here=str(fuzzlib.HERE), target=target, path=str(path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
