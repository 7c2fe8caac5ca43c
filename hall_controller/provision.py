"""Broker credentials and access control for one hall, generated from the hall's config.

    python -m hall_controller provision --config /etc/hallq/hall.toml [--out /etc/hallq/broker]
        [--displays FILE] [--rotate DEVICE]... [--rotate-all] [--local-credential FILE]

Theory of operation: every device of the hall gets its own MQTT account, username = client id = its device
id (the broker enforces that with ``use_username_as_clientid``). The devices come from the hall's config
(the controller's ``client_id``, every ``[[dispensers]]`` and ``[[counters]]``) and from a small displays
file (``displays = ["display-1", ...]``; default ``displays.toml`` next to the hall config), because the
hall config does not list displays. A counter's account is ``counter-{id}``, the counter program's default
client id; a dispenser's and a display's account is its id.

The controller receives on one connection per dispenser and per counter, plus one for ids the config does not
know (``ControllerConfig.intakes``; see ``connections.py``). Each is an account of its own, because a client id is
its username: ``{client_id}.dispenser.{id}``, ``{client_id}.counter.{id}``, ``{client_id}.others``. These
"intake" accounts carry the controller's own password hash (the controller logs in to each with its one
credential), get no credential file, follow the controller's account when it is rotated, and may only read
the topics their connection subscribes to. The ``others`` account is also denied every configured device's
topics, so the broker never sends it what a device's own connection receives.

The access rules follow one principle: what the hall's public screens show anyway (``calls``, ``board``, ``notice``,
every ``counter/+/state`` and every ``status/+``) is readable by every device; everything addressed to one
device is readable only by that device (and the controller); each device publishes only its own topics and
its own presence, displays publish nothing, and the controller reads and writes the whole hall (which also lets
it clear a retained message a device left on its own topic: the ACL cannot forbid the retain flag; see
``service.py``). A technician's read-only ``monitor`` account reads the whole hall for troubleshooting, except
the topics that may carry a citizen's personal data (requests, counters' commands and replies). Topic
strings come from ``hallq.topics.Topics`` only.

Outputs, in ``--out``: ``passwd`` (Mosquitto's hashed password file, PBKDF2-SHA512 ``$7$`` lines as
``mosquitto_passwd`` writes them), ``acl`` and ``credentials/{device}.mqtt-password`` (the device's
password in clear, mode 0600: copy it to the device, where its unit loads it with ``LoadCredential``).
Running the command again keeps every existing account's password (its ``passwd`` line is kept as is)
unless ``--rotate DEVICE`` or ``--rotate-all`` asks for a new one; devices no longer in the config lose
their account. Files are only rewritten when their content changes, so a second run changes nothing.
The broker reads the files again on ``systemctl reload mosquitto``.

The pure part (``devices_of``, ``acl_text``, ``plan``) takes the device list, the existing password file
and password/salt sources as parameters and returns file contents; ``provision`` does the file work.
"""

from __future__ import annotations

import argparse
import base64
import grp
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hall_controller import config as config_mod
from hall_controller.config import ControllerConfig
from hallq import logsetup
from hallq.configfile import load_toml
from hallq.errors import EXIT_CANTCREAT, EXIT_CONFIG, ConfigError, HallqError
from hallq.limits import MAX_ID_LEN
from hallq.topics import Topics, is_valid_id

log = logging.getLogger(__name__)

Role = Literal["controller", "intake", "dispenser", "counter", "manager", "display", "monitor"]
MONITOR_USER = "monitor"
COUNTER_USER_PREFIX = "counter-"
PBKDF2_ITERATIONS = 1000  # mosquitto_passwd uses 101; device passwords are random, the broker verifies each connect
CREDENTIAL_SUFFIX = ".mqtt-password"
DEFAULT_OUT = Path("/etc/hallq/broker")
_ID_CHARS = re.compile(r"[A-Za-z0-9_.-]{1,200}")


class ProvisionError(HallqError, ValueError):
    """The hall's devices cannot be given distinct accounts (e.g. a display id equals a dispenser id)."""


@dataclass(frozen=True, slots=True)
class Device:
    """One MQTT account: ``username`` (= client id) and the id the hall's topics use for the device. For an
    ``intake`` account, ``topic_id`` is ``dispenser:{id}``, ``counter:{id}`` or ``others``."""

    username: str
    role: Role
    topic_id: str


