"""Dispenser footprint and latency on this machine. Run:  .venv/bin/python -m bench.dispenser_footprint [--quick]

Measures, against the dispenser's targets (it must run on a 512 MB Raspberry Pi):
  1. process start → ready (the ``READY=1`` it sends to systemd: broker connected, printer open) ≤ 1.0 s;
  2. resident memory (VmHWM, the peak) after printing tickets ≤ 60 MB;
  3. press → first byte of the ticket at the printer, beyond the controller's reply ≤ 20 ms.

Parts: a private Mosquitto from the project's config, the hall controller process on the test hall, the
dispenser of ``tests/fixtures/dispenser.toml`` (mock pins), and a loopback ESC/POS network printer
(``tests/test_dispenser_helpers.EscposTestPrinter``) that timestamps the first and the last byte of each
job. For 3, the dispenser runs as its own process, connected to the broker through a relay in this
process (``BrokerTap``) that timestamps each reply as it hands the bytes to the dispenser's socket: the
moment the dispenser process receives it, before its MQTT client has even read it. (A second subscriber's
receipt is no such mark: it often comes after the dispenser's first byte.) All instants come from one
monotonic clock. The dispenser sends a ticket's head (reset and header, encoded at start) as soon as the
reply is in and draws the rest meanwhile, so the whole job's arrival is reported too: the first byte is
when the printer starts, the last when it has it all. The load average is recorded before and after: the
machine is shared, and p99 follows its load.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT, percentile, report, summary_ms
from hallq import wire
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, ControllerProcess, Probe
from tests.test_dispenser_helpers import DISPENSER_CONFIG, EscposTestPrinter


def start_to_ready(broker: PrivateBroker, workdir: Path, runs: int) -> tuple[list[float], list[int]]:
    """Seconds from spawning ``python -m dispenser`` to its READY=1, and its peak RSS in kB after printing."""
    times: list[float] = []
    peaks: list[int] = []
    workdir.mkdir(parents=True, exist_ok=True)
    for n in range(runs):
        notify_path = workdir / f"notify-{n}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(10)
            env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "dispenser", "--simulate", "--config", str(DISPENSER_CONFIG), "--broker",
                 broker.address, "--preview-dir", str(workdir / "previews"), "--log-level", "WARNING"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
            try:
                while b"READY=1" not in notify.recv(4096):
                    pass
                times.append(time.perf_counter() - started)
                assert proc.stdin is not None
                # Print a few tickets (one per button: the rate limit) so the peak includes rendering.
                for key in "1234":
                    proc.stdin.write(f"{key}\n".encode())
                proc.stdin.flush()
                deadline = time.monotonic() + 10
                while len(list((workdir / "previews").glob("*.png"))) < 4 * (n + 1) and time.monotonic() < deadline:
                    time.sleep(0.05)
                peaks.append(_vm_hwm_kb(proc.pid))
            finally:
                proc.terminate()
                proc.wait(10)
    return times, peaks


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


class BrokerTap:
    """A TCP relay between a client and the broker that notes when (``time.monotonic()``) it hands the client
    a chunk containing ``marker`` (a topic name): the instant the client's socket receives that message."""

    def __init__(self, broker: PrivateBroker, *, marker: bytes) -> None:
        self.broker_port = broker.port
        self.marker = marker
        self.arrivals: list[float] = []
        self._changed = threading.Condition()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._sockets: list[socket.socket] = [self._server]

    def __enter__(self) -> BrokerTap:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def wait_arrivals(self, count: int, *, timeout_s: float = 5.0) -> list[float]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    raise AssertionError(f"{len(self.arrivals)} replies relayed, expected {count}")
            return list(self.arrivals)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the broker and paho do
                self._sockets.append(sock)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        tail = b""
        with suppress(OSError):
            while data := source.recv(65536):
                if watch and self.marker in tail + data:
                    at = time.monotonic()
                    with self._changed:
                        self.arrivals.append(at)
                        self._changed.notify_all()
                tail = data[-len(self.marker) + 1:]
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@dataclass
class PrintTimes:
    """Per press, in seconds: reply → first job byte, reply → last job byte, press → first job byte; and from
    the dispenser's log, in ms: handling the reply until the head is written, drawing and writing the rest."""

    beyond: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    head_ms: list[float] = field(default_factory=list)
    rest_ms: list[float] = field(default_factory=list)


