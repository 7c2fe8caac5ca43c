"""The manager's cache of closed business days, so that a report over a year reads one day of the ledger.

Theory of operation
-------------------
A report is a merge of day summaries (``manager.reports.DaySummary``: a business day's visits as cells that
keep every wait and service time, sorted, and exact sums; its counters' log). The ledger's journal cuts into
segments, one per business day (``manager.journal``); a segment is **closed** once the next ``DayStarted``
is journaled, and from then on nothing in it changes: its tickets all ended (the roll expires what is open,
before the ``DayStarted``), and a ``DayCorrected`` only ever relabels the segment it falls in, the open one.
So the summary of a closed segment, stored under its first seq with its end and its (corrected) day, is
good for ever; the open segment (today) is always summarised from the journal.

``build_report(ledger, spec=..., period=..., filters=..., now=..., cache_dir=...)``:

1. opens the ledger read-only, as of one commit, and lists its segments (the ``DayStarted`` index, plus the
   ``DayCorrected`` rows of the segments the cache does not know yet);
2. loads the summaries of the period's closed segments from the cache, reads the other segments of the period
   from the journal, summarises them and stores the closed ones;
3. merges the summaries into the report (``reports.summarise_days``; filters apply to cells, so a filtered
   report comes from the cache too).

The cache is ``report-cache.sqlite3`` in ``cache_dir`` (the manager's state directory). It belongs to one
ledger: its ``meta`` holds the ledger file's device and inode and a digest of the journal's first row; a
different ledger (a restored or replaced file), another cache format or other summary inputs (the hall's zone,
the services' target waits: ``reports.summary_inputs``) empties it. A damaged cache file is deleted and
rebuilt, with a warning; a cache that cannot be used at all (an unwritable directory, a lock held too long)
is skipped, with a warning: a report never fails because of its cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import date, datetime
from pathlib import Path

from hall_controller.engine.events import Event
from hall_controller.engine.spec import HallSpec
from hallq.errors import InvariantError
from manager import journal, reports
from manager.budget import CpuBudget

log = logging.getLogger(__name__)

CACHE_FILE = "report-cache.sqlite3"
DEFAULT_CACHE_DIR = Path("/var/lib/hallq/manager")
FORMAT = "1"
BUSY_TIMEOUT_MS = 5000
# With a CPU budget: a checkpoint every so many events, and the journal read in batches that small, so that a
# report never runs for more than about 10 ms of CPU between two checkpoints (decoding is ~4 µs an event).
PACED_EVENTS = 2048
PACED_BATCH_ROWS = 2048
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS days (
    first   INTEGER PRIMARY KEY,
    stop    INTEGER NOT NULL,
    day     TEXT NOT NULL,
    log     TEXT NOT NULL,
    cells   TEXT NOT NULL,
    samples BLOB NOT NULL,
    last_at TEXT
);
"""
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


class CacheDamaged(Exception):
    """The cache file's contents cannot be read as a cache: it is rebuilt."""


def build_report(ledger: Path, *, spec: HallSpec, period: reports.Period, filters: reports.Filters | None = None,
                 now: datetime | None = None, cache_dir: Path | None = DEFAULT_CACHE_DIR,
                 budget: CpuBudget | None = None, memo: ReportMemo | None = None) -> reports.Report:
    """The report of ``period`` from the ledger at ``ledger`` (read-only), through the cache in ``cache_dir``
    (None: no cache). ``now`` as in ``reports.build_report``. ``budget``: the CPU budget the work keeps to
    (``manager.budget``; None: none). ``memo``: finished reports of closed days, kept in memory (see
    ``ReportMemo``). Raises ``reports.ReportError`` for filters the hall does not have, ``journal.JournalError``
    for a ledger that cannot be read, ``InvariantError`` for one whose records are broken."""
    filters = filters or reports.Filters()
    filters.check(spec)
    pace = budget.checkpoint if budget is not None else None
    key: tuple[object, ...] | None = None

    def remember(segments: Sequence[journal.Segment], first_row: tuple[int, str, str, str] | None) -> bool:
        """Whether the memo has this report already (``key`` is set when it may keep it)."""
        nonlocal key
        if memo is None or now is None or not memo.may_keep(segments, period=period, today=spec.business_day(now)):
            return False
        stat = ledger.stat()
        key = (stat.st_dev, stat.st_ino, first_row, period, filters,
               tuple((s.first, s.stop, s.day) for s in segments))
        return key in memo

    summaries = day_summaries(ledger, spec=spec, first_day=period.first, last_day=period.last, cache_dir=cache_dir,
                              pace=pace, skip=remember)
    if summaries is None and key is not None and memo is not None:
        kept = memo.get(key)
        if kept is not None:
            return dataclasses.replace(kept, generated_at=now)
        summaries = day_summaries(ledger, spec=spec, first_day=period.first, last_day=period.last,
                                  cache_dir=cache_dir, pace=pace)
    assert summaries is not None  # without a memo hit day_summaries always summarises
    report = reports.summarise_days(summaries, spec=spec, period=period, filters=filters, now=now, pace=pace)
    if key is not None and memo is not None:
        memo.put(key, report)
    return report


