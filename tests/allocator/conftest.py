"""Every allocator test runs against each DRF implementation."""

from __future__ import annotations

import pytest
from support.allocators import DRF_IMPLEMENTATIONS, make_drf

from pymesos_modules.kinds.allocator import AllocatorOptions


@pytest.fixture(params=DRF_IMPLEMENTATIONS)
def drf_kind(request) -> str:
    """Name of the DRF implementation under test."""
    return request.param


@pytest.fixture
def make(drf_kind):
    """make(**options) -> an initialized allocator with roles 0='*', 1='eng', 2='eng/ml', 3='ops'."""
    created = []

    def factory(**options):
        allocator = make_drf(drf_kind)
        options.setdefault("resource_names", ("cpus", "mem", "gpus"))
        allocator.initialize(AllocatorOptions(**options))
        for handle, name in enumerate(["*", "eng", "eng/ml", "ops"]):
            allocator.add_role(handle, name)
        created.append(allocator)
        return allocator

    yield factory
    for allocator in created:
        allocator.close()
