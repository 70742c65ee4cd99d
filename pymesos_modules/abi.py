"""The only file that touches cffi: the C ABI seen from Python.

Core API (stable; kind wrappers build on it):

- :data:`ffi`: the one FFI, its cdef generated from ``include/pymesos_modules/*.h``.
- :func:`open_library(path)` -> :class:`Library`: dlopen by absolute path, one shared
  handle per file.  A library counts *users* (live instances) and *holders*
  (managers that loaded it); :meth:`Library.unhold` dlcloses after the last
  holder, :meth:`Library.close` refuses while either count is non-zero.
- :meth:`Library.descriptors` -> list of :class:`DescriptorInfo` with the raw checks
  of DESIGN.md applied in order (:func:`check_descriptor`).
- :class:`HostApi`: the host function table for one module (logging, clock, metrics).
- :class:`NativeInstance`: owns one created instance; destroys it exactly once.
- :meth:`NativeInstance.call(call, *args)` (also :func:`call_status(instance, call,
  *args)`): call ``vtable->call(instance, *args, error)`` where the function returns a
  ``pmm_status``; raises :class:`NativeCallError` (module, call, status, message).
  :meth:`NativeInstance.has(call)` says whether the table is new enough to have it.
- :data:`STATUS`, :data:`KIND_NAMES`, :data:`KIND_VALUES`, :data:`MAGIC`,
  :data:`ABI_MAJOR`, :data:`ABI_MINOR`: constants read from the cdef enums.
- :class:`ErrorBuffer`, :class:`Parameters`, :func:`keep_new`: marshalling helpers.

Kind sections below (allocator, isolator, ...) marshal each kind's structs.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cffi

from pymesos_modules import errors, metrics
from pymesos_modules._cdef import CDEF

ffi = cffi.FFI()
ffi.cdef(CDEF)

ENTRY_POINT = "pmm_module_entry"
#: Sanity bound on the count an entry point reports (a garbage count would
#: make the host read past the module's descriptor array).
MAX_MODULES_PER_LIBRARY = 4096


def enum_constants(enum: str) -> dict[str, int]:
    """name -> value of a C enum in the cdef (the headers are the one source of truth)."""
    return dict(ffi.typeof(f"enum {enum}").relements)


_ABI = enum_constants("pmm_abi_constants")
MAGIC: int = _ABI["PMM_MAGIC"]
ABI_MAJOR: int = _ABI["PMM_ABI_MAJOR"]
ABI_MINOR: int = _ABI["PMM_ABI_MINOR"]
ERROR_CAPACITY: int = _ABI["PMM_ERROR_CAPACITY"]
#: name -> value of the pmm_status codes (PMM_OK, PMM_ERR_INVALID, ...).
STATUS: dict[str, int] = enum_constants("pmm_status_codes")

#: Size of pmm_module_descriptor as of ABI 1.0: anything smaller is truncated.
DESCRIPTOR_MIN_SIZE: int = ffi.sizeof("pmm_module_descriptor")

#: kind value -> kind name ("allocator", ...), from enum pmm_kind_values.
KIND_NAMES: dict[int, str] = {
    value: name.removeprefix("PMM_KIND_").lower()
    for name, value in enum_constants("pmm_kind_values").items()
}
KIND_VALUES: dict[str, int] = {name: value for value, name in KIND_NAMES.items()}

#: Each kind's function table type, for its minimum-size check.  Kinds whose
#: header is not part of this build simply have no table to check yet.
_VTABLE_TYPES: dict[str, str] = {
    "allocator": "pmm_allocator_vtable",
    "isolator": "pmm_isolator_vtable",
    "hook": "pmm_hook_vtable",
    "resource_estimator": "pmm_resource_estimator_vtable",
    "qos_controller": "pmm_qos_controller_vtable",
    "authorizer": "pmm_authorizer_vtable",
    "http_authenticator": "pmm_http_authenticator_vtable",
}

#: Calls appended to a kind's function table after ABI 1.0, first one first.
#: A table may end before them (a module built against older headers): the
#: size check asks only for the fields before the first one, and
#: :meth:`NativeInstance.has` tells the wrappers whether a module has them.
_VTABLE_APPENDED: dict[str, tuple[str, ...]] = {
    "pmm_allocator_vtable": ("allocate_agents",),
}

_FIX_REBUILD = (
    "Rebuild it against this release's headers "
    "(cmake -DCMAKE_PREFIX_PATH=$(python -m pymesos_modules --cmakedir), "
    "find_package(PyMesosModules))."
)

logger = logging.getLogger(__name__)


def vtable_type(kind: str) -> str | None:
    """The C type name of ``kind``'s function table, if this build knows it."""
    name = _VTABLE_TYPES.get(kind)
    if name is None:
        return None
    try:
        ffi.typeof(name)
    except ffi.error:
        return None
    return name


