"""The named errors of experiments: each says what is wrong, where, how many, and what to do."""

from __future__ import annotations

from models_py._errors import ConfigError, InputDataError, PropensityError


class UnknownArmError(ConfigError):
    """An arm that is not one of the experiment's: a control arm missing from `arms`, an arm in
    the data that experiments.yml does not declare, or ``--control`` naming no arm."""


class SharesError(ConfigError):
    """Arm shares that do not sum to 1 (or cannot be drawn with the 10,000 hash buckets)."""


class ExperimentChangedError(ConfigError):
    """experiments.yml changes how an experiment that already has assignments draws its arms
    (salt, arms, shares, control, audience): re-running it would move customers."""


class EmptyAudienceError(InputDataError):
    """The audience of an experiment (or of a design) holds no customer."""


class OverlappingExperimentsError(InputDataError):
    """Customers of the audience are in another experiment whose outcome window overlaps."""


class UnknownExperimentError(InputDataError):
    """No experiment with that id in the warehouse's assignments or results."""


class ExperimentRunningError(PropensityError):
    """A final analysis was asked for before the experiment's outcome window closed."""
