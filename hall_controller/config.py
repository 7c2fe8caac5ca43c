"""The hall controller's configuration: a strict TOML file (see ``config/hall.example.toml``).

Every key is checked at start; an unknown key or a bad value stops the controller with a message that
names the file, the key and the problem (exit status 78), never a traceback.

Names, ids and prefixes are held to the limits every role's wire decoder applies (``hallq/limits.py``), and the
hall as a whole to what one board can carry: whatever ``check`` accepts, every display and counter can show.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Final, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hall_controller.engine.numbering import number_text
from hall_controller.engine.spec import (
    DEFAULT_RATING_REASONS,
    CallPolicy,
    CounterSpec,
    DispenserSpec,
    HallSpec,
    RatingReason,
    RatingSpec,
    ServiceSpec,
    TransferPosition,
)
from hall_controller.limits import Limits
from hallq import cards, wire
from hallq.configfile import LOG_LEVELS, Table, load_toml, read_mqtt, refuse_duplicates
from hallq.limits import MAX_NUMBER_VALUE, MAX_PREFIX_LEN, MAX_TICKET_ID_LEN
from hallq.mqtt import BrokerSettings
from hallq.wire import (
    COUNTER_STATUSES,
    MAX_PAYLOAD_BYTES,
    Board,
    BoardCounter,
    BoardService,
    Call,
    CounterState,
    CounterStatus,
    ServingTicket,
    WaitingCount,
)

_PREFIX = re.compile(rf"[A-Z]{{1,{MAX_PREFIX_LEN}}}")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Intake:
    """One of the controller's receiving broker connections: ``name`` is its client id and, on a broker with
    accounts, its username (``provision`` creates the account with the controller's password). It receives
    the messages of one dispenser or counter (``device``), or, for role ``others``, those of every id the
    config does not know."""

    name: str
    role: Literal["dispenser", "counter", "manager", "others"]
    device: str


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    hall: HallSpec
    broker: BrokerSettings
    base_topic: str
    client_id: str
    state_dir: Path
    log_level: str
    source: Path
    limits: Limits = field(default_factory=Limits)
    trust_clock: Literal["synchronised", "always"] = "synchronised"
    # The hall manager's id (``[manager] id``): its commands are received on a connection of their own. None: the
    # hall has no manager service.
    manager_id: str | None = None
    # The citizen's card (``[cards]``): None when the hall keeps no profiles (a scanned card is then ignored and the
    # ticket is an ordinary one).
    cards: CardsConfig | None = None

    def intakes(self) -> list[Intake]:
        """The receiving connections, in a stable order: each dispenser, each counter, the manager, ``others``."""
        intakes = [Intake(f"{self.client_id}.dispenser.{d.id}", "dispenser", d.id) for d in self.hall.dispensers]
        intakes += [Intake(f"{self.client_id}.counter.{c.id}", "counter", c.id) for c in self.hall.counters]
        if self.manager_id is not None:
            intakes.append(Intake(f"{self.client_id}.manager.{self.manager_id}", "manager", self.manager_id))
        intakes.append(Intake(f"{self.client_id}.others", "others", ""))
        return intakes

    def intake_broker(self, intake: Intake) -> BrokerSettings:
        """How ``intake`` logs in: as itself when the controller has an account, with the controller's password."""
        if self.broker.username is None:
            return self.broker
        return dataclasses.replace(self.broker, username=intake.name)


def load(path: Path) -> ControllerConfig:
    """Read and check the controller's config file; raises ``ConfigError`` naming file, key and problem."""
    root = load_toml(path)
    hall_table = root.table("hall", required=True)
    controller = root.table("controller")
    broker, base_topic = read_mqtt(root.table("mqtt"))
    service_tables = root.tables("services", required=True)
    services = [_service(t) for t in service_tables]
    refuse_duplicates(service_tables, [s.id for s in services], key="id")
    service_ids = {s.id for s in services}
    _unique_prefixes(service_tables, services)
    counter_tables = root.tables("counters", required=True)
    counters = [_counter(t, service_ids) for t in counter_tables]
    refuse_duplicates(counter_tables, [c.id for c in counters], key="id")
    dispenser_tables = root.tables("dispensers", required=True)
    dispensers = [_dispenser(t, service_ids) for t in dispenser_tables]
    refuse_duplicates(dispenser_tables, [d.id for d in dispensers], key="id")

    zone_name = hall_table.text("time_zone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise hall_table.error("time_zone", f"unknown time zone {zone_name!r}") from None
    hall = HallSpec(
        id=hall_table.ident("id"),
        name_vi=hall_table.name("name_vi"),
        name_en=hall_table.name("name_en"),
        services=tuple(services), counters=tuple(counters), dispensers=tuple(dispensers),
        time_zone=zone_name,
        day_starts_at=hall_table.clock("business_day_starts", "04:00"),
        default_service_time_s=hall_table.integer("default_service_time_s", 300, minimum=10, maximum=7200),
        service_time_samples=hall_table.integer("service_time_samples", 20, minimum=1, maximum=1000),
    )
    hall_table.done()
    _fits_a_payload(root, counter_tables, hall)
    client_id = controller.ident("client_id", "controller")
    state_dir = Path(controller.text("state_dir", "/var/lib/hallq"))
    log_level = controller.choice("log_level", LOG_LEVELS, "INFO")
    trust_clock = cast(Literal["synchronised", "always"],
                       controller.choice("trust_clock", ("synchronised", "always"), "synchronised"))
    controller.done()
    limits = _limits(root.table("limits"))
    has_manager = root.has("manager")
    manager = root.table("manager")
    manager_id = manager.ident("id", "manager") if has_manager else None
    manager.done()
    hall = dataclasses.replace(hall, ratings=_ratings(root.table("ratings")))
    cards = _cards(root.table("cards")) if root.has("cards") else None
    if cards is not None and cards.daily_limit is not None:
        hall = dataclasses.replace(hall, card_daily_limit=cards.daily_limit)
    elif cards is None:
        for table, service in zip(service_tables, services, strict=True):
            if service.card_daily_limit is not None:
                raise table.error("card_daily_limit", "needs a [cards] table: without it the hall reads no cards")
    root.done()
    return ControllerConfig(hall=hall, broker=broker, base_topic=base_topic, client_id=client_id,
                            state_dir=state_dir, log_level=log_level, source=path, limits=limits,
                            trust_clock=trust_clock, manager_id=manager_id, cards=cards)


# What a profile may keep of a CCCD; by default what the counter needs to serve the citizen (data minimisation).
CARD_FIELDS: Final = ("name", "id_number", "birth_date", "address", "sex", "old_id_number", "issued_on")
DEFAULT_KEEP: Final = ("name", "id_number", "birth_date", "address")


@dataclass(frozen=True, slots=True)
class CardsConfig:
    """``[cards]``: the citizen's card. ``elderly_age``: a citizen this old or older is served in the priority
    lane (category ``elderly``); 0: never by age. ``daily_limit``: tickets a day per card in all services (None:
    no limit; a service's ``card_daily_limit`` limits it alone). ``keep``: the card's fields a profile keeps.
    ``retain_days``: a profile unused this long is deleted. ``hall_card_prefix``: the hall's own cards' prefix
    (None: the hall issues none). ``key_file``: the profiles' key when not given as the systemd credential
    ``profile-key`` (development and the simulated hall)."""

    elderly_age: int = 60
    daily_limit: int | None = None
    keep: tuple[str, ...] = DEFAULT_KEEP
    retain_days: int = 365
    hall_card_prefix: str | None = None
    key_file: Path | None = None


def _cards(t: Table) -> CardsConfig:
    keep = t.text_list("keep", list(DEFAULT_KEEP))
    for name in keep:
        if name not in CARD_FIELDS:
            raise t.error("keep", f"unknown field {name!r} (known: {', '.join(CARD_FIELDS)})")
    prefix = t.opt_text("hall_card_prefix")
    if prefix is not None and (problem := cards.hall_prefix_problem(prefix)) is not None:
        raise t.error("hall_card_prefix", problem)
    key_file = t.opt_text("key_file")
    config = CardsConfig(elderly_age=t.integer("elderly_age", 60, minimum=0, maximum=120),
                         daily_limit=t.opt_integer("daily_limit", minimum=1, maximum=100),
                         keep=tuple(dict.fromkeys(keep)),
                         retain_days=t.integer("retain_days", 365, minimum=1, maximum=3650),
                         hall_card_prefix=prefix, key_file=None if key_file is None else Path(key_file))
    t.done()
    return config


def _ratings(t: Table) -> RatingSpec:
    """``[ratings]``: ``window_minutes`` after ``complete`` a served visit may be rated (by the counter's buttons
    or the ticket's status page); ``[[ratings.reasons]]`` (``id``, ``name_vi``, ``name_en``) replace the reasons
    offered after a low rating (default: waiting time, attitude, guidance, paperwork, facilities)."""
    window_minutes = t.integer("window_minutes", RatingSpec().window_s // 60, minimum=1, maximum=24 * 60)
    reason_tables = t.tables("reasons")
    reasons = tuple(RatingReason(id=r.ident("id"), name_vi=r.name("name_vi"), name_en=r.name("name_en"))
                    for r in reason_tables)
    for table in reason_tables:
        table.done()
    refuse_duplicates(reason_tables, [r.id for r in reasons], key="id")
    if len(reasons) > wire.MAX_RATING_REASONS * 3:
        raise t.error("reasons", f"at most {wire.MAX_RATING_REASONS * 3} reasons (a phone shows them all)")
    t.done()
    return RatingSpec(window_s=window_minutes * 60, reasons=reasons or DEFAULT_RATING_REASONS)


def _limits(t: Table) -> Limits:
    default = Limits()
    limits = Limits(
        device_messages_per_s=t.number("device_messages_per_s", default.device_messages_per_s,
                                       minimum=0.1, maximum=100_000),
        device_burst=t.integer("device_burst", default.device_burst, minimum=1, maximum=1_000_000),
        inbox_max_messages=t.integer("inbox_max_messages", default.inbox_max_messages, minimum=100,
                                     maximum=10_000_000),
        inbox_max_bytes=t.integer("inbox_max_bytes", default.inbox_max_bytes, minimum=1024 * 1024,
                                  maximum=4 * 1024**3),
    )
    t.done()
    return limits


def _service(t: Table) -> ServiceSpec:
    prefix = t.text("prefix")
    if not _PREFIX.fullmatch(prefix):
        raise t.error("prefix", f"must be 1-{MAX_PREFIX_LEN} capital letters A-Z, got {prefix!r}")
    priority_prefix = t.text("priority_prefix", "", allow_empty=True)
    if priority_prefix and not _PREFIX.fullmatch(priority_prefix):
        raise t.error("priority_prefix", f"must be empty or 1-{MAX_PREFIX_LEN} capital letters A-Z, got "
                                         f"{priority_prefix!r}")
    first = t.integer("first_number", 1, minimum=0, maximum=MAX_NUMBER_VALUE - 1)
    last = t.integer("last_number", 999, minimum=1, maximum=MAX_NUMBER_VALUE)
    if last <= first:
        raise t.error("last_number", f"must be greater than first_number ({first})")
    hours = tuple(_hours(t, text) for text in t.text_list("hours", []))
    daily_cap = t.opt_integer("daily_cap", minimum=1)
    card_daily_limit = t.opt_integer("card_daily_limit", minimum=1, maximum=100)
    spec = ServiceSpec(
        id=t.ident("id"), name_vi=t.name("name_vi"), name_en=t.name("name_en"), prefix=prefix,
        first_number=first, last_number=last, wrap=t.boolean("wrap", True), priority_prefix=priority_prefix,
        hours=hours, daily_cap=daily_cap, card_daily_limit=card_daily_limit,
        transfer_position=cast(TransferPosition, t.choice("transfer_position", ("front", "original"), "front")),
        target_wait_s=t.integer("target_wait_min", 20, minimum=1, maximum=24 * 60) * 60,
    )
    t.done()
    return spec


def _hours(t: Table, text: str) -> tuple[time, time]:
    match = _HOURS.match(text)
    if not match:
        raise t.error("hours", f"{text!r} is not HH:MM-HH:MM")
    start = time(int(match.group(1)), int(match.group(2)))
    end_h, end_m = int(match.group(3)), int(match.group(4))
    if end_h == 24 and end_m != 0:
        raise t.error("hours", f"{text!r}: the latest end is 24:00")
    end = time.max if end_h == 24 else time(end_h, end_m)
    if end <= start:
        raise t.error("hours", f"{text!r}: the end must be after the start, within the day")
    return start, end


def _counter(t: Table, service_ids: set[str]) -> CounterSpec:
    cid = t.ident("id")
    services = t.text_list("services")
    if not services:
        raise t.error("services", "must name at least one service")
    for service in services:
        if service not in service_ids:
            raise t.error("services", f"unknown service {service!r} (known: {', '.join(sorted(service_ids))})")
    max_wait_min = t.opt_integer("max_wait_min", minimum=1, maximum=24 * 60)
    spec = CounterSpec(
        id=cid, name=t.name("name", f"Quầy {cid}"), services=tuple(services),
        policy=cast(CallPolicy, t.choice("policy", ("priority_first", "interleave"), "interleave")),
        interleave_ratio=t.integer("interleave_ratio", 3, minimum=1, maximum=100),
        max_wait_s=None if max_wait_min is None else max_wait_min * 60,
        status_at_start=cast(CounterStatus, t.choice("status_at_start", COUNTER_STATUSES, "open")),
    )
    t.done()
    return spec


def _dispenser(t: Table, service_ids: set[str]) -> DispenserSpec:
    services = t.text_list("services", [])
    for service in services:
        if service not in service_ids:
            raise t.error("services", f"unknown service {service!r}")
    spec = DispenserSpec(id=t.ident("id"), name=t.name("name", "", allow_empty=True), services=tuple(services))
    t.done()
    return spec


def _fits_a_payload(root: Table, counter_tables: list[Table], hall: HallSpec) -> None:
    """Refuse a hall whose board, or a counter's state, could outgrow a payload (every display and counter would
    refuse it, and show nothing): each is built as large as this config can make it (every name, the longest
    numbers, ten calls at the counter with the longest name, waiting counts of a full range) and measured."""
    at = datetime(2026, 11, 27, 8, 21, 40, 5000, tzinfo=hall.zone)
    number = max((number_text(s, s.last_number, priority=p) for s in hall.services for p in (False, True)), key=len)
    service = max((s.id for s in hall.services), key=len)
    widest = max(hall.counters, key=lambda c: len(c.name.encode("utf-8")))
    calls = tuple(Call(seq=2**53, number=number, counter=widest.id, counter_name=widest.name, service=service,
                       priority=False, recall=False, at=at, ticket_id="f" * MAX_TICKET_ID_LEN)
                  for _ in range(hall.recent_calls))
    board = Board(hall=hall.id, hall_name_vi=hall.name_vi, hall_name_en=hall.name_en, seq=2**53, calls=calls,
                  counters=tuple(BoardCounter(counter=c.id, name=c.name, status="paused", number=number,
                                              service=service) for c in hall.counters),
                  services=tuple(BoardService(service=s.id, name_vi=s.name_vi, name_en=s.name_en,
                                              regular=MAX_NUMBER_VALUE, priority=MAX_NUMBER_VALUE)
                                 for s in hall.services),
                  at=at, business_day="2026-11-27")
    size = len(board.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise root.error("counters", f"with these names the hall's board takes up to {size} bytes, more than the "
                                     f"{MAX_PAYLOAD_BYTES} bytes every display accepts ({len(hall.counters)} "
                                     f"counters, {len(hall.services)} services): shorten the counter, service or "
                                     "hall names")
    for table, counter in zip(counter_tables, hall.counters, strict=True):
        serving = ServingTicket(id="f" * MAX_TICKET_ID_LEN, number=number, service=service, priority=False,
                                called_at=at, recalls=2**53)
        state = CounterState(counter=counter.id, name=counter.name, status="paused", services=counter.services,
                             ticket=serving, waiting=tuple(WaitingCount(service=s, regular=MAX_NUMBER_VALUE,
                                                                     priority=MAX_NUMBER_VALUE)
                                                        for s in counter.services), at=at)
        size = len(state.encode())
        if size > MAX_PAYLOAD_BYTES:
            raise table.error("services", f"the counter's state takes up to {size} bytes, more than the "
                                          f"{MAX_PAYLOAD_BYTES} bytes a counter accepts: give it fewer services")


def _unique_prefixes(tables: list[Table], services: list[ServiceSpec]) -> None:
    owner: dict[str, str] = {}
    for table, service in zip(tables, services, strict=True):
        for key, prefix in (("prefix", service.prefix), ("priority_prefix", service.priority_prefix)):
            if not prefix:
                continue
            if prefix in owner:
                raise table.error(key, f"prefix {prefix!r} is already used by service {owner[prefix]}")
            owner[prefix] = service.id
