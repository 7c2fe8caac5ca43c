"""How fast the hall manager's reports are: a one-day report over a 2,000-ticket day (target ≤ 100 ms) and a
one-year report over a 500,000-ticket ledger (target ≤ 2 s), each from the ledger file to the finished
``Report`` (journal read, decode, collect, summarise; rendering apart).

    .venv/bin/python -m bench.report_bench             # builds the ledgers once (cached in the temp dir)
    .venv/bin/python -m bench.report_bench --rounds 5

The ledgers are written directly (journal rows made with ``to_record``, one transaction): a year of a
20-counter hall, 1,370 tickets a business day on 365 days, each issued, printed, called and finished with the
commands the engine journals (about six events a ticket), plus the 2,000-ticket day.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time as clock
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hall_controller.engine import CounterSpec, DispenserSpec, HallSpec, ServiceSpec
from hall_controller.engine.events import (
    CommandAccepted,
    DayStarted,
    Event,
    TicketCalled,
    TicketFinished,
    TicketIssued,
    TicketPrinted,
    to_record,
)
from hall_controller.ledger import Ledger
from manager import journal, reports

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SERVICES = tuple("ABCDEF")
COUNTERS = tuple(str(n) for n in range(1, 21))
FIRST_DAY = date(2026, 1, 1)


def hall() -> HallSpec:
    return HallSpec(
        id="bench", name_vi="Trung tâm", name_en="Centre",
        services=tuple(ServiceSpec(id=s, name_vi=s, name_en=s, prefix=s) for s in SERVICES),
        counters=tuple(CounterSpec(id=c, name=f"Quầy {c}", services=SERVICES) for c in COUNTERS),
        dispensers=(DispenserSpec(id="kiosk-1"),),
    )


def day_events(day: date, tickets: int, rng: random.Random, seq: list[int]) -> Iterator[Event]:
    start = datetime.combine(day, time(7, 30), tzinfo=ZONE)
    carry = {"counters": {c: ["open", 0] for c in COUNTERS}, "call_seq": seq[0], "recent_calls": [],
             "service_times": {s: [] for s in SERVICES}, "next_order": 1, "front_order": 0}
    yield DayStarted(at=start, day=day.isoformat(), carry=carry)
    span_s = 9.5 * 3600
    for n in range(tickets):
        issued = start + timedelta(seconds=span_s * n / tickets)
        tid = f"{day:%Y%m%d}{n:06d}{rng.getrandbits(64):016x}"
        service = SERVICES[n % len(SERVICES)]
        priority = rng.random() < 0.1
        counter = COUNTERS[n % len(COUNTERS)]
        yield TicketIssued(at=issued, ticket_id=tid, day=day.isoformat(), dispenser="kiosk-1", request_id=tid[-16:],
                           service=service, number=f"{service}{n % 999 + 1:03d}", sequence=service, value=n % 999 + 1,
                           priority=priority, category="elderly" if priority else None, order=n + 1, ahead=3,
                           estimated_wait_s=600)
        yield TicketPrinted(at=issued + timedelta(seconds=1), ticket_id=tid)
        called = issued + timedelta(seconds=rng.randint(30, 2400))
        seq[0] += 1
        yield TicketCalled(at=called, ticket_id=tid, counter=counter, seq=seq[0], recall=False)
        yield CommandAccepted(at=called, counter=counter, request_id=f"n{tid[-12:]}", action="next", ticket_id=tid)
        done = called + timedelta(seconds=rng.randint(60, 900))
        yield TicketFinished(at=done, ticket_id=tid, counter=counter, outcome="served" if rng.random() < 0.93
                             else "no_show")
        yield CommandAccepted(at=done, counter=counter, request_id=f"c{tid[-12:]}", action="complete", ticket_id=None)


def build(path: Path, days: list[tuple[date, int]]) -> None:
    """A ledger at ``path`` holding ``days`` (day, tickets), written in one transaction."""
    Ledger(path, hall_id="bench").close()
    rng = random.Random(7)
    seq = [0]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        for day, tickets in days:
            db.executemany("INSERT INTO journal (kind, at, data) VALUES (?, ?, ?)",
                           (to_record(e) for e in day_events(day, tickets, rng, seq)))
        db.execute("COMMIT")
    finally:
        db.close()


def cached(name: str, days: list[tuple[date, int]]) -> Path:
    path = Path(tempfile.gettempdir()) / "hallq-report-bench" / f"{name}.sqlite3"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.unlink(missing_ok=True)
        started = clock.perf_counter()
        build(partial, days)
        partial.rename(path)
        print(f"built {path} in {clock.perf_counter() - started:.0f} s")
    return path


def timed(path: Path, period: reports.Period, rounds: int) -> tuple[list[float], reports.Report]:
    spec = hall()
    times = []
    result = None
    for _ in range(rounds):
        started = clock.perf_counter()
        result = reports.build_report(journal.read_events(path, first_day=period.first, last_day=period.last),
                                      spec=spec, period=period)
        times.append(clock.perf_counter() - started)
    assert result is not None
    return times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    year = [(FIRST_DAY + timedelta(days=i), 1370) for i in range(365)]
    day = cached("day-2000", [(date(2026, 12, 4), 2000)])
    big = cached("year-500k", year)
    ok = True
    for label, path, period, target_s in (
        ("one day, 2,000 tickets", day, reports.day_period("2026-12-04"), 0.1),
        ("one year, 500,050 tickets", big, reports.range_period("2026-01-01", "2026-12-31"), 2.0),
        ("one day of that year", big, reports.day_period("2026-12-04"), 0.1),
    ):
        times, result = timed(path, period, args.rounds)
        best, median = min(times), statistics.median(times)
        verdict = "ok" if median <= target_s else "OVER"
        ok &= median <= target_s
        print(f"{label:28} {result.totals.outcomes.issued:>8,} tickets  median {median * 1000:8.0f} ms  "
              f"best {best * 1000:8.0f} ms  target {target_s * 1000:.0f} ms  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
