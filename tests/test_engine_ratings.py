"""The engine's rating rules: one rating per served ticket (the first counts), only within the window after
``complete``, a counter's buttons only its own last served ticket, reasons only with a low rating; every refusal
changes nothing; ratings and tokens are journaled and replayed. Driven directly: no network, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hall_controller.engine import Decision, Engine
from hall_controller.engine.events import IssueTicket, RateTicket, TicketRated, from_records, to_record
from hall_controller.engine.spec import RatingSpec
from hallq.wire import ErrorCode
from tests.engine_builders import Driver, hall


def served(driver: Driver, counter: str = "1") -> str:
    """Issue a ticket, call it at ``counter`` and complete it; its id."""
    issued = driver.issue("A")
    assert issued.ticket_id is not None
    assert driver.counter(counter, "next").ok
    assert driver.counter(counter, "complete").ok
    return issued.ticket_id


def rate(driver: Driver, ticket: str, level: str = "satisfied", *, channel: str = "counter", source: str = "1",
         request_id: str = "q1", reasons: tuple[str, ...] = (), comment: str | None = None,
         after_s: float = 1.0) -> Decision:
    driver.now += timedelta(seconds=after_s)
    command = RateTicket(channel=channel, source=source, request_id=request_id,  # type: ignore[arg-type]
                         ticket=ticket, level=level, reasons=reasons, comment=comment)  # type: ignore[arg-type]
    decision = driver.engine.handle(command, now=driver.now)
    driver.events.extend(decision.events)
    return decision


def test_a_served_visit_is_rated_once_and_the_first_rating_counts() -> None:
    driver = Driver(Engine(hall()))
    ticket = served(driver)
    first = rate(driver, ticket, "very_satisfied")
    assert first.ok and len(first.events) == 1
    rated = first.events[0]
    assert isinstance(rated, TicketRated)
    assert (rated.number, rated.service, rated.counter, rated.level, rated.channel) == \
        (driver.engine.tickets[ticket].number, "A", "1", "very_satisfied", "counter")
    # The counter's reply shows the counter as it is.
    assert first.status == "open" and first.serving is None
    again = rate(driver, ticket, "dissatisfied", channel="phone", source="manager", request_id="p1")
    assert again.refusal is not None and again.refusal.code == ErrorCode.ALREADY_RATED and not again.events
    # The same request again (a retry) is answered, not stored twice.
    retry = rate(driver, ticket, "very_satisfied")
    assert retry.ok and retry.duplicate and not retry.events


def test_only_served_tickets_can_be_rated() -> None:
    driver = Driver(Engine(hall()))
    waiting = driver.issue("A").ticket_id
    assert waiting is not None
    refusal = rate(driver, waiting, channel="phone", source="manager").refusal
    assert refusal is not None and refusal.code == ErrorCode.NOT_RATEABLE and "waiting" in refusal.message
    assert driver.counter("1", "next").ok
    refusal = rate(driver, waiting, channel="phone", source="manager").refusal
    assert refusal is not None and refusal.code == ErrorCode.NOT_RATEABLE  # being served
    assert driver.counter("1", "no_show").ok
    for channel, source in (("phone", "manager"), ("counter", "1")):
        refusal = rate(driver, waiting, channel=channel, source=source).refusal
        assert refusal is not None and refusal.code == ErrorCode.NOT_RATEABLE, channel
    void = driver.issue("A").ticket_id
    assert void is not None and driver.printed(void, ok=False, reason="paper_out").ok
    refusal = rate(driver, void, channel="phone", source="manager").refusal
    assert refusal is not None and refusal.code == ErrorCode.NOT_RATEABLE and "void" in refusal.message
    refusal = rate(driver, "no-such-ticket", channel="phone", source="manager").refusal
    assert refusal is not None and refusal.code == ErrorCode.UNKNOWN_TICKET


def test_a_counters_buttons_rate_only_its_own_last_served_ticket() -> None:
    driver = Driver(Engine(hall()))
    earlier = served(driver, "1")
    latest = served(driver, "1")
    at_two = served(driver, "2")
    refusal = rate(driver, earlier).refusal
    assert refusal is not None and refusal.code == ErrorCode.NOT_RATEABLE
    assert driver.engine.tickets[latest].number in refusal.message  # it says which one it may rate
    refusal = rate(driver, at_two).refusal  # counter 1's buttons, counter 2's citizen
    assert refusal is not None and refusal.code == ErrorCode.NOT_RATEABLE
    refusal = rate(driver, latest, source="9").refusal
    assert refusal is not None and refusal.code == ErrorCode.UNKNOWN_COUNTER
    assert rate(driver, latest).ok
    # The phone may rate any served visit of its own ticket, the earlier one included.
    assert rate(driver, earlier, channel="phone", source="manager", request_id="p9").ok
    # "next" while serving completes the ticket as served: that one becomes the counter's last served.
    driver.issue("A")
    driver.issue("A")
    assert driver.counter("2", "next").ok
    called = driver.engine.counter_ticket("2")
    assert called is not None
    assert driver.counter("2", "next").ok
    assert rate(driver, called.id, source="2", request_id="q2").ok


def test_the_window_after_complete_closes() -> None:
    driver = Driver(Engine(replace(hall(), ratings=RatingSpec(window_s=600))))
    late = served(driver)
    refusal = rate(driver, late, channel="phone", source="manager", after_s=601).refusal
    assert refusal is not None and refusal.code == ErrorCode.RATING_CLOSED and "10 minutes" in refusal.message
    in_time = served(driver)
    assert rate(driver, in_time, channel="phone", source="manager", after_s=599).ok


def test_reasons_only_with_a_low_rating_and_only_the_configured_ones() -> None:
    driver = Driver(Engine(hall()))
    ticket = served(driver)
    refusal = rate(driver, ticket, "satisfied", channel="phone", source="manager", reasons=("attitude",)).refusal
    assert refusal is not None and refusal.code == ErrorCode.BAD_REQUEST
    refusal = rate(driver, ticket, "neutral", channel="phone", source="manager", reasons=("no_such",)).refusal
    assert refusal is not None and refusal.code == ErrorCode.BAD_REQUEST and "no_such" in refusal.message
    ok = rate(driver, ticket, "dissatisfied", channel="phone", source="manager", reasons=("waiting_time", "attitude"),
              comment="Chờ lâu quá")
    assert ok.ok
    rated = ok.events[0]
    assert isinstance(rated, TicketRated)
    assert rated.reasons == ["waiting_time", "attitude"] and rated.comment == "Chờ lâu quá"


def test_tokens_and_ratings_survive_a_restart() -> None:
    engine = Engine(hall())
    driver = Driver(engine)
    decision = engine.handle(IssueTicket("d1", "r-tok", "A", False, None, "t-tok", token="9f2c4e"), now=driver.now)
    driver.events.extend(decision.events)
    assert decision.ticket is not None and decision.ticket.token == "9f2c4e"
    assert driver.counter("1", "next").ok and driver.counter("1", "complete").ok
    assert rate(driver, "t-tok", "neutral", channel="phone", source="manager", reasons=("guidance",)).ok
    restored = Engine(hall())
    restored.replay(from_records([to_record(e) for e in driver.events]))  # type: ignore[arg-type]
    assert restored.fingerprint() == engine.fingerprint()
    assert restored.tickets["t-tok"].token == "9f2c4e"
    again = rate(Driver(restored, start=driver.now), "t-tok", "satisfied", channel="counter", source="1",
                 request_id="q7")
    assert again.refusal is not None and again.refusal.code == ErrorCode.ALREADY_RATED


def test_a_refusal_changes_nothing() -> None:
    engine = Engine(hall())
    driver = Driver(engine)
    ticket = served(driver)
    before = engine.fingerprint()
    for decision in (rate(driver, ticket, source="2"), rate(driver, "nope"),
                     rate(driver, ticket, "satisfied", reasons=("attitude",))):
        assert not decision.ok and not decision.events
    assert engine.fingerprint() == before


def test_a_rating_or_a_managers_action_on_an_untrusted_clock_never_starts_a_day() -> None:
    """A Pi that booted with a clock a day ahead refuses to call (untrusted time); a rating pressed or sent from a
    phone meanwhile must not roll the business day over either (that would expire every waiting citizen)."""
    from hall_controller.admission import Admission  # noqa: PLC0415 - the shell's part of this test
    from hall_controller.limits import Limits  # noqa: PLC0415
    from hall_controller.requests import Requests  # noqa: PLC0415
    from hallq import wire  # noqa: PLC0415
    from hallq.topics import ParsedTopic, Topics  # noqa: PLC0415

    engine = Engine(hall())
    driver = Driver(engine)
    ticket = served(driver)
    waiting = driver.issue("A").ticket_id
    topics = Topics(hall="h")
    requests = Requests(engine, topics, Admission(engine.spec, topics, Limits(), others_name="others", connections=1),
                        new_id=lambda: "x", clock=lambda: 0.0)
    day, later = engine.day, driver.now + timedelta(days=1)
    counter, manager = topics.parse(topics.counter_command("1")), topics.parse(topics.manager_command("manager"))
    assert counter is not None and manager is not None
    sent: list[tuple[ParsedTopic, wire.CounterCommand | wire.ManagerCommand]] = [
        (counter, wire.CounterCommand(request_id="z1", action="rate", ticket=ticket, rating="satisfied")),
        (manager, wire.ManagerCommand(request_id="p1", user="phone", action="rate_ticket", ticket=ticket,
                                      rating="neutral")),
        (manager, wire.ManagerCommand(request_id="p2", user="lan", action="pause_counter", counter="2"))]
    for parsed, command in sent:
        outcome = requests.handle(parsed, command.encode(), later, trusted=False)
        assert outcome is not None
        assert not any(e.kind in ("day_started", "ticket_expired") for e in outcome.decision.events), command
    assert engine.day == day and waiting is not None and engine.tickets[waiting].state == "waiting"
