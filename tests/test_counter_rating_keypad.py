"""The rating buttons' hardware adapter on gpiozero's MockFactory pins, and the ``[rating]`` table's checks."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gpiozero
import pytest
from gpiozero.pins.mock import MockFactory

from counter import config as counter_config
from counter.config import RatingConfig
from counter.core import CounterCore, Feedback, Notice, Press
from counter.keypad import KeypadError
from counter.rating import THANKS_BLINKS, RatingPanel, RatingPress
from counter.service import KeypadService
from hallq.errors import ConfigError
from hallq.mqtt import BrokerSettings
from hallq.wire import RATING_LEVELS, CounterReply, CounterState, ServingTicket
from tests.support import FIXTURES, ROOT

T0 = datetime(2026, 11, 27, 8, 15, 2, tzinfo=timezone(timedelta(hours=7)))
BUTTONS = {"very_satisfied": 5, "satisfied": 6, "neutral": 13, "dissatisfied": 19}
LAMPS = {"very_satisfied": 12, "satisfied": 16, "neutral": 20, "dissatisfied": 21}
RATING_TABLE = """
[rating]
wait_s = 20
very_satisfied_pin = "GPIO5"
satisfied_pin = "GPIO6"
neutral_pin = "GPIO13"
dissatisfied_pin = "GPIO19"
very_satisfied_led_pin = "GPIO12"
satisfied_led_pin = "GPIO16"
neutral_led_pin = "GPIO20"
dissatisfied_led_pin = "GPIO21"
"""


def _config(tmp_path: Path, table: str = RATING_TABLE, *, replace_text: tuple[str, str] = ("", "")) -> Path:
    """The fixture counter's config with ``table`` appended (one text replaced in it first)."""
    text = (FIXTURES / "counter.toml").read_text(encoding="utf-8") + table.replace(*replace_text)
    path = tmp_path / "counter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(tmp_path: Path, table: str) -> str:
    with pytest.raises(ConfigError) as raised:
        counter_config.load(_config(tmp_path, table))
    return str(raised.value)


@pytest.fixture
def panel() -> Iterator[tuple[RatingPanel, MockFactory, queue.Queue[Any]]]:
    factory = MockFactory()
    inbox: queue.Queue[Any] = queue.Queue()
    config = RatingConfig(wait_s=20.0, buttons=tuple((level, f"GPIO{BUTTONS[level]}") for level in RATING_LEVELS),
                          lamps=tuple((level, f"GPIO{LAMPS[level]}") for level in RATING_LEVELS))
    rating = RatingPanel(config, pin_factory=factory, inbox=inbox)
    try:
        yield rating, factory, inbox
    finally:
        rating.close()
        factory.reset()


def _lit(factory: MockFactory) -> list[bool]:
    return [bool(factory.pin(pin).state) for pin in LAMPS.values()]


