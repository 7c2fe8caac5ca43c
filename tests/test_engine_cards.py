"""The engine's part of the citizen's card: a ticket carries its profile's reference, and the daily limits per
card (per service and for the hall). Driven directly: no network, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hall_controller.engine import Decision, Engine, ServiceSpec
from hall_controller.engine.events import IssueTicket, ManagerAct, ReportPrint, TicketIssued, from_records, to_record
from hallq.wire import ErrorCode
from tests.engine_builders import MORNING, hall

SERVICES = (ServiceSpec(id="A", name_vi="Hộ tịch", name_en="Civil", prefix="A", card_daily_limit=1),
            ServiceSpec(id="B", name_vi="Đất đai", name_en="Land", prefix="B"))


class Kiosk:
    def __init__(self, engine: Engine) -> None:
        self.engine, self.n, self.now = engine, 0, MORNING

    def issue(self, service: str, card: str | None, *, after_s: float = 1.0) -> tuple[str, Decision]:
        self.n += 1
        self.now += timedelta(seconds=after_s)
        decision = self.engine.handle(IssueTicket("d1", f"r{self.n}", service, False, None, f"t{self.n}", card),
                                      now=self.now)
        return f"t{self.n}", decision


def test_a_card_takes_one_ticket_of_a_limited_service_and_the_hall_limit_in_all() -> None:
    kiosk = Kiosk(Engine(replace(hall(services=SERVICES), card_daily_limit=2)))
    _, first = kiosk.issue("A", "p1")
    assert first.ok
    _, again = kiosk.issue("A", "p1")
    assert again.refusal is not None and again.refusal.code == ErrorCode.CARD_LIMIT and not again.events
    assert kiosk.issue("A", "p2")[1].ok  # another citizen
    assert kiosk.issue("A", None)[1].ok  # no card: no limit
    assert kiosk.issue("B", "p1")[1].ok
    third = kiosk.issue("B", "p1")[1]
    assert third.refusal is not None and third.refusal.code == ErrorCode.CARD_LIMIT  # two in all today
    assert "2 ticket(s) today" in third.refusal.message


def test_a_ticket_that_could_not_be_printed_gives_the_card_its_place_back_one_the_citizen_left_does_not() -> None:
    engine = Engine(hall(services=SERVICES))
    kiosk = Kiosk(engine)
    tid, _ = kiosk.issue("A", "p1")
    engine.handle(ReportPrint("d1", tid, False, "paper_out"), now=kiosk.now)
    retry, decision = kiosk.issue("A", "p1")
    assert decision.ok
    engine.handle(ReportPrint("d1", retry, True, None), now=kiosk.now)
    engine.handle(ManagerAct("manager", "m1", "lan", "void_ticket", ticket=engine.tickets[retry].number), now=kiosk.now)
    refusal = kiosk.issue("A", "p1")[1].refusal
    assert refusal is not None and refusal.code == ErrorCode.CARD_LIMIT


def test_the_reference_is_journaled_and_a_restart_keeps_the_days_limits() -> None:
    engine = Engine(hall(services=SERVICES))
    kiosk = Kiosk(engine)
    tid, decision = kiosk.issue("A", "p1")
    events = list(decision.events)
    issued = next(e for e in events if isinstance(e, TicketIssued))
    assert issued.card == "p1" and engine.tickets[tid].card == "p1"
    assert decision.ticket is not None and decision.ticket.card  # what the dispenser is told: a mark, no data
    restarted = Engine(hall(services=SERVICES))
    restarted.replay(from_records([to_record(e) for e in events]))
    assert restarted.fingerprint() == engine.fingerprint()
    again = restarted.handle(IssueTicket("d1", "r9", "A", False, None, "t9", "p1"), now=kiosk.now + timedelta(hours=1))
    assert again.refusal is not None and again.refusal.code == ErrorCode.CARD_LIMIT
    # A record written before cards existed reads with no reference.
    kind, at, data = to_record(replace(issued, card=None))
    old = from_records([(kind, at, data.replace(',"card":null', ""))])[0]
    assert isinstance(old, TicketIssued) and old.card is None
