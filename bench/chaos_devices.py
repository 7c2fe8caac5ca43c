"""The chaos run's simulated devices: protocol-level dispensers and counters, a display and a presence watcher.

Each simulated device is one thread with its own ``MqttLink`` (client id = device id), so the broker sees
separate clients that can be cut one by one (see ``chaos_net``). They follow the real devices' discipline
from the contract (docs/mqtt-contract.md) and the dispenser's and counter's cores:

* a dispenser sends one request at a time, re-sends it with the SAME ``request_id`` when no reply came
  within ``request_timeout_s`` (at most ``request_attempts`` sends), then abandons it; it "prints" only a
  ticket from the reply to the request in progress, reports ``printed`` ok or failed (a seeded print failure
  now and then), and reports a late reply to an abandoned request as not printed, so the controller voids
  it. Like the real dispenser it keeps a persistent session and ignores presses while its link is down.
  Unlike it, it does not wait for the controller's presence: presses during a controller restart are the
  point of the exercise.
* a counter is a clerk: ``next``, ``recall``, ``complete``, ``no_show``, ``transfer``, ``call`` (a number a
  citizen shows), ``pause``, ``open``, ``close``; one command at a time, re-sent with the same
  ``request_id`` when no reply came, a bounded number of times; clean session, like the real counter.
* the display is a plain subscriber of ``calls`` and the retained ``board`` (clean session, like
  ``display/service.py``); the presence watcher reads ``status/+``.

Every device keeps its own record of what it was given; ``chaos_checks`` compares those with the ledger.
Threads never touch each other's state; the orchestrator only flips their ``pressing``/``draining`` flags.
"""

from __future__ import annotations

import abc
import logging
import queue
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hallq import wire
from hallq.errors import PayloadError
from hallq.mqtt import BrokerSettings, LinkDown, LinkUp, Message, MqttLink
from hallq.topics import Topics

log = logging.getLogger(__name__)

InboxItem = Message | LinkUp | LinkDown
CutHook = Callable[[str, float], None]  # (device id, down_s): cuts a device's connection (``CutRelays.cut``)
CATEGORIES = ("elderly", "disability", "pregnant", "child", "other")


@dataclass(frozen=True, slots=True)
class PrintRecord:
    """What a dispenser did with a ticket the controller assigned it: printed (``ok``) or reported failed."""

    dispenser: str
    request_id: str
    ticket_id: str
    number: str
    service: str
    priority: bool
    ok: bool
    late: bool  # the reply came after the request was abandoned: reported not printed
    at: float  # monotonic
    wall: datetime  # when it printed (or reported the failure), by the wall clock the ledger uses


@dataclass(frozen=True, slots=True)
class Given:
    """A ticket a counter was given by an accepted ``next`` or ``call``, as the reply said."""

    counter: str
    request_id: str
    action: str
    ticket_id: str
    number: str
    called_at: datetime
    late: bool  # the reply came after the counter had given up on the command


@dataclass(slots=True)
class LinkLog:
    """When a device's link came up and went down, and when its requests were answered (monotonic)."""

    ups: list[float] = field(default_factory=list)
    downs: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)


