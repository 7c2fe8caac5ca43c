"""Command line of the hall controller.

    python -m hall_controller --config FILE [--broker HOST:PORT] [--state-dir DIR]   run the hall
    python -m hall_controller check --config FILE                                    validate and exit
    python -m hall_controller provision --config FILE [...]   broker accounts and ACL (hall_controller.provision)
    python -m hall_controller certs [...]                     the hall's CA and broker certificate (hall_controller.tls)

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 78 for a bad config, 65 for a damaged ledger,
74 when the ledger cannot be opened. Every refusal is one readable line, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

from hall_controller import config as config_mod
from hall_controller.ledger import Ledger, LedgerCorrupt, LedgerError
from hall_controller.service import ControllerService, ReplayMismatch
from hallq import logsetup
from hallq.configfile import LOG_LEVELS, broker_override
from hallq.errors import EXIT_CONFIG, EXIT_DATAERR, EXIT_IOERR, ConfigError, InvariantError

log = logging.getLogger("hall_controller")

LEDGER_FILE = "ledger.sqlite3"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hall_controller", description="hallq hall controller")
    parser.add_argument("command", nargs="?", choices=("run", "check"), default="run",
                        help="run the controller (default) or check the config and exit")
    parser.add_argument("--config", required=True, type=Path, help="the hall's TOML config file")
    parser.add_argument("--broker", metavar="HOST:PORT", help="override [mqtt] broker")
    parser.add_argument("--state-dir", type=Path, help="override [controller] state_dir (where the ledger lives)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="override [controller] log_level")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["provision"]:
        from hall_controller import provision  # noqa: PLC0415 - deployment tools stay out of the service's imports

        return provision.main(arguments[1:])
    if arguments[:1] == ["certs"]:
        from hall_controller import tls  # noqa: PLC0415

        return tls.main(arguments[1:])
    args = _parser().parse_args(arguments)
    logsetup.setup(args.log_level or "INFO")
    try:
        cfg = config_mod.load(args.config)
        cfg = replace(cfg, broker=broker_override(cfg.broker, args.broker))
    except ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return EXIT_CONFIG
    if args.state_dir:
        cfg = replace(cfg, state_dir=args.state_dir)
    if args.command == "check":
        hall = cfg.hall
        sys.stdout.write(f"{args.config}: OK — hall {hall.id}: {len(hall.services)} services, "
                         f"{len(hall.counters)} counters, {len(hall.dispensers)} dispensers\n")
        return 0
    logsetup.setup(args.log_level or cfg.log_level)
    ledger_path = cfg.state_dir / LEDGER_FILE
    try:
        ledger = Ledger(ledger_path, hall_id=cfg.hall.id)
        service = ControllerService(cfg, ledger=ledger)
        service.start()
    except LedgerCorrupt as exc:
        log.error("%s. Refusing to start: move the file aside only if you accept losing today's numbering, "
                  "or restore it from a backup", exc)
        return EXIT_DATAERR
    except LedgerError as exc:
        log.error("%s. Check that %s exists and is writable by this user", exc, cfg.state_dir)
        return EXIT_IOERR
    except ReplayMismatch as exc:
        log.error("%s; restore the config or start a new ledger after the business day", exc)
        return EXIT_CONFIG
    except ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return EXIT_CONFIG
    except InvariantError as exc:
        log.error("ledger %s cannot be replayed: %s. Refusing to start; restore it from a backup", ledger_path, exc)
        return EXIT_DATAERR

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received; stopping", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("hall controller starting hall=%s broker=%s:%s ledger=%s", cfg.hall.id, cfg.broker.host,
             cfg.broker.port, ledger_path)
    service.run()
    return 0
