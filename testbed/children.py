"""A hallq role as a child process, for the test suite, the benchmarks and the simulated hall.

``ChildProcess`` runs ``python -m <module> <args>`` from the project root, appends its output to a log
file, and knows how far that file was when this run started, so ``wait_for_log`` only sees this run's lines
(the roles log their own progress: "connected to broker", "display listening on"). The child is bound to
this process (``bound_to_parent``): an interrupted run leaves nothing behind. Not used by the roles themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from testbed.broker import PROJECT_ROOT, bound_to_parent, end_process


class ChildProcess:
    """``python -m module *args``, logging to ``log_path``; ``name`` appears in failure messages."""

    def __init__(self, *, name: str, module: str, args: Sequence[str], log_path: Path, stdin: bool = False) -> None:
        self.name = name
        self.module = module
        self.args = list(args)
        self.log_path = log_path
        self.stdin = stdin  # a pipe for send_line(); otherwise /dev/null
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._follow_offset = 0

    def spawn(self) -> None:
        """Start the process and return at once (see ``wait_for_log``)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self._follow_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                bound_to_parent([sys.executable, "-m", self.module, *self.args]),
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                # A session of its own: Ctrl-C at the terminal reaches only the parent, which stops its
                # children in order (the parent-death signal still ends them if the parent is killed).
                start_new_session=True,
            )

    def send_line(self, line: str) -> None:
        """Type ``line`` on the process's standard input (with ``stdin=True``), if it still runs."""
        if self.proc is not None and self.proc.stdin is not None and self.proc.poll() is None:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()

    def new_lines(self) -> list[str]:
        """This run's complete log lines written since the last call."""
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as log:
            log.seek(self._follow_offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1
        self._follow_offset += complete
        return data[:complete].decode("utf-8", "replace").splitlines()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout_s: float = 10.0) -> None:
        """Until this run's log contains ``text``; AssertionError with the log if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()}")
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                if text.encode() in log.read():
                    return
            time.sleep(0.02)
        raise AssertionError(f"{self.name} did not log {text!r} within {timeout_s} s:\n{self.log_text()}")

    def kill(self) -> None:
        """SIGKILL: a power cut, as far as the process can tell."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 10 s; the exit status (0 if it never ran)."""
        if self.proc is None:
            return 0
        return end_process(self.proc, grace_s=10.0)

    def start(self) -> None:
        self.spawn()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