def vtable_min_size(table_type: str) -> int:
    """The smallest struct_size a module's ``table_type`` may have: its ABI 1.0 fields."""
    appended = _VTABLE_APPENDED.get(table_type)
    if appended:
        return int(ffi.offsetof(table_type, appended[0]))
    return int(ffi.sizeof(table_type))


def _string(pointer: Any) -> str:
    return "" if pointer == ffi.NULL else ffi.string(pointer).decode("utf-8", "replace")


class NativeCallError(errors.ModuleError):
    """A call into a module returned a non-zero status; carries the module's message."""

    def __init__(self, module: str, call: str, status: int, message: str) -> None:
        self.module = module
        self.call = call
        self.status = status
        self.detail = message
        super().__init__(f"module '{module}': {call}() failed (status {status}): {message}")


# --- libraries ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescriptorInfo:
    """What a descriptor says about its module, read before any module code runs."""

    library: str
    index: int
    name: str
    kind: str
    kind_value: int
    module_version: str
    author_name: str
    author_email: str
    description: str
    abi_major: int
    abi_minor: int
    struct_size: int
    has_compatible: bool
    pointer: Any  # pmm_module_descriptor*

    @property
    def abi_version(self) -> str:
        """``major.minor`` the module was built for."""
        return f"{self.abi_major}.{self.abi_minor}"


@dataclass(frozen=True, slots=True)
class BadDescriptor:
    """A descriptor that failed its checks; ``name`` is None when it was unreadable."""

    index: int
    name: str | None
    error: errors.DescriptorError


def descriptor_name(pointer: Any) -> str | None:
    """The module name of a descriptor, if its header is sound enough to read it."""
    if pointer == ffi.NULL or pointer.magic != MAGIC or pointer.abi_major != ABI_MAJOR:
        return None
    if pointer.struct_size < DESCRIPTOR_MIN_SIZE:
        return None
    return _string(pointer.name) or None


class Library:
    """One dlopen()ed module library.  Create through :func:`open_library`.

    Two counts keep it open: *users* (live instances, :meth:`acquire` /
    :meth:`release`) and *holders* (module managers that registered its
    modules, :meth:`hold` / :meth:`unhold`).  The handle is shared process-wide,
    so one manager unloading must not dlclose it under another.
    """

    def __init__(self, path: str, handle: Any) -> None:
        self.path = path
        self._handle = handle
        self._users = 0
        self._holders = 0
        self._closed = False
        # Finalizers may release from any thread (the garbage collector's).
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        """True once dlclose() has run."""
        return self._closed

    @property
    def users(self) -> int:
        """How many live instances keep this library open."""
        return self._users

    @property
    def holders(self) -> int:
        """How many module managers have this library loaded."""
        return self._holders

    def acquire(self) -> None:
        """Record one more user (a live instance); the library stays open while used."""
        with self._lock:
            self._users += 1

    def release(self) -> None:
        """Drop one user recorded by :meth:`acquire`."""
        with self._lock:
            self._users -= 1

    def hold(self) -> None:
        """Record a module manager that registered this library's modules."""
        with self._lock:
            self._holders += 1

    def unhold(self) -> None:
        """Drop a holder; dlclose() when it was the last one.

        Refused (:class:`errors.ModuleInUseError`, nothing changed) when it is
        the last holder and instances are still alive.
        """
        with self._lock:
            last = self._holders <= 1
            if last and self._users > 0:
                raise self._in_use()
            self._holders = max(self._holders - 1, 0)
        if last:
            self.close()

    def _in_use(self) -> errors.ModuleInUseError:
        return errors.ModuleInUseError(
            f"{self.path}: cannot unload: {self._users} instance(s) of its modules "
            f"are still alive; destroy them first"
        )

    def descriptor_pointers(self) -> list[Any]:
        """Call the entry point and return its raw descriptor pointers.

        Raises :class:`errors.EntryPointError` when the library has none.
        """
        try:
            entry = self._handle.pmm_module_entry
        except (AttributeError, NotImplementedError) as exc:
            raise errors.EntryPointError(
                f"{self.path}: not a pymesos-modules library: it exports no "
                f"'{ENTRY_POINT}' function ({exc}). Build it with pmm_add_module() and "
                f"export its modules with PMM_EXPORT_MODULES/PMM_MODULE."
            ) from None
        count = ffi.new("uint32_t *")
        array = entry(count)
        if array == ffi.NULL and count[0] != 0:
            raise errors.EntryPointError(
                f"{self.path}: {ENTRY_POINT}() returned NULL with count {count[0]}"
            )
        if count[0] > MAX_MODULES_PER_LIBRARY:
            # Reading that many pointers would walk off the array: refuse first.
            raise errors.EntryPointError(
                f"{self.path}: {ENTRY_POINT}() reports {count[0]} modules, more than the "
                f"{MAX_MODULES_PER_LIBRARY} a library may hold; it probably did not set *count"
            )
        return [array[i] for i in range(count[0])]

    def descriptors(self) -> list[DescriptorInfo]:
        """Every descriptor of the library, each checked (see :func:`check_descriptor`)."""
        return [
            check_descriptor(self.path, index, pointer)
            for index, pointer in enumerate(self.descriptor_pointers())
        ]

    def check_each(self) -> tuple[list[DescriptorInfo], list[BadDescriptor]]:
        """Check every descriptor on its own: the good ones, and each failure.

        Unlike :meth:`descriptors`, one bad descriptor (say, a kind only a newer
        host knows) does not hide the library's other modules.
        """
        good: list[DescriptorInfo] = []
        bad: list[BadDescriptor] = []
        for index, pointer in enumerate(self.descriptor_pointers()):
            try:
                good.append(check_descriptor(self.path, index, pointer))
            except errors.DescriptorError as exc:
                bad.append(BadDescriptor(index, descriptor_name(pointer), exc))
        return good, bad

    def close(self) -> None:
        """dlclose() the library.  Refused while instances live or a manager holds it."""
        with self._lock:
            if self._closed:
                return
            if self._users > 0:
                raise self._in_use()
            if self._holders > 0:
                raise errors.ModuleInUseError(
                    f"{self.path}: cannot unload: {self._holders} module manager(s) still "
                    f"have it loaded; unload it through them"
                )
            with _libraries_lock:
                if _libraries.get(self.path) is self:
                    del _libraries[self.path]
            ffi.dlclose(self._handle)
            self._closed = True
        logger.debug("unloaded %s", self.path)


