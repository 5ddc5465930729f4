"""Invoke dbt in-process against the configured warehouse and turn failures into readable errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models_py._errors import DbtRunError, WarehouseError
from models_py._settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class DbtOutcome:
    """What a dbt invocation did: node statuses and, for failing tests, the problems they found."""

    success: bool
    statuses: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for s in self.statuses.values() if s == status)


def _problem_rows(settings: Settings, relation: str | None, limit: int = 5) -> list[str]:
    """Read the `problem` column of a stored test failure table, if any."""
    if not relation:
        return []
    if settings.engine == "spark":
        from models_py.spark import problem_rows

        return problem_rows(settings, relation, limit)
    import duckdb

    from models_py._warehouse import connect

    try:
        con = connect(settings.warehouse, read_only=True)
    except Exception:  # the warehouse may be locked by another run: messages are best effort
        return []
    try:
        # relation_name is "catalog"."schema"."table"; the catalog is this file's database.
        rel = relation.split(".", 1)[-1] if relation.count(".") == 2 else relation
        cols = [r[0] for r in con.execute(f"describe {rel}").fetchall()]
        if "problem" not in cols:
            return []
        return [
            r[0] for r in con.execute(f"select problem from {rel} limit {int(limit)}").fetchall()
        ]
    except duckdb.Error:
        return []
    finally:
        con.close()


_LOCK_MESSAGE = "Could not set lock on file"


def _preflight(settings: Settings, command: Sequence[str]) -> None:
    """Checks that take milliseconds and save a dbt start (seconds) and a page of dbt errors.

    - another process holds the warehouse file: the lock error, naming the process;
    - a full ``build`` (no selection): the raw tables against the raw contract, all problems in
      one message (with a selection the staging models still check their own table).
    """
    from models_py._warehouse import connect
    from models_py.ingest._raw import check_raw_contract

    if not settings.warehouse.exists():
        return
    con = connect(settings.warehouse)
    try:
        selected = any(a in ("-s", "--select", "-m", "--models") for a in command)
        if command[:1] == ["build"] and not selected:
            problems = check_raw_contract(con)
            if problems:
                raise WarehouseError(
                    f"the raw tables of {settings.warehouse} do not match the raw contract "
                    "(README, Input contract): " + "; ".join(problems) + "."
                )
    finally:
        con.close()


def dbt_target_path(settings: Settings) -> Path:
    """dbt's target directory for this warehouse (run_results.json, compiled SQL); its logs are
    beside it. Per warehouse: runs against different warehouses never share state."""
    if settings.engine == "spark":
        return settings.spark_path.parent / ".dbt" / settings.spark_path.name / "target"
    return settings.warehouse.parent / ".dbt" / settings.warehouse.stem / "target"


def run_dbt(
    settings: Settings,
    command: Sequence[str],
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    raise_on_failure: bool = True,
) -> DbtOutcome:
    """Run one dbt command (e.g. ``["build"]``, ``["run", "--select", "marts"]``) in a subprocess.

    On the Spark engine (``settings.engine == 'spark'``) dbt runs in this process instead, in its
    SparkSession with the scoring functions registered (`models_py.spark`). On DuckDB, dbt runs in
    its own process so that it releases the DuckDB file when it ends (dbt-duckdb keeps
    the database open for the life of the process) and so that an interrupted run cannot leave this
    process holding a half-open warehouse.

    Raises
    ------
    WarehouseError
        When another process holds the warehouse file, or (full ``build``) the raw tables do
        not match the raw contract: checked before dbt starts.
    DbtRunError
        When a model errors or a data test fails, with the failing nodes and the problems their
        stored failure rows describe.
    """
    merged_vars = {**settings.dbt_vars, **(dbt_vars or {})}
    target_path = dbt_target_path(settings)
    options = [
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.profiles_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path.parent / "logs"),
        "--threads",
        str(settings.threads),
    ]
    if merged_vars:
        options += ["--vars", json.dumps(merged_vars, default=str)]
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    results_file = target_path / "run_results.json"
    results_file.unlink(missing_ok=True)
    logger.info("dbt %s", " ".join(command))
    if settings.engine == "spark":
        from models_py.spark import run_dbt_in_session

        returncode, output = run_dbt_in_session(settings, [*command, *options])
    else:
        _preflight(settings, command)
        args = [
            sys.executable,
            "-c",
            "import sys; from dbt.cli.main import cli; sys.exit(cli())",
            "--no-use-colors",
            "--log-format",
            "text",
            *command,
            *options,
        ]
        env = {
            **os.environ,
            "PROPENSITY_WAREHOUSE": str(settings.warehouse),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    outcome = DbtOutcome(success=returncode == 0)
    failures: list[str] = []
    results = json.loads(results_file.read_text())["results"] if results_file.exists() else []
    for r in results:
        name = r["unique_id"].split(".")[2]
        status = r["status"]
        outcome.statuses[name] = status
        if status in ("error", "fail", "runtime error"):
            msg = (r.get("message") or "").strip().splitlines()
            if len(msg) > 2 and msg[1].strip() == "Python model failed:":
                # A dbt Python model's message is a traceback: its last line is the error.
                msg = [msg[0], msg[-1]]
            failures.append(f"{name}: " + (" ".join(m.strip() for m in msg[:3]) if msg else status))
            outcome.problems += _problem_rows(settings, r.get("relation_name"))
        elif status == "warn":
            outcome.warnings.append(name)
            outcome.warnings += _problem_rows(settings, r.get("relation_name"))
    if not outcome.success and raise_on_failure:
        if _LOCK_MESSAGE in output:  # another process took the file after the check above
            from models_py._warehouse import lock_error

            line = next(ln for ln in output.splitlines() if _LOCK_MESSAGE in ln)
            raise lock_error(settings.warehouse, line)
        if not failures:  # dbt failed before running nodes: compile or connection error
            tail = [ln for ln in output.splitlines() if ln.strip()]
            failures = tail[-15:] or [f"dbt exited with {returncode}"]
        lines = ["dbt " + " ".join(command) + " failed:"]
        lines += [f"  - {f}" for f in failures[:20]]
        if outcome.problems:
            lines.append("What the failing tests found:")
            lines += [f"  * {p}" for p in outcome.problems[:20]]
        raise DbtRunError("\n".join(lines))
    return outcome
