"""``--simulate``: the keyboard (or another program) presses the kiosk's buttons on gpiozero's mock pins.

When stdin is a terminal, each key press counts at once (no Enter); when it is not (a pipe from the
simulated hall, a test), each line names one button's key. Either way the press goes through the real
path: the key drives the button's mock pin low and high again, gpiozero fires ``when_pressed``, and the
button panel enqueues the press like on a Pi.

Besides the buttons' keys (letters and digits), these simulate the printer: ``!`` or ``paper_out``,
``~`` or ``paper_low``, ``#`` or ``offline``, ``%`` or ``cover_open``, ``=`` or ``paper_ok`` (paper
reloaded, printer fine). ``?`` or ``help`` lists the keys. End of input (Ctrl-D) stops the dispenser.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TextIO

from dispenser.core import ButtonSpec
from dispenser.printer import PrinterStatus
from dispenser.service import SimulatePrinter

log = logging.getLogger(__name__)

PRINTER_KEYS: Final[Mapping[str, PrinterStatus]] = {
    "!": PrinterStatus("paper_out", "simulated paper end"),
    "~": PrinterStatus("paper_low", "simulated paper near end"),
    "#": PrinterStatus("offline", "simulated printer offline"),
    "%": PrinterStatus("offline", "cover_open"),
    "=": PrinterStatus("ok"),
}
PRINTER_WORDS: Final[Mapping[str, str]] = {
    "paper_out": "!", "paper_low": "~", "offline": "#", "cover_open": "%", "paper_ok": "=",
}


def help_text(buttons: tuple[ButtonSpec, ...]) -> str:
    lines = ["Simulated kiosk. Buttons:"]
    for b in buttons:
        lane = f"priority ({b.category})" if b.priority else "regular"
        lines.append(f"  {b.key}  {b.label_vi} — service {b.service}, {lane}")
    lines.append("Printer: ! paper out, ~ paper low, # offline, % cover open, = paper reloaded.  "
                 "? help, Ctrl-D or Ctrl-C to stop.")
    return "\n".join(lines)


class KeyboardFeeder:
    """Reads ``stream`` on a daemon thread and turns keys into mock-pin presses and printer simulations.

    ``press_pin(pin)`` drives a mock pin low then high; ``inbox`` receives ``SimulatePrinter`` items;
    ``on_end`` is called when the input ends.
    """

    def __init__(self, *, stream: TextIO, pins: Mapping[str, int], press_pin: Callable[[int], None],
                 inbox: queue.Queue[Any], on_end: Callable[[], None], help_message: str) -> None:
        self.stream = stream
        self.pins = dict(pins)
        self.press_pin = press_pin
        self.inbox = inbox
        self.on_end = on_end
        self.help_message = help_message
        self.thread = threading.Thread(target=self._run, name="simulate-keys", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def handle(self, token: str) -> bool:
        """Act on one key or line; False if it means nothing."""
        token = token.strip()
        token = PRINTER_WORDS.get(token, token)
        if token in self.pins:
            self.press_pin(self.pins[token])
        elif token in PRINTER_KEYS:
            self.inbox.put(SimulatePrinter(PRINTER_KEYS[token]))
        elif token in ("?", "help"):
            sys.stderr.write(self.help_message + "\n")
        elif token:
            log.warning("unknown key %r (? lists the keys)", token)
            return False
        return True

    def _run(self) -> None:
        try:
            for token in self._tokens():
                self.handle(token)
        finally:
            self.on_end()

    def _tokens(self) -> Iterator[str]:
        if not self.stream.isatty():
            yield from self.stream
            return
        fd = self.stream.fileno()
        while True:
            char = os.read(fd, 1).decode("utf-8", errors="replace")
            if char in ("", "\x04"):  # end of input, Ctrl-D
                return
            yield char

    def terminal_mode(self) -> contextlib.AbstractContextManager[None]:
        """Single-key mode for a terminal, for as long as the dispenser runs (restored on any exit).

        Held by the main thread: a daemon thread's ``finally`` does not run when the process exits.
        """
        return _cbreak(self.stream.fileno()) if self.stream.isatty() else contextlib.nullcontext()


@contextlib.contextmanager
def _cbreak(fd: int) -> Iterator[None]:
    """Single key presses without Enter and without echo; Ctrl-C still interrupts."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
