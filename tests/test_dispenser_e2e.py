"""The dispenser end to end: mock pins, a real printer connection, a real Mosquitto and the real controller.

The dispenser service runs on a thread of the test (its buttons are gpiozero mock pins); the controller
runs as its own process on tests/fixtures/hall.toml, and its SQLite ledger is the judge of which numbers
were issued, printed and voided.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from dispenser.printer import FilePrinter, NetworkPrinter, PreviewPrinter, read_job
from hallq import wire
from testbed.broker import PrivateBroker
from tests.support import ROOT, ControllerProcess, Probe, wait_until
from tests.test_dispenser_helpers import (
    DISPENSER_CONFIG,
    EscposTestPrinter,
    decode_qr,
    ledger_rows,
    load_config,
    running_kiosk,
)


def network(device: EscposTestPrinter) -> NetworkPrinter:
    return NetworkPrinter(host="127.0.0.1", port=device.port, timeout_s=2, status_timeout_s=0.3, profile="TM-T20II")


def test_a_press_prints_the_number_the_controller_recorded(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    with EscposTestPrinter() as device, running_kiosk(load_config(broker), network(device)) as kiosk:
        kiosk.press("1")
        (job,) = device.wait_jobs(1)
        printed = kiosk.service.wait_outcome(lambda o: o.kind == "printed")
        # The printed report reaches the controller after the bytes reach the printer.
        rows = wait_until(lambda: (found := ledger_rows(tmp_path / "state")) and found[0]["printed_at"] and found,
                          timeout_s=5, what="the ledger records the ticket printed")
    view = job.view()
    assert view.images and view.ends_with_cut and max(im.width for im in view.images) <= 576
    (row,) = rows
    assert printed is not None and (printed.number, printed.ticket_id) == (row["number"], row["id"]) == ("A001",
                                                                                                         row["id"])
    assert decode_qr(view.picture()) == f"hallq:test-hall/d1/{row['number']}/{row['id']}"
    assert (row["dispenser"], row["service"], row["state"]) == ("d1", "A", "waiting")


def test_a_priority_press_asks_for_the_priority_lane(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    with EscposTestPrinter() as device, running_kiosk(load_config(broker), network(device)) as kiosk:
        kiosk.press("4")
        device.wait_jobs(1)
        printed = kiosk.service.wait_outcome(lambda o: o.kind == "printed")
    assert printed is not None and printed.number == "UB001"
    (row,) = ledger_rows(tmp_path / "state")
    assert (row["priority"], row["category"]) == (1, "elderly")


def test_status_reads_of_a_printer_that_ignores_them_never_hold_back_a_reply(
    broker: PrivateBroker, controller: ControllerProcess
) -> None:
    # Each status read of this printer waits out its 0.3 s timeout, and one is due every 0.2 s: the ticket
    # goes out at once only if no read is started, nor made before printing, while the reply is awaited.
    config = load_config(broker)
    config = replace(config, printer=replace(config.printer, status_poll_s=0.2))
    topics = Probe(broker).topics
    with (EscposTestPrinter() as device, Probe(broker, subscriptions=[topics.dispenser_ticket("d1")]) as probe):
        device.answers_status = False
        with running_kiosk(config, network(device)) as kiosk:
            for n, key in enumerate("123"):
                kiosk.press(key)
                probe.on(topics.dispenser_ticket("d1"))
                replied = time.monotonic()
                job = device.wait_jobs(n + 1)[n]
                assert job.first_byte_at - replied < 0.15
                # A press made before the ticket is done would be ignored.
                wait_until(lambda: kiosk.led("ready"), timeout_s=5, what="the ready light", every_s=0.01)


def test_a_failed_print_voids_the_ticket_so_no_counter_gets_it(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    # /dev/full opens like a printer device and refuses every write.
    printer = FilePrinter(device="/dev/full", profile="TM-T20II")
    with running_kiosk(load_config(broker), printer) as kiosk:
        kiosk.press("1")
        failed = kiosk.service.wait_outcome(lambda o: o.kind == "print_failed")
        assert failed is not None and failed.number == "A001"
        wait_until(lambda: ledger_rows(tmp_path / "state")[0]["state"] == "void", timeout_s=5,
                   what="the ledger records the ticket void")
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.counter_reply("3")]) as probe:
        assert probe.command("3", "next").error_code == "queue_empty"
    (row,) = ledger_rows(tmp_path / "state")
    assert (row["number"], row["state"], row["void_reason"]) == ("A001", "void", "offline")


def test_paper_out_sends_no_request_and_reloading_paper_recovers_by_itself(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    topics = Probe(broker).topics
    with (Probe(broker, subscriptions=[topics.dispenser_request("d1"), topics.status("d1")]) as probe,
          EscposTestPrinter() as device, running_kiosk(load_config(broker), network(device)) as kiosk):
        device.paper = "out"
        probe.expect(lambda m: m.topic == topics.status("d1") and wire.Presence.decode(m.payload).printer == "paper_out")
        assert not kiosk.service.ready.is_set() and kiosk.led("fault")
        before = kiosk.service.outcome_count()
        kiosk.press("1")
        ignored = kiosk.service.wait_outcome(lambda o: o.kind == "ignored", after=before)
        assert ignored is not None and ignored.detail == "printer_not_ready"
        device.paper = "ok"
        assert kiosk.service.ready.wait(3)
        assert not kiosk.led("fault") and kiosk.led("ready")
        kiosk.press("2")
        device.wait_jobs(1)
        # The broker keeps one client's messages in order: the first request it saw is the second press's.
        first = wire.TicketRequest.decode(probe.on(topics.dispenser_request("d1")).payload)
        assert first.service == "B"
    assert [row["number"] for row in ledger_rows(tmp_path / "state")] == ["B001"]


def test_the_broker_restarted_mid_day_the_dispenser_recovers_and_the_next_press_works(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    with EscposTestPrinter() as device, running_kiosk(load_config(broker), network(device)) as kiosk:
        kiosk.press("1")
        device.wait_jobs(1)
        broker.stop()
        # (Mosquitto may first deliver the controller's last will: ready goes off before the link does.)
        wait_until(lambda: not kiosk.service.ready.is_set() and not kiosk.service.core.conditions.link_up,
                   timeout_s=5, what="the dispenser notices the broker is gone")
        assert kiosk.led("fault")
        before = kiosk.service.outcome_count()
        kiosk.press("2")
        refused = kiosk.service.wait_outcome(lambda o: o.kind == "ignored", after=before)
        assert refused is not None and refused.detail == "broker_unreachable"
        broker.start()
        assert kiosk.service.ready.wait(15), "no automatic reconnection"
        controller.wait_ready(timeout_s=15)
        kiosk.press("3")
        device.wait_jobs(2, timeout_s=10)
        printed = kiosk.service.wait_outcome(lambda o: o.kind == "printed" and o.key == "3", after=before)
    assert printed is not None
    assert [row["number"] for row in ledger_rows(tmp_path / "state")] == ["A001", "C001"]


def test_fifty_presses_in_a_second_give_one_ticket_per_button(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    with EscposTestPrinter() as device, running_kiosk(load_config(broker), network(device)) as kiosk:
        started = time.monotonic()
        for i in range(50):
            kiosk.press("1" if i % 2 == 0 else "2")
            time.sleep(max(0.0, started + (i + 1) * 0.02 - time.monotonic()))  # paces the presses, not a wait
        assert time.monotonic() - started < kiosk.config.timing.min_interval_s
        # Every press ends in an outcome: two printed, the rest ignored.
        wait_until(lambda: kiosk.service.outcome_count() >= 50, timeout_s=10, what="an outcome for every press")
    assert len(device.jobs) == 2
    assert sorted(row["number"] for row in ledger_rows(tmp_path / "state")) == ["A001", "B001"]


def test_a_silent_controller_means_nothing_printed_and_a_fault_light(broker: PrivateBroker, tmp_path: Path) -> None:
    config = load_config(broker, request_timeout_s=0.2, request_attempts=2)
    with running_kiosk(config, PreviewPrinter(tmp_path / "previews")) as kiosk:
        kiosk.press("1")
        abandoned = kiosk.service.wait_outcome(lambda o: o.kind == "abandoned")
        assert abandoned is not None
        wait_until(lambda: kiosk.led("fault"), timeout_s=2, what="the fault light", every_s=0.01)
    assert not (tmp_path / "previews").exists() or not list((tmp_path / "previews").iterdir())


def test_simulate_mode_prints_previews_from_key_lines(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    previews = tmp_path / "previews"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispenser", "--simulate", "--config", str(DISPENSER_CONFIG), "--broker",
         broker.address, "--preview-dir", str(previews)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True,
    )
    assert proc.stdin is not None and proc.stderr is not None
    lines: list[str] = []
    seen = threading.Condition()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with seen:
                lines.append(line)
                seen.notify_all()

    def wait_for(text: str, times: int = 1) -> str:
        with seen:
            assert seen.wait_for(lambda: sum(text in line for line in lines) >= times, timeout=30), "".join(lines)
            return next(line for line in lines if text in line)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for("leds ready=on")
        proc.stdin.write("3\n")
        proc.stdin.flush()
        printed = wait_for("printed ticket=C001")
        wait_for("leds ready=on", times=2)  # idle again: a press made before this is one made during the ticket
        proc.stdin.write("paper_out\n4\n")
        proc.stdin.flush()
        wait_for("press ignored key=4 reason=printer_not_ready")
        proc.stdin.close()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    png = Path(printed.split("preview=")[1].strip())
    assert png.parent == previews and png.is_file()
    assert read_job(png.with_suffix(".bin").read_bytes()).ends_with_cut
    assert [row["number"] for row in ledger_rows(tmp_path / "state")] == ["C001"]


def test_a_stopped_dispenser_leaves_an_offline_status(broker: PrivateBroker, tmp_path: Path) -> None:
    with running_kiosk(load_config(broker), PreviewPrinter(tmp_path / "previews")):
        pass
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.status("d1")]) as late:
        presence = wire.Presence.decode(late.on(topics.status("d1")).payload)
    assert (presence.state, presence.role) == ("offline", "dispenser")
