"""The queue engine, one behaviour per test, driven directly: no network, no clock, no sleeps."""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

import pytest

from hall_controller.engine import CounterSpec, Engine, ServiceSpec
from hall_controller.engine.events import ActAtCounter, IssueTicket, TicketCalled, TicketExpired
from hall_controller.engine.lifecycle import IllegalMove, Move, TicketState, next_state
from hallq.errors import InvariantError
from tests.engine_builders import MORNING, Driver, hall


def driver(**kwargs: object) -> Driver:
    return Driver(Engine(hall(**kwargs)))  # type: ignore[arg-type]


# --- numbering -----------------------------------------------------------------------------------------------

def test_numbers_are_per_service_zero_padded_and_sequential() -> None:
    d = driver()
    assert [d.number(d.issue("A")), d.number(d.issue("A")), d.number(d.issue("B"))] == ["A001", "A002", "B001"]


def test_priority_ticket_shares_the_sequence_when_the_service_has_no_priority_prefix() -> None:
    d = driver()
    d.issue("A")
    decision = d.issue("A", priority=True, category="pregnant")
    ticket = d.engine.tickets[decision.ticket_id or ""]
    assert (ticket.number, ticket.priority, ticket.category) == ("A002", True, "pregnant")


def test_priority_ticket_has_its_own_sequence_with_a_priority_prefix() -> None:
    d = driver()
    d.issue("B")
    assert d.number(d.issue("B", priority=True)) == "UB001"
    assert d.number(d.issue("B")) == "B002"


def test_numbering_restarts_at_the_business_day_start_and_old_tickets_expire() -> None:
    d = driver()
    old = d.issue("A")
    d.issue("A")
    d.now = MORNING.replace(hour=3, minute=59) + timedelta(days=1)  # still yesterday's business day
    assert d.number(d.issue("A")) == "A003"
    d.now = MORNING.replace(hour=4, minute=0) + timedelta(days=1)
    fresh = d.issue("A")
    assert d.number(fresh) == "A001"
    assert sum(isinstance(e, TicketExpired) for e in fresh.events) == 3
    assert old.ticket_id not in d.engine.tickets  # kept in the ledger's history, not in memory
    assert d.engine.waiting_count("A", priority=False) == 1


def test_a_tick_alone_rolls_the_day_over() -> None:
    d = driver()
    d.issue("A")
    decision = d.engine.handle(IssueTicket("d1", "x", "Z", False, None, "tz"), now=MORNING + timedelta(days=1))
    assert decision.refusal is not None
    assert decision.refusal.code == "unknown_service"
    assert any(isinstance(e, TicketExpired) for e in decision.events)


def test_wrapping_skips_numbers_still_open_and_reuses_finished_ones() -> None:
    small = ServiceSpec(id="A", name_vi="A", name_en="A", prefix="A", first_number=1, last_number=3)
    d = driver(services=(small,), counters=(CounterSpec(id="1", name="1", services=("A",)),),
               dispensers=None)
    for _ in range(3):
        d.issue("A")
    assert d.issue("A").refusal.code == "numbers_exhausted"  # type: ignore[union-attr]
    d.counter("1", "next")      # A1 called: still open
    d.counter("1", "next")      # A1 served, A2 called
    assert d.number(d.issue("A")) == "A1"


def test_without_wrap_the_range_is_the_days_limit() -> None:
    small = ServiceSpec(id="A", name_vi="A", name_en="A", prefix="A", first_number=1, last_number=2, wrap=False)
    d = driver(services=(small,), counters=(CounterSpec(id="1", name="1", services=("A",)),))
    d.issue("A")
    d.issue("A")
    d.counter("1", "next")
    d.counter("1", "complete")
    assert d.issue("A").refusal.code == "numbers_exhausted"  # type: ignore[union-attr]


def test_daily_cap_refuses_tickets_beyond_it() -> None:
    capped = ServiceSpec(id="A", name_vi="A", name_en="A", prefix="A", daily_cap=2)
    d = driver(services=(capped,), counters=(CounterSpec(id="1", name="1", services=("A",)),))
    d.issue("A")
    d.issue("A")
    assert d.issue("A").refusal.code == "daily_cap_reached"  # type: ignore[union-attr]


