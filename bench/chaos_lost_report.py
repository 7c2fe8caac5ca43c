"""Check: a print-failure report the controller had received but not yet stored survives a SIGKILL.

    .venv/bin/python -m bench.chaos_lost_report [--backlog 800] [--kill-after 0.05]

A ``printed`` report is sent once and has no reply, so if the controller acknowledged it on arrival and died
before storing it, it would be lost (the ticket left callable though never printed). The controller
therefore acknowledges messages only after their outcome is stored (manual acks; the broker redelivers
the rest after the restart). This reproduces the dangerous moment: issue one ticket, give the controller
a backlog of valid requests from the same kiosk (each device's messages are handled in order on its own
connection, so only its own backlog delays its report), report the ticket not printed, SIGKILL the controller
a moment later and restart it. When the report was still in the backlog, a controller that acknowledged on
arrival ended the ticket ``waiting`` (three runs in three before the fix); now it must end ``void``. The
run says whether the report was handled before the kill or only after the restart (the case that matters).
Exit status 1 when the report was lost, 0 when the ticket was voided.
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import time
from pathlib import Path

from bench.chaos import _live_online
from bench.chaos_devices import Listener
from hall_controller.cli import LEDGER_FILE
from hall_controller.ledger import Ledger
from hallq import wire
from hallq.mqtt import BrokerSettings, Message, MqttLink
from hallq.topics import Topics
from testbed.broker import PrivateBroker
from testbed.controller import ControllerProcess

ROOT = Path(__file__).resolve().parent.parent
HALL_CONFIG = ROOT / "tests" / "fixtures" / "hall.toml"
TOPICS = Topics(hall="test-hall")


def _start(controller: ControllerProcess, watch: Listener) -> None:
    since = len(watch.received)
    controller.start(wait=False)  # online is awaited on the broker, below
    if not watch.wait_for(lambda r: _live_online(r, TOPICS.status("controller"), since), 20):
        raise SystemExit("controller did not come online")


def _reply(inbox: queue.Queue[object], timeout_s: float = 10.0) -> wire.TicketReply:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        item = inbox.get(timeout=left)
        if isinstance(item, Message):
            return wire.TicketReply.decode(item.payload)
    raise SystemExit("no reply")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Under the broker's max_queued_messages (1000) and the default burst (2000): none of it is dropped.
    parser.add_argument("--backlog", type=int, default=800, help="requests queued ahead of the report")
    parser.add_argument("--kill-after", type=float, default=0.05, help="seconds between the report and SIGKILL")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hallq-lost-report-"))
    with PrivateBroker(work / "broker") as broker:
        direct = BrokerSettings(port=broker.port)
        watch = Listener("watch", broker=direct, subscriptions=[TOPICS.all_status()])
        watch.start()
        watch.link.wait_up(5)
        controller = ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=work / "state",
                                      log_path=work / "controller.log")
        _start(controller, watch)
        inbox: queue.Queue[object] = queue.Queue()
        kiosk = MqttLink(client_id="d1", broker=direct, inbox=inbox, subscriptions=[(TOPICS.dispenser_ticket("d1"), 1)])
        kiosk.start()
        kiosk.wait_up(5)
        time.sleep(0.1)  # the subscription's SUBACK
        kiosk.publish(TOPICS.dispenser_request("d1"), wire.TicketRequest(request_id="r1", service="A").encode())
        ticket = _reply(inbox).ticket
        assert ticket is not None
        for n in range(args.backlog):
            kiosk.publish(TOPICS.dispenser_request("d1"), wire.TicketRequest(request_id=f"b{n}", service="B").encode())
        kiosk.publish_and_wait(TOPICS.dispenser_printed("d1"),
                               wire.PrintReport(ticket_id=ticket.id, ok=False, reason="paper_out").encode(),
                               timeout_s=30)
        time.sleep(args.kill_after)
        controller.kill()
        log_before = controller.log_path.read_text(encoding="utf-8", errors="replace")
        _start(controller, watch)
        kiosk.publish(TOPICS.dispenser_request("d1"), wire.TicketRequest(request_id="r2", service="A").encode())
        _reply(inbox, timeout_s=60)  # answered after the re-delivered backlog: everything before it is processed
        controller.stop()
        kiosk.stop()
        watch.stop()
    voided_line = f"voided ticket={ticket.number} "
    when = "before the kill" if voided_line in log_before else "after the restart (redelivered)"
    ledger = Ledger(work / "state" / LEDGER_FILE, hall_id="test-hall")
    state = next(r["state"] for r in ledger.history() if r["id"] == ticket.id)
    ledger.close()
    sys.stdout.write(f"ticket {ticket.number} reported not printed ended {state!r} (expected 'void'), the report "
                     f"handled {when}; files in {work}\n")
    return 0 if state == "void" else 1


if __name__ == "__main__":
    raise SystemExit(main())
