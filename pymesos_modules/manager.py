"""ModuleManager: find, check, load, create and unload modules.

    manager = ModuleManager()
    manager.load(config.load_flags(modules=args.modules))   # all or nothing
    allocator = manager.create("org_pymesos_DRFAllocator", kind="allocator")
    ...
    allocator.close(); manager.unload_all()

``load()`` applies a configuration atomically: every library is found,
permission-checked, opened and every listed module checked (including its
``compatible()``) before anything is registered; if anything fails, libraries
it opened are closed again and :class:`~pymesos_modules.errors.ConfigLoadError`
lists every failure.  ``create()`` checks the kind the caller wants and runs
the module's ``create()``.

Python modules: a library entry ``{"python": "pkg.mod:factory", ...}`` names a
callable (usually a class) with a ``kind`` attribute naming a module kind;
``create()`` calls ``factory(parameters)`` (adding ``name=<module name>`` when
the factory accepts a ``name`` argument) and checks the result implements the
kind's Protocol (:func:`pymesos_modules.kinds.base.protocol_for`).

Unlike Mesos we unload: :meth:`unload` dlcloses a library once no instance of
its modules is alive and no other manager still has it loaded.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymesos_modules import abi, crash, errors, metrics, paths, redact
from pymesos_modules.config import LibrarySpec, ModulesConfig
from pymesos_modules.kinds import base
from pymesos_modules.names import shown

logger = logging.getLogger(__name__)

#: Extra folders searched for bare library names, ``:``-separated.
SEARCH_PATH_ENV = "PMM_MODULE_PATH"


@dataclass(frozen=True, slots=True)
class LoadedModule:
    """A module known to the manager: where it comes from and how it is configured."""

    name: str
    kind: str
    #: Absolute library path, or ``python:pkg.mod:attr`` for Python modules.
    source: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    info: abi.DescriptorInfo | None = None
    factory: Any = None
    #: Parameters marked secret in --modules: shown redacted (pymesos_modules/redact.py).
    secret_keys: frozenset[str] = frozenset()

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (the master's ``/modules`` endpoint)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "parameters": redact.parameters(self.parameters, self.secret_keys),
        }
        if self.info is not None:
            entry.update(
                module_version=self.info.module_version,
                abi_version=self.info.abi_version,
                author=self.info.author_name,
                description=self.info.description,
            )
        return entry


def _call_factory(factory: Any, parameters: dict[str, str], name: str) -> Any:
    """``factory(parameters)``, plus ``name=`` when the factory accepts it.

    Passing the configured name lets a Python module log and publish metrics
    under the name the operator gave it, as native modules do.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature
        return factory(parameters)
    accepts_name = "name" in signature.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    return factory(parameters, name=name) if accepts_name else factory(parameters)


