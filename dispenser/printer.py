"""Talking to the thermal printer: the ESC/POS job, status queries, and one adapter per connection.

Theory of operation: a ticket is one *job*, the bytes of ``ESC @`` (reset), the ticket picture as raster
graphics (``GS v 0``, exactly the command python-escpos's ``image()`` sends for a 1-bit picture) and the
feed-and-cut python-escpos makes for the printer's profile. Tests and the preview printer read back exactly
what a printer would get (``read_job``).

``TicketJobs`` makes the dispenser's jobs. Everything that does not depend on the controller's reply is
encoded once per button: the reset with the header's raster (logo, hall, service) is the job's *head*, the
footer's raster with the feed-and-cut its *tail*. After the reply only the body (number, priority mark,
people ahead, QR code, time) is drawn and encoded. The service hands the adapter the job in two pieces,
head then the rest: the head is on its way to the printer, which starts printing it, while the body is
drawn. Consecutive ``GS v 0`` images print edge to edge (python-escpos itself cuts tall pictures into
bands), so the paper is the same as for one picture of the whole ticket; one thread writes to the printer
and each job goes out in one ``send``, so a ticket is never interleaved with anything else.

Status: where the connection can answer (USB, serial, network), the adapter asks the printer with the
real-time commands ``DLE EOT 1`` (online), ``DLE EOT 2`` (cover) and ``DLE EOT 4`` (paper sensor), reading
one byte each with a short timeout (the last two only if the printer answered the first). A printer that
never answered is taken at its word that it is fine (many cheap printers ignore ``DLE EOT``); one that
answered before and goes quiet is ``offline``. A file device cannot answer: it is ``ok`` while it can be
opened and written.

Timeouts are always explicit: python-escpos defaults to none on USB (a jammed printer blocks forever) and
60 s on the network.

Adapters: ``UsbPrinter``, ``SerialPrinter``, ``NetworkPrinter``, ``FilePrinter`` (a device path such as
``/dev/usb/lp0``) and ``PreviewPrinter`` (writes each job as PNG and raw bytes to a folder, for machines
without a printer, for technicians and for ``--simulate``). ``dispenser.service.make_printer`` builds one
from the config.
"""

from __future__ import annotations

import abc
import copy
import errno
import logging
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Protocol

from escpos.capabilities import CAPABILITIES, get_profile
from escpos.exceptions import Error as EscposError
from escpos.printer import Dummy, File, Network, Serial, Usb
from PIL import Image, ImageOps

from dispenser.core import PRINTABLE, ButtonSpec, failure_reason
from dispenser.ticket import TicketRenderer
from hallq.errors import HallqError
from hallq.wire import PrinterState, TicketInfo
from hallq.wire import PrintFailureReason as FailureReason

log = logging.getLogger(__name__)

DLE_EOT: Final = b"\x10\x04"
RASTER_BAND_ROWS: Final = 960  # python-escpos's fragment height: some printers refuse taller raster images


class PrinterError(HallqError, OSError):
    """The printer could not be opened or written; ``reason`` is the contract's print failure reason."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        self.reason: FailureReason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """The printer's state as the contract names it, with ``detail`` for the operator (e.g. ``cover_open``)."""

    state: PrinterState
    detail: str = ""

    @property
    def failure_reason(self) -> FailureReason:
        """What a print report says when printing in this state is refused."""
        return failure_reason(self.state, self.detail)


# --- the job --------------------------------------------------------------------------------------------------

def profile_names() -> list[str]:
    """The python-escpos printer profiles (``TM-T20II``, ``POS-5890``, ...)."""
    return sorted(CAPABILITIES["profiles"])


def profile_width_dots(name: str) -> int | None:
    """The paper width a profile declares in dots, or None when the database does not know it."""
    pixels = CAPABILITIES["profiles"][name]["media"]["width"].get("pixels")
    return pixels if isinstance(pixels, int) else None


@lru_cache(maxsize=8)
def _profile(name: str, width_dots: int) -> Any:
    # python-escpos refuses images wider than the profile's width and print()s to stdout when the width
    # is unknown; give this instance our paper's width without touching the class shared by all printers.
    profile = get_profile(name)
    profile.profile_data = copy.deepcopy(profile.profile_data)
    profile.profile_data["media"]["width"]["pixels"] = width_dots
    return profile


