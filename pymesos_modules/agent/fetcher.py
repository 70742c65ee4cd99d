"""The fetcher: ``CommandInfo.uris`` into the sandbox before the command starts (Mesos' fetcher).

Each ``URI`` (``value``, ``executable``, ``extract``, ``cache``,
``output_file``) is fetched in order:

- ``value`` is a local path (absolute), a ``file://`` URL or an
  ``http://``/``https://`` URL (aiohttp); a status other than 200 fails;
- it lands in the sandbox as ``output_file`` (a relative path that must stay in
  the sandbox) or the URL's last path segment;
- ``cache``: an HTTP(S) download is kept in the agent's cache
  (``--fetcher_cache_dir``, default ``<work_dir>/fetch``), bounded by
  ``--fetcher_cache_size``: the least recently used files go first, a file
  larger than the cache is fetched without it, and a cache this process may
  not read or write (a default executor running as another user) is passed
  by: the file is downloaded, never refused for the cache's sake;
- ``executable``: made executable (not extracted);
- ``extract`` (Mesos' default: true): ``.tar``, ``.tar.gz``/``.tgz``,
  ``.tar.bz2``, ``.tar.xz`` and ``.zip`` are unpacked into the sandbox, a lone
  ``.gz`` is gunzipped beside it; a member that would land outside the sandbox
  (``../``, an absolute path, a link out) refuses the whole archive.

Any failure is a :class:`~.containers.LaunchError` naming the URI: the task
fails with REASON_CONTAINER_LAUNCH_FAILED before anything of it runs.  File
work runs in a thread, off the agent's loop.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import aiohttp

from pymesos_modules.agent.containers import LaunchError

logger = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: Mesos' --fetcher_cache_size default (2 GB).
DEFAULT_CACHE_SIZE = 2 * 1024**3


@dataclass(frozen=True)
class Uri:
    """A checked ``CommandInfo.URI``."""

    value: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    output_file: str | None = None

    @property
    def remote(self) -> bool:
        """Fetched over HTTP(S)."""
        return urlparse(self.value).scheme in ("http", "https")


def parse(uris: Any) -> list[Uri]:
    """``CommandInfo.uris`` checked; ValueError names the bad entry."""
    if uris is None:
        return []
    if not isinstance(uris, list):
        raise ValueError("command.uris must be a list of URI objects")
    out = []
    for index, uri in enumerate(uris):
        where = f"command.uris[{index}]"
        if not isinstance(uri, dict) or not isinstance(uri.get("value"), str) or not uri["value"]:
            raise ValueError(f"{where} needs a string 'value'")
        flags = {}
        for name, default in (("executable", False), ("extract", True), ("cache", False)):
            value = uri.get(name, default)
            if not isinstance(value, bool):
                raise ValueError(f"{where}.{name} must be true or false")
            flags[name] = value
        output = uri.get("output_file")
        if output is not None and (not isinstance(output, str) or not _inside(output)):
            raise ValueError(f"{where}.output_file must be a relative path inside the sandbox")
        scheme = urlparse(uri["value"]).scheme
        if scheme not in ("", "file", "http", "https"):
            raise ValueError(f"{where}: scheme '{scheme}' is not supported (file, http, https)")
        out.append(Uri(uri["value"], output_file=output, **flags))
    return out


def _inside(relative: str) -> bool:
    """A relative path that cannot leave the folder it is joined to."""
    path = PurePosixPath(relative)
    return bool(relative) and not path.is_absolute() and ".." not in path.parts


def _name(uri: Uri) -> str:
    if uri.output_file:
        return uri.output_file
    name = PurePosixPath(unquote(urlparse(uri.value).path)).name
    if not name:
        raise LaunchError(f"Failed to fetch '{uri.value}': it names no file (give output_file)")
    return name


class Fetcher:
    """Fetches a command's URIs: the agent's (it owns the cache folder), and each default
    executor's (for its tasks; the agent's cache if it may use it, ``cache_dir`` None: none)."""

    def __init__(self, cache_dir: Path | None, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.cache_dir = cache_dir
        self.cache_size = cache_size

    async def fetch(self, command: Any, sandbox: Path) -> list[Path]:
        """Fetch ``command``'s URIs into ``sandbox``; the files written, in order."""
        try:
            uris = parse((command or {}).get("uris"))
        except ValueError as exc:
            raise LaunchError(str(exc)) from None
        written = []
        for uri in uris:
            target = sandbox / _name(uri)
            try:
                await self._one(uri, target)
                await asyncio.to_thread(_finish, uri, target, sandbox)
            except LaunchError:
                raise
            except (OSError, aiohttp.ClientError, tarfile.TarError, zipfile.BadZipFile) as exc:
                raise LaunchError(f"Failed to fetch '{uri.value}': {exc}") from None
            logger.info("fetched %s into %s", uri.value, target)
            written.append(target)
        return written

    async def _one(self, uri: Uri, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not uri.remote:
            parsed = urlparse(uri.value)
            source = Path(unquote(parsed.path) if parsed.scheme == "file" else uri.value)
            if not source.is_absolute():
                raise LaunchError(f"Failed to fetch '{uri.value}': a local path must be absolute")
            if not source.is_file():
                raise LaunchError(f"Failed to fetch '{uri.value}': no such file")
            await asyncio.to_thread(shutil.copyfile, source, target)
            return
        cache = self.cache_dir if uri.cache else None
        if cache is not None:
            cached = cache / hashlib.sha256(uri.value.encode()).hexdigest()
            try:
                await asyncio.to_thread(shutil.copyfile, cached, target)
                os.utime(cached)  # most recently used
                logger.info("fetched %s from the cache", uri.value)
                return
            except FileNotFoundError:
                pass  # not cached yet
            except OSError as exc:
                logger.info("not using the fetcher cache %s: %s", cache, exc)
                cache = None
        await self._download(uri, target)
        if cache is not None:
            try:
                await asyncio.to_thread(self._keep, cache, target, uri.value)
            except OSError as exc:  # the file is fetched; only the cache missed it
                logger.warning("could not keep %s in the fetcher cache: %s", uri.value, exc)

    async def _download(self, uri: Uri, target: Path) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=60)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(uri.value) as response,
        ):
            if response.status != 200:
                raise LaunchError(
                    f"Failed to fetch '{uri.value}': HTTP {response.status} {response.reason}"
                )
            with target.open("wb") as out:
                async for chunk in response.content.iter_chunked(1 << 16):
                    out.write(chunk)

    def _keep(self, cache: Path, fetched: Path, value: str) -> None:
        """Copy a download into the ``cache``, evicting the least recently used to fit."""
        size = fetched.stat().st_size
        if size > self.cache_size:
            logger.info("%s (%d bytes) is larger than the fetcher cache; not cached", value, size)
            return
        cache.mkdir(parents=True, exist_ok=True)
        entries = sorted(
            (p for p in cache.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime
        )
        used = sum(p.stat().st_size for p in entries)
        while entries and used + size > self.cache_size:
            oldest = entries.pop(0)
            used -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, delete=False) as temporary:
            shutil.copyfileobj(fetched.open("rb"), temporary)
        os.replace(temporary.name, cache / hashlib.sha256(value.encode()).hexdigest())


