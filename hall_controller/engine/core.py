"""The queue engine: the hall controller's pure core.

Theory of operation
-------------------
``Engine.handle(command, now=...)`` takes one command (a dispenser's ticket request or print report, a
counter's key press, or a tick of the clock) and returns a ``Decision``: the events it caused, or a
``Refusal`` saying why nothing happened. It does no I/O: the shell passes ``now`` and the new ticket's id,
stores the events durably, and only then replies and broadcasts.

The engine's state changes only in ``apply(event)``. ``handle`` decides, then applies each event it emits,
so a fresh engine that is fed the journal of events (``replay``) reaches exactly the same state; that is
how the controller restarts. A refusal emits nothing, so it leaves the state untouched, with one exception
that is still a fact: the first command of a new business day first expires the old day's open tickets
and starts the new day (``DayStarted``), whatever the command's outcome.

Business day: numbering restarts when the local time in the hall's zone passes ``day_starts_at``; tickets
still waiting or called then end as ``expired``.

Time: ``now`` is the hall's time (``hall_controller.clock``), and ``trusted`` says whether it can be relied
on. Only trusted time starts a new business day, issues a ticket or calls one: on untrusted time (a Pi that
booted with a saved clock and has not synchronised yet) the engine refuses those with ``clock_unsynchronised``
rather than number tickets into a day that may be over, or call yesterday's leftovers this morning. The
business day never moves back, except when an operator confirms the clock (``Tick(confirmed=True)``), the
way out of a day that a clock glitch put in the future: then only its label moves (``DayCorrected``), and
numbering goes on. Nothing else depends on the clock going forward:
the queue's order is its own counter, the max-wait guard measures from a waiting-since that never goes back
in issue order, and a service-time sample is taken only when nonnegative, at most ``MAX_SAMPLE_S``, and not
across a clock step (``ClockStepped``). Request ids are remembered for the business day: the
same ``request_id`` from the same device gets the same answer, also after a restart.

Which ticket a counter gets: ``policy.py``. What number a ticket gets: ``numbering.py``. Ticket moves are
checked against ``lifecycle.TRANSITIONS``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from hall_controller.engine import numbering, policy, views
from hall_controller.engine.events import (
    ActAtCounter,
    ClockChanged,
    ClockStepped,
    Command,
    CommandAccepted,
    CounterStatusChanged,
    DayCorrected,
    DayEnded,
    DayStarted,
    Event,
    IssueTicket,
    ManagerAct,
    ManagerActed,
    RateTicket,
    ReportPrint,
    Tick,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketPrinted,
    TicketRated,
    TicketTransferred,
    TicketVoided,
)
from hall_controller.engine.lifecycle import OPEN_STATES, Move, TicketState, can, next_state
from hall_controller.engine.queues import Lane
from hall_controller.engine.spec import CounterSpec, HallSpec, ServiceSpec
from hallq.errors import InvariantError
from hallq.wire import (
    LOW_RATINGS,
    PRINT_FAILURE_REASONS,
    Board,
    Call,
    CounterAction,
    CounterState,
    CounterStatus,
    ErrorCode,
    Notice,
    ServingTicket,
    TicketInfo,
)

MAX_SAMPLE_S = 4 * 3600  # a "service" longer than this is a forgotten `complete` or a clock fault, not a sample
MAX_ESTIMATE_S = 24 * 3600
CLOCK_GATED = frozenset({"next", "call", "recall"})  # counter actions that need trusted time


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command changed nothing: ``code`` for programs, text for people."""

    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one command, with everything the shell tells anyone about it.

    ``events`` must be stored before anyone is told of the outcome. ``ticket_id`` is the issued ticket (for a
    request), the reported one (for a print report) or the ticket the counter holds afterwards (for a counter
    command). ``duplicate`` marks an answer repeated for a retried request id: nothing new happened.

    What the shell publishes: ``ticket``, the issued (or reported) ticket as its dispenser prints it; for a
    counter command, the counter's ``status`` and the ticket it is ``serving`` afterwards (also on a refusal, so the
    console can show the truth), and the ``calls`` made, in order, as the displays receive them; for the manager's
    notice actions, ``notice_changed`` and the ``notice`` now (None: cleared).
    """

    events: tuple[Event, ...] = ()
    refusal: Refusal | None = None
    ticket_id: str | None = None
    duplicate: bool = False
    ticket: TicketInfo | None = None
    status: CounterStatus | None = None
    serving: ServingTicket | None = None
    calls: tuple[Call, ...] = ()
    notice_changed: bool = False
    notice: Notice | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


@dataclass(slots=True)
class Ticket:
    """A ticket as the engine keeps it. Mutated only by ``Engine.apply``."""

    id: str
    day: str
    dispenser: str
    request_id: str
    service: str
    origin_service: str
    number: str
    sequence: str
    value: int
    priority: bool
    category: str | None
    issued_at: datetime
    order: int
    ahead: int
    estimated_wait_s: int
    state: TicketState = TicketState.WAITING
    counter: str | None = None
    called_at: datetime | None = None
    recalls: int = 0
    finished_at: datetime | None = None
    printed_at: datetime | None = None
    void_reason: str | None = None
    generation: int = 0
    since_s: float = 0.0  # waiting since (epoch s), never before an earlier-issued ticket's: the guard's clock
    called_epoch: int = 0  # clock steps seen when called: a service across a step gives no sample
    card: str | None = None  # the profile reference of the card read with the request
    token: str | None = None  # the status page's token
    rated: tuple[str, str] | None = None  # (source, request id) of its rating, once rated


@dataclass(slots=True)
class CounterRuntime:
    """A counter's live state: status, the ticket it serves, regular calls since the last priority one, and the
    last ticket it served today (the one its rating buttons rate)."""

    spec: CounterSpec
    status: CounterStatus
    ticket_id: str | None = None
    regular_streak: int = 0
    last_served: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call or recall, as the board lists it."""

    seq: int
    ticket_id: str
    number: str
    counter: str
    service: str
    priority: bool
    recall: bool
    at: datetime