def devices_of(config: ControllerConfig, *, displays: Sequence[str]) -> list[Device]:
    """Every account of the hall, in a stable order; ProvisionError if two devices would share a username."""
    hall = config.hall
    devices = [Device(config.client_id, "controller", config.client_id)]
    devices += [Device(intake.name, "intake", f"{intake.role}:{intake.device}" if intake.device else intake.role)
                for intake in config.intakes()]
    devices += [Device(d.id, "dispenser", d.id) for d in hall.dispensers]
    devices += [Device(f"{COUNTER_USER_PREFIX}{c.id}", "counter", c.id) for c in hall.counters]
    if config.manager_id is not None:
        devices.append(Device(config.manager_id, "manager", config.manager_id))
    devices += [Device(d, "display", d) for d in displays]
    devices.append(Device(MONITOR_USER, "monitor", MONITOR_USER))
    seen: dict[str, Device] = {}
    for device in devices:
        # Intake usernames are built from two valid ids, so only their length may exceed the limit of an id.
        if not is_valid_id(device.username) and not (device.role == "intake" and _ID_CHARS.fullmatch(device.username)):
            raise ProvisionError(f"{device.role} {device.topic_id!r}: username {device.username!r} is not a valid "
                                 f"id (1-{MAX_ID_LEN} of A-Z a-z 0-9 _ . -)")
        if device.username in seen:
            other = seen[device.username]
            raise ProvisionError(f"{device.role} {device.topic_id!r} and {other.role} {other.topic_id!r} would both "
                                 f"use the MQTT username {device.username!r}; give one of them another id")
        seen[device.username] = device
    return devices


def _rules(topics: Topics, device: Device, known: Sequence[Device] = ()) -> list[tuple[str, str]]:
    """(access, topic) pairs of one account; access is ``read``, ``write``, ``readwrite`` or ``deny``. ``known``
    lists the intake accounts of the configured devices: the ``others`` account is denied their topics, so the
    broker never hands it a message that a device's own connection already receives."""
    public = [("read", topics.calls()), ("read", topics.board()), ("read", topics.all_counter_states()),
              ("read", topics.all_status()), ("read", topics.notice())]
    own_presence = ("write", topics.status(device.username))
    if device.role == "controller":
        return [("readwrite", topics.all_topics())]
    if device.role == "monitor":
        # Everything but what may carry a citizen's personal data: a card scanned with a request, a profile in a
        # counter's reply, a clerk's profile edit in a command (docs/privacy.md). Mosquitto checks deny first.
        return [("read", topics.all_topics()), ("deny", topics.all_dispenser_requests()),
                ("deny", topics.all_counter_replies()), ("deny", topics.all_counter_commands())]
    if device.role == "intake":
        kind, _sep, device_id = device.topic_id.partition(":")
        if kind == "dispenser":
            return [("read", topics.dispenser_request(device_id)), ("read", topics.dispenser_printed(device_id))]
        if kind == "counter":
            return [("read", topics.counter_command(device_id))]
        if kind == "manager":
            return [("read", topics.manager_command(device_id))]
        denied = []
        for other in known:
            kind, _sep, device_id = other.topic_id.partition(":")
            if kind == "dispenser":
                denied += [("deny", topics.dispenser_request(device_id)), ("deny", topics.dispenser_printed(device_id))]
            elif kind == "counter":
                denied.append(("deny", topics.counter_command(device_id)))
        return [("read", topics.all_dispenser_requests()), ("read", topics.all_dispenser_printed()),
                ("read", topics.all_counter_commands()), *denied]
    if device.role == "dispenser":
        return [("write", topics.dispenser_request(device.topic_id)),
                ("write", topics.dispenser_printed(device.topic_id)),
                ("read", topics.dispenser_ticket(device.topic_id)), own_presence, *public]
    if device.role == "manager":
        # The hall's office: every device's presence and the public topics for the live view, the controller's
        # events, its own commands and replies. Never a device's requests or replies.
        return [("write", topics.manager_command(device.topic_id)), ("read", topics.manager_reply(device.topic_id)),
                ("read", topics.events()), own_presence, *public]
    if device.role == "counter":
        return [("write", topics.counter_command(device.topic_id)),
                ("read", topics.counter_reply(device.topic_id)), own_presence, *public]
    return public  # display: reads only


def acl_text(topics: Topics, devices: Iterable[Device]) -> str:
    """Mosquitto's ACL file for these accounts. Anything not listed is denied (Mosquitto's default)."""
    lines = [
        "# hallq broker ACL, generated by: python -m hall_controller provision. Do not edit: regenerate.",
        f"# Hall {topics.hall}: every account may use only the topics listed under its user line.",
    ]
    devices = list(devices)
    known = [d for d in devices if d.role == "intake" and ":" in d.topic_id]
    for device in devices:
        lines += ["", f"# {device.role} {device.topic_id}", f"user {device.username}"]
        lines += [f"topic {access} {topic}" for access, topic in _rules(topics, device, known)]
    return "\n".join(lines) + "\n"


