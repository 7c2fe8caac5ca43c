"""The hall manager's commands through a real broker and controller: acted on, stored, answered, announced."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from hall_controller.engine.events import Event, from_records
from hall_controller.ledger import LEDGER_FILE
from hallq import wire
from testbed.broker import PrivateBroker
from tests.support import ControllerProcess, Probe


def _journal(state_dir: Path) -> list[Event]:
    """What the running controller has stored (read-only: it keeps writing)."""
    db = sqlite3.connect(f"file:{state_dir / LEDGER_FILE}?mode=ro", uri=True)
    try:
        return from_records(db.execute("SELECT kind, at, data FROM journal ORDER BY seq").fetchall())
    finally:
        db.close()


def _manager(broker: PrivateBroker) -> Probe:
    topics = Probe(broker).topics
    return Probe(broker, subscriptions=[topics.manager_reply("manager"), topics.events(), topics.notice(),
                                        topics.dispenser_ticket("d1"), topics.counter_reply("1"),
                                        topics.counter_state("2")])


def _act(probe: Probe, action: str, **fields: str) -> wire.ManagerReply:
    rid = uuid.uuid4().hex
    probe.publish(probe.topics.manager_command("manager"),
                  wire.ManagerCommand(request_id=rid, user="lan", action=action, **fields).encode())  # type: ignore[arg-type]
    topic = probe.topics.manager_reply("manager")
    message = probe.expect(lambda m: m.topic == topic and wire.ManagerReply.decode(m.payload).request_id == rid)
    return wire.ManagerReply.decode(message.payload)


def test_a_paused_counter_shows_paused_and_the_action_is_announced_and_stored(
        broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _manager(broker) as probe:
        reply = _act(probe, "pause_counter", counter="2")
        assert reply.ok and reply.action == "pause_counter"
        state = probe.expect(lambda m: m.topic == probe.topics.counter_state("2")
                             and wire.CounterState.decode(m.payload).status == "paused")
        assert state is not None
        event = wire.HallEvent.decode(probe.on(probe.topics.events()).payload)
        assert (event.kind, event.user, event.counter) == ("manager_action", "lan", "2")
    acted = [e for e in _journal(controller.state_dir) if e.kind == "manager_acted"]
    assert [(e.user, e.action, e.counter) for e in acted] == [("lan", "pause_counter", "2")]  # type: ignore[attr-defined]


def test_a_refused_action_says_why_and_changes_nothing(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _manager(broker) as probe:
        probe.request_ticket("d1", "A")
        assert probe.command("1", "next").ok
        reply = _act(probe, "close_counter", counter="1")
        assert reply.error is not None and reply.error.code == wire.ErrorCode.COUNTER_BUSY
        assert "A001" in reply.error.message


def test_the_notice_is_retained_for_displays_until_cleared(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _manager(broker) as probe:
        assert _act(probe, "show_notice", text_vi="Hệ thống tạm dừng 10 phút").ok
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.notice()]) as late:  # a display that starts afterwards
        notice = wire.Notice.decode(late.on(topics.notice()).payload)
        assert (notice.text_vi, notice.by) == ("Hệ thống tạm dừng 10 phút", "lan")
    with _manager(broker) as probe:
        assert _act(probe, "clear_notice").ok
        assert probe.expect(lambda m: m.topic == topics.notice() and m.payload == b"") is not None


def test_ending_the_day_refuses_tickets_until_the_next_day(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _manager(broker) as probe:
        waiting = probe.request_ticket("d1", "A")
        assert _act(probe, "end_day").ok
        refused = probe.request_ticket("d1", "A")
        assert refused.error is not None and refused.error.code == wire.ErrorCode.DAY_ENDED
        ended = None
        while ended is None or ended.kind != "day_ended":
            ended = wire.HallEvent.decode(probe.on(probe.topics.events()).payload)
        assert (ended.user, ended.count) == ("lan", 1) and ended.day is not None
    assert waiting.ticket is not None
    expired = [e for e in _journal(controller.state_dir) if e.kind == "ticket_expired"]
    assert [e.reason for e in expired] == ["day_ended"]  # type: ignore[attr-defined]


def test_an_undecodable_command_is_answered_bad_request(broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _manager(broker) as probe:
        probe.publish(probe.topics.manager_command("manager"), b'{"v":1,"request_id":"r1","user":"lan","action":"fly"}')
        reply = wire.ManagerReply.decode(probe.on(probe.topics.manager_reply("manager")).payload)
        assert reply.request_id == "r1" and reply.error is not None and reply.error.code == "bad_request"


def test_a_stored_copy_a_device_left_is_reported_to_the_manager(broker: PrivateBroker,
                                                                controller: ControllerProcess) -> None:
    """A request published retained is acted on live (it arrives without the flag); the broker's stored copy,
    handed over after the controller's restart, is not, and the manager hears why."""
    with _manager(broker) as probe:
        probe.publish(probe.topics.dispenser_request("d2"),
                      wire.TicketRequest(request_id="kept", service="B").encode(), retain=True)
        controller.stop()
        controller.start()
        event = wire.HallEvent.decode(probe.on(probe.topics.events(), timeout_s=15).payload)
        assert (event.kind, event.code, event.dispenser) == ("refused", "retained", "d2")