_libraries: dict[str, Library] = {}
_libraries_lock = threading.Lock()

_ELF_MAGIC = b"\x7fELF"
_PT_LOAD = 1


def elf_preflight(path: str) -> None:
    """Refuse files dlopen() would crash on, before calling it.

    dlopen() maps a truncated shared object and then touches pages past the end
    of the file, which kills the whole process with SIGBUS.  A host that must
    survive bad modules therefore checks that the ELF header and every loadable
    segment and section table fit inside the file first.
    """

    with open(path, "rb") as handle:
        head = handle.read(64)
        size = os.fstat(handle.fileno()).st_size
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
        handle.seek(phoff)
        headers = handle.read(phentsize * phnum)
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


def open_library(path: str | os.PathLike[str]) -> Library:
    """dlopen a library by absolute path; the same file opened twice shares one handle.

    Raises :class:`errors.LibraryNotFoundError` (missing or unreadable) or
    :class:`errors.LibraryOpenError` (dlopen failed, with the dlerror text).
    """
    resolved = str(Path(path).resolve())
    with _libraries_lock:
        existing = _libraries.get(resolved)
        if existing is not None and not existing.closed:
            return existing
        if not os.path.isfile(resolved):
            raise errors.LibraryNotFoundError(f"{resolved}: no such module library file")
        if not os.access(resolved, os.R_OK):
            raise errors.LibraryNotFoundError(f"{resolved}: module library is not readable")
        elf_preflight(resolved)
        try:
            # RTLD_LOCAL: modules must not see each other's symbols.
            handle = ffi.dlopen(resolved, ffi.RTLD_NOW | ffi.RTLD_LOCAL)
        except OSError as exc:
            # cffi appends a note about ctypes.util.find_library(); the dlerror text is
            # what says why (invalid ELF header, wrong class, undefined symbol...).
            reason = str(exc).split(".  Additionally,")[0]
            raise errors.LibraryOpenError(
                f"{resolved}: cannot load as a shared library: {reason}. Is it a module built "
                f"for this machine's architecture with all its dependencies installed?"
            ) from None
        library = Library(resolved, handle)
        _libraries[resolved] = library
        return library


def loaded_library_paths() -> list[str]:
    """Paths of every library currently open through :func:`open_library`."""
    with _libraries_lock:
        return sorted(_libraries)