def hash_password(password: str, *, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2's ``$7$`` password hash: PBKDF2-HMAC-SHA512, 64 bytes, base64 salt and digest."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash (used by tests and to report stale credential files)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]), len(expected))
    return hmac.compare_digest(digest, expected)


def parse_passwd(text: str) -> dict[str, str]:
    """``username -> hash`` from a Mosquitto password file; blank and malformed lines are skipped."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        user, sep, hashed = line.strip().partition(":")
        if sep and user and hashed.startswith("$"):
            entries[user] = hashed
    return entries


@dataclass(slots=True)
class Plan:
    """What provisioning decided: the new files' contents and what happened to each account."""

    passwd: str
    acl: str
    issued: dict[str, str] = field(default_factory=dict)  # username -> new clear password (new or rotated)
    kept: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def plan(topics: Topics, devices: Sequence[Device], *, existing: Mapping[str, str],
         rotate: Collection[str] | Literal["all"], new_password: Callable[[], str],
         new_salt: Callable[[], bytes]) -> Plan:
    """Decide the password file and ACL; existing hashes are kept unless the account is to be rotated.
    Intake accounts take the controller's hash, whatever happened to it."""
    names = {d.username for d in devices}
    intake = {d.username for d in devices if d.role == "intake"}
    unknown = sorted(set(rotate) - names) if rotate != "all" else []
    if unknown:
        raise ProvisionError(f"cannot rotate {', '.join(unknown)}: no such account (known: "
                             f"{', '.join(sorted(names - intake))})")
    followers = sorted(set(rotate) & intake) if rotate != "all" else []
    if followers:
        raise ProvisionError(f"cannot rotate {', '.join(followers)} on its own: the controller's connections share "
                             "its password; rotate the controller's account")
    result = Plan(passwd="", acl=acl_text(topics, devices))
    hashes: dict[str, str] = {}
    for device in devices:
        user = device.username
        if device.role == "intake":
            continue
        if user in existing and not (rotate == "all" or user in rotate):
            hashes[user] = existing[user]
            result.kept.append(user)
            continue
        password = new_password()
        hashes[user] = hash_password(password, salt=new_salt())
        result.issued[user] = password
        (result.rotated if user in existing else result.added).append(user)
    controller = next((d.username for d in devices if d.role == "controller"), None)
    for user in intake:
        if controller is None:
            raise ProvisionError("intake accounts need the controller's account")
        hashes[user] = hashes[controller]
    result.passwd = "".join(f"{d.username}:{hashes[d.username]}\n" for d in devices)
    result.removed = sorted(set(existing) - names)
    return result


# --- the shell: files ----------------------------------------------------------------------------------------

def read_displays(path: Path) -> list[str]:
    """Display ids from a displays file (``displays = ["display-1", ...]``); a missing file means none."""
    if not path.exists():
        return []
    root = load_toml(path)
    displays = root.text_list("displays", [])
    for i, display in enumerate(displays):
        if not is_valid_id(display):
            raise root.error(f"displays[#{i + 1}]",
                             f"{display!r} is not a valid id (1-{MAX_ID_LEN} of A-Z a-z 0-9 _ . -)")
    if len(set(displays)) != len(displays):
        raise root.error("displays", "lists a display twice")
    root.done()
    return displays


def write_if_changed(path: Path, content: str, *, mode: int, group: int | None = None) -> bool:
    """Write ``content`` atomically with ``mode`` (and group) unless the file already holds exactly that."""
    if path.exists() and path.read_text(encoding="utf-8") == content:
        _set_owner(path, mode, group)
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    _set_owner(tmp, mode, group)
    tmp.replace(path)
    return True


def _set_owner(path: Path, mode: int, group: int | None) -> None:
    if group is not None and path.stat().st_gid != group:
        os.chown(path, -1, group)
    if path.stat().st_mode & 0o7777 != mode:
        path.chmod(mode)


def broker_group(name: str) -> int | None:
    """The group the broker runs as, so it can read ``passwd`` and ``acl``; None if we may not or need not."""
    if os.geteuid() != 0:
        return None  # only root can give files away; a test or a private broker runs as the same user
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        log.warning("group %s does not exist; the broker may not be able to read the files", name)
        return None


def provision(config: ControllerConfig, *, out: Path, displays: Sequence[str],
              rotate: Collection[str] | Literal["all"] = (), local_credential: Path | None = None,
              group_name: str = "mosquitto") -> Plan:
    """Generate (or refresh) ``passwd``, ``acl`` and the credential files in ``out``; returns the plan."""
    topics = Topics(hall=config.hall.id, base=config.base_topic)
    devices = devices_of(config, displays=displays)
    passwd_path, acl_path, credentials = out / "passwd", out / "acl", out / "credentials"
    existing = parse_passwd(passwd_path.read_text(encoding="utf-8")) if passwd_path.exists() else {}
    result = plan(topics, devices, existing=existing, rotate=rotate,
                  new_password=lambda: secrets.token_urlsafe(24), new_salt=lambda: secrets.token_bytes(12))
    group = broker_group(group_name)
    out.mkdir(parents=True, exist_ok=True)
    credentials.mkdir(mode=0o700, exist_ok=True)
    credentials.chmod(0o700)
    # Credentials first: if we stop half-way, the broker still has the old passwd and nobody is locked out.
    for user, password in result.issued.items():
        write_if_changed(credentials / f"{user}{CREDENTIAL_SUFFIX}", password + "\n", mode=0o600)
    for user in result.removed:
        (credentials / f"{user}{CREDENTIAL_SUFFIX}").unlink(missing_ok=True)
    changed = write_if_changed(passwd_path, result.passwd, mode=0o640, group=group)
    changed |= write_if_changed(acl_path, result.acl, mode=0o640, group=group)
    hashes = parse_passwd(result.passwd)
    for user in result.kept:
        path = credentials / f"{user}{CREDENTIAL_SUFFIX}"
        if not path.exists():
            log.info("no credential file for device=%s (already handed out?); --rotate %s issues a new one",
                     user, user)
        elif not check_password(path.read_text(encoding="utf-8").strip(), hashes[user]):
            log.warning("credential file %s does not match the broker's password for device=%s; "
                        "--rotate %s issues a new one", path, user, user)
    if local_credential is not None:
        _install_local(credentials / f"{config.client_id}{CREDENTIAL_SUFFIX}", local_credential)
    log.info("provisioned hall=%s accounts=%d added=%s rotated=%s removed=%s kept=%d out=%s", config.hall.id,
             len(devices), ",".join(result.added) or "-", ",".join(result.rotated) or "-",
             ",".join(result.removed) or "-", len(result.kept), out)
    if changed:
        log.info("broker files changed: reload the broker (systemctl reload mosquitto) to apply them")
    return result


def _install_local(source: Path, target: Path) -> None:
    """The controller's own credential, where its unit's ``LoadCredential`` reads it."""
    if not source.exists():
        log.warning("no credential file %s to install as %s; rotate the controller's account to issue one",
                    source, target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if write_if_changed(target, source.read_text(encoding="utf-8"), mode=0o600):
        log.info("installed the controller's credential at %s", target)


# --- command line ----------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hall_controller provision",
                                     description="generate the broker's per-device passwords and ACL for a hall")
    parser.add_argument("--config", required=True, type=Path, help="the hall's TOML config file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where passwd, acl and credentials/ go "
                        f"(default {DEFAULT_OUT})")
    parser.add_argument("--displays", type=Path, help="TOML file listing the display ids "
                        "(default: displays.toml next to --config; missing means no displays)")
    parser.add_argument("--rotate", action="append", default=[], metavar="USERNAME",
                        help="issue a new password for this account (repeatable)")
    parser.add_argument("--rotate-all", action="store_true", help="issue new passwords for every account")
    parser.add_argument("--local-credential", type=Path, metavar="FILE",
                        help="also copy the controller's credential here (its unit's LoadCredential source)")
    parser.add_argument("--group", default="mosquitto", help="group that may read passwd and acl (default mosquitto)")
    return parser


def main(argv: Sequence[str]) -> int:
    """``provision`` subcommand; exit 0, or 78 when the config or the device list is unusable."""
    args = _parser().parse_args(argv)
    logsetup.setup("INFO")
    displays_file = args.displays or args.config.parent / "displays.toml"
    try:
        config = config_mod.load(args.config)
        displays = read_displays(displays_file)
        rotate: Collection[str] | Literal["all"] = "all" if args.rotate_all else args.rotate
        result = provision(config, out=args.out, displays=displays, rotate=rotate,
                           local_credential=args.local_credential, group_name=args.group)
    except (ConfigError, ProvisionError) as exc:
        log.error("cannot provision: %s", exc)
        return EXIT_CONFIG
    except OSError as exc:
        log.error("cannot provision: %s", exc)
        return EXIT_CANTCREAT
    for user in sorted(result.issued):
        sys.stdout.write(f"new credential: {args.out / 'credentials' / (user + CREDENTIAL_SUFFIX)}\n")
    return 0
