"""The card scanner: a 2D barcode scanner in USB CDC (virtual COM port) mode, read with pyserial.

Wiring: plug the scanner into a USB port and set it to its USB CDC / virtual serial mode (see
docs/dispenser.md, "Card scanner": in keyboard mode it cannot type Vietnamese). It appears as a tty such as
``/dev/ttyACM0`` (better: its stable name under ``/dev/serial/by-id/``) and sends each code it reads as
UTF-8 bytes ended by CR, LF or both.

Threads: ``CardScanner`` reads on a thread of its own and only puts a ``ScanRead`` on the service's inbox
per line, stamped with the monotonic time the line ended; the service thread decides. A line that is not
UTF-8, or longer than ``max_line_bytes`` (the rest is skipped up to its line end), is a ``ScanRead`` with
``text`` None and the problem: a bad scan for the core, never an exception.

A scanner that is missing, unplugged or replugged never stops the kiosk: the reader logs the loss once,
tries to open the device again every ``retry_s`` seconds, and logs when it is back; tickets are issued all
the while. Nothing here logs what was scanned.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import serial

log = logging.getLogger(__name__)

BAUDRATES: Final = (9600, 19200, 38400, 57600, 115200)
MAX_LINE_BYTES: Final = 1024  # a CCCD's QR text is about 150 characters, some 200 bytes of UTF-8
RETRY_S: Final = 3.0
READ_TIMEOUT_S: Final = 0.2  # how soon the reader notices ``close()``
LINE_ENDS: Final = b"\r\n"


@dataclass(frozen=True, slots=True)
class ScanRead:
    """One line from the scanner at monotonic time ``at``: its ``text``, or None and the ``problem``."""

    text: str | None
    at: float
    problem: str = ""

    def __repr__(self) -> str:  # the text is personal data: never in a log or a traceback
        text = "None" if self.text is None else f"<{len(self.text)} characters>"
        return f"ScanRead(text={text}, at={self.at}, problem={self.problem!r})"


class LineSplitter:
    """Cuts the scanner's bytes into lines (CR, LF or CRLF; empty lines dropped), each at most ``max_bytes``."""

    def __init__(self, *, max_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._line = bytearray()
        self._skipping = False

    def feed(self, data: bytes, at: float) -> list[ScanRead]:
        scans: list[ScanRead] = []
        for byte in data:
            if byte in LINE_ENDS:
                if self._line and not self._skipping:
                    scans.append(_decode(bytes(self._line), at))
                self._line.clear()
                self._skipping = False
            elif self._skipping:
                continue
            elif len(self._line) >= self.max_bytes:
                scans.append(ScanRead(None, at, f"a line longer than {self.max_bytes} bytes"))
                self._line.clear()
                self._skipping = True
            else:
                self._line.append(byte)
        return scans

    def reset(self) -> None:
        """Forget a partial line (the device went away in the middle of it)."""
        self._line.clear()
        self._skipping = False


def _decode(line: bytes, at: float) -> ScanRead:
    try:
        return ScanRead(line.decode("utf-8"), at)
    except UnicodeDecodeError:
        return ScanRead(None, at, "bytes that are not UTF-8")


class CardScanner:
    """Reads ``device`` at ``baudrate`` on a daemon thread, putting a ``ScanRead`` per line on ``inbox``.

    ``start()`` returns at once, whether or not the device is there; ``close()`` stops the thread.
    """

    def __init__(self, *, device: str, baudrate: int, inbox: queue.Queue[Any],
                 clock: Callable[[], float] = time.monotonic, retry_s: float = RETRY_S,
                 max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if baudrate not in BAUDRATES:
            raise ValueError(f"baudrate must be one of {BAUDRATES}, got {baudrate}")
        self.device = device
        self.baudrate = baudrate
        self.retry_s = retry_s
        self._inbox = inbox
        self._clock = clock
        self._lines = LineSplitter(max_bytes=max_line_bytes)
        self._stop = threading.Event()
        self._port: serial.Serial | None = None
        self._port_lock = threading.Lock()
        self.connected = threading.Event()  # set while the device is open (for operators' tools and tests)
        self._thread = threading.Thread(target=self._run, name="card-scanner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._port_lock:
            if self._port is not None:
                self._port.cancel_read()
        if self._thread.is_alive():
            self._thread.join(2 * READ_TIMEOUT_S + 1)

    def _run(self) -> None:
        lost: str | None = None  # why the device is unavailable, once logged
        while not self._stop.is_set():
            try:
                port = serial.Serial(self.device, self.baudrate, timeout=READ_TIMEOUT_S, exclusive=True)
            except (serial.SerialException, OSError, ValueError) as exc:
                if lost is None:
                    lost = _one_line(exc)
                    log.warning("card scanner unavailable device=%s: %s; tickets are still issued, retrying every "
                                "%.3g s", self.device, lost, self.retry_s)
                self._stop.wait(self.retry_s)
                continue
            log.log(logging.WARNING if lost is not None else logging.INFO,
                    "card scanner %s device=%s baudrate=%d", "back" if lost is not None else "ready", self.device,
                    self.baudrate)
            lost = None
            with self._port_lock:
                self._port = port
            self.connected.set()
            try:
                lost = self._read(port)
            finally:
                self.connected.clear()
                with self._port_lock:
                    self._port = None
                port.close()
                self._lines.reset()
            if lost is not None:
                log.warning("card scanner lost device=%s: %s; tickets are still issued, retrying every %.3g s",
                            self.device, lost, self.retry_s)
                self._stop.wait(self.retry_s)

    def _read(self, port: serial.Serial) -> str | None:
        """Read until ``close()`` (None) or until the device fails (why)."""
        while not self._stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                return _one_line(exc)
            if data:
                for scan in self._lines.feed(data, self._clock()):
                    self._inbox.put(scan)
        return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
