"""The controller's command line: ``--help`` lists every command it runs, each with its line."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hall_controller import provision, tls
from hall_controller.cli import COMMANDS
from tests.support import ROOT


def _controller(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hall_controller", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=30, check=False)


def test_help_lists_every_command_with_its_one_line_description() -> None:
    done = _controller("--help")
    assert done.returncode == 0, done.stderr
    listed = dict(re.findall(r"^  ([a-z]+) +(\S.*)$", done.stdout.split("\ncommands:\n", 1)[1], flags=re.MULTILINE))
    assert listed == COMMANDS
    assert {"run", "check", "provision", "certs", "backup", "restore"} <= set(listed)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_listed_command_runs_and_describes_itself(command: str) -> None:
    done = _controller(command, "--help")
    assert done.returncode == 0, done.stderr
    own = " ".join(done.stdout.split())  # argparse wraps the description
    assert " ".join(COMMANDS[command].split()) in own


def test_the_listing_says_what_the_commands_own_help_says() -> None:
    assert COMMANDS["provision"] == provision._parser().description
    assert COMMANDS["certs"] == tls._parser().description


def test_a_command_after_the_options_is_pointed_to_its_place() -> None:
    done = _controller("--config", "hall.toml", "backup")
    assert done.returncode == 2 and "the command comes first: hallq-controller backup --help" in done.stderr
