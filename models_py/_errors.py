"""Named errors. Every failure a user can cause maps to one of these (or to one of `scoring`'s
named errors, see `is_known_error`); the CLI prints the message."""

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


def is_known_error(exc: BaseException) -> bool:
    """True for the named errors of `models_py` and of `scoring` (`scoring.ScoringError`): the
    CLI prints their message instead of a traceback. `scoring` imports nothing from here, so its
    errors have their own base class."""
    if isinstance(exc, PropensityError):
        return True
    from scoring._errors import ScoringError  # imported only when something failed

    return isinstance(exc, ScoringError)
