"""The display's pure core: the retained board and the live calls become the screen; calls become announcements.

Theory of operation
-------------------
The controller sends every call twice, in effect: once on ``calls`` (QoS 1, not retained, with a hall-wide
``seq``) and again inside the retained ``board`` (the last ten calls, every counter's number, the waiting
counts). The board alone can paint the whole screen, so it is what a display shows right after a (re)start;
a live call updates the screen at once (without waiting for the board that follows it) and is the only
thing that flashes and is announced.

``seq`` tells new from old: a call whose seq is not above the highest seen on ``calls`` is a duplicate
(QoS 1 may deliver twice) and is ignored; a jump of more than one means calls were missed while the link
was down (they are on the board, but are not announced late). The first board sets the starting point, so
the calls it lists are never announced. A call older than ``max_call_age_s`` is shown but not announced.
A recall is a new call with a new seq, so it flashes and is announced again.

The hall's manager may set a notice ("Hệ thống tạm dừng 10 phút"): retained on ``notice``, and cleared by an
empty retained message. The screen shows it until it is cleared; it is never announced (the voice is for
calls). A clear that happened while the link was down leaves nothing retained to tell us, so a link coming up
forgets the notice: the broker sends a retained one again right after the subscription is acknowledged.

What is said, and when, is decided by ``display.announcer.Announcer``. Nothing here reads a clock or does
I/O; callers pass ``now`` (an aware datetime).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from display.speech import Language
from hallq.wire import Board, BoardCounter, BoardService, Call, Notice, iso

# Headings in both languages; the page shows the first configured language large and the second small.
LABELS: Final[dict[str, dict[Language, str]]] = {
    "now_serving": {"vi": "Mời số", "en": "Now serving"},
    "to_counter": {"vi": "Đến quầy", "en": "Please go to"},
    "counter": {"vi": "Quầy", "en": "Counter"},
    "recent": {"vi": "Các số vừa gọi", "en": "Recent calls"},
    "counters": {"vi": "Các quầy", "en": "Counters"},
    "waiting": {"vi": "Đang chờ", "en": "Waiting"},
    "priority": {"vi": "Ưu tiên", "en": "Priority"},
    "recall": {"vi": "Gọi lại", "en": "Recall"},
    "closed": {"vi": "Đóng", "en": "Closed"},
    "paused": {"vi": "Tạm dừng", "en": "Paused"},
    "serving": {"vi": "Đang phục vụ", "en": "Now serving"},
    "idle": {"vi": "Chưa gọi số", "en": "No ticket yet"},
    "offline": {"vi": "Mất kết nối — đang kết nối lại", "en": "Connection lost — reconnecting"},
    "waiting_board": {"vi": "Đang chờ dữ liệu của trung tâm", "en": "Waiting for the hall's data"},
}


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one live call meant: ``kind``, whether to flash and announce it, and how many calls were missed."""

    kind: Literal["new", "duplicate"]
    flash: bool
    announce: bool
    missed: int = 0


