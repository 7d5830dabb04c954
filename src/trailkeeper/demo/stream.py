"""The stream: planned episodes rendered and merged into time order, and :func:`write_demo`,
which stores them in batches.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Protocol

from trailkeeper.demo.beats import Event, _script
from trailkeeper.demo.facts import TENANT, DemoFacts
from trailkeeper.demo.plan import _Plan, _plan
from trailkeeper.events import MAX_BATCH

BATCH_SIZE = MAX_BATCH


def _stream(plan: _Plan) -> Iterator[Event]:
    """Renders the episodes in start order and merges their events by time.

    An episode's events are never earlier than its start, so once the next episode starts at
    ``s`` every event before ``s`` is final. Ties keep the order of rendering, which is fixed.
    The rendering's own chance (request ids, record counts, wording) is drawn in that order
    from one generator.
    """
    prefix, org = plan.facts.id_prefix, plan.org
    rng = random.Random(plan.render_seed)
    heap: list[tuple[int, int, Event]] = []
    order = itertools.count()
    position = 0
    for episode in plan.episodes:
        start = episode.start
        while heap and heap[0][0] < start:
            event = heapq.heappop(heap)[2]
            event["id"] = f"{prefix}{position}"
            position += 1
            yield event
        beats = _script(episode)
        for beat, event in zip(beats, episode.render(beats, rng, org), strict=True):
            heapq.heappush(heap, (beat[0], next(order), event))
    while heap:
        event = heapq.heappop(heap)[2]
        event["id"] = f"{prefix}{position}"
        position += 1
        yield event


def generate(events: int = 5000, seed: int = 7) -> tuple[Iterator[Event], DemoFacts]:
    """The demo organisation's events, oldest first, and the facts about them.

    Exactly ``events`` events, at least :data:`MIN_EVENTS`. Each is a fresh dict in the
    producer shape of CONTRACT section 2 whose ``id`` is ``facts.id_prefix`` and its position,
    so that writing the same stream twice stores it once. The facts are exact before the first
    event is drawn. Raises :class:`InvalidArgument` for fewer events than the minimum or a
    seed outside ``0 .. 2**63 - 1``.
    """
    plan = _plan(events, seed)
    return _stream(plan), plan.facts


class RecordsMany(Protocol):
    """What :func:`write_demo` needs of a log: ``AuditLog.record_later``, which validates a
    batch and queues it for the writer, all or nothing, its future resolving at the commit."""

    def record_later(self, tenant: str, events: Sequence[Mapping[str, Any]]) -> Future[Any]: ...


# Batches queued at once: the writer commits what is waiting together, so a deep queue means
# few, large commits, while the next batches are being generated.
IN_FLIGHT = 32


def write_demo(
    log: RecordsMany,
    *,
    events: int = 5000,
    seed: int = 7,
    tenant: str = TENANT,
    progress: Callable[[int], None] | None = None,
) -> DemoFacts:
    """Writes the demo organisation into ``tenant`` in batches of :data:`BATCH_SIZE`, calling
    ``progress`` with the number of events written after each batch; returns its facts."""
    stream, facts = generate(events, seed)
    written = 0
    queued: deque[tuple[Future[Any], int]] = deque()

    def settle(limit: int) -> None:
        nonlocal written
        while len(queued) > limit:
            future, size = queued.popleft()
            future.result()  # raises what the commit raised
            written += size
            if progress is not None:
                progress(written)

    with _rare_collections():
        while batch := list(itertools.islice(stream, BATCH_SIZE)):
            queued.append((log.record_later(tenant, batch), len(batch)))
            settle(IN_FLIGHT)
        settle(0)
    return replace(facts, tenant=tenant)


@contextlib.contextmanager
def _rare_collections() -> Iterator[None]:
    """Collect cyclic garbage less often while the demo is written. Rendering and validating
    allocate millions of short-lived containers, none of them in a cycle, and at the default
    thresholds the collector ran often enough, each time over every batch in flight, to take
    about a tenth of the time (measured: 400,000 events in 20.3-22.0 s instead of 24.3-26.8).
    The thresholds are the process's: they are put back after."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
