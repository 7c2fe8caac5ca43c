"""Commands going into the engine and the events coming out of it.

Events are facts, in the past tense. The engine changes its state only by applying events, so the ledger's
journal of events is the whole truth: replaying it through ``Engine.apply`` rebuilds the exact state.
``to_record``/``from_record`` give each event a stable JSON form for the journal.

Event classes are not ``frozen``: a frozen dataclass's ``__init__`` costs five times as much, and a restart
builds hundreds of thousands of them. Nothing mutates an event after it is made.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from hallq.errors import InvariantError
from hallq.wire import CounterAction

# --- commands: what happened outside, with the ids the shell made ------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueTicket:
    """A dispenser asks for a ticket; ``ticket_id`` is the id the ticket gets if one is issued."""

    dispenser: str
    request_id: str
    service: str
    priority: bool
    category: str | None
    ticket_id: str


@dataclass(frozen=True, slots=True)
class ReportPrint:
    """A dispenser reports whether it printed a ticket; a failure voids the ticket."""

    dispenser: str
    ticket_id: str
    ok: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class CounterCommand:
    """A counter's clerk pressed a key."""

    counter: str
    request_id: str
    action: CounterAction
    ticket: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: lets the engine roll the business day over with no other input."""


Command = IssueTicket | ReportPrint | CounterCommand | Tick


# --- events ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    kind: ClassVar[str] = ""
    at: datetime


@dataclass(slots=True)
class DayStarted(Event):
    """A business day began (after the old day's open tickets expired).

    ``carry`` is everything that outlives a day (counters' status, call sequence, recent calls, service
    times, queue positions), so a restart can begin from the last ``DayStarted`` instead of the first event.
    """

    kind: ClassVar[str] = "day_started"
    day: str
    carry: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TicketIssued(Event):
    kind: ClassVar[str] = "ticket_issued"
    ticket_id: str
    day: str
    dispenser: str
    request_id: str
    service: str
    number: str
    sequence: str
    value: int
    priority: bool
    category: str | None
    order: int
    ahead: int
    estimated_wait_s: int


@dataclass(slots=True)
class TicketPrinted(Event):
    kind: ClassVar[str] = "ticket_printed"
    ticket_id: str


@dataclass(slots=True)
class TicketCalled(Event):
    """A call (``recall`` false: the ticket leaves the queue) or a recall; ``seq`` numbers calls hall-wide."""

    kind: ClassVar[str] = "ticket_called"
    ticket_id: str
    counter: str
    seq: int
    recall: bool


@dataclass(slots=True)
class TicketFinished(Event):
    kind: ClassVar[str] = "ticket_finished"
    ticket_id: str
    counter: str
    outcome: Literal["served", "no_show"]


@dataclass(slots=True)
class TicketTransferred(Event):
    kind: ClassVar[str] = "ticket_transferred"
    ticket_id: str
    counter: str
    to_service: str
    order: int


@dataclass(slots=True)
class TicketVoided(Event):
    kind: ClassVar[str] = "ticket_voided"
    ticket_id: str
    reason: str


@dataclass(slots=True)
class TicketExpired(Event):
    kind: ClassVar[str] = "ticket_expired"
    ticket_id: str


@dataclass(slots=True)
class CounterStatusChanged(Event):
    kind: ClassVar[str] = "counter_status"
    counter: str
    status: Literal["open", "paused", "closed"]


@dataclass(slots=True)
class CommandAccepted(Event):
    """A counter command was carried out; remembered so that a retry with its request id is not re-run."""

    kind: ClassVar[str] = "command_accepted"
    counter: str
    request_id: str
    action: str
    ticket_id: str | None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (DayStarted, TicketIssued, TicketPrinted, TicketCalled, TicketFinished, TicketTransferred,
                TicketVoided, TicketExpired, CounterStatusChanged, CommandAccepted)
}
_FIELDS = {kind: tuple(f.name for f in dataclasses.fields(cls)) for kind, cls in EVENT_TYPES.items()}


def to_record(event: Event) -> tuple[str, str]:
    """(kind, JSON) for the journal; times are RFC 3339 with offset."""
    data: dict[str, Any] = {}
    for name in _FIELDS[event.kind]:
        value = getattr(event, name)
        data[name] = value.isoformat() if isinstance(value, datetime) else value
    return event.kind, json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def from_records(rows: Sequence[tuple[str, str]]) -> list[Event]:
    """Many records at once: one JSON parse for the whole batch (restarts replay 100,000s of events)."""
    try:
        datas = json.loads("[" + ",".join(data for _, data in rows) + "]")
    except ValueError:
        return [from_record(kind, data) for kind, data in rows]  # names the broken record
    events = []
    fromiso = datetime.fromisoformat
    for (kind, _), data in zip(rows, datas, strict=True):
        cls = EVENT_TYPES.get(kind)
        if cls is None:
            raise InvariantError(f"ledger holds an unknown event kind {kind!r}")
        data["at"] = fromiso(data["at"])
        try:
            events.append(cls(**data))
        except TypeError as exc:
            raise InvariantError(f"ledger event {kind!r} is malformed: {exc}") from None
    return events


def from_record(kind: str, payload: str) -> Event:
    """Inverse of ``to_record``; an unknown kind or a malformed record is a broken ledger."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise InvariantError(f"ledger holds an unknown event kind {kind!r}")
    data = json.loads(payload)
    data["at"] = datetime.fromisoformat(data["at"])
    try:
        return cls(**data)
    except TypeError as exc:
        raise InvariantError(f"ledger event {kind!r} is malformed: {exc}") from None
