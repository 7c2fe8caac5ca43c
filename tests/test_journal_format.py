"""The journal's record format: fields by name, and ledgers of earlier releases (fields by position) still
replaying to the same engine."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from hall_controller.engine import Engine
from hall_controller.engine.events import (
    ClockChanged,
    DayStarted,
    Event,
    TicketCalled,
    from_records,
    to_record,
)
from hall_controller.ledger import Ledger, LedgerCorrupt
from hallq.errors import InvariantError
from tests.engine_builders import MORNING, Driver, hall


def positional_record(event: Event) -> tuple[str, str, str]:
    """``to_record`` as the releases before field names wrote it (frozen here: the product no longer writes it)."""
    names = [f.name for f in dataclasses.fields(event) if f.name != "at"]
    values = [getattr(event, name) for name in names]
    return event.kind, event.at.isoformat(), json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def busy_day(d: Driver) -> None:
    """Most kinds of event: tickets printed, voided, called, recalled, served, missed and transferred, counters
    paused and opened, a clock step, and a second business day."""
    first = d.issue("A")
    d.issue("B", priority=True)
    d.printed(first.ticket_id or "", ok=True)
    void = d.issue("A")
    d.printed(void.ticket_id or "", ok=False, reason="paper_out")
    d.issue("A")
    d.counter("3", "next")
    d.counter("3", "recall")
    d.counter("3", "complete", after_s=200)
    d.counter("1", "next")
    d.counter("1", "no_show")
    d.counter("3", "next")
    d.counter("3", "transfer", service="B")
    d.counter("2", "pause")
    d.counter("2", "open")
    d.events.extend(d.engine.handle(ClockChanged(step_s=30.0, source="synchronised"), now=d.now).events)
    d.issue("A")
    d.now += timedelta(days=1)
    d.issue("A")
    d.counter("2", "next")


def old_ledger(path: Path, events: list[Event]) -> None:
    """A ledger exactly as the releases before field names left it: schema version 1, positional records."""
    ledger = Ledger(path, hall_id="h")
    ledger.append(events)
    ledger.close()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq FROM journal ORDER BY seq").fetchall()
        assert len(rows) == len(events)
        db.executemany("UPDATE journal SET data = ? WHERE seq = ?",
                       [(positional_record(event)[2], seq) for (seq,), event in zip(rows, events, strict=True)])
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()


def driven() -> Driver:
    d = Driver(Engine(hall()))
    busy_day(d)
    return d


def journal_data(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        data = [row[0] for row in db.execute("SELECT data FROM journal ORDER BY seq")]
    db.close()
    return data


# --- the format ---------------------------------------------------------------------------------------------


def test_a_record_holds_the_fields_by_name() -> None:
    event = TicketCalled(MORNING, ticket_id="t1", counter="5", seq=7, recall=False)
    kind, at, data = to_record(event)
    assert (kind, at) == ("ticket_called", MORNING.isoformat())
    assert json.loads(data) == {"ticket_id": "t1", "counter": "5", "seq": 7, "recall": False}


def test_every_kind_of_event_comes_back_equal() -> None:
    events: list[Event] = driven().events  # type: ignore[assignment]
    assert len({e.kind for e in events}) >= 10
    assert from_records([to_record(e) for e in events]) == events


def test_a_positional_record_of_an_earlier_release_is_read() -> None:
    events: list[Event] = driven().events  # type: ignore[assignment]
    assert from_records([positional_record(e) for e in events]) == events


def test_fields_a_newer_release_added_are_ignored() -> None:
    event = TicketCalled(MORNING, ticket_id="t1", counter="5", seq=7, recall=True)
    kind, at, data = to_record(event)
    newer = json.dumps({"display_hint": "blink", **json.loads(data), "at": "elsewhere", "kind": "x"})
    assert from_records([(kind, at, newer)]) == [event]


def test_fields_in_another_order_are_read_by_name() -> None:
    event = TicketCalled(MORNING, ticket_id="t1", counter="5", seq=7, recall=True)
    kind, at, _ = to_record(event)
    shuffled = json.dumps({"recall": True, "seq": 7, "counter": "5", "ticket_id": "t1"})
    assert from_records([(kind, at, shuffled)]) == [event]


def test_a_missing_field_with_a_default_takes_it() -> None:
    kind, at, _ = to_record(DayStarted(MORNING, day="2026-11-27", carry={"call_seq": 3}))
    [event] = from_records([(kind, at, '{"day":"2026-11-27"}')])
    assert event == DayStarted(MORNING, day="2026-11-27", carry={})


def test_a_missing_required_field_names_the_kind_and_the_field() -> None:
    kind, at, _ = to_record(TicketCalled(MORNING, ticket_id="t1", counter="5", seq=7, recall=False))
    with pytest.raises(InvariantError, match="'ticket_called' lacks the required field 'seq'"):
        from_records([(kind, at, '{"ticket_id":"t1","counter":"5","recall":false}')])


def test_an_unknown_kind_is_a_broken_ledger() -> None:
    for data in ('{"ticket_id":"t1"}', '["t1"]'):
        with pytest.raises(InvariantError, match="unknown event kind 'ticket_teleported'"):
            from_records([("ticket_teleported", MORNING.isoformat(), data)])


@pytest.mark.parametrize("data", ['["t1","5",7,false,"extra"]', '["t1"]', "7", '"t1"', "{nope"])
def test_a_record_of_the_wrong_shape_is_a_broken_ledger_naming_its_kind(data: str) -> None:
    with pytest.raises(InvariantError, match="'ticket_called'"):
        from_records([("ticket_called", MORNING.isoformat(), data)])


def test_a_record_with_a_bad_time_is_a_broken_ledger() -> None:
    _, _, data = to_record(TicketCalled(MORNING, ticket_id="t1", counter="5", seq=7, recall=False))
    with pytest.raises(InvariantError, match="'ticket_called' is malformed"):
        from_records([("ticket_called", "yesterday", data)])


# --- ledgers of earlier releases ------------------------------------------------------------------------------


def test_a_ledger_of_an_earlier_release_replays_to_the_same_engine(tmp_path: Path) -> None:
    d = driven()
    path = tmp_path / "ledger.sqlite3"
    old_ledger(path, d.events)  # type: ignore[arg-type]
    assert all(data.startswith("[") for data in journal_data(path))
    ledger = Ledger(path, hall_id="h")
    assert list(ledger.events()) == d.events
    engine = Engine(hall())
    engine.replay(ledger.events(since_last_day=True))
    assert engine.fingerprint() == d.engine.fingerprint()


def test_a_ledger_of_old_records_then_new_ones_replays_to_the_same_engine(tmp_path: Path) -> None:
    d = driven()
    path = tmp_path / "ledger.sqlite3"
    old_ledger(path, d.events)  # type: ignore[arg-type]
    before = len(d.events)
    d.issue("B", priority=True)
    d.counter("1", "next")
    d.counter("1", "complete", after_s=120)
    ledger = Ledger(path, hall_id="h")
    ledger.append(d.events[before:])  # type: ignore[arg-type]
    ledger.close()
    data = journal_data(path)
    assert data[before - 1].startswith("[") and data[before].startswith("{")
    reopened = Ledger(path, hall_id="h")
    assert list(reopened.events()) == d.events
    engine = Engine(hall())
    engine.replay(reopened.events(since_last_day=True))
    assert engine.fingerprint() == d.engine.fingerprint()


def test_opening_an_earlier_releases_ledger_marks_its_new_format(tmp_path: Path) -> None:
    """So that the earlier release, which would misread records with names, refuses the file instead."""
    path = tmp_path / "ledger.sqlite3"
    old_ledger(path, driven().events)  # type: ignore[arg-type]
    Ledger(path, hall_id="h").close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    db.close()


def test_a_ledger_of_an_unknown_later_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path, hall_id="h").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(LedgerCorrupt, match="schema version 3 is not one this release reads"):
        Ledger(path, hall_id="h")
