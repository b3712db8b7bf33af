"""Where a queue's next ring starts: the `evenly` cursor, shared by the nodes of a store.

The cursor moves in one store transaction (`QueueCursors.advance`), so two calls starting
at once, on one node or on two, never start with the same member. A store that cannot be
used leaves this node's own cursor to go on with.
"""

from __future__ import annotations

from ...config.schema import Queue
from ...policy.queue import ring_rounds
from .context import Services


async def rounds_to_ring(
    services: Services, queue_id: str, queue: Queue, available: list[str]
) -> list[list[str]]:
    """The rounds of `available` members to ring for one caller (ring_rounds), the
    `evenly` cursor advanced for the next one."""
    cursors = services.runtime.cursors
    cursor = cursors.get(queue_id, 0)
    if queue.distribution == "evenly":

        def step(value: int) -> int:
            return ring_rounds(
                queue.members, queue.distribution, available=available, cursor=value
            )[1]

        cursor = await services.db_or(cursor, services.store.queues.advance, queue_id, step)
    rounds, new_cursor = ring_rounds(
        queue.members, queue.distribution, available=available, cursor=cursor
    )
    cursors[queue_id] = new_cursor
    return rounds