def test_service_outside_its_hours_refuses_tickets() -> None:
    hours = ServiceSpec(id="A", name_vi="A", name_en="A", prefix="A", hours=((time(7, 30), time(11, 30)),))
    d = driver(services=(hours,), counters=(CounterSpec(id="1", name="1", services=("A",)),))
    d.now = MORNING.replace(hour=12)
    refusal = d.issue("A").refusal
    assert refusal is not None
    assert refusal.code == "service_closed"
    assert "07:30-11:30" in refusal.message
    d.now = MORNING.replace(hour=9)
    assert d.issue("A").ok


def test_a_dispenser_limited_to_some_services_cannot_issue_others() -> None:
    d = driver()
    assert d.issue("A", dispenser="d2").refusal.code == "not_allowed"  # type: ignore[union-attr]
    assert d.issue("B", dispenser="d2").ok


def test_unknown_dispenser_and_service_are_refused() -> None:
    d = driver()
    assert d.issue("A", dispenser="ghost").refusal.code == "unknown_dispenser"  # type: ignore[union-attr]
    assert d.issue("Q").refusal.code == "unknown_service"  # type: ignore[union-attr]


def test_same_request_id_from_the_same_dispenser_gets_the_original_ticket() -> None:
    d = driver()
    first = d.issue("A", request_id="same")
    again = d.issue("A", request_id="same")
    assert again.duplicate
    assert again.ticket_id == first.ticket_id
    assert again.events == ()
    assert d.issue("A", request_id="same", dispenser="d2").refusal.code == "not_allowed"  # type: ignore[union-attr]


def test_ahead_and_estimate_use_recent_service_times_and_open_counters() -> None:
    d = driver(default_service_time_s=300)
    d.issue("A")
    assert d.engine.tickets[d.issue("A").ticket_id or ""].estimated_wait_s == round(1 * 300 / 3)
    d.counter("3", "next")
    d.counter("3", "complete", after_s=120)  # one real sample: 120 s
    decision = d.issue("A")
    ticket = d.engine.tickets[decision.ticket_id or ""]
    assert ticket.ahead == 1
    assert ticket.estimated_wait_s == round(1 * 120 / 3)


def test_a_priority_tickets_ahead_counts_only_the_priority_lane() -> None:
    d = driver()
    d.issue("A")
    d.issue("A", priority=True)
    assert d.engine.tickets[d.issue("A", priority=True).ticket_id or ""].ahead == 1
    assert d.engine.tickets[d.issue("A").ticket_id or ""].ahead == 3


# --- calling ---------------------------------------------------------------------------------------------------

def test_priority_first_counter_calls_the_priority_lane_before_older_regular_tickets() -> None:
    d = driver()
    d.issue("A")
    d.issue("A", priority=True)
    d.counter("1", "next")
    assert d.called("1") == "A002"


def test_within_a_lane_the_oldest_ticket_across_the_counters_services_goes_first() -> None:
    d = driver()
    d.issue("B")
    d.issue("A")
    d.counter("2", "next")
    assert d.called("2") == "B001"


def test_interleave_calls_one_priority_after_n_regular_calls() -> None:
    d = driver()
    for _ in range(4):
        d.issue("A")
    d.issue("A", priority=True)  # A005, priority
    calls = []
    for _ in range(4):
        d.counter("2", "next")
        calls.append(d.called("2"))
    assert calls == ["A001", "A002", "A005", "A003"]


def test_interleave_calls_priority_when_no_regular_ticket_waits() -> None:
    d = driver()
    d.issue("A", priority=True)
    d.counter("2", "next")
    assert d.called("2") == "A001"


def test_max_wait_guard_calls_the_overdue_ticket_first_whatever_its_lane() -> None:
    guarded = CounterSpec(id="1", name="1", services=("A",), policy="priority_first", max_wait_s=600)
    d = driver(counters=(guarded,))
    d.issue("A")                                   # regular, will be overdue
    d.issue("A", priority=True, after_s=10)
    d.counter("1", "next", after_s=60)
    assert d.called("1") == "A002"                 # not overdue yet: priority first
    d.issue("A", priority=True)
    d.counter("1", "next", after_s=600)
    assert d.called("1") == "A001"                 # overdue now: goes before the waiting priority ticket


def test_next_while_serving_completes_the_current_ticket() -> None:
    d = driver()
    first = d.issue("A")
    d.issue("A")
    d.counter("3", "next")
    d.counter("3", "next")
    assert d.engine.tickets[first.ticket_id or ""].state is TicketState.SERVED
    assert d.called("3") == "A002"


