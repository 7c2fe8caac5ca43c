"""The dispenser's state machine, driven directly: fixed instants, no broker, no printer, no sleeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

import pytest

from dispenser.core import (
    Beep,
    ButtonSpec,
    ControllerPresence,
    Dispenser,
    LinkChanged,
    Output,
    Phase,
    Press,
    PressIgnored,
    PrinterChanged,
    PrintFinished,
    PrintTicket,
    PublishPrinterState,
    ReplyReceived,
    ReplyUnreadable,
    RequestAbandoned,
    SendReport,
    SendRequest,
    ShowIndicators,
    StaleReply,
    Tick,
    TicketRefused,
    Timing,
)
from hallq.errors import InvariantError
from hallq.wire import ErrorInfo, PrintReport, TicketInfo, TicketReply

T = TypeVar("T")
BUTTONS = (
    ButtonSpec(key="1", service="A", label_vi="Hộ tịch"),
    ButtonSpec(key="2", service="B", label_vi="Đất đai"),
    ButtonSpec(key="4", service="B", priority=True, category="elderly", label_vi="Đất đai (ưu tiên)"),
)


def ready_machine(**timing: float) -> Dispenser:
    machine = Dispenser(BUTTONS, timing=Timing(**timing))  # type: ignore[arg-type]
    machine.handle(LinkChanged(up=True), now=0.0)
    machine.handle(PrinterChanged("ok"), now=0.0)
    machine.handle(ControllerPresence(online=True), now=0.0)
    return machine


def ticket(number: str = "A001", ticket_id: str = "t-1") -> TicketInfo:
    return TicketInfo(id=ticket_id, number=number, service="A", priority=False, category=None,
                      issued_at=datetime(2026, 11, 27, 1, 0, tzinfo=UTC), ahead=0, estimated_wait_s=0)


def of(kind: type[T], outputs: list[Output]) -> list[T]:
    return [o for o in outputs if isinstance(o, kind)]


def press(machine: Dispenser, key: str, at: float, rid: str | None = None) -> list[Output]:
    return machine.handle(Press(key=key, at=at, request_id=rid or f"r-{key}-{at}"), now=at)


def test_press_sends_a_request_with_the_buttons_service_and_lane() -> None:
    machine = ready_machine()
    out = press(machine, "4", 10.0, "r1")
    (request,) = of(SendRequest, out)
    assert (request.request.request_id, request.request.service, request.request.priority,
            request.request.category, request.attempt) == ("r1", "B", True, "elderly", 1)
    assert machine.phase is Phase.REQUESTING
    assert ShowIndicators(ready=False, busy=True, fault="off") in out


def test_reply_prints_the_controllers_ticket_and_success_is_reported() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    out = machine.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=10.01)
    assert of(PrintTicket, out) == [PrintTicket(ticket(), BUTTONS[0])]
    out = machine.handle(PrintFinished(ticket_id="t-1", ok=True), now=10.05)
    assert of(SendReport, out) == [SendReport(PrintReport(ticket_id="t-1", ok=True), "A001")]
    assert machine.phase is Phase.IDLE
    assert ShowIndicators(ready=True, busy=False, fault="off") in out


def test_failed_print_is_reported_with_its_reason_so_the_controller_voids_it() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    machine.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=10.01)
    out = machine.handle(PrintFinished(ticket_id="t-1", ok=False, reason="offline"), now=10.05)
    assert of(SendReport, out) == [SendReport(PrintReport(ticket_id="t-1", ok=False, reason="offline"), "A001")]
    assert Beep("failed") in out


def test_no_reply_retries_with_the_same_request_id_then_drops_the_press() -> None:
    machine = ready_machine(request_timeout_s=1.0, request_attempts=3)
    press(machine, "1", 10.0, "r1")
    assert machine.handle(Tick(), now=10.9) == []
    retries = [machine.handle(Tick(), now=t) for t in (11.0, 12.0)]
    assert [[(s.request.request_id, s.attempt) for s in of(SendRequest, out)] for out in retries] == [
        [("r1", 2)], [("r1", 3)]]
    out = machine.handle(Tick(), now=13.0)
    assert of(RequestAbandoned, out) == [RequestAbandoned("r1", "1", 3)]
    assert of(PrintTicket, out) == []
    assert machine.phase is Phase.IDLE
    assert ShowIndicators(ready=False, busy=False, fault="on") in out


def test_a_reply_after_abandoning_voids_that_ticket_instead_of_printing_it() -> None:
    machine = ready_machine(request_timeout_s=1.0, request_attempts=1)
    press(machine, "1", 10.0, "r1")
    machine.handle(Tick(), now=11.0)
    out = machine.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=11.5)
    assert of(PrintTicket, out) == []
    assert of(SendReport, out) == [SendReport(PrintReport(ticket_id="t-1", ok=False, reason="timeout"), "A001")]
    assert machine.indicators() == ShowIndicators(ready=True, busy=False, fault="off")


def test_a_repeated_reply_is_never_printed_twice() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    reply = ReplyReceived(TicketReply(request_id="r1", ticket=ticket()))
    machine.handle(reply, now=10.01)
    assert of(StaleReply, machine.handle(reply, now=10.02)) == [StaleReply("r1")]
    machine.handle(PrintFinished(ticket_id="t-1", ok=True), now=10.05)
    out = machine.handle(reply, now=10.06)
    assert of(PrintTicket, out) == [] and of(SendReport, out) == []


def test_a_refusal_prints_nothing() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    error = ErrorInfo("service_closed", "closed")
    out = machine.handle(ReplyReceived(TicketReply(request_id="r1", error=error)), now=10.01)
    assert of(TicketRefused, out) == [TicketRefused("r1", "1", "service_closed", "closed")]
    assert of(PrintTicket, out) == [] and machine.phase is Phase.IDLE


def test_a_reply_to_another_request_is_ignored() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    out = machine.handle(ReplyReceived(TicketReply(request_id="other", ticket=ticket())), now=10.01)
    assert of(PrintTicket, out) == [] and machine.phase is Phase.REQUESTING


@pytest.mark.parametrize("state", ["paper_out", "offline"])
def test_printer_not_ready_refuses_presses_without_a_request(state: str) -> None:
    machine = ready_machine()
    out = machine.handle(PrinterChanged(state), now=5.0)  # type: ignore[arg-type]
    assert PublishPrinterState(state, "") in out  # type: ignore[arg-type]
    assert ShowIndicators(ready=False, busy=False, fault="on") in out
    out = press(machine, "1", 10.0)
    assert of(SendRequest, out) == [] and of(PressIgnored, out) == [PressIgnored("1", "printer_not_ready")]


def test_printer_recovers_by_itself_when_paper_is_reloaded() -> None:
    machine = ready_machine()
    machine.handle(PrinterChanged("paper_out"), now=5.0)
    out = machine.handle(PrinterChanged("ok"), now=6.0)
    assert PublishPrinterState("ok", "") in out and ShowIndicators(ready=True, busy=False, fault="off") in out
    assert of(SendRequest, press(machine, "1", 10.0))


def test_paper_low_still_prints_and_blinks_the_fault_led() -> None:
    machine = ready_machine()
    out = machine.handle(PrinterChanged("paper_low", "paper near end"), now=5.0)
    assert ShowIndicators(ready=True, busy=False, fault="blink") in out
    assert of(SendRequest, press(machine, "1", 10.0))


def test_paper_running_out_while_waiting_for_the_reply_reports_the_ticket_not_printed() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    machine.handle(PrinterChanged("paper_out"), now=10.005)
    out = machine.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=10.01)
    assert of(PrintTicket, out) == []
    assert of(SendReport, out) == [SendReport(PrintReport(ticket_id="t-1", ok=False, reason="paper_out"), "A001")]


def test_cover_open_is_the_reason_when_the_printer_says_so() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    machine.handle(PrinterChanged("offline", "cover_open"), now=10.005)
    out = machine.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=10.01)
    assert of(SendReport, out) == [SendReport(PrintReport(ticket_id="t-1", ok=False, reason="cover_open"), "A001")]


def test_broker_down_refuses_presses_and_coming_back_restores_ready() -> None:
    machine = ready_machine()
    out = machine.handle(LinkChanged(up=False), now=5.0)
    assert ShowIndicators(ready=False, busy=False, fault="on") in out
    assert of(PressIgnored, press(machine, "1", 6.0)) == [PressIgnored("1", "broker_unreachable")]
    out = machine.handle(LinkChanged(up=True), now=7.0)
    assert ShowIndicators(ready=True, busy=False, fault="off") in out
    assert of(SendRequest, press(machine, "1", 8.0))


def test_controller_offline_refuses_presses() -> None:
    machine = ready_machine()
    machine.handle(ControllerPresence(online=False), now=5.0)
    assert of(PressIgnored, press(machine, "1", 6.0)) == [PressIgnored("1", "controller_offline")]
    machine.handle(ControllerPresence(online=True), now=7.0)
    assert of(SendRequest, press(machine, "1", 8.0))


def test_unknown_controller_presence_still_tries() -> None:
    machine = Dispenser(BUTTONS)
    machine.handle(LinkChanged(up=True), now=0.0)
    machine.handle(PrinterChanged("ok"), now=0.0)
    assert of(SendRequest, press(machine, "1", 1.0))


def test_printer_state_unknown_at_start_refuses_presses() -> None:
    machine = Dispenser(BUTTONS)
    machine.handle(LinkChanged(up=True), now=0.0)
    assert of(PressIgnored, press(machine, "1", 1.0)) == [PressIgnored("1", "printer_not_ready")]


def test_reconnecting_mid_request_asks_again_with_the_same_id() -> None:
    machine = ready_machine(request_timeout_s=1.0)
    press(machine, "1", 10.0, "r1")
    machine.handle(LinkChanged(up=False), now=10.2)
    out = machine.handle(LinkChanged(up=True), now=10.8)
    assert [(s.request.request_id, s.attempt) for s in of(SendRequest, out)] == [("r1", 1)]
    assert machine.next_deadline() == pytest.approx(11.8)


def _run_presses(machine: Dispenser, key: str, times: list[float]) -> int:
    """Press at each instant; the controller answers and the printer prints within 10 ms. Returns tickets printed."""
    printed = 0
    for n, at in enumerate(times):
        for output in press(machine, key, at, f"r{n}"):
            if isinstance(output, SendRequest):
                number = f"A{printed + 1:03d}"
                machine.handle(ReplyReceived(TicketReply(request_id=f"r{n}", ticket=ticket(number, f"t{n}"))),
                               now=at + 0.005)
                machine.handle(PrintFinished(ticket_id=f"t{n}", ok=True), now=at + 0.01)
                printed += 1
    return printed


def test_fifty_presses_in_a_second_give_one_ticket_with_the_default_interval() -> None:
    machine = ready_machine()
    assert _run_presses(machine, "1", [100 + i * 0.02 for i in range(50)]) == 1


def test_fifty_presses_in_a_second_give_the_configured_few_tickets() -> None:
    machine = ready_machine(min_interval_s=0.3)
    assert _run_presses(machine, "1", [100 + i * 0.02 for i in range(50)]) == 4


def test_rate_limit_is_per_button() -> None:
    machine = ready_machine()
    assert _run_presses(machine, "1", [100.0]) == 1
    assert _run_presses(machine, "2", [100.1]) == 1
    assert of(PressIgnored, press(machine, "1", 100.2)) == [PressIgnored("1", "rate_limited")]


def test_presses_made_while_a_ticket_was_in_progress_are_ignored_even_if_handled_later() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    machine.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=10.01)
    machine.handle(PrintFinished(ticket_id="t-1", ok=True), now=12.5)  # a slow printer
    # Button 2 was pressed at 12.0, during the print; its press is only handled now.
    assert of(PressIgnored, press(machine, "2", 12.0)) == [PressIgnored("2", "busy")]


def test_presses_during_a_request_are_ignored() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    assert of(PressIgnored, press(machine, "2", 10.1)) == [PressIgnored("2", "busy")]


def test_an_illegal_event_raises_and_changes_nothing() -> None:
    machine = ready_machine()
    with pytest.raises(InvariantError, match="cannot handle PrintFinished while idle"):
        machine.handle(PrintFinished(ticket_id="t-1", ok=True), now=1.0)
    assert machine.phase is Phase.IDLE and machine.in_flight is None


def test_finishing_another_ticket_than_the_one_printing_raises() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    machine.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=10.01)
    with pytest.raises(InvariantError, match="cannot finish printing t-9"):
        machine.handle(PrintFinished(ticket_id="t-9", ok=True), now=10.02)
    assert machine.phase is Phase.PRINTING


def test_an_unknown_button_is_a_bug() -> None:
    with pytest.raises(InvariantError):
        press(ready_machine(), "9", 1.0)


def test_indicators_are_only_emitted_when_they_change() -> None:
    machine = ready_machine()
    assert of(ShowIndicators, machine.handle(Tick(), now=1.0)) == []
    assert of(PublishPrinterState, machine.handle(PrinterChanged("ok"), now=1.0)) == []


def test_bad_timing_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid timing"):
        Dispenser(BUTTONS, timing=Timing(request_attempts=0))
    with pytest.raises(ValueError, match="unique"):
        Dispenser((BUTTONS[0], BUTTONS[0]))


def test_a_reply_to_a_request_of_an_earlier_run_is_voided_not_printed() -> None:
    """After a restart, the broker delivers the answer the previous run never received: nobody holds it."""
    machine = ready_machine()
    out = machine.handle(ReplyReceived(TicketReply(request_id="from-before", ticket=ticket("A009", "t-9"))),
                         now=10.0)
    assert of(PrintTicket, out) == []
    assert of(SendReport, out) == [SendReport(PrintReport(ticket_id="t-9", ok=False, reason="timeout"), "A009")]
    again = machine.handle(ReplyReceived(TicketReply(request_id="from-before", ticket=ticket("A009", "t-9"))),
                           now=10.1)
    assert of(SendReport, again) == []


def test_a_repeated_answer_to_a_printed_request_is_not_voided() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    reply = ReplyReceived(TicketReply(request_id="r1", ticket=ticket()))
    machine.handle(reply, now=10.01)
    machine.handle(PrintFinished(ticket_id="t-1", ok=True), now=10.05)
    assert of(SendReport, machine.handle(reply, now=10.2)) == []


def test_an_unreadable_reply_to_the_request_voids_its_ticket_and_ends_the_press() -> None:
    """Asking again would only bring the same reply; the ticket it names must not wait for a counter."""
    machine = ready_machine(request_timeout_s=1.0, request_attempts=3)
    press(machine, "1", 10.0, "r1")
    out = machine.handle(ReplyUnreadable(request_id="r1", ticket_id="t-9"), now=10.01)
    assert of(SendReport, out) == [SendReport(PrintReport(ticket_id="t-9", ok=False, reason="error"), "id t-9")]
    assert Beep("failed") in out and machine.phase is Phase.IDLE
    assert of(SendRequest, machine.handle(Tick(), now=12.0)) == []  # no retry
    again = machine.handle(ReplyUnreadable(request_id="r1", ticket_id="t-9"), now=12.5)
    assert of(SendReport, again) == []  # a repeat is reported once


def test_an_unreadable_message_naming_no_ticket_changes_nothing() -> None:
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    assert machine.handle(ReplyUnreadable(request_id=None, ticket_id=None), now=10.01) == []
    assert machine.phase is Phase.REQUESTING


def test_a_negative_wait_estimate_reads_as_zero_so_the_ticket_still_prints() -> None:
    """An older controller whose clock stepped back sent estimated_wait_s = -1200: the kiosk printed nothing
    and the ticket waited for a citizen who never had it. The estimate is advice; the ticket prints."""
    raw = ('{"v":1,"request_id":"r1","ok":true,"ticket":{"id":"t-1","number":"A003","service":"A",'
           '"priority":false,"category":null,"issued_at":"2026-11-27T08:15:02+07:00","ahead":2,'
           '"estimated_wait_s":-1200}}')
    reply = TicketReply.decode(raw)
    assert reply.ticket is not None and reply.ticket.estimated_wait_s == 0
    machine = ready_machine()
    press(machine, "1", 10.0, "r1")
    assert of(PrintTicket, machine.handle(ReplyReceived(reply), now=10.01))