class _Device(threading.Thread, abc.ABC):
    """A simulated device: a thread that consumes its own link's inbox."""

    def __init__(self, device_id: str, *, broker: BrokerSettings, topics: Topics, seed: int,
                 subscriptions: list[str], session_expiry_s: int, role: str) -> None:
        super().__init__(name=f"chaos-{device_id}", daemon=True)
        self.device_id = device_id
        self.topics = topics
        self.rng = random.Random(seed)
        self.inbox: queue.Queue[InboxItem] = queue.Queue()
        self.link = MqttLink(
            client_id=device_id, broker=broker, inbox=self.inbox, subscriptions=[(s, 1) for s in subscriptions],
            presence_topic=topics.status(device_id),
            online_payload=wire.Presence(state="online", role=role).encode(),
            offline_payload=wire.Presence(state="offline", role=role).encode(),
            session_expiry_s=session_expiry_s,
        )
        self.links = LinkLog()
        self.connected = False
        self.stopping = threading.Event()
        self.cut_request: float | None = None  # down_s of a cut armed for the next request
        self.cut_hook: CutHook | None = None
        self.bad_payloads = 0

    def new_request_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def arm_cut(self, down_s: float) -> None:
        """Cut this device's connection right after it sends its next request (mid-request)."""
        self.cut_request = down_s

    def _maybe_cut(self) -> None:
        if self.cut_request is not None and self.cut_hook is not None:
            down_s, self.cut_request = self.cut_request, None
            self.cut_hook(self.device_id, down_s)

    def run(self) -> None:
        self.link.start()
        try:
            while not self.stopping.is_set():
                # At least a millisecond: a wake-up time already past must never become a busy loop.
                timeout = max(0.001, min(0.2, self.wake_at() - time.monotonic()))
                try:
                    item = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    item = None
                now = time.monotonic()
                if isinstance(item, LinkUp):
                    self.connected = True
                    self.links.ups.append(now)
                elif isinstance(item, LinkDown):
                    self.connected = False
                    self.links.downs.append(now)
                elif isinstance(item, Message):
                    self.on_message(item, now)
                self.on_time(time.monotonic())
        finally:
            self.link.stop()

    def stop(self) -> None:
        self.stopping.set()

    @abc.abstractmethod
    def wake_at(self) -> float:
        """The monotonic time at which ``on_time`` has something to do."""

    @abc.abstractmethod
    def on_message(self, message: Message, now: float) -> None:
        """A message on one of the device's topics."""

    @abc.abstractmethod
    def on_time(self, now: float) -> None:
        """Act on deadlines: re-send, give up, press, or press a key."""


@dataclass(slots=True)
class _Request:
    request: wire.TicketRequest
    first_sent: float
    deadline: float
    attempts: int


@dataclass(slots=True)
class DispenserStats:
    presses: int = 0
    ignored_offline: int = 0
    requests: int = 0
    resends: int = 0
    abandoned: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    stale_replies: int = 0
    latencies_s: list[float] = field(default_factory=list)


