"""cffi's view of every ABI struct matches what a C compiler lays out.

The cdef is generated from the headers, but cffi parses it on its own: this
test compiles a C program printing sizeof/offsetof of every struct field and
compares each number with ffi.sizeof/ffi.offsetof.
"""

from __future__ import annotations

import subprocess

from pymesos_modules import abi, paths


def _struct_typedefs() -> list[str]:
    typedefs, _, _ = abi.ffi.list_types()
    return sorted(t for t in typedefs if abi.ffi.typeof(t).kind == "struct")


def test_every_abi_struct_has_the_compilers_layout(tmp_path):
    structs = _struct_typedefs()
    assert "pmm_module_descriptor" in structs and "pmm_allocator_vtable" in structs
    lines = ["#include <stdio.h>", "#include <stddef.h>"]
    lines += [
        f"#include <pymesos_modules/{h.name}>"
        for h in sorted(paths.INCLUDE_DIR.glob("pymesos_modules/*.h"))
    ]
    lines.append("int main(void) {")
    expected = []
    for name in structs:
        lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
        expected.append(f"{name} {abi.ffi.sizeof(name)}")
        for field, _ in abi.ffi.typeof(name).fields:
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
            expected.append(f"{name}.{field} {abi.ffi.offsetof(name, field)}")
    lines += ["return 0;", "}"]
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines))
    binary = tmp_path / "layout"
    subprocess.run(
        [
            "cc",
            "-std=c11",
            "-Wall",
            "-Werror",
            f"-I{paths.INCLUDE_DIR}",
            str(source),
            "-o",
            str(binary),
        ],
        check=True,
    )
    actual = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    assert actual.splitlines() == expected


def test_kinds_known_from_the_start():
    assert set(abi.KIND_VALUES) == {
        "allocator", "isolator", "hook", "anonymous", "resource_estimator",
        "qos_controller", "authorizer", "http_authenticator", "master_contender",
        "master_detector",
    }  # fmt: skip
    assert abi.KIND_VALUES["master_contender"] == 9 and abi.KIND_VALUES["master_detector"] == 10
    assert abi.MAGIC == 0x504D4D31
