"""Building module configurations in tests."""

from __future__ import annotations

import json
from pathlib import Path

from pymesos_modules.config import ModulesConfig, parse_config


def config_for(*entries: tuple[Path | str, list]) -> ModulesConfig:
    """A ModulesConfig with one library entry per (file, modules) pair."""
    libraries = [{"file": str(path), "modules": modules} for path, modules in entries]
    return parse_config(json.dumps({"libraries": libraries}))
