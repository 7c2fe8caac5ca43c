"""The dispenser's decisions: a pure state machine from button presses to printed tickets.

Theory of operation
-------------------
The machine does no I/O. The service shell feeds it *events* (a press, a reply, the printer's state, the
broker link, the controller's presence, the end of a print, the passing of time) together with ``now``, and
executes the *actions* it returns (publish a request, print a ticket, report the print, light the LEDs,
publish the printer state, beep). It never publishes, prints, sleeps, logs or reads a clock; the *notices*
among its outputs tell the shell what to log.

``now`` and a press's ``at`` are seconds of a monotonic clock: a Raspberry Pi has no real-time clock and
jumps by months when NTP first answers, which must not expire a request or open a rate-limit window.

A press goes through three phases::

    IDLE --Press (accepted)--> REQUESTING --Reply ok--> PRINTING --PrintFinished--> IDLE
                                  |  ^                                 (report printed ok / failed)
                          timeout |  | retry with the SAME request_id (bounded by ``request_attempts``)
                                  v
                                IDLE (abandoned: nothing printed, fault LED until the controller answers)

* Only one press is in progress at a time. A press that happened while another was in progress (its
  ``at`` lies before the moment the machine became idle again) is ignored, as is a press of a button that
  was accepted less than ``min_interval_s`` ago: a child pressing 50 times gets a few tickets, not 50.
* A press is refused (fault LED) while the broker link is down, the controller's presence is ``offline``
  or the printer is not ready (``paper_out``, ``offline``, or not yet known). ``paper_low`` still prints
  and blinks the fault LED as a warning.
* Only a number the controller assigned is ever printed: the ticket comes from the reply whose
  ``request_id`` matches the request in progress. A reply to an abandoned request that arrives late is
  reported as not printed, so the controller voids that ticket instead of a counter calling nobody.
* If the printer is not ready when the ticket arrives, nothing is printed and the ticket is reported
  failed with the printer's reason; the controller voids it.

A citizen's card (only on a dispenser with a scanner, ``CardRules``) rides along with the next press::

    (no card) --CardScanned (good)--> HELD --accepted Press within hold_s--> in the request, until answered
                                        |  --CardScanned (good)--> HELD (the new card replaces it)
                                        |  --CardScanned (bad) / CardUnreadable--> HELD (error beeps only)
                                        +--hold_s without an accepted press--> (no card)

* A scan is parsed here with ``hallq.cards.parse``: a good one lights the card LED and beeps once, a bad
  one (a URL, random text, a damaged or foreign code, bytes that are not UTF-8) beeps three times and is
  ignored. Neither ever blocks an ordinary ticket: a press without a held card asks as before.
* The card goes out with the request (``TicketRequest.card``, the scanned text) and is forgotten once the
  request is answered, refused or abandoned; the press's lane is the button's (the controller may make it
  ``elderly`` by the card's age).
* ``today`` comes with the scan from the shell: the hall's date when its clock is trusted, None when it is
  not (a Pi before NTP may be months behind). Then the card's own issue date stands in for today, because a
  genuine card was issued on or before today: the card is read by its shape and self-consistency and the
  controller, which issues nothing on untrusted time, works out the age.
* A ``card_limit`` refusal is made plain: its own beeps, and a refusal slip when the printer is ready
  (``PrintSlip``; PRINTING until ``SlipPrinted``, so presses made meanwhile are ignored like during a ticket).

Every transition lives in ``_TRANSITIONS``; an event the table does not allow in the current phase is a
bug in the shell and raises ``InvariantError`` without changing the state. Only the card's hold runs out
on every event (``_expire_card``): it is a deadline, like the request's, but not tied to a phase.
"""

from __future__ import annotations

import enum
import unicodedata
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal

from hallq.cards import MAX_SCAN_LEN, CardError, CardKind, CitizenCard, parse
from hallq.errors import InvariantError
from hallq.wire import CardScan, ErrorCode, PrinterState, PrintReport, TicketInfo, TicketReply, TicketRequest
from hallq.wire import PrintFailureReason as FailureReason

FaultLight = Literal["off", "on", "blink"]
BeepPattern = Literal["accepted", "refused", "failed", "card_read", "card_bad", "card_limit"]
IgnoreReason = Literal[
    "busy", "rate_limited", "broker_unreachable", "controller_offline", "printer_not_ready",
]

PRINTABLE: Final = ("ok", "paper_low")


