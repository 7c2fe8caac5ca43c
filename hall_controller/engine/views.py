"""Wire views of the engine's state: what replies, calls, counter states and the board say. Pure functions.

Only the engine calls these (``Engine.handle`` puts them in its ``Decision``; ``Engine.board`` and
``Engine.counter_state`` publish the rest): nothing outside the engine reads its tickets or counters.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from hallq.wire import (
    Board,
    BoardCounter,
    BoardService,
    Call,
    CounterState,
    ServingTicket,
    TicketInfo,
    WaitingCount,
)

if TYPE_CHECKING:
    from hall_controller.engine.core import CallRecord, Engine, Ticket


def ticket_info(ticket: Ticket) -> TicketInfo:
    """The ticket as its dispenser prints it: ``ahead`` and the wait estimate are those at issue time."""
    return TicketInfo(id=ticket.id, number=ticket.number, service=ticket.origin_service, priority=ticket.priority,
                      category=ticket.category, issued_at=ticket.issued_at, ahead=ticket.ahead,
                      estimated_wait_s=ticket.estimated_wait_s, card=ticket.card is not None, token=ticket.token)


def serving(ticket: Ticket | None) -> ServingTicket | None:
    if ticket is None or ticket.called_at is None:
        return None
    return ServingTicket(id=ticket.id, number=ticket.number, service=ticket.service, priority=ticket.priority,
                         called_at=ticket.called_at, recalls=ticket.recalls)


def call(engine: Engine, record: CallRecord) -> Call:
    return Call(seq=record.seq, number=record.number, counter=record.counter,
                counter_name=engine.spec.counter_by_id[record.counter].name, service=record.service,
                priority=record.priority, recall=record.recall, at=record.at, ticket_id=record.ticket_id)


def counter_state(engine: Engine, counter_id: str, now: datetime) -> CounterState:
    runtime = engine.counters[counter_id]
    spec = runtime.spec
    return CounterState(
        counter=spec.id, name=spec.name, status=runtime.status, services=spec.services,
        ticket=serving(engine.counter_ticket(counter_id)),
        waiting=tuple(WaitingCount(service=s, regular=engine.waiting_count(s, priority=False),
                                   priority=engine.waiting_count(s, priority=True)) for s in spec.services),
        at=now,
    )


def board(engine: Engine, now: datetime) -> Board:
    spec = engine.spec
    counters = []
    for runtime in engine.counters.values():
        ticket = engine.counter_ticket(runtime.spec.id)
        counters.append(BoardCounter(counter=runtime.spec.id, name=runtime.spec.name, status=runtime.status,
                                     number=None if ticket is None else ticket.number,
                                     service=None if ticket is None else ticket.service))
    services = tuple(
        BoardService(service=s.id, name_vi=s.name_vi, name_en=s.name_en,
                     regular=engine.waiting_count(s.id, priority=False),
                     priority=engine.waiting_count(s.id, priority=True))
        for s in spec.services
    )
    return Board(hall=spec.id, hall_name_vi=spec.name_vi, hall_name_en=spec.name_en, seq=engine.call_seq,
                 calls=tuple(call(engine, r) for r in engine.recent_calls), counters=tuple(counters),
                 services=services, at=now, business_day=engine.day)
