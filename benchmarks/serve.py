"""Load test of `propensity serve` (issue 19): p99 latency and throughput of the customer lookup
at 1M customers, alone and while a daily run writes the warehouse.

    .venv/bin/python benchmarks/serve.py [--customers 1000000] [--rate 500] [--seconds 20]

1. A real small warehouse (``--source-customers``, default 5,000; cached under ``--workdir``):
   ``propensity generate``, ``dbt run``, ``propensity train`` (one HGB candidate per active
   group) and ``propensity run daily``, which publishes its serving snapshot.
2. The 1M-customer snapshot is built from that one, not by the pipeline (which takes too long at
   1M on this machine): its score rows are replicated in DuckDB (customer ids shifted by the
   largest id per copy), keeping the snapshot's schema, index, models and campaigns. Every
   customer has one row per product group, as the pipeline would write.
3. ``propensity serve`` runs in its own process on loopback; an asyncio client with keep-alive
   connections sends ``GET /customers/{id}/propensity`` for uniformly random ids at a fixed rate
   (open loop: latency is measured from each request's scheduled send time, so a stalled server
   is not hidden by a waiting client). Phases:

   - ``alone``: ``--rate`` requests/s for ``--seconds``;
   - ``daily run writing``: the same (``--writer-seconds``) while ``propensity run daily`` (a new
     day appended, niced) writes a copy of the source warehouse (its own snapshot goes to a
     scratch directory); half-way, a second 1M snapshot built beforehand is published into the
     service's directory as ``publish_snapshot`` ends (rename, then ``CURRENT``) and the service
     swaps to it under load (``around the swap``: the requests from then until 2 s after;
     ``swap excluded``: the phase's other requests);
   - ``saturation``: closed loop, 16 connections, 5 s: the most the service answers per second.

Scheduling (docs/serving.md): ``--serve-rt P`` runs the service under SCHED_RR priority P (as
``chrt --rr P propensity serve``), ``--client-rt P`` the load client (it stands for apps on other
machines), ``--writer-idle`` / ``--writer-threads N`` the daily run under SCHED_IDLE / with N
DuckDB threads; the daily run is niced (``--writer-nice``, 19) in any case.

Bounded: at most rate x seconds requests per phase, and a daily run of at most 300 s. Writes
docs/benchmarks.md section ``serve`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import (  # noqa: E402
    DEFAULT_WORKDIR,
    add_lock_argument,
    bench_lock,
    machine,
    write_section,
)

API_KEY = "benchmark-key-0123456789"
GOAL_P99_MS, GOAL_RATE = 10.0, 500

try:  # the client's own event loop costs less CPU on uvloop (the service's uvicorn uses it too)
    import uvloop

    run_async = uvloop.run
except ImportError:  # pragma: no cover
    run_async = asyncio.run


def prepare_source(work: Path, customers: int) -> Path:
    """The small real warehouse, scored once (cached)."""
    from benchmarks.bench_daily import prepare

    prepare(work, customers, reuse=True)
    return work / "warehouse.duckdb"


def scale_snapshot(source_serving: Path, serving: Path, customers: int) -> dict:
    """A snapshot of `customers` customers from the source's current one (rows replicated)."""
    from models_py.serving._snapshot import POINTER, _fsync, _write_pointer

    small = source_serving / (source_serving / POINTER).read_text().strip()
    serving.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = serving / f".scaling-{os.getpid()}.duckdb"
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp), config={"threads": 2})
    con.execute(f"attach '{small}' as small (read_only)")
    n_small, max_id = con.execute(
        "select count(distinct customer_id), max(customer_id) from small.scores"
    ).fetchone()
    copies = max(1, customers // n_small)
    con.execute(
        "create table scores as select s.customer_id + k.k * ? as customer_id, s.group_code, "
        "s.score, s.decile from small.scores as s, range(?) as k(k) "
        "order by customer_id, group_code",
        [max_id, copies],
    )
    for table in ("score_groups", "models", "audiences", "campaigns"):
        con.execute(f"create table {table} as select * from small.{table}")
    tables = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'small'"
        ).fetchall()
    }
    if "reasons" in tables:
        con.execute(
            "create table reasons as select r.customer_id + k.k * ? as customer_id, "
            "r.group_code, r.reason_rank, r.feature_code, r.label_code, r.feature_value, "
            "r.contribution from small.reasons as r, range(?) as k(k) order by 1, 2, 3",
            [max_id, copies],
        )
        for table in ("reason_labels", "reason_features"):
            con.execute(f"create table {table} as select * from small.{table}")
    con.execute("create table snapshot_info as select * from small.snapshot_info")
    ids = con.execute("select distinct customer_id from scores").fetchnumpy()["customer_id"]
    rows, n = con.execute("select count(*), count(distinct customer_id) from scores").fetchone()
    con.execute("update snapshot_info set customers = ?, published_at = now()::timestamp", [n])
    con.execute("detach small")
    con.execute("checkpoint")
    con.close()
    _fsync(tmp)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() // 1000 % 10**6:06d}"
    name = f"{small.name[:20]}{stamp}.duckdb"  # snapshot-<as_of>- + a new timestamp
    os.replace(tmp, serving / name)
    _write_pointer(serving, name)
    return {
        "rows": rows,
        "customers": n,
        "ids": ids,
        "seconds": time.perf_counter() - started,
        "mb": (serving / name).stat().st_size / 1e6,
        "has_reasons": "reasons" in tables,
    }


