"""The counter console's pure input and layout (``counter.screen``): one key per action, prompts, the screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from counter.core import CounterCore, CounterView, Notice, Press
from counter.screen import QUIT, ConsoleInput, Line, render, screen_text
from hallq.wire import (
    Board,
    BoardService,
    CitizenProfile,
    CounterReply,
    CounterState,
    ErrorInfo,
    ProfileEdit,
    ServingTicket,
    Visit,
    WaitingCount,
)

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


# --- the citizen's profile ------------------------------------------------------------------------------------

LONG_NAME = "Tôn Nữ Thị Huyền Trang Nguyễn Phước Bảo Ngọc Hoàng Thị Minh Khai Lê Văn Đức Thịnh Vượng"
LONG_ADDRESS = ("Số 123 Ngõ 45 Ngách 67 Hẻm 89, Đường Nguyễn Thị Minh Khai, Phường Bến Nghé, Quận 1, Thành phố Hồ "
                "Chí Minh, Việt Nam; tổ dân phố số 12, khu phố 3, gần chợ Bến Thành và bưu điện trung tâm")
VISITS = (Visit("2026-10-20", "A", "served"), Visit("2026-10-13", "C", "no_show"), Visit("2026-10-06", "A", "voided"),
          Visit("2026-09-29", "A", "expired"), Visit("2026-09-22", "C", "transferred"))


def _with_profile(*, first_visit: bool = False, complete: bool = False, **changes: Any) -> CounterView:
    """Counter 5 called A015, whose citizen's card was read; ``complete``: and has completed it since."""
    core = CounterCore(counter="5", debounce_s=0.0)
    core.on_link(up=True)
    core.on_board(Board(hall="h", hall_name_vi="Trung tâm", hall_name_en="Centre", seq=0, calls=(), counters=(),
                        services=SERVICES, at=T0))
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A", "C"), ticket=None,
                               waiting=(WaitingCount("A", 3, 1), WaitingCount("C", 2, 0)), at=T0))
    ticket = ServingTicket(id="t15", number="A015", service="A", priority=True, called_at=T0, recalls=1)
    fields: dict[str, Any] = {"name": "Nguyễn Văn An", "id_number": "001050012345", "birth_date": "1950-01-01",
                              "age": 76, "sex": "Nam", "address": "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội",
                              "phone": "0912 345 678", "notes": "cần hỗ trợ đi lại", "hall_card": True,
                              "visits": () if first_visit else VISITS}
    profile = CitizenProfile(ref="p7f3a9c2e41b", ticket="t15", first_visit=first_visit, **{**fields, **changes})
    core.press(Press("next"), now_s=1.0, request_id="r1")
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=ticket, profile=profile),
                  now_s=1.01)
    if complete:
        core.press(Press("complete"), now_s=2.0, request_id="r2")
        core.on_reply(CounterReply(request_id="r2", action="complete", status="open", ticket=None), now_s=2.01)
    return core.view


def _text(lines: list[Line]) -> str:
    return " ".join(" ".join(line.text for line in lines).split())


def test_the_profile_panel_shows_who_is_coming_and_their_earlier_visits() -> None:
    lines = render(_with_profile(), prompt=None, width=120)
    text = _text(lines)
    assert "Công dân (citizen) · số A015: Nguyễn Văn An" in text
    assert "CCCD 001050012345 · Nam · 76 tuổi (age) · sinh (born) 01/01/1950" in text
    assert "Địa chỉ (address): Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội" in text
    assert "SĐT (phone): 0912 345 678" in text and "Thẻ trung tâm: đã đăng ký (hall card registered)" in text
    assert "Ghi chú (notes): cần hỗ trợ đi lại" in text
    assert "Lần trước (earlier visits): 20/10/2026 Hộ tịch: đã phục vụ" in text
    for visit in ("13/10/2026 Chứng thực: vắng mặt", "06/10/2026 Hộ tịch: đã hủy", "29/09/2026 Hộ tịch: hết hạn",
                  "22/09/2026 Chứng thực: đã chuyển"):
        assert visit in text
    assert "[d] Điện thoại (phone) [m] Ghi chú (notes) [h] Thẻ trung tâm (hall card)" in text
    assert "Lần đầu" not in text
    assert [line.style for line in lines if "Nguyễn Văn An" in line.text] == ["big"]


