"""dbt-duckdb plugin: registers the scoring UDFs on every connection dbt opens.

profiles.yml::

    propensity:
      outputs:
        duckdb:
          type: duckdb
          plugins:
            - module: scoring.dbt_plugin
              config:
                intra_op_threads: 1   # onnxruntime threads per UDF call
"""

from __future__ import annotations

import logging
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from scoring._core import DEFAULT_INTRA_OP_THREADS
from scoring._errors import PluginConfigError
from scoring._udf import register_udfs

logger = logging.getLogger(__name__)


class Plugin(BasePlugin):
    """Registers ``propensity_load_model`` and ``propensity_score`` (`scoring.register_udfs`)."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        threads = plugin_config.get("intra_op_threads", DEFAULT_INTRA_OP_THREADS)
        try:
            self.intra_op_threads = int(threads)
        except (TypeError, ValueError) as exc:
            raise PluginConfigError(
                f"scoring.dbt_plugin: intra_op_threads must be an integer, got {threads!r}"
            ) from exc
        if self.intra_op_threads < 1:
            raise PluginConfigError("scoring.dbt_plugin: intra_op_threads must be >= 1")

    def configure_connection(self, conn: Any) -> None:
        register_udfs(conn, intra_op_threads=self.intra_op_threads)