class ReportMemo:
    """Finished reports whose days are all closed and before today, in memory (at most ``size``, the least
    recently used goes first): asked again, such a report costs a look at the ledger's day index.

    Such a report cannot change while its key holds: the key has the ledger file's identity and first row, the
    period, the filters and each of the period's segments (first, stop, day). A closed segment never changes;
    the open one (today) is not in the period, and were it relabelled into it (``DayCorrected``), its (first,
    stop) would join the period's segments and change the key. The counters' time is cut at ``now`` only within
    today, so only ``generated_at`` differs, and is set anew. One memo serves one ``HallSpec`` (one manager
    process). Thread-safe."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[object, ...], reports.Report] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def may_keep(segments: Sequence[journal.Segment], *, period: reports.Period, today: str) -> bool:
        """Whether a report of ``segments`` (the period's) may be kept: the period ends before ``today`` and
        every segment is closed."""
        return period.last.isoformat() < today and all(s.stop is not None for s in segments)

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def __contains__(self, key: tuple[object, ...]) -> bool:
        with self._lock:
            return key in self._kept

    def get(self, key: tuple[object, ...]) -> reports.Report | None:
        with self._lock:
            report = self._kept.get(key)
            if report is not None:
                self._kept.move_to_end(key)
            return report

    def put(self, key: tuple[object, ...], report: reports.Report) -> None:
        with self._lock:
            self._kept[key] = report
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)


def day_summaries(ledger: Path, *, spec: HallSpec, first_day: date, last_day: date,
                  cache_dir: Path | None = DEFAULT_CACHE_DIR, pace: Callable[[], None] | None = None,
                  skip: Callable[[Sequence[journal.Segment], tuple[int, str, str, str] | None], bool] | None = None,
                  ) -> list[reports.DaySummary] | None:
    """The summaries of business days ``first_day``..``last_day``, in journal order (see the module
    docstring). ``pace`` is called between pieces of the work (a batch of events, a day). ``skip(segments,
    first_row)``, given the period's segments and the journal's first row, may say there is no need: then None."""
    checkpoint = pace or _no_pause
    with journal.open_journal(ledger) as ledger_journal:
        first_row = ledger_journal.first_row()
        cache = _open_cache(cache_dir, ledger=ledger, first_row=first_row, spec=spec)
        with closing(cache) if cache is not None else _nothing():
            known = cache.known() if cache is not None else {}
            segments = journal.in_range(ledger_journal.segments(first_day=first_day, known=known),
                                        first_day=first_day, last_day=last_day)
            if skip is not None and skip(segments, first_row):
                return None
            closed_known = [s.first for s in segments if s.stop is not None and known.get(s.first) == (s.stop, s.day)]
            found = cache.load(closed_known, pace=checkpoint) if cache is not None else {}
            missing = [s for s in segments if s.first not in found]
            events = ledger_journal.events(missing, batch_rows=PACED_BATCH_ROWS if pace else journal.BATCH_ROWS)
            spans = [span for span in reports.collect(_paced(events, checkpoint) if pace else events, spec=spec).spans
                     if span.log is not None]
            if len(spans) != len(missing):
                raise InvariantError(f"ledger {ledger}: {len(missing)} business days read, {len(spans)} found")
            made = {}
            for segment, span in zip(missing, spans, strict=True):
                checkpoint()
                made[segment.first] = reports.summarise_span(span, spec=spec)
            if cache is not None:
                cache.store([(s, made[s.first]) for s in missing if s.stop is not None])
    return [found.get(s.first) or made[s.first] for s in segments]


def _paced(events: Iterable[Event], checkpoint: Callable[[], None]) -> Iterator[Event]:
    """``events``, with ``checkpoint()`` every ``PACED_EVENTS`` of them."""
    for index, event in enumerate(events):
        if not index % PACED_EVENTS:
            checkpoint()
        yield event


def _no_pause() -> None:
    pass


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


class ReportCache:
    """The cache file, open; every method survives a damaged or unusable file (a warning, then as if empty)."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def known(self) -> dict[int, tuple[int, str]]:
        """{first seq: (stop, day)} of every stored segment."""
        if self._db is None:
            return {}
        try:
            return {int(first): (int(stop), str(day))
                    for first, stop, day in self._db.execute("SELECT first, stop, day FROM days")}
        except (sqlite3.Error, ValueError, TypeError) as exc:
            self._failed(exc)
            return {}

    def load(self, firsts: Sequence[int], *, pace: Callable[[], None] | None = None) -> dict[int, reports.DaySummary]:
        """The stored summaries of the segments starting at ``firsts``; a damaged one makes the cache start
        afresh (and none is returned). ``pace`` is called before each day's."""
        if self._db is None or not firsts:
            return {}
        found: dict[int, reports.DaySummary] = {}
        try:
            wanted = set(firsts)
            for row in self._db.execute("SELECT first, day, log, cells, samples, last_at FROM days "
                                        "WHERE first BETWEEN ? AND ?", (min(firsts), max(firsts))):
                if row[0] in wanted:
                    if pace is not None:
                        pace()
                    found[int(row[0])] = _decode(*row[1:])
        except (sqlite3.Error, CacheDamaged, ValueError, TypeError, KeyError, IndexError) as exc:
            self._failed(exc)
            return {}
        return found

    def store(self, made: Sequence[tuple[journal.Segment, reports.DaySummary]]) -> None:
        """Keep the summaries of closed segments."""
        if self._db is None or not made:
            return
        rows = [(segment.first, segment.stop, summary.day, *_encode(summary))
                for segment, summary in made if segment.stop is not None and summary.day is not None]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        """A damaged file is deleted (the next report rebuilds it); any other failure only skips the cache now."""
        damaged = not isinstance(exc, sqlite3.Error) or getattr(exc, "sqlite_errorname", "") in _DAMAGED
        self.close()
        if damaged:
            log.warning("report cache %s is damaged (%s): deleted; it is rebuilt from the ledger", self.path, exc)
            _delete(self.path)
        else:
            log.warning("report cache %s cannot be used (%s): this report is made from the ledger alone",
                        self.path, exc)


def _open_cache(cache_dir: Path | None, *, ledger: Path, first_row: tuple[int, str, str, str] | None,
                spec: HallSpec) -> ReportCache | None:
    """The cache for this ledger and these summary inputs, emptied if it was another's; None when there is
    none to use (a warning says why)."""
    if cache_dir is None:
        return None
    path = cache_dir / CACHE_FILE
    stat = ledger.stat()
    expected = {
        "format": FORMAT,
        "ledger": json.dumps({"device": stat.st_dev, "inode": stat.st_ino,
                              "first_row": hashlib.sha256(repr(first_row).encode()).hexdigest()}),
        "inputs": json.dumps(reports.summary_inputs(spec), sort_keys=True),
    }
    for attempt in (1, 2):
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            log.warning("report cache %s cannot be opened (%s): reports are made from the ledger alone", path, exc)
            return None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta != expected:
                if meta:
                    log.info("report cache %s was made for another ledger, cache format or zone and targets: "
                             "it starts afresh", path)
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM days")
                db.execute("DELETE FROM meta")
                db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(expected.items()))
                db.execute("COMMIT")
            return ReportCache(path, db)
        except sqlite3.Error as exc:
            db.close()
            if getattr(exc, "sqlite_errorname", "") in _DAMAGED and attempt == 1:
                log.warning("report cache %s is damaged (%s): deleted; it is rebuilt from the ledger", path, exc)
                _delete(path)
                continue
            log.warning("report cache %s cannot be used (%s): reports are made from the ledger alone", path, exc)
            return None
    return None


