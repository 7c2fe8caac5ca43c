"""What a hall's Pi installs: hallq's roles, and none of the tools that run them on one machine for tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import ROOT


def test_the_distribution_carries_the_roles_and_no_test_tooling(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ beside the sources, and the checkout is no place for it.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "var", "*.egg-info",
                                                                "__pycache__", ".*_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("hallq-*.whl")
    packages = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist() if not name.startswith("hallq-")}
    assert {"hallq", "hall_controller", "dispenser", "counter", "display"} <= packages
    assert not packages & {"testbed", "hallsim", "tests", "bench"}, packages
    sources = [zipfile.ZipFile(wheel).read(n).decode("utf-8", "replace") for n in zipfile.ZipFile(wheel).namelist()
               if n.endswith(".py")]
    assert not [s for s in sources if "playwright" in s or "testbed" in s.split('"""', 2)[-1]]
