"""Floods against the live controller: one device publishing as fast as it can, made-up ids, oversized payloads.

The figures (latency of the well-behaved dispensers under each kind of flood, the controller's peak memory)
come from ``bench/flood.py``; these tests check the behaviour: the flooder is held to its allowance, the
others are still served, memory stays bounded, the operator is told once, not a million times.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from hall_controller.ledger import Ledger
from hallq import wire
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, HALL_ID, ControllerProcess, Probe, wait_until

RATE_PER_S, BURST = 20, 50


@pytest.fixture
def limited(broker: PrivateBroker, tmp_path: Path) -> Iterator[ControllerProcess]:
    """The test hall's controller with tight per-device limits (20 messages a second, burst 50)."""
    config = tmp_path / "hall.toml"
    config.write_text(HALL_CONFIG.read_text(encoding="utf-8")
                      + f"\n[limits]\ndevice_messages_per_s = {RATE_PER_S}\ndevice_burst = {BURST}\n", encoding="utf-8")
    with ControllerProcess(config=config, broker=broker, state_dir=tmp_path / "state") as process:
        yield process


class Flooder(threading.Thread):
    """A raw paho client that publishes ``payload(n)`` on ``topic(n)`` at QoS 1 as fast as the broker takes it."""

    def __init__(self, broker: PrivateBroker, client_id: str, topic: object, payload: object, seconds: float) -> None:
        super().__init__(daemon=True)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_queued_messages_set(1000)
        self.client.connect("127.0.0.1", broker.port)
        self.topic, self.payload, self.seconds = topic, payload, seconds
        self.sent = 0

    def run(self) -> None:
        self.client.loop_start()
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < self.seconds:
            n += 1
            info = self.client.publish(self.topic(n), self.payload(n), qos=1)  # type: ignore[operator]
            self.sent += info.rc == paho.MQTT_ERR_SUCCESS
        self.client.loop_stop()
        self.client.disconnect()


def _ticket_with_retries(probe: Probe, dispenser: str, *, deadline_s: float = 15.0) -> wire.TicketInfo:
    """What a real dispenser does: ask, and ask again with the SAME request id when no answer came in 1 s."""
    rid = uuid.uuid4().hex
    topic = probe.topics.dispenser_ticket(dispenser)
    payload = wire.TicketRequest(request_id=rid, service="A").encode()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        probe.publish(probe.topics.dispenser_request(dispenser), payload)
        try:
            message = probe.expect(lambda m: m.topic == topic and wire.TicketReply.decode(m.payload).request_id == rid,
                                   timeout_s=1.0)
        except AssertionError:
            continue
        reply = wire.TicketReply.decode(message.payload)
        assert reply.ticket is not None, reply.error
        return reply.ticket
    raise AssertionError(f"{dispenser} got no ticket within {deadline_s} s")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _history(controller: ControllerProcess) -> list[dict[str, object]]:
    ledger = Ledger(controller.state_dir / "ledger.sqlite3", hall_id=HALL_ID)
    try:
        return ledger.history()
    finally:
        ledger.close()


def test_a_flooding_dispenser_is_held_to_its_allowance_and_the_others_still_get_tickets(
    broker: PrivateBroker, limited: ControllerProcess
) -> None:
    topics = Probe(broker).topics
    replies: list[bytes] = []
    flood_seconds = 2.0
    flooder = Flooder(broker, "d1", lambda n: topics.dispenser_request("d1"),
                      lambda n: wire.TicketRequest(request_id=f"flood-{n}", service="A").encode(), flood_seconds)
    flooder.client.on_message = lambda _c, _u, m: replies.append(bytes(m.payload))
    flooder.client.subscribe(topics.dispenser_ticket("d1"), qos=1)
    with Probe(broker, subscriptions=[topics.dispenser_ticket("d2")]) as d2:
        started = time.monotonic()
        flooder.start()
        served = []
        while flooder.is_alive():
            served.append(_ticket_with_retries(d2, "d2"))
            time.sleep(0.1)  # d2's pace: a dispenser's customers during the flood, not a wait for something
        flooder.join()
        elapsed = time.monotonic() - started
        served.append(_ticket_with_retries(d2, "d2"))      # and after the flood
    assert limited.proc is not None and limited.proc.poll() is None
    peak_mib = _peak_rss_mib(limited.proc.pid)
    log = limited.log_text()
    assert limited.stop() == 0

    assert flooder.sent > 10 * (BURST + RATE_PER_S * elapsed), "the flood was not a flood"
    rows = _history(limited)
    flood_tickets = [r for r in rows if r["dispenser"] == "d1"]
    # The burst, then the rate (the flooder's own queue drains into the broker for a moment after it stops).
    assert BURST <= len(flood_tickets) <= BURST + RATE_PER_S * (elapsed + 2)
    assert {r["id"] for r in rows if r["dispenser"] == "d2"} == {t.id for t in served}
    numbers = Counter((r["day"], r["number"]) for r in rows)
    assert max(numbers.values()) == 1
    codes = Counter(json.loads(r).get("error", {}).get("code") for r in replies)
    assert codes["rate_limited"] >= 1
    assert codes["rate_limited"] <= elapsed + 3                    # at most one a second
    assert "rate limit: dropping messages from dispenser=d1" in log
    assert log.count("\n") < 500, "the flood buried the log"
    assert peak_mib < 150


