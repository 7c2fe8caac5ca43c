"""The counter's core and the citizen's profile: when it is shown, when it goes, and the clerk's edits. No I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from counter.core import NO_PROFILE_SHOWN, PROFILE_CHANGED, CounterCore, Notice, Press
from hallq.labels import ERROR_LABELS
from hallq.wire import (
    CitizenProfile,
    CounterCommand,
    CounterReply,
    CounterState,
    CounterStatus,
    ErrorCode,
    ErrorInfo,
    ProfileEdit,
    ServingTicket,
    Visit,
)

T0 = datetime(2026, 11, 27, 8, 15, 2, tzinfo=timezone(timedelta(hours=7)))


def _ticket(number: str = "A015") -> ServingTicket:
    return ServingTicket(id="t-" + number, number=number, service="A", priority=False, called_at=T0)


AN = CitizenProfile(ref="p7f3a9c2e41b", ticket="t-A015", first_visit=False, name="Nguyễn Văn An",
                    id_number="001050012345", birth_date="1950-01-01", age=76, sex="Nam",
                    address="Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội", visits=(Visit("2026-10-02", "A", "served"),))


def _profile(number: str = "A015", **changes: Any) -> CitizenProfile:
    return replace(AN, ticket="t-" + number, **changes)


def _state(ticket: ServingTicket | None, *, status: CounterStatus = "open") -> CounterState:
    return CounterState(counter="5", name="Quầy 5", status=status, services=("A",), ticket=ticket, waiting=(), at=T0)


def _connected() -> CounterCore:
    core = CounterCore(counter="5", debounce_s=0.0, reply_timeout_s=5.0)
    core.on_link(up=True)
    core.on_state(_state(None))
    return core


def _act(core: CounterCore, press: Press, reply: CounterReply, *, now_s: float = 1.0) -> CounterCommand:
    """Press, and answer the command with ``reply`` (its request id replaced by the command's)."""
    command = core.press(press, now_s=now_s, request_id=f"r{now_s}")
    assert command is not None, core.view.notice
    core.on_reply(CounterReply(request_id=command.request_id, action=reply.action, status=reply.status,
                               ticket=reply.ticket, error=reply.error, profile=reply.profile), now_s=now_s + 0.01)
    return command


def _called_with_a_card(number: str = "A015") -> CounterCore:
    core = _connected()
    _act(core, Press("next"), CounterReply(request_id="", action="next", status="open", ticket=_ticket(number),
                                           profile=_profile(number)))
    return core


def _edit(**fields: str) -> Press:
    return Press("profile", profile=ProfileEdit(**fields), profile_of="t-A015")


# --- when it is shown -----------------------------------------------------------------------------------------

def test_a_ticket_called_with_a_card_shows_the_citizens_profile() -> None:
    core = _called_with_a_card()
    assert core.view.profile == _profile() and core.view.profile_number == "A015"
    assert core.view.profile_served


def test_a_ticket_called_without_a_card_shows_no_profile() -> None:
    core = _connected()
    _act(core, Press("next"), CounterReply(request_id="", action="next", status="open", ticket=_ticket()))
    assert core.view.profile is None and core.view.serving


def test_the_profile_stays_after_complete_until_the_next_call() -> None:
    core = _called_with_a_card()
    _act(core, Press("complete"), CounterReply(request_id="", action="complete", status="open", ticket=None), now_s=2.0)
    core.on_state(_state(None))
    assert core.view.profile == _profile() and not core.view.profile_served
    _act(core, Press("next"), CounterReply(request_id="", action="next", status="open", ticket=_ticket("A016")),
         now_s=3.0)
    assert core.view.profile is None


def test_the_next_citizens_profile_replaces_the_last_ones() -> None:
    core = _called_with_a_card()
    _act(core, Press("next"), CounterReply(request_id="", action="next", status="open", ticket=_ticket("A016"),
                                           profile=_profile("A016", ref="q1b2c3d4e5f6", name="Trần Thị Bình")),
         now_s=2.0)
    assert core.view.profile is not None and core.view.profile.name == "Trần Thị Bình"
    assert core.view.profile_number == "A016"


def test_the_profile_goes_when_another_console_of_the_counter_calls_another_ticket() -> None:
    core = _called_with_a_card()
    core.on_state(_state(_ticket("A016")))
    assert core.view.profile is None


def test_a_recall_keeps_the_profile() -> None:
    core = _called_with_a_card()
    _act(core, Press("recall"), CounterReply(request_id="", action="recall", status="open", ticket=_ticket(),
                                             profile=_profile()), now_s=2.0)
    assert core.view.profile == _profile()


def test_the_profile_goes_with_a_no_show_or_a_transfer() -> None:
    for press in (Press("no_show"), Press("transfer", service="C")):
        core = _called_with_a_card()
        _act(core, press, CounterReply(request_id="", action=press.action, status="open", ticket=None), now_s=2.0)
        assert core.view.profile is None, press


def test_the_profile_goes_when_the_counter_is_paused_or_closed() -> None:
    statuses: tuple[CounterStatus, ...] = ("paused", "closed")
    for status in statuses:
        core = _called_with_a_card()
        core.on_state(_state(None, status=status))
        assert core.view.profile is None, status


def test_a_lost_link_keeps_the_profile_and_a_session_taken_over_drops_it() -> None:
    core = _called_with_a_card()
    core.on_link(up=False)
    assert core.view.profile == _profile()
    core.on_link(up=False, taken_over=True)
    assert core.view.profile is None


def test_a_profile_left_after_complete_is_hidden_after_the_keep_time() -> None:
    core = _called_with_a_card()
    core.tick(now_s=50.0)  # still served: no clock runs
    _act(core, Press("complete"), CounterReply(request_id="", action="complete", status="open", ticket=None),
         now_s=100.0)
    core.tick(now_s=100.1)
    core.tick(now_s=100.1 + core.profile_keep_s - 1)
    assert core.view.profile is not None
    core.tick(now_s=100.1 + core.profile_keep_s)
    assert core.view.profile is None
    assert core.view.notice is not None and "hidden after 5 minutes" in core.view.notice.text


def test_a_reply_whose_profile_is_for_another_ticket_is_not_shown() -> None:
    core = _connected()
    _act(core, Press("next"), CounterReply(request_id="", action="next", status="open", ticket=_ticket("A016"),
                                           profile=_profile("A015")))
    assert core.view.profile is None


def test_a_core_that_keeps_no_profiles_never_holds_one() -> None:
    core = CounterCore(counter="5", keep_profiles=False)
    core.on_link(up=True)
    command = core.press(Press("next"), now_s=1.0, request_id="r1")
    assert command is not None
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket(), profile=_profile()),
                  now_s=1.01)
    assert core.view.profile is None and core.view.serving


