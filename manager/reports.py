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

Filters: ``service`` keeps that service's visits (and the counters that serve it); ``counter`` the visits called
at that counter (a visit never called belongs to no counter) and its row; ``lane`` regular or priority
visits; ``category`` priority visits of that category.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from hall_controller.engine.events import (
    ClockStepped,
    CounterStatusChanged,
    DayStarted,
    Event,
    TicketCalled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketTransferred,
    TicketVoided,
)
from hall_controller.engine.spec import HallSpec, ServiceSpec
from hallq.errors import HallqError

Outcome = Literal["served", "no_show", "transferred", "voided", "expired", "open"]
Lane = Literal["regular", "priority"]
LANES: tuple[Lane, ...] = ("regular", "priority")
STATUSES = ("open", "paused", "closed")
DEFAULT_TARGET_WAIT_S = 20 * 60
MAX_RANGE_DAYS = 3 * 366


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
class Facts:
    """What ``collect`` found: every visit, and the days the hall worked. ``last_at``: the latest event."""

    visits: list[Visit]
    days: dict[str, DayLog]
    last_at: datetime | None


def collect(events: Iterable[Event], *, spec: HallSpec) -> Facts:
    """Follow tickets and counters through ``events`` (journal order). Pure; one pass; memory grows with the
    tickets, not the events."""
    visits: list[Visit] = []
    open_visits: dict[str, Visit] = {}
    days: dict[str, DayLog] = {}
    log: DayLog | None = None
    statuses = {c.id: str(c.status_at_start) for c in spec.counters}
    epoch = 0
    last_at: datetime | None = None
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
            log = DayLog(event.day, event.at, dict(statuses))
            days[event.day] = log
            epoch = 0
        elif event_type is ClockStepped:
            epoch += 1
        last_at = event.at
    return Facts(visits=visits, days=days, last_at=last_at)


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
class ServiceRow:
    service: str
    name_vi: str
    name_en: str
    target_wait_s: int
    figures: Figures


@dataclass(frozen=True, slots=True)
class CounterRow:
    """A counter's visits (called there) and its time by status within business hours, in seconds."""

    counter: str
    name: str
    figures: Figures
    open_s: float
    paused_s: float
    closed_s: float


@dataclass(frozen=True, slots=True)
class LaneRow:
    """The regular or the priority lane (``category`` None), or one priority category."""

    lane: Lane
    category: str | None
    figures: Figures


@dataclass(frozen=True, slots=True)
class HourRow:
    """One hour of the local day: tickets issued, first calls, and the waits of the visits that arrived in it."""

    hour: int
    arrivals: int
    calls: int
    wait: DurationStats


