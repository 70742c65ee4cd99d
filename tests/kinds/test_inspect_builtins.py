"""Every bundled native module passes `pymesos-modules inspect` with the kind it claims."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pymesos_modules import paths
from pymesos_modules.kinds.builtin import builtin_modules

EXPECTED_KINDS = {
    "org_pymesos_PosixRlimits": "isolator",
    "org_pymesos_PosixUsage": "isolator",
    "org_pymesos_CgroupsMem": "isolator",
    "org_pymesos_CgroupsCpu": "isolator",
    "org_pymesos_NoopEstimator": "resource_estimator",
    "org_pymesos_FixedEstimator": "resource_estimator",
    "org_pymesos_NoopQoSController": "qos_controller",
    "org_pymesos_LoadQoSController": "qos_controller",
    "org_pymesos_ExampleHook": "hook",
    "org_pymesos_ServiceDiscovery": "hook",
    "org_pymesos_Hello": "anonymous",
    "org_pymesos_DRFAllocator": "allocator",
    "org_pymesos_RoleAuthorizer": "authorizer",
    "org_pymesos_BearerAuthenticator": "http_authenticator",
}


def inspect(library: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "inspect", library, "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "library", sorted(paths.BUNDLED_MODULES_DIR.glob("lib*.so")), ids=lambda p: p.name
)
def test_every_bundled_library_passes_inspect_with_its_kinds(library):
    report = inspect(str(library))
    modules = {m["name"]: m for m in report["modules"]}
    assert all(m["ok"] and m["error"] is None for m in modules.values()), modules
    for name, module in modules.items():
        assert module["kind"] == EXPECTED_KINDS[name]
        assert module["description"] and module["abi_version"] == "1.0"
    aliased = {
        module for lib, module in builtin_modules().values() if f"lib{lib}.so" == library.name
    }
    assert aliased <= set(modules)
