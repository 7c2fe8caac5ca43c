"""The ledger's storage failing under a live controller, for real: a full disk, a read-only file system.

The ledger lives on a small tmpfs (or an ext4 image on it) that the test mounts; this needs root, which the
test machines and CI have: without it the tests are skipped, saying why. Afterwards the ledger is checked:
every number that was answered is stored, with the ticket that was answered, and no number repeats.

Read-only: Linux refuses ``mount -o remount,ro`` while a process has a file open for writing on the file
system ("mount point is busy"), and the controller always has its ledger open. A file system becomes
read-only under a running program only when the kernel forces it, after I/O errors (ext4 with
``errors=remount-ro``). ``mount -o remount,abort`` forces exactly that on an ext4 image; the kernel then
refuses to make it writable again until it is unmounted and checked, so recovery there is a restart.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from hall_controller.ledger import Ledger
from hallq import wire
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, HALL_ID, ControllerProcess, Probe


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=False, capture_output=True, text=True, timeout=30)


def _unmount(path: Path) -> None:
    mounted = _run("mountpoint", "-q", str(path)).returncode == 0
    if mounted and _run("umount", str(path)).returncode != 0:
        _run("umount", "-l", str(path))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    mounted = _run("mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        _unmount(mnt)


@pytest.fixture
def ext4(tmpfs: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(mount point, image): a 1.5 MiB ext4 image on the tmpfs, loop-mounted with ``errors=remount-ro``."""
    image = tmpfs / "ledger.img"
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 (e2fsprogs) is not installed")
    with image.open("wb") as f:
        f.truncate(1536 * 1024)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    assert made.returncode == 0, made.stderr
    mnt = tmp_path / "ext4"
    mnt.mkdir()
    mounted = _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mnt))
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here: {mounted.stderr.strip()}")
    try:
        yield mnt, image
    finally:
        _unmount(mnt)


def _fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            while _write(f, chunk):
                pass
    return filler


def _write(f: BinaryIO, size: int) -> bool:
    """False once the file system is full (ENOSPC); any other error is raised."""
    try:
        f.write(b"\0" * size)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False
    return True


