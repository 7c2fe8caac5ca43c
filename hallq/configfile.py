"""Strict reading of TOML configuration files, shared by every role.

A ``Table`` reads one TOML table: each getter checks the type and range of one key, and ``done()`` refuses
keys nobody read (a typo like ``prority`` must not be silently ignored) and suggests the closest known key.
Every refusal is a ``ConfigError`` naming the file, the dotted key and the problem.

An item of an array of tables is named by its id, as a technician knows it: ``counters[id="3"].services``,
``buttons[key="1"].pin``. An item whose id is missing, malformed or shared with another item is named by its
position, counted from 1 as the file reads: ``counters[#3].id`` is the third ``[[counters]]``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Collection, Sequence
from datetime import time
from pathlib import Path
from typing import Any

from hallq.errors import ConfigError
from hallq.limits import MAX_ID_LEN, MAX_NAME_LEN, has_control
from hallq.mqtt import BrokerSettings, parse_address
from hallq.topics import base_topic_problem, is_valid_id

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_MISSING: Any = object()
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def load_toml(path: Path) -> Table:
    """Parse ``path`` into its root table; unreadable or malformed files raise ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"not valid TOML: {exc}") from None
    return Table(data, path=str(path), prefix="")


class Table:
    """One TOML table being read; remembers which keys were read so that ``done()`` can refuse the rest."""

    def __init__(self, data: dict[str, Any], *, path: str, prefix: str) -> None:
        self.data = data
        self.path = path
        self.prefix = prefix
        self._read: set[str] = set()
        self._asked: set[str] = set()  # looked up with has(): known keys, for suggestions only

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.path, self.key(name), problem)

    def has(self, name: str) -> bool:
        self._asked.add(name)
        return name in self.data

    def _get(self, name: str, default: Any) -> Any:
        self._read.add(name)
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            # A misspelt required key would otherwise hide behind "is required" and never reach done().
            spelt = _closest(name, set(self.data) - self._read - self._asked, cutoff=_REQUIRED_CUTOFF)
            raise self.error(name, "is required" + (f"; is {spelt!r} a misspelling of it?" if spelt else ""))
        return default

    def text(self, name: str, default: Any = _MISSING, *, allow_empty: bool = False) -> str:
        value = self._get(name, default)
        if not isinstance(value, str) or (not value and not allow_empty):
            raise self.error(name, f"must be a {'' if allow_empty else 'non-empty '}string, got {value!r}")
        return value

    def opt_text(self, name: str) -> str | None:
        value = self._get(name, None)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        return value

    def ident(self, name: str, default: Any = _MISSING) -> str:
        value = self.text(name, default)
        if not is_valid_id(value):
            raise self.error(name, f"{value!r} is not a valid id (1-{MAX_ID_LEN} of A-Z a-z 0-9 _ . -, starting "
                                   "alphanumeric)")
        return value

    def name(self, name: str, default: Any = _MISSING, *, allow_empty: bool = False) -> str:
        """A name people read (a hall, service or counter name, a button label): at most ``MAX_NAME_LEN``
        characters and no control characters, the limits every role's wire decoder applies (``hallq.limits``)."""
        value = self.text(name, default, allow_empty=allow_empty)
        if len(value) > MAX_NAME_LEN:
            raise self.error(name, f"must be at most {MAX_NAME_LEN} characters (what every display and counter "
                                   f"accepts), got {len(value)}")
        if has_control(value):
            raise self.error(name, f"must not contain control characters (line breaks, tabs), got {value!r}")
        return value

    def integer(self, name: str, default: Any = _MISSING, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        value = self._get(name, default)
        if type(value) is not int:
            raise self.error(name, f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(name, f"must be at most {maximum}, got {value}")
        return value

    def opt_integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        if self.data.get(name) is None:
            self._read.add(name)
            return None
        return self.integer(name, minimum=minimum, maximum=maximum)

    def number(self, name: str, default: Any = _MISSING, *, minimum: float | None = None,
               maximum: float | None = None) -> float:
        value = self._get(name, default)
        if type(value) not in (int, float):
            raise self.error(name, f"must be a number, got {value!r}")
        number = float(value)
        if minimum is not None and number < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        if maximum is not None and number > maximum:
            raise self.error(name, f"must be at most {maximum}, got {value}")
        return number

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def choice(self, name: str, choices: Sequence[str], default: Any = _MISSING) -> str:
        value = self._get(name, default)
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}; got {value!r}")
        return str(value)

    def clock(self, name: str, default: Any = _MISSING) -> time:
        value = self.text(name, default)
        match = _HHMM.match(value)
        if not match:
            raise self.error(name, f"must be a time of day HH:MM, got {value!r}")
        return time(int(match.group(1)), int(match.group(2)))

    def text_list(self, name: str, default: Any = _MISSING) -> list[str]:
        value = self._get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(name, f"must be a list of non-empty strings, got {value!r}")
        return list(value)

    def table(self, name: str, *, required: bool = False) -> Table:
        value = self._get(name, _MISSING if required else {})
        if not isinstance(value, dict):
            raise self.error(name, "must be a table")
        return Table(value, path=self.path, prefix=self.key(name))

    def tables(self, name: str, *, required: bool = False, id_key: str = "id") -> list[Table]:
        """The items of the array of tables ``name``, each named by its ``id_key`` (see the module's docstring)."""
        value = self._get(name, _MISSING if required else [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, f"must be an array of tables ([[{name}]])")
        if required and not value:
            raise self.error(name, "needs at least one entry")
        ids = [v.get(id_key) for v in value]
        return [Table(v, path=self.path, prefix=self.key(name) + _item_label(id_key, ident, position, ids))
                for position, (v, ident) in enumerate(zip(value, ids, strict=True), start=1)]

    def done(self) -> None:
        """Refuse keys that were never read: they are typos or options of another version."""
        unknown = sorted(set(self.data) - self._read)
        if unknown:
            spelt = _closest(unknown[0], self._read | self._asked)
            raise self.error(unknown[0], "unknown key" + (f"; did you mean {spelt!r}?" if spelt else "")
                             + (f" (also: {', '.join(unknown[1:])})" if unknown[1:] else ""))


_REQUIRED_CUTOFF = 0.8  # stricter than difflib's 0.6: "name_vi" must not be offered for a missing "name_en"


def _closest(name: str, candidates: Collection[str], *, cutoff: float = 0.6) -> str | None:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def _item_label(id_key: str, ident: object, position: int, ids: Sequence[object]) -> str:
    """``[id="3"]`` for an item with a well-formed id of its own, else ``[#position]``, counted from 1."""
    if isinstance(ident, str) and is_valid_id(ident) and ids.count(ident) == 1:
        return f'[{id_key}="{ident}"]'
    return f"[#{position}]"


def refuse_duplicates(items: Sequence[Table], values: Sequence[str], *, key: str) -> None:
    """Refuse a value of ``key`` that two items of one array share, naming both (by position: they share it)."""
    first: dict[str, Table] = {}
    for item, value in zip(items, values, strict=True):
        if value in first:
            raise item.error(key, f"duplicate {key} {value!r} (also {first[value].prefix})")
        first[value] = item


def read_secret(table: Table, name: str) -> tuple[str | None, str | None]:
    """A secret given inline (``password``) or, better, as a file (``password_file``, e.g. a systemd
    credential): returns (inline value, file path). The file is read when it is needed, not here."""
    inline = table.opt_text(name)
    file_name = table.opt_text(f"{name}_file")
    if inline is not None and file_name is not None:
        raise table.error(name, f"give either {name} or {name}_file, not both")
    return inline, file_name


def read_mqtt(table: Table) -> tuple[BrokerSettings, str]:
    """The ``[mqtt]`` table every role shares: broker address, credentials, TLS; returns (settings, base topic).

    Keys: ``broker`` ("HOST:PORT"), ``base_topic`` (default "qms"), ``username``, ``password`` or
    ``password_file``, ``tls`` (default false), ``ca_file``, ``keepalive_s``.
    """
    address = table.text("broker", "127.0.0.1:1883")
    try:
        host, port = parse_address(address)
    except ValueError as exc:
        raise table.error("broker", str(exc)) from None
    base_topic = table.text("base_topic", "qms")
    problem = base_topic_problem(base_topic)
    if problem is not None:
        raise table.error("base_topic", f"{base_topic!r} {problem}")
    username = table.opt_text("username")
    password, password_file = read_secret(table, "password")
    tls = table.boolean("tls", False)
    ca_file = table.opt_text("ca_file")
    if ca_file is not None and not Path(ca_file).is_file():
        raise table.error("ca_file", f"{ca_file} does not exist")
    # The link's own default (5 s, measured across a real network: docs/reliability.md), unless the file says.
    keepalive_s = table.integer("keepalive_s", BrokerSettings().keepalive_s, minimum=5, maximum=600)
    table.done()
    return BrokerSettings(host=host, port=port, username=username, password=password, password_file=password_file,
                          tls=tls, ca_file=ca_file, keepalive_s=keepalive_s), base_topic


def broker_override(broker: BrokerSettings, address: str | None) -> BrokerSettings:
    """The config's broker with a ``--broker HOST:PORT`` option applied (None: unchanged); a malformed address
    is a ConfigError naming the option."""
    if not address:
        return broker
    try:
        return broker.with_address(address)
    except ValueError as exc:
        raise ConfigError("--broker", "", str(exc)) from None
