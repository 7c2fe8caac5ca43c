"""The display's pure core: board and calls to the screen model; the announcement queue never overlaps."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from hypothesis import example, given, settings
from hypothesis import strategies as st

from display.core import Announcement, AnnouncementQueue, DisplayCore
from hallq.wire import Board, BoardCounter, BoardService, Call

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
    """Old on the controller's clock: a call made more than max_call_age_s before the newest board."""
    core = _core(max_call_age_s=60.0)
    core.on_board(_board(0))
    outcome = core.on_call(_call(1, "A001", at=T0 - timedelta(seconds=61)), now=T0)
    assert outcome.flash and not outcome.announce
    assert core.screen()["newest"]["number"] == "A001"


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


def _item(seq: int, duration_s: float) -> Announcement:
    return Announcement(seq=seq, number=f"A{seq:03d}", counter="1", recall=False, texts=(), duration_s=duration_s,
                        audio_id=str(seq))


def test_second_announcement_waits_for_the_first_and_the_gap() -> None:
    queue = AnnouncementQueue(gap_s=0.5)
    queue.push(_item(1, 3.0))
    queue.push(_item(2, 3.0))
    assert queue.due(10.0) == _item(1, 3.0)
    assert queue.due(13.4) is None
    assert queue.next_wakeup_s(13.4) == 13.5
    assert queue.due(13.5) == _item(2, 3.0)


def test_player_reporting_the_end_moves_the_queue() -> None:
    queue = AnnouncementQueue(gap_s=0.5)
    queue.push(_item(1, 3.0))
    queue.push(_item(2, 3.0))
    queue.due(0.0)
    queue.finished(4.0)  # the device took longer than the file's length
    assert queue.due(4.4) is None and queue.due(4.5) == _item(2, 3.0)


def test_too_many_waiting_drops_the_oldest() -> None:
    queue = AnnouncementQueue(max_waiting=2)
    for seq in (1, 2, 3):
        queue.push(_item(seq, 1.0))
    assert queue.dropped == 1
    assert [item.seq for item in queue.waiting] == [2, 3]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 30), st.floats(0.5, 12)), min_size=1, max_size=15), st.floats(0, 2),
       st.integers(1, 12))
@example(arrivals=[(0.0, 1.0)] * 13, gap_s=0.0, max_waiting=12)  # one more than may wait: the first is dropped
def test_announcements_never_overlap_and_keep_their_order(arrivals: list[tuple[float, float]], gap_s: float,
                                                          max_waiting: int) -> None:
    """Each announcement starts after the previous one's length and gap, in arrival order; one is skipped only
    when more than ``max_waiting`` wait, and then it is the oldest waiting."""
    queue = AnnouncementQueue(gap_s=gap_s, max_waiting=max_waiting)
    events = sorted((at, seq, duration) for seq, (at, duration) in enumerate(arrivals))
    started: list[tuple[float, Announcement]] = []
    dropped: list[int] = []
    now, pending = 0.0, list(events)
    while pending or queue.waiting:
        while pending and pending[0][0] <= now:
            _, seq, duration = pending.pop(0)
            oldest, full = queue.waiting[0].seq if queue.waiting else None, len(queue.waiting) == max_waiting
            queue.push(_item(seq, duration))
            if queue.dropped > len(dropped):
                assert full and oldest is not None
                dropped.append(oldest)
        item = queue.due(now)
        if item is not None:
            started.append((now, item))
            continue
        candidates = [t for t in (queue.next_wakeup_s(now), pending[0][0] if pending else None) if t is not None]
        now = max(now, min(candidates))
    arrival_order = [seq for _, seq, _ in events]
    assert [item.seq for _, item in started] == [seq for seq in arrival_order if seq not in dropped]
    assert queue.dropped == len(dropped)
    for (start_a, a), (start_b, _) in itertools.pairwise(started):
        assert start_b >= start_a + a.duration_s + gap_s - 1e-9
