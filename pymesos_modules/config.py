"""Mesos-style module configuration: ``--modules`` and ``--modules_dir``.

The format is Mesos' (docs/modules.md)::

    {"libraries": [
       {"file": "/abs/libfoo.so",
        "modules": [{"name": "org_example_Foo",
                     "parameters": [{"key": "k", "value": "v"},
                                    {"key": "t", "value": "...", "secret": true}]}]},
       {"name": "bar", "modules": ["org_example_Bar"]},
       {"python": "my_pkg.policies:FirstFit", "modules": ["my_first_fit"]}]}

``--modules`` takes inline JSON, a path, or a ``file://`` path; ``--modules_dir``
reads every ``*.json`` in a folder in alphabetical order; only one of the two may
be given.  A library names its file by ``file`` (bare name, relative or absolute
path) or ``name`` (expands to ``lib<name>.so``); ``file`` wins when both are
given.  ``python`` (our extension) names a factory implementing a kind's
Protocol in Python.  A relative ``file`` is resolved against the folder of the
manifest it came from (the working directory for inline JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymesos_modules.errors import ConfigError, ConfigSchemaError, ConfigSyntaxError
from pymesos_modules.names import name_problem, shown


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """One module entry of a library: its name and parameters."""

    name: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    #: Keys of parameters marked ``"secret": true``: never shown (pymesos_modules/redact.py).
    secret_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class LibrarySpec:
    """One ``libraries[]`` entry; exactly one of file/name/python says where it is."""

    modules: tuple[ModuleSpec, ...]
    file: str | None = None
    name: str | None = None
    python: str | None = None
    #: Where this entry came from ("--modules" or a manifest path), for messages.
    source: str = "--modules"
    #: Folder a relative ``file`` is resolved against.
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def label(self) -> str:
        """How messages refer to this library."""
        return self.file or (f"lib{self.name}.so" if self.name else f"python:{self.python}")


@dataclass(frozen=True, slots=True)
class ModulesConfig:
    """A whole configuration: every library entry, in order."""

    libraries: tuple[LibrarySpec, ...] = ()

    def module_names(self) -> list[str]:
        """Every module name the configuration asks for, in order."""
        return [m.name for lib in self.libraries for m in lib.modules]


def _require(condition: bool, source: str, path: str, message: str) -> None:
    if not condition:
        raise ConfigSchemaError(f"{source}: {path}: {message}")


def _check_name(name: str, source: str, path: str) -> None:
    """Refuse a module name a descriptor could not have (shown escaped, never raw)."""
    problem = name_problem(name)
    _require(problem is None, source, path, f"module name {shown(name)} is refused: {problem}")


def _parse_module(entry: Any, source: str, path: str) -> ModuleSpec:
    if isinstance(entry, str):
        _require(bool(entry), source, path, "module name must not be empty")
        _check_name(entry, source, path)
        return ModuleSpec(entry)
    _require(isinstance(entry, dict), source, path, "must be an object or a module name string")
    unknown = set(entry) - {"name", "parameters"}
    _require(not unknown, source, path, f"unknown field(s) {sorted(unknown)}")
    name = entry.get("name")
    _require(
        isinstance(name, str) and bool(name), source, f"{path}.name", "must be a non-empty string"
    )
    _check_name(name, source, f"{path}.name")
    raw = entry.get("parameters", [])
    _require(isinstance(raw, list), source, f"{path}.parameters", "must be a list")
    parameters: dict[str, str] = {}
    secret_keys: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{path}.parameters[{i}]"
        _require(isinstance(item, dict), source, where, "must be an object with key and value")
        unknown = set(item) - {"key", "value", "secret"}
        _require(not unknown, source, where, f"unknown field(s) {sorted(unknown)}")
        key, value = item.get("key"), item.get("value", "")
        _require(isinstance(key, str) and bool(key), source, f"{where}.key", "must be a string")
        _require(isinstance(value, str), source, f"{where}.value", "must be a string")
        # A repeated key would silently lose one value; say so instead.
        _require(key not in parameters, source, f"{where}.key", f"duplicate key '{key}'")
        secret = item.get("secret", False)
        _require(isinstance(secret, bool), source, f"{where}.secret", "must be true or false")
        if secret:
            secret_keys.add(key)
        parameters[key] = value
    return ModuleSpec(name, parameters, frozenset(secret_keys))


def parse_config(
    text: str, source: str = "--modules", base_dir: Path | None = None
) -> ModulesConfig:
    """Parse one JSON manifest; errors name ``source`` and the field path."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigSyntaxError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    _require(
        isinstance(document, dict), source, "top level", 'must be an object {"libraries": ...}'
    )
    unknown = set(document) - {"libraries"}
    _require(not unknown, source, "top level", f"unknown field(s) {sorted(unknown)}")
    libraries = document.get("libraries", [])
    _require(isinstance(libraries, list), source, "libraries", "must be a list")
    base = base_dir if base_dir is not None else Path.cwd()
    specs = []
    for i, lib in enumerate(libraries):
        path = f"libraries[{i}]"
        _require(isinstance(lib, dict), source, path, "must be an object")
        unknown = set(lib) - {"file", "name", "python", "modules"}
        _require(not unknown, source, path, f"unknown field(s) {sorted(unknown)}")
        for key in ("file", "name", "python"):
            value = lib.get(key)
            _require(
                value is None or (isinstance(value, str) and bool(value)),
                source,
                f"{path}.{key}",
                "must be a non-empty string",
            )
        _require(
            any(lib.get(k) for k in ("file", "name", "python")),
            source,
            path,
            'needs "file", "name" or "python" to say where the modules are',
        )
        _require(
            not (lib.get("python") and (lib.get("file") or lib.get("name"))),
            source,
            path,
            '"python" cannot be combined with "file" or "name"',
        )
        modules = lib.get("modules")
        _require(
            isinstance(modules, list) and bool(modules),
            source,
            f"{path}.modules",
            "must be a non-empty list",
        )
        specs.append(
            LibrarySpec(
                modules=tuple(
                    _parse_module(m, source, f"{path}.modules[{j}]") for j, m in enumerate(modules)
                ),
                file=lib.get("file"),
                # Mesos: when both are given, "name" is ignored.
                name=None if lib.get("file") else lib.get("name"),
                python=lib.get("python"),
                source=source,
                base_dir=base,
            )
        )
    return ModulesConfig(tuple(specs))


