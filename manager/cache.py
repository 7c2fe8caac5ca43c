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

A calendar month's closed segments, once all of them are closed days of the ledger, are also merged into one
``reports.MonthSummary`` (each row of a report without filters, samples sorted; each day's figures), stored
under the month with the list of its segments (first, stop, day). It stands for its days in a report without
filters whose period holds all the month's closed segments, exactly those it was made of, and no other segment
of one of its days (today relabelled into one of them). When another day of the month closes, the list differs
and the month is merged again from its days.

``build_report(ledger, spec=..., period=..., filters=..., now=..., cache_dir=...)``:

1. opens the ledger read-only, as of one commit, and lists its segments (the ``DayStarted`` index, plus the
   ``DayCorrected`` rows of the segments the cache does not know yet);
2. without filters, loads the month summaries that fit the period; then loads the summaries of the period's
   other closed segments from the cache (with filters, only the cells they pass), reads the remaining segments
   of the period from the journal, summarises them and stores the closed ones; without filters, merges and
   stores the months whose closed days are all there and have no (fitting) month summary yet;
3. merges the summaries into the report (``reports.summarise_days``; filters apply to cells, so a filtered
   report comes from the cached days too).

``day_summaries`` (the manager's background warm-up) does steps 1 and 2 for day summaries, and merges and stores
the months as well, so that the first year report finds them.

The cache is ``report-cache.sqlite3`` in ``cache_dir`` (the manager's state directory). It belongs to one
ledger: its ``meta`` holds the ledger file's device and inode and a digest of the journal's first row; a
different ledger (a restored or replaced file), another cache format or other summary inputs (the hall's zone,
the services' target waits: ``reports.summary_inputs``) empties it (another format also makes its tables anew, in
this format's layout: format 2 added the ratings). A month row also carries a digest of that
``meta`` (and of its own layout, ``MONTHS_FORMAT``) and is used only under the same one: a version of the manager
that knew no months empties the days but leaves the months. A damaged cache file is deleted and rebuilt, with a
warning; a cache that cannot be used at all (an unwritable directory, a lock held too long) is skipped, with a
warning: a report never fails because of its cache. Size: a year of 500,000 tickets is about 26 MB of days and
28 MB of months.
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
# 2: the ratings (a day's rating cells, a month's tallies and comments) and the visits served per hour; 3: a
# day's rating cells laid out to be read fast (``_encode_ratings``).
FORMAT = "3"
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
    last_at TEXT,
    ratings TEXT NOT NULL,
    rating_ints BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS months (
    month    TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    segments TEXT NOT NULL,
    head     TEXT NOT NULL,
    numbers  BLOB NOT NULL,
    samples  BLOB NOT NULL
);
"""
# A month row is the meta's (ledger, inputs, format) and of this layout: a cache emptied by a version that knew no
# months keeps them, and they must not be taken for the new ledger's.
MONTHS_FORMAT = "2"
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

    months = filters == reports.Filters()
    only = None if months else filters
    summaries = _summaries(ledger, spec=spec, first_day=period.first, last_day=period.last, cache_dir=cache_dir,
                           pace=pace, skip=remember, months=months, merge=months, only=only)
    if summaries is None and key is not None and memo is not None:
        kept = memo.get(key)
        if kept is not None:
            return dataclasses.replace(kept, generated_at=now)
        summaries = _summaries(ledger, spec=spec, first_day=period.first, last_day=period.last,
                               cache_dir=cache_dir, pace=pace, months=months, merge=months, only=only)
    assert summaries is not None  # without a memo hit _summaries always summarises
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
    docstring); the month summaries of the months whose closed days they all are are made and kept too. ``pace``
    is called between pieces of the work (a batch of events, a day). ``skip(segments, first_row)``, given the
    period's segments and the journal's first row, may say there is no need: then None."""
    summaries = _summaries(ledger, spec=spec, first_day=first_day, last_day=last_day, cache_dir=cache_dir,
                           pace=pace, skip=skip, months=False, merge=True)
    return None if summaries is None else [s for s in summaries if isinstance(s, reports.DaySummary)]


Summaries = list[reports.DaySummary | reports.MonthSummary]
SegmentKey = tuple[int, int, str]  # (first, stop, day) of a closed segment


def _summaries(ledger: Path, *, spec: HallSpec, first_day: date, last_day: date, cache_dir: Path | None,
               pace: Callable[[], None] | None, months: bool, merge: bool, only: reports.Filters | None = None,
               skip: Callable[[Sequence[journal.Segment], tuple[int, str, str, str] | None], bool] | None = None,
               ) -> Summaries | None:
    """``day_summaries``; with ``months``, a month summary stands for its days wherever one fits; with ``merge``,
    the month summaries missing are made and kept (see the module docstring). ``only``: the days loaded from the
    cache keep only the cells these filters pass (a report with them needs no other)."""
    if only is not None and merge:
        raise InvariantError("a month is merged from whole days")
    checkpoint = pace or _no_pause
    with journal.open_journal(ledger) as ledger_journal:
        first_row = ledger_journal.first_row()
        cache = _open_cache(cache_dir, ledger=ledger, first_row=first_row, spec=spec)
        with closing(cache) if cache is not None else _nothing():
            known = cache.known() if cache is not None else {}
            every = ledger_journal.segments(first_day=first_day, known=known)
            segments = journal.in_range(every, first_day=first_day, last_day=last_day)
            if skip is not None and skip(segments, first_row):
                return None
            # A month summary is of all the month's closed days: it stands for the period's days of a month when
            # they are all of them (and no other segment of the period is of one of its days).
            complete = _closed_by_month(every)
            wanted = {month: keys for month, keys in _closed_by_month(segments).items()
                      if complete.get(month) == keys}
            stored = cache.months() if cache is not None and (months or merge) and wanted else {}
            usable = [month for month, keys in wanted.items() if months and stored.get(month) == keys
                      and _apart(keys, segments)]
            merged = cache.load_months(usable, pace=checkpoint) if cache is not None and usable else {}
            covered = {first for month in merged for first, _, _ in wanted[month]}
            closed_known = [s.first for s in segments if s.stop is not None and s.first not in covered
                            and known.get(s.first) == (s.stop, s.day)]
            found = cache.load(closed_known, pace=checkpoint, only=only) if cache is not None else {}
            missing = [s for s in segments if s.first not in found and s.first not in covered]
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
            if cache is not None and merge:
                for month, keys in wanted.items():
                    if month in merged or stored.get(month) == keys:
                        continue
                    month_summary = reports.merge_days([found.get(first) or made[first] for first, _, _ in keys],
                                                       pace=checkpoint)
                    if month_summary is not None:
                        checkpoint()
                        cache.store_month(month_summary, keys)
                        if months and _apart(keys, segments):
                            merged[month] = month_summary
                            covered.update(first for first, _, _ in keys)
    summaries: Summaries = []
    last_of = {keys[-1][0]: month for month, keys in wanted.items() if month in merged}
    for segment in segments:
        if segment.first in last_of:
            summaries.append(merged[last_of[segment.first]])
        elif segment.first not in covered:
            summaries.append(found.get(segment.first) or made[segment.first])
    if covered and not _cells_apart(summaries):
        # A day summary with cells of a month summary's days (never made by the engine): the days, then.
        return _summaries(ledger, spec=spec, first_day=first_day, last_day=last_day, cache_dir=cache_dir, pace=pace,
                          months=False, merge=False, only=only)
    return summaries


def _closed_by_month(segments: Sequence[journal.Segment]) -> dict[str, tuple[SegmentKey, ...]]:
    """The closed segments of ``segments`` by their day's month, in journal order."""
    by_month: dict[str, list[SegmentKey]] = {}
    for segment in segments:
        if segment.stop is not None:
            by_month.setdefault(segment.day[:7], []).append((segment.first, segment.stop, segment.day))
    return {month: tuple(keys) for month, keys in by_month.items()}


def _apart(keys: tuple[SegmentKey, ...], segments: Sequence[journal.Segment]) -> bool:
    """Whether no segment of ``segments`` but the month's ``keys`` is of one of their days (today corrected into
    one of them, say): only then may the month summary stand for its days."""
    firsts = {first for first, _, _ in keys}
    days = {day for _, _, day in keys}
    return not any(s.day in days for s in segments if s.first not in firsts)


def _cells_apart(summaries: Summaries) -> bool:
    """Whether no day summary has a cell (of visits or ratings) of a month summary's day."""
    month_days = {log.day for s in summaries if isinstance(s, reports.MonthSummary) for log in s.logs}
    days = [s for s in summaries if isinstance(s, reports.DaySummary)]
    return not any(cell.day in month_days for s in days for cell in s.cells) and not any(
        cell.day in month_days for s in days for cell in s.ratings)


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

    def __init__(self, path: Path, db: sqlite3.Connection, *, owner: str = "") -> None:
        self.path = path
        self._db: sqlite3.Connection | None = db
        self.owner = owner  # what the month rows of this cache's ledger and inputs carry

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

    def load(self, firsts: Sequence[int], *, pace: Callable[[], None] | None = None,
             only: reports.Filters | None = None) -> dict[int, reports.DaySummary]:
        """The stored summaries of the segments starting at ``firsts``; a damaged one makes the cache start
        afresh (and none is returned). ``pace`` is called before each day's. ``only``: each keeps only the cells
        these filters pass."""
        if self._db is None or not firsts:
            return {}
        found: dict[int, reports.DaySummary] = {}
        try:
            wanted = set(firsts)
            for row in self._db.execute("SELECT first, day, log, cells, samples, last_at, ratings, rating_ints "
                                        "FROM days "
                                        "WHERE first BETWEEN ? AND ?", (min(firsts), max(firsts))):
                if row[0] in wanted:
                    if pace is not None:
                        pace()
                    found[int(row[0])] = _decode(*row[1:6], ratings=row[6:8], only=only)
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
            self._db.executemany("INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed(exc)

    def months(self) -> dict[str, tuple[SegmentKey, ...]]:
        """{month: its segments (first, stop, day)} of every stored month summary."""
        if self._db is None:
            return {}
        try:
            return {str(month): tuple((int(first), int(stop), str(day)) for first, stop, day in json.loads(keys))
                    for month, keys in self._db.execute("SELECT month, segments FROM months WHERE owner = ?",
                                                        (self.owner,))}
        except (sqlite3.Error, ValueError, TypeError) as exc:
            self._failed(exc)
            return {}

    def load_months(self, months: Sequence[str], *, pace: Callable[[], None] | None = None,
                    ) -> dict[str, reports.MonthSummary]:
        """The stored summaries of ``months``; a damaged one makes the cache start afresh (and none is returned).
        ``pace`` is called before each month's."""
        if self._db is None or not months:
            return {}
        found: dict[str, reports.MonthSummary] = {}
        try:
            for month in months:
                if pace is not None:
                    pace()
                row = self._db.execute("SELECT head, numbers, samples FROM months WHERE month = ? AND owner = ?",
                                       (month, self.owner)).fetchone()
                if row is not None:  # None: gone since ``months`` (another ledger's report emptied the cache)
                    found[month] = _decode_month(month, *row)
        except (sqlite3.Error, CacheDamaged, ValueError, TypeError, KeyError, IndexError) as exc:
            self._failed(exc)
            return {}
        return found

    def store_month(self, summary: reports.MonthSummary, segments: Sequence[SegmentKey]) -> None:
        """Keep the summary of a month's closed days, made of ``segments`` (journal order)."""
        if self._db is None:
            return
        try:
            self._db.execute("INSERT OR REPLACE INTO months VALUES (?, ?, ?, ?, ?, ?)",
                             (summary.month, self.owner, json.dumps(segments), *_encode_month(summary)))
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
                # Made anew rather than emptied: a cache of another format may have another layout.
                db.execute("DROP TABLE days")
                db.execute("DROP TABLE months")
                db.execute("DELETE FROM meta")
                db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(expected.items()))
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("COMMIT")
            owner = hashlib.sha256(json.dumps([MONTHS_FORMAT, expected], sort_keys=True).encode()).hexdigest()
            return ReportCache(path, db, owner=owner)
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


def _encode(summary: reports.DaySummary) -> tuple[str, str, bytes, str | None, str, bytes]:
    """(log JSON, cells JSON, samples, last event's time, rating cells' JSON and integers): the cells' keys in
    JSON, their integers (counts, sample lengths, hours) then every sample as arrays of 64-bit integers and
    doubles, in one blob; the rating cells as ``_encode_ratings`` writes them."""
    log_json = json.dumps(None if summary.log is None else _log_json(summary.log))
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
            last_at, *_encode_ratings(summary.ratings))


def _encode_ratings(cells: Sequence[reports.RatingCell]) -> tuple[str, bytes]:
    """A day's rating cells: JSON with ``keys``, each cell's [day, service, counter, priority, category], and
    ``notes``, [cell, reasons, comments] of the cells that have any, a comment as [at, level, channel, text] (the
    rest is its cell's); and the integers, as 32-bit ones (counts of a day), each cell's tally, its number of
    hours and each hour with its tally, in a row. A filtered report reads them whole, then builds only the cells
    it keeps: a year of them is about 6 MB, and the integers, most of it, are read at C speed."""
    keys = []
    ints = array("i")
    notes = []
    width = len(reports.RATING_KEYS) + 1
    for index, cell in enumerate(cells):
        keys.append([cell.day, cell.service, cell.counter, cell.priority, cell.category])
        ints.extend(cell.tally)
        ints.append(len(cell.hours) // width)
        ints.extend(cell.hours)
        if cell.reasons or cell.comments:
            notes.append([index, cell.reasons, [[c.at.isoformat(), c.level, c.channel, c.text] for c in cell.comments]])
    return json.dumps({"keys": keys, "notes": notes}, separators=(",", ":")), ints.tobytes()


def _rating_cells(ratings_json: str, rating_ints: bytes, *, only: reports.Filters | None,
                  ) -> list[reports.RatingCell]:
    """The rating cells of ``_encode_ratings``; ``only``: those these filters pass."""
    doc = json.loads(ratings_json)
    numbers = array("i")
    numbers.frombytes(rating_ints)
    ints = numbers.tolist()
    notes = {index: (reasons, comments) for index, reasons, comments in doc["notes"]}
    tally_width = len(reports.RATING_KEYS)
    hour_width = tally_width + 1
    cells = []
    at = 0
    for index, (day, service, counter, priority, category) in enumerate(doc["keys"]):
        hours_at = at + tally_width + 1
        stop = hours_at + hour_width * ints[hours_at - 1]
        if only is None or only.admits(service, counter, priority, category):
            reasons, comments = notes.get(index, ({}, ()))
            cells.append(reports.RatingCell(
                day, service, counter, priority, category, tuple(ints[at:at + tally_width]), ints[hours_at:stop],
                reasons, [reports.Comment(datetime.fromisoformat(when), day, service, counter, level, channel, text)
                          for when, level, channel, text in comments]))
        at = stop
    if at != len(ints) or any(not 0 <= hour < 24 for cell in cells for hour in cell.hours[::hour_width]):
        raise CacheDamaged("a day's rating cells do not add up")
    return cells


def _tally(values: Sequence[int]) -> tuple[int, ...]:
    """A rating tally read from JSON, checked."""
    if len(values) != len(reports.RATING_KEYS):
        raise CacheDamaged("a rating tally has the wrong length")
    return tuple(array("q", values))


def _log_json(day_log: reports.DayLog) -> dict[str, object]:
    return {"day": day_log.day, "started_at": day_log.started_at.isoformat(),
            "status_at_start": day_log.status_at_start,
            "changes": [[at.isoformat(), counter, status] for at, counter, status in day_log.changes]}


def _log_of(raw_log: Mapping[str, object]) -> reports.DayLog:
    changes = raw_log["changes"]
    status = raw_log["status_at_start"]
    started = raw_log["started_at"]
    if not isinstance(changes, list) or not isinstance(status, dict) or not isinstance(started, str):
        raise CacheDamaged("a day's counters' log is malformed")
    return reports.DayLog(str(raw_log["day"]), datetime.fromisoformat(started),
                          {str(k): str(v) for k, v in status.items()},
                          [(datetime.fromisoformat(at), str(c), str(s)) for at, c, s in changes])


def _decode(day: str, log_json: str, keys_json: str, blob: bytes, last_at: str | None, *,
            ratings: tuple[str, bytes], only: reports.Filters | None = None) -> reports.DaySummary:
    """The day summary of a row (``ratings``: its rating cells, JSON and integers); ``only``: with only the cells
    (of visits and of ratings) these filters pass."""
    raw_log: Mapping[str, object] | None = json.loads(log_json)
    day_log = None if raw_log is None else _log_of(raw_log)
    head = array("q")
    head.frombytes(blob[:8])
    numbers_end = 8 + 8 * head[0]
    numbers = array("q")
    numbers.frombytes(blob[8:numbers_end])
    ints = numbers.tolist()
    samples = array("d")
    samples.frombytes(blob[numbers_end:])
    width = len(reports.COUNTS)
    keys = json.loads(keys_json)
    places = []  # each cell's (first integer, waits, service times, hour integers)
    at_int = all_waits = all_services = 0
    for _ in keys:
        n_waits, n_services, n_hours = ints[at_int + width:at_int + width + 3]
        places.append((at_int, n_waits, n_services, n_hours))
        at_int += width + 3 + n_hours
        all_waits += n_waits
        all_services += n_services
    if at_int != len(ints) or all_waits + all_services != len(samples):
        raise CacheDamaged("a day's cells do not add up")
    # All of a day's samples as one list, sliced, is fastest when most are kept; a few cells' slices are fewer.
    values = samples.tolist() if only is None else None
    cells = []
    at_wait, at_service = 0, all_waits
    for (c_day, service, counter, priority, category), (at, n_waits, n_services, n_hours) in zip(
            keys, places, strict=True):
        if only is None or only.admits(service, counter, priority, category):
            hours_at = at + width + 3
            waits, service_times = (
                (values[at_wait:at_wait + n_waits], values[at_service:at_service + n_services]) if values is not None
                else (samples[at_wait:at_wait + n_waits].tolist(),
                      samples[at_service:at_service + n_services].tolist()))
            cells.append(reports.Cell(c_day, service, counter, priority, category, tuple(ints[at:at + width]),
                                      waits, service_times, ints[hours_at:hours_at + n_hours]))
        at_wait += n_waits
        at_service += n_services
    return reports.DaySummary(day, day_log, cells, None if last_at is None else datetime.fromisoformat(last_at),
                              _rating_cells(ratings[0], ratings[1], only=only))


# --- a month summary as a row: keys, logs and days in JSON, integers and samples as arrays --------------------------


def _encode_month(summary: reports.MonthSummary) -> tuple[str, bytes, bytes]:
    """(head JSON, integers, samples): the head names the rows and days and holds the logs and the ratings; the
    integers are, per row, its counts and its samples' lengths, per hour its arrivals, calls, visits served,
    waits' length and sum, per day its counts (outcomes, within target, base, samples); the samples are the rows'
    waits and service times, the hours' waits, then per day its mean, median, 90th percentile and maximum wait
    and service time."""
    numbers = array("q")
    samples = array("d")
    for part in summary.rows.values():
        numbers.extend(part.counts)
        numbers.extend((len(part.waits), len(part.service_times)))
        samples.extend(part.waits)
        samples.extend(part.service_times)
    for hour in summary.hours:
        numbers.extend((hour.arrivals, hour.calls, hour.served, len(hour.waits), hour.sum_us))
        samples.extend(hour.waits)
    for figures in summary.day_figures.values():
        o = figures.outcomes
        numbers.extend((o.issued, o.transferred_in, o.served, o.no_show, o.transferred, o.voided, o.expired, o.open,
                        figures.within_target, figures.target_base, figures.wait.count, figures.service_time.count))
        for stats in (figures.wait, figures.service_time):
            samples.extend((stats.mean_s or 0.0, stats.median_s or 0.0, stats.p90_s or 0.0, stats.max_s or 0.0))
    ratings = {"rows": [[kind, name, tally] for (kind, name), tally in summary.rated.items()],
               "hours": summary.rated_hours, "reasons": summary.reasons,
               "comments": [[c.at.isoformat(), c.day, c.service, c.counter, c.level, c.channel, c.text]
                            for c in summary.comments]}
    head = {"rows": list(summary.rows), "days": list(summary.day_figures),
            "logs": [_log_json(log) for log in summary.logs],
            "last_at": summary.last_at.isoformat() if summary.last_at is not None else None, "ratings": ratings}
    return json.dumps(head, separators=(",", ":")), numbers.tobytes(), samples.tobytes()


def _decode_month(month: str, head_json: str, numbers_blob: bytes, samples_blob: bytes) -> reports.MonthSummary:
    head = json.loads(head_json)
    ints = array("q")
    ints.frombytes(numbers_blob)
    samples = memoryview(samples_blob)
    at_int = at_sample = 0

    def take(count: int) -> array[float]:
        nonlocal at_sample
        if count < 0 or 8 * (at_sample + count) > len(samples):
            raise CacheDamaged(f"the month summary of {month} does not add up")
        taken = array("d")
        taken.frombytes(samples[8 * at_sample:8 * (at_sample + count)])
        at_sample += count
        return taken

    width = len(reports.COUNTS)
    rows: dict[reports.RowKey, reports.Part] = {}
    for kind, name in head["rows"]:
        counts = tuple(ints[at_int:at_int + width])
        n_waits, n_services = ints[at_int + width:at_int + width + 2]
        at_int += width + 2
        rows[(str(kind), str(name))] = reports.Part(counts, take(n_waits), take(n_services))
    hours = []
    for _ in range(24):
        arrivals, calls, served, n_waits, sum_us = ints[at_int:at_int + 5]
        at_int += 5
        hours.append(reports.HourPart(arrivals, calls, served, take(n_waits), sum_us))
    day_figures = {}
    for day in head["days"]:
        numbers = ints[at_int:at_int + 12]
        at_int += 12
        wait, service = take(4), take(4)
        day_figures[str(day)] = reports.Figures(reports.Outcomes(*numbers[:8]), _duration(numbers[10], wait),
                                                _duration(numbers[11], service), numbers[8], numbers[9])
    if at_int != len(ints) or 8 * at_sample != len(samples):
        raise CacheDamaged(f"the month summary of {month} does not add up")
    last_at = head["last_at"]
    ratings = head["ratings"]
    rated_hours = [_tally(tally) for tally in ratings["hours"]]
    if len(rated_hours) != 24:
        raise CacheDamaged(f"the month summary of {month} does not add up")
    return reports.MonthSummary(
        month, rows, hours, day_figures, [_log_of(raw) for raw in head["logs"]],
        None if last_at is None else datetime.fromisoformat(last_at),
        {(str(kind), str(name)): _tally(tally) for kind, name, tally in ratings["rows"]}, rated_hours,
        {str(k): int(v) for k, v in ratings["reasons"].items()},
        [reports.Comment(datetime.fromisoformat(at), day, service, counter, level, channel, text)
         for at, day, service, counter, level, channel, text in ratings["comments"]])


def _duration(count: int, stats: Sequence[float]) -> reports.DurationStats:
    if not count:
        return reports.DurationStats(0, None, None, None, None)
    mean_s, median_s, p90_s, max_s = stats
    return reports.DurationStats(count, mean_s, median_s, p90_s, max_s)
