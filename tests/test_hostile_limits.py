"""The controller's flood defences on their own: token buckets, throttled logs, the intake's inboxes, [limits]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from hall_controller import config
from hall_controller.intake import Intake
from hall_controller.limits import DEVICE_WINDOW, MAX_PACKET_BYTES, DeviceLimiter, Limits, Throttle
from hallq.errors import ConfigError
from hallq.mqtt import LinkDown, LinkUp, Message
from tests.support import HALL_CONFIG, ROOT


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    limiter: DeviceLimiter[str] = DeviceLimiter(rate_per_s=8, burst=5)
    assert [limiter.allow("d1", 100.0) for _ in range(6)] == [True] * 5 + [False]
    assert limiter.allow("d1", 100.0625) is False        # half a token
    assert limiter.allow("d1", 100.125) is True          # one token after 1/8 s at 8 a second
    assert limiter.allow("d1", 100.125) is False


def test_a_bucket_refills_no_further_than_its_burst() -> None:
    limiter: DeviceLimiter[str] = DeviceLimiter(rate_per_s=10, burst=3)
    assert limiter.allow("d1", 0.0)
    assert sum(limiter.allow("d1", 3600.0) for _ in range(10)) == 3


def test_each_device_has_its_own_bucket() -> None:
    limiter: DeviceLimiter[str] = DeviceLimiter(rate_per_s=1, burst=2)
    assert [limiter.allow("d1", 0.0) for _ in range(3)] == [True, True, False]
    assert [limiter.allow("d2", 0.0) for _ in range(2)] == [True, True]
    assert len(limiter) == 2


def test_a_bucket_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        DeviceLimiter(rate_per_s=0, burst=1)


def test_a_throttle_lets_its_burst_through_and_reports_the_rest_when_the_window_ends() -> None:
    throttle: Throttle[str] = Throttle(window_s=10, burst=2)
    assert [throttle.allow("d1", 0.0 + i) for i in range(5)] == [True, True, False, False, False]
    assert throttle.allow("d2", 1.0)
    assert throttle.ended(9.0) == []
    assert throttle.ended(11.0) == [("d1", 3, 11.0)]
    assert throttle.allow("d1", 11.5)                     # a new window
    assert throttle.ended(30.0) == []                     # d1 and d2 held nothing back since


def test_a_window_that_rolls_over_on_a_new_event_still_reports_its_summary() -> None:
    throttle: Throttle[str] = Throttle(window_s=1, burst=1)
    assert throttle.allow("d1", 0.0) and not throttle.allow("d1", 0.5)
    assert throttle.allow("d1", 1.2)                      # rolls the window over inside allow()
    assert throttle.ended(1.3) == [("d1", 1, 1.2)]


def test_a_bucket_tells_when_its_next_token_comes() -> None:
    limiter: DeviceLimiter[str] = DeviceLimiter(rate_per_s=4, burst=2)
    assert limiter.next_token_s("never-seen", 10.0) == 10.0
    assert limiter.allow("d1", 10.0) and limiter.allow("d1", 10.0) and not limiter.allow("d1", 10.0)
    assert limiter.next_token_s("d1", 10.0) == pytest.approx(10.25)
    assert limiter.next_token_s("d1", 10.1) == pytest.approx(10.25)   # refilling meanwhile
    assert limiter.next_token_s("d1", 10.3) == 10.3                    # a token is there


def test_device_inboxes_share_the_bounds_equally_within_the_window() -> None:
    assert Limits(inbox_max_messages=20_000, inbox_max_bytes=16 << 20).inbox_bounds(25) == (DEVICE_WINDOW,
                                                                                           (16 << 20) // 25)
    assert Limits(inbox_max_messages=100, inbox_max_bytes=1 << 20).inbox_bounds(40) == (2, MAX_PACKET_BYTES)
    assert Limits(inbox_max_messages=100).inbox_bounds(500) == (1, MAX_PACKET_BYTES)  # a packet always fits


# --- the intake: one inbox per device, drained round-robin ----------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _message(device: str = "d1", size: int = 10, source: str = "") -> Message:
    return Message(topic=f"qms/h/dispenser/{device}/request", payload=b"x" * size, source=source or device)


def _devices(batch: Sequence[object]) -> list[str]:
    return [item.source if isinstance(item, Message) else type(item).__name__ for item in batch]


def test_the_intake_takes_round_robin_so_a_busy_device_does_not_delay_the_others() -> None:
    intake = Intake(max_messages=64, max_bytes=1 << 20)
    flood, quiet = intake.inbox("d1"), intake.inbox("d2")
    for _ in range(50):
        flood.put(_message("d1"))
    quiet.put(_message("d2"))
    assert _devices(intake.take(3)) == ["d1", "d2", "d1"]     # d2 second, not 51st
    assert len(intake.take(1000)) == 48
    assert intake.take(10) == [] and not intake.has_items()


def test_link_events_of_the_controllers_own_link_come_first_and_device_link_events_mark_the_inbox() -> None:
    intake = Intake(max_messages=4, max_bytes=1 << 20)
    own, device = intake.inbox("controller", control=True), intake.inbox("d1")
    assert intake.disconnected() == ["controller", "d1"]
    device.put(LinkUp())
    assert intake.disconnected() == ["controller"]
    assert intake.take(10) == []                          # a device link's LinkUp only marks its inbox
    device.put(_message())
    own.put(LinkUp())
    own.put(_message(source="controller"))                # what an older version's session still held
    assert _devices(intake.take(10)) == ["LinkUp", "d1", "controller"]
    assert intake.disconnected() == []
    device.put(LinkDown("gone"))
    assert intake.disconnected() == ["d1"]


def test_a_paused_inbox_hands_back_what_it_held_and_is_neither_read_nor_drained_until_its_pause_ends() -> None:
    clock = _Clock()
    intake = Intake(max_messages=8, max_bytes=1 << 20, clock=clock)
    flood, quiet = intake.inbox("d1"), intake.inbox("d2")
    for _ in range(5):
        flood.put(_message("d1"))
    assert len(intake.pause("d1", until_s=100.5)) == 5
    assert not intake.accepts("d1") and intake.accepts("d2")
    assert intake.resume_due() == 100.5                   # when the service must look again
    flood.put(_message("d1"))                             # what a read in progress still delivers
    quiet.put(_message("d2"))
    assert _devices(intake.take(10)) == ["d2"]
    assert intake.paused() == ["d1"]
    clock.now = 100.5
    assert intake.accepts("d1")
    assert _devices(intake.take(10)) == ["d1"]
    assert intake.paused() == [] and intake.queued_messages == 0


def test_a_full_inbox_stops_reading_only_its_own_connection_until_there_is_room() -> None:
    intake = Intake(max_messages=3, max_bytes=1 << 20)
    full, other = intake.inbox("d1"), intake.inbox("d2")
    for _ in range(3):
        full.put(_message("d1"))
    assert not intake.accepts("d1")
    assert intake.accepts("d2")                            # another device is not held up
    other.put(_message("d2"))
    assert intake.times_full() == {"d1": 1}
    assert not intake.accepts("d1") and intake.times_full() == {"d1": 1}   # counted once per filling
    assert _devices(intake.take(2)) == ["d1", "d2"]
    assert intake.accepts("d1")
    assert intake.queued_messages == 2 and intake.peak_messages == 4


def test_an_inbox_is_bounded_in_bytes_but_always_takes_one_message() -> None:
    intake = Intake(max_messages=100, max_bytes=100)
    inbox = intake.inbox("d1")
    assert intake.accepts("d1")
    inbox.put(_message(size=500))                         # larger than the bound, but the inbox was empty
    assert not intake.accepts("d1")
    intake.take(1)
    assert intake.accepts("d1")


def test_an_inbox_name_is_given_once() -> None:
    intake = Intake(max_messages=1, max_bytes=1)
    intake.inbox("d1")
    with pytest.raises(ValueError, match="exists already"):
        intake.inbox("d1")


# --- [limits] in the hall config --------------------------------------------------------------------------

def _hall_with(tmp_path: Path, limits: str) -> Path:
    path = tmp_path / "hall.toml"
    path.write_text(HALL_CONFIG.read_text(encoding="utf-8") + "\n[limits]\n" + limits, encoding="utf-8")
    return path


def test_without_a_limits_table_the_defaults_apply() -> None:
    assert config.load(HALL_CONFIG).limits == Limits()


def test_the_example_config_sets_limits_for_a_real_hall() -> None:
    limits = config.load(ROOT / "config" / "hall.example.toml").limits
    assert limits.device_messages_per_s < Limits().device_messages_per_s
    assert limits.device_burst >= 50                     # a kiosk that reconnects sends its queued requests at once


def test_limits_are_read_from_the_config(tmp_path: Path) -> None:
    path = _hall_with(tmp_path, "device_messages_per_s = 2.5\ndevice_burst = 7\ninbox_max_messages = 500\n"
                                "inbox_max_bytes = 2097152\n")
    assert config.load(path).limits == Limits(device_messages_per_s=2.5, device_burst=7, inbox_max_messages=500,
                                              inbox_max_bytes=2097152)


@pytest.mark.parametrize(("line", "key", "problem"), [
    ("device_messages_per_s = 0", "limits.device_messages_per_s", "at least 0.1"),
    ("device_messages_per_s = \"fast\"", "limits.device_messages_per_s", "must be a number"),
    ("device_burst = 0", "limits.device_burst", "at least 1"),
    ("inbox_max_messages = 10", "limits.inbox_max_messages", "at least 100"),
    ("inbox_max_bytes = 1000", "limits.inbox_max_bytes", "at least 1048576"),
    ("messages_per_minute = 5", "limits.messages_per_minute", "unknown key"),
])
def test_a_bad_limit_is_refused_naming_the_key(tmp_path: Path, line: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config.load(_hall_with(tmp_path, line + "\n"))
    assert refused.value.key == key
    assert problem in refused.value.problem
