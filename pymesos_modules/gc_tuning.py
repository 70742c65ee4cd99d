"""Garbage collector settings for the long-running daemons (master, agent).

A master holds hundreds of thousands of task records, each a few nested
dicts, for as long as it runs.  With CPython's default thresholds (a young
collection every 700 new container objects) building a ``/state`` view or
adopting the tasks of re-registering agents allocates millions of
short-lived dicts, and the collections they trigger walk the older
generations again and again: on this machine building 100k task views on a
heap of 200k tasks took 5.6-7.8 s with the defaults and 0.45-0.6 s with the
collector off.  The daemons make almost no reference cycles (records are
dataclasses in dicts keyed by id), so collecting less often loses nothing
but a little latency in reclaiming the few there are.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

#: New container objects between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 50_000
#: Young collections per middle one, middle ones per full one (CPython's: 10, 10).
OLDER_THRESHOLDS = (20, 20)


def tune_for_daemon() -> None:
    """Collect less often, and never re-scan what start-up left behind (``gc.freeze``)."""
    gc.collect()
    # Objects alive after start-up (modules, the allocator, flags) live as long
    # as the process: no collection needs to walk them again.
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    logger.debug("gc thresholds %s, %d objects frozen", gc.get_threshold(), gc.get_freeze_count())