def test_a_first_visit_asks_the_clerk_to_complete_the_profile() -> None:
    lines = render(_with_profile(first_visit=True, phone=None, notes=None, hall_card=False), prompt=None, width=100)
    text = _text(lines)
    assert "Lần đầu đến — hãy hoàn thiện hồ sơ (first visit: complete the profile)" in text
    assert "SĐT (phone): — · Chưa có thẻ trung tâm (no hall card)" in text
    assert "Lần trước" not in text and "Ghi chú (notes):" not in text


def test_after_complete_the_profile_is_that_of_the_citizen_just_served() -> None:
    text = _text(render(_with_profile(complete=True), prompt=None, width=120))
    assert "Đang phục vụ (serving): —" in text
    assert "Công dân vừa phục vụ (just served) · số A015: Nguyễn Văn An" in text


def test_fields_the_hall_does_not_keep_are_left_out() -> None:
    view = _with_profile(name=None, id_number=None, birth_date=None, age=None, sex=None, address=None)
    text = _text(render(view, prompt=None, width=120))
    assert "Công dân (citizen) · số A015: hồ sơ p7f3a9c2" in text
    assert "CCCD" not in text and "Địa chỉ" not in text and "tuổi" not in text


def test_the_profile_panel_fits_80x24_with_a_long_name_and_address() -> None:
    core_view = _with_profile(name=LONG_NAME, address=LONG_ADDRESS,
                              notes="Cần hỗ trợ đi lại bằng xe lăn; còn thiếu giấy xác nhận cư trú của công an phường")
    view = replace(core_view, notice=Notice("error", "Máy khác vừa thao tác trên quầy này; hãy xem lại số đang phục vụ "
                                                     "(conflict: another console acted on this counter): counter 5 "
                                                     "is serving A015, not A014"))
    keys = ConsoleInput()
    keys.key("m", view)
    lines = render(view, prompt=keys.prompt(view, width=80), width=80, height=24)
    assert len(lines) <= 24 and all(len(line.text) <= 79 for line in lines)
    text = _text(lines)
    assert LONG_NAME in text and "CCCD 001050012345" in text  # the whole name and the whole ID number
    assert "Địa chỉ (address): Số 123 Ngõ 45" in text
    assert "Đang phục vụ (serving): A015" in text and "[n] Gọi số tiếp (next)" in text
    assert lines[-1].text.startswith("> ") and lines[-2].text.startswith("Ghi chú (notes)  [Enter] lưu (save)")
    assert "is serving A015, not A014" in text  # the notice is whole, above the prompt


def test_a_terminal_too_small_for_everything_keeps_the_notice_and_the_prompt() -> None:
    view = replace(_with_profile(name=LONG_NAME, address=LONG_ADDRESS), notice=Notice("ok", "Đang mời số A015"))
    lines = render(view, prompt="Gọi số (call number): _", width=60, height=12)
    assert len(lines) == 12 and all(len(line.text) <= 59 for line in lines)
    assert [line.text for line in lines[-2:]] == ["Đang mời số A015", "Gọi số (call number): _"]


def test_screen_text_is_the_console_screen_as_plain_lines() -> None:
    lines = screen_text(_with_profile(name=LONG_NAME, address=LONG_ADDRESS))
    assert len(lines) <= 24 and all(len(line) <= 79 for line in lines)
    assert lines[0].startswith("QUẦY 5 · Quầy 5") and any("001050012345" in line for line in lines)


