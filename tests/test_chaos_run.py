"""The chaos run, short and seeded: a real broker, the controller as a process, 20 simulated dispensers and 20
simulated counters, with controller SIGKILLs, a broker restart, connections cut mid-request, print failures and
a business day rolling over during the load; afterwards no check may find a violation (see bench/chaos_checks).

The full run (``python -m bench.chaos``: 5,000 tickets, 12 kills, 4 broker restarts) is documented in
docs/reliability.md. This one lasts 30-80 s: the day can only roll over on a whole minute of the wall clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Plan, run_chaos
from testbed.broker import PrivateBroker

SHORT = Plan(seed=11, tickets=450, duration_s=30.0, kills=3, broker_restarts=1, cuts=8, print_fail_p=0.03,
             rollover_min_s=8.0, after_rollover_s=12.0)


@pytest.mark.slow
def test_a_short_chaos_day_loses_nothing_and_hands_nothing_out_twice(broker: PrivateBroker, tmp_path: Path) -> None:
    result = run_chaos(SHORT, tmp_path / "chaos", broker=broker)
    figures = result.data["figures"]

    assert result.verdict.violations == {}, result.verdict.violations
    assert figures["controller SIGKILLs"] == 3
    assert figures["broker restarts"] == 1
    assert figures["connection cuts (mid-request)"] >= 1
    assert figures["prints reported failed"] >= 1
    assert len(figures["business days"]) == 2
    assert figures["priority tickets"] >= 1
    assert figures["recalls in the journal"] >= 1
    assert set(figures["counter commands accepted"]) == {"next", "recall", "complete", "no_show", "transfer", "call",
                                                         "pause", "open", "close"}
    assert figures["tickets issued"] >= 200
    assert all(r["devices_recovered"] == 40 for r in figures["broker restart recovery"])
