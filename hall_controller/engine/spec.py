"""What the engine is told about a hall: services, counters and dispensers (built from the config file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from hallq.wire import CounterStatus

CallPolicy = Literal["priority_first", "interleave"]
TransferPosition = Literal["front", "original"]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service with its own numbering.

    Numbers run from ``first_number`` to ``last_number`` each business day, with ``wrap`` and
    ``priority_prefix`` as ``numbering.py`` describes. ``hours`` are local (start, end) pairs; empty means
    always open. ``transfer_position`` is where a ticket transferred into this service queues.
    ``target_wait_s`` is the wait the hall aims to keep under (reports give the share of citizens called
    within it); the engine does not use it.
    """

    id: str
    name_vi: str
    name_en: str
    prefix: str
    first_number: int = 1
    last_number: int = 999
    wrap: bool = True
    priority_prefix: str = ""
    hours: tuple[tuple[time, time], ...] = ()
    daily_cap: int | None = None
    card_daily_limit: int | None = None  # tickets of this service a day per citizen's card (None: no limit)
    transfer_position: TransferPosition = "front"
    target_wait_s: int = 20 * 60

    def is_open(self, local_clock: time) -> bool:
        if not self.hours:
            return True
        return any(start <= local_clock < end for start, end in self.hours)


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """One counter: the services it serves and how it picks the next ticket.

    ``priority_first``: the priority lane first, then regular. ``interleave``: after ``interleave_ratio``
    regular calls, one priority call if any waits. Either way, with ``max_wait_s`` set, a ticket that has
    waited longer than that goes first. Within a lane, oldest first across the counter's services.
    """

    id: str
    name: str
    services: tuple[str, ...]
    policy: CallPolicy = "interleave"
    interleave_ratio: int = 3
    max_wait_s: int | None = None
    status_at_start: CounterStatus = "open"


@dataclass(frozen=True, slots=True)
class DispenserSpec:
    """A dispenser the controller accepts requests from; ``services`` empty means all services."""

    id: str
    name: str = ""
    services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RatingReason:
    """One reason a citizen may give for a low rating (``[[ratings.reasons]]``): its id, as stored and reported,
    and its words."""

    id: str
    name_vi: str
    name_en: str


DEFAULT_RATING_REASONS: tuple[RatingReason, ...] = (
    RatingReason("waiting_time", "Thời gian chờ lâu", "Long wait"),
    RatingReason("attitude", "Thái độ phục vụ", "Staff attitude"),
    RatingReason("guidance", "Hướng dẫn chưa rõ ràng", "Unclear guidance"),
    RatingReason("paperwork", "Thủ tục, giấy tờ phức tạp", "Complicated paperwork"),
    RatingReason("facilities", "Cơ sở vật chất", "Facilities"),
)


@dataclass(frozen=True, slots=True)
class RatingSpec:
    """How visits are rated: ``window_s`` after ``complete`` a served visit may be rated (once, by its counter's
    buttons or its status page); ``reasons`` are offered after a low rating."""

    window_s: int = 30 * 60
    reasons: tuple[RatingReason, ...] = DEFAULT_RATING_REASONS
    reason_by_id: dict[str, RatingReason] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason_by_id", {r.id: r for r in self.reasons})


@dataclass(frozen=True, slots=True)
class HallSpec:
    """The whole hall. ``day_starts_at`` is the local time at which numbering restarts."""

    id: str
    name_vi: str
    name_en: str
    services: tuple[ServiceSpec, ...]
    counters: tuple[CounterSpec, ...]
    dispensers: tuple[DispenserSpec, ...]
    time_zone: str = "Asia/Ho_Chi_Minh"
    day_starts_at: time = time(4, 0)
    default_service_time_s: int = 300
    service_time_samples: int = 20
    recent_calls: int = 10
    card_daily_limit: int | None = None  # tickets a day per citizen's card, all services together (None: no limit)
    ratings: RatingSpec = field(default_factory=RatingSpec)
    service_by_id: dict[str, ServiceSpec] = field(init=False, compare=False, repr=False)
    counter_by_id: dict[str, CounterSpec] = field(init=False, compare=False, repr=False)
    dispenser_by_id: dict[str, DispenserSpec] = field(init=False, compare=False, repr=False)
    zone: ZoneInfo = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "service_by_id", {s.id: s for s in self.services})
        object.__setattr__(self, "counter_by_id", {c.id: c for c in self.counters})
        object.__setattr__(self, "dispenser_by_id", {d.id: d for d in self.dispensers})
        object.__setattr__(self, "zone", ZoneInfo(self.time_zone))

    def local(self, now: datetime) -> datetime:
        return now.astimezone(self.zone)

    def business_day(self, now: datetime) -> str:
        """The business day ``now`` falls in, as an ISO date: the local date, shifted by the day's start."""
        local = self.local(now)
        start = timedelta(hours=self.day_starts_at.hour, minutes=self.day_starts_at.minute)
        return (local - start).date().isoformat()
