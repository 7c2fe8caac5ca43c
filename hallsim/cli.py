"""``./run hall`` — a whole simulated hall on this machine. See ``hallsim/__init__.py``."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from hallq import logsetup
from hallsim.hall import ROOT, SimulatedHall, default_port, timestamp, zone_line

DEFAULT_WORK = ROOT / "var" / "sim"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hallsim", description="run a whole simulated hall on this machine")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long (default: Ctrl-C)")
    parser.add_argument("--port", type=int, default=None, help="the display page's port (default 8080, or free)")
    parser.add_argument("--every", type=float, default=3.0, metavar="SECONDS",
                        help="mean seconds between two citizens (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the crowd (default 1)")
    parser.add_argument("--no-screenshots", action="store_true", help="do not save display screenshots")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="where the run writes (wiped first)")
    args = parser.parse_args(argv)
    logsetup.setup("WARNING")
    marker = args.work / ".hallsim"
    if args.work != DEFAULT_WORK and args.work.exists() and any(args.work.iterdir()) and not marker.exists():
        sys.stderr.write(f"{args.work} exists and is not a simulated hall's folder; choose another --work\n")
        return 2
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    marker.write_text("written by ./run hall; wiped at the next run\n", encoding="utf-8")

    def say(text: str) -> None:
        sys.stdout.write(f"{timestamp()}  {text}\n")
        sys.stdout.flush()

    hall = SimulatedHall(work=args.work, display_port=args.port or default_port(), seed=args.seed,
                         arrival_every_s=args.every, say=say, screenshots=not args.no_screenshots)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        if hall.stopping:
            say("stopping; the roles are ending in order (a few seconds)")
        hall.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    say("hallq simulated hall: a broker, the hall controller, two kiosks, six counters, the hall display and "
        "the office's manager")
    say(zone_line())
    tally = hall.run(args.minutes)
    for line in tally.summary():
        say(line)
    if tally.tickets:
        say(f"look at a ticket: {tally.tickets[-1]}")
    if tally.screenshot is not None:
        say(f"the display at the end: {tally.screenshot}")
    if tally.office_screenshot is not None:
        say(f"the office's live view at the end: {tally.office_screenshot}")
    return 0
