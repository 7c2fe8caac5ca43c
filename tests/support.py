"""Helpers for tests that run real processes against a real Mosquitto: a controller process and a probe."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hallq import wire
from hallq.mqtt import BrokerSettings, LinkDown, LinkUp, Message, MqttLink
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from testbed.controller import ControllerProcess

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
HALL_CONFIG = FIXTURES / "hall.toml"
HALL_ID = "test-hall"
__all__ = ["HALL_CONFIG", "HALL_ID", "ROOT", "ControllerProcess", "Probe", "processes_naming", "wait_until"]
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout_s: float, what: str, every_s: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; fail naming ``what`` after
    ``timeout_s``. For conditions with no event to wait on (a file, a log, another process's state)."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(every_s)  # the polling interval, not a wait for something
    return value


class Probe:
    """A test client on the hall's topics: publishes, and collects every message it subscribed to."""

    def __init__(self, broker: PrivateBroker, *, client_id: str | None = None, subscriptions: list[str] | None = None,
                 hall: str = HALL_ID) -> None:
        self.topics = Topics(hall=hall)
        self.inbox: queue.Queue[Message | LinkUp | LinkDown] = queue.Queue()
        self.received: list[Message] = []
        self.link = MqttLink(client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}",
                             broker=BrokerSettings(port=broker.port), inbox=self.inbox,
                             subscriptions=[(s, 1) for s in (subscriptions or [])])

    def __enter__(self) -> Probe:
        self.link.start()
        if not self.link.wait_up(5):
            raise AssertionError("probe could not connect")
        self._wait_link_up(timeout_s=5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.stop()

    def _wait_link_up(self, *, timeout_s: float) -> None:
        """Until the broker acknowledged the subscriptions (``LinkUp``): what is published after it reaches us."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                item = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"probe not subscribed within {timeout_s} s") from None
            if isinstance(item, LinkUp):
                return
            if isinstance(item, Message):
                self.received.append(item)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.link.publish(topic, payload, retain=retain)

    def drain(self) -> list[Message]:
        """Every message received so far (``received``, with what had arrived since), without waiting."""
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return self.received
            if isinstance(item, Message):
                self.received.append(item)

    def expect(self, predicate: Callable[[Message], bool], *, timeout_s: float = 5.0) -> Message:
        """The first message (already received or arriving) that satisfies ``predicate``."""
        for message in self.received:
            if predicate(message):
                self.received.remove(message)
                return message
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if not isinstance(item, Message):
                continue
            if predicate(item):
                return item
            self.received.append(item)
        raise AssertionError(f"no matching message within {timeout_s} s; got {[m.topic for m in self.received]}")

    def on(self, topic: str, *, timeout_s: float = 5.0) -> Message:
        return self.expect(lambda m: m.topic == topic, timeout_s=timeout_s)

    def request_ticket(self, dispenser: str, service: str, *, priority: bool = False, category: str | None = None,
                       request_id: str | None = None, timeout_s: float = 5.0,
                       card: wire.CardScan | None = None) -> wire.TicketReply:
        """Ask for a ticket as ``dispenser`` (the probe must subscribe to its ticket topic) and wait for the reply."""
        rid = request_id or uuid.uuid4().hex
        self.publish(self.topics.dispenser_request(dispenser),
                     wire.TicketRequest(request_id=rid, service=service, priority=priority, category=category,
                                        card=card).encode())
        topic = self.topics.dispenser_ticket(dispenser)
        message = self.expect(lambda m: m.topic == topic and wire.TicketReply.decode(m.payload).request_id == rid,
                              timeout_s=timeout_s)
        return wire.TicketReply.decode(message.payload)

    def command(self, counter: str, action: str, *, ticket: str | None = None, service: str | None = None,
                request_id: str | None = None, timeout_s: float = 5.0,
                profile: wire.ProfileEdit | None = None) -> wire.CounterReply:
        """Send a counter command (the probe must subscribe to the counter's reply topic) and wait for the reply."""
        rid = request_id or uuid.uuid4().hex
        self.publish(self.topics.counter_command(counter),
                     wire.CounterCommand(request_id=rid, action=action, ticket=ticket,  # type: ignore[arg-type]
                                         service=service, profile=profile).encode())
        topic = self.topics.counter_reply(counter)
        message = self.expect(lambda m: m.topic == topic and wire.CounterReply.decode(m.payload).request_id == rid,
                              timeout_s=timeout_s)
        return wire.CounterReply.decode(message.payload)


def processes_naming(folder: Path) -> list[str]:
    """Command lines of the running processes that name ``folder`` (every role a run starts names its own)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if str(folder) in text:
            found.append(text.strip())
    return found
