"""Printer adapters: status answers, the network printer against a loopback ESC/POS printer, preview files."""

from __future__ import annotations

import os
import pty
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from dispenser.printer import (
    NetworkPrinter,
    PreviewPrinter,
    PrinterError,
    PrinterStatus,
    SerialPrinter,
    build_job,
    parse_status,
    read_job,
)
from tests.test_dispenser_helpers import EscposTestPrinter

OK = 0x12
JOB = build_job(Image.new("1", (384, 40), 1), profile="default", width_dots=384)


@pytest.mark.parametrize(("online", "cause", "paper", "expected"), [
    (OK, OK, OK, PrinterStatus("ok")),
    (OK, OK, OK | 0x0C, PrinterStatus("paper_low", "paper near end")),
    (OK | 0x08, OK | 0x20, OK | 0x60, PrinterStatus("paper_out", "paper end")),
    (OK | 0x08, OK | 0x04, OK, PrinterStatus("offline", "cover_open")),
    (OK | 0x08, OK, OK, PrinterStatus("offline", "printer reports offline")),
    (OK, OK | 0x20, OK, PrinterStatus("paper_out", "stopped at paper end")),
    (None, None, OK | 0x60, PrinterStatus("paper_out", "paper end")),
])
def test_status_bytes_name_the_printer_state(online: int | None, cause: int | None, paper: int | None,
                                             expected: PrinterStatus) -> None:
    assert parse_status(online, cause, paper, answered_before=True) == expected


def test_a_printer_that_never_answers_status_is_trusted_one_that_stops_answering_is_offline() -> None:
    assert parse_status(None, None, None, answered_before=False).state == "ok"
    assert parse_status(None, None, None, answered_before=True).state == "offline"


def test_a_printer_silent_to_the_first_status_query_is_not_asked_the_others() -> None:
    with EscposTestPrinter() as device:
        device.answers_status = False
        adapter = network(device)
        assert adapter.status() == PrinterStatus("ok", "printer does not report status")
        adapter.send(JOB, name="A001")  # the printer has read everything sent before the job
        device.wait_jobs(1)
        assert device.status_queries == 1
        adapter.close()


def test_garbage_status_bytes_are_not_believed() -> None:
    assert parse_status(0xFF, 0xFF, 0xFF, answered_before=False).state == "ok"


@pytest.mark.parametrize(("status", "reason"), [
    (PrinterStatus("paper_out"), "paper_out"), (PrinterStatus("offline", "cover_open"), "cover_open"),
    (PrinterStatus("offline"), "offline"),
])
def test_failure_reason_follows_the_state(status: PrinterStatus, reason: str) -> None:
    assert status.failure_reason == reason


def network(printer: EscposTestPrinter) -> NetworkPrinter:
    return NetworkPrinter(host="127.0.0.1", port=printer.port, timeout_s=2, status_timeout_s=0.2, profile="default")


def test_network_printer_reports_paper_and_cover_as_the_printer_answers() -> None:
    with EscposTestPrinter() as device:
        adapter = network(device)
        assert adapter.status() == PrinterStatus("ok")
        device.paper = "low"
        assert adapter.status().state == "paper_low"
        device.paper = "out"
        assert adapter.status().state == "paper_out"
        device.paper, device.cover_open = "ok", True
        assert adapter.status() == PrinterStatus("offline", "cover_open")
        device.cover_open = False
        assert adapter.status() == PrinterStatus("ok")
        adapter.close()


def test_network_printer_receives_the_job_in_one_piece() -> None:
    with EscposTestPrinter() as device:
        adapter = network(device)
        adapter.status()
        assert adapter.send(JOB, name="A001") is None
        (received,) = device.wait_jobs(1)
        assert received.data == JOB
        adapter.close()


def test_network_printer_writes_each_piece_of_a_job_before_the_next_is_made() -> None:
    head, rest = JOB[:100], JOB[100:]
    with EscposTestPrinter() as device:
        adapter = network(device)
        adapter.status()

        def pieces() -> Iterator[bytes]:
            yield head
            device.wait_received(len(head), timeout_s=2)  # the printer has the head while the rest is made
            yield rest

        adapter.send(pieces(), name="A001")
        (received,) = device.wait_jobs(1)
        assert received.data == JOB
        assert received.first_byte_at < received.last_byte_at
        adapter.close()


