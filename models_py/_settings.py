"""One typed settings object. Library code receives it; only the CLI reads the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from models_py._errors import ConfigError

ENV_PREFIX = "PROPENSITY_"
#: Engines dbt can build on (profiles.yml targets of the same names).
ENGINES = ("duckdb", "spark")
DEFAULT_WAREHOUSE = Path("warehouse/propensity.duckdb")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Where `dbt_project/` and `profiles.yml` are: the repository's own files in a checkout (or an
#: editable install); in an installed wheel, the copies it ships under models_py/_bundle (setup.py).
DBT_HOME = (
    PROJECT_ROOT
    if (PROJECT_ROOT / "dbt_project" / "dbt_project.yml").is_file()
    else PROJECT_ROOT / "models_py" / "_bundle"
)
DBT_PROJECT_DIR = DBT_HOME / "dbt_project"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the warehouse is and how dbt is invoked.

    Parameters
    ----------
    warehouse : Path
        DuckDB file holding the `raw` schema and every table the project builds.
    dbt_project_dir, profiles_dir : Path
        The dbt project and the directory holding `profiles.yml`.
    threads : int
        dbt's threads (models run at once), training's parallel fits and the DuckDB threads of
        the package's own connections for training and `propensity score`; the serving snapshot
        and dbt's models use DuckDB's default (every core).
    dbt_vars : Mapping
        Extra dbt vars (cutoffs, horizon, ...) passed to every dbt invocation.
    serving_dir : Path, optional
        Where the daily run publishes the read-only serving snapshots that `propensity serve`
        reads (docs/serving.md); default `serving_path`, beside the warehouse file.
    engine : {'duckdb', 'spark'}
        Where dbt builds the tables: the DuckDB file (default) or Spark tables (profile target
        `spark`, docs/spark.md).
    spark_dir : Path, optional
        Spark's local warehouse directory (Parquet tables and the Derby metastore) when no
        cluster is given; default `spark_path`, beside the warehouse file.
    spark_master : str
        Spark master URL of the local session (``local[2]``).
    spark_driver_memory : str
        JVM heap of a local session (``4g``); a cluster sets its own.
    """

    warehouse: Path = DEFAULT_WAREHOUSE
    dbt_project_dir: Path = DBT_PROJECT_DIR
    profiles_dir: Path = DBT_HOME
    threads: int = 2
    dbt_vars: Mapping[str, object] = field(default_factory=dict)
    serving_dir: Path | None = None
    engine: str = "duckdb"
    spark_dir: Path | None = None
    spark_master: str = "local[2]"
    spark_driver_memory: str = "4g"

    @property
    def spark_path(self) -> Path:
        """Spark's local warehouse directory: `spark_dir`, or ``<warehouse stem>.spark`` beside
        the warehouse file (warehouse/propensity.duckdb -> warehouse/propensity.spark)."""
        if self.spark_dir is not None:
            return Path(self.spark_dir).expanduser().resolve()
        return self.warehouse.with_suffix(".spark")

    @property
    def serving_path(self) -> Path:
        """The serving snapshot directory: `serving_dir`, or ``<warehouse stem>.serving`` beside
        the warehouse file (warehouse/propensity.duckdb -> warehouse/propensity.serving)."""
        if self.serving_dir is not None:
            return Path(self.serving_dir).expanduser().resolve()
        return self.warehouse.with_suffix(".serving")

    def __post_init__(self) -> None:
        object.__setattr__(self, "warehouse", Path(self.warehouse).expanduser().resolve())
        if self.warehouse.exists() and self.warehouse.is_dir():
            raise ConfigError(
                f"PROPENSITY_WAREHOUSE points at a directory ({self.warehouse}); "
                "it must be a DuckDB file path such as warehouse/propensity.duckdb"
            )
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.engine not in ENGINES:
            raise ConfigError(
                f"engine must be one of {', '.join(ENGINES)} (PROPENSITY_ENGINE or --engine), "
                f"got {self.engine!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from `PROPENSITY_*` variables; keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get(ENV_PREFIX + "WAREHOUSE"):
            values["warehouse"] = Path(env[ENV_PREFIX + "WAREHOUSE"])
        if env.get(ENV_PREFIX + "THREADS"):
            try:
                values["threads"] = int(env[ENV_PREFIX + "THREADS"])
            except ValueError as exc:
                raise ConfigError(
                    f"PROPENSITY_THREADS must be an integer, got {env[ENV_PREFIX + 'THREADS']!r}"
                ) from exc
        if env.get(ENV_PREFIX + "SERVING_DIR"):
            values["serving_dir"] = Path(env[ENV_PREFIX + "SERVING_DIR"])
        if env.get(ENV_PREFIX + "ENGINE"):
            values["engine"] = env[ENV_PREFIX + "ENGINE"].strip().lower()
        if env.get(ENV_PREFIX + "SPARK_DIR"):
            values["spark_dir"] = Path(env[ENV_PREFIX + "SPARK_DIR"])
        if env.get(ENV_PREFIX + "SPARK_MASTER"):
            values["spark_master"] = env[ENV_PREFIX + "SPARK_MASTER"].strip()
        if env.get(ENV_PREFIX + "SPARK_DRIVER_MEMORY"):
            values["spark_driver_memory"] = env[ENV_PREFIX + "SPARK_DRIVER_MEMORY"].strip()
        limit = env.get(ENV_PREFIX + "DUCKDB_MEMORY_LIMIT")
        if limit is not None and not _MEMORY.fullmatch(limit.strip()):
            # profiles.yml passes it to DuckDB; checked here so dbt never starts with it.
            raise ConfigError(
                f"PROPENSITY_DUCKDB_MEMORY_LIMIT must be an amount of memory such as 3GB, "
                f"512MB or 50%, got {limit!r}"
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


#: What DuckDB's memory_limit accepts (an amount with a unit, or a share of RAM).
_MEMORY = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B|%)", re.IGNORECASE)
