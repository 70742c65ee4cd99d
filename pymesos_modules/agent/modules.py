"""The agent's modules: which ones ``--isolation``, ``--resource_estimator``,
``--qos_controller``, ``--hooks`` name, how those names map to loaded or bundled
modules, and calling them so that a failing module never takes the agent down.

Names resolve as :mod:`pymesos_modules.kinds.builtin` says (a loaded module, or
a built-in alias such as ``posix/rlimits``).  ``noop`` for the estimator and
the QoS controller means "none" unless a module of that name is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pymesos_modules.errors import ModuleError, UnknownModuleError
from pymesos_modules.kinds.anonymous import create_anonymous_modules
from pymesos_modules.kinds.builtin import names, resolve
from pymesos_modules.kinds.hook import HookChain
from pymesos_modules.manager import ModuleManager

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CgroupsFlags:
    """Mesos' ``--cgroups_*`` agent flags: the parameters of the built-in cgroups isolators."""

    hierarchy: str = "/sys/fs/cgroup"
    #: one agent per root: at start an agent destroys the cgroups under it it does not recover
    root: str = "pymesos_modules"
    enable_cfs: bool = False
    limit_swap: bool = False

    def parameters(self, name: str) -> dict[str, str] | None:
        """The module parameters of the built-in ``name`` (None: not a cgroups isolator)."""
        common = {"hierarchy": self.hierarchy, "root": self.root}
        if name == "cgroups/mem":
            return {**common, "limit_swap": str(self.limit_swap).lower()}
        if name == "cgroups/cpu":
            return {**common, "enable_cfs": str(self.enable_cfs).lower()}
        return None


@dataclass
class Named:
    """A module instance and the name the operator gave it (for log messages)."""

    name: str
    module: Any


def call(named: Named, method: str, *args: Any) -> tuple[bool, Any]:
    """``named.module.method(*args)``; (False, message) if it raised (logged with the name)."""
    try:
        return True, getattr(named.module, method)(*args)
    except Exception as exc:  # a module's failure is the task's problem, never the agent's
        logger.warning("module '%s' %s() failed: %s", named.name, method, exc)
        return False, f"module '{named.name}' {method}() failed: {exc}"


@dataclass
class AgentModules:
    """Every module instance one agent uses; :meth:`close` destroys them all."""

    manager: ModuleManager | None = None
    isolators: list[Named] = field(default_factory=list)
    resource_estimator: Named | None = None
    qos_controller: Named | None = None
    hooks: list[Named] = field(default_factory=list)
    anonymous: list[Named] = field(default_factory=list)

    def all(self) -> list[Named]:
        """Every instance, in creation order."""
        single = [m for m in (self.resource_estimator, self.qos_controller) if m is not None]
        return [*self.anonymous, *self.isolators, *single, *self.hooks]

    def close(self) -> None:
        """Destroy every instance (last created first), then unload the libraries."""
        for named in reversed(self.all()):
            close = getattr(named.module, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # keep destroying the others
                    logger.exception("module '%s' failed to close", named.name)
        self.isolators, self.hooks, self.anonymous = [], [], []
        self.resource_estimator = self.qos_controller = None
        if self.manager is not None:
            self.manager.unload_all()

    @property
    def hook_chain(self) -> HookChain:
        """``--hooks`` in order, as the chain the master uses too (one place runs hooks)."""
        return HookChain([n.module for n in self.hooks], [n.name for n in self.hooks])


def create_modules(
    manager: ModuleManager,
    isolation: str | None,
    resource_estimator: str | None,
    qos_controller: str | None,
    hooks: str | None,
    cgroups: CgroupsFlags | None = None,
) -> AgentModules:
    """Create the modules the flags name; on any failure destroy what was created and raise.

    The built-in ``cgroups/mem`` and ``cgroups/cpu`` get ``cgroups`` (the
    agent's ``--cgroups_*`` flags) as their parameters.
    """
    modules = AgentModules(manager)
    cgroups = cgroups or CgroupsFlags()
    try:
        modules.anonymous.extend(Named(n, m) for n, m in create_anonymous_modules(manager))
        for name in names(isolation):
            if any(i.name == name for i in modules.isolators):
                raise UnknownModuleError(f"--isolation: '{name}' is named twice")
            try:
                isolator = resolve(
                    manager, name, "isolator", "--isolation", cgroups.parameters(name)
                )
            except UnknownModuleError:
                raise  # names the flag and the name already
            except ModuleError as exc:
                # The agent's log then names the isolator as the operator wrote it.
                exc.args = (f"--isolation={name}: {exc}",)
                raise
            modules.isolators.append(Named(name, isolator))
        loaded = {m.name for m in manager.modules()}
        if resource_estimator and (resource_estimator != "noop" or resource_estimator in loaded):
            modules.resource_estimator = Named(
                resource_estimator,
                resolve(manager, resource_estimator, "resource_estimator", "--resource_estimator"),
            )
        if qos_controller and (qos_controller != "noop" or qos_controller in loaded):
            modules.qos_controller = Named(
                qos_controller,
                resolve(manager, qos_controller, "qos_controller", "--qos_controller"),
            )
        for name in names(hooks):
            modules.hooks.append(Named(name, resolve(manager, name, "hook", "--hooks")))
    except BaseException:
        modules.close()
        raise
    return modules