# --- the clerk's edits ----------------------------------------------------------------------------------------

def test_a_profile_edit_is_a_command_with_what_the_counter_serves_and_the_fields() -> None:
    core = _called_with_a_card()
    command = core.press(_edit(phone="0912 345 678", notes="cần hỗ trợ đi lại"), now_s=2.0, request_id="r2")
    assert command is not None
    assert (command.action, command.serving) == ("profile", "t-A015")
    assert command.profile == ProfileEdit(phone="0912 345 678", notes="cần hỗ trợ đi lại")
    assert CounterCommand.decode(command.encode()) == command
    assert core.view.pending == "profile"


def test_a_profile_edit_after_complete_says_the_counter_serves_nothing() -> None:
    core = _called_with_a_card()
    _act(core, Press("complete"), CounterReply(request_id="", action="complete", status="open", ticket=None), now_s=2.0)
    command = core.press(_edit(hall_card="TTHCC-7K2M9Q"), now_s=3.0, request_id="r3")
    assert command is not None and command.serving == CounterCommand.SERVING_NOTHING
    assert command.profile == ProfileEdit(hall_card="TTHCC-7K2M9Q")


def test_the_reply_to_an_edit_shows_the_updated_profile_and_says_what_was_saved() -> None:
    core = _called_with_a_card()
    _act(core, Press("complete"), CounterReply(request_id="", action="complete", status="open", ticket=None), now_s=2.0)
    updated = _profile(phone="0912 345 678", hall_card=True)
    _act(core, _edit(phone="0912 345 678", hall_card="TTHCC-7K2M9Q"),
         CounterReply(request_id="", action="profile", status="open", ticket=None, profile=updated), now_s=3.0)
    assert core.view.profile == updated and core.view.profile_number == "A015"
    assert core.view.notice == Notice("ok", "Hồ sơ: đã lưu số điện thoại, đã đăng ký thẻ của trung tâm "
                                            "(phone saved, hall card registered)")


def test_a_cleared_field_is_said_to_be_cleared() -> None:
    core = _called_with_a_card()
    _act(core, _edit(notes=""), CounterReply(request_id="", action="profile", status="open", ticket=_ticket(),
                                             profile=_profile()), now_s=2.0)
    assert core.view.notice == Notice("ok", "Hồ sơ: đã xoá ghi chú (notes cleared)")


def test_a_refused_edit_is_shown_in_the_clerks_words() -> None:
    core = _called_with_a_card()
    _act(core, _edit(phone="0912 345 678"),
         CounterReply(request_id="", action="profile", status="open", ticket=_ticket(),
                      error=ErrorInfo(ErrorCode.NO_PROFILE, "ticket A015 came with no card")), now_s=2.0)
    assert core.view.notice == Notice("error", f"{ERROR_LABELS[ErrorCode.NO_PROFILE]}: ticket A015 came with no card")
    assert core.view.profile == _profile()  # a refusal changes nothing


def test_an_edit_without_a_profile_on_screen_sends_nothing() -> None:
    core = _connected()
    _act(core, Press("next"), CounterReply(request_id="", action="next", status="open", ticket=_ticket()))
    assert core.press(Press("profile"), now_s=2.0, request_id="r2") is None
    assert core.press(_edit(phone="0912 345 678"), now_s=3.0, request_id="r3") is None
    assert core.view.notice == Notice("error", NO_PROFILE_SHOWN)


def test_an_edit_typed_for_a_citizen_no_longer_on_screen_sends_nothing() -> None:
    core = _called_with_a_card()
    _act(core, Press("next"), CounterReply(request_id="", action="next", status="open", ticket=_ticket("A016"),
                                           profile=_profile("A016", ref="q1b2c3d4e5f6")), now_s=2.0)
    assert core.press(_edit(notes="cho số A015"), now_s=3.0, request_id="r3") is None
    assert core.view.notice == Notice("error", PROFILE_CHANGED)


def test_a_phone_number_the_contract_refuses_is_refused_at_the_desk() -> None:
    core = _called_with_a_card()
    assert core.press(_edit(phone="12"), now_s=2.0, request_id="r2") is None
    notice = core.view.notice
    assert notice is not None and notice.level == "error"
    assert notice.text.startswith(ERROR_LABELS[ErrorCode.BAD_REQUEST]) and "'phone' must be a phone number" in notice.text
    assert core.view.pending is None


def test_an_empty_edit_sends_nothing() -> None:
    core = _called_with_a_card()
    assert core.press(_edit(), now_s=2.0, request_id="r2") is None
    assert core.view.pending is None
