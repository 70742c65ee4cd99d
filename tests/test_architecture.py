"""The rules of docs/architecture.md that can be checked mechanically hold in the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pymesos_modules"


def imports(path: Path) -> set[str]:
    """Every absolute module name a file imports (``from pymesos_modules import x`` -> .x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources() -> dict[str, Path]:
    """'master/offers.py' -> path, for every Python file of the package (never _cdef.py)."""
    return {
        path.relative_to(PACKAGE).as_posix(): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_cdef.py"
    }


def importers(prefix: str) -> set[str]:
    """Files of the package importing anything under ``prefix``."""
    return {
        name
        for name, path in sources().items()
        if any(m == prefix or m.startswith(prefix + ".") for m in imports(path))
    }


def test_only_abi_touches_cffi():
    assert importers("cffi") == {"abi.py"}


def test_only_the_command_lines_join_the_http_layer_to_master_and_agent():
    joined = {n for n in importers("pymesos_modules.http") if n.startswith(("master/", "agent/"))}
    assert joined <= {"master/cli.py", "agent/cli.py"}, joined


def test_only_the_command_line_imports_commands():
    for command in ("pymesos_modules.cli", "pymesos_modules.bench", "pymesos_modules.simulate"):
        top = command.rsplit(".", 1)[1]
        outside = {n for n in importers(command) if not n.startswith(f"{top}/")}
        assert outside <= {"__main__.py"}, (command, outside)


def test_children_are_started_only_through_paths():
    # Any argv naming the interpreter lives in paths.py (module_command), so the
    # rule for child processes is in one place.
    users = {name for name, path in sources().items() if "sys.executable" in path.read_text()}
    assert users == {"paths.py"}


def test_only_the_binding_sees_python_headers():
    pattern = re.compile(r"#\s*include\s*[<\"](Python\.h|pybind11/)")
    offenders = [
        path.relative_to(ROOT).as_posix()
        for folder in ("native", "include")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".c", ".cpp", ".h", ".hpp"} and pattern.search(path.read_text())
    ]
    assert offenders and all(p.startswith("native/python/") for p in offenders), offenders
