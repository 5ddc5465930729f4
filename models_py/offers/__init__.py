"""Offers: which arm of an uplift model set each customer gets (offers.yml, docs/uplift.md)."""

from models_py.offers._config import OfferSchema, read_offers, set_offers

__all__ = ["OfferSchema", "read_offers", "set_offers"]