class ModuleManager:
    """Loads module configurations and creates module instances (see module docstring)."""

    def __init__(
        self,
        search_path: Sequence[str | Path] = (),
        *,
        allow_insecure: bool = False,
        registry: metrics.MetricsRegistry | None = None,
    ) -> None:
        self.search_path = [Path(p) for p in search_path]
        self.allow_insecure = allow_insecure
        self.registry = registry if registry is not None else metrics.REGISTRY
        self._modules: dict[str, LoadedModule] = {}
        self._libraries: dict[str, abi.Library] = {}

    # --- finding --------------------------------------------------------------

    def _search_dirs(self, bundled: bool) -> list[Path]:
        dirs = [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
        dirs += [Path(p) for p in os.environ.get(SEARCH_PATH_ENV, "").split(":") if p]
        dirs += self.search_path
        if bundled:
            dirs.append(paths.BUNDLED_MODULES_DIR)
        return dirs

    def resolve(self, spec: LibrarySpec) -> Path:
        """The path of a library entry's file, or LibraryNotFoundError.

        Symlinks are not resolved here: the loader resolves the path once, by
        opening it (:func:`pymesos_modules.libfile.open_file`), and loads that file.
        """
        if spec.file is not None:
            file = Path(spec.file).expanduser()
            if file.is_absolute():
                return file
            if len(file.parts) > 1:
                return spec.base_dir / file
            candidates, bundled = file.name, False
        else:
            candidates, bundled = f"lib{spec.name}.so", True
        searched = self._search_dirs(bundled)
        for folder in searched:
            path = folder / candidates
            # lexists: a folder, FIFO or symlink loop found here is reported as what it is.
            if os.path.lexists(path):
                return path
        where = ", ".join(str(d) for d in searched) or "(no folders: set LD_LIBRARY_PATH)"
        fix = f"Give an absolute 'file' path or add its folder to {SEARCH_PATH_ENV}."
        if bundled and not paths.BUNDLED_MODULES_DIR.is_dir():
            fix = f"The bundled modules are missing: {paths.build_hint()}."
        raise errors.LibraryNotFoundError(
            f"{spec.source}: library '{candidates}' not found; searched {where}. {fix}"
        )

    # --- loading ----------------------------------------------------------------

    def _load_native(
        self, spec: LibrarySpec, opened: list[abi.Library]
    ) -> tuple[abi.Library, list[LoadedModule], list[errors.ModuleError]]:
        """Open one library and check the modules ``spec`` asks for.

        Library-level problems raise; each module's own failure is returned,
        so one load reports every bad module, and a library's descriptors that
        were not asked for (e.g. of a kind only a newer host knows) do not
        matter.
        """
        path = self.resolve(spec)
        already_open = set(abi.loaded_library_paths())
        library = abi.open_library(path, secure=not self.allow_insecure)
        if library.path not in already_open:
            opened.append(library)
        good, bad = library.check_each()
        infos = {info.name: info for info in good}
        loaded, failures = [], []
        unreadable_reported = False
        for module in spec.modules:
            info = infos.get(module.name)
            if info is None:
                # dict.fromkeys: descriptors claiming one name share one error.
                named = list(dict.fromkeys(b.error for b in bad if b.name == module.name))
                unreadable = [b.error for b in bad if b.name is None]
                if named:
                    failures += named
                elif unreadable:
                    # The module may be one of these; each is reported once.
                    if not unreadable_reported:
                        failures += unreadable
                        unreadable_reported = True
                else:
                    failures.append(
                        errors.UnknownModuleError(
                            f"{library.path}: has no module '{module.name}' (it provides: "
                            f"{', '.join(sorted(infos)) or 'nothing'})"
                        )
                    )
                continue
            try:
                self._check_compatible(library, info)
            except errors.ModuleError as exc:
                failures.append(exc)
                continue
            loaded.append(
                LoadedModule(
                    module.name,
                    info.kind,
                    library.path,
                    dict(module.parameters),
                    info,
                    secret_keys=module.secret_keys,
                )
            )
        return library, loaded, failures

    def _check_compatible(self, library: abi.Library, info: abi.DescriptorInfo) -> None:
        if not info.has_compatible:
            return
        host = abi.HostApi(info.name, self.registry)
        buffer = abi.ErrorBuffer()
        with crash.running(library.path, info.name, "compatible()"):
            status = info.pointer.compatible(host.struct, buffer.struct)
        if status != 0:
            raise errors.IncompatibleModuleError(
                f"{library.path}: module '{info.name}' says it cannot run on this host: "
                f"{buffer.text()}"
            )

    def _load_python(self, spec: LibrarySpec) -> list[LoadedModule]:
        reference = spec.python or ""
        module_name, _, attribute = reference.partition(":")
        if not module_name or not attribute:
            raise errors.ConfigSchemaError(
                f"{spec.source}: python entry '{reference}' must look like 'package.module:factory'"
            )
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise errors.LibraryNotFoundError(
                f"{spec.source}: cannot import Python module factory '{reference}': {exc}"
            ) from None
        kind = getattr(factory, "kind", None)
        if kind not in abi.KIND_VALUES:
            raise errors.UnknownKindError(
                f"python:{reference}: factory needs a 'kind' attribute naming one of "
                f"{', '.join(abi.KIND_VALUES)}; found {kind!r}"
            )
        return [
            LoadedModule(
                m.name,
                kind,
                f"python:{reference}",
                dict(m.parameters),
                factory=factory,
                secret_keys=m.secret_keys,
            )
            for m in spec.modules
        ]

    def load(self, config: ModulesConfig) -> list[LoadedModule]:
        """Load every library of ``config``, all or nothing; returns the modules added."""
        failures: list[errors.ModuleError] = []
        opened: list[abi.Library] = []
        new_libraries: dict[str, abi.Library] = {}
        added: list[LoadedModule] = []
        for spec in config.libraries:
            try:
                if spec.python is not None:
                    modules = self._load_python(spec)
                else:
                    library, modules, module_failures = self._load_native(spec, opened)
                    new_libraries[library.path] = library
                    failures += module_failures
            except errors.ModuleError as exc:
                failures.append(exc)
                continue
            for module in modules:
                if module.name in self._modules or any(m.name == module.name for m in added):
                    earlier = self._modules.get(module.name) or next(
                        m for m in added if m.name == module.name
                    )
                    failures.append(
                        errors.DuplicateModuleError(
                            f"module '{module.name}' is provided by both {earlier.source} and "
                            f"{module.source}; module names must be unique"
                        )
                    )
                else:
                    added.append(module)
        if failures:
            for library in opened:
                if library.holders == 0 and library.users == 0:
                    library.close()
            raise errors.ConfigLoadError(failures)
        for path, library in new_libraries.items():
            if path not in self._libraries:
                library.hold()
                self._libraries[path] = library
        for module in added:
            self._modules[module.name] = module
            logger.info("loaded module '%s' (%s) from %s", module.name, module.kind, module.source)
        return added

    # --- using ---------------------------------------------------------------------

    def modules(self, kind: str | None = None) -> list[LoadedModule]:
        """Loaded modules (of one kind, if given), in load order."""
        return [m for m in self._modules.values() if kind is None or m.kind == kind]

    def get(self, name: str) -> LoadedModule:
        """The loaded module called ``name`` or UnknownModuleError listing what exists."""
        module = self._modules.get(name)
        if module is None:
            known = ", ".join(self._modules) or "none are loaded"
            raise errors.UnknownModuleError(
                f"unknown module {shown(name)} (loaded modules: {known}); load it with --modules"
            )
        return module

    def create(
        self,
        name: str,
        kind: str | None = None,
        parameters: Mapping[str, str] | None = None,
        *,
        purpose: str | None = None,
    ) -> Any:
        """Create an instance of module ``name``; its wrapper object for native modules.

        ``kind`` is the kind the caller needs (WrongKindError otherwise);
        ``parameters`` override the configured ones; ``purpose`` (e.g.
        ``"--allocator"``) makes the wrong-kind message say who asked.
        """
        module = self.get(name)
        if kind is not None and module.kind != kind:
            asker = purpose or "the caller"
            raise errors.WrongKindError(
                f"{module.source}: module '{name}' is of kind '{module.kind}', but {asker} "
                f"needs a module of kind '{kind}'"
            )
        merged = {**module.parameters, **(parameters or {})}
        if module.factory is not None:
            try:
                instance = _call_factory(module.factory, merged, name)
            except errors.ModuleError:
                raise
            except Exception as exc:
                # A Python module failing is a create() failure, as for native ones.
                raise errors.ModuleCreateError(
                    f"{module.source}: module '{name}' create() failed: {type(exc).__name__}: {exc}"
                ) from exc
            protocol = base.protocol_for(module.kind)
            if protocol is not None and not isinstance(instance, protocol):
                raise errors.ModuleCreateError(
                    f"{module.source}: module '{name}' created a {type(instance).__name__} that "
                    f"does not implement the {module.kind} Protocol {protocol.__name__}"
                )
            if hasattr(instance, "name") and not getattr(instance, "name", None):
                instance.name = name
            return instance
        library = self._libraries[module.source]
        assert module.info is not None
        native = abi.NativeInstance(library, module.info, merged, self.registry)
        return base.wrap(native)

    def unload(self, path: str | Path) -> None:
        """Forget a library's modules and dlclose it; refused while instances live."""
        key = os.path.realpath(path)
        library = self._libraries.get(key)
        if library is None:
            raise errors.UnknownModuleError(f"{key}: no such library is loaded")
        # Another manager may share the handle: unhold() only dlcloses for the last one.
        library.unhold()
        del self._libraries[key]
        for name in [n for n, m in self._modules.items() if m.source == key]:
            del self._modules[name]

    def unload_all(self) -> None:
        """Unload every library (instances must be destroyed first) and Python modules."""
        for path in list(self._libraries):
            self.unload(path)
        self._modules.clear()

    def libraries(self) -> Iterable[str]:
        """Paths of the libraries this manager loaded."""
        return list(self._libraries)