def _issue_date(text: str) -> date | None:
    """A CCCD code's issue date (its seventh field), if it is a real date: the latest day the card proves
    has come. None for anything else (``parse`` then says what is wrong)."""
    fields = text.split("|")
    if len(fields) < 7:
        return None
    issued = fields[6].strip()
    if len(issued) != 8 or not issued.isdigit():
        return None
    try:
        return date(int(issued[4:]), int(issued[2:4]), int(issued[:2]))
    except ValueError:
        return None


def failure_reason(state: PrinterState | None, detail: str) -> FailureReason:
    """What a print report says when printing is refused because the printer is in ``state`` (None: unknown)."""
    if state == "paper_out":
        return "paper_out"
    if detail == "cover_open":
        return "cover_open"
    return "offline"
# How many abandoned request ids to remember for voiding late replies; far more than can be in flight.
ABANDONED_MEMORY: Final = 32


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """One button of the kiosk: its key, the service it asks for and its lane.

    ``key`` names the button in logs and is the key a person types in ``--simulate``. ``category`` is set
    only for priority buttons (``elderly``, ``disability``, ``pregnant``, ``child``, ``other``).
    """

    key: str
    service: str
    priority: bool = False
    category: str | None = None
    label_vi: str = ""
    label_en: str = ""


@dataclass(frozen=True, slots=True)
class Timing:
    """The machine's time rules, all in seconds."""

    request_timeout_s: float = 1.0
    request_attempts: int = 3
    min_interval_s: float = 2.0


@dataclass(frozen=True, slots=True)
class CardRules:
    """How a dispenser with a card scanner treats scans: a good card is held ``hold_s`` seconds for the next
    press; ``hall_prefix`` is the prefix of the hall's own cards (None: the hall issues none)."""

    hold_s: float = 20.0
    hall_prefix: str | None = None


# --- events in --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Press:
    """Button ``key`` was pressed at monotonic time ``at``; ``request_id`` is fresh, made by the shell."""

    key: str
    at: float
    request_id: str


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """A decoded reply from the controller's ``dispenser/{id}/ticket`` topic."""

    reply: TicketReply


@dataclass(frozen=True, slots=True)
class ReplyUnreadable:
    """A message on ``dispenser/{id}/ticket`` that could not be decoded; the ids the shell could still read
    from it (``None`` where it could not)."""

    request_id: str | None
    ticket_id: str | None


@dataclass(frozen=True, slots=True)
class PrinterChanged:
    """The printer's state as the shell last read it; ``detail`` says more (e.g. ``cover_open``)."""

    state: PrinterState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PrintFinished:
    """The shell finished sending ``ticket_id`` to the printer: ``ok``, or not with a reason from the contract."""

    ticket_id: str
    ok: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The broker link came up or went down."""

    up: bool


@dataclass(frozen=True, slots=True)
class ControllerPresence:
    """The controller's retained presence: ``online`` or ``offline`` (its last will)."""

    online: bool


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; lets the machine act on a deadline."""


@dataclass(frozen=True, slots=True)
class CardScanned:
    """The scanner read ``text`` (one line, its line break removed) at monotonic time ``at``. ``today`` is the
    hall's date when the shell trusts its clock, None when it does not."""

    text: str
    at: float
    today: date | None

    def __repr__(self) -> str:  # the text is personal data: never in a log or a traceback
        return f"CardScanned(<{len(self.text)} characters>, at={self.at}, today={self.today})"


@dataclass(frozen=True, slots=True)
class CardUnreadable:
    """The scanner sent something that is no text at all (not UTF-8, or too long); ``problem`` says which."""

    problem: str
    at: float


@dataclass(frozen=True, slots=True)
class SlipPrinted:
    """The shell finished (or gave up) printing the refusal slip."""


Event = (Press | ReplyReceived | ReplyUnreadable | PrinterChanged | PrintFinished | LinkChanged | ControllerPresence
         | Tick | CardScanned | CardUnreadable | SlipPrinted)


# --- actions and notices out --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendRequest:
    """Publish ``request`` on ``dispenser/{id}/request``; ``attempt`` counts from 1."""

    request: TicketRequest
    attempt: int


@dataclass(frozen=True, slots=True)
class PrintTicket:
    """Print ``ticket`` for ``button``, then feed back ``PrintFinished``."""

    ticket: TicketInfo
    button: ButtonSpec


@dataclass(frozen=True, slots=True)
class SendReport:
    """Publish ``report`` on ``dispenser/{id}/printed``; ``number`` is for the log."""

    report: PrintReport
    number: str


