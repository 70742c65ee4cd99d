"""Build a CMake project of native test code (zoo, examples, drivers) into a folder.

Every build goes through ``find_package(PyMesosModules)`` with the installed
package's CMake dir, exactly as an out-of-tree user's project would.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from pymesos_modules import paths


def cmake_build(
    source: Path, build: Path, *, sanitize: bool = False, defines: dict[str, str] | None = None
) -> Path:
    """Configure and build ``source`` into ``build``; return ``build``.

    ``sanitize`` compiles with AddressSanitizer + UndefinedBehaviorSanitizer.
    """
    args = [
        "cmake", "-S", str(source), "-B", str(build),
        f"-DCMAKE_PREFIX_PATH={paths.CMAKE_DIR}",
        "-DCMAKE_BUILD_TYPE=" + ("Debug" if sanitize else "Release"),
    ]  # fmt: skip
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    if sanitize:
        flags = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
        args += [
            f"-DCMAKE_C_FLAGS={flags}",
            f"-DCMAKE_CXX_FLAGS={flags}",
            "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined",
            "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined",
            "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined",
            "-DPMM_SANITIZE=ON",
        ]
    args += [f"-D{k}={v}" for k, v in (defines or {}).items()]
    for step in (args, ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}")
    return build


@functools.cache
def sanitizer_preload() -> str | None:
    """LD_PRELOAD value for running Python over sanitized libraries, or None if unavailable."""
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        found = subprocess.run(
            ["gcc", f"-print-file-name={name}"], capture_output=True, text=True
        ).stdout.strip()
        if not found or not os.path.isabs(found) or not os.path.exists(found):
            return None
        libs.append(os.path.realpath(found))
    return " ".join(libs)
