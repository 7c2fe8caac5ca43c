"""The durable ledger: SQLite from the standard library, one file per hall.

Theory of operation: the ``journal`` table holds every event the engine emitted, in order; replaying it
rebuilds the engine exactly (see ``engine/core.py``). The ``tickets`` table is the history for reports,
one row per ticket (issued, printed, called and finished times, counter, outcome), kept up to date in the
same transaction as the journal. ``append`` commits durably (WAL, ``synchronous=FULL``: the commit has
reached the disk when it returns) and is called before any reply or broadcast, so a number a dispenser
printed is never handed out again, even after a power cut. Several commands' events may share one commit.

A file that is not a hallq ledger, belongs to another hall, or fails SQLite's integrity check is refused
with ``LedgerCorrupt``: the controller never silently starts again at ticket 1.

Copies (``hall_controller/backup.py``) use three more pieces, all SQLite's own means: ``copy`` (the online
backup API: a consistent snapshot while the controller writes), ``inspect`` (a read-only check of a file no
controller has open, with the same identity checks as the controller's) and ``held_exclusively`` (the proof
that no process has the ledger open, and the guarantee that none opens it meanwhile).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hall_controller.engine.events import (
    Event,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketPrinted,
    TicketRated,
    TicketTransferred,
    TicketVoided,
    from_records,
    to_record,
)
from hallq.errors import HallqError

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.sqlite3"  # in the controller's state directory
# What SQLite keeps beside a database file: the WAL and its index in WAL mode, the rollback journal otherwise.
# They belong to the file: moved with it, never left beside another one (a WAL is replayed into whatever
# database file carries its name).
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")
# 1: the journal's records hold their fields as a JSON array by position; 2: as a JSON object by name
# (``engine/events.py``). A version-1 ledger is read as it is and marked 2 when opened for writing, since the
# records added from then on have names: a release that knows only 1 refuses the file instead of misreading them.
SCHEMA_VERSION = 2
_READABLE_VERSIONS = frozenset({"1", "2"})
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
CREATE TABLE IF NOT EXISTS ratings (
    ticket_id  TEXT PRIMARY KEY,
    rated_at   TEXT NOT NULL,
    number     TEXT NOT NULL,
    service    TEXT NOT NULL,
    counter    TEXT NOT NULL,
    level      TEXT NOT NULL,
    channel    TEXT NOT NULL,
    reasons    TEXT NOT NULL,
    comment    TEXT
);
CREATE INDEX IF NOT EXISTS journal_days ON journal (seq) WHERE kind = 'day_started';
"""


# SQLite's own verdicts on a file's contents; any other error at open is about the storage, not the file.
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
_BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
_TABLES = frozenset({"meta", "journal", "tickets"})
# SQLite's lock bytes, the same in every database file on every platform (sqlite.org/fileformat2.html, "The
# lock-byte page"; os_unix.c): PENDING_BYTE at 1 GiB, RESERVED_BYTE after it, then the 510 SHARED bytes.
_LOCK_BYTES_START = 0x4000_0000
_LOCK_BYTES_LENGTH = 2 + 510


class LedgerError(HallqError, OSError):
    """The ledger cannot be written (disk full, read-only, I/O error); nothing of the batch was stored."""


class LedgerCorrupt(HallqError, RuntimeError):
    """The ledger file is damaged or not this hall's; the controller must not start on it."""


class LedgerBusy(HallqError, OSError):
    """Another process has the ledger open (the controller, or a backup being taken)."""


class CopyError(HallqError, OSError):
    """A copy of the ledger cannot be written at ``path`` (the directory is missing or not writable, the disk
    is full)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot write {path}: {problem}")


class Ledger:
    """The journal and the ticket history of one hall, in ``path`` (created if missing)."""

    def __init__(self, path: Path, *, hall_id: str) -> None:
        self.path = path
        self.hall_id = hall_id
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _keep_private(path)
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
        _check_identity(meta, name=f"ledger {self.path}", hall_id=self.hall_id)
        if meta["schema_version"] != str(SCHEMA_VERSION):
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")

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
            case TicketRated():
                sql = ("INSERT OR IGNORE INTO ratings (ticket_id, rated_at, number, service, counter, level, channel,"
                       " reasons, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                args = (event.ticket_id, at, event.number, event.service, event.counter, event.level, event.channel,
                        ",".join(event.reasons), event.comment)
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


def _keep_private(path: Path) -> None:
    """Readable by its owner only, however the controller was started (systemd's ``UMask=0077`` or a shell's
    022): a missing ledger is created 0600 before SQLite opens it, since SQLite gives the -wal and -shm it creates
    the database file's mode; a ledger or side file an earlier run left readable by others is tightened."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILE_SUFFIXES)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(mode & 0o700)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("ledger file %s is readable by other users and cannot be made private: %s", file,
                        exc.strerror)


def _check_identity(meta: dict[str, str], *, name: str, hall_id: str) -> None:
    """The ledger's ``meta`` says it is of a schema this release reads and of hall ``hall_id``: the
    controller's own check at start, and ``inspect``'s."""
    if meta.get("schema_version") not in _READABLE_VERSIONS:
        raise sqlite3.DatabaseError(f"schema version {meta.get('schema_version')} is not one this release reads "
                                    f"({', '.join(sorted(_READABLE_VERSIONS))})")
    if meta.get("hall") != hall_id:
        raise LedgerCorrupt(f"{name} belongs to hall {meta.get('hall')!r}, not {hall_id!r}")


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot change ``path`` nor create it. (On a WAL-mode file that nobody has open, SQLite
    still leaves an empty -wal and -shm beside it: harmless, and the controller uses them as they are.)"""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)


def _refusal(exc: sqlite3.Error, what: str) -> HallqError:
    """The exception that says why SQLite could not read ``what``: damaged, busy, or the storage."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in _DAMAGED or not isinstance(exc, sqlite3.OperationalError):
        return LedgerCorrupt(f"{what} is damaged or not a hallq ledger: {exc}")
    if name in _BUSY:
        return LedgerBusy(f"{what} is locked by another process: {exc}")
    return LedgerError(f"cannot read {what}: {exc}")


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """What a checked ledger file holds, for the line an operator reads after a backup or a restore."""

    hall_id: str
    tickets: int
    events: int
    last_day: str | None  # the last business day with a ticket; None for a ledger without tickets


