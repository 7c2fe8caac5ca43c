"""The citizen's rating buttons at a counter: four lit buttons, best first (gpiozero).

A satisfaction device as halls use them: four large buttons facing the citizen, "Rất hài lòng", "Hài lòng",
"Bình thường", "Không hài lòng", each with a lamp inside. They belong to the counter's keypad (one Pi, one
program, one MQTT account); the pins come from ``[rating]``.

Wiring: each button connects its GPIO to ground (the internal pull-up holds it high), like the keypad's. Each
button's lamp is active high: a LED's anode through a 330 Ω resistor to its GPIO and the cathode to ground, or
a 5 V / 12 V illuminated button's lamp switched by a transistor from its GPIO. The lamps are optional (all four
or none). The pin factory is injected, as for the keypad: tests pass ``gpiozero.pins.mock.MockFactory()``.

The lamps are lit while the counter's core offers a rating (``CounterView.rating_offered``: after the controller
accepted ``complete``, for ``[rating] wait_s``, while the broker is reachable and nothing waits for an answer),
and dark otherwise: a press on a dark button is refused by the core and sends nothing. An accepted rating
blinks all four lamps three times: the "thank you". A refusal has no signal of its own: its lamps follow the
window (a refusal for good closed it, so they stay dark; no answer, or one that may pass, lights them again for
another press), and the reason is logged. The keypad's buzzer is the clerk's: it does not sound for ratings.

gpiozero calls ``when_pressed`` on its own thread (on mock pins: inside ``drive_low()``), so the handlers only
put a ``RatingPress`` on the inbox; the keypad's service thread runs the core.
"""

from __future__ import annotations

import logging
import queue
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

from gpiozero import LED, Button
from gpiozero.exc import PinFactoryFallback

from counter.config import RATING_BUTTON_KEYS, RATING_LAMP_KEYS, RatingConfig
from counter.core import CounterView, Feedback
from counter.keypad import open_pin
from hallq.wire import RatingLevel

log = logging.getLogger(__name__)

# The "thank you": three blinks of all four lamps, a little under a second, then dark.
THANKS_ON_S: Final = 0.15
THANKS_OFF_S: Final = 0.15
THANKS_BLINKS: Final = 3


@dataclass(frozen=True, slots=True)
class RatingPress:
    """A rating button went down."""

    level: RatingLevel


class RatingPanel:
    """The four rating buttons and their lamps. ``show()`` lights them while a rating is offered; ``signal()``
    blinks the thank-you. Raises ``KeypadError`` naming the ``[rating]`` key of a pin it cannot have."""

    def __init__(self, config: RatingConfig, *, pin_factory: Any, inbox: queue.Queue[Any]) -> None:
        self._inbox = inbox
        self.buttons: dict[RatingLevel, Any] = {}
        self.lamps: dict[RatingLevel, Any] = {}
        with warnings.catch_warnings(record=True) as tried:
            warnings.simplefilter("always", PinFactoryFallback)
            try:
                for level, pin in config.buttons:
                    # bounce_time=None: the core debounces, as for the keypad's buttons.
                    button = open_pin(f"rating.{RATING_BUTTON_KEYS[level]}", pin, tried,
                                      partial(Button, pin, pull_up=True, bounce_time=None, pin_factory=pin_factory))
                    button.when_pressed = self._handler(level)
                    self.buttons[level] = button
                for level, pin in config.lamps:
                    self.lamps[level] = open_pin(f"rating.{RATING_LAMP_KEYS[level]}", pin, tried,
                                                 partial(LED, pin, pin_factory=pin_factory))
            except BaseException:
                self.close()
                raise
        for warning in tried:
            log.warning("gpio: %s", warning.message)
        # "thanks" is dark once its blinks end (gpiozero leaves a blinked LED off): nothing to undo after it.
        self._mode: Literal["lit", "dark", "thanks"] = "dark"

    def _handler(self, level: RatingLevel) -> Any:
        def pressed() -> None:
            self._inbox.put(RatingPress(level))
        return pressed

    def show(self, view: CounterView) -> None:
        """Lamps on while a rating is offered, off otherwise (a thank-you blink in progress is left to finish)."""
        if view.rating_offered:
            if self._mode != "lit":
                self._mode = "lit"
                for lamp in self.lamps.values():
                    lamp.on()  # also stops a thank-you blink: a new window is more than its end
        elif self._mode == "lit":
            self._mode = "dark"
            for lamp in self.lamps.values():
                lamp.off()

    def signal(self, feedback: Feedback) -> None:
        """The thank-you blink when the controller accepted a rating; nothing for any other outcome."""
        if feedback.action != "rate" or not feedback.ok:
            return
        self._mode = "thanks"
        for lamp in self.lamps.values():
            lamp.blink(on_time=THANKS_ON_S, off_time=THANKS_OFF_S, n=THANKS_BLINKS, background=True)

    def close(self) -> None:
        for device in [*self.buttons.values(), *self.lamps.values()]:
            device.close()
