"""The counter core's rating window: when the citizen may rate, what is sent, what is shown. No I/O."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from counter.core import (
    NO_ANSWER,
    NO_RATING,
    OFFLINE,
    RATING_WORDS,
    CounterCore,
    Notice,
    Press,
    RatingWindow,
)
from hallq.labels import ERROR_LABELS
from hallq.wire import (
    RATING_LEVELS,
    CounterCommand,
    CounterReply,
    CounterState,
    ErrorCode,
    ErrorInfo,
    ServingTicket,
)

T0 = datetime(2026, 11, 27, 8, 15, 2, tzinfo=timezone(timedelta(hours=7)))
WAIT_S = 30.0


def _ticket(number: str = "A015") -> ServingTicket:
    return ServingTicket(id="id-" + number, number=number, service="A", priority=False, called_at=T0, recalls=0)


def _state(ticket: ServingTicket | None, status: str = "open") -> CounterState:
    return CounterState(counter="5", name="Quầy 5", status=status, services=("A",), ticket=ticket,  # type: ignore[arg-type]
                        waiting=(), at=T0)


def _serving(number: str = "A015", *, rating_wait_s: float | None = WAIT_S) -> CounterCore:
    """A connected counter serving ``number``, rating windows of ``rating_wait_s``, no debounce in the way."""
    core = CounterCore(counter="5", debounce_s=0.3, reply_timeout_s=5.0, rating_wait_s=rating_wait_s)
    core.on_link(up=True)
    core.on_state(_state(_ticket(number)))
    return core


def _completed(number: str = "A015", *, at_s: float = 10.0) -> CounterCore:
    """A counter whose ``complete`` of ``number`` the controller accepted at ``at_s``: the window is open."""
    core = _serving(number)
    assert core.press(Press("complete"), now_s=at_s, request_id="c1") is not None
    core.on_reply(CounterReply(request_id="c1", action="complete", status="open", ticket=None), now_s=at_s)
    return core


def _rate(level: str = "satisfied") -> Press:
    return Press("rate", rating=level)  # type: ignore[arg-type]


def _answer(command: CounterCommand, *, error: ErrorInfo | None = None) -> CounterReply:
    return CounterReply(request_id=command.request_id, action="rate", status="open", ticket=None, error=error)


def test_an_accepted_complete_opens_the_window_for_the_served_ticket() -> None:
    core = _completed("A015", at_s=10.0)
    assert core.view.rating == RatingWindow(ticket_id="id-A015", number="A015", closes_s=10.0 + WAIT_S)
    assert core.view.rating_offered


def test_no_window_before_complete_is_answered_nor_after_a_refused_one() -> None:
    core = _serving()
    core.press(Press("complete"), now_s=10.0, request_id="c1")
    assert core.view.rating is None and not core.view.rating_offered  # sent, not answered yet
    core.on_reply(CounterReply(request_id="c1", action="complete", status="open", ticket=_ticket(),
                               error=ErrorInfo("storage_unavailable", "cannot store")), now_s=10.01)
    assert core.view.rating is None


def test_no_window_for_a_no_show_nor_for_a_complete_of_another_desk() -> None:
    core = _serving()
    core.press(Press("no_show"), now_s=10.0, request_id="x1")
    core.on_reply(CounterReply(request_id="x1", action="no_show", status="open", ticket=None), now_s=10.01)
    assert core.view.rating is None
    other = _serving()
    other.on_reply(CounterReply(request_id="elsewhere", action="complete", status="open", ticket=None), now_s=10.0)
    assert other.view.rating is None


def test_a_counter_without_ratings_opens_no_window_and_refuses_a_rating_press() -> None:
    core = _serving(rating_wait_s=None)
    core.press(Press("complete"), now_s=10.0, request_id="c1")
    core.on_reply(CounterReply(request_id="c1", action="complete", status="open", ticket=None), now_s=10.01)
    assert core.view.rating is None
    assert core.press(_rate(), now_s=11.0, request_id="r1") is None
    assert core.view.notice == Notice("error", NO_RATING)


def test_a_rating_press_sends_rate_naming_the_served_tickets_id_not_its_number() -> None:
    core = _completed("A015")
    command = core.press(_rate("very_satisfied"), now_s=12.0, request_id="r1")
    assert command == CounterCommand(request_id="r1", action="rate", ticket="id-A015", rating="very_satisfied")
    assert command.serving is None  # a rating acts on no ticket being served: see counter.core
    assert CounterCommand.decode(command.encode()) == command
    assert core.view.pending == "rate" and not core.view.rating_offered


def test_an_accepted_rating_thanks_the_citizen_and_closes_the_window() -> None:
    core = _completed("A015")
    command = core.press(_rate("neutral"), now_s=12.0, request_id="r1")
    assert command is not None
    feedback = core.on_reply(_answer(command), now_s=12.01)
    assert feedback is not None and feedback.ok and feedback.action == "rate"
    assert feedback.notice == Notice("ok", "Cảm ơn quý khách đã đánh giá số A015: Bình thường (thank you: neutral)")
    assert core.view.rating is None and core.view.notice == feedback.notice


def test_a_second_press_after_the_rating_sends_nothing() -> None:
    core = _completed()
    command = core.press(_rate("satisfied"), now_s=12.0, request_id="r1")
    assert command is not None
    core.on_reply(_answer(command), now_s=12.01)
    assert core.press(_rate("dissatisfied"), now_s=13.0, request_id="r2") is None
    assert core.view.notice == Notice("error", NO_RATING)


def test_a_held_or_bouncing_rating_button_sends_once() -> None:
    core = _completed()
    sent = [c for i in range(30)  # a button held for 0.6 s, or contacts bouncing every 20 ms
            if (c := core.press(_rate("satisfied"), now_s=12.0 + i * 0.02, request_id=f"r{i}")) is not None]
    assert [c.request_id for c in sent] == ["r0"]
    # A second button pressed at once is a bounce of the rating keys too: dropped, not a second rating.
    assert core.press(_rate("neutral"), now_s=12.0 + 30 * 0.02, request_id="other") is None


def test_a_rating_press_while_a_rating_waits_for_its_answer_is_refused() -> None:
    core = _completed()
    assert core.press(_rate("satisfied"), now_s=12.0, request_id="r1") is not None
    assert core.press(_rate("neutral"), now_s=13.0, request_id="r2") is None
    assert core.view.notice is not None and core.view.notice.level == "info"


def test_already_rated_is_shown_plainly_and_closes_the_window() -> None:
    core = _completed("A015")
    command = core.press(_rate(), now_s=12.0, request_id="r1")
    assert command is not None
    message = "A015 was rated already: the first rating counts"
    feedback = core.on_reply(_answer(command, error=ErrorInfo("already_rated", message)), now_s=12.01)
    assert feedback is not None and not feedback.ok and feedback.action == "rate"
    assert feedback.notice == Notice("error", f"{ERROR_LABELS[ErrorCode.ALREADY_RATED]}: {message}")
    assert core.view.rating is None and core.view.ticket is None and core.view.status == "open"


def test_every_refusal_for_good_closes_the_window_and_changes_nothing_else() -> None:
    for code in ("rating_closed", "not_rateable", "unknown_ticket", "bad_request"):
        core = _completed("A015")
        before = core.view
        command = core.press(_rate(), now_s=12.0, request_id="r1")
        assert command is not None
        core.on_reply(_answer(command, error=ErrorInfo(code, "refused")), now_s=12.01)
        view = core.view
        assert view.rating is None, code
        assert (view.ticket, view.status, view.pending) == (before.ticket, before.status, None), code
        assert view.notice is not None and view.notice.level == "error" and view.notice.text.endswith(": refused")


def test_a_refusal_that_may_pass_keeps_the_window_open_for_another_press() -> None:
    core = _completed()
    command = core.press(_rate(), now_s=12.0, request_id="r1")
    assert command is not None
    core.on_reply(CounterReply(request_id="r1", action="rate",
                               error=ErrorInfo("storage_unavailable", "cannot store")), now_s=12.01)
    assert core.view.rating is not None and core.view.rating_offered
    again = core.press(_rate(), now_s=13.0, request_id="r2")
    assert again is not None and again.request_id == "r2"  # refused: nothing was stored, a new rating


def test_the_window_closes_after_its_wait() -> None:
    core = _completed(at_s=10.0)
    core.tick(now_s=10.0 + WAIT_S - 0.1)
    assert core.view.rating is not None
    core.tick(now_s=10.0 + WAIT_S)
    assert core.view.rating is None
    assert core.press(_rate(), now_s=10.0 + WAIT_S + 1, request_id="r1") is None
    assert core.view.notice == Notice("error", NO_RATING)


def test_the_window_waits_for_the_answer_of_a_rating_pressed_in_time() -> None:
    core = _completed(at_s=10.0)
    command = core.press(_rate(), now_s=10.0 + WAIT_S - 0.5, request_id="r1")
    assert command is not None
    core.tick(now_s=10.0 + WAIT_S + 0.5)
    assert core.view.rating is not None and core.view.pending == "rate"
    feedback = core.on_reply(_answer(command), now_s=10.0 + WAIT_S + 0.6)
    assert feedback is not None and feedback.ok and core.view.rating is None


def test_calling_the_next_citizen_closes_the_window() -> None:
    core = _completed()
    core.press(Press("next"), now_s=12.0, request_id="n1")
    assert core.view.rating is not None  # the citizen is still there until someone else is called
    core.on_reply(CounterReply(request_id="n1", action="next", status="open", ticket=_ticket("A016")), now_s=12.01)
    assert core.view.rating is None


def test_a_refused_next_keeps_the_window_open() -> None:
    core = _completed()
    core.press(Press("next"), now_s=12.0, request_id="n1")
    core.on_reply(CounterReply(request_id="n1", action="next", status="open",
                               error=ErrorInfo("queue_empty", "no ticket is waiting")), now_s=12.01)
    assert core.view.rating is not None and core.view.rating_offered


def test_a_call_from_another_desk_of_the_counter_closes_the_window() -> None:
    core = _completed()
    core.on_state(_state(_ticket("A016")))
    assert core.view.rating is None
    core = _completed()
    core.on_reply(CounterReply(request_id="elsewhere", action="call", status="open", ticket=_ticket("A020")),
                  now_s=12.0)
    assert core.view.rating is None


def test_a_pause_or_a_lost_link_keeps_the_window_but_a_takeover_closes_it() -> None:
    core = _completed()
    core.press(Press("pause"), now_s=12.0, request_id="p1")
    core.on_reply(CounterReply(request_id="p1", action="pause", status="paused", ticket=None), now_s=12.01)
    core.on_state(_state(None, status="paused"))
    assert core.view.rating is not None and core.view.rating_offered
    core.on_link(up=False)
    assert core.view.rating is not None and not core.view.rating_offered
    assert core.press(_rate(), now_s=13.0, request_id="r1") is None
    assert core.view.notice == Notice("error", OFFLINE)
    core.on_link(up=True)
    assert core.view.rating_offered
    core.on_link(up=False, taken_over=True)
    assert core.view.rating is None


def test_no_answer_keeps_the_window_and_the_same_level_resends_the_same_request_id() -> None:
    core = _completed()
    first = core.press(_rate("satisfied"), now_s=12.0, request_id="r1")
    assert first is not None
    feedback = core.tick(now_s=17.0)
    assert feedback is not None and not feedback.ok and feedback.action == "rate" and NO_ANSWER in feedback.notice.text
    assert core.view.rating is not None and core.view.rating_offered
    again = core.press(_rate("satisfied"), now_s=18.0, request_id="r2")
    assert again == first  # the controller stores a rating once and answers the retry with the first answer


def test_another_level_after_no_answer_is_a_new_rating_refused_if_the_first_arrived() -> None:
    core = _completed("A015")
    first = core.press(_rate("satisfied"), now_s=12.0, request_id="r1")
    assert first is not None
    core.tick(now_s=17.0)
    second = core.press(_rate("very_satisfied"), now_s=18.0, request_id="r2")
    assert second is not None and second.request_id == "r2" and second.ticket == "id-A015"
    # The controller took the first, late; it refuses the second.
    late = core.on_reply(_answer(first), now_s=18.1)
    assert late is not None and late.ok
    assert late.notice.text == ("Đánh giá (rating) đã thực hiện dù trả lời muộn (done after all): Cảm ơn quý khách "
                                "đã đánh giá số A015: Hài lòng (thank you: satisfied)")
    assert core.view.rating is None
    refused = core.on_reply(_answer(second, error=ErrorInfo("already_rated", "A015 was rated already")), now_s=18.2)
    assert refused is not None and not refused.ok
    assert core.view.notice == Notice("error", f"{ERROR_LABELS[ErrorCode.ALREADY_RATED]}: A015 was rated already")


def test_a_late_answer_to_a_rating_after_the_window_closed_is_still_shown() -> None:
    core = _completed(at_s=10.0)
    command = core.press(_rate("dissatisfied"), now_s=12.0, request_id="r1")
    assert command is not None
    core.tick(now_s=17.0)
    core.tick(now_s=10.0 + WAIT_S)
    assert core.view.rating is None
    feedback = core.on_reply(_answer(command), now_s=10.0 + WAIT_S + 1)
    assert feedback is not None and feedback.ok and "Không hài lòng" in feedback.notice.text
    # A repeat of that answer is shown once, and a press now sends nothing.
    assert core.on_reply(_answer(command), now_s=10.0 + WAIT_S + 2) is None
    assert core.press(_rate("dissatisfied"), now_s=10.0 + WAIT_S + 3, request_id="r2") is None


def test_a_late_accepted_complete_opens_the_window() -> None:
    core = _serving("A015")
    core.press(Press("complete"), now_s=10.0, request_id="c1")
    core.tick(now_s=15.0)
    assert core.view.rating is None
    core.on_reply(CounterReply(request_id="c1", action="complete", status="open", ticket=None), now_s=16.0)
    assert core.view.rating == RatingWindow(ticket_id="id-A015", number="A015", closes_s=16.0 + WAIT_S)


def test_a_given_up_rating_of_an_earlier_window_is_not_resent_for_the_next_one() -> None:
    core = _completed("A015")
    assert core.press(_rate("satisfied"), now_s=12.0, request_id="r1") is not None
    core.tick(now_s=17.0)
    # No answer ever comes. Another desk of the counter calls A016; this one completes it, late too.
    core.on_state(_state(_ticket("A016")))
    core.press(Press("complete"), now_s=18.0, request_id="c2")
    core.tick(now_s=23.0)
    core.on_reply(CounterReply(request_id="c2", action="complete", status="open", ticket=None), now_s=24.0)
    assert core.view.rating is not None and core.view.rating.number == "A016"
    command = core.press(_rate("satisfied"), now_s=25.0, request_id="r3")
    assert command is not None and (command.request_id, command.ticket) == ("r3", "id-A016")


def test_the_words_cover_every_level_of_the_contract_in_its_order() -> None:
    assert tuple(RATING_WORDS) == RATING_LEVELS
    assert [vi for vi, _en in RATING_WORDS.values()] == ["Rất hài lòng", "Hài lòng", "Bình thường", "Không hài lòng"]


def test_the_keypads_own_keys_work_as_before_while_the_window_is_open() -> None:
    core = _completed()
    command = core.press(Press("recall"), now_s=12.0, request_id="x")
    assert command is not None and command.action == "recall" and command.serving == ""
