"""``python -m counter console`` in a real pseudo-terminal against a live hall, read back through pyte's
terminal emulator: keys go in, the clerk's screen comes out."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest

from hallq import wire
from hallq.mqtt import Message
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from tests.support import FIXTURES, HALL_ID, ROOT, ControllerProcess, Probe

COLUMNS, LINES = 120, 30


class Terminal:
    """A child process on a pty of COLUMNS×LINES, its output fed to a pyte screen."""

    def __init__(self, args: list[str]) -> None:
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.ByteStream(self.screen)
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                                     start_new_session=True)
        os.close(slave)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def _pump(self, timeout_s: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if ready:
            try:
                self.stream.feed(os.read(self.master, 65536))
            except OSError:  # the child closed the terminal: select answers at once, so wait out the poll here
                time.sleep(timeout_s)

    def wait_for(self, text: str, *, timeout_s: float = 5.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._pump(0.05)
            if text in self.text():
                return self.text()
        raise AssertionError(f"{text!r} not on screen within {timeout_s} s:\n{self.text()}")

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)
        return self.proc.returncode


@pytest.fixture
def console(broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path) -> Iterator[Terminal]:
    terminal = Terminal([sys.executable, "-m", "counter", "console", "--config", str(FIXTURES / "counter.toml"),
                         "--broker", broker.address, "--log-file", str(tmp_path / "console.log")])
    try:
        terminal.wait_for("đã kết nối (connected)")
        terminal.wait_for("ĐANG MỞ (open)")  # the retained counter state arrived
        yield terminal
    finally:
        terminal.close()


def test_console_calls_the_next_ticket_and_shows_the_queue(broker: PrivateBroker, console: Terminal) -> None:
    topics = Topics(hall=HALL_ID)
    with Probe(broker, subscriptions=[topics.dispenser_ticket("d1")]) as probe:
        issued = [probe.request_ticket("d1", s).ticket for s in "AAC"]
    assert all(t is not None for t in issued)
    console.wait_for("A Hộ tịch: 2")
    console.press("n")
    screen = console.wait_for("Đang mời số A001 (called A001)")
    assert "Đang phục vụ (serving): A001" in screen
    console.wait_for("A Hộ tịch: 1")


def test_controller_refusal_is_shown_plainly_and_the_console_goes_on(console: Terminal) -> None:
    console.press("n")
    screen = console.wait_for("Không còn số nào đang chờ (queue empty)")
    assert "Traceback" not in screen
    console.press("g")
    console.wait_for("Gọi số (call number): _")
    console.press("a999\r")
    screen = console.wait_for("(unknown ticket)")
    console.press("q")
    assert console.proc.wait(5) == 0


@pytest.mark.parametrize(("key", "action"), [("n", "next"), ("r", "recall")])
def test_a_held_key_sends_one_command(broker: PrivateBroker, console: Terminal, key: str, action: str) -> None:
    topics = Topics(hall=HALL_ID)
    command_topic = topics.counter_command("1")
    with Probe(broker, subscriptions=[topics.dispenser_ticket("d1"), topics.calls(), command_topic,
                                      topics.counter_reply("1")]) as probe:
        for _ in range(3):
            assert probe.request_ticket("d1", "A").ticket is not None
        if action == "recall":
            assert probe.command("1", "next").ok  # something to recall
            probe.on(command_topic)
            probe.on(topics.calls())
            console.wait_for("Đang phục vụ (serving): A001")
        console.wait_for("A Hộ tịch: 3" if action == "next" else "A Hộ tịch: 2")
        for _ in range(10):  # a terminal's auto-repeat: ~30 characters a second while the key is held
            console.press(key)
            time.sleep(0.03)  # the auto-repeat's pace is the behaviour under test
        console.wait_for("(called A001)" if action == "next" else "(recalled A001)")
        commands = [wire.CounterCommand.decode(m.payload) for m in _all_on(probe, command_topic, settle_s=1.0)]
        calls = [wire.Call.decode(m.payload) for m in _all_on(probe, topics.calls(), settle_s=0.1)]
    assert [c.action for c in commands] == [action]
    assert [(c.number, c.recall) for c in calls] == [("A001", action == "recall")]


def _all_on(probe: Probe, topic: str, *, settle_s: float) -> list[Message]:
    """Every message on ``topic`` the probe got, waiting ``settle_s`` for more (to show that none follows)."""
    found: list[Message] = []
    deadline = time.monotonic() + settle_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            found.append(probe.on(topic, timeout_s=left))
        except AssertionError:  # nothing more within settle_s
            break
    return found


def test_a_citizens_profile_is_shown_and_notes_typed_in_vietnamese_are_sent(broker: PrivateBroker, console: Terminal,
                                                                             tmp_path: Path) -> None:
    """The controller's reply to a call carries the citizen's profile (here published by the test, as the controller
    does for a ticket linked to a card); the clerk types notes with Vietnamese letters, as UTF-8 from the terminal."""
    topics = Topics(hall=HALL_ID)
    command_topic, reply_topic = topics.counter_command("1"), topics.counter_reply("1")
    with Probe(broker, subscriptions=[topics.dispenser_ticket("d1"), command_topic, reply_topic]) as probe:
        assert probe.request_ticket("d1", "A").ticket is not None
        console.wait_for("A Hộ tịch: 1")
        console.press("n")
        console.wait_for("Đang phục vụ (serving): A001")
        probe.on(command_topic)
        ticket = wire.CounterReply.decode(probe.on(reply_topic).payload).ticket
        assert ticket is not None
        profile = wire.CitizenProfile(ref="p7f3a9c2e41b", ticket=ticket.id, first_visit=True, name="Nguyễn Văn An",
                                      id_number="001050012345", birth_date="1950-01-01", age=76, sex="Nam",
                                      address="Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội")
        probe.publish(reply_topic, wire.CounterReply(request_id="recall-elsewhere", action="recall", status="open",
                                                     ticket=ticket, profile=profile).encode())
        console.wait_for("Công dân (citizen) · số A001: Nguyễn Văn An")
        screen = console.wait_for("Lần đầu đến — hãy hoàn thiện hồ sơ (first visit: complete the profile)")
        assert "CCCD 001050012345 · Nam · 76 tuổi (age) · sinh (born) 01/01/1950" in screen
        console.press("m")
        console.wait_for("Ghi chú (notes)  [Enter] lưu (save)")
        console.press("Cần xe lăn")
        console.wait_for("> Cần xe lăn_")
        console.press("\r")
        command = wire.CounterCommand.decode(probe.on(command_topic, timeout_s=5).payload)
    assert (command.action, command.serving) == ("profile", ticket.id)
    assert command.profile == wire.ProfileEdit(notes="Cần xe lăn")
    log = (tmp_path / "console.log").read_text(encoding="utf-8")
    assert "action=profile" in log and "fields=notes" in log
    assert not any(personal in log for personal in ("Nguyễn", "001050012345", "1950", "Tràng Tiền", "xe lăn"))
