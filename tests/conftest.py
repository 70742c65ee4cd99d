"""Session-wide set-up: the pymesos site the driver compatibility tests import from."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from support import pymesos_site

from pymesos_modules.abi import loaded_library_paths
from pymesos_modules.manager import ModuleManager

logger = logging.getLogger(__name__)


def pytest_configure(config: pytest.Config) -> None:
    """Put an unmodified pymesos 0.3.15 on sys.path before test modules import it."""
    try:
        site = pymesos_site.prepare()
    except (OSError, subprocess.SubprocessError) as exc:
        # No package index (an offline machine): those two tests skip, saying why.
        logger.warning("cannot prepare pymesos for the driver tests: %s", exc)
        return
    sys.path.insert(0, str(site))


@pytest.fixture
def manager():
    """A fresh ModuleManager; asserts the test left no library loaded."""
    before = set(loaded_library_paths())
    mgr = ModuleManager()
    yield mgr
    mgr.unload_all()
    assert set(loaded_library_paths()) <= before, "a test leaked a loaded library"
