"""Dispenser footprint and latency on this machine. Run:  .venv/bin/python -m bench.dispenser_footprint [--quick]

Measures, against the dispenser's targets (it must run on a 512 MB Raspberry Pi):
  1. process start → ready (the ``READY=1`` it sends to systemd: broker connected, printer open) ≤ 1.0 s;
  2. resident memory (VmHWM, the peak) after printing tickets ≤ 60 MB;
  3. press → first byte of the ticket at the printer, beyond the controller's reply ≤ 20 ms.

Parts: a private Mosquitto from the project's config, the hall controller process on the test hall, the
dispenser of ``tests/fixtures/dispenser.toml`` (mock pins), and a loopback ESC/POS network printer
(``tests/test_dispenser_helpers.EscposTestPrinter``) that timestamps the first byte of each job. For 3, the
dispenser runs as its own process and a subscriber of its reply topic, in this process, timestamps the
reply, so both instants come from one monotonic clock.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, percentile, report, summary_ms
from hallq import wire
from hallq.broker import PrivateBroker
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


def reply_to_first_byte(broker: PrivateBroker, workdir: Path,
                        presses: int) -> tuple[list[float], list[float], list[float]]:
    """(reply → first job byte, press → first job byte) in seconds, for ``presses`` sequential presses, and
    the dispenser's own render-and-encode times in ms (from its log).

    The dispenser is its own process (``--simulate --with-printer``: keyboard lines on mock pins, tickets
    to the loopback network printer); this process sees the reply on the broker and the job's first byte.
    """
    topics = Probe(broker).topics
    beyond: list[float] = []
    total: list[float] = []
    with (EscposTestPrinter() as device,
          Probe(broker, subscriptions=[topics.dispenser_ticket("d1"), topics.status("d1")]) as probe):
        text = DISPENSER_CONFIG.read_text(encoding="utf-8").replace('type = "preview"', 'type = "network"')
        text = text.replace("min_interval_s = 2.0", "min_interval_s = 0.0")
        text = text.replace("[ticket]", f'[printer.network]\nhost = "127.0.0.1"\nport = {device.port}\n\n[ticket]')
        config = workdir / "dispenser-network.toml"
        log = workdir / "dispenser.log"
        config.write_text(text, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispenser", "--simulate", "--with-printer", "--config", str(config), "--broker",
             broker.address, "--log-level", "INFO"],
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
                replied = time.monotonic()
                assert wire.TicketReply.decode(reply.payload).ok
                job = device.wait_jobs(n + 1)[n]
                beyond.append(job.first_byte_at - replied)
                total.append(job.first_byte_at - pressed)
                # The dispenser reports, then polls the printer: give it that moment before the next press.
                time.sleep(0.02)
        finally:
            proc.terminate()
            proc.wait(10)
        renders = [float(m) for m in re.findall(r"render_ms=([\d.]+)", log.read_text(encoding="utf-8"))]
    return beyond, total, renders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    runs, presses = (3, 40) if args.quick else (10, 300)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with PrivateBroker(workdir / "broker") as broker, \
                ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=workdir / "state"):
            start_to_ready(broker, workdir / "warmup", 1)  # python-escpos writes its database cache once
            ready_s, peaks_kb = start_to_ready(broker, workdir, runs)
            beyond_s, total_s, render_ms = reply_to_first_byte(broker, workdir, presses)
    ready = summary_ms(ready_s)
    beyond = summary_ms(beyond_s)
    total = summary_ms(total_s)
    peak_mb = max(peaks_kb) / 1024
    rows = [
        ("start → READY=1, median", f"{ready['p50_ms']:.0f} ms", "≤ 1000 ms", ready["p50_ms"] <= 1000),
        ("start → READY=1, worst", f"{ready['max_ms']:.0f} ms", "≤ 1000 ms", ready["max_ms"] <= 1000),
        ("peak RSS after printing", f"{peak_mb:.1f} MB", "≤ 60 MB", peak_mb <= 60),
        ("reply → first byte, median", f"{beyond['p50_ms']:.1f} ms", "≤ 20 ms", beyond["p50_ms"] <= 20),
        ("reply → first byte, p99", f"{beyond['p99_ms']:.1f} ms", "≤ 20 ms", beyond["p99_ms"] <= 20),
        ("press → first byte, median", f"{total['p50_ms']:.1f} ms", "(info)", True),
        ("render + encode in the dispenser, median", f"{percentile(render_ms, 50):.1f} ms", "(info)", True),
        ("render + encode in the dispenser, p99", f"{percentile(render_ms, 99):.1f} ms", "(info)", True),
    ]
    report("dispenser_footprint", rows, {"start_to_ready": ready, "peak_rss_kb": peaks_kb,
                                         "reply_to_first_byte": beyond, "press_to_first_byte": total,
                                         "render_ms": render_ms})
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
