"""The file stage of loading a module library: find the one file, check it, open it once.

:func:`open_file` resolves the path exactly once, by opening it: every later
step (the permission check, the ELF sanity check, ``dlopen``) looks at the
file behind that one descriptor, never at the path again.  Checking a path and
then loading the path lets anyone who can flip a symlink in between get a
library loaded that was never checked (the check-to-use race ``inspect`` lost
in 18 of 60 runs); ``dlopen("/proc/self/fd/N")`` loads the very file checked.

Check order (docs/modules.md): the path names a regular file (a symlink loop,
a folder, a FIFO, a socket or a device is reported as what it is) -> it is
readable -> permissions of the file and every folder above it (sshd's
StrictModes) -> ELF sanity (a truncated file would crash the process inside
``dlopen``).  Every failure raises an :mod:`~pymesos_modules.errors` class of
the file stage: :class:`~pymesos_modules.errors.LibraryNotFoundError`,
:class:`~pymesos_modules.errors.InsecureLibraryError` or
:class:`~pymesos_modules.errors.LibraryOpenError`.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from pymesos_modules import errors

_ELF_MAGIC = b"\x7fELF"
_PT_LOAD = 1

#: What a path is, by its file type, when it is not a regular file.
_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True, slots=True)
class LibraryFile:
    """A library file opened (and checked) through one descriptor."""

    #: The file's real path, for messages and as the key of its loaded handle.
    path: str
    fd: int
    status: os.stat_result

    @property
    def loader_path(self) -> str:
        """What to hand ``dlopen``: the descriptor's own name, so no path is resolved again.

        The descriptor must stay open while the library is loaded: the dynamic
        loader remembers this name, and a reused fd number would match it.
        """
        return f"/proc/self/fd/{self.fd}"

    @property
    def identity(self) -> tuple[int, int]:
        """(device, inode): the same file, whatever path reaches it."""
        return self.status.st_dev, self.status.st_ino

    def close(self) -> None:
        """Close the descriptor (when the load fails)."""
        os.close(self.fd)

    def release(self) -> None:
        """After ``dlclose``: close the descriptor, unless the file is still mapped.

        ``dlclose`` does not always unload (a C++ library with unique symbols
        stays for good), and the dynamic loader then still knows it as
        ``/proc/self/fd/N``: were N reused for another library, ``dlopen``
        would hand back the old one.  Such a descriptor stays open.
        """
        if _is_mapped(self.status):
            _kept_open.append(self.fd)
        else:
            os.close(self.fd)


#: Descriptors of libraries dlclose() left loaded (see :meth:`LibraryFile.release`).
_kept_open: list[int] = []


def _is_mapped(status: os.stat_result) -> bool:
    """Whether the file with ``status`` is mapped into this process."""
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}"
    inode = str(status.st_ino)
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) >= 5 and fields[4] == inode and fields[3] == device:
                return True
    return False


def _describe_os_error(given: str, exc: OSError) -> errors.ModuleError:
    """The file-stage error for an ``open``/``stat`` failure, saying what the path is."""
    if exc.errno == errno.ELOOP:
        return errors.LibraryNotFoundError(
            f"{given}: symlink loop (too many levels of symbolic links) while resolving "
            f"the module library path; fix the links or give the file's real path"
        )
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return errors.LibraryNotFoundError(f"{given}: no such module library file")
    if exc.errno == errno.EACCES:
        return errors.LibraryNotFoundError(
            f"{given}: module library is not readable (permission denied)"
        )
    if exc.errno == errno.ENXIO:
        return errors.LibraryNotFoundError(f"{given}: is a socket, not a module library file")
    return errors.LibraryNotFoundError(
        f"{given}: cannot open the module library: {exc.strerror or exc}"
    )


def _not_regular(given: str, mode: int) -> errors.ModuleError | None:
    if stat.S_ISREG(mode):
        return None
    what = next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")
    return errors.LibraryNotFoundError(f"{given}: is {what}, not a module library file")


def open_file(path: str | os.PathLike[str], *, secure: bool) -> LibraryFile:
    """Open ``path`` once and check the file behind the descriptor (see module docstring).

    ``secure`` applies the permission check (off with --allow-insecure-modules).
    The caller owns the result and closes it unless a loaded library keeps it.
    """
    given = os.fspath(path)
    try:
        # Typed first, so a FIFO or a device is never opened (opening one can block
        # or act); the descriptor below is then checked to be that same file.
        seen = os.stat(given)
    except OSError as exc:
        raise _describe_os_error(given, exc) from None
    problem = _not_regular(given, seen.st_mode)
    if problem is not None:
        raise problem
    try:
        fd = os.open(given, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise _describe_os_error(given, exc) from None
    try:
        status = os.fstat(fd)
        problem = _not_regular(given, status.st_mode)
        if problem is not None:
            raise problem
        if (status.st_dev, status.st_ino) != (seen.st_dev, seen.st_ino):
            raise errors.LibraryNotFoundError(
                f"{given}: the path was replaced while being opened; refusing to load it"
            )
        real = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
        if secure:
            check_permissions(real, status)
        elf_preflight(fd, real, status.st_size)
    except BaseException:
        os.close(fd)
        raise
    return LibraryFile(real, fd, status)


def check_permissions(path: str, status: os.stat_result) -> None:
    """Refuse a file, or a folder above it, that others could replace (sshd StrictModes).

    ``status`` is the opened file's own (``fstat``); the folders are those of
    its real path.  Allowed owners are root and the current user; nothing may
    be writable by group or others, except root-owned sticky folders such as
    /tmp.  With every folder above it safe, no other user can swap the file.
    """
    me = os.geteuid()
    file = Path(path)
    for current in (file, *file.parents):
        st = status if current == file else os.stat(current)
        what = "module file" if current == file else "folder"
        if st.st_uid not in (0, me):
            raise errors.InsecureLibraryError(
                f"{path}: refusing to load: {what} {current} is owned by uid {st.st_uid}, not by "
                f"root or you (uid {me}), so that user could replace the module. Fix the "
                f"ownership or pass --allow-insecure-modules."
            )
        sticky_root_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_root_dir:
            raise errors.InsecureLibraryError(
                f"{path}: refusing to load: {what} {current} is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):o}), so another user could replace the "
                f"module. Run chmod go-w on it or pass --allow-insecure-modules."
            )


def elf_preflight(fd: int, path: str, size: int) -> None:
    """Refuse files dlopen() would crash on, before calling it.

    dlopen() maps a truncated shared object and then touches pages past the end
    of the file, which kills the whole process with SIGBUS.  A host that must
    survive bad modules therefore checks that the ELF header and every loadable
    segment and section table fit inside the file first.  Reads through ``fd``.
    """
    head = os.pread(fd, 64, 0)
    if head[:4] != _ELF_MAGIC:
        raise errors.LibraryOpenError(
            f"{path}: not a shared library: invalid ELF header (starts with {head[:4]!r})"
        )
    if len(head) < 52 or head[4] not in (1, 2) or head[5] not in (1, 2):
        raise errors.LibraryOpenError(f"{path}: not a shared library: ELF header truncated")
    is64, order = head[4] == 2, "<" if head[5] == 1 else ">"
    if is64:
        if len(head) < 64:
            raise errors.LibraryOpenError(f"{path}: not a shared library: ELF header truncated")
        phoff, shoff = struct.unpack_from(order + "QQ", head, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 54)
    else:
        phoff, shoff = struct.unpack_from(order + "II", head, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 42)
    tables = [("program header table", phoff, phentsize * phnum)]
    tables.append(("section header table", shoff, shentsize * shnum))
    for what, offset, length in tables:
        if length and offset + length > size:
            raise errors.LibraryOpenError(
                f"{path}: truncated shared library: its {what} ends at byte "
                f"{offset + length} but the file has {size} bytes. Rebuild or re-copy it."
            )
    headers = os.pread(fd, phentsize * phnum, phoff)
    for i in range(phnum):
        entry = headers[i * phentsize : (i + 1) * phentsize]
        if is64:
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(order + "IIQQQQ", entry)
        else:
            p_type, p_offset, _, _, p_filesz = struct.unpack_from(order + "IIIII", entry)
        if p_type == _PT_LOAD and p_offset + p_filesz > size:
            raise errors.LibraryOpenError(
                f"{path}: truncated shared library: a loadable segment ends at byte "
                f"{p_offset + p_filesz} but the file has {size} bytes. Rebuild or re-copy it."
            )
