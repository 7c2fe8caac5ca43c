"""Reports on the hall's work: a pure function from the ledger's events to a typed ``Report``.

Theory of operation
-------------------
``build_report(events, spec=..., period=..., filters=..., now=...)`` does no I/O: the caller reads the events
(``manager.journal.read_events``) and renders the report (``manager.render``). It runs in two steps, both public:

1. ``collect(events, spec=...)`` follows each ticket's life and cuts it into **visits**: a visit is a ticket's
   stay in one service, from its issue (or its transfer into the service) to its end there — ``served``,
   ``no_show``, ``transferred`` (on to another service, where a new visit starts), ``voided``, ``expired`` or
   still ``open``. It also follows each counter's status through each business day.
2. ``summarise(facts, spec=..., period=..., filters=..., now=...)`` counts and measures the visits of the
   period's business days that pass the filters.

Step 2 goes through summaries that merge exactly, so that a cache can keep them (``manager.cache``):
``summarise_span`` cuts a business day's visits into ``Cell`` s (every wait and service time kept, sorted, and
exact sums in microseconds), ``summarise_days`` merges any number of day summaries into the report.
``merge_days`` merges the closed days of one calendar month into a ``MonthSummary``: each row of a report
without filters (service, counter, lane, category, hour) with its samples sorted, and each day's figures; such
a report of a year merges twelve of them (and today's day summary). A median or percentile over several
sorted runs is selected from them, by bisection, without merging them: exact, never estimated.

The rules:

* A ticket belongs to the business day it was issued on (``TicketIssued.day``), also when its life runs past
  the next day's start (it then expires); each of its visits counts in that day.
* A transferred ticket counts once per service it waited in; its wait in each service is measured from its
  arrival there (issue or transfer) to its first call there. A recall is the same visit called again.
* ``served`` is only what a counter finished as served: an expired or voided ticket never is, even if it had
  been called.
* Waiting time: arrival → first call, over visits that were called. Service time: first call → finish, over
  visits served. A measurement across a clock step (``ClockStepped``) or negative is left out.
* Share within target: visits called within their service's ``target_wait_s``, out of the visits called plus
  those that expired uncalled (they waited the rest of the day); voided visits (print failures) are neither.
* Median: the middle sample (the mean of the two middle ones for an even count). 90th percentile: the
  nearest-rank sample (the smallest with at least 90% of the samples at or below it).
* Counters' open, paused and closed time: within the business hours of the days the hall worked (days with a
  ``DayStarted``), i.e. the opening hours of the services the counter serves (the whole business day when one
  of them is always open), up to ``now``. A counter's status at a day's start is the one the ledger carries
  into the day.
* Ratings (``TicketRated``): a citizen's rating of a served visit, counted in the business day of the ticket
  (the engine forgets a day's tickets when the next one starts, so a rating is always journaled in its ticket's
  day, also one given just after midnight before the day's start) under the service and counter the rating
  names (where the visit was served), in the local hour the visit was **served** (finished), beside the visits
  served in that hour. Shares: each level of the visits rated; the visits rated of the visits served. A
  reason counts once per rating that names it; its share is of the low ratings (``hallq.wire.LOW_RATINGS``:
  the ones that ask for reasons). Only the first rating of a ticket counts; one of an unknown level or
  channel is left out (the engine journals neither). A rating whose served visit is not in its day (never
  journaled by the engine) counts from its own fields, in the regular lane and the hour it was given.

Filters: ``service`` keeps that service's visits (and the counters that serve it); ``counter`` the visits called
at that counter (a visit never called belongs to no counter) and its row; ``lane`` regular or priority
visits; ``category`` priority visits of that category. They apply to ratings the same way (``counter``: the
counter that served the rated visit).
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import chain
from operator import attrgetter
from typing import Literal, NamedTuple

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
)
from hall_controller.engine.spec import HallSpec, ServiceSpec
from hallq.errors import HallqError, InvariantError
from hallq.wire import LOW_RATINGS, RATING_CHANNELS, RATING_LEVELS

Outcome = Literal["served", "no_show", "transferred", "voided", "expired", "open"]
Lane = Literal["regular", "priority"]
LANES: tuple[Lane, ...] = ("regular", "priority")
STATUSES = ("open", "paused", "closed")
DEFAULT_TARGET_WAIT_S = 20 * 60
MAX_RANGE_DAYS = 3 * 366
# A rating tally: how many ratings of each (channel, level), in this order (channel-major, levels best first).
RATING_KEYS: tuple[tuple[str, str], ...] = tuple((channel, level) for channel in RATING_CHANNELS
                                                 for level in RATING_LEVELS)
_RATING_INDEX = {key: index for index, key in enumerate(RATING_KEYS)}
NO_RATINGS: tuple[int, ...] = (0,) * len(RATING_KEYS)
SATISFIED_LEVELS = ("very_satisfied", "satisfied")  # "satisfied or better": the share halls are judged by


class ReportError(HallqError, ValueError):
    """A report cannot be made as asked: a bad date or range, an unknown service, counter or category."""


# --- what is asked ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """Business days ``first``..``last`` (inclusive); ``label`` as the user named it (``2026-W49``)."""

    first: date
    last: date
    label: str

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def contains(self, day: str) -> bool:
        return self.first.isoformat() <= day <= self.last.isoformat()


def day_period(text: str) -> Period:
    """One business day, ``YYYY-MM-DD``."""
    day = _date(text, "day")
    return Period(day, day, day.isoformat())


def week_period(text: str) -> Period:
    """An ISO week, ``YYYY-Www`` (Monday to Sunday)."""
    try:
        year, week = text.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise ReportError(f"week {text!r} is not an ISO week like 2026-W49") from None
    return Period(first, first + timedelta(days=6), text)


def month_period(text: str) -> Period:
    """A calendar month, ``YYYY-MM``."""
    try:
        year, month = (int(part) for part in text.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise ReportError(f"month {text!r} is not a month like 2026-12") from None
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period(first, following - timedelta(days=1), text)


def range_period(first_text: str, last_text: str) -> Period:
    """Business days ``first_text``..``last_text`` (both ``YYYY-MM-DD``, inclusive, at most three years)."""
    first, last = _date(first_text, "from"), _date(last_text, "to")
    if last < first:
        raise ReportError(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ReportError(f"the range {first}..{last} is longer than {MAX_RANGE_DAYS} days")
    return Period(first, last, f"{first}..{last}")


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text) if len(text) == 10 else date.fromisoformat("bad")
    except ValueError:
        raise ReportError(f"{what} {text!r} is not a date like 2026-12-04") from None


@dataclass(frozen=True, slots=True)
class Filters:
    """Which visits a report covers (see the module docstring); None: all."""

    service: str | None = None
    counter: str | None = None
    lane: Lane | None = None
    category: str | None = None

    def check(self, spec: HallSpec) -> None:
        """Raise ``ReportError`` for a service or counter the hall does not have, or a category on the
        regular lane."""
        if self.service is not None and self.service not in spec.service_by_id:
            raise ReportError(f"unknown service {self.service!r} (known: {', '.join(spec.service_by_id)})")
        if self.counter is not None and self.counter not in spec.counter_by_id:
            raise ReportError(f"unknown counter {self.counter!r} (known: {', '.join(spec.counter_by_id)})")
        if self.category is not None and self.lane == "regular":
            raise ReportError("a priority category is only on the priority lane")

    def admits(self, service: str, counter: str | None, priority: bool, category: str | None) -> bool:
        """Whether the visits of this service, counter (None: never called), lane and category pass."""
        return ((self.service is None or service == self.service)
                and (self.counter is None or counter == self.counter)
                and (self.lane is None or priority == (self.lane == "priority"))
                and (self.category is None or (priority and category == self.category)))


# --- step 1: visits and counter timelines ------------------------------------------------------------------------


@dataclass(slots=True)
class Visit:
    """A ticket's stay in one service (see the module docstring). ``timed_wait``/``timed_service``: no clock
    step fell inside that measurement."""

    ticket_id: str
    day: str
    service: str
    priority: bool
    category: str | None
    transferred_in: bool
    arrived_at: datetime
    called_at: datetime | None = None
    counter: str | None = None
    ended_at: datetime | None = None
    outcome: Outcome = "open"
    recalls: int = 0
    epoch: int = 0  # clock steps seen at arrival
    called_epoch: int = 0
    timed_service: bool = False


@dataclass(slots=True)
class DayLog:
    """One business day the hall worked: when it started (``DayStarted``), each counter's status then, and
    each counter's status changes in order."""

    day: str
    started_at: datetime
    status_at_start: dict[str, str]
    changes: list[tuple[datetime, str, str]] = field(default_factory=list)  # (at, counter, status)


