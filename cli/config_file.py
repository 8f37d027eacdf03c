"""Finding and reading `temporal-dev.yaml` (the models and their validation:
coordinator/settings.py)."""

from __future__ import annotations

import os
from pathlib import Path

from coordinator.settings import ConfigError, DevServerConfig, parse_config

CONFIG_FILE_NAME = "temporal-dev.yaml"
PROJECT_CONFIG = Path(__file__).resolve().parents[1] / CONFIG_FILE_NAME


def find_config(start: Path | None = None) -> Path | None:
    """`$COORD_CONFIG`, else the nearest temporal-dev.yaml up from `start` (default: the
    working directory), else the project's own copy, else None."""
    if env := os.environ.get("COORD_CONFIG"):
        return Path(env).expanduser().absolute()
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (candidate := folder / CONFIG_FILE_NAME).is_file():
            return candidate
    return PROJECT_CONFIG if PROJECT_CONFIG.is_file() else None


def load_config(path: Path | None = None) -> DevServerConfig:
    """Load and validate temporal-dev.yaml (found with `find_config` when `path` is None);
    the built-in defaults when there is none. Raises ConfigError naming file, line and key."""
    if path is None:
        path = find_config()
        if path is None:
            return DevServerConfig.defaults(Path.cwd())
    path = path.expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_config(text, path)