@dataclass(frozen=True, slots=True)
class DayRow:
    day: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a report shows. ``days_worked``: the period's business days the ledger has a start for.
    Rows are in the config's order (services, counters), then any the ledger names that the config no longer
    has. ``hours`` has 24 rows (0-23, the hall's local time)."""

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


def build_report(events: Iterable[Event], *, spec: HallSpec, period: Period, filters: Filters | None = None,
                 now: datetime | None = None) -> Report:
    """The report of ``period`` over ``events`` (the journal's, in order; extra days are ignored). ``now``: the
    time the report is made, where counters' time stops (default: the last event's time). Raises
    ``ReportError`` for filters the hall does not have."""
    return summarise(collect(events, spec=spec), spec=spec, period=period, filters=filters, now=now)


def summarise(facts: Facts, *, spec: HallSpec, period: Period, filters: Filters | None = None,
              now: datetime | None = None) -> Report:
    """Step 2 of ``build_report``, on what ``collect`` found."""
    filters = filters or Filters()
    filters.check(spec)
    until = now or facts.last_at
    chosen = [v for v in facts.visits if period.contains(v.day) and _passes(v, filters)]
    targets = {s.id: s.target_wait_s for s in spec.services}
    measured = [_measure(v, targets.get(v.service, DEFAULT_TARGET_WAIT_S)) for v in chosen]
    pairs = list(zip(chosen, measured, strict=True))

    by_service: dict[str, list[tuple[Visit, _Measured]]] = {}
    by_counter: dict[str, list[tuple[Visit, _Measured]]] = {}
    by_lane: dict[tuple[bool, str | None], list[tuple[Visit, _Measured]]] = {}
    by_day: dict[str, list[tuple[Visit, _Measured]]] = {}
    offsets = _Offsets(spec)
    arrivals = [0] * 24
    calls = [0] * 24
    hour_waits: list[list[float]] = [[] for _ in range(24)]
    for pair in pairs:
        visit, (wait_s, _, _) = pair
        by_service.setdefault(visit.service, []).append(pair)
        if visit.counter is not None:
            by_counter.setdefault(visit.counter, []).append(pair)
        by_lane.setdefault((visit.priority, None), []).append(pair)
        if visit.priority:
            by_lane.setdefault((True, visit.category or ""), []).append(pair)
        by_day.setdefault(visit.day, []).append(pair)
        hour = offsets.hour(visit.arrived_at)
        if not visit.transferred_in:
            arrivals[hour] += 1
        if visit.called_at is not None:
            calls[offsets.hour(visit.called_at)] += 1
        if wait_s is not None:
            hour_waits[hour].append(wait_s)

    service_ids = [filters.service] if filters.service is not None else _ordered(
        [s.id for s in spec.services], by_service)
    services = []
    for sid in service_ids:
        known: ServiceSpec | None = spec.service_by_id.get(sid)
        services.append(ServiceRow(sid, known.name_vi if known else sid, known.name_en if known else sid,
                                   targets.get(sid, DEFAULT_TARGET_WAIT_S), _figures(by_service.get(sid, []))))

    counter_ids = _ordered([c.id for c in spec.counters], by_counter)
    if filters.counter is not None:
        counter_ids = [filters.counter]
    elif filters.service is not None:
        counter_ids = [c for c in counter_ids if c in by_counter or (
            c in spec.counter_by_id and filters.service in spec.counter_by_id[c].services)]
    worked = [log for day, log in sorted(facts.days.items()) if period.contains(day)]
    counters = []
    for cid in counter_ids:
        status_s = _status_seconds(cid, worked, spec=spec, until=until)
        counter_spec = spec.counter_by_id.get(cid)
        counters.append(CounterRow(cid, counter_spec.name if counter_spec else cid,
                                   _figures(by_counter.get(cid, [])),
                                   status_s["open"], status_s["paused"], status_s["closed"]))

    lanes = [LaneRow(lane, None, _figures(by_lane.get((lane == "priority", None), [])))
             for lane in LANES if filters.lane in (None, lane)]
    lanes += [LaneRow("priority", key[1] or None, _figures(by_lane[key]))
              for key in sorted((k for k in by_lane if k[1] is not None), key=lambda k: k[1] or "")]
    hours = tuple(HourRow(h, arrivals[h], calls[h], duration_stats(hour_waits[h])) for h in range(24))

    days = tuple(DayRow(day, _figures(by_day[day])) for day in sorted(by_day))
    return Report(
        hall_id=spec.id, hall_name_vi=spec.name_vi, hall_name_en=spec.name_en, period=period, filters=filters,
        generated_at=now, days_worked=tuple(log.day for log in worked), totals=_figures(pairs),
        services=tuple(services), counters=tuple(counters), lanes=tuple(lanes), hours=hours, days=days,
    )


def duration_stats(samples: Sequence[float]) -> DurationStats:
    """Mean, median, 90th percentile (nearest rank) and maximum of ``samples`` (seconds)."""
    if not samples:
        return DurationStats(0, None, None, None, None)
    ordered = sorted(samples)
    n = len(ordered)
    return DurationStats(n, math.fsum(ordered) / n, statistics.median(ordered), ordered[math.ceil(0.9 * n) - 1],
                         ordered[-1])


# (wait_s or None, service_s or None, counts toward the target: None = not at all, else within it or not)
_Measured = tuple[float | None, float | None, bool | None]


def _measure(visit: Visit, target_s: int) -> _Measured:
    wait_s: float | None = None
    service_s: float | None = None
    toward: bool | None = None
    if visit.called_at is not None:
        raw = (visit.called_at - visit.arrived_at).total_seconds()
        toward = raw <= target_s
        if raw >= 0 and visit.called_epoch == visit.epoch:
            wait_s = raw
        if visit.outcome == "served" and visit.timed_service and visit.ended_at is not None:
            raw_service = (visit.ended_at - visit.called_at).total_seconds()
            service_s = raw_service if raw_service >= 0 else None
    elif visit.outcome == "expired":
        toward = False
    return wait_s, service_s, toward


def _figures(pairs: Sequence[tuple[Visit, _Measured]]) -> Figures:
    counts = dict.fromkeys(("served", "no_show", "transferred", "voided", "expired", "open"), 0)
    issued = transferred_in = within = base = 0
    waits: list[float] = []
    services: list[float] = []
    for visit, (wait_s, service_s, toward) in pairs:
        counts[visit.outcome] += 1
        if visit.transferred_in:
            transferred_in += 1
        else:
            issued += 1
        if wait_s is not None:
            waits.append(wait_s)
        if service_s is not None:
            services.append(service_s)
        if toward is not None:
            base += 1
            within += toward
    outcomes = Outcomes(issued=issued, transferred_in=transferred_in, **counts)
    return Figures(outcomes, duration_stats(waits), duration_stats(services), within, base)


def _passes(visit: Visit, filters: Filters) -> bool:
    return ((filters.service is None or visit.service == filters.service)
            and (filters.counter is None or visit.counter == filters.counter)
            and (filters.lane is None or visit.priority == (filters.lane == "priority"))
            and (filters.category is None or (visit.priority and visit.category == filters.category)))


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


def _status_seconds(counter: str, worked: Sequence[DayLog], *, spec: HallSpec,
                    until: datetime | None) -> dict[str, float]:
    totals = dict.fromkeys(STATUSES, 0.0)
    counter_spec = spec.counter_by_id.get(counter)
    services = [spec.service_by_id[s] for s in counter_spec.services if s in spec.service_by_id] \
        if counter_spec else []
    for log in worked:
        windows = business_windows(log.day, services, spec=spec)
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
