#!/usr/bin/env python
"""Run the convcli fuzzers for a while and print what they did.

    python tests/fuzz/run.py --seconds 150 --target all          # atheris when installed
    python tests/fuzz/run.py --seconds 60 --target kernels --engine plain
    python -m tests.fuzz --runs 300 --target cli --engine plain --seed 1

``--engine atheris`` runs ``fuzz_<target>.py`` (coverage-guided, libFuzzer) in a subprocess per
target; ``--engine plain`` runs a seeded mutational fuzzer in this process (no atheris
needed, reproducible with ``--runs`` and ``--seed``). Each prints a table of executions and
findings; every distinct finding's input is saved under ``--findings`` (default
``tests/fuzz/findings``). Exit status 1 when a finding is not a known bug (see
``fuzzlib.KNOWN_BUGS``), 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzzlib


def run_atheris(
    target: str, seconds: float | None, runs: int | None, seed: int, findings: Path
) -> dict:
    findings.mkdir(parents=True, exist_ok=True)
    log = findings / f"{target}.log"
    summary = findings / f"{target}-summary.json"
    summary.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(fuzzlib.HERE / f"fuzz_{target}.py"),
        f"-seed={seed or 1}",
        f"-artifact_prefix={findings}/{target}-",
    ]
    if seconds is not None:
        cmd.append(f"-max_total_time={int(seconds)}")
    if runs is not None:
        cmd.append(f"-runs={runs}")
    env = {**os.environ, "CONVCLI_FUZZ_FINDINGS": str(findings)}
    started = time.perf_counter()
    with log.open("wb") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False)
    elapsed = time.perf_counter() - started
    text = log.read_text(errors="replace")
    executions = _stat(text, r"stat::number_of_executed_units:\s+(\d+)")
    corpus = _stat(text, r"#\d+\s+DONE\s+.*?corp: (\d+)/")
    lines = [ln for ln in text.splitlines() if ln.startswith("FINDING ")]
    new = [ln for ln in lines if " NEW " in ln]
    crash = proc.returncode != 0
    if crash:  # libFuzzer stopped: a timeout, out-of-memory or a Python crash
        tail = [ln for ln in text.splitlines() if "ERROR: libFuzzer" in ln or "==ERROR" in ln]
        new.append(f"libFuzzer exited {proc.returncode}: {tail[-1] if tail else 'see ' + str(log)}")
    known = sorted({ln.split()[2].removeprefix("known:") for ln in lines if " known:" in ln})
    return {
        "target": target,
        "engine": "atheris",
        "seconds": round(elapsed, 1),
        "executions": executions,
        "corpus": corpus,
        "findings": len(lines) + int(crash),
        "new": new,
        "known": known,
        "log": str(log),
        "summary": str(summary) if summary.exists() else None,
    }


def _stat(text: str, pattern: str) -> int:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else 0


def run_plain(
    target: str, seconds: float | None, runs: int | None, seed: int, findings: Path | None
) -> dict:
    recorder = fuzzlib.Recorder(target, findings)
    with fuzzlib.session():
        stats = fuzzlib.fuzz_plain(target, seconds=seconds, runs=runs, seed=seed, recorder=recorder)
    if findings is not None:
        findings.mkdir(parents=True, exist_ok=True)
        (findings / f"{target}-summary.json").write_text(json.dumps(recorder.summary(), indent=1))
    return {
        "target": target,
        "engine": "plain",
        "seconds": round(stats.seconds, 1),
        "executions": stats.executions,
        "corpus": stats.corpus,
        "findings": stats.findings,
        "new": [f"{k}: {recorder.first[k][0].message[:200]}" for k in recorder.new],
        "known": sorted({fuzzlib.known_bug(f) or "" for f, _ in recorder.first.values()} - {""}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="all", choices=[*fuzzlib.TARGETS, "all"])
    parser.add_argument("--seconds", type=float, default=None, help="per target")
    parser.add_argument("--runs", type=int, default=None, help="inputs per target")
    parser.add_argument("--engine", default="auto", choices=["auto", "atheris", "plain"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--findings",
        type=Path,
        default=fuzzlib.FINDINGS,
        help="where each finding's input is saved",
    )
    parser.add_argument("--no-save", action="store_true", help="save no inputs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.seconds is None and args.runs is None:
        args.seconds = 60.0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "plain"
    targets = fuzzlib.TARGETS if args.target == "all" else (args.target,)
    findings = None if args.no_save else args.findings.resolve()
    if engine == "plain":
        fuzzlib.prepare_environment()
        for target in targets:  # (the imports count against no input's time)
            fuzzlib.import_target_modules(target)
        fuzzlib.limit_memory()
    results = []
    for target in targets:
        if engine == "atheris":
            result = run_atheris(
                target, args.seconds, args.runs, args.seed, findings or fuzzlib.FINDINGS
            )
        else:
            result = run_plain(target, args.seconds, args.runs, args.seed, findings)
        results.append(result)
        rate = result["executions"] / max(result["seconds"], 1e-9)
        print(
            f"{target:8} {engine:8} {result['seconds']:8.1f} s {result['executions']:10d} "
            f"executions {rate:8.0f}/s  corpus {result['corpus']:5d}  findings "
            f"{result['findings']:3d} (new {len(result['new'])}, known: "
            f"{', '.join(result['known']) or '-'})",
            flush=True,
        )
        for line in result["new"]:
            print(f"  NEW {line}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if any(r["new"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
