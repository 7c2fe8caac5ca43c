"""What the chaos run checks afterwards, from the clients' own records and the ledger. Pure functions.

The reference for what is correct is the contract (docs/mqtt-contract.md) and the engine's semantics
(hall_controller/engine/core.py). Each check below names what counts as a violation; ``Verdict`` collects
them with the run's figures. Nothing here talks to a process: the orchestrator hands in the records.

1. **printed** — every ticket a dispenser printed is one ledger row with that id, with the number, dispenser,
   request id, service and lane printed; no ticket id and no (dispenser, request id) was printed twice.
2. **failed prints** — every ticket a dispenser reported not printed ends ``void``, unless it had already
   reached a final state when the report was sent: the lifecycle (``engine/lifecycle.py``) makes served,
   no-show and expired final, so the controller rightly refuses to void it (counted separately). That
   happens when a reply reached the kiosk late (a controller killed between commit and reply, a cut link)
   and a counter had called and finished the ticket meanwhile. ``REPORT_TRIP_S`` allows for the report's
   own trip to the controller; a ticket finished later than that was open when the report came: violation.
3. **numbers** — no (business day, number) on two ledger rows (the hall's ranges do not wrap).
4. **counters** — every ticket a counter was given (an accepted ``next``/``call`` reply) is a call in the
   journal of that ticket, to that counter, at that instant; no call was given to two counters; and the
   journal never calls a ticket again unless it was transferred in between.
5. **calls** — the journal's calls are numbered 1, 2, 3… with no gap. The display subscriber's first
   receipt of each ``seq`` comes in increasing order, matches the journal (ticket, counter, recall), and a
   repeated ``seq`` repeats the same call (a QoS 1 re-delivery, which a display ignores; counted). A
   journal call the display never received on ``calls`` is a *covered gap* if a ``board`` it received
   lists that call (the board's last-10 calls); otherwise it is lost: a violation.
6. **stranded** — after the closing drain (every counter called ``next`` until ``queue_empty`` and
   completed), no ledger row is ``waiting`` or ``called``: each ended served, no-show, void or expired.
7. **journal** — the whole journal replays into a fresh engine without breaking an invariant.
8. **rollover** — the run really crossed a business day: at least two ``DayStarted`` days with tickets.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.chaos_devices import Given, PrintRecord
from hall_controller.engine import Engine
from hall_controller.engine.events import (
    DayStarted,
    Event,
    TicketCalled,
    TicketTransferred,
)
from hall_controller.engine.spec import HallSpec
from hallq import wire
from hallq.errors import HallqError

FINAL_STATES = frozenset({"served", "no_show", "void", "expired"})
REPORT_TRIP = timedelta(seconds=0.5)
MAX_EXAMPLES = 5


@dataclass(slots=True)
class Verdict:
    """Violations by check (each with up to ``MAX_EXAMPLES`` examples) and the figures of the run."""

    violations: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    figures: dict[str, Any] = field(default_factory=dict)

    def violation_lines(self) -> list[str]:
        """The violations as Markdown lines for a figures block (none when there are none)."""
        if not self.violations:
            return []
        return ["", "Violations:", "", *(f"- {check} ({self.counts[check]}): " + "; ".join(examples)
                                         for check, examples in self.violations.items())]

    def fail(self, check: str, detail: str) -> None:
        self.counts[check] += 1
        examples = self.violations.setdefault(check, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(detail)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _ms(moment: datetime) -> datetime:
    """``moment`` cut to milliseconds, as the wire carries it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def check_printed(verdict: Verdict, printed: Sequence[PrintRecord], rows_by_id: dict[str, dict[str, Any]]) -> None:
    ok_ids: Counter[str] = Counter()
    ok_requests: Counter[tuple[str, str]] = Counter()
    finished_first = 0
    printed_after_finish = 0
    for p in printed:
        row = rows_by_id.get(p.ticket_id)
        if row is None:
            verdict.fail("printed", f"{p.dispenser} handled {p.number} (id {p.ticket_id}) that is not in the ledger")
            continue
        want = (p.number, p.dispenser, p.request_id, p.service, p.priority)
        got = (row["number"], row["dispenser"], row["request_id"], row["origin_service"], bool(row["priority"]))
        if want != got:
            verdict.fail("printed", f"{p.dispenser} printed {want} but the ledger row says {got}")
        finished = datetime.fromisoformat(row["finished_at"]) if row["finished_at"] else None
        if p.ok:
            ok_ids[p.ticket_id] += 1
            ok_requests[(p.dispenser, p.request_id)] += 1
            if finished is not None and finished < p.wall:
                printed_after_finish += 1
        elif row["state"] == "void":
            continue
        elif finished is not None and finished <= p.wall + REPORT_TRIP:
            finished_first += 1
        else:
            verdict.fail("failed prints", f"{p.dispenser} reported {p.number} not printed at {p.wall.isoformat()}, "
                                          f"but it ended {row['state']} (day {row['day']}, counter {row['counter']})")
    for tid, n in ok_ids.items():
        if n > 1:
            verdict.fail("printed", f"ticket {tid} printed {n} times")
    for (dispenser, rid), n in ok_requests.items():
        if n > 1:
            verdict.fail("printed", f"{dispenser} printed {n} tickets for request {rid}")
    verdict.figures["failed prints reported after the ticket was finished (not voidable)"] = finished_first
    verdict.figures["tickets printed after a counter had finished them"] = printed_after_finish


