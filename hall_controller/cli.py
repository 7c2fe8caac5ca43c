"""Command line of the hall controller (console script ``hallq-controller``; also ``python -m hall_controller``).

    hallq-controller [run] --config FILE [--broker HOST:PORT] [--state-dir DIR]   run the hall
    hallq-controller check --config FILE                                          validate and exit
    hallq-controller provision --config FILE [...]   broker accounts and ACL (hall_controller.provision)
    hallq-controller certs [...]                     the hall's CA and broker certificate (hall_controller.tls)
    hallq-controller backup --config FILE [--state-dir DIR] [--to PATH] [--keep N]   (hall_controller.backup)
    hallq-controller restore --config FILE --from BACKUP [--state-dir DIR]
    hallq-controller clock status|confirm --config FILE [--state-dir DIR]   the hall's clock (see docs/reliability.md)

``--help`` lists every command (``COMMANDS``); ``COMMAND --help`` gives its options.

Exit status: 0 after a clean stop (SIGTERM/SIGINT) or a done command, 78 for a bad config, 65 for a damaged
or foreign ledger (or backup), 74 when the ledger (or backup) cannot be opened or read, 73 when a copy cannot be
written, 69 when ``restore`` finds the ledger open (the controller running). Every refusal is one readable
line, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType

from hall_controller import config as config_mod
from hall_controller.config import ControllerConfig
from hall_controller.ledger import (
    LEDGER_FILE,
    CopyError,
    Ledger,
    LedgerBusy,
    LedgerCorrupt,
    LedgerError,
    LedgerSummary,
)
from hall_controller.service import ControllerService, ReplayMismatch
from hallq import logsetup
from hallq.cli import config_refused, load_config
from hallq.configfile import LOG_LEVELS
from hallq.errors import (
    EXIT_CANTCREAT,
    EXIT_CONFIG,
    EXIT_DATAERR,
    EXIT_IOERR,
    EXIT_UNAVAILABLE,
    ConfigError,
    HallqError,
    InvariantError,
    ProfileError,
)

log = logging.getLogger("hall_controller")

__all__ = ["COMMANDS", "LEDGER_FILE", "main"]

PROG = "hallq-controller"
# Every command, with the line --help shows for it, in the order a hall is set up and kept.
COMMANDS = {
    "run": "run the hall controller (the default when no command is given)",
    "check": "check the config file and exit",
    "provision": "generate the broker's per-device passwords and ACL for a hall",
    "certs": "make the hall's CA and the broker's TLS certificate",
    "backup": "back up the ledger, also while the controller runs (default: backups/ in the state directory)",
    "restore": "put a backup in place of the ledger; only while the controller is stopped",
    "clock": "the hall's clock: status (is it synchronised? what does the ledger say?), or confirm (you vouch "
             "for it)",
    "profiles": "citizens' profiles: new-key, erase one citizen's profile, purge unused ones, read the audit",
}


def _parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS)) + 2
    listing = "\n".join(f"  {name:<{width}}{line}" for name, line in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROG, description="hallq hall controller", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"commands:\n{listing}\n\nThe options above are run's and check's; {PROG} COMMAND --help gives "
               "another command's.")
    parser.add_argument("command", nargs="?", choices=tuple(COMMANDS), default="run", metavar="COMMAND",
                        help="one of the commands below (default: run)")
    parser.add_argument("--config", required=True, type=Path, help="the hall's TOML config file")
    parser.add_argument("--broker", metavar="HOST:PORT", help="override [mqtt] broker")
    parser.add_argument("--state-dir", type=Path, help="override [controller] state_dir (where the ledger lives)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="override [controller] log_level")
    parser.add_argument("--clock-drill", type=Path, metavar="FILE",
                        help='rehearse a clock fault: shift the wall clock by FILE\'s {"offset_s": ..., '
                             '"synchronised": ...} (re-read when it changes); never in a working hall')
    return parser


def _copy_parser(command: str, epilog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} {command}", description=COMMANDS[command], epilog=epilog)
    parser.add_argument("--config", required=True, type=Path, help="the hall's TOML config file")
    parser.add_argument("--state-dir", type=Path, help="override [controller] state_dir (where the ledger lives; "
                        "the systemd unit gives /var/lib/hallq)")
    return parser


def _backup_parser() -> argparse.ArgumentParser:
    from hall_controller.backup import KEEP_DEFAULT  # noqa: PLC0415 - maintenance tools stay out of the service's imports

    parser = _copy_parser("backup", "Prints one line: the file, its size and its ticket count. See docs/operations.md.")
    parser.add_argument("--to", type=Path, metavar="PATH",
                        help="a directory for the backup (default: backups/ in the state directory), or the file "
                             "to write")
    parser.add_argument("--keep", type=_count, default=KEEP_DEFAULT, metavar="N",
                        help=f"keep the hall's newest N backups in the directory, remove older ones (default "
                             f"{KEEP_DEFAULT}; 0 keeps all; not with --to FILE)")
    return parser


def _restore_parser() -> argparse.ArgumentParser:
    parser = _copy_parser("restore", "The current ledger is moved into ledger-before-restore-TIME/ in the state "
                                     "directory, never deleted. See docs/operations.md.")
    parser.add_argument("--from", dest="source", required=True, type=Path, metavar="BACKUP",
                        help="the backup file (from backup)")
    return parser


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a number of backups: {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    handler = _HANDLERS.get(arguments[0]) if arguments else None
    if handler is not None:
        return handler(arguments[1:])
    return _run(arguments)


def _provision(arguments: list[str]) -> int:
    from hall_controller import provision  # noqa: PLC0415 - deployment tools stay out of the service's imports

    return provision.main(arguments)


def _certs(arguments: list[str]) -> int:
    from hall_controller import tls  # noqa: PLC0415

    return tls.main(arguments)


def _load(args: argparse.Namespace) -> ControllerConfig | None:
    """The config named by ``--config``, with ``--state-dir`` applied; None (logged) if it is bad."""
    cfg = load_config(config_mod.load, args.config, log=log)
    if cfg is None:
        return None
    return replace(cfg, state_dir=args.state_dir) if args.state_dir else cfg


def _backup(arguments: list[str]) -> int:
    from hall_controller import backup  # noqa: PLC0415

    args = _backup_parser().parse_args(arguments)
    logsetup.setup("INFO")
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG
    ledger_path = cfg.state_dir / LEDGER_FILE
    try:
        done = backup.take(ledger_path, hall_id=cfg.hall.id, to=args.to, keep=args.keep,
                           now=datetime.now(cfg.hall.zone))
    except LedgerBusy as exc:
        log.error("%s: a restore is under way; take the backup once it is done", exc)
        return EXIT_UNAVAILABLE
    except HallqError as exc:
        return _refused(exc, "backup", ledger_path)
    if done.keep is None:
        kept = "nothing rotated (a file named with --to)"
    elif done.keep == 0:
        kept = f"every backup in {done.path.parent} is kept (--keep 0)"
    else:
        kept = f"the newest {done.keep} of hall {cfg.hall.id}'s backups in {done.path.parent} are kept"
        kept += f", {len(done.removed)} older removed" if done.removed else ""
    sys.stdout.write(f"backup {done.path}: {_size(done.size_bytes)}, {_contents(done.summary)}; {kept}\n")
    return 0


def _restore(arguments: list[str]) -> int:
    from hall_controller import backup  # noqa: PLC0415

    args = _restore_parser().parse_args(arguments)
    logsetup.setup("INFO")
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG
    ledger_path = cfg.state_dir / LEDGER_FILE
    try:
        done = backup.restore(ledger_path, spec=cfg.hall, source=args.source, now=datetime.now(cfg.hall.zone))
    except LedgerBusy as exc:
        log.error("%s: the controller is running (or a backup is being taken). Stop it first (sudo systemctl stop "
                  "hallq-controller), then restore; nothing was changed", exc)
        return EXIT_UNAVAILABLE
    except HallqError as exc:
        return _refused(exc, "restore", ledger_path)
    previous = f"the previous ledger is in {done.previous}/" if done.previous else "there was no ledger before"
    sys.stdout.write(f"restored {done.ledger_path} from {args.source}: {_contents(done.summary)}; {previous}. "
                     "Start the controller now: it continues from the backup\n")
    return 0


def _refused(exc: HallqError, command: str, ledger_path: Path) -> int:
    """Log why ``command`` refused, in one line, and return its exit status."""
    if isinstance(exc, ConfigError):
        return config_refused(log, exc)
    if isinstance(exc, LedgerCorrupt):
        log.error("%s", exc)
        return EXIT_DATAERR
    if isinstance(exc, CopyError):
        log.error("%s: %s refused (is the directory there, writable by this user, and its disk not full?)",
                  exc, command)
        return EXIT_CANTCREAT
    if isinstance(exc, LedgerError):
        about_the_ledger = str(ledger_path) in str(exc)
        log.error("%s%s", exc, " (is --state-dir right, and the command run as root or as user hallq?)"
                  if about_the_ledger else "")
        return EXIT_IOERR
    log.error("%s refused: %s (ledger %s)", command, exc, ledger_path)
    return EXIT_IOERR


def _size(size_bytes: int) -> str:
    if size_bytes < 1024 * 1024:
        return f"{size_bytes / 1024:.0f} KiB"
    return f"{size_bytes / (1024 * 1024):.1f} MiB"


def _contents(summary: LedgerSummary) -> str:
    if summary.last_day is None:
        return f"no tickets ({summary.events:,} events)"
    return f"{summary.tickets:,} tickets, the last on business day {summary.last_day}"


def _clock(arguments: list[str]) -> int:
    parser = _copy_parser("clock", "status changes nothing. confirm tells the running controller (within a "
                                   "second) that the system clock is right: it then issues tickets and calls "
                                   "on it, and starts the business day it shows. See docs/reliability.md.")
    parser.add_argument("action", choices=("status", "confirm"))
    args = parser.parse_args(arguments)
    logsetup.setup("INFO")
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG
    from hall_controller.timesource import (  # noqa: PLC0415 - the running service needs none of this
        CLOCK_CONFIRM_FILE,
        CONFIRM_VALID_S,
    )
    from hallq.timesync import kernel_synchronised  # noqa: PLC0415

    now = datetime.now(cfg.hall.zone)
    synced = kernel_synchronised()
    last = _last_record(cfg.state_dir / LEDGER_FILE)
    lines = [f"system clock: {now.isoformat(timespec='seconds')} ({cfg.hall.zone.key}); business day "
             f"{cfg.hall.business_day(now)}",
             "synchronised: " + {True: "yes", False: "no (network time has not set it)", None: "unknown"}[synced],
             f"trust_clock: {cfg.trust_clock}"]
    if last is not None:
        behind = (now - last).total_seconds()
        lines.append(f"ledger's last record: {last.isoformat(timespec='seconds')}; business day "
                     f"{cfg.hall.business_day(last)}" + (f" — the clock is {-behind:.0f} s BEHIND it: it is wrong"
                                                         if behind < -2 else ""))
    if args.action == "confirm":
        if not _controller_running(cfg.state_dir / LEDGER_FILE):
            sys.stdout.write("\n".join(lines) + "\n")
            log.error("no controller has the ledger open: start it (sudo systemctl start hallq-controller), then "
                      "confirm; a confirmation counts only within %.0f s, never for a later start", CONFIRM_VALID_S)
            return EXIT_UNAVAILABLE
        if cfg.state_dir.is_dir():
            path = cfg.state_dir / CLOCK_CONFIRM_FILE
            try:
                path.write_text(now.isoformat() + "\n", encoding="utf-8")
            except OSError as exc:
                log.error("cannot write %s: %s (run as root or as user hallq)", path, exc)
                return EXIT_CANTCREAT
            lines.append(f"confirmed: the running controller takes {now.isoformat(timespec='seconds')} as right "
                         "within a second (its log says so)")
        else:
            log.error("%s is not a directory: is --state-dir right?", cfg.state_dir)
            return EXIT_CANTCREAT
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _controller_running(ledger_path: Path) -> bool:
    """Whether a process (the controller) has the ledger open: it holds SQLite's shared lock while it runs."""
    from hall_controller.ledger import held_exclusively  # noqa: PLC0415

    if not ledger_path.exists():
        return False
    try:
        with held_exclusively(ledger_path):
            return False
    except LedgerBusy:
        return True
    except LedgerError:
        return False