def check_descriptor(path: str, index: int, pointer: Any) -> DescriptorInfo:
    """Apply the descriptor checks in DESIGN.md's order and describe the module.

    magic -> ABI major -> struct size -> ABI minor -> required fields -> known
    kind -> function table size.  Each failure raises its own error class.
    """
    where = f"{path}: module #{index}"
    if pointer == ffi.NULL:
        raise errors.MissingFieldError(f"{where}: descriptor pointer is NULL")
    d = pointer
    if d.magic != MAGIC:
        raise errors.BadMagicError(
            f"{where}: bad magic 0x{d.magic:08X}, expected 0x{MAGIC:08X}: the entry point "
            f"does not return pymesos-modules descriptors. {_FIX_REBUILD}"
        )
    if d.abi_major != ABI_MAJOR:
        raise errors.AbiMajorMismatchError(
            f"{where}: built for ABI {d.abi_major}.{d.abi_minor}; this host speaks ABI "
            f"{ABI_MAJOR}.{ABI_MINOR} (major must be {ABI_MAJOR}). {_FIX_REBUILD}"
        )
    if d.struct_size < DESCRIPTOR_MIN_SIZE:
        raise errors.StructSizeError(
            f"{where}: descriptor struct_size is {d.struct_size} bytes, expected at least "
            f"{DESCRIPTOR_MIN_SIZE} for ABI {ABI_MAJOR}.x. {_FIX_REBUILD}"
        )
    if d.abi_minor > ABI_MINOR:
        raise errors.AbiMinorTooNewError(
            f"{where}: built for ABI {d.abi_major}.{d.abi_minor}; this host speaks ABI "
            f"{ABI_MAJOR}.{ABI_MINOR} (minor <= {ABI_MINOR} accepted). Rebuild it against "
            f"this release's headers or upgrade pymesos-modules."
        )
    name = _string(d.name)
    where = f"{path}: module '{name}'" if name else where
    if not name:
        raise errors.MissingFieldError(f"{where}: descriptor has an empty name")
    for field_name in ("create", "destroy"):
        if getattr(d, field_name) == ffi.NULL:
            raise errors.MissingFieldError(f"{where}: descriptor has no {field_name}() function")
    kind = KIND_NAMES.get(d.kind)
    if kind is None:
        known = ", ".join(f"{v}={n}" for v, n in KIND_NAMES.items())
        raise errors.UnknownKindError(
            f"{where}: unknown kind {d.kind} (this host knows {known}). It may need a newer "
            f"pymesos-modules."
        )
    table_type = vtable_type(kind)
    if table_type is not None:
        if d.vtable == ffi.NULL:
            raise errors.MissingFieldError(f"{where}: {kind} module has no function table")
        size = ffi.cast("const uint32_t *", d.vtable)[0]
        if size < vtable_min_size(table_type):
            raise errors.StructSizeError(
                f"{where}: {table_type} struct_size is {size} bytes, expected at least "
                f"{vtable_min_size(table_type)}. {_FIX_REBUILD}"
            )
    return DescriptorInfo(
        library=path,
        index=index,
        name=name,
        kind=kind,
        kind_value=int(d.kind),
        module_version=_string(d.module_version),
        author_name=_string(d.author_name),
        author_email=_string(d.author_email),
        description=_string(d.description),
        abi_major=int(d.abi_major),
        abi_minor=int(d.abi_minor),
        struct_size=int(d.struct_size),
        has_compatible=d.compatible != ffi.NULL,
        pointer=d,
    )


# --- errors and parameters -----------------------------------------------------


class ErrorBuffer:
    """A reusable host-owned ``pmm_error`` (one per instance and calling thread)."""

    def __init__(self) -> None:
        self._chars = ffi.new("char[]", ERROR_CAPACITY)
        self.struct = ffi.new("pmm_error *")
        self.struct.struct_size = ffi.sizeof("pmm_error")
        self.struct.capacity = ERROR_CAPACITY
        self.struct.message = self._chars

    def clear(self) -> None:
        """Empty the message before a call."""
        self._chars[0] = b"\0"

    def text(self) -> str:
        """The message the module wrote (or a placeholder if it wrote none)."""
        message = ffi.string(self._chars).decode("utf-8", "replace")
        return message or "(the module gave no message)"


