"""Serving snapshots: the tables `propensity serve` reads, copied out of the warehouse after each
daily run into their own DuckDB file, and the reader that swaps to the newest one.

Why a copy and not the warehouse itself: DuckDB lets one process write a database file and no
other process open it meanwhile, so a service reading the warehouse would either block
`dbt run` or be blocked by it, and a service reading between two dbt models could see new scores
with yesterday's audiences. A snapshot is written once, beside the warehouse, under a hidden
temporary name; only when it is complete (checkpointed and fsynced) is it renamed to its final
name and is the pointer file ``CURRENT`` replaced (write a temporary file, fsync, ``os.replace``,
fsync the directory). Both renames are atomic, so a reader sees the old snapshot or the new one,
never a part. The reader checks the pointer (one ``stat``) at the start of each request and opens
a new snapshot before it swaps; requests already running finish on the snapshot they started
with (an open file stays readable after it is unlinked, on POSIX systems). docs/serving.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from models_py._errors import PropensityError, WarehouseError
from models_py._settings import Settings
from models_py._warehouse import lock_error, resource_settings

logger = logging.getLogger(__name__)

#: The file naming the snapshot in use; replaced atomically by each publish.
POINTER = "CURRENT"
#: Snapshot files: ``snapshot-<as_of_date>-<published UTC timestamp>.duckdb``.
_SNAPSHOT_NAME = re.compile(r"snapshot-\d{4}-\d{2}-\d{2}-\d{8}T\d{12}\.duckdb")
#: Bumped when the snapshot tables change; a reader refuses another version.
SNAPSHOT_FORMAT = 2
#: Snapshot files kept after a publish (the newest ones): the one in use, and the ones before
#: it that a service may still hold open.
DEFAULT_KEEP = 3

#: Score rows per Arrow batch when a snapshot is loaded into memory.
_LOAD_BATCH_ROWS = 262_144

SCORES = "marts.fct_propensity_scores"
AUDIENCES = "marts.fct_campaign_audiences"
CAMPAIGNS = "marts.dim_campaigns"
REASONS = "marts.fct_score_reasons"


class SnapshotError(PropensityError):
    """A serving snapshot cannot be published or read."""


class SnapshotUnavailableError(SnapshotError):
    """The service has no readable snapshot to answer from (none published, or it vanished)."""


@dataclass(frozen=True)
class SnapshotReport:
    """What `publish_snapshot` wrote."""

    path: Path
    as_of_date: dt.date
    customers: int
    score_rows: int
    groups: tuple[str, ...]
    campaigns: int
    reason_rows: int | None
    removed: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        reasons = (
            "no reasons (marts.fct_score_reasons not built)"
            if self.reason_rows is None
            else f"{self.reason_rows:,} reason rows"
        )
        return (
            f"serving snapshot {self.path.name}: cutoff {self.as_of_date}, {self.customers:,} "
            f"customers x {len(self.groups)} groups ({', '.join(self.groups)}), "
            f"{self.campaigns} campaigns, {reasons}; published in {self.seconds:.1f} s"
        )


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _exists(con, catalog: str, relation: str) -> bool:
    schema, table = relation.split(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [catalog, schema, table],
        ).fetchone()[0]
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_pointer(directory: Path, name: str) -> None:
    tmp = directory / f".{POINTER}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / POINTER)
    with suppress(OSError):  # directories cannot be opened for fsync on every platform
        _fsync(directory)


def _copy_tables(con, as_of: dt.date) -> dict[str, Any]:
    """Create the snapshot's tables from the attached warehouse ``wh``; returns counts.

    Scores and reasons are stored sorted by customer (the service loads them into memory in
    that order), with product groups, features and labels as small integer codes into tables
    of their own: the sort moves 15-23 bytes a row instead of the names, and no index is built
    (the service searches its own arrays). At 10M customers the publish took 49 s instead of
    95 s (docs/benchmarks.md, `scale`).
    """
    from models_py.registry import ml_table

    con.execute(
        "create table score_groups as select cast(row_number() over (order by product_group) "
        "- 1 as smallint) as group_code, product_group, model_id from (select product_group, "
        f"any_value(model_id) as model_id from wh.{SCORES} where as_of_date = ? "
        "group by product_group)",
        [as_of],
    )
    groups = tuple(
        r[0]
        for r in con.execute(
            "select product_group from score_groups order by group_code"
        ).fetchall()
    )
    con.execute(
        "create table scores as select s.customer_id, g.group_code, s.score, "
        f"cast(s.decile as tinyint) as decile from wh.{SCORES} as s "
        "inner join score_groups as g on s.product_group = g.product_group "
        "where s.as_of_date = ? order by s.customer_id, g.group_code",
        [as_of],
    )
    customers, rows = con.execute(
        "select count(distinct customer_id), count(*) from scores"
    ).fetchone()
    con.execute(
        "create table models as select registry.product_group, registry.model_id, "
        "registry.onnx_sha256, registry.onnx_model, registry.feature_names "
        f"from wh.{ml_table('model_registry')} as registry "
        "where registry.model_id in (select model_id from score_groups) "
        "order by registry.product_group"
    )
    if _exists(con, "wh", AUDIENCES):
        con.execute(
            "create table audiences as select campaign_id, customer_id, product_group, score, "
            "decile, score_rank, is_eligible, exclusion_reason, is_holdout, is_selected, "
            f"message_tier from wh.{AUDIENCES} where as_of_date = ? "
            "order by campaign_id, score_rank",
            [as_of],
        )
    else:
        con.execute(
            "create table audiences (campaign_id varchar, customer_id bigint, product_group "
            "varchar, score double, decile integer, score_rank bigint, is_eligible boolean, "
            "exclusion_reason varchar, is_holdout boolean, is_selected boolean, "
            "message_tier varchar)"
        )
    campaigns_source = (
        f"select campaign_id, product_group from wh.{CAMPAIGNS}"
        if _exists(con, "wh", CAMPAIGNS)
        else "select distinct campaign_id, product_group from audiences"
    )
    con.execute(
        "create table campaigns as "
        "select c.campaign_id, c.product_group, "
        "count(a.customer_id) as scored_customers, "
        "count(a.customer_id) filter (where a.is_selected) as selected_customers "
        f"from ({campaigns_source}) as c "
        "left join audiences as a on a.campaign_id = c.campaign_id "
        "group by c.campaign_id, c.product_group order by c.campaign_id"
    )
    reason_rows = None
    if _exists(con, "wh", REASONS):
        # Labels and feature names stored once (a code per reason row): the service holds the
        # reasons in memory.
        for table, code, column in (
            ("reason_labels", "label_code", "feature_label"),
            ("reason_features", "feature_code", "feature_name"),
        ):
            con.execute(
                f"create table {table} as select cast(row_number() over (order by {column}) - 1 "
                f"as integer) as {code}, {column} from (select distinct {column} "
                f"from wh.{REASONS} where as_of_date = ?)",
                [as_of],
            )
        con.execute(
            "create table reasons as select r.customer_id, g.group_code, "
            "cast(r.reason_rank as smallint) as reason_rank, f.feature_code, l.label_code, "
            "r.feature_value, r.contribution "
            f"from wh.{REASONS} as r "
            "inner join score_groups as g on r.product_group = g.product_group "
            "inner join reason_features as f on r.feature_name = f.feature_name "
            "inner join reason_labels as l on r.feature_label = l.feature_label "
            "where r.as_of_date = ? order by r.customer_id, g.group_code, r.reason_rank",
            [as_of],
        )
        reason_rows = con.execute("select count(*) from reasons").fetchone()[0]
    return {
        "groups": groups,
        "customers": customers,
        "rows": rows,
        "campaigns": con.execute("select count(*) from campaigns").fetchone()[0],
        "reason_rows": reason_rows,
    }


def publish_snapshot(
    settings: Settings,
    *,
    keep: int = DEFAULT_KEEP,
    now: dt.datetime | None = None,
) -> SnapshotReport:
    """Copy the serving tables of the latest scoring cutoff into a new snapshot and make it current.

    The warehouse is attached read-only. The new file becomes visible to readers only once
    complete (see the module docstring); on any failure the pointer is left as it was and the
    partial file is removed.

    Parameters
    ----------
    settings : Settings
        The warehouse, and `serving_path`, the directory of the snapshots.
    keep : int
        Snapshot files kept (the newest ones); older ones are deleted.
    now : datetime, optional
        The publication time (UTC), part of the file name.

    Raises
    ------
    WarehouseError
        The warehouse is missing or locked by a writer.
    SnapshotError
        The warehouse holds no scores to serve.
    """
    started = time.perf_counter()
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    warehouse = settings.warehouse
    if not warehouse.is_file():
        raise WarehouseError(
            f"warehouse file {warehouse} does not exist: nothing to publish. Build and score it "
            "first (`propensity build`, `propensity train`, `propensity run daily`)."
        )
    directory = settings.serving_path
    directory.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    tmp = directory / f".publishing-{os.getpid()}-{now:%Y%m%dT%H%M%S%f}.duckdb"
    # Bounded like every connection of a run (PROPENSITY_DUCKDB_MEMORY_LIMIT, temp directory
    # beside the warehouse). DuckDB's threads are its default (every core), as inside a dbt
    # model: `settings.threads` is how many models dbt runs at once, and PROPENSITY_THREADS=1
    # (one model at a time, for memory at 10M customers) made this copy single-threaded: 46 s
    # against 17 s in a daily run at 10M (docs/benchmarks.md, `scale`).
    con = duckdb.connect(str(tmp), config=resource_settings(warehouse))
    try:
        try:
            con.execute(f"attach {_sql_string(str(warehouse))} as wh (read_only)")
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise lock_error(warehouse, str(exc)) from exc
            raise WarehouseError(f"cannot open warehouse {warehouse}: {exc}") from exc
        if not _exists(con, "wh", SCORES):
            raise SnapshotError(
                f"{warehouse} has no {SCORES}: there are no scores to serve. Run `propensity run "
                "daily` (after `propensity train`); it publishes the snapshot itself."
            )
        as_of, scored_at = con.execute(
            f"select max(as_of_date), max(scored_at) from wh.{SCORES} "
            f"where as_of_date = (select max(as_of_date) from wh.{SCORES})"
        ).fetchone()
        if as_of is None:
            raise SnapshotError(
                f"{SCORES} in {warehouse} is empty: there are no scores to serve. Train the "
                "champions (`propensity train`), then run `propensity run daily`."
            )
        counts = _copy_tables(con, as_of)
        last_order = None
        if _exists(con, "wh", "raw.orders"):
            last_order = con.execute(
                "select max(cast(ordered_at as date)) from wh.raw.orders where ordered_at < ?",
                [as_of],
            ).fetchone()[0]
        con.execute(
            "create table snapshot_info as select ? as format_version, ? as as_of_date, "
            "? as scored_at, ? as last_order_date, ? as published_at, ? as customers, "
            "? as product_groups",
            [
                SNAPSHOT_FORMAT,
                as_of,
                scored_at,
                last_order,
                now,
                counts["customers"],
                json.dumps(list(counts["groups"])),
            ],
        )
        con.execute("detach wh")
        con.execute("checkpoint")
        con.close()
        _fsync(tmp)
        name = f"snapshot-{as_of:%Y-%m-%d}-{now:%Y%m%dT%H%M%S%f}.duckdb"
        final = directory / name
        os.replace(tmp, final)
        _write_pointer(directory, name)
    except BaseException:
        con.close()
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with suppress(FileNotFoundError):
                leftover.unlink()
        raise
    removed = _prune(directory, keep=keep, current=name)
    report = SnapshotReport(
        path=final,
        as_of_date=as_of,
        customers=counts["customers"],
        score_rows=counts["rows"],
        groups=counts["groups"],
        campaigns=counts["campaigns"],
        reason_rows=counts["reason_rows"],
        removed=removed,
        seconds=time.perf_counter() - started,
    )
    logger.debug("%s", report.summary())
    return report


def _prune(directory: Path, *, keep: int, current: str) -> tuple[str, ...]:
    """Delete all but the newest `keep` snapshot files (never the current one). A service that
    still has a deleted file open keeps reading it (POSIX) until it swaps to the new one."""
    names = sorted(
        (p.name for p in directory.iterdir() if _SNAPSHOT_NAME.fullmatch(p.name)),
        key=lambda n: n[-27:],  # the publication timestamp
    )
    stale = [n for n in names[:-keep] if n != current]
    removed = []
    for name in stale:
        try:
            (directory / name).unlink()
            removed.append(name)
        except OSError as exc:  # e.g. held open on a platform that forbids it: next time
            logger.warning("could not remove old snapshot %s: %s", name, exc)
    return tuple(removed)


# ------------------------------------------------------------------------------------- reading


class Snapshot:
    """One open, read-only snapshot file. Each thread reads through its own cursor.

    The scores are also held in memory as sorted numpy arrays (about 20 bytes per score row), so
    the per-customer look-up is a binary search, not a query: a DuckDB query costs a few hundred
    microseconds of the 10 ms a look-up may take at p99 (docs/benchmarks.md).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # One thread per query: lookups touch a few rows and requests run in parallel threads.
        self._con = duckdb.connect(
            str(path),
            read_only=True,
            config={"threads": 1, "memory_limit": resource_settings(path)["memory_limit"]},
        )
        try:
            tables = {
                r[0]
                for r in self._con.execute(
                    "select table_name from information_schema.tables"
                ).fetchall()
            }
            if "snapshot_info" not in tables:
                raise SnapshotError(f"{path.name} is not a serving snapshot (no snapshot_info)")
            cols = [c[0] for c in self._con.execute("select * from snapshot_info").description]
            row = self._con.execute("select * from snapshot_info").fetchone()
        except BaseException:
            self._con.close()
            raise
        self.info: dict[str, Any] = dict(zip(cols, row, strict=True))
        if self.info["format_version"] != SNAPSHOT_FORMAT:
            self._con.close()
            raise SnapshotError(
                f"{path.name} has snapshot format {self.info['format_version']}, this version "
                f"reads {SNAPSHOT_FORMAT}: publish it again with this version "
                "(`propensity snapshot`)"
            )
        self.has_reasons = {"reasons", "reason_labels", "reason_features"} <= tables
        self.opened_at = dt.datetime.now(dt.UTC)
        self._local = threading.local()
        self._models: dict[str, Any] = {}
        self._models_lock = threading.Lock()
        self._load_scores()
        if self.has_reasons:
            self._load_reasons()
        self.champions: dict[str, dict[str, Any]] = {
            r[0]: {"product_group": r[0], "model_id": r[1], "onnx_sha256": r[2]}
            for r in self._con.execute(
                "select product_group, model_id, onnx_sha256 from models order by 1"
            ).fetchall()
        }

    def _load_scores(self) -> None:
        import numpy as np

        coded = self._con.execute(
            "select product_group, model_id from score_groups order by group_code"
        ).fetchall()
        self.groups: tuple[str, ...] = tuple(r[0] for r in coded)
        self.models_by_group: dict[str, str] = dict(coded)
        # The table is stored sorted by customer and group; a plain projection keeps that order.
        # Read in Arrow batches copied into arrays sized up front: a swap in the background
        # holds the GIL for one batch at a time, not for the whole table (requests go on).
        total = self._con.execute("select count(*) from scores").fetchall()[0][0]
        ids = np.empty(total, dtype=np.int64)
        self._codes = np.empty(total, dtype=np.int16)
        self._scores = np.empty(total, dtype=np.float64)
        self._deciles = np.empty(total, dtype=np.int8)
        reader = self._con.sql(
            "select customer_id, group_code, score, decile from scores"
        ).to_arrow_reader(_LOAD_BATCH_ROWS)
        at = 0
        for batch in reader:
            n = batch.num_rows
            for target, column in (
                (ids, 0),
                (self._codes, 1),
                (self._scores, 2),
                (self._deciles, 3),
            ):
                target[at : at + n] = batch.column(column).to_numpy(zero_copy_only=False)
            at += n
            time.sleep(0)  # let request threads in between batches
        if ids.size and not bool(np.all(ids[1:] >= ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, self._codes = ids[order], self._codes[order]
            self._scores, self._deciles = self._scores[order], self._deciles[order]
        first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if ids.size else ids
        self._customers = ids[first]
        self._starts = np.r_[first, ids.size].astype(np.int64)

    def _load_reasons(self) -> None:
        """Reasons in memory like the scores: per row a group, a feature and a label code and two
        float32 numbers (15 bytes); the label strings once."""
        import numpy as np

        self._labels = [
            r[0]
            for r in self._con.execute(
                "select feature_label from reason_labels order by label_code"
            ).fetchall()
        ]
        self._features = [
            r[0]
            for r in self._con.execute(
                "select feature_name from reason_features order by feature_code"
            ).fetchall()
        ]
        total = self._con.execute("select count(*) from reasons").fetchall()[0][0]
        ids = np.empty(total, dtype=np.int64)
        arrays = {
            "group": np.empty(total, dtype=np.int16),
            "feature": np.empty(total, dtype=np.int16),
            "label": np.empty(total, dtype=np.int32),
            "value": np.empty(total, dtype=np.float32),
            "contribution": np.empty(total, dtype=np.float32),
        }
        reader = self._con.sql(
            "select customer_id, group_code, cast(feature_code as smallint), label_code, "
            "cast(feature_value as float), cast(contribution as float) from reasons"
        ).to_arrow_reader(_LOAD_BATCH_ROWS)
        at = 0
        for batch in reader:
            n = batch.num_rows
            ids[at : at + n] = batch.column(0).to_numpy(zero_copy_only=False)
            for j, target in enumerate(arrays.values(), start=1):
                target[at : at + n] = batch.column(j).to_numpy(zero_copy_only=False)
            at += n
            time.sleep(0)
        # Stored sorted by customer, group and rank: each customer's reasons are one slice.
        self._reason_starts = np.searchsorted(ids, self._customers, side="left")
        self._reason_ends = np.searchsorted(ids, self._customers, side="right")
        self._reasons = arrays

    def customer_index(self, customer_id: int) -> int | None:
        """The position of a customer among the scored ones, or None."""
        import numpy as np

        if not -(2**63) <= customer_id < 2**63:
            return None
        i = int(np.searchsorted(self._customers, customer_id))
        if i >= self._customers.size or self._customers[i] != customer_id:
            return None
        return i

    def customer_reasons(self, i: int) -> dict[str, list[dict[str, Any]]]:
        """Product group -> the reasons of the customer at position `i`, rank 1 first."""
        rows = slice(int(self._reason_starts[i]), int(self._reason_ends[i]))
        r = self._reasons
        out: dict[str, list[dict[str, Any]]] = {}
        for g, f, label, value, contribution in zip(
            r["group"][rows].tolist(),
            r["feature"][rows].tolist(),
            r["label"][rows].tolist(),
            r["value"][rows].tolist(),
            r["contribution"][rows].tolist(),
            strict=True,
        ):
            reasons = out.setdefault(self.groups[g], [])
            reasons.append(
                {
                    "rank": len(reasons) + 1,
                    "feature": self._features[f],
                    "label": self._labels[label],
                    "value": value,
                    "contribution": contribution,
                }
            )
        return out

    def customer_scores(self, customer_id: int) -> list[tuple[str, str, float, int]]:
        """(product_group, model_id, score, decile) of a customer, by group name; [] when the
        customer has no scores."""
        i = self.customer_index(customer_id)
        if i is None:
            return []
        rows = slice(int(self._starts[i]), int(self._starts[i + 1]))
        out = []
        for code, score, decile in zip(
            self._codes[rows].tolist(),
            self._scores[rows].tolist(),
            self._deciles[rows].tolist(),
            strict=True,
        ):
            group = self.groups[code]
            out.append((group, self.models_by_group[group], score, decile))
        return out

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._con.cursor()
            self._local.cursor = cursor
        return cursor.execute(sql, params or []).fetchall()

    def model(self, product_group: str):
        """The champion of `product_group` as a verified `scoring.ScoringModel` (sha256 checked
        on first use; a failed check is remembered and raised again, the service stays up)."""
        from scoring import ModelIntegrityError, load_model

        with self._models_lock:
            if product_group not in self._models:
                row = self.query(
                    "select model_id, onnx_model, onnx_sha256 from models where product_group = ?",
                    [product_group],
                )[0]
                try:
                    self._models[product_group] = load_model(
                        row[1], row[2], model_id=row[0], register=False
                    )
                except ModelIntegrityError as exc:
                    self._models[product_group] = exc
            found = self._models[product_group]
        if isinstance(found, Exception):
            raise found
        return found

    def model_status(self, product_group: str) -> str:
        found = self._models.get(product_group)
        if found is None:
            return "not loaded yet (verified on first POST /score)"
        return "ok" if not isinstance(found, Exception) else f"error: {found}"


class SnapshotStore:
    """The snapshot in use, swapped atomically when ``CURRENT`` names a new one."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._pointer = self.directory / POINTER
        self._key: tuple | str | None = "unread"
        self._snapshot: Snapshot | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._loading = False

    def _pointer_key(self) -> tuple | None:
        try:
            st = os.stat(self._pointer)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> Snapshot:
        """The newest readable snapshot. A newer one is opened in a background thread while
        requests keep using the one in use (the first one is opened in the caller).

        Raises
        ------
        SnapshotUnavailableError
            No snapshot was ever readable.
        """
        key = self._pointer_key()
        if key != self._key and not self._loading:
            with self._lock:
                if key != self._key and not self._loading:
                    if self._snapshot is None:
                        self._swap(key)
                    else:
                        self._loading = True
                        threading.Thread(
                            target=self._swap_in_background, args=(key,), daemon=True
                        ).start()
        snapshot = self._snapshot
        if snapshot is None:
            raise SnapshotUnavailableError(self.error or "no serving snapshot")
        return snapshot

    def _swap_in_background(self, key: tuple | None) -> None:
        try:
            self._swap(key)
        except Exception as exc:  # never let a loader thread die silently
            self.error = f"cannot open the new snapshot: {exc}"
            logger.exception("snapshot swap failed")
        finally:
            self._loading = False

    def _swap(self, key: tuple | None) -> None:
        self._key = key
        keeping = (
            f"; still serving {self._snapshot.path.name}" if self._snapshot is not None else ""
        )
        if key is None:
            self.error = (
                f"no serving snapshot in {self.directory} (no {POINTER} file): run "
                f"`propensity run daily` or `propensity snapshot`{keeping}"
            )
            return
        try:
            name = self._pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            self._key = "unread"
            return
        if not _SNAPSHOT_NAME.fullmatch(name):
            self.error = f"{POINTER} names {name!r}, which is not a snapshot file name{keeping}"
            return
        path = self.directory / name
        if not path.is_file():
            self.error = (
                f"the current snapshot {name} (named by {POINTER}) has disappeared from "
                f"{self.directory}; publish a new one with `propensity snapshot`{keeping}"
            )
            logger.warning("%s", self.error)
            return
        try:
            snapshot = Snapshot(path)
        except (duckdb.Error, SnapshotError) as exc:
            self.error = f"cannot open the snapshot {name}: {exc}{keeping}"
            logger.warning("%s", self.error)
            return
        self._snapshot = snapshot
        self.error = None
        logger.info("serving snapshot %s (cutoff %s)", name, snapshot.info["as_of_date"])