def test_text_from_the_wire_is_drawn_without_control_characters() -> None:
    text = "\n".join(line.text for line in render(_with_profile(notes="dòng một\ndòng hai\x1b[2J"), prompt=None,
                                                       width=120))
    assert "Ghi chú (notes): dòng một dòng hai [2J" in text and "\x1b" not in text


def test_without_a_profile_the_screen_shows_none_and_its_keys_are_refused_by_the_core() -> None:
    view = _view()
    assert "Công dân" not in _text(render(view, prompt=None, width=120))
    keys = ConsoleInput()
    assert keys.key("d", view) == Press("profile") and keys.mode == "keys"


def test_d_edits_the_phone_number_from_its_current_value() -> None:
    view = _with_profile()
    keys = ConsoleInput()
    assert keys.key("d", view) is None and keys.mode == "phone"
    prompt = keys.prompt(view)
    assert prompt is not None and prompt.endswith("> 0912 345 678_")
    for key in ["backspace"] * 12 + list("x0987+65-43.21"):  # letters and a + inside the number are not typed
        assert keys.key(key, view) is None
    assert keys.buffer == "098765-43.21"
    assert keys.key("enter", view) == Press("profile", profile=ProfileEdit(phone="098765-43.21"), profile_of="t15")
    assert keys.prompt(view) is None


def test_emptying_the_phone_number_clears_it_and_leaving_it_unchanged_sends_nothing() -> None:
    view = _with_profile()
    keys = ConsoleInput()
    keys.key("d", view)
    assert keys.key("enter", view) is None and keys.mode == "keys"
    keys.key("D", view)
    for _ in range(12):
        keys.key("backspace", view)
    assert keys.key("enter", view) == Press("profile", profile=ProfileEdit(phone=""), profile_of="t15")


def test_m_edits_the_notes_in_vietnamese() -> None:
    view = _with_profile(notes=None)
    keys = ConsoleInput()
    keys.key("m", view)
    assert keys.mode == "notes" and keys.buffer == ""
    for key in "Đã nộp đủ hồ sơ; q n c":  # one-key actions are letters here
        assert keys.key(key, view) is None
    assert keys.key("enter", view) == Press("profile", profile=ProfileEdit(notes="Đã nộp đủ hồ sơ; q n c"),
                                            profile_of="t15")


def test_a_long_note_shows_its_end_in_the_prompt() -> None:
    view = _with_profile(notes=None)
    keys = ConsoleInput()
    keys.key("m", view)
    for key in "x" * 100 + "cuối":
        keys.key(key, view)
    prompt = keys.prompt(view, width=80)
    assert prompt is not None
    typed = prompt.split("\n")[1]
    assert typed.endswith("cuối_") and len(typed) <= 79 and typed.startswith("> …")


def test_h_registers_a_hall_card_typed_or_scanned() -> None:
    view = _with_profile()
    keys = ConsoleInput()
    keys.key("h", view)
    prompt = keys.prompt(view)
    assert keys.mode == "hall_card" and prompt is not None and prompt.startswith("Mã thẻ trung tâm (hall card)")
    for key in "tthcc-7k2m9q":  # a scanner typing the card's code, as a keyboard would
        keys.key(key, view)
    assert keys.key("enter", view) == Press("profile", profile=ProfileEdit(hall_card="TTHCC-7K2M9Q"),
                                            profile_of="t15")


def test_an_empty_hall_card_code_registers_nothing() -> None:
    view = _with_profile()
    keys = ConsoleInput()
    keys.key("h", view)
    assert keys.key("enter", view) is None and keys.mode == "keys"


def test_escape_cancels_a_profile_prompt_and_sends_nothing() -> None:
    view = _with_profile()
    for key in "dmh":
        keys = ConsoleInput()
        keys.key(key, view)
        keys.key("7", view)
        assert keys.key("escape", view) is None
        assert keys.mode == "keys" and keys.prompt(view) is None
        assert keys.key("n", view) == Press("next")
