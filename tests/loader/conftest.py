"""Fixtures for the loader tests: the bad-module zoo, built once per run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.native_build import cmake_build

ZOO_SOURCE = Path(__file__).resolve().parents[1] / "zoo"


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """name -> library path for every zoo animal and bomb, plus two that are not libraries."""
    root = tmp_path_factory.mktemp("zoo")
    build = cmake_build(ZOO_SOURCE, root / "build")
    animals = {p.stem.removeprefix("libzoo_"): p for p in build.glob("libzoo_*.so")}
    # Libraries that hang or crash whoever loads them (see tests/zoo/CMakeLists.txt).
    animals.update({p.stem.removeprefix("libbomb_"): p for p in build.glob("libbomb_*.so")})
    not_elf = root / "libnot_elf.so"
    not_elf.write_text("#!/bin/sh\necho I am a shell script, not a shared object\n" * 8)
    truncated = root / "libtruncated.so"
    truncated.write_bytes(animals["good"].read_bytes()[:2000])
    animals.update(not_elf=not_elf, truncated=truncated)
    return animals


@pytest.fixture
def copy_lib(tmp_path):
    """Copy a library to a fresh private folder (for permission and unload tests)."""

    def copy(source: Path, name: str | None = None) -> Path:
        folder = tmp_path / "private"
        folder.mkdir(mode=0o700, exist_ok=True)
        target = folder / (name or source.name)
        shutil.copy2(source, target)
        target.chmod(0o755)
        return target

    return copy
