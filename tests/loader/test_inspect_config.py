"""inspect --modules / --modules_dir validates a whole config as the master would load it."""

from __future__ import annotations

import json
import subprocess
import sys


def inspect(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "inspect", *args],
        capture_output=True, text=True, cwd=cwd,
    )  # fmt: skip


def test_good_config_lists_what_it_provides(zoo, tmp_path):
    config = {"libraries": [
        {"file": str(zoo["good"]), "modules": [{"name": "zoo_Good", "parameters": [{"key": "k", "value": "v"}]}]},
        {"name": "pmm_drf", "modules": ["org_pymesos_DRFAllocator"]},
    ]}  # fmt: skip
    done = inspect("--modules", json.dumps(config), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == []
    assert [(m["name"], m["kind"]) for m in report["modules"]] == [
        ("zoo_Good", "anonymous"),
        ("org_pymesos_DRFAllocator", "allocator"),
    ]
    assert report["modules"][0]["parameters"] == [{"key": "k", "value": "v"}]


def test_bad_config_exits_non_zero_listing_every_failure(zoo, tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"libraries": [
        {"file": str(zoo["wrong_major"]), "modules": ["zoo_Good"]},
        {"file": str(zoo["good"]), "modules": ["zoo_Missing"]},
    ]}))  # fmt: skip
    (folder / "b.json").write_text(json.dumps({"libraries": [
        {"file": str(zoo["good_twin"]), "modules": ["zoo_Good"]},
        {"name": "nowhere", "modules": ["x"]},
    ]}))  # fmt: skip
    done = inspect("--modules_dir", str(folder), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    assert "ABI 2.0" in lines[0]
    assert "zoo_Missing" in lines[1] and "zoo_Good" in lines[1]
    assert "libnowhere.so" in lines[2]
    assert "Traceback" not in done.stderr


def test_malformed_config_is_one_clear_line(tmp_path):
    done = inspect("--modules", '{"libraries": [', cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --modules: invalid JSON at line 1, column 16: Expecting value"
    ]


def test_inspect_needs_exactly_one_target(tmp_path):
    done = inspect(cwd=tmp_path)
    assert done.returncode == 2
    assert "exactly one of LIBRARY, --modules or --modules_dir" in done.stderr
