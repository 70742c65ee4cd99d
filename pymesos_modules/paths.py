"""Where the package keeps its headers, CMake files and bundled modules, and how children run it.

One place for the rule every child process follows (issue 11): a child we
start imports the copy of ``pymesos_modules`` this process runs, never a
``pymesos_modules/`` that happens to sit in its current folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _source_root() -> Path | None:
    """The checkout this package sits in (editable install, ``python -m`` in a clone), or None."""
    root = PACKAGE_DIR.parent
    if (root / "setup.py").is_file() and (root / "include" / "pymesos_modules").is_dir():
        return root
    return None


#: The source checkout holding this package, or None for an installed wheel.
SOURCE_ROOT = _source_root()
#: Folder with the ABI headers (contains ``pymesos_modules/module.h``): a
#: checkout's own ``include/`` (the headers themselves, never a stale copy) or
#: the copy ``setup.py`` stages into an installed package.
INCLUDE_DIR = (SOURCE_ROOT or PACKAGE_DIR) / "include"
#: Folder with ``PyMesosModulesConfig.cmake`` for ``find_package`` (same rule).
CMAKE_DIR = (SOURCE_ROOT or PACKAGE_DIR) / "cmake"
#: Folder with the module libraries built and shipped with the package.
BUNDLED_MODULES_DIR = PACKAGE_DIR / "lib"
#: The task launcher program (native/launcher), built and shipped beside the modules.
LAUNCHER = BUNDLED_MODULES_DIR / "pmm_launcher"


class NotBuiltError(ImportError):
    """A build product (cffi cdef, pybind11 binding, bundled libraries) is missing.

    An ImportError, as the ``ModuleNotFoundError`` it replaces, but its
    message names what is missing and the command that builds it.
    """


def build_hint() -> str:
    """What to run so that this copy of the package has its build products."""
    if SOURCE_ROOT is not None:
        return (
            f"this source tree was never built: run `pip install -e .` in {SOURCE_ROOT}, "
            "or `pip install .` there and run the command from another folder"
        )
    return "this installation is incomplete: reinstall it (`pip install --force-reinstall .`)"


def not_built(what: str) -> NotBuiltError:
    """The error for a missing build product ``what`` of this copy of the package."""
    return NotBuiltError(f"{what} is missing from {PACKAGE_DIR}: {build_hint()}")


def launcher_command(run_dir: str) -> list[str]:
    """The argv of a task's launcher (:mod:`pymesos_modules.agent.launcher`); NotBuiltError if
    this copy of the package was never built."""
    if not LAUNCHER.is_file():
        raise not_built(f"the task launcher ({LAUNCHER.name})")
    return [str(LAUNCHER), run_dir]


#: Bootstrap of :func:`module_command`, run as ``python -P -c _BOOT ROOT MODULE ARGS...``.
#: ``find_spec`` locates the package without running any of its code; ROOT goes
#: first on ``sys.path`` only when the child would otherwise find another copy
#: (or none), so an installed package never moves site-packages ahead of the
#: standard library.
_BOOT = """\
import importlib.util, os, runpy, sys
root, module = sys.argv[1:3]
del sys.argv[1:3]
spec = importlib.util.find_spec("pymesos_modules")
found = spec and spec.origin and os.path.dirname(os.path.dirname(os.path.realpath(spec.origin)))
if found != root:
    sys.path.insert(0, root)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def module_command(module: str, *args: str) -> list[str]:
    """The argv that runs ``module`` of this package as ``python -m module ARGS`` would.

    Except that the child never imports from its current folder (``-P``: a
    ``pymesos_modules/`` planted where an operator runs a command would
    otherwise shadow the install and have its code run), and that it runs the
    very copy of the package this process runs: installed, editable or a
    built source tree.
    """
    return [sys.executable, "-P", "-c", _BOOT, str(PACKAGE_DIR.parent), module, *args]
