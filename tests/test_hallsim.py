"""The simulated hall of ``./run hall``: the crowd's logic, and a short real run of the whole hall."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image

from hallsim.citizens import crowd_cards
from hallsim.crowd import Clerk, Command, Crowd
from testbed.broker import free_port
from tests.support import ROOT, processes_naming


def _crowd(seed: int = 3) -> Crowd:
    return Crowd(rng=random.Random(seed), kiosks=("k1", "k2"), regular_keys=("1", "2"), priority_keys=("5",),
                 clerks={"1": Clerk("1", ("A",)), "2": Clerk("2", ("B",))}, transfer_targets=("A", "B"),
                 arrival_every_s=2.0)


def test_citizens_arrive_at_about_the_configured_rate() -> None:
    crowd = _crowd()
    presses = [p for t in range(0, 600) for p in crowd.arrivals(float(t))]
    assert 240 <= len(presses) <= 360          # 600 s / 2 s = 300 on average
    assert {p.kiosk for p in presses} == {"k1", "k2"}
    assert 0.08 < sum(p.key == "5" for p in presses) / len(presses) < 0.3


def test_a_clerk_waits_for_the_reply_then_serves_then_finishes() -> None:
    crowd = _crowd()
    assert Command("1", "next") in crowd.commands(0.0)
    assert not [c for c in crowd.commands(1.0) if c.counter == "1"]          # waiting for the reply
    crowd.answered("1", action="next", ok=True, serving=True, now=1.0)
    assert not [c for c in crowd.commands(5.0) if c.counter == "1"]          # serving
    finished = [c for c in crowd.commands(40.0) if c.counter == "1"]
    assert finished
    assert finished[0].action in ("complete", "no_show", "recall", "transfer")


def test_an_empty_queue_makes_the_clerk_look_again_later() -> None:
    crowd = _crowd()
    crowd.commands(0.0)
    crowd.answered("1", action="next", ok=False, serving=False, now=0.5)
    assert not [c for c in crowd.commands(2.0) if c.counter == "1"]
    assert Command("1", "next") in crowd.commands(4.0)


def test_a_short_run_of_the_whole_hall_prints_calls_and_announces(tmp_path: Path) -> None:
    work = tmp_path / "sim"
    result = subprocess.run(
        [sys.executable, "-m", "hallsim", "--minutes", "0.7", "--every", "1", "--no-screenshots",
         "--port", str(free_port()), "--work", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"hall running: broker 127\.0\.0\.1:\d+, display http://127\.0\.0\.1:\d+/", out)
    assert f"--config {work / 'kiosk-3.toml'} --broker 127.0.0.1:" in out
    assert re.search(r'qr = "http://127\.0\.0\.1:\d+/t/\{token\}"', (work / "kiosk-3.toml").read_text(encoding="utf-8"))
    assert "--config config/sim/counter-7.toml --broker 127.0.0.1:" in out
    assert re.search(r"the hall's office: http://127\.0\.0\.1:\d+/  \(log in as lan, password \S{10,};", out)
    assert re.search(r"ledger: a week of past business days written for the reports \(\d+ tickets\)", out)
    manager_log = (work / "logs" / "manager.log").read_text(encoding="utf-8")
    assert "manager listening on http://127.0.0.1:" in manager_log and "ERROR" not in manager_log
    assert re.search(r"TICKET  [A-Z]+\d{3} ", out)
    assert re.search(r"CALL    [A-Z]+\d{3}.* → Quầy \d", out)
    assert "VOICE   «Mời số" in out
    assert re.search(r"voice: \d+ of \d+ calls said, words started [\d.]+ s after the screen", out)
    summary = re.search(r"stopped: (\d+) tickets printed, (\d+) calls", out)
    assert summary is not None
    assert int(summary.group(1)) >= 5
    assert int(summary.group(2)) >= 3
    tickets = sorted(work.glob("tickets/kiosk-*/*.png"))
    assert len(tickets) == int(summary.group(1))
    widths = {Image.open(p).width for p in tickets}
    assert widths <= {384, 576}
    assert "Traceback" not in out + result.stderr
    # Citizens follow their tickets on their phones (the link read from the printed QR code), see their call
    # there, and rate their visits at the counters' buttons or on the phone.
    assert re.search(r"PHONE   [A-Z]+\d{3}: a citizen follows the ticket on its live page \((next in line|\d+ ahead)", out)
    assert re.search(r"PHONE   [A-Z]+\d{3}'s page( again)?: «Mời bạn đến Quầy \d.*» \(chime and vibration, "
                     r"-?\d+\.\d\d s after the call\)", out)
    assert re.search(r"phones: \d+ citizens followed their ticket on its live page; \d+ saw their call", out)
    assert re.search(r"RATING  [A-Z]+\d{3} (at Quầy \d.*'s buttons|on the phone): «(Rất hài lòng|Hài lòng|Bình thường|"
                     r"Không hài lòng)»", out)
    assert re.search(r"ratings: \d+ at the", out)
    assert "no status-page link" not in out
    # Citizens scan their cards at kiosk-1; the counter that calls them sees who is coming; the terminal and
    # the logs say so without a name, an ID number or an address.
    assert re.search(r"CARD    kiosk-1 read a citizen's card \(cccd chars=\d+", out)
    assert re.search(r"PROFILE Quầy \d.* sees who is coming \((first visit|returning, \d+ earlier visit\(s\)); "
                     r"profile p[0-9a-f]{7}\) → ", out)
    consoles = list(work.glob("consoles/counter-*.txt"))
    assert consoles and all("Công dân (citizen)" in c.read_text(encoding="utf-8") for c in consoles)
    people = crowd_cards(1, today=datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date())
    logs = "".join(p.read_text(encoding="utf-8") for p in work.glob("logs/*.log"))
    for code in people:
        number, _, name = code.split("|")[:3]
        assert number not in out + logs and name not in out + logs


def test_the_hall_refuses_to_wipe_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "hallsim", "--minutes", "0.1", "--work", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "not a simulated hall's folder" in result.stderr
    assert (tmp_path / "precious.txt").read_text(encoding="utf-8") == "keep me"


def test_ctrl_c_ends_the_hall_like_the_end_of_its_minutes(tmp_path: Path) -> None:
    """Ctrl-C reaches only the hall (its roles run in sessions of their own), which stops them in order and
    prints the same summary as ``--minutes``: no warning, no "stopped unexpectedly", nothing left running."""
    work = tmp_path / "sim"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hallsim", "--no-screenshots", "--every", "1", "--port", str(free_port()),
         "--work", str(work)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # the hall leads its own process group, as a shell's foreground job does
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "CALL    " in line:
            break
    # A terminal's Ctrl-C goes to the whole foreground process group: send it the same way.
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert re.search(r"stopped: \d+ tickets printed, \d+ calls", out)
    assert "unexpectedly" not in out and "WARNING" not in out and "Traceback" not in out, out
    assert not processes_naming(work)
