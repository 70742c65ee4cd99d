"""``python -m pymesos_modules``: build-integration queries, then the CLI.

``--includedir`` and ``--cmakedir`` print folders for out-of-tree module
builds, as ``python -m pybind11 --includes/--cmakedir`` do; anything else is
handed to the ``pymesos-modules`` command line.
"""

from __future__ import annotations

import sys

from pymesos_modules import paths

#: flag -> (folder printed, a file it must hold to be of any use)
_QUERIES = {
    "--includedir": (paths.INCLUDE_DIR, "pymesos_modules/module.h"),
    "--cmakedir": (paths.CMAKE_DIR, "PyMesosModulesConfig.cmake"),
    "--libdir": (paths.BUNDLED_MODULES_DIR, "libpmm_drf.so"),
}


def main(argv: list[str] | None = None) -> int:
    """Answer a path query, or run the CLI with the given arguments."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 1 and args[0] in _QUERIES:
        folder, content = _QUERIES[args[0]]
        if not (folder / content).is_file():
            print(f"error: {paths.not_built(str(folder / content))}", file=sys.stderr)
            return 1
        print(folder)
        return 0
    from pymesos_modules.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
