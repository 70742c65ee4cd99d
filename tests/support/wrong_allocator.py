"""An allocator that claims the DRF policy but does not follow it (for bench --check tests)."""

from __future__ import annotations

from collections.abc import Mapping

from pymesos_modules.allocators.drf import DRFAllocator
from pymesos_modules.kinds.allocator import OfferBatch


class ReversedDRF(DRFAllocator):
    """DRF whose offers come out in reverse order: same totals, different decisions log."""

    kind = "allocator"

    def __init__(self, parameters: Mapping[str, str] | None = None, name: str = "reversed_drf"):
        super().__init__(parameters, name)

    def allocate(self, now: float) -> OfferBatch:
        batch = super().allocate(now)
        return OfferBatch(batch.rows[::-1].copy(), batch.values[::-1].copy())
