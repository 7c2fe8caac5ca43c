"""Past business days for the simulated hall's ledger, so that the manager's reports have something to show.

``write_history`` plays whole days through the real engine and stores every event in the real ledger, as the
controller would have: citizens arrive through the day (busier mid-morning and mid-afternoon), one in ten is
served first (elderly, disabled, pregnant), the counters call, serve for a few minutes, now and then mark a
no-show, transfer a citizen to another service or pause for lunch; a few tickets fail to print; what is still
waiting when the next day starts expires. About half the served citizens rate their visit, at the counter's
buttons or on their phone, mostly satisfied; a low rating gives reasons and now and then a few words.
Reproducible from its seed. It writes only into an empty ledger (the journal must stay in time order), so a
second run of the simulated hall keeps what the first one did.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from hall_controller.config import ControllerConfig
from hall_controller.engine import Decision, Engine
from hall_controller.engine.events import ActAtCounter, Event, IssueTicket, RateTicket, ReportPrint, Tick
from hall_controller.ledger import LEDGER_FILE, Ledger
from hallq.wire import LOW_RATINGS, CounterAction, RatingLevel

STEP_S = 30
OPENS, CLOSES = time(7, 30), time(17, 0)
LUNCH = (time(11, 30), time(13, 0))
CATEGORIES = ("elderly", "elderly", "elderly", "disability", "pregnant")
# Relative arrivals per hour of the day: a morning rush, a lull at lunch, a smaller afternoon peak.
HOURLY = {7: 0.6, 8: 1.4, 9: 1.6, 10: 1.3, 11: 0.8, 12: 0.3, 13: 0.9, 14: 1.2, 15: 1.1, 16: 0.6}
RATED_SHARE = 0.5
LEVEL_WEIGHTS: dict[RatingLevel, float] = {"very_satisfied": 0.5, "satisfied": 0.3, "neutral": 0.13,
                                           "dissatisfied": 0.07}
# What a citizen may write after a low rating: invented, in the words people use.
COMMENTS = ("Chờ hơi lâu", "Nên có thêm ghế ngồi chờ", "Cán bộ hướng dẫn chưa rõ", "Phải bổ sung giấy tờ nhiều lần",
            "Máy lạnh không mát")


@dataclass
class _Desk:
    counter: str
    busy_until: datetime | None = None
    no_show: bool = False
    lunch: bool = False


def ledger_is_empty(config: ControllerConfig) -> bool:
    """Whether the hall's ledger has no event yet (absent, or created and never written)."""
    path = config.state_dir / LEDGER_FILE
    if not path.exists():
        return True
    ledger = Ledger(path, hall_id=config.hall.id)
    try:
        return next(iter(ledger.events()), None) is None
    finally:
        ledger.close()


def write_history(config: ControllerConfig, *, days: int = 7, tickets_per_day: int = 640, seed: int = 7,
                  today: date | None = None) -> int:
    """Write ``days`` business days before ``today`` (Sundays off) into an empty ledger; returns the tickets issued.
    Raises ``ValueError`` if the ledger holds events already."""
    if not ledger_is_empty(config):
        raise ValueError(f"the ledger in {config.state_dir} is not empty: history goes only into a new one")
    spec = config.hall
    rng = random.Random(seed)  # noqa: S311 - a reproducible crowd, not a secret
    today = today or date.fromisoformat(spec.business_day(datetime.now(spec.zone)))
    engine = Engine(spec)
    ledger = Ledger(config.state_dir / LEDGER_FILE, hall_id=spec.id)
    issued = 0
    try:
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            if day.weekday() == 6:
                continue
            issued += _one_day(engine, ledger, rng, day, tickets_per_day)
        # The last day's leftovers expire at the start of the next one, as they would have at the controller.
        ledger.append(engine.handle(Tick(), now=datetime.combine(today, spec.day_starts_at, spec.zone)).events)
    finally:
        ledger.close()
    return issued


