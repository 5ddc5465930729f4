"""Loaders: public datasets into the raw input contract (schema `raw`)."""

from __future__ import annotations

from models_py.loaders._online_retail import (
    DEFAULT_GROUPS_PATH,
    NON_PRODUCT_CODES,
    LoadReport,
    load_online_retail,
    read_online_retail,
)

__all__ = [
    "DEFAULT_GROUPS_PATH",
    "NON_PRODUCT_CODES",
    "LoadReport",
    "load_online_retail",
    "read_online_retail",
]