def _last_record(ledger_path: Path) -> datetime | None:
    """The time of the ledger's last record, read without changing anything (``None``: no ledger yet)."""
    import sqlite3  # noqa: PLC0415

    if not ledger_path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT at FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    except sqlite3.Error as exc:
        log.warning("cannot read the ledger %s: %s", ledger_path, exc)
        return None
    return None if row is None else datetime.fromisoformat(row[0])


def _profiles(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} profiles", description=COMMANDS["profiles"],
                                     epilog="See docs/privacy.md. Names no citizen's data on the screen but the "
                                            "reference of the profile it erased.")
    sub = parser.add_subparsers(dest="action", required=True)
    key = sub.add_parser("new-key", help="write a new key for the profiles (once, at installation)")
    key.add_argument("--out", type=Path, required=True, help="the key file to write (never overwritten)")
    for name, text in (("erase", "erase one citizen's profile on request"),
                       ("purge", "delete the profiles unused longer than [cards] retain_days now"),
                       ("audit", "print the record of profile views and changes, latest first")):
        action = sub.add_parser(name, help=text)
        action.add_argument("--config", required=True, type=Path, help="the hall's TOML config file")
        action.add_argument("--state-dir", type=Path, help="override [controller] state_dir")
        if name == "erase":
            who = action.add_mutually_exclusive_group(required=True)
            who.add_argument("--id-number", help="the citizen's 12-digit CCCD number")
            who.add_argument("--ref", help="the profile's reference (as the audit shows it)")
        if name == "audit":
            action.add_argument("--limit", type=_count, default=200, help="at most this many lines (default 200)")
    args = parser.parse_args(arguments)
    logsetup.setup("INFO")
    if args.action == "new-key":
        from hall_controller.profiles import new_key_text  # noqa: PLC0415

        try:
            with open(args.out, "x", encoding="ascii") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(new_key_text())
        except FileExistsError:
            log.error("%s exists: a key is never overwritten (the profiles sealed with it would be lost)", args.out)
            return EXIT_CANTCREAT
        except OSError as exc:
            log.error("cannot write %s: %s", args.out, exc)
            return EXIT_CANTCREAT
        sys.stdout.write(f"wrote a new profiles key to {args.out} (mode 0600); keep a copy with the backups' keys\n")
        return 0
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG
    if cfg.cards is None:
        log.error("%s has no [cards] table: this hall keeps no profiles", args.config)
        return EXIT_CONFIG
    from hall_controller import profiles  # noqa: PLC0415

    path = cfg.state_dir / profiles.FILE_NAME
    if args.action == "audit":
        try:
            rows = profiles.audit(path, limit=args.limit)
        except ProfileError as exc:
            log.error("%s", exc.message)
            return EXIT_IOERR
        for row in rows:
            where = f"counter {row.counter} ticket {row.number}" if row.counter else "-"
            sys.stdout.write(f"{row.at}  {row.what:<7}  profile {row.ref[:8]}  {where}\n")
        return 0
    try:
        store = profiles.ProfileStore(path, profiles.load_key(cfg.cards.key_file), keep=cfg.cards.keep)
    except ProfileError as exc:
        log.error("%s", exc.message)
        return EXIT_CONFIG
    now = datetime.now(cfg.hall.zone)
    try:
        if args.action == "purge":
            count = store.purge(now=now, retain_days=cfg.cards.retain_days)
            sys.stdout.write(f"deleted {count} profile(s) unused for {cfg.cards.retain_days} days; "
                             f"{store.count()} remain\n")
            return 0
        erased = store.erase(ref=args.ref, id_number=args.id_number, now=now)
    finally:
        store.close()
    if erased is None:
        sys.stdout.write("no such profile: nothing was erased\n")
        return 1
    sys.stdout.write(f"erased profile {erased[:8]} (its card numbers, visits and data); the audit keeps that it "
                     "was erased\n")
    return 0


