"""The contract end to end: a real Mosquitto, the controller as a process, clients speaking contract v1."""

from __future__ import annotations

import json

from hallq import wire
from testbed.broker import PrivateBroker
from tests.support import ControllerProcess, Probe, wait_until


def _number(reply: wire.TicketReply) -> str:
    assert reply.ticket is not None, reply.error
    return reply.ticket.number


def _probe(broker: PrivateBroker) -> Probe:
    topics = Probe(broker).topics
    return Probe(broker, subscriptions=[
        topics.dispenser_ticket("d1"), topics.dispenser_ticket("d3"), topics.dispenser_ticket("intruder"),
        topics.counter_reply("1"), topics.counter_reply("2"), topics.counter_reply("9"), topics.calls(),
    ])


def test_ticket_request_is_answered_with_a_numbered_ticket(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _probe(broker) as probe:
        first = probe.request_ticket("d1", "A")
        second = probe.request_ticket("d1", "A")
    assert first.ok and first.ticket is not None and second.ticket is not None
    assert (first.ticket.number, second.ticket.number) == ("A001", "A002")
    assert second.ticket.ahead == 1
    assert second.ticket.issued_at.utcoffset() is not None
    assert second.ticket.issued_at.isoformat().endswith("+07:00")


def test_same_request_id_gets_the_original_ticket(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _probe(broker) as probe:
        first = probe.request_ticket("d1", "A", request_id="r-1")
        again = probe.request_ticket("d1", "A", request_id="r-1")
    assert first.ticket == again.ticket


def test_next_calls_the_ticket_and_broadcasts_the_call(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _probe(broker) as probe:
        issued = probe.request_ticket("d1", "A").ticket
        reply = probe.command("2", "next")
        call = wire.Call.decode(probe.on(probe.topics.calls()).payload)
    assert issued is not None and reply.ok and reply.ticket is not None
    assert reply.ticket.number == issued.number == call.number
    assert (call.counter, call.counter_name, call.seq, call.recall) == ("2", "Quầy 2", 1, False)


def test_board_and_counter_state_are_retained(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _probe(broker) as probe:
        probe.request_ticket("d1", "A")
        probe.command("1", "next")
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.board(), topics.counter_state("1")]) as late:
        board = wire.Board.decode(late.on(topics.board()).payload)
        state = wire.CounterState.decode(late.on(topics.counter_state("1")).payload)
    assert board.calls[0].number == "A001"
    assert {c.counter: c.number for c in board.counters}["1"] == "A001"
    assert state.ticket is not None and state.ticket.number == "A001" and state.status == "open"


def test_bad_input_gets_a_structured_error_and_changes_nothing(
    broker: PrivateBroker, controller: ControllerProcess
) -> None:
    with _probe(broker) as probe:
        t = probe.topics
        probe.publish(t.dispenser_request("d1"), b"\xff not json")
        assert wire.TicketReply.decode(probe.on(t.dispenser_ticket("d1")).payload).error_code == "bad_request"
        probe.publish(t.dispenser_request("d1"), json.dumps({"v": 1, "request_id": 5, "service": "A"}).encode())
        assert wire.TicketReply.decode(probe.on(t.dispenser_ticket("d1")).payload).error_code == "bad_request"
        probe.publish(t.dispenser_request("d1"), b"x" * 20_000)  # under the broker's limit, over the controller's
        assert wire.TicketReply.decode(probe.on(t.dispenser_ticket("d1")).payload).error_code == "bad_request"
        assert probe.request_ticket("d1", "Z").error_code == "unknown_service"
        assert probe.request_ticket("intruder", "A").error_code == "unknown_dispenser"
        assert probe.request_ticket("d3", "A").error_code == "not_allowed"
        assert probe.command("9", "next").error_code == "unknown_counter"
        assert probe.command("1", "complete").error_code == "not_serving"
        assert probe.command("1", "next").error_code == "queue_empty"
        # After all that, numbering starts where it would have: nothing was issued.
        assert _number(probe.request_ticket("d1", "A")) == "A001"
    assert controller.proc is not None and controller.proc.poll() is None


def test_broker_refuses_a_megabyte_payload_and_the_hall_goes_on(
    broker: PrivateBroker, controller: ControllerProcess
) -> None:
    with Probe(broker, client_id="d1") as rogue:
        rogue.link.publish(rogue.topics.dispenser_request("d1"), b"x" * 1_000_000, qos=0)
        wait_until(lambda: "oversize packet" in broker.log_path.read_text(), timeout_s=5,
                   what="the broker logs the oversize packet")
    with _probe(broker) as probe:
        assert _number(probe.request_ticket("d1", "A")) == "A001"
