"""How fast the hall manager's reports are: a one-day report over a 2,000-ticket day (target ≤ 100 ms) and a
one-year report over a 500,000-ticket ledger (target ≤ 2 s), each from the ledger file to the finished
``Report`` (rendering apart), through the report cache (``manager.cache``, the path of ``hallq-manager report``).

    .venv/bin/python -m bench.report_bench             # builds the ledgers once (cached in the temp dir)
    .venv/bin/python -m bench.report_bench --rounds 5

Shown: the year report on an empty cache (cold: every day read, decoded and summarised once, the closed ones
kept, and each month's closed days merged), then once with the days kept but no month merged yet (what the
first year report after an upgrade pays), then warm (every month's closed days from the cache, today from the
journal), the same within the reports' default CPU share of one core (``manager.budget``: what the manager
does), the one-day reports, two filtered year reports (from the cached days), and the year report from the
ledger alone (no cache) for comparison; the cold report's time split into reading, decoding
(``from_records``), following tickets and summarising. Each line gives wall time and the CPU time of the
thread that made the report.

The ledgers are written directly (journal rows made with ``to_record``, one transaction): a year of a
20-counter hall, 1,370 tickets a business day on 365 days, each issued, printed, called and finished with the
commands the engine journals (about six events a ticket), plus the 2,000-ticket day. A third of the visits
served are rated (``RATED_SHARE``), within ten minutes of their end, three in five by the counter's buttons and
the rest by phone; a phone's low rating names one or two reasons, and one in four of those has a comment.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time as clock
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
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
    TicketRated,
    from_records,
    to_record,
)
from hall_controller.engine.spec import DEFAULT_RATING_REASONS
from hall_controller.ledger import Ledger
from hallq.wire import LOW_RATINGS, RATING_LEVELS
from manager import budget, cache, journal, reports

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SERVICES = tuple("ABCDEF")
COUNTERS = tuple(str(n) for n in range(1, 21))
FIRST_DAY = date(2026, 1, 1)
RATED_SHARE = 1 / 3
LEVEL_WEIGHTS = (0.45, 0.35, 0.13, 0.07)  # very satisfied .. dissatisfied
REASONS = tuple(reason.id for reason in DEFAULT_RATING_REASONS)
COMMENTS = ("Chờ hơi lâu", "Cán bộ hướng dẫn chưa rõ", "Cần thêm ghế chờ", "Thủ tục rườm rà quá")


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
        number = f"{service}{n % 999 + 1:03d}"
        yield TicketIssued(at=issued, ticket_id=tid, day=day.isoformat(), dispenser="kiosk-1", request_id=tid[-16:],
                           service=service, number=number, sequence=service, value=n % 999 + 1,
                           priority=priority, category="elderly" if priority else None, order=n + 1, ahead=3,
                           estimated_wait_s=600)
        yield TicketPrinted(at=issued + timedelta(seconds=1), ticket_id=tid)
        called = issued + timedelta(seconds=rng.randint(30, 2400))
        seq[0] += 1
        yield TicketCalled(at=called, ticket_id=tid, counter=counter, seq=seq[0], recall=False)
        yield CommandAccepted(at=called, counter=counter, request_id=f"n{tid[-12:]}", action="next", ticket_id=tid)
        done = called + timedelta(seconds=rng.randint(60, 900))
        outcome: Literal["served", "no_show"] = "served" if rng.random() < 0.93 else "no_show"
        yield TicketFinished(at=done, ticket_id=tid, counter=counter, outcome=outcome)
        yield CommandAccepted(at=done, counter=counter, request_id=f"c{tid[-12:]}", action="complete", ticket_id=None)
        if outcome == "served" and rng.random() < RATED_SHARE:
            yield rating(tid, number, service, counter, done, rng)


def rating(tid: str, number: str, service: str, counter: str, done: datetime, rng: random.Random) -> TicketRated:
    """A citizen's rating of the visit ``tid`` served at ``counter`` at ``done`` (see the module docstring)."""
    level = rng.choices(RATING_LEVELS, LEVEL_WEIGHTS)[0]
    phone = rng.random() < 0.4
    reasons = rng.sample(REASONS, rng.randint(1, 2)) if phone and level in LOW_RATINGS else []
    comment = rng.choice(COMMENTS) if reasons and rng.random() < 0.25 else None
    return TicketRated(at=done + timedelta(seconds=rng.randint(5, 600)), ticket_id=tid, number=number, service=service,
                       counter=counter, level=level, channel="phone" if phone else "counter",
                       source="manager" if phone else counter, request_id=f"q{tid[-12:]}", reasons=reasons,
                       comment=comment)


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


def timed(path: Path, period: reports.Period, rounds: int, *, cache_dir: Path | None,
          filters: reports.Filters | None = None, cpu_share: float | None = None, burst_s: float | None = None,
          ) -> tuple[list[float], list[float], reports.Report]:
    """Wall and CPU seconds of each round, and the report; ``cpu_share``: within that CPU budget, each round from
    a fresh allowance of ``burst_s`` (a report asked now and then: the default burst; reports back to back: 0)."""
    spec = hall()
    times, cpu_times = [], []
    result = None
    for _ in range(rounds):
        started, cpu_started = clock.perf_counter(), clock.thread_time()
        paced = None if cpu_share is None else budget.CpuBudget(cpu_share, allowance=budget.CpuAllowance(
            cpu_share, burst_s=budget.BURST_CPU_S if burst_s is None else burst_s, now=clock.monotonic()))
        result = cache.build_report(path, spec=spec, period=period, filters=filters, cache_dir=cache_dir,
                                    budget=paced)
        times.append(clock.perf_counter() - started)
        cpu_times.append(clock.thread_time() - cpu_started)
    assert result is not None
    return times, cpu_times, result


