"""The counter keypad's hardware adapter: four buttons, a serving LED and an optional buzzer (gpiozero).

Wiring (BCM numbering, pins from ``[keypad]``): each button connects its GPIO to ground (the internal
pull-up holds it high); the LED's anode goes through a 330 Ω resistor to its GPIO, the cathode to ground; an
active buzzer goes between its GPIO and ground. The pin factory is injected: ``None`` lets gpiozero pick the
Pi's backend (lgpio on a Pi 5), tests pass ``gpiozero.pins.mock.MockFactory()``.

gpiozero calls ``when_pressed`` on its own thread (on mock pins: inside ``drive_low()``), so the handlers only
put a ``KeyPress`` on the inbox; the service thread runs the core.

Pins that cannot be had (no pin factory works on this machine, a pin in use, a pin the board lacks) raise one
``KeypadError`` naming the config key and the pin; gpiozero's warnings about the pin factories it tried are
folded into that message instead of being printed.
"""

from __future__ import annotations

import logging
import queue
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from gpiozero import LED, Button, Buzzer
from gpiozero.exc import BadPinFactory, PinFactoryFallback

from counter.config import KeypadConfig
from counter.core import CounterView, Feedback
from hallq.errors import HallqError
from hallq.wire import CounterAction

log = logging.getLogger(__name__)

KEYPAD_ACTIONS: tuple[CounterAction, ...] = ("next", "recall", "complete", "no_show")


class KeypadError(HallqError, RuntimeError):
    """A pin of the keypad (or of its rating buttons) could not be set up. ``key`` is its config key
    (``keypad.next_pin``, ``rating.satisfied_pin``), ``pin`` its name, ``problem`` what went wrong; ``key`` and
    ``pin`` are empty when no pin factory could start at all."""

    def __init__(self, key: str, pin: str, problem: str) -> None:
        self.key = key
        self.pin = pin
        self.problem = problem
        super().__init__(f"{key} = {pin}: {problem}" if key else problem)


def open_pin(key: str, pin: str, tried: list[warnings.WarningMessage], make: Callable[[], Any]) -> Any:
    """``make()`` (a gpiozero device on ``pin``), or one ``KeypadError`` naming config ``key`` and ``pin``; ``tried``
    holds the warnings recorded so far, whose pin factory fallbacks explain a machine without usable GPIO."""
    try:
        return make()
    except BadPinFactory as exc:
        tried_names = [str(w.message) for w in tried if issubclass(w.category, PinFactoryFallback)]
        hint = (f" ({'; '.join(tried_names)}); not a Raspberry Pi? (a Pi 5 needs lgpio)" if tried_names
                else "; check GPIOZERO_PIN_FACTORY")
        raise KeypadError("", "", f"no GPIO pin factory could start: {exc}{hint}") from exc
    except Exception as exc:  # each backend fails in its own way: gpiozero's errors, lgpio.error, OSError
        raise KeypadError(key, pin, str(exc) or type(exc).__name__) from exc


@dataclass(frozen=True, slots=True)
class KeyPress:
    """A keypad button went down."""

    action: CounterAction


class Keypad:
    """The counter's buttons and lights. ``show()`` mirrors the core's view on the LED; ``signal()`` beeps."""

    def __init__(self, config: KeypadConfig, *, pin_factory: Any, inbox: queue.Queue[Any]) -> None:
        self._inbox = inbox
        self.buttons: dict[CounterAction, Any] = {}
        self.led: Any = None
        self.buzzer: Any = None
        pins = {"next": ("next_pin", config.next_pin), "recall": ("recall_pin", config.recall_pin),
                "complete": ("complete_pin", config.complete_pin), "no_show": ("no_show_pin", config.no_show_pin)}
        with warnings.catch_warnings(record=True) as tried:
            warnings.simplefilter("always", PinFactoryFallback)
            try:
                for action in KEYPAD_ACTIONS:
                    key, pin = pins[action]
                    # bounce_time=None: the core debounces (mock pins ignore bounce_time, and real contacts need
                    # the same rule whatever the backend).
                    button = open_pin(f"keypad.{key}", pin, tried, partial(Button, pin, pull_up=True,
                                                                           bounce_time=None, pin_factory=pin_factory))
                    button.when_pressed = self._handler(action)
                    self.buttons[action] = button
                self.led = open_pin("keypad.serving_led_pin", config.serving_led_pin, tried,
                                    partial(LED, config.serving_led_pin, pin_factory=pin_factory))
                if config.buzzer_pin is not None:
                    self.buzzer = open_pin("keypad.buzzer_pin", config.buzzer_pin, tried,
                                           partial(Buzzer, config.buzzer_pin, pin_factory=pin_factory))
            except BaseException:
                self.close()
                raise
        for warning in tried:
            log.warning("gpio: %s", warning.message)
        self._led_mode: Literal["on", "off", "blink", "flash"] | None = None

    def _handler(self, action: CounterAction) -> Any:
        def pressed() -> None:
            self._inbox.put(KeyPress(action))
        return pressed

    def show(self, view: CounterView) -> None:
        """LED on while serving, off while idle, blinking slowly while the broker is unreachable, flashing fast
        once another process took this counter's account over (the keypad no longer connects; restart it)."""
        mode: Literal["on", "off", "blink", "flash"] = (
            "flash" if view.taken_over else "blink" if not view.connected else "on" if view.serving else "off")
        if mode == self._led_mode:
            return
        self._led_mode = mode
        if mode == "flash":
            self.led.blink(on_time=0.1, off_time=0.1)
        elif mode == "blink":
            self.led.blink(on_time=0.5, off_time=0.5)
        elif mode == "on":
            self.led.on()
        else:
            self.led.off()

    def signal(self, feedback: Feedback) -> None:
        """Two short beeps for a refusal (queue empty, counter closed, no answer); silence for success."""
        if self.buzzer is not None and not feedback.ok:
            self.buzzer.beep(on_time=0.1, off_time=0.1, n=2, background=True)

    def close(self) -> None:
        for device in [*self.buttons.values(), self.led, self.buzzer]:
            if device is not None:
                device.close()
