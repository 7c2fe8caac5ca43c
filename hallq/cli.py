"""What every role's command line does with its config file, in one place.

A role's ``main`` loads its TOML file with ``load_config`` (the role's own ``load``, then ``--broker`` and any
other command-line override); a bad file or option is one ``bad configuration: ...`` line on the role's logger
and exit status 78 (``EXIT_CONFIG``), never a traceback. A ``ConfigError`` met later (the MQTT password file,
read when connecting) ends the same way through ``config_refused``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import Field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from hallq.configfile import broker_override
from hallq.errors import EXIT_CONFIG, ConfigError
from hallq.mqtt import BrokerSettings


class RoleConfig(Protocol):
    """A role's config: a dataclass with the broker it connects to."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def broker(self) -> BrokerSettings: ...


ConfigT = TypeVar("ConfigT", bound=RoleConfig)


def load_config(load: Callable[[Path], ConfigT], path: Path, *, log: logging.Logger, broker: str | None = None,
                override: Callable[[ConfigT], ConfigT] | None = None) -> ConfigT | None:
    """``load(path)`` with ``--broker HOST:PORT`` (``broker``; None: the file's) and then ``override`` applied;
    None once a ConfigError from any of them is logged on ``log`` (the caller exits with ``EXIT_CONFIG``)."""
    try:
        cfg = load(path)
        if broker is not None:
            cfg = replace(cfg, broker=broker_override(cfg.broker, broker))
        if override is not None:
            cfg = override(cfg)
    except ConfigError as exc:
        config_refused(log, exc)
        return None
    return cfg


def config_refused(log: logging.Logger, exc: ConfigError) -> int:
    """Log ``exc`` as the one line an operator reads for a bad config; returns ``EXIT_CONFIG``."""
    log.error("bad configuration: %s", exc)
    return EXIT_CONFIG
