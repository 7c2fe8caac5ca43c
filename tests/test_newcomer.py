"""The newcomer's path: a fresh clone, an empty home (no caches, no virtual environment), the system's own
Python, and the README's main command exactly as written, ``./run hall --minutes 1``.

It runs what was committed (a clone sees nothing else), so a file made by hand or a warm cache cannot hide
a missing install step. It takes a few minutes: ``./run`` creates the virtual environment and installs
hallq's dependencies from the package index with an empty pip cache. Deselect it with ``-m "not newcomer"``
while working; ``./run test`` and CI run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, processes_naming

pytestmark = pytest.mark.newcomer

# The machine's network settings pass through (a proxy or a CA bundle is the machine's, not a cache);
# nothing else of this session's environment does.
PASSED_THROUGH = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "PIP_CERT",
                  "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_a_fresh_clone_with_an_empty_home_runs_the_hall_as_the_readme_says(tmp_path: Path) -> None:
    clone = tmp_path / "hallq"
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {"HOME": str(home), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
    env.update({name: os.environ[name] for name in PASSED_THROUGH if name in os.environ})
    result = subprocess.run(["./run", "hall", "--minutes", "1"], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=900, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "Traceback" not in out, out[-6000:]
    assert "BuildBackendWarning" not in out and "DeprecationWarning" not in out, out[:3000]  # a clean first screen
    assert re.search(r"hall running: broker 127\.0\.0\.1:\d+, display http://", out), out[-6000:]
    printed = re.findall(r"TICKET  [A-Z]+\d{3} .* → (var/sim/tickets/\S+\.png)", out)
    assert len(printed) >= 5, out[-6000:]
    assert all((clone / path).is_file() for path in printed)
    assert len(re.findall(r"CALL    [A-Z]+\d{3}", out)) >= 3, out[-6000:]
    assert "VOICE   «Mời số" in out, out[-6000:]
    assert re.search(r"stopped: \d+ tickets printed", out), out[-6000:]
    # python-escpos's capabilities cache was made from nothing, in the empty home, by two kiosks at once.
    assert list(home.glob(".cache/**/*capabilities*")) or list(home.glob(".cache/*")), "no cache was made"
    assert not processes_naming(clone), "processes outlived the hall"
