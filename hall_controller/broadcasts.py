"""When the retained board and counter states are published again.

Calls and counter changes go out at once: the board and the acting counters' states are due now. When only
waiting counts changed (a ticket was issued or voided), every counter's state and the board are refreshed at
most every ``REFRESH_S``, so a rush of tickets does not multiply into thousands of retained publishes. After the
controller's own connection comes (back) up, everything is due, since the broker may have lost what it held.

Pure: time (monotonic seconds) is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hall_controller.engine.events import (
    CounterStatusChanged,
    Event,
    TicketCalled,
    TicketFinished,
    TicketTransferred,
    TicketVoided,
)

REFRESH_S = 0.5


@dataclass(frozen=True, slots=True)
class Due:
    """What to publish now: these counters' states, and the board or not."""

    counters: tuple[str, ...] = ()
    board: bool = False


class Broadcasts:
    """The pacing of retained publishes for a hall with ``counters``."""

    def __init__(self, counters: Sequence[str]) -> None:
        self._all = tuple(counters)
        self._board_due: float | None = None
        self._counters_due: float | None = None
        self._counters_now: set[str] = set()

    def link_up(self, now_s: float) -> None:
        """The publishing connection is (back) up: everything is due."""
        self._board_due = self._counters_due = now_s

    def changed(self, events: Iterable[Event], now_s: float) -> None:
        """Stored ``events`` changed what the hall shows: schedule the refreshes they need."""
        any_event = False
        for event in events:
            any_event = True
            if isinstance(event, TicketCalled | TicketFinished | TicketTransferred | CounterStatusChanged):
                if event.counter:  # a waiting ticket the manager moved was at no counter
                    self._counters_now.add(event.counter)
                self._board_due = now_s
            elif isinstance(event, TicketVoided):
                self._board_due = now_s
        if not any_event:
            return
        # Waiting counts changed for some counters' services: refresh every counter, paced.
        self._board_due = self._board_due or now_s + REFRESH_S
        self._counters_due = self._counters_due or now_s + REFRESH_S

    def take_due(self, now_s: float) -> Due:
        """What is due at ``now_s``; it is then no longer due."""
        if self._counters_due is not None and now_s >= self._counters_due:
            self._counters_due = None
            self._counters_now.update(self._all)
        counters = tuple(sorted(self._counters_now))
        self._counters_now.clear()
        board = self._board_due is not None and now_s >= self._board_due
        if board:
            self._board_due = None
        return Due(counters, board)

    def next_due_s(self) -> float | None:
        """When something is due next (monotonic seconds), None if nothing is scheduled."""
        due = [d for d in (self._board_due, self._counters_due) if d is not None]
        if self._counters_now:
            due.append(float("-inf"))
        return min(due) if due else None