def _until(condition: Callable[[], bool], *, timeout_s: float = 3.0) -> bool:
    """Poll the pins (gpiozero offers no event for an output changing)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _window_open() -> CounterCore:
    core = CounterCore(counter="1", debounce_s=0.2, rating_wait_s=20.0)
    core.on_link(up=True)
    ticket = ServingTicket(id="id-A001", number="A001", service="A", priority=False, called_at=T0)
    core.on_state(CounterState(counter="1", name="Quầy 1", status="open", services=("A",), ticket=ticket, waiting=(),
                               at=T0))
    core.press(Press("complete"), now_s=1.0, request_id="c1")
    core.on_reply(CounterReply(request_id="c1", action="complete", status="open", ticket=None), now_s=1.0)
    return core


# --- the adapter --------------------------------------------------------------------------------------------

def test_each_button_only_puts_its_level_on_the_inbox(panel: tuple[RatingPanel, MockFactory, queue.Queue[Any]]) -> None:
    _rating, factory, inbox = panel
    for level, pin in BUTTONS.items():
        factory.pin(pin).drive_low()
        factory.pin(pin).drive_high()
        assert inbox.get_nowait() == RatingPress(level)  # type: ignore[arg-type]
    assert inbox.empty()
    assert _lit(factory) == [False] * 4  # pressing lights nothing: the core decides, the loop shows


def test_the_lamps_are_lit_only_while_a_rating_is_offered(
    panel: tuple[RatingPanel, MockFactory, queue.Queue[Any]]
) -> None:
    rating, factory, _inbox = panel
    core = CounterCore(counter="1", rating_wait_s=20.0)
    core.on_link(up=True)
    rating.show(core.view)
    assert _lit(factory) == [False] * 4  # no window
    core = _window_open()
    rating.show(core.view)
    assert _lit(factory) == [True] * 4
    command = core.press(Press("rate", rating="satisfied"), now_s=2.0, request_id="r1")
    assert command is not None
    rating.show(core.view)
    assert _lit(factory) == [False] * 4  # the press is on its way: no second one
    core.tick(now_s=2.0 + 5.0)  # no answer: the citizen may press again
    rating.show(core.view)
    assert _lit(factory) == [True] * 4
    core.on_link(up=False)
    rating.show(core.view)
    assert _lit(factory) == [False] * 4  # a press would send nothing
    core.on_link(up=True)
    rating.show(core.view)
    core.tick(now_s=1.0 + 20.0)
    rating.show(core.view)
    assert _lit(factory) == [False] * 4  # the wait is over


def test_an_accepted_rating_blinks_thank_you_and_leaves_the_lamps_dark(
    panel: tuple[RatingPanel, MockFactory, queue.Queue[Any]]
) -> None:
    rating, factory, _inbox = panel
    core = _window_open()
    rating.show(core.view)
    command = core.press(Press("rate", rating="very_satisfied"), now_s=2.0, request_id="r1")
    assert command is not None
    rating.show(core.view)
    lamp = factory.pin(LAMPS["neutral"])
    lit_before = sum(1 for s in lamp.states if s.state)
    feedback = core.on_reply(CounterReply(request_id="r1", action="rate", status="open", ticket=None), now_s=2.01)
    assert feedback is not None
    rating.signal(feedback)
    rating.show(core.view)  # the window closed: the loop shows it right after the signal, the blink goes on
    assert _until(lambda: sum(1 for s in lamp.states if s.state) - lit_before == THANKS_BLINKS), \
        "the lamps did not blink three times"
    assert _until(lambda: _lit(factory) == [False] * 4)


def test_a_refusal_or_another_commands_outcome_does_not_blink(
    panel: tuple[RatingPanel, MockFactory, queue.Queue[Any]]
) -> None:
    rating, factory, _inbox = panel
    refused = Notice("error", "refused")
    for feedback in (Feedback(ok=False, notice=refused, action="rate"), Feedback(ok=True, notice=refused, action="next"),
                     Feedback(ok=False, notice=refused)):
        rating.signal(feedback)
    assert all(len(factory.pin(pin).states) == 1 for pin in LAMPS.values())  # only the initial "off"


def test_buttons_without_lamps_work(tmp_path: Path) -> None:
    table = "\n".join(line for line in RATING_TABLE.splitlines() if "_led_pin" not in line)
    cfg = counter_config.load(_config(tmp_path, table))
    assert cfg.rating.lamps == () and len(cfg.rating.buttons) == 4
    factory = MockFactory()
    inbox: queue.Queue[Any] = queue.Queue()
    rating = RatingPanel(cfg.rating, pin_factory=factory, inbox=inbox)
    try:
        rating.show(_window_open().view)
        factory.pin(BUTTONS["neutral"]).drive_low()
        factory.pin(BUTTONS["neutral"]).drive_high()  # a button left down holds close() up for its hold time
        assert inbox.get_nowait() == RatingPress("neutral")
    finally:
        rating.close()
        factory.reset()


def test_a_rating_pin_in_use_is_one_keypad_error_naming_its_key_and_every_pin_is_given_back(tmp_path: Path) -> None:
    cfg = replace(counter_config.load(_config(tmp_path)), broker=BrokerSettings(port=1))
    factory = MockFactory()
    holder = gpiozero.LED("GPIO20", pin_factory=factory)  # something else drives the neutral lamp's pin
    try:
        with pytest.raises(KeypadError, match=r"^rating.neutral_led_pin = GPIO20: .*in use") as raised:
            KeypadService(cfg, pin_factory=factory)
        assert (raised.value.key, raised.value.pin) == ("rating.neutral_led_pin", "GPIO20")
        holder.close()
        again = KeypadService(cfg, pin_factory=factory)  # the keypad's and the buttons' pins were all closed
        assert again.rating is not None
        again.keypad.close()
        again.rating.close()
    finally:
        holder.close()
        factory.reset()


def test_a_keypad_without_rating_buttons_opens_no_window(tmp_path: Path) -> None:
    for table in ("", "\n[rating]\nwait_s = 20\n", RATING_TABLE.replace("wait_s = 20", "wait_s = 0")):
        cfg = replace(counter_config.load(_config(tmp_path, table)), broker=BrokerSettings(port=1))
        factory = MockFactory()
        service = KeypadService(cfg, pin_factory=factory)
        try:
            assert service.rating is None and service.counter.core.rating_wait_s is None, table
        finally:
            service.keypad.close()
            factory.reset()


# --- the [rating] table ---------------------------------------------------------------------------------------

def test_the_rating_table_reads_pins_in_any_spelling_and_the_wait(tmp_path: Path) -> None:
    table = RATING_TABLE.replace('"GPIO5"', "5").replace('"GPIO13"', '"BOARD33"').replace('"GPIO21"', '"J8:40"')
    cfg = counter_config.load(_config(tmp_path, table))
    assert cfg.rating == RatingConfig(
        wait_s=20.0, buttons=tuple((level, f"GPIO{BUTTONS[level]}") for level in RATING_LEVELS),
        lamps=tuple((level, f"GPIO{LAMPS[level]}") for level in RATING_LEVELS))


def test_without_a_rating_table_the_console_offers_ratings_for_30_s_and_there_are_no_buttons() -> None:
    cfg = counter_config.load(FIXTURES / "counter.toml")
    assert cfg.rating == RatingConfig(wait_s=30.0, buttons=(), lamps=())


def test_a_rating_pin_that_is_a_keypad_pin_is_refused_naming_both_keys(tmp_path: Path) -> None:
    message = _refusal(tmp_path, RATING_TABLE.replace('neutral_pin = "GPIO13"', 'neutral_pin = "BOARD11"'))
    assert message.endswith("rating.neutral_pin: pin GPIO17 ('BOARD11') is already used by keypad.next_pin")


def test_a_pin_given_to_two_rating_keys_is_refused(tmp_path: Path) -> None:
    message = _refusal(tmp_path, RATING_TABLE.replace('satisfied_led_pin = "GPIO16"', 'satisfied_led_pin = "GPIO6"'))
    assert message.endswith("rating.satisfied_led_pin: pin GPIO6 is already used by rating.satisfied_pin")


def test_a_rating_pin_not_on_the_header_is_refused(tmp_path: Path) -> None:
    message = _refusal(tmp_path, RATING_TABLE.replace('"GPIO19"', '"BOARD2"'))
    assert message.endswith("rating.dissatisfied_pin: 'BOARD2' is a 5 V pin, not a GPIO")


def test_three_rating_buttons_are_refused_naming_the_missing_one(tmp_path: Path) -> None:
    message = _refusal(tmp_path, RATING_TABLE.replace('neutral_pin = "GPIO13"\n', ""))
    assert "rating.neutral_pin: is required with very_satisfied_pin: give all four rating buttons" in message


def test_lamps_without_buttons_are_refused(tmp_path: Path) -> None:
    table = "\n".join(line for line in RATING_TABLE.splitlines() if "_led_pin" in line or "[rating]" in line)
    assert "lamps need their buttons" in _refusal(tmp_path, table)


def test_a_wait_too_short_to_choose_is_refused(tmp_path: Path) -> None:
    assert _refusal(tmp_path, "\n[rating]\nwait_s = 2\n").endswith(
        "rating.wait_s: must be 0 (no ratings at this counter) or at least 5, got 2")
    assert "rating.wait_s: must be at most 600" in _refusal(tmp_path, "\n[rating]\nwait_s = 3600\n")


def test_a_misspelt_rating_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    message = _refusal(tmp_path, RATING_TABLE.replace("neutral_led_pin", "netural_led_pin"))
    assert "rating.netural_led_pin: unknown key; did you mean 'neutral_led_pin'?" in message


def test_the_example_config_has_four_lit_rating_buttons_clear_of_the_keypad() -> None:
    cfg = counter_config.load(ROOT / "config" / "counter.example.toml")
    assert cfg.keypad is not None and cfg.rating.wait_s == 30.0
    assert [level for level, _pin in cfg.rating.buttons] == list(RATING_LEVELS)
    assert [level for level, _pin in cfg.rating.lamps] == list(RATING_LEVELS)
