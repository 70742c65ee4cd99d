"""ModuleManager: atomic loads, duplicates, kinds, unloading, permissions, Python modules."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from support.modules import config_for

from pymesos_modules import abi, errors
from pymesos_modules.config import parse_config
from pymesos_modules.manager import ModuleManager
from pymesos_modules.metrics import MetricsRegistry


def _mapped(path: Path) -> bool:
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


def test_config_with_one_bad_library_loads_nothing_and_lists_every_failure(zoo, manager):
    config = config_for(
        (zoo["good"], ["zoo_Good"]),
        (zoo["bad_magic"], ["zoo_Good"]),
        ("/nonexistent/libmissing.so", ["x"]),
        (zoo["unknown_kind"], ["zoo_Good"]),
    )
    with pytest.raises(errors.ConfigLoadError) as caught:
        manager.load(config)
    kinds = [type(e) for e in caught.value.errors]
    assert kinds == [errors.BadMagicError, errors.LibraryNotFoundError, errors.UnknownKindError]
    assert "3 error(s)" in str(caught.value)
    assert manager.modules() == []
    assert not _mapped(zoo["good"]), "the good library of a failed config must be unloaded"


def test_duplicate_module_names_across_libraries_are_refused(zoo, manager):
    config = config_for((zoo["good"], ["zoo_Good"]), (zoo["good_twin"], ["zoo_Good"]))
    with pytest.raises(errors.ConfigLoadError) as caught:
        manager.load(config)
    [error] = caught.value.errors
    assert isinstance(error, errors.DuplicateModuleError)
    assert "libzoo_good.so" in str(error) and "libzoo_good_twin.so" in str(error)
    assert manager.modules() == []


def test_unknown_module_in_a_library_names_what_it_provides(zoo, manager):
    with pytest.raises(errors.ConfigLoadError) as caught:
        manager.load(config_for((zoo["good"], ["zoo_Nope"])))
    [error] = caught.value.errors
    assert isinstance(error, errors.UnknownModuleError)
    assert "zoo_Nope" in str(error) and "zoo_Good" in str(error)


def test_wrong_kind_is_refused_with_who_asked(zoo, manager):
    manager.load(config_for((zoo["good"], ["zoo_Good"])))
    with pytest.raises(errors.WrongKindError, match=r"kind 'anonymous'.*--allocator.*'allocator'"):
        manager.create("zoo_Good", kind="allocator", purpose="--allocator")
    with pytest.raises(errors.UnknownModuleError, match="zoo_Other"):
        manager.create("zoo_Other")


def test_parameters_reach_create_and_override_config(zoo, manager):
    text = json.dumps(
        {
            "libraries": [
                {
                    "file": str(zoo["good"]),
                    "modules": [
                        {"name": "zoo_Good", "parameters": [{"key": "fail", "value": "cfg"}]}
                    ],
                }
            ]
        }
    )
    manager.load(parse_config(text))
    with pytest.raises(errors.ModuleCreateError, match="asked to fail: cfg"):
        manager.create("zoo_Good")
    with pytest.raises(errors.ModuleCreateError, match="asked to fail: call"):
        manager.create("zoo_Good", parameters={"fail": "call"})


def test_unload_closes_the_library_only_after_its_last_instance(zoo, manager, copy_lib):
    path = copy_lib(zoo["good"])
    manager.load(config_for((path, ["zoo_Good"])))
    first, second = manager.create("zoo_Good"), manager.create("zoo_Good")
    assert _mapped(path)
    first.close()
    with pytest.raises(errors.ModuleInUseError, match="1 instance"):
        manager.unload(path)
    second.close()
    second.close()  # destroying twice is harmless
    manager.unload(path)
    assert not _mapped(path)
    assert manager.modules() == []


def test_same_file_loaded_twice_shares_one_handle(zoo, copy_lib):
    path = copy_lib(zoo["good"])
    a, b = abi.open_library(path), abi.open_library(str(path))
    assert a is b
    a.close()
    assert not _mapped(path)


def test_finalizer_destroys_an_abandoned_instance(zoo, manager, copy_lib):
    path = copy_lib(zoo["good"])
    manager.load(config_for((path, ["zoo_Good"])))
    instance = manager.create("zoo_Good")
    library = instance.instance.library
    assert library.users == 1
    del instance
    import gc

    gc.collect()
    assert library.users == 0
    manager.unload(path)


def test_group_writable_module_is_refused_unless_allowed(zoo, copy_lib):
    path = copy_lib(zoo["good"])
    path.chmod(0o775)
    with pytest.raises(errors.ConfigLoadError) as caught:
        ModuleManager().load(config_for((path, ["zoo_Good"])))
    [error] = caught.value.errors
    assert isinstance(error, errors.InsecureLibraryError)
    assert "writable by group or others" in str(error) and "--allow-insecure-modules" in str(error)
    relaxed = ModuleManager(allow_insecure=True)
    relaxed.load(config_for((path, ["zoo_Good"])))
    relaxed.unload_all()


def test_world_writable_folder_is_refused(zoo, copy_lib):
    path = copy_lib(zoo["good"])
    path.parent.chmod(0o777)
    try:
        with pytest.raises(errors.ConfigLoadError, match=r"folder .*private is writable"):
            ModuleManager().load(config_for((path, ["zoo_Good"])))
    finally:
        path.parent.chmod(0o700)


def test_file_owned_by_another_user_is_refused(zoo, copy_lib):
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    path = copy_lib(zoo["good"])
    os.chown(path, 12345, -1)
    with pytest.raises(errors.ConfigLoadError, match="owned by uid 12345"):
        ModuleManager().load(config_for((path, ["zoo_Good"])))


def test_library_found_by_name_and_bare_file_on_search_path(zoo, monkeypatch):
    folder = zoo["good"].parent
    monkeypatch.setenv("PMM_MODULE_PATH", str(folder))
    manager = ModuleManager()
    config = parse_config(
        json.dumps(
            {
                "libraries": [
                    {"name": "zoo_good", "modules": ["zoo_Good"]},
                    {"file": "libzoo_throws.so", "modules": [{"name": "zoo_Thrower"}]},
                ]
            }
        )
    )
    loaded = manager.load(config)
    assert {m.name: Path(m.source) for m in loaded} == {
        "zoo_Good": zoo["good"].resolve(),
        "zoo_Thrower": zoo["throws"].resolve(),
    }
    manager.unload_all()


def test_name_finds_bundled_modules_and_file_wins_over_name(zoo):
    manager = ModuleManager()
    text = json.dumps(
        {
            "libraries": [
                {"name": "pmm_hello", "modules": ["org_pymesos_Hello"]},
                {"file": str(zoo["good"]), "name": "does_not_exist", "modules": ["zoo_Good"]},
            ]
        }
    )
    loaded = manager.load(parse_config(text))
    assert [m.name for m in loaded] == ["org_pymesos_Hello", "zoo_Good"]
    manager.unload_all()


def test_host_api_routes_logs_and_metrics(caplog):
    registry = MetricsRegistry()
    manager = ModuleManager(registry=registry)
    text = json.dumps(
        {
            "libraries": [
                {
                    "name": "pmm_hello",
                    "modules": [
                        {
                            "name": "org_pymesos_Hello",
                            "parameters": [{"key": "greeting", "value": "operators"}],
                        }
                    ],
                }
            ]
        }
    )
    manager.load(parse_config(text))
    with caplog.at_level(logging.INFO, logger="pymesos_modules.module.org_pymesos_Hello"):
        hello = manager.create("org_pymesos_Hello")
    assert ("pymesos_modules.module.org_pymesos_Hello", logging.INFO, "hello, operators") in [
        (r.name, r.levelno, r.getMessage()) for r in caplog.records
    ]
    assert registry.snapshot() == {"hello/created": 1.0, "hello/instances": 1.0}
    hello.close()
    assert registry.snapshot()["hello/instances"] == 0.0
    manager.unload_all()


class PythonFirstFit:
    """A stand-in Python module factory used by the config tests."""

    kind = "anonymous"

    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.closed = False

    def close(self) -> None:
        self.closed = True


class NotAModule:
    kind = "anonymous"

    def __init__(self, parameters: dict[str, str]) -> None:
        pass


def test_python_modules_stand_in_the_same_config(zoo):
    manager = ModuleManager()
    text = json.dumps(
        {
            "libraries": [
                {"file": str(zoo["good"]), "modules": ["zoo_Good"]},
                {
                    "python": f"{__name__}:PythonFirstFit",
                    "modules": [{"name": "py_ff", "parameters": [{"key": "a", "value": "1"}]}],
                },
                {"python": f"{__name__}:NotAModule", "modules": ["py_bad"]},
            ]
        }
    )
    manager.load(parse_config(text))
    module = manager.create("py_ff")
    assert isinstance(module, PythonFirstFit) and module.parameters == {"a": "1"}
    assert manager.get("py_ff").source == f"python:{__name__}:PythonFirstFit"
    with pytest.raises(errors.ModuleCreateError, match="does not implement the anonymous"):
        manager.create("py_bad")
    manager.unload_all()


def test_python_factory_without_a_kind_is_refused():
    text = json.dumps({"libraries": [{"python": "json:dumps", "modules": ["x"]}]})
    with pytest.raises(errors.ConfigLoadError, match="needs a 'kind' attribute"):
        ModuleManager().load(parse_config(text))


def test_two_managers_share_a_library_and_unload_independently(zoo, copy_lib):
    path = copy_lib(zoo["good"])
    first, second = ModuleManager(), ModuleManager()
    first.load(config_for((path, ["zoo_Good"])))
    second.load(config_for((path, ["zoo_Good"])))
    first.unload(path)
    # The handle is shared: the second manager still uses it, so no dlclose yet.
    assert _mapped(path)
    with second.create("zoo_Good"):
        pass
    second.unload(path)
    assert not _mapped(path)


def test_abandoned_instance_can_still_use_the_host_api_in_destroy():
    registry = MetricsRegistry()
    manager = ModuleManager(registry=registry)
    text = json.dumps({"libraries": [{"name": "pmm_hello", "modules": ["org_pymesos_Hello"]}]})
    manager.load(parse_config(text))
    hello = manager.create("org_pymesos_Hello")
    del hello  # the finalizer runs destroy(), which publishes through the host table
    import gc

    gc.collect()
    assert registry.snapshot()["hello/instances"] == 0.0
    manager.unload_all()


class FailingFactory:
    kind = "anonymous"

    def __init__(self, parameters: dict[str, str]) -> None:
        raise ValueError("no such policy: " + parameters.get("policy", "?"))


def test_python_factory_exception_becomes_a_create_error():
    manager = ModuleManager()
    text = json.dumps(
        {
            "libraries": [
                {
                    "python": f"{__name__}:FailingFactory",
                    "modules": [
                        {"name": "py_fail", "parameters": [{"key": "policy", "value": "x"}]}
                    ],
                }
            ]
        }
    )
    manager.load(parse_config(text))
    with pytest.raises(
        errors.ModuleCreateError,
        match=r"'py_fail' create\(\) failed: ValueError: no such policy: x",
    ):
        manager.create("py_fail")
    manager.unload_all()


def test_symlinked_library_shares_the_handle_of_its_target(zoo, copy_lib, manager):
    path = copy_lib(zoo["good"])
    link = path.parent / "liblink.so"
    link.symlink_to(path)
    manager.load(config_for((path, ["zoo_Good"])))
    other = ModuleManager()
    # Fails (unknown module) after opening the link: the cleanup must not close the
    # handle the first manager holds.
    with pytest.raises(errors.ConfigLoadError, match="has no module 'nope'"):
        other.load(config_for((link, ["nope"])))
    assert _mapped(path)
    with manager.create("zoo_Good"):
        pass


def test_native_calls_name_the_module_and_call_when_refused(zoo, manager):
    manager.load(config_for((zoo["good"], ["zoo_Good"])))
    module = manager.create("zoo_Good")
    with pytest.raises(abi.NativeCallError, match=r"'zoo_Good': allocate\(\) failed .*implement"):
        module.instance.call("allocate")
    module.close()
    with pytest.raises(abi.NativeCallError, match="already destroyed") as caught:
        module.instance.call("allocate")
    assert caught.value.status == abi.STATUS["PMM_ERR_STATE"]


class NamedModule:
    kind = "anonymous"

    def __init__(self, parameters: dict[str, str], name: str = "default") -> None:
        self.name = name

    def close(self) -> None:
        pass


def test_python_factory_receives_the_configured_name_when_it_takes_one():
    manager = ModuleManager()
    text = json.dumps({"libraries": [{"python": f"{__name__}:NamedModule", "modules": ["mine"]}]})
    manager.load(parse_config(text))
    assert manager.create("mine").name == "mine"
    manager.unload_all()


def test_each_calling_thread_gets_its_own_error_buffer(zoo, manager):
    import threading

    manager.load(config_for((zoo["good"], ["zoo_Good"])))
    with manager.create("zoo_Good") as module:
        native = module.instance
        mine = native._error_buffer()
        assert native._error_buffer() is mine
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(native._error_buffer()))
        thread.start()
        thread.join(timeout=30)
        assert seen and seen[0] is not mine
