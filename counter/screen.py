"""The counter console's pure logic: one key per action, two small prompts, and the screen as lines of text.

``ConsoleInput`` turns keys (already named: a character, ``"enter"``, ``"escape"``, ``"backspace"``) into
``Press`` values, with two prompts: ``t`` asks for the service to transfer to (a digit from the list shown),
``g`` asks for a ticket number to call (typed, then Enter). ``render()`` lays the counter's view out as
styled lines that fit ``width``. ``counter.console`` only draws them with curses.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Final, Literal

from counter.core import ACTION_NAMES, CounterView, Press
from hallq.wire import CounterAction

Style = Literal["title", "big", "normal", "ok", "error", "info", "dim", "key"]
QUIT: Final = "quit"

ONE_KEY_ACTIONS: Final[dict[str, CounterAction]] = {
    "n": "next", "r": "recall", "c": "complete", "x": "no_show", "p": "pause", "o": "open", "z": "close",
}
HELP: Final = (
    (("n", "next"), ("r", "recall"), ("c", "complete"), ("x", "no_show")),
    (("t", "transfer"), ("g", "call"), ("p", "pause"), ("o", "open"), ("z", "close")),
)
STATUS_TEXT: Final = {"open": "ĐANG MỞ (open)", "paused": "TẠM DỪNG (paused)", "closed": "ĐÃ ĐÓNG (closed)"}
MAX_NUMBER_LEN: Final = 16


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    style: Style = "normal"


class ConsoleInput:
    """Keys → presses. ``mode`` is ``"keys"`` (one key per action), ``"transfer"`` or ``"number"``."""

    def __init__(self) -> None:
        self.mode: Literal["keys", "transfer", "number"] = "keys"
        self.buffer = ""

    def key(self, key: str, view: CounterView) -> Press | str | None:
        """A press to send, ``QUIT``, or ``None`` (the key only changed the prompt or meant nothing)."""
        if self.mode == "transfer":
            return self._transfer_key(key, view)
        if self.mode == "number":
            return self._number_key(key)
        lowered = key.lower()
        if lowered in ONE_KEY_ACTIONS:
            return Press(ONE_KEY_ACTIONS[lowered])
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

    def prompt(self, view: CounterView) -> str | None:
        if self.mode == "transfer":
            choices = "  ".join(f"[{i}] {sid} {name}" for i, (sid, name) in enumerate(transfer_targets(view), 1))
            return f"Chuyển sang dịch vụ (transfer to): {choices or '(chưa biết dịch vụ nào)'}   [Esc] huỷ (cancel)"
        if self.mode == "number":
            return f"Gọi số (call number): {self.buffer}_   [Enter] gọi (call)   [Esc] huỷ (cancel)"
        return None


def transfer_targets(view: CounterView) -> list[tuple[str, str]]:
    """(service id, name) a ticket can move to: the hall's services except the ticket's own, at most nine."""
    current = view.ticket.service if view.ticket is not None else None
    return [(s.service, s.name_vi) for s in view.hall_services if s.service != current][:9]


def render(view: CounterView, *, prompt: str | None, width: int) -> list[Line]:
    """The console screen, top to bottom; every line cut to ``width`` columns."""
    link = ("× đã ngừng kết nối (stopped: account in use elsewhere)" if view.taken_over
            else "● đã kết nối (connected)" if view.connected else "○ mất kết nối (offline)")
    title = f"QUẦY {view.counter} · {view.name}"
    lines = [Line(_spread(title, link, width), "title"), Line("")]
    status = STATUS_TEXT.get(view.status or "", "chưa rõ (unknown)")
    lines.append(Line(f"Trạng thái (status): {status}", "normal"))
    lines.append(Line(""))
    if view.ticket is None:
        lines.append(Line("Đang phục vụ (serving): —", "big"))
    else:
        t = view.ticket
        recalls = f" · gọi lại {t.recalls} lần (recalled {t.recalls}×)" if t.recalls else ""
        priority = " · ƯU TIÊN (priority)" if t.priority else ""
        lines.append(Line(f"Đang phục vụ (serving): {t.number}", "big"))
        lines.append(Line(f"  dịch vụ {t.service} · gọi lúc {t.called_at:%H:%M:%S}{recalls}{priority}", "dim"))
    lines.append(Line(""))
    names = {s.service: s.name_vi for s in view.hall_services}
    lines.append(Line("Đang chờ (waiting):"))
    if not view.waiting:
        lines.append(Line("  —", "dim"))
    for w in view.waiting:
        extra = f" (+{w.priority} ưu tiên/priority)" if w.priority else ""
        label = f"{w.service} {names.get(w.service, '')}".strip()
        lines.append(Line(f"  {label}: {w.regular + w.priority}{extra}"))
    lines.append(Line(""))
    for row in HELP:
        lines.append(Line("   ".join(f"[{k}] {ACTION_NAMES[a]}" for k, a in row), "key"))
    lines.append(Line("[q] Thoát (quit)", "key"))
    lines.append(Line(""))
    if view.notice is not None:
        # Wrapped, not cut: a refusal's label, the controller's reason and what to do all matter to the clerk.
        wrapped = textwrap.wrap(view.notice.text, max(1, width - 1)) or [""]
        lines.extend(Line(part, view.notice.level) for part in wrapped)
    else:
        lines.append(Line(""))
    if prompt is not None:
        lines.append(Line(prompt, "info"))
    return [Line(line.text[: max(0, width - 1)], line.style) for line in lines]


def _spread(left: str, right: str, width: int) -> str:
    gap = width - 1 - len(left) - len(right)
    return f"{left}{' ' * max(2, gap)}{right}"
