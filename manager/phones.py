"""The citizen's status page behind a ticket's QR code, as a pure model: for each status-page token, the
ticket's number and service, where it is (waiting, called, finished...), the people ahead, the estimated wait,
and whether the visit can still be rated.

Theory of operation
-------------------
Like the live view (``manager.live``), two sources feed one ``PhoneModel``:

* **The ledger** (today's journal, read every few seconds, and at once when asked: ``seed``) is the whole truth
  as of its reading: each ticket's token (``TicketIssued.token``), its queue position (``order``, renewed by a
  transfer), calls, how it ended (served, no-show, void, expired, transferred), its rating, the counters'
  statuses and the service-time samples (the day's ``DayStarted`` carries the engine's recent ones; each served
  ticket of the day adds one, as the engine does).
* **The broker** says what changes as it happens, so that a call reaches the page at once and not at the next
  reading: ``calls`` (a ticket called or recalled to a counter), each counter's retained ``state`` (the ticket it
  serves; a ticket it stops serving has **ended** there, its outcome unknown until the ledger says it: the
  shell then asks for an early reading, ``on_counter_state``'s answer) and the retained ``board`` (the counters'
  statuses, the priority lanes' lengths). A rating the controller accepted for this service's own request is
  news too (``on_rated``).

What the broker said is remembered with the (monotonic) time it was seen and applied again after each reading
for ``OBSERVED_KEEP_S``, so that a reading that predates it does not take it back. News applies only where it
is newer than what the reading says (a call after the ticket's current visit began, a recall after its last
call, an end after its last call at that counter), so applying it again is harmless.

People ahead follow the engine's own rule (``Engine._ahead``, applied to a ticket already in line): a regular
ticket has the whole priority lane of its service ahead, plus the regular tickets before it by queue position;
a priority ticket has the priority tickets before it. The priority lane's length comes from the board when it
is of the same business day (it is the controller's count, always current), the rest from the model's waiting
lines. The estimated wait is the engine's ``estimate_wait_s``: ahead × the mean of the service's recent service
times (the hall's default without samples) ÷ the open counters serving the service (at least one).

Cost: 500 phones follow their tickets at once, and every change is pushed to those whose status moved. The
waiting lines are sorted once per change (``version``), not per phone; a status is then a few dictionary
look-ups.

Everything takes ``now`` (the hall's wall clock, timezone-aware) and, for news, ``seen_s`` (a monotonic clock);
nothing here reads a clock, logs, or does I/O.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from hall_controller.engine.core import MAX_ESTIMATE_S, MAX_SAMPLE_S
from hall_controller.engine.events import (
    ClockStepped,
    CounterStatusChanged,
    DayStarted,
    Event,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketRated,
    TicketTransferred,
    TicketVoided,
)
from hall_controller.engine.spec import HallSpec
from hallq import wire

OBSERVED_KEEP_S: Final = 120.0  # news older than this is surely in any later reading of the ledger
TOKEN_LEN: Final = 24  # the controller's tokens: 24 hexadecimal digits (96 random bits)
_TOKEN = re.compile(r"[0-9a-f]{24}")

PhoneState = Literal["waiting", "called", "ended", "served", "no_show", "void", "expired"]
PHONE_STATES: Final[tuple[PhoneState, ...]] = ("waiting", "called", "ended", "served", "no_show", "void",
                                               "expired")
FINAL_STATES: Final = frozenset({"no_show", "void", "expired"})


def normal_token(text: str) -> str | None:
    """``text`` as a status-page token (24 hexadecimal digits, lower case), or None if it cannot be one.

    Constant work whatever comes in: the length is checked before anything else. Capitals are taken (a QR code's
    link may be printed in capitals, the alphanumeric mode's alphabet)."""
    if len(text) != TOKEN_LEN:
        return None
    lowered = text.lower()
    return lowered if _TOKEN.fullmatch(lowered) else None


@dataclass(slots=True)
class _Ticket:
    """One of today's tickets that has a token, as the ledger (and then the broker) says it is."""

    id: str
    token: str
    number: str
    service: str  # where it waits, or was called, now (a transfer moves it)
    priority: bool
    order: int  # its queue position in ``service``
    visit_at: datetime  # when it joined ``service``: issued, or transferred
    state: PhoneState = "waiting"
    moved_from: str | None = None  # the service a transfer took it from
    counter: str | None = None
    called_at: datetime | None = None  # the first call of this visit (a service time's start)
    called_epoch: int = 0  # clock steps seen when called: a service across a step gives no sample
    last_call_at: datetime | None = None  # the latest call or recall
    recalls: int = 0
    finished_at: datetime | None = None
    rated: str | None = None  # the rating's level, once rated


@dataclass(frozen=True, slots=True)
class _SeenCall:
    """A call, recall or serving counter the broker showed: ``recalls`` is known (a counter's state) or not."""

    counter: str
    at: datetime
    recall: bool
    recalls: int | None
    seen_s: float


@dataclass(frozen=True, slots=True)
class _SeenEnd:
    counter: str
    at: datetime
    seen_s: float


@dataclass(slots=True)
class _Observed:
    """News from the broker the ledger may not hold yet, by ticket id."""

    calls: dict[str, _SeenCall] = field(default_factory=dict)  # the latest call or recall (``calls``, the board)
    serving: dict[str, _SeenCall] = field(default_factory=dict)  # a counter's state serving it (recalls known)
    ends: dict[str, _SeenEnd] = field(default_factory=dict)
    ratings: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Queues:
    """What every status needs, made once per change: each waiting ticket's place in its lane, each service's
    priority lane length, open counters and mean service time."""

    place: dict[str, int]
    priority_waiting: dict[str, int]
    open_counters: dict[str, int]
    mean_service_s: dict[str, float]


@dataclass(frozen=True, slots=True)
class TicketRef:
    """What the rating route needs of a ticket found by its token."""

    id: str
    number: str


class PhoneModel:
    """The tickets' status pages of one hall. Feed it with ``seed`` and the ``on_*`` methods; read it with
    ``status(token, now)``. ``version`` grows with every change (a status may also move with ``now`` alone: a
    rating's time running out)."""

    def __init__(self, spec: HallSpec) -> None:
        self.spec = spec
        self.version = 0
        self.ledger_day: str | None = None
        self.link_up = False
        self._tickets: dict[str, _Ticket] = {}
        self._tokens: dict[str, str] = {}  # token -> ticket id
        self._samples: dict[str, deque[float]] = {}
        self._ledger_status: dict[str, str] = {c.id: c.status_at_start for c in spec.counters}
        self._broker_status: dict[str, str] = {}
        self._serving: dict[str, str | None] = {}  # counter -> the ticket its last state showed
        self._board_priority: dict[str, int] = {}
        self._board_day: str | None = None
        self._observed = _Observed()
        self._queues: _Queues | None = None
        self._queues_version = -1

    def _changed(self) -> None:
        self.version += 1

    # --- the ledger ----------------------------------------------------------------------------------------

    def seed(self, events: Iterable[Event], *, day: str, seen_s: float) -> None:
        """Replace what the ledger says with ``events`` (the journal of business day ``day``, in order, as read
        at monotonic ``seen_s``; the kinds ``manager.journal`` reads for reports, and ``TicketRated``), then apply
        again what the broker said since."""
        tickets: dict[str, _Ticket] = {}
        tokens: dict[str, str] = {}
        samples = self._fresh_samples({})
        statuses: dict[str, str] = {c.id: c.status_at_start for c in self.spec.counters}
        epoch = 0
        for event in events:
            match event:
                case TicketIssued():
                    if event.token is not None:
                        tickets[event.ticket_id] = _Ticket(event.ticket_id, event.token, event.number,
                                                           event.service, event.priority, event.order, event.at)
                        tokens[event.token] = event.ticket_id
                case TicketCalled():
                    if (ticket := tickets.get(event.ticket_id)) is not None:
                        _ledger_call(ticket, event, epoch)
                case TicketFinished():
                    if (ticket := tickets.get(event.ticket_id)) is not None:
                        ticket.state, ticket.finished_at = event.outcome, event.at
                        if event.outcome == "served":
                            self._sample(samples, ticket, event.at, epoch)
                case TicketTransferred():
                    if (ticket := tickets.get(event.ticket_id)) is not None:
                        _moved(ticket, event)
                case TicketVoided() | TicketExpired():
                    if (ticket := tickets.get(event.ticket_id)) is not None:
                        ticket.state = "void" if isinstance(event, TicketVoided) else "expired"
                        ticket.finished_at = event.at
                case TicketRated():
                    if (ticket := tickets.get(event.ticket_id)) is not None:
                        ticket.rated = event.level
                case CounterStatusChanged():
                    statuses[event.counter] = event.status
                case ClockStepped():
                    epoch += 1
                case DayStarted():
                    tickets.clear()
                    tokens.clear()
                    samples = self._fresh_samples(event.carry)
                    epoch = 0
                case _:
                    pass
        if day != self.ledger_day:
            self._observed = _Observed()
        self.ledger_day = day
        self._tickets, self._tokens, self._samples, self._ledger_status = tickets, tokens, samples, statuses
        self._reapply(seen_s)
        self._changed()

    def _fresh_samples(self, carry: dict[str, Any]) -> dict[str, deque[float]]:
        """Each service's recent service times as the day began (the engine's, carried by ``DayStarted``)."""
        carried = carry.get("service_times", {}) if isinstance(carry, dict) else {}
        keep = self.spec.service_time_samples
        return {s.id: deque((float(t) for t in carried.get(s.id, ()) if 0 <= t <= MAX_SAMPLE_S), maxlen=keep)
                for s in self.spec.services}

    @staticmethod
    def _sample(samples: dict[str, deque[float]], ticket: _Ticket, at: datetime, epoch: int) -> None:
        """The engine's rule: a served visit gives a sample (call to end) unless it spans a clock step or is out
        of bounds."""
        if ticket.called_at is None or ticket.called_epoch != epoch or ticket.service not in samples:
            return
        sample = (at - ticket.called_at).total_seconds()
        if 0 <= sample <= MAX_SAMPLE_S:
            samples[ticket.service].append(sample)

    def _reapply(self, seen_s: float) -> None:
        observed = self._observed
        for calls in (observed.calls, observed.serving):
            for ticket_id, seen in list(calls.items()):
                if seen_s - seen.seen_s > OBSERVED_KEEP_S:
                    del calls[ticket_id]
                elif (ticket := self._tickets.get(ticket_id)) is not None:
                    _apply_call(ticket, seen)
        for ticket_id, end in list(observed.ends.items()):
            if seen_s - end.seen_s > OBSERVED_KEEP_S:
                del observed.ends[ticket_id]
            elif (ticket := self._tickets.get(ticket_id)) is not None:
                _apply_end(ticket, end)
        for ticket_id, (level, when) in list(observed.ratings.items()):
            if seen_s - when > OBSERVED_KEEP_S:
                del observed.ratings[ticket_id]
            elif (ticket := self._tickets.get(ticket_id)) is not None and ticket.rated is None:
                ticket.rated = level

    # --- the broker ---------------------------------------------------------------------------------------

    def on_link(self, *, up: bool) -> None:
        """The broker connection came up or went down (a page says its figures may be behind)."""
        if up != self.link_up:
            self.link_up = up
            self._changed()

    def on_call(self, call: wire.Call, *, seen_s: float) -> None:
        """A call or recall (``calls``): the page shows it at once."""
        if call.ticket_id:
            self._seen_call(call.ticket_id, _SeenCall(call.counter, call.at, call.recall, None, seen_s))

    def on_board(self, board: wire.Board, *, seen_s: float) -> None:
        """The retained board: counters' statuses, the priority lanes' lengths, and the latest calls (a call
        missed while the broker was away shows here)."""
        self._board_day = board.business_day or None
        self._board_priority = {s.service: s.priority for s in board.services}
        for entry in board.counters:
            self._broker_status[entry.counter] = entry.status
        for call in reversed(board.calls):  # oldest first, as they happened
            if call.ticket_id:
                self._seen_call(call.ticket_id, _SeenCall(call.counter, call.at, call.recall, None, seen_s))
        self._changed()

    def on_counter_state(self, state: wire.CounterState, *, seen_s: float) -> str | None:
        """A counter's retained state: its status and the ticket it serves. A ticket it no longer serves has
        ended there; returns that ticket's token when it is one of ours: its outcome (served, no-show,
        transferred) only the ledger tells, so the shell should read it soon if a page follows it."""
        self._broker_status[state.counter] = state.status
        before = self._serving.get(state.counter)
        after = state.ticket
        self._serving[state.counter] = None if after is None else after.id
        if after is not None:
            seen = _SeenCall(state.counter, after.called_at, False, after.recalls, seen_s)
            self._observed.serving[after.id] = seen
            if (ticket := self._tickets.get(after.id)) is not None:
                _apply_call(ticket, seen)
        ended = None
        if before is not None and (after is None or after.id != before):
            end = _SeenEnd(state.counter, state.at, seen_s)
            self._observed.ends[before] = end
            if (ticket := self._tickets.get(before)) is not None and _apply_end(ticket, end):
                ended = ticket.token
        self._changed()
        return ended

    def on_rated(self, ticket_id: str, level: str, *, seen_s: float) -> None:
        """The controller accepted a rating this service passed on (its reply came before the ledger has it)."""
        self._observed.ratings[ticket_id] = (level, seen_s)
        ticket = self._tickets.get(ticket_id)
        if ticket is not None and ticket.rated is None:
            ticket.rated = level
            self._changed()

    def _seen_call(self, ticket_id: str, seen: _SeenCall) -> None:
        earlier = self._observed.calls.get(ticket_id)
        if earlier is None or seen.at >= earlier.at:
            self._observed.calls[ticket_id] = seen
        ticket = self._tickets.get(ticket_id)
        if ticket is not None:
            _apply_call(ticket, seen)
        self._changed()

    # --- reading ------------------------------------------------------------------------------------------

    def ticket(self, token: str) -> TicketRef | None:
        """The ticket of ``token`` (already ``normal_token``), or None if today's ledger has no such token."""
        ticket_id = self._tokens.get(token)
        ticket = None if ticket_id is None else self._tickets.get(ticket_id)
        return None if ticket is None else TicketRef(ticket.id, ticket.number)

    def knows(self, token: str) -> bool:
        return token in self._tokens

    def status(self, token: str, now: datetime) -> dict[str, Any] | None:
        """What the page of ``token`` shows at ``now``, as JSON-ready values; None for a token not of today.

        ``state``: ``waiting`` (``moved_from`` names the service a transfer took it from), ``called`` (to
        ``counter``; ``recalls`` > 0: called again), ``ended`` (its counter finished with it; whether it was
        served is not known yet), ``served``, ``no_show``, ``void`` or ``expired``. ``ahead`` and
        ``estimated_wait_s`` only while waiting. ``rating_open`` while a served visit may still be rated, until
        ``rating_until``; ``rated`` is the level once rated. ``final``: nothing about it changes any more today.
        ``live``: false while the manager has lost the broker (the figures may be behind).
        """
        ticket_id = self._tokens.get(token)
        ticket = None if ticket_id is None else self._tickets.get(ticket_id)
        if ticket is None:
            return None
        spec = self.spec
        service = spec.service_by_id.get(ticket.service)
        ahead = wait_s = None
        if ticket.state == "waiting":
            queues = self._queues_now()
            ahead = queues.place.get(ticket.id, 0)
            if not ticket.priority:
                ahead += queues.priority_waiting.get(ticket.service, 0)
            wait_s = max(0, min(MAX_ESTIMATE_S, round(
                ahead * queues.mean_service_s.get(ticket.service, float(spec.default_service_time_s))
                / max(1, queues.open_counters.get(ticket.service, 0)))))
        until = None
        if ticket.state == "served" and ticket.finished_at is not None:
            until = ticket.finished_at + timedelta(seconds=spec.ratings.window_s)
        rating_open = until is not None and ticket.rated is None and now <= until
        final = ticket.state in FINAL_STATES or (ticket.state == "served" and not rating_open)
        counter = spec.counter_by_id.get(ticket.counter) if ticket.counter else None
        moved = spec.service_by_id.get(ticket.moved_from) if ticket.moved_from else None
        return {
            "found": True, "number": ticket.number, "service": ticket.service,
            "service_vi": service.name_vi if service else ticket.service,
            "service_en": service.name_en if service else ticket.service,
            "priority": ticket.priority, "state": ticket.state,
            "moved_from": None if ticket.moved_from is None or ticket.state != "waiting" else {
                "service": ticket.moved_from, "name_vi": moved.name_vi if moved else ticket.moved_from,
                "name_en": moved.name_en if moved else ticket.moved_from},
            "ahead": ahead, "estimated_wait_s": wait_s,
            "counter": ticket.counter if ticket.state in ("called", "ended") else None,
            "counter_name": (counter.name if counter else ticket.counter) if ticket.state in ("called", "ended")
            else None,
            "recalls": ticket.recalls if ticket.state == "called" else 0,
            "rated": ticket.rated, "rating_open": rating_open,
            "rating_until": None if until is None else wire.iso(until),
            "rating_until_hm": None if until is None else spec.local(until).strftime("%H:%M"),
            "reasons": [{"id": r.id, "name_vi": r.name_vi, "name_en": r.name_en} for r in spec.ratings.reasons]
            if rating_open else [],
            "final": final, "live": self.link_up,
            "hall_vi": spec.name_vi, "hall_en": spec.name_en,
        }

    def _queues_now(self) -> _Queues:
        """The waiting lines as of this ``version``: sorted once per change, whatever the number of pages."""
        if self._queues is not None and self._queues_version == self.version:
            return self._queues
        lanes: dict[tuple[str, bool], list[tuple[int, str]]] = {}
        for ticket in self._tickets.values():
            if ticket.state == "waiting":
                lanes.setdefault((ticket.service, ticket.priority), []).append((ticket.order, ticket.id))
        place: dict[str, int] = {}
        for lane in lanes.values():
            lane.sort()
            place.update((ticket_id, index) for index, (_order, ticket_id) in enumerate(lane))
        # The board's count is the controller's own (it also holds priority tickets without a token, or issued
        # since the last reading); ours stands in before a board of this day came.
        from_board = self._board_day is not None and self._board_day == self.ledger_day
        priority_waiting = {s.id: self._board_priority.get(s.id, 0) if from_board
                            else len(lanes.get((s.id, True), ())) for s in self.spec.services}
        status = {**self._ledger_status, **self._broker_status}
        open_counters = {s.id: sum(1 for c in self.spec.counters if s.id in c.services and status.get(c.id) == "open")
                         for s in self.spec.services}
        mean = {sid: sum(times) / len(times) for sid, times in self._samples.items() if times}
        self._queues = _Queues(place, priority_waiting, open_counters, mean)
        self._queues_version = self.version
        return self._queues


def _ledger_call(ticket: _Ticket, event: TicketCalled, epoch: int) -> None:
    if event.recall:
        ticket.recalls += 1
    else:
        ticket.state, ticket.called_at, ticket.called_epoch, ticket.recalls = "called", event.at, epoch, 0
    ticket.counter, ticket.last_call_at = event.counter, event.at


def _moved(ticket: _Ticket, event: TicketTransferred) -> None:
    """A transfer: the ticket waits again, in another service, at a new queue position."""
    ticket.moved_from, ticket.service, ticket.order, ticket.visit_at = ticket.service, event.to_service, event.order, \
        event.at
    ticket.state, ticket.counter, ticket.called_at, ticket.last_call_at, ticket.recalls = "waiting", None, None, None, 0
    ticket.finished_at = None


def _apply_call(ticket: _Ticket, seen: _SeenCall) -> None:
    """A call the broker showed, where it is newer than what the ticket's record says."""
    if ticket.state == "waiting":
        if seen.at < ticket.visit_at:
            return  # a call of an earlier visit (before a transfer)
        ticket.state, ticket.counter, ticket.called_at, ticket.last_call_at = "called", seen.counter, seen.at, seen.at
        ticket.recalls = seen.recalls if seen.recalls is not None else int(seen.recall)
    elif ticket.state == "called":
        if ticket.last_call_at is not None and seen.at > ticket.last_call_at:
            ticket.counter, ticket.last_call_at = seen.counter, seen.at
            ticket.recalls = seen.recalls if seen.recalls is not None else ticket.recalls + int(seen.recall)
        elif seen.recalls is not None and seen.recalls > ticket.recalls and seen.counter == ticket.counter:
            ticket.recalls = seen.recalls


def _apply_end(ticket: _Ticket, end: _SeenEnd) -> bool:
    """A counter stopped serving the ticket: it has ended there (unless the record already says how, or says it
    was called again since). True if this changed the ticket."""
    if ticket.state != "called" or ticket.counter != end.counter:
        return False
    if ticket.last_call_at is not None and end.at < ticket.last_call_at:
        return False
    ticket.state, ticket.finished_at = "ended", end.at
    return True