_HANDLERS: dict[str, Callable[[list[str]], int]] = {
    "provision": _provision, "certs": _certs, "backup": _backup, "restore": _restore, "clock": _clock,
    "profiles": _profiles,
}


def _run(arguments: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(arguments)
    if args.command in _HANDLERS:
        parser.error(f"the command comes first: {PROG} {args.command} --help")
    logsetup.setup(args.log_level or "INFO")
    cfg = load_config(config_mod.load, args.config, log=log, broker=args.broker)
    if cfg is None:
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
        time_source = None
        if args.clock_drill is not None:
            from hall_controller.timesource import DrillTime  # noqa: PLC0415 - a drill, not the hall's day

            time_source = DrillTime(cfg.hall.zone, args.clock_drill)
            log.warning("clock drill: the wall clock is read through %s", args.clock_drill)
        citizens = None
        if cfg.cards is not None:
            from hall_controller import profiles  # noqa: PLC0415 - cryptography only where cards are read
            from hall_controller.citizens import CitizenDesk  # noqa: PLC0415

            store = profiles.ProfileStore(cfg.state_dir / profiles.FILE_NAME, profiles.load_key(cfg.cards.key_file),
                                          keep=cfg.cards.keep)
            citizens = CitizenDesk(store, cfg.cards, cfg.hall)
            log.info("citizens' cards read: %d profile(s) in %s, kept %d days unused", store.count(), store.path,
                     cfg.cards.retain_days)
        service = ControllerService(cfg, ledger=ledger, time_source=time_source, citizens=citizens)
        service.start()
    except ProfileError as exc:
        log.error("%s", exc.message)
        return EXIT_CONFIG
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
        return config_refused(log, exc)
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
