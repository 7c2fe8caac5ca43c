"""Reading the controller's ledger for reports: read-only, by business days, while the controller writes.

Theory of operation: the journal is in seq order, and every ticket of business day D is issued after D's
``DayStarted`` and ends (expires, at the latest) before the next day's ``DayStarted``. So the events of the
business days FROM..TO are the journal rows from the first ``DayStarted`` of a day ≥ FROM up to, not including,
the first ``DayStarted`` of a day > TO: a range of the primary key, found through the controller's own partial
index ``journal_days`` (one row per business day). Nothing is compared on ``at`` (a clock step can put times
out of order; seq never is), and only the kinds a report uses are decoded (a ticket's print report and the
counters' accepted commands are about half of the journal).

The connection is SQLite's ``mode=ro``: it cannot write or create the file, and in WAL mode the controller
goes on committing meanwhile; a reading sees the journal as of one commit (one read transaction). Rows are
decoded with ``hall_controller.engine.events.from_records`` in batches, never parsed here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from hall_controller.engine.events import (
    ClockStepped,
    CounterStatusChanged,
    DayCorrected,
    DayStarted,
    Event,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketTransferred,
    TicketVoided,
    from_records,
)
from hallq.errors import HallqError

BATCH_ROWS = 20_000
# The kinds a report reads; the others (print reports, accepted commands) are skipped inside SQLite.
REPORT_KINDS: tuple[str, ...] = tuple(cls.kind for cls in (
    DayStarted, DayCorrected, TicketIssued, TicketCalled, TicketFinished, TicketTransferred, TicketVoided,
    TicketExpired, CounterStatusChanged, ClockStepped))


class JournalError(HallqError, OSError):
    """The ledger cannot be read: missing, not a hallq ledger, damaged or unreadable (the message says which)."""


@dataclass(frozen=True, slots=True)
class SeqRange:
    """Journal rows ``first`` ≤ seq < ``stop`` (``stop`` None: to the end); ``days`` the business days that
    start inside it, as the ledger labels them."""

    first: int
    stop: int | None
    days: tuple[str, ...]


def read_events(path: Path, *, first_day: date, last_day: date, kinds: tuple[str, ...] = REPORT_KINDS,
                batch_rows: int = BATCH_ROWS) -> Iterator[Event]:
    """The events of business days ``first_day``..``last_day`` (inclusive) in journal order, of ``kinds`` only.

    Reads ``path`` read-only (never creates or changes it; fine while the controller runs). Raises
    ``JournalError`` when the file is missing, unreadable or not a ledger. The generator holds one read
    transaction until exhausted or closed."""
    if not path.is_file():
        raise JournalError(f"there is no ledger {path}")
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open ledger {path}: {exc}") from None
    with closing(db):
        try:
            db.execute("BEGIN")  # one snapshot for the day index and the rows
            span = seq_range(db, first_day=first_day, last_day=last_day)
            if span is None:
                return
            marks = ",".join("?" * len(kinds))
            if span.stop is None:
                cursor = db.execute(f"SELECT kind, at, data FROM journal WHERE seq >= ? AND kind IN ({marks}) "  # noqa: S608 - only '?' marks
                                    "ORDER BY seq", (span.first, *kinds))
            else:
                cursor = db.execute(f"SELECT kind, at, data FROM journal WHERE seq >= ? AND seq < ? "  # noqa: S608
                                    f"AND kind IN ({marks}) ORDER BY seq", (span.first, span.stop, *kinds))
            while rows := cursor.fetchmany(batch_rows):
                yield from from_records(rows)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read ledger {path}: {exc} (is it a hallq ledger?)") from None


def seq_range(db: sqlite3.Connection, *, first_day: date, last_day: date) -> SeqRange | None:
    """Where business days ``first_day``..``last_day`` lie in the journal (see the module docstring); None
    when the ledger has no such day."""
    rows = db.execute("SELECT seq, kind, at, data FROM journal WHERE kind = 'day_started' ORDER BY seq").fetchall()
    starts = [(row[0], event) for row, event in zip(rows, from_records([r[1:] for r in rows]), strict=True)
              if isinstance(event, DayStarted)]
    first_text, last_text = first_day.isoformat(), last_day.isoformat()
    first = next((seq for seq, event in starts if event.day >= first_text), None)
    if first is None:
        return None
    stop = next((seq for seq, event in starts if event.day > last_text), None)
    if stop is not None and stop <= first:
        return None
    days = tuple(event.day for seq, event in starts if seq >= first and (stop is None or seq < stop))
    return SeqRange(first=first, stop=stop, days=days)