def check_numbers(verdict: Verdict, rows: Sequence[dict[str, Any]]) -> None:
    for (day, number), n in Counter((r["day"], r["number"]) for r in rows).items():
        if n > 1:
            verdict.fail("numbers", f"number {number} issued {n} times on business day {day}")


def check_counters(verdict: Verdict, given: Sequence[Given], events: Sequence[Event]) -> None:
    journal: dict[tuple[str, datetime], str] = {}
    last_move: dict[str, str] = {}
    for event in events:
        if isinstance(event, TicketCalled) and not event.recall:
            if last_move.get(event.ticket_id) == "called":
                verdict.fail("counters", f"journal calls ticket {event.ticket_id} again (seq {event.seq}, counter "
                                         f"{event.counter}) without a transfer in between")
            last_move[event.ticket_id] = "called"
            journal[(event.ticket_id, _ms(event.at))] = event.counter
        elif isinstance(event, TicketTransferred):
            last_move[event.ticket_id] = "transferred"
    holders: defaultdict[tuple[str, datetime], set[str]] = defaultdict(set)
    for g in given:
        key = (g.ticket_id, _ms(g.called_at))
        holders[key].add(g.counter)
        called_for = journal.get(key)
        if called_for is None:
            verdict.fail("counters", f"counter {g.counter} was given {g.number} called at {g.called_at.isoformat()}, "
                                     "a call the journal does not have")
        elif called_for != g.counter:
            verdict.fail("counters", f"counter {g.counter} was given {g.number}, which the journal called for "
                                     f"counter {called_for}")
    for (tid, at), counters in holders.items():
        if len(counters) > 1:
            verdict.fail("counters", f"ticket {tid} called at {at.isoformat()} given to counters {sorted(counters)}")


def check_calls(verdict: Verdict, events: Sequence[Event], calls: Sequence[wire.Call],
                boards: Sequence[wire.Board]) -> None:
    journal = {e.seq: e for e in events if isinstance(e, TicketCalled)}
    seqs = [e.seq for e in events if isinstance(e, TicketCalled)]
    if seqs != list(range(1, len(seqs) + 1)):
        verdict.fail("calls", f"journal call numbers are not 1..{len(seqs)} in order")

    def matches(c: wire.Call) -> bool:
        e = journal.get(c.seq)
        return e is not None and (e.ticket_id, e.counter, e.recall) == (c.ticket_id, c.counter, c.recall)

    first: dict[int, wire.Call] = {}
    duplicates = 0
    last_seq = 0
    for c in calls:
        if c.seq in first:
            duplicates += 1
            if first[c.seq] != c:
                verdict.fail("calls", f"seq {c.seq} delivered twice with different calls")
            continue
        first[c.seq] = c
        if not matches(c):
            verdict.fail("calls", f"seq {c.seq} ({c.number} at counter {c.counter}) is not the journal's call")
        if c.seq <= last_seq:
            verdict.fail("calls", f"seq {c.seq} arrived after seq {last_seq}")
        last_seq = max(last_seq, c.seq)
    on_boards: dict[int, wire.Call] = {}
    for board in boards:
        for c in board.calls:
            if not matches(c):
                verdict.fail("calls", f"a board lists seq {c.seq} ({c.number}), which is not the journal's call")
            on_boards[c.seq] = c
    covered = 0
    for seq, e in journal.items():
        if seq in first:
            continue
        if seq in on_boards:
            covered += 1
        else:
            verdict.fail("calls", f"seq {seq} (ticket {e.ticket_id} at counter {e.counter}, {e.at.isoformat()}) "
                                  "never reached the display, neither on calls nor on a board")
    verdict.figures["calls in the journal"] = sum(1 for e in journal.values() if not e.recall)
    verdict.figures["recalls in the journal"] = sum(1 for e in journal.values() if e.recall)
    verdict.figures["calls and recalls received on calls"] = len(first)
    verdict.figures["gaps covered by the board"] = covered
    verdict.figures["repeated deliveries (same seq, same call)"] = duplicates


