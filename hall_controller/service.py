"""The hall controller's shell: one thread that reads the broker, lets the engine decide, stores, then tells.

Theory of operation: one thread does everything, in rounds. ``Connections`` (``connections.py``) waits on
every broker connection at once and puts what arrives in each device's inbox (``intake.py``). The round then
takes a batch (up to ``BATCH_MAX``, round-robin over the inboxes), passes each message through ``Admission``
(``admission.py``: rate limits, stored copies, unknown ids), lets ``Requests`` (``requests.py``) decode it and
the engine decide, stores all the batch's events in one durable commit, and only then publishes the calls, the
board and counter states (paced by ``Broadcasts``, ``broadcasts.py``) and last the replies, so that a device
holding its answer finds the retained state already saying so. The time every decision uses comes from
``TimeKeeper`` (``timekeeper.py``).

Nothing is told before it is stored: if the commit fails (disk full, read-only), nothing of the batch is told to
anyone. The engine is rebuilt from the ledger and each changing request is answered ``storage_unavailable``;
requests that change nothing (a repeated request id, a refused command) are still answered. The retained board
and counter states stay as they were. The next batch that changes something tries the ledger again; the first
commit that succeeds ends the fault, with no restart. Only then are the batch's messages acknowledged to the
broker (manual acks): a message received but not yet stored when the process dies is delivered again after
the restart, so nothing a device sent once (a print failure report) is lost.

Storage faults are logged at ERROR once, with what the operator must do, then throttled.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from hall_controller.admission import Act, Admission
from hall_controller.broadcasts import Broadcasts
from hall_controller.config import ControllerConfig
from hall_controller.connections import READY_LOG, Connections
from hall_controller.engine import Engine
from hall_controller.engine.events import DayCorrected, DayEnded, DayStarted, Event, Tick, TicketExpired
from hall_controller.intake import Intake
from hall_controller.ledger import Ledger, LedgerError
from hall_controller.limits import Throttle
from hall_controller.requests import RATE_LIMITED, Outcome, Requests
from hall_controller.timekeeper import TimeKeeper
from hall_controller.timesource import SystemTime, TimeSource
from hallq import systemd, wire
from hallq.mqtt import InboxItem, LinkDown, LinkUp, Message
from hallq.topics import Topics

__all__ = ["READY_LOG", "ControllerService", "ReplayMismatch"]

if TYPE_CHECKING:  # the card reader (cryptography) is imported only by halls that read cards
    from hall_controller.citizens import CitizenDesk

log = logging.getLogger(__name__)

BATCH_MAX = 500
TICK_S = 1.0
STORAGE_LOG_WINDOW_S = 10.0


class ControllerService:
    """Runs one hall: ``run()`` blocks until ``stop()`` is called (or SIGTERM via the CLI)."""

    def __init__(self, config: ControllerConfig, *, ledger: Ledger, time_source: TimeSource | None = None,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex, citizens: CitizenDesk | None = None) -> None:
        self.config = config
        self.spec = config.hall
        self.ledger = ledger
        topics = Topics(hall=self.spec.id, base=config.base_topic)
        self.topics = topics
        # Hall-local times: tickets print and the wire shows the hall's own offset (+07:00). Every reading goes
        # through the hall clock (clock.py), which decides what a wall-clock step means.
        self.time = TimeKeeper(time_source or SystemTime(self.spec.zone), state_dir=ledger.path.parent,
                               config_source=config.source, trust_always=config.trust_clock == "always")
        self.engine = Engine(self.spec)  # replaced by the restored one in start()
        connections = len(config.intakes())
        inbox_messages, inbox_bytes = config.limits.inbox_bounds(connections + 1)
        self.intake = Intake(max_messages=inbox_messages, max_bytes=inbox_bytes)
        self.connections = Connections(config, topics, self.intake, receive_maximum=inbox_messages)
        self.admission = Admission(self.spec, topics, config.limits, others_name=self.connections.others_name,
                                   connections=connections, manager_id=config.manager_id)
        self.citizens = citizens
        self.requests = Requests(self.engine, topics, self.admission, new_id=new_id, clock=time.monotonic,
                                 citizens=citizens)
        self.broadcasts = Broadcasts([c.id for c in self.spec.counters])
        self._storage_log: Throttle[str] = Throttle(window_s=STORAGE_LOG_WINDOW_S, burst=1)
        self._storage_ok = True
        self._trusted: bool | None = None  # the clock's trust last reported on ``events``
        self._stopping = threading.Event()

    # --- start and stop -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Restore the engine from the ledger and connect. Messages wait in the broker until ``run()``.
        Raises ``ReplayMismatch`` if the ledger names a counter or service the config no longer has."""
        last_record: list[datetime] = []
        self._use(self._restore(noting=last_record))
        # The ledger's last record is the earliest the hall's time can be: a clock behind it is proven wrong.
        self.time.begin(floor=last_record[0] if last_record else None)
        self.time.read()
        # The restored day (up to 100,000s of tickets) lives as long as the process: keep it out of the garbage
        # collector's full scans, which would otherwise pause every reply for tens of milliseconds.
        gc.collect()
        gc.freeze()
        self.connections.start()

    def stop(self) -> None:
        """Ask ``run()`` to finish; safe from a signal handler or another thread."""
        # Only an Event: the loop wakes at least every TICK_S and sees it.
        self._stopping.set()

    def run(self) -> None:
        """Serve until ``stop()`` (after ``start()``). Raises only on broken invariants; bad input is answered."""
        notifier = systemd.ServiceNotifier()
        next_tick = time.monotonic()
        try:
            while not self._stopping.is_set():
                self.connections.poll(0.0 if self.intake.has_items() else self._wait_s(next_tick))
                batch = self.intake.take(BATCH_MAX)
                now_s = time.monotonic()
                # A round with nothing received (the broker acknowledged a reply, say) needs no decision, unless
                # the engine's tick (day roll, clock news) or a paced broadcast is due.
                due = self.broadcasts.next_due_s()
                if batch or now_s >= next_tick or (due is not None and now_s >= due):
                    self._process(batch)
                if now_s >= next_tick:
                    next_tick = now_s + TICK_S
                if (not self.connections.online or now_s >= next_tick - TICK_S) and self.connections.announce(now_s):
                    notifier.ready()
                notifier.tick(now_s, healthy=self._storage_ok)
        finally:
            notifier.stopping()
            self.connections.stop()
            self.ledger.close()
            if self.citizens is not None:
                self.citizens.store.close()
            log.info("controller stopped")

    def _wait_s(self, next_tick: float) -> float:
        """How long the loop may wait for the sockets: until the next tick, broadcast or end of a pause."""
        due = self.broadcasts.next_due_s() if self.connections.up else None
        wake = min(next_tick, self.intake.resume_due(), due if due is not None else float("inf"))
        return max(0.0, wake - time.monotonic())

    def _restore(self, *, level: int = logging.INFO, noting: list[datetime] | None = None) -> Engine:
        """The engine replayed from the ledger; logged at ``level`` (DEBUG when rebuilding after each refused
        commit, which the storage-fault log lines already report). ``noting`` receives the last record's time."""
        started = time.perf_counter()
        engine = Engine(self.spec)

        def noting_the_last(events: Iterable[Event]) -> Iterator[Event]:
            event = None
            for event in events:
                yield event
            if event is not None and noting is not None:
                noting.append(event.at)

        try:
            count = engine.replay(noting_the_last(self.ledger.events(since_last_day=True)))
        except KeyError as exc:
            raise ReplayMismatch(f"the ledger {self.ledger.path} refers to {exc}, which the config no longer "
                                 "has") from None
        if log.isEnabledFor(level):
            log.log(level, "restored ledger path=%s events=%d day=%s open_tickets=%d call_seq=%d in %.0f ms",
                    self.ledger.path, count, engine.day or "-", engine.open_count(), engine.call_seq,
                    (time.perf_counter() - started) * 1000)
        return engine

    def _use(self, engine: Engine) -> None:
        self.engine = engine
        self.requests.engine = engine

    # --- one batch: decide, store, then tell -------------------------------------------------------------------

    def _process(self, batch: list[InboxItem]) -> None:
        reading = self.time.read()
        now, trusted = reading.now, reading.trusted
        news: list[wire.HallEvent] = self._clock_news(now, trusted)
        now_s = time.monotonic()
        # The clock's own news first: a step, then an operator's confirmation (which may correct the day) before
        # any ticket is issued in this batch. Both stay pending until the batch is stored.
        outcomes = [Outcome(self.engine.handle(change, now=now)) for change in self.time.changes]
        if self.time.confirm_pending:
            outcomes.append(Outcome(self.engine.handle(Tick(confirmed=True), now=now, trusted=trusted)))
        handled: list[tuple[Message, Outcome | None]] = []
        link_up = False
        for item in batch:
            if isinstance(item, Message):
                outcome = self._admit(item, now, now_s, trusted, news)
                handled.append((item, outcome))
                if outcome is not None:
                    outcomes.append(outcome)
            elif isinstance(item, LinkUp):
                link_up = True
            elif isinstance(item, LinkDown):
                self.connections.went_down()
        self.admission.summarise(now_s)
        outcomes.append(Outcome(self.engine.handle(Tick(), now=now, trusted=trusted)))
        events = [e for o in outcomes for e in o.decision.events]
        try:
            self.ledger.append(events)
        except LedgerError as exc:
            self._storage_failed(exc, outcomes, now)
            # Answered messages are done (their devices retry with the same id if they want); a print report
            # gets no answer, so it stays with the broker, which delivers it again after the next reconnect.
            self.connections.ack(m for m, o in handled if o is None or not o.decision.events or o.reply is not None
                                 or o.on_storage_failure is not None)
            return
        self.time.stored()
        for outcome in outcomes:
            for hook in outcome.after_store:
                hook()
        if self.citizens is not None:
            self.citizens.stored(events, now=now, now_s=now_s)
        news += self._log_days(events, now)
        if events and not self._storage_ok:  # an empty batch wrote nothing, so it proves nothing
            log.warning("ledger writable again path=%s; issuing tickets again", self.ledger.path)
            self._storage_ok = True
            news.append(wire.HallEvent(kind="storage_ok", at=now, message="the ledger is writable again"))
        # The calls and the manager's news first, then the retained states they change, then the replies: whoever
        # has an answer (or sees a state change) finds the board, the counters' states and the events saying so.
        publish = self.connections.publish
        calls_topic = self.topics.calls()
        for outcome in outcomes:
            for payload in outcome.calls:
                publish(calls_topic, payload)
            for topic, payload in outcome.retained:
                publish(topic, payload, retain=True)
            news += outcome.hall_events
        self._tell(news)
        if link_up:
            self.broadcasts.link_up(now_s)
        self.broadcasts.changed(events, now_s)
        self._publish_due(now)
        for outcome in outcomes:
            if outcome.reply is not None:
                publish(*outcome.reply)
        self.connections.ack(m for m, _ in handled)

    def _admit(self, message: Message, now: datetime, now_s: float, trusted: bool,
               news: list[wire.HallEvent]) -> Outcome | None:
        verdict = self.admission.admit(message, now_s)
        if isinstance(verdict, Act):
            return self.requests.handle(verdict.parsed, message.payload, now, trusted=trusted)
        if verdict.clear and verdict.parsed is not None:
            self.connections.publish(message.topic, b"", retain=True)
            role, device = self.admission.device_key(verdict.parsed)
            news.append(wire.HallEvent(kind="refused", at=now, code="retained", message=f"ignored a retained message "
                                       f"from {role} {device} and cleared it: fix that device's MQTT settings",
                                       counter=_named(role, "counter", device),
                                       dispenser=_named(role, "dispenser", device)))
        if verdict.pause_until_s is None:
            return None
        dropped = self.intake.pause(message.source, verdict.pause_until_s)
        self.connections.ack(dropped)  # given up, not left in flight with the broker
        if verdict.parsed is None:
            return None
        self.admission.dropped(verdict.parsed, 1 + len(dropped), now_s)
        if not verdict.answer:
            return None
        role, device = self.admission.device_key(verdict.parsed)  # at most one a second per device, as its replies
        news.append(wire.HallEvent(kind="refused", at=now, code=wire.ErrorCode.RATE_LIMITED,
                                   message=f"{role} {device} sends more than the controller accepts; its messages "
                                           "are dropped", counter=_named(role, "counter", device),
                                   dispenser=_named(role, "dispenser", device)))
        return self.requests.refused(verdict.parsed, message.payload, RATE_LIMITED)

    def _publish_due(self, now: datetime) -> None:
        if not self.connections.up:
            return  # LinkUp makes everything due again
        due = self.broadcasts.take_due(time.monotonic())
        for counter in due.counters:
            self.connections.publish(self.topics.counter_state(counter),
                                     self.engine.counter_state(counter, now).encode(), retain=True)
        if due.board:
            self.connections.publish(self.topics.board(), self.engine.board(now).encode(), retain=True)

    def _log_days(self, events: list[Event], now: datetime) -> list[wire.HallEvent]:
        """Log the day's turns; the same news for the manager's live view."""
        news = []
        for event in events:
            if isinstance(event, DayStarted):
                expired = sum(1 for e in events if isinstance(e, TicketExpired) and e.reason == "day_started")
                log.warning("business day %s started at %s; %d open tickets of the day before expired, numbering "
                            "starts again", event.day, event.at.isoformat(timespec="seconds"), expired)
                news.append(wire.HallEvent(kind="day_started", at=now, day=event.day, count=expired,
                                           message=f"business day {event.day} started; {expired} open tickets "
                                                   "expired"))
            elif isinstance(event, DayEnded):
                expired = sum(1 for e in events if isinstance(e, TicketExpired) and e.reason == "day_ended")
                log.warning("business day %s ended early by user=%s; %d waiting tickets expired, no ticket is issued "
                            "until the next business day", event.day, event.user, expired)
                news.append(wire.HallEvent(kind="day_ended", at=now, user=event.user, day=event.day, count=expired,
                                           message=f"{event.user} ended business day {event.day}; {expired} waiting "
                                                   "tickets expired"))
            elif isinstance(event, DayCorrected):
                log.warning("business day corrected to %s on the operator's confirmation; the tickets handed out "
                            "meanwhile stay open and numbering goes on", event.day)
        return news

    def _clock_news(self, now: datetime, trusted: bool) -> list[wire.HallEvent]:
        """The clock's trust, when it changes, for the manager's live view (the log says it already)."""
        if trusted == self._trusted:
            return []
        first = self._trusted is None
        self._trusted = trusted
        if trusted and first:
            return []
        if trusted:
            return [wire.HallEvent(kind="clock_trusted", at=now, message="the hall's clock is trusted again: "
                                                                         "tickets and calls resume")]
        return [wire.HallEvent(kind="clock_untrusted", at=now, message="the hall's clock is not trusted: tickets and "
                                                                       "calls are refused until it is set")]

    def _tell(self, news: list[wire.HallEvent]) -> None:
        """Publish the manager's news (``events``); nothing is kept if nobody listens."""
        topic = self.topics.events()
        for item in news:
            self.connections.publish(topic, item.encode())

    def _storage_failed(self, exc: LedgerError, outcomes: list[Outcome], now: datetime) -> None:
        if self._storage_ok:
            log.error("%s; refusing new tickets and counter changes until the ledger can be written again: "
                      "free disk space on the filesystem of %s, or make it writable again (remount it "
                      "read-write; after I/O errors check the disk and restart the controller). It resumes by "
                      "itself once a write succeeds", exc, self.ledger.path)
        elif self._storage_log.allow("ledger", time.monotonic()):
            log.warning("%s; still refusing changes", exc)
        if self._storage_ok:
            self._tell([wire.HallEvent(kind="storage_fault", at=now, message=f"the ledger cannot be written ({exc}): "
                                                                             "new tickets and counter changes are "
                                                                             "refused")])
        self._storage_ok = False
        # The engine already applied the lost events: rebuild it from what is durably stored.
        self._use(self._restore(level=logging.DEBUG))
        for outcome in outcomes:
            if outcome.decision.events and outcome.on_storage_failure is not None:
                self.connections.publish(*outcome.on_storage_failure)
            elif not outcome.decision.events and outcome.reply is not None:
                self.connections.publish(*outcome.reply)


def _named(role: str, field: str, device: str) -> str | None:
    """``device`` for the ``HallEvent`` field of its role (``counter`` or ``dispenser``), None for the other."""
    return device if role == field else None


class ReplayMismatch(Exception):
    """The ledger names a counter or service that the configuration no longer has."""