@dataclass(slots=True)
class Rating:
    """A rated served visit (``TicketRated``) in its business day ``day``: where it was served (the rating's own
    service and counter), the visit's lane and category, when it was served and when rated, the level, the
    channel, the reasons' ids and the citizen's comment."""

    day: str
    service: str
    counter: str
    priority: bool
    category: str | None
    served_at: datetime
    rated_at: datetime
    level: str
    channel: str
    reasons: list[str]
    comment: str | None


@dataclass(slots=True)
class DaySpan:
    """The journal from one ``DayStarted`` up to the next: business day ``day`` (after any ``DayCorrected`` in
    it), its counters' log, the visits of the tickets issued in it and their ratings. The span before the
    journal's first ``DayStarted`` (only in a partial list of events) has ``day`` and ``log`` None. ``last_at``:
    its last event."""

    day: str | None
    log: DayLog | None
    visits: list[Visit] = field(default_factory=list)
    last_at: datetime | None = None
    ratings: list[Rating] = field(default_factory=list)


@dataclass(slots=True)
class Facts:
    """What ``collect`` found, span by span (journal order)."""

    spans: list[DaySpan]

    @property
    def visits(self) -> list[Visit]:
        return [visit for span in self.spans for visit in span.visits]

    @property
    def days(self) -> dict[str, DayLog]:
        """The days the hall worked (see ``merge_logs``)."""
        return merge_logs(span.log for span in self.spans)

    @property
    def last_at(self) -> datetime | None:
        """The latest event's time."""
        return next((s.last_at for s in reversed(self.spans) if s.last_at is not None), None)


def merge_logs(logs: Iterable[DayLog | None]) -> dict[str, DayLog]:
    """Counters' logs by business day: a day worked in two spans (a ``DayCorrected`` put a later span back into
    it) is one timeline, the second span's carried statuses taking effect at its start."""
    merged: dict[str, DayLog] = {}
    for log in logs:
        if log is None:
            continue
        earlier = merged.get(log.day)
        if earlier is None:
            merged[log.day] = DayLog(log.day, log.started_at, dict(log.status_at_start), list(log.changes))
        else:
            earlier.changes += [(log.started_at, cid, status) for cid, status in log.status_at_start.items()]
            earlier.changes += log.changes
    return merged


def collect(events: Iterable[Event], *, spec: HallSpec) -> Facts:
    """Follow tickets and counters through ``events`` (journal order). Pure; one pass; memory grows with the
    tickets, not the events."""
    span = DaySpan(None, None)
    spans = [span]
    visits = span.visits
    open_visits: dict[str, Visit] = {}
    log: DayLog | None = None
    statuses = {c.id: str(c.status_at_start) for c in spec.counters}
    epoch = 0
    last_at: datetime | None = None
    # This span's served visits by ticket, for their ratings; and its tickets rated (the first rating counts).
    served: dict[str, Visit] = {}
    rated: set[str] = set()
    for event in events:
        event_type = type(event)
        if event_type is TicketIssued:
            assert isinstance(event, TicketIssued)  # narrows for mypy; the dispatch is by exact type (fastest)
            visit = Visit(event.ticket_id, event.day, event.service, event.priority, event.category, False, event.at,
                          epoch=epoch)
            visits.append(visit)
            open_visits[event.ticket_id] = visit
        elif event_type is TicketCalled:
            assert isinstance(event, TicketCalled)
            visit_or_none = open_visits.get(event.ticket_id)
            if visit_or_none is not None:
                if event.recall:
                    visit_or_none.recalls += 1
                elif visit_or_none.called_at is None:
                    visit_or_none.called_at = event.at
                    visit_or_none.counter = event.counter
                    visit_or_none.called_epoch = epoch
        elif event_type is TicketFinished:
            assert isinstance(event, TicketFinished)
            ended = open_visits.pop(event.ticket_id, None)
            if ended is not None:
                ended.ended_at = event.at
                ended.outcome = event.outcome
                ended.counter = ended.counter or event.counter
                ended.timed_service = ended.called_epoch == epoch
                if event.outcome == "served":
                    served[event.ticket_id] = ended
        elif event_type is TicketTransferred:
            assert isinstance(event, TicketTransferred)
            ended = open_visits.pop(event.ticket_id, None)
            if ended is not None:
                ended.ended_at = event.at
                ended.outcome = "transferred"
                ended.counter = ended.counter or event.counter
                visit = Visit(event.ticket_id, ended.day, event.to_service, ended.priority, ended.category, True,
                              event.at, epoch=epoch)
                visits.append(visit)
                open_visits[event.ticket_id] = visit
        elif event_type is TicketExpired or event_type is TicketVoided:
            assert isinstance(event, TicketExpired | TicketVoided)
            ended = open_visits.pop(event.ticket_id, None)
            if ended is not None:
                ended.ended_at = event.at
                ended.outcome = "expired" if event_type is TicketExpired else "voided"
        elif event_type is CounterStatusChanged:
            assert isinstance(event, CounterStatusChanged)
            statuses[event.counter] = event.status
            if log is not None:
                log.changes.append((event.at, event.counter, event.status))
        elif event_type is DayStarted:
            assert isinstance(event, DayStarted)
            carried = event.carry.get("counters") if isinstance(event.carry, dict) else None
            if isinstance(carried, dict):
                for cid, value in carried.items():
                    if isinstance(value, list | tuple) and value and value[0] in STATUSES:
                        statuses[cid] = value[0]
            span.last_at = last_at
            log = DayLog(event.day, event.at, dict(statuses))
            span = DaySpan(event.day, log)
            spans.append(span)
            visits = span.visits
            epoch = 0
            served = {}
            rated = set()
        elif event_type is TicketRated:
            assert isinstance(event, TicketRated)
            if event.ticket_id not in rated and (event.channel, event.level) in _RATING_INDEX:
                rated_visit = served.get(event.ticket_id)
                day = rated_visit.day if rated_visit is not None else span.day
                if day is not None:
                    rated.add(event.ticket_id)
                    span.ratings.append(Rating(
                        day, event.service, event.counter,
                        rated_visit.priority if rated_visit is not None else False,
                        rated_visit.category if rated_visit is not None else None,
                        rated_visit.ended_at or event.at if rated_visit is not None else event.at,
                        event.at, event.level, event.channel, list(dict.fromkeys(event.reasons)), event.comment))
        elif event_type is ClockStepped:
            epoch += 1
        elif event_type is DayCorrected:
            # The engine relabels the day it is in (one a clock glitch put in the future); the whole span is
            # that day's, also the tickets issued before the correction.
            assert isinstance(event, DayCorrected)
            if log is not None:
                span.day = log.day = event.day
                for visit in visits:
                    visit.day = event.day
                for rating in span.ratings:
                    rating.day = event.day
        last_at = event.at
    span.last_at = last_at
    if not spans[0].visits and len(spans) > 1:
        del spans[0]
    return Facts(spans)