def check_stranded(verdict: Verdict, rows: Sequence[dict[str, Any]]) -> None:
    for r in rows:
        if r["state"] not in FINAL_STATES:
            verdict.fail("stranded", f"{r['number']} (day {r['day']}, service {r['service']}) ended {r['state']}"
                                     + (f" at counter {r['counter']}" if r["counter"] else ""))


def check_journal(verdict: Verdict, spec: HallSpec, events: Iterable[Event]) -> None:
    try:
        Engine(spec).replay(events)
    except (HallqError, KeyError) as exc:
        verdict.fail("journal", f"the journal does not replay: {exc!r}")


def check_rollover(verdict: Verdict, events: Sequence[Event], rows: Sequence[dict[str, Any]]) -> None:
    days = [e.day for e in events if isinstance(e, DayStarted)]
    with_tickets = sorted({r["day"] for r in rows})
    verdict.figures["business days"] = with_tickets
    if len(days) < 2 or len(with_tickets) < 2:
        verdict.fail("rollover", f"the run did not cross a business day with tickets on both sides "
                                 f"(days started {days}, days with tickets {with_tickets})")


def verdict_of(*, spec: HallSpec, rows: Sequence[dict[str, Any]], events: Sequence[Event],
               printed: Sequence[PrintRecord], given: Sequence[Given], calls: Sequence[wire.Call],
               boards: Sequence[wire.Board], expect_rollover: bool = True) -> Verdict:
    """Every check over one run's records; see the module docstring for what each one means."""
    verdict = Verdict()
    rows_by_id = {r["id"]: r for r in rows}
    check_printed(verdict, printed, rows_by_id)
    check_numbers(verdict, rows)
    check_counters(verdict, given, events)
    check_calls(verdict, events, calls, boards)
    check_stranded(verdict, rows)
    check_journal(verdict, spec, events)
    if expect_rollover:
        check_rollover(verdict, events, rows)
    mentioned = {p.ticket_id for p in printed}
    states = Counter(r["state"] for r in rows)
    verdict.figures["tickets issued"] = len(rows)
    verdict.figures["priority tickets"] = sum(1 for r in rows if r["priority"])
    verdict.figures["tickets by end state"] = dict(sorted(states.items()))
    verdict.figures["tickets printed"] = sum(1 for p in printed if p.ok)
    verdict.figures["prints reported failed"] = sum(1 for p in printed if not p.ok and not p.late)
    verdict.figures["late replies reported not printed"] = sum(1 for p in printed if p.late)
    verdict.figures["tickets no dispenser saw (reply never arrived)"] = sum(1 for r in rows if r["id"] not in mentioned)
    verdict.figures["transfers"] = sum(1 for e in events if isinstance(e, TicketTransferred))
    return verdict


def replace_figures(path: Path, *, start: str, end: str, markdown: str) -> None:
    """Replace the block between the ``start`` and ``end`` markers in ``path`` (read just before writing) with
    ``markdown``; SystemExit if the file has no such block."""
    text = path.read_text(encoding="utf-8")
    block = f"{start}\n{markdown}\n{end}"
    new, n = re.subn(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.DOTALL)
    if n != 1:
        raise SystemExit(f"{path} has no figures block ({start} … {end})")
    path.write_text(new, encoding="utf-8")
