"""The counter's pure core: a key press becomes a contract command; a reply or state becomes what to show and light.

Theory of operation: the core holds what the counter knows of itself (status, current ticket, waiting counts,
all from the controller's retained ``counter/{id}/state`` and the replies to its commands) and at most one
command in flight. ``press()`` turns a clerk's action into a ``CounterCommand``, or refuses it (returns
``None`` and sets a notice) when the broker is unreachable or an earlier command is still unanswered. A key
counts once until it has been quiet for ``debounce_s``: every repeat inside that window is dropped silently
and starts the window again, because mechanical keys bounce, gpiozero's mock pins do not debounce, and a
held terminal key repeats ~30 times a second. ``on_reply()`` settles the command in flight and returns a
``Feedback`` (the keypad beeps on a refusal); ``tick()`` gives up on a command after ``reply_timeout_s``.

A command given up on is not forgotten, because its reply may only be late (the controller restarting) and
the controller may already have done it. The contract's rule is to retry with the same request id: the
controller answers a repeated id with the original outcome and does not run it twice. So:

* pressing the same key again (for ``call``/``transfer``: with the same number/service) re-sends it with
  its original request id, for as long as no answer came;
* a late answer is shown like any other ("done after all"), with its feedback, and for ``late_grace_s``
  after it the same key still re-sends the original id, once: a clerk who pressed again a moment after the
  late answer gets that answer again, not a second citizen;
* a late refusal changed nothing at the controller, and a timely answer to any other command of ours shows
  the counter's current ticket and status: either one ends the memory, and the next press is a new command.

So two presses of one key across a lost or late reply never call two citizens, unless the second comes more
than ``late_grace_s`` after the late answer was shown.

The citizen's profile. When the counter calls a ticket linked to a citizen's card, the reply carries the
citizen's profile (personal data, sent to this counter only). The view shows it (``view.profile``) while the
counter serves that ticket and, after ``complete``, until the next call, so the clerk can finish the
registration with ``profile`` commands (``Press("profile", profile=ProfileEdit(...), profile_of=ticket id)``,
whose replies bring the profile back, updated). It is dropped as soon as anything else is on the desk: another
ticket called (by any console of this counter), the ticket answered by ``no_show`` or ``transfer``, the counter
paused or closed, the session taken over, or ``profile_keep_s`` after the counter stopped serving its ticket
(a clerk who walked away does not leave a citizen's data on screen). A lost broker link keeps it: the citizen
is still at the desk. An edit names the ticket whose profile the clerk saw (``profile_of``) and is refused at
the desk when the screen shows another one by then, so that words typed for one citizen never land in the
next one's profile. A core made with ``keep_profiles=False`` (the keypad, which has no screen) never holds one.

Another console or keypad may act on the same counter. Every command therefore says what this counter showed
as being served when the key was pressed (``serving``: the ticket's id, ``""`` for none; a re-send keeps the
original's), and the controller refuses with ``conflict`` a command whose ``serving`` is no longer true, so a
``next`` never finishes a citizen this clerk did not see called. The refusal carries the counter's status and
ticket, which the view then shows: the clerk sees who is being served now and can act again knowingly.

Ratings. A core made with ``rating_wait_s`` opens a rating window when the controller accepts a ``complete`` of
ours (in time or late): for ``rating_wait_s`` the citizen may rate the visit just served, with
``Press("rate", rating=level)`` (the keypad's rating buttons, the console's keys 1-4). The command names that
ticket by its id (``ticket``), not by its number (a finished ticket's number may be given out again), and
carries no ``serving``: it acts on no ticket being served, and the controller checks the ticket itself (only
this counter's last served one, once, within the hall's window). ``view.rating`` is the open window and
``view.rating_offered`` says when a press would be sent now (the keypad lights its rating buttons then). The
window closes:

* when a rating is answered: accepted ("thank you"), or refused for good (``already_rated``,
  ``rating_closed``, ``not_rateable``, ...; shown with the refusal's words). A refusal that may pass a moment
  later (``storage_unavailable``, ``rate_limited``) leaves it open, and so does no answer: pressing the same
  level again re-sends the same request id (the controller stores a rating once, and answers a retry with
  the first answer), pressing another level is a new rating, which the controller refuses ``already_rated``
  if the first one did arrive;
* after ``rating_wait_s`` (not while a rating waits for its answer);
* as soon as the counter serves a ticket again (``next`` or ``call`` from any desk of this counter: someone
  else is at the desk);
* when the session is taken over (nothing more would reach this core).

A pause or close keeps it open: a clerk often pauses right after ``complete`` while the citizen is still at
the desk, and the controller accepts a rating of the counter's last served ticket whatever its status. A lost
broker link keeps it open too (a press is refused meanwhile, and the window is not offered): it may come back
within the wait. Every rating press counts once until the rating keys have been quiet for ``debounce_s``, as
for any key, and a rating in flight blocks the next one: a held or bouncing button sends one rating.

Two processes logging in with one account take the broker session from each other. The one pushed off
(``on_link(up=False, taken_over=True)``) does not connect again (``view.taken_over``); it says why, and refuses
every key with the same words, until it is restarted.

The core never publishes, sleeps, logs or reads a clock: the caller passes ``now_s`` (a monotonic clock) and
the request id, and the front ends (``keypad``, ``console``) render ``view``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

from hallq.errors import PayloadError
from hallq.labels import error_label
from hallq.wire import (
    Board,
    BoardService,
    CitizenProfile,
    CounterAction,
    CounterCommand,
    CounterReply,
    CounterState,
    CounterStatus,
    ErrorCode,
    ProfileEdit,
    RatingLevel,
    ServingTicket,
    WaitingCount,
)

NO_ANSWER = "Không nhận được trả lời từ máy chủ (no answer from the hall controller)"
OFFLINE = "Mất kết nối, chưa gửi lệnh (not connected to the broker; nothing was sent)"


def taken_over_text(counter: str) -> str:
    """Why a counter whose broker session was taken over stopped connecting, and what to do."""
    return (f"Một máy khác đang kết nối với tư cách quầy {counter}; mỗi tài khoản quầy chỉ dùng cho một máy: hãy "
            f"tắt máy kia, hoặc cấp cho bàn này mã quầy riêng (another console is connected as counter {counter}; "
            f"only one console per counter account — close the other one, or give this desk its own counter id)")


# How long after a late answer the same key still re-sends the answered command (see the module docstring):
# long enough for a clerk who pressed again on the "no answer" beep, short enough that a deliberate press
# after reading the answer is a new command.
LATE_GRACE_S: Final = 10.0
# How long a profile stays on screen once its ticket is no longer served (after ``complete``), counted from the
# last profile reply: enough to type a phone number and notes, or scan a hall card; not a whole lunch break.
PROFILE_KEEP_S: Final = 300.0
NO_PROFILE_SHOWN = ("Không có hồ sơ công dân nào trên màn hình, chưa gửi gì (no citizen's profile on screen: the "
                    "ticket came without a card; nothing was sent)")
PROFILE_CHANGED = ("Hồ sơ trên màn hình đã đổi sang công dân khác, chưa gửi gì (the profile on screen is another "
                   "citizen's now; nothing was sent)")

ACTION_NAMES: Final[dict[str, str]] = {
    "next": "Gọi số tiếp (next)", "recall": "Gọi lại (recall)", "complete": "Hoàn thành (complete)",
    "no_show": "Vắng mặt (no-show)", "transfer": "Chuyển dịch vụ (transfer)", "call": "Gọi số (call)",
    "open": "Mở quầy (open)", "pause": "Tạm dừng (pause)", "close": "Đóng quầy (close)",
    "profile": "Hồ sơ công dân (profile)", "rate": "Đánh giá (rating)",
}
# The four levels of a rating, best first, as the citizen reads them (Vietnamese) and in English.
RATING_WORDS: Final[dict[RatingLevel, tuple[str, str]]] = {
    "very_satisfied": ("Rất hài lòng", "very satisfied"), "satisfied": ("Hài lòng", "satisfied"),
    "neutral": ("Bình thường", "neutral"), "dissatisfied": ("Không hài lòng", "dissatisfied"),
}
# Refusals of a rating that pressing again a moment later may turn into an acceptance: they keep the window open.
# Every other refusal would be repeated for this ticket (rated already, too late, not this counter's, ...).
RATING_RETRYABLE: Final = frozenset({ErrorCode.STORAGE_UNAVAILABLE.value, ErrorCode.RATE_LIMITED.value})
NO_RATING = "Không có lượt nào đang chờ đánh giá, chưa gửi gì (no visit to rate now; nothing was sent)"


@dataclass(frozen=True, slots=True)
class Press:
    """A clerk's action: ``ticket`` for ``call`` (a number like A015), ``service`` for ``transfer``; for
    ``profile``, the edit and ``profile_of``, the ticket id of the profile the clerk edited (``profile.ticket``);
    for ``rate``, the citizen's ``rating`` (the ticket is the open rating window's)."""

    action: CounterAction
    ticket: str | None = None
    service: str | None = None
    profile: ProfileEdit | None = None
    profile_of: str | None = None
    rating: RatingLevel | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """One line for the clerk: ``ok`` after an accepted command, ``error`` for a refusal, ``info`` otherwise."""

    level: Literal["info", "ok", "error"]
    text: str


@dataclass(frozen=True, slots=True)
class Feedback:
    """The outcome of a command, for front ends that signal it (the keypad's buzzer, the rating buttons' lamps);
    ``action`` is the command's (``None``: no command's, e.g. the session taken over)."""

    ok: bool
    notice: Notice
    action: CounterAction | None = None


@dataclass(frozen=True, slots=True)
class RatingWindow:
    """The citizen may rate the visit just served: ticket ``ticket_id`` (number ``number``), until ``closes_s``
    (on the core's monotonic clock)."""

    ticket_id: str
    number: str
    closes_s: float


@dataclass(frozen=True, slots=True)
class CounterView:
    """Everything a front end shows. ``status`` is ``None`` until the controller told us."""

    counter: str
    name: str
    status: CounterStatus | None
    ticket: ServingTicket | None
    waiting: tuple[WaitingCount, ...]
    services: tuple[str, ...]
    hall_services: tuple[BoardService, ...]
    connected: bool
    pending: CounterAction | None
    notice: Notice | None
    taken_over: bool = False
    # The citizen's profile (personal data) and the number of the ticket it came with; see the module docstring.
    profile: CitizenProfile | None = None
    profile_number: str | None = None
    rating: RatingWindow | None = None  # the open rating window, if any (see the module docstring)

    @property
    def rating_offered(self) -> bool:
        """True while a rating press would be sent now: a window is open, the broker reachable and no command
        waiting for its answer. The keypad lights its rating buttons, the console shows the four choices."""
        return self.rating is not None and self.connected and not self.taken_over and self.pending is None

    @property
    def serving(self) -> bool:
        """True while a ticket is being served: the keypad's serving LED."""
        return self.ticket is not None

    @property
    def profile_served(self) -> bool:
        """True while the counter still serves the ticket the profile came with (False: served, registering)."""
        return self.profile is not None and self.ticket is not None and self.ticket.id == self.profile.ticket


@dataclass(frozen=True, slots=True)
class _InFlight:
    request_id: str
    press: Press
    sent_s: float
    ticket_before: str | None
    serving: str
    rated: RatingWindow | None = None  # for ``rate``: the window (the ticket) it rates


@dataclass(frozen=True, slots=True)
class _GivenUp:
    """A command that timed out; ``answered_s`` is when its late answer came (``None``: not yet)."""

    flight: _InFlight
    answered_s: float | None = None


class CounterCore:
    """One counter's state and its single command in flight. Not thread-safe: one thread drives it."""

    def __init__(self, *, counter: str, debounce_s: float = 0.3, reply_timeout_s: float = 5.0,
                 late_grace_s: float = LATE_GRACE_S, keep_profiles: bool = True,
                 profile_keep_s: float = PROFILE_KEEP_S, rating_wait_s: float | None = None) -> None:
        self._view = CounterView(counter=counter, name=counter, status=None, ticket=None, waiting=(), services=(),
                                 hall_services=(), connected=False, pending=None, notice=None)
        self.debounce_s = debounce_s
        self.reply_timeout_s = reply_timeout_s
        self.late_grace_s = late_grace_s
        self.keep_profiles = keep_profiles
        self.profile_keep_s = profile_keep_s
        self.rating_wait_s = rating_wait_s  # None: this counter offers no rating
        # When the profile's ticket was first seen no longer served (by ``tick``); None while it is served.
        self._profile_left_s: float | None = None
        self._in_flight: _InFlight | None = None
        # Commands given up on, by press (at most one per key: a re-send takes its entry out).
        self._given_up: dict[Press, _GivenUp] = {}
        self._last_press_s: dict[str, float] = {}

    @property
    def view(self) -> CounterView:
        return self._view

    def _set(self, **changes: object) -> None:
        self._view = replace(self._view, **changes)  # type: ignore[arg-type]

    # --- inputs ---------------------------------------------------------------------------------------------

    def press(self, press: Press, *, now_s: float, request_id: str) -> CounterCommand | None:
        """The command to publish for ``press``, or ``None`` if it is dropped (bounce) or refused (see notice)."""
        last = self._last_press_s.get(press.action)
        self._last_press_s[press.action] = now_s
        if last is not None and now_s - last < self.debounce_s:
            return None
        if self._view.taken_over:
            self._set(notice=Notice("error", taken_over_text(self._view.counter)))
            return None
        if not self._view.connected:
            self._set(notice=Notice("error", OFFLINE))
            return None
        if self._in_flight is not None:
            waiting_for = ACTION_NAMES[self._in_flight.press.action]
            self._set(notice=Notice("info", f"Đang chờ trả lời cho lệnh {waiting_for} (waiting for the answer)"))
            return None
        if press.action == "call" and not press.ticket:
            self._set(notice=Notice("error", "Hãy nhập số cần gọi (type the number to call)"))
            return None
        if press.action == "transfer" and not press.service:
            self._set(notice=Notice("error", "Hãy chọn dịch vụ (choose a service)"))
            return None
        if press.action == "profile":
            refusal = self._profile_refusal(press)
            if refusal is not None:
                self._set(notice=Notice("error", refusal))
                return None
        rated = self._view.rating if press.action == "rate" else None
        if press.action == "rate" and (rated is None or press.rating is None):
            self._set(notice=Notice("error", NO_RATING))
            return None
        seen = self._view.ticket
        ticket_before = seen.number if seen is not None else None
        serving = seen.id if seen is not None else CounterCommand.SERVING_NOTHING
        given_up = self._given_up.pop(press, None)
        if given_up is not None and (given_up.answered_s is None or now_s - given_up.answered_s < self.late_grace_s) \
                and given_up.flight.rated == rated:
            # The same command again, as it was: the controller may have done it already.
            request_id, ticket_before = given_up.flight.request_id, given_up.flight.ticket_before
            serving = given_up.flight.serving
        self._in_flight = _InFlight(request_id=request_id, press=press, sent_s=now_s, ticket_before=ticket_before,
                                    serving=serving, rated=rated)
        self._set(pending=press.action, notice=Notice("info", f"{ACTION_NAMES[press.action]}…"))
        if rated is not None:
            # Named by id; no ``serving``: a rating acts on no ticket being served (see the module docstring).
            return CounterCommand(request_id=request_id, action="rate", ticket=rated.ticket_id, rating=press.rating)
        return CounterCommand(request_id=request_id, action=press.action, ticket=press.ticket, service=press.service,
                              serving=serving, profile=press.profile)

    def _profile_refusal(self, press: Press) -> str | None:
        shown = self._view.profile
        if shown is None:
            return NO_PROFILE_SHOWN
        if press.profile_of != shown.ticket:
            return PROFILE_CHANGED
        if press.profile is None or not press.profile.to_obj():
            return "Hãy nhập nội dung cần lưu (type what to save)"
        # The contract's own reader checks the edit here, so that a phone number the controller would refuse is
        # refused at the desk, with the same words, before anything is sent.
        probe = CounterCommand(request_id="check", action="profile", profile=press.profile)
        try:
            CounterCommand.decode(probe.encode())
        except PayloadError as exc:
            return f"{error_label(exc.code)}: {exc.message}"
        return None

    def on_reply(self, reply: CounterReply, *, now_s: float) -> Feedback | None:
        """Take the controller's reply; the feedback of our command (in flight or answered late), else ``None``."""
        changes: dict[str, object] = {}
        if reply.status is not None:
            changes["status"] = reply.status
        # A refusal also reports the counter's ticket; a reply without a status says nothing about it.
        if reply.status is not None or reply.ok:
            changes["ticket"] = reply.ticket
        flight = self._in_flight
        if flight is not None and reply.request_id == flight.request_id:
            self._in_flight = None
            # The clerk now sees the counter as it is: re-sending an older command would only bring back a
            # stale answer, or run it now as if new.
            self._given_up.clear()
            notice = self._outcome(flight, reply, late=False)
            self._set(**changes, pending=None, notice=notice)
            self._settle_profile(reply)
            self._settle_rating(reply, flight, now_s=now_s)
            return Feedback(ok=reply.ok, notice=notice, action=flight.press.action)
        late = next((g for g in self._given_up.values() if g.flight.request_id == reply.request_id), None)
        if late is None or late.answered_s is not None:
            self._set(**changes)  # someone else's command, or a repeat of an answer already shown
            self._settle_profile(reply)
            self._rating_moved_on()
            return None
        if reply.ok:
            self._given_up[late.flight.press] = replace(late, answered_s=now_s)
        else:
            del self._given_up[late.flight.press]
        notice = self._outcome(late.flight, reply, late=True)
        self._set(**changes, notice=notice)
        self._settle_profile(reply)
        self._settle_rating(reply, late.flight, now_s=now_s)
        return Feedback(ok=reply.ok, notice=notice, action=late.flight.press.action)

    def _settle_rating(self, reply: CounterReply, answered: _InFlight, *, now_s: float) -> None:
        """``reply`` answered our command ``answered`` (in time or late): an accepted ``complete`` opens the rating
        window for the ticket it finished; an answered rating of the window's ticket closes it, unless a refusal
        that may pass (``RATING_RETRYABLE``)."""
        window = self._view.rating
        if reply.ok and answered.press.action == "complete" and answered.serving and self.rating_wait_s is not None:
            window = RatingWindow(ticket_id=answered.serving, number=answered.ticket_before or "?",
                                  closes_s=now_s + self.rating_wait_s)
        elif answered.press.action == "rate" and window is not None and answered.rated is not None \
                and answered.rated.ticket_id == window.ticket_id \
                and (reply.ok or reply.error_code not in RATING_RETRYABLE):
            window = None
        # Only our own answers close it: another desk's answer to a rating does not say which ticket it rated.
        if window != self._view.rating:
            self._set(rating=window)
        self._rating_moved_on()

    def _rating_moved_on(self) -> None:
        """Close the rating window once the counter serves a ticket: someone else is at the desk now."""
        if self._view.rating is not None and self._view.ticket is not None:
            self._set(rating=None)

    def _settle_profile(self, reply: CounterReply | None) -> None:
        """Take the reply's profile if it belongs to what the counter shows now; drop the one shown once the
        desk has moved on (another ticket, a no-show or transfer, a paused or closed counter)."""
        view = self._view
        profile, number = view.profile, view.profile_number
        resting = view.status in ("paused", "closed")
        incoming = reply.profile if reply is not None and self.keep_profiles else None
        if incoming is not None and not resting and (view.ticket is None or view.ticket.id == incoming.ticket):
            if view.ticket is not None:
                number = view.ticket.number
            elif profile is None or profile.ticket != incoming.ticket:
                number = None
            profile = incoming
            self._profile_left_s = None  # an edit's answer: the clerk is at it, the time on screen starts again
        if profile is not None and (
            resting
            or (view.ticket is not None and view.ticket.id != profile.ticket)
            or (reply is not None and reply.ok and reply.action in ("no_show", "transfer"))
        ):
            profile = number = None
        if (profile, number) != (view.profile, view.profile_number):
            self._set(profile=profile, profile_number=number)

    @staticmethod
    def _outcome(flight: _InFlight, reply: CounterReply, *, late: bool) -> Notice:
        action = ACTION_NAMES[flight.press.action]
        if reply.error is not None:
            label = error_label(reply.error.code)
            prefix = f"{action}, trả lời muộn (late answer): " if late else ""
            return Notice("error", f"{prefix}{label}: {reply.error.message}")
        prefix = f"{action} đã thực hiện dù trả lời muộn (done after all): " if late else ""
        return Notice("ok", prefix + _success_text(flight, reply.ticket))

    def on_state(self, state: CounterState) -> None:
        """The controller's retained state of this counter (sent on every change and after each reconnect)."""
        if state.counter != self._view.counter:
            return
        self._set(name=state.name, status=state.status, ticket=state.ticket, waiting=state.waiting,
                  services=state.services)
        self._settle_profile(None)
        self._rating_moved_on()

    def on_board(self, board: Board) -> None:
        """The hall board: only its list of services is used (transfer targets and their names)."""
        self._set(hall_services=board.services)

    def on_link(self, *, up: bool, taken_over: bool = False) -> None:
        """The broker link came up or went down; ``taken_over``: for good, another client took our session."""
        self._set(connected=up)
        if taken_over:
            # An answer to a command in flight would go to the other client now: nothing more will settle it here.
            self._in_flight = None
            self._given_up.clear()
            self._set(taken_over=True, pending=None, notice=Notice("error", taken_over_text(self._view.counter)),
                      profile=None, profile_number=None, rating=None)
        elif not up:
            self._set(notice=Notice("error", "Mất kết nối tới máy chủ, đang kết nối lại (broker lost; reconnecting)"))
        elif self._view.notice is not None and self._view.notice.text.startswith("Mất kết nối"):
            self._set(notice=Notice("info", "Đã kết nối lại (connected again)"))

    def tick(self, *, now_s: float) -> Feedback | None:
        """Give up on a command unanswered for ``reply_timeout_s``; its feedback, else ``None``. Also hides a
        profile whose ticket has not been served for ``profile_keep_s``, and closes a rating window after its
        wait (not while a rating waits for its answer: the citizen has pressed in time)."""
        self._expire_profile(now_s)
        flight = self._in_flight
        window = self._view.rating
        if window is not None and now_s >= window.closes_s and (flight is None or flight.press.action != "rate"):
            self._set(rating=None)
        if flight is None or now_s - flight.sent_s < self.reply_timeout_s:
            return None
        self._in_flight = None
        self._given_up[flight.press] = _GivenUp(flight)
        notice = Notice("error", f"{ACTION_NAMES[flight.press.action]}: {NO_ANSWER}")
        self._set(pending=None, notice=notice)
        return Feedback(ok=False, notice=notice, action=flight.press.action)

    def _expire_profile(self, now_s: float) -> None:
        view = self._view
        if view.profile is None or view.profile_served:
            self._profile_left_s = None
            return
        if self._profile_left_s is None:
            self._profile_left_s = now_s
            return
        if now_s - self._profile_left_s >= self.profile_keep_s:
            self._profile_left_s = None
            minutes = round(self.profile_keep_s / 60)
            self._set(profile=None, profile_number=None,
                      notice=Notice("info", f"Đã ẩn hồ sơ công dân sau {minutes} phút (the citizen's profile was "
                                            f"hidden after {minutes} minutes)"))


def _success_text(flight: _InFlight, ticket: ServingTicket | None) -> str:
    number = ticket.number if ticket is not None else None
    before = flight.ticket_before or "?"
    match flight.press.action:
        case "next" | "call":
            return f"Đang mời số {number} (called {number})"
        case "recall":
            return f"Đã gọi lại số {number} (recalled {number})"
        case "complete":
            return f"Đã hoàn thành số {before} (completed {before})"
        case "no_show":
            return f"Số {before} vắng mặt (no-show {before})"
        case "transfer":
            return f"Đã chuyển số {before} sang dịch vụ {flight.press.service} (transferred to {flight.press.service})"
        case "open":
            return "Quầy đã mở (counter open)"
        case "pause":
            return "Quầy tạm dừng (counter paused)"
        case "close":
            return "Quầy đã đóng (counter closed)"
        case "profile" if flight.press.profile is not None:
            return _profile_saved_text(flight.press.profile)
        case "rate" if flight.press.rating is not None and flight.rated is not None:
            vi, en = RATING_WORDS[flight.press.rating]
            return f"Cảm ơn quý khách đã đánh giá số {flight.rated.number}: {vi} (thank you: {en})"
    return ACTION_NAMES[flight.press.action]


_EDIT_WORDS: Final = {"phone": ("số điện thoại", "phone"), "notes": ("ghi chú", "notes"),
                      "hall_card": ("thẻ của trung tâm", "hall card")}


def _profile_saved_text(edit: ProfileEdit) -> str:
    """What a saved edit did, by field name only: the values are on the profile panel, not in a notice."""
    vi, en = [], []
    for name, value in edit.to_obj().items():
        words_vi, words_en = _EDIT_WORDS[name]
        if name == "hall_card":
            vi.append(f"đã xoá {words_vi}" if value == "" else f"đã đăng ký {words_vi}")
            en.append(f"{words_en} removed" if value == "" else f"{words_en} registered")
        else:
            vi.append(f"đã xoá {words_vi}" if value == "" else f"đã lưu {words_vi}")
            en.append(f"{words_en} cleared" if value == "" else f"{words_en} saved")
    return f"Hồ sơ: {', '.join(vi)} ({', '.join(en)})"
