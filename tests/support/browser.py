"""Driving the console in Debian's Chromium with Playwright (no browser download).

Browser tests skip, saying why, only when ``/usr/bin/chromium`` is absent, and fail instead in CI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from handoffs.config import Settings
from tests.support.ports import listening_socket, port_of
from tests.support.replicas import ROOT, Replica, log_dir, replica_env, wait_ready

CHROMIUM = Path(os.environ.get("HANDOFFS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # A hidden or occluded page must keep its timers and EventSource running like a visible one.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
SKIP_REASON = "Chromium not installed: apt-get install chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    """Skip without Chromium on a developer's machine; in CI (``CI`` set) a missing browser fails:
    a run that skipped the browser tests must not look like one that passed them."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"{CHROMIUM} is missing in CI ({SKIP_REASON}); .ci/run installs it", pytrace=False)
    pytest.skip(SKIP_REASON)


@asynccontextmanager
async def launch() -> AsyncIterator[Any]:
    """One headless Chromium for a test session."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def artifact(name: str) -> Path:
    """Where a test leaves a screenshot for a reviewer (git-ignored); the newest run wins."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


class Console:
    """One person's browser window on the console: a context (cookie jar) and its page."""

    def __init__(self, context: Any, page: Any, base_url: str, email: str) -> None:
        self.context = context
        self.page = page
        self.base_url = base_url
        self.email = email
        self.errors: list[str] = []
        self.requests: list[str] = []
        # Script errors, console errors and server errors; a 4xx the page expects (a lost claim's
        # 409) is not one, though Chromium logs it as "Failed to load resource".
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._on_console)
        page.on("response", self._on_response)
        page.on("request", lambda request: self.requests.append(request.url))

    def _on_console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _on_response(self, response: Any) -> None:
        if response.status >= 500:
            self.errors.append(f"{response.status} from {response.url}")

    async def close(self) -> None:
        await self.context.close()

    async def sign_in_with_form(self) -> None:
        """Sign in as a person does: open the console, land on the form, type, submit."""
        page = self.page
        await page.goto("/")
        await page.wait_for_url(re.compile(r"/login\?next=/$"))
        await page.get_by_label("Email").fill(self.email)
        await page.get_by_label("Password").fill("demo")
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(self.base_url + "/")

    async def sign_in(self) -> None:
        """Sign in through the same endpoint the form posts to (quicker than typing)."""
        response = await self.context.request.post(
            "/api/v1/auth/session", data={"email": self.email, "password": "demo"}
        )
        assert response.ok, await response.text()

    async def wait_live(self) -> None:
        """Until the page's live stream has said ``ready``."""
        # A locator assertion, not wait_for_function: the pages' CSP forbids the eval that one needs.
        from playwright.async_api import expect

        await expect(self.page.locator("html")).to_have_attribute("data-stream", "live")

    async def mark(self) -> None:
        """Leave a value in the page's JS state: still there later means the page never reloaded."""
        await self.page.evaluate("window.__sameDocument = true")

    async def same_document(self) -> bool:
        return bool(await self.page.evaluate("window.__sameDocument === true"))

    async def set_hidden(self, hidden: bool) -> None:
        """Make the page believe its tab is in the background (or back in front)."""
        await self.page.evaluate(
            """(hidden) => {
                Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
                Object.defineProperty(document, "visibilityState", {
                    configurable: true, get: () => (hidden ? "hidden" : "visible"),
                });
                document.dispatchEvent(new Event("visibilitychange"));
            }""",
            hidden,
        )


async def open_console(
    browser: Any,
    base_url: str,
    email: str,
    *,
    path: str = "/",
    form: bool = False,
    viewport: dict[str, int] | None = None,
    reduced_motion: str = "no-preference",
) -> Console:
    context = await browser.new_context(
        base_url=base_url, viewport=viewport or DESKTOP, reduced_motion=reduced_motion
    )
    context.set_default_timeout(20_000)
    console = Console(context, await context.new_page(), base_url, email)
    if form:
        await console.sign_in_with_form()
    else:
        await console.sign_in()
    if path != "/" or not form:
        await console.page.goto(path)
    return console


def start_replica(settings: Settings, port: int = 0, **env: str) -> Replica:
    """An API process, ready, on ``port`` (0: a free one); the same port again is a restart on
    the same address, as a browser sees it. The socket is bound here and handed over (--fd)."""
    sock = listening_socket(port)
    port = port_of(sock)
    log_path = log_dir() / f"console-replica-{port}.log"
    with sock, log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "handoffs.app:create_app", "--factory",
             "--fd", str(sock.fileno()), "--log-level", "warning"],
            cwd=ROOT, env=replica_env(settings, **env), stdout=log, stderr=log, pass_fds=(sock.fileno(),),
        )  # fmt: skip
    replica = Replica(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_ready(replica)
    except BaseException:
        replica.stop()
        raise
    return replica


Open = Callable[..., Awaitable["Console"]]
"""The ``window`` fixture (tests/console/conftest.py): ``await window(base_url, email, **options)``."""