# --- the mergeable summary of a day ------------------------------------------------------------------------------

# A cell's counts, in this order (sums of microseconds keep means exact over any merge).
COUNTS = ("issued", "transferred_in", "served", "no_show", "transferred", "voided", "expired", "open", "within",
          "base", "wait_sum_us", "service_sum_us")
_OUTCOME_INDEX = {name: index for index, name in enumerate(COUNTS) if index in range(2, 8)}
_MICROSECOND = timedelta(microseconds=1)


@dataclass(slots=True)
class Cell:
    """The visits of one business day that share service, counter (None: never called), lane and category.

    ``waits`` holds the measured waits (seconds) ordered by (arrival hour, wait); ``hours`` gives, for each hour
    of arrival, call or service that has any, six integers in a row (``HOUR_WIDTH``): the hour, arrivals, calls,
    visits served (finished) in it, the end of that hour's waits in ``waits``, their sum in microseconds.
    ``service_times``: sorted. Cells of any days merge by concatenation, so medians and percentiles stay
    exact."""

    day: str
    service: str
    counter: str | None
    priority: bool
    category: str | None
    counts: tuple[int, ...]
    waits: list[float]
    service_times: list[float]
    hours: list[int]


HOUR_WIDTH = 6  # integers per hour in ``Cell.hours``


class Comment(NamedTuple):
    """A citizen's own words given with a rating: when rated (the hall's time), the business day, where the
    visit was served, the rating's level and channel. Nothing in it names the ticket. Ordered by time. (A named
    tuple: a year's comments are made again from the cache for each report, and a tuple is made fastest.)"""

    at: datetime
    day: str
    service: str
    counter: str
    level: str
    channel: str
    text: str


@dataclass(slots=True)
class RatingCell:
    """The ratings of one business day's served visits that share service, counter (where served), lane and
    category. ``tally``: how many of each ``RATING_KEYS`` (channel, level); ``hours``: for each local hour of
    service that has any, the hour then its tally (``1 + len(RATING_KEYS)`` integers in a row); ``reasons``: how
    many ratings named each reason; ``comments``: the citizens' words, in journal order. Cells of any days merge
    by adding."""

    day: str
    service: str
    counter: str
    priority: bool
    category: str | None
    tally: tuple[int, ...]
    hours: list[int]
    reasons: dict[str, int]
    comments: list[Comment]


@dataclass(slots=True)
class DaySummary:
    """A ``DaySpan`` summarised (``summarise_days`` makes a report of any number of them): its day, its
    counters' log, its visits as cells, its last event's time, its ratings as cells. Depends on the hall's zone
    and services' target waits (see ``summary_inputs``), nothing else of the config (the reasons' names are
    looked up when the report is made)."""

    day: str | None
    log: DayLog | None
    cells: list[Cell]
    last_at: datetime | None
    ratings: list[RatingCell] = field(default_factory=list)


def summary_inputs(spec: HallSpec) -> dict[str, object]:
    """What of the config a ``DaySummary`` depends on: a summary made with other inputs must be made again."""
    return {"zone": str(spec.zone), "targets": {s.id: s.target_wait_s for s in spec.services},
            "default_target_s": DEFAULT_TARGET_WAIT_S}