class Dispenser:
    """A probe speaking for dispensers d1/d2 and counters 1-3, remembering every ticket it was answered."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.answered: dict[str, wire.TicketInfo] = {}

    def ask(self, *, request_id: str | None = None, dispenser: str = "d1") -> wire.TicketReply:
        reply = self.probe.request_ticket(dispenser, "A", request_id=request_id or uuid.uuid4().hex)
        if reply.ticket is not None:
            earlier = self.answered.setdefault(reply.request_id, reply.ticket)
            assert earlier == reply.ticket, "the same request was answered with two tickets"
        return reply


def _controller(broker: PrivateBroker, state: Path, log_dir: Path, name: str) -> ControllerProcess:
    """The controller on ``state``, logging to ``log_dir`` (not to the file system that is about to fail)."""
    process = ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=state)
    process.log_path = log_dir / f"{name}.log"
    return process


def _probe(broker: PrivateBroker) -> Probe:
    topics = Probe(broker).topics
    return Probe(broker, subscriptions=[topics.dispenser_ticket("d1"), topics.dispenser_ticket("d2"),
                                        *(topics.counter_reply(c) for c in "123")])


def _check_ledger(state: Path, answered: dict[str, wire.TicketInfo]) -> list[dict[str, object]]:
    ledger = Ledger(state / "ledger.sqlite3", hall_id=HALL_ID)
    try:
        rows = ledger.history()
    finally:
        ledger.close()
    by_id = {r["id"]: r for r in rows}
    for request_id, ticket in answered.items():
        row = by_id.get(ticket.id)
        assert row is not None, f"{ticket.number} was answered but is not in the ledger"
        assert (row["number"], row["request_id"]) == (ticket.number, request_id)
    numbers = Counter((r["day"], r["number"]) for r in rows)
    assert max(numbers.values()) == 1, "a number was issued twice"
    return rows


def _board(broker: PrivateBroker) -> wire.Board:
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.board()]) as late:
        return wire.Board.decode(late.on(topics.board()).payload)


def test_a_full_disk_refuses_new_tickets_serves_what_it_can_and_recovers_when_space_is_freed(
    broker: PrivateBroker, tmpfs: Path, tmp_path: Path
) -> None:
    state = tmpfs / "state"
    with _controller(broker, state, tmp_path, "full") as controller, _probe(broker) as probe:
        d = Dispenser(probe)
        first = d.ask(request_id="before-1")
        for _ in range(4):
            d.ask()
        assert probe.command("3", "next").ticket is not None         # A001 at counter 3
        board_before = _board(broker)
        filler = _fill(tmpfs)

        # Until the ledger needs a page it does not have, tickets are still stored and answered; then refused.
        refused = None
        for n in range(200):
            reply = d.ask(request_id=f"full-{n}")
            if reply.error_code == "storage_unavailable":
                refused = reply
                break
            assert reply.ok, reply.error
        assert refused is not None, "the controller kept answering on a full disk"
        assert d.ask(request_id="another").error_code == "storage_unavailable"
        assert probe.command("3", "next").error_code == "storage_unavailable"     # a change: refused
        assert probe.command("2", "complete").error_code == "not_serving"         # a refusal is still answered
        assert d.ask(request_id="before-1").ticket == first.ticket                # a repeat: the stored answer
        assert _board(broker).counters == board_before.counters                   # A001 still shown at counter 3
        assert controller.proc is not None and controller.proc.poll() is None
        log = controller.log_text()
        assert "ERROR" in log and "free disk space" in log
        assert log.count("refusing new tickets") == 1                             # once, not per request

        filler.unlink()
        again = d.ask(request_id=refused.request_id)                              # the dispenser's retry
        assert again.ticket is not None
        assert probe.command("3", "next").ok                                      # completes A001, calls A002
        assert "ledger writable again" in controller.log_text()
        pid = controller.proc.pid
    assert pid == controller.proc.pid                                             # no restart
    rows = _check_ledger(state, d.answered)
    assert not any(str(r["request_id"]).startswith("another") for r in rows)
    numbers = sorted(t.number for t in d.answered.values())
    assert numbers == [f"A{i:03d}" for i in range(1, len(numbers) + 1)], "a number was skipped or reused"


def test_a_read_only_ledger_at_start_is_refused_as_read_only_not_as_damaged_then_starts_when_writable(
    broker: PrivateBroker, tmpfs: Path, tmp_path: Path
) -> None:
    state = tmpfs / "state"
    with _controller(broker, state, tmp_path, "first"), _probe(broker) as probe:
        d = Dispenser(probe)
        d.ask()
        d.ask()
    assert _run("mount", "-o", "remount,ro", str(tmpfs)).returncode == 0     # nothing has it open now
    controller = _controller(broker, state, tmp_path, "read-only")
    controller.start(wait=False)
    assert controller.proc is not None
    assert controller.proc.wait(timeout=30) == 74                      # I/O error: systemd restarts it
    log = controller.log_text()
    assert "read-only" in log and "damaged" not in log and "Traceback" not in log
    assert _run("mount", "-o", "remount,rw", str(tmpfs)).returncode == 0
    with _controller(broker, state, tmp_path, "writable"), _probe(broker) as probe:
        assert Dispenser(probe).ask().ticket.number == "A003"          # type: ignore[union-attr]
    _check_ledger(state, d.answered)


def test_a_file_system_forced_read_only_refuses_changes_and_a_restart_after_repair_loses_nothing(
    broker: PrivateBroker, ext4: tuple[Path, Path], tmp_path: Path
) -> None:
    mnt, image = ext4
    state = mnt / "state"
    with _controller(broker, state, tmp_path, "ext4") as controller, _probe(broker) as probe:
        d = Dispenser(probe)
        first = d.ask(request_id="before-1")
        d.ask()
        assert _run("mount", "-o", "remount,ro", str(mnt)).returncode != 0        # busy: the ledger is open
        forced = _run("mount", "-o", "remount,abort", str(mnt))                   # what an I/O error does
        assert forced.returncode == 0, forced.stderr
        assert d.ask(request_id="during").error_code == "storage_unavailable"
        assert d.ask(request_id="before-1").ticket == first.ticket
        assert probe.command("1", "next").error_code == "storage_unavailable"
        assert controller.proc is not None and controller.proc.poll() is None
        log = controller.log_text()
        assert "ERROR" in log and "make it writable again" in log
        assert "writable again path" not in log                  # answering from memory is not recovering
        assert log.count("refusing new tickets") == 1
    # The operator's repair: the controller is stopped (systemd's watchdog does it), unmount, check, mount.
    _unmount(mnt)
    checked = _run("e2fsck", "-f", "-y", str(image))
    assert checked.returncode in (0, 1), checked.stdout + checked.stderr
    assert _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mnt)).returncode == 0
    with _controller(broker, state, tmp_path, "ext4-repaired"), _probe(broker) as probe:
        d2 = Dispenser(probe)
        assert d2.ask(request_id="during").ticket.number == "A003"      # type: ignore[union-attr]
        assert d2.ask(request_id="before-1").ticket == first.ticket
    _check_ledger(state, {**d.answered, **d2.answered})


def test_a_truncated_ledger_of_a_real_day_stops_the_controller_and_is_left_as_it_was(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with _controller(broker, state, tmp_path, "day"), _probe(broker) as probe:
        d = Dispenser(probe)
        for _ in range(60):                                  # enough tickets for the file to span many pages
            d.ask()
    path = state / "ledger.sqlite3"
    data = path.read_bytes()
    assert len(data) > 8 * 4096
    path.write_bytes(data[: len(data) // 2])
    damaged = path.read_bytes()
    controller = _controller(broker, state, tmp_path, "truncated")
    controller.start(wait=False)
    assert controller.proc is not None
    assert controller.proc.wait(timeout=30) == 65            # systemd does not restart on 65: a person must look
    log = controller.log_text()
    assert "damaged" in log and "Refusing to start" in log and "Traceback" not in log
    assert path.read_bytes() == damaged                      # not "repaired", not reset to ticket 1
