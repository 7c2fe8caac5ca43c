"""The MQTT adapter: why it cannot connect, reconnection, manual acks, readiness and flow control."""

from __future__ import annotations

import contextlib
import logging
import queue
import subprocess
import sys
import threading
import time

import pytest

from hallq.mqtt import BrokerSettings, LinkUp, Message, MqttLink
from testbed.broker import PrivateBroker, free_port
from tests.support import ROOT, Probe, wait_until


def _warnings_until(caplog: pytest.LogCaptureFixture, text: str, timeout_s: float = 5.0) -> str:
    def found() -> str | None:
        return next((r.getMessage() for r in caplog.records if text in r.getMessage()), None)

    try:
        return str(wait_until(found, timeout_s=timeout_s, what=f"a log line with {text!r}"))
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {[r.getMessage() for r in caplog.records]}") from None


def test_a_refused_connection_is_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hallq.mqtt")
    link = MqttLink(client_id="t1", broker=BrokerSettings(port=free_port()), inbox=queue.Queue())
    link.start()
    try:
        line = _warnings_until(caplog, "cannot reach broker")
    finally:
        link.stop()
    assert "connection refused" in line


def test_tls_to_a_plain_listener_is_named(caplog: pytest.LogCaptureFixture, broker: PrivateBroker) -> None:
    caplog.set_level(logging.WARNING, logger="hallq.mqtt")
    link = MqttLink(client_id="t2", broker=BrokerSettings(port=broker.port, tls=True), inbox=queue.Queue())
    link.start()
    try:
        line = _warnings_until(caplog, "cannot reach broker")
    finally:
        link.stop()
    assert "check [mqtt] tls" in line


def test_a_link_reconnects_after_a_broker_restart(broker: PrivateBroker) -> None:
    inbox: queue.Queue[object] = queue.Queue()
    link = MqttLink(client_id="t3", broker=BrokerSettings(port=broker.port), inbox=inbox)
    link.start()
    try:
        assert link.wait_up(5)
        broker.restart()
        deadline = time.monotonic() + 15
        ups = 0
        while ups < 2 and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                ups += isinstance(inbox.get(timeout=0.5), LinkUp)
        assert ups == 2
    finally:
        link.stop()


CONSUMER = """
import queue, sys, time
from hallq.mqtt import BrokerSettings, LinkUp, Message, MqttLink
inbox = queue.Queue()
link = MqttLink(client_id="consumer", broker=BrokerSettings(port=int(sys.argv[1])), inbox=inbox,
                subscriptions=[("t/work", 1)], session_expiry_s=600, manual_ack=True)
link.start()
while True:
    item = inbox.get()
    if isinstance(item, LinkUp):
        print("up", flush=True)
    if isinstance(item, Message):
        if sys.argv[2] == "ack":
            link.ack(item)
            # Sent after the ack on the same connection: once the broker acknowledged it, it has the ack too.
            assert link.publish_and_wait("t/acked", b"", qos=1)
        print("got", item.payload.decode(), flush=True)
"""


def _consumer(broker: PrivateBroker, mode: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """The consumer process, and the lines it prints ("up" once subscribed, "got <payload>"), as they come."""
    proc = subprocess.Popen([sys.executable, "-c", CONSUMER, str(broker.port), mode], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line.strip())

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _lines_until(lines: queue.Queue[str], last: str, *, timeout_s: float = 10.0) -> list[str]:
    seen: list[str] = []
    while not seen or seen[-1] != last:
        seen.append(lines.get(timeout=timeout_s))
    return seen


@pytest.mark.parametrize(("mode", "redelivered"), [("no-ack", True), ("ack", False)])
def test_a_message_not_acknowledged_before_a_crash_is_delivered_again(
    broker: PrivateBroker, mode: str, redelivered: bool
) -> None:
    """What the controller relies on: with manual acks and a kept session, a message the process received but
    had not acknowledged when it was SIGKILLed comes again to the restarted process; an acknowledged one not."""
    first, lines = _consumer(broker, mode)
    try:
        assert _lines_until(lines, "up") == ["up"]  # subscribed: the session is created
        with Probe(broker) as sender:
            sender.publish("t/work", b"job-1")
        assert lines.get(timeout=5) == "got job-1"
    finally:
        first.kill()
        first.wait()
    second, lines = _consumer(broker, "ack")
    try:
        # The broker sends what the resumed session holds right after CONNACK, before it answers the
        # SUBSCRIBE: once the consumer is up, a message coming again has come.
        seen = _lines_until(lines, "up")
    finally:
        second.kill()
        second.wait()
    assert seen == (["got job-1", "up"] if redelivered else ["up"])


def _messages(inbox: queue.Queue[object], *, wait_s: float) -> list[Message]:
    found, deadline = [], time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(queue.Empty):
            item = inbox.get(timeout=left)
            if isinstance(item, Message):
                found.append(item)
    return found


def test_link_up_comes_once_subscribed_and_the_broker_honours_the_receive_maximum(broker: PrivateBroker) -> None:
    """What the controller's per-device connections rely on: a ``LinkUp`` means the subscriptions are in place,
    every message names the link it came on, and Mosquitto sends no more unacknowledged QoS 1 messages than the
    ``receive_maximum`` we announced before we acknowledge; the rest wait in the broker. (Mosquitto 2.0.11 then
    sends up to a whole window per acknowledgement, measured here: the intake's own bound, which stops reading
    the connection, is what finally holds memory.)"""
    inbox: queue.Queue[object] = queue.Queue()
    link = MqttLink(client_id="intake-1", broker=BrokerSettings(port=broker.port), inbox=inbox,
                    subscriptions=[("t/intake", 1)], manual_ack=True, receive_maximum=3)
    link.start()
    try:
        assert isinstance(inbox.get(timeout=5), LinkUp)
        with Probe(broker) as sender:
            for n in range(10):
                sender.publish("t/intake", str(n).encode())
            first = _messages(inbox, wait_s=0.5)
            assert [m.payload for m in first] == [b"0", b"1", b"2"]
            assert {m.source for m in first} == {"intake-1"}
            link.ack(first[0])
            released = [m.payload for m in _messages(inbox, wait_s=0.5)]
            assert released[:1] == [b"3"] and len(released) <= 3
    finally:
        link.stop()