class SimDispenser(_Device):
    """A kiosk: seeded presses at ``rate_per_s`` while ``pressing`` is set; see the module docstring."""

    def __init__(self, device_id: str, *, broker: BrokerSettings, topics: Topics, seed: int, services: tuple[str, ...],
                 rate_per_s: float, print_fail_p: float, request_timeout_s: float = 1.0, request_attempts: int = 3,
                 numbers_seen: deque[tuple[str, str]] | None = None) -> None:
        super().__init__(device_id, broker=broker, topics=topics, seed=seed,
                         subscriptions=[topics.dispenser_ticket(device_id)], session_expiry_s=300, role="dispenser")
        self.services = services
        self.rate_per_s = rate_per_s
        self.print_fail_p = print_fail_p
        self.request_timeout_s = request_timeout_s
        self.request_attempts = request_attempts
        self.numbers_seen = numbers_seen
        self.pressing = threading.Event()
        self.next_press = 0.0
        self.inflight: _Request | None = None
        self.abandoned: deque[str] = deque(maxlen=32)
        self.printed: list[PrintRecord] = []
        self.stats = DispenserStats()

    @property
    def idle(self) -> bool:
        return self.inflight is None

    def wake_at(self) -> float:
        due = [self.inflight.deadline] if self.inflight is not None else []
        if self.pressing.is_set() and self.inflight is None:
            due.append(self.next_press)
        return min(due, default=time.monotonic() + 0.2)

    def on_time(self, now: float) -> None:
        flight = self.inflight
        if flight is not None and now >= flight.deadline:
            if flight.attempts < self.request_attempts:
                flight.attempts += 1
                flight.deadline = now + self.request_timeout_s
                self.stats.resends += 1
                self._send(flight.request)
            else:
                self.stats.abandoned += 1
                self.abandoned.append(flight.request.request_id)
                self.inflight = None
        if not self.pressing.is_set() or self.inflight is not None:
            return
        if self.next_press == 0.0 or self.next_press < now - 1.0:
            self.next_press = now + self.rng.expovariate(self.rate_per_s)
            return
        if now < self.next_press:
            return
        self.next_press += self.rng.expovariate(self.rate_per_s)
        self.stats.presses += 1
        if not self.connected:
            self.stats.ignored_offline += 1
            return
        priority = self.rng.random() < 0.18
        request = wire.TicketRequest(request_id=self.new_request_id(), service=self.rng.choice(self.services),
                                     priority=priority, category=self.rng.choice(CATEGORIES) if priority else None)
        self.inflight = _Request(request, now, now + self.request_timeout_s, 1)
        self.stats.requests += 1
        self._send(request)
        self._maybe_cut()

    def _send(self, request: wire.TicketRequest) -> None:
        self.link.publish(self.topics.dispenser_request(self.device_id), request.encode())

    def on_message(self, message: Message, now: float) -> None:
        try:
            reply = wire.TicketReply.decode(message.payload)
        except PayloadError:
            self.bad_payloads += 1
            return
        flight = self.inflight
        if flight is not None and reply.request_id == flight.request.request_id:
            self.inflight = None
            self.links.answers.append(now)
            self.stats.latencies_s.append(now - flight.first_sent)
            if reply.ticket is None:
                self.stats.refused[reply.error.code if reply.error else "?"] += 1
                return
            ok = self.rng.random() >= self.print_fail_p
            self._report(reply.ticket, flight.request, ok=ok, late=False, now=now)
        elif reply.request_id in self.abandoned and reply.ticket is not None:
            # Nobody waits at the kiosk any more: never print it, have the controller void it.
            self.abandoned.remove(reply.request_id)
            request = wire.TicketRequest(request_id=reply.request_id, service=reply.ticket.service,
                                         priority=reply.ticket.priority)
            self._report(reply.ticket, request, ok=False, late=True, now=now)
        else:
            self.stats.stale_replies += 1

    def _report(self, ticket: wire.TicketInfo, request: wire.TicketRequest, *, ok: bool, late: bool,
                now: float) -> None:
        self.printed.append(PrintRecord(self.device_id, request.request_id, ticket.id, ticket.number, ticket.service,
                                        ticket.priority, ok, late, now, datetime.now(UTC)))
        reason = None if ok else ("timeout" if late else "paper_out")
        report = wire.PrintReport(ticket_id=ticket.id, ok=ok, reason=reason)
        self.link.publish(self.topics.dispenser_printed(self.device_id), report.encode())
        if ok and self.numbers_seen is not None:
            self.numbers_seen.append((ticket.service, ticket.number))


@dataclass(slots=True)
class _Command:
    command: wire.CounterCommand
    first_sent: float
    deadline: float
    attempts: int


@dataclass(slots=True)
class CounterStats:
    sent: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    resends: int = 0
    gave_up: int = 0
    late_replies: int = 0
    stale_replies: int = 0
    latencies_s: list[float] = field(default_factory=list)