def test_next_with_an_empty_queue_is_refused_and_keeps_the_current_ticket() -> None:
    d = driver()
    d.issue("A")
    d.counter("3", "next")
    before = d.engine.fingerprint()
    decision = d.counter("3", "next")
    assert decision.refusal is not None
    assert decision.refusal.code == "queue_empty"
    assert decision.events == ()
    assert d.engine.fingerprint() == before
    assert d.called("3") == "A001"


def test_a_counter_never_gets_a_service_it_does_not_serve() -> None:
    d = driver()
    d.issue("B")
    assert d.counter("3", "next").refusal.code == "queue_empty"  # type: ignore[union-attr]
    assert d.counter("3", "next", service="B").refusal.code == "not_allowed"  # type: ignore[union-attr]


def test_next_restricted_to_one_service() -> None:
    d = driver()
    d.issue("A")
    d.issue("B")
    d.counter("2", "next", service="B")
    assert d.called("2") == "B001"


def test_recall_announces_again_with_a_new_sequence_number() -> None:
    d = driver()
    d.issue("A")
    d.counter("3", "next")
    recall = d.counter("3", "recall")
    called = [e for e in recall.events if isinstance(e, TicketCalled)]
    assert [(e.recall, e.seq) for e in called] == [(True, 2)]
    ticket = d.engine.counter_ticket("3")
    assert ticket is not None
    assert (ticket.state, ticket.recalls) == (TicketState.CALLED, 1)


@pytest.mark.parametrize(("action", "state"), [("complete", TicketState.SERVED), ("no_show", TicketState.NO_SHOW)])
def test_finishing_frees_the_counter(action: str, state: TicketState) -> None:
    d = driver()
    decision = d.issue("A")
    d.counter("3", "next")
    d.counter("3", action)
    assert d.engine.tickets[decision.ticket_id or ""].state is state
    assert d.called("3") is None


@pytest.mark.parametrize("action", ["recall", "complete", "no_show", "transfer"])
def test_actions_on_the_current_ticket_need_one(action: str) -> None:
    d = driver()
    refusal = d.counter("3", action, service="B").refusal
    assert refusal is not None
    assert (refusal.code, refusal.message) == ("not_serving", f"cannot {action}: counter 3 is serving nothing")


def test_transfer_to_the_front_keeps_the_number_and_goes_first() -> None:
    d = driver()
    d.issue("A")
    d.issue("B")
    d.counter("3", "next")
    d.counter("3", "transfer", service="B")
    d.counter("2", "next")
    assert d.called("2") == "A001"
    ticket = d.engine.counter_ticket("2")
    assert ticket is not None
    assert ticket.service == "B"


def test_transfer_by_original_time_queues_by_issue_order() -> None:
    services = (ServiceSpec(id="A", name_vi="A", name_en="A", prefix="A"),
                ServiceSpec(id="B", name_vi="B", name_en="B", prefix="B", transfer_position="original"))
    d = driver(services=services, counters=(CounterSpec(id="1", name="1", services=("A",)),
                                            CounterSpec(id="2", name="2", services=("B",))),
               dispensers=None)
    d.issue("B")
    d.issue("A")
    d.issue("B")
    d.counter("1", "next")
    d.counter("1", "transfer", service="B")
    calls = []
    for _ in range(3):
        d.counter("2", "next")
        calls.append(d.called("2"))
    assert calls == ["B001", "A001", "B002"]


def test_transfer_to_unknown_or_same_service_is_refused() -> None:
    d = driver()
    d.issue("A")
    d.counter("3", "next")
    assert d.counter("3", "transfer", service="Z").refusal.code == "unknown_service"  # type: ignore[union-attr]
    assert d.counter("3", "transfer", service="A").refusal.code == "not_allowed"  # type: ignore[union-attr]


def test_call_a_specific_waiting_number() -> None:
    d = driver()
    d.issue("A")
    d.issue("A")
    d.counter("3", "call", ticket="A002")
    assert d.called("3") == "A002"


def test_call_refuses_a_number_not_waiting_or_not_served_here() -> None:
    d = driver()
    d.issue("A")
    d.issue("B")
    d.counter("3", "next")
    assert d.counter("2", "call", ticket="A001").refusal.message == "cannot call: A001 is called at counter 3"  # type: ignore[union-attr]
    assert d.counter("3", "call", ticket="B001").refusal.code == "not_allowed"  # type: ignore[union-attr]
    assert d.counter("3", "call", ticket="A404").refusal.code == "unknown_ticket"  # type: ignore[union-attr]


