"""Command line of the hall manager (console script ``hallq-manager``).

    hallq-manager report --config HALL.toml [--ledger PATH]
                         (--day 2026-12-04 | --week 2026-W49 | --month 2026-12 | --from D --to D)
                         [--service S] [--counter C] [--lane regular|priority] [--category X]
                         [--format text|csv|xlsx|html] [--lang vi|en] [--output FILE]
                         [--cache DIR | --no-cache] [--cpu-share 0.1]

    hallq-manager users add NAME --role manager|viewer [--users FILE] [--password-stdin]
    hallq-manager users passwd NAME [--users FILE] [--password-stdin]
    hallq-manager users remove NAME [--users FILE]
    hallq-manager users list [--users FILE]

    hallq-manager run --config MANAGER.toml [--broker HOST:PORT] [--listen HOST:PORT]
    hallq-manager check --config MANAGER.toml

``run`` serves the hall's office (live view, actions, reports) until SIGTERM; ``check`` loads the manager's
config, the hall config it names, the TLS certificate and the users file, and says OK or the problem (exit 78
for a bad config, 69 when the listening address is taken).

``report`` reads the ledger read-only (also while the controller runs; default: ``ledger.sqlite3`` in the
config's ``[controller] state_dir``) and writes the report to FILE or standard output. Each command is one
entry in ``COMMANDS``, with a parser builder and a handler.

``users`` keeps the web service's accounts (default file ``/var/lib/hallq/manager/users.json``); a password
is asked twice on the terminal, or read as one line from standard input with ``--password-stdin``, never
from the command line.

Exit status: 0 done, 2 for a bad argument (a date, an unknown service or counter, a missing ledger), 78 for a
bad config, 65 for a ledger that cannot be read as one, 73 when the output cannot be written. Every refusal
is one line on standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hall_controller import config as config_mod
from hall_controller.ledger import LEDGER_FILE
from hallq import logsetup
from hallq.cli import config_refused, load_config
from hallq.errors import EXIT_CANTCREAT, EXIT_CONFIG, EXIT_DATAERR, EXIT_UNAVAILABLE, ConfigError, InvariantError
from manager import budget, journal, reports, service
from manager import cache as report_cache
from manager import config as manager_config
from manager.render import render_csv, render_html, render_text, render_xlsx
from manager.users import ROLES, UserError, Users, check_name, check_password

log = logging.getLogger("manager")

PROG = "hallq-manager"
EXIT_USAGE = 2
FORMATS = ("text", "csv", "xlsx", "html")


class UsageError(Exception):
    """A bad argument: said in one line, exit status 2."""


@dataclass(frozen=True, slots=True)
class Command:
    help: str
    parser: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _report_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the hall's TOML config (the controller's)")
    parser.add_argument("--ledger", type=Path, help="the ledger file (default: ledger.sqlite3 in [controller] "
                                                    "state_dir)")
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--day", metavar="YYYY-MM-DD", help="one business day")
    when.add_argument("--week", metavar="YYYY-Www", help="an ISO week (Monday to Sunday)")
    when.add_argument("--month", metavar="YYYY-MM", help="a calendar month")
    when.add_argument("--from", dest="from_day", metavar="YYYY-MM-DD", help="first business day (with --to)")
    parser.add_argument("--to", dest="to_day", metavar="YYYY-MM-DD", help="last business day (with --from)")
    parser.add_argument("--service", help="only this service's visits")
    parser.add_argument("--counter", help="only visits called at this counter")
    parser.add_argument("--lane", choices=reports.LANES, help="only regular or only priority tickets")
    parser.add_argument("--category", help="only priority tickets of this category")
    parser.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    parser.add_argument("--lang", choices=("vi", "en"), default="vi", help="labels' language (default vi)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write here (default: standard output)")
    parser.add_argument("--cache", type=Path, metavar="DIR", default=report_cache.DEFAULT_CACHE_DIR,
                        help=f"keep closed days' summaries in DIR/{report_cache.CACHE_FILE} (default: "
                             f"{report_cache.DEFAULT_CACHE_DIR})")
    parser.add_argument("--no-cache", action="store_true", help="read every day from the ledger, keep nothing")
    parser.add_argument("--cpu-share", type=_cpu_share, default=budget.DEFAULT_CPU_SHARE, metavar="SHARE",
                        help="past its first 0.5 s of CPU, use at most this share of one core, at the lowest CPU "
                             f"priority, so that the hall comes first (default {budget.DEFAULT_CPU_SHARE}; 1: full "
                             "speed)")


def _cpu_share(text: str) -> float:
    try:
        return budget.check_share(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _period(args: argparse.Namespace) -> reports.Period:
    if args.from_day is not None or args.to_day is not None:
        if args.from_day is None or args.to_day is None:
            raise UsageError("--from and --to go together")
        return reports.range_period(args.from_day, args.to_day)
    if args.day is not None:
        return reports.day_period(args.day)
    if args.week is not None:
        return reports.week_period(args.week)
    return reports.month_period(args.month)


def _report(args: argparse.Namespace) -> int:
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return EXIT_CONFIG
    spec = cfg.hall
    try:
        period = _period(args)
        filters = reports.Filters(service=args.service, counter=args.counter, lane=args.lane,
                                  category=args.category)
        filters.check(spec)
    except (reports.ReportError, UsageError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    ledger = args.ledger or cfg.state_dir / LEDGER_FILE
    if not ledger.is_file():
        log.error("there is no ledger %s (give --ledger, or check [controller] state_dir)", ledger)
        return EXIT_USAGE
    if args.format in ("xlsx",) and args.output is None and sys.stdout.isatty():
        log.error("an xlsx report is binary: give --output FILE")
        return EXIT_USAGE
    now = datetime.now(spec.zone)
    try:
        with budget.report_executor() as report_thread:
            report = report_thread.submit(
                lambda: report_cache.build_report(ledger, spec=spec, period=period, filters=filters, now=now,
                                                  cache_dir=None if args.no_cache else args.cache,
                                                  budget=budget.CpuBudget(args.cpu_share))).result()
    except (journal.JournalError, InvariantError) as exc:
        log.error("%s", exc)
        return EXIT_DATAERR
    document: str | bytes
    match args.format:
        case "text":
            document = render_text(report, args.lang)
        case "csv":
            document = render_csv(report, args.lang)
        case "xlsx":
            document = render_xlsx(report, args.lang)
        case _:
            document = render_html(report, args.lang)
    data = document.encode("utf-8") if isinstance(document, str) else document
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        log.error("cannot write %s: %s", args.output, exc.strerror)
        return EXIT_CANTCREAT
    return 0


DEFAULT_USERS_FILE = Path("/var/lib/hallq/manager/users.json")
EXIT_INTERRUPTED = 130


def _users_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="create an account", description="create an account")
    add.add_argument("name", help="1-32 of a-z 0-9 . _ -")
    add.add_argument("--role", required=True, choices=ROLES, help="viewer: sees the hall; manager: also acts")
    passwd = sub.add_parser("passwd", help="give an account a new password", description="give an account a new "
                                                                                           "password")
    passwd.add_argument("name")
    remove = sub.add_parser("remove", help="delete an account (its sessions end)", description="delete an account")
    remove.add_argument("name")
    listing = sub.add_parser("list", help="the accounts and their roles", description="the accounts and roles")
    for action in (add, passwd):
        action.add_argument("--password-stdin", action="store_true",
                            help="read the password as one line from standard input (for scripts)")
    for action in (add, passwd, remove, listing):
        action.add_argument("--users", type=Path, default=DEFAULT_USERS_FILE, metavar="FILE",
                            help=f"the users file (default {DEFAULT_USERS_FILE})")


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask the password on: give it on standard input with --password-stdin")
    try:
        first = getpass.getpass("Mật khẩu mới / New password: ")
        check_password(first)
        second = getpass.getpass("Nhập lại mật khẩu / The password again: ")
    except EOFError:
        raise UsageError("no password given") from None
    if first != second:
        raise UsageError("the two passwords differ; nothing changed")
    return first


def _users_action(users: Users, args: argparse.Namespace) -> None:
    match args.users_command:
        case "list":
            sys.stdout.writelines(f"{user.name}\t{user.role}\n" for user in users.list())
            sys.stdout.flush()
        case "add":
            check_name(args.name)  # before asking for a password
            if users.get(args.name) is not None:
                raise UserError("exists", f"user {args.name!r} already exists (change its password with passwd)")
            users.add(args.name, _new_password(args), args.role)
            log.info("added user=%s role=%s file=%s", args.name, args.role, args.users)
        case "passwd":
            user = users.get(args.name)
            if user is None:
                raise UserError("unknown_user", f"there is no user {args.name!r}")
            users.add(user.name, _new_password(args), user.role, replace=True)
            log.info("new password user=%s file=%s", user.name, args.users)
        case _:
            users.remove(args.name)
            log.info("removed user=%s file=%s", args.name, args.users)


def _users(args: argparse.Namespace) -> int:
    try:
        _users_action(Users.load(args.users), args)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except (UserError, UsageError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except OSError as exc:
        log.error("cannot write %s: %s", args.users, exc.strerror or exc)
        return EXIT_CANTCREAT
    except KeyboardInterrupt:
        log.error("interrupted; nothing changed")
        return EXIT_INTERRUPTED
    return 0

def _service_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the manager's TOML config")
    parser.add_argument("--broker", metavar="HOST:PORT", help="override [mqtt] broker")
    parser.add_argument("--listen", metavar="HOST:PORT", help="override [manager] listen")


def _service_config(args: argparse.Namespace) -> manager_config.ManagerConfig | None:
    listen = args.listen

    def override(cfg: manager_config.ManagerConfig) -> manager_config.ManagerConfig:
        cfg = cfg.with_listen(listen) if listen else cfg
        cfg.ssl_context()  # a certificate that cannot be used is a bad config, said now
        return cfg

    return load_config(manager_config.load, args.config, log=log, broker=args.broker, override=override)


def _check(args: argparse.Namespace) -> int:
    cfg = _service_config(args)
    if cfg is None:
        return EXIT_CONFIG
    try:
        users = Users.load(cfg.users_file)
    except ConfigError as exc:
        return config_refused(log, exc)
    notes = [] if cfg.ledger.is_file() else [f"no ledger {cfg.ledger} yet (the live view starts from the broker)"]
    if not users.list():
        notes.append(f"nobody can log in yet: hallq-manager users add NAME --role manager --users {cfg.users_file}")
    sys.stdout.write(f"{args.config}: OK — manager {cfg.manager_id} of hall {cfg.hall.id} on {cfg.url}, "
                     f"{len(users.list())} account(s)\n" + "".join(f"  note: {n}\n" for n in notes))
    return 0


def _run(args: argparse.Namespace) -> int:
    cfg = _service_config(args)
    if cfg is None:
        return EXIT_CONFIG
    logsetup.setup(cfg.log_level)
    try:
        service.run(cfg)
    except ConfigError as exc:  # the users file, or the MQTT password file read when connecting
        return config_refused(log, exc)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            log.error("cannot listen on %s: %s (another program uses it? change [manager] listen)", cfg.url,
                      exc.strerror)
            return EXIT_UNAVAILABLE
        raise
    return 0


COMMANDS: dict[str, Command] = {
    "report": Command("a report on the hall's work over a day, week, month or range", _report_parser, _report),
    "users": Command("the web service's accounts: add, passwd, remove, list", _users_parser, _users),
    "run": Command("serve the hall's office: live view, actions, reports (HTTPS)", _service_parser, _run),
    "check": Command("check the manager's config and say OK or the problem", _service_parser, _check),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="hallq hall manager")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.parser(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
