"""The counter's pure core: a key press becomes a contract command; a reply or state becomes what to show and light.

Theory of operation: the core holds what the counter knows of itself (status, current ticket, waiting counts,
all from the controller's retained ``counter/{id}/state`` and the replies to its commands) and at most one
command in flight. ``press()`` turns a clerk's action into a ``CounterCommand``, or refuses it (returns
``None`` and sets a notice) when the broker is unreachable or an earlier command is still unanswered; a
repeat of the same key within ``debounce_s`` is dropped silently, because mechanical keys bounce and
gpiozero's mock pins do not debounce. ``on_reply()`` settles the command in flight and returns a
``Feedback`` (the keypad beeps on a refusal); ``tick()`` gives up on a command after ``reply_timeout_s``.
Pressing the same key again after such a timeout re-sends the unanswered command with its original request
id, as the contract asks: the controller answers a repeated id with the original outcome, so a clerk who
presses ``next`` twice across a lost reply does not call two citizens.

The core never publishes, sleeps, logs or reads a clock: the caller passes ``now_s`` (a monotonic clock) and
the request id, and the front ends (``keypad``, ``console``) render ``view``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

from hallq.wire import (
    Board,
    BoardService,
    CounterAction,
    CounterCommand,
    CounterReply,
    CounterState,
    CounterStatus,
    ServingTicket,
    WaitingCount,
)

# What a refusal means for the clerk, in Vietnamese with the English in brackets; the controller's own
# message follows it on screen.
ERROR_LABELS: Final[dict[str, str]] = {
    "queue_empty": "Không còn số nào đang chờ (queue empty)",
    "counter_closed": "Quầy đang đóng (counter closed)",
    "counter_busy": "Hãy hoàn thành số hiện tại trước (finish the current ticket first)",
    "not_serving": "Quầy chưa phục vụ số nào (not serving anyone)",
    "unknown_ticket": "Không tìm thấy số này (unknown ticket)",
    "not_allowed": "Quầy không phục vụ dịch vụ này (not allowed at this counter)",
    "unknown_service": "Không có dịch vụ này (unknown service)",
    "unknown_counter": "Quầy chưa được khai báo trong hệ thống (unknown counter: check [counter] id)",
    "storage_unavailable": "Hệ thống tạm thời không lưu được, chưa có gì thay đổi (storage unavailable)",
    "bad_request": "Lệnh không hợp lệ (bad request)",
    "unsupported_version": "Phiên bản không tương thích (unsupported version)",
}
NO_ANSWER = "Không nhận được trả lời từ máy chủ (no answer from the hall controller)"
OFFLINE = "Mất kết nối, chưa gửi lệnh (not connected to the broker; nothing was sent)"

ACTION_NAMES: Final[dict[str, str]] = {
    "next": "Gọi số tiếp (next)", "recall": "Gọi lại (recall)", "complete": "Hoàn thành (complete)",
    "no_show": "Vắng mặt (no-show)", "transfer": "Chuyển dịch vụ (transfer)", "call": "Gọi số (call)",
    "open": "Mở quầy (open)", "pause": "Tạm dừng (pause)", "close": "Đóng quầy (close)",
}


@dataclass(frozen=True, slots=True)
class Press:
    """A clerk's action: ``ticket`` for ``call`` (a number like A015), ``service`` for ``transfer``."""

    action: CounterAction
    ticket: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """One line for the clerk: ``ok`` after an accepted command, ``error`` for a refusal, ``info`` otherwise."""

    level: Literal["info", "ok", "error"]
    text: str


@dataclass(frozen=True, slots=True)
class Feedback:
    """The outcome of a command, for front ends that signal it (the keypad's buzzer)."""

    ok: bool
    notice: Notice


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

    @property
    def serving(self) -> bool:
        """True while a ticket is being served: the keypad's serving LED."""
        return self.ticket is not None


