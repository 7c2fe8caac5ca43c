"""The counter console's pure input and layout (``counter.screen``): one key per action, prompts, the screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from counter.core import CounterCore, Notice, Press
from counter.screen import QUIT, ConsoleInput, render
from hallq.wire import Board, BoardService, CounterReply, CounterState, ErrorInfo, ServingTicket, WaitingCount

T0 = datetime(2026, 11, 27, 8, 15, 2, tzinfo=timezone(timedelta(hours=7)))
SERVICES = (BoardService("A", "Hộ tịch", "Civil status", 3, 1), BoardService("B", "Đất đai", "Land", 0, 0),
            BoardService("C", "Chứng thực", "Certification", 2, 0))


def _view(*, serving: str | None = "A015"):  # type: ignore[no-untyped-def]
    core = CounterCore(counter="5")
    core.on_link(up=True)
    ticket = None if serving is None else ServingTicket(id="t", number=serving, service="A", priority=True,
                                                         called_at=T0, recalls=2)
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A", "C"), ticket=ticket,
                               waiting=(WaitingCount("A", 3, 1), WaitingCount("C", 2, 0)), at=T0))
    core.on_board(Board(hall="h", hall_name_vi="Trung tâm", hall_name_en="Centre", seq=0, calls=(), counters=(),
                        services=SERVICES, at=T0))
    return core.view


def test_one_key_per_action() -> None:
    keys = ConsoleInput()
    view = _view()
    pressed = {k: keys.key(k, view) for k in "nrcxpoz"}
    assert pressed == {"n": Press("next"), "r": Press("recall"), "c": Press("complete"), "x": Press("no_show"),
                       "p": Press("pause"), "o": Press("open"), "z": Press("close")}
    assert keys.key("q", view) == QUIT


def test_call_prompt_collects_a_number_until_enter() -> None:
    keys = ConsoleInput()
    view = _view()
    for key in ["g", "b", "0", "0", "8", "backspace", "7"]:
        assert keys.key(key, view) is None
    prompt = keys.prompt(view)
    assert prompt is not None and "B007_" in prompt
    assert keys.key("enter", view) == Press("call", ticket="B007")
    assert keys.mode == "keys"


def test_transfer_offers_the_other_services_by_digit() -> None:
    keys = ConsoleInput()
    view = _view()
    assert keys.key("t", view) is None
    prompt = keys.prompt(view)
    assert prompt is not None and "[1] B Đất đai" in prompt and "[2] C Chứng thực" in prompt
    assert keys.key("7", view) is None  # not offered: still asking
    assert keys.key("2", view) == Press("transfer", service="C")


def test_escape_cancels_a_prompt() -> None:
    keys = ConsoleInput()
    view = _view()
    keys.key("g", view)
    keys.key("escape", view)
    assert keys.mode == "keys" and keys.key("n", view) == Press("next")


def test_screen_shows_ticket_waiting_counts_and_the_notice() -> None:
    view = replace(_view(), notice=Notice("error", "Quầy đang đóng (counter closed): counter 5 is closed"))
    text = "\n".join(line.text for line in render(view, prompt=None, width=120))
    assert "Đang phục vụ (serving): A015" in text
    assert "gọi lại 2 lần" in text and "ƯU TIÊN" in text
    assert "A Hộ tịch: 4 (+1 ưu tiên/priority)" in text
    assert "C Chứng thực: 2" in text
    assert "Quầy đang đóng (counter closed): counter 5 is closed" in text
    assert "[n] Gọi số tiếp (next)" in text


def test_screen_fits_a_narrow_terminal() -> None:
    lines = render(_view(serving=None), prompt="Gọi số (call number): A_", width=40)
    assert all(len(line.text) <= 39 for line in lines)
    assert any(line.text.startswith("Đang phục vụ (serving): —") for line in lines)


def test_a_conflict_is_shown_whole_with_the_ticket_the_counter_serves_now() -> None:
    core = CounterCore(counter="5")
    core.on_link(up=True)
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A",), waiting=(), at=T0,
                               ticket=ServingTicket(id="t2", number="A002", service="A", priority=False, called_at=T0)))
    core.press(Press("next"), now_s=1.0, request_id="r1")
    now_serving = ServingTicket(id="t3", number="A003", service="A", priority=False, called_at=T0)
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=now_serving,
                               error=ErrorInfo("conflict", "counter 5 is serving A003, not A002: another console "
                                                           "acted; refresh")), now_s=1.01)
    lines = render(core.view, prompt=None, width=80)
    text = " ".join(" ".join(line.text for line in lines).split())
    assert "Đang phục vụ (serving): A003" in text
    assert "(conflict: another console acted on this counter): counter 5 is serving A003, not A002: another " \
           "console acted; refresh" in text
    assert all(len(line.text) <= 79 for line in lines)
    assert [line.style for line in lines if "A003, not A002" in line.text] == ["error"]


def test_a_console_pushed_off_its_account_says_so_in_its_title_and_notice() -> None:
    core = CounterCore(counter="5")
    core.on_link(up=True)
    core.on_link(up=False, taken_over=True)
    lines = render(core.view, prompt=None, width=120)
    text = " ".join(" ".join(line.text for line in lines).split())
    assert "× đã ngừng kết nối (stopped: account in use elsewhere)" in lines[0].text
    assert "another console is connected as counter 5; only one console per counter account — close the other " \
           "one, or give this desk its own counter id" in text
