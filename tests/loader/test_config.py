"""--modules / --modules_dir parsing in Mesos' format, with errors that point at the fault."""

from __future__ import annotations

import json

import pytest

from pymesos_modules.config import (
    ModuleSpec,
    load_flags,
    parse_config,
    parse_modules_dir,
    parse_modules_flag,
)
from pymesos_modules.errors import ConfigError, ConfigSchemaError, ConfigSyntaxError

EXAMPLE = {
    "libraries": [
        {
            "file": "/abs/libfoo.so",
            "modules": [
                {"name": "org_example_Foo", "parameters": [{"key": "k", "value": "v"}]},
            ],
        },
        {"name": "bar", "modules": ["org_example_Bar"]},
    ]
}


def test_inline_json_in_mesos_format():
    config = parse_modules_flag(json.dumps(EXAMPLE))
    foo, bar = config.libraries
    assert foo.file == "/abs/libfoo.so" and foo.name is None
    assert foo.modules == (ModuleSpec("org_example_Foo", {"k": "v"}),)
    assert bar.name == "bar" and bar.label == "libbar.so"
    assert bar.modules == (ModuleSpec("org_example_Bar"),)
    assert config.module_names() == ["org_example_Foo", "org_example_Bar"]


@pytest.mark.parametrize("prefix", ["", "file://"])
def test_path_and_file_url(tmp_path, prefix):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"libraries": [{"file": "sub/libx.so", "modules": ["x"]}]}))
    config = parse_modules_flag(prefix + str(manifest))
    [library] = config.libraries
    assert library.source == str(manifest)
    # a relative file is relative to the manifest that names it
    assert library.base_dir == tmp_path.resolve()


def test_file_wins_over_name():
    [library] = parse_config(
        json.dumps({"libraries": [{"file": "liba.so", "name": "b", "modules": ["m"]}]})
    ).libraries
    assert library.file == "liba.so" and library.name is None


def test_modules_dir_reads_every_manifest_alphabetically(tmp_path):
    for name, module in [("b.json", "second"), ("a.json", "first"), ("c.txt", "ignored")]:
        (tmp_path / name).write_text(
            json.dumps({"libraries": [{"name": module, "modules": [module]}]})
        )
    config = parse_modules_dir(tmp_path)
    assert config.module_names() == ["first", "second"]
    assert [lib.source for lib in config.libraries] == [
        str(tmp_path / "a.json"),
        str(tmp_path / "b.json"),
    ]


def test_only_one_of_modules_and_modules_dir(tmp_path):
    with pytest.raises(ConfigError, match="only one of --modules and --modules_dir"):
        load_flags(modules=json.dumps(EXAMPLE), modules_dir=str(tmp_path))
    assert load_flags().libraries == ()


def test_malformed_json_gives_line_and_column():
    with pytest.raises(ConfigSyntaxError, match=r"--modules: invalid JSON at line 3, column 5"):
        parse_modules_flag('{\n "libraries": [\n    ,\n]}')


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"libraries": {}}, "libraries: must be a list"),
        ({"libraries": [{"modules": ["x"]}]}, 'libraries[0]: needs "file", "name" or "python"'),
        ({"libraries": [{"file": 3, "modules": ["x"]}]}, "libraries[0].file: must be a non-empty"),
        ({"libraries": [{"file": "a.so"}]}, "libraries[0].modules: must be a non-empty list"),
        ({"libraries": [{"file": "a.so", "modules": [7]}]}, "libraries[0].modules[0]: must be"),
        (
            {"libraries": [{"file": "a.so", "modules": [{"name": "m", "parameters": [{"key": 1}]}]}]},
            "libraries[0].modules[0].parameters[0].key: must be a string",
        ),
        (
            {"libraries": [{"file": "a.so", "modules": [{"name": "m", "parameters": [{"key": "k", "value": 5}]}]}]},
            "libraries[0].modules[0].parameters[0].value: must be a string",
        ),
        ({"libraries": [{"file": "a.so", "modules": ["m"], "flie": 1}]}, "unknown field(s) ['flie']"),
        ({"libraries": [{"python": "a:b", "file": "x.so", "modules": ["m"]}]}, "cannot be combined"),
        ([], "top level: must be an object"),
        (
            {"libraries": [{"file": "a.so", "modules": [{"name": "m", "parameters": [{"key": "k"}, {"key": "k"}]}]}]},
            "libraries[0].modules[0].parameters[1].key: duplicate key 'k'",
        ),
    ],
)  # fmt: skip
def test_schema_errors_name_the_field(document, where):
    with pytest.raises(ConfigSchemaError) as caught:
        parse_modules_flag(json.dumps(document))
    assert where in str(caught.value)


def test_unreadable_manifest_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"--modules: cannot read .*missing.json"):
        parse_modules_flag(str(tmp_path / "missing.json"))