def _delete(path: Path) -> None:
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot delete %s: %s", name, exc)


# --- a summary as a row: the log and the cells as JSON, every sample as one array of doubles -------------------


def _encode(summary: reports.DaySummary) -> tuple[str, str, bytes, str | None]:
    """(log JSON, cells JSON, samples, last event's time): the cells' keys in JSON, their integers (counts,
    sample lengths, hours) then every sample as arrays of 64-bit integers and doubles, in one blob."""
    day_log = summary.log
    log_json = json.dumps(None if day_log is None else {
        "day": day_log.day, "started_at": day_log.started_at.isoformat(), "status_at_start": day_log.status_at_start,
        "changes": [[at.isoformat(), counter, status] for at, counter, status in day_log.changes]})
    numbers = array("q")
    samples = array("d")
    keys = []
    for cell in summary.cells:
        keys.append([cell.day, cell.service, cell.counter, cell.priority, cell.category])
        numbers.extend(cell.counts)
        numbers.extend((len(cell.waits), len(cell.service_times), len(cell.hours)))
        numbers.extend(cell.hours)
        samples.extend(cell.waits)
    for cell in summary.cells:
        samples.extend(cell.service_times)
    last_at = summary.last_at.isoformat() if summary.last_at is not None else None
    head = array("q", [len(numbers)])
    return (log_json, json.dumps(keys, separators=(",", ":")), head.tobytes() + numbers.tobytes() + samples.tobytes(),
            last_at)


