"""The durable ledger: SQLite from the standard library, one file per hall.

Theory of operation: the ``journal`` table holds every event the engine emitted, in order; replaying it
rebuilds the engine exactly (see ``engine/core.py``). The ``tickets`` table is the history for reports,
one row per ticket (issued, printed, called and finished times, counter, outcome), kept up to date in the
same transaction as the journal. ``append`` commits durably (WAL, ``synchronous=FULL``: the commit has
reached the disk when it returns) and is called before any reply or broadcast, so a number a dispenser
printed is never handed out again, even after a power cut. Several commands' events may share one commit.

A file that is not a hallq ledger, belongs to another hall, or fails SQLite's integrity check is refused
with ``LedgerCorrupt``: the controller never silently starts again at ticket 1.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hall_controller.engine.events import (
    Event,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketPrinted,
    TicketTransferred,
    TicketVoided,
    from_records,
    to_record,
)
from hallq.errors import HallqError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq  INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at   TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    id             TEXT PRIMARY KEY,
    day            TEXT NOT NULL,
    number         TEXT NOT NULL,
    service        TEXT NOT NULL,
    origin_service TEXT NOT NULL,
    priority       INTEGER NOT NULL,
    category       TEXT,
    dispenser      TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    issued_at      TEXT NOT NULL,
    ahead          INTEGER NOT NULL,
    estimated_wait_s INTEGER NOT NULL,
    state          TEXT NOT NULL,
    printed_at     TEXT,
    called_at      TEXT,
    counter        TEXT,
    recalls        INTEGER NOT NULL DEFAULT 0,
    finished_at    TEXT,
    void_reason    TEXT,
    UNIQUE (day, dispenser, request_id)
);
CREATE INDEX IF NOT EXISTS tickets_by_day ON tickets (day, service, number);
CREATE INDEX IF NOT EXISTS journal_days ON journal (seq) WHERE kind = 'day_started';
"""


# SQLite's own verdicts on a file's contents; any other error at open is about the storage, not the file.
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


class LedgerError(HallqError, OSError):
    """The ledger cannot be written (disk full, read-only, I/O error); nothing of the batch was stored."""


class LedgerCorrupt(HallqError, RuntimeError):
    """The ledger file is damaged or not this hall's; the controller must not start on it."""


class Ledger:
    """The journal and the ticket history of one hall, in ``path`` (created if missing)."""

    def __init__(self, path: Path, *, hall_id: str) -> None:
        self.path = path
        self.hall_id = hall_id
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        try:
            self._prepare()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if getattr(exc, "sqlite_errorname", "") in _DAMAGED:
                raise LedgerCorrupt(f"ledger {path} is damaged or not a hallq ledger: {exc}") from None
            # Cannot open, read-only, I/O error, full: the file may be fine; the storage under it is not.
            raise LedgerError(f"cannot use ledger {path}: {exc} (is its file system read-only or full, or the "
                              "file not writable by this user?)") from None
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise LedgerCorrupt(f"ledger {path} is damaged or not a hallq ledger: {exc}") from None

    def _prepare(self) -> None:
        db = self._db
        # Read before writing anything: a damaged file must be refused, not "repaired" by new tables.
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise sqlite3.DatabaseError("cannot switch to WAL journal mode")
        db.execute("PRAGMA synchronous=FULL")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        db.executescript(_SCHEMA)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            if db.execute("SELECT count(*) FROM journal").fetchone()[0]:
                raise sqlite3.DatabaseError("journal without meta data")
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [("schema_version", str(SCHEMA_VERSION)), ("hall", self.hall_id)])
            db.execute("COMMIT")
            return
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {meta.get('schema_version')} is not {SCHEMA_VERSION}")
        if meta.get("hall") != self.hall_id:
            raise LedgerCorrupt(f"ledger {self.path} belongs to hall {meta.get('hall')!r}, not {self.hall_id!r}")

    def append(self, events: Sequence[Event]) -> None:
        """Store the events durably, all or none; raises LedgerError if the disk refuses."""
        if not events:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for event in events:
                db.execute("INSERT INTO journal (kind, at, data) VALUES (?, ?, ?)", to_record(event))
                self._update_history(event)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("ledger rollback failed path=%s", self.path)
            raise LedgerError(f"cannot write ledger {self.path}: {exc}") from None

    def _update_history(self, event: Event) -> None:
        sql: str
        args: tuple[Any, ...]
        at = event.at.isoformat()
        match event:
            case TicketIssued():
                sql = ("INSERT INTO tickets (id, day, number, service, origin_service, priority, category, dispenser,"
                       " request_id, issued_at, ahead, estimated_wait_s, state)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting')")
                args = (event.ticket_id, event.day, event.number, event.service, event.service, int(event.priority),
                        event.category, event.dispenser, event.request_id, at, event.ahead, event.estimated_wait_s)
            case TicketPrinted():
                sql, args = "UPDATE tickets SET printed_at = ? WHERE id = ?", (at, event.ticket_id)
            case TicketCalled(recall=False):
                sql = "UPDATE tickets SET state = 'called', called_at = ?, counter = ? WHERE id = ?"
                args = (at, event.counter, event.ticket_id)
            case TicketCalled(recall=True):
                sql, args = "UPDATE tickets SET recalls = recalls + 1 WHERE id = ?", (event.ticket_id,)
            case TicketFinished():
                sql = "UPDATE tickets SET state = ?, finished_at = ? WHERE id = ?"
                args = (event.outcome, at, event.ticket_id)
            case TicketTransferred():
                sql = "UPDATE tickets SET state = 'waiting', service = ?, counter = NULL, called_at = NULL WHERE id = ?"
                args = (event.to_service, event.ticket_id)
            case TicketVoided():
                sql = "UPDATE tickets SET state = 'void', finished_at = ?, void_reason = ? WHERE id = ?"
                args = (at, event.reason, event.ticket_id)
            case TicketExpired():
                sql, args = "UPDATE tickets SET state = 'expired', finished_at = ? WHERE id = ?", (at, event.ticket_id)
            case _:
                return
        self._db.execute(sql, args)

    def events(self, *, since_last_day: bool = False) -> Iterator[Event]:
        """Stored events, oldest first: all of them, or from the last ``DayStarted`` on (enough to restore the
        engine, since that event carries everything that outlives a day)."""
        first = 0
        if since_last_day:
            row = self._db.execute("SELECT max(seq) FROM journal WHERE kind = 'day_started'").fetchone()
            first = row[0] or 0
        cursor = self._db.execute("SELECT kind, at, data FROM journal WHERE seq >= ? ORDER BY seq", (first,))
        while rows := cursor.fetchmany(4096):
            yield from from_records(rows)

    def durability(self) -> tuple[str, int]:
        """(journal mode, synchronous level) of the open connection: ("wal", 2) means WAL with FULL sync."""
        mode = str(self._db.execute("PRAGMA journal_mode").fetchone()[0])
        return mode, int(self._db.execute("PRAGMA synchronous").fetchone()[0])

    def count_events(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM journal").fetchone()[0])

    def history(self, day: str | None = None) -> list[dict[str, Any]]:
        """Tickets as rows (for reports and tests), in issue order: one business day's, or all."""
        if day is None:
            cursor = self._db.execute("SELECT * FROM tickets ORDER BY rowid")
        else:
            cursor = self._db.execute("SELECT * FROM tickets WHERE day = ? ORDER BY rowid", (day,))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self._db.close()
