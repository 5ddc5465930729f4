"""Loaders: public datasets into the warehouse (the raw input contract, or schema `datasets` for
customer-level tables without a transaction log)."""

from __future__ import annotations

from models_py.ingest.loaders._hillstrom import HillstromReport, load_hillstrom
from models_py.ingest.loaders._marketing_campaign import (
    MarketingCampaignReport,
    clean_marketing_campaign,
    load_marketing_campaign,
)
from models_py.ingest.loaders._online_retail import (
    DEFAULT_GROUPS_PATH,
    NON_PRODUCT_CODES,
    LoadReport,
    load_online_retail,
    read_online_retail,
)

__all__ = [
    "DEFAULT_GROUPS_PATH",
    "NON_PRODUCT_CODES",
    "HillstromReport",
    "LoadReport",
    "MarketingCampaignReport",
    "clean_marketing_campaign",
    "load_hillstrom",
    "load_marketing_campaign",
    "load_online_retail",
    "read_online_retail",
]
