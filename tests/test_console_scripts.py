"""Every role has a console script, ``hallq-ROLE``, installed next to the environment's Python, and the docs
use that one form."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hallq.errors import EXIT_CONFIG
from tests.support import ROOT

ROLES = {"hallq-controller": "hall_controller", "hallq-dispenser": "dispenser", "hallq-counter": "counter",
         "hallq-display": "display"}
# The hall manager's script: its reports work from the command line; it has no config of its own to check yet.
TOOLS = {"hallq-manager": "manager"}


def _scripts() -> dict[str, str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        scripts: dict[str, str] = tomllib.load(file)["project"]["scripts"]
    return scripts


def test_each_role_has_a_console_script_calling_its_cli() -> None:
    assert _scripts() == {script: f"{package}.cli:main" for script, package in {**ROLES, **TOOLS}.items()}
    for target in _scripts().values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("script", sorted(ROLES))
def test_the_installed_script_checks_a_config_and_exits_78_on_a_missing_one(script: str, tmp_path: Path) -> None:
    program = Path(sys.executable).parent / script
    assert program.is_file(), f"{program} missing: reinstall with pip install -e '.[dev]'"
    done = subprocess.run([str(program), "check", "--config", str(tmp_path / "missing.toml")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=30, check=False)
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "file not found" in done.stderr and "Traceback" not in done.stderr


ROLE_DOCS = ["docs/counter.md", "docs/display.md", "docs/dispenser.md", "docs/deploy.md",
             "config/counter.example.toml", "config/display.example.toml", "config/dispenser.example.toml",
             "config/hall.example.toml"]


@pytest.mark.parametrize("doc", ROLE_DOCS)
def test_docs_start_roles_with_their_console_script_not_python_m(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert not re.findall(r"python3? -m (?:hall_controller|dispenser|counter|display)\b", text)