class Parameters:
    """``pmm_parameters`` built from a mapping; keeps its strings alive."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._keep = []
        self.items = ffi.new("pmm_parameter[]", max(len(values), 1))
        for i, (key, value) in enumerate(values.items()):
            k, v = ffi.new("char[]", key.encode()), ffi.new("char[]", str(value).encode())
            self._keep += [k, v]
            self.items[i].key, self.items[i].value = k, v
        self.struct = ffi.new("pmm_parameters *")
        self.struct.struct_size = ffi.sizeof("pmm_parameters")
        self.struct.count = len(values)
        self.struct.items = self.items


# --- host API --------------------------------------------------------------------

_LOG_LEVELS = {10: logging.DEBUG, 20: logging.INFO, 30: logging.WARNING, 40: logging.ERROR}


@ffi.callback("void(void *, int32_t, const char *)")
def _host_log(context: Any, level: int, message: Any) -> None:
    host = ffi.from_handle(context)
    text = _string(message)
    host.logger.log(_LOG_LEVELS.get(level, level if level > 0 else logging.INFO), "%s", text)


@ffi.callback("uint64_t(void *)")
def _host_monotonic_ns(context: Any) -> int:
    return time.monotonic_ns()


@ffi.callback("void(void *, const char *, double)")
def _host_counter_add(context: Any, name: Any, delta: float) -> None:
    host = ffi.from_handle(context)
    host.metrics.counter_add(_string(name), delta)


@ffi.callback("void(void *, const char *, double)")
def _host_gauge_set(context: Any, name: Any, value: float) -> None:
    host = ffi.from_handle(context)
    host.metrics.gauge_set(_string(name), value)


@ffi.callback("pmm_status(void *, const char *, uint64_t)")
def _output_append(context: Any, data: Any, length: int) -> int:
    try:
        ffi.from_handle(context).append(ffi.unpack(data, length))
    except MemoryError:
        return STATUS["PMM_ERR_NO_MEMORY"]
    return 0


class Output:
    """A host-owned ``pmm_output`` that collects what one call appends to it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._handle = ffi.new_handle(self.chunks)
        self.struct = ffi.new("pmm_output *")
        self.struct.struct_size = ffi.sizeof("pmm_output")
        self.struct.context = self._handle
        self.struct.append = _output_append

    def text(self) -> str:
        """Everything appended, decoded as UTF-8."""
        return b"".join(self.chunks).decode("utf-8", "replace")


class HostApi:
    """The ``pmm_host_api`` table handed to one module's compatible()/create().

    Log lines go to ``logging.getLogger("pymesos_modules.module.<name>")`` and
    metrics into :data:`metrics.REGISTRY` (or the registry given).
    """

    def __init__(self, module_name: str, registry: metrics.MetricsRegistry | None = None) -> None:
        self.module_name = module_name
        self.logger = logging.getLogger(f"pymesos_modules.module.{module_name}")
        self.metrics = registry if registry is not None else metrics.REGISTRY
        self._handle = ffi.new_handle(self)
        self.struct = ffi.new("pmm_host_api *")
        s = self.struct
        s.struct_size = ffi.sizeof("pmm_host_api")
        s.abi_major, s.abi_minor = ABI_MAJOR, ABI_MINOR
        s.context = self._handle
        s.log = _host_log
        s.monotonic_ns = _host_monotonic_ns
        s.counter_add = _host_counter_add
        s.gauge_set = _host_gauge_set


# --- instances ---------------------------------------------------------------------


def _destroy(library: Library, destroy: Any, pointer: Any, name: str, host: HostApi) -> None:
    # ``host`` is only passed to keep the host API table alive: the module may
    # log or publish metrics from destroy() through the pointer it kept.
    try:
        destroy(pointer)
    finally:
        library.release()
        logger.debug("destroyed an instance of module '%s'", name)


