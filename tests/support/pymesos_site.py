"""A folder holding an unmodified pymesos 0.3.15, for the driver compatibility tests.

pymesos needs http-parser, whose C extension does not compile on Python 3.11
and whose setup.py cannot be told to skip it from pip; its pure-Python parser
works.  So the tests prepare the folder themselves, once per machine (cached):
download both from the package index, build http-parser without its extension,
install both with pymesos' other dependencies into a target folder.
``PMM_PYMESOS_SITE`` names a ready folder instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PYMESOS = "pymesos==0.3.15"
HTTP_PARSER = "http-parser==0.9.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pymesos-modules"


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )


def prepare() -> Path:
    """The site folder (made on first use); CalledProcessError/OSError if pip cannot."""
    if os.environ.get("PMM_PYMESOS_SITE"):
        return Path(os.environ["PMM_PYMESOS_SITE"])
    site = CACHE / "pymesos-0.3.15-site"
    if (site / "pymesos" / "__init__.py").exists() and (site / "http_parser").exists():
        return site
    with tempfile.TemporaryDirectory() as work:
        downloads = Path(work)
        _pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(downloads), HTTP_PARSER)
        (archive,) = downloads.glob("http-parser-*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(downloads, filter="data")
        source = next(p for p in downloads.iterdir() if p.is_dir())
        setup = source / "setup.py"
        text = setup.read_text()
        if "run_setup(not IS_PYPY)" not in text:
            raise OSError(f"{archive.name}: setup.py no longer has the line this patch expects")
        setup.write_text(text.replace("run_setup(not IS_PYPY)", "run_setup(False)"))
        staging = downloads / "site"
        _pip(
            "install", "--no-deps", "--target", str(staging), str(source), PYMESOS, "addict", "six"
        )
        site.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(site, ignore_errors=True)  # a half-made folder from an interrupted run
        shutil.move(staging, site)
    return site
