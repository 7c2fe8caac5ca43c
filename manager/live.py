"""The hall as the manager's live view sees it: a pure model folded from what the broker and the ledger say.

Theory of operation
-------------------
Two sources feed one ``LiveModel``; neither is complete alone:

* **The broker** says what is true now, as it changes: the retained ``board`` (every service's waiting counts
  per lane), each counter's retained ``state`` (status, the ticket it serves and since when), ``calls``, every
  client's retained presence (``status/+``: online or offline, a kiosk's printer), the retained ``notice`` and the
  controller's ``events``. It never says when a waiting ticket was issued, nor who it is (a kiosk's ticket
  replies are not ours to read), nor how a finished ticket ended.
* **The ledger** (today's events, ``manager.journal``) says everything that was stored, as of the moment it
  was read: each waiting ticket's arrival, lane and priority category, each kiosk's last ticket, each counter's
  finished tickets and service times. The service reads it at start (a restarted manager does not start the day
  at zero) and again every few seconds (``seed``).

Between two readings the broker's news is applied on top: a ticket a counter now serves is no longer waiting;
a ticket a counter stops serving is counted as finished there, provisionally as served (the broker does not say
whether it was served, a no-show or transferred; the next reading says). What was observed is remembered with
the (monotonic) time it was seen and applied again after a reading that may predate it
(``OBSERVED_KEEP_S``), so a reading never takes back news it had not caught up with yet.

Waiting counts per lane come from the board alone (always current). Per priority category, the oldest wait and
the waits behind the estimate come from the ledger's waiting tickets, minus those called since: a ticket issued
after the last reading shows in the counts at once, and in the categories at the next reading.

Alarms: a service whose oldest waiting ticket has waited longer than its ``target_wait_s``; a kiosk out of paper
(or its printer offline); a device offline longer than ``offline_alarm_s``; the controller's storage fault.

Everything takes ``now`` (the hall's wall clock, timezone-aware) and, for observations, ``seen_s`` (a monotonic
clock); nothing here reads a clock, logs, or does I/O.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from hall_controller.engine.events import (
    CounterStatusChanged,
    DayStarted,
    Event,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketTransferred,
    TicketVoided,
)
from hall_controller.engine.spec import HallSpec
from hall_controller.provision import COUNTER_USER_PREFIX
from hallq import wire

EVENTS_KEPT: Final = 200
OBSERVED_KEEP_S: Final = 120.0  # news older than this is surely in any later reading of the ledger
DeviceRole = Literal["controller", "dispenser", "counter", "display", "other"]
PRINTER_ALARMS: Final = ("paper_out", "offline")


@dataclass(slots=True)
class _Ticket:
    """A ticket of today the model knows from the ledger: where it waits (or waited) and since when."""

    number: str
    service: str
    priority: bool
    category: str | None
    arrived_at: datetime
    waiting: bool = True


@dataclass(frozen=True, slots=True)
class _Finish:
    """A ticket's end at a counter: ``outcome`` as stored (``served``, ``no_show``, ``transferred``), or
    ``served?`` when only observed; ``service_s`` from its call to its end (None if unknown)."""

    counter: str
    outcome: str
    service_s: float | None
    ended_at: datetime


@dataclass(slots=True)
class _Counter:
    status: str
    ticket: wire.ServingTicket | None = None
    state_at: datetime | None = None
    known: bool = False  # a retained state was received


@dataclass(slots=True)
class _Device:
    client: str
    role: DeviceRole
    ref: str  # the counter's or dispenser's id, the client id otherwise
    configured: bool
    state: Literal["online", "offline", "unknown"] = "unknown"
    since: datetime | None = None
    printer: str | None = None
    detail: str | None = None
    last_ticket: str | None = None
    last_ticket_at: datetime | None = None


@dataclass(slots=True)
class _Observed:
    """News from the broker the ledger may not hold yet, by when it was seen (monotonic seconds)."""

    called: dict[str, tuple[datetime, float]] = field(default_factory=dict)  # ticket id -> (called at, seen)
    finished: dict[tuple[str, str], tuple[_Finish, float]] = field(default_factory=dict)  # (ticket id, counter)


class LiveModel:
    """The live view of one hall. Feed it with the ``on_*`` methods and ``seed``; read it with ``view(now)``."""

    def __init__(self, spec: HallSpec, *, controller_id: str, manager_id: str, offline_alarm_s: float) -> None:
        self.spec = spec
        self.controller_id = controller_id
        self.manager_id = manager_id
        self.offline_alarm_s = offline_alarm_s
        self.board: wire.Board | None = None
        self.notice: wire.Notice | None = None
        self.events: deque[wire.HallEvent] = deque(maxlen=EVENTS_KEPT)
        self.link_up = False
        self.ledger_day: str | None = None
        self.ledger_problem: str | None = None
        self.storage_fault: wire.HallEvent | None = None
        self.last_call: wire.Call | None = None
        self._counters = {c.id: _Counter(str(c.status_at_start)) for c in spec.counters}
        self._tickets: dict[str, _Ticket] = {}
        self._finished: dict[tuple[str, str], _Finish] = {}
        self._observed = _Observed()
        self._devices: dict[str, _Device] = {}
        self._add_device(controller_id, "controller", controller_id, configured=True)
        for dispenser in spec.dispensers:
            self._add_device(dispenser.id, "dispenser", dispenser.id, configured=True)
        for counter in spec.counters:
            self._add_device(f"{COUNTER_USER_PREFIX}{counter.id}", "counter", counter.id, configured=True)
        self.version = 0  # grows with every change: the shell pushes a new view when it moved

    def _add_device(self, client: str, role: DeviceRole, ref: str, *, configured: bool) -> _Device:
        device = _Device(client, role, ref, configured)
        self._devices[client] = device
        return device

    def _changed(self) -> None:
        self.version += 1

    # --- the ledger ------------------------------------------------------------------------------------------

    def seed(self, events: Iterable[Event], *, day: str, seen_s: float) -> None:
        """Replace what the ledger says with ``events`` (the journal of business day ``day``, in order, as read
        at monotonic ``seen_s``), then apply again what the broker said since."""
        tickets: dict[str, _Ticket] = {}
        finished: dict[tuple[str, str], _Finish] = {}
        called: dict[str, tuple[str, datetime]] = {}  # ticket id -> (counter, first call of its current visit)
        last_ticket: dict[str, tuple[str, datetime]] = {}
        statuses: dict[str, str] = {}
        for event in events:
            if isinstance(event, TicketIssued):
                tickets[event.ticket_id] = _Ticket(event.number, event.service, event.priority, event.category,
                                                   event.at)
                last_ticket[event.dispenser] = (event.number, event.at)
            elif isinstance(event, TicketCalled):
                ticket = tickets.get(event.ticket_id)
                if ticket is not None:
                    ticket.waiting = False
                if not event.recall or event.ticket_id not in called:
                    called.setdefault(event.ticket_id, (event.counter, event.at))
            elif isinstance(event, TicketFinished | TicketTransferred):
                start = called.pop(event.ticket_id, None)
                service_s = None if start is None else max(0.0, (event.at - start[1]).total_seconds())
                outcome = event.outcome if isinstance(event, TicketFinished) else "transferred"
                finished[(event.ticket_id, event.counter)] = _Finish(event.counter, outcome, service_s, event.at)
                if isinstance(event, TicketTransferred) and (ticket := tickets.get(event.ticket_id)) is not None:
                    ticket.service, ticket.arrived_at, ticket.waiting = event.to_service, event.at, True
            elif isinstance(event, TicketExpired | TicketVoided):
                called.pop(event.ticket_id, None)
                if (ticket := tickets.get(event.ticket_id)) is not None:
                    ticket.waiting = False
            elif isinstance(event, CounterStatusChanged):
                statuses[event.counter] = event.status
            elif isinstance(event, DayStarted):
                tickets.clear()
                finished.clear()
                called.clear()
                last_ticket.clear()
        if day != self.ledger_day:
            self._observed = _Observed()
        self.ledger_day = day
        self.ledger_problem = None
        self._tickets = tickets
        self._finished = finished
        for dispenser, (number, at) in last_ticket.items():
            device = self._devices.get(dispenser)
            if device is not None and device.role == "dispenser":
                device.last_ticket, device.last_ticket_at = number, at
        for counter_id, status in statuses.items():
            counter = self._counters.get(counter_id)
            if counter is not None and not counter.known:
                counter.status = status
        self._reapply(seen_s)
        self._changed()

    def ledger_unreadable(self, problem: str) -> None:
        """The ledger could not be read (``problem`` says why): the view says so; the broker's news goes on."""
        if problem != self.ledger_problem:
            self.ledger_problem = problem
            self._changed()

    def _reapply(self, seen_s: float) -> None:
        observed = self._observed
        for ticket_id, (called_at, when) in list(observed.called.items()):
            if seen_s - when > OBSERVED_KEEP_S:
                del observed.called[ticket_id]
            elif (ticket := self._tickets.get(ticket_id)) is not None and called_at >= ticket.arrived_at:
                ticket.waiting = False  # unless it waits again since (a transfer after that call)
        for key, (finish, when) in list(observed.finished.items()):
            if seen_s - when > OBSERVED_KEEP_S:
                del observed.finished[key]
            else:
                self._finished.setdefault(key, finish)

    # --- the broker -------------------------------------------------------------------------------------------

    def on_link(self, *, up: bool) -> None:
        self.link_up = up
        self._changed()

    def on_board(self, board: wire.Board) -> None:
        self.board = board
        for entry in board.counters:
            counter = self._counters.get(entry.counter)
            if counter is not None and not counter.known:
                counter.status = entry.status
        self._changed()

    def on_counter_state(self, state: wire.CounterState, *, seen_s: float) -> None:
        counter = self._counters.get(state.counter)
        if counter is None:
            return
        before = counter.ticket
        after = state.ticket
        if before is not None and (after is None or after.id != before.id):
            key = (before.id, state.counter)
            if key not in self._finished:
                finish = _Finish(state.counter, "served?", max(0.0, (state.at - before.called_at).total_seconds()),
                                 state.at)
                self._finished[key] = finish
                self._observed.finished[key] = (finish, seen_s)
        if after is not None:
            self._called(after.id, after.called_at, seen_s)
        counter.status = state.status
        counter.ticket = after
        counter.state_at = state.at
        counter.known = True
        self._changed()

    def on_call(self, call: wire.Call, *, seen_s: float) -> None:
        self.last_call = call
        if call.ticket_id:
            self._called(call.ticket_id, call.at, seen_s)
        self._changed()

    def _called(self, ticket_id: str, called_at: datetime, seen_s: float) -> None:
        self._observed.called[ticket_id] = (called_at, seen_s)
        ticket = self._tickets.get(ticket_id)
        if ticket is not None:
            ticket.waiting = False

    def on_presence(self, client: str, presence: wire.Presence | None, *, now: datetime) -> None:
        """``client``'s retained presence (None: an empty retained message, the presence was removed)."""
        if client == self.manager_id:
            return
        device = self._devices.get(client)
        if device is None:
            if presence is None:
                return
            role: DeviceRole = (presence.role if presence.role in ("controller", "dispenser", "counter", "display")
                                else "other")  # type: ignore[assignment]
            device = self._add_device(client, role, client, configured=False)
        state = "unknown" if presence is None else presence.state
        if state != device.state:
            device.state = state
            device.since = now
        device.printer = None if presence is None else presence.printer
        device.detail = None if presence is None else presence.detail
        self._changed()

    def on_notice(self, notice: wire.Notice | None) -> None:
        self.notice = notice
        self._changed()

    def on_event(self, event: wire.HallEvent) -> None:
        self.events.appendleft(event)
        if event.kind == "storage_fault":
            self.storage_fault = event
        elif event.kind == "storage_ok":
            self.storage_fault = None
        if event.kind == "ticket_voided" and event.number:
            for ticket in self._tickets.values():
                if ticket.number == event.number:
                    ticket.waiting = False
        self._changed()

    # --- the view ---------------------------------------------------------------------------------------------

    def counters_view(self, now: datetime) -> list[dict[str, Any]]:
        rows = []
        for spec in self.spec.counters:
            counter = self._counters[spec.id]
            mine = [f for f in self._finished.values() if f.counter == spec.id and f.outcome in ("served", "served?")]
            times = [f.service_s for f in mine if f.service_s is not None]
            ticket = counter.ticket
            rows.append({
                "counter": spec.id, "name": spec.name, "services": list(spec.services), "status": counter.status,
                "number": ticket.number if ticket else None,
                "ticket_service": ticket.service if ticket else None,
                "priority": ticket.priority if ticket else False,
                "called_at": wire.iso(ticket.called_at) if ticket else None,
                "serving_s": _seconds(now, ticket.called_at) if ticket else None,
                "recalls": ticket.recalls if ticket else 0,
                "served_today": len(mine),
                "median_service_s": round(statistics.median(times)) if times else None,
            })
        return rows

    def services_view(self, now: datetime) -> list[dict[str, Any]]:
        board = {s.service: s for s in self.board.services} if self.board else {}
        open_counters: dict[str, int] = {}
        for spec in self.spec.counters:
            if self._counters[spec.id].status == "open":
                for service_id in spec.services:
                    open_counters[service_id] = open_counters.get(service_id, 0) + 1
        rows = []
        for service in self.spec.services:
            entry = board.get(service.id)
            waiting = [t for t in self._tickets.values() if t.waiting and t.service == service.id]
            oldest = min(waiting, key=lambda t: t.arrived_at) if waiting else None
            oldest_s = _seconds(now, oldest.arrived_at) if oldest else None
            categories: dict[str, int] = {}
            for ticket in waiting:
                if ticket.priority:
                    categories[ticket.category or "other"] = categories.get(ticket.category or "other", 0) + 1
            regular = entry.regular if entry else sum(1 for t in waiting if not t.priority)
            priority = entry.priority if entry else sum(1 for t in waiting if t.priority)
            rows.append({
                "service": service.id, "name_vi": service.name_vi, "name_en": service.name_en,
                "regular": regular, "priority": priority, "categories": categories,
                "oldest_number": oldest.number if oldest else None, "oldest_wait_s": oldest_s,
                "estimated_wait_s": self._estimate(service.id, regular + priority, open_counters.get(service.id, 0)),
                "open_counters": open_counters.get(service.id, 0),
                "target_wait_s": service.target_wait_s,
                "alarm": oldest_s is not None and oldest_s > service.target_wait_s,
            })
        return rows

    def _estimate(self, service: str, waiting: int, counters: int) -> int | None:
        """A newcomer's wait: everyone waiting × today's median service time ÷ the open counters serving it
        (None when no counter serving it is open)."""
        if waiting == 0:
            return 0
        if counters == 0:
            return None
        times = [f.service_s for (ticket_id, _), f in self._finished.items()
                 if f.service_s is not None and f.outcome in ("served", "served?")
                 and (t := self._tickets.get(ticket_id)) is not None and t.service == service]
        per_ticket_s = statistics.median(times) if times else self.spec.default_service_time_s
        return math.ceil(waiting * per_ticket_s / counters)

    def devices_view(self, now: datetime) -> list[dict[str, Any]]:
        order = {"controller": 0, "dispenser": 1, "counter": 2, "display": 3, "other": 4}
        names = {d.id: d.name or d.id for d in self.spec.dispensers} | {c.id: c.name for c in self.spec.counters}
        rows = []
        for device in sorted(self._devices.values(), key=lambda d: (order[d.role], not d.configured)):
            offline_s = _seconds(now, device.since) if device.state == "offline" and device.since else None
            alarm = None
            if device.state == "offline" and (offline_s is None or offline_s > self.offline_alarm_s):
                alarm = "offline"
            elif device.state == "online" and device.printer in PRINTER_ALARMS:
                alarm = f"printer_{device.printer}"
            rows.append({
                "client": device.client, "role": device.role, "id": device.ref,
                "name": names.get(device.ref, device.ref) if device.role in ("dispenser", "counter") else device.ref,
                "configured": device.configured, "state": device.state,
                "since": wire.iso(device.since) if device.since else None, "printer": device.printer,
                "detail": device.detail, "last_ticket": device.last_ticket,
                "last_ticket_at": wire.iso(device.last_ticket_at) if device.last_ticket_at else None,
                "alarm": alarm,
            })
        return rows

    def view(self, now: datetime) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready data."""
        counters = self.counters_view(now)
        services = self.services_view(now)
        devices = self.devices_view(now)
        alarms: list[dict[str, Any]] = []
        for row in services:
            if row["alarm"]:
                alarms.append({"kind": "wait", "service": row["service"], "number": row["oldest_number"],
                               "wait_s": row["oldest_wait_s"], "target_s": row["target_wait_s"]})
        for row in devices:
            if row["alarm"]:
                alarms.append({"kind": row["alarm"], "client": row["client"], "role": row["role"],
                               "name": row["name"], "detail": row["detail"]})
        if self.storage_fault is not None:
            alarms.append({"kind": "storage_fault", "message": self.storage_fault.message})
        board = self.board
        return {
            "hall": self.spec.id, "hall_name_vi": self.spec.name_vi, "hall_name_en": self.spec.name_en,
            "at": wire.iso(now), "business_day": board.business_day if board and board.business_day
            else self.ledger_day, "link_up": self.link_up, "board": board is not None,
            "ledger_problem": self.ledger_problem,
            "counters": counters, "services": services, "devices": devices, "alarms": alarms,
            "events": [_event_obj(e) for e in self.events],
            "notice": None if self.notice is None else {
                "text_vi": self.notice.text_vi, "text_en": self.notice.text_en, "at": wire.iso(self.notice.at),
                "by": self.notice.by},
            "totals": {"regular": sum(r["regular"] for r in services),
                       "priority": sum(r["priority"] for r in services),
                       "served": sum(r["served_today"] for r in counters),
                       "open_counters": sum(1 for r in counters if r["status"] == "open")},
        }


def _seconds(now: datetime, since: datetime) -> int:
    return max(0, round((now - since).total_seconds()))


def _event_obj(event: wire.HallEvent) -> dict[str, Any]:
    return {"kind": event.kind, "at": wire.iso(event.at), "message": event.message, "number": event.number,
            "counter": event.counter, "dispenser": event.dispenser, "code": event.code, "user": event.user,
            "service": event.service, "day": event.day, "count": event.count, "text": event.text}
