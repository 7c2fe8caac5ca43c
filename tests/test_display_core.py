"""The display's pure core: board and calls to the screen model."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from display.core import DisplayCore, read_notice
from hallq.errors import PayloadError
from hallq.wire import Board, BoardCounter, BoardService, Call, Notice

T0 = datetime(2026, 11, 27, 8, 15, 0, tzinfo=timezone(timedelta(hours=7)))


def _call(seq: int, number: str, counter: str = "5", *, recall: bool = False, at: datetime = T0) -> Call:
    return Call(seq=seq, number=number, counter=counter, counter_name=f"Quầy {counter}", service=number[0],
                priority=False, recall=recall, at=at)


def _board(seq: int, calls: tuple[Call, ...] = ()) -> Board:
    counters = (BoardCounter("5", "Quầy 5", "open", calls[0].number if calls else None, None),
                BoardCounter("6", "Quầy 6", "closed", None, None))
    return Board(hall="h", hall_name_vi="Trung tâm Phục vụ hành chính công", hall_name_en="Public Service Centre",
                 seq=seq, calls=calls, counters=counters,
                 services=(BoardService("A", "Hộ tịch", "Civil status", 4, 2),), at=T0)


def _core(**options: object) -> DisplayCore:
    return DisplayCore(languages=("vi", "en"), time_zone="Asia/Ho_Chi_Minh", **options)  # type: ignore[arg-type]


def test_board_alone_paints_the_whole_screen() -> None:
    core = _core()
    core.on_board(_board(7, (_call(7, "A015"), _call(6, "A014", "6"))))
    screen = core.screen()
    assert screen["ready"] and screen["seq"] == 7
    assert screen["newest"]["number"] == "A015" and screen["newest"]["counter_name"] == "Quầy 5"
    assert [c["number"] for c in screen["recent"]] == ["A014"]
    assert screen["hall"] == {"primary": "Trung tâm Phục vụ hành chính công", "secondary": "Public Service Centre"}
    assert screen["services"] == [{"service": "A", "primary": "Hộ tịch", "secondary": "Civil status", "regular": 4,
                                   "priority": 2, "total": 6}]
    assert screen["labels"]["now_serving"] == {"primary": "Mời số", "secondary": "Now serving"}


def test_english_first_swaps_the_names() -> None:
    core = DisplayCore(languages=("en",), time_zone="UTC")
    core.on_board(_board(0))
    screen = core.screen()
    assert screen["hall"] == {"primary": "Public Service Centre", "secondary": None}
    assert screen["labels"]["waiting"] == {"primary": "Waiting", "secondary": None}


def test_calls_listed_on_the_first_board_are_not_announced() -> None:
    core = _core()
    core.on_board(_board(7, (_call(7, "A015"),)))
    assert core.on_call(_call(7, "A015"), now=T0).kind == "duplicate"
    outcome = core.on_call(_call(8, "A016"), now=T0)
    assert (outcome.kind, outcome.flash, outcome.announce, outcome.missed) == ("new", True, True, 0)


def test_live_call_updates_the_screen_before_the_board_follows() -> None:
    core = _core()
    core.on_board(_board(1, (_call(1, "A001"),)))
    core.on_call(_call(2, "B007", "6"), now=T0)
    screen = core.screen()
    assert screen["newest"]["number"] == "B007"
    assert {c["counter"]: c["number"] for c in screen["counters"]} == {"5": "A001", "6": "B007"}
    # An older board arriving late does not take the live call off the screen.
    core.on_board(_board(1, (_call(1, "A001"),)))
    assert core.screen()["newest"]["number"] == "B007"


def test_repeated_seq_is_a_duplicate_and_a_recall_is_announced_again() -> None:
    core = _core()
    core.on_board(_board(0))
    assert core.on_call(_call(1, "A001"), now=T0).announce
    assert core.on_call(_call(1, "A001"), now=T0).kind == "duplicate"
    again = core.on_call(_call(2, "A001", recall=True), now=T0)
    assert again.kind == "new" and again.flash and again.announce
    assert core.screen()["newest"]["recall"] is True


def test_gap_in_seq_counts_the_missed_calls() -> None:
    core = _core()
    core.on_board(_board(3))
    assert core.on_call(_call(7, "A009"), now=T0).missed == 3


def test_old_call_is_shown_but_not_announced() -> None:
    """A call delivered late: the board already lists it, and it was made more than max_call_age_s before
    that board, on the controller's clock."""
    core = _core(max_call_age_s=60.0)
    core.on_board(_board(0))
    late = _call(1, "A001", at=T0 - timedelta(seconds=61))
    core.on_board(_board(1, calls=(late,)))
    outcome = core.on_call(late, now=T0)
    assert outcome.flash and not outcome.announce
    assert core.screen()["newest"]["number"] == "A001"