class DisplayCore:
    """The screen's state. ``screen()`` is the JSON-ready model the page renders."""

    def __init__(self, *, languages: tuple[Language, ...], recent_count: int = 6, time_zone: str,
                 max_call_age_s: float = 60.0, announce: bool = True) -> None:
        self.languages = languages
        self.recent_count = recent_count
        self.time_zone = time_zone
        self.max_call_age_s = max_call_age_s
        self.announce = announce
        self.board: Board | None = None
        self.calls: list[Call] = []  # newest first, at most ten, merged from the board and live calls
        self.counters: dict[str, BoardCounter] = {}
        self.last_call_seq: int | None = None
        self.connected = False
        self.notice: Notice | None = None

    # --- inputs ---------------------------------------------------------------------------------------------

    def on_board(self, board: Board) -> None:
        """The retained board: authoritative, except for live calls newer than it."""
        self.board = board
        if self.last_call_seq is None or board.seq < self.last_call_seq:
            # First board, or the hall's call sequence went back (a new ledger): follow the board from here,
            # or every later call would look like a duplicate until the display restarts.
            self.last_call_seq = board.seq
        newer = [c for c in self.calls if c.seq > board.seq]
        self.calls = _merge(newer, list(board.calls))
        self.counters = {c.counter: c for c in board.counters}
        for call in reversed(newer):
            self._seat(call)

    def on_call(self, call: Call, *, now: datetime) -> CallOutcome:
        """A live call from ``calls``: new (flash, perhaps announce) or a duplicate (ignored)."""
        last = self.last_call_seq
        if last is not None and call.seq <= last:
            return CallOutcome(kind="duplicate", flash=False, announce=False)
        missed = 0 if last is None else call.seq - last - 1
        self.last_call_seq = call.seq
        self.calls = _merge([call], self.calls)
        self._seat(call)
        # "Too old to announce" only for a call the board already lists (it arrived late, after the board that
        # followed it), judged on the controller's own clock (the board's time), never against this Pi's: after a
        # power cut, Pis without a real-time clock can disagree by an hour. A call newer than the board is fresh
        # by its seq, whatever the times say: a clock stepped back between two calls must not silence one.
        board = self.board
        fresh = board is None or call.seq > board.seq or \
            (board.at - call.at).total_seconds() <= self.max_call_age_s
        return CallOutcome(kind="new", flash=True, announce=self.announce and fresh, missed=missed)

    def on_link(self, *, up: bool) -> None:
        self.connected = up
        if up:
            self.notice = None  # a retained notice, if there still is one, follows the subscription's ack

    def on_notice(self, notice: Notice | None) -> None:
        """The retained notice, or ``None`` once it is cleared (see ``read_notice``)."""
        self.notice = notice

    def _seat(self, call: Call) -> None:
        current = self.counters.get(call.counter)
        status = current.status if current is not None else "open"
        self.counters[call.counter] = BoardCounter(counter=call.counter, name=call.counter_name, status=status,
                                                   number=call.number, service=call.service)

    # --- output ---------------------------------------------------------------------------------------------

    def screen(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready values (see ``display/static/display.js``)."""
        primary = self.languages[0]
        secondary = self.languages[1] if len(self.languages) > 1 else None
        board = self.board
        calls = [_call_obj(c) for c in self.calls]
        return {
            "ready": board is not None,
            "connected": self.connected,
            "seq": self.calls[0].seq if self.calls else (board.seq if board else 0),
            "time_zone": self.time_zone,
            "hall": {"primary": _hall_name(board, primary), "secondary": _hall_name(board, secondary)},
            "labels": {key: {"primary": text[primary], "secondary": text[secondary] if secondary else None}
                       for key, text in LABELS.items()},
            "newest": calls[0] if calls else None,
            "recent": calls[1 : self.recent_count],
            "counters": [_counter_obj(c) for c in self.counters.values()],
            "services": [_service_obj(s, primary, secondary) for s in (board.services if board else ())],
            "notice": _notice_obj(self.notice, self.languages),
        }


def read_notice(payload: bytes) -> Notice | None:
    """A message on ``notice``: the notice, or ``None`` for the empty message that clears it. Raises
    ``PayloadError`` for anything else; the caller keeps what it showed."""
    return Notice.decode(payload) if payload else None


def _merge(first: list[Call], second: list[Call]) -> list[Call]:
    by_seq = {c.seq: c for c in second}
    by_seq.update({c.seq: c for c in first})
    return sorted(by_seq.values(), key=lambda c: c.seq, reverse=True)[:10]


def _hall_name(board: Board | None, language: Language | None) -> str | None:
    if board is None or language is None:
        return None
    return board.hall_name_vi if language == "vi" else board.hall_name_en


def _call_obj(call: Call) -> dict[str, Any]:
    return {"seq": call.seq, "number": call.number, "counter": call.counter, "counter_name": call.counter_name,
            "service": call.service, "priority": call.priority, "recall": call.recall, "at": iso(call.at)}


def _notice_obj(notice: Notice | None, languages: tuple[Language, ...]) -> dict[str, Any] | None:
    """The notice in the screen's languages, the first large and the second below it. A notice has no English
    text if the manager gave none: then the Vietnamese stands alone, whatever the order of the languages."""
    if notice is None:
        return None
    texts = {"vi": notice.text_vi, "en": notice.text_en}
    shown = [texts[language] for language in languages if texts[language]] or [notice.text_vi]
    return {"primary": shown[0], "secondary": shown[1] if len(shown) > 1 else None, "at": iso(notice.at)}


def _counter_obj(counter: BoardCounter) -> dict[str, Any]:
    return {"counter": counter.counter, "name": counter.name, "status": counter.status, "number": counter.number}


def _service_obj(service: BoardService, primary: Language, secondary: Language | None) -> dict[str, Any]:
    names = {"vi": service.name_vi, "en": service.name_en}
    return {"service": service.service, "primary": names[primary],
            "secondary": names[secondary] if secondary else None,
            "regular": service.regular, "priority": service.priority, "total": service.regular + service.priority}
