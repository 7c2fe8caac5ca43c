"""The hall manager's actions in the engine: counters, waiting tickets, the day, the notice; each journaled."""

from __future__ import annotations

from datetime import timedelta

from hall_controller.engine import Decision, Engine
from hall_controller.engine.events import (
    DayEnded,
    ManagerAct,
    ManagerActed,
    TicketExpired,
    TicketTransferred,
    TicketVoided,
)
from hallq.wire import ErrorCode
from tests.engine_builders import Driver, hall


def _act(driver: Driver, action: str, *, request_id: str | None = None, **fields: str) -> Decision:
    driver.now += timedelta(seconds=1)
    decision = driver.engine.handle(ManagerAct(manager="manager", request_id=request_id or f"m-{driver.now}",
                                               user="lan", action=action, **fields),  # type: ignore[arg-type]
                                    now=driver.now)
    driver.events.extend(decision.events)
    return decision


def _replayed(driver: Driver) -> Engine:
    engine = Engine(driver.engine.spec)
    engine.replay(driver.events)  # type: ignore[arg-type]
    return engine


def test_the_manager_pauses_opens_and_closes_a_counter_and_each_action_names_who_did_it() -> None:
    d = Driver(Engine(hall()))
    paused = _act(d, "pause_counter", counter="2")
    assert paused.ok and d.engine.counters["2"].status == "paused"
    acted = [e for e in paused.events if isinstance(e, ManagerActed)]
    assert [(a.user, a.action, a.counter, a.manager) for a in acted] == [("lan", "pause_counter", "2", "manager")]
    statuses = [_act(d, action, counter="2").ok and d.engine.counters["2"].status
                for action in ("open_counter", "close_counter")]
    assert statuses == ["open", "closed"]
    assert _replayed(d).fingerprint() == d.engine.fingerprint()


def test_the_manager_cannot_close_a_counter_that_serves_someone_or_act_on_an_unknown_one() -> None:
    d = Driver(Engine(hall()))
    d.issue("A")
    d.counter("1", "next")
    busy = _act(d, "close_counter", counter="1")
    assert busy.refusal is not None and busy.refusal.code is ErrorCode.COUNTER_BUSY and not busy.events
    unknown = _act(d, "open_counter", counter="9")
    assert unknown.refusal is not None and unknown.refusal.code is ErrorCode.UNKNOWN_COUNTER


def test_voiding_a_waiting_ticket_takes_it_out_of_its_queue_and_keeps_its_place_under_the_cap_used() -> None:
    d = Driver(Engine(hall()))
    first, second = d.number(d.issue("A")), d.number(d.issue("A"))
    issued_before = d.engine.today.issued["A"]
    voided = _act(d, "void_ticket", ticket=first)
    assert voided.ok and [e.reason for e in voided.events if isinstance(e, TicketVoided)] == ["left"]
    assert d.engine.waiting_count("A", priority=False) == 1
    assert d.engine.today.issued["A"] == issued_before  # the citizen took a number: it counts against the cap
    d.counter("1", "next")
    assert d.called("1") == second
    assert _replayed(d).fingerprint() == d.engine.fingerprint()


def test_only_a_waiting_ticket_can_be_voided_or_moved() -> None:
    d = Driver(Engine(hall()))
    number = d.number(d.issue("A"))
    d.counter("1", "next")
    for action in ("void_ticket", "transfer_ticket"):
        refused = _act(d, action, ticket=number, service="B")
        assert refused.refusal is not None and refused.refusal.code is ErrorCode.NOT_ALLOWED
        assert "being served at counter 1" in refused.refusal.message
    missing = _act(d, "void_ticket", ticket="A999")
    assert missing.refusal is not None and missing.refusal.code is ErrorCode.UNKNOWN_TICKET


def test_a_waiting_ticket_moved_to_another_service_waits_there_at_the_front() -> None:
    d = Driver(Engine(hall()))
    d.issue("B")
    moved = d.number(d.issue("A"))
    decision = _act(d, "transfer_ticket", ticket=moved, service="B")
    assert decision.ok
    assert [(e.to_service, e.counter) for e in decision.events if isinstance(e, TicketTransferred)] == [("B", "")]
    assert d.engine.waiting_count("A", priority=False) == 0 and d.engine.waiting_count("B", priority=False) == 2
    d.counter("1", "next", service="B")
    assert d.called("1") == moved  # transfer_position "front"
    assert _replayed(d).fingerprint() == d.engine.fingerprint()
    same = _act(d, "transfer_ticket", ticket=d.number(d.issue("B")), service="B")
    assert same.refusal is not None and same.refusal.code is ErrorCode.NOT_ALLOWED


def test_ending_the_day_expires_the_waiting_keeps_the_served_and_refuses_new_tickets_until_the_next_day() -> None:
    d = Driver(Engine(hall()))
    served = d.number(d.issue("A"))
    waiting = {d.number(d.issue("A")), d.number(d.issue("B"))}
    d.counter("1", "next")
    ended = _act(d, "end_day")
    assert ended.ok
    expired = {d.engine.tickets[e.ticket_id].number for e in ended.events if isinstance(e, TicketExpired)}
    assert expired == waiting
    assert all(e.reason == "day_ended" for e in ended.events if isinstance(e, TicketExpired))
    assert [e.user for e in ended.events if isinstance(e, DayEnded)] == ["lan"]
    assert d.called("1") == served  # the citizen at the counter is finished there, not expired
    refused = d.issue("A")
    assert refused.refusal is not None and refused.refusal.code is ErrorCode.DAY_ENDED
    assert _replayed(d).fingerprint() == d.engine.fingerprint()
    d.now = d.now.replace(hour=3) + timedelta(days=1, hours=2)  # 05:00 the next day
    assert d.issue("A").ok


def test_a_retried_request_id_is_answered_without_acting_again() -> None:
    d = Driver(Engine(hall()))
    first = d.number(d.issue("A"))
    d.issue("A")
    assert _act(d, "void_ticket", ticket=first, request_id="same").ok
    again = _act(d, "void_ticket", ticket=first, request_id="same")
    assert again.ok and again.duplicate and not again.events


def test_the_notice_is_shown_until_cleared_and_outlives_the_business_day() -> None:
    d = Driver(Engine(hall()))
    shown = _act(d, "show_notice", text_vi="Hệ thống tạm dừng 10 phút", text_en="Paused for 10 minutes")
    assert shown.notice_changed and shown.notice is not None and shown.notice.text_vi == "Hệ thống tạm dừng 10 phút"
    assert shown.notice.by == "lan"
    d.now += timedelta(days=1)
    d.issue("A")  # the next business day starts: the notice stays
    assert d.engine.notice is not None and _replayed(d).notice == d.engine.notice
    cleared = _act(d, "clear_notice")
    assert cleared.notice_changed and cleared.notice is None and d.engine.notice is None
    assert not _act(d, "pause_counter", counter="1").notice_changed