@dataclass(frozen=True, slots=True)
class ShowIndicators:
    """Set the LEDs: ready, busy, and the fault LED off, on or blinking."""

    ready: bool
    busy: bool
    fault: FaultLight
    card: bool = False  # a card is held for the next press, or its request is being answered


@dataclass(frozen=True, slots=True)
class PrintSlip:
    """Print the refusal slip for ``code`` (e.g. ``card_limit``) asked for at ``button``, then feed back
    ``SlipPrinted``."""

    code: str
    button: ButtonSpec


@dataclass(frozen=True, slots=True)
class PublishPrinterState:
    """Publish the printer's state in the dispenser's retained presence."""

    state: PrinterState
    detail: str


@dataclass(frozen=True, slots=True)
class Beep:
    """Sound the buzzer, if there is one."""

    pattern: BeepPattern


@dataclass(frozen=True, slots=True)
class PressIgnored:
    """Notice: the press did not ask for a ticket, and why."""

    key: str
    reason: IgnoreReason


@dataclass(frozen=True, slots=True)
class RequestAbandoned:
    """Notice: no reply after every attempt; nothing was printed and the press is dropped."""

    request_id: str
    key: str
    attempts: int


@dataclass(frozen=True, slots=True)
class TicketRefused:
    """Notice: the controller refused the request (e.g. ``service_closed``); nothing was printed."""

    request_id: str
    key: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class StaleReply:
    """Notice: a reply for no request in progress (a repeat, or another run's); nothing done."""

    request_id: str


@dataclass(frozen=True, slots=True)
class CardRead:
    """Notice: a good card was read and is held for the next press (``replaced``: instead of another one).
    Only its kind and its length, never its content."""

    kind: CardKind
    length: int
    replaced: bool = False


@dataclass(frozen=True, slots=True)
class CardRejected:
    """Notice: a scan that is no card this hall reads; ``reason`` is ``CardError``'s, which holds no data."""

    reason: str
    kept: bool  # a card read before is still held


@dataclass(frozen=True, slots=True)
class CardForgotten:
    """Notice: the held card's ``hold_s`` ran out without an accepted press."""

    kind: CardKind


Action = SendRequest | PrintTicket | PrintSlip | SendReport | ShowIndicators | PublishPrinterState | Beep
Notice = PressIgnored | RequestAbandoned | TicketRefused | StaleReply | CardRead | CardRejected | CardForgotten
Output = Action | Notice


class Phase(enum.Enum):
    IDLE = "idle"
    REQUESTING = "requesting"
    PRINTING = "printing"


@dataclass(slots=True)
class _InFlight:
    """The one press in progress."""

    button: ButtonSpec
    request: TicketRequest
    attempts: int
    deadline: float
    ticket: TicketInfo | None = None
    slip: str | None = None  # the refusal whose slip is being printed


@dataclass(frozen=True, slots=True)
class _HeldCard:
    """A good scan waiting for a press: what goes in the request, and until when (monotonic) it waits."""

    scan: CardScan
    scanned_at: float
    until: float


@dataclass(slots=True)
class _Conditions:
    """What the machine knows about the world around it."""

    link_up: bool = False
    controller_online: bool | None = None  # None: no presence seen yet (then presses are tried)
    printer: PrinterState | None = None  # None: not read yet
    printer_detail: str = ""
    controller_unresponsive: bool = False  # set by an abandoned request, cleared by a reply or an online presence


@dataclass(slots=True)
class _Memory:
    last_accepted_at: dict[str, float] = field(default_factory=dict)
    idle_since: float = float("-inf")
    abandoned: deque[str] = field(default_factory=lambda: deque(maxlen=ABANDONED_MEMORY))
    answered: deque[str] = field(default_factory=lambda: deque(maxlen=ABANDONED_MEMORY))
    shown: ShowIndicators | None = None
    published_printer: tuple[PrinterState, str] | None = None


