"""The MQTT adapter tells an operator why it cannot connect."""

from __future__ import annotations

import contextlib
import logging
import queue
import time

import pytest

from hallq.broker import PrivateBroker, free_port
from hallq.mqtt import BrokerSettings, LinkUp, MqttLink


def _warnings_until(caplog: pytest.LogCaptureFixture, text: str, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [r.getMessage() for r in caplog.records if text in r.getMessage()]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no log line with {text!r}: {[r.getMessage() for r in caplog.records]}")


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
        assert link.wait_connected(5)
        broker.restart()
        deadline = time.monotonic() + 15
        ups = 0
        while ups < 2 and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                ups += isinstance(inbox.get(timeout=0.5), LinkUp)
        assert ups == 2
    finally:
        link.stop()