def summarise_span(span: DaySpan, *, spec: HallSpec) -> DaySummary:
    """Cut a span's visits into cells (see ``Cell``). Pure."""
    targets = {s.id: s.target_wait_s for s in spec.services}
    offsets = _Offsets(spec)
    groups: dict[tuple[str, str, str | None, bool, str | None], list[Visit]] = {}
    for visit in span.visits:
        key = (visit.day, visit.service, visit.counter, visit.priority, visit.category)
        group = groups.get(key)
        if group is None:
            groups[key] = [visit]
        else:
            group.append(visit)
    cells = []
    for (day, service, counter, priority, category), visits in groups.items():
        target_s = targets.get(service, DEFAULT_TARGET_WAIT_S)
        counts = [0] * len(COUNTS)
        arrivals: dict[int, int] = {}
        calls: dict[int, int] = {}
        served_in: dict[int, int] = {}
        timed_waits: list[tuple[int, float, int]] = []  # (arrival hour, seconds, microseconds)
        service_times: list[float] = []
        for visit in visits:
            counts[1 if visit.transferred_in else 0] += 1
            counts[_OUTCOME_INDEX[visit.outcome]] += 1
            hour = offsets.hour(visit.arrived_at)
            if not visit.transferred_in:
                arrivals[hour] = arrivals.get(hour, 0) + 1
            if visit.outcome == "served" and visit.ended_at is not None:
                served_hour = offsets.hour(visit.ended_at)
                served_in[served_hour] = served_in.get(served_hour, 0) + 1
            if visit.called_at is not None:
                call_hour = offsets.hour(visit.called_at)
                calls[call_hour] = calls.get(call_hour, 0) + 1
                waited = visit.called_at - visit.arrived_at
                wait_s = waited.total_seconds()
                counts[9] += 1
                counts[8] += wait_s <= target_s
                if wait_s >= 0 and visit.called_epoch == visit.epoch:
                    timed_waits.append((hour, wait_s, waited // _MICROSECOND))
                if visit.outcome == "served" and visit.timed_service and visit.ended_at is not None:
                    served = visit.ended_at - visit.called_at
                    if served >= timedelta(0):
                        service_times.append(served.total_seconds())
                        counts[11] += served // _MICROSECOND
            elif visit.outcome == "expired":
                counts[9] += 1
        timed_waits.sort()
        hours: list[int] = []
        end = 0
        for hour in sorted(arrivals.keys() | calls.keys() | served_in.keys() | {h for h, _, _ in timed_waits}):
            begin = end
            while end < len(timed_waits) and timed_waits[end][0] == hour:
                end += 1
            sum_us = sum(us for _, _, us in timed_waits[begin:end])
            counts[10] += sum_us
            hours += (hour, arrivals.get(hour, 0), calls.get(hour, 0), served_in.get(hour, 0), end, sum_us)
        service_times.sort()
        cells.append(Cell(day, service, counter, priority, category, tuple(counts),
                          [wait_s for _, wait_s, _ in timed_waits], service_times, hours))
    return DaySummary(span.day, span.log, cells, span.last_at, _rating_cells(span.ratings, offsets, spec=spec))


def _rating_cells(ratings: Sequence[Rating], offsets: _Offsets, *, spec: HallSpec) -> list[RatingCell]:
    """A span's ratings as ``RatingCell`` s, in the order their keys first come."""
    groups: dict[tuple[str, str, str, bool, str | None], list[Rating]] = {}
    for rating in ratings:
        groups.setdefault((rating.day, rating.service, rating.counter, rating.priority, rating.category),
                          []).append(rating)
    cells = []
    width = len(RATING_KEYS)
    for (day, service, counter, priority, category), group in groups.items():
        tally = [0] * width
        by_hour: dict[int, list[int]] = {}
        reasons: dict[str, int] = {}
        comments = []
        for rating in group:
            index = _RATING_INDEX[(rating.channel, rating.level)]
            tally[index] += 1
            hour = offsets.hour(rating.served_at)
            (by_hour.get(hour) or by_hour.setdefault(hour, [0] * width))[index] += 1
            for reason in rating.reasons:
                reasons[reason] = reasons.get(reason, 0) + 1
            if rating.comment:
                comments.append(Comment(rating.rated_at.astimezone(spec.zone), day, service, counter, rating.level,
                                        rating.channel, rating.comment))
        hours = [value for hour in sorted(by_hour) for value in (hour, *by_hour[hour])]
        cells.append(RatingCell(day, service, counter, priority, category, tuple(tally), hours, reasons, comments))
    return cells


# --- step 2: the report ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Durations in seconds over ``count`` samples; None when there is none."""

    count: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None
    max_s: float | None


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Visits by how they began and ended: ``issued`` + ``transferred_in`` = ``visits`` = ``served`` +
    ``no_show`` + ``transferred`` + ``voided`` + ``expired`` + ``open``."""

    issued: int = 0
    transferred_in: int = 0
    served: int = 0
    no_show: int = 0
    transferred: int = 0
    voided: int = 0
    expired: int = 0
    open: int = 0

    @property
    def visits(self) -> int:
        return self.issued + self.transferred_in


@dataclass(frozen=True, slots=True)
class Figures:
    """Counts and times of a set of visits. ``within_target`` of ``target_base`` visits were called within
    their service's target wait; ``within_target_share`` is that share (None when ``target_base`` is 0)."""

    outcomes: Outcomes
    wait: DurationStats
    service_time: DurationStats
    within_target: int
    target_base: int

    @property
    def within_target_share(self) -> float | None:
        return self.within_target / self.target_base if self.target_base else None


@dataclass(frozen=True, slots=True)
class RatingFigures:
    """The ratings of a set of visits: ``served`` visits were served, and ``tally`` counts the ratings by
    ``RATING_KEYS`` (channel, level). Shares are None when their base is 0."""

    served: int
    tally: tuple[int, ...] = NO_RATINGS

    @property
    def rated(self) -> int:
        return sum(self.tally)

    @property
    def levels(self) -> tuple[int, ...]:
        """Ratings per level (``hallq.wire.RATING_LEVELS`` order), all channels."""
        return self.channel_levels(None)

    def channel_levels(self, channel: str | None) -> tuple[int, ...]:
        """Ratings per level through ``channel`` ("counter", "phone"; None: all)."""
        return tuple(sum(count for (c, lv), count in zip(RATING_KEYS, self.tally, strict=True)
                         if lv == level and channel in (None, c)) for level in RATING_LEVELS)

    def through(self, channel: str) -> RatingFigures:
        """These figures with only the ratings through ``channel`` (the visits served stay all of them)."""
        return RatingFigures(self.served, tuple(count if c == channel else 0
                                                for (c, _), count in zip(RATING_KEYS, self.tally, strict=True)))

    @property
    def rated_share(self) -> float | None:
        """The visits rated, of the visits served."""
        return self.rated / self.served if self.served else None

    @property
    def level_shares(self) -> tuple[float | None, ...]:
        """Each level's share of the ratings."""
        rated = self.rated
        return tuple(count / rated if rated else None for count in self.levels)

    @property
    def satisfied_share(self) -> float | None:
        """The share of ratings "Hài lòng" or "Rất hài lòng" (``SATISFIED_LEVELS``)."""
        rated = self.rated
        good = sum(count for level, count in zip(RATING_LEVELS, self.levels, strict=True) if level in SATISFIED_LEVELS)
        return good / rated if rated else None


@dataclass(frozen=True, slots=True)
class ReasonRow:
    """A reason given with low ratings: its id, its names (the id itself for one no longer configured), how many
    ratings named it, of ``low_rated`` low ratings."""

    reason: str
    name_vi: str
    name_en: str
    count: int
    low_rated: int

    @property
    def share(self) -> float | None:
        return self.count / self.low_rated if self.low_rated else None


@dataclass(frozen=True, slots=True)
class ServiceRow:
    service: str
    name_vi: str
    name_en: str
    target_wait_s: int
    figures: Figures
    ratings: RatingFigures


@dataclass(frozen=True, slots=True)
class CounterRow:
    """A counter's visits (called there), its time by status within business hours, in seconds, and the
    ratings of the visits it served."""

    counter: str
    name: str
    figures: Figures
    open_s: float
    paused_s: float
    closed_s: float
    ratings: RatingFigures


@dataclass(frozen=True, slots=True)
class LaneRow:
    """The regular or the priority lane (``category`` None), or one priority category."""

    lane: Lane
    category: str | None
    figures: Figures


@dataclass(frozen=True, slots=True)
class HourRow:
    """One hour of the local day: tickets issued, first calls, the waits of the visits that arrived in it, and
    the visits served (finished) in it with their ratings."""

    hour: int
    arrivals: int
    calls: int
    wait: DurationStats
    ratings: RatingFigures


@dataclass(frozen=True, slots=True)
class DayRow:
    day: str
    figures: Figures
    ratings: RatingFigures


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a report shows. ``days_worked``: the period's business days the ledger has a start for.
    Rows are in the config's order (services, counters), then any the ledger names that the config no longer
    has. ``hours`` has 24 rows (0-23, the hall's local time). ``ratings``: of all the visits;
    ``rating_reasons``: the configured reasons in their order, then any other the ratings named;
    ``rating_comments``: every comment, oldest first."""

    hall_id: str
    hall_name_vi: str
    hall_name_en: str
    period: Period
    filters: Filters
    generated_at: datetime | None
    days_worked: tuple[str, ...]
    totals: Figures
    services: tuple[ServiceRow, ...]
    counters: tuple[CounterRow, ...]
    lanes: tuple[LaneRow, ...]
    hours: tuple[HourRow, ...]
    days: tuple[DayRow, ...]
    ratings: RatingFigures
    rating_reasons: tuple[ReasonRow, ...]
    rating_comments: tuple[Comment, ...]


def build_report(events: Iterable[Event], *, spec: HallSpec, period: Period, filters: Filters | None = None,
                 now: datetime | None = None) -> Report:
    """The report of ``period`` over ``events`` (the journal's, in order; extra days are ignored). ``now``: the
    time the report is made, where counters' time stops (default: the last event's time). Raises
    ``ReportError`` for filters the hall does not have."""
    return summarise(collect(events, spec=spec), spec=spec, period=period, filters=filters, now=now)


def summarise(facts: Facts, *, spec: HallSpec, period: Period, filters: Filters | None = None,
              now: datetime | None = None) -> Report:
    """Step 2 of ``build_report``, on what ``collect`` found."""
    return summarise_days([summarise_span(span, spec=spec) for span in facts.spans], spec=spec, period=period,
                          filters=filters, now=now)


_COUNTS_OF = attrgetter("counts")
_WAITS_OF = attrgetter("waits")
_SERVICE_TIMES_OF = attrgetter("service_times")


class _Group:
    """The cells (and the month summaries' parts) of one row of a report; ``figures`` merges them."""

    __slots__ = ("cells", "parts")

    def __init__(self) -> None:
        self.cells: list[Cell] = []
        self.parts: list[Part] = []

    def _sums(self) -> list[int]:
        members: Sequence[Cell | Part] = [*self.cells, *self.parts] if self.parts else self.cells
        if not members:
            return [0] * len(COUNTS)
        return [sum(column) for column in zip(*map(_COUNTS_OF, members), strict=True)]

    def figures(self) -> Figures:
        sums = self._sums()
        outcomes = Outcomes(*sums[:8])
        if not self.parts:
            waits = list(chain.from_iterable(map(_WAITS_OF, self.cells)))
            service_times = list(chain.from_iterable(map(_SERVICE_TIMES_OF, self.cells)))
            return Figures(outcomes, _stats(waits, sums[10]), _stats(service_times, sums[11]), sums[8], sums[9])
        return Figures(outcomes, _runs_stats(self._runs(_WAITS_OF), sums[10]),
                       _runs_stats(self._runs(_SERVICE_TIMES_OF), sums[11]), sums[8], sums[9])

    def _runs(self, samples_of: Callable[[Cell | Part], Sequence[float]]) -> list[Sequence[float]]:
        """The parts' sorted samples, and the cells' sorted together as one more run."""
        runs: list[Sequence[float]] = [samples_of(part) for part in self.parts]
        loose = list(chain.from_iterable(map(samples_of, self.cells)))
        if loose:
            loose.sort()
            runs.append(loose)
        return runs

    def part(self) -> Part:
        """The group as one ``Part`` (its samples sorted)."""
        sums = self._sums()
        waits, service_times = (list(chain.from_iterable(runs)) for runs in (self._runs(_WAITS_OF),
                                                                              self._runs(_SERVICE_TIMES_OF)))
        waits.sort()
        service_times.sort()
        return Part(tuple(sums), waits, service_times)


class _Rows:
    """A report's rows while they are gathered: each row's group, the hours' counts and waits, the days' figures
    already made (from month summaries); the ratings' tallies by row, hour and day, their reasons and comments."""

    def __init__(self) -> None:
        self.totals = _Group()
        self.by_service: dict[str, _Group] = {}
        self.by_counter: dict[str, _Group] = {}
        self.by_lane: dict[tuple[bool, str | None], _Group] = {}  # (priority, None) or (True, category or "")
        self.by_day: dict[str, _Group] = {}
        self.day_figures: dict[str, Figures] = {}
        self.arrivals = [0] * 24
        self.calls = [0] * 24
        self.hour_waits: list[list[float]] = [[] for _ in range(24)]
        self.hour_runs: list[list[Sequence[float]]] = [[] for _ in range(24)]
        self.hour_sums = [0] * 24
        self.served = [0] * 24
        # Rating tallies as they come, summed column by column once all are there (``_summed``): a row has few
        # ratings in each of many cells, and adding them up one by one in Python is what costs.
        self.rated: list[Sequence[int]] = []
        self.rated_by_service: dict[str, list[Sequence[int]]] = {}
        self.rated_by_counter: dict[str, list[Sequence[int]]] = {}
        self.rated_by_day: dict[str, list[Sequence[int]]] = {}
        self.rated_hours: list[list[Sequence[int]]] = [[] for _ in range(24)]
        self.reasons: dict[str, int] = {}
        self.comments: list[Comment] = []
        self.rated_days: set[str] = set()  # the days of the rating cells added (not of month summaries)

    def add_cells(self, cells: Iterable[Cell], *, first_day: str, last_day: str, filters: Filters) -> None:
        """The cells of days ``first_day``..``last_day`` that pass ``filters``."""
        totals, by_service, by_counter, by_lane, by_day = (self.totals, self.by_service, self.by_counter,
                                                          self.by_lane, self.by_day)
        arrivals, calls, served, hour_waits, hour_sums = (self.arrivals, self.calls, self.served, self.hour_waits,
                                                          self.hour_sums)
        service, counter, lane, category = filters.service, filters.counter, filters.lane, filters.category
        for cell in cells:
            if not (first_day <= cell.day <= last_day
                    and (service is None or cell.service == service)
                    and (counter is None or cell.counter == counter)
                    and (lane is None or cell.priority == (lane == "priority"))
                    and (category is None or (cell.priority and cell.category == category))):
                continue
            totals.cells.append(cell)
            (by_service.get(cell.service) or by_service.setdefault(cell.service, _Group())).cells.append(cell)
            if cell.counter is not None:
                (by_counter.get(cell.counter) or by_counter.setdefault(cell.counter, _Group())).cells.append(cell)
            lane_key: tuple[bool, str | None] = (cell.priority, None)
            (by_lane.get(lane_key) or by_lane.setdefault(lane_key, _Group())).cells.append(cell)
            if cell.priority:
                lane_key = (True, cell.category or "")
                (by_lane.get(lane_key) or by_lane.setdefault(lane_key, _Group())).cells.append(cell)
            (by_day.get(cell.day) or by_day.setdefault(cell.day, _Group())).cells.append(cell)
            waits = cell.waits
            cell_hours = cell.hours
            begin = 0
            for index in range(0, len(cell_hours), HOUR_WIDTH):
                hour, arrived, called, finished, end, sum_us = cell_hours[index:index + HOUR_WIDTH]
                arrivals[hour] += arrived
                calls[hour] += called
                served[hour] += finished
                if end > begin:
                    hour_waits[hour] += waits[begin:end]
                    hour_sums[hour] += sum_us
                    begin = end

    def add_ratings(self, cells: Iterable[RatingCell], *, first_day: str, last_day: str, filters: Filters) -> None:
        """The rating cells of days ``first_day``..``last_day`` that pass ``filters``."""
        width = len(RATING_KEYS) + 1
        rated, by_service, by_counter, by_day = self.rated, self.rated_by_service, self.rated_by_counter, \
            self.rated_by_day
        rated_hours, reasons = self.rated_hours, self.reasons
        for cell in cells:
            if not (first_day <= cell.day <= last_day
                    and filters.admits(cell.service, cell.counter, cell.priority, cell.category)):
                continue
            self.rated_days.add(cell.day)
            tally = cell.tally
            rated.append(tally)
            (by_service.get(cell.service) or by_service.setdefault(cell.service, [])).append(tally)
            (by_counter.get(cell.counter) or by_counter.setdefault(cell.counter, [])).append(tally)
            (by_day.get(cell.day) or by_day.setdefault(cell.day, [])).append(tally)
            cell_hours = cell.hours
            for at in range(0, len(cell_hours), width):
                rated_hours[cell_hours[at]].append(cell_hours[at + 1:at + width])
            for reason, count in cell.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + count
            if cell.comments:
                self.comments += cell.comments

    def add_month(self, month: MonthSummary) -> None:
        """A month summary's rows, hours, days and ratings (all of them: it has no filters and only the period's
        days)."""
        for (kind, name), part in month.rows.items():
            if kind == "service":
                group = self.by_service.get(name) or self.by_service.setdefault(name, _Group())
            elif kind == "counter":
                group = self.by_counter.get(name) or self.by_counter.setdefault(name, _Group())
            else:
                key: tuple[bool, str | None] = (name == "priority", None) if kind == "lane" else (True, name)
                group = self.by_lane.get(key) or self.by_lane.setdefault(key, _Group())
                if kind == "lane":  # the regular and the priority lane: all the visits, once
                    self.totals.parts.append(part)
            group.parts.append(part)
        for hour, hour_part in enumerate(month.hours):
            self.arrivals[hour] += hour_part.arrivals
            self.calls[hour] += hour_part.calls
            self.served[hour] += hour_part.served
            if hour_part.waits:
                self.hour_runs[hour].append(hour_part.waits)
                self.hour_sums[hour] += hour_part.sum_us
        self.day_figures.update(month.day_figures)
        for (kind, name), tally in month.rated.items():
            if kind == "total":
                self.rated.append(tally)
            else:
                into = {"service": self.rated_by_service, "counter": self.rated_by_counter,
                        "day": self.rated_by_day}[kind]
                (into.get(name) or into.setdefault(name, [])).append(tally)
        for hour, tally in enumerate(month.rated_hours):
            self.rated_hours[hour].append(tally)
        for reason, count in month.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        self.comments += month.comments

    def rating_rows(self) -> dict[RatingRowKey, tuple[int, ...]]:
        """The ratings' tallies as a month summary keeps them."""
        rows: dict[RatingRowKey, tuple[int, ...]] = {("total", ""): _summed(self.rated)}
        for kind, tallies in (("service", self.rated_by_service), ("counter", self.rated_by_counter),
                              ("day", self.rated_by_day)):
            rows.update(((kind, name), _summed(parts)) for name, parts in tallies.items())
        return rows

    def hour_stats(self, hour: int) -> DurationStats:
        runs = self.hour_runs[hour]
        if not runs:
            return _stats(self.hour_waits[hour], self.hour_sums[hour])
        loose = self.hour_waits[hour]
        loose.sort()
        return _runs_stats([*runs, loose], self.hour_sums[hour])


def _summed(tallies: Sequence[Sequence[int]] | None) -> tuple[int, ...]:
    """The sum of rating tallies, column by column (``NO_RATINGS`` for none)."""
    if not tallies:
        return NO_RATINGS
    return tuple(map(sum, zip(*tallies, strict=True)))


def summarise_days(summaries: Sequence[DaySummary | MonthSummary], *, spec: HallSpec, period: Period,
                   filters: Filters | None = None, now: datetime | None = None,
                   pace: Callable[[], None] | None = None) -> Report:
    """The report of ``period`` over day summaries (in journal order; other days are ignored). ``now``: as in
    ``build_report`` (default: the last summary's last event). ``pace`` is called between pieces of the work (a
    day's cells, a row's figures): where the caller may pause (``manager.budget.CpuBudget.checkpoint``).

    Month summaries (``merge_days``) may stand for their days in a report without filters, when each of their
    days is in ``period`` and no day summary is of one of their days; ``InvariantError`` otherwise."""
    checkpoint = pace or _no_pause

    def figures(group: _Group | None) -> Figures:
        checkpoint()
        return (group or _Group()).figures()

    filters = filters or Filters()
    filters.check(spec)
    until = now or next((s.last_at for s in reversed(summaries) if s.last_at is not None), None)
    first_day, last_day = period.first.isoformat(), period.last.isoformat()
    rows = _Rows()
    day_logs: list[DayLog] = []
    month_days: set[str] = set()
    loose_days: set[str] = set()
    for summary in summaries:
        checkpoint()
        if isinstance(summary, MonthSummary):
            its_days = {log.day for log in summary.logs}
            if filters != Filters() or not all(first_day <= day <= last_day for day in its_days):
                raise InvariantError(f"the month summary of {summary.month} stands for all of its days, unfiltered")
            month_days |= its_days
            rows.add_month(summary)
            day_logs += summary.logs
        else:
            rows.add_cells(summary.cells, first_day=first_day, last_day=last_day, filters=filters)
            rows.add_ratings(summary.ratings, first_day=first_day, last_day=last_day, filters=filters)
            if summary.log is not None:
                day_logs.append(summary.log)
                loose_days.add(summary.log.day)
    if month_days and not month_days.isdisjoint(loose_days | rows.by_day.keys() | rows.rated_days):
        raise InvariantError("a day is in a month summary and in a day summary too")

    by_service, by_counter, by_lane = rows.by_service, rows.by_counter, rows.by_lane

    def rated(served: int, tallies: Sequence[Sequence[int]] | None) -> RatingFigures:
        return RatingFigures(served, _summed(tallies))

    targets = {s.id: s.target_wait_s for s in spec.services}
    service_ids = [filters.service] if filters.service is not None else _ordered(
        [s.id for s in spec.services], by_service.keys() | rows.rated_by_service.keys())
    services = []
    for sid in service_ids:
        known: ServiceSpec | None = spec.service_by_id.get(sid)
        service_figures = figures(by_service.get(sid))
        services.append(ServiceRow(sid, known.name_vi if known else sid, known.name_en if known else sid,
                                   targets.get(sid, DEFAULT_TARGET_WAIT_S), service_figures,
                                   rated(service_figures.outcomes.served, rows.rated_by_service.get(sid))))

    counter_ids = _ordered([c.id for c in spec.counters], by_counter.keys() | rows.rated_by_counter.keys())
    if filters.counter is not None:
        counter_ids = [filters.counter]
    elif filters.service is not None:
        counter_ids = [c for c in counter_ids if c in by_counter or (
            c in spec.counter_by_id and filters.service in spec.counter_by_id[c].services)
            or c in rows.rated_by_counter]
    logs = merge_logs(log for log in day_logs if first_day <= log.day <= last_day)
    worked = [logs[day] for day in sorted(logs)]
    windows: dict[tuple[str, tuple[str, ...]], list[tuple[datetime, datetime]]] = {}
    counters = []
    for cid in counter_ids:
        checkpoint()
        status_s = _status_seconds(cid, worked, spec=spec, until=until, known_windows=windows)
        counter_spec = spec.counter_by_id.get(cid)
        counter_figures = figures(by_counter.get(cid))
        counters.append(CounterRow(cid, counter_spec.name if counter_spec else cid, counter_figures,
                                   status_s["open"], status_s["paused"], status_s["closed"],
                                   rated(counter_figures.outcomes.served, rows.rated_by_counter.get(cid))))

    lanes = [LaneRow(lane_name, None, figures(by_lane.get((lane_name == "priority", None))))
             for lane_name in LANES if filters.lane in (None, lane_name)]
    lanes += [LaneRow("priority", key[1] or None, figures(by_lane[key]))
              for key in sorted((k for k in by_lane if k[1] is not None), key=lambda k: k[1] or "")]
    hours = []
    for hour in range(24):
        if not hour % 6:
            checkpoint()
        hours.append(HourRow(hour, rows.arrivals[hour], rows.calls[hour], rows.hour_stats(hour),
                             rated(rows.served[hour], rows.rated_hours[hour])))

    day_figures = rows.day_figures
    day_figures.update((day, figures(group)) for day, group in rows.by_day.items())
    no_visits = _Group().figures()
    days = []
    for day in sorted(day_figures.keys() | rows.rated_by_day.keys()):
        day_row = day_figures.get(day, no_visits)
        days.append(DayRow(day, day_row, rated(day_row.outcomes.served, rows.rated_by_day.get(day))))
    totals_figures = figures(rows.totals)
    ratings = rated(totals_figures.outcomes.served, rows.rated)
    low_rated = sum(count for level, count in zip(RATING_LEVELS, ratings.levels, strict=True) if level in LOW_RATINGS)
    reason_ids = _ordered([r.id for r in spec.ratings.reasons], rows.reasons)
    reasons = []
    for reason_id in reason_ids:
        reason = spec.ratings.reason_by_id.get(reason_id)
        reasons.append(ReasonRow(reason_id, reason.name_vi if reason else reason_id,
                                 reason.name_en if reason else reason_id, rows.reasons.get(reason_id, 0), low_rated))
    checkpoint()
    rows.comments.sort()
    return Report(
        hall_id=spec.id, hall_name_vi=spec.name_vi, hall_name_en=spec.name_en, period=period, filters=filters,
        generated_at=now, days_worked=tuple(log.day for log in worked), totals=totals_figures,
        services=tuple(services), counters=tuple(counters), lanes=tuple(lanes), hours=tuple(hours),
        days=tuple(days), ratings=ratings, rating_reasons=tuple(reasons), rating_comments=tuple(rows.comments),
    )


def _no_pause() -> None:
    pass


def duration_stats(samples: Sequence[float]) -> DurationStats:
    """Mean, median, 90th percentile (nearest rank) and maximum of ``samples`` (seconds)."""
    if not samples:
        return DurationStats(0, None, None, None, None)
    ordered = sorted(samples)
    n = len(ordered)
    return DurationStats(n, math.fsum(ordered) / n, statistics.median(ordered), ordered[math.ceil(0.9 * n) - 1],
                         ordered[-1])


def _stats(samples: list[float], sum_us: int) -> DurationStats:
    """``duration_stats`` of ``samples`` (sorted here, in place), the mean from their exact sum in microseconds
    (correctly rounded: an int divided by an int)."""
    n = len(samples)
    if not n:
        return DurationStats(0, None, None, None, None)
    samples.sort()
    middle = n // 2
    median = samples[middle] if n % 2 else (samples[middle - 1] + samples[middle]) / 2
    return DurationStats(n, sum_us / (n * 1_000_000), median, samples[math.ceil(0.9 * n) - 1], samples[-1])


def _runs_stats(runs: Sequence[Sequence[float]], sum_us: int) -> DurationStats:
    """``_stats`` of the samples of ``runs``, each sorted, without merging them (``_kth``)."""
    runs = [run for run in runs if len(run)]
    n = sum(map(len, runs))
    if not n:
        return DurationStats(0, None, None, None, None)
    middle = n // 2
    median = _kth(runs, middle) if n % 2 else (_kth(runs, middle - 1) + _kth(runs, middle)) / 2
    return DurationStats(n, sum_us / (n * 1_000_000), median, _kth(runs, math.ceil(0.9 * n) - 1),
                         max(run[-1] for run in runs))


def _kth(runs: Sequence[Sequence[float]], k: int) -> float:
    """The ``k``-th smallest (from 0) of the samples of ``runs``, each sorted and not empty: exact, in about
    log2(samples) rounds of two bisections per run, whatever the runs' lengths (a year's month rows: 12 runs of
    40,000 samples, about 0.2 ms).

    Each round takes the middle of the longest range still in play as a pivot and counts, by bisection, the
    samples below and equal to it in every range: either the pivot is the answer, or every range is cut to the
    side the answer is on (at least half of the longest goes)."""
    lo = [0] * len(runs)
    hi = [len(run) for run in runs]
    live = list(range(len(runs)))
    while True:
        widest = max(live, key=lambda index: hi[index] - lo[index])
        if len(live) == 1:
            return runs[widest][lo[widest] + k]
        pivot = runs[widest][(lo[widest] + hi[widest]) // 2]
        below = equal = 0
        cuts = []
        for index in live:
            run, start, stop = runs[index], lo[index], hi[index]
            low = bisect_left(run, pivot, start, stop)
            high = bisect_right(run, pivot, low, stop)
            cuts.append((low, high))
            below += low - start
            equal += high - low
        if k < below:
            for index, (low, _high) in zip(live, cuts, strict=True):
                hi[index] = low
        elif k < below + equal:
            return pivot
        else:
            k -= below + equal
            for index, (_low, high) in zip(live, cuts, strict=True):
                lo[index] = high
        live = [index for index in live if hi[index] > lo[index]]


# --- closed days merged: month summaries -------------------------------------------------------------------------

RowKey = tuple[str, str]  # ("service", id), ("counter", id), ("lane", "regular"), ("category", c)
RatingRowKey = tuple[str, str]  # ("total", ""), ("service", id), ("counter", id), ("day", day)


@dataclass(slots=True)
class Part:
    """The visits of a month summary's days that fall in one row of a report: their counts (as ``Cell.counts``)
    and their waits and service times, each sorted."""

    counts: tuple[int, ...]
    waits: Sequence[float]
    service_times: Sequence[float]


@dataclass(slots=True)
class HourPart:
    """The visits of a month summary's days in one hour: arrivals, first calls and visits served in that hour,
    and the waits (sorted) of the visits that arrived in it and their sum in microseconds."""

    arrivals: int
    calls: int
    served: int
    waits: Sequence[float]
    sum_us: int


@dataclass(slots=True)
class MonthSummary:
    """Closed business days of one calendar month merged (``merge_days``), for reports without filters: what
    every row of such a report needs of them, so that a year is merged from twelve of these instead of 365 days.

    ``rows``: each row's ``Part``, keyed ``("service", id)``, ``("counter", id)``, ``("lane", "regular" |
    "priority")`` and ``("category", category or "")`` (as the lanes' rows are; the totals are the two lanes');
    ``hours``: 24 ``HourPart``; ``day_figures``: each day's figures, final; ``logs``: the days' counters' logs in
    journal order; ``last_at``: the last event's time. Ratings: ``rated``, the tallies (``RATING_KEYS``) of the
    rows ``("total", "")``, ``("service", id)``, ``("counter", id)`` and ``("day", day)``; ``rated_hours``, 24
    tallies; ``reasons``, how many ratings named each; ``comments``, all of them."""

    month: str
    rows: dict[RowKey, Part]
    hours: list[HourPart]
    day_figures: dict[str, Figures]
    logs: list[DayLog]
    last_at: datetime | None
    rated: dict[RatingRowKey, tuple[int, ...]] = field(default_factory=dict)
    rated_hours: list[tuple[int, ...]] = field(default_factory=lambda: [NO_RATINGS] * 24)
    reasons: dict[str, int] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)


def merge_days(summaries: Sequence[DaySummary], *, pace: Callable[[], None] | None = None) -> MonthSummary | None:
    """The month summary of ``summaries`` (in journal order), or None when they are not the days of one month:
    none, one without a day or log, or a cell of another day than its summary's. ``pace`` as in
    ``summarise_days``."""
    checkpoint = pace or _no_pause
    months = {summary.day[:7] if summary.day is not None and summary.log is not None else None
              for summary in summaries}
    if len(months) != 1 or None in months:
        return None
    if any(cell.day != summary.day for summary in summaries for cell in summary.cells) or any(
            cell.day != summary.day for summary in summaries for cell in summary.ratings):
        return None
    rows = _Rows()
    everything = Filters()
    for summary in summaries:
        checkpoint()
        rows.add_cells(summary.cells, first_day="", last_day="9999", filters=everything)
        rows.add_ratings(summary.ratings, first_day="", last_day="9999", filters=everything)
    groups: list[tuple[RowKey, _Group]] = [(("service", sid), group) for sid, group in rows.by_service.items()]
    groups += [(("counter", cid), group) for cid, group in rows.by_counter.items()]
    groups += [(("lane", "priority" if priority else "regular") if category is None else ("category", category),
                group) for (priority, category), group in rows.by_lane.items()]
    parts = {}
    for key, group in groups:
        checkpoint()
        parts[key] = group.part()
    hours = []
    for hour in range(24):
        checkpoint()
        rows.hour_waits[hour].sort()
        hours.append(HourPart(rows.arrivals[hour], rows.calls[hour], rows.served[hour], rows.hour_waits[hour],
                              rows.hour_sums[hour]))
    day_figures = {}
    for day in sorted(rows.by_day):
        checkpoint()
        day_figures[day] = rows.by_day[day].figures()
    return MonthSummary(months.pop() or "", parts, hours, day_figures,
                        [summary.log for summary in summaries if summary.log is not None],
                        next((s.last_at for s in reversed(summaries) if s.last_at is not None), None),
                        rows.rating_rows(), [_summed(tallies) for tallies in rows.rated_hours], rows.reasons,
                        sorted(rows.comments))


def _ordered(configured: list[str], seen: Iterable[str]) -> list[str]:
    extra = sorted(set(seen) - set(configured))
    return configured + extra


class _Offsets:
    """Local hours of event times, fast: an event stamped with the hall zone's offset of that moment is read
    as it is (the controller stamps in the hall's zone); any other is converted."""

    def __init__(self, spec: HallSpec) -> None:
        self.zone = spec.zone
        self._same: dict[tuple[int, timedelta | None], bool] = {}

    def hour(self, at: datetime) -> int:
        offset = at.utcoffset()
        key = (at.toordinal(), offset)
        same = self._same.get(key)
        if same is None:
            # The zone keeps this offset all that date (no change of offset inside one date, then).
            first = datetime.combine(at.date(), time(0), tzinfo=self.zone)
            last = datetime.combine(at.date(), time(23, 59, 59), tzinfo=self.zone)
            same = self._same[key] = first.utcoffset() == offset == last.utcoffset()
        return at.hour if same else at.astimezone(self.zone).hour


def business_windows(day: str, services: Sequence[ServiceSpec], *, spec: HallSpec) -> list[tuple[datetime, datetime]]:
    """The business hours of business day ``day`` for a counter serving ``services``: their opening hours,
    merged, as aware datetimes; the whole business day when one of them is always open."""
    calendar_day = date.fromisoformat(day)
    day_start = datetime.combine(calendar_day, spec.day_starts_at, tzinfo=spec.zone)
    day_end = datetime.combine(calendar_day + timedelta(days=1), spec.day_starts_at, tzinfo=spec.zone)
    if not services or any(not s.hours for s in services):
        return [(day_start, day_end)]
    spans: list[tuple[datetime, datetime]] = []
    for service in services:
        for start, end in service.hours:
            on = calendar_day if start >= spec.day_starts_at else calendar_day + timedelta(days=1)
            begin = datetime.combine(on, start, tzinfo=spec.zone)
            finish = (datetime.combine(on + timedelta(days=1), time(0), tzinfo=spec.zone) if end == time.max
                      else datetime.combine(on, end, tzinfo=spec.zone))
            spans.append((max(begin, day_start), min(finish, day_end)))
    merged: list[tuple[datetime, datetime]] = []
    for begin, finish in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        elif begin < finish:
            merged.append((begin, finish))
    return merged


def _status_seconds(counter: str, worked: Sequence[DayLog], *, spec: HallSpec, until: datetime | None,
                    known_windows: dict[tuple[str, tuple[str, ...]], list[tuple[datetime, datetime]]] | None = None,
                    ) -> dict[str, float]:
    """A counter's seconds by status. ``known_windows``: business windows already made, by (day, service ids),
    kept for the next counter (counters that serve the same services share them)."""
    totals = dict.fromkeys(STATUSES, 0.0)
    counter_spec = spec.counter_by_id.get(counter)
    services = [spec.service_by_id[s] for s in counter_spec.services if s in spec.service_by_id] \
        if counter_spec else []
    service_ids = tuple(s.id for s in services)
    made = {} if known_windows is None else known_windows
    for log in worked:
        windows = made.get((log.day, service_ids))
        if windows is None:
            windows = made[(log.day, service_ids)] = business_windows(log.day, services, spec=spec)
        # The status timeline: the carried status from the day's start, then each change.
        day_start = windows[0][0] if windows else log.started_at
        points = [(min(day_start, log.started_at), log.status_at_start.get(counter, "closed"))]
        points += [(at, status) for at, cid, status in log.changes if cid == counter]
        for index, (begin, status) in enumerate(points):
            end = points[index + 1][0] if index + 1 < len(points) else None
            for w_begin, w_end in windows:
                lo = max(begin, w_begin)
                hi = w_end if end is None else min(end, w_end)
                if until is not None:
                    hi = min(hi, until)
                if hi > lo:
                    totals[status if status in totals else "closed"] += (hi - lo).total_seconds()
    return totals