@dataclass(frozen=True, slots=True)
class JobFrame:
    """The commands around a job's raster images, as python-escpos makes them for one printer profile."""

    start: bytes  # ESC @: reset
    end: bytes  # feed, and cut where the printer has a cutter


@lru_cache(maxsize=8)
def job_frame(profile: str, width_dots: int) -> JobFrame:
    """The reset before and the feed-and-cut after a job (printers without a cutter, e.g. ``POS-5890``, only feed)."""
    job = Dummy()
    job.profile = _profile(profile, width_dots)
    job.hw("INIT")
    start = bytes(job.output)
    job.cut()
    return JobFrame(start=start, end=bytes(job.output)[len(start):])


def build_job(image: Image.Image, *, profile: str, width_dots: int) -> bytes:
    """The ESC/POS bytes that print ``image`` (at most ``width_dots`` wide) and cut the paper."""
    if image.width > width_dots:
        raise ValueError(f"image of {image.width} dots is wider than the paper's {width_dots}")
    frame = job_frame(profile, width_dots)
    return frame.start + raster(image) + frame.end


def raster(image: Image.Image) -> bytes:
    """The ``GS v 0`` commands that print a 1-bit image (see ``raster_bands``), concatenated."""
    return b"".join(raster_bands(image))


def raster_bands(image: Image.Image) -> list[bytes]:
    """``GS v 0`` commands for a 1-bit image, in bands of at most ``RASTER_BAND_ROWS`` rows.

    The same command python-escpos's ``image()`` sends, built directly: its ``EscposImage`` converts every
    picture through RGBA, RGB, L and a dithered 1-bit copy, three times for a ticket taller than one band
    (~35 ms, more than the whole reply-to-printer budget), for a picture that is already 1-bit.
    """
    bits = image if image.mode == "1" else image.convert("1")
    width_bytes = (bits.width + 7) // 8
    if bits.width % 8:
        padded = Image.new("1", (width_bytes * 8, bits.height), 1)
        padded.paste(bits, (0, 0))
        bits = padded
    bands = []
    for top in range(0, bits.height, RASTER_BAND_ROWS):
        band = bits if bits.height <= RASTER_BAND_ROWS else bits.crop(
            (0, top, bits.width, min(top + RASTER_BAND_ROWS, bits.height)))
        header = b"\x1dv0\x00" + width_bytes.to_bytes(2, "little") + band.height.to_bytes(2, "little")
        # In PIL's packed 1-bit rows a set bit is white; ESC/POS wants a set bit for a black dot: "1;I" packs
        # the rows inverted.
        bands.append(header + band.tobytes("raw", "1;I"))
    return bands


class TicketJobs:
    """The ESC/POS jobs of one dispenser's tickets, with every part the reply does not decide encoded once.

    ``head(button)`` (reset, the button's header) is ready before the reply arrives; ``rest(ticket)`` draws
    and encodes the body and appends the cached footer and feed-and-cut. ``head + rest`` prints exactly
    ``renderer.render(ticket, button)``. Like the renderer, it belongs to the service's thread.
    """

    def __init__(self, renderer: TicketRenderer, *, profile: str) -> None:
        self.renderer = renderer
        self.frame = job_frame(profile, renderer.width)
        self._heads: dict[str, bytes] = {}
        self._tails = {card: raster(renderer.footer(card=card)) + self.frame.end for card in (False, True)}

    def prepare(self, button: ButtonSpec) -> None:
        """Draw and encode the button's fixed parts now (at start), and warm the renderer up."""
        self.renderer.prepare(button)
        self.head(button)

    def head(self, button: ButtonSpec) -> bytes:
        """The job's first piece for ``button``: reset and the header's raster; encoded once per button."""
        head = self._heads.get(button.key)
        if head is None:
            head = self._heads[button.key] = self.frame.start + raster(self.renderer.header(button))
        return head

    def rest(self, ticket: TicketInfo) -> bytes:
        """The rest of ``ticket``'s job: its body's raster, then the footer's (with the privacy notice for a ticket
        linked to a card) and the feed-and-cut."""
        return raster(self.renderer.body(ticket)) + self._tails[ticket.card]

    def pieces(self, ticket: TicketInfo, button: ButtonSpec) -> Iterator[bytes]:
        """The job in two pieces for ``TicketPrinter.send``: the head at once, then the rest, drawn while the head
        travels and prints. If the rest cannot be drawn, the started ticket is fed and cut off first (the next
        one starts on fresh paper), then the error passes on."""
        yield self.head(button)
        try:
            rest = self.rest(ticket)
        except (OSError, ValueError):
            yield self.frame.end
            raise
        yield rest

    def job(self, ticket: TicketInfo, button: ButtonSpec) -> bytes:
        """The whole job in one piece (``print-test``, tests)."""
        return self.head(button) + self.rest(ticket)

    def slip(self, code: str) -> bytes:
        """The job of a refusal slip (``TicketRenderer.slip``): no number, nothing the controller issued."""
        return self.frame.start + raster(self.renderer.slip(code)) + self.frame.end