class NativeInstance:
    """One instance created by a module's create(); destroyed exactly once.

    Use as a context manager or call :meth:`destroy`; a finalizer destroys
    an instance that is garbage-collected without it.  The library stays
    open (and cannot be unloaded) while the instance lives.
    """

    def __init__(
        self,
        library: Library,
        info: DescriptorInfo,
        parameters: Mapping[str, str] | None = None,
        registry: metrics.MetricsRegistry | None = None,
    ) -> None:
        self.library = library
        self.info = info
        self.name = info.name
        self.parameters = dict(parameters or {})
        self.host = HostApi(info.name, registry)
        self.error = ErrorBuffer()
        # cffi releases the GIL during calls, so two threads may call one
        # (thread-safe) instance at once: each thread gets its own buffer.
        self._thread_errors = threading.local()
        descriptor = info.pointer
        if descriptor.compatible != ffi.NULL:
            self.error.clear()
            if descriptor.compatible(self.host.struct, self.error.struct) != 0:
                raise errors.IncompatibleModuleError(
                    f"{library.path}: module '{info.name}' says it cannot run on this host: "
                    f"{self.error.text()}"
                )
        params = Parameters(self.parameters)
        out = ffi.new("void **")
        self.error.clear()
        status = descriptor.create(self.host.struct, params.struct, out, self.error.struct)
        if status != 0:
            raise errors.ModuleCreateError(
                f"{library.path}: module '{info.name}' create() failed (status {status}): "
                f"{self.error.text()}"
            )
        self.pointer = out[0]
        self.vtable = (
            ffi.cast(f"const {info_vtable}*", descriptor.vtable)
            if (info_vtable := vtable_type(info.kind)) is not None
            else None
        )
        library.acquire()
        self._finalizer = weakref.finalize(
            self, _destroy, library, descriptor.destroy, self.pointer, info.name, self.host
        )

    @property
    def alive(self) -> bool:
        """False once destroyed."""
        return self._finalizer.alive

    def destroy(self) -> None:
        """Destroy the native instance (idempotent)."""
        self._finalizer()

    def __enter__(self) -> NativeInstance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def has(self, call: str) -> bool:
        """True when the module's function table is new enough to have ``call`` and sets it."""
        if self.vtable is None:
            return False
        table = self.vtable
        type_name = ffi.typeof(table).item.cname
        end = ffi.offsetof(type_name, call) + ffi.sizeof(getattr(table, call))
        return table.struct_size >= end and getattr(table, call) != ffi.NULL

    def call(self, call: str, *args: Any) -> None:
        """Call ``vtable->call(self, *args, error)``; raise :class:`NativeCallError` on failure."""
        if not self.alive:
            raise NativeCallError(
                self.name, call, STATUS["PMM_ERR_STATE"], "instance was already destroyed"
            )
        if not self.has(call):
            raise NativeCallError(
                self.name,
                call,
                STATUS["PMM_ERR_UNSUPPORTED"],
                "the module does not implement this call",
            )
        try:  # inline rather than _error_buffer(): this is on every state-change path
            error = self._thread_errors.buffer
        except AttributeError:
            error = self._error_buffer()
        error.clear()
        status = getattr(self.vtable, call)(self.pointer, *args, error.struct)
        if status != 0:
            raise NativeCallError(self.name, call, int(status), error.text())

    def call_output(self, call: str, *args: Any) -> str:
        """Call ``vtable->call(self, *args, output, error)``; return what it wrote.

        ``str`` arguments are passed as UTF-8 ``const char *``.  Used by the
        kinds whose calls answer with a document (hooks, isolator prepare).
        """
        output = Output()
        encoded = [a.encode() if isinstance(a, str) else a for a in args]
        self.call(call, *encoded, output.struct)
        return output.text()

    def call_flag(self, call: str, *args: Any) -> bool:
        """Call ``vtable->call(self, *args, int32_t *flag, error)``; the flag as a bool."""
        flag = ffi.new("int32_t *")
        encoded = [a.encode() if isinstance(a, str) else a for a in args]
        self.call(call, *encoded, flag)
        return bool(flag[0])

    def _error_buffer(self) -> ErrorBuffer:
        """This thread's reusable error buffer for calls on this instance."""
        buffer: ErrorBuffer | None = getattr(self._thread_errors, "buffer", None)
        if buffer is None:
            buffer = self._thread_errors.buffer = ErrorBuffer()
        return buffer


def call_status(instance: NativeInstance, call: str, *args: Any) -> None:
    """Module-level spelling of :meth:`NativeInstance.call`."""
    instance.call(call, *args)


Factory = Callable[..., Any]


# --- allocator kind ------------------------------------------------------------------