def test_a_call_after_the_controllers_clock_stepped_back_is_announced() -> None:
    """Newer than the board by its seq, older by its time: the clock stepped back; the seq is right."""
    core = _core(max_call_age_s=60.0)
    core.on_board(_board(1, calls=(_call(1, "A001"),)))
    outcome = core.on_call(_call(2, "A002", at=T0 - timedelta(hours=1)), now=T0)
    assert outcome.flash and outcome.announce


def test_a_display_clock_far_ahead_of_the_controllers_still_announces() -> None:
    """Pis without a real-time clock can disagree by an hour after a power cut: announcements go on."""
    core = _core(max_call_age_s=60.0)
    core.on_board(_board(0))
    outcome = core.on_call(_call(1, "A001"), now=T0 + timedelta(hours=1))
    assert outcome.announce


def test_a_new_ledger_sequence_is_followed_not_taken_for_duplicates() -> None:
    core = _core()
    core.on_board(_board(500))
    assert core.on_call(_call(501, "A001"), now=T0).kind == "new"
    core.on_board(_board(0))  # the controller started a new ledger: seq begins again
    assert core.on_call(_call(1, "A001"), now=T0).kind == "new"


def test_announcements_off_still_flash() -> None:
    core = _core(announce=False)
    core.on_board(_board(0))
    outcome = core.on_call(_call(1, "A001"), now=T0)
    assert outcome.flash and not outcome.announce


NOTICE = Notice(text_vi="Hệ thống tạm dừng 10 phút", text_en="The system pauses for 10 minutes", at=T0, by="lan")


def test_a_notice_is_shown_vietnamese_first_until_it_is_cleared() -> None:
    core = _core()
    core.on_board(_board(0))
    assert core.screen()["notice"] is None
    core.on_notice(read_notice(NOTICE.encode()))
    assert core.screen()["notice"] == {"primary": "Hệ thống tạm dừng 10 phút",
                                       "secondary": "The system pauses for 10 minutes", "at": "2026-11-27T08:15:00.000+07:00"}
    core.on_notice(read_notice(b""))  # the empty retained message that clears it
    assert core.screen()["notice"] is None


def test_a_notice_without_english_stands_alone_in_vietnamese() -> None:
    core = DisplayCore(languages=("en", "vi"), time_zone="UTC")
    core.on_notice(Notice(text_vi="Tạm dừng 10 phút", at=T0))
    assert core.screen()["notice"] == {"primary": "Tạm dừng 10 phút", "secondary": None,
                                       "at": "2026-11-27T08:15:00.000+07:00"}


def test_a_notice_follows_the_screens_languages() -> None:
    core = DisplayCore(languages=("vi",), time_zone="UTC")
    core.on_notice(NOTICE)
    assert (core.screen()["notice"] or {})["secondary"] is None


@pytest.mark.parametrize("payload", [b"not json", b'{"v":1,"text_vi":"","at":"2026-11-27T08:15:00+07:00"}',
                                     '{"v":1,"text_vi":"Tạm dừng"}'.encode(),
                                     b"\xff\xfe"])
def test_an_undecodable_notice_is_refused_and_the_shown_one_stays(payload: bytes) -> None:
    core = _core()
    core.on_notice(NOTICE)
    with pytest.raises(PayloadError):
        core.on_notice(read_notice(payload))
    assert (core.screen()["notice"] or {})["primary"] == "Hệ thống tạm dừng 10 phút"


def test_a_link_coming_up_forgets_the_notice_until_the_broker_sends_it_again() -> None:
    """A clear published while the link was down left nothing retained: the notice must not stay for good."""
    core = _core()
    core.on_notice(NOTICE)
    core.on_link(up=False)
    assert core.screen()["notice"] is not None  # shown on while the link is down
    core.on_link(up=True)
    assert core.screen()["notice"] is None
