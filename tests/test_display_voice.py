"""The display service's voice against a real Mosquitto: calls that come faster than they can be said are
merged under one chime, a superseded call is not said, and every call is either announced or logged as not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hallq import wire
from hallq.topics import Topics
from testbed.broker import PrivateBroker, free_port
from testbed.display import DisplayProcess
from tests.support import FIXTURES, HALL_ID, Probe, wait_until

TOPICS = Topics(hall=HALL_ID)
LINE = re.compile(r"(announcing|not announced) ticket=(\S+) counter=(\S+) seq=(\d+)(.*)")


@pytest.fixture
def display(broker: PrivateBroker, tmp_path: Path) -> Iterator[DisplayProcess]:
    config = tmp_path / "display.toml"
    # Bilingual: a call takes about 2.4 s to say at 190 words a minute, its English 3.5 s more.
    text = (FIXTURES / "display.toml").read_text(encoding="utf-8")
    config.write_text(text.replace('languages = ["vi"]', 'languages = ["vi", "en"]'), encoding="utf-8")
    with DisplayProcess(config=config, broker_address=broker.address, port=free_port(),
                        log_path=tmp_path / "display.log") as process:
        yield process


def _call(seq: int, number: str, counter: str) -> bytes:
    return wire.Call(seq=seq, number=number, counter=counter, counter_name=f"Quầy {counter}", service=number[0],
                     priority=False, recall=False, at=datetime.now(UTC)).encode()


def _voice_lines(display: DisplayProcess, *, calls: int) -> dict[int, list[tuple[str, str]]]:
    """seq → [(what, rest of the line)], once every call has a first-language outcome."""
    def outcomes() -> dict[int, list[tuple[str, str]]]:
        found: dict[int, list[tuple[str, str]]] = {}
        for match in LINE.finditer(display.log_text()):
            found.setdefault(int(match.group(4)), []).append((match.group(1), match.group(5)))
        return found

    def settled(found: dict[int, list[tuple[str, str]]]) -> bool:
        return len(found) == calls and all(
            any((what == "announcing" and "voice=first" in rest) or "reason=superseded" in rest or "reason=late" in rest
                for what, rest in lines) for lines in found.values())

    def settled_outcomes() -> dict[int, list[tuple[str, str]]] | None:
        found = outcomes()
        return found if settled(found) else None

    try:
        found = wait_until(settled_outcomes, timeout_s=30, what="every call announced or skipped", every_s=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{display.log_text()}") from None
    assert found is not None
    return found


def test_calls_faster_than_speech_are_merged_and_a_superseded_one_is_not_said(
        broker: PrivateBroker, display: DisplayProcess) -> None:
    with Probe(broker) as probe:
        probe.publish(TOPICS.calls(), _call(1, "A001", "1"))
        display.wait_for_log("announcing ticket=A001", timeout_s=10)
        # Three more while A001 is being said: counter 2 calls twice, so its first number is superseded.
        for seq, number, counter in ((2, "A002", "2"), (3, "B001", "3"), (4, "A003", "2")):
            probe.publish(TOPICS.calls(), _call(seq, number, counter))
        lines = _voice_lines(display, calls=4)
    said = {seq: rest for seq, outcomes in lines.items() for what, rest in outcomes
            if what == "announcing" and "voice=first" in rest}
    assert "part=1/1" in said[1]
    assert any("reason=superseded" in rest for _, rest in lines[2]) and 2 not in said
    assert "part=1/2" in said[3] and "part=2/2" in said[4]  # one chime for both
    # A001 was alone: its English followed, unless a call was already waiting (then it gave way, logged).
    assert any("voice=second" in rest or "reason=second_language_yielded" in rest for _, rest in lines[1])
    assert any("reason=second_language_yielded" in rest for _, rest in lines[3])
    for rest in said.values():
        lag = float(re.search(r"lag_s=([\d.]+)", rest).group(1))  # type: ignore[union-attr]
        assert lag <= 10.0
