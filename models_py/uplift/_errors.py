"""Named errors of the uplift package (subclasses of the project's errors, so the CLI prints
their message instead of a traceback)."""

from __future__ import annotations

from models_py._errors import ConfigError, InputDataError


class UpliftInputError(InputDataError):
    """Arrays given to an uplift learner or metric cannot be used as they are."""


class LengthMismatchError(UpliftInputError):
    """Features, arms, outcomes or scores have different numbers of rows."""


class MissingValuesError(UpliftInputError):
    """A feature, outcome or score holds NaN (the project imputes in SQL, before training)."""


class ArmError(UpliftInputError):
    """An arm is missing, unknown, too small, or has a constant binary outcome."""


class UpliftConfigError(ConfigError):
    """An estimator or option the uplift learners refuse (its ONNX export cannot be trusted, or
    the name is unknown)."""
