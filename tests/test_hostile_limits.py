"""The controller's flood defences on their own: token buckets, throttled logs, the bounded inbox, [limits]."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hall_controller import config
from hall_controller.limits import BoundedInbox, DeviceLimiter, Limits, Throttle
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


def _message(size: int = 10) -> Message:
    return Message(topic="qms/h/dispenser/d1/request", payload=b"x" * size)


def test_the_inbox_drops_messages_beyond_its_count_and_never_blocks() -> None:
    inbox = BoundedInbox(max_messages=3, max_bytes=1 << 20)
    done = threading.Event()

    def producer() -> None:
        for _ in range(10):
            inbox.put(_message())
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert done.wait(2), "put() blocked on a full inbox"
    thread.join()
    assert inbox.qsize() == 3
    assert inbox.take_dropped() == 7
    assert inbox.take_dropped() == 0
    inbox.get_nowait()
    inbox.put(_message())                                 # room again after a get
    assert inbox.qsize() == 3 and inbox.queued_messages == 3


def test_the_inbox_bounds_queued_payload_bytes() -> None:
    inbox = BoundedInbox(max_messages=1000, max_bytes=100)
    for _ in range(5):
        inbox.put(_message(40))
    assert (inbox.qsize(), inbox.queued_bytes, inbox.take_dropped()) == (2, 80, 3)


def test_the_inbox_always_takes_link_events() -> None:
    inbox = BoundedInbox(max_messages=1, max_bytes=1 << 20)
    inbox.put(_message())
    inbox.put(LinkDown("gone"))
    inbox.put(LinkUp())
    assert [type(inbox.get_nowait()) for _ in range(3)] == [Message, LinkDown, LinkUp]
    assert inbox.queued_messages == 0 and inbox.queued_bytes == 0 and inbox.peak_messages == 1


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