def test_made_up_dispenser_ids_share_one_allowance(broker: PrivateBroker, limited: ControllerProcess) -> None:
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[f"qms/{HALL_ID}/dispenser/+/ticket"]) as probe:
        for n in range(400):
            probe.publish(topics.dispenser_request(f"ghost{n}"),
                          wire.TicketRequest(request_id=f"g{n}", service="A").encode())
        assert _ticket_with_retries(probe, "d2").number == "A001"  # a configured dispenser has its own bucket

        def promised_answers() -> Counter[str | None] | None:
            """The ghosts' answers, once the allowance's promise is in: the burst, then one rate_limited."""
            found = Counter(wire.TicketReply.decode(m.payload).error_code for m in probe.drain()
                            if "/ghost" in m.topic)
            return found if found["unknown_dispenser"] >= BURST and found["rate_limited"] >= 1 else None

        # The made-up ids all come on one connection, which drops what it cannot take: no answer is sure to come
        # last, to wait for. So wait for the lower bounds, and check the upper ones on what came by then.
        codes = wait_until(promised_answers, timeout_s=5, what="the ghosts' answers")
        assert codes is not None
    assert codes["unknown_dispenser"] >= BURST
    assert codes["unknown_dispenser"] <= BURST + RATE_PER_S * 10
    assert 1 <= codes["rate_limited"] <= 10
    assert "rate limit: dropping messages from dispenser=(unknown ids)" in limited.log_text()


def test_oversized_commands_and_print_reports_are_refused_and_change_nothing(
    broker: PrivateBroker, controller: ControllerProcess
) -> None:
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.counter_reply("1"), topics.dispenser_ticket("d1")]) as probe:
        issued = probe.request_ticket("d1", "A").ticket
        assert issued is not None
        big = json.dumps({"v": 1, "request_id": "big", "action": "next", "pad": "x" * 20_000}).encode()
        probe.publish(topics.counter_command("1"), big)  # under the broker's 64 KiB, over the controller's 16 KiB
        reply = wire.CounterReply.decode(probe.on(topics.counter_reply("1")).payload)
        assert reply.error_code == "bad_request" and "exceeds" in (reply.error.message if reply.error else "")
        probe.publish(topics.dispenser_printed("d1"), json.dumps(
            {"v": 1, "ticket_id": issued.id, "ok": False, "reason": "paper_out", "pad": "x" * 20_000}).encode())
    with Probe(broker, client_id="d1") as rogue:                  # over the broker's limit: it drops the client
        rogue.link.publish(topics.counter_command("1"), b"{" + b" " * 100_000 + b"}", qos=1)
        wait_until(lambda: "oversize packet" in broker.log_path.read_text(), timeout_s=5,
                   what="the broker logs the oversize packet")
    with Probe(broker, subscriptions=[topics.counter_reply("1"), topics.dispenser_ticket("d1")]) as probe:
        called = probe.command("1", "next")
        assert called.ticket is not None and called.ticket.id == issued.id   # not voided, not called before
        assert probe.request_ticket("d1", "A").ticket.number == "A002"      # type: ignore[union-attr]
    assert controller.stop() == 0
    [row] = [r for r in _history(controller) if r["id"] == issued.id]
    assert row["state"] == "called" and row["void_reason"] is None
