"""The counter keypad's hardware adapter: four buttons, a serving LED and an optional buzzer (gpiozero).

Wiring (BCM numbering, pins from ``[keypad]``): each button connects its GPIO to ground (the internal
pull-up holds it high); the LED's anode goes through a 330 Ω resistor to its GPIO, the cathode to ground; an
active buzzer goes between its GPIO and ground. The pin factory is injected: ``None`` lets gpiozero pick the
Pi's backend (lgpio on a Pi 5), tests pass ``gpiozero.pins.mock.MockFactory()``.

gpiozero calls ``when_pressed`` on its own thread (on mock pins: inside ``drive_low()``), so the handlers only
put a ``KeyPress`` on the inbox; the service thread runs the core.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any, Literal

from gpiozero import LED, Button, Buzzer

from counter.config import KeypadConfig
from counter.core import CounterView, Feedback
from hallq.wire import CounterAction

KEYPAD_ACTIONS: tuple[CounterAction, ...] = ("next", "recall", "complete", "no_show")


@dataclass(frozen=True, slots=True)
class KeyPress:
    """A keypad button went down."""

    action: CounterAction


class Keypad:
    """The counter's buttons and lights. ``show()`` mirrors the core's view on the LED; ``signal()`` beeps."""

    def __init__(self, config: KeypadConfig, *, pin_factory: Any, inbox: queue.Queue[Any]) -> None:
        self._inbox = inbox
        pins = {"next": config.next_pin, "recall": config.recall_pin, "complete": config.complete_pin,
                "no_show": config.no_show_pin}
        # bounce_time=None: the core debounces (mock pins ignore bounce_time, and real contacts need the same
        # rule whatever the backend).
        self.buttons: dict[CounterAction, Any] = {}
        try:
            for action in KEYPAD_ACTIONS:
                button = Button(pins[action], pull_up=True, bounce_time=None, pin_factory=pin_factory)
                button.when_pressed = self._handler(action)
                self.buttons[action] = button
            self.led: Any = LED(config.serving_led_pin, pin_factory=pin_factory)
            self.buzzer: Any = None if config.buzzer_pin is None else Buzzer(config.buzzer_pin, pin_factory=pin_factory)
        except BaseException:
            self.close()
            raise
        self._led_mode: Literal["on", "off", "blink"] | None = None

    def _handler(self, action: CounterAction) -> Any:
        def pressed() -> None:
            self._inbox.put(KeyPress(action))
        return pressed

    def show(self, view: CounterView) -> None:
        """LED on while serving, off while idle, blinking slowly while the broker is unreachable."""
        mode: Literal["on", "off", "blink"] = "blink" if not view.connected else ("on" if view.serving else "off")
        if mode == self._led_mode:
            return
        self._led_mode = mode
        if mode == "blink":
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
        for device in [*self.buttons.values(), getattr(self, "led", None), getattr(self, "buzzer", None)]:
            if device is not None:
                device.close()
