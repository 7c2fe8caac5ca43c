"""Which waiting ticket a counter calls next: the hall's call policy, in one place.

1. **Max-wait guard.** If the longest-waiting ticket of the counter's services has waited longer than the
   counter's ``max_wait_s``, it goes first, whatever its lane. "Waiting since" never goes back in issue order
   (see ``Engine``), so a clock that stepped back cannot make a later ticket look older.
2. **``priority_first``**: the first priority ticket, else the first regular one.
   **``interleave``**: a priority ticket after ``interleave_ratio`` regular calls in a row, or when no regular one
   waits; otherwise the first regular one.

Within a lane, "first" is the lowest queue position across the counter's services (oldest first; a ticket
transferred "to the front" has a position before everyone's). Pure: the lanes and ``now`` are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hall_controller.engine.queues import IsCurrent, Lane
from hall_controller.engine.spec import CounterSpec


def pick(spec: CounterSpec, *, regular_streak: int, services: Sequence[str], lanes: Mapping[tuple[str, bool], Lane],
         is_current: IsCurrent, now_s: float) -> str | None:
    """The id of the ticket the counter ``spec`` should call at ``now_s`` (epoch seconds), or None if none of
    ``services`` has anyone waiting. ``regular_streak``: regular calls since its last priority one."""
    if spec.max_wait_s is not None:
        longest = min(
            (w for s in services for lane in (False, True)
             if (w := lanes[(s, lane)].longest_waiting(is_current)) is not None),
            default=None,
        )
        if longest is not None and now_s - longest[0] > spec.max_wait_s:
            return longest[2]
    regular = min((h for s in services if (h := lanes[(s, False)].head(is_current)) is not None), default=None)
    priority = min((h for s in services if (h := lanes[(s, True)].head(is_current)) is not None), default=None)
    if priority is not None and (
        regular is None or spec.policy == "priority_first" or regular_streak >= spec.interleave_ratio
    ):
        return priority[1]
    return regular[1] if regular is not None else None
