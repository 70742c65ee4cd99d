"""Files served on loopback HTTP for the fetcher tests, and archives to serve."""

from __future__ import annotations

import contextlib
import io
import tarfile
import zipfile
from collections.abc import AsyncIterator

from aiohttp import web


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``members`` (name -> bytes; names are taken as given, ``../`` too)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    """A .zip holding ``members`` (name -> bytes; names are taken as given, ``../`` too)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@contextlib.asynccontextmanager
async def served_files() -> AsyncIterator[tuple[dict[str, bytes], dict[str, int], str]]:
    """(content, served, base URL): a loopback HTTP server of ``content`` (name -> bytes,
    filled by the test); ``served`` counts the requests per name; other names are 404."""
    content: dict[str, bytes] = {}
    served: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in content:
            return web.Response(status=404, text="no such file")
        served[name] = served.get(name, 0) + 1
        return web.Response(body=content[name])

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield content, served, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
