"""The display as a child process and a headless Chromium looking at it: for the test suite, the latency
benchmark (``bench/display_latency.py``) and the README's screenshots. Not used by the display itself.

Chromium is the distribution's (``/usr/bin/chromium``), driven through Playwright's Python package; no
browser is ever downloaded. The flags keep a headless Chromium off the network (no background updates,
sync or QUIC) and let the page play announcements without a click, as the kiosk on the TV does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from testbed.children import ChildProcess

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
)


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    return path


class DisplayProcess(ChildProcess):
    """``python -m display`` as a child process on ``127.0.0.1:port``, logging to ``log_path``."""

    def __init__(self, *, config: Path, broker_address: str, port: int, log_path: Path) -> None:
        super().__init__(name="display", module="display",
                         args=["--config", str(config), "--broker", broker_address, "--listen", f"127.0.0.1:{port}"],
                         log_path=log_path)
        self.config = config
        self.broker_address = broker_address
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start and wait until this run logged that it listens and is connected to the broker."""
        self.spawn()
        self.wait_for_log("connected to broker", timeout_s=timeout_s)
        self.wait_for_log("display listening on", timeout_s=timeout_s)


class Kiosk:
    """A headless Chromium with one 1920×1080 page, as the TV shows it.

    Playwright gives each launch a fresh, temporary profile directory (the ``--user-data-dir`` a kiosk
    would otherwise need) and removes it on close.
    """

    def __init__(self, *, width: int = 1920, height: int = 1080) -> None:
        self.width = width
        self.height = height
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self.page: Page | None = None

    def __enter__(self) -> Kiosk:
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=chromium_path(), headless=True,
                args=list(CHROMIUM_FLAGS),
            )
            self.page = self._browser.new_page(viewport={"width": self.width, "height": self.height})
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    @property
    def tab(self) -> Page:
        if self.page is None:
            raise RuntimeError("the kiosk is not open")
        return self.page

    def open(self, url: str) -> None:
        self.tab.goto(url, wait_until="domcontentloaded")

    def wait_for(self, expression: str, *, timeout_s: float = 5.0, arg: Any = None) -> Any:
        """Until the JavaScript ``expression`` (a function body's return value) is truthy; returns it."""
        handle = self.tab.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000, polling="raf")
        return handle.json_value()

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.tab.evaluate(expression, arg)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tab.screenshot(path=str(path))
        return path