def _read(path: Path, flag: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None


def parse_modules_flag(value: str) -> ModulesConfig:
    """Parse a ``--modules`` value: inline JSON, a path, or a ``file://`` path."""
    stripped = value.strip()
    if not stripped:
        raise ConfigError("--modules: empty value")
    # JSON documents start with a bracket; anything else is a file (as in Mesos).
    if stripped[0] in "{[":
        return parse_config(stripped, "--modules")
    path = Path(stripped.removeprefix("file://")).expanduser()
    return parse_config(_read(path, "--modules"), str(path), path.resolve().parent)


def parse_modules_dir(folder: str | Path) -> ModulesConfig:
    """Parse every ``*.json`` in ``folder`` in alphabetical order into one config."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--modules_dir: {path} is not a folder")
    libraries: list[LibrarySpec] = []
    for manifest in sorted(path.glob("*.json")):
        parsed = parse_config(_read(manifest, "--modules_dir"), str(manifest), path.resolve())
        libraries.extend(parsed.libraries)
    return ModulesConfig(tuple(libraries))


def load_flags(modules: str | None = None, modules_dir: str | None = None) -> ModulesConfig:
    """The configuration from ``--modules`` or ``--modules_dir`` (at most one)."""
    if modules and modules_dir:
        raise ConfigError("only one of --modules and --modules_dir may be given")
    if modules:
        return parse_modules_flag(modules)
    if modules_dir:
        return parse_modules_dir(modules_dir)
    return ModulesConfig()
