"""Named errors. Every failure a user can cause maps to one of these; the CLI prints the message."""

from __future__ import annotations


class PropensityError(Exception):
    """Base class: a known failure with a message meant for people."""

    exit_code = 1


class ConfigError(PropensityError):
    """Invalid configuration (settings, product-group rules, model specs, dbt vars)."""


class WarehouseError(PropensityError):
    """The warehouse file cannot be opened, is locked, or misses a required table or column."""


class InputDataError(PropensityError):
    """Input data violates the raw contract in a way that cannot be cleaned by a documented rule."""


class DbtRunError(PropensityError):
    """A dbt invocation failed (model error or failing data test)."""
