"""``--simulate``: the keyboard (or another program) presses the kiosk's buttons on gpiozero's mock pins.

When stdin is a terminal, each key press counts at once (no Enter); when it is not (a pipe from the
simulated hall, a test), each line names one button's key. Either way the press goes through the real
path: the key drives the button's mock pin low and high again, gpiozero fires ``when_pressed``, and the
button panel enqueues the press like on a Pi.

Besides the buttons' keys (letters and digits), these simulate the printer: ``!`` or ``paper_out``,
``~`` or ``paper_low``, ``#`` or ``offline``, ``%`` or ``cover_open``, ``=`` or ``paper_ok`` (paper
reloaded, printer fine). ``?`` or ``help`` lists the keys. End of input (Ctrl-D) stops the dispenser.

A kiosk with a ``[scanner]`` gets a simulated scanner: a pseudo-terminal pair (``ScannerPty``) whose slave
side the real serial adapter reads in place of the configured device. The line ``scan TEXT`` (on a
terminal: ``@``, the text, Enter) writes TEXT's UTF-8 bytes and a CR LF into the other side, as a scanner
in USB CDC mode would. Nothing here logs the text.
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


SCAN_WORD: Final = "scan"
SCAN_KEY: Final = "@"


def help_text(buttons: tuple[ButtonSpec, ...], *, scanner: bool = False) -> str:
    lines = ["Simulated kiosk. Buttons:"]
    for b in buttons:
        lane = f"priority ({b.category})" if b.priority else "regular"
        lines.append(f"  {b.key}  {b.label_vi} — service {b.service}, {lane}")
    lines.append("Printer: ! paper out, ~ paper low, # offline, % cover open, = paper reloaded.  "
                 "? help, Ctrl-D or Ctrl-C to stop.")
    if scanner:
        lines.append("Card scanner: @ then the code and Enter (from a pipe: a line 'scan CODE'), then a button.")
    return "\n".join(lines)


class ScannerPty:
    """A pseudo-terminal pair standing in for a USB CDC scanner: ``path`` is the device to read, ``scan(text)``
    sends a code as the scanner would (UTF-8, CR LF)."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # a serial line: no echo, no line editing, CR passed as it is
        self.path = os.ttyname(self._slave)

    def scan(self, text: str) -> None:
        os.write(self._master, text.encode("utf-8") + b"\r\n")

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class KeyboardFeeder:
    """Reads ``stream`` on a daemon thread and turns keys into mock-pin presses and printer simulations.

    ``press_pin(pin)`` drives a mock pin low then high; ``inbox`` receives ``SimulatePrinter`` items;
    ``on_end`` is called when the input ends.
    """

    def __init__(self, *, stream: TextIO, pins: Mapping[str, int], press_pin: Callable[[int], None],
                 inbox: queue.Queue[Any], on_end: Callable[[], None], help_message: str,
                 scan: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.scan = scan
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
        if token == SCAN_WORD or token.startswith(SCAN_WORD + " "):
            if self.scan is None:
                log.warning("scan ignored: this kiosk has no [scanner] in its config")
                return False
            self.scan(token[len(SCAN_WORD):].strip())
        elif token in self.pins:
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
        pending = b""
        line: list[str] | None = None  # a scan being typed after SCAN_KEY
        while True:
            byte = os.read(fd, 1)
            if byte in (b"", b"\x04"):  # end of input, Ctrl-D
                return
            pending += byte
            try:
                char = pending.decode("utf-8")
            except UnicodeDecodeError:
                if len(pending) < 4:
                    continue  # the rest of a letter like "ễ" is on its way
                char = "\ufffd"
            pending = b""
            if line is None and char == SCAN_KEY and self.scan is not None:
                line = []
                sys.stderr.write("scan> ")
                sys.stderr.flush()
            elif line is not None:
                if char in "\r\n":
                    sys.stderr.write("\n")
                    yield f"{SCAN_WORD} {''.join(line)}"
                    line = None
                else:
                    line.append(char)
                    sys.stderr.write(char)
                    sys.stderr.flush()
            else:
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
