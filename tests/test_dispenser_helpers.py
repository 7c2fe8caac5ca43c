"""Shared helpers of the dispenser's tests and benchmarks (this module holds no tests).

``EscposTestPrinter`` is a network thermal printer at the edge of the system: a TCP server on loopback that
records each job it receives and answers the real-time status queries ``DLE EOT 1/2/4`` like an Epson
printer would, with paper, cover and silence set by the test. Everything on our side of the socket is the
real code: the dispenser's adapter and python-escpos's ``Network`` printer.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory
from PIL import Image

from dispenser import config as config_mod
from dispenser.printer import JobView, TicketPrinter, read_job
from dispenser.service import DispenserService
from testbed.broker import PrivateBroker

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DISPENSER_CONFIG = FIXTURES / "dispenser.toml"
PREVIEWS = Path(__file__).resolve().parent.parent / "build" / "previews"


@dataclass
class ReceivedJob:
    """A job as the printer got it; the instants are ``time.monotonic()`` of the reads that brought its first
    and its last byte."""

    data: bytes
    first_byte_at: float
    last_byte_at: float

    def view(self) -> JobView:
        return read_job(self.data)


class EscposTestPrinter:
    """A loopback ESC/POS network printer with settable paper and cover; ``jobs`` holds what it printed."""

    def __init__(self) -> None:
        self.paper = "ok"  # ok, low, out
        self.cover_open = False
        self.answers_status = True
        self.jobs: list[ReceivedJob] = []
        self.status_queries = 0
        self.received_bytes = 0  # everything but status queries, complete jobs or not
        self._completed_bytes = 0
        self._changed = threading.Condition()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._connections: list[socket.socket] = []

    def __enter__(self) -> EscposTestPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        with suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # close() alone leaves a blocked accept() listening
        self._server.close()
        for conn in self._connections:
            with suppress(OSError):
                conn.close()

    def status_byte(self, n: int) -> int:
        byte = 0x12
        if n == 1 and (self.cover_open or self.paper == "out"):
            byte |= 0x08
        if n == 2:
            byte |= (0x04 if self.cover_open else 0) | (0x20 if self.paper == "out" else 0)
        if n == 4:
            byte |= {"ok": 0, "low": 0x0C, "out": 0x60}[self.paper]
        return byte

    def wait_jobs(self, count: int, *, timeout_s: float = 5.0) -> list[ReceivedJob]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.jobs) < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    raise AssertionError(f"printer received {len(self.jobs)} jobs, expected {count}")
            return list(self.jobs)

    def wait_received(self, count: int, *, timeout_s: float = 5.0) -> None:
        """Until ``count`` bytes other than status queries have arrived, whether or not they end a job."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.received_bytes < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    raise AssertionError(f"printer received {self.received_bytes} bytes, expected {count}")

    def _serve(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._connections.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        pending = b""
        first_at = 0.0
        with suppress(OSError):
            while chunk := conn.recv(65536):
                chunk_at = time.monotonic()
                if not pending:
                    first_at = chunk_at
                pending += chunk
                while pending:
                    if pending[:2] == b"\x10\x04":
                        if len(pending) < 3:
                            break
                        self.status_queries += 1
                        if self.answers_status:
                            conn.sendall(bytes((self.status_byte(pending[2]),)))
                        pending = pending[3:]
                        first_at = chunk_at
                        continue
                    end = job_end(pending)
                    if end is None:
                        break  # more of the job is on its way
                    with self._changed:
                        self.jobs.append(ReceivedJob(pending[:end], first_at, chunk_at))
                        self._completed_bytes += end
                    pending = pending[end:]
                    first_at = chunk_at
                with self._changed:
                    partial = 0 if pending.startswith(b"\x10\x04") else len(pending)
                    self.received_bytes = self._completed_bytes + partial
                    self._changed.notify_all()


def job_end(data: bytes) -> int | None:
    """Where the job at the start of ``data`` ends (after its cut), or None if it is not all there yet.

    Real printers read real-time status queries anywhere, so the adapter may send one right behind a job.
    """
    i = 0
    while i < len(data):
        if data[i:i + 3] == b"\x1dv0":
            if i + 8 > len(data):
                return None
            i += 8 + (data[i + 4] | data[i + 5] << 8) * (data[i + 6] | data[i + 7] << 8)
        elif data[i:i + 2] == b"\x1dV":
            if i + 3 > len(data):
                return None
            return i + (4 if data[i + 2] in (65, 66) else 3)
        elif data[i:i + 2] in (b"\x1b@",):
            i += 2
        elif data[i:i + 2] == b"\x1bd":
            i += 3
        else:
            i += 1
    return None


def decode_qr(image: Image.Image) -> str:
    """The QR code's text, decoded by zbarimg (Debian zbar-tools) from the printed picture."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticket.png"
        image.convert("L").save(path)
        result = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"no QR code found: {result.stderr}"
    return result.stdout.strip()


def ledger_rows(state_dir: Path) -> list[dict[str, Any]]:
    """The controller's ticket history, read-only, straight from its SQLite ledger."""
    db = sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM tickets ORDER BY rowid")]
    finally:
        db.close()


def load_config(broker: PrivateBroker | None = None, *, preview_dir: Path | None = None,
                **dispenser: Any) -> config_mod.DispenserConfig:
    """The fixture dispenser, pointed at ``broker``; keyword arguments replace its timing."""
    cfg = config_mod.load(DISPENSER_CONFIG)
    if broker is not None:
        cfg = replace(cfg, broker=cfg.broker.with_address(broker.address))
    if preview_dir is not None:
        cfg = replace(cfg, printer=replace(cfg.printer, preview_dir=preview_dir))
    if dispenser:
        cfg = replace(cfg, timing=replace(cfg.timing, **dispenser))
    return cfg


@dataclass
class Kiosk:
    """A running dispenser service with its mock pins."""

    service: DispenserService
    factory: MockFactory
    config: config_mod.DispenserConfig

    def press(self, key: str) -> None:
        pin = next(w.pin for w in self.config.wiring if w.key == key)
        mock = self.factory.pin(pin)
        mock.drive_low()
        mock.drive_high()

    def led(self, name: str) -> bool:
        pin = getattr(self.config.leds, name)
        return bool(self.factory.pin(pin).state)


@contextmanager
def running_kiosk(config: config_mod.DispenserConfig, printer: TicketPrinter, *,
                  wait_ready: bool = True) -> Iterator[Kiosk]:
    """The dispenser service on a thread, with fresh mock pins; stopped and joined at the end."""
    factory = MockFactory()
    service = DispenserService(config, printer=printer, pin_factory=factory)
    thread = threading.Thread(target=service.run, name="dispenser", daemon=True)
    thread.start()
    try:
        if wait_ready:
            assert service.ready.wait(10), "dispenser did not become ready"
        yield Kiosk(service, factory, config)
    finally:
        service.stop()
        thread.join(10)
        factory.close()
