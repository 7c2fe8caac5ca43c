"""Waiting lines: one per (service, lane), ordered by queue position, with lazy deletion.

Calling with 100,000 tickets waiting must cost about what it costs with 100, so each lane is a pair of heaps
(by queue position, and by waiting-since for the max-wait guard) instead of a scan. A ticket leaving the
line (called, voided, transferred) is not searched for: its heap entries turn stale, because the ticket is
no longer waiting or its ``generation`` moved on, and are dropped when they reach the top.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

IsCurrent = Callable[[str, int], bool]


class Lane:
    """The waiting tickets of one service in one lane (regular or priority)."""

    __slots__ = ("_by_order", "_by_since", "count")

    def __init__(self) -> None:
        self._by_order: list[tuple[int, int, str]] = []
        self._by_since: list[tuple[float, int, int, str]] = []
        self.count = 0

    def push(self, ticket_id: str, order: int, waiting_since_s: float, generation: int) -> None:
        """A ticket joins the lane at queue position ``order``, waiting since ``waiting_since_s`` (epoch)."""
        heapq.heappush(self._by_order, (order, generation, ticket_id))
        heapq.heappush(self._by_since, (waiting_since_s, order, generation, ticket_id))
        self.count += 1

    def append_unordered(self, ticket_id: str, order: int, waiting_since_s: float, generation: int) -> None:
        """``push`` without keeping heap order; call ``restore_order`` before reading (bulk replay)."""
        self._by_order.append((order, generation, ticket_id))
        self._by_since.append((waiting_since_s, order, generation, ticket_id))
        self.count += 1

    def restore_order(self) -> None:
        heapq.heapify(self._by_order)
        heapq.heapify(self._by_since)

    def left(self) -> None:
        """One of this lane's tickets left it (its heap entries are now stale)."""
        self.count -= 1

    def head(self, is_current: IsCurrent) -> tuple[int, str] | None:
        """(position, ticket id) of the first ticket in line, or None."""
        heap = self._by_order
        while heap:
            order, generation, ticket_id = heap[0]
            if is_current(ticket_id, generation):
                return order, ticket_id
            heapq.heappop(heap)
        return None

    def longest_waiting(self, is_current: IsCurrent) -> tuple[float, int, str] | None:
        """(waiting since, position, ticket id) of the ticket that has waited longest, or None."""
        heap = self._by_since
        while heap:
            since, order, generation, ticket_id = heap[0]
            if is_current(ticket_id, generation):
                return since, order, ticket_id
            heapq.heappop(heap)
        return None
