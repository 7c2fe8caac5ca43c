"""Reading the controller's ledger for reports: read-only, by business days, while the controller writes.

Theory of operation: the journal is in seq order, and a ``DayStarted`` opens each business day: every ticket
issued after it and before the next ``DayStarted`` is of that day and ends (expires, at the latest) before the
next one. So the journal cuts into **segments**, from one ``DayStarted`` (found through the controller's own
partial index ``journal_days``) up to the next; the last one, still open, is today. A segment's business day is
its ``DayStarted``'s, unless a ``DayCorrected`` inside it relabels it: the engine's way out of a day a clock
glitch put in the future moves the label back (never forward), to a day that may already have a segment of
its own. The business days FROM..TO are then the segments whose (corrected) day is in that range; since a
correction only moves back, a segment that started before FROM never is, and ``DayCorrected`` rows are looked
for only from the first segment that started on or after FROM. Nothing is compared on ``at`` (a clock step can
put times out of order; seq never is), and only the kinds a report uses are decoded (a ticket's print report and
the counters' accepted commands are about half of the journal).

The connection is SQLite's ``mode=ro``: it cannot write or create the file, and in WAL mode the controller
goes on committing meanwhile; ``open_journal`` holds one read transaction, so segments and events are seen as
of one commit. Rows are decoded with ``hall_controller.engine.events.from_records`` in batches, never parsed
here.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
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
    TicketRated,
    TicketTransferred,
    TicketVoided,
    from_records,
)
from hallq.errors import HallqError

BATCH_ROWS = 20_000
# The kinds a report reads; the others (print reports, accepted commands) are skipped inside SQLite.
REPORT_KINDS: tuple[str, ...] = tuple(cls.kind for cls in (
    DayStarted, DayCorrected, TicketIssued, TicketCalled, TicketFinished, TicketTransferred, TicketVoided,
    TicketExpired, CounterStatusChanged, ClockStepped, TicketRated))


class JournalError(HallqError, OSError):
    """The ledger cannot be read: missing, not a hallq ledger, damaged or unreadable (the message says which)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """Journal rows ``first`` ≤ seq < ``stop`` (``stop`` None: to the end, the day still open): one business
    day as its ``DayStarted`` (seq ``first``) labelled it, ``started``, and as it is after any ``DayCorrected``
    in it, ``day``. A segment that started before the range asked for keeps ``day`` = ``started`` unlooked-at."""

    first: int
    stop: int | None
    started: str
    day: str


class Journal:
    """A ledger open read-only, in one read transaction (``open_journal``)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    def first_row(self) -> tuple[int, str, str, str] | None:
        """The journal's first row (seq, kind, at, data): with the file's identity, what tells one ledger from
        another."""
        row = self._db.execute("SELECT seq, kind, at, data FROM journal ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def segments(self, *, first_day: date | None = None, known: Mapping[int, tuple[int, str]] | None = None,
                 ) -> list[Segment]:
        """Every segment, in journal order. ``DayCorrected`` rows are read from the first segment that started on
        or after ``first_day`` (None: all), except for closed segments whose day ``known`` gives already
        ({first: (stop, day)}, e.g. from a cache; a closed segment never changes)."""
        rows = self._db.execute("SELECT kind, at, data, seq FROM journal WHERE kind = 'day_started' "
                                "ORDER BY seq").fetchall()
        starts = [(int(row[3]), event.day) for row, event in zip(rows, from_records([r[:3] for r in rows]), strict=True)
                  if isinstance(event, DayStarted)]
        known = known or {}
        floor = first_day.isoformat() if first_day is not None else ""
        days: list[str] = []
        scan_from: int | None = None
        for index, (first, started) in enumerate(starts):
            stop = starts[index + 1][0] if index + 1 < len(starts) else None
            told = known.get(first)
            if stop is not None and told is not None and told[0] == stop:
                days.append(told[1])
                continue
            days.append(started)
            if started >= floor and scan_from is None:
                scan_from = first
        if scan_from is not None:
            seqs = [first for first, _ in starts]
            rows = self._db.execute("SELECT kind, at, data, seq FROM journal WHERE seq >= ? AND kind = "
                                    "'day_corrected' ORDER BY seq", (scan_from,)).fetchall()
            for row, event in zip(rows, from_records([r[:3] for r in rows]), strict=True):
                index = bisect_right(seqs, int(row[3])) - 1
                if index >= 0 and isinstance(event, DayCorrected):
                    days[index] = event.day
        return [Segment(first, starts[index + 1][0] if index + 1 < len(starts) else None, started, days[index])
                for index, (first, started) in enumerate(starts)]

    def events(self, segments: Sequence[Segment], *, kinds: tuple[str, ...] = REPORT_KINDS,
               batch_rows: int = BATCH_ROWS) -> Iterator[Event]:
        """The events of ``segments`` (in journal order), of ``kinds`` only; adjacent segments are one query."""
        runs: list[list[int | None]] = []
        for segment in sorted(segments, key=lambda s: s.first):
            if runs and runs[-1][1] == segment.first:
                runs[-1][1] = segment.stop
            else:
                runs.append([segment.first, segment.stop])
        marks = ",".join("?" * len(kinds))
        for first, stop in runs:
            if stop is None:
                cursor = self._db.execute(f"SELECT kind, at, data FROM journal WHERE seq >= ? "  # noqa: S608 - '?' marks
                                          f"AND kind IN ({marks}) ORDER BY seq", (first, *kinds))
            else:
                cursor = self._db.execute(f"SELECT kind, at, data FROM journal WHERE seq >= ? AND seq < ? "  # noqa: S608
                                          f"AND kind IN ({marks}) ORDER BY seq", (first, stop, *kinds))
            while rows := cursor.fetchmany(batch_rows):
                yield from from_records(rows)


@contextmanager
def open_journal(path: Path) -> Iterator[Journal]:
    """The ledger at ``path``, read-only and as of one commit while the block runs. Raises ``JournalError``
    when it is missing, unreadable or not a ledger (also from inside the block)."""
    if not path.is_file():
        raise JournalError(f"there is no ledger {path}")
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open ledger {path}: {exc}") from None
    with closing(db):
        try:
            db.execute("BEGIN")
            yield Journal(db, path)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read ledger {path}: {exc} (is it a hallq ledger?)") from None


def read_events(path: Path, *, first_day: date, last_day: date, kinds: tuple[str, ...] = REPORT_KINDS,
                batch_rows: int = BATCH_ROWS) -> Iterator[Event]:
    """The events of business days ``first_day``..``last_day`` (inclusive) in journal order, of ``kinds`` only.

    Reads ``path`` read-only (never creates or changes it; fine while the controller runs). Raises
    ``JournalError`` when the file is missing, unreadable or not a ledger. The generator holds one read
    transaction until exhausted or closed."""
    with open_journal(path) as journal:
        wanted = in_range(journal.segments(first_day=first_day), first_day=first_day, last_day=last_day)
        yield from journal.events(wanted, kinds=kinds, batch_rows=batch_rows)


def in_range(segments: Sequence[Segment], *, first_day: date, last_day: date) -> list[Segment]:
    """The segments of business days ``first_day``..``last_day``."""
    first_text, last_text = first_day.isoformat(), last_day.isoformat()
    return [s for s in segments if first_text <= s.day <= last_text]
