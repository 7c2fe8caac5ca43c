"""The counter's configuration: a strict TOML file (see ``config/counter.example.toml``).

Every key is checked at start; an unknown key or a bad value stops the program with a message naming the
file, the key and the problem (exit status 78). The ``[keypad]`` table is only required by the keypad. The
``[rating]`` table is optional: how long the citizen may rate a visit after ``complete`` (both front ends) and
the pins of the keypad's four rating buttons and their lamps (the console ignores the pins).

Pins are checked against the 40-pin header every Raspberry Pi since the B+ has (Pi 5, Pi 4, Zero 2 W ...),
in any spelling gpiozero accepts there, and kept in one spelling (``GPIO17``): so a pin given twice in two
spellings (``17`` and ``"BOARD11"``) is caught here, not by gpiozero at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from hallq.configfile import LOG_LEVELS, Table, load_toml, read_mqtt
from hallq.mqtt import BrokerSettings
from hallq.wire import RATING_LEVELS, RatingLevel

BCM_PINS = range(28)  # GPIO0-GPIO27: the GPIOs on the 40-pin header
# Physical pin of the 40-pin header (J8) -> its GPIO; the other pins are power and ground.
HEADER_GPIO: dict[int, int] = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9, 22: 25, 23: 11,
    24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}
HEADER_POWER: dict[int, str] = {1: "3.3 V", 17: "3.3 V", 2: "5 V", 4: "5 V",
                                **dict.fromkeys((6, 9, 14, 20, 25, 30, 34, 39), "ground")}
# wiringPi number -> physical pin, as gpiozero maps ``WPIn`` on the 40-pin header.
WIRINGPI_HEADER: dict[int, int] = {
    0: 11, 1: 12, 2: 13, 3: 15, 4: 16, 5: 18, 6: 22, 7: 7, 8: 3, 9: 5, 10: 24, 11: 26, 12: 19, 13: 21, 14: 23,
    15: 8, 16: 10, 21: 29, 22: 31, 23: 33, 24: 35, 25: 37, 26: 32, 27: 36, 28: 38, 29: 40, 30: 27, 31: 28,
}
_PIN_FORMS = 'a GPIO number 0-27 (17 or "GPIO17"/"BCM17"), a header pin ("BOARD11"/"J8:11") or "WPI0"'


def gpio_of(spelling: str) -> int:
    """The GPIO number of a pin spelt as gpiozero spells it on the 40-pin header; ValueError says why not."""
    for prefix in ("GPIO", "BCM", "BOARD", "J8:", "WPI"):
        if spelling.startswith(prefix):
            digits = spelling.removeprefix(prefix)
            break
    else:
        raise ValueError(f"must be {_PIN_FORMS}, got {spelling!r}")
    if not digits.isascii() or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        raise ValueError(f"must be {_PIN_FORMS}, got {spelling!r}")
    number = int(digits)
    if prefix in ("GPIO", "BCM"):
        if number not in BCM_PINS:
            raise ValueError(f"{spelling!r} is not on the 40-pin header (GPIO0-GPIO27)")
        return number
    if prefix == "WPI":
        if number not in WIRINGPI_HEADER:
            raise ValueError(f"{spelling!r} is not a wiringPi number of the 40-pin header")
        return HEADER_GPIO[WIRINGPI_HEADER[number]]
    if number in HEADER_POWER:
        raise ValueError(f"{spelling!r} is a {HEADER_POWER[number]} pin, not a GPIO")
    if number not in HEADER_GPIO:
        raise ValueError(f"{spelling!r} is not a pin of the 40-pin header (1-40)")
    return HEADER_GPIO[number]


KEYPAD_PINS = ("next_pin", "recall_pin", "complete_pin", "no_show_pin", "serving_led_pin", "buzzer_pin")
# The rating buttons' and their lamps' keys, best level first: very_satisfied_pin ... dissatisfied_led_pin.
RATING_BUTTON_KEYS: Final[dict[RatingLevel, str]] = {level: f"{level}_pin" for level in RATING_LEVELS}
RATING_LAMP_KEYS: Final[dict[RatingLevel, str]] = {level: f"{level}_led_pin" for level in RATING_LEVELS}
RATING_WAIT_S: Final = 30.0
# Shorter than this a citizen cannot read the lamps and choose; longer, the next citizen is at the desk already
# (and the hall's own [ratings] window_minutes, at least 1, still has to cover it).
MIN_RATING_WAIT_S: Final = 5.0
MAX_RATING_WAIT_S: Final = 600.0


@dataclass(frozen=True, slots=True)
class KeypadConfig:
    """Pins of the keypad, as ``GPIOn``. Buttons connect the pin to ground (internal pull-up); LED and buzzer
    are active high."""

    next_pin: str
    recall_pin: str
    complete_pin: str
    no_show_pin: str
    serving_led_pin: str
    buzzer_pin: str | None
    debounce_s: float


@dataclass(frozen=True, slots=True)
class RatingConfig:
    """``[rating]``: for ``wait_s`` seconds after the controller accepted a ``complete``, the citizen may rate the
    visit (``None``: this counter offers no rating, neither on buttons nor on the console). ``buttons`` and
    ``lamps`` are (level, ``GPIOn``) pairs, best level first: the keypad's four rating buttons (each between its
    pin and ground, internal pull-up) and the lamps lit in them (active high); empty when there are none."""

    wait_s: float | None = RATING_WAIT_S
    buttons: tuple[tuple[RatingLevel, str], ...] = ()
    lamps: tuple[tuple[RatingLevel, str], ...] = ()


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
    rating: RatingConfig = field(default_factory=RatingConfig)


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
    rating = _rating(root.table("rating"), keypad)
    root.done()
    return CounterConfig(counter=counter, hall=hall, client_id=client_id, broker=broker, base_topic=base_topic,
                         reply_timeout_s=reply_timeout_s, log_level=log_level, keypad=keypad, source=path,
                         rating=rating)


def _pin(table: Table, name: str, *, required: bool = True) -> str | None:
    """The pin under ``name`` as ``GPIOn`` (gpiozero's own name for it), or None when optional and absent."""
    if not table.has(name):
        if required:
            raise table.error(name, "is required")
        return table.opt_text(name)  # None; marks the optional key as known
    if type(table.data[name]) is int:
        return f"GPIO{table.integer(name, minimum=BCM_PINS.start, maximum=BCM_PINS.stop - 1)}"
    spelling = table.text(name)
    try:
        return f"GPIO{gpio_of(spelling)}"
    except ValueError as exc:
        raise table.error(name, str(exc)) from None


def _keypad(table: Table) -> KeypadConfig:
    spellings = {name: table.data.get(name) for name in KEYPAD_PINS}
    pins = {name: _pin(table, name, required=name != "buzzer_pin") for name in KEYPAD_PINS}
    debounce_s = table.number("debounce_s", 0.3, minimum=0.0, maximum=5.0)
    table.done()
    used: dict[str, str] = {}
    for name, pin in pins.items():
        if pin is None:
            continue
        if pin in used:
            spelt = "" if spellings[name] == pin else f" ({spellings[name]!r})"
            raise table.error(name, f"pin {pin}{spelt} is already used by {used[pin]}")
        used[pin] = name
    return KeypadConfig(next_pin=str(pins["next_pin"]), recall_pin=str(pins["recall_pin"]),
                        complete_pin=str(pins["complete_pin"]), no_show_pin=str(pins["no_show_pin"]),
                        serving_led_pin=str(pins["serving_led_pin"]), buzzer_pin=pins["buzzer_pin"],
                        debounce_s=debounce_s)


def _rating(table: Table, keypad: KeypadConfig | None) -> RatingConfig:
    """``[rating]`` (absent: the defaults, no buttons). The four button pins come all together or not at all, and
    so do the four lamps' (lamps need buttons); no pin may be one of the keypad's, or another rating key's."""
    wait_s: float | None = table.number("wait_s", RATING_WAIT_S, minimum=0.0, maximum=MAX_RATING_WAIT_S)
    if wait_s == 0:
        wait_s = None
    elif wait_s is not None and wait_s < MIN_RATING_WAIT_S:
        raise table.error("wait_s", f"must be 0 (no ratings at this counter) or at least {MIN_RATING_WAIT_S:g}, "
                                    f"got {wait_s:g}")
    spellings = {key: table.data.get(key) for key in [*RATING_BUTTON_KEYS.values(), *RATING_LAMP_KEYS.values()]}
    given = {key: _pin(table, key, required=False) for key in spellings}
    table.done()  # first: a misspelt key is named as such, not as a missing one
    buttons = _four(table, RATING_BUTTON_KEYS, given, what="rating buttons")
    lamps = _four(table, RATING_LAMP_KEYS, given, what="rating lamps")
    if lamps and not buttons:
        raise table.error(RATING_LAMP_KEYS[RATING_LEVELS[0]], "lamps need their buttons: give the four button pins "
                                                             f"({', '.join(RATING_BUTTON_KEYS.values())}) too")
    used: dict[str, str] = {}
    if keypad is not None:
        used = {pin: f"keypad.{name}" for name in KEYPAD_PINS if (pin := getattr(keypad, name)) is not None}
    named = [(RATING_BUTTON_KEYS[level], pin) for level, pin in buttons]
    named += [(RATING_LAMP_KEYS[level], pin) for level, pin in lamps]
    for key, pin in named:
        if pin in used:
            spelt = "" if spellings[key] == pin else f" ({spellings[key]!r})"
            raise table.error(key, f"pin {pin}{spelt} is already used by {used[pin]}")
        used[pin] = table.key(key)
    return RatingConfig(wait_s=wait_s, buttons=buttons, lamps=lamps)


def _four(table: Table, keys: dict[RatingLevel, str], given: dict[str, str | None], *,
          what: str) -> tuple[tuple[RatingLevel, str], ...]:
    """The four pins under ``keys`` (one per level, read into ``given``), or none; a partial set names the first
    key missing."""
    present = [key for key in keys.values() if given[key] is not None]
    if not present:
        return ()
    missing = [key for key in keys.values() if given[key] is None]
    if missing:
        raise table.error(missing[0], f"is required with {present[0]}: give all four {what} "
                                      f"({', '.join(keys.values())}), or none")
    return tuple((level, str(given[key])) for level, key in keys.items())
