"""Do the manager's reports slow the hall down? Ticket round trips with and without reports running meanwhile.

    .venv/bin/python -m bench.report_load_bench [--rounds 3] [--trips 1000] [--load-s 5] [--phases ...]

A real Mosquitto (the hall's provisioned ACL), the real controller on a fresh ledger, 50 dispensers
(``bench.controller_bench``'s pieces). In each round, the phases in turn (the order rotates from round to
round): no reports; then a report process whose reports are made as the manager makes them, on a thread of
their own (``manager.budget.report_executor``'s kind), with that thread's priority and CPU budget by phase:

* ``reports``: the normal priority, no budget (how reports ran before they yielded);
* ``idle_full``: the thread at ``SCHED_IDLE`` and nice 19, no budget;
* ``nice19_budget``: the thread at nice 19 (not idle), within the default share of one core;
* ``normal_budget``: the normal priority, within the default share;
* ``product``: what the manager does (``SCHED_IDLE``, nice 19, the default share);
* ``product_share10``: the same within a tenth of a core (``--cpu-share 0.1``).

Nothing else lowers the process. The report loop goes through the manager's report API
(``manager.cache.build_report`` with the phase's ``CpuBudget``, no memo: each report is made): the year report
over the 500,000-ticket ledger of ``bench.report_bench`` (its cache warm), then today's report on the
controller's live ledger (the open day, always read from the journal, in a read transaction while the
controller commits); with ``--year-only``, the year report alone. With a warm year report at 0.1 s of CPU, the
live day's report is most of the loop's work: the bench's controller issues 2,500 tickets a second, so today
grows to tens of thousands of tickets (0.35-0.77 s of CPU a report, against a real hall's 10-40 ms), and the loop
then mostly reads the live ledger while the controller writes it. Each phase measures the sequential round trip
of one dispenser (p50, p99) and the latency of 50 concurrent dispensers (p50, p99); the figures are the medians
over the rounds. The target (the hall manager's issue) is the round trip's p99 while 50 dispensers draw tickets:
at most 20% above the phase without reports. The sequential figure (one dispenser alone, the hall otherwise
idle) is shown beside it: on a 2-core machine any report thread, even at SCHED_IDLE, adds a few milliseconds
to the p99 of a lone round trip of about 1 ms (the waking controller or broker finds a core busy). The load
average is printed each round.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import report_bench
from bench.common import bench_hall_toml, provisioned_broker, summary_ms
from bench.controller_bench import TOPICS, Controller, Inbox, concurrent_load, first_answer, links, round_trips
from hall_controller import config as config_mod
from manager import budget, cache, reports

PHASES = ("none", "reports", "idle_full", "nice19_budget", "normal_budget", "product", "product_share10")
DEFAULT_PHASES = ("none", "reports", "idle_full", "nice19_budget", "product")
# The report thread's priority (normal, nice19, idle: SCHED_IDLE and nice 19) and CPU share (1: no budget).
PRIORITY = {"reports": "normal:1", "idle_full": "idle:1", "nice19_budget": f"nice19:{budget.DEFAULT_CPU_SHARE}",
            "normal_budget": f"normal:{budget.DEFAULT_CPU_SHARE}", "product": f"idle:{budget.DEFAULT_CPU_SHARE}",
            "product_share10": "idle:0.1"}
TARGET_RATIO = 1.2


def report_loop(*, year_ledger: Path, year_cache: Path, live_config: Path, live_ledger: Path, live_cache: Path,
                priority: str, ready: Path, with_today: bool = True) -> int:
    """The report process: year report, today's report (unless not ``with_today``), again, until SIGTERM, on a report
    thread; prints one JSON line per pair. ``priority``: ``LEVEL:SHARE`` (see ``PRIORITY``)."""
    level, share_text = priority.split(":")
    share = float(share_text)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    year_spec = report_bench.hall()
    year = reports.range_period("2026-01-01", "2026-12-31")
    live_spec = config_mod.load(live_config).hall

    def loop() -> None:
        if level != "normal":
            budget.lower_this_thread(idle=level == "idle")
        while not stop.is_set():
            started, cpu0 = time.perf_counter(), time.thread_time()
            year_budget = budget.CpuBudget(share)
            cache.build_report(year_ledger, spec=year_spec, period=year, cache_dir=year_cache, budget=year_budget)
            middle, cpu1 = time.perf_counter(), time.thread_time()
            now = datetime.now(live_spec.zone)
            today = reports.day_period(live_spec.business_day(now))
            if with_today and live_ledger.exists():
                cache.build_report(live_ledger, spec=live_spec, period=today, now=now, cache_dir=live_cache,
                                   budget=budget.CpuBudget(share))
            done, cpu2 = time.perf_counter(), time.thread_time()
            print(json.dumps({"year_s": round(middle - started, 3), "year_cpu_s": round(cpu1 - cpu0, 3),
                              "year_slept_s": round(year_budget.slept_s, 3), "day_s": round(done - middle, 4),
                              "day_cpu_s": round(cpu2 - cpu1, 4)}), flush=True)
            ready.touch()

    thread = threading.Thread(target=loop, name="report")
    thread.start()
    while thread.is_alive():  # the main thread stays free for the signal
        thread.join(0.2)
    return 0


class ReportProcess:
    """``report_loop`` in a child process; ``start`` returns once its first pair of reports is done."""

    def __init__(self, args: list[str], *, log: Path, ready: Path) -> None:
        self.args = args
        self.log = log
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReportProcess:
        self.ready.unlink(missing_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.report_load_bench", "--report-loop",
                                          *self.args], stdout=out)
        deadline = time.monotonic() + 120
        while not self.ready.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the report process did not make its first reports")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(broker: Any, *, trips: int, load_s: float) -> dict[str, Any]:
    inbox: Inbox = queue.Queue()
    [b1] = links(broker, ["b1"], TOPICS.dispenser_ticket, inbox)
    round_trips(inbox, b1, 100)  # warm-up
    sequential = summary_ms(round_trips(inbox, b1, trips))
    b1.stop()
    load = concurrent_load(broker, load_s, 50)
    return {"round_trip": sequential, "concurrent_50": load}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trips", type=int, default=1000)
    parser.add_argument("--load-s", type=float, default=5.0)
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(DEFAULT_PHASES),
                        help="which phases to run (none is always run)")
    parser.add_argument("--year-only", action="store_true",
                        help="the report loop makes year reports only (no report of the live ledger's day)")
    parser.add_argument("--report-loop", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.report_loop:
        paths = [Path(text) for text in rest]
        return report_loop(year_ledger=paths[0], year_cache=paths[1], live_config=paths[2], live_ledger=paths[3],
                           live_cache=paths[4], priority=rest[5], ready=paths[6], with_today=rest[7] == "today")

    year_ledger = report_bench.cached("year-500k", [(report_bench.FIRST_DAY + timedelta(days=i), 1370)
                                                    for i in range(365)])
    with tempfile.TemporaryDirectory(prefix="hallq-report-load-") as tmp:
        work = Path(tmp)
        year_cache = work / "year-cache"
        started = time.perf_counter()
        year = reports.range_period("2026-01-01", "2026-12-31")
        cache.build_report(year_ledger, spec=report_bench.hall(), period=year, cache_dir=year_cache)
        print(f"year cache warmed in {time.perf_counter() - started:.1f} s")
        config = work / "hall.toml"
        config.write_text(bench_hall_toml(dispensers=50, username="controller"), encoding="utf-8")
        state = work / "state"
        live_ledger = state / "ledger.sqlite3"
        results: dict[str, list[dict[str, Any]]] = {phase: [] for phase in PHASES}
        loops: dict[str, list[dict[str, float]]] = {phase: [] for phase in PHASES[1:]}
        with provisioned_broker(work / "broker", config) as broker, Controller(config, broker, state):
            inbox: Inbox = queue.Queue()
            [b1] = links(broker, ["b1"], TOPICS.dispenser_ticket, inbox)
            first_answer(broker, inbox, b1, time.perf_counter())  # the controller is up and the day started
            b1.stop()
            for n in range(args.rounds):
                chosen = [p for p in PHASES if p == "none" or p in args.phases]
                order = chosen[n % len(chosen):] + chosen[:n % len(chosen)]
                for phase in order:
                    if phase == "none":
                        results[phase].append(measure(broker, trips=args.trips, load_s=args.load_s))
                        continue
                    log = work / f"reports-{phase}-{n}.jsonl"
                    loop_args = [str(year_ledger), str(year_cache), str(config), str(live_ledger),
                                 str(work / "live-cache"), PRIORITY[phase],
                                 str(work / "ready"), "year" if args.year_only else "today"]
                    with ReportProcess(loop_args, log=log, ready=work / "ready"):
                        results[phase].append(measure(broker, trips=args.trips, load_s=args.load_s))
                    loops[phase] += [json.loads(line) for line in log.read_text().splitlines()[1:]]
                print(f"round {n + 1} (load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}): " + "  ".join(
                    f"{phase} p99 {results[phase][-1]['round_trip']['p99_ms']:.2f}/"
                    f"{results[phase][-1]['concurrent_50']['latency']['p99_ms']:.2f} ms" for phase in order))

    def med(phase: str, pick: str) -> float:
        """The median over the rounds of one figure of ``phase``."""
        figures = {"seq_p50": ("round_trip", "p50_ms"), "seq_p99": ("round_trip", "p99_ms"),
                   "c50_p50": ("latency", "p50_ms"), "c50_p99": ("latency", "p99_ms")}
        if pick == "tps":
            return statistics.median(float(r["concurrent_50"]["tickets_per_s"]) for r in results[phase])
        part, name = figures[pick]
        return statistics.median(float((r[part] if part == "round_trip" else r["concurrent_50"][part])[name])
                                 for r in results[phase])

    ok = True
    print(f"\n{'phase':16} {'seq p50':>9} {'seq p99':>9} {'50-disp p50':>12} {'50-disp p99':>12} {'tickets/s':>10}")
    ran = [phase for phase in PHASES if results[phase]]
    for phase in ran:
        print(f"{phase:16} {med(phase, 'seq_p50'):7.2f}ms {med(phase, 'seq_p99'):7.2f}ms "
              f"{med(phase, 'c50_p50'):10.2f}ms {med(phase, 'c50_p99'):10.2f}ms {med(phase, 'tps'):10.0f}")
    for phase in ran[1:]:
        seq = med(phase, "seq_p99") / med("none", "seq_p99")
        c50 = med(phase, "c50_p99") / med("none", "c50_p99")
        verdict = "ok" if c50 <= TARGET_RATIO else "OVER"  # the target's measure: while 50 dispensers draw
        ok &= phase != "product" or verdict == "ok"
        years = [row["year_s"] for row in loops[phase]]
        year_cpus = [row["year_cpu_s"] for row in loops[phase]]
        days = [row["day_s"] for row in loops[phase]]
        day_cpus = [row["day_cpu_s"] for row in loops[phase]]
        print(f"{phase:16} p99 ×{c50:.2f} 50 dispensers (target ≤ ×{TARGET_RATIO}) {verdict}, ×{seq:.2f} one "
              f"sequential; meanwhile {len(years)} year reports (median {statistics.median(years or [0]):.2f} s, CPU "
              f"{statistics.median(year_cpus or [0]):.2f} s) and {len(days)} day reports (median "
              f"{statistics.median(days or [0]) * 1000:.0f} ms, "
              f"CPU {statistics.median(day_cpus or [0]) * 1000:.0f} ms)")
    stamp = date.today().isoformat()
    out = Path(__file__).parent / "results" / f"report-load-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"results": results, "report_loops": loops}, indent=1), encoding="utf-8")
    print(f"saved {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