class Dispenser:
    """The state machine of one dispenser; see the module's theory of operation.

    ``handle(event, now=...)`` returns the actions to execute, in order, and notices to log.
    ``next_deadline()`` tells the shell when to feed ``Tick`` at the latest.
    """

    def __init__(self, buttons: Sequence[ButtonSpec], *, timing: Timing = Timing(),
                 cards: CardRules | None = None) -> None:
        if timing.request_attempts < 1 or timing.request_timeout_s <= 0 or timing.min_interval_s < 0:
            raise ValueError(f"invalid timing {timing}")
        if cards is not None and cards.hold_s <= 0:
            raise ValueError(f"invalid card rules {cards}")
        self.buttons = {b.key: b for b in buttons}
        if len(self.buttons) != len(buttons):
            raise ValueError("button keys must be unique")
        self.timing = timing
        self.phase = Phase.IDLE
        self.in_flight: _InFlight | None = None
        self.conditions = _Conditions()
        self.cards = cards
        self.held: _HeldCard | None = None
        self._memory = _Memory()

    # --- queries ---------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        due = [self.held.until] if self.held is not None else []
        if self.in_flight is not None and self.phase is Phase.REQUESTING:
            due.append(self.in_flight.deadline)
        return min(due, default=None)

    def refusal(self) -> IgnoreReason | None:
        """Why a press would be refused right now for a fault (``None``: it would be tried)."""
        c = self.conditions
        if not c.link_up:
            return "broker_unreachable"
        if c.controller_online is False:
            return "controller_offline"
        if c.printer not in PRINTABLE:
            return "printer_not_ready"
        return None

    def indicators(self) -> ShowIndicators:
        """What the LEDs should show now."""
        c = self.conditions
        fault: FaultLight = "off"
        if self.refusal() is not None or c.controller_unresponsive:
            fault = "on"
        elif c.printer == "paper_low":
            fault = "blink"
        busy = self.phase is not Phase.IDLE
        card = self.held is not None or (self.in_flight is not None and self.in_flight.request.card is not None)
        return ShowIndicators(ready=not busy and fault != "on", busy=busy, fault=fault, card=card)

    # --- the one entry point ---------------------------------------------------------------------------------

    def handle(self, event: Event, *, now: float) -> list[Output]:
        """Apply ``event`` at monotonic time ``now``; returns actions and notices, in order."""
        handler = _TRANSITIONS.get((self.phase, type(event)))
        if handler is None:
            raise InvariantError(f"cannot handle {type(event).__name__} while {self.phase.value}")
        out = handler(self, event, now)
        out.extend(self._expire_card(now))
        out.extend(self._refresh_outputs())
        return out

    # --- transitions -------------------------------------------------------------------------------------

    def _press(self, event: Event, now: float) -> list[Output]:
        assert isinstance(event, Press)
        button = self.buttons.get(event.key)
        if button is None:
            raise InvariantError(f"cannot press {event.key!r}: no such button")
        if self.phase is not Phase.IDLE or event.at < self._memory.idle_since:
            return [PressIgnored(button.key, "busy")]
        last = self._memory.last_accepted_at.get(button.key)
        if last is not None and event.at - last < self.timing.min_interval_s:
            return [PressIgnored(button.key, "rate_limited")]
        refusal = self.refusal()
        if refusal is not None:
            return [PressIgnored(button.key, refusal), Beep("refused")]
        self._memory.last_accepted_at[button.key] = event.at
        card = None
        held = self.held
        if held is not None and held.scanned_at <= event.at < held.until:
            card = held.scan
            self.held = None
        request = TicketRequest(request_id=event.request_id, service=button.service, priority=button.priority,
                                category=button.category if button.priority else None, card=card)
        self.in_flight = _InFlight(button=button, request=request, attempts=1,
                                   deadline=now + self.timing.request_timeout_s)
        self.phase = Phase.REQUESTING
        return [Beep("accepted"), SendRequest(request, 1)]

    def _tick_requesting(self, _event: Event, now: float) -> list[Output]:
        flight = self._flight()
        if now < flight.deadline:
            return []
        if flight.attempts < self.timing.request_attempts:
            flight.attempts += 1
            flight.deadline = now + self.timing.request_timeout_s
            return [SendRequest(flight.request, flight.attempts)]
        self._memory.abandoned.append(flight.request.request_id)
        self.conditions.controller_unresponsive = True
        self._to_idle(now)
        return [RequestAbandoned(flight.request.request_id, flight.button.key, flight.attempts), Beep("failed")]

    def _reply_requesting(self, event: Event, now: float) -> list[Output]:
        assert isinstance(event, ReplyReceived)
        flight = self._flight()
        reply = event.reply
        if reply.request_id != flight.request.request_id:
            return self._reply_elsewhere(event, now)
        self._memory.answered.append(reply.request_id)
        self.conditions.controller_unresponsive = False
        if reply.ticket is None:
            code = reply.error.code if reply.error is not None else "bad_request"
            message = reply.error.message if reply.error is not None else ""
            refused = TicketRefused(flight.request.request_id, flight.button.key, code, message)
            if code == ErrorCode.CARD_LIMIT:
                # A citizen who scanned and pressed and got nothing must be told why, not left guessing.
                if self.conditions.printer in PRINTABLE:
                    flight.slip = code
                    self.phase = Phase.PRINTING
                    return [refused, Beep("card_limit"), PrintSlip(code, flight.button)]
                self._to_idle(now)
                return [refused, Beep("card_limit")]
            self._to_idle(now)
            return [refused, Beep("refused")]
        if self.conditions.printer not in PRINTABLE:
            self._to_idle(now)
            reason = failure_reason(self.conditions.printer, self.conditions.printer_detail)
            return [SendReport(PrintReport(ticket_id=reply.ticket.id, ok=False, reason=reason), reply.ticket.number),
                    Beep("failed")]
        flight.ticket = reply.ticket
        self.phase = Phase.PRINTING
        return [PrintTicket(reply.ticket, flight.button)]

    def _reply_elsewhere(self, event: Event, _now: float) -> list[Output]:
        """A reply that is not for a request waiting for one: a late answer to an abandoned request, a repeat
        of an answer already handled, or an answer to a request of an earlier run of this dispenser (the broker
        kept it in the session while the dispenser restarted: that run never received it, so never printed it).
        The first and the last are voided, so that no counter calls a ticket nobody holds."""
        assert isinstance(event, ReplyReceived)
        reply = event.reply
        self.conditions.controller_unresponsive = False
        abandoned = reply.request_id in self._memory.abandoned
        if abandoned:
            self._memory.abandoned.remove(reply.request_id)
        if reply.ticket is not None and (abandoned or reply.request_id not in self._memory.answered):
            self._memory.answered.append(reply.request_id)  # a repeat of this answer is then only stale
            return [SendReport(PrintReport(ticket_id=reply.ticket.id, ok=False, reason="timeout"),
                               reply.ticket.number)]
        return [StaleReply(reply.request_id)]

    def _unreadable(self, event: Event, now: float) -> list[Output]:
        """A reply nobody can read: if it names a ticket, that ticket is voided (the controller holds it waiting,
        and no counter may call a ticket nobody holds); if it answers the request in flight, asking again would
        only bring the same reply, so the press ends as failed."""
        assert isinstance(event, ReplyUnreadable)
        out: list[Output] = []
        flight = self.in_flight
        ours = (flight is not None and self.phase is Phase.REQUESTING
                and event.request_id == flight.request.request_id)
        if event.ticket_id is not None and (ours or event.request_id not in self._memory.answered):
            if event.request_id is not None:
                self._memory.answered.append(event.request_id)
            out.append(SendReport(PrintReport(ticket_id=event.ticket_id, ok=False, reason="error"),
                                  f"id {event.ticket_id}"))
        if ours:
            self.conditions.controller_unresponsive = False
            self._to_idle(now)
            out.append(Beep("failed"))
        return out

    def _print_finished(self, event: Event, now: float) -> list[Output]:
        assert isinstance(event, PrintFinished)
        flight = self._flight()
        ticket = flight.ticket
        if flight.slip is not None or ticket is None or ticket.id != event.ticket_id:
            raise InvariantError(f"cannot finish printing {event.ticket_id}: printing "
                                 f"{ticket.id if ticket else 'nothing'}")
        self._to_idle(now)
        report = PrintReport(ticket_id=ticket.id, ok=event.ok, reason=None if event.ok else (event.reason or "error"))
        out: list[Output] = [SendReport(report, ticket.number)]
        if not event.ok:
            out.append(Beep("failed"))
        return out

    def _printer(self, event: Event, _now: float) -> list[Output]:
        assert isinstance(event, PrinterChanged)
        self.conditions.printer = event.state
        self.conditions.printer_detail = event.detail
        return []

    def _link(self, event: Event, now: float) -> list[Output]:
        assert isinstance(event, LinkChanged)
        was_up = self.conditions.link_up
        self.conditions.link_up = event.up
        if event.up and not was_up and self.phase is Phase.REQUESTING:
            # The request may have been lost with the connection: ask again at once with the same id
            # (the controller answers a repeated id with the same ticket) and give it a full timeout.
            flight = self._flight()
            flight.deadline = now + self.timing.request_timeout_s
            return [SendRequest(flight.request, flight.attempts)]
        return []

    def _controller(self, event: Event, _now: float) -> list[Output]:
        assert isinstance(event, ControllerPresence)
        self.conditions.controller_online = event.online
        if event.online:
            self.conditions.controller_unresponsive = False
        return []

    def _slip_printed(self, _event: Event, now: float) -> list[Output]:
        flight = self._flight()
        if flight.slip is None:
            raise InvariantError(f"cannot finish a refusal slip: printing ticket "
                                 f"{flight.ticket.id if flight.ticket else 'nothing'}")
        self._to_idle(now)
        return []

    def _scan(self, event: Event, _now: float) -> list[Output]:
        assert isinstance(event, CardScanned)
        rules = self._card_rules()
        today = event.today if event.today is not None else _issue_date(event.text)
        try:
            card = parse(event.text, today=today or date.min, hall_prefix=rules.hall_prefix)
        except CardError as exc:
            return [CardRejected(str(exc), kept=self.held is not None), Beep("card_bad")]
        # Surrounding blanks mean nothing to the parser; the text otherwise goes out as read, in the
        # composed form only if the scanner's decomposed marks make it longer than the contract's limit.
        code = event.text.strip()
        if len(code) > MAX_SCAN_LEN:
            code = unicodedata.normalize("NFC", code)
        kind: CardKind = "cccd" if isinstance(card, CitizenCard) else "hall"
        replaced = self.held is not None
        self.held = _HeldCard(CardScan(kind=kind, code=code), scanned_at=event.at, until=event.at + rules.hold_s)
        return [CardRead(kind, len(code), replaced=replaced), Beep("card_read")]

    def _scan_unreadable(self, event: Event, _now: float) -> list[Output]:
        assert isinstance(event, CardUnreadable)
        self._card_rules()
        return [CardRejected(event.problem, kept=self.held is not None), Beep("card_bad")]

    def _nothing(self, _event: Event, _now: float) -> list[Output]:
        return []

    # --- helpers ---------------------------------------------------------------------------------------------

    def _flight(self) -> _InFlight:
        if self.in_flight is None:
            raise InvariantError(f"no press in progress while {self.phase.value}")
        return self.in_flight

    def _card_rules(self) -> CardRules:
        if self.cards is None:
            raise InvariantError("cannot read a card: this dispenser has no card scanner")
        return self.cards

    def _expire_card(self, now: float) -> list[Output]:
        held = self.held
        if held is None or now < held.until:
            return []
        self.held = None
        return [CardForgotten(held.scan.kind)]

    def _to_idle(self, now: float) -> None:
        self.phase = Phase.IDLE
        self.in_flight = None
        self._memory.idle_since = now

    def _refresh_outputs(self) -> list[Output]:
        out: list[Output] = []
        c = self.conditions
        if c.printer is not None and self._memory.published_printer != (c.printer, c.printer_detail):
            self._memory.published_printer = (c.printer, c.printer_detail)
            out.append(PublishPrinterState(c.printer, c.printer_detail))
        shown = self.indicators()
        if shown != self._memory.shown:
            self._memory.shown = shown
            out.append(shown)
        return out