def test_network_printer_sends_without_waiting_for_acknowledgements() -> None:
    # Nagle's algorithm would hold a job's second piece until the printer acknowledges the first (40 ms here).
    with EscposTestPrinter() as device:
        adapter = network(device)
        adapter.open()
        assert adapter._device.device.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        adapter.close()


def test_an_error_making_a_piece_passes_through_the_adapter_unchanged() -> None:
    with EscposTestPrinter() as device:
        adapter = network(device)

        def pieces() -> Iterator[bytes]:
            yield JOB[:100]
            raise ValueError("cannot draw")

        with pytest.raises(ValueError, match="cannot draw"):
            adapter.send(pieces(), name="A001")
        adapter.close()


def test_a_printer_that_goes_silent_is_offline_and_one_that_is_unreachable_too() -> None:
    with EscposTestPrinter() as device:
        adapter = network(device)
        assert adapter.status().state == "ok"
        device.answers_status = False
        assert adapter.status().state == "offline"
        adapter.close()
        port = device.port
    gone = NetworkPrinter(host="127.0.0.1", port=port, timeout_s=1, status_timeout_s=0.2, profile="default")
    status = gone.status()
    assert status.state == "offline" and "cannot open" in status.detail
    with pytest.raises(PrinterError) as caught:
        gone.send(JOB, name="A001")
    assert caught.value.reason == "offline"


def test_serial_printer_asks_status_and_writes_through_a_real_tty() -> None:
    controller_fd, device_fd = pty.openpty()
    device_path = os.ttyname(device_fd)
    received = bytearray()

    def printer_side() -> None:
        # Answer the three status queries (paper near end), then collect the job.
        answers = {1: OK, 2: OK, 4: OK | 0x0C}
        pending = b""
        while len(received) < len(JOB):
            pending += os.read(controller_fd, 65536)
            while pending[:2] == b"\x10\x04" and len(pending) >= 3 and not received:
                os.write(controller_fd, bytes((answers[pending[2]],)))
                pending = pending[3:]
            if pending[:2] != b"\x10\x04":
                received.extend(pending)
                pending = b""

    side = threading.Thread(target=printer_side, daemon=True)
    side.start()
    adapter = SerialPrinter(device=device_path, baudrate=115200, timeout_s=2, status_timeout_s=0.5, profile="default")
    try:
        assert adapter.status() == PrinterStatus("paper_low", "paper near end")
        adapter.send(JOB, name="A001")
        side.join(5)
        assert bytes(received) == JOB
    finally:
        adapter.close()
        os.close(controller_fd)
        os.close(device_fd)


def test_preview_printer_writes_png_and_bytes_and_simulates_paper_out(tmp_path: Path) -> None:
    adapter = PreviewPrinter(tmp_path / "previews")
    png = adapter.send(JOB, name="A001-x/y")
    assert png == tmp_path / "previews" / "A001-x_y.png"
    assert (tmp_path / "previews" / "A001-x_y.bin").read_bytes() == JOB
    with Image.open(png) as written:
        assert written.size == read_job(JOB).picture().size
    adapter.simulate(PrinterStatus("paper_out"))
    assert adapter.status().state == "paper_out"
    with pytest.raises(PrinterError) as caught:
        adapter.send(JOB, name="A002")
    assert caught.value.reason == "paper_out"


def test_preview_printer_writes_a_job_sent_in_pieces_as_one(tmp_path: Path) -> None:
    adapter = PreviewPrinter(tmp_path)
    adapter.send(iter([JOB[:100], JOB[100:]]), name="A001")
    assert (tmp_path / "A001.bin").read_bytes() == JOB


def test_a_preview_folder_that_cannot_be_created_is_an_offline_printer(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert PreviewPrinter(blocker / "previews").status().state == "offline"


def test_read_job_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unexpected byte 0x41 at offset 2"):
        read_job(b"\x1b@A")
    with pytest.raises(ValueError, match="truncated raster"):
        read_job(JOB[:20])
