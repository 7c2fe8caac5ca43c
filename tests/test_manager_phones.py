"""The status page's model (manager/phones.py): pure, driven with fixed instants, no broker and no ledger file."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hall_controller.engine.events import (
    ClockStepped,
    CounterStatusChanged,
    DayStarted,
    Event,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketRated,
    TicketTransferred,
    TicketVoided,
)
from hall_controller.engine.spec import CounterSpec, DispenserSpec, HallSpec, RatingSpec, ServiceSpec
from hallq import wire
from manager.phones import OBSERVED_KEEP_S, PhoneModel, normal_token

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 12, 4, 8, 0, tzinfo=ZONE)
DAY = "2026-12-04"


def spec() -> HallSpec:
    return HallSpec(
        id="h1", name_vi="Sảnh", name_en="Hall",
        services=(ServiceSpec("A", "Hộ tịch", "Civil status", "A"), ServiceSpec("B", "Đất đai", "Land", "B")),
        counters=(CounterSpec("1", "Quầy 1", ("A", "B")), CounterSpec("2", "Quầy 2", ("A",)),
                  CounterSpec("3", "Quầy 3", ("B",), status_at_start="closed")),
        dispensers=(DispenserSpec("kiosk-1", "Máy 1"),), default_service_time_s=300,
        ratings=RatingSpec(window_s=30 * 60))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def token(n: int) -> str:
    return f"{n:024x}"


def day_started(service_times: dict[str, list[float]] | None = None) -> DayStarted:
    return DayStarted(at=at(-60), day=DAY, carry={"service_times": service_times or {}})


def issued(n: int, minutes: float, *, service: str = "A", priority: bool = False, order: int | None = None,
           with_token: bool = True) -> TicketIssued:
    return TicketIssued(at=at(minutes), ticket_id=f"t{n}", day=DAY, dispenser="kiosk-1", request_id=f"r{n}",
                        service=service, number=f"{'P' if priority else service}{n:03d}", sequence=service, value=n,
                        priority=priority, category="elderly" if priority else None,
                        order=n if order is None else order, ahead=0, estimated_wait_s=0,
                        token=token(n) if with_token else None)


def called(n: int, counter: str, minutes: float, *, recall: bool = False) -> TicketCalled:
    return TicketCalled(at=at(minutes), ticket_id=f"t{n}", counter=counter, seq=1, recall=recall)


def finished(n: int, counter: str, minutes: float, outcome: str = "served") -> TicketFinished:
    return TicketFinished(at=at(minutes), ticket_id=f"t{n}", counter=counter, outcome=outcome)  # type: ignore[arg-type]


def seeded(*events: Event, seen_s: float = 0.0) -> PhoneModel:
    model = PhoneModel(spec())
    model.seed([day_started(), *events], day=DAY, seen_s=seen_s)
    return model


def status(model: PhoneModel, n: int, minutes: float = 30) -> dict[str, Any]:
    found = model.status(token(n), at(minutes))
    assert found is not None
    return found


def call(n: int, counter: str, minutes: float, *, recall: bool = False) -> wire.Call:
    return wire.Call(seq=1, number=f"A{n:03d}", counter=counter, counter_name=f"Quầy {counter}", service="A",
                     priority=False, recall=recall, at=at(minutes), ticket_id=f"t{n}")


def counter_state(counter: str, minutes: float, serving: int | None = None, *, recalls: int = 0,
                  called_minutes: float = 0, status: str = "open") -> wire.CounterState:
    ticket = None if serving is None else wire.ServingTicket(
        id=f"t{serving}", number=f"A{serving:03d}", service="A", priority=False, called_at=at(called_minutes),
        recalls=recalls)
    return wire.CounterState(counter=counter, name=f"Quầy {counter}", status=status,  # type: ignore[arg-type]
                             services=("A",), ticket=ticket, waiting=(), at=at(minutes))


def board(*, priority_a: int, day: str = DAY, counter_1: str = "open") -> wire.Board:
    return wire.Board(hall="h1", hall_name_vi="Sảnh", hall_name_en="Hall", seq=0, calls=(),
                      counters=(wire.BoardCounter("1", "Quầy 1", counter_1, None, None),),  # type: ignore[arg-type]
                      services=(wire.BoardService("A", "Hộ tịch", "Civil status", 9, priority_a),),
                      at=at(30), business_day=day)


# --- tokens ----------------------------------------------------------------------------------------------------


def test_a_token_is_24_hexadecimal_digits_and_capitals_are_taken_as_small_letters() -> None:
    assert normal_token("5c0e9d41a7b23f68e1d4c2b9") == "5c0e9d41a7b23f68e1d4c2b9"
    assert normal_token("5C0E9D41A7B23F68E1D4C2B9") == "5c0e9d41a7b23f68e1d4c2b9"
    for bad in ("", "5c0e9d41a7b23f68e1d4c2b", "5c0e9d41a7b23f68e1d4c2b9a", "5c0e9d41a7b23f68e1d4c2bg",
                "5c0e9d41a7b23f68e1d4c2b\n", "../../etc/passwd/aaaaaaaa", "x" * 10_000):
        assert normal_token(bad) is None, bad


def test_a_token_not_in_todays_ledger_is_unknown() -> None:
    model = seeded(issued(1, 0), issued(2, 1, with_token=False))
    assert model.status(token(99), at(5)) is None
    assert model.ticket(token(99)) is None
    assert not model.knows(token(2))  # a ticket issued without a token (an older controller) has no page
    assert model.knows(token(1))
    ref = model.ticket(token(1))
    assert ref is not None and (ref.id, ref.number) == ("t1", "A001")


def test_a_new_business_day_forgets_yesterdays_tokens() -> None:
    model = seeded(issued(1, 0))
    model.seed([DayStarted(at=at(24 * 60), day="2026-12-05", carry={}), issued(2, 24 * 60 + 1)], day="2026-12-05",
               seen_s=10)
    assert model.status(token(1), at(24 * 60 + 2)) is None
    assert status(model, 2, 24 * 60 + 2)["state"] == "waiting"


# --- people ahead --------------------------------------------------------------------------------------------------


def test_a_regular_ticket_has_the_priority_lane_and_the_regular_tickets_before_it_ahead() -> None:
    model = seeded(issued(1, 0), issued(2, 1), issued(3, 2, priority=True), issued(4, 3), issued(5, 4),
                   issued(6, 5, service="B"))
    assert [status(model, n)["ahead"] for n in (1, 2, 4, 5)] == [1, 2, 3, 4]
    assert status(model, 6)["ahead"] == 0  # another service's line


def test_a_priority_ticket_has_only_the_priority_tickets_before_it_ahead() -> None:
    model = seeded(issued(1, 0), issued(2, 1, priority=True), issued(3, 2), issued(4, 3, priority=True))
    assert status(model, 2)["ahead"] == 0
    assert status(model, 4)["ahead"] == 1


def test_a_called_ticket_leaves_the_line_of_those_behind_it() -> None:
    model = seeded(issued(1, 0), issued(2, 1), issued(3, 2), called(1, "1", 5))
    assert status(model, 3)["ahead"] == 1
    model.on_call(call(2, "2", 6), seen_s=1)
    assert status(model, 3)["ahead"] == 0


def test_a_ticket_transferred_to_the_front_of_another_service_waits_first_there() -> None:
    model = seeded(issued(1, 0, service="B"), issued(2, 1, service="B"), issued(3, 2), called(3, "1", 5),
                   TicketTransferred(at=at(9), ticket_id="t3", counter="1", to_service="B", order=-1))
    moved = status(model, 3)
    assert (moved["state"], moved["service"], moved["ahead"]) == ("waiting", "B", 0)
    assert moved["moved_from"] == {"service": "A", "name_vi": "Hộ tịch", "name_en": "Civil status"}
    assert moved["counter"] is None
    assert [status(model, n)["ahead"] for n in (1, 2)] == [1, 2]


def test_a_ticket_transferred_at_its_original_position_goes_before_later_tickets() -> None:
    model = seeded(issued(1, 0), issued(2, 1, service="B"), issued(3, 2, service="B"), called(1, "1", 5),
                   TicketTransferred(at=at(9), ticket_id="t1", counter="1", to_service="B", order=1))
    assert [status(model, n)["ahead"] for n in (1, 2, 3)] == [0, 1, 2]


def test_a_call_of_the_visit_before_a_transfer_does_not_call_the_ticket_again() -> None:
    model = seeded(issued(1, 0), called(1, "1", 5), seen_s=0)
    model.on_call(call(1, "1", 5), seen_s=1)
    model.seed([day_started(), issued(1, 0), called(1, "1", 5),
                TicketTransferred(at=at(9), ticket_id="t1", counter="1", to_service="B", order=-1)],
               day=DAY, seen_s=2)
    assert status(model, 1)["state"] == "waiting"


# --- the estimated wait -----------------------------------------------------------------------------------------


def test_the_estimated_wait_is_ahead_times_the_mean_service_time_over_open_counters() -> None:
    model = PhoneModel(spec())
    # Yesterday's samples for A (carried by DayStarted) and one of today's: mean (200 + 400 + 600) / 3 = 400 s.
    model.seed([day_started({"A": [200.0, 400.0]}), issued(1, 0), called(1, "1", 0), finished(1, "1", 10),
                issued(2, 11), issued(3, 12), issued(4, 13)], day=DAY, seen_s=0)
    assert status(model, 4)["ahead"] == 2
    assert status(model, 4)["estimated_wait_s"] == 2 * 400 // 2  # counters 1 and 2 are open for A
    model.on_counter_state(counter_state("2", 14, status="paused"), seen_s=1)
    assert status(model, 4)["estimated_wait_s"] == 2 * 400


def test_without_samples_the_estimate_uses_the_halls_default_service_time() -> None:
    model = seeded(issued(1, 0, service="B"), issued(2, 1, service="B"),
                   CounterStatusChanged(at=at(2), counter="1", status="closed"))
    # Service B: counter 1 closed, counter 3 closed at start: no open counter, counted as one.
    assert status(model, 2)["estimated_wait_s"] == 300


def test_a_service_across_a_clock_step_gives_no_sample() -> None:
    model = seeded(issued(1, 0), called(1, "1", 0), ClockStepped(at=at(1), step_s=3600, source="synchronised"),
                   finished(1, "1", 70), issued(2, 71), issued(3, 72))
    assert status(model, 3)["estimated_wait_s"] == 300 // 2


def test_the_board_of_the_same_day_gives_the_priority_lane_and_the_counters_status() -> None:
    model = seeded(issued(1, 0))
    model.on_board(board(priority_a=3, counter_1="paused"), seen_s=1)
    assert status(model, 1)["ahead"] == 3
    assert status(model, 1)["estimated_wait_s"] == 3 * 300  # counter 2 alone is open for A
    model.on_board(board(priority_a=5, day="2026-12-03"), seen_s=2)
    assert status(model, 1)["ahead"] == 0  # a board of another day is not this day's line


# --- calls and ends ----------------------------------------------------------------------------------------------


def test_a_call_from_the_broker_shows_before_the_ledger_has_it_and_a_reading_keeps_it() -> None:
    model = seeded(issued(1, 0), seen_s=0)
    before = model.version
    model.on_call(call(1, "2", 5), seen_s=1)
    assert model.version > before
    shown = status(model, 1)
    assert (shown["state"], shown["counter"], shown["counter_name"], shown["recalls"]) == ("called", "2", "Quầy 2", 0)
    assert shown["ahead"] is None and shown["estimated_wait_s"] is None
    model.seed([day_started(), issued(1, 0)], day=DAY, seen_s=2)  # a reading made before the call was stored
    assert status(model, 1)["state"] == "called"


def test_news_is_forgotten_once_any_reading_must_hold_it() -> None:
    model = seeded(issued(1, 0), seen_s=0)
    model.on_call(call(1, "2", 5), seen_s=1)
    model.seed([day_started(), issued(1, 0)], day=DAY, seen_s=1 + OBSERVED_KEEP_S + 1)
    assert status(model, 1)["state"] == "waiting"


def test_a_recall_shows_as_called_again() -> None:
    model = seeded(issued(1, 0), called(1, "2", 5))
    model.on_call(call(1, "2", 7, recall=True), seen_s=1)
    assert status(model, 1)["recalls"] == 1
    model.on_counter_state(counter_state("2", 7.1, serving=1, recalls=2, called_minutes=5), seen_s=2)
    assert status(model, 1)["recalls"] == 2
    model.seed([day_started(), issued(1, 0), called(1, "2", 5), called(1, "2", 7, recall=True)], day=DAY, seen_s=3)
    assert status(model, 1)["recalls"] == 2  # the counter's state said so, and the reading is older


def test_a_counter_that_stops_serving_the_ticket_ends_it_until_the_ledger_says_how() -> None:
    model = seeded(issued(1, 0), called(1, "2", 5))
    assert model.on_counter_state(counter_state("2", 5, serving=1, called_minutes=5), seen_s=1) is None
    assert model.on_counter_state(counter_state("2", 9), seen_s=2) == token(1)
    ended = status(model, 1)
    assert (ended["state"], ended["counter"], ended["rating_open"], ended["final"]) == ("ended", "2", False, False)
    model.seed([day_started(), issued(1, 0), called(1, "2", 5)], day=DAY, seen_s=3)
    assert status(model, 1)["state"] == "ended"  # the reading predates the end
    model.seed([day_started(), issued(1, 0), called(1, "2", 5), finished(1, "2", 9, "no_show")], day=DAY, seen_s=4)
    assert status(model, 1)["state"] == "no_show"


def test_a_ticket_a_counter_transferred_waits_again_after_the_reading() -> None:
    model = seeded(issued(1, 0), called(1, "1", 5))
    model.on_counter_state(counter_state("1", 5, serving=1, called_minutes=5), seen_s=1)
    model.on_counter_state(counter_state("1", 8), seen_s=2)
    model.seed([day_started(), issued(1, 0), called(1, "1", 5),
                TicketTransferred(at=at(8), ticket_id="t1", counter="1", to_service="B", order=-1)], day=DAY, seen_s=3)
    assert (status(model, 1)["state"], status(model, 1)["service"]) == ("waiting", "B")


def test_a_counter_serving_the_ticket_calls_it_even_if_its_call_was_missed() -> None:
    model = seeded(issued(1, 0))
    model.on_counter_state(counter_state("1", 6, serving=1, called_minutes=5), seen_s=1)
    assert (status(model, 1)["state"], status(model, 1)["counter"]) == ("called", "1")


# --- after the visit -----------------------------------------------------------------------------------------------


def test_a_served_visit_can_be_rated_until_the_window_closes() -> None:
    model = seeded(issued(1, 0), called(1, "2", 5), finished(1, "2", 10))
    served = status(model, 1, minutes=20)
    assert (served["state"], served["rating_open"], served["rated"], served["final"]) == ("served", True, None, False)
    assert served["rating_until"] == "2026-12-04T08:40:00.000+07:00"
    assert served["rating_until_hm"] == "08:40"
    assert [r["id"] for r in served["reasons"]][:2] == ["waiting_time", "attitude"]
    assert status(model, 1, minutes=40)["rating_open"] is True  # the controller's rule: not after window_s
    closed = status(model, 1, minutes=40.1)
    assert (closed["rating_open"], closed["final"], closed["reasons"]) == (False, True, [])


def test_a_rated_visit_shows_its_level_and_is_final() -> None:
    model = seeded(issued(1, 0), called(1, "2", 5), finished(1, "2", 10),
                   TicketRated(at=at(11), ticket_id="t1", number="A001", service="A", counter="2", level="satisfied",
                               channel="counter", source="2", request_id="x"))
    rated = status(model, 1, minutes=12)
    assert (rated["rated"], rated["rating_open"], rated["final"]) == ("satisfied", False, True)


def test_a_rating_the_controller_accepted_shows_before_the_ledger_has_it() -> None:
    model = seeded(issued(1, 0), called(1, "2", 5), finished(1, "2", 10))
    model.on_rated("t1", "neutral", seen_s=1)
    assert status(model, 1, minutes=12)["rated"] == "neutral"
    model.seed([day_started(), issued(1, 0), called(1, "2", 5), finished(1, "2", 10)], day=DAY, seen_s=2)
    assert status(model, 1, minutes=12)["rated"] == "neutral"


def test_no_show_void_and_expired_tickets_are_final_without_a_rating() -> None:
    model = seeded(issued(1, 0), called(1, "2", 5), finished(1, "2", 10, "no_show"), issued(2, 1), issued(3, 2),
                   TicketVoided(at=at(3), ticket_id="t2", reason="left"),
                   TicketExpired(at=at(4), ticket_id="t3", reason="day_ended"))
    for n, state in ((1, "no_show"), (2, "void"), (3, "expired")):
        shown = status(model, n)
        assert (shown["state"], shown["final"], shown["rating_open"], shown["ahead"]) == (state, True, False, None)


def test_a_status_holds_no_personal_data_nor_the_token() -> None:
    model = seeded(issued(1, 0))
    shown = status(model, 1)
    assert token(1) not in repr(shown)
    assert set(shown) == {"found", "number", "service", "service_vi", "service_en", "priority", "state", "moved_from",
                          "ahead", "estimated_wait_s", "counter", "counter_name", "recalls", "rated", "rating_open",
                          "rating_until", "rating_until_hm", "reasons", "final", "live", "hall_vi", "hall_en"}


def test_the_broker_link_going_down_shows_on_every_page() -> None:
    model = seeded(issued(1, 0))
    model.on_link(up=True)
    assert status(model, 1)["live"] is True
    model.on_link(up=False)
    assert status(model, 1)["live"] is False


def test_five_hundred_pages_after_a_change_sort_the_lines_once() -> None:
    model = seeded(*(issued(n, n / 100, priority=n % 10 == 0) for n in range(1, 2001)))
    model.on_call(call(1, "1", 30), seen_s=1)
    started = time.perf_counter()
    statuses = [status(model, n) for n in range(2, 502)]
    elapsed_s = time.perf_counter() - started
    regular = [s["ahead"] for s in statuses if not s["priority"]]
    assert regular == sorted(regular) and regular[0] == 200  # the 200 priority tickets go first
    assert model._queues_version == model.version  # one sort served them all
    assert elapsed_s < 0.5, elapsed_s  # measured about 10 ms
