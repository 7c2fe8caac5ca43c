"""Small builders for engine tests: a hall spec, fixed instants, and terse command helpers."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from hall_controller.engine import CounterSpec, Decision, DispenserSpec, Engine, HallSpec, ServiceSpec
from hall_controller.engine.events import ActAtCounter, IssueTicket, ReportPrint

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
MORNING = datetime(2026, 11, 27, 8, 0, tzinfo=ZONE)


def hall(*, services: tuple[ServiceSpec, ...] | None = None, counters: tuple[CounterSpec, ...] | None = None,
         dispensers: tuple[DispenserSpec, ...] | None = None, default_service_time_s: int = 300) -> HallSpec:
    return HallSpec(
        id="h", name_vi="Trung tâm", name_en="Centre",
        services=services or (
            ServiceSpec(id="A", name_vi="Hộ tịch", name_en="Civil", prefix="A"),
            ServiceSpec(id="B", name_vi="Đất đai", name_en="Land", prefix="B", priority_prefix="UB"),
        ),
        counters=counters or (
            CounterSpec(id="1", name="Quầy 1", services=("A", "B"), policy="priority_first"),
            CounterSpec(id="2", name="Quầy 2", services=("A", "B"), policy="interleave", interleave_ratio=2),
            CounterSpec(id="3", name="Quầy 3", services=("A",)),
        ),
        dispensers=dispensers or (DispenserSpec(id="d1"), DispenserSpec(id="d2", services=("B",))),
        day_starts_at=time(4, 0), default_service_time_s=default_service_time_s,
    )


class Driver:
    """Drives an engine with terse calls and a clock that advances a second per command."""

    def __init__(self, engine: Engine, start: datetime = MORNING) -> None:
        self.engine = engine
        self.now = start
        self._ids = itertools.count(1)
        self.events: list[object] = []

    def _step(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def issue(self, service: str = "A", *, priority: bool = False, dispenser: str = "d1", request_id: str | None = None,
              category: str | None = None, after_s: float = 1.0) -> Decision:
        n = next(self._ids)
        decision = self.engine.handle(
            IssueTicket(dispenser=dispenser, request_id=request_id or f"r{n}", service=service, priority=priority,
                        category=category or ("elderly" if priority else None), ticket_id=f"t{n}"),
            now=self._step(after_s),
        )
        self.events.extend(decision.events)
        return decision

    def counter(self, counter: str, action: str, *, ticket: str | None = None, service: str | None = None,
                request_id: str | None = None, serving: str | None = None, after_s: float = 1.0) -> Decision:
        n = next(self._ids)
        decision = self.engine.handle(
            ActAtCounter(counter=counter, request_id=request_id or f"c{n}", action=action,  # type: ignore[arg-type]
                           ticket=ticket, service=service, serving=serving),
            now=self._step(after_s),
        )
        self.events.extend(decision.events)
        return decision

    def printed(self, ticket_id: str, *, ok: bool, dispenser: str = "d1", reason: str | None = None) -> Decision:
        decision = self.engine.handle(ReportPrint(dispenser=dispenser, ticket_id=ticket_id, ok=ok, reason=reason),
                                      now=self._step())
        self.events.extend(decision.events)
        return decision

    def number(self, decision: Decision) -> str:
        assert decision.ok, decision.refusal
        assert decision.ticket_id is not None
        return self.engine.tickets[decision.ticket_id].number

    def called(self, counter: str) -> str | None:
        ticket = self.engine.counter_ticket(counter)
        return None if ticket is None else ticket.number
