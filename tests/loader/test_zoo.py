"""Every broken library in the zoo fails at its own check stage with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.modules import config_for

from pymesos_modules import abi, errors
from pymesos_modules.kinds.allocator import UNRESERVED, AllocatorOptions

# animal -> (exception class, parts the message must contain)
CASES = {
    "no_entry": (
        errors.EntryPointError,
        ["libzoo_no_entry.so", "pmm_module_entry", "pmm_add_module"],
    ),
    "garbage_count": (
        errors.EntryPointError,
        ["libzoo_garbage_count.so", "reports 4294967295 modules", "more than the 4096"],
    ),
    "bad_magic": (errors.BadMagicError, ["0xDEADBEEF", "0x504D4D31", "Rebuild"]),
    "wrong_major": (
        errors.AbiMajorMismatchError,
        ["ABI 2.0", "ABI 1.0", "major must be 1", "find_package(PyMesosModules)"],
    ),
    "short_struct": (errors.StructSizeError, ["struct_size is 40 bytes", "at least 88"]),
    "new_minor": (errors.AbiMinorTooNewError, ["ABI 1.9", "minor <= 0 accepted"]),
    "empty_name": (errors.MissingFieldError, ["empty name"]),
    "unknown_kind": (errors.UnknownKindError, ["unknown kind 99", "allocator"]),
    "allocator_without_table": (errors.MissingFieldError, ["zoo_Alloc", "no function table"]),
    "incompatible": (errors.IncompatibleModuleError, ["zoo_Good", "needs a GPU"]),
    "not_elf": (errors.LibraryOpenError, ["libnot_elf.so", "invalid ELF header"]),
    "truncated": (
        errors.LibraryOpenError,
        ["libtruncated.so", "truncated shared library", "the file has 2000 bytes"],
    ),
}


@pytest.mark.parametrize("animal", sorted(CASES))
def test_each_broken_library_fails_at_its_stage(zoo, manager, animal):
    exc_class, parts = CASES[animal]
    module_name = "zoo_Alloc" if animal == "allocator_without_table" else "zoo_Good"
    with pytest.raises(errors.ConfigLoadError) as caught:
        manager.load(config_for((zoo[animal], [module_name])))
    [error] = caught.value.errors
    assert type(error) is exc_class, error
    for part in parts:
        assert part in str(error)
    assert str(zoo[animal].resolve()) in str(error) or zoo[animal].name in str(error)
    assert str(zoo[animal].resolve()) not in abi.loaded_library_paths()
    assert manager.modules() == []


def test_create_failure_carries_the_modules_message(zoo, manager):
    manager.load(config_for((zoo["create_fails"], ["zoo_Good"])))
    with pytest.raises(errors.ModuleCreateError, match=r"zoo_Good.*parameter 'size' is required"):
        manager.create("zoo_Good")


def test_an_allocator_built_before_allocate_agents_loads_and_runs_full_cycles(zoo, manager):
    # Its table ends before allocate_agents: a cycle over some agents is a full cycle.
    manager.load(config_for((zoo["old_allocator"], ["zoo_OldAlloc"])))
    with manager.create("zoo_OldAlloc", kind="allocator") as allocator:
        allocator.initialize(AllocatorOptions(resource_names=("cpus",)))
        offered = [(7, 42, 0, UNRESERVED, 0, (1.0,))]
        assert allocator.allocate(0.0, [1, 2]).as_tuples() == offered
        assert allocator.allocate(1.0).as_tuples() == offered


def test_cxx_exception_in_create_becomes_an_error_not_a_crash(zoo, manager):
    manager.load(config_for((zoo["throws"], ["zoo_Thrower"])))
    with pytest.raises(errors.ModuleCreateError, match="constructor exploded"):
        manager.create("zoo_Thrower")


def test_inspect_on_every_broken_library_is_one_clear_line(zoo):
    for animal in [*CASES, "create_fails", "throws"]:
        done = subprocess.run(
            [sys.executable, "-m", "pymesos_modules", "inspect", str(zoo[animal])],
            capture_output=True,
            text=True,
        )
        if animal in ("create_fails", "throws"):
            # create() is not part of inspecting: those libraries describe themselves fine.
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == 1, (animal, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (animal, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
        for part in CASES[animal][1]:
            assert part in lines[0], (animal, part, lines[0])


def test_inspect_good_library_prints_descriptor_table_and_json(zoo):
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "inspect", str(zoo["good"]), "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [module] = report["modules"]
    assert module == {
        "index": 0,
        "ok": True,
        "error": None,
        "name": "zoo_Good",
        "kind": "anonymous",
        "module_version": "0.1.0",
        "abi_version": "1.0",
        "author": "Zoo Keeper",
        "email": "zoo@example.invalid",
        "description": "A module of the test zoo",
    }
    table = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "inspect", str(zoo["good"])],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert table.returncode == 0
    for cell in ("zoo_Good", "anonymous", "0.1.0", "1.0", "Zoo Keeper", "OK"):
        assert cell in table.stdout


def test_inspect_survives_a_library_that_crashes_the_process(tmp_path, zoo):
    # A library whose constructor kills its process: only the probe may die.
    source = tmp_path / "crash.c"
    source.write_text(
        "#include <signal.h>\n"
        "__attribute__((constructor)) static void boom(void) { raise(SIGSEGV); }\n"
    )
    lib = tmp_path / "libcrash.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "inspect", str(lib)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "crashed the probe process (SIGSEGV)" in done.stderr
    assert f"in {lib}: dlopen() (its constructors)" in done.stderr
    assert "Traceback" not in done.stderr


def test_inspect_report_survives_a_library_that_writes_to_stdout(tmp_path):
    # Native printf() output must not corrupt the probe's JSON report.
    source = tmp_path / "noisy.c"
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void noise(void) {\n"
        '    printf("{ not json\\n"); fflush(stdout);\n'
        "}\n"
    )
    lib = tmp_path / "libnoisy.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "inspect", str(lib), "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["error"]["class"] == "EntryPointError"
    assert "not a pymesos-modules library" in done.stderr.splitlines()[-1]


def test_inspect_refuses_insecure_files_unless_allowed(zoo, copy_lib):
    path = copy_lib(zoo["good"])
    path.chmod(0o775)
    config = json.dumps({"libraries": [{"file": str(path), "modules": ["zoo_Good"]}]})
    for target in ([str(path)], [f"--modules={config}"]):
        command = [sys.executable, "-m", "pymesos_modules", "inspect", *target]
        refused = subprocess.run(command, capture_output=True, text=True)
        assert refused.returncode == 1
        [line] = refused.stderr.strip().splitlines()
        assert "writable by group or others" in line and "--allow-insecure-modules" in line
        allowed = subprocess.run(
            [*command, "--allow-insecure-modules"], capture_output=True, text=True
        )
        assert allowed.returncode == 0, allowed.stderr


def test_a_module_of_an_unknown_kind_does_not_hide_its_siblings(zoo, manager):
    # Do not be stricter than needed: only the modules a config asks for must pass.
    manager.load(config_for((zoo["with_future_kind"], ["zoo_Good"])))
    assert [m.name for m in manager.modules()] == ["zoo_Good"]
    manager.unload_all()
    with pytest.raises(errors.ConfigLoadError) as caught:
        manager.load(config_for((zoo["with_future_kind"], ["zoo_Good", "zoo_Future"])))
    [error] = caught.value.errors
    assert type(error) is errors.UnknownKindError and "zoo_Future" in str(error)
    assert manager.modules() == []


def test_every_bad_module_of_one_library_is_reported(zoo, manager):
    with pytest.raises(errors.ConfigLoadError) as caught:
        manager.load(config_for((zoo["incompatible"], ["zoo_Good", "zoo_Missing"])))
    classes = [type(e) for e in caught.value.errors]
    assert classes == [errors.IncompatibleModuleError, errors.UnknownModuleError]
