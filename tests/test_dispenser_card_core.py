"""The dispenser's state machine with a card scanner, driven directly: fixed instants, no scanner, no broker."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TypeVar

import pytest

from dispenser.core import (
    Beep,
    ButtonSpec,
    CardForgotten,
    CardRead,
    CardRejected,
    CardRules,
    CardScanned,
    CardUnreadable,
    ControllerPresence,
    Dispenser,
    LinkChanged,
    Output,
    Phase,
    Press,
    PressIgnored,
    PrinterChanged,
    PrintFinished,
    PrintSlip,
    PrintTicket,
    ReplyReceived,
    SendRequest,
    ShowIndicators,
    SlipPrinted,
    Tick,
    TicketRefused,
)
from hallq.errors import InvariantError
from hallq.wire import CardScan, ErrorInfo, TicketInfo, TicketReply

T = TypeVar("T")
BUTTONS = (
    ButtonSpec(key="1", service="A", label_vi="Hộ tịch"),
    ButtonSpec(key="4", service="B", priority=True, category="pregnant", label_vi="Đất đai (ưu tiên)"),
)
TODAY = date(2026, 11, 27)
CCCD = "079303012345||Nguyễn Thị Ánh Tuyết|12052003|Nữ|12 Lê Lợi, Phường Bến Thành, Quận 1, TP. Hồ Chí Minh|01072021"
OLD = "001050012345|123456789|Nguyễn Văn An|01011950|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021"


def machine(*, hold_s: float = 20.0, hall_prefix: str | None = "TTHCC-") -> Dispenser:
    m = Dispenser(BUTTONS, cards=CardRules(hold_s=hold_s, hall_prefix=hall_prefix))
    m.handle(LinkChanged(up=True), now=0.0)
    m.handle(PrinterChanged("ok"), now=0.0)
    m.handle(ControllerPresence(online=True), now=0.0)
    return m


def of(kind: type[T], outputs: list[Output]) -> list[T]:
    return [o for o in outputs if isinstance(o, kind)]


def scan(m: Dispenser, text: str, at: float, today: date | None = TODAY) -> list[Output]:
    return m.handle(CardScanned(text=text, at=at, today=today), now=at)


def press(m: Dispenser, key: str, at: float, rid: str = "r1") -> list[Output]:
    return m.handle(Press(key=key, at=at, request_id=rid), now=at)


def sent(out: list[Output]) -> SendRequest:
    (request,) = of(SendRequest, out)
    return request


def ticket(*, card: bool = True) -> TicketInfo:
    return TicketInfo(id="t-1", number="A001", service="A", priority=False, category=None,
                      issued_at=datetime(2026, 11, 27, 1, 0, tzinfo=UTC), ahead=0, estimated_wait_s=0, card=card)


def lights(out: list[Output]) -> ShowIndicators:
    return of(ShowIndicators, out)[-1]


def test_a_good_scan_lights_the_card_led_and_beeps_once() -> None:
    m = machine()
    out = scan(m, CCCD, 10.0)
    assert of(CardRead, out) == [CardRead("cccd", len(CCCD))]
    assert Beep("card_read") in out
    assert lights(out).card


def test_a_press_within_the_hold_sends_the_card_as_scanned() -> None:
    m = machine()
    scan(m, f"  {CCCD}  ", 10.0)
    request = sent(press(m, "1", 29.9)).request
    assert request.card == CardScan(kind="cccd", code=CCCD)
    assert (request.service, request.priority) == ("A", False)


def test_a_hall_card_goes_out_as_a_hall_card() -> None:
    m = machine()
    scan(m, "tthcc-7k2m9q", 10.0)
    assert sent(press(m, "1", 11.0)).request.card == CardScan(kind="hall", code="tthcc-7k2m9q")


def test_after_the_hold_the_card_is_forgotten_and_the_press_is_ordinary() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    assert m.next_deadline() == 30.0
    out = m.handle(Tick(), now=30.0)
    assert of(CardForgotten, out) == [CardForgotten("cccd")]
    assert not lights(out).card
    assert sent(press(m, "1", 31.0)).request.card is None


def test_a_press_made_before_the_hold_ran_out_but_handled_after_it_still_takes_the_card() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    out = m.handle(Press(key="1", at=29.99, request_id="r1"), now=30.2)
    assert sent(out).request.card is not None
    assert not of(CardForgotten, out)


def test_a_press_without_a_scan_is_an_ordinary_ticket() -> None:
    m = machine()
    out = press(m, "1", 10.0)
    assert sent(out).request.card is None
    assert Beep("accepted") in out


def test_a_new_scan_replaces_the_held_card_and_restarts_the_hold() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    out = scan(m, OLD, 25.0)
    assert of(CardRead, out) == [CardRead("cccd", len(OLD), replaced=True)]
    assert m.next_deadline() == 45.0
    assert sent(press(m, "1", 40.0)).request.card == CardScan("cccd", OLD)


@pytest.mark.parametrize("text", [
    "https://dichvucong.gov.vn/p/home/dvc-trang-chu.html",
    "hello world",
    "07930301234||Nguyễn Thị Ánh Tuyết|12052003|Nữ|12 Lê Lợi|01072021",  # 11 digits
    "079303012345||Nguyễn Thị Ánh Tuyết|31022003|Nữ|12 Lê Lợi|01072021",  # 31 February
    "OTHER-7K2M9Q",  # another hall's card
])
def test_a_bad_scan_beeps_three_times_and_keeps_the_held_card(text: str) -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    out = scan(m, text, 12.0)
    (rejected,) = of(CardRejected, out)
    assert rejected.kept and rejected.reason
    assert Beep("card_bad") in out
    assert text not in rejected.reason
    assert sent(press(m, "1", 13.0)).request.card == CardScan("cccd", CCCD)


def test_a_bad_scan_never_blocks_an_ordinary_ticket() -> None:
    m = machine()
    out = scan(m, "https://example.com", 10.0)
    assert of(CardRejected, out) == [CardRejected("neither a CCCD nor a card of this hall", kept=False)]
    assert not m.indicators().card and m.next_deadline() is None
    assert sent(press(m, "1", 10.5)).request.card is None


def test_bytes_the_scanner_could_not_decode_are_a_bad_scan() -> None:
    m = machine()
    out = m.handle(CardUnreadable(problem="bytes that are not UTF-8", at=5.0), now=5.0)
    assert of(CardRejected, out) == [CardRejected("bytes that are not UTF-8", kept=False)]
    assert Beep("card_bad") in out


def test_the_priority_button_with_a_card_asks_for_priority_as_pressed() -> None:
    m = machine()
    scan(m, OLD, 10.0)
    request = sent(press(m, "4", 11.0)).request
    assert (request.priority, request.category, request.card) == (True, "pregnant", CardScan("cccd", OLD))


def test_the_card_is_forgotten_once_its_request_is_answered() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    out = press(m, "1", 11.0)
    assert lights(out).card  # the light stays while the card's request is answered
    out = m.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=11.1)
    (printing,) = of(PrintTicket, out)
    assert printing.ticket.card
    out = m.handle(PrintFinished(ticket_id="t-1", ok=True), now=11.5)
    assert not lights(out).card
    assert sent(press(m, "1", 20.0, "r2")).request.card is None


def test_a_card_limit_refusal_beeps_and_prints_a_slip_then_forgets_the_card() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    press(m, "1", 11.0)
    refusal = TicketReply(request_id="r1", error=ErrorInfo("card_limit", "this card has taken its 1 ticket(s)"))
    out = m.handle(ReplyReceived(refusal), now=11.1)
    assert of(TicketRefused, out)[0].code == "card_limit"
    assert Beep("card_limit") in out
    assert of(PrintSlip, out) == [PrintSlip("card_limit", BUTTONS[0])]
    assert m.phase is Phase.PRINTING
    assert of(PressIgnored, press(m, "1", 11.2, "r2")) == [PressIgnored("1", "busy")]
    out = m.handle(SlipPrinted(), now=12.0)
    assert (m.phase, lights(out).card) == (Phase.IDLE, False)
    assert sent(press(m, "1", 14.0, "r3")).request.card is None


def test_a_card_limit_refusal_with_the_printer_not_ready_still_beeps() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    press(m, "1", 11.0)
    m.handle(PrinterChanged("paper_out"), now=11.05)
    out = m.handle(ReplyReceived(TicketReply(request_id="r1", error=ErrorInfo("card_limit", "limit"))), now=11.1)
    assert Beep("card_limit") in out and not of(PrintSlip, out)
    assert m.phase is Phase.IDLE


def test_other_refusals_are_shown_as_before_without_a_slip() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    press(m, "1", 11.0)
    out = m.handle(ReplyReceived(TicketReply(request_id="r1", error=ErrorInfo("service_closed", "closed"))),
                   now=11.1)
    assert Beep("refused") in out and not of(PrintSlip, out)


def test_an_untrusted_clock_far_behind_still_reads_a_recent_card() -> None:
    # A Pi booted on fake-hwclock's 2024 date: this card, issued in 2025 to a child born in 2024, is real.
    child = "079224012345||Trần Gia Bảo|03032024|Nam|12 Lê Lợi, Quận 1, TP. Hồ Chí Minh|20052025"
    assert of(CardRejected, scan(machine(), child, 1.0, today=date(2024, 1, 1)))  # the wrong date, trusted
    assert of(CardRead, scan(machine(), child, 1.0, today=None))  # no trusted date: the card's own


def test_an_untrusted_clock_still_refuses_a_self_contradicting_card() -> None:
    wrong_year = "079399012345||Trần Gia Bảo|03032024|Nam|12 Lê Lợi|20052025"
    out = scan(machine(), wrong_year, 1.0, today=None)
    assert of(CardRejected, out) and Beep("card_bad") in out


def test_a_scan_while_a_ticket_prints_is_held_for_the_next_citizen() -> None:
    m = machine()
    press(m, "1", 10.0)
    m.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket(card=False))), now=10.1)
    scan(m, CCCD, 10.2)
    m.handle(PrintFinished(ticket_id="t-1", ok=True), now=10.5)
    assert sent(press(m, "1", 13.0, "r2")).request.card == CardScan("cccd", CCCD)


def test_a_refused_press_keeps_the_card_for_the_next_try() -> None:
    m = machine()
    scan(m, CCCD, 10.0)
    m.handle(LinkChanged(up=False), now=10.5)
    assert of(PressIgnored, press(m, "1", 11.0)) == [PressIgnored("1", "broker_unreachable")]
    m.handle(LinkChanged(up=True), now=12.0)
    assert sent(press(m, "1", 14.0, "r2")).request.card == CardScan("cccd", CCCD)


def test_a_scan_on_a_dispenser_without_a_scanner_is_a_bug_in_the_shell() -> None:
    m = Dispenser(BUTTONS)
    with pytest.raises(InvariantError, match="no card scanner"):
        m.handle(CardScanned(text=CCCD, at=1.0, today=TODAY), now=1.0)


def test_a_slip_finished_while_printing_a_ticket_is_a_bug_in_the_shell() -> None:
    m = machine()
    press(m, "1", 10.0)
    m.handle(ReplyReceived(TicketReply(request_id="r1", ticket=ticket())), now=10.1)
    with pytest.raises(InvariantError, match="refusal slip"):
        m.handle(SlipPrinted(), now=10.2)
    assert m.phase is Phase.PRINTING


def test_the_scanned_text_never_shows_in_the_events_repr() -> None:
    event = CardScanned(text=CCCD, at=1.0, today=TODAY)
    assert "Nguyễn" not in repr(event) and "079303012345" not in repr(event)