def cold_parts(path: Path, period: reports.Period) -> dict[str, float]:
    """Seconds of each step of a report made from the ledger alone (what a cold cache costs)."""
    spec = hall()
    parts: dict[str, float] = {}
    started = clock.perf_counter()
    with journal.open_journal(path) as ledger:
        wanted = journal.in_range(ledger.segments(first_day=period.first), first_day=period.first,
                                  last_day=period.last)
    marks = ",".join("?" * len(journal.REPORT_KINDS))
    rows: list[tuple[str, str, str]] = []
    with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as db:
        for segment in wanted:
            stop = segment.stop if segment.stop is not None else 1 << 62
            rows += db.execute(f"SELECT kind, at, data FROM journal WHERE seq >= ? AND seq < ? AND kind IN ({marks}) "
                               "ORDER BY seq", (segment.first, stop, *journal.REPORT_KINDS)).fetchall()
    parts["read"] = clock.perf_counter() - started
    started = clock.perf_counter()
    events = [event for at in range(0, len(rows), journal.BATCH_ROWS)
              for event in from_records(rows[at:at + journal.BATCH_ROWS])]
    parts["decode"] = clock.perf_counter() - started
    started = clock.perf_counter()
    facts = reports.collect(events, spec=spec)
    parts["collect"] = clock.perf_counter() - started
    started = clock.perf_counter()
    summaries = [reports.summarise_span(span, spec=spec) for span in facts.spans]
    parts["summarise days"] = clock.perf_counter() - started
    started = clock.perf_counter()
    reports.summarise_days(summaries, spec=spec, period=period)
    parts["merge"] = clock.perf_counter() - started
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    year = [(FIRST_DAY + timedelta(days=i), 1370) for i in range(365)]
    day = cached("day-2000-rated", [(date(2026, 12, 4), 2000)])
    big = cached("year-500k-rated", year)
    whole_year = reports.range_period("2026-01-01", "2026-12-31")
    ok = True
    with tempfile.TemporaryDirectory(prefix="hallq-report-cache-") as tmp:
        year_cache, day_cache = Path(tmp) / "year", Path(tmp) / "day"
        for label, forget_months in (("one year, cold cache", False), ("one year, days kept, months not", True)):
            if forget_months:
                with closing(sqlite3.connect(year_cache / cache.CACHE_FILE)) as db:
                    db.execute("DELETE FROM months")
                    db.commit()
            started, cpu_started = clock.perf_counter(), clock.thread_time()
            cache.build_report(big, spec=hall(), period=whole_year, cache_dir=year_cache)
            print(f"{label:38} {(clock.perf_counter() - started) * 1000:8.0f} ms  cpu "
                  f"{(clock.thread_time() - cpu_started) * 1000:6.0f} ms  (once; the days and months are kept)")
        product_share = budget.DEFAULT_CPU_SHARE
        service_b = reports.Filters(service="B")
        for label, path, period, target_s, cache_dir, filters, share, burst in (
            ("one day, 2,000 tickets (open day)", day, reports.day_period("2026-12-04"), 0.1, day_cache, None, None,
             None),
            ("one year, 500,050 tickets, warm", big, whole_year, 2.0, year_cache, None, None, None),
            ("one year, as the manager makes it", big, whole_year, 2.0, year_cache, None, product_share, None),
            (f"one year, held to {product_share} of a core", big, whole_year, 2.0, year_cache, None, product_share, 0),
            ("one day of that year, warm", big, reports.day_period("2026-12-04"), 0.1, year_cache, None, None, None),
            ("one year, service B", big, whole_year, 2.0, year_cache, service_b, None, None),
            (f"one year, service B, held to {product_share}", big, whole_year, None, year_cache, service_b,
             product_share, 0),
            ("one year, counter 5, priority", big, whole_year, 2.0, year_cache,
             reports.Filters(counter="5", lane="priority"), None, None),
            ("one year, no cache", big, whole_year, None, None, None, None, None),
        ):
            times, cpu_times, result = timed(path, period, 1 if cache_dir is None else args.rounds,
                                             cache_dir=cache_dir, filters=filters, cpu_share=share, burst_s=burst)
            best, median = min(times), statistics.median(times)
            verdict = "" if target_s is None else f"target {target_s * 1000:.0f} ms  " + (
                "ok" if median <= target_s else "OVER")
            ok &= target_s is None or median <= target_s
            print(f"{label:38} {median * 1000:8.0f} ms  cpu {statistics.median(cpu_times) * 1000:6.0f} ms  "
                  f"best {best * 1000:6.0f} ms  {result.totals.outcomes.issued:>8,} tickets  {verdict}")
    parts = cold_parts(big, whole_year)
    print("a year from the ledger alone: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in parts.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