# --- counters' status --------------------------------------------------------------------------------------------

def test_closed_counter_refuses_calls_until_opened() -> None:
    d = driver()
    d.issue("A")
    d.counter("3", "close")
    assert d.counter("3", "next").refusal.code == "counter_closed"  # type: ignore[union-attr]
    d.counter("3", "open")
    assert d.counter("3", "next").ok


def test_closing_while_serving_is_refused() -> None:
    d = driver()
    d.issue("A")
    d.counter("3", "next")
    assert d.counter("3", "close").refusal.code == "counter_busy"  # type: ignore[union-attr]


def test_next_on_a_paused_counter_reopens_it() -> None:
    d = driver()
    d.issue("A")
    d.counter("3", "pause")
    assert d.engine.counters["3"].status == "paused"
    d.counter("3", "next")
    assert (d.engine.counters["3"].status, d.called("3")) == ("open", "A001")


def test_paused_and_closed_counters_do_not_count_for_the_estimate() -> None:
    d = driver()
    d.issue("A")
    d.counter("1", "close")
    d.counter("2", "pause")
    assert d.engine.tickets[d.issue("A").ticket_id or ""].estimated_wait_s == 300


def test_a_retried_counter_command_is_not_run_twice() -> None:
    d = driver()
    d.issue("A")
    d.issue("A")
    d.counter("3", "next", request_id="k1")
    again = d.counter("3", "next", request_id="k1")
    assert again.duplicate
    assert again.events == ()
    assert d.called("3") == "A001"


def test_unknown_counter_is_refused() -> None:
    assert driver().counter("99", "next").refusal.code == "unknown_counter"  # type: ignore[union-attr]


# --- two consoles on one counter: what the sender saw -----------------------------------------------------------

def _serving(d: Driver, counter: str) -> str:
    """The id of the ticket the counter serves, as a console that saw it sends it (``""``: nothing)."""
    ticket = d.engine.counter_ticket(counter)
    return "" if ticket is None else ticket.id


def test_next_from_a_console_that_saw_an_earlier_ticket_is_a_conflict_and_changes_nothing() -> None:
    d = driver()
    for _ in range(3):
        d.issue("A")
    d.counter("3", "next")
    seen = _serving(d, "3")                                 # both consoles show A001
    assert d.counter("3", "next", serving=seen).ok          # the first console: A001 served, A002 called
    before = d.engine.fingerprint()
    late = d.counter("3", "next", serving=seen)             # the second, at the same moment
    assert late.refusal is not None and late.events == ()
    assert (late.refusal.code, late.refusal.message) == (
        "conflict", "counter 3 is serving A002, not A001: another console acted; refresh")
    assert d.engine.fingerprint() == before
    assert d.engine.counter_ticket("3").state is TicketState.CALLED  # type: ignore[union-attr]


def test_a_console_that_saw_the_counter_idle_cannot_finish_a_ticket_called_since() -> None:
    d = driver()
    d.issue("A")
    d.issue("A")
    assert d.counter("3", "next", serving="").ok
    refusal = d.counter("3", "next", serving="").refusal
    assert refusal is not None
    assert refusal.message == "counter 3 is serving A001, not nothing: another console acted; refresh"
    assert d.called("3") == "A001"


@pytest.mark.parametrize(("action", "extra"), [("next", {}), ("call", {"ticket": "A003"}), ("recall", {}),
                                               ("complete", {}), ("no_show", {}), ("transfer", {"service": "B"})])
def test_every_action_on_a_ticket_checks_what_the_sender_saw(action: str, extra: dict[str, str]) -> None:
    d = driver()
    for _ in range(3):
        d.issue("A")
    d.counter("1", "next")
    seen = _serving(d, "1")
    d.counter("1", "next")
    before = d.engine.fingerprint()
    refusal = d.counter("1", action, serving=seen, **extra).refusal  # type: ignore[arg-type]
    assert refusal is not None and refusal.code == "conflict"
    assert d.engine.fingerprint() == before
    assert d.counter("1", action, serving=_serving(d, "1"), **extra).ok  # type: ignore[arg-type]


def test_a_conflict_names_an_unknown_ticket_without_repeating_the_senders_text() -> None:
    d = driver()
    d.issue("A")
    d.counter("3", "next")
    refusal = d.counter("3", "complete", serving="yesterday\nforged").refusal
    assert refusal is not None and refusal.code == "conflict"
    assert refusal.message == "counter 3 is serving A001, not the ticket it saw: another console acted; refresh"


