"""The manager service's configuration: a strict TOML file (see ``config/manager.example.toml``).

The manager runs beside the controller, on the controller's machine: it reads the hall's own config
(``hall_config``: names, services, counters, targets, the ledger's place) and the controller's ledger, read-only.
Every key is checked at start; an unknown key or a bad value stops the service with one line naming the file,
the key and the problem (exit status 78), never a traceback. So does a page that would be served without TLS
beyond this machine: without ``tls_cert``/``tls_key`` only a loopback ``listen`` is accepted. The one exception
is ``[phones] guest_listen``: plain HTTP for the tickets' status pages alone (no login, no password ever crosses
it), for a hall's guest Wi-Fi.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, replace
from pathlib import Path

from hall_controller import config as hall_config_mod
from hall_controller.config import ControllerConfig
from hall_controller.engine.spec import HallSpec
from hall_controller.ledger import LEDGER_FILE
from hallq.configfile import LOG_LEVELS, Table, load_toml, read_mqtt
from hallq.errors import ConfigError
from hallq.mqtt import BrokerSettings, parse_address

DEFAULT_LISTEN = "0.0.0.0:8443"
DEFAULT_USERS_FILE = "/var/lib/hallq/manager/users.json"
DEFAULT_STATE_DIR = "/var/lib/hallq/manager"
DEFAULT_PHONE_CONNECTIONS = 2000
DEFAULT_PHONE_PER_TICKET = 6


@dataclass(frozen=True, slots=True)
class PhonesConfig:
    """``[phones]``: the tickets' status pages (``manager.phone_web``). At most ``max_connections`` pages follow
    tickets at once (lowered at start to what the open-files limit allows: ``manager.service.phone_bound``),
    ``max_per_ticket`` for one ticket (a new page beyond ends the ticket's oldest); ``guest_host``/``guest_port``
    (``guest_listen``) is a second, plain-HTTP listener that serves the status pages alone (None: only the
    manager's own listener)."""

    max_connections: int = DEFAULT_PHONE_CONNECTIONS
    max_per_ticket: int = DEFAULT_PHONE_PER_TICKET
    guest_host: str | None = None
    guest_port: int | None = None

    @property
    def guest_url(self) -> str | None:
        if self.guest_host is None:
            return None
        host = f"[{self.guest_host}]" if ":" in self.guest_host else self.guest_host
        return f"http://{host}:{self.guest_port}/"


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """Everything the manager service needs. ``hall`` is the controller's ``ControllerConfig`` (from
    ``hall_config``); ``ledger`` the controller's ledger file, read-only."""

    manager_id: str
    hall_config: Path
    controller: ControllerConfig
    ledger: Path
    listen_host: str
    listen_port: int
    tls_cert: Path | None
    tls_key: Path | None
    users_file: Path
    state_dir: Path
    offline_alarm_s: float
    log_level: str
    broker: BrokerSettings
    base_topic: str
    source: Path
    phones: PhonesConfig = PhonesConfig()

    @property
    def hall(self) -> HallSpec:
        return self.controller.hall

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def url(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{'https' if self.tls else 'http'}://{host}:{self.listen_port}/"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from ``tls_cert``/``tls_key`` (None without TLS); ConfigError naming the key
        when the files cannot be read or do not match."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except FileNotFoundError as exc:
            raise ConfigError(str(self.source), "manager.tls_cert", f"{exc.filename} does not exist") from None
        except PermissionError as exc:
            raise ConfigError(str(self.source), "manager.tls_key", f"cannot read {exc.filename}: permission denied "
                                                                   "(the service's user must read it)") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(str(self.source), "manager.tls_cert",
                              f"cannot use {self.tls_cert} with {self.tls_key}: {exc}") from None
        return context

    def with_listen(self, address: str) -> ManagerConfig:
        """A copy listening on ``HOST:PORT`` (the ``--listen`` option); ConfigError if malformed or not allowed."""
        try:
            host, port = parse_address(address)
        except ValueError as exc:
            raise ConfigError("--listen", "", str(exc)) from None
        if self.tls_cert is None and not is_loopback(host):
            raise ConfigError("--listen", "", f"{address} is not a loopback address; without [manager] tls_cert "
                                              "and tls_key the manager serves plain HTTP on this machine only")
        if port == self.phones.guest_port:
            raise ConfigError("--listen", "", f"{address} has [phones] guest_listen's port")
        return replace(self, listen_host=host, listen_port=port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path(table: Table, name: str, default: str | None = None) -> Path | None:
    text = table.opt_text(name) if default is None else table.text(name, default)
    return None if text is None else Path(text)


def load(path: Path) -> ManagerConfig:
    """Read and check the manager's config file and the hall config it names; raises ``ConfigError`` naming
    file, key and problem."""
    root = load_toml(path)
    table = root.table("manager", required=True)
    manager_id = table.ident("id", "manager")
    hall_path = Path(table.text("hall_config", "/etc/hallq/hall.toml"))
    if not hall_path.is_absolute():
        hall_path = path.parent / hall_path
    ledger_text = table.opt_text("ledger")
    listen = table.text("listen", DEFAULT_LISTEN)
    try:
        listen_host, listen_port = parse_address(listen)
    except ValueError as exc:
        raise table.error("listen", str(exc)) from None
    tls_cert = _path(table, "tls_cert")
    tls_key = _path(table, "tls_key")
    if (tls_cert is None) != (tls_key is None):
        raise table.error("tls_cert" if tls_cert is None else "tls_key", "tls_cert and tls_key go together")
    if tls_cert is None and not is_loopback(listen_host):
        raise table.error("listen", f"{listen} is reachable from the network, but there is no tls_cert/tls_key: "
                                    "passwords would cross the hall's network in clear. Give both (the hall's CA "
                                    "signs them: deploy/install.sh manager), or listen on 127.0.0.1")
    for name, file in (("tls_cert", tls_cert), ("tls_key", tls_key)):
        if file is not None and not file.is_file():
            raise table.error(name, f"{file} does not exist")
    users_file = Path(table.text("users_file", DEFAULT_USERS_FILE))
    state_dir = Path(table.text("state_dir", DEFAULT_STATE_DIR))
    offline_alarm_s = table.number("offline_alarm_s", 120, minimum=5, maximum=86_400)
    log_level = table.choice("log_level", LOG_LEVELS, "INFO")
    table.done()
    phones = _phones(root.table("phones"), listen_port=listen_port)
    broker, base_topic = read_mqtt(root.table("mqtt"))
    root.done()

    if not hall_path.is_file():
        raise ConfigError(str(path), "manager.hall_config", f"{hall_path} does not exist")
    controller = hall_config_mod.load(hall_path)  # its own ConfigError names the hall's file and key
    if controller.manager_id is None:
        raise table.error("hall_config", f"{hall_path} has no [manager] table: the controller takes no manager "
                                         f"commands; add [manager] id = {manager_id!r} there")
    if controller.manager_id != manager_id:
        raise table.error("id", f"{manager_id!r} is not the hall's manager: {hall_path} says [manager] id = "
                                f"{controller.manager_id!r}")
    if controller.base_topic != base_topic:
        raise root.error("mqtt.base_topic", f"{base_topic!r} differs from the hall's {controller.base_topic!r} "
                                            f"({hall_path})")
    ledger = Path(ledger_text) if ledger_text is not None else controller.state_dir / LEDGER_FILE
    return ManagerConfig(manager_id=manager_id, hall_config=hall_path, controller=controller, ledger=ledger,
                         listen_host=listen_host, listen_port=listen_port, tls_cert=tls_cert, tls_key=tls_key,
                         users_file=users_file, state_dir=state_dir, offline_alarm_s=offline_alarm_s,
                         log_level=log_level, broker=broker, base_topic=base_topic, source=path, phones=phones)


def _phones(table: Table, *, listen_port: int) -> PhonesConfig:
    """``[phones]`` (all optional): ``max_connections``, ``max_per_ticket``, ``guest_listen``."""
    max_connections = table.integer("max_connections", DEFAULT_PHONE_CONNECTIONS, minimum=1, maximum=100_000)
    max_per_ticket = table.integer("max_per_ticket", DEFAULT_PHONE_PER_TICKET, minimum=1, maximum=100)
    guest = table.opt_text("guest_listen")
    guest_host = guest_port = None
    if guest is not None:
        try:
            guest_host, guest_port = parse_address(guest)
        except ValueError as exc:
            raise table.error("guest_listen", str(exc)) from None
        if guest_port == listen_port:
            raise table.error("guest_listen", f"{guest} is [manager] listen's port; the guest network's status "
                                              "pages need a port of their own (e.g. 8080)")
    table.done()
    return PhonesConfig(max_connections=max_connections, max_per_ticket=max_per_ticket, guest_host=guest_host,
                        guest_port=guest_port)
