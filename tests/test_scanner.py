"""The card scanner's serial adapter against a real pseudo-terminal: the test writes a scanner's bytes into the
pty's master side, the adapter reads the slave side through pyserial, exactly as it reads /dev/ttyACM0."""

from __future__ import annotations

import os
import queue
import tty
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from dispenser.scanner import CardScanner, LineSplitter, ScanRead
from tests.support import wait_until

NAME = "Nguyễn Thị Ánh Tuyết"
CODE = f"079303012345||{NAME}|12052003|Nữ|12 Lê Lợi, Phường Bến Thành, Quận 1, TP. Hồ Chí Minh|01072021"


class Pty:
    """A pseudo-terminal pair: the scanner's end (``master``) and the device path the adapter opens."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # as a scanner's tty: no echo, no CR to LF translation before pyserial opens it
        self.path = os.ttyname(self.slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with suppress(OSError):
                os.close(fd)


@contextmanager
def scanner_on(device: str, **options: float) -> Iterator[tuple[CardScanner, queue.Queue[ScanRead]]]:
    inbox: queue.Queue[ScanRead] = queue.Queue()
    scanner = CardScanner(device=device, baudrate=9600, inbox=inbox, **options)  # type: ignore[arg-type]
    scanner.start()
    try:
        yield scanner, inbox
    finally:
        scanner.close()


def next_scan(inbox: queue.Queue[ScanRead]) -> ScanRead:
    return inbox.get(timeout=3)


@pytest.fixture
def pty() -> Iterator[Pty]:
    pair = Pty()
    yield pair
    pair.close()


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
def test_vietnamese_utf8_arrives_intact_whatever_the_line_end(pty: Pty, ending: bytes) -> None:
    with scanner_on(pty.path) as (scanner, inbox):
        assert scanner.connected.wait(3)
        pty.send(CODE.encode() + ending + CODE.encode()[:40])
        scan = next_scan(inbox)
        assert scan.text == CODE and NAME in scan.text
        pty.send(CODE.encode()[40:] + ending)
        assert next_scan(inbox).text == CODE
        assert inbox.empty()  # CRLF is one line end, not an empty line after it


def test_bytes_that_are_not_utf8_are_a_bad_scan_and_the_next_line_reads(pty: Pty) -> None:
    with scanner_on(pty.path) as (scanner, inbox):
        assert scanner.connected.wait(3)
        pty.send(b"Nguy\xe1\xbb n\r\n" + "Tuyết\r\n".encode())
        bad = next_scan(inbox)
        assert (bad.text, bad.problem) == (None, "bytes that are not UTF-8")
        assert next_scan(inbox).text == "Tuyết"


def test_an_over_long_line_is_one_bad_scan_skipped_to_its_end(pty: Pty) -> None:
    with scanner_on(pty.path) as (scanner, inbox):
        assert scanner.connected.wait(3)
        pty.send(b"x" * 3000 + b"\r\n" + b"TTHCC-AB12\r\n")
        bad = next_scan(inbox)
        assert (bad.text, bad.problem) == (None, "a line longer than 1024 bytes")
        assert next_scan(inbox).text == "TTHCC-AB12"
        assert inbox.empty()


def test_a_scanner_unplugged_and_plugged_again_is_read_again(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    # udev's /dev/serial/by-id/ name is a link to the tty: the replugged scanner comes back under it.
    link = tmp_path / "scanner"
    first = Pty()
    link.symlink_to(first.path)
    with scanner_on(str(link), retry_s=0.1) as (scanner, inbox):
        assert scanner.connected.wait(3)
        first.send(b"half a li")
        first.close()  # unplugged, mid-line
        link.unlink()
        # pyserial empties the input when it opens a port: what a scanner sent before that is gone, as on a Pi.
        wait_until(lambda: not scanner.connected.is_set(), timeout_s=3, what="the loss noticed", every_s=0.01)
        second = Pty()
        try:
            link.symlink_to(second.path)
            assert scanner.connected.wait(3)
            second.send(b"ne\r\nTTHCC-AB12\r\n")
            assert next_scan(inbox).text == "ne"  # the half line before the loss is dropped
            assert next_scan(inbox).text == "TTHCC-AB12"
            losses = [r for r in caplog.records if "card scanner lost" in r.getMessage()]
            assert len(losses) == 1
        finally:
            scanner.close()
            second.close()


def test_a_missing_scanner_is_logged_once_while_it_is_retried(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "ttyACM0"
    with scanner_on(str(missing), retry_s=0.05) as (scanner, inbox):
        pty = Pty()
        try:
            assert not scanner.connected.wait(0.3)  # some six attempts
            missing.symlink_to(pty.path)
            assert scanner.connected.wait(3)
            pty.send("Ánh\n".encode())
            assert next_scan(inbox).text == "Ánh"
        finally:
            pty.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "dispenser.scanner"]
    assert sum("unavailable" in m for m in messages) == 1
    assert any("card scanner back" in m for m in messages)


def test_no_log_line_holds_what_was_scanned(pty: Pty, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with scanner_on(pty.path) as (scanner, inbox):
        assert scanner.connected.wait(3)
        pty.send(CODE.encode() + b"\r\n")
        scan = next_scan(inbox)
    assert NAME not in repr(scan) and "079303012345" not in repr(scan)
    assert not any(NAME in r.getMessage() or "079303012345" in r.getMessage() for r in caplog.records)


def test_line_splitter_drops_empty_lines_and_keeps_a_partial_line_for_later() -> None:
    lines = LineSplitter(max_bytes=8)
    assert lines.feed(b"\r\n\r\nab", 1.0) == []
    assert [s.text for s in lines.feed(b"c\r\n12345678\n", 2.0)] == ["abc", "12345678"]
    assert [s.problem for s in lines.feed(b"123456789\r\n", 3.0)] == ["a line longer than 8 bytes"]


def test_an_unknown_baudrate_is_refused() -> None:
    with pytest.raises(ValueError, match="baudrate"):
        CardScanner(device="/dev/null", baudrate=1200, inbox=queue.Queue())