def _decode(day: str, log_json: str, keys_json: str, blob: bytes, last_at: str | None) -> reports.DaySummary:
    raw_log: Mapping[str, object] | None = json.loads(log_json)
    day_log = None
    if raw_log is not None:
        changes = raw_log["changes"]
        status = raw_log["status_at_start"]
        started = raw_log["started_at"]
        if not isinstance(changes, list) or not isinstance(status, dict) or not isinstance(started, str):
            raise CacheDamaged("a day's counters' log is malformed")
        day_log = reports.DayLog(str(raw_log["day"]), datetime.fromisoformat(started),
                                 {str(k): str(v) for k, v in status.items()},
                                 [(datetime.fromisoformat(at), str(c), str(s)) for at, c, s in changes])
    head = array("q")
    head.frombytes(blob[:8])
    numbers_end = 8 + 8 * head[0]
    numbers = array("q")
    numbers.frombytes(blob[8:numbers_end])
    ints = numbers.tolist()
    samples = array("d")
    samples.frombytes(blob[numbers_end:])
    values = samples.tolist()
    width = len(reports.COUNTS)
    cells = []
    at_int = at_wait = 0
    spans = []
    for c_day, service, counter, priority, category in json.loads(keys_json):
        n_waits, n_services, n_hours = ints[at_int + width:at_int + width + 3]
        hours_at = at_int + width + 3
        cells.append(reports.Cell(c_day, service, counter, priority, category, tuple(ints[at_int:at_int + width]),
                                  values[at_wait:at_wait + n_waits], [], ints[hours_at:hours_at + n_hours]))
        spans.append(n_services)
        at_int = hours_at + n_hours
        at_wait += n_waits
    if at_int != len(ints) or at_wait + sum(spans) != len(values):
        raise CacheDamaged("a day's cells do not add up")
    for cell, n_services in zip(cells, spans, strict=True):
        cell.service_times = values[at_wait:at_wait + n_services]
        at_wait += n_services
    return reports.DaySummary(day, day_log, cells, None if last_at is None else datetime.fromisoformat(last_at))
