"""``hallq.systemd.ServiceNotifier`` against a real unix datagram socket standing in for systemd's."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hallq.systemd import ServiceNotifier

INTERVAL_S = 0.5  # WATCHDOG_USEC=1000000: systemd's period is 1 s, a ping is due every half of it


@pytest.fixture
def systemd_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket as ``$NOTIFY_SOCKET``, with a 1 s watchdog asked for this process."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    with sock:
        yield sock


def _received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, oldest first (the sends are synchronous: nothing is in flight)."""
    states = []
    while True:
        try:
            states.append(sock.recv(256).decode("utf-8"))
        except BlockingIOError:
            return states


def test_ready_is_sent_the_first_time_only(systemd_socket: socket.socket) -> None:
    notifier = ServiceNotifier()
    assert not notifier.ready_sent
    assert notifier.ready()
    assert not notifier.ready()
    assert notifier.ready_sent
    assert _received(systemd_socket) == ["READY=1"]


def test_watchdog_pings_at_the_first_tick_then_once_per_interval(systemd_socket: socket.socket) -> None:
    notifier = ServiceNotifier()
    assert notifier.watchdog_interval_s == INTERVAL_S
    sent = [notifier.tick(now_s) for now_s in (100.0, 100.1, 100.49, 100.5, 100.7, 101.2)]
    assert sent == [True, False, False, True, False, True]
    assert _received(systemd_socket) == ["WATCHDOG=1"] * 3


def test_an_unhealthy_service_starves_the_watchdog(systemd_socket: socket.socket) -> None:
    notifier = ServiceNotifier()
    assert not notifier.tick(100.0, healthy=False)
    assert not notifier.tick(105.0, healthy=False)
    assert _received(systemd_socket) == []


def test_a_service_healthy_again_pings_at_once_once_the_ping_is_overdue(systemd_socket: socket.socket) -> None:
    notifier = ServiceNotifier()
    notifier.tick(100.0)
    notifier.tick(100.6, healthy=False)
    assert notifier.tick(100.7)
    assert _received(systemd_socket) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_beat_pings_every_time_while_healthy(systemd_socket: socket.socket) -> None:
    notifier = ServiceNotifier()
    assert [notifier.beat(), notifier.beat(), notifier.beat(healthy=False)] == [True, True, False]
    assert _received(systemd_socket) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_stopping_says_so(systemd_socket: socket.socket) -> None:
    ServiceNotifier().stopping()
    assert _received(systemd_socket) == ["STOPPING=1"]


def test_without_a_watchdog_only_ready_and_stopping_are_sent(
    systemd_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC")
    notifier = ServiceNotifier()
    assert notifier.watchdog_interval_s is None
    notifier.ready()
    assert not notifier.tick(100.0)
    assert not notifier.beat()
    notifier.stopping()
    assert _received(systemd_socket) == ["READY=1", "STOPPING=1"]


def test_a_watchdog_meant_for_another_process_is_not_fed(
    systemd_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # systemd names the main process; a child that inherited the environment must not ping for it.
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    notifier = ServiceNotifier()
    assert notifier.watchdog_interval_s is None
    assert not notifier.tick(100.0)
    assert _received(systemd_socket) == []


def test_the_watchdog_interval_is_read_once_at_construction(
    systemd_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = ServiceNotifier()
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    assert notifier.watchdog_interval_s == INTERVAL_S


def test_an_abstract_notify_socket_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"hallq-test-{uuid.uuid4()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        ServiceNotifier().ready()
        assert _received(sock) == ["READY=1"]


def test_outside_systemd_nothing_is_sent_and_nothing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = ServiceNotifier()
    assert notifier.ready()
    assert not notifier.tick(100.0)
    notifier.stopping()


def test_a_vanished_socket_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    ServiceNotifier().stopping()
    assert "sd_notify failed" in caplog.text
