"""The split-hall run, short and seeded: the broker and controller, six kiosks, six counters and a display each on
its own Pi (a network namespace) behind one switch; Wi-Fi loss and delay on the kiosks; a kiosk's cable pulled
for 30 s mid-request, the display's cable pulled across several calls, a counter partitioned from the broker with
a ``next`` in flight, and the controller's Pi cut off from the hall for longer than the keepalive. Afterwards the
chaos run's checks may find no violation, and every client must have come back by itself.

The full run (``python -m bench.split_hall``: two rounds of faults) is documented in docs/reliability.md, "A hall
across a real network". This one lasts about 90 s and needs root, ``ip netns`` and ``nft``; elsewhere it skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import split_net
from bench.split_hall import SHORT, run_split_hall
from hallq.mqtt import BrokerSettings


@pytest.mark.slow
def test_a_hall_split_over_a_lossy_network_loses_nothing_and_recovers(tmp_path: Path) -> None:
    reason = split_net.unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")

    result = run_split_hall(SHORT, tmp_path / "split")
    figures = result.data["figures"]
    faults = {f["kind"]: f for f in figures["faults"]}
    keepalive_s = BrokerSettings().keepalive_s

    assert result.verdict.violations == {}, result.verdict.violations
    assert set(faults) == {"kiosk_cut", "display_cut", "counter_partition", "controller_isolated"}
    assert all(f["clients"] for f in faults.values())
    assert figures["tickets issued"] >= 50
    assert figures["kiosk packets dropped by the Wi-Fi loss"] > 0
    isolated = faults["controller_isolated"]["clients"]
    assert len(isolated) == 13  # six kiosks, six counters, the display
    # Cut off for longer than the keepalive: every client notices within two keepalives and comes back.
    assert all(c["noticed_s"] is not None and c["noticed_s"] <= 2 * keepalive_s + 3 for c in isolated), isolated
    assert all(c["reconnected_s"] is not None for c in isolated), isolated
