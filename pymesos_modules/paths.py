"""Where the installed package keeps its headers, CMake files and bundled modules."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

#: Folder with the ABI headers (contains ``pymesos_modules/module.h``).
INCLUDE_DIR = PACKAGE_DIR / "include"
#: Folder with ``PyMesosModulesConfig.cmake`` for ``find_package``.
CMAKE_DIR = PACKAGE_DIR / "cmake"
#: Folder with the module libraries built and shipped with the package.
BUNDLED_MODULES_DIR = PACKAGE_DIR / "lib"