class AllocatorCalls:
    """Marshalling for ``pmm_allocator_vtable`` calls on one native instance.

    Takes plain Python values (ints, floats, sequences) so this module need not
    know the Python records of kinds/allocator.py; reuses its scratch buffers
    (``ffi.new`` zero-fills, which costs at every size).  Each method is one
    ABI crossing and raises :class:`NativeCallError` on a non-zero status.
    """

    def __init__(self, instance: NativeInstance) -> None:
        self.instance = instance
        self.resource_count = 0
        self._result = ffi.new("pmm_allocation_result *")
        self._result.struct_size = ffi.sizeof("pmm_allocation_result")
        self._stats = ffi.new("pmm_allocator_stats *")
        self._stats.struct_size = ffi.sizeof("pmm_allocator_stats")
        self._vector = ffi.new("double[]", 1)
        #: Whether the module's table has allocate_agents (tables built before it do not).
        self.has_allocate_agents = instance.has("allocate_agents")

    def _doubles(self, values: Any) -> Any:
        return ffi.new("double[]", [float(v) for v in values]) if len(values) else ffi.NULL

    def initialize(
        self,
        resource_names: list[str],
        min_allocatable: list[list[float]],
        fairness_excluded: list[bool],
        random_seed: int,
        allocation_interval: float,
        filter_gpu_resources: bool,
    ) -> None:
        """pmm_allocator_vtable.initialize."""
        names = [ffi.new("char[]", n.encode()) for n in resource_names]
        name_array = ffi.new("const char *[]", names)
        flat = [v for row in min_allocatable for v in row]
        minimum = self._doubles(flat)
        excluded = ffi.new("uint8_t[]", [1 if x else 0 for x in fairness_excluded])
        options = ffi.new("pmm_allocator_options *")
        options.struct_size = ffi.sizeof("pmm_allocator_options")
        options.resource_count = len(resource_names)
        options.resource_names = name_array
        options.min_allocatable_count = len(min_allocatable)
        options.min_allocatable = minimum
        options.fairness_excluded = excluded
        options.random_seed = random_seed & 0xFFFFFFFFFFFFFFFF
        options.allocation_interval = allocation_interval
        options.filter_gpu_resources = 1 if filter_gpu_resources else 0
        self.instance.call("initialize", options)
        self.resource_count = len(resource_names)
        self._vector = ffi.new("double[]", max(self.resource_count, 1))

    def vector(self, values: Any) -> Any:
        """A reusable ``double[resource_count]`` holding ``values`` (valid until next use)."""
        buffer = self._vector
        for i, v in enumerate(values):
            buffer[i] = v
        return buffer

    def framework_info(
        self, roles: list[int], suppressed: list[bool], capabilities: int, active: bool
    ) -> tuple[Any, list[Any]]:
        """A ``pmm_framework_info`` and the arrays it points to (keep both alive)."""
        role_array = ffi.new("pmm_handle[]", roles or [0])
        suppressed_array = ffi.new("uint8_t[]", [1 if s else 0 for s in suppressed] or [0])
        info = ffi.new("pmm_framework_info *")
        info.struct_size = ffi.sizeof("pmm_framework_info")
        info.role_count = len(roles)
        info.roles = role_array
        info.suppressed = suppressed_array
        info.capabilities = capabilities
        info.active = 1 if active else 0
        return info, [role_array, suppressed_array]

    def agent_info(
        self,
        unreserved: list[float],
        reservations: list[tuple[int, list[float]]],
        revocable: list[float] | None,
        allocations: list[tuple[int, int, int, int, list[float]]],
        active: bool,
    ) -> tuple[Any, list[Any]]:
        """A ``pmm_agent_info`` and the arrays it points to (keep both alive)."""
        keep: list[Any] = []
        info = ffi.new("pmm_agent_info *")
        info.struct_size = ffi.sizeof("pmm_agent_info")
        info.unreserved = keep_new(keep, "double[]", unreserved)
        info.reservation_count = len(reservations)
        info.reservation_roles = keep_new(keep, "pmm_handle[]", [r for r, _ in reservations] or [0])
        info.reservations = keep_new(
            keep, "double[]", [v for _, vec in reservations for v in vec] or [0.0]
        )
        info.revocable = ffi.NULL if revocable is None else keep_new(keep, "double[]", revocable)
        entries = keep_new(keep, "pmm_allocation[]", max(len(allocations), 1))
        for i, (framework, role, pool, flags, resources) in enumerate(allocations):
            entries[i].framework, entries[i].role, entries[i].pool = framework, role, pool
            entries[i].flags = flags
            entries[i].resources = keep_new(keep, "double[]", resources)
        info.allocation_count = len(allocations)
        info.allocations = entries
        info.active = 1 if active else 0
        return info, keep

    def allocate(self, now: float, agents: Any = None) -> tuple[Any, Any, int]:
        """Run a cycle; return zero-copy buffers over the rows and values, and the row count.

        ``agents``: None for every agent (``allocate``), else a C-contiguous
        uint32 array (``allocate_agents``, read in place without a copy);
        the caller checks :attr:`has_allocate_agents` first.
        """
        result = self._result
        if agents is None:
            self.instance.call("allocate", now, result)
        else:
            handles = ffi.from_buffer("pmm_handle[]", agents) if len(agents) else ffi.NULL
            self.instance.call("allocate_agents", now, len(agents), handles, result)
        count = result.row_count
        if count == 0:
            return b"", b"", 0
        rows = ffi.buffer(result.rows, count * ffi.sizeof("pmm_offer_row"))
        values = ffi.buffer(result.values, count * self.resource_count * ffi.sizeof("double"))
        return rows, values, count

    def stats(self) -> dict[str, float]:
        """pmm_allocator_vtable.stats as a dict of floats."""
        self.instance.call("stats", self._stats)
        s = self._stats
        fields = [name for name, _ in ffi.typeof("pmm_allocator_stats").fields]
        return {f: float(getattr(s, f)) for f in fields if f not in ("struct_size", "reserved0")}


