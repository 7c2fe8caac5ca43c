"""What a device asked, decided: decode at the boundary, let the engine decide, build the answers.

``Requests.handle`` turns one admitted message (a ticket request, a print report, a counter command, a manager
command) into an ``Outcome``: the engine's ``Decision`` and what to publish once its events are stored: the
reply, the calls, the notice, the events for the manager's live view, and the reply to send instead if the
store fails. Every answer is built from the ``Decision`` alone (the engine
puts the ticket, the call and the counter's state in it), so nothing here reads the engine's state. A payload
that cannot be decoded is answered ``bad_request``/``unsupported_version`` with the request id and action echoed
when they can be read; print reports have no reply.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from hall_controller.admission import Admission
from hall_controller.engine import Decision, Engine
from hall_controller.engine.events import (
    ActAtCounter,
    IssueTicket,
    ManagerAct,
    RateTicket,
    ReportPrint,
    TicketCalled,
    TicketRated,
)
from hallq import wire
from hallq.errors import PayloadError
from hallq.limits import MAX_ACTION_LEN, MAX_REQUEST_ID_LEN
from hallq.topics import ParsedTopic, TopicKind, Topics

if TYPE_CHECKING:  # the card reader (cryptography) is imported only by halls that read cards
    from hall_controller.citizens import CitizenDesk

log = logging.getLogger(__name__)

Publish = tuple[str, bytes]  # (topic, payload)

RATE_LIMITED = wire.ErrorInfo(wire.ErrorCode.RATE_LIMITED, "this device sends more than the hall controller "
                                                           "accepts; messages are being dropped")
STATUS_TOKEN_BYTES = 12  # 96 random bits: the status page's link cannot be guessed or walked


def new_status_token() -> str:
    """A ticket's status-page token: 24 hexadecimal digits from the system's random source, unrelated to the
    ticket's id, number or sequence."""
    return secrets.token_hex(STATUS_TOKEN_BYTES)


STORAGE_UNAVAILABLE = wire.ErrorInfo(wire.ErrorCode.STORAGE_UNAVAILABLE,
                                     "the hall controller cannot store tickets right now; nothing was changed")


@dataclass(slots=True)
class Outcome:
    """One message's result, held until the batch is stored: ``reply`` and ``calls`` go out after the store,
    ``on_storage_failure`` instead of ``reply`` if it fails."""

    decision: Decision
    reply: Publish | None = None
    on_storage_failure: Publish | None = None
    calls: list[bytes] = field(default_factory=list)
    retained: list[Publish] = field(default_factory=list)
    hall_events: list[wire.HallEvent] = field(default_factory=list)
    after_store: list[Callable[[], None]] = field(default_factory=list)  # once the batch is stored