def _one_day(engine: Engine, ledger: Ledger, rng: random.Random, day: date, tickets: int) -> int:
    spec = engine.spec
    zone = spec.zone
    services = [s.id for s in spec.services]
    dispensers = [d for d in spec.dispensers if not d.services] or list(spec.dispensers)
    desks = [_Desk(c.id) for c in spec.counters if c.status_at_start == "open"]
    per_step = tickets / sum(HOURLY.values()) / (3600 / STEP_S)
    now = datetime.combine(day, OPENS, zone)
    close = datetime.combine(day, CLOSES, zone)
    issued = 0
    phone_ratings: list[tuple[datetime, str]] = []  # (when, ticket id), in time order enough for a simulation
    while now < close:
        events: list[Event] = []
        rate = per_step * HOURLY.get(now.hour, 0.0)
        for _ in range(_poisson(rng, rate)):
            priority = rng.random() < 0.1
            dispenser = rng.choice(dispensers).id
            decision = engine.handle(IssueTicket(
                dispenser=dispenser, request_id=uuid.uuid4().hex, service=rng.choice(services),
                priority=priority, category=rng.choice(CATEGORIES) if priority else None, ticket_id=uuid.uuid4().hex),
                now=now)
            events += decision.events
            if decision.ticket_id is None:
                continue
            issued += 1
            printed = rng.random() > 0.01
            events += engine.handle(ReportPrint(dispenser=dispenser, ticket_id=decision.ticket_id, ok=printed,
                                                reason=None if printed else "paper_out"),
                                    now=now).events
        for desk in desks:
            events += _desk_step(engine, rng, desk, now, services, phone_ratings=phone_ratings)
        while phone_ratings and phone_ratings[0][0] <= now:
            events += _rate(engine, rng, phone_ratings.pop(0)[1], now, by=None).events
        ledger.append(events)
        now += timedelta(seconds=STEP_S)
    return issued


def _desk_step(engine: Engine, rng: random.Random, desk: _Desk, now: datetime, services: Sequence[str], *,
               phone_ratings: list[tuple[datetime, str]]) -> list[Event]:
    at_lunch = LUNCH[0] <= now.time() < LUNCH[1] and desk.counter in ("3", "5")
    if desk.lunch and not at_lunch:
        desk.lunch = False
        return list(_act(engine, desk, "open", now).events)
    if desk.lunch or (desk.busy_until is not None and now < desk.busy_until):
        return []
    events: list[Event] = []
    if desk.busy_until is not None:
        roll = rng.random()
        if desk.no_show:
            events += _act(engine, desk, "no_show", now).events
        elif roll < 0.03:
            events += _act(engine, desk, "transfer", now, service=rng.choice(services)).events
        else:
            served = engine.counter_ticket(desk.counter)
            events += _act(engine, desk, "complete", now).events
            if served is not None and rng.random() < RATED_SHARE:
                if rng.random() < 0.4:  # on the phone, a little later (rated in a later step)
                    phone_ratings.append((now + timedelta(seconds=rng.uniform(20, 300)), served.id))
                else:
                    events += _rate(engine, rng, served.id, now, by=desk.counter).events
        desk.busy_until = None
    if at_lunch:  # the citizen at the desk is finished first
        desk.lunch = True
        return [*events, *_act(engine, desk, "pause", now).events]
    decision = _act(engine, desk, "next", now)
    events += decision.events
    if decision.ok:
        desk.no_show = rng.random() < 0.05
        minutes = 1.0 if desk.no_show else max(1.5, rng.lognormvariate(1.6, 0.45))
        desk.busy_until = now + timedelta(minutes=minutes)
    return events


def _act(engine: Engine, desk: _Desk, action: CounterAction, now: datetime, *, service: str | None = None) -> Decision:
    return engine.handle(ActAtCounter(counter=desk.counter, request_id=uuid.uuid4().hex, action=action,
                                      service=service), now=now)


def _rate(engine: Engine, rng: random.Random, ticket: str, now: datetime, *, by: str | None) -> Decision:
    """A citizen rates a served visit: at counter ``by``'s buttons, or (``by`` None) on the phone, with reasons
    and sometimes a comment after a low rating."""
    level = rng.choices(list(LEVEL_WEIGHTS), weights=list(LEVEL_WEIGHTS.values()))[0]
    by_phone = by is None
    reasons: tuple[str, ...] = ()
    comment = None
    if by_phone and level in LOW_RATINGS:
        known = [r.id for r in engine.spec.ratings.reasons]
        reasons = tuple(rng.sample(known, k=rng.choice((1, 1, 2))))
        comment = rng.choice(COMMENTS) if rng.random() < 0.4 else None
    return engine.handle(RateTicket(channel="phone" if by is None else "counter", source=by or "manager",
                                    request_id=uuid.uuid4().hex, ticket=ticket, level=level, reasons=reasons,
                                    comment=comment), now=now)


def _poisson(rng: random.Random, mean: float) -> int:
    """Arrivals in one step: a Poisson count by inversion (means here are well under 1)."""
    count, p, threshold = 0, 1.0, pow(2.718281828459045, -mean)
    while True:
        p *= rng.random()
        if p < threshold:
            return count
        count += 1
