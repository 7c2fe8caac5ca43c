"""The dispenser's shell: buttons, card scanner, broker and printer in; the core's decisions executed.

Theory of operation: gpiozero's, paho's and the card scanner's threads only put items on one inbox
(``ButtonPressed``, ``Message``, ``LinkUp``/``LinkDown``, ``ScanRead``). The service thread takes them one
by one, turns each into a core event (decoding wire payloads at the boundary, giving each press a fresh
request id), feeds it to the core with the monotonic time, and executes what the core decides: publish,
render and print, report, set the LEDs, publish the printer's state. Printing happens on this thread, so
presses that arrive meanwhile wait in the inbox and the core, which knows when each press happened, ignores
those made during the ticket.
A ticket's head (reset and the button's header, encoded at start) is written to the printer as soon as the
reply is in, and the rest is drawn while it travels (``dispenser.printer.TicketJobs``).

The printer's status is read every ``status_poll_s`` (more often while it is not ready, so a reloaded
roll is noticed within a second) and right after each print (before it too if the reading the press was
accepted on was stale), but not while a reply is awaited: a read blocks this thread, and the reply with it.
systemd hears ``READY=1``
once the broker is connected and the printer has been opened, and ``WATCHDOG=1`` from this loop while
it keeps up with its inbox.

A card scan goes to the core with the hall's date when the clock is trusted (``dispenser.clock``). Logs
name a card by its kind and length only: never its text, which is personal data.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from dispenser import core
from dispenser.clock import trusted_today
from dispenser.config import DispenserConfig, PrinterConfig
from dispenser.hardware import ButtonPanel, ButtonPressed, Indicators
from dispenser.printer import (
    FilePrinter,
    NetworkPrinter,
    PreviewPrinter,
    PrinterError,
    PrinterStatus,
    SerialPrinter,
    TicketJobs,
    TicketPrinter,
    UsbPrinter,
)
from dispenser.scanner import CardScanner, ScanRead
from dispenser.ticket import TicketRenderer
from hallq import systemd, wire
from hallq.errors import PayloadError
from hallq.labels import error_label
from hallq.mqtt import LinkDown, LinkUp, Message, MqttLink
from hallq.topics import TopicKind, Topics

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

NOT_READY_POLL_S: Final = 0.5
BACKLOG_LIMIT: Final = 1000
SESSION_EXPIRY_S: Final = 300


def make_printer(config: PrinterConfig) -> TicketPrinter:
    """The adapter for the configured printer (not opened yet)."""
    match config.type:
        case "usb":
            return UsbPrinter(vendor_id=config.usb_vendor_id, product_id=config.usb_product_id,
                              timeout_ms=config.usb_timeout_ms, status_timeout_ms=round(config.status_timeout_s * 1000),
                              profile=config.profile, in_ep=config.usb_in_ep, out_ep=config.usb_out_ep)
        case "serial":
            return SerialPrinter(device=config.serial_device, baudrate=config.serial_baudrate,
                                 timeout_s=config.timeout_s, status_timeout_s=config.status_timeout_s,
                                 profile=config.profile)
        case "network":
            return NetworkPrinter(host=config.network_host, port=config.network_port, timeout_s=config.timeout_s,
                                  status_timeout_s=config.status_timeout_s, profile=config.profile)
        case "file":
            return FilePrinter(device=config.file_device, profile=config.profile)
        case "preview":
            return PreviewPrinter(config.preview_dir)


@dataclass(frozen=True, slots=True)
class SimulatePrinter:
    """``--simulate``: set the preview printer's state (paper out, reloaded, ...) as if it happened."""

    status: PrinterStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one press (or of a late reply), kept for the operator's tools and tests.

    ``kind``: ``printed``, ``print_failed``, ``refused``, ``abandoned`` or ``ignored``; for a card scan
    ``card_read``, ``card_rejected`` (``detail``: why) or ``card_forgotten``; ``slip_printed`` or
    ``slip_failed`` for a refusal slip (``detail``: the refusal's code).
    """

    kind: str
    key: str = ""
    number: str = ""
    ticket_id: str = ""
    detail: str = ""
    preview: Path | None = None


class _Stop:
    """Wakes the loop to stop."""


@dataclass(slots=True)
class _JobProgress:
    """For the log: when (``perf_counter``) each piece of a job was written, and the job's size."""

    written_at: list[float] = field(default_factory=list)
    size: int = 0


def _timed(pieces: Iterator[bytes], progress: _JobProgress) -> Iterator[bytes]:
    for piece in pieces:
        progress.size += len(piece)
        yield piece
        progress.written_at.append(time.perf_counter())  # the printer adapter asks for the next piece


class DispenserService:
    """Runs one dispenser: ``run()`` blocks until ``stop()`` (or SIGTERM via the CLI)."""

    def __init__(self, config: DispenserConfig, *, printer: TicketPrinter, pin_factory: Any,
                 clock: Callable[[], float] = time.monotonic,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex, announce_leds: bool = False,
                 today: Callable[[], date | None] | None = None) -> None:
        self.config = config
        self.printer = printer
        self.clock = clock
        self.new_id = new_id
        self.announce_leds = announce_leds
        self.today = today or (lambda: trusted_today(config.zone))
        self.topics = Topics(hall=config.hall, base=config.base_topic)
        scanner = config.scanner
        self.core = core.Dispenser(config.buttons, timing=config.timing,
                                   cards=None if scanner is None else scanner.rules)
        self.jobs = TicketJobs(TicketRenderer(config.layout, width_dots=config.printer.width_dots),
                               profile=config.printer.profile)
        for button in config.buttons:
            self.jobs.prepare(button)
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.scanner = None
        if scanner is not None:
            self.jobs.slip("card_limit")  # drawn now, not while a refused citizen waits
            self.scanner = CardScanner(device=scanner.device, baudrate=scanner.baudrate, inbox=self.inbox,
                                       clock=clock)
        self.indicators = Indicators(config.leds, pin_factory=pin_factory)
        self.panel = ButtonPanel(config.wiring, pin_factory=pin_factory, inbox=self.inbox, clock=clock)
        self._ticket_topic = self.topics.dispenser_ticket(config.id)
        self._controller_topic = self.topics.status(config.controller_id)
        self.link = MqttLink(
            client_id=config.id, broker=config.broker, inbox=self.inbox,
            subscriptions=[(self._ticket_topic, 1), (self._controller_topic, 1)],
            presence_topic=self.topics.status(config.id),
            online_payload=self._presence(PrinterStatus("offline", "starting")),
            offline_payload=wire.Presence(state="offline", role="dispenser").encode(),
            # Replies published while we reconnect wait in the broker for us.
            session_expiry_s=SESSION_EXPIRY_S,
        )
        self.ready = threading.Event()
        self._printer_opened = False
        self._printer_status: PrinterStatus | None = None
        self._next_poll = 0.0
        self._status_read_at = float("-inf")
        self._requested_at = float("-inf")
        self._stopping = threading.Event()
        self._outcomes: deque[Outcome] = deque(maxlen=200)
        self._outcome_count = 0
        self._changed = threading.Condition()

    # --- observing (operator tools, tests) ------------------------------------------------------------

    def outcome_count(self) -> int:
        with self._changed:
            return self._outcome_count

    def wait_outcome(self, predicate: Callable[[Outcome], bool], *, after: int = 0,
                     timeout_s: float = 5.0) -> Outcome | None:
        """The first outcome numbered ``after`` or later (see ``outcome_count``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                first = self._outcome_count - len(self._outcomes)
                for index, outcome in enumerate(self._outcomes, start=first):
                    if index >= after and predicate(outcome):
                        return outcome
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    return None

    def _record(self, outcome: Outcome) -> None:
        with self._changed:
            self._outcomes.append(outcome)
            self._outcome_count += 1
            self._changed.notify_all()

    # --- start and stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to finish; safe from a signal handler or another thread."""
        self._stopping.set()
        self.inbox.put(_Stop())

    def run(self) -> None:
        """Serve until ``stop()``."""
        self._poll_printer(force=True)
        # Everything loaded so far (python-escpos's printer database, fonts, paho) lives as long as the
        # process; left to the collector, each full collection walks it again, a 15-35 ms pause that can
        # land between the controller's reply and the first byte to the printer.
        gc.collect()
        gc.freeze()
        self.link.start()
        if self.scanner is not None:
            self.scanner.start()
        notifier = systemd.ServiceNotifier()
        try:
            while not self._stopping.is_set():
                try:
                    item = self.inbox.get(timeout=self._wait_s())
                except queue.Empty:
                    item = None
                if item is not None:
                    self._dispatch(item)
                self._feed(core.Tick())
                self._poll_printer()
                if self.link.up.is_set() and self._printer_opened:
                    notifier.ready()
                notifier.tick(time.monotonic(), healthy=self._healthy())
        finally:
            notifier.stopping()
            self.ready.clear()
            self.link.stop()
            if self.scanner is not None:
                self.scanner.close()
            self.panel.close()
            self.indicators.close()
            self.printer.close()
            log.info("dispenser stopped id=%s", self.config.id)

    def _healthy(self) -> bool:
        # A loop that turns but cannot keep up with its inbox is as stuck as one that does not turn.
        return self.inbox.qsize() < BACKLOG_LIMIT

    def _wait_s(self) -> float:
        now = self.clock()
        due = [self._next_poll] if self._polling() else []
        deadline = self.core.next_deadline()
        if deadline is not None:
            due.append(deadline)
        return max(0.0, min([1.0, *(d - now for d in due)]))

    def _polling(self) -> bool:
        # Not while a reply is awaited: a status read blocks this loop (a printer that ignores DLE EOT makes
        # it wait out status_timeout_s), and the reply would wait behind it before its ticket is printed.
        return self.core.phase is not core.Phase.REQUESTING

    # --- inputs --------------------------------------------------------------------------------------------

    def _dispatch(self, item: object) -> None:
        match item:
            case ButtonPressed(key=key, at=at):
                self._feed(core.Press(key=key, at=at, request_id=self.new_id()))
            case ScanRead(text=str() as text, at=at):
                self._feed(core.CardScanned(text=text, at=at, today=self.today()))
            case ScanRead(at=at, problem=problem):
                self._feed(core.CardUnreadable(problem=problem, at=at))
            case Message():
                self._message(item)
            case LinkUp():
                self._feed(core.LinkChanged(up=True))
            case LinkDown():
                if not self._stopping.is_set():
                    self._feed(core.LinkChanged(up=False))
            case SimulatePrinter(status=status):
                if isinstance(self.printer, PreviewPrinter):
                    self.printer.simulate(status)
                    log.info("simulated printer state=%s", status.state)
                self._poll_printer(force=True)
            case _Stop():
                pass
            case _:
                log.debug("ignored inbox item %r", item)

    def _message(self, message: Message) -> None:
        parsed = self.topics.parse(message.topic)
        if parsed is None:
            return
        if parsed.kind is TopicKind.DISPENSER_TICKET and parsed.device == self.config.id:
            try:
                reply = wire.TicketReply.decode(message.payload)
            except PayloadError as exc:
                request_id, ticket_id = _ids_in(message.payload)
                log.error("unreadable ticket reply dispenser=%s request=%s ticket_id=%s code=%s: %s; the ticket (if "
                          "any) is reported not printed", self.config.id, request_id, ticket_id, exc.code,
                          exc.message)
                self._feed(core.ReplyUnreadable(request_id=request_id, ticket_id=ticket_id))
                return
            self._feed(core.ReplyReceived(reply))
        elif parsed.kind is TopicKind.STATUS and parsed.device == self.config.controller_id:
            if not message.payload:
                return  # a cleared retained presence says nothing
            try:
                presence = wire.Presence.decode(message.payload)
            except PayloadError as exc:
                log.warning("unreadable controller presence controller=%s: %s", self.config.controller_id, exc.message)
                return
            if presence.state == "offline":
                log.warning("hall controller is offline controller=%s; refusing presses until it is back",
                            self.config.controller_id)
            self._feed(core.ControllerPresence(online=presence.state == "online"))

    def _poll_printer(self, *, force: bool = False) -> None:
        now = self.clock()
        if not force and (now < self._next_poll or not self._polling()):
            return
        status = self._read_printer()
        ready = status.state in core.PRINTABLE
        self._next_poll = now + (self.config.printer.status_poll_s if ready else NOT_READY_POLL_S)

    def _read_printer(self) -> PrinterStatus:
        if not self._printer_opened:
            try:
                self.printer.open()
                self._printer_opened = True
            except PrinterError as exc:
                status = PrinterStatus("offline", str(exc))
                self._printer_changed(status)
                return status
        status = self.printer.status()
        self._status_read_at = self.clock()
        self._printer_changed(status)
        return status

    def _printer_changed(self, status: PrinterStatus) -> None:
        if status != self._printer_status:
            previous = self._printer_status
            self._printer_status = status
            if status.state in core.PRINTABLE and (previous is None or previous.state in core.PRINTABLE):
                log.info("printer %s state=%s %s", self.printer.description, status.state, status.detail)
            elif status.state in core.PRINTABLE:
                log.warning("printer %s ready again state=%s", self.printer.description, status.state)
            else:
                log.error("printer %s not ready state=%s detail=%s; presses are refused until it is fixed",
                          self.printer.description, status.state, status.detail)
        self._feed(core.PrinterChanged(status.state, status.detail))

    # --- the core and its decisions ------------------------------------------------------------------------

    def _feed(self, event: core.Event) -> None:
        pending = list(self.core.handle(event, now=self.clock()))
        while pending:
            output = pending.pop(0)
            follow_up = self._execute(output)
            if follow_up is not None:
                pending.extend(self.core.handle(follow_up, now=self.clock()))

    def _execute(self, output: core.Output) -> core.Event | None:
        cid = self.config.id
        match output:
            case core.SendRequest(request=request, attempt=attempt):
                if attempt == 1:
                    self._requested_at = self.clock()
                if attempt > 1:
                    log.warning("no reply yet; asking again dispenser=%s request=%s attempt=%d", cid,
                                request.request_id, attempt)
                self.link.publish(self.topics.dispenser_request(cid), request.encode(), qos=1)
            case core.PrintTicket(ticket=ticket, button=button):
                return self._print(ticket, button)
            case core.PrintSlip(code=code, button=button):
                return self._print_slip(code, button)
            case core.SendReport(report=report, number=number):
                self.link.publish(self.topics.dispenser_printed(cid), report.encode(), qos=1)
                if not report.ok:
                    log.warning("reported ticket=%s not printed reason=%s; the controller voids it", number,
                                report.reason)
            case core.ShowIndicators():
                self.indicators.show(output)
                if output.ready:
                    self.ready.set()
                else:
                    self.ready.clear()
                log.log(logging.INFO if self.announce_leds else logging.DEBUG, "leds ready=%s busy=%s fault=%s%s",
                        _on(output.ready), _on(output.busy), output.fault,
                        "" if self.scanner is None else f" card={_on(output.card)}")
            case core.PublishPrinterState(state=state, detail=detail):
                self.link.set_presence(self._presence(PrinterStatus(state, detail)))
            case core.Beep(pattern=pattern):
                self.indicators.beep(pattern)
            case core.PressIgnored(key=key, reason=reason):
                level = logging.DEBUG if reason in ("busy", "rate_limited") else logging.WARNING
                log.log(level, "press ignored key=%s reason=%s", key, reason)
                self._record(Outcome("ignored", key=key, detail=reason))
            case core.RequestAbandoned(request_id=rid, key=key, attempts=attempts):
                log.error("no reply from the hall controller after %d attempts; nothing printed key=%s request=%s",
                          attempts, key, rid)
                self._record(Outcome("abandoned", key=key, detail=rid))
            case core.TicketRefused(key=key, code=code, message=message):
                log.warning("ticket refused key=%s code=%s (%s): %s", key, code, error_label(code), message)
                self._record(Outcome("refused", key=key, detail=code))
            case core.StaleReply(request_id=rid):
                log.debug("reply for no request in progress request=%s", rid)
            case core.CardRead(kind=kind, length=length, replaced=replaced):
                log.info("card read: %s chars=%d%s; held for the next press", kind, length,
                         " (replaces the one read before)" if replaced else "")
                self._record(Outcome("card_read", detail=kind))
            case core.CardRejected(reason=reason, kept=kept):
                log.info("bad scan ignored: %s%s", reason, "; the card read before is kept" if kept else "")
                self._record(Outcome("card_rejected", detail=reason))
            case core.CardForgotten(kind=kind):
                log.info("card forgotten: %s, no press within %.0f s", kind,
                         self.core.cards.hold_s if self.core.cards else 0)
                self._record(Outcome("card_forgotten", detail=kind))
        return None

    def _print(self, ticket: wire.TicketInfo, button: core.ButtonSpec) -> core.Event:
        started = time.perf_counter()
        # Paper is only used up by printing, and the status is read right after every print and every
        # status_poll_s until a request goes out: ask again first only if the reading the press was accepted on
        # was stale (a late poll), not on every ticket, because three status round trips would sit between
        # the controller's reply and the first byte.
        before = self._printer_status or PrinterStatus("offline", "not read yet")
        if self._requested_at - self._status_read_at > self.config.printer.status_poll_s:
            before = self._read_printer()
        if before.state not in core.PRINTABLE:
            return self._print_failed(ticket, button, before.failure_reason, before.detail)
        progress = _JobProgress()
        try:
            preview = self.printer.send(_timed(self.jobs.pieces(ticket, button), progress),
                                        name=f"{ticket.number}-{ticket.id}")
        except PrinterError as exc:
            self._next_poll = self.clock()  # learn the printer's state at once
            return self._print_failed(ticket, button, exc.reason, str(exc))
        except (OSError, ValueError) as exc:
            log.exception("cannot draw ticket=%s; its header, already sent, is cut off", ticket.number)
            return self._print_failed(ticket, button, "error", str(exc))
        self._next_poll = self.clock()
        head_at, job_at = progress.written_at[0], progress.written_at[-1]
        log.info("printed ticket=%s service=%s key=%s priority=%s%s ahead=%d bytes=%d head_ms=%.1f rest_ms=%.1f%s",
                 ticket.number, ticket.service, button.key, ticket.priority, " card=yes" if ticket.card else "",
                 ticket.ahead, progress.size,
                 (head_at - started) * 1000, (job_at - head_at) * 1000,
                 f" preview={preview}" if preview is not None else "")
        self._record(Outcome("printed", key=button.key, number=ticket.number, ticket_id=ticket.id, preview=preview))
        return core.PrintFinished(ticket_id=ticket.id, ok=True)

    def _print_slip(self, code: str, button: core.ButtonSpec) -> core.Event:
        try:
            preview = self.printer.send(self.jobs.slip(code), name=f"slip-{code}-{self.new_id()[:8]}")
        except PrinterError as exc:
            self._next_poll = self.clock()
            log.error("could not print the refusal slip code=%s key=%s reason=%s: %s", code, button.key, exc.reason,
                      exc)
            self._record(Outcome("slip_failed", key=button.key, detail=code))
            return core.SlipPrinted()
        self._next_poll = self.clock()
        log.info("printed refusal slip code=%s key=%s%s", code, button.key,
                 f" preview={preview}" if preview is not None else "")
        self._record(Outcome("slip_printed", key=button.key, detail=code, preview=preview))
        return core.SlipPrinted()

    def _print_failed(self, ticket: wire.TicketInfo, button: core.ButtonSpec, reason: str, detail: str) -> core.Event:
        log.error("could not print ticket=%s key=%s reason=%s: %s", ticket.number, button.key, reason, detail)
        self._record(Outcome("print_failed", key=button.key, number=ticket.number, ticket_id=ticket.id, detail=reason))
        return core.PrintFinished(ticket_id=ticket.id, ok=False, reason=reason)

    def _presence(self, status: PrinterStatus) -> bytes:
        return wire.Presence(state="online", role="dispenser", printer=status.state,
                             detail=status.detail or None).encode()


def _on(value: bool) -> str:
    return "on" if value else "off"


def _ids_in(payload: bytes) -> tuple[str | None, str | None]:
    """The request id and ticket id of a ticket reply that does not decode, where they can still be read (a
    well-formed token each), so that a ticket nobody can print is voided rather than left waiting."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(obj, dict):
        return None, None
    ticket = obj.get("ticket")
    return _token(obj.get("request_id")), _token(ticket.get("id") if isinstance(ticket, dict) else None)


def _token(value: object) -> str | None:
    return value if isinstance(value, str) and _TOKEN.fullmatch(value) else None