class SimCounter(_Device):
    """A clerk at a counter; ``running`` drives the day, ``draining`` serves everyone left and stops."""

    def __init__(self, device_id: str, *, broker: BrokerSettings, topics: Topics, seed: int, services: tuple[str, ...],
                 all_services: tuple[str, ...], service_s: tuple[float, float], reply_timeout_s: float = 1.5,
                 attempts: int = 4, numbers_seen: deque[tuple[str, str]] | None = None) -> None:
        super().__init__(device_id, broker=broker, topics=topics, seed=seed,
                         subscriptions=[topics.counter_reply(device_id)], session_expiry_s=0, role="counter")
        self.services = services
        self.all_services = all_services
        self.service_s = service_s
        self.reply_timeout_s = reply_timeout_s
        self.attempts = attempts
        self.numbers_seen = numbers_seen
        self.running = threading.Event()
        self.draining = threading.Event()
        self.drained = threading.Event()
        self.status: str | None = None
        self.current: wire.ServingTicket | None = None
        self.recalled = False
        self.next_action = 0.0
        self.inflight: _Command | None = None
        self.answered: set[str] = set()
        self.given_up: deque[str] = deque(maxlen=64)
        self.given: list[Given] = []
        self.stats = CounterStats()

    def wake_at(self) -> float:
        if self.inflight is not None:
            return self.inflight.deadline
        active = (self.draining.is_set() and not self.drained.is_set()) or self.running.is_set()
        if not active or not self.connected:
            return time.monotonic() + 0.2  # nothing to do until a message (e.g. LinkUp) or a flag changes
        return self.next_action

    def on_time(self, now: float) -> None:
        flight = self.inflight
        if flight is not None:
            if now < flight.deadline:
                return
            if flight.attempts < self.attempts:
                flight.attempts += 1
                flight.deadline = now + self.reply_timeout_s
                self.stats.resends += 1
                self._publish(flight.command)
                return
            self.stats.gave_up += 1
            self.given_up.append(flight.command.request_id)
            self.inflight = None
            self.next_action = now + 0.5
        if now < self.next_action or not self.connected:
            return
        if self.draining.is_set():
            action = self._drain_action()
        elif self.running.is_set():
            action = self._clerk_action()
        else:
            return
        if action is not None:
            self._send(*action, now=now)

    def _drain_action(self) -> tuple[str, str | None, str | None] | None:
        if self.drained.is_set():
            return None
        if self.status in (None, "closed"):
            return ("open", None, None)
        return ("next", None, None)

    def _clerk_action(self) -> tuple[str, str | None, str | None]:
        """What the clerk presses now: (action, ticket number, service)."""
        roll = self.rng.random()
        if self.status == "closed":
            return ("open", None, None)
        if self.status == "paused":
            return ("next", None, None) if roll < 0.5 else ("open", None, None)
        if self.current is None:
            if roll < 0.015:
                return ("pause", None, None)
            if roll < 0.025:
                return ("close", None, None)
            if roll < 0.07 and (number := self._shown_number()) is not None:
                return ("call", number, None)
            return ("next", None, None)
        if not self.recalled and roll < 0.10:
            return ("recall", None, None)
        if roll < 0.16:
            return ("no_show", None, None)
        if roll < 0.21:
            target = self.rng.choice([s for s in self.all_services if s != self.current.service])
            return ("transfer", None, target)
        if roll < 0.24 and (number := self._shown_number()) is not None:
            return ("call", number, None)
        if roll < 0.55:
            return ("next", None, None)  # completes the current ticket and calls the next one
        return ("complete", None, None)

    def _shown_number(self) -> str | None:
        """A number a citizen holds up at the counter: one recently printed for one of this counter's services."""
        if not self.numbers_seen:
            return None
        # The newest tickets are the likeliest still to be waiting; older ones get a refusal, which is fine too.
        candidates = [n for s, n in list(self.numbers_seen)[-80:] if s in self.services][-6:]
        return self.rng.choice(candidates) if candidates else None

    def _send(self, action: str, ticket: str | None, service: str | None, *, now: float) -> None:
        command = wire.CounterCommand(request_id=self.new_request_id(), action=action,  # type: ignore[arg-type]
                                      ticket=ticket, service=service)
        self.inflight = _Command(command, now, now + self.reply_timeout_s, 1)
        self.stats.sent[action] += 1
        self._publish(command)
        self._maybe_cut()

    def _publish(self, command: wire.CounterCommand) -> None:
        self.link.publish(self.topics.counter_command(self.device_id), command.encode())

    def on_message(self, message: Message, now: float) -> None:
        try:
            reply = wire.CounterReply.decode(message.payload)
        except PayloadError:
            self.bad_payloads += 1
            return
        flight = self.inflight
        if flight is not None and reply.request_id == flight.command.request_id:
            self.inflight = None
            self.links.answers.append(now)
            self.stats.latencies_s.append(now - flight.first_sent)
            self._settle(reply, now, late=False)
        elif reply.request_id in self.given_up and reply.request_id not in self.answered:
            self.stats.late_replies += 1
            self._settle(reply, now, late=True)
        else:
            self.stats.stale_replies += 1  # a repeated answer to a re-sent command

    def _settle(self, reply: wire.CounterReply, now: float, *, late: bool) -> None:
        self.answered.add(reply.request_id)
        action = reply.action
        if reply.status is not None:
            self.status = reply.status
        self.current = reply.ticket
        if late:
            # The clerk had moved on; what the controller did is still a fact to record.
            if reply.error is None and action in ("next", "call") and reply.ticket is not None:
                t = reply.ticket
                self.given.append(Given(self.device_id, reply.request_id, action, t.id, t.number, t.called_at, True))
            return
        if reply.error is not None:
            self.stats.refused[reply.error.code] += 1
            if self.draining.is_set():
                if reply.error.code == "queue_empty":
                    if self.current is None:
                        self.drained.set()
                    else:
                        self._send("complete", None, None, now=now)
                        return
                self.next_action = now + 0.05
                return
            self.next_action = now + (self.rng.uniform(0.8, 1.6) if reply.error.code == "queue_empty" else 0.3)
            return
        self.stats.accepted[action] += 1
        if action in ("next", "call") and reply.ticket is not None:
            t = reply.ticket
            self.given.append(Given(self.device_id, reply.request_id, action, t.id, t.number, t.called_at, False))
            self.recalled = False
        if self.draining.is_set():
            if action == "complete":
                self._send("next", None, None, now=now)  # see whether anyone is left
                return
            self.next_action = now
            return
        low, high = self.service_s
        match action:
            case "next" | "call":
                self.next_action = now + self.rng.uniform(low, high)
            case "recall":
                self.recalled = True
                self.next_action = now + self.rng.uniform(0.3, 1.0)
            case "pause":
                self.next_action = now + self.rng.uniform(2.0, 5.0)
            case "close":
                self.next_action = now + self.rng.uniform(3.0, 8.0)
            case _:
                self.next_action = now + self.rng.uniform(0.1, 0.6)


