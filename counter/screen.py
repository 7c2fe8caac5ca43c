"""The counter console's pure logic: one key per action, small prompts, and the screen as lines of text.

``ConsoleInput`` turns keys (already named: a character, ``"enter"``, ``"escape"``, ``"backspace"``) into
``Press`` values, with prompts: ``t`` asks for the service to transfer to (a digit from the list shown),
``g`` asks for a ticket number to call (typed, then Enter); while a citizen's profile is shown, ``d`` edits its
phone number, ``m`` its notes and ``h`` registers a hall card's code (typed or scanned, then Enter). The digits
``1``-``4`` are the citizen's rating of the visit just served, best first (for halls without rating buttons):
the screen offers them, in Vietnamese, while the core's rating window is open; outside it the core refuses
them and says so. No other key of this screen is a digit, and the prompts that take digits (a number to call,
a service to transfer to, a phone number) take them before this. ``render()``
lays the counter's view out as styled lines that fit ``width`` (and ``height``, when given: a profile panel
gives up its less needed lines first, and the notice and the prompt are always on screen). ``counter.console``
only draws them with curses; ``screen_text()`` gives the same screen as plain text.

The profile panel is personal data for the clerk at this counter only: it is drawn, never logged.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from counter.core import ACTION_NAMES, RATING_WORDS, CounterView, Press
from hallq.cards import reference_text
from hallq.wire import (
    MAX_HALL_CARD_LEN,
    MAX_NOTES_LEN,
    MAX_PHONE_LEN,
    RATING_LEVELS,
    CitizenProfile,
    CounterAction,
    ProfileEdit,
    RatingLevel,
)

Style = Literal["title", "big", "normal", "ok", "error", "info", "dim", "key"]
QUIT: Final = "quit"

ONE_KEY_ACTIONS: Final[dict[str, CounterAction]] = {
    "n": "next", "r": "recall", "c": "complete", "x": "no_show", "p": "pause", "o": "open", "z": "close",
}
HELP: Final = (
    (("n", "next"), ("r", "recall"), ("c", "complete"), ("x", "no_show")),
    (("t", "transfer"), ("g", "call"), ("p", "pause"), ("o", "open"), ("z", "close")),
)
# 1-4: the rating levels, best first, as the rating buttons are ordered.
RATING_KEYS: Final[dict[str, RatingLevel]] = {str(number): level for number, level in enumerate(RATING_LEVELS, 1)}
STATUS_TEXT: Final = {"open": "ĐANG MỞ (open)", "paused": "TẠM DỪNG (paused)", "closed": "ĐÃ ĐÓNG (closed)"}
MAX_NUMBER_LEN: Final = 16

ProfileField = Literal["phone", "notes", "hall_card"]
# d: điện thoại (phone); m: memo (ghi chú); h: hall card. None of them is a one-key action.
PROFILE_KEYS: Final[dict[str, ProfileField]] = {"d": "phone", "m": "notes", "h": "hall_card"}
PROFILE_HELP: Final = (("d", "Điện thoại (phone)"), ("m", "Ghi chú (notes)"), ("h", "Thẻ trung tâm (hall card)"))
_PROMPTS: Final[dict[ProfileField, str]] = {
    "phone": "Số điện thoại (phone)  [Enter] lưu (save)  [Esc] huỷ (cancel)",
    "notes": "Ghi chú (notes)  [Enter] lưu (save)  [Esc] huỷ (cancel)",
    "hall_card": "Mã thẻ trung tâm (hall card)  [Enter] đăng ký (register)  [Esc] huỷ (cancel)",
}
_MAX_LEN: Final[dict[ProfileField, int]] = {"phone": MAX_PHONE_LEN, "notes": MAX_NOTES_LEN,
                                            "hall_card": MAX_HALL_CARD_LEN}
FIRST_VISIT: Final = "Lần đầu đến — hãy hoàn thiện hồ sơ (first visit: complete the profile)"
OUTCOME_TEXT: Final = {"served": "đã phục vụ", "no_show": "vắng mặt", "voided": "đã hủy", "expired": "hết hạn",
                       "transferred": "đã chuyển", "waiting": "đang chờ"}


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    style: Style = "normal"


class ConsoleInput:
    """Keys → presses. ``mode`` is ``"keys"`` (one key per action), ``"transfer"``, ``"number"``, or the profile
    field being typed (``"phone"``, ``"notes"``, ``"hall_card"``)."""

    def __init__(self) -> None:
        self.mode: Literal["keys", "transfer", "number", "phone", "notes", "hall_card"] = "keys"
        self.buffer = ""
        self._profile_of = ""   # the ticket id of the profile a profile prompt was opened for
        self._initial = ""      # the field's value when its prompt opened: Enter on it unchanged sends nothing

    def key(self, key: str, view: CounterView) -> Press | str | None:
        """A press to send, ``QUIT``, or ``None`` (the key only changed the prompt or meant nothing)."""
        if self.mode == "transfer":
            return self._transfer_key(key, view)
        if self.mode == "number":
            return self._number_key(key)
        if self.mode != "keys":
            return self._profile_key(key, self.mode)
        lowered = key.lower()
        if lowered in ONE_KEY_ACTIONS:
            return Press(ONE_KEY_ACTIONS[lowered])
        if key in RATING_KEYS:
            return Press("rate", rating=RATING_KEYS[key])
        if lowered in PROFILE_KEYS:
            return self._open_profile_prompt(PROFILE_KEYS[lowered], view.profile)
        if lowered == "t":
            self.mode = "transfer"
        elif lowered == "g":
            self.mode, self.buffer = "number", ""
        elif lowered == "q":
            return QUIT
        return None

    def _transfer_key(self, key: str, view: CounterView) -> Press | None:
        if key == "escape":
            self.mode = "keys"
            return None
        targets = transfer_targets(view)
        if key.isdigit() and 1 <= int(key) <= len(targets):
            self.mode = "keys"
            return Press("transfer", service=targets[int(key) - 1][0])
        return None

    def _number_key(self, key: str) -> Press | None:
        if key == "escape":
            self.mode = "keys"
            return None
        if key == "enter":
            number, self.buffer, self.mode = self.buffer, "", "keys"
            return Press("call", ticket=number) if number else None
        if key == "backspace":
            self.buffer = self.buffer[:-1]
        elif len(key) == 1 and key.isalnum() and key.isascii() and len(self.buffer) < MAX_NUMBER_LEN:
            self.buffer += key.upper()
        return None

    def _open_profile_prompt(self, field: ProfileField, profile: CitizenProfile | None) -> Press | None:
        if profile is None:
            return Press("profile")  # nothing to edit: the core refuses it and says why on the notice line
        self._initial = {"phone": profile.phone, "notes": profile.notes}.get(field) or ""
        self.mode, self.buffer, self._profile_of = field, self._initial, profile.ticket
        return None

    def _profile_key(self, key: str, field: ProfileField) -> Press | None:
        if key == "escape":
            self.mode, self.buffer = "keys", ""
            return None
        if key == "enter":
            value, initial = self.buffer.strip(), self._initial.strip()
            self.mode, self.buffer = "keys", ""
            if value == initial:
                return None  # nothing changed (an empty hall card code registers nothing)
            edit = (ProfileEdit(phone=value) if field == "phone" else ProfileEdit(notes=value) if field == "notes"
                    else ProfileEdit(hall_card=value))
            return Press("profile", profile=edit, profile_of=self._profile_of)
        if key == "backspace":
            self.buffer = self.buffer[:-1]
        elif len(key) == 1 and len(self.buffer) < _MAX_LEN[field] and _accepts(field, key, self.buffer):
            self.buffer += key.upper() if field == "hall_card" else key
        return None

    def prompt(self, view: CounterView, *, width: int = 80) -> str | None:
        """The prompt line(s) for the current mode (a profile field's prompt is two lines), else ``None``."""
        if self.mode in _PROMPTS:
            field: ProfileField = self.mode
            room = max(1, width - 4)  # "> ", the cursor, and the column curses keeps free
            shown = self.buffer if len(self.buffer) <= room else "…" + self.buffer[-(room - 1):]
            return f"{_PROMPTS[field]}\n> {shown}_"
        if self.mode == "transfer":
            choices = "  ".join(f"[{i}] {sid} {name}" for i, (sid, name) in enumerate(transfer_targets(view), 1))
            return f"Chuyển sang dịch vụ (transfer to): {choices or '(chưa biết dịch vụ nào)'}   [Esc] huỷ (cancel)"
        if self.mode == "number":
            return f"Gọi số (call number): {self.buffer}_   [Enter] gọi (call)   [Esc] huỷ (cancel)"
        return None


def _accepts(field: ProfileField, key: str, buffer: str) -> bool:
    """Whether ``key`` may be typed into ``field``: what the contract accepts there, and no control character."""
    if field == "phone":
        return key in "0123456789 .-" or (key == "+" and not buffer)
    if field == "hall_card":
        return key.isascii() and (key.isalnum() or key in "-_")
    return key.isprintable()


def transfer_targets(view: CounterView) -> list[tuple[str, str]]:
    """(service id, name) a ticket can move to: the hall's services except the ticket's own, at most nine."""
    current = view.ticket.service if view.ticket is not None else None
    return [(s.service, s.name_vi) for s in view.hall_services if s.service != current][:9]


def render(view: CounterView, *, prompt: str | None, width: int, height: int | None = None) -> list[Line]:
    """The console screen, top to bottom; every line cut to ``width`` columns and, given ``height``, at most
    ``height`` lines (blank separators go first, then the profile panel's less needed lines; the notice and
    the prompt stay)."""
    cut = max(1, width - 1)
    link = ("× đã ngừng kết nối (stopped: account in use elsewhere)" if view.taken_over
            else "● đã kết nối (connected)" if view.connected else "○ mất kết nối (offline)")
    title = [Line(_spread(f"QUẦY {view.counter} · {view.name}", link, width), "title")]
    status = [Line(f"Trạng thái (status): {STATUS_TEXT.get(view.status or '', 'chưa rõ (unknown)')}", "normal")]
    serving = _serving_lines(view)
    rating = _rating_lines(view, cut)
    names = {s.service: s.name_vi for s in view.hall_services}
    keys = [Line(text, "key") for text in _flow([f"[{k}] {ACTION_NAMES[a]}" for row in HELP for k, a in row]
                                                + ["[q] Thoát (quit)"], cut, sep="   ")]
    foot: list[Line] = []
    if view.notice is not None:
        # Wrapped, not cut: a refusal's label, the controller's reason and what to do all matter to the clerk.
        foot.extend(Line(part, view.notice.level) for part in textwrap.wrap(view.notice.text, cut) or [""])
    else:
        foot.append(Line(""))
    if prompt is not None:
        foot.extend(Line(part, "info") for part in prompt.split("\n"))
    if view.profile is None:
        blocks = [title, status, serving, *([rating] if rating else []), _waiting_lines(view, names), keys, foot]
    else:
        waiting = [Line(text) for text in _flow(
            [f"{w.service} {names.get(w.service, '')}".strip() + f" {w.regular + w.priority}"
             + (f" (+{w.priority} ưu tiên)" if w.priority else "") for w in view.waiting] or ["—"],
            cut, sep=" · ", head="Đang chờ (waiting): ")[:2]]
        others = [title, status + serving, rating, waiting, keys, foot]
        budget = None if height is None else height - sum(len(block) for block in others)
        blocks = [title, status + serving, *([rating] if rating else []), _profile_panel(view, names, cut, budget),
                  waiting, keys, foot]
    lines = _stack(blocks, height)
    return [Line(line.text[:cut], line.style) for line in lines]


def screen_text(view: CounterView, *, prompt: str | None = None, width: int = 80, height: int = 24) -> list[str]:
    """The console's screen as plain text lines, as a ``width`` × ``height`` terminal shows it."""
    return [line.text for line in render(view, prompt=prompt, width=width, height=height)]


def _serving_lines(view: CounterView) -> list[Line]:
    if view.ticket is None:
        return [Line("Đang phục vụ (serving): —", "big")]
    t = view.ticket
    recalls = f" · gọi lại {t.recalls} lần (recalled {t.recalls}×)" if t.recalls else ""
    priority = " · ƯU TIÊN (priority)" if t.priority else ""
    return [Line(f"Đang phục vụ (serving): {t.number}", "big"),
            Line(f"  dịch vụ {t.service} · gọi lúc {t.called_at:%H:%M:%S}{recalls}{priority}", "dim")]


def _rating_lines(view: CounterView, cut: int) -> list[Line]:
    """The four choices of the open rating window, in the citizen's words (none without a window); dimmed while
    a press would not be sent (the broker unreachable, or an answer awaited)."""
    if view.rating is None:
        return []
    choices = [f"[{key}] {RATING_WORDS[level][0]}" for key, level in RATING_KEYS.items()]
    style: Style = "key" if view.rating_offered else "dim"
    return [Line(f"Mời quý khách đánh giá lượt phục vụ số {view.rating.number} (rate this visit):",
                 "ok" if view.rating_offered else "dim"),
            *(Line(text, style) for text in _flow(choices, cut, sep="   ", head="  "))]


def _waiting_lines(view: CounterView, names: dict[str, str]) -> list[Line]:
    lines = [Line("Đang chờ (waiting):")]
    if not view.waiting:
        lines.append(Line("  —", "dim"))
    for w in view.waiting:
        extra = f" (+{w.priority} ưu tiên/priority)" if w.priority else ""
        label = f"{w.service} {names.get(w.service, '')}".strip()
        lines.append(Line(f"  {label}: {w.regular + w.priority}{extra}"))
    return lines


def _stack(blocks: Sequence[list[Line]], height: int | None) -> list[Line]:
    """The blocks one under another with a blank line between; given ``height``, blank lines go first (from the
    top), then lines above the last block (the notice and the prompt) until it fits."""
    total = sum(len(block) for block in blocks)
    gaps = len(blocks) - 1
    if height is not None:
        gaps = max(0, min(gaps, height - total))
    lines: list[Line] = []
    for index, block in enumerate(blocks):
        if index > 0 and index > len(blocks) - 1 - gaps:
            lines.append(Line(""))
        lines.extend(block)
    if height is not None and len(lines) > height:
        foot = blocks[-1][-height:] if height > 0 else []
        lines = lines[: height - len(foot)] + foot
    return lines


def _profile_panel(view: CounterView, names: dict[str, str], cut: int, budget: int | None) -> list[Line]:
    """The citizen's profile: who, the card's facts (the ID number whole), contact, notes, the earlier visits or
    the first-visit call to complete the profile, and the keys. Each part's first line is always shown; given a
    ``budget`` of lines, further lines (a long name's, the address's, the notes', more visits) only while it
    lasts, and a part cut short ends in "…"."""
    profile = view.profile
    assert profile is not None
    number = f" · số {view.profile_number}" if view.profile_number else ""
    who = "Công dân (citizen)" if view.profile_served else "Công dân vừa phục vụ (just served)"
    name = _clean(profile.name) or f"hồ sơ {reference_text(profile.ref)}"
    facts = [f"CCCD {profile.id_number}" if profile.id_number else "", profile.sex or "",
             f"{profile.age} tuổi (age)" if profile.age is not None else "",
             f"sinh (born) {_day(profile.birth_date)}" if profile.birth_date else ""]
    contact = [f"SĐT (phone): {_clean(profile.phone) or '—'}",
               "Thẻ trung tâm: đã đăng ký (hall card registered)" if profile.hall_card
               else "Chưa có thẻ trung tâm (no hall card)"]
    visits = [f"{_day(v.day)} {names.get(v.service) or v.service}: {OUTCOME_TEXT.get(v.outcome, _clean(v.outcome))}"
              for v in profile.visits]
    parts: list[tuple[str, list[str], Style]] = [
        ("name", textwrap.wrap(f"{who}{number}: {name}", cut, subsequent_indent="  "), "big"),
        ("facts", _flow([f for f in facts if f], cut, sep=" · ", head="  "), "normal"),
        ("address", textwrap.wrap(f"  Địa chỉ (address): {_clean(profile.address)}", cut, subsequent_indent="    ")
         if profile.address else [], "normal"),
        ("contact", _flow(contact, cut, sep=" · ", head="  "), "normal"),
        ("notes", textwrap.wrap(f"  Ghi chú (notes): {_clean(profile.notes)}", cut, subsequent_indent="    ")
         if profile.notes else [], "normal"),
        ("first", [f"  {FIRST_VISIT}"] if profile.first_visit else [], "ok"),
        ("visits", _flow(visits, cut, sep=" · ", head="  Lần trước (earlier visits): ")
         if visits else ([] if profile.first_visit else ["  Lần trước (earlier visits): —"]), "normal"),
        ("keys", _flow([f"[{k}] {words}" for k, words in PROFILE_HELP], cut, sep="   ", head="  "), "key"),
    ]
    caps = {"name": 2, "address": 3, "notes": 2, "visits": 2}
    room = {key: min(len(lines), caps.get(key, len(lines))) for key, lines, _ in parts}
    if budget is None:
        shown = room
    else:
        shown = {key: min(1, lines) for key, lines in room.items()}
        left = budget - sum(shown.values())
        # What a tight screen gives up first: the end of this list (more visits, more notes, the address).
        for key in ("contact", "facts", "keys", "name", "address", "notes", "address", "visits", "notes"):
            if left > 0 and shown[key] < room[key]:
                shown[key] += 1
                left -= 1
    panel: list[Line] = []
    for key, lines, style in parts:
        kept = lines[: shown[key]]
        if len(kept) < len(lines) and kept:
            kept[-1] = kept[-1][: cut - 1].rstrip() + "…"
        panel.extend(Line(text, style) for text in kept)
    return panel


def _flow(items: Sequence[str], cut: int, *, sep: str, head: str = "") -> list[str]:
    """``items`` joined by ``sep`` into lines of at most ``cut`` columns, breaking only between items (an item
    longer than a line is cut by ``render``); continuation lines are indented like ``head``."""
    if not items:
        return []
    indent = " " * min(len(head), 4) if head else ""
    lines: list[str] = []
    current = head
    for item in items:
        fresh = current in (head, indent)
        candidate = current + item if fresh else current + sep + item
        if len(candidate) <= cut or fresh:
            current = candidate
        else:
            lines.append(current)
            current = indent + item
    lines.append(current)
    return lines


def _clean(text: str | None) -> str:
    """Text from the wire as one line of a screen: NFC (one column per Vietnamese letter), no control characters."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    return " ".join("".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text).split())


def _day(day: str) -> str:
    """``YYYY-MM-DD`` as the Vietnamese write it, ``DD/MM/YYYY``; anything else as it came."""
    parts = day.split("-")
    if len(parts) == 3 and all(part.isdigit() for part in parts) and len(parts[0]) == 4:
        return f"{parts[2]}/{parts[1]}/{parts[0]}"
    return _clean(day)


def _spread(left: str, right: str, width: int) -> str:
    gap = width - 1 - len(left) - len(right)
    return f"{left}{' ' * max(2, gap)}{right}"