class Service:
    def __init__(
        self, warehouse: Path, serving: Path, port: int, *, realtime: int | None = None
    ) -> None:
        env = {**os.environ, "PROPENSITY_API_KEY": API_KEY, "PROPENSITY_SERVING_DIR": str(serving)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "models_py.cli",
                "--warehouse",
                str(warehouse),
                "serve",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if realtime:  # SCHED_RR (chrt --rr): its threads, created later, inherit it
            os.sched_setscheduler(self.process.pid, os.SCHED_RR, os.sched_param(realtime))
        self.port = port
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", headers={"X-API-Key": API_KEY})
                if r.status_code == 200:
                    self.health = r.json()
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the service did not start: {self.process.communicate()}")
            time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


async def _request(reader, writer, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length)
    if status == 200 and not body.startswith(b'{"customer_id"'):
        return 0
    return status


async def open_loop(
    port: int, ids: np.ndarray, rate: float, seconds: float, connections: int = 32, on_half=None
) -> dict:
    """`rate` requests/s for `seconds`; latency from each request's scheduled time."""
    total = int(rate * seconds)
    rng = random.Random(19)
    queue: asyncio.Queue = asyncio.Queue()
    latencies, service, statuses = [], [], {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            scheduled, path = item
            sent = time.perf_counter()
            try:
                status = await _request(reader, writer, path)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                status = type(exc).__name__
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            done = time.perf_counter()
            latencies.append(done - scheduled)
            service.append(done - sent)
            samples.append((scheduled - start, done - scheduled, status))
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    samples: list[tuple[float, float, object]] = []
    start = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    half_done = on_half is None
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if not half_done and i >= total // 2:
            half_done = True  # started, not awaited: requests keep their schedule meanwhile
            publisher = threading.Thread(target=on_half)
            publisher.start()
        queue.put_nowait((due, f"/customers/{int(ids[rng.randrange(len(ids))])}/propensity"))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=seconds + 60)
    elapsed = time.perf_counter() - start
    if on_half is not None:
        publisher.join(timeout=300)
    result = _summary(latencies, service, statuses, elapsed, rate)
    result["samples"] = samples
    return result


async def closed_loop(port: int, ids: np.ndarray, seconds: float, connections: int = 16) -> dict:
    rng = random.Random(20)
    latencies, statuses = [], {}
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            status = await _request(
                reader, writer, f"/customers/{int(ids[rng.randrange(len(ids))])}/propensity"
            )
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return _summary(latencies, latencies, statuses, time.perf_counter() - start, None)


def _summary(latencies, service, statuses, elapsed, rate) -> dict:
    lat = np.array(latencies) * 1000
    svc = np.array(service) * 1000
    return {
        "requests": len(lat),
        "target_rate": rate,
        "throughput": len(lat) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "service_p99_ms": float(np.percentile(svc, 99)),
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def daily_writer(source: Path, work: Path, *, threads: int | None = None) -> subprocess.Popen:
    """`propensity run daily` on a copy of the source with a new day, writing that warehouse;
    its own snapshot goes to a scratch directory (not the service's). `threads`: its
    PROPENSITY_THREADS (DuckDB threads; default: the settings' default)."""
    from benchmarks.bench_daily import append_day

    target = work / "writer.duckdb"
    shutil.copy(source, target)
    con = duckdb.connect(str(target))
    append_day(con)
    con.close()
    env = {**os.environ, "PROPENSITY_SERVING_DIR": str(work / "writer.serving")}
    if threads is not None:
        env["PROPENSITY_THREADS"] = str(threads)
    return subprocess.Popen(
        [sys.executable, "-m", "models_py.cli", "--warehouse", str(target), "run", "daily"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def report(facts: dict, phases: dict) -> str:
    lines = [
        "## Score lookup service (issue 19): `GET /customers/{id}/propensity` at "
        f"{facts['customers']:,} customers",
        "",
        f"Machine: {facts['machine']} (load average {facts['load']} before the run: other "
        "jobs share the cores"
        + (f"; {facts['others']} ran at the same time" if facts.get("others") else "")
        + ").",
        "",
        f"    {facts['command']}",
        "",
        f"The snapshot holds {facts['customers']:,} customers x {facts['groups']} product groups "
        f"({facts['rows']:,} score rows, {facts['mb']:.0f} MB, built in {facts['scale_s']:.0f} s) "
        f"replicated in DuckDB from the snapshot a daily run published for a real "
        f"{facts['source_customers']:,}-customer generated warehouse (the full pipeline at 1M "
        "takes too long here); reasons "
        + ("included." if facts["has_reasons"] else "not included (none in the source)."),
        "Service and load client share the machine's cores (one uvicorn process). Latency is "
        "from each request's scheduled send time (open loop); `service p99` from its actual "
        "send."
        + (
            f" Scheduling: the service under SCHED_RR priority {facts['serve_rt']} (`chrt --rr "
            f"{facts['serve_rt']} propensity serve`, docs/serving.md)"
            if facts.get("serve_rt")
            else " Scheduling: the service at the default policy (SCHED_OTHER, nice 0)"
        )
        + (
            f"; the load client under SCHED_RR {facts['client_rt']} (it stands for apps on "
            "other machines, which do not compete for the service's cores)."
            if facts.get("client_rt")
            else "; the load client at the default policy."
        ),
        "",
        "| phase | requests | target req/s | achieved req/s | p50 ms | p99 ms | max ms | "
        "service p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in phases.items():
        target = f"{r['target_rate']:.0f}" if r["target_rate"] else "closed loop"
        service = "" if np.isnan(r["service_p99_ms"]) else f"{r['service_p99_ms']:.1f}"
        achieved = "" if np.isnan(r["throughput"]) else f"{r['throughput']:.0f}"
        lines.append(
            f"| {name} | {r['requests']:,} | {target} | {achieved} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
            f"{service} | {r['errors']} |"
        )
    writing = phases.get("daily run writing")
    lines += [
        "",
        f"Goal: p99 <= {GOAL_P99_MS:.0f} ms at {GOAL_RATE} req/s, no errors, unchanged "
        "while a daily run writes the warehouse.",
    ]
    if writing:
        swap = facts["swap"]
        served = (
            f"answered from it {swap['served'] - swap['published']:.1f} s later"
            if "served" in swap
            else "had not answered from it by the end"
        )
        lines.append(
            f"During the {facts['phase_s']:.0f} s `daily run writing` phase, `propensity run "
            f"daily` (a new day appended to a copy of the source warehouse, at nice "
            f"{facts['writer_nice']}"
            + (", SCHED_IDLE" if facts.get("writer_idle") else "")
            + (
                f", PROPENSITY_THREADS={facts['writer_threads']}"
                if facts.get("writer_threads")
                else ""
            )
            + f") wrote its warehouse; it ran {facts['writer_s']:.0f} s "
            f"(exit {facts['writer_rc']}). At {swap['published']:.1f} s a new "
            f"{facts['customers']:,}-customer snapshot (built before the phase) was published "
            "into the service's "
            f"directory (rename, then CURRENT replaced) and the service {served}, loading it in "
            "the background; `around the swap` is the requests sent from the publish until 2 s "
            "after."
        )
        if facts["writer_s"] < facts["phase_s"]:
            lines.append(
                f"Note: the daily run ended before the phase did ({facts['writer_s']:.0f} s)."
            )
    return "\n".join(lines)


def _other_benchmarks() -> str:
    """Other benchmark processes running now (named in the report: they share the cores)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    names = sorted(
        {
            Path(word).name
            for line in out.splitlines()
            if str(os.getpid()) != line.split(maxsplit=1)[0]
            for word in line.split()[1:3]
            if word.startswith("benchmarks/") and not word.endswith("serve.py")
        }
    )
    return ", ".join(f"`benchmarks/{n}`" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--source-customers", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=GOAL_RATE)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--writer-seconds",
        type=float,
        default=30,
        help="length of the phase with the daily run writing (default 30)",
    )
    parser.add_argument(
        "--writer-nice",
        type=int,
        default=19,
        help="niceness of the concurrent daily run and publish (default 19)",
    )
    parser.add_argument(
        "--writer-threads",
        type=int,
        default=None,
        help="PROPENSITY_THREADS of the concurrent daily run (default: its settings' default)",
    )
    parser.add_argument(
        "--writer-idle",
        action="store_true",
        help="run the concurrent daily run under SCHED_IDLE (chrt --idle 0)",
    )
    parser.add_argument(
        "--serve-rt",
        type=int,
        default=None,
        metavar="PRIORITY",
        help="run the service under SCHED_RR at this priority (chrt --rr PRIORITY)",
    )
    parser.add_argument(
        "--client-rt",
        type=int,
        default=None,
        metavar="PRIORITY",
        help="run the load client under SCHED_RR at this priority",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "serve")
    parser.add_argument("--port", type=int, default=8719)
    parser.add_argument("--no-write", action="store_true")
    add_lock_argument(parser)
    args = parser.parse_args()
    with bench_lock(args.lock):
        run(args)


def run(args) -> None:
    load = os.getloadavg()
    source = prepare_source(args.workdir / f"c{args.source_customers}", args.source_customers)
    source_serving = source.with_suffix(".serving")
    serving = args.workdir / "serving"
    shutil.rmtree(serving, ignore_errors=True)
    scaled = scale_snapshot(source_serving, serving, args.customers)
    print(
        f"snapshot: {scaled['customers']:,} customers, {scaled['rows']:,} rows in "
        f"{scaled['seconds']:.0f} s",
        flush=True,
    )
    ids = scaled["ids"]
    if args.client_rt:  # the load client stands for apps on other machines: not starved here
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(args.client_rt))
    service = Service(source, serving, args.port, realtime=args.serve_rt)
    phases: dict = {}
    facts = {
        "customers": scaled["customers"],
        "rows": scaled["rows"],
        "mb": scaled["mb"],
        "scale_s": scaled["seconds"],
        "has_reasons": scaled["has_reasons"],
        "groups": len(service.health["models"]),
        "source_customers": args.source_customers,
        "machine": machine(),
        "load": " / ".join(f"{x:.1f}" for x in load),
        "command": ".venv/bin/python benchmarks/serve.py"
        + (f" --customers {args.customers}" if args.customers != 1_000_000 else "")
        + (f" --rate {args.rate:g}" if args.rate != GOAL_RATE else "")
        + (f" --seconds {args.seconds:g}" if args.seconds != 20 else "")
        + (f" --writer-threads {args.writer_threads}" if args.writer_threads else "")
        + (" --writer-idle" if args.writer_idle else "")
        + (f" --serve-rt {args.serve_rt}" if args.serve_rt else "")
        + (f" --client-rt {args.client_rt}" if args.client_rt else ""),
        "writer_nice": args.writer_nice,
        "writer_idle": args.writer_idle,
        "serve_rt": args.serve_rt,
        "client_rt": args.client_rt,
        "writer_threads": args.writer_threads,
        "others": _other_benchmarks(),
    }
    try:
        run_async(open_loop(args.port, ids, args.rate, 2))  # warm-up (its result is dropped)
        phases["alone"] = run_async(open_loop(args.port, ids, args.rate, args.seconds))
        phases["alone"].pop("samples")
        print("alone:", json.dumps(phases["alone"]), flush=True)
        # The next snapshot is built before the phase (its cost belongs to a daily run, which
        # runs meanwhile); half-way through the phase it is published the way publish_snapshot
        # ends: renamed into the service's directory, then CURRENT replaced.
        staging = args.workdir / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        scale_snapshot(source_serving, staging, args.customers)
        name = (staging / "CURRENT").read_text().strip()
        writer = daily_writer(source, args.workdir, threads=args.writer_threads)
        # SCHED_IDLE runs only when no other task wants the core; SCHED_OTHER otherwise (a
        # real-time load client must not pass its policy on to the daily run it starts).
        policy = os.SCHED_IDLE if args.writer_idle else os.SCHED_OTHER
        os.sched_setscheduler(writer.pid, policy, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, writer.pid, args.writer_nice)
        started = time.perf_counter()
        ended: list[float] = []
        waiter = threading.Thread(
            target=lambda: (writer.wait(), ended.append(time.perf_counter() - started))
        )
        waiter.start()
        swap: dict[str, float] = {}

        def publish() -> None:
            from models_py.serving._snapshot import _write_pointer

            swap["published"] = time.perf_counter() - started
            os.replace(staging / name, serving / name)
            _write_pointer(serving, name)
            with httpx.Client(headers={"X-API-Key": API_KEY}) as client:
                while time.perf_counter() - started < 300:
                    health = client.get(f"http://127.0.0.1:{args.port}/health").json()
                    if health["snapshot"] == name:
                        swap["served"] = time.perf_counter() - started
                        return
                    time.sleep(0.05)

        writing = run_async(
            open_loop(args.port, ids, args.rate, args.writer_seconds, on_half=publish)
        )
        samples = writing.pop("samples")
        phases["daily run writing"] = writing
        # The requests sent from the publish until 2 s after the service answered from it.
        window = [
            (lat, status)
            for t, lat, status in samples
            if swap["published"] <= t <= swap.get("served", swap["published"]) + 2
        ]
        if window:
            lat = np.array([w[0] for w in window]) * 1000
            phases["around the swap"] = {
                "requests": len(window),
                "target_rate": args.rate,
                "throughput": len(window)
                / max(swap.get("served", swap["published"]) + 2 - swap["published"], 1e-9),
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "max_ms": float(lat.max()),
                "service_p99_ms": float("nan"),
                "errors": sum(1 for w in window if w[1] != 200),
            }
        outside = [
            lat
            for t, lat, _ in samples
            if not swap["published"] <= t <= swap.get("served", swap["published"]) + 2
        ]
        if outside:
            lat = np.array(outside) * 1000
            phases["daily run writing, swap excluded"] = {
                "requests": len(outside),
                "target_rate": args.rate,
                "throughput": float("nan"),
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "max_ms": float(lat.max()),
                "service_p99_ms": float("nan"),
                "errors": 0,
            }
        waiter.join(timeout=600)
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        facts["writer_s"] = ended[0] if ended else float("nan")
        facts["phase_s"] = args.writer_seconds
        facts["writer_rc"] = writer.returncode
        facts["swap"] = swap
        print("daily run writing:", json.dumps(writing), "swap:", swap, flush=True)
        facts["final_snapshot"] = httpx.get(
            f"http://127.0.0.1:{args.port}/health", headers={"X-API-Key": API_KEY}
        ).json()["snapshot"]
        phases["saturation"] = run_async(closed_loop(args.port, ids, 5))
        print("saturation:", json.dumps(phases["saturation"]), flush=True)
    finally:
        service.stop()
    text = report(facts, phases)
    print(text)
    if not args.no_write:
        write_section("serve", text)


if __name__ == "__main__":
    main()
