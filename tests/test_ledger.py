"""The SQLite ledger: durable journal, ticket history, and refusal of damaged files."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from hall_controller.engine import Engine
from hall_controller.engine.events import DayStarted
from hall_controller.ledger import Ledger, LedgerCorrupt, LedgerError
from tests.engine_builders import Driver, hall


def _day(tmp_path: Path) -> tuple[Ledger, Driver]:
    ledger = Ledger(tmp_path / "ledger.sqlite3", hall_id="h")
    d = Driver(Engine(hall()))
    first = d.issue("A")
    d.issue("B", priority=True)
    d.printed(first.ticket_id or "", ok=True)
    d.counter("3", "next")
    d.counter("3", "recall")
    d.counter("3", "complete", after_s=200)
    d.counter("1", "next")
    d.counter("1", "no_show")
    ledger.append(d.events)  # type: ignore[arg-type]
    return ledger, d


def test_the_ledger_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3", hall_id="h")
    assert ledger.durability() == ("wal", 2)


def test_reopening_replays_to_the_same_engine(tmp_path: Path) -> None:
    ledger, d = _day(tmp_path)
    ledger.close()
    reopened = Ledger(tmp_path / "ledger.sqlite3", hall_id="h")
    engine = Engine(hall())
    engine.replay(reopened.events())
    assert engine.fingerprint() == d.engine.fingerprint()


def test_history_keeps_each_tickets_times_counter_and_outcome(tmp_path: Path) -> None:
    ledger, d = _day(tmp_path)
    rows = {r["number"]: r for r in ledger.history(d.engine.day)}
    a1, ub1 = rows["A001"], rows["UB001"]
    assert (a1["state"], a1["counter"], a1["recalls"]) == ("served", "3", 1)
    assert a1["printed_at"] is not None
    assert a1["issued_at"] < a1["called_at"] < a1["finished_at"]
    assert (ub1["state"], ub1["counter"], ub1["priority"], ub1["category"]) == ("no_show", "1", 1, "elderly")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(LedgerCorrupt, match="damaged or not a hallq ledger"):
        Ledger(path, hall_id="h")


def test_a_truncated_ledger_is_refused_not_reset(tmp_path: Path) -> None:
    ledger, d = _day(tmp_path)
    before = len(d.events)
    for _ in range(40):  # enough events for several pages
        d.issue("A")
    ledger.append(d.events[before:])  # type: ignore[arg-type]
    ledger.close()
    path = tmp_path / "ledger.sqlite3"
    data = path.read_bytes()
    assert len(data) > 8192
    path.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(LedgerCorrupt):
        Ledger(path, hall_id="h")


def test_another_halls_ledger_is_refused(tmp_path: Path) -> None:
    Ledger(tmp_path / "ledger.sqlite3", hall_id="other").close()
    with pytest.raises(LedgerCorrupt, match="belongs to hall 'other'"):
        Ledger(tmp_path / "ledger.sqlite3", hall_id="h")


def test_a_refused_write_stores_nothing_of_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger, d = _day(tmp_path)
    stored = ledger.count_events()
    # Fill the "disk": SQLite refuses to grow the file past max_page_count, exactly as on a full disk.
    with sqlite3.connect(path) as probe:
        pages = probe.execute("PRAGMA page_count").fetchone()[0]
    ledger._db.execute(f"PRAGMA max_page_count = {pages}")
    before = len(d.events)
    for _ in range(400):
        d.issue("A")
    with pytest.raises(LedgerError, match="full"):
        ledger.append(d.events[before:])  # type: ignore[arg-type]
    assert ledger.count_events() == stored


def test_restoring_from_the_last_business_day_equals_a_full_replay(tmp_path: Path) -> None:
    ledger, d = _day(tmp_path)
    before = len(d.events)
    d.now += timedelta(days=1)
    d.issue("A")                      # expires yesterday's open tickets and starts a new day
    d.counter("2", "next")
    ledger.append(d.events[before:])  # type: ignore[arg-type]
    tail = list(ledger.events(since_last_day=True))
    assert isinstance(tail[0], DayStarted)
    assert len(tail) < ledger.count_events()
    engine = Engine(hall())
    engine.replay(tail)
    assert engine.fingerprint() == d.engine.fingerprint()
