"""Retained messages on the topics devices publish to the controller are never acted on.

The contract says requests, print reports and counter commands are not retained, but the broker's ACL cannot
stop a device from setting the retain flag: Mosquitto then hands the stored message to every later
subscriber, the controller included, after each reconnect and restart, on the next business day too. The
controller ignores such a message (``Message.retain``), says so once per device, clears it from the broker and
acknowledges it, while the same device's ordinary messages are served as always.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hallq import wire
from hallq.mqtt import Message
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, ControllerProcess, Probe


@pytest.fixture
def controller_at(broker: PrivateBroker, tmp_path: Path) -> Iterator[ControllerProcess]:
    """A controller the test starts and restarts itself; always stopped at the end."""
    process = ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=tmp_path / "state")
    yield process
    process.stop()


def _publish_retained(broker: PrivateBroker, topic: str, payload: bytes) -> None:
    """What a misconfigured device does: publish with the retain flag (the broker's ACL allows it)."""
    with Probe(broker) as device:
        assert device.link.publish_and_wait(topic, payload, retain=True, timeout_s=5)


def _retained_on(broker: PrivateBroker, topic: str) -> list[Message]:
    """What a new subscriber to ``topic`` is handed at once: the broker's retained message, if any. A marker
    published after subscribing arrives after anything the subscription was handed, so no waiting is guessed."""
    marker = f"test/marker/{uuid.uuid4().hex}"
    with Probe(broker, subscriptions=[topic, marker]) as late:
        late.publish(marker, b"end")
        found: list[Message] = []
        while True:
            item = late.inbox.get(timeout=5)
            if isinstance(item, Message) and item.topic == marker:
                return found
            if isinstance(item, Message) and item.retain:
                found.append(item)


def _drain(probe: Probe, seconds: float) -> list[Message]:
    """Every message the probe received so far and within ``seconds``."""
    messages = list(probe.received)
    probe.received.clear()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = probe.inbox.get(timeout=left)
        except queue.Empty:
            break
        if isinstance(item, Message):
            messages.append(item)
    return messages


def _watcher(broker: PrivateBroker) -> Probe:
    topics = Probe(broker).topics
    return Probe(broker, subscriptions=[topics.dispenser_ticket("d1"), topics.counter_reply("1"),
                                        topics.counter_reply("3"), topics.calls()])


def _retained_lines(controller: ControllerProcess) -> list[str]:
    return [line for line in controller.log_text().splitlines() if "ignored a retained message" in line]


def test_retained_request_and_next_published_before_the_controller_starts_are_not_acted_on(
    broker: PrivateBroker, controller_at: ControllerProcess
) -> None:
    topics = Probe(broker).topics
    stale_request = wire.TicketRequest(request_id="stale-request", service="A").encode()
    stale_next = wire.CounterCommand(request_id="stale-next", action="next").encode()
    _publish_retained(broker, topics.dispenser_request("d1"), stale_request)
    _publish_retained(broker, topics.counter_command("1"), stale_next)
    _publish_retained(broker, topics.dispenser_printed("d1"),
                      wire.PrintReport(ticket_id="0" * 32, ok=False, reason="paper_out").encode())
    with _watcher(broker) as watcher:
        controller_at.start()
        # A normal request still works, and gets the first number: the stale one was never issued.
        reply = watcher.request_ticket("d1", "A")
        assert reply.ticket is not None and reply.ticket.number == "A001"
        seen = _drain(watcher, 1.0)
    # No answer to the stale messages, and none to the controller's own clearing of them.
    answered = [wire.TicketReply.decode(m.payload).request_id for m in seen if m.topic == topics.dispenser_ticket("d1")]
    answered += [wire.CounterReply.decode(m.payload).request_id for m in seen if m.topic == topics.counter_reply("1")]
    assert answered == []
    assert not any(m.topic == topics.calls() for m in seen)
    state = wire.CounterState.decode(_retained_on(broker, topics.counter_state("1"))[0].payload)
    assert state.ticket is None
    # Cleared from the broker: no later subscriber (a restarted controller) is handed them again.
    assert _retained_on(broker, topics.dispenser_request("d1")) == []
    assert _retained_on(broker, topics.counter_command("1")) == []
    assert _retained_on(broker, topics.dispenser_printed("d1")) == []
    lines = _retained_lines(controller_at)
    assert len(lines) == 2, lines  # once per device
    assert any("WARNING" in line and "dispenser=d1" in line and f"topic={topics.dispenser_request('d1')}" in line
               for line in lines)
    assert any("WARNING" in line and "counter=1" in line and f"topic={topics.counter_command('1')}" in line
               for line in lines)
    assert all("retain" in line.split("topic=")[1] for line in lines)  # says what to fix on the device


def test_a_retained_command_is_acted_on_once_live_and_never_again_after_a_restart(
    broker: PrivateBroker, controller_at: ControllerProcess
) -> None:
    """The live message is served as any other (the broker delivers it without the flag); the stored copy the
    broker hands over at the next subscription is not. A refused command is not remembered, so without this
    a `next` pressed at an empty queue would call whoever waits when the controller restarts."""
    topics = Probe(broker).topics
    controller_at.start()
    with _watcher(broker) as watcher:
        watcher.link.publish(topics.counter_command("1"),
                             wire.CounterCommand(request_id="stale-next", action="next").encode(), retain=True)
        refused = wire.CounterReply.decode(watcher.expect(
            lambda m: m.topic == topics.counter_reply("1")
            and wire.CounterReply.decode(m.payload).request_id == "stale-next").payload)
        assert refused.error_code == "queue_empty"
        issued = watcher.request_ticket("d1", "A").ticket
    assert issued is not None and issued.number == "A001"
    assert controller_at.stop() == 0
    controller_at.start()
    with _watcher(broker) as watcher:
        # A001 still waits, not called at counter 1: counter 3 (service A) gets it.
        reply = watcher.command("3", "next")
        assert reply.ticket is not None and reply.ticket.number == "A001", reply
        assert wire.Call.decode(watcher.on(topics.calls()).payload).seq == 1
        seen = _drain(watcher, 0.5)
    assert not any(m.topic == topics.counter_reply("1") for m in seen)
    assert _retained_on(broker, topics.counter_command("1")) == []
    lines = _retained_lines(controller_at)
    assert len(lines) == 1 and "counter=1" in lines[0], lines
    # Cleared and acknowledged: a third start is handed nothing, and logs nothing about it.
    assert controller_at.stop() == 0
    controller_at.start()
    with Probe(broker, subscriptions=[topics.counter_reply("1")]) as desk:
        desk.command("1", "pause")  # counter 1's connection has handled everything before this: a retained copy too
    assert len(_retained_lines(controller_at)) == 1

