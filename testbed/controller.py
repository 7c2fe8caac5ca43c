"""The controller as a child process: for the test suite, the benchmarks and the chaos run. Not used by the
controller itself.
"""

from __future__ import annotations

from pathlib import Path

from hall_controller.service import READY_LOG
from testbed.broker import PrivateBroker
from testbed.children import ChildProcess


class ControllerProcess(ChildProcess):
    """``python -m hall_controller`` bound to this process, logging to ``log_path`` (default: next to its state
    directory). ``start()`` waits until it logs ``READY_LOG`` (every device connection subscribed)."""

    def __init__(self, *, config: Path, broker: PrivateBroker, state_dir: Path, extra_args: tuple[str, ...] = (),
                 log_path: Path | None = None) -> None:
        super().__init__(name="controller", module="hall_controller",
                         args=["--config", str(config), "--broker", broker.address, "--state-dir", str(state_dir),
                               *extra_args],
                         log_path=log_path or state_dir.parent / f"{state_dir.name}-controller.log")
        self.config = config
        self.broker = broker
        self.state_dir = state_dir

    def start(self, *, wait: bool = True, timeout_s: float = 10.0) -> None:
        self.spawn()
        if wait:
            self.wait_ready(timeout_s=timeout_s)

    def wait_ready(self, *, timeout_s: float = 10.0) -> None:
        """Until this run of the process has subscribed on every device connection."""
        self.wait_for_log(READY_LOG, timeout_s=timeout_s)
