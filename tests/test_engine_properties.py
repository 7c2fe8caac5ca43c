"""Properties of the queue engine over random sequences of every action (hypothesis)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hall_controller.engine import CounterSpec, Engine, ServiceSpec
from hall_controller.engine.events import (
    ActAtCounter,
    ClockChanged,
    DayStarted,
    Event,
    IssueTicket,
    Tick,
    TicketCalled,
    TicketExpired,
    TicketIssued,
)
from hall_controller.engine.lifecycle import OPEN_STATES, TicketState
from tests.engine_builders import MORNING, Driver, hall

SERVICES = (
    ServiceSpec(id="A", name_vi="A", name_en="A", prefix="A"),
    ServiceSpec(id="B", name_vi="B", name_en="B", prefix="B", priority_prefix="UB"),
    # A tiny wrapping range, so that numbers are reused within a day once free.
    ServiceSpec(id="C", name_vi="C", name_en="C", prefix="C", first_number=1, last_number=4),
)
COUNTERS = (
    CounterSpec(id="1", name="1", services=("A", "B", "C"), policy="priority_first", max_wait_s=600),
    CounterSpec(id="2", name="2", services=("A", "B"), policy="interleave", interleave_ratio=2),
    CounterSpec(id="3", name="3", services=("A",), max_wait_s=300),
    CounterSpec(id="4", name="4", services=("C",), status_at_start="closed"),
)
ACTIONS = ("next", "next", "next", "recall", "complete", "no_show", "transfer", "call", "open", "pause", "close")

issue = st.tuples(st.just("issue"), st.sampled_from("ABCZ"), st.booleans(), st.sampled_from(["d1", "d2"]),
                  st.integers(0, 30))
command = st.tuples(st.just("counter"), st.sampled_from("12345"), st.sampled_from(ACTIONS),
                    st.sampled_from(["A001", "A002", "B001", "UB001", "C1", "C3", None]), st.sampled_from("ABCZ"))
report = st.tuples(st.just("print"), st.booleans(), st.integers(0, 40), st.sampled_from(["d1", "d2"]), st.just(0))
advance = st.tuples(st.just("advance"), st.sampled_from([1, 30, 400, 3600, 6 * 3600, 20 * 3600]),
                    st.just(0), st.just(0), st.just(0))
# A wrong clock: the wall clock stepping back, an accepted step (journaled), a request on untrusted time.
clock = st.tuples(st.just("clock"), st.sampled_from(["back", "step", "untrusted"]),
                  st.sampled_from([5, 600, 3600, 20 * 3600]), st.just(0), st.just(0))
operations = st.lists(st.one_of(issue, issue, command, command, command, report, advance, clock), max_size=120)


def _check_invariants(engine: Engine) -> None:
    open_numbers = Counter(t.number for t in engine.tickets.values() if t.state in OPEN_STATES)
    assert all(n == 1 for n in open_numbers.values()), f"an open number is held twice: {open_numbers}"
    held = [c.ticket_id for c in engine.counters.values() if c.ticket_id is not None]
    assert len(held) == len(set(held)), "a ticket is held by two counters"
    for runtime in engine.counters.values():
        if runtime.ticket_id is not None:
            ticket = engine.tickets[runtime.ticket_id]
            assert ticket.state is TicketState.CALLED
            assert ticket.counter == runtime.spec.id
    called = {t.id for t in engine.tickets.values() if t.state is TicketState.CALLED}
    assert called == set(held), "a called ticket is not at exactly one counter"
    for (service, priority), lane in engine.lanes.items():
        actual = sum(1 for t in engine.tickets.values()
                     if t.state is TicketState.WAITING and t.service == service and t.priority == priority)
        assert lane.count == actual


def _run(ops: list[tuple[object, ...]]) -> tuple[Driver, list[Event]]:
    d = Driver(Engine(hall(services=SERVICES, counters=COUNTERS)))
    issued: list[str] = []
    events: list[Event] = []
    for op in ops:
        kind = op[0]
        if kind == "issue":
            _, service, priority, dispenser, reuse = op
            request_id = f"r{reuse}" if isinstance(reuse, int) and reuse < 5 else None
            decision = d.issue(str(service), priority=bool(priority), dispenser=str(dispenser), request_id=request_id)
            if decision.ok and not decision.duplicate:
                issued.append(decision.ticket_id or "")
        elif kind == "counter":
            _, counter, action, number, service = op
            decision = d.counter(str(counter), str(action), ticket=number if isinstance(number, str) else None,
                                 service=str(service))
            for event in decision.events:
                if isinstance(event, TicketCalled):
                    ticket = d.engine.tickets[event.ticket_id]
                    assert ticket.service in d.engine.spec.counter_by_id[event.counter].services
        elif kind == "print":
            _, ok, index, dispenser, _ = op
            if issued:
                decision = d.printed(issued[index % len(issued) if isinstance(index, int) else 0], ok=bool(ok), dispenser=str(dispenser))
            else:
                continue
        elif kind == "clock":
            _, what, seconds, _, _ = op
            assert isinstance(seconds, int)
            if what == "back":
                d.now -= timedelta(seconds=seconds)
                decision = d.engine.handle(Tick(), now=d.now)
            elif what == "step":
                decision = d.engine.handle(ClockChanged(step_s=float(seconds), source="synchronised"), now=d.now)
            else:
                decision = d.engine.handle(IssueTicket(dispenser="d1", request_id=f"u{seconds}", service="A",
                                                       priority=False, category=None, ticket_id=f"u{len(events)}"),
                                           now=d.now, trusted=False)
                assert decision.refusal is not None and not decision.events
        else:
            d.now += timedelta(seconds=op[1] if isinstance(op[1], int) else 0)
            decision = d.engine.handle(Tick(), now=d.now)
        if decision.refusal is not None:
            assert all(isinstance(e, (TicketExpired, DayStarted)) for e in decision.events), "a refusal changed state"
        events.extend(decision.events)
        _check_invariants(d.engine)
    return d, events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_random_sequences_keep_every_invariant_and_replay_to_the_same_state(ops: list[tuple[object, ...]]) -> None:
    d, events = _run(ops)
    issued = [(e.day, e.number) for e in events if isinstance(e, TicketIssued) and e.service in ("A", "B")]
    assert len(issued) == len(set(issued)), "a number was issued twice in a business day"
    rebuilt = Engine(hall(services=SERVICES, counters=COUNTERS))
    rebuilt.replay(events)
    assert rebuilt.fingerprint() == d.engine.fingerprint()
    # A restart replays only from the last business day's start: the same state again.
    starts = [i for i, e in enumerate(events) if isinstance(e, DayStarted)]
    if starts:
        from_day = Engine(hall(services=SERVICES, counters=COUNTERS))
        from_day.replay(events[starts[-1]:])
        assert from_day.fingerprint() == d.engine.fingerprint()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["issue", "voidprint", "next"]), max_size=60))
def test_a_voided_ticket_is_never_called(ops: list[str]) -> None:
    d = Driver(Engine(hall(services=SERVICES, counters=COUNTERS)))
    voided: set[str] = set()
    last: str | None = None
    for op in ops:
        if op == "issue":
            last = d.issue("A").ticket_id
        elif op == "voidprint" and last is not None:
            if d.printed(last, ok=False, reason="paper_out").ok:
                voided.add(last)
        else:
            decision = d.counter("3", "next")
            assert not any(isinstance(e, TicketCalled) and e.ticket_id in voided for e in decision.events)


SERVICE_S = 240
MAX_WAIT_S = 900


@settings(max_examples=200, deadline=None)
@given(
    priority_gaps=st.lists(st.integers(SERVICE_S, 3 * SERVICE_S), min_size=5, max_size=60),
    regular_gaps=st.lists(st.integers(MAX_WAIT_S, 3 * MAX_WAIT_S), min_size=1, max_size=6),
    offset=st.integers(0, SERVICE_S),
    policy=st.sampled_from(["priority_first", "interleave"]),
)
def test_max_wait_guard_bounds_every_wait_while_the_counter_keeps_calling(
    priority_gaps: list[int], regular_gaps: list[int], offset: int, policy: str
) -> None:
    """A priority lane that keeps the counter fully busy would starve regular tickets; the guard bounds them.

    One counter serves service A and calls every ``SERVICE_S``; priority tickets arrive often enough to take
    every call of a ``priority_first`` counter, regular tickets now and then. Every ticket must be called within
    ``MAX_WAIT_S`` plus one service time.
    """
    counter = CounterSpec(id="1", name="1", services=("A",), policy=policy,  # type: ignore[arg-type]
                          interleave_ratio=50, max_wait_s=MAX_WAIT_S)
    engine = Engine(hall(services=SERVICES[:1], counters=(counter,)))
    arrivals: list[tuple[int, bool]] = []
    t = 0
    for gap in priority_gaps:
        t += gap
        arrivals.append((t, True))
    t = offset
    for gap in regular_gaps:
        t += gap
        arrivals.append((t, False))
    horizon = max(a for a, _ in arrivals) + 4 * MAX_WAIT_S
    calls = list(range(0, horizon, SERVICE_S))
    timeline = sorted([(a, 0, p) for a, p in arrivals] + [(c, 1, False) for c in calls])
    for n, (at, kind, priority) in enumerate(timeline):
        now = MORNING + timedelta(seconds=at, microseconds=n)
        if kind == 0:
            engine.handle(IssueTicket("d1", f"r{n}", "A", priority, "elderly" if priority else None, f"t{n}"), now=now)
        else:
            engine.handle(ActAtCounter("1", f"c{n}", "next"), now=now)
    for ticket in engine.tickets.values():
        assert ticket.called_at is not None, f"{ticket.number} was never called"
        waited = (ticket.called_at - ticket.issued_at).total_seconds()
        assert waited <= MAX_WAIT_S + SERVICE_S, f"{ticket.number} waited {waited} s"
