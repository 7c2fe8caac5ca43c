"""The counter's pure core: key presses to commands, replies and state to what the clerk sees. No I/O."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from counter.core import (
    LATE_GRACE_S,
    NO_ANSWER,
    OFFLINE,
    CounterCore,
    Notice,
    Press,
    taken_over_text,
)
from hallq.labels import ERROR_LABELS, error_label
from hallq.wire import CounterReply, CounterState, ErrorCode, ErrorInfo, ServingTicket, WaitingCount

T0 = datetime(2026, 11, 27, 8, 15, 2, tzinfo=timezone(timedelta(hours=7)))


def _ticket(number: str = "A015", recalls: int = 0) -> ServingTicket:
    return ServingTicket(id="t-" + number, number=number, service="A", priority=False, called_at=T0, recalls=recalls)


def _connected(debounce_s: float = 0.3) -> CounterCore:
    core = CounterCore(counter="5", debounce_s=debounce_s, reply_timeout_s=5.0)
    core.on_link(up=True)
    return core


def test_next_becomes_a_command_with_the_given_request_id() -> None:
    core = _connected()
    command = core.press(Press("next"), now_s=10.0, request_id="r1")
    assert command is not None
    assert (command.action, command.request_id, command.ticket, command.service) == ("next", "r1", None, None)
    assert core.view.pending == "next"


def test_accepted_reply_sets_the_ticket_and_lights_serving() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    feedback = core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket()), now_s=10.01)
    assert feedback is not None and feedback.ok
    assert core.view.serving and core.view.ticket == _ticket() and core.view.pending is None
    assert "A015" in feedback.notice.text


def test_refusal_is_shown_in_plain_words_with_the_controllers_message() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    feedback = core.on_reply(CounterReply(request_id="r1", action="next", status="open",
                                          error=ErrorInfo("queue_empty", "no ticket is waiting for counter 5")), now_s=10.01)
    assert feedback is not None and not feedback.ok
    assert feedback.notice.level == "error"
    assert feedback.notice.text == ("Không còn số nào đang chờ (queue empty): no ticket is waiting for counter 5")
    assert not core.view.serving


def test_complete_reports_the_ticket_that_was_finished() -> None:
    core = _connected()
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A",), ticket=_ticket(),
                               waiting=(WaitingCount("A", 3, 1),), at=T0))
    core.press(Press("complete"), now_s=1.0, request_id="r2")
    feedback = core.on_reply(CounterReply(request_id="r2", action="complete", status="open", ticket=None), now_s=10.01)
    assert feedback is not None and "A015" in feedback.notice.text
    assert not core.view.serving


def test_second_press_while_waiting_for_an_answer_is_refused() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    assert core.press(Press("recall"), now_s=11.0, request_id="r2") is None
    assert core.view.notice is not None and core.view.notice.level == "info"


def test_bouncing_key_counts_once() -> None:
    core = _connected(debounce_s=0.3)
    first = core.press(Press("next"), now_s=10.0, request_id="r1")
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket()), now_s=10.01)
    notice = core.view.notice
    assert first is not None
    assert core.press(Press("next"), now_s=10.05, request_id="r2") is None
    assert core.view.notice == notice  # dropped silently
    assert core.press(Press("next"), now_s=10.4, request_id="r3") is not None


def test_press_while_offline_sends_nothing_and_says_so() -> None:
    core = CounterCore(counter="5")
    assert core.press(Press("next"), now_s=1.0, request_id="r1") is None
    assert core.view.notice is not None and core.view.notice.text == OFFLINE


def test_unanswered_command_times_out_and_frees_the_keys() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    assert core.tick(now_s=14.9) is None
    feedback = core.tick(now_s=15.0)
    assert feedback is not None and not feedback.ok and NO_ANSWER in feedback.notice.text
    assert core.press(Press("next"), now_s=15.1, request_id="r2") is not None


def test_same_key_after_a_timeout_resends_with_the_same_request_id() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    again = core.press(Press("next"), now_s=16.0, request_id="r2")
    assert again is not None and again.request_id == "r1"


def test_other_key_after_a_timeout_is_a_new_command() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    other = core.press(Press("recall"), now_s=16.0, request_id="r2")
    assert other is not None and other.request_id == "r2"


def test_late_answer_is_shown_as_done_after_all_and_lights_serving() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    feedback = core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket()), now_s=16.0)
    assert feedback is not None and feedback.ok
    assert feedback.notice == Notice("ok", "Gọi số tiếp (next) đã thực hiện dù trả lời muộn (done after all): "
                                           "Đang mời số A015 (called A015)")
    assert core.view.notice == feedback.notice and core.view.serving


def test_same_key_soon_after_a_late_answer_resends_the_original_request_id() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket()), now_s=16.0)
    again = core.press(Press("next"), now_s=16.0 + LATE_GRACE_S - 0.1, request_id="r2")
    assert again is not None and again.request_id == "r1"
    # The controller's repeated answer settles it; pressing once more is a new command.
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket()), now_s=26.0)
    fresh = core.press(Press("next"), now_s=27.0, request_id="r3")
    assert fresh is not None and fresh.request_id == "r3"


def test_same_key_after_the_late_grace_is_a_new_command() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket()), now_s=16.0)
    fresh = core.press(Press("next"), now_s=16.0 + LATE_GRACE_S, request_id="r2")
    assert fresh is not None and fresh.request_id == "r2"


def test_late_refusal_is_shown_and_the_key_is_then_a_new_command() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    feedback = core.on_reply(CounterReply(request_id="r1", action="next", status="open",
                                          error=ErrorInfo("queue_empty", "no ticket is waiting")), now_s=16.0)
    assert feedback is not None and not feedback.ok
    assert feedback.notice.text == ("Gọi số tiếp (next), trả lời muộn (late answer): "
                                    "Không còn số nào đang chờ (queue empty): no ticket is waiting")
    fresh = core.press(Press("next"), now_s=17.0, request_id="r2")
    assert fresh is not None and fresh.request_id == "r2"


def test_a_repeated_late_answer_is_shown_once() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    reply = CounterReply(request_id="r1", action="next", status="open", ticket=_ticket())
    assert core.on_reply(reply, now_s=16.0) is not None
    assert core.on_reply(reply, now_s=16.5) is None


def test_a_timely_answer_to_another_command_ends_the_resend() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    core.press(Press("recall"), now_s=16.0, request_id="r2")
    core.on_reply(CounterReply(request_id="r2", action="recall", status="open", ticket=_ticket(recalls=1)),
                  now_s=16.1)
    fresh = core.press(Press("next"), now_s=17.0, request_id="r3")
    assert fresh is not None and fresh.request_id == "r3"


def test_each_key_given_up_resends_its_own_request_id() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    core.press(Press("recall"), now_s=16.0, request_id="r2")
    core.tick(now_s=21.0)
    again = core.press(Press("next"), now_s=22.0, request_id="r3")
    assert again is not None and again.request_id == "r1"


def test_call_of_another_number_after_a_timeout_is_a_new_command() -> None:
    core = _connected()
    core.press(Press("call", ticket="A015"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    other = core.press(Press("call", ticket="A016"), now_s=16.0, request_id="r2")
    assert other is not None and other.request_id == "r2"


def test_held_key_counts_once_until_it_has_been_quiet() -> None:
    core = _connected(debounce_s=0.5)
    sent = []
    for i in range(40):  # a key held for 1.2 s, repeating every 30 ms
        command = core.press(Press("next"), now_s=10.0 + i * 0.03, request_id=f"r{i}")
        if command is not None:
            sent.append(command)
            core.on_reply(CounterReply(request_id=command.request_id, action="next", status="open",
                                       ticket=_ticket()), now_s=10.0 + i * 0.03)
    assert [c.request_id for c in sent] == ["r0"]
    assert core.press(Press("next"), now_s=10.0 + 39 * 0.03 + 0.5, request_id="after") is not None


def test_late_reply_to_someone_elses_command_updates_the_ticket_without_feedback() -> None:
    core = _connected()
    core.press(Press("next"), now_s=10.0, request_id="mine")
    assert core.on_reply(CounterReply(request_id="theirs", action="recall", status="open",
                                      ticket=_ticket(recalls=1)), now_s=10.01) is None
    assert core.view.ticket == _ticket(recalls=1) and core.view.pending == "next"


def test_call_needs_a_number_and_transfer_a_service() -> None:
    core = _connected(debounce_s=0.0)
    assert core.press(Press("call"), now_s=1.0, request_id="r1") is None
    assert core.press(Press("transfer"), now_s=2.0, request_id="r2") is None
    command = core.press(Press("call", ticket="B007"), now_s=3.0, request_id="r3")
    assert command is not None and command.ticket == "B007"


def test_state_of_another_counter_is_ignored() -> None:
    core = _connected()
    core.on_state(CounterState(counter="6", name="Quầy 6", status="closed", services=("A",), ticket=_ticket(),
                               waiting=(), at=T0))
    assert core.view.status is None and core.view.ticket is None


# --- another console on the same counter ---------------------------------------------------------------------

def test_every_command_says_which_ticket_the_counter_showed() -> None:
    core = _connected(debounce_s=0.0)
    idle = core.press(Press("next"), now_s=1.0, request_id="r1")
    core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket("A015")), now_s=1.1)
    serving = core.press(Press("complete"), now_s=2.0, request_id="r2")
    assert idle is not None and idle.serving == "" and idle.encode().count(b'"serving":""') == 1
    assert serving is not None and serving.serving == "t-A015"


def test_a_resend_after_a_timeout_keeps_what_the_original_saw() -> None:
    core = _connected()
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A",), ticket=_ticket("A015"),
                               waiting=(), at=T0))
    core.press(Press("next"), now_s=10.0, request_id="r1")
    core.tick(now_s=15.0)
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A",), ticket=_ticket("A016"),
                               waiting=(), at=T0))
    again = core.press(Press("next"), now_s=16.0, request_id="r2")
    assert again is not None and (again.request_id, again.serving) == ("r1", "t-A015")


def test_a_conflict_shows_why_and_the_ticket_the_counter_serves_now() -> None:
    core = _connected()
    core.on_state(CounterState(counter="5", name="Quầy 5", status="open", services=("A",), ticket=_ticket("A002"),
                               waiting=(), at=T0))
    core.press(Press("next"), now_s=10.0, request_id="r1")
    message = "counter 5 is serving A003, not A002: another console acted; refresh"
    feedback = core.on_reply(CounterReply(request_id="r1", action="next", status="open", ticket=_ticket("A003"),
                                          error=ErrorInfo("conflict", message)), now_s=10.01)
    assert feedback is not None and not feedback.ok
    assert feedback.notice == Notice("error", f"{ERROR_LABELS[ErrorCode.CONFLICT]}: {message}")
    assert core.view.ticket == _ticket("A003") and core.view.pending is None
    # Acting again now acts on what the clerk sees: A003.
    command = core.press(Press("next"), now_s=11.0, request_id="r2")
    assert command is not None and command.serving == "t-A003"


def test_a_console_pushed_off_its_account_says_why_and_refuses_every_key() -> None:
    core = _connected(debounce_s=0.0)
    core.press(Press("next"), now_s=1.0, request_id="r1")
    core.on_link(up=False, taken_over=True)
    view = core.view
    assert view.taken_over and not view.connected and view.pending is None
    assert view.notice == Notice("error", taken_over_text("5"))
    assert "another console is connected as counter 5; only one console per counter account — close the other " \
           "one, or give this desk its own counter id" in taken_over_text("5")
    assert core.tick(now_s=100.0) is None  # its command in flight is not reported as unanswered
    assert core.press(Press("recall"), now_s=2.0, request_id="r2") is None
    assert core.view.notice == Notice("error", taken_over_text("5"))


def test_every_error_code_of_the_contract_has_words_for_the_clerk() -> None:
    assert set(ErrorCode) == set(ERROR_LABELS)
    assert error_label("from_a_newer_controller") == "from_a_newer_controller"
