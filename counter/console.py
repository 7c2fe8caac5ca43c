"""The counter console: a curses terminal UI for a clerk at a desk PC (``python -m counter console``).

One key per action (see ``counter.screen``); the screen repaints after every key and every message from the
broker, and at least every ``REFRESH_S``. paho's thread only fills the inbox; this loop owns the core.
Controller refusals are shown on the notice line in plain words; nothing here raises on a refusal. Keys are
read as characters (``get_wch``), so that Vietnamese typed into a profile's notes arrives as letters, not as
the bytes of their UTF-8. The citizen's profile is drawn on the screen and never logged.

A held key must not become a stream of commands: the controller answers in about a millisecond, so "one
command in flight" alone would let each auto-repeat of ``n`` complete the citizen just called and call (and
announce) another. Each action therefore counts once until its key has been quiet for ``DEBOUNCE_S``, and
whatever was typed before a command went out is discarded (``curses.flushinp()``).
"""

from __future__ import annotations

import contextlib
import curses
import logging
import queue
from typing import Any

from counter.config import CounterConfig
from counter.screen import QUIT, ConsoleInput, Line, render
from counter.service import CounterLink
from hallq import systemd
from hallq.mqtt import LinkDown, LinkUp, Message

log = logging.getLogger(__name__)

REFRESH_S = 0.05
# Longer than a terminal's auto-repeat delay (X11's default is 660 ms, the Linux console's 250 ms; repeats then
# follow every 33-40 ms), so a held key counts once; short enough not to hinder a clerk.
DEBOUNCE_S = 0.8
_NAMED_KEYS = {27: "escape", 10: "enter", 13: "enter", curses.KEY_ENTER: "enter", 127: "backspace", 8: "backspace",
               curses.KEY_BACKSPACE: "backspace"}
_NO_KEY = ""  # what a function key without a meaning here (arrows, F1...) or an unnamed control character is


def run_console(config: CounterConfig) -> None:
    """Run the console until the clerk presses ``q`` (or SIGINT/SIGTERM ends the process)."""
    curses.wrapper(lambda screen: _Console(screen, config).loop())


class _Console:
    def __init__(self, screen: Any, config: CounterConfig) -> None:
        self.screen = screen
        self.inbox: queue.Queue[Any] = queue.Queue()
        # The console offers ratings on its keys 1-4 (for halls without rating buttons) unless [rating] wait_s = 0.
        self.counter = CounterLink(config, inbox=self.inbox, debounce_s=DEBOUNCE_S,
                                   rating_wait_s=config.rating.wait_s)
        self.input = ConsoleInput()
        self.styles = self._styles()

    def _styles(self) -> dict[str, int]:
        styles = {"title": curses.A_BOLD | curses.A_REVERSE, "big": curses.A_BOLD, "normal": curses.A_NORMAL,
                  "ok": curses.A_BOLD, "error": curses.A_BOLD, "info": curses.A_NORMAL, "dim": curses.A_DIM,
                  "key": curses.A_NORMAL}
        if curses.has_colors():
            curses.start_color()
            curses.use_default_colors()
            for number, (name, color) in enumerate((("ok", curses.COLOR_GREEN), ("error", curses.COLOR_RED),
                                                     ("info", curses.COLOR_CYAN), ("key", curses.COLOR_YELLOW)), 1):
                curses.init_pair(number, color, -1)
                styles[name] |= curses.color_pair(number)
        return styles

    def loop(self) -> None:
        curses.curs_set(0)
        self.screen.keypad(True)
        self.screen.timeout(int(REFRESH_S * 1000))
        self.counter.start()
        notifier = systemd.ServiceNotifier()
        try:
            while True:
                self._drain()
                self.counter.tick()
                self._draw()
                if self.counter.view.connected:
                    notifier.ready()
                key = self._read_key()
                if key is None:
                    continue
                result = self.input.key(key, self.counter.view)
                if result == QUIT:
                    return
                if result is not None and not isinstance(result, str) and self.counter.send(result):
                    curses.flushinp()  # keys typed ahead were meant for the screen before this command
        finally:
            self.counter.stop()

    def _read_key(self) -> str | None:
        """The next key, named as ``counter.screen`` expects; ``None`` when none came within the refresh."""
        try:
            got: int | str = self.screen.get_wch()
        except curses.error:  # no key within the timeout
            return None
        if got == curses.KEY_RESIZE:
            return None
        code = got if isinstance(got, int) else ord(got) if len(got) == 1 else -1
        if code in _NAMED_KEYS:
            return _NAMED_KEYS[code]
        if isinstance(got, int) or not got.isprintable():
            return _NO_KEY
        return got

    def _drain(self) -> None:
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Message | LinkUp | LinkDown):
                self.counter.handle(item)

    def _draw(self) -> None:
        height, width = self.screen.getmaxyx()
        view = self.counter.view
        lines: list[Line] = render(view, prompt=self.input.prompt(view, width=width), width=width, height=height)
        self.screen.erase()
        for row, line in enumerate(lines[:height]):
            # curses refuses the bottom-right cell of a tiny window; the rest of the screen is still worth drawing
            with contextlib.suppress(curses.error):
                self.screen.addstr(row, 0, line.text, self.styles[line.style])
        self.screen.refresh()