_Handler = Callable[[Dispenser, Event, float], list[Output]]

# The whole lifecycle: (phase, event) -> transition. Anything missing is illegal in that phase.
_TRANSITIONS: Final[dict[tuple[Phase, type], _Handler]] = {
    (Phase.IDLE, Press): Dispenser._press,
    (Phase.IDLE, ReplyReceived): Dispenser._reply_elsewhere,
    (Phase.IDLE, Tick): Dispenser._nothing,
    (Phase.REQUESTING, Press): Dispenser._press,
    (Phase.REQUESTING, ReplyReceived): Dispenser._reply_requesting,
    (Phase.REQUESTING, Tick): Dispenser._tick_requesting,
    (Phase.PRINTING, Press): Dispenser._press,
    (Phase.PRINTING, ReplyReceived): Dispenser._reply_elsewhere,
    (Phase.PRINTING, Tick): Dispenser._nothing,
    (Phase.PRINTING, PrintFinished): Dispenser._print_finished,
    (Phase.PRINTING, SlipPrinted): Dispenser._slip_printed,
    **{(phase, CardScanned): Dispenser._scan for phase in Phase},
    **{(phase, CardUnreadable): Dispenser._scan_unreadable for phase in Phase},
    **{(phase, ReplyUnreadable): Dispenser._unreadable for phase in Phase},
    **{(phase, PrinterChanged): Dispenser._printer for phase in Phase},
    **{(phase, LinkChanged): Dispenser._link for phase in Phase},
    **{(phase, ControllerPresence): Dispenser._controller for phase in Phase},
}
