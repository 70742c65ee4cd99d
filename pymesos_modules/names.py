"""Module names: what a valid one looks like, and how to show any text in a message.

A module name travels far: into flags (``--allocator=NAME``, comma-separated
``--isolation=a,b``), logger names, metric keys, endpoint output and log
lines.  A name holding a newline or an ANSI escape would forge log lines or
repaint an operator's terminal, a ``/`` would split metric paths, and a
16 MiB name would flood every log line that names it.  So names are checked
once, where they enter (a descriptor, a ``--modules`` entry), and any text a
message quotes from a module or a config goes through :func:`shown` first.
"""

from __future__ import annotations

import re

#: Longest module name accepted, in characters (Mesos' own are under 60).
MAX_NAME_LENGTH = 255
#: Letters, digits, ``_``, ``.``, ``-``; not starting with ``.`` or ``-``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
NAME_RULE = (
    f"a module name is 1 to {MAX_NAME_LENGTH} letters, digits, '_', '.' or '-', "
    "not starting with '.' or '-'"
)
#: How many characters of a quoted text a message shows before cutting it short.
SHOWN_LENGTH = 80


def escaped(text: str, limit: int = SHOWN_LENGTH) -> str:
    """``text`` made safe for one line: non-printables as Python escapes, cut to ``limit``.

    Control characters (newline, ESC, ...) and other non-printables are shown
    as escapes, so nothing a module or a config says reaches a log or terminal
    raw; a long text keeps its head and says how long it was.
    """
    head = text[:limit]
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in head)
    return f"{safe}... ({len(text)} characters)" if len(text) > limit else safe


def shown(text: str, limit: int = SHOWN_LENGTH) -> str:
    """``text`` quoted for a message: :func:`escaped`, in single quotes."""
    head = escaped(text[:limit], limit).replace("'", "\\'")
    return f"'{head}'... ({len(text)} characters)" if len(text) > limit else f"'{head}'"


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid module name (None when it is)."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is {len(name)} characters long, more than {MAX_NAME_LENGTH}"
    if NAME_PATTERN.fullmatch(name) is None:
        return f"{NAME_RULE}"
    return None