@dataclass(frozen=True, slots=True)
class JobView:
    """What a job contains, read back from its bytes: its raster images, in order, and whether it cuts."""

    images: tuple[Image.Image, ...]
    cut: bool
    ends_with_cut: bool

    def picture(self) -> Image.Image:
        """The printed paper: every raster image stacked, as a mode ``"1"`` image (white background)."""
        width = max((im.width for im in self.images), default=8)
        height = sum(im.height for im in self.images)
        paper = Image.new("1", (width, max(height, 1)), 1)
        y = 0
        for im in self.images:
            paper.paste(im, (0, y))
            y += im.height
        return paper


_FIXED_LENGTH: Final = {b"\x1b@": 2, b"\x1bd": 3, b"\x1bJ": 3, b"\x1ba": 3, b"\x1b2": 2, b"\x1b3": 3}


def read_job(data: bytes) -> JobView:
    """Parse the commands ``build_job`` emits; anything else raises ValueError naming the offset.

    Used by the preview printer (its PNG is decoded from the very bytes a printer would get) and by tests.
    """
    images: list[Image.Image] = []
    cut = False
    last_was_cut = False
    i = 0
    while i < len(data):
        last_was_cut = False
        two = data[i:i + 2]
        if data[i:i + 1] == b"\n":
            i += 1
        elif two in _FIXED_LENGTH:
            i += _FIXED_LENGTH[two]
        elif data[i:i + 3] == b"\x1dv0":
            if i + 8 > len(data):
                raise ValueError(f"truncated raster header at offset {i}")
            width_bytes = data[i + 4] | data[i + 5] << 8
            height = data[i + 6] | data[i + 7] << 8
            end = i + 8 + width_bytes * height
            if end > len(data):
                raise ValueError(f"truncated raster image at offset {i}")
            raw = Image.frombytes("1", (width_bytes * 8, height), data[i + 8:end])
            images.append(ImageOps.invert(raw.convert("L")).convert("1"))  # ESC/POS: 1 = black dot
            i = end
        elif two == b"\x1dV":
            mode = data[i + 2] if i + 2 < len(data) else -1
            length = 4 if mode in (65, 66) else 3
            if mode not in (0, 1, 48, 49, 65, 66) or i + length > len(data):
                raise ValueError(f"bad cut command at offset {i}")
            cut = last_was_cut = True
            i += length
        else:
            raise ValueError(f"unexpected byte 0x{data[i]:02x} at offset {i}")
    return JobView(images=tuple(images), cut=cut, ends_with_cut=last_was_cut)


# --- status -----------------------------------------------------------------------------------------------------

def _valid_status(byte: int) -> bool:
    # Every real-time status byte has bit 0 and bit 7 clear and bits 1 and 4 set.
    return byte & 0x93 == 0x12


def parse_status(online: int | None, cause: int | None, paper: int | None, *, answered_before: bool) -> PrinterStatus:
    """The printer's state from its answers to ``DLE EOT`` 1, 2 and 4 (``None``: no answer).

    ``DLE EOT 1`` bit 3: offline. ``DLE EOT 2`` bit 2: cover open; bit 5: stopped at paper end.
    ``DLE EOT 4`` bits 2-3: paper near its end; bits 5-6: paper end.
    """
    answers = [b for b in (online, cause, paper) if b is not None and _valid_status(b)]
    if not answers:
        if answered_before:
            return PrinterStatus("offline", "no answer to status queries")
        return PrinterStatus("ok", "printer does not report status")
    if paper is not None and _valid_status(paper) and paper & 0x60:
        return PrinterStatus("paper_out", "paper end")
    if cause is not None and _valid_status(cause):
        if cause & 0x20:
            return PrinterStatus("paper_out", "stopped at paper end")
        if cause & 0x04:
            return PrinterStatus("offline", "cover_open")
    if online is not None and _valid_status(online) and online & 0x08:
        return PrinterStatus("offline", "printer reports offline")
    if paper is not None and _valid_status(paper) and paper & 0x0C:
        return PrinterStatus("paper_low", "paper near end")
    return PrinterStatus("ok")


