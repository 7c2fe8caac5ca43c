"""The counter's configuration: a strict TOML file (see ``config/counter.example.toml``).

Every key is checked at start; an unknown key or a bad value stops the program with a message naming the
file, the key and the problem (exit status 78). The ``[keypad]`` table is only required by the keypad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hallq.configfile import Table, load_toml, read_mqtt
from hallq.mqtt import BrokerSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# gpiozero pin names: "GPIO17", "BCM17", "BOARD11", "J8:11" or a bare BCM number given as an integer.
_PIN = re.compile(r"^(GPIO|BCM|BOARD|WPI)\d{1,2}$|^J8:\d{1,2}$")


@dataclass(frozen=True, slots=True)
class KeypadConfig:
    """Pins of the keypad. Buttons connect the pin to ground (internal pull-up); LED and buzzer are active high."""

    next_pin: str
    recall_pin: str
    complete_pin: str
    no_show_pin: str
    serving_led_pin: str
    buzzer_pin: str | None
    debounce_s: float


@dataclass(frozen=True, slots=True)
class CounterConfig:
    counter: str
    hall: str
    client_id: str
    broker: BrokerSettings
    base_topic: str
    reply_timeout_s: float
    log_level: str
    keypad: KeypadConfig | None
    source: Path


def load(path: Path) -> CounterConfig:
    """Read and check a counter's config file; raises ``ConfigError`` naming file, key and problem."""
    root = load_toml(path)
    table = root.table("counter", required=True)
    counter = table.ident("id")
    hall = table.ident("hall")
    client_id = table.ident("client_id", f"counter-{counter}")
    reply_timeout_s = table.number("reply_timeout_s", 5.0, minimum=0.5, maximum=60.0)
    log_level = table.choice("log_level", LOG_LEVELS, "INFO")
    table.done()
    broker, base_topic = read_mqtt(root.table("mqtt"))
    keypad = _keypad(root.table("keypad")) if root.has("keypad") else None
    root.done()
    return CounterConfig(counter=counter, hall=hall, client_id=client_id, broker=broker, base_topic=base_topic,
                         reply_timeout_s=reply_timeout_s, log_level=log_level, keypad=keypad, source=path)


def _pin(table: Table, name: str, *, required: bool = True) -> str | None:
    if not table.has(name):
        if required:
            raise table.error(name, "is required")
        return table.opt_text(name)  # None; marks the optional key as known
    if type(table.data[name]) is int:
        return f"GPIO{table.integer(name, minimum=0, maximum=27)}"
    value = table.text(name)
    if not _PIN.match(value):
        raise table.error(name, f"must be a pin like \"GPIO17\", \"BOARD11\" or 17, got {value!r}")
    return value


def _keypad(table: Table) -> KeypadConfig:
    pins = {name: _pin(table, name) for name in
            ("next_pin", "recall_pin", "complete_pin", "no_show_pin", "serving_led_pin")}
    buzzer = _pin(table, "buzzer_pin", required=False)
    debounce_s = table.number("debounce_s", 0.3, minimum=0.0, maximum=5.0)
    table.done()
    used: dict[str, str] = {}
    for name, pin in [*pins.items(), ("buzzer_pin", buzzer)]:
        if pin is None:
            continue
        if pin in used:
            raise table.error(name, f"pin {pin} is already used by {used[pin]}")
        used[pin] = name
    return KeypadConfig(next_pin=str(pins["next_pin"]), recall_pin=str(pins["recall_pin"]),
                        complete_pin=str(pins["complete_pin"]), no_show_pin=str(pins["no_show_pin"]),
                        serving_led_pin=str(pins["serving_led_pin"]), buzzer_pin=buzzer, debounce_s=debounce_s)