@dataclass(slots=True)
class _DayState:
    """Everything that starts empty each business day."""

    last_value: dict[str, int] = field(default_factory=dict)
    issued: dict[str, int] = field(default_factory=dict)
    by_card: dict[str, dict[str, int]] = field(default_factory=dict)  # card reference -> service -> tickets
    by_number: dict[str, str] = field(default_factory=dict)
    requests: dict[tuple[str, str], str] = field(default_factory=dict)
    commands: dict[tuple[str, str], CommandAccepted] = field(default_factory=dict)
    manager_commands: dict[tuple[str, str], ManagerActed] = field(default_factory=dict)
    ended_by: str | None = None  # the manager's user who ended the day early, if one did


class Engine:
    """The hall's queues, counters and numbering. See the module docstring for the contract."""

    def __init__(self, spec: HallSpec) -> None:
        self.spec = spec
        self.day = ""
        self.tickets: dict[str, Ticket] = {}
        self.lanes: dict[tuple[str, bool], Lane] = {
            (s.id, lane): Lane() for s in spec.services for lane in (False, True)
        }
        self.counters: dict[str, CounterRuntime] = {
            c.id: CounterRuntime(spec=c, status=c.status_at_start) for c in spec.counters
        }
        self.today = _DayState()
        self.call_seq = 0
        self.recent_calls: deque[CallRecord] = deque(maxlen=spec.recent_calls)
        self.service_times: dict[str, deque[float]] = {
            s.id: deque(maxlen=spec.service_time_samples) for s in spec.services
        }
        self._next_order = 1
        self._front_order = 0
        self._bulk = False
        self._since_floor = 0.0
        self.clock_epoch = 0
        self.notice: Notice | None = None  # the hall's notice, until the manager clears it (outlives a day)

    # --- deciding ---------------------------------------------------------------------------------------------

    def handle(self, command: Command, *, now: datetime, trusted: bool = True) -> Decision:
        """Decide on one command at the hall time ``now`` (timezone-aware), ``trusted`` or not (see the module
        docstring); the returned events are already applied."""
        if now.tzinfo is None:
            raise InvariantError("the engine needs timezone-aware times")
        emitted: list[Event] = []
        if trusted:
            self._roll_day(now, emitted, backwards=isinstance(command, Tick) and command.confirmed)
        elif self._needs_trusted_time(command):
            return _refuse(ErrorCode.CLOCK_UNSYNCHRONISED,
                           "the hall's clock is not set yet (waiting for network time or an operator's "
                           "confirmation): no ticket is issued or called until it is")
        match command:
            case IssueTicket():
                decision = self._issue(command, now, emitted)
            case ReportPrint():
                decision = self._report_print(command, now, emitted)
            case ActAtCounter():
                decision = self._counter(command, now, emitted)
            case ManagerAct():
                decision = self._manager(command, now, emitted)
            case RateTicket():
                decision = self._rate(command, now, emitted)
            case Tick():
                decision = Decision()
            case ClockChanged():
                self._emit(ClockStepped(at=now, step_s=command.step_s, source=command.source), emitted)
                decision = Decision()
        return self._told(command, decision, tuple(emitted))

    def _told(self, command: Command, decision: Decision, events: tuple[Event, ...]) -> Decision:
        """``decision`` with its events and the wire views the shell publishes (see ``Decision``)."""
        if isinstance(command, ManagerAct):
            changed = decision.ok and not decision.duplicate and command.action in ("show_notice", "clear_notice")
            return dataclasses.replace(decision, events=events, notice_changed=changed, notice=self.notice)
        if isinstance(command, RateTicket):
            counter = self.counters.get(command.source) if command.channel == "counter" else None
            if counter is None:
                return dataclasses.replace(decision, events=events)
            return dataclasses.replace(decision, events=events, status=counter.status,
                                       serving=views.serving(self.counter_ticket(command.source)))
        if isinstance(command, ActAtCounter):
            counter = self.counters.get(command.counter)
            if counter is None:
                return dataclasses.replace(decision, events=events)
            calls = tuple(views.call(self, record) for record in self._calls_in(events))
            return dataclasses.replace(decision, events=events, status=counter.status, calls=calls,
                                       serving=views.serving(self.counter_ticket(command.counter)))
        ticket = self.tickets.get(decision.ticket_id) if decision.ticket_id is not None else None
        return dataclasses.replace(decision, events=events,
                                   ticket=None if ticket is None else views.ticket_info(ticket))

    def _calls_in(self, events: tuple[Event, ...]) -> list[CallRecord]:
        """The call records of the ``TicketCalled`` events just emitted (the newest calls, oldest first)."""
        made = sum(1 for event in events if isinstance(event, TicketCalled))
        return list(reversed(list(itertools.islice(self.recent_calls, made))))

    # --- what the hall shows ---------------------------------------------------------------------------------

    def board(self, now: datetime) -> Board:
        """The retained board: every counter, waiting counts, the latest calls."""
        return views.board(self, now)

    def counter_state(self, counter: str, now: datetime) -> CounterState:
        """One counter's retained state; KeyError if the hall has no such counter."""
        return views.counter_state(self, counter, now)

    def open_count(self) -> int:
        """How many of today's tickets are still open (waiting or being served)."""
        return sum(1 for _ in self.open_tickets())

    def _needs_trusted_time(self, command: Command) -> bool:
        """Issuing and calling need trusted time; a retried request that was already answered is answered again."""
        if isinstance(command, IssueTicket):
            return (command.dispenser, command.request_id) not in self.today.requests
        if isinstance(command, ActAtCounter):
            return command.action in CLOCK_GATED and (command.counter, command.request_id) not in self.today.commands
        return False

    def _emit(self, event: Event, emitted: list[Event]) -> None:
        self.apply(event)
        emitted.append(event)

    def _roll_day(self, now: datetime, emitted: list[Event], *, backwards: bool = False) -> None:
        day = self.spec.business_day(now)
        if day == self.day:
            return
        if day < self.day:
            # The clock went backwards across a day boundary (e.g. NTP correction): stay in the newer day. Only an
            # operator's confirmation moves the label back (out of a day a clock glitch put in the future), and it
            # changes nothing else: the tickets handed out meanwhile were handed out today, so they stay open and
            # numbering goes on after them; starting the day afresh would hand their numbers out again.
            if backwards:
                self._emit(DayCorrected(at=now, day=day), emitted)
            return
        for ticket in list(self.open_tickets()):
            self._emit(TicketExpired(at=now, ticket_id=ticket.id), emitted)
        self._emit(DayStarted(at=now, day=day, carry=self._carry()), emitted)

    def _issue(self, cmd: IssueTicket, now: datetime, emitted: list[Event]) -> Decision:
        dispenser = self.spec.dispenser_by_id.get(cmd.dispenser)
        if dispenser is None:
            return _refuse(ErrorCode.UNKNOWN_DISPENSER, f"dispenser {cmd.dispenser!r} is not configured in this hall")
        earlier = self.today.requests.get((cmd.dispenser, cmd.request_id))
        if earlier is not None:
            return Decision(ticket_id=earlier, duplicate=True)
        service = self.spec.service_by_id.get(cmd.service)
        if service is None:
            return _refuse(ErrorCode.UNKNOWN_SERVICE, f"service {cmd.service!r} does not exist")
        if dispenser.services and service.id not in dispenser.services:
            return _refuse(ErrorCode.NOT_ALLOWED,
                           f"dispenser {dispenser.id} does not issue tickets for service {service.id}")
        if not service.is_open(self.spec.local(now).time()):
            return _refuse(ErrorCode.SERVICE_CLOSED, f"service {service.id} is closed now ({_hours_text(service)})")
        if self.today.ended_by is not None:
            return _refuse(ErrorCode.DAY_ENDED, f"the business day {self.day} was ended early by the hall's manager; "
                                                "tickets are issued again from the next business day")
        issued = self.today.issued.get(service.id, 0)
        if service.daily_cap is not None and issued >= service.daily_cap:
            return _refuse(ErrorCode.DAILY_CAP_REACHED,
                           f"service {service.id} has issued its {service.daily_cap} tickets today")
        if cmd.card is not None and (refusal := self._card_limit(cmd.card, service)) is not None:
            return refusal
        value = numbering.next_value(service, priority=cmd.priority, last_value=self.today.last_value,
                                     in_use=self.today.by_number)
        if value is None:
            return _refuse(ErrorCode.NUMBERS_EXHAUSTED, f"every number of service {service.id} is in use today")
        ahead = self._ahead(service.id, priority=cmd.priority)
        self._emit(
            TicketIssued(
                at=now, ticket_id=cmd.ticket_id, day=self.day, dispenser=cmd.dispenser, request_id=cmd.request_id,
                service=service.id, number=numbering.number_text(service, value, priority=cmd.priority),
                sequence=numbering.sequence_key(service, priority=cmd.priority), value=value, priority=cmd.priority,
                category=cmd.category if cmd.priority else None, order=self._next_order, ahead=ahead,
                estimated_wait_s=self.estimate_wait_s(service.id, ahead), card=cmd.card, token=cmd.token,
            ),
            emitted,
        )
        return Decision(ticket_id=cmd.ticket_id)

    def _card_limit(self, card: str, service: ServiceSpec) -> Decision | None:
        """The refusal when the citizen's card has taken its tickets today: for ``service`` (its
        ``card_daily_limit``) or in all (the hall's). A ticket voided because it could not be printed does not
        count; one the citizen left (voided "left") or that was served does."""
        taken = self.today.by_card.get(card, {})
        if service.card_daily_limit is not None and taken.get(service.id, 0) >= service.card_daily_limit:
            return _refuse(ErrorCode.CARD_LIMIT, f"this card has taken its {service.card_daily_limit} ticket(s) of "
                                                 f"service {service.id} today")
        limit = self.spec.card_daily_limit
        if limit is not None and sum(taken.values()) >= limit:
            return _refuse(ErrorCode.CARD_LIMIT, f"this card has taken its {limit} ticket(s) today")
        return None

    def _report_print(self, cmd: ReportPrint, now: datetime, emitted: list[Event]) -> Decision:
        if cmd.dispenser not in self.spec.dispenser_by_id:
            return _refuse(ErrorCode.UNKNOWN_DISPENSER, f"dispenser {cmd.dispenser!r} is not configured in this hall")
        ticket = self.tickets.get(cmd.ticket_id)
        if ticket is None or ticket.dispenser != cmd.dispenser:
            return _refuse(ErrorCode.UNKNOWN_TICKET,
                           f"dispenser {cmd.dispenser} issued no ticket {cmd.ticket_id!r} today")
        if cmd.ok:
            if ticket.printed_at is None and ticket.state is not TicketState.VOID:
                self._emit(TicketPrinted(at=now, ticket_id=ticket.id), emitted)
            return Decision(ticket_id=ticket.id)
        if ticket.state is TicketState.VOID:
            return Decision(ticket_id=ticket.id, duplicate=True)
        if not can(ticket.state, Move.VOID):
            return _refuse(ErrorCode.NOT_ALLOWED, f"cannot void: {ticket.number} is {ticket.state.value}")
        self._emit(TicketVoided(at=now, ticket_id=ticket.id, reason=cmd.reason or "error"), emitted)
        return Decision(ticket_id=ticket.id)

    def _counter(self, cmd: ActAtCounter, now: datetime, emitted: list[Event]) -> Decision:
        counter = self.counters.get(cmd.counter)
        if counter is None:
            return _refuse(ErrorCode.UNKNOWN_COUNTER, f"counter {cmd.counter!r} is not configured in this hall")
        earlier = self.today.commands.get((cmd.counter, cmd.request_id))
        if earlier is not None:
            return Decision(ticket_id=earlier.ticket_id, duplicate=True)
        refusal = self._counter_action(counter, cmd, now, emitted)
        if refusal is not None:
            return Decision(refusal=refusal)
        self._emit(CommandAccepted(at=now, counter=counter.spec.id, request_id=cmd.request_id, action=cmd.action,
                                   ticket_id=counter.ticket_id), emitted)
        return Decision(ticket_id=counter.ticket_id)

    def _counter_action(self, counter: CounterRuntime, cmd: ActAtCounter, now: datetime,
                        emitted: list[Event]) -> Refusal | None:
        cid = counter.spec.id
        current = self.tickets[counter.ticket_id] if counter.ticket_id is not None else None
        if cmd.serving is not None and cmd.action not in ("open", "pause", "close") and cmd.serving not in (
            ("",) if current is None else (current.id, current.number)
        ):
            # Another console or keypad of this counter acted since the sender last looked: acting now could
            # finish a citizen the sender never saw called (a `next` completes the current ticket). The message
            # names tickets by today's numbers only, never by the sender's text.
            seen = "nothing" if not cmd.serving else next(
                (t.number for t in self.tickets.values() if cmd.serving in (t.id, t.number)), "the ticket it saw")
            return Refusal(ErrorCode.CONFLICT, f"counter {cid} is serving {current.number if current else 'nothing'}, "
                                               f"not {seen}: another console acted; refresh")
        match cmd.action:
            case "open":
                if counter.status != "open":
                    self._emit(CounterStatusChanged(at=now, counter=cid, status="open"), emitted)
                return None
            case "pause":
                if counter.status == "closed":
                    return Refusal(ErrorCode.COUNTER_CLOSED, f"counter {cid} is closed; open it first")
                if counter.status == "open":
                    self._emit(CounterStatusChanged(at=now, counter=cid, status="paused"), emitted)
                return None
            case "close":
                if current is not None:
                    return Refusal(ErrorCode.COUNTER_BUSY,
                                   f"cannot close: counter {cid} is serving {current.number}; complete it first")
                if counter.status != "closed":
                    self._emit(CounterStatusChanged(at=now, counter=cid, status="closed"), emitted)
                return None
            case "next" | "call":
                return self._call(counter, cmd, current, now, emitted)
            case "recall" | "complete" | "no_show" | "transfer":
                if current is None:
                    return Refusal(ErrorCode.NOT_SERVING, f"cannot {cmd.action}: counter {cid} is serving nothing")
                return self._finish(counter, cmd, current, now, emitted)
        raise InvariantError(f"unhandled counter action {cmd.action!r}")

    def _call(self, counter: CounterRuntime, cmd: ActAtCounter, current: Ticket | None, now: datetime,
              emitted: list[Event]) -> Refusal | None:
        cid = counter.spec.id
        if counter.status == "closed":
            return Refusal(ErrorCode.COUNTER_CLOSED, f"counter {cid} is closed; open it first")
        services = counter.spec.services
        if cmd.action == "call":
            ticket_id = self.today.by_number.get(cmd.ticket or "")
            chosen = self.tickets.get(ticket_id) if ticket_id else None
            if chosen is None:
                return Refusal(ErrorCode.UNKNOWN_TICKET, f"no ticket {cmd.ticket} is open today")
            if chosen.service not in services:
                return Refusal(ErrorCode.NOT_ALLOWED, f"counter {cid} does not serve service {chosen.service}")
            if chosen.state is not TicketState.WAITING:
                where = f" at counter {chosen.counter}" if chosen.counter else ""
                return Refusal(ErrorCode.NOT_ALLOWED, f"cannot call: {chosen.number} is {chosen.state.value}{where}")
        else:
            if cmd.service is not None:
                if cmd.service not in services:
                    return Refusal(ErrorCode.NOT_ALLOWED, f"counter {cid} does not serve service {cmd.service}")
                services = (cmd.service,)
            picked = policy.pick(counter.spec, regular_streak=counter.regular_streak, services=services,
                                 lanes=self.lanes, is_current=self._is_waiting, now_s=now.timestamp())
            if picked is None:
                return Refusal(ErrorCode.QUEUE_EMPTY, f"no ticket is waiting for counter {cid} "
                                                      f"(services {', '.join(services)})")
            chosen = self.tickets[picked]
        if counter.status == "paused":
            self._emit(CounterStatusChanged(at=now, counter=cid, status="open"), emitted)
        if current is not None:
            # A counter serves one ticket at a time: calling the next one completes the current one.
            self._emit(TicketFinished(at=now, ticket_id=current.id, counter=cid, outcome="served"), emitted)
        self._emit(TicketCalled(at=now, ticket_id=chosen.id, counter=cid, seq=self.call_seq + 1, recall=False),
                   emitted)
        return None

    def _finish(self, counter: CounterRuntime, cmd: ActAtCounter, current: Ticket, now: datetime,
                emitted: list[Event]) -> Refusal | None:
        cid = counter.spec.id
        match cmd.action:
            case "recall":
                self._emit(TicketCalled(at=now, ticket_id=current.id, counter=cid, seq=self.call_seq + 1,
                                        recall=True), emitted)
            case "complete":
                self._emit(TicketFinished(at=now, ticket_id=current.id, counter=cid, outcome="served"), emitted)
            case "no_show":
                self._emit(TicketFinished(at=now, ticket_id=current.id, counter=cid, outcome="no_show"), emitted)
            case "transfer":
                target = self.spec.service_by_id.get(cmd.service or "")
                if target is None:
                    return Refusal(ErrorCode.UNKNOWN_SERVICE, f"service {cmd.service!r} does not exist")
                if target.id == current.service:
                    return Refusal(ErrorCode.NOT_ALLOWED, f"{current.number} is already in service {target.id}")
                order = self._front_order - 1 if target.transfer_position == "front" else current.order
                self._emit(TicketTransferred(at=now, ticket_id=current.id, counter=cid, to_service=target.id,
                                             order=order), emitted)
        return None

    def _manager(self, cmd: ManagerAct, now: datetime, emitted: list[Event]) -> Decision:
        """An action of the hall's manager; every accepted one is journaled with who asked (``ManagerActed``)."""
        earlier = self.today.manager_commands.get((cmd.manager, cmd.request_id))
        if earlier is not None:
            return Decision(ticket_id=earlier.ticket_id, duplicate=True)
        refusal, ticket_id = self._manager_action(cmd, now, emitted)
        if refusal is not None:
            return Decision(refusal=refusal)
        self._emit(ManagerActed(at=now, manager=cmd.manager, request_id=cmd.request_id, user=cmd.user,
                                action=cmd.action, counter=cmd.counter, ticket_id=ticket_id, service=cmd.service,
                                text_vi=cmd.text_vi, text_en=cmd.text_en), emitted)
        return Decision(ticket_id=ticket_id)

    def _manager_action(self, cmd: ManagerAct, now: datetime,
                        emitted: list[Event]) -> tuple[Refusal | None, str | None]:
        match cmd.action:
            case "open_counter" | "pause_counter" | "close_counter":
                counter = self.counters.get(cmd.counter or "")
                if counter is None:
                    return Refusal(ErrorCode.UNKNOWN_COUNTER, f"counter {cmd.counter!r} is not configured in this "
                                                              "hall"), None
                action = cast(CounterAction, cmd.action.removesuffix("_counter"))
                acted = ActAtCounter(counter=counter.spec.id, request_id=cmd.request_id, action=action)
                return self._counter_action(counter, acted, now, emitted), None
            case "void_ticket" | "transfer_ticket":
                return self._manage_ticket(cmd, now, emitted)
            case "end_day":
                for ticket in list(self.open_tickets()):
                    if ticket.state is TicketState.WAITING:
                        self._emit(TicketExpired(at=now, ticket_id=ticket.id, reason="day_ended"), emitted)
                if self.today.ended_by is None:
                    self._emit(DayEnded(at=now, day=self.day, user=cmd.user), emitted)
                return None, None
            case "show_notice" | "clear_notice":
                return None, None
        raise InvariantError(f"unhandled manager action {cmd.action!r}")

    def _manage_ticket(self, cmd: ManagerAct, now: datetime,
                       emitted: list[Event]) -> tuple[Refusal | None, str | None]:
        ticket_id = self.today.by_number.get(cmd.ticket or "")
        ticket = self.tickets.get(ticket_id) if ticket_id else None
        if ticket is None:
            return Refusal(ErrorCode.UNKNOWN_TICKET, f"no ticket {cmd.ticket} is open today"), None
        if ticket.state is not TicketState.WAITING:
            return Refusal(ErrorCode.NOT_ALLOWED, f"{ticket.number} is being served at counter {ticket.counter}: "
                                                  "only a waiting ticket can be voided or moved; the counter "
                                                  "finishes it"), None
        if cmd.action == "void_ticket":
            self._emit(TicketVoided(at=now, ticket_id=ticket.id, reason="left"), emitted)
            return None, ticket.id
        target = self.spec.service_by_id.get(cmd.service or "")
        if target is None:
            return Refusal(ErrorCode.UNKNOWN_SERVICE, f"service {cmd.service!r} does not exist"), None
        if target.id == ticket.service:
            return Refusal(ErrorCode.NOT_ALLOWED, f"{ticket.number} already waits in service {target.id}"), None
        order = self._front_order - 1 if target.transfer_position == "front" else ticket.order
        self._emit(TicketTransferred(at=now, ticket_id=ticket.id, counter="", to_service=target.id, order=order),
                   emitted)
        return None, ticket.id

    def _rate(self, cmd: RateTicket, now: datetime, emitted: list[Event]) -> Decision:
        """A citizen's rating of a visit, under the rules: one per ticket (the first counts), only a served ticket,
        only within ``[ratings] window_s`` of its end, and a counter's buttons only its own last served ticket.
        A refusal changes nothing."""
        ticket = self.tickets.get(cmd.ticket)
        if ticket is None:
            return _refuse(ErrorCode.UNKNOWN_TICKET, "no such ticket today")
        if ticket.rated == (cmd.source, cmd.request_id):
            return Decision(ticket_id=ticket.id, duplicate=True)
        if cmd.channel == "counter":
            counter = self.counters.get(cmd.source)
            if counter is None:
                return _refuse(ErrorCode.UNKNOWN_COUNTER, f"counter {cmd.source!r} is not configured in this hall")
            if counter.last_served != ticket.id:
                last = self.tickets.get(counter.last_served or "")
                return _refuse(ErrorCode.NOT_RATEABLE, f"counter {cmd.source}'s buttons rate only its last served "
                                                       f"ticket ({last.number if last else 'none today'}), "
                                                       f"not {ticket.number}")
        if ticket.state is not TicketState.SERVED or ticket.counter is None or ticket.finished_at is None:
            return _refuse(ErrorCode.NOT_RATEABLE, f"{ticket.number} was not served "
                                                   f"({ticket.state.value}): only a served visit can be rated")
        if ticket.rated is not None:
            return _refuse(ErrorCode.ALREADY_RATED, f"{ticket.number} was rated already: the first rating counts")
        window_s = self.spec.ratings.window_s
        if (now - ticket.finished_at).total_seconds() > window_s:
            return _refuse(ErrorCode.RATING_CLOSED, f"{ticket.number} was served more than {window_s // 60} "
                                                    "minutes ago: the time to rate it has passed")
        if (cmd.reasons or cmd.comment) and cmd.level not in LOW_RATINGS:
            return _refuse(ErrorCode.BAD_REQUEST, "reasons and comments go only with a rating of neutral or lower")
        unknown = [r for r in cmd.reasons if r not in self.spec.ratings.reason_by_id]
        if unknown:
            return _refuse(ErrorCode.BAD_REQUEST, f"unknown rating reason {unknown[0]!r}")
        self._emit(TicketRated(at=now, ticket_id=ticket.id, number=ticket.number, service=ticket.service,
                               counter=ticket.counter, level=cmd.level, channel=cmd.channel, source=cmd.source,
                               request_id=cmd.request_id, reasons=list(cmd.reasons), comment=cmd.comment or None),
                   emitted)
        return Decision(ticket_id=ticket.id)

    def _is_waiting(self, ticket_id: str, generation: int) -> bool:
        ticket = self.tickets.get(ticket_id)
        return ticket is not None and ticket.state is TicketState.WAITING and ticket.generation == generation

    def _ahead(self, service: str, *, priority: bool) -> int:
        """People ahead of a new ticket: its lane, and for a regular ticket the priority lane too."""
        ahead = self.lanes[(service, True)].count
        if not priority:
            ahead += self.lanes[(service, False)].count
        return ahead

    def estimate_wait_s(self, service: str, ahead: int) -> int:
        """``ahead`` × recent mean service time ÷ open counters serving the service (at least one)."""
        samples = self.service_times[service]
        mean_s = sum(samples) / len(samples) if samples else float(self.spec.default_service_time_s)
        servers = sum(1 for c in self.counters.values() if c.status == "open" and service in c.spec.services)
        return max(0, min(MAX_ESTIMATE_S, round(ahead * mean_s / max(1, servers))))

    # --- applying: the only place state changes ---------------------------------------------------------------

    def replay(self, events: Iterable[Event]) -> int:
        """Apply stored events in order (a restart); returns how many. Faster than ``apply`` one by one: the
        waiting lines are put in order once at the end instead of after every ticket."""
        count = 0
        self._bulk = True
        try:
            for event in events:
                self.apply(event)
                count += 1
        finally:
            self._bulk = False
            for lane in self.lanes.values():
                lane.restore_order()
        return count

    def apply(self, event: Event) -> None:
        """Apply one event. Applying the journal's events in order rebuilds the engine exactly."""
        match event:
            case TicketIssued():
                self._apply_issued(event)
            case TicketCalled():
                self._apply_called(event)
            case TicketFinished():
                ticket = self._move(event.ticket_id, Move.COMPLETE if event.outcome == "served" else Move.NO_SHOW)
                ticket.finished_at = event.at
                self._release(ticket)
                if event.outcome == "served":
                    self.counters[event.counter].last_served = ticket.id
                if event.outcome == "served" and ticket.called_at is not None \
                        and ticket.called_epoch == self.clock_epoch:
                    sample = (event.at - ticket.called_at).total_seconds()
                    if 0 <= sample <= MAX_SAMPLE_S:
                        self.service_times[ticket.service].append(sample)
            case TicketTransferred():
                waiting = self.tickets[event.ticket_id]
                if waiting.state is TicketState.WAITING:  # moved by the manager: it leaves its old lane
                    self.lanes[(waiting.service, waiting.priority)].left()
                ticket = self._move(event.ticket_id, Move.TRANSFER)
                self._free_counter(ticket)
                ticket.service = event.to_service
                ticket.order = event.order
                ticket.generation += 1
                self._front_order = min(self._front_order, event.order)
                self._enqueue(ticket)
            case TicketVoided() | TicketExpired():
                move = Move.VOID if isinstance(event, TicketVoided) else Move.EXPIRE
                ticket = self.tickets[event.ticket_id]
                if ticket.state is TicketState.WAITING:
                    self.lanes[(ticket.service, ticket.priority)].left()
                self._move(event.ticket_id, move)
                ticket.finished_at = event.at
                if isinstance(event, TicketVoided):
                    ticket.void_reason = event.reason
                    if event.reason in PRINT_FAILURE_REASONS:
                        # Never printed, never called: its place under the daily cap goes back (its number does not).
                        self.today.issued[ticket.origin_service] -= 1
                        if ticket.card is not None:
                            self.today.by_card[ticket.card][ticket.origin_service] -= 1
                self._release(ticket)
            case TicketPrinted():
                self.tickets[event.ticket_id].printed_at = event.at
            case CounterStatusChanged():
                self.counters[event.counter].status = event.status
            case CommandAccepted():
                self.today.commands[(event.counter, event.request_id)] = event
            case ManagerActed():
                self.today.manager_commands[(event.manager, event.request_id)] = event
                if event.action == "show_notice" and event.text_vi is not None:
                    self.notice = Notice(text_vi=event.text_vi, text_en=event.text_en, at=event.at, by=event.user)
                elif event.action == "clear_notice":
                    self.notice = None
            case TicketRated():
                self.tickets[event.ticket_id].rated = (event.source, event.request_id)
            case DayEnded():
                self.today.ended_by = event.user
            case DayStarted():
                self._apply_day_started(event)
            case ClockStepped():
                self.clock_epoch += 1
            case DayCorrected():
                self.day = event.day
            case _:
                raise InvariantError(f"unknown event {event!r}")

    def _apply_issued(self, event: TicketIssued) -> None:
        # The hottest path of a restart (one call per ticket of the day): plain locals, positional arguments.
        tid = event.ticket_id
        if tid in self.tickets:
            raise InvariantError(f"ticket id {tid} issued twice")
        service, at = event.service, event.at
        self.tickets[tid] = Ticket(tid, event.day, event.dispenser, event.request_id, service, service, event.number,
                                   event.sequence, event.value, event.priority, event.category, at, event.order,
                                   event.ahead, event.estimated_wait_s)
        if event.token is not None:
            self.tickets[tid].token = event.token
        # Waiting-since never goes back in issue order, so a clock that stepped back (or a ticket stamped before
        # time sync) cannot make a later ticket look like the longest-waiting one to the max-wait guard.
        since = self._since_floor = max(at.timestamp(), self._since_floor)
        self.tickets[tid].since_s = since
        lane = self.lanes[(service, event.priority)]
        (lane.append_unordered if self._bulk else lane.push)(tid, event.order, since, 0)
        today = self.today
        today.last_value[event.sequence] = event.value
        today.issued[service] = today.issued.get(service, 0) + 1
        card = event.card
        if card is not None:
            self.tickets[tid].card = card
            taken = today.by_card.get(card)
            if taken is None:
                taken = today.by_card[card] = {}
            taken[service] = taken.get(service, 0) + 1
        today.by_number[event.number] = tid
        today.requests[(event.dispenser, event.request_id)] = tid
        if event.order >= self._next_order:
            self._next_order = event.order + 1

    def _apply_called(self, event: TicketCalled) -> None:
        ticket = self.tickets[event.ticket_id]
        counter = self.counters[event.counter]
        if event.recall:
            self._move(ticket.id, Move.RECALL)
            ticket.recalls += 1
        else:
            self.lanes[(ticket.service, ticket.priority)].left()
            self._move(ticket.id, Move.CALL)
            ticket.counter = counter.spec.id
            ticket.called_at = event.at
            ticket.called_epoch = self.clock_epoch
            counter.ticket_id = ticket.id
            counter.regular_streak = 0 if ticket.priority else counter.regular_streak + 1
        self.call_seq = event.seq
        self.recent_calls.appendleft(CallRecord(
            seq=event.seq, ticket_id=ticket.id, number=ticket.number, counter=counter.spec.id,
            service=ticket.service, priority=ticket.priority, recall=event.recall, at=event.at,
        ))

    def _carry(self) -> dict[str, Any]:
        """What outlives a business day, as JSON-ready values (see ``DayStarted``)."""
        return {
            "counters": {cid: [c.status, c.regular_streak] for cid, c in self.counters.items()},
            "call_seq": self.call_seq,
            "recent_calls": [[r.seq, r.ticket_id, r.number, r.counter, r.service, r.priority, r.recall,
                              r.at.isoformat()] for r in self.recent_calls],
            "service_times": {sid: list(times) for sid, times in self.service_times.items()},
            "next_order": self._next_order,
            "front_order": self._front_order,
            "notice": None if self.notice is None else [self.notice.text_vi, self.notice.text_en,
                                                        self.notice.at.isoformat(), self.notice.by],
        }

    def _load_carry(self, carry: dict[str, Any]) -> None:
        """Set what outlives a day from a ``DayStarted``; entries for counters or services no longer
        configured are dropped (the hall's config changed between days)."""
        for cid, (status, streak) in carry["counters"].items():
            if cid in self.counters:
                self.counters[cid].status = status
                self.counters[cid].regular_streak = streak
        self.call_seq = carry["call_seq"]
        notice = carry.get("notice")  # absent from the days before notices existed
        self.notice = None if not notice else Notice(text_vi=notice[0], text_en=notice[1],
                                                     at=datetime.fromisoformat(notice[2]), by=notice[3])
        self.recent_calls.clear()
        self.recent_calls.extend(
            CallRecord(seq, tid, number, counter, service, priority, recall, datetime.fromisoformat(at))
            for seq, tid, number, counter, service, priority, recall, at in carry["recent_calls"]
            if counter in self.counters
        )
        for sid, times in carry["service_times"].items():
            if sid in self.service_times:
                self.service_times[sid].clear()
                # Bounded again: a ledger written before samples were checked may carry a clock fault's.
                self.service_times[sid].extend(t for t in times if 0 <= t <= MAX_SAMPLE_S)
        self._next_order = carry["next_order"]
        self._front_order = carry["front_order"]

    def _apply_day_started(self, event: DayStarted) -> None:
        if event.carry:
            self._load_carry(event.carry)
        self.day = event.day
        self.today = _DayState()
        self._since_floor = 0.0
        self.clock_epoch = 0
        # Finished tickets of earlier days live on in the ledger's history, not in memory.
        if any(t.state in OPEN_STATES for t in self.tickets.values()):
            raise InvariantError("a business day started while tickets of the old day were still open")
        self.tickets = {}
        self.lanes = {key: Lane() for key in self.lanes}
        for counter in self.counters.values():
            counter.last_served = None

    def _move(self, ticket_id: str, move: Move) -> Ticket:
        ticket = self.tickets[ticket_id]
        ticket.state = next_state(ticket.state, move, number=ticket.number)
        return ticket

    def _enqueue(self, ticket: Ticket) -> None:
        lane = self.lanes[(ticket.service, ticket.priority)]
        (lane.append_unordered if self._bulk else lane.push)(ticket.id, ticket.order, ticket.since_s, ticket.generation)

    def _free_counter(self, ticket: Ticket) -> None:
        if ticket.counter is not None and self.counters[ticket.counter].ticket_id == ticket.id:
            self.counters[ticket.counter].ticket_id = None

    def _release(self, ticket: Ticket) -> None:
        """A ticket reached a final state: free its counter and its number."""
        self._free_counter(ticket)
        if self.today.by_number.get(ticket.number) == ticket.id:
            del self.today.by_number[ticket.number]

    # --- reading ----------------------------------------------------------------------------------------------

    def open_tickets(self) -> Iterator[Ticket]:
        return (t for t in self.tickets.values() if t.state in OPEN_STATES)

    def waiting_count(self, service: str, *, priority: bool) -> int:
        return self.lanes[(service, priority)].count

    def counter_ticket(self, counter: str) -> Ticket | None:
        ticket_id = self.counters[counter].ticket_id
        return None if ticket_id is None else self.tickets[ticket_id]

    def fingerprint(self) -> tuple[object, ...]:
        """Everything that defines the engine's observable state, for comparing two engines in tests."""
        return (
            self.day,
            sorted((t.id, t.state.value, t.service, t.number, t.counter, t.order, t.generation, t.recalls,
                    t.printed_at, t.finished_at, t.called_at, t.since_s, t.called_epoch, t.token, t.rated)
                   for t in self.tickets.values()),
            sorted((c.spec.id, c.status, c.ticket_id, c.regular_streak, c.last_served)
                   for c in self.counters.values()),
            sorted((key, lane.count) for key, lane in self.lanes.items()),
            sorted(self.today.last_value.items()), sorted(self.today.issued.items()),
            sorted((card, sorted(taken.items())) for card, taken in self.today.by_card.items()),
            sorted(self.today.by_number.items()), sorted(self.today.requests.items()),
            sorted(self.today.commands), self.call_seq, list(self.recent_calls),
            sorted((s, list(v)) for s, v in self.service_times.items()), self._next_order, self._front_order,
            self._since_floor, self.clock_epoch, sorted(self.today.manager_commands), self.today.ended_by,
            self.notice,
        )


def _refuse(code: ErrorCode, message: str) -> Decision:
    return Decision(refusal=Refusal(code, message))


def _hours_text(service: ServiceSpec) -> str:
    return "open " + ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in service.hours)
