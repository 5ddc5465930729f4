"""The feature catalogue: every feature's name, family, window, type, fill value and description.

Its one home is the dbt properties file of the feature marts,
``dbt_project/models/features/_features__models.yml``: the feature columns of
``fct_customer_features`` and ``fct_customer_group_features`` carry a ``data_type``, a
``description`` and ``config.meta`` (``family``, ``window``, ``fill``); the training and scoring
marts reuse those entries by YAML anchor, and dbt's contracts check the SQL against them. This
module reads that file, gives the model feature list in contract order, and writes the tables of
``docs/features.md`` (``python -m models_py.catalogue --write-docs docs/features.md``).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["Feature", "catalogue_path", "load_catalogue", "render_docs", "windows"]

#: The feature marts whose columns are the catalogue, and the grain each feature has there.
_CATALOGUE_MODELS = {
    "fct_customer_features": "customer",
    "fct_customer_group_features": "customer_group",
}
_DOCS_BLOCK = re.compile(
    r"(<!-- catalogue: (?P<model>\w+) -->\n)(?P<table>.*?)(<!-- /catalogue -->)", re.DOTALL
)
_WINDOW_DAYS = re.compile(r"^\[T-(\d+)d, T\)$")


@dataclass(frozen=True)
class Feature:
    """One feature column of the catalogue."""

    name: str
    family: str
    window: str
    data_type: str
    fill: str
    description: str
    grain: str

    @property
    def window_days(self) -> int | None:
        """Length of the window in days, or None for all history and customer attributes."""
        match = _WINDOW_DAYS.match(self.window)
        return int(match.group(1)) if match else None


def catalogue_path(dbt_project_dir: Path | None = None) -> Path:
    """The properties file holding the catalogue (by default in the dbt project `propensity` runs:
    the checkout's, or the copy an installed wheel ships)."""
    from models_py._settings import DBT_PROJECT_DIR

    project = dbt_project_dir or DBT_PROJECT_DIR
    return project / "models" / "features" / "_features__models.yml"


def load_catalogue(path: Path | None = None) -> tuple[Feature, ...]:
    """Every feature in contract order: customer features, then per product-group features.

    Raises
    ------
    ValueError
        When a feature column lacks ``data_type``, ``description`` or one of the meta keys.
    """
    path = path or catalogue_path()
    models = {m["name"]: m for m in yaml.safe_load(path.read_text())["models"]}
    features = []
    for model, grain in _CATALOGUE_MODELS.items():
        for column in models[model]["columns"]:
            meta = (column.get("config") or {}).get("meta") or {}
            if not meta:
                continue  # keys, and rfm_segment (the name of rfm_segment_code)
            missing = [k for k in ("family", "window", "fill") if meta.get(k) in (None, "")] + [
                k for k in ("data_type", "description") if not column.get(k)
            ]
            if missing:
                raise ValueError(
                    f"feature {column['name']} of {model} in {path} lacks {', '.join(missing)}: "
                    "give every catalogue column a data_type, a description and "
                    "config.meta {family, window, fill}."
                )
            features.append(
                Feature(
                    name=column["name"],
                    family=str(meta["family"]),
                    window=str(meta["window"]),
                    data_type=str(column["data_type"]),
                    fill=str(meta["fill"]),
                    description=str(column["description"]).strip(),
                    grain=grain,
                )
            )
    return tuple(features)


def windows(features: tuple[Feature, ...], family: str) -> tuple[int, ...]:
    """The window lengths (days) of a feature family, shortest first."""
    return tuple(sorted({f.window_days for f in features if f.family == family and f.window_days}))


def _docs_table(features: tuple[Feature, ...], grain: str) -> str:
    lines = [
        "| column | family | type | window | fill value | definition |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{f.name}` | {f.family} | {f.data_type} | {f.window} | {f.fill} | {f.description} |"
        for f in features
        if f.grain == grain
    ]
    return "\n".join(lines) + "\n"


def render_docs(text: str, features: tuple[Feature, ...]) -> str:
    """``text`` (docs/features.md) with each ``<!-- catalogue: MODEL -->`` block regenerated."""

    def table(match: re.Match) -> str:
        grain = _CATALOGUE_MODELS[match.group("model")]
        return match.group(1) + _docs_table(features, grain) + match.group(4)

    return _DOCS_BLOCK.sub(table, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", type=Path, metavar="FEATURES_MD", required=True)
    args = parser.parse_args(argv)
    text = args.write_docs.read_text()
    args.write_docs.write_text(render_docs(text, load_catalogue()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
