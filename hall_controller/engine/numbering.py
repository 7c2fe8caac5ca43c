"""What number a new ticket gets: per service and business day, in one place.

A service's numbers run from ``first_number`` to ``last_number`` each business day, zero-padded to the width
of ``last_number`` behind the service's prefix (``A015``). Priority tickets share the service's sequence and
carry the priority mark, or, with a ``priority_prefix``, have a sequence of their own (``UA001``). When the
range is used up, ``wrap`` starts again at ``first_number``, skipping every number still held by a waiting or
called ticket (a finished ticket's number may come back the same day); without ``wrap`` the service refuses
further tickets that day. Pure.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from hall_controller.engine.spec import ServiceSpec


def number_text(service: ServiceSpec, value: int, *, priority: bool) -> str:
    """The printed number: the lane's prefix and ``value`` padded to the range's width."""
    prefix = service.priority_prefix if priority and service.priority_prefix else service.prefix
    return f"{prefix}{value:0{len(str(service.last_number))}d}"


def sequence_key(service: ServiceSpec, *, priority: bool) -> str:
    """Tickets with the same key share one sequence of numbers."""
    return f"{service.id}:P" if priority and service.priority_prefix else service.id


def next_value(service: ServiceSpec, *, priority: bool, last_value: Mapping[str, int],
               in_use: Container[str]) -> int | None:
    """The next free number of the service's sequence today, after ``last_value`` (per sequence key) and not
    ``in_use`` (the numbers of open tickets), or None if every number is taken."""
    last = last_value.get(sequence_key(service, priority=priority))
    candidate = service.first_number if last is None else last + 1
    for _ in range(service.last_number - service.first_number + 1):
        if candidate > service.last_number:
            if not service.wrap:
                return None
            candidate = service.first_number
        if number_text(service, candidate, priority=priority) not in in_use:
            return candidate
        candidate += 1
    return None
