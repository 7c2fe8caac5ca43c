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

``AnnouncementQueue`` plays announcements one after the other: one starts only when the previous one's
measured duration (plus ``gap_s``) has passed, or when the player reported it finished. Nothing here reads
a clock or does I/O; callers pass ``now`` (an aware datetime) and ``now_s`` (a monotonic clock).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from display.speech import Language
from hallq.wire import Board, BoardCounter, BoardService, Call, iso

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
        # "Too old to announce" is judged on the controller's own clock (the board's time), never against this
        # Pi's: after a power cut, Pis without a real-time clock can disagree by an hour, which would silence
        # every announcement for the day.
        reference = self.board.at if self.board is not None else call.at
        fresh = (reference - call.at).total_seconds() <= self.max_call_age_s
        return CallOutcome(kind="new", flash=True, announce=self.announce and fresh, missed=missed)

    def on_link(self, *, up: bool) -> None:
        self.connected = up

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
        }


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


def _counter_obj(counter: BoardCounter) -> dict[str, Any]:
    return {"counter": counter.counter, "name": counter.name, "status": counter.status, "number": counter.number}


def _service_obj(service: BoardService, primary: Language, secondary: Language | None) -> dict[str, Any]:
    names = {"vi": service.name_vi, "en": service.name_en}
    return {"service": service.service, "primary": names[primary],
            "secondary": names[secondary] if secondary else None,
            "regular": service.regular, "priority": service.priority, "total": service.regular + service.priority}


# --- announcements -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Announcement:
    """One announcement ready to play: its call, the sentences and the audio's measured length."""

    seq: int
    number: str
    counter: str
    recall: bool
    texts: tuple[str, ...]
    duration_s: float
    audio_id: str


@dataclass(slots=True)
class AnnouncementQueue:
    """Plays announcements strictly one after another, in arrival order.

    ``due(now_s)`` returns the next announcement to start, or ``None`` while one is still playing (its
    duration plus ``gap_s`` has not passed) or nothing waits. ``finished(now_s)`` ends the current one
    early or late when a player reports the real end. At most ``max_waiting`` wait; beyond that the oldest
    is dropped (a call announced minutes late helps nobody).
    """

    gap_s: float = 0.8
    max_waiting: int = 12
    waiting: deque[Announcement] = field(default_factory=deque)
    free_at_s: float = float("-inf")
    dropped: int = 0

    def push(self, item: Announcement) -> None:
        self.waiting.append(item)
        while len(self.waiting) > self.max_waiting:
            self.waiting.popleft()
            self.dropped += 1

    def due(self, now_s: float) -> Announcement | None:
        if now_s < self.free_at_s or not self.waiting:
            return None
        item = self.waiting.popleft()
        self.free_at_s = now_s + item.duration_s + self.gap_s
        return item

    def finished(self, now_s: float) -> None:
        """The player says the current announcement ended at ``now_s``: the next may start after the gap."""
        self.free_at_s = now_s + self.gap_s

    def next_wakeup_s(self, now_s: float) -> float | None:
        """When ``due()`` may next return something (``None``: only after a ``push``)."""
        if not self.waiting:
            return None
        return max(now_s, self.free_at_s)
