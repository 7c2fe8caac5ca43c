"""The kiosk's buttons, LEDs and buzzer through gpiozero, with the pin factory injected.

Wiring (BCM numbers, as in the config): each button connects its GPIO to ground (the internal pull-up holds
it high; pressing pulls it low). Each LED connects its GPIO through a resistor (~330 Ω) to the LED's anode,
the cathode to ground; so does the optional "card read" LED of a kiosk with a card scanner. An optional
active buzzer connects like an LED (through a transistor if it draws more than a few mA).

Threads: gpiozero calls ``when_pressed`` on its own thread (on mock pins, inside ``drive_low()``). The
callback only puts a ``ButtonPressed`` with the monotonic time of the press on the inbox; the service
thread decides. Debounce and rate limits are the core's job: gpiozero's ``bounce_time`` is not enough and
mock pins do not bounce at all.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from gpiozero import LED, Button, Buzzer

from dispenser.core import BeepPattern, ShowIndicators
from hallq.errors import HallqError

log = logging.getLogger(__name__)

PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")

# Buzzer patterns: (on_s, off_s, count). Short for "got it", long for "no ticket". A card: one chirp when
# read, three quick ones for a code this hall cannot read, three long ones when the card has had its tickets.
_BEEPS: dict[BeepPattern, tuple[float, float, int]] = {
    "accepted": (0.08, 0.05, 1),
    "refused": (0.15, 0.1, 2),
    "failed": (0.6, 0.05, 1),
    "card_read": (0.05, 0.05, 1),
    "card_bad": (0.07, 0.07, 3),
    "card_limit": (0.4, 0.2, 3),
}


class HardwareError(HallqError, RuntimeError):
    """The pin factory or a pin could not be set up (wrong factory, pin in use, not a Pi)."""


@dataclass(frozen=True, slots=True)
class ButtonPressed:
    """Button ``key`` was pressed at monotonic time ``at``."""

    key: str
    at: float


@dataclass(frozen=True, slots=True)
class ButtonWiring:
    key: str
    pin: int


@dataclass(frozen=True, slots=True)
class LedWiring:
    ready: int | None = None
    busy: int | None = None
    fault: int | None = None
    buzzer: int | None = None
    active_high: bool = True
    card: int | None = None  # the "card read" LED ([scanner] card_led_pin)


def make_pin_factory(name: str | None) -> Any:
    """The named gpiozero pin factory (``lgpio`` on a Pi 5), or None for gpiozero's own choice.

    gpiozero's choice honours ``GPIOZERO_PIN_FACTORY`` and otherwise tries lgpio, RPi.GPIO, pigpio, native.
    """
    if not name:
        return None
    for entry in entry_points(group="gpiozero_pin_factories"):
        if entry.name == name:
            try:
                return entry.load()()
            except Exception as exc:  # each backend fails in its own way off a Pi
                raise HardwareError(f"pin factory {name!r} cannot start: {exc}") from None
    raise HardwareError(f"pin factory {name!r} is not installed")


class ButtonPanel:
    """One gpiozero ``Button`` per configured button; presses go on ``inbox`` as ``ButtonPressed``."""

    def __init__(self, buttons: Sequence[ButtonWiring], *, pin_factory: Any, inbox: queue.Queue[Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._inbox = inbox
        self._clock = clock
        self._buttons: list[Any] = []
        try:
            for wiring in buttons:
                # bounce_time=None: bouncing and repeated presses are handled by the core with timestamps.
                button = Button(wiring.pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
                button.when_pressed = self._handler(wiring.key)
                self._buttons.append(button)
        except Exception as exc:
            self.close()
            raise HardwareError(f"cannot set up buttons: {exc}") from exc

    def _handler(self, key: str) -> Callable[[], None]:
        def pressed() -> None:
            self._inbox.put(ButtonPressed(key, self._clock()))

        return pressed

    def close(self) -> None:
        for button in self._buttons:
            button.close()
        self._buttons.clear()


class Indicators:
    """The ready, busy, fault and card LEDs and the buzzer; any of them may be absent (pin None)."""

    def __init__(self, wiring: LedWiring, *, pin_factory: Any) -> None:
        self._devices: list[Any] = []
        try:
            self.ready = self._led(wiring.ready, wiring.active_high, pin_factory)
            self.busy = self._led(wiring.busy, wiring.active_high, pin_factory)
            self.fault = self._led(wiring.fault, wiring.active_high, pin_factory)
            self.card = self._led(wiring.card, wiring.active_high, pin_factory)
            self.buzzer: Any = None
            if wiring.buzzer is not None:
                self.buzzer = Buzzer(wiring.buzzer, active_high=wiring.active_high, pin_factory=pin_factory)
                self._devices.append(self.buzzer)
        except Exception as exc:
            self.close()
            raise HardwareError(f"cannot set up LEDs: {exc}") from exc
        self._fault_mode = "off"

    def _led(self, pin: int | None, active_high: bool, pin_factory: Any) -> Any:
        if pin is None:
            return None
        led = LED(pin, active_high=active_high, pin_factory=pin_factory)
        self._devices.append(led)
        return led

    def show(self, view: ShowIndicators) -> None:
        _set(self.ready, view.ready)
        _set(self.busy, view.busy)
        _set(self.card, view.card)
        if self.fault is not None and view.fault != self._fault_mode:
            if view.fault == "blink":
                self.fault.blink(on_time=0.5, off_time=0.5, background=True)
            else:
                _set(self.fault, view.fault == "on")
        self._fault_mode = view.fault

    def beep(self, pattern: BeepPattern) -> None:
        if self.buzzer is None:
            return
        on_s, off_s, count = _BEEPS[pattern]
        self.buzzer.beep(on_time=on_s, off_time=off_s, n=count, background=True)

    def close(self) -> None:
        for device in self._devices:
            device.close()
        self._devices.clear()


def _set(led: Any, on: bool) -> None:
    if led is None:
        return
    if on:
        led.on()
    else:
        led.off()
