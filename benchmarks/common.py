"""What the benchmark scripts share: running and measuring commands, tables, the machine.

Not a benchmark itself. Every script imports it as ``common`` (they run as
``python benchmarks/NAME.py``, which puts this folder first on ``sys.path``).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

PRELIMINARY = (
    "Timings are wall-clock seconds on a shared machine; other work may have been running, "
    "so treat them as preliminary."
)


# -- tools ---------------------------------------------------------------------------------------
def convcli_cmd() -> list[str]:
    """The convcli command of this interpreter's environment (its console script), with its
    bytecode compiled: start-up is measured as installed (pip compiles a package's
    bytecode; an editable install under PYTHONDONTWRITEBYTECODE would compile the changed
    modules at every start)."""
    compile_convcli()
    script = Path(sys.executable).with_name("convcli")
    if script.exists():
        return [str(script)]
    found = shutil.which("convcli")
    return [found] if found else [sys.executable, "-m", "convcli"]


def compile_convcli() -> None:
    """Write the bytecode of the installed convcli package (once a run)."""
    global _compiled
    if _compiled:
        return
    import importlib.util

    spec = importlib.util.find_spec("convcli")
    assert spec is not None and spec.origin is not None, "convcli is not installed"
    package = Path(spec.origin).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    _compiled = True


_compiled = False


def tool(name: str) -> str | None:
    """The full path of a command-line tool, or None when it is not installed."""
    return shutil.which(name)


def imagemagick() -> tuple[str | None, str | None]:
    """(convert, mogrify) of ImageMagick; None for one that is missing or is not the real one."""
    convert = tool("convert")
    if convert is not None:
        probe = subprocess.run([convert, "-version"], capture_output=True, text=True)
        if "Version: ImageMagick" not in probe.stdout:
            convert = None
    return convert, tool("mogrify")


# -- measuring -----------------------------------------------------------------------------------
@dataclass
class Measured:
    """One command's wall time (perf_counter around the whole child) and peak RSS.

    ``rss_mb`` is the largest resident set of any one process of the command (GNU time's
    ``%M``, the same ru_maxrss that wait4 gives), not the sum over parallel workers.
    """

    seconds: float
    rss_mb: float | None
    rc: int = 0
    stderr: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out


def run_cmd(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
    stdout: int | None = subprocess.DEVNULL,
) -> Measured:
    """Run ``cmd`` once; measure its wall time and peak RSS (GNU time, else wait4)."""
    full_env = None if env is None else {**os.environ, **env}
    with tempfile.NamedTemporaryFile("r", prefix="convcli-bench-time-", delete=True) as tf:
        full = list(cmd)
        if GNU_TIME:
            full = [GNU_TIME, "-f", "%e %M", "-o", tf.name, *full]
        started = time.perf_counter()
        proc = subprocess.Popen(
            full,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,  # a timeout kills the whole group (xargs and its children)
        )
        timed_out = False
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
        seconds = time.perf_counter() - started
        rss: float | None = None
        if GNU_TIME:
            lines = [ln for ln in tf.read().splitlines() if ln.strip()]
            if lines and re.fullmatch(r"[\d.]+ \d+", lines[-1].strip()):
                rss = int(lines[-1].split()[1]) / 1024.0
        rc = proc.returncode
    text = err.decode("utf-8", "replace")
    return Measured(seconds, rss, rc, text[-2000:], timed_out)


@dataclass
class Best:
    """Best (smallest) time of ``runs`` runs; ``rss_mb`` is the peak over all of them."""

    seconds: float | None = None
    rss_mb: float | None = None
    runs: int = 0
    error: str = ""
    timed_out: bool = False
    samples: list[float] = field(default_factory=list)

    def add(self, m: Measured) -> None:
        if not m.ok:
            self.timed_out = m.timed_out
            self.error = "timed out" if m.timed_out else _last_line(m.stderr) or f"exit {m.rc}"
            return
        self.runs += 1
        self.samples.append(m.seconds)
        self.seconds = m.seconds if self.seconds is None else min(self.seconds, m.seconds)
        if m.rss_mb is not None:
            self.rss_mb = m.rss_mb if self.rss_mb is None else max(self.rss_mb, m.rss_mb)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:120] if lines else ""


def best_of(once: Callable[[], Measured], runs: int, single_over: float = float("inf")) -> Best:
    """Run ``once`` up to ``runs`` times and keep the best; a first run slower than
    ``single_over`` seconds (or a failure) is not repeated."""
    best = Best()
    for i in range(runs):
        m = once()
        best.add(m)
        if not m.ok or (i == 0 and m.seconds > single_over):
            break
    return best


def time_call(fn: Callable[[], object], runs: int, budget: float = 20.0) -> tuple[float, int]:
    """Best wall time of an in-process call over up to ``runs`` runs, stopping early once the
    runs so far took ``budget`` seconds. Returns (best seconds, runs done)."""
    best = float("inf")
    spent = 0.0
    done = 0
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        took = time.perf_counter() - started
        best = min(best, took)
        spent += took
        done += 1
        if spent > budget:
            break
    return best, done


def round_order(names: Sequence[str], r: int) -> list[str]:
    """The order of round ``r``: a balanced (Williams) design, in which every tool runs
    right after every other one equally often over a cycle of rounds (n rounds for n tools,
    2n when n is odd). A plain rotation would keep the same neighbours in every round: a
    tool always run after one that leaves the caches cold and the heap trimmed (an FFT
    peer) would pay for it in every round, and the one after it never."""
    n = len(names)
    base = [0]
    for i in range(1, n):
        base.append((i + 1) // 2 if i % 2 else n - i // 2)
    orders = [[(b + i) % n for b in base] for i in range(n)]
    if n % 2:
        orders += [order[::-1] for order in orders]
    return [names[i] for i in orders[r % len(orders)]]


def interleaved(
    calls: dict[str, Callable[[], object]],
    rounds: int,
    budget: float = 60.0,
    least: int = 3,
) -> dict[str, list[float]]:
    """Wall times of in-process calls measured in turns: every round runs each call once, in
    a balanced order (:func:`round_order`), so that a burst of other load falls on all of
    them alike and none always follows the same neighbour. Stops early (after at least
    ``least`` rounds) once ``budget`` seconds are spent. One warm-up call each."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    started = time.perf_counter()
    for r in range(rounds):
        for name in round_order(names, r):
            t0 = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t0)
        if r + 1 >= least and time.perf_counter() - started > budget:
            break
    return times


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def paired_ratio(times: dict[str, list[float]], name: str, peer: str) -> float:
    """The median over rounds of ``name``'s time over ``peer``'s in the same round."""
    return median([a / b for a, b in zip(times[name], times[peer], strict=True)])


