"""The chaos run's checks catch what they claim to: a small real day (engine + SQLite ledger) with clean client
records passes, and each kind of damage to the records or the ledger is named as a violation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bench.chaos_checks import Verdict, verdict_of
from bench.chaos_devices import Given, PrintRecord
from bench.chaos_hall import hall_toml
from hall_controller.config import load
from hall_controller.engine import Engine, HallSpec
from hall_controller.engine.events import ActAtCounter, Event, IssueTicket, ReportPrint, Tick, TicketCalled
from hall_controller.engine.views import board
from hall_controller.ledger import Ledger
from hallq import wire

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
MORNING = datetime(2026, 11, 27, 8, 0, tzinfo=ZONE)
ROLLOVER = datetime(2026, 11, 27, 12, 0, tzinfo=ZONE)


@dataclass
class Day:
    """One small business day and the start of the next, with what every client recorded."""

    spec: HallSpec
    rows: list[dict[str, Any]]
    events: list[Event]
    printed: list[PrintRecord]
    given: list[Given]
    calls: list[wire.Call]
    boards: list[wire.Board] = field(default_factory=list)

    def verdict(self, **changes: Any) -> Verdict:
        fields = {"spec": self.spec, "rows": self.rows, "events": self.events, "printed": self.printed,
                  "given": self.given, "calls": self.calls, "boards": self.boards, **changes}
        return verdict_of(**fields)


@pytest.fixture
def day(tmp_path: Path) -> Day:
    config = tmp_path / "hall.toml"
    config.write_text(hall_toml(rollover=ROLLOVER, state_dir=str(tmp_path)), encoding="utf-8")
    spec = load(config).hall
    engine = Engine(spec)
    events: list[Event] = []
    now = MORNING
    printed: list[PrintRecord] = []
    given: list[Given] = []

    def step(command: Any, *, at: datetime | None = None) -> str | None:
        nonlocal now
        now = at or now + timedelta(seconds=1)
        decision = engine.handle(command, now=now)
        assert decision.ok, decision.refusal
        events.extend(decision.events)
        return decision.ticket_id

    def issue(tid: str, dispenser: str, service: str, *, priority: bool = False, printed_ok: bool = True) -> None:
        step(IssueTicket(dispenser=dispenser, request_id=f"r-{tid}", service=service, priority=priority,
                         category="elderly" if priority else None, ticket_id=tid))
        ticket = engine.tickets[tid]
        printed.append(PrintRecord(dispenser, f"r-{tid}", tid, ticket.number, service, priority, printed_ok, False, 0.0,
                                   now))
        step(ReportPrint(dispenser=dispenser, ticket_id=tid, ok=printed_ok, reason=None if printed_ok else "paper_out"))

    def command(counter: str, action: str, n: int) -> None:
        tid = step(ActAtCounter(counter=counter, request_id=f"c{n}", action=action))  # type: ignore[arg-type]
        if action == "next" and tid is not None:
            ticket = engine.tickets[tid]
            assert ticket.called_at is not None
            given.append(Given(counter, f"c{n}", action, tid, ticket.number, ticket.called_at, False))

    issue("t1", "k01", "A")
    issue("t2", "k02", "B", priority=True)
    issue("t3", "k03", "C", printed_ok=False)
    command("4", "next", 1)  # counter 4 serves A and B, interleaving: the regular A ticket first
    command("1", "next", 2)  # counter 1 is a priority counter: UB0001
    command("1", "recall", 3)
    command("4", "complete", 4)
    command("1", "complete", 5)
    issue("t4", "k04", "D")  # still waiting at the rollover: expires
    step(Tick(), at=ROLLOVER + timedelta(seconds=1))
    issue("t5", "k01", "A")
    command("4", "next", 6)
    command("4", "complete", 7)
    boards = [board(engine, now).encode()]

    ledger = Ledger(tmp_path / "ledger.sqlite3", hall_id=spec.id)
    ledger.append(events)
    rows = ledger.history()
    ledger.close()
    numbers = {r["id"]: r for r in rows}
    calls = [wire.Call(seq=e.seq, number=numbers[e.ticket_id]["number"], counter=e.counter,
                       counter_name=spec.counter_by_id[e.counter].name, service=numbers[e.ticket_id]["service"],
                       priority=bool(numbers[e.ticket_id]["priority"]), recall=e.recall, at=e.at, ticket_id=e.ticket_id)
             for e in events if isinstance(e, TicketCalled)]
    return Day(spec, rows, events, printed, given, calls, [wire.Board.decode(b) for b in boards])


def test_a_clean_day_has_no_violation(day: Day) -> None:
    verdict = day.verdict()

    assert verdict.violations == {}
    assert verdict.figures["tickets by end state"] == {"expired": 1, "served": 3, "void": 1}
    assert verdict.figures["calls in the journal"] == 3
    assert verdict.figures["recalls in the journal"] == 1
    assert verdict.figures["business days"] == ["2026-11-26", "2026-11-27"]


def test_a_printed_number_the_ledger_does_not_have_is_a_violation(day: Day) -> None:
    wrong = [dataclasses.replace(day.printed[0], number="A0099"), *day.printed[1:]]

    assert day.verdict(printed=wrong).counts["printed"] == 1


def test_a_ticket_printed_twice_is_a_violation(day: Day) -> None:
    assert day.verdict(printed=[*day.printed, day.printed[0]]).counts["printed"] >= 1


def test_a_failed_print_that_was_not_voided_is_a_violation(day: Day) -> None:
    # t1 was printed and served; had the dispenser reported it failed, it should have ended void.
    failed = [dataclasses.replace(day.printed[0], ok=False), *day.printed[1:]]

    verdict = day.verdict(printed=failed)

    assert verdict.counts["failed prints"] == 1
    assert "ended served" in verdict.violations["failed prints"][0]


def test_a_failed_print_reported_after_a_counter_finished_the_ticket_is_counted_not_a_violation(day: Day) -> None:
    # The reply reached the kiosk late; meanwhile counter 4 called and completed t1, which the lifecycle makes final.
    finished = datetime.fromisoformat(day.rows[0]["finished_at"])
    late = dataclasses.replace(day.printed[0], ok=False, late=True, wall=finished + timedelta(seconds=2))

    verdict = day.verdict(printed=[late, *day.printed[1:]])

    assert verdict.counts["failed prints"] == 0
    assert verdict.figures["failed prints reported after the ticket was finished (not voidable)"] == 1


def test_a_ticket_printed_after_it_was_finished_is_counted(day: Day) -> None:
    finished = datetime.fromisoformat(day.rows[0]["finished_at"])
    late = dataclasses.replace(day.printed[0], wall=finished + timedelta(seconds=2))

    verdict = day.verdict(printed=[late, *day.printed[1:]])

    assert verdict.figures["tickets printed after a counter had finished them"] == 1


def test_a_number_issued_twice_in_a_day_is_a_violation(day: Day) -> None:
    copy = {**day.rows[0], "id": "t-copy", "request_id": "r-copy"}

    assert day.verdict(rows=[*day.rows, copy]).counts["numbers"] == 1


def test_the_same_number_on_two_business_days_is_not_a_violation(day: Day) -> None:
    first, fifth = day.rows[0], day.rows[4]

    assert first["number"] == fifth["number"] == "A0001"
    assert first["day"] != fifth["day"]
    assert day.verdict().counts["numbers"] == 0


def test_a_ticket_given_to_two_counters_is_a_violation(day: Day) -> None:
    stolen = dataclasses.replace(day.given[0], counter="2", request_id="x")

    verdict = day.verdict(given=[*day.given, stolen])

    assert verdict.counts["counters"] == 2  # the journal called it for counter 4, and two counters hold it
    assert any("given to counters" in v for v in verdict.violations["counters"])


def test_a_ticket_given_at_an_instant_the_journal_has_no_call_for_is_a_violation(day: Day) -> None:
    ghost = dataclasses.replace(day.given[0], called_at=day.given[0].called_at + timedelta(seconds=5))

    assert day.verdict(given=[ghost, *day.given[1:]]).counts["counters"] == 1


def test_a_call_missing_at_the_display_is_a_violation_unless_a_board_lists_it(day: Day) -> None:
    last = day.calls[-1]
    without = [c for c in day.calls if c.seq != last.seq]

    assert day.verdict(calls=without, boards=[]).counts["calls"] == 1
    covered = day.verdict(calls=without)
    assert covered.counts["calls"] == 0
    assert covered.figures["gaps covered by the board"] == 1


def test_calls_arriving_out_of_seq_order_are_a_violation(day: Day) -> None:
    swapped = [day.calls[1], day.calls[0], *day.calls[2:]]

    assert day.verdict(calls=swapped).counts["calls"] == 1


def test_a_repeated_delivery_of_the_same_call_is_counted_not_a_violation(day: Day) -> None:
    verdict = day.verdict(calls=[*day.calls, day.calls[-1]])

    assert verdict.counts["calls"] == 0
    assert verdict.figures["repeated deliveries (same seq, same call)"] == 1


def test_a_seq_delivered_with_a_different_call_is_a_violation(day: Day) -> None:
    other = dataclasses.replace(day.calls[-1], counter="9")

    assert day.verdict(calls=[*day.calls, other]).counts["calls"] == 1


def test_a_ticket_still_open_at_the_end_is_stranded(day: Day) -> None:
    open_row = {**day.rows[4], "state": "called", "counter": "4"}

    verdict = day.verdict(rows=[*day.rows[:4], open_row])

    assert verdict.counts["stranded"] == 1


def test_a_run_that_never_crossed_a_business_day_is_a_violation(day: Day) -> None:
    first_day = [r for r in day.rows if r["day"] == "2026-11-26"]

    assert day.verdict(rows=first_day).counts["rollover"] == 1


def test_a_journal_that_calls_a_ticket_twice_is_a_violation(day: Day) -> None:
    again = next(e for e in day.events if isinstance(e, TicketCalled) and not e.recall)
    doubled = [*day.events]
    doubled.insert(doubled.index(again) + 1, dataclasses.replace(again, counter="2"))

    verdict = day.verdict(events=doubled)

    assert verdict.counts["counters"] >= 1
    assert verdict.counts["journal"] == 1  # the engine refuses to replay it too
