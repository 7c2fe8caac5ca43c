"""Command line of the dispenser.

    python -m dispenser --config FILE [--broker HOST:PORT]              run the kiosk
    python -m dispenser --simulate --config FILE [--preview-dir DIR]    mock pins + preview printer + keyboard
    python -m dispenser --simulate --with-printer --config FILE         mock pins + keyboard + the real printer
    python -m dispenser check --config FILE                             validate the config and exit
    python -m dispenser print-test --config FILE [--preview OUT.png]    print (or preview) a test ticket

Exit status: 0 after a clean stop (SIGTERM/SIGINT, or the end of input in ``--simulate``), 78 for a bad
config, 69 when the GPIO pins or (for ``print-test``) the printer are unavailable. Every refusal is one
readable line, never a traceback.

python-escpos is imported only once its printer database cache is set up (``dispenser.escpos_cache``): the
modules that import it (the config, the printers, the service) are imported inside ``main`` and the commands,
after the set-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from dispenser import core, escpos_cache
from dispenser.hardware import HardwareError, make_pin_factory
from dispenser.ticket import TicketRenderer, sample_ticket
from hallq import logsetup
from hallq.cli import config_refused, load_config
from hallq.configfile import LOG_LEVELS
from hallq.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, ConfigError

if TYPE_CHECKING:
    from dispenser.config import DispenserConfig

log = logging.getLogger("dispenser")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispenser", description="hallq ticket dispenser (kiosk)")
    parser.add_argument("command", nargs="?", choices=("run", "check", "print-test"), default="run",
                        help="run the dispenser (default), check the config, or print a test ticket")
    parser.add_argument("--config", required=True, type=Path, help="the dispenser's TOML config file")
    parser.add_argument("--broker", metavar="HOST:PORT", help="override [mqtt] broker")
    parser.add_argument("--simulate", action="store_true",
                        help="gpiozero mock pins, the preview printer, and buttons pressed from the keyboard "
                             "(one key at a time on a terminal, one key per line from a pipe)")
    parser.add_argument("--with-printer", action="store_true",
                        help="with --simulate: print on the configured printer instead of writing previews")
    parser.add_argument("--preview-dir", type=Path, help="override [printer] preview_dir (where previews go)")
    parser.add_argument("--preview", type=Path, metavar="OUT.png",
                        help="print-test: write the test ticket as a PNG instead of printing it")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="override [dispenser] log_level")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logsetup.setup(args.log_level or "INFO")
    escpos_cache.import_escpos(escpos_cache.shared_directory(os.environ))
    from dispenser import config as config_mod  # noqa: PLC0415 - imports python-escpos: after its cache set-up

    cfg = load_config(config_mod.load, args.config, log=log, broker=args.broker)
    if cfg is None:
        return EXIT_CONFIG
    if args.preview_dir is not None:
        cfg = replace(cfg, printer=replace(cfg.printer, preview_dir=args.preview_dir))
    if args.command == "check":
        p = cfg.printer
        sys.stdout.write(f"{args.config}: OK — dispenser {cfg.id} of hall {cfg.hall}: {len(cfg.buttons)} buttons, "
                         f"{p.type} printer, {p.paper_width_mm} mm paper ({p.width_dots} dots), profile {p.profile}"
                         + (f", card scanner {cfg.scanner.device}" if cfg.scanner is not None else "") + "\n")
        return 0
    logsetup.setup(args.log_level or cfg.log_level)
    if args.command == "print-test":
        return _print_test(cfg, args.preview, now=datetime.now(UTC))
    return _run(cfg, simulate=args.simulate, keep_printer=args.with_printer)


def _print_test(cfg: DispenserConfig, preview: Path | None, *, now: datetime) -> int:
    from dispenser.printer import PrinterError, TicketJobs, read_job  # noqa: PLC0415 - imports python-escpos
    from dispenser.service import make_printer  # noqa: PLC0415 - imports python-escpos

    # Real tickets carry the controller's time in the hall's zone; the test ticket shows the same clock.
    ticket, button = sample_ticket(hall_id=cfg.hall, issued_at=now.astimezone(cfg.zone))
    # The very jobs the service prints, so the test ticket shows what a citizen gets.
    jobs = TicketJobs(TicketRenderer(cfg.layout, width_dots=cfg.printer.width_dots), profile=cfg.printer.profile)
    job = jobs.job(ticket, button)
    if preview is not None:
        # Decoded from the job's bytes: exactly what the printer would put on paper.
        preview.parent.mkdir(parents=True, exist_ok=True)
        picture = read_job(job).picture()
        picture.save(preview)
        sys.stdout.write(f"{preview}: test ticket, {picture.width}x{picture.height} dots, {len(job)} bytes\n")
        return 0
    printer = make_printer(cfg.printer)
    status = printer.status()
    if status.state not in core.PRINTABLE:
        log.error("printer %s is not ready: %s %s", printer.description, status.state, status.detail)
        return EXIT_UNAVAILABLE
    try:
        written = printer.send(job, name="print-test")
    except PrinterError as exc:
        log.error("print-test failed reason=%s: %s", exc.reason, exc)
        return EXIT_UNAVAILABLE
    finally:
        printer.close()
    sys.stdout.write(f"printed a test ticket on {printer.description} ({status.state}; {len(job)} bytes)"
                     + (f": {written}" if written else "") + "\n")
    return 0


def _run(cfg: DispenserConfig, *, simulate: bool, keep_printer: bool = False) -> int:
    from dispenser.printer import PreviewPrinter  # noqa: PLC0415 - imports python-escpos
    from dispenser.service import DispenserService, make_printer  # noqa: PLC0415 - imports python-escpos
    from dispenser.simulate import KeyboardFeeder, ScannerPty, help_text  # noqa: PLC0415 - imports python-escpos

    factory: Any
    scanner_pty: ScannerPty | None = None
    try:
        if simulate:
            from gpiozero.pins.mock import MockFactory  # noqa: PLC0415 - only the simulation needs it

            factory = MockFactory()
            if not keep_printer:
                cfg = cfg.with_preview(None)
            if cfg.scanner is not None:
                # The real serial adapter reads a pseudo-terminal that "scan" lines write into.
                scanner_pty = ScannerPty()
                cfg = replace(cfg, scanner=replace(cfg.scanner, device=scanner_pty.path))
        else:
            factory = make_pin_factory(cfg.pin_factory)
        printer = make_printer(cfg.printer)
        service = DispenserService(cfg, printer=printer, pin_factory=factory, announce_leds=simulate)
    except HardwareError as exc:
        log.error("%s (set [gpio] pin_factory, e.g. lgpio on a Raspberry Pi 5, or use --simulate)", exc)
        return EXIT_UNAVAILABLE
    except ConfigError as exc:  # e.g. the MQTT password file, read when connecting
        return config_refused(log, exc)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received; stopping", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("dispenser starting id=%s hall=%s broker=%s:%s printer=%s", cfg.id, cfg.hall, cfg.broker.host,
             cfg.broker.port, printer.description)
    if not simulate:
        service.run()
        return 0
    pins = {w.key: w.pin for w in cfg.wiring}

    def press(pin: int) -> None:
        mock = factory.pin(pin)
        mock.drive_low()
        mock.drive_high()

    scanning = scanner_pty is not None
    feeder = KeyboardFeeder(stream=sys.stdin, pins=pins, press_pin=press, inbox=service.inbox, on_end=service.stop,
                            help_message=help_text(cfg.buttons, scanner=scanning),
                            scan=None if scanner_pty is None else scanner_pty.scan)
    sys.stderr.write(help_text(cfg.buttons, scanner=scanning) + "\n")
    if isinstance(printer, PreviewPrinter):
        log.info("simulated printer writes previews to %s", printer.directory.resolve())
    if scanner_pty is not None:
        log.info("simulated card scanner on %s", scanner_pty.path)
    try:
        with feeder.terminal_mode():
            feeder.start()
            service.run()
    finally:
        if scanner_pty is not None:
            scanner_pty.close()
    return 0