# -- output --------------------------------------------------------------------------------------
def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, padded to read well as plain text too; numbers are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        all(_looks_numeric(r[i]) for r in cells[1:] if r[i]) and any(r[i] for r in cells[1:])
        for i in range(len(headers))
    ]
    out = []
    for n, r in enumerate(cells):
        padded = [
            c.rjust(w) if numeric[i] else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("| " + " | ".join(padded) + " |")
        if n == 0:
            out.append(
                "|"
                + "|".join(
                    ("-" * (w + 1)) + ":" if numeric[i] else "-" * (w + 2)
                    for i, w in enumerate(widths)
                )
                + "|"
            )
    return "\n".join(out)


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[<>~]?\s*[-+]?[\d.,]+\s*(x|%|s|ms|MB)?|—|-|n/a", text.strip()))


def fmt_s(seconds: float | None, digits: int = 2) -> str:
    return "—" if seconds is None else f"{seconds:.{digits}f}"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1000.0
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def fmt_mb(mb: float | None) -> str:
    return "—" if mb is None else f"{mb:.0f}"


class Report:
    """Prints as it goes and keeps the text, to write as Markdown with ``--out``."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.machine = machine_markdown()  # now: the date and load average at the start

    def add(self, text: str = "") -> None:
        print(text, flush=True)
        self.parts.append(text)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.add(md_table(headers, rows))
        self.add()

    def body(self) -> str:
        return "\n".join(self.parts).rstrip() + "\n"

    def write(self, out: str | Path | None, command: str) -> None:
        if not out:
            return
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# {self.title}\n\nMade by `{command}`.\n\n{self.machine}\n\n{self.body()}"
        path.write_text(text)
        print(f"wrote {path}", file=sys.stderr)


# -- the machine ---------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _first_line(cmd: list[str]) -> str:
    if tool(cmd[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def _git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    if not head:
        return "not a git checkout"
    return head + (" with uncommitted changes in src/" if dirty else "")


def machine_info() -> dict[str, str]:
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    info = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": _cpu_model(),
        "cores": f"{cores} logical" + (f" ({usable} usable)" if usable != cores else ""),
        "RAM": _mem_total_gib(),
        "load average at start (1, 5, 15 min)": load,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "convcli": f"{_version('convcli')} (git {_git_state()})",
    }
    for dist in ("numpy", "scipy", "opencv-python-headless", "torch", "pillow", "scikit-image"):
        info[dist] = _version(dist)
    info["libvips"] = _first_line(["vips", "--version"])
    info["ImageMagick"] = _first_line(["convert", "-version"]).removeprefix("Version: ")
    return info


def machine_markdown() -> str:
    rows = [(k, v) for k, v in machine_info().items()]
    return "Machine:\n\n" + md_table(["", ""], rows) + "\n\n" + PRELIMINARY


def add_common_args(parser: object) -> None:
    parser.add_argument(  # type: ignore[attr-defined]
        "--quick", action="store_true", help="a short smoke run (small inputs, one run each)"
    )
    parser.add_argument(  # type: ignore[attr-defined]
        "--out", metavar="PATH", help="also write the results as Markdown to PATH"
    )
