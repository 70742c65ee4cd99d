"""Name the module call a fatal signal interrupted (``native/host/crash_record.c``).

In-process modules can crash their host, as in Mesos.  What a crashed master
or agent still leaves is, as the last line on stderr::

    pymesos-modules: SIGSEGV in module code: /opt/m/libdrf.so: module 'drf': allocate()

Before each call into module code the host stores a pointer to a prepared
label in a per-thread slot and clears it after; a native signal handler reads
the slot of the thread that died.  :func:`install` puts that handler in place
*before* Python's :mod:`faulthandler`, which dumps the Python stacks and then
re-raises into it, so the record comes last.

Cost: labels are built once per library, module and call, and the hot
calls' are cached per instance (:class:`~pymesos_modules.abi.NativeInstance`),
so a call pays two pointer stores.  Without the native helper (not built) the slot is a plain buffer
and nothing is printed, but calls work the same.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import logging
import threading
from collections.abc import Iterator
from typing import Any

from pymesos_modules import paths

logger = logging.getLogger(__name__)

#: The native helper; not named lib*.so, so no module search ever picks it up.
LIBRARY = paths.BUNDLED_MODULES_DIR / "pmm_crash_record.so"

# ctypes, not cffi: abi.py is the one file that speaks cffi (and it calls in here).
try:
    _lib: Any = ctypes.CDLL(str(LIBRARY))
    _lib.pmm_crash_slot.restype = ctypes.POINTER(ctypes.c_void_p)
    _lib.pmm_crash_slot.argtypes = []
    _lib.pmm_crash_install.restype = ctypes.c_int
    _lib.pmm_crash_install.argtypes = []
except OSError as exc:  # pragma: no cover - a build without the helper
    logger.debug("no crash record helper (%s): crashes will not name their module", exc)
    _lib = None

_local = threading.local()
#: What a slot holds when no module call runs.
NULL = None
#: label text -> its C string, kept alive for the process (one per library, module, call).
_labels: dict[str, Any] = {}
_labels_lock = threading.Lock()


def slot() -> Any:
    """This thread's slot (``const char **``): store a :func:`label` in ``[0]``, NULL after."""
    try:
        return _local.slot
    except AttributeError:
        # Asked once per thread, so the handler never touches an unset TLS block.
        _local.slot = _lib.pmm_crash_slot() if _lib is not None else (ctypes.c_void_p * 1)()
        return _local.slot


def describe(library: str, module: str | None, call: str) -> str:
    """How the record names a call: library, module (when known) and call."""
    if module is None:
        return f"{library}: {call}"
    return f"{library}: module '{module}': {call}"


def label(library: str, module: str | None, call: str) -> int:
    """The address of a C string naming the call, to store in a slot (kept alive here)."""
    text = describe(library, module, call)
    with _labels_lock:
        buffer = _labels.get(text)
        if buffer is None:
            buffer = _labels[text] = ctypes.create_string_buffer(text.encode("utf-8", "replace"))
    return ctypes.addressof(buffer)


@contextlib.contextmanager
def running(library: str, module: str | None, call: str) -> Iterator[None]:
    """Record ``call`` as running in this thread for the duration of the block."""
    current = slot()
    current[0] = label(library, module, call)
    try:
        yield
    finally:
        current[0] = NULL


def install() -> bool:
    """Make fatal signals end with the crash record; False without the native helper.

    Python's faulthandler is (re-)enabled after the native handler, so its
    stack dump comes first and the record last.
    """
    if _lib is None:
        return False
    faulthandler.disable()
    installed = _lib.pmm_crash_install() == 0
    faulthandler.enable(all_threads=True)
    return installed