def test_a_waiting_ticket_moved_by_the_manager_is_called_in_its_new_service(
        broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _manager(broker) as probe:
        ticket = probe.request_ticket("d1", "A").ticket
        assert ticket is not None
        assert _act(probe, "transfer_ticket", ticket=ticket.number, service="C").ok
        moved = wire.HallEvent.decode(probe.on(probe.topics.events()).payload)
        assert (moved.code, moved.number, moved.service) == ("transfer_ticket", ticket.number, "C")
        reply = probe.command("1", "next", service="C")  # counter 1 serves A, B and C
        assert reply.ticket is not None and (reply.ticket.number, reply.ticket.service) == (ticket.number, "C")


def test_a_ticket_carries_a_token_and_a_served_visit_is_rated_once_through_the_broker(
        broker: PrivateBroker, controller: ControllerProcess) -> None:
    with _manager(broker) as probe:
        first = probe.request_ticket("d1", "A").ticket
        second = probe.request_ticket("d1", "A").ticket
        assert first is not None and second is not None
        for ticket in (first, second):  # 96 random bits, unrelated to the id and the number
            assert ticket.token is not None and len(ticket.token) == 24 and int(ticket.token, 16) >= 0
            assert ticket.token not in (ticket.id, ticket.number)
        assert first.token != second.token
        assert probe.command("1", "next").ok and probe.command("1", "complete").ok
        # The phone's rating, as the manager passes it on.
        rid = uuid.uuid4().hex
        probe.publish(probe.topics.manager_command("manager"), wire.ManagerCommand(
            request_id=rid, user="phone", action="rate_ticket", ticket=first.id, rating="neutral",
            reasons=("waiting_time",), comment="Nên có thêm ghế").encode())
        reply = wire.ManagerReply.decode(probe.expect(
            lambda m: m.topic == probe.topics.manager_reply("manager")
            and wire.ManagerReply.decode(m.payload).request_id == rid).payload)
        assert reply.ok, reply.error
        # The counter's buttons come second: the first rating counts.
        rid = uuid.uuid4().hex
        probe.publish(probe.topics.counter_command("1"), wire.CounterCommand(
            request_id=rid, action="rate", ticket=first.id, rating="very_satisfied").encode())
        counter_reply = wire.CounterReply.decode(probe.expect(
            lambda m: m.topic == probe.topics.counter_reply("1")
            and wire.CounterReply.decode(m.payload).request_id == rid).payload)
        assert counter_reply.error is not None and counter_reply.error.code == wire.ErrorCode.ALREADY_RATED
        assert counter_reply.status == "open" and counter_reply.ticket is None
        # A waiting ticket cannot be rated.
        refused = _act(probe, "rate_ticket", ticket=second.id, rating="satisfied")
        assert refused.error is not None and refused.error.code == wire.ErrorCode.NOT_RATEABLE
    rated = [e for e in _journal(controller.state_dir) if e.kind == "ticket_rated"]
    assert [(e.ticket_id, e.level, e.channel, e.reasons, e.comment) for e in rated] == [  # type: ignore[attr-defined]
        (first.id, "neutral", "phone", ["waiting_time"], "Nên có thêm ghế")]
    db = sqlite3.connect(f"file:{controller.state_dir / LEDGER_FILE}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT ticket_id, number, service, counter, level, channel, reasons FROM ratings").fetchall()
    finally:
        db.close()
    assert rows == [(first.id, first.number, "A", "1", "neutral", "phone", "waiting_time")]
    log = controller.log_text()
    assert "rated ticket=A001 counter=1 level=neutral channel=phone" in log
    assert "Nên có thêm ghế" not in log and (first.token or "?") not in log  # the citizen's words are never logged
