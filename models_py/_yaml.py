"""Reading the YAML configuration files (product groups, campaigns, model specs)."""

from __future__ import annotations

from pathlib import Path

import yaml

from models_py._errors import ConfigError


def read_yaml_file(path: Path | str, *, what: str) -> object:
    """Parse `path`; a missing, unreadable or malformed file is a `ConfigError` naming `what`."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist") from exc
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from exc