def inspect(path: Path, *, hall_id: str, name: str | None = None) -> LedgerSummary:
    """Check a ledger file that no controller has open (a backup, or a copy about to become the ledger)
    without changing it: SQLite's full ``integrity_check``, then what the controller checks at start (a hallq
    ledger of this schema, of hall ``hall_id``), and that its tables are all there (the controller would
    create missing ones; a copy must not need that).

    Raises ``LedgerCorrupt`` when the file fails, ``LedgerError`` when it cannot be read; the messages call
    the file ``name`` (default: its path)."""
    name = name or str(path)
    try:
        db = _read_only(path)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open {name}: {exc}") from None
    try:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check(20)").fetchall()]
        if problems != ["ok"]:
            raise LedgerCorrupt(f"{name} fails SQLite's integrity check: {'; '.join(problems)}")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if missing := sorted(_TABLES - tables):
            raise LedgerCorrupt(f"{name} is not a hallq ledger (no table {', '.join(missing)})")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            raise LedgerCorrupt(f"{name} is not a hallq ledger (its meta table is empty)")
        _check_identity(meta, name=name, hall_id=hall_id)
        tickets, last_day = db.execute("SELECT count(*), max(day) FROM tickets").fetchone()
        events = db.execute("SELECT count(*) FROM journal").fetchone()[0]
    except sqlite3.Error as exc:
        raise _refusal(exc, name) from None
    finally:
        db.close()
    return LedgerSummary(hall_id=hall_id, tickets=int(tickets), events=int(events), last_day=last_day)


def copy(source: Path, target: Path, *, name: str | None = None) -> None:
    """Copy the ledger at ``source`` into ``target`` (an empty file, which keeps its mode) with SQLite's
    online backup API, in one step: one read transaction, so the copy is exactly the ledger as of one commit,
    even while the controller keeps committing (in WAL mode a reader and the writer do not wait for each
    other; a backup in several steps would start again after each of the controller's commits). The copy is
    one self-contained file in rollback-journal mode, with nothing beside it. ``source`` is opened read-only and
    never created.

    Raises ``LedgerCorrupt`` (``source`` is not a database), ``LedgerBusy`` (a restore holds it),
    ``LedgerError`` (it cannot be read) or ``CopyError`` (``target`` cannot be written); the messages call
    ``source`` ``name`` (default: its path)."""
    name = name or str(source)
    if not source.is_file():
        raise LedgerError(f"there is no {name}")
    try:
        src = _read_only(source)
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise _refusal(exc, name) from None
    try:
        try:
            dst = sqlite3.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise CopyError(target, str(exc)) from None
        try:
            src.backup(dst, pages=-1)
            # The pages came from a WAL-mode file, header included: make the copy stand alone.
            dst.execute("PRAGMA journal_mode=DELETE").fetchone()
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorname", "") in _BUSY:
                raise LedgerBusy(f"{name} is locked by another process: {exc}") from None
            raise CopyError(target, str(exc)) from None
        finally:
            dst.close()
    finally:
        src.close()


@contextmanager
def held_exclusively(path: Path) -> Iterator[None]:
    """While the block runs, no other process has the ledger at ``path`` open, and none can open it.

    Why this is a proof: every SQLite connection to a WAL-mode database holds a read lock on the file's
    SHARED lock bytes for as long as it is open, idle or not (the controller's one connection does from its
    start to its stop; a backup's does while it copies). A write lock on PENDING, RESERVED and all the SHARED
    bytes, SQLite's own EXCLUSIVE lock, is therefore granted only when no connection is open, and keeps new ones
    out while held: they get SQLITE_BUSY (a controller started meanwhile exits with status 74 and systemd
    starts it again 5 s later, on whatever file is then in place). The lock is a POSIX record lock on a
    descriptor of its own, so SQLite in any process sees it, whoever owns the file. A missing ``path`` is
    created empty first, so that a controller starting meanwhile waits on it too instead of creating a ledger
    (and removed again at the end if it is still that empty file).

    POSIX locks belong to the process: this process must not open ``path`` with SQLite inside the block (closing
    that connection would drop the lock). Renaming ``path`` inside the block is fine; the lock moves with the file.
    Raises ``LedgerBusy`` if another process has the ledger open, ``LedgerError`` if it cannot be opened."""
    created = False
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            created = True
    except OSError as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _LOCK_BYTES_LENGTH, _LOCK_BYTES_START, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LedgerBusy(f"ledger {path} is open in another process") from None
            raise LedgerError(f"cannot lock ledger {path}: {exc.strerror}") from None
        yield
    finally:
        if created:
            _remove_if_still(path, os.fstat(fd))
        os.close(fd)


def _remove_if_still(path: Path, stand_in: os.stat_result) -> None:
    """Remove ``path`` if it is still the empty file ``stand_in`` (and not a ledger put there since)."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == (stand_in.st_dev, stand_in.st_ino) and now.st_size == 0:
        path.unlink()
