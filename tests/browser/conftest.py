"""Browser tests: the dashboard in a real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Skipped, with the reason, only when Chromium is not installed on this machine; under CI (which installs it in
.ci/run) a missing Chromium fails instead. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install it (apt-get install chromium chromium-driver)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium chromium-driver)")


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app served over HTTP on a free loopback port, in a thread of this process."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def page(playwright_driver: Any, tmp_path: Path) -> Iterator[Any]:
    """A page in a fresh Chromium profile (its own user-data-dir per test)."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.pages[0] if context.pages else context.new_page()
    yield page
    context.close()


def sign_in(page: Any, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/dashboard/")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/dashboard/")
