"""Session-wide set-up: the pymesos site the driver compatibility tests import from."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from support import pymesos_site

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