@dataclass(frozen=True, slots=True)
class _InFlight:
    request_id: str
    press: Press
    sent_s: float
    ticket_before: str | None


class CounterCore:
    """One counter's state and its single command in flight. Not thread-safe: one thread drives it."""

    def __init__(self, *, counter: str, debounce_s: float = 0.3, reply_timeout_s: float = 5.0) -> None:
        self._view = CounterView(counter=counter, name=counter, status=None, ticket=None, waiting=(), services=(),
                                 hall_services=(), connected=False, pending=None, notice=None)
        self.debounce_s = debounce_s
        self.reply_timeout_s = reply_timeout_s
        self._in_flight: _InFlight | None = None
        self._unanswered: _InFlight | None = None
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
        if last is not None and now_s - last < self.debounce_s:
            return None
        self._last_press_s[press.action] = now_s
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
        ticket_before = self._view.ticket.number if self._view.ticket is not None else None
        if self._unanswered is not None and self._unanswered.press == press:
            request_id, ticket_before = self._unanswered.request_id, self._unanswered.ticket_before
        self._unanswered = None
        self._in_flight = _InFlight(request_id=request_id, press=press, sent_s=now_s, ticket_before=ticket_before)
        self._set(pending=press.action, notice=Notice("info", f"{ACTION_NAMES[press.action]}…"))
        return CounterCommand(request_id=request_id, action=press.action, ticket=press.ticket, service=press.service)

    def on_reply(self, reply: CounterReply) -> Feedback | None:
        """Take the controller's reply; the feedback of our command in flight, ``None`` for anyone else's."""
        changes: dict[str, object] = {}
        if reply.status is not None:
            changes["status"] = reply.status
        # A refusal also reports the counter's ticket; a reply without a status says nothing about it.
        if reply.status is not None or reply.ok:
            changes["ticket"] = reply.ticket
        flight = self._in_flight
        if self._unanswered is not None and reply.request_id == self._unanswered.request_id:
            self._unanswered = None  # answered late: pressing the key again is a new command
        if flight is None or reply.request_id != flight.request_id:
            self._set(**changes)
            return None
        self._in_flight = None
        if reply.error is not None:
            label = ERROR_LABELS.get(reply.error.code, reply.error.code)
            notice = Notice("error", f"{label}: {reply.error.message}")
        else:
            notice = Notice("ok", _success_text(flight, reply.ticket))
        self._set(**changes, pending=None, notice=notice)
        return Feedback(ok=reply.ok, notice=notice)

    def on_state(self, state: CounterState) -> None:
        """The controller's retained state of this counter (sent on every change and after each reconnect)."""
        if state.counter != self._view.counter:
            return
        self._set(name=state.name, status=state.status, ticket=state.ticket, waiting=state.waiting,
                  services=state.services)

    def on_board(self, board: Board) -> None:
        """The hall board: only its list of services is used (transfer targets and their names)."""
        self._set(hall_services=board.services)

    def on_link(self, *, up: bool) -> None:
        self._set(connected=up)
        if not up:
            self._set(notice=Notice("error", "Mất kết nối tới máy chủ, đang kết nối lại (broker lost; reconnecting)"))
        elif self._view.notice is not None and self._view.notice.text.startswith("Mất kết nối"):
            self._set(notice=Notice("info", "Đã kết nối lại (connected again)"))

    def tick(self, *, now_s: float) -> Feedback | None:
        """Give up on a command unanswered for ``reply_timeout_s``; its feedback, else ``None``."""
        flight = self._in_flight
        if flight is None or now_s - flight.sent_s < self.reply_timeout_s:
            return None
        self._in_flight = None
        self._unanswered = flight
        notice = Notice("error", f"{ACTION_NAMES[flight.press.action]}: {NO_ANSWER}")
        self._set(pending=None, notice=notice)
        return Feedback(ok=False, notice=notice)


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
    return ACTION_NAMES[flight.press.action]