def _is_timeout(exc: OSError) -> bool:
    return isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT or "timed out" in str(exc).lower()


# --- adapters ---------------------------------------------------------------------------------------------------

class TicketPrinter(Protocol):
    """What the service needs from a printer. Every method may block for at most the configured timeouts."""

    description: str

    def open(self) -> None:
        """Connect; raises PrinterError("offline", ...) if the printer is not there."""

    def status(self) -> PrinterStatus:
        """Ask the printer (where the connection can tell); opens it first if needed. Never raises."""

    def send(self, job: bytes | Iterable[bytes], *, name: str) -> Path | None:
        """Send one job: its bytes, or its pieces in order, each written as soon as it is produced (the printer
        starts on the first while the next is made). Raises PrinterError; an exception raised while producing
        a piece passes through unchanged. Returns the preview PNG for a preview printer, else None."""

    def close(self) -> None: ...


class _EscposPrinter(abc.ABC):
    """Shared behaviour of the python-escpos backed adapters; subclasses make the device and read a byte."""

    description = "printer"

    def __init__(self) -> None:
        self._device: Any = None
        self._answered_before = False

    @abc.abstractmethod
    def _make(self) -> Any:
        """The python-escpos device object, not yet opened."""

    def _read_byte(self) -> int | None:
        """One status byte, or None when nothing came within the status timeout. A connection that cannot be
        read (a device file) answers nothing; the adapters with a return channel override this."""
        return None

    def _after_open(self) -> None:  # noqa: B027 - a hook: most devices need no adjustment
        """Adjust the opened device (timeouts)."""

    def open(self) -> None:
        if self._device is not None:
            return
        device = self._make()
        try:
            device.open()
        except (EscposError, OSError, RuntimeError, ValueError) as exc:
            raise PrinterError("offline", f"cannot open {self.description}: {_one_line(exc)}") from None
        self._device = device
        self._after_open()
        log.info("printer open: %s", self.description)

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            try:
                device.close()
            except (EscposError, OSError) as exc:
                log.debug("closing %s: %s", self.description, exc)

    def status(self) -> PrinterStatus:
        try:
            self.open()
        except PrinterError as exc:
            return PrinterStatus("offline", str(exc))
        try:
            answers = [self._query(1)]
            # A printer silent to the first query is silent to the others: do not wait out two more timeouts
            # (the service's loop, and a reply that arrives meanwhile, would wait with us).
            answers += [self._query(2), self._query(4)] if answers[0] is not None else [None, None]
        except OSError as exc:
            self.close()
            return PrinterStatus("offline", f"{self.description}: {_one_line(exc)}")
        status = parse_status(*answers, answered_before=self._answered_before)
        if any(a is not None for a in answers):
            self._answered_before = True
        return status

    def _query(self, n: int) -> int | None:
        self._device._raw(DLE_EOT + bytes((n,)))
        try:
            return self._read_byte()
        except OSError as exc:
            if _is_timeout(exc):
                return None
            raise

    def send(self, job: bytes | Iterable[bytes], *, name: str) -> Path | None:
        del name
        self.open()
        for piece in _pieces(job):
            try:
                self._device._raw(piece)
            except OSError as exc:
                self.close()
                reason: FailureReason = "timeout" if _is_timeout(exc) else "offline"
                raise PrinterError(reason, f"{self.description}: {_one_line(exc)}") from None
        return None


class UsbPrinter(_EscposPrinter):
    """A USB printer by vendor and product id (``lsusb``), with an explicit write timeout."""

    def __init__(self, *, vendor_id: int, product_id: int, timeout_ms: int, status_timeout_ms: int, profile: str,
                 in_ep: int | None = None, out_ep: int | None = None) -> None:
        super().__init__()
        self.vendor_id, self.product_id = vendor_id, product_id
        self.timeout_ms, self.status_timeout_ms = timeout_ms, status_timeout_ms
        self.profile = profile
        self.endpoints = {k: v for k, v in (("in_ep", in_ep), ("out_ep", out_ep)) if v is not None}
        self.description = f"usb {vendor_id:04x}:{product_id:04x}"

    def _make(self) -> Any:
        return Usb(idVendor=self.vendor_id, idProduct=self.product_id, timeout=self.timeout_ms, profile=self.profile,
                   **self.endpoints)

    def _read_byte(self) -> int | None:
        data = self._device.device.read(self._device.in_ep, 16, self.status_timeout_ms)
        return int(data[-1]) if len(data) else None