def keep_new(keep: list[Any], ctype: str, init: Any) -> Any:
    """``ffi.new`` whose result is appended to ``keep`` so it outlives the call."""
    value = ffi.new(ctype, init)
    keep.append(value)
    return value


# --- isolator / hook / resource_estimator / qos_controller kinds (ISSUE 5) -----------
# Each kind adds its marshalling class here, built on NativeInstance.call(); its
# vtable type is already listed in _VTABLE_TYPES and checked once its header exists.


def _names_and_values(keep: list[Any], resources: Mapping[str, float]) -> tuple[Any, Any]:
    """A ``const char *[]`` and a ``double[]`` for a resource mapping (kept in ``keep``)."""
    names = [keep_new(keep, "char[]", n.encode()) for n in resources]
    return (
        keep_new(keep, "const char *[]", names or [ffi.NULL]),
        keep_new(keep, "double[]", [float(v) for v in resources.values()] or [0.0]),
    )


class IsolatorCalls:
    """Marshalling for ``pmm_isolator_vtable`` calls on one native instance.

    Takes and returns plain Python values; JSON documents come back as text for
    kinds/isolator.py to parse.
    """

    def __init__(self, instance: NativeInstance) -> None:
        self.instance = instance
        self._stats = ffi.new("pmm_resource_statistics *")
        self._stat_fields = [
            name
            for name, _ in ffi.typeof("pmm_resource_statistics").fields
            if name not in ("struct_size", "reserved0")
        ]

    def prepare(
        self,
        container_id: str,
        task_id: str,
        framework_id: str,
        sandbox: str,
        user: str | None,
        resources: Mapping[str, float],
        task_json: str,
    ) -> str:
        """pmm_isolator_vtable.prepare; the launch-info JSON the module wrote."""
        keep: list[Any] = []
        config = keep_new(keep, "pmm_container_config *", None)
        config.struct_size = ffi.sizeof("pmm_container_config")
        config.resource_count = len(resources)
        config.container_id = keep_new(keep, "char[]", container_id.encode())
        config.task_id = keep_new(keep, "char[]", task_id.encode())
        config.framework_id = keep_new(keep, "char[]", framework_id.encode())
        config.sandbox = keep_new(keep, "char[]", sandbox.encode())
        config.user = ffi.NULL if user is None else keep_new(keep, "char[]", user.encode())
        config.resource_names, config.resource_values = _names_and_values(keep, resources)
        config.task_json = keep_new(keep, "char[]", task_json.encode())
        return self.instance.call_output("prepare", config)

    def isolate(self, container_id: str, pid: int) -> None:
        """pmm_isolator_vtable.isolate."""
        self.instance.call("isolate", container_id.encode(), pid)

    def update(self, container_id: str, resources: Mapping[str, float]) -> None:
        """pmm_isolator_vtable.update."""
        keep: list[Any] = []
        names, values = _names_and_values(keep, resources)
        self.instance.call("update", container_id.encode(), len(resources), names, values)

    def usage(self, container_id: str) -> dict[str, float]:
        """pmm_isolator_vtable.usage: the measured fields (NaN ones dropped)."""
        stats = self._stats
        stats.struct_size = ffi.sizeof("pmm_resource_statistics")
        for name in self._stat_fields:
            setattr(stats, name, float("nan"))
        self.instance.call("usage", container_id.encode(), stats)
        values = {name: float(getattr(stats, name)) for name in self._stat_fields}
        return {name: value for name, value in values.items() if value == value}

    def watch(self, container_id: str, wait_status: int | None) -> str:
        """pmm_isolator_vtable.watch; the limitation JSON (empty: none)."""
        exited = 0 if wait_status is None else 1
        return self.instance.call_output("watch", container_id, exited, wait_status or 0)

    def cleanup(self, container_id: str) -> None:
        """pmm_isolator_vtable.cleanup."""
        self.instance.call("cleanup", container_id.encode())


# --- authorizer / http_authenticator kinds (ISSUE 4) ------------------------------------