@pytest.mark.parametrize("action", ["open", "pause", "close"])
def test_the_counters_status_actions_do_not_check_what_the_sender_saw(action: str) -> None:
    d = driver()
    assert d.counter("3", action, serving="gone").ok


def test_what_the_sender_saw_may_be_named_by_number() -> None:
    d = driver()
    d.issue("A")
    d.issue("A")
    d.counter("3", "next")
    assert d.counter("3", "next", serving="A002").refusal.code == "conflict"  # type: ignore[union-attr]
    assert d.counter("3", "next", serving="A001").ok


def test_a_command_that_says_nothing_of_what_it_saw_is_not_checked() -> None:
    """Senders older than the ``serving`` field keep working as before, with no protection."""
    d = driver()
    for _ in range(3):
        d.issue("A")
    d.counter("3", "next")
    d.counter("3", "next")
    assert d.counter("3", "next", serving=None).ok
    assert d.called("3") == "A003"


def test_a_retried_command_gets_its_answer_though_what_it_saw_is_stale_now() -> None:
    """The journal keeps accepted commands, not their ``serving``: none is needed, since a retried request id is
    answered from the journal before anything is checked, also after a restart."""
    d = driver()
    for _ in range(3):
        d.issue("A")
    d.counter("3", "next")
    seen = _serving(d, "3")
    first = d.counter("3", "next", serving=seen, request_id="k1")
    again = d.counter("3", "next", serving=seen, request_id="k1")  # stale by now: it is itself what moved on
    assert again.duplicate and again.ticket_id == first.ticket_id and again.events == ()
    restarted = Engine(replace(d.engine.spec))
    restarted.replay(d.events)  # type: ignore[arg-type]
    replayed = restarted.handle(ActAtCounter(counter="3", request_id="k1", action="next", serving=seen),
                                now=d.now)
    assert replayed.duplicate and replayed.ticket_id == first.ticket_id


# --- printing -------------------------------------------------------------------------------------------------

def test_a_failed_print_voids_the_ticket_and_it_is_never_called() -> None:
    d = driver()
    voided = d.issue("A")
    d.issue("A")
    d.printed(voided.ticket_id or "", ok=False, reason="paper_out")
    d.counter("3", "next")
    assert d.called("3") == "A002"
    assert d.counter("3", "call", ticket="A001").refusal.code == "unknown_ticket"  # type: ignore[union-attr]
    assert d.engine.tickets[voided.ticket_id or ""].void_reason == "paper_out"


def test_a_print_report_from_another_dispenser_is_refused() -> None:
    d = driver()
    decision = d.issue("A")
    assert d.printed(decision.ticket_id or "", ok=False, dispenser="d2").refusal.code == "unknown_ticket"  # type: ignore[union-attr]


def test_a_successful_print_is_recorded_once() -> None:
    d = driver()
    decision = d.issue("A")
    assert len(d.printed(decision.ticket_id or "", ok=True).events) == 1
    assert d.printed(decision.ticket_id or "", ok=True).events == ()


# --- lifecycle table ------------------------------------------------------------------------------------------

def test_lifecycle_refuses_an_illegal_move_by_name() -> None:
    with pytest.raises(IllegalMove, match="cannot complete: A015 is waiting"):
        next_state(TicketState.WAITING, Move.COMPLETE, number="A015")


def test_final_states_allow_no_move() -> None:
    for state in (TicketState.SERVED, TicketState.NO_SHOW, TicketState.VOID, TicketState.EXPIRED):
        for move in Move:
            with pytest.raises(IllegalMove):
                next_state(state, move)


def test_replaying_the_events_rebuilds_the_same_engine() -> None:
    d = driver()
    for i in range(6):
        d.issue("AB"[i % 2], priority=i == 3)
    d.counter("1", "next")
    d.counter("2", "next")
    d.counter("2", "recall")
    d.counter("1", "transfer", service="A")
    d.counter("3", "next")
    d.counter("3", "no_show")
    fresh = Engine(replace(d.engine.spec))
    fresh.replay(d.events)  # type: ignore[arg-type]
    assert fresh.fingerprint() == d.engine.fingerprint()


def test_the_engine_refuses_naive_times() -> None:
    engine = Engine(hall())
    with pytest.raises(InvariantError, match="timezone-aware"):
        engine.handle(IssueTicket("d1", "r", "A", False, None, "t"), now=MORNING.replace(tzinfo=None))
