"""Restarts and crashes of the controller process: nothing answered is lost, no number is reused."""

from __future__ import annotations

import os
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hall_controller.ledger import Ledger
from hallq import wire
from hallq.mqtt import Message
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, ControllerProcess, Probe

DISPENSERS = ("d1", "d2")


@pytest.fixture
def controller_at(broker: PrivateBroker, tmp_path: Path) -> Iterator[ControllerProcess]:
    """A controller the test starts, stops, kills and restarts itself; always stopped at the end."""
    process = ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=tmp_path / "state")
    yield process
    process.stop()


def _probe(broker: PrivateBroker) -> Probe:
    topics = Probe(broker).topics
    return Probe(broker, subscriptions=[*(topics.dispenser_ticket(d) for d in DISPENSERS),
                                        topics.counter_reply("1"), topics.counter_reply("3")])


def test_restart_restores_queue_order_counters_numbering_and_request_ids(
    broker: PrivateBroker, controller_at: ControllerProcess
) -> None:
    controller = controller_at
    controller.start()
    with _probe(broker) as probe:
        first = probe.request_ticket("d1", "A", request_id="keep-me")
        for _ in range(3):
            probe.request_ticket("d1", "A")
        assert probe.command("3", "next").ticket is not None       # A001 at counter 3
        assert probe.command("1", "pause").status == "paused"
    assert controller.stop() == 0
    controller.start()
    with _probe(broker) as probe:
        again = probe.request_ticket("d1", "A", request_id="keep-me")
        assert again.ticket == first.ticket
        assert probe.request_ticket("d1", "A").ticket.number == "A005"  # type: ignore[union-attr]
        reply = probe.command("3", "next")                          # completes A001, calls A002
        assert reply.ticket is not None
        assert reply.ticket.number == "A002"
        assert probe.command("1", "open").status == "open"
    controller.stop()


def test_sigkill_during_a_load_of_requests_loses_and_duplicates_nothing(
    broker: PrivateBroker, controller_at: ControllerProcess
) -> None:
    """Dispensers keep asking (retrying with the same request id) while the controller is killed twice."""
    controller = controller_at
    state = controller.state_dir
    controller.start()
    rng = random.Random(7)
    answers: dict[tuple[str, str], wire.TicketInfo] = {}
    pending: dict[tuple[str, str], tuple[float, bytes]] = {}
    target, kills_at = 600, {150, 380}
    with _probe(broker) as probe:
        topics = probe.topics
        deadline = time.monotonic() + 90
        while len(answers) < target and time.monotonic() < deadline:
            while len(pending) < 16:                                   # 16 requests in flight
                dispenser = rng.choice(DISPENSERS)
                key = (dispenser, uuid.uuid4().hex)
                payload = wire.TicketRequest(request_id=key[1], service=rng.choice("ABC"),
                                             priority=rng.random() < 0.2).encode()
                pending[key] = (time.monotonic(), payload)
                probe.publish(topics.dispenser_request(dispenser), payload)
            try:
                item = probe.inbox.get(timeout=0.05)
            except queue.Empty:
                item = None
            if isinstance(item, Message):
                reply = wire.TicketReply.decode(item.payload)
                dispenser = item.topic.split("/")[-2]
                key = (dispenser, reply.request_id)
                assert reply.ticket is not None, reply.error
                if key in answers:
                    assert answers[key] == reply.ticket, "a retried request got a different ticket"
                answers[key] = reply.ticket
                pending.pop(key, None)
                if len(answers) in kills_at:
                    kills_at.discard(len(answers))
                    controller.kill()
                    controller.start(wait=False)
            now = time.monotonic()
            for key, (sent, payload) in list(pending.items()):
                if now - sent > 1.0:                                    # a dispenser's retry: same request id
                    pending[key] = (now, payload)
                    probe.publish(topics.dispenser_request(key[0]), payload)
    assert len(answers) >= target, f"only {len(answers)} answers; log:\n{controller.log_text()[-3000:]}"
    assert controller.log_text().count("restored ledger") == 3
    controller.stop()

    ledger = Ledger(state / "ledger.sqlite3", hall_id="test-hall")
    rows = ledger.history()
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows)
    numbers = Counter((r["day"], r["number"]) for r in rows)
    assert max(numbers.values()) == 1, "a number was issued twice"
    per_request = Counter((r["dispenser"], r["request_id"]) for r in rows)
    assert max(per_request.values()) == 1, "a request got two tickets"
    for (dispenser, request_id), ticket in answers.items():
        row = by_id[ticket.id]
        assert (row["number"], row["dispenser"], row["request_id"]) == (ticket.number, dispenser, request_id)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_controller_idles_while_the_broker_is_down_and_recovers(
    broker: PrivateBroker, controller_at: ControllerProcess
) -> None:
    controller = controller_at
    controller.start()
    with _probe(broker) as probe:
        probe.request_ticket("d1", "A")
        probe.command("3", "next")  # broadcasts become due just as the broker goes away
    broker.stop()
    assert controller.proc is not None
    before = _cpu_s(controller.proc.pid)
    time.sleep(2.0)  # the window the CPU time is measured over: the behaviour under test, not a wait
    assert _cpu_s(controller.proc.pid) - before < 0.3, "the controller spins while the broker is down"
    broker.start()
    with _probe(broker) as probe:
        reply = probe.request_ticket("d1", "A", timeout_s=15)
        assert reply.ticket is not None
        assert reply.ticket.number == "A002"
    controller.stop()



def test_requests_held_by_an_older_versions_session_are_answered_once(
    broker: PrivateBroker, controller_at: ControllerProcess
) -> None:
    """An older controller received every device on its one connection ``controller``, subscribed to wildcards,
    with a persistent session. A request published while it was down waits in that session: the new version's
    own link resumes it, answers it, and drops those subscriptions, so later requests are answered once."""
    topics = Probe(broker).topics
    old = paho.Client(CallbackAPIVersion.VERSION2, client_id="controller", protocol=MQTTProtocolVersion.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    old.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    old.loop_start()
    suback = threading.Event()
    old.on_subscribe = lambda *_args: suback.set()
    subscribed = old.subscribe([(topics.all_dispenser_requests(), 1)])
    assert subscribed[0] == paho.MQTT_ERR_SUCCESS
    assert suback.wait(5), "no SUBACK"  # the session holds the subscription
    old.disconnect()
    old.loop_stop()
    with _probe(broker) as probe:
        waiting = wire.TicketRequest(request_id="sent-while-down", service="A").encode()
        probe.publish(topics.dispenser_request("d1"), waiting)
        controller_at.start()
        reply = wire.TicketReply.decode(probe.on(topics.dispenser_ticket("d1")).payload)
        assert reply.request_id == "sent-while-down" and reply.ticket is not None
        later = probe.request_ticket("d1", "A", request_id="after-the-upgrade")
        assert later.ticket is not None and later.ticket.number == "A002"
        with pytest.raises(AssertionError, match="no matching message"):  # no second answer to either request
            probe.on(topics.dispenser_ticket("d1"), timeout_s=0.5)
