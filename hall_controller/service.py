"""The hall controller's shell: MQTT in, engine decisions, durable ledger, then replies and broadcasts.

Theory of operation: every configured device's messages arrive on a broker connection of the controller's
own (``{client_id}.dispenser.{id}``, ``{client_id}.counter.{id}``), whose paho thread only puts them on that
device's lane (``intake.py``); one more connection (``{client_id}.others``) listens to every device topic
for ids the config does not know, and the controller's own connection (``{client_id}``) publishes. The one
service thread takes messages in batches (up to ``BATCH_MAX``, round-robin over the lanes), decodes each at
the boundary, lets the engine decide, builds the
replies from the state right after each command, stores all the batch's events in one durable commit, and
only then publishes the replies, the calls, the changed counters' states and the board. If the commit
fails (disk full, read-only), nothing of the batch is told to anyone: the engine is rebuilt from the
ledger and each changing request is answered ``storage_unavailable``. Only then are the batch's messages
acknowledged to the broker (manual acks): a message received but not yet stored when the process dies is
delivered again after the restart, so nothing a device sent once (a print failure report) is lost.

Broadcast pacing: calls and counter changes go out at once; when only waiting counts changed (a ticket was
issued), the board and counter states are refreshed at most every ``REFRESH_S`` so a rush of tickets does
not multiply into thousands of retained publishes.

Floods (see ``intake.py`` and ``limits.py``): a device's messages never queue behind another device's, in
the broker or here. Before a message is decoded its device spends a token of its own bucket (``[limits]``
in the config; ids the config does not know share one bucket per role). A message without a token is
dropped and the device's lane is paused until it has a token again (at least ``PAUSE_MIN_S``): its
connection is not read meanwhile, so the broker, not Python, absorbs the flood. The device gets at most
one ``rate_limited`` reply a second, the operator one log line when a device starts being limited and then
a summary every ``DROP_LOG_WINDOW_S``. Refusal log lines are throttled per device in the same way, so a
hostile device cannot bury the log. The ``others`` connection also carries every known device's messages
(it cannot subscribe to "all but these"); those are ignored there, and it has a budget of its own (the sum
of every device's) so that a flood through it is paused like any other.

Storage faults: a refused commit (disk full, read-only, I/O error) is logged at ERROR once, with what the
operator must do; while the ledger refuses, every change is answered ``storage_unavailable`` (dispensers
show a fault), no number is handed out unless it is stored first, and requests that change nothing (a
repeated request id, a refused command) are still answered from the state rebuilt from the ledger. The
retained board and counter states stay as they were. The next batch that changes something tries the
ledger again; the first commit that succeeds ends the fault, with no restart.

Retained messages: requests, print reports and commands are not retained (the contract), but the broker's ACL
cannot stop a device from setting the flag, and the broker then hands the stored message to every later
subscription: after each reconnect and restart, on later business days too. A message that arrives with the
retain flag is such a stored copy (a live message arrives without it, even if published retained), so it is
never acted on: it is acknowledged, reported once per device, and cleared from the broker with an empty
retained publish on its topic (the controller's account may write every topic of the hall). The broker
delivers that empty message to the controller's own subscription too; it is recognised and dropped.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from hall_controller.clock import ClockReading, HallClock
from hall_controller.config import ControllerConfig
from hall_controller.engine import Decision, Engine
from hall_controller.engine.events import (
    ClockChanged,
    CounterCommand,
    CounterStatusChanged,
    DayCorrected,
    DayStarted,
    Event,
    IssueTicket,
    ReportPrint,
    Tick,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketTransferred,
    TicketVoided,
)
from hall_controller.intake import Intake
from hall_controller.ledger import Ledger, LedgerError
from hall_controller.limits import DeviceLimiter, Throttle
from hall_controller.timesource import (
    CLOCK_CONFIRM_FILE,
    CLOCK_TRUST_FILE,
    CONFIRM_VALID_S,
    SystemTime,
    TimeSource,
    boot_id,
)
from hall_controller.views import board, call, counter_state, serving, ticket_info
from hallq import systemd, wire
from hallq.errors import PayloadError
from hallq.limits import MAX_ACTION_LEN, MAX_REQUEST_ID_LEN
from hallq.mqtt import InboxItem, LinkUp, Message, MqttLink, stop_all
from hallq.topics import ParsedTopic, TopicKind, Topics

log = logging.getLogger(__name__)

BATCH_MAX = 500
REFRESH_S = 0.5
TICK_S = 1.0
DROP_LOG_WINDOW_S = 10.0
REFUSAL_LOGS_PER_WINDOW = 20
# Logged once every device connection has subscribed; tests and tools wait for it.
READY_LOG = "controller ready"
# A paused lane is paused at least this long, so a flood costs at most one lane's worth of dropped messages
# per pause however generous the rate limit.
PAUSE_MIN_S = 0.1
# Device connections down this long while the controller's own is up are reported (once a minute).
LANES_DOWN_REPORT_S = 10.0
# The controller goes online without the device connections that are not up this long after its own.
LANES_GRACE_S = 10.0


@dataclass(slots=True)
class _Outcome:
    """One message's result, held until the batch is stored."""

    decision: Decision
    reply: tuple[str, bytes] | None = None
    on_storage_failure: tuple[str, bytes] | None = None
    calls: list[bytes] = field(default_factory=list)


