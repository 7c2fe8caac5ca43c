"""The engine under a wrong clock: order, the guard, estimates and the business day never depend on the wall
clock going forward, and untrusted time neither issues nor calls."""

from __future__ import annotations

from datetime import datetime, timedelta

from hall_controller.engine import CounterSpec, Engine
from hall_controller.engine.core import MAX_SAMPLE_S
from hall_controller.engine.events import ActAtCounter, ClockChanged, Event, IssueTicket, Tick
from tests.engine_builders import MORNING, ZONE, Driver, hall

HOUR = timedelta(hours=1)


def test_a_clock_stepped_back_mid_service_gives_no_negative_sample_nor_estimate() -> None:
    driver = Driver(Engine(hall()))
    driver.issue("A")
    driver.counter("3", "next")
    driver.now -= HOUR  # the wall clock stepped back 1 h while A001 was served
    driver.counter("3", "complete")
    assert list(driver.engine.service_times["A"]) == []
    driver.issue("A")
    ticket = driver.engine.tickets[driver.issue("A").ticket_id or ""]
    assert 0 <= ticket.estimated_wait_s <= 3600


def test_restored_service_times_are_bounded() -> None:
    engine = Engine(hall())
    driver = Driver(engine)
    driver.issue("A")
    engine.service_times["A"].extend([-598_954_700.0, 600_000_000.0, 240.0])  # as an older ledger may carry
    driver.now += timedelta(days=1)  # the next business day restores them from the day's carry
    driver.issue("A")
    assert list(engine.service_times["A"]) == [240.0]
    assert all(0 <= s <= MAX_SAMPLE_S for s in engine.service_times["A"])


def test_a_service_across_an_accepted_clock_step_gives_no_sample() -> None:
    driver = Driver(Engine(hall()))
    driver.issue("A")
    driver.counter("3", "next")
    driver.engine.handle(ClockChanged(step_s=900.0, source="synchronised"), now=driver.now)
    driver.counter("3", "complete", after_s=60)
    assert list(driver.engine.service_times["A"]) == []
    driver.issue("A")
    driver.counter("3", "next")
    driver.counter("3", "complete", after_s=120)
    assert list(driver.engine.service_times["A"]) == [120.0]


def test_the_guard_cannot_be_jumped_by_a_ticket_issued_after_a_step_back() -> None:
    guarded = CounterSpec(id="1", name="1", services=("A",), policy="priority_first", max_wait_s=600)
    driver = Driver(Engine(hall(counters=(guarded,))))
    first, second = driver.number(driver.issue("A")), driver.number(driver.issue("A"))
    driver.now -= HOUR
    third = driver.number(driver.issue("A"))
    driver.now += HOUR + timedelta(minutes=15)  # everyone waited past the guard's 10 minutes
    assert [driver.number(driver.counter("1", "next")) for _ in range(3)] == [first, second, third]


def test_a_ticket_stamped_1970_does_not_go_first() -> None:
    guarded = CounterSpec(id="1", name="1", services=("A",), policy="priority_first", max_wait_s=600)
    driver = Driver(Engine(hall(counters=(guarded,))))
    numbers = [driver.number(driver.issue("A")) for _ in range(3)]
    driver.now, morning = datetime(1970, 1, 1, 7, 0, tzinfo=ZONE), driver.now
    late = driver.engine.handle(IssueTicket(dispenser="d1", request_id="boot", service="A", priority=False,
                                            category=None, ticket_id="t1970"), now=driver.now)
    driver.now = morning + timedelta(minutes=20)
    called = [driver.number(driver.counter("1", "next")) for _ in range(4)]
    assert called == [*numbers, driver.engine.tickets[late.ticket_id or ""].number]


def test_untrusted_time_neither_issues_nor_calls_nor_rolls_the_day() -> None:
    engine = Engine(hall())
    driver = Driver(engine)
    driver.issue("A")
    day = engine.day
    tomorrow = MORNING + timedelta(days=1)
    refused = engine.handle(IssueTicket(dispenser="d1", request_id="x", service="A", priority=False, category=None,
                                        ticket_id="tx"), now=tomorrow, trusted=False)
    assert refused.refusal is not None and refused.refusal.code == "clock_unsynchronised" and not refused.events
    nxt = engine.handle(ActAtCounter(counter="3", request_id="n1", action="next"), now=tomorrow, trusted=False)
    assert nxt.refusal is not None and nxt.refusal.code == "clock_unsynchronised"
    assert engine.handle(Tick(), now=tomorrow, trusted=False).events == ()
    assert engine.day == day
    pause = engine.handle(ActAtCounter(counter="3", request_id="p1", action="pause"), now=tomorrow, trusted=False)
    assert pause.ok  # what needs no clock still works


def test_a_retried_request_is_answered_again_on_untrusted_time() -> None:
    engine = Engine(hall())
    request = IssueTicket(dispenser="d1", request_id="r1", service="A", priority=False, category=None, ticket_id="t1")
    first = engine.handle(request, now=MORNING)
    again = engine.handle(request, now=MORNING + timedelta(seconds=5), trusted=False)
    assert again.duplicate and again.ticket_id == first.ticket_id


def test_the_business_day_never_moves_back_unless_an_operator_confirms() -> None:
    engine = Engine(hall())
    driver = Driver(engine, start=MORNING + timedelta(days=365))  # a glitch put the day a year ahead
    driver.issue("A")
    future_day = engine.day
    assert engine.handle(Tick(), now=MORNING).events == () and engine.day == future_day
    confirmed = engine.handle(Tick(confirmed=True), now=MORNING)
    assert engine.day == MORNING.date().isoformat() and confirmed.events
    # Only the label moved: what was handed out meanwhile stays open, and numbering goes on after it.
    assert [t.state.value for t in engine.tickets.values()] == ["waiting"]
    after = engine.handle(IssueTicket(dispenser="d1", request_id="after", service="A", priority=False,
                                      category=None, ticket_id="t-after"), now=MORNING + timedelta(seconds=5))
    assert engine.tickets["t-after"].number == "A002"
    replayed = Engine(hall())
    replayed.replay([e for e in [*driver.events, *confirmed.events, *after.events] if isinstance(e, Event)])
    assert replayed.fingerprint() == engine.fingerprint()