class SerialPrinter(_EscposPrinter):
    """A serial printer (``/dev/ttyUSB0``, ``/dev/serial0``); reads wait ``status_timeout_s``, writes ``timeout_s``."""

    def __init__(self, *, device: str, baudrate: int, timeout_s: float, status_timeout_s: float, profile: str) -> None:
        super().__init__()
        self.devfile, self.baudrate = device, baudrate
        self.timeout_s, self.status_timeout_s = timeout_s, status_timeout_s
        self.profile = profile
        self.description = f"serial {device} at {baudrate} baud"

    def _make(self) -> Any:
        return Serial(devfile=self.devfile, baudrate=self.baudrate, timeout=self.status_timeout_s, profile=self.profile)

    def _after_open(self) -> None:
        # python-escpos sets no write timeout: a printer holding flow control would block us forever.
        self._device.device.write_timeout = self.timeout_s

    def _read_byte(self) -> int | None:
        data = self._device.device.read(1)
        return data[0] if data else None


class NetworkPrinter(_EscposPrinter):
    """A network printer (raw TCP, usually port 9100)."""

    def __init__(self, *, host: str, port: int, timeout_s: float, status_timeout_s: float, profile: str) -> None:
        super().__init__()
        self.host, self.port = host, port
        self.timeout_s, self.status_timeout_s = timeout_s, status_timeout_s
        self.profile = profile
        self.description = f"network {host}:{port}"

    def _make(self) -> Any:
        return Network(host=self.host, port=self.port, timeout=self.timeout_s, profile=self.profile)

    def _after_open(self) -> None:
        # A job goes out in pieces: with Nagle's algorithm the second piece waits for the printer to
        # acknowledge the first, which its delayed ACK holds back (40 ms on loopback, up to 200 ms elsewhere).
        self._device.device.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read_byte(self) -> int | None:
        sock = self._device.device
        sock.settimeout(self.status_timeout_s)
        try:
            data = sock.recv(1)
        finally:
            sock.settimeout(self.timeout_s)
        if not data:
            raise ConnectionResetError(errno.ECONNRESET, "printer closed the connection")
        return int(data[0])


class FilePrinter(_EscposPrinter):
    """A printer device file (``/dev/usb/lp0``); it cannot report paper or cover, only whether it opens."""

    def __init__(self, *, device: str, profile: str) -> None:
        super().__init__()
        self.devfile = device
        self.profile = profile
        self.description = f"file {device}"

    def _make(self) -> Any:
        return File(devfile=self.devfile, profile=self.profile)

    def status(self) -> PrinterStatus:
        try:
            self.open()
        except PrinterError as exc:
            return PrinterStatus("offline", str(exc))
        return PrinterStatus("ok", "device file: no paper sensor")


class PreviewPrinter:
    """Writes each job to ``directory`` as ``NAME.png`` (the picture decoded from the bytes) and ``NAME.bin``.

    Its state can be set by hand (``simulate``) to try paper-out and offline handling without a printer.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.description = f"preview {directory}"
        self.simulated = PrinterStatus("ok")

    def simulate(self, status: PrinterStatus) -> None:
        self.simulated = status

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrinterError("offline", f"cannot create {self.directory}: {exc.strerror}") from None

    def status(self) -> PrinterStatus:
        try:
            self.open()
        except PrinterError as exc:
            return PrinterStatus("offline", str(exc))
        return self.simulated

    def send(self, job: bytes | Iterable[bytes], *, name: str) -> Path | None:
        if self.simulated.state not in PRINTABLE:
            raise PrinterError(self.simulated.failure_reason, f"simulated printer is {self.simulated.state}")
        self.open()
        data = b"".join(_pieces(job))
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        png = self.directory / f"{safe}.png"
        try:
            (self.directory / f"{safe}.bin").write_bytes(data)
            read_job(data).picture().save(png)
        except OSError as exc:
            raise PrinterError("error", f"cannot write preview {png}: {exc.strerror}") from None
        return png

    def close(self) -> None:
        pass


def _pieces(job: bytes | Iterable[bytes]) -> Iterable[bytes]:
    return (job,) if isinstance(job, bytes) else job


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