class Requests:
    """Decides devices' messages with ``engine`` (replaced after a restore: assign ``engine``)."""

    def __init__(self, engine: Engine, topics: Topics, admission: Admission, *, new_id: Callable[[], str],
                 clock: Callable[[], float], citizens: CitizenDesk | None = None,
                 new_token: Callable[[], str] = new_status_token) -> None:
        self.engine = engine
        self.citizens = citizens
        self._topics = topics
        self._admission = admission
        self._new_id = new_id
        self._new_token = new_token
        self._clock = clock

    def handle(self, parsed: ParsedTopic, payload: bytes, now: datetime, *, trusted: bool) -> Outcome | None:
        match parsed.kind:
            case TopicKind.DISPENSER_REQUEST:
                return self._ticket_request(parsed, payload, now, trusted)
            case TopicKind.DISPENSER_PRINTED:
                return self._print_report(parsed, payload, now, trusted)
            case TopicKind.COUNTER_COMMAND:
                return self._counter_command(parsed, payload, now, trusted)
            case TopicKind.MANAGER_COMMAND:
                return self._manager_command(parsed, payload, now, trusted)
            case _:
                return None

    def refused(self, parsed: ParsedTopic, payload: bytes, error: wire.ErrorInfo) -> Outcome | None:
        """The answer to a message refused before the engine saw it (unreadable, rate-limited)."""
        device = parsed.device or ""
        if parsed.kind is TopicKind.DISPENSER_REQUEST:
            reply = wire.TicketReply(request_id=_request_id_of(payload), error=error)
            return Outcome(Decision(), reply=(self._topics.dispenser_ticket(device), reply.encode()))
        if parsed.kind is TopicKind.COUNTER_COMMAND:
            command_reply = wire.CounterReply(request_id=_request_id_of(payload), action=_action_of(payload),
                                              error=error)
            return Outcome(Decision(), reply=(self._topics.counter_reply(device), command_reply.encode()))
        if parsed.kind is TopicKind.MANAGER_COMMAND:
            manager_reply = wire.ManagerReply(request_id=_request_id_of(payload), action=_action_of(payload),
                                              error=error)
            return Outcome(Decision(), reply=(self._topics.manager_reply(device), manager_reply.encode()))
        return None

    def _log_refusal(self, parsed: ParsedTopic, level: int, message: str, *args: object) -> None:
        self._admission.log_refusal(parsed, self._clock(), level, message, *args)

    def _ticket_request(self, parsed: ParsedTopic, payload: bytes, now: datetime, trusted: bool) -> Outcome | None:
        dispenser = parsed.device or ""
        topic = self._topics.dispenser_ticket(dispenser)
        try:
            request = wire.TicketRequest.decode(payload)
        except PayloadError as exc:
            self._log_refusal(parsed, logging.WARNING, "refused ticket request dispenser=%s code=%s: %s", dispenser,
                              exc.code, exc.message)
            return self.refused(parsed, payload, wire.ErrorInfo(exc.code, exc.message))
        priority, category, seen = request.priority, request.category, None
        if request.card is not None:
            if self.citizens is None:
                log.info("card from dispenser=%s ignored: this hall keeps no profiles ([cards])", dispenser)
            else:
                seen = self.citizens.scan(request.card, dispenser=dispenser, now=now)
                if seen is not None and self.citizens.elderly(seen, now=now) and not priority:
                    priority, category = True, "elderly"
        decision = self.engine.handle(IssueTicket(dispenser=dispenser, request_id=request.request_id,
                                                  service=request.service, priority=priority, category=category,
                                                  ticket_id=self._new_id(), card=None if seen is None else seen.ref,
                                                  token=self._new_token()),
                                      now=now, trusted=trusted)
        storage = (topic, wire.TicketReply(request_id=request.request_id, error=STORAGE_UNAVAILABLE).encode())
        if decision.refusal is not None:
            self._log_refusal(parsed, logging.WARNING, "refused ticket request dispenser=%s request=%s service=%s "
                              "code=%s: %s", dispenser, request.request_id, request.service, decision.refusal.code,
                              decision.refusal.message)
            reply = wire.TicketReply(request_id=request.request_id,
                                     error=wire.ErrorInfo(decision.refusal.code, decision.refusal.message))
            return Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)
        ticket = decision.ticket
        if ticket is None:
            raise AssertionError("an accepted ticket request names its ticket")
        if decision.duplicate:
            log.info("repeated answer ticket=%s dispenser=%s request=%s", ticket.number, dispenser, request.request_id)
        else:
            log.info("issued ticket=%s service=%s priority=%s dispenser=%s ahead=%d wait_s=%d", ticket.number,
                     ticket.service, ticket.priority, dispenser, ticket.ahead, ticket.estimated_wait_s)
        reply = wire.TicketReply(request_id=request.request_id, ticket=ticket)
        outcome = Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)
        if seen is not None and not decision.duplicate and (citizens := self.citizens) is not None:
            outcome.after_store.append(lambda: citizens.link(ticket.id, seen, service=ticket.service, now=now))
        return outcome

    def _print_report(self, parsed: ParsedTopic, payload: bytes, now: datetime, trusted: bool) -> Outcome | None:
        dispenser = parsed.device or ""
        try:
            report = wire.PrintReport.decode(payload)
        except PayloadError as exc:
            self._log_refusal(parsed, logging.WARNING, "refused print report dispenser=%s code=%s: %s", dispenser,
                              exc.code, exc.message)
            return None
        decision = self.engine.handle(ReportPrint(dispenser=dispenser, ticket_id=report.ticket_id, ok=report.ok,
                                                  reason=report.reason), now=now, trusted=trusted)
        if decision.refusal is not None:
            self._log_refusal(parsed, logging.WARNING, "refused print report dispenser=%s ticket_id=%s code=%s: %s",
                              dispenser, report.ticket_id, decision.refusal.code, decision.refusal.message)
        elif not report.ok and not decision.duplicate and decision.ticket is not None:
            log.warning("voided ticket=%s dispenser=%s reason=%s (the dispenser could not print it)",
                        decision.ticket.number, dispenser, report.reason)
            return Outcome(decision, hall_events=[wire.HallEvent(
                kind="print_failed", at=now, number=decision.ticket.number, dispenser=dispenser, code=report.reason,
                message=f"{dispenser} could not print {decision.ticket.number} ({report.reason}); the ticket is void")])
        return Outcome(decision)

    def _manager_command(self, parsed: ParsedTopic, payload: bytes, now: datetime, trusted: bool) -> Outcome | None:
        manager = parsed.device or ""
        topic = self._topics.manager_reply(manager)
        try:
            command = wire.ManagerCommand.decode(payload)
        except PayloadError as exc:
            self._log_refusal(parsed, logging.WARNING, "refused manager command manager=%s code=%s: %s", manager,
                              exc.code, exc.message)
            return self.refused(parsed, payload, wire.ErrorInfo(exc.code, exc.message))
        if command.action == "rate_ticket":
            return self._phone_rating(manager, command, now, trusted)
        decision = self.engine.handle(ManagerAct(manager=manager, request_id=command.request_id, user=command.user,
                                                 action=command.action, counter=command.counter,
                                                 ticket=command.ticket, service=command.service,
                                                 text_vi=command.text_vi, text_en=command.text_en), now=now,
                                      trusted=trusted)
        storage = (topic, wire.ManagerReply(request_id=command.request_id, action=command.action,
                                            error=STORAGE_UNAVAILABLE).encode())
        target = command.counter or command.ticket or command.text_vi or ""
        if decision.refusal is not None:
            log.info("refused manager action user=%s action=%s target=%s code=%s: %s", command.user, command.action,
                     target, decision.refusal.code, decision.refusal.message)
            reply = wire.ManagerReply(request_id=command.request_id, action=command.action,
                                      error=wire.ErrorInfo(decision.refusal.code, decision.refusal.message))
            return Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)
        reply = wire.ManagerReply(request_id=command.request_id, action=command.action)
        outcome = Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)
        if decision.duplicate:
            return outcome
        log.info("manager action user=%s action=%s target=%s%s", command.user, command.action, target,
                 f" service={command.service}" if command.service else "")
        outcome.hall_events.append(wire.HallEvent(kind="manager_action", at=now, user=command.user, code=command.action,
                                                  counter=command.counter, number=command.ticket,
                                                  service=command.service, text=command.text_vi,
                                                  message=_action_text(command)))
        if decision.notice_changed:
            notice = decision.notice
            outcome.retained.append((self._topics.notice(), b"" if notice is None else notice.encode()))
        return outcome

    def _counter_command(self, parsed: ParsedTopic, payload: bytes, now: datetime, trusted: bool) -> Outcome | None:
        counter = parsed.device or ""
        topic = self._topics.counter_reply(counter)
        try:
            command = wire.CounterCommand.decode(payload)
        except PayloadError as exc:
            self._log_refusal(parsed, logging.WARNING, "refused counter command counter=%s code=%s: %s", counter,
                              exc.code, exc.message)
            return self.refused(parsed, payload, wire.ErrorInfo(exc.code, exc.message))
        if command.action == "profile":
            return self._profile(counter, command, now)
        if command.action == "rate":
            return self._counter_rating(counter, command, now, trusted)
        decision = self.engine.handle(ActAtCounter(counter=counter, request_id=command.request_id,
                                                   action=command.action, ticket=command.ticket,
                                                   service=command.service, serving=command.serving), now=now,
                                      trusted=trusted)
        storage = (topic, wire.CounterReply(request_id=command.request_id, action=command.action,
                                            error=STORAGE_UNAVAILABLE).encode())
        if decision.refusal is not None:
            # INFO: a clerk pressing `next` on an empty queue is everyday, not a fault.
            self._log_refusal(parsed, logging.INFO, "refused command counter=%s action=%s code=%s: %s", counter,
                              command.action, decision.refusal.code, decision.refusal.message)
            reply = wire.CounterReply(request_id=command.request_id, action=command.action, status=decision.status,
                                      ticket=decision.serving,
                                      error=wire.ErrorInfo(decision.refusal.code, decision.refusal.message))
            return Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)
        calls = decision.calls
        for event, made in zip((e for e in decision.events if isinstance(e, TicketCalled)), calls, strict=True):
            log.info("%s ticket=%s counter=%s seq=%d", "recalled" if event.recall else "called", made.number,
                     counter, event.seq)
        profile = None
        if command.action in ("next", "call", "recall") and decision.serving is not None and self.citizens:
            profile = self.citizens.for_call(counter, decision.serving, now=now)
        reply = wire.CounterReply(request_id=command.request_id, action=command.action, status=decision.status,
                                  ticket=decision.serving, profile=profile)
        return Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage,
                       calls=[c.encode() for c in calls])

    def _profile(self, counter: str, command: wire.CounterCommand, now: datetime) -> Outcome:
        """A clerk completes the profile last shown at ``counter``; the engine is not involved (nothing of it
        goes to the journal). The reply carries the counter's status and ticket as they are."""
        state = self.engine.counter_state(counter, now) if counter in self.engine.spec.counter_by_id else None
        status, serving = (None, None) if state is None else (state.status, state.ticket)
        profile: wire.CitizenProfile | None = None
        error: wire.ErrorInfo | None
        current = "" if serving is None else serving.id
        if command.serving is not None and command.serving not in (current, "" if serving is None else serving.number):
            error = wire.ErrorInfo(wire.ErrorCode.CONFLICT, f"counter {counter} is serving "
                                   f"{serving.number if serving else 'nothing'} now: another console acted; refresh")
        elif command.profile is None or self.citizens is None:
            error = wire.ErrorInfo(wire.ErrorCode.NO_PROFILE, "this hall keeps no profiles ([cards])")
        else:
            profile, error = self.citizens.edit(counter, command.profile, now=now)
        reply = wire.CounterReply(request_id=command.request_id, action=command.action, status=status, ticket=serving,
                                  error=error, profile=profile)
        return Outcome(Decision(), reply=(self._topics.counter_reply(counter), reply.encode()))


    def _counter_rating(self, counter: str, command: wire.CounterCommand, now: datetime, trusted: bool) -> Outcome:
        """A citizen pressed one of the counter's rating buttons (or the clerk's console passed a choice on)."""
        topic = self._topics.counter_reply(counter)
        if command.rating is None or command.ticket is None:
            raise AssertionError("a decoded 'rate' command has its rating and ticket")
        decision = self.engine.handle(RateTicket(channel="counter", source=counter, request_id=command.request_id,
                                                 ticket=command.ticket, level=command.rating), now=now,
                                      trusted=trusted)
        error = None if decision.refusal is None else wire.ErrorInfo(decision.refusal.code, decision.refusal.message)
        self._log_rating(decision, "counter", counter, command.rating)
        reply = wire.CounterReply(request_id=command.request_id, action=command.action, status=decision.status,
                                  ticket=decision.serving, error=error)
        storage = (topic, wire.CounterReply(request_id=command.request_id, action=command.action,
                                            error=STORAGE_UNAVAILABLE).encode())
        return Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)

    def _phone_rating(self, manager: str, command: wire.ManagerCommand, now: datetime, trusted: bool) -> Outcome:
        """A citizen rated a visit on the ticket's status page; the manager's web service passes it on."""
        topic = self._topics.manager_reply(manager)
        if command.rating is None or command.ticket is None:
            raise AssertionError("a decoded 'rate_ticket' command has its rating and ticket")
        decision = self.engine.handle(RateTicket(channel="phone", source=manager, request_id=command.request_id,
                                                 ticket=command.ticket, level=command.rating,
                                                 reasons=command.reasons, comment=command.comment), now=now,
                                      trusted=trusted)
        error = None if decision.refusal is None else wire.ErrorInfo(decision.refusal.code, decision.refusal.message)
        self._log_rating(decision, "phone", manager, command.rating)
        reply = wire.ManagerReply(request_id=command.request_id, action=command.action, error=error)
        storage = (topic, wire.ManagerReply(request_id=command.request_id, action=command.action,
                                            error=STORAGE_UNAVAILABLE).encode())
        return Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)

    @staticmethod
    def _log_rating(decision: Decision, channel: str, source: str, level: str) -> None:
        # The comment is the citizen's own words: never logged (it is in the ledger, for the reports).
        if decision.refusal is not None:
            log.info("refused rating channel=%s source=%s code=%s: %s", channel, source, decision.refusal.code,
                     decision.refusal.message)
        elif not decision.duplicate:
            rated = next((e for e in decision.events if isinstance(e, TicketRated)), None)
            log.info("rated ticket=%s counter=%s level=%s channel=%s", rated.number if rated else "?",
                     rated.counter if rated else "?", level, channel)


def _action_text(command: wire.ManagerCommand) -> str:
    """What the manager did, in a line for the live view's events."""
    match command.action:
        case "open_counter" | "pause_counter" | "close_counter":
            return f"{command.user}: {command.action.removesuffix('_counter')} counter {command.counter}"
        case "void_ticket":
            return f"{command.user}: void {command.ticket} (the citizen left)"
        case "transfer_ticket":
            return f"{command.user}: move {command.ticket} to service {command.service}"
        case "end_day":
            return f"{command.user}: end the business day; the waiting tickets expired"
        case "show_notice":
            return f"{command.user}: notice \u201c{command.text_vi}\u201d"
        case _:
            return f"{command.user}: clear the notice"


def _loose_field(payload: bytes, name: str, max_len: int) -> str:
    """A string field of a payload that failed validation, if one can be read, for echoing in the error."""
    if len(payload) > wire.MAX_PAYLOAD_BYTES:
        return ""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return ""
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and len(value) <= max_len else ""


def _request_id_of(payload: bytes) -> str:
    return _loose_field(payload, "request_id", MAX_REQUEST_ID_LEN)


def _action_of(payload: bytes) -> str:
    return _loose_field(payload, "action", MAX_ACTION_LEN)
