"""A service's daily cap counts the tickets that can still be served: one the dispenser could not print (voided:
no citizen holds it, it is never called) gives its place back. A hall with a cap of 200 and a printer that
jams ten times must not turn away the last ten citizens it has room for."""

from __future__ import annotations

from hall_controller.engine import CounterSpec, DispenserSpec, Engine, ServiceSpec
from tests.engine_builders import Driver, hall


def _capped(cap: int) -> Driver:
    service = ServiceSpec(id="A", name_vi="A", name_en="A", prefix="A", daily_cap=cap)
    return Driver(Engine(hall(services=(service,), counters=(CounterSpec(id="1", name="1", services=("A",)),),
                              dispensers=(DispenserSpec(id="d1"),))))


def test_a_voided_ticket_gives_its_place_under_the_daily_cap_back() -> None:
    d = _capped(2)
    first, jammed = d.issue("A"), d.issue("A")
    assert d.issue("A").refusal.code == "daily_cap_reached"  # type: ignore[union-attr]
    assert d.printed(jammed.ticket_id or "", ok=False, reason="paper_out").ok
    again = d.issue("A")
    assert d.number(again) == "A003"  # a new number: the voided A002 is not reused
    assert d.issue("A").refusal.code == "daily_cap_reached"  # type: ignore[union-attr]
    assert d.printed(first.ticket_id or "", ok=True).ok


def test_a_voided_ticket_gives_its_place_back_after_a_replay_too() -> None:
    d = _capped(1)
    jammed = d.issue("A")
    d.printed(jammed.ticket_id or "", ok=False, reason="paper_out")
    restored = Engine(d.engine.spec)
    restored.replay(d.events)  # type: ignore[arg-type]
    assert restored.fingerprint() == d.engine.fingerprint()
    d.engine = restored
    assert d.number(d.issue("A")) == "A002"


def test_a_printed_ticket_keeps_its_place_when_it_is_served() -> None:
    d = _capped(1)
    d.issue("A")
    d.counter("1", "next")
    d.counter("1", "complete")
    assert d.issue("A").refusal.code == "daily_cap_reached"  # type: ignore[union-attr]
