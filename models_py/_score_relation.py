"""Score a bring-your-own relation in the warehouse with registered champion models.

The dbt model ``fct_propensity_scores`` scores the project's own feature mart. Tables trained
through a model spec (``datasets.marketing_campaign``, ``datasets.hillstrom``, a user's table)
are scored here, with the same DuckDB functions the dbt plugin registers
(``propensity_load_model`` and ``propensity_score``, see ``scoring._udf``): one SQL statement per
model, no Python loop over rows, and the scores table is replaced in one transaction, so a failed
run leaves the previous scores as they were.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

from models_py._errors import ConfigError
from models_py._settings import Settings
from models_py._warehouse import connect, qualified, quote_ident, transaction
from models_py.registry._evaluation import champion_features, load_models_sql
from models_py.registry._tables import require_ml_tables
from models_py.training._specs import relation_columns, relation_exists
from scoring._types import is_feature_type

logger = logging.getLogger(__name__)

_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    """What `score_relation` wrote: rows per product group (model target) into `out`."""

    relation: str
    out: str
    models: dict[str, str]
    rows: dict[str, int]
    seconds: float

    def summary(self) -> str:
        lines = [f"scored {self.relation} -> {self.out} in {self.seconds:.1f}s"]
        lines += [
            f"  {group:<28} {self.models[group]:<44} {n:>9,} rows" for group, n in self.rows.items()
        ]
        return "\n".join(lines)


def _check_relation(name: str, what: str) -> None:
    if not _RELATION.match(name):
        raise ConfigError(f"{what} must be 'schema.table', got {name!r}")


def score_relation(
    settings: Settings,
    *,
    relation: str,
    product_groups: Sequence[str],
    out: str | None = None,
    id_columns: Sequence[str] = ("customer_id",),
) -> ScoreResult:
    """Score every row of `relation` with the champion of each product group (model target).

    Parameters
    ----------
    settings : Settings
        The warehouse holding the relation and the registry.
    relation : str
        ``schema.table`` whose columns include every feature of the models, by name.
    product_groups : sequence of str
        The registry's product groups (a spec's name, or its group values) whose champions score.
    out : str, optional
        ``schema.table`` written; default ``<relation>_scores``. Replaced in one transaction.
    id_columns : sequence of str
        Columns copied to the scores table to identify a row.

    Returns
    -------
    ScoreResult
        Rows written per product group.

    Raises
    ------
    ConfigError
        Unknown relation or column, a group without a champion, a feature that is missing or not
        numeric. Nothing is written then.
    """
    from scoring._udf import register_udfs

    started = time.perf_counter()
    out = out or f"{relation}_scores"
    _check_relation(relation, "relation")
    _check_relation(out, "out")
    if not product_groups:
        raise ConfigError("name at least one product group (model target) to score with")
    q = quote_ident
    with closing(connect(settings.warehouse, threads=settings.threads)) as con:
        require_ml_tables(con)
        if not relation_exists(con, relation):
            raise ConfigError(f"relation {relation} does not exist in {settings.warehouse}")
        columns = relation_columns(con, relation)
        missing_ids = [c for c in id_columns if c not in columns]
        if missing_ids:
            raise ConfigError(f"id column(s) {', '.join(missing_ids)} are not in {relation}")
        champions = champion_features(con, product_groups)
        for group, (model_id, features) in champions.items():
            missing = [f for f in features if f not in columns]
            bad = [
                f"{f} ({columns[f]})"
                for f in features
                if f in columns and not is_feature_type(columns[f])
            ]
            if missing or bad:
                raise ConfigError(
                    f"{relation} cannot be scored by {model_id} ({group}): "
                    + (f"missing feature column(s) {', '.join(missing)}" if missing else "")
                    + ("; " if missing and bad else "")
                    + (f"non-numeric feature(s) {', '.join(bad)}" if bad else "")
                )
        register_udfs(con, intra_op_threads=settings.threads)
        con.execute(load_models_sql(), [[m for m, _ in champions.values()]]).fetchall()
        schema, table = out.split(".")
        src = qualified(*relation.split("."))
        ids = ", ".join(f"src.{q(c)}" for c in id_columns)
        order_ids = ", ".join(f"{q(c)} asc" for c in id_columns)
        selects = []
        params: list[object] = []
        for group, (model_id, features) in champions.items():
            array = ", ".join(f"cast(src.{q(f)} as float)" for f in features)
            selects.append(
                f"select {ids}, cast(? as varchar) as product_group, "
                f"cast(? as varchar) as model_id, "
                f"cast(propensity_score(?, cast([{array}] as float[{len(features)}])) as double) "
                f"as score from {src} as src"
            )
            params += [group, model_id, model_id]
        scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        sql = f"""
            with scores as (
                {" union all ".join(selects)}
            ),
            final as (
                select
                    *,
                    cast(ntile(10) over (
                        partition by product_group order by score desc, {order_ids}
                    ) as integer) as decile,
                    cast(? as timestamp) as scored_at
                from scores
            )
            select * from final
        """
        con.execute(f"create schema if not exists {q(schema)}")
        with transaction(con):
            con.execute(
                f"create or replace table {qualified(schema, table)} as {sql}",
                [
                    *params,
                    scored_at,
                ],
            )
        rows = dict(
            con.execute(
                f"select product_group, count(*) from {qualified(schema, table)} "
                "group by 1 order by 1"
            ).fetchall()
        )
    return ScoreResult(
        relation=relation,
        out=out,
        models={g: m for g, (m, _) in champions.items()},
        rows={g: rows.get(g, 0) for g in champions},
        seconds=time.perf_counter() - started,
    )
