"""Write one benchmark's results into its own section of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import resource
import subprocess
import tempfile
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every section below is written by a script in `benchmarks/`; the command that reproduces it is
given with the figures. Goals come from the issues; figures are measured, never edited by hand.
"""


def cpu_model() -> str:
    """The CPU's model name (e.g. 'AMD EPYC')."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_size() -> str:
    """Cores, memory and Python version: the machine without its CPU model and commit."""
    try:
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem = f"{mem_kb / 1024**2:.0f} GB RAM"
    except (OSError, StopIteration):
        mem = "unknown RAM"
    return f"{os.cpu_count()} cores, {mem}, Python {platform.python_version()}"


def machine() -> str:
    """One line describing the machine the figures were measured on."""
    return f"{cpu_model()}, {machine_size()}, commit {commit()}"


def commit() -> str:
    """The short hash of the checked-out commit ('?' outside a git checkout)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        rev = ""
    return rev or "?"


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM, reset at exec) or of its largest waited-for
    child (dbt), in MB."""
    own_kb = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own_kb, children_kb) / 1024


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children (dbt runs in one)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `name` of docs/benchmarks.md with `body`."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.write_text(text)


#: Where benchmarks keep cached warehouses and take their lock unless told otherwise: the system
#: temporary directory, so the commands in docs/benchmarks.md run on any machine.
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "propensity-bench"
DEFAULT_LOCK = DEFAULT_WORKDIR / "bench.lock"


def add_lock_argument(parser) -> None:
    """`--lock PATH`: benchmarks holding the same lock file run one at a time (default shared)."""
    parser.add_argument(
        "--lock",
        type=Path,
        default=DEFAULT_LOCK,
        help=f"lock file serialising benchmark runs on this machine (default: {DEFAULT_LOCK})",
    )


@contextlib.contextmanager
def bench_lock(path: Path | str):
    """Hold an exclusive lock on `path` for the duration (waits, printing once, while held)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for the benchmark lock {path} (another benchmark is running)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def span_seconds(nodes: list[dict]) -> float:
    """Wall time from the first dbt node's start to the last one's end (run_results.json
    "results"): the SQL without dbt's start-up. With 2 threads dbt runs independent models at once,
    so the sum of their execution times counts the shared seconds twice; the span is what the
    user waits for once dbt has started."""
    from datetime import datetime

    def at(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.rstrip("Z"))

    stamps = [
        (at(t["started_at"]), at(t["completed_at"]))
        for r in nodes
        for t in r.get("timing", [])
        if t.get("started_at") and t.get("completed_at")
    ]
    if not stamps:
        return float("nan")
    return (max(e for _, e in stamps) - min(s for s, _ in stamps)).total_seconds()