def reply_to_first_byte(broker: PrivateBroker, workdir: Path, presses: int) -> PrintTimes:
    """The times of ``presses`` sequential presses (see ``PrintTimes``).

    The dispenser is its own process (``--simulate --with-printer``: keyboard lines on mock pins, tickets
    to the loopback network printer, the broker through ``BrokerTap``); this process sees the reply reach
    the dispenser and the job's bytes reach the printer.
    """
    topics = Probe(broker).topics
    times = PrintTimes()
    with (EscposTestPrinter() as device, BrokerTap(broker, marker=topics.dispenser_ticket("d1").encode()) as tap,
          Probe(broker, subscriptions=[topics.dispenser_ticket("d1"), topics.dispenser_printed("d1"),
                                       topics.status("d1")]) as probe):
        text = DISPENSER_CONFIG.read_text(encoding="utf-8").replace('type = "preview"', 'type = "network"')
        text = text.replace("min_interval_s = 2.0", "min_interval_s = 0.0")
        text = text.replace("[ticket]", f'[printer.network]\nhost = "127.0.0.1"\nport = {device.port}\n\n[ticket]')
        config = workdir / "dispenser-network.toml"
        log = workdir / "dispenser.log"
        config.write_text(text, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispenser", "--simulate", "--with-printer", "--config", str(config), "--broker",
             tap.address, "--log-level", "INFO"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=ROOT)
        assert proc.stdin is not None
        try:
            probe.expect(lambda m: m.topic == topics.status("d1")
                         and wire.Presence.decode(m.payload).printer == "ok", timeout_s=10)
            for n in range(presses):
                pressed = time.monotonic()
                proc.stdin.write(f"{'1234'[n % 4]}\n".encode())
                proc.stdin.flush()
                reply = probe.on(topics.dispenser_ticket("d1"))
                assert wire.TicketReply.decode(reply.payload).ok
                replied = tap.wait_arrivals(n + 1)[n]
                job = device.wait_jobs(n + 1)[n]
                times.beyond.append(job.first_byte_at - replied)
                times.whole.append(job.last_byte_at - replied)
                times.total.append(job.first_byte_at - pressed)
                # A press made before the dispenser is done with the ticket (it reports it then) is ignored,
                # as at a kiosk; then it polls the printer: give it that moment before the next press.
                probe.on(topics.dispenser_printed("d1"))
                time.sleep(0.02)
        except AssertionError:
            sys.stderr.write(f"press {len(times.total) + 1} failed; the dispenser's log ends:\n")
            sys.stderr.write("".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-40:]))
            raise
        finally:
            proc.terminate()
            proc.wait(10)
        logged = log.read_text(encoding="utf-8")
        times.head_ms = [float(m) for m in re.findall(r"head_ms=([\d.]+)", logged)]
        times.rest_ms = [float(m) for m in re.findall(r"rest_ms=([\d.]+)", logged)]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    runs, presses = (3, 40) if args.quick else (10, 300)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with PrivateBroker(workdir / "broker") as broker, \
                ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=workdir / "state"):
            start_to_ready(broker, workdir / "warmup", 1)  # python-escpos writes its database cache once
            ready_s, peaks_kb = start_to_ready(broker, workdir, runs)
            times = reply_to_first_byte(broker, workdir, presses)
    load_after = os.getloadavg()
    ready = summary_ms(ready_s)
    beyond = summary_ms(times.beyond)
    whole = summary_ms(times.whole)
    total = summary_ms(times.total)
    peak_mb = max(peaks_kb) / 1024
    rows = [
        ("start → READY=1, median", f"{ready['p50_ms']:.0f} ms", "≤ 1000 ms", ready["p50_ms"] <= 1000),
        ("start → READY=1, worst", f"{ready['max_ms']:.0f} ms", "≤ 1000 ms", ready["max_ms"] <= 1000),
        ("peak RSS after printing", f"{peak_mb:.1f} MB", "≤ 60 MB", peak_mb <= 60),
        ("reply → first byte, median", f"{beyond['p50_ms']:.1f} ms", "≤ 20 ms", beyond["p50_ms"] <= 20),
        ("reply → first byte, p99", f"{beyond['p99_ms']:.1f} ms", "≤ 20 ms", beyond["p99_ms"] <= 20),
        ("reply → first byte, max", f"{beyond['max_ms']:.1f} ms", "(info)", True),
        ("reply → whole job at the printer, median", f"{whole['p50_ms']:.1f} ms", "(info)", True),
        ("reply → whole job at the printer, p99", f"{whole['p99_ms']:.1f} ms", "(info)", True),
        ("press → first byte, median", f"{total['p50_ms']:.1f} ms", "(info)", True),
        ("in the dispenser: reply handled → head written, p99", f"{percentile(times.head_ms, 99):.1f} ms", "(info)",
         True),
        ("in the dispenser: rest drawn and written, median", f"{percentile(times.rest_ms, 50):.1f} ms", "(info)",
         True),
        ("in the dispenser: rest drawn and written, p99", f"{percentile(times.rest_ms, 99):.1f} ms", "(info)", True),
        ("load average (1 min) before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}", "(info)", True),
    ]
    report("dispenser_footprint", rows, {"start_to_ready": ready, "peak_rss_kb": peaks_kb,
                                         "reply_to_first_byte": beyond, "reply_to_whole_job": whole,
                                         "press_to_first_byte": total,
                                         "reply_to_first_byte_ms": [round(t * 1000, 2) for t in times.beyond],
                                         "reply_to_whole_job_ms": [round(t * 1000, 2) for t in times.whole],
                                         "head_ms": times.head_ms,
                                         "rest_ms": times.rest_ms,
                                         "load_average": {"before": load_before, "after": load_after}})
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
