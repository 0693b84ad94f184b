"""Run every benchmark and write the combined results, with the machine, as Markdown.

    python benchmarks/run_all.py                 # writes docs/benchmarks.md
    python benchmarks/run_all.py --quick         # smoke run, writes benchmarks/_out/
    python benchmarks/run_all.py --only kernels  # one script (repeatable)

Each script runs in its own process, one after the other (data, then the scripts of SCRIPTS);
their tables go to stdout as they come and into the Markdown file at the end. No network.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import common

SCRIPTS = ("batch", "kernels", "commands", "pixels8", "floor", "single", "scaling", "gpu")
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run of each script")
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="the Markdown file (default docs/benchmarks.md; with --quick "
        "benchmarks/_out/benchmarks-quick.md)",
    )
    parser.add_argument(
        "--only", action="append", choices=SCRIPTS, help="run only this script (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = HERE / "_out" / "benchmarks-quick.md"
    else:
        out = common.ROOT / "docs" / "benchmarks.md"
    scripts = [s for s in SCRIPTS if not args.only or s in args.only]
    flag = ["--quick"] if args.quick else []
    machine = common.machine_markdown()  # before the runs: the load average at the start
    started = time.perf_counter()
    common.compile_convcli()  # start-up is measured as installed
    subprocess.run([sys.executable, str(HERE / "data.py"), *flag], check=True)
    sections: list[str] = []
    took: list[str] = []
    failed = 0
    for name in scripts:
        print(f"\n===== {name} =====\n", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(HERE / f"{name}.py"), *flag],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # tee: show the tables as they come
            print(line, end="", flush=True)
            lines.append(line)
        rc = proc.wait()
        minutes = (time.perf_counter() - t0) / 60
        took.append(f"{name} {minutes:.1f} min")
        body = "".join(lines).rstrip() + "\n"
        if rc != 0:
            failed += 1
            body += f"\n**{name}.py failed (exit {rc}); its results above are incomplete.**\n"
        sections.append(body)
    total = (time.perf_counter() - started) / 60
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    text = (
        "# convcli benchmarks\n\n"
        + (
            "**Smoke run (`--quick`): small inputs, one run each; not for comparison.**\n\n"
            if args.quick
            else ""
        )
        + f"Made by `{command}` in {total:.1f} min ({', '.join(took)}). The scripts and what "
        "each row measures are described in benchmarks/README.md; the inputs are made by "
        "benchmarks/data.py from the photographs that ship with scikit-image.\n\n"
        + machine
        + "\n\n"
        + "\n".join(sections)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"\nwrote {out} ({total:.1f} min)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
