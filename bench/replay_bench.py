"""The controller's restore on its own, in this process: no broker, no controller process. Run:
.venv/bin/python -m bench.replay_bench [--tickets N] [--repeat N]

Writes a ledger of ``--tickets`` tickets waiting (default 100,000; through the real engine and ledger, as
``bench.controller_bench`` does for its restart), then times, best and median of ``--repeat`` runs each:
  1. reading the journal: ``Ledger.events(since_last_day=True)`` into a list (SQLite rows → events);
  2. the restore the controller does at start: ``Engine.replay`` of those events straight from the ledger.
2 is the part of ``controller_bench``'s "restart → first answer" (≤ 2 s end to end) that grows with the ledger;
the rest is the process start and the broker connection.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import bench_hall_toml, report, write_waiting_ledger
from hall_controller import config as config_mod
from hall_controller.engine import Engine
from hall_controller.ledger import Ledger


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hallq-replay-") as tmp:
        config = Path(tmp) / "hall.toml"
        config.write_text(bench_hall_toml(dispensers=50), encoding="utf-8")
        path = Path(tmp) / "ledger.sqlite3"
        write_waiting_ledger(config, path, args.tickets)
        spec = config_mod.load(config).hall
        ledger = Ledger(path, hall_id=spec.id)
        events = ledger.count_events()
        read = timed(lambda: list(ledger.events(since_last_day=True)), args.repeat)
        replay = timed(lambda: Engine(spec).replay(ledger.events(since_last_day=True)), args.repeat)
        ledger.close()
        with sqlite3.connect(path) as db:
            journal_bytes = db.execute("SELECT sum(length(data)) FROM journal").fetchone()[0]
        db.close()
    data = {"tickets": args.tickets, "events": events, "journal_data_bytes": journal_bytes,
            "read_s": [round(s, 4) for s in read], "replay_s": [round(s, 4) for s in replay]}
    rows = [
        ("events in the journal", f"{events:,}", "", True),
        ("journal data, bytes per event", f"{journal_bytes / events:.0f}", "(info)", True),
        ("read events, best / median", f"{min(read):.3f} / {statistics.median(read):.3f} s", "(info)", True),
        ("restore (replay), best / median", f"{min(replay):.3f} / {statistics.median(replay):.3f} s", "≤ 2 s",
         statistics.median(replay) <= 2),
    ]
    report("replay", rows, data)
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