def _finish(uri: Uri, target: Path, sandbox: Path) -> None:
    """``executable`` or ``extract``, as Mesos: an executable file is never extracted."""
    if uri.executable:
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return
    if not uri.extract:
        return
    name = target.name.lower()
    if name.endswith(TAR_SUFFIXES):
        _untar(uri, target, sandbox)
    elif name.endswith(".zip"):
        _unzip(uri, target, sandbox)
    elif name.endswith(".gz"):
        with gzip.open(target, "rb") as source, target.with_suffix("").open("wb") as out:
            shutil.copyfileobj(source, out)


def _untar(uri: Uri, archive: Path, sandbox: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:  # checked first: nothing is written from a bad archive
            try:
                tarfile.data_filter(member, str(sandbox))
            except tarfile.FilterError as exc:
                raise LaunchError(
                    f"Failed to fetch '{uri.value}': refusing the archive: {exc}"
                ) from None
        tar.extractall(sandbox, members=members, filter="data")


def _unzip(uri: Uri, archive: Path, sandbox: Path) -> None:
    root = sandbox.resolve()
    with zipfile.ZipFile(archive) as zipped:
        for name in zipped.namelist():
            destination = (root / name).resolve()
            if destination != root and root not in destination.parents:
                raise LaunchError(
                    f"Failed to fetch '{uri.value}': refusing the archive: member {name!r} "
                    f"would be extracted outside the sandbox"
                )
        zipped.extractall(sandbox)