class ControllerService:
    """Runs one hall: ``run()`` blocks until ``stop()`` is called (or SIGTERM via the CLI)."""

    def __init__(self, config: ControllerConfig, *, ledger: Ledger,
                 time_source: TimeSource | None = None,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.config = config
        self.spec = config.hall
        self.topics = Topics(hall=self.spec.id, base=config.base_topic)
        self.ledger = ledger
        # Hall-local times: tickets print and the wire shows the hall's own offset (+07:00). Every reading goes
        # through the hall clock (hall_controller/clock.py), which decides what a wall-clock step means.
        self.time = time_source or SystemTime(self.spec.zone)
        self.hall_clock = HallClock(trust_at_start=config.trust_clock == "always")
        self._trusted = False
        self._clock_log: Throttle[str] = Throttle(window_s=60.0, burst=1)
        self._last_record_at: datetime | None = None
        self._untrusted_reported = False
        self._confirm_pending = False
        self._confirm_checked_at = float("-inf")
        self._clock_changes: list[ClockChanged] = []
        self.new_id = new_id
        self.engine = Engine(self.spec)  # replaced by the restored one in start()
        limits = config.limits
        self.limiter: DeviceLimiter[tuple[str, str]] = DeviceLimiter(rate_per_s=limits.device_messages_per_s,
                                                                     burst=limits.device_burst)
        # The others connection carries every device's messages (and the unknown ids'): its budget is the sum of
        # all their allowances, so it pauses only when something floods, never before the unknown ids' bucket.
        lanes = config.lanes()
        shares = len(lanes)
        self._others_budget: DeviceLimiter[str] = DeviceLimiter(rate_per_s=limits.device_messages_per_s * shares,
                                                                burst=limits.device_burst * shares)
        self._limited_replies: Throttle[tuple[str, str]] = Throttle(window_s=1.0, burst=1)
        self._limited_log: Throttle[tuple[str, str]] = Throttle(window_s=DROP_LOG_WINDOW_S, burst=1)
        self._refusal_log: Throttle[tuple[str, str]] = Throttle(window_s=DROP_LOG_WINDOW_S,
                                                                burst=REFUSAL_LOGS_PER_WINDOW)
        self._storage_log: Throttle[str] = Throttle(window_s=DROP_LOG_WINDOW_S, burst=1)
        self._lanes_log: Throttle[str] = Throttle(window_s=60.0, burst=1)
        self._retained_reported: set[tuple[str, str]] = set()
        self._clearing: set[str] = set()  # topics whose retained message we cleared: their empty echo is ours
        t = self.topics
        lane_messages, lane_bytes = limits.lane_bounds(len(lanes) + 1)
        self.intake = Intake(lane_max_messages=lane_messages, lane_max_bytes=lane_bytes)
        self._online_payload = wire.Presence(state="online", role="controller").encode()
        self._offline_payload = wire.Presence(state="offline", role="controller").encode()
        self.link = MqttLink(
            client_id=config.client_id, broker=config.broker, inbox=self.intake.lane(config.client_id, control=True),
            presence_topic=self.topics.status(config.client_id),
            # "offline" until every device connection has subscribed (run() then announces "online"): whoever
            # waits for the controller to be online can count on its requests being received.
            online_payload=self._offline_payload, offline_payload=self._offline_payload,
            # This connection subscribes to nothing. It resumes its session, and drops the filters an older
            # version subscribed on it, so that what that session still held is handled, not discarded.
            session_expiry_s=3600, manual_ack=True,
            unsubscribe=[t.all_dispenser_requests(), t.all_dispenser_printed(), t.all_counter_commands()],
        )
        self.lanes: dict[str, MqttLink] = {}
        for lane in lanes:
            if lane.role == "others":
                # Ids the config does not know get an answer (unknown_dispenser, unknown_counter), so a misconfigured
                # device shows why it is refused. QoS 0 and no session: best effort, the device asks again.
                self.others_name = lane.name
                self.lanes[lane.name] = MqttLink(
                    client_id=lane.name, broker=config.lane_broker(lane), inbox=self.intake.lane(lane.name),
                    subscriptions=[(t.all_dispenser_requests(), 0), (t.all_dispenser_printed(), 0),
                                   (t.all_counter_commands(), 0)],
                    quiet=True)
                continue
            subscriptions = ([(t.dispenser_request(lane.device), 1), (t.dispenser_printed(lane.device), 1)]
                             if lane.role == "dispenser" else [(t.counter_command(lane.device), 1)])
            self.lanes[lane.name] = MqttLink(
                client_id=lane.name, broker=config.lane_broker(lane), inbox=self.intake.lane(lane.name),
                subscriptions=subscriptions,
                # Keep the session while restarting: requests sent meanwhile wait in the broker for us.
                session_expiry_s=3600,
                # Acknowledge a message only once its outcome is stored and answered (see _process): a message the
                # controller received but did not store before a crash is delivered again after the restart.
                manual_ack=True,
                receive_maximum=lane_messages,
                quiet=True,
            )
        self._links = {config.client_id: self.link, **self.lanes}  # by client id, as messages name their source
        self._online = False
        self._ready_sent = False
        self._main_up_since: float | None = None
        self._lanes_down_since: float | None = None
        self._stopping = threading.Event()
        self._board_due: float | None = None
        self._counters_due: float | None = None
        self._counters_now: set[str] = set()
        self._storage_ok = True

    # --- start and stop -------------------------------------------------------------------------------------

    def _restore(self, *, level: int = logging.INFO) -> Engine:
        """The engine replayed from the ledger; logged at ``level`` (DEBUG when rebuilding after each refused
        commit, which the storage-fault log lines already report). ``ReplayMismatch`` if the ledger names a
        counter or service the config no longer has."""
        started = time.perf_counter()
        engine = Engine(self.spec)

        def noting_the_last(events: Iterable[Event]) -> Iterator[Event]:
            for event in events:
                self._last_record_at = event.at
                yield event

        try:
            count = engine.replay(noting_the_last(self.ledger.events(since_last_day=True)))
        except KeyError as exc:
            raise ReplayMismatch(f"the ledger {self.ledger.path} refers to {exc}, which the config no longer "
                                 "has") from None
        if log.isEnabledFor(level):
            log.log(level, "restored ledger path=%s events=%d day=%s open_tickets=%d call_seq=%d in %.0f ms",
                    self.ledger.path, count, engine.day or "-", sum(1 for _ in engine.open_tickets()),
                    engine.call_seq, (time.perf_counter() - started) * 1000)
        return engine

    def stop(self) -> None:
        """Ask ``run()`` to finish; safe from a signal handler or another thread."""
        # Only an Event: a queue's put from a signal handler could wait forever for a lock the interrupted main
        # thread holds. The loop wakes at least every TICK_S and sees it.
        self._stopping.set()

    def start(self) -> None:
        """Connect and restore the engine from the ledger. The broker connections are made in the background
        while the journal is replayed (restarts are faster); messages wait in their lanes (and beyond those, in
        the broker) until ``run()``.
        Raises ``ReplayMismatch`` if the ledger names a counter or service the config no longer has."""
        self.link.start()
        for lane in self.lanes.values():
            lane.start()
        try:
            self.engine = self._restore()
        except BaseException:
            self._stop_links()
            raise
        # The ledger's last record is the earliest the hall's time can be: a clock behind it is proven wrong.
        self.hall_clock = HallClock(trust_at_start=self.config.trust_clock == "always", floor=self._last_record_at,
                                    remembered_offset_s=self._remembered_offset())
        self._read_clock()
        # The restored day (up to 100,000s of tickets) lives as long as the process: keep it out of the garbage
        # collector's full scans, which would otherwise pause every reply for tens of milliseconds.
        gc.collect()
        gc.freeze()

    def run(self) -> None:
        """Serve until ``stop()`` (after ``start()``). Raises only on broken invariants; bad input is answered."""
        watchdog_s = systemd.watchdog_interval_s()
        next_watchdog = time.monotonic()
        try:
            while not self._stopping.is_set():
                self._process(self.intake.take(BATCH_MAX, self._next_wakeup()))
                self._announce()
                if watchdog_s is not None and time.monotonic() >= next_watchdog and self._healthy():
                    systemd.notify("WATCHDOG=1")
                    next_watchdog = time.monotonic() + watchdog_s
        finally:
            systemd.notify("STOPPING=1")
            self._stop_links()
            self.ledger.close()
            log.info("controller stopped")

    def _stop_links(self) -> None:
        self.intake.close()  # first: a lane blocked on a full queue must not hold its link's thread
        stop_all([*self.lanes.values(), self.link])

    def _announce(self) -> None:
        """Say ``online`` (and READY=1 the first time) once the own link is up and every device connection has
        subscribed, or ``LANES_GRACE_S`` after the own link came up: a device whose connection cannot come up
        (an account missing from the broker, say) must not keep the whole hall offline. Report what is down."""
        now = time.monotonic()
        if not self.link.connected.is_set():
            self._main_up_since = None
            return
        if self._main_up_since is None:
            self._main_up_since = now
        down = [name for name in self.intake.disconnected() if name != self.link.client_id]
        if not self._online and (not down or now - self._main_up_since >= LANES_GRACE_S):
            self._online = True
            self.link.set_presence(self._online_payload)
            if not self._ready_sent:
                self._ready_sent = True
                log.info("%s: connected to the broker and receiving from %d of %d devices, each on a connection "
                         "of its own", READY_LOG, len(self.lanes) - 1 - len(down), len(self.lanes) - 1)
                systemd.notify("READY=1")
        self._check_lanes(down, now)

    def _check_lanes(self, down: list[str], now: float) -> None:
        """Report device connections that stay down while the controller's own link is up."""
        if not down:
            if self._lanes_down_since is not None and now - self._lanes_down_since >= LANES_DOWN_REPORT_S:
                log.info("every device connection is up again")
            self._lanes_down_since = None
            return
        if self._lanes_down_since is None:
            self._lanes_down_since = now
        elif now - self._lanes_down_since >= LANES_DOWN_REPORT_S and self._lanes_log.allow("down", now):
            log.warning("%d device connections down for %.0f s while the controller's own is up: %s; those "
                        "devices get no answers. Check the broker's log (max_connections? refused logins? "
                        "run provision again and reload the broker)", len(down), now - self._lanes_down_since,
                        ", ".join(sorted(down)))

    def _healthy(self) -> bool:
        return self._storage_ok

    def _next_wakeup(self) -> float:
        if not self.link.connected.is_set():
            return TICK_S  # broadcasts wait for the link; LinkUp makes them due again
        now = time.monotonic()
        due = [d for d in (self._board_due, self._counters_due) if d is not None]
        return max(0.0, min([TICK_S, *[d - now for d in due]]))

    # --- one batch ------------------------------------------------------------------------------------------

    def _read_clock(self) -> ClockReading:
        """The hall's time now, from the time source through the hall clock; logs what a step means, keeps an
        accepted one for the journal (so that no service-time sample spans it), and remembers a trusted clock
        for a restart in the same boot."""
        t = self.time
        confirmed = self._take_confirmation(t)
        wall, synced = t.wall(), t.synchronised()
        reading = self.hall_clock.read(wall=wall, mono_s=t.monotonic(), synchronised=synced, confirmed=confirmed)
        self._trusted = reading.trusted
        step, now = reading.step, reading.now
        if confirmed:
            log.warning("clock confirmed by the operator: the hall's time is now %s", now.isoformat(timespec="seconds"))
        if step is not None and step.accepted:
            log.warning("clock stepped by %+.1f s (%s): the hall's time follows it, now %s", step.step_s,
                        step.source, now.isoformat(timespec="seconds"))
            self._clock_changes.append(ClockChanged(step_s=step.step_s, source=step.source or "synchronised"))
        elif step is not None:
            log.error("the wall clock (%s) is %+.0f s from the hall's time (%s) and nothing vouches for it (the "
                      "clock is not synchronised): the hall keeps its own time. Set the clock right "
                      "(sudo date -s), or if it is right, run: hallq-controller clock confirm --config %s",
                      wall.isoformat(timespec="seconds"), step.step_s, now.isoformat(timespec="seconds"),
                      self.config.source)
        if reading.trusted and (reading.became_trusted or (step is not None and step.accepted)):
            self._remember_trust()
        if reading.became_trusted and self._untrusted_reported:
            self._untrusted_reported = False
            log.warning("the hall's clock is trusted now (%s): issuing tickets and calls again",
                        "confirmed" if confirmed else "synchronised" if synced else "as configured")
        if not reading.trusted and self._clock_log.allow("untrusted", t.monotonic()):
            self._untrusted_reported = True
            log.error("the hall's clock is not trusted (%s, not synchronised): tickets and calls are refused "
                      "(clock_unsynchronised) until network time sets it, or an operator who has checked it runs: "
                      "hallq-controller clock confirm --config %s", wall.isoformat(timespec="seconds"),
                      self.config.source)
        return reading

    def _take_confirmation(self, t: TimeSource) -> bool:
        """An operator's fresh ``clock confirm`` (looked for twice a second): True once, and the day correction
        it allows stays pending until a batch with it is stored. A stale file vouches for nothing."""
        mono = t.monotonic()
        if mono < self._confirm_checked_at + 0.5:
            return False
        self._confirm_checked_at = mono
        path = self.ledger.path.parent / CLOCK_CONFIRM_FILE
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("cannot read the clock confirmation %s: %s", path, exc)
            return False
        path.unlink(missing_ok=True)
        try:
            written = datetime.fromisoformat(text)
            age_s = abs((t.wall() - written).total_seconds())
        except (ValueError, TypeError):
            age_s = float("inf")
        if age_s > CONFIRM_VALID_S:
            log.warning("ignored a stale clock confirmation (%r, not within %.0f s of the clock now): run "
                        "hallq-controller clock confirm again while the controller runs", text[:40], CONFIRM_VALID_S)
            return False
        self._confirm_pending = True
        return True

    def _remembered_offset(self) -> float | None:
        """The trusted clock's offset kept by an earlier run of this boot, if any."""
        path = self.ledger.path.parent / CLOCK_TRUST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("boot_id") == boot_id() and boot_id() is not None:
                return float(data["offset_s"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignored unreadable clock trust record %s: %s", path, exc)
        return None

    def _remember_trust(self) -> None:
        current = boot_id()
        if current is None:
            return
        path = self.ledger.path.parent / CLOCK_TRUST_FILE
        staging = path.with_suffix(".tmp")
        try:
            staging.write_text(json.dumps({"boot_id": current, "offset_s": self.hall_clock.offset_s}),
                               encoding="utf-8")
            staging.replace(path)
        except OSError as exc:
            log.warning("cannot keep the clock's trust for a restart (%s): %s", path, exc)

    def _process(self, batch: list[InboxItem]) -> None:
        now = self._read_clock().now
        now_s = time.monotonic()
        # The clock's own news first: a step, then an operator's confirmation (which may correct the day) before
        # any ticket is issued in this batch. Both stay pending until the batch is stored.
        outcomes: list[_Outcome] = [_Outcome(self.engine.handle(change, now=now)) for change in self._clock_changes]
        if self._confirm_pending:
            outcomes.append(_Outcome(self.engine.handle(Tick(confirmed=True), now=now, trusted=self._trusted)))
        handled: list[tuple[Message, _Outcome | None]] = []
        link_up = False
        for item in batch:
            if isinstance(item, Message):
                outcome = self._admit(item, now, now_s)
                handled.append((item, outcome))
                if outcome is not None:
                    outcomes.append(outcome)
            elif isinstance(item, LinkUp):
                link_up = True
            elif self._online:  # LinkDown of the own link: "online" again only once the lanes are back
                self._online = False
                self.link.set_presence(self._offline_payload)
        self._log_drops(now_s)
        outcomes.append(_Outcome(self.engine.handle(Tick(), now=now, trusted=self._trusted)))
        events = [e for o in outcomes for e in o.decision.events]
        try:
            self.ledger.append(events)
        except LedgerError as exc:
            self._storage_failed(exc, outcomes)
            # Answered messages are done (their devices retry with the same id if they want); a print report
            # gets no answer, so it stays with the broker, which delivers it again after the next reconnect.
            self._ack(m for m, o in handled
                      if o is None or not o.decision.events or o.reply is not None or o.on_storage_failure is not None)
            return
        self._clock_changes.clear()
        self._confirm_pending = False
        for event in events:
            if isinstance(event, DayStarted):
                expired = sum(1 for e in events if isinstance(e, TicketExpired))
                log.warning("business day %s started at %s; %d open tickets of the day before expired, numbering "
                            "starts again", event.day, event.at.isoformat(timespec="seconds"), expired)
            elif isinstance(event, DayCorrected):
                log.warning("business day corrected to %s on the operator's confirmation; the tickets handed out "
                            "meanwhile stay open and numbering goes on", event.day)
        if events and not self._storage_ok:  # an empty batch wrote nothing, so it proves nothing
            log.warning("ledger writable again path=%s; issuing tickets again", self.ledger.path)
            self._storage_ok = True
        for outcome in outcomes:
            if outcome.reply is not None:
                self.link.publish(*outcome.reply)
            for payload in outcome.calls:
                self.link.publish(self.topics.calls(), payload)
        self._ack(m for m, _ in handled)
        self._schedule_broadcasts(events, link_up)
        self._flush_broadcasts(now)

    def _ack(self, messages: Iterable[Message]) -> None:
        """These messages have their outcome stored and their answer queued: the broker may forget them.
        Until then a crash leaves them with the broker, which delivers them again; answering them again is
        safe because repeated request ids get their original answers."""
        for message in messages:
            self._links[message.source].ack(message)

    def _storage_failed(self, exc: LedgerError, outcomes: list[_Outcome]) -> None:
        if self._storage_ok:
            log.error("%s; refusing new tickets and counter changes until the ledger can be written again: "
                      "free disk space on the filesystem of %s, or make it writable again (remount it "
                      "read-write; after I/O errors check the disk and restart the controller). It resumes by "
                      "itself once a write succeeds", exc, self.ledger.path)
        elif self._storage_log.allow("ledger", time.monotonic()):
            log.warning("%s; still refusing changes", exc)
        self._storage_ok = False
        # The engine already applied the lost events: rebuild it from what is durably stored.
        self.engine = self._restore(level=logging.DEBUG)
        for outcome in outcomes:
            if outcome.decision.events and outcome.on_storage_failure is not None:
                self.link.publish(*outcome.on_storage_failure)
            elif not outcome.decision.events and outcome.reply is not None:
                self.link.publish(*outcome.reply)

    def _schedule_broadcasts(self, events: Sequence[Event], link_up: bool) -> None:
        """Decide what to refresh: the board and the acting counters now, everyone's waiting counts soon."""
        now = time.monotonic()
        if link_up:
            self._board_due = self._counters_due = now
            return
        if not events:
            return
        for event in events:
            if isinstance(event, (TicketCalled, TicketFinished, TicketTransferred, CounterStatusChanged)):
                self._counters_now.add(event.counter)
                self._board_due = now
            elif isinstance(event, TicketVoided):
                self._board_due = now
        # Waiting counts changed for some counters' services: refresh every counter, paced.
        self._board_due = self._board_due or now + REFRESH_S
        self._counters_due = self._counters_due or now + REFRESH_S

    def _flush_broadcasts(self, now_dt: datetime) -> None:
        if not self.link.connected.is_set():
            return
        now = time.monotonic()
        if self._counters_due is not None and now >= self._counters_due:
            self._counters_due = None
            self._counters_now.update(self.engine.counters)
        for counter_id in sorted(self._counters_now):
            self.link.publish(self.topics.counter_state(counter_id),
                              counter_state(self.engine, counter_id, now_dt).encode(), retain=True)
        self._counters_now.clear()
        if self._board_due is not None and now >= self._board_due:
            self._board_due = None
            self.link.publish(self.topics.board(), board(self.engine, now_dt).encode(), retain=True)

    # --- admission: rate limits -----------------------------------------------------------------------------

    def _admit(self, message: Message, now: datetime, now_s: float) -> _Outcome | None:
        """Decode and decide ``message`` if its device has a token left; otherwise drop it and pause its lane
        (see the module doc)."""
        parsed = self.topics.parse(message.topic)
        if message.source == self.others_name:
            if not self._others_budget.allow("others", now_s):
                self._pause(message.source, self._others_budget.next_token_s("others", now_s), now_s)
                return None
            if parsed is not None and self._known(parsed):
                return None  # its own connection brings it
        if parsed is None or parsed.device is None:
            log.debug("ignored message on topic=%s", message.topic)
            return None
        if message.retain:
            self._clear_retained(parsed, message)
            return None
        if not message.payload and message.topic in self._clearing:
            self._clearing.discard(message.topic)  # our own clearing, delivered back to us
            return None
        key = self._device_key(parsed)
        if self.limiter.allow(key, now_s):
            return self._handle_message(parsed, message, now)
        dropped = self._pause(message.source, self.limiter.next_token_s(key, now_s), now_s)
        if self._limited_log.allow(key, now_s, count=1 + dropped):  # the rest counted for the summary line
            log.warning("rate limit: dropping messages from %s=%s (more than %g a second, burst %d); a device "
                        "that sends this much is faulty or hostile: check it", key[0], key[1],
                        self.limiter.rate_per_s, self.limiter.burst)
        if self._limited_replies.allow(key, now_s):
            return self._error_outcome(parsed, message.payload, _RATE_LIMITED)
        return None

    def _clear_retained(self, parsed: ParsedTopic, message: Message) -> None:
        """A stored copy of a device's message (see the module doc): not acted on; cleared from the broker."""
        key = self._device_key(parsed)
        if key not in self._retained_reported:
            self._retained_reported.add(key)
            log.warning("ignored a retained message from %s=%s topic=%s and cleared it from the broker: a device "
                        "must publish requests, print reports and commands with retain=false (the broker replays a "
                        "retained one at every reconnect and restart); fix that device's MQTT settings", key[0],
                        key[1], message.topic)
        self._clearing.add(message.topic)
        self.link.publish(message.topic, b"", retain=True)

    def _pause(self, lane: str, until_s: float, now_s: float) -> int:
        """Pause ``lane`` until ``until_s`` (at least ``PAUSE_MIN_S``); drops what it held. Returns how many."""
        dropped = self.intake.pause(lane, max(until_s, now_s + PAUSE_MIN_S))
        self._ack(dropped)  # given up, not left in flight with the broker
        return len(dropped)

    def _known(self, parsed: ParsedTopic) -> bool:
        if parsed.kind is TopicKind.COUNTER_COMMAND:
            return parsed.device in self.engine.counters
        return parsed.device in self.spec.dispenser_by_id

    def _device_key(self, parsed: ParsedTopic) -> tuple[str, str]:
        """The bucket of the device in ``parsed``: its own if configured, else the role's shared "unknown" one."""
        role = "counter" if parsed.kind is TopicKind.COUNTER_COMMAND else "dispenser"
        return (role, (parsed.device or "") if self._known(parsed) else "(unknown ids)")

    def _error_outcome(self, parsed: ParsedTopic, payload: bytes, error: wire.ErrorInfo) -> _Outcome | None:
        """The answer to a message refused before the engine saw it (unreadable, rate-limited): the request id
        and action echoed when they can be read. Print reports have no reply."""
        device = parsed.device or ""
        if parsed.kind is TopicKind.DISPENSER_REQUEST:
            reply = wire.TicketReply(request_id=_request_id_of(payload), error=error)
            return _Outcome(Decision(), reply=(self.topics.dispenser_ticket(device), reply.encode()))
        if parsed.kind is TopicKind.COUNTER_COMMAND:
            command_reply = wire.CounterReply(request_id=_request_id_of(payload), action=_action_of(payload),
                                              error=error)
            return _Outcome(Decision(), reply=(self.topics.counter_reply(device), command_reply.encode()))
        return None

    def _log_drops(self, now_s: float) -> None:
        for (role, device), dropped, window_s in self._limited_log.ended(now_s):
            log.warning("rate limit: dropped %d messages from %s=%s in the last %.0f s (and the broker dropped "
                        "what it could not queue for it)", dropped, role, device, window_s)
        for (role, device), held_back, window_s in self._refusal_log.ended(now_s):
            log.warning("%d more refusals of %s=%s not logged in the last %.0f s", held_back, role, device,
                        window_s)
        self._limited_replies.ended(now_s)  # forget the reply windows

    def _log_refusal(self, parsed: ParsedTopic, level: int, message: str, *args: object) -> None:
        """A refusal's log line, at most ``REFUSAL_LOGS_PER_WINDOW`` per device (bucket) per window."""
        if self._refusal_log.allow(self._device_key(parsed), time.monotonic()):
            log.log(level, message, *args)

    # --- one message ----------------------------------------------------------------------------------------

    def _handle_message(self, parsed: ParsedTopic, message: Message, now: datetime) -> _Outcome | None:
        match parsed.kind:
            case TopicKind.DISPENSER_REQUEST:
                return self._ticket_request(parsed, message.payload, now)
            case TopicKind.DISPENSER_PRINTED:
                return self._print_report(parsed, message.payload, now)
            case TopicKind.COUNTER_COMMAND:
                return self._counter_command(parsed, message.payload, now)
            case _:
                return None

    def _ticket_request(self, parsed: ParsedTopic, payload: bytes, now: datetime) -> _Outcome | None:
        dispenser = parsed.device or ""
        topic = self.topics.dispenser_ticket(dispenser)
        try:
            request = wire.TicketRequest.decode(payload)
        except PayloadError as exc:
            self._log_refusal(parsed, logging.WARNING, "refused ticket request dispenser=%s code=%s: %s", dispenser,
                              exc.code, exc.message)
            return self._error_outcome(parsed, payload, wire.ErrorInfo(exc.code, exc.message))
        decision = self.engine.handle(IssueTicket(dispenser=dispenser, request_id=request.request_id,
                                                  service=request.service, priority=request.priority,
                                                  category=request.category, ticket_id=self.new_id()), now=now,
                                        trusted=self._trusted)
        storage = (topic, wire.TicketReply(request_id=request.request_id, error=_STORAGE_ERROR).encode())
        if decision.refusal is not None:
            self._log_refusal(parsed, logging.WARNING, "refused ticket request dispenser=%s request=%s service=%s "
                              "code=%s: %s", dispenser, request.request_id, request.service, decision.refusal.code,
                              decision.refusal.message)
            reply = wire.TicketReply(request_id=request.request_id,
                                     error=wire.ErrorInfo(decision.refusal.code, decision.refusal.message))
            return _Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)
        ticket = self.engine.tickets[decision.ticket_id or ""]
        if decision.duplicate:
            log.info("repeated answer ticket=%s dispenser=%s request=%s", ticket.number, dispenser, request.request_id)
        else:
            log.info("issued ticket=%s service=%s priority=%s dispenser=%s ahead=%d wait_s=%d", ticket.number,
                     ticket.service, ticket.priority, dispenser, ticket.ahead, ticket.estimated_wait_s)
        reply = wire.TicketReply(request_id=request.request_id, ticket=ticket_info(ticket))
        return _Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)

    def _print_report(self, parsed: ParsedTopic, payload: bytes, now: datetime) -> _Outcome | None:
        dispenser = parsed.device or ""
        try:
            report = wire.PrintReport.decode(payload)
        except PayloadError as exc:
            self._log_refusal(parsed, logging.WARNING, "refused print report dispenser=%s code=%s: %s", dispenser,
                              exc.code, exc.message)
            return None
        decision = self.engine.handle(ReportPrint(dispenser=dispenser, ticket_id=report.ticket_id, ok=report.ok,
                                                  reason=report.reason), now=now, trusted=self._trusted)
        if decision.refusal is not None:
            self._log_refusal(parsed, logging.WARNING, "refused print report dispenser=%s ticket_id=%s code=%s: %s",
                              dispenser, report.ticket_id, decision.refusal.code, decision.refusal.message)
        elif not report.ok and not decision.duplicate:
            ticket = self.engine.tickets[report.ticket_id]
            log.warning("voided ticket=%s dispenser=%s reason=%s (the dispenser could not print it)",
                        ticket.number, dispenser, report.reason)
        return _Outcome(decision)

    def _counter_command(self, parsed: ParsedTopic, payload: bytes, now: datetime) -> _Outcome | None:
        counter = parsed.device or ""
        topic = self.topics.counter_reply(counter)
        try:
            command = wire.CounterCommand.decode(payload)
        except PayloadError as exc:
            self._log_refusal(parsed, logging.WARNING, "refused counter command counter=%s code=%s: %s", counter,
                              exc.code, exc.message)
            return self._error_outcome(parsed, payload, wire.ErrorInfo(exc.code, exc.message))
        decision = self.engine.handle(CounterCommand(counter=counter, request_id=command.request_id,
                                                     action=command.action, ticket=command.ticket,
                                                     service=command.service, serving=command.serving), now=now,
                                        trusted=self._trusted)
        storage = (topic, wire.CounterReply(request_id=command.request_id, action=command.action,
                                            error=_STORAGE_ERROR).encode())
        runtime = self.engine.counters.get(counter)
        if decision.refusal is not None:
            # INFO: a clerk pressing `next` on an empty queue is everyday, not a fault.
            self._log_refusal(parsed, logging.INFO, "refused command counter=%s action=%s code=%s: %s", counter,
                              command.action, decision.refusal.code, decision.refusal.message)
            reply = wire.CounterReply(request_id=command.request_id, action=command.action,
                                      status=None if runtime is None else runtime.status,
                                      ticket=None if runtime is None else serving(self.engine.counter_ticket(counter)),
                                      error=wire.ErrorInfo(decision.refusal.code, decision.refusal.message))
            return _Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage)
        assert runtime is not None  # accepted commands come from configured counters
        ticket = self.engine.tickets.get(decision.ticket_id) if decision.ticket_id else None
        calls = []
        for event in decision.events:
            if isinstance(event, TicketCalled):
                record = self.engine.recent_calls[0] if self.engine.recent_calls[0].seq == event.seq else None
                if record is not None:
                    calls.append(call(self.engine, record).encode())
                log.info("%s ticket=%s counter=%s seq=%d", "recalled" if event.recall else "called",
                         self.engine.tickets[event.ticket_id].number, counter, event.seq)
        reply = wire.CounterReply(request_id=command.request_id, action=command.action, status=runtime.status,
                                  ticket=serving(ticket))
        return _Outcome(decision, reply=(topic, reply.encode()), on_storage_failure=storage, calls=calls)


class ReplayMismatch(Exception):
    """The ledger names a counter or service that the configuration no longer has."""


_RATE_LIMITED = wire.ErrorInfo("rate_limited", "this device sends more than the hall controller accepts; "
                                               "messages are being dropped")
_STORAGE_ERROR = wire.ErrorInfo("storage_unavailable",
                                "the hall controller cannot store tickets right now; nothing was changed")


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