class Listener(threading.Thread):
    """A plain subscriber that records every message it receives (with its arrival time)."""

    def __init__(self, client_id: str, *, broker: BrokerSettings, subscriptions: list[str]) -> None:
        super().__init__(name=f"chaos-{client_id}", daemon=True)
        self.inbox: queue.Queue[InboxItem] = queue.Queue()
        self.link = MqttLink(client_id=client_id, broker=broker, inbox=self.inbox,
                             subscriptions=[(s, 1) for s in subscriptions])
        self.received: list[tuple[float, Message]] = []
        self.changed = threading.Condition()
        self.stopping = threading.Event()

    def run(self) -> None:
        self.link.start()
        try:
            while not self.stopping.is_set():
                try:
                    item = self.inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, Message):
                    with self.changed:
                        self.received.append((time.monotonic(), item))
                        self.changed.notify_all()
        finally:
            self.link.stop()

    def wait_for(self, predicate: Callable[[list[tuple[float, Message]]], bool], timeout_s: float) -> bool:
        """Until ``predicate(received)`` holds (checked on every new message) or the timeout passes."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.received), timeout=timeout_s)

    def stop(self) -> None:
        self.stopping.set()


def decode_calls(received: list[tuple[float, Message]], topics: Topics) -> tuple[list[wire.Call], list[wire.Board]]:
    """The display's view: calls in arrival order, and every board snapshot it received."""
    calls: list[wire.Call] = []
    boards: list[wire.Board] = []
    for _at, message in received:
        if message.topic == topics.calls():
            calls.append(wire.Call.decode(message.payload))
        elif message.topic == topics.board():
            boards.append(wire.Board.decode(message.payload))
    return calls, boards


def close_the_day(dispensers: Sequence[SimDispenser], counters: Sequence[SimCounter], *,
                  drain_limit_s: float = 90.0) -> float:
    """Stop the presses, let every request settle, then have every counter serve until its queue is empty; the
    seconds the counters took to drain."""
    for device in dispensers:
        device.pressing.clear()
    deadline = time.monotonic() + 15
    while any(not d.idle for d in dispensers) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    for counter in counters:
        counter.running.clear()
        counter.draining.set()
    for counter in counters:
        counter.drained.wait(timeout=max(0.1, started + drain_limit_s - time.monotonic()))
    return time.monotonic() - started
