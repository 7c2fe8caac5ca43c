"""Command line of a counter.

    hallq-counter --config FILE [--broker HOST:PORT]                        the keypad (Raspberry Pi)
    hallq-counter console --config FILE [--broker HOST:PORT] [--log-file F] the clerk's terminal UI
    hallq-counter check --config FILE                                       validate and exit

(``hallq-counter`` is the console script in the virtual environment's ``bin``; ``python -m counter`` with that
environment's Python is the same program.)

Exit status: 0 after a clean stop, 78 for a bad config, 69 (EX_UNAVAILABLE) when the keypad's GPIO pins are
unavailable (no pin factory works on this machine, a pin in use or missing): one readable line each, never a
traceback. The console owns the terminal, so its log goes to ``--log-file`` (or nowhere); everything a clerk
needs is on screen.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from counter import config as config_mod
from counter.console import run_console
from counter.keypad import KeypadError
from counter.service import KeypadService
from hallq import logsetup
from hallq.cli import config_refused, load_config
from hallq.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, ConfigError

log = logging.getLogger("counter")



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hallq-counter", description="hallq counter: keypad or console")
    parser.add_argument("mode", nargs="?", choices=("keypad", "console", "check"), default="keypad",
                        help="keypad (default), console, or check the config and exit")
    parser.add_argument("--config", required=True, type=Path, help="the counter's TOML config file")
    parser.add_argument("--broker", metavar="HOST:PORT", help="override [mqtt] broker")
    parser.add_argument("--log-file", type=Path, help="console only: append the log to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logsetup.setup("INFO")
    cfg = load_config(config_mod.load, args.config, log=log, broker=args.broker)
    if cfg is None:
        return EXIT_CONFIG
    if args.mode == "check":
        sys.stdout.write(f"{args.config}: OK — counter {cfg.counter} of hall {cfg.hall}\n")
        return 0
    if args.mode == "keypad" and cfg.keypad is None:
        return config_refused(log, ConfigError(str(args.config), "keypad",
                                               "is required to run the keypad (or run: console)"))
    if args.mode == "console":
        return _console(cfg, args.log_file)
    logsetup.setup(cfg.log_level)
    return _keypad(cfg)


def _keypad(cfg: config_mod.CounterConfig) -> int:
    try:
        service = KeypadService(cfg)
    except KeypadError as exc:
        log.error("GPIO unavailable: %s: %s", cfg.source, exc)
        return EXIT_UNAVAILABLE

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received; stopping", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    service.run()
    return 0


def _console(cfg: config_mod.CounterConfig, log_file: Path | None) -> int:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(cfg.log_level)
    else:
        root.addHandler(logging.NullHandler())
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        run_console(cfg)
    return 0
