"""The console's rating choices (``counter.screen``): keys 1-4 while the window is open, the screen at 80×24."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from counter.core import NO_RATING, CounterCore, CounterView, Notice, Press
from counter.screen import HELP, ONE_KEY_ACTIONS, PROFILE_KEYS, RATING_KEYS, ConsoleInput, Line, render, screen_text
from hallq.labels import ERROR_LABELS
from hallq.wire import (
    Board,
    BoardService,
    CitizenProfile,
    CounterReply,
    CounterState,
    ErrorCode,
    ErrorInfo,
    ServingTicket,
    Visit,
    WaitingCount,
)

T0 = datetime(2026, 11, 27, 8, 15, 2, tzinfo=timezone(timedelta(hours=7)))
SERVICES = (BoardService("A", "Hộ tịch", "Civil status", 3, 1), BoardService("C", "Chứng thực", "Certification", 2, 0))
CHOICES = "  [1] Rất hài lòng   [2] Hài lòng   [3] Bình thường   [4] Không hài lòng"
HEAD = "Mời quý khách đánh giá lượt phục vụ số A015 (rate this visit):"


def _core(*, profile: CitizenProfile | None = None) -> CounterCore:
    """Counter 5 serving A015 (with ``profile``'s card read), its console offering ratings for 30 s."""
    core = CounterCore(counter="5", debounce_s=0.0, rating_wait_s=30.0)
    core.on_link(up=True)
    core.on_board(Board(hall="h", hall_name_vi="Trung tâm", hall_name_en="Centre", seq=0, calls=(), counters=(),
                        services=SERVICES, at=T0))
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A", "C"), ticket=None,
                               waiting=(WaitingCount("A", 3, 1), WaitingCount("C", 2, 0)), at=T0))
    core.press(Press("next"), now_s=1.0, request_id="n1")
    core.on_reply(CounterReply(request_id="n1", action="next", status="open", profile=profile,
                               ticket=ServingTicket(id="t15", number="A015", service="A", priority=False,
                                                    called_at=T0)), now_s=1.0)
    return core


def _completed(*, profile: CitizenProfile | None = None) -> CounterCore:
    core = _core(profile=profile)
    core.press(Press("complete"), now_s=2.0, request_id="c1")
    core.on_reply(CounterReply(request_id="c1", action="complete", status="open", ticket=None), now_s=2.0)
    assert core.view.rating is not None
    return core


def _text(lines: list[Line]) -> str:
    return "\n".join(line.text for line in lines)


def test_keys_1_to_4_are_the_four_levels_best_first() -> None:
    keys = ConsoleInput()
    view = _completed().view
    assert [keys.key(k, view) for k in "1234"] == [
        Press("rate", rating="very_satisfied"), Press("rate", rating="satisfied"), Press("rate", rating="neutral"),
        Press("rate", rating="dissatisfied")]
    assert keys.key("5", view) is None and keys.key("0", view) is None


def test_the_rating_keys_clash_with_no_other_key() -> None:
    letters = {k for row in HELP for k, _action in row} | set(ONE_KEY_ACTIONS) | set(PROFILE_KEYS) | {"q", "t", "g"}
    assert not set(RATING_KEYS) & letters
    assert all(key.isdigit() for key in RATING_KEYS)


def test_digits_in_a_prompt_are_the_prompts_not_ratings() -> None:
    view = _completed().view
    keys = ConsoleInput()
    keys.key("g", view)
    assert [keys.key(k, view) for k in "a12"] == [None, None, None]
    assert keys.key("enter", view) == Press("call", ticket="A12")
    keys.key("t", view)
    assert keys.key("1", view) == Press("transfer", service="A")  # the transfer prompt's first choice


def test_the_screen_offers_the_four_choices_in_vietnamese_while_the_window_is_open() -> None:
    view = _completed().view
    text = screen_text(view)
    assert HEAD in text and CHOICES in text
    assert "Đã hoàn thành số A015 (completed A015)" in text


def test_no_choices_before_complete_nor_once_the_window_closed() -> None:
    core = _core()
    assert not any("đánh giá" in line for line in screen_text(core.view))
    core = _completed()
    core.tick(now_s=2.0 + 30.0)
    assert not any("đánh giá" in line for line in screen_text(core.view))


def test_outside_the_window_a_rating_key_sends_nothing_and_says_so() -> None:
    core = _core()
    press = ConsoleInput().key("2", core.view)
    assert isinstance(press, Press) and core.press(press, now_s=3.0, request_id="r1") is None
    assert NO_RATING in " ".join(screen_text(core.view))  # wrapped on the notice line


def test_the_outcome_is_on_the_notice_line_and_the_choices_go() -> None:
    core = _completed()
    press = ConsoleInput().key("1", core.view)
    assert isinstance(press, Press)
    command = core.press(press, now_s=3.0, request_id="r1")
    assert command is not None and command.ticket == "t15"
    waiting = render(core.view, prompt=None, width=80, height=24)
    assert [line.style for line in waiting if line.text == CHOICES] == ["dim"]  # no second press while it waits
    core.on_reply(CounterReply(request_id="r1", action="rate", status="open", ticket=None), now_s=3.01)
    text = screen_text(core.view)
    assert "Cảm ơn quý khách đã đánh giá số A015: Rất hài lòng (thank you: very satisfied)" in text
    assert CHOICES not in text


def test_a_refusal_is_shown_in_plain_words() -> None:
    core = _completed()
    core.press(Press("rate", rating="neutral"), now_s=3.0, request_id="r1")
    core.on_reply(CounterReply(request_id="r1", action="rate", status="open", ticket=None,
                               error=ErrorInfo("rating_closed", "A015 was served more than 30 minutes ago: the time "
                                                                "to rate it has passed")), now_s=3.01)
    text = " ".join(screen_text(core.view))
    assert ERROR_LABELS[ErrorCode.RATING_CLOSED] in text and "the time to rate it has passed" in text


def test_the_choices_and_a_profile_just_served_fit_80x24() -> None:
    long_name = "Tôn Nữ Thị Huyền Trang Nguyễn Phước Bảo Ngọc Hoàng Thị Minh Khai Lê Văn Đức Thịnh Vượng"
    profile = CitizenProfile(
        ref="p7f3a9c2e41b", ticket="t15", first_visit=False, name=long_name, id_number="001050012345",
        birth_date="1950-01-01", age=76, sex="Nam", phone="0912 345 678", notes="Cần hỗ trợ đi lại bằng xe lăn",
        address="Số 123 Ngõ 45 Ngách 67 Hẻm 89, Đường Nguyễn Thị Minh Khai, Phường Bến Nghé, Quận 1, Thành phố Hồ "
                "Chí Minh", visits=(Visit("2026-10-20", "A", "served"), Visit("2026-10-13", "C", "no_show")))
    core = _completed(profile=profile)
    view: CounterView = replace(core.view, notice=Notice(
        "error", f"{ERROR_LABELS[ErrorCode.ALREADY_RATED]}: A015 was rated already: the first rating counts"))
    keys = ConsoleInput()
    keys.key("m", view)  # the clerk edits the notes meanwhile: a two-line prompt at the bottom
    lines = render(view, prompt=keys.prompt(view, width=80), width=80, height=24)
    assert len(lines) <= 24 and all(len(line.text) <= 79 for line in lines)
    text = _text(lines)
    assert HEAD in text and CHOICES in text
    assert "Công dân vừa phục vụ (just served)" in text and "CCCD 001050012345" in text
    assert "the first rating counts" in text and lines[-1].text.startswith("> ")
