"""Real headless Chromium (the system's, driven by Playwright) against a real HTTP server on loopback."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, sync_playwright

ARTEFACTS = Path(os.environ.get("ACTAS_TEST_ARTEFACTS", "test-artefacts"))
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


class _RecordingHandler(SimpleHTTPRequestHandler):
    """Serves a directory as any static host would and records every path asked for."""

    requested: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        self.requested.append(self.path)


@dataclass
class StaticServer:
    """A static web server on 127.0.0.1 serving one directory."""

    root: Path
    url: str
    requested: list[str]


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[StaticServer]:
    """Serve ``root`` on an ephemeral loopback port until the block ends."""
    requested: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requested": requested})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StaticServer(root, f"http://127.0.0.1:{server.server_address[1]}/", requested)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def static_server() -> Iterator[Callable[[Path], StaticServer]]:
    """Start static servers for directories; each stops when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda root: stack.enter_context(serve_directory(root))


def chromium_path() -> str:
    """The system Chromium; the Makefile installs Debian's package (no browser is downloaded)."""
    path = os.environ.get("ACTAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium: install Debian's chromium (make test does) or set ACTAS_CHROMIUM")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watched:
    """A page with what it logged and every request it tried to send off the loopback host."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        """No console error, no uncaught exception, no request to another host."""
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.offsite == [], self.offsite


def watch(page: Page) -> Watched:
    """Record a page's console errors and block (and record) any request that leaves the loopback host."""
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    def on_route(route: Route, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOOPBACK:
            route.continue_()
        else:
            watched.offsite.append(request.url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.route("**/*", on_route)
    return watched


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Watched]]:
    """Open watched pages in fresh browser contexts (desktop by default; pass viewport for a phone)."""
    contexts = []

    def open_page(**options: Any) -> Watched:
        context = browser.new_context(**options)
        contexts.append(context)
        return watch(context.new_page())

    yield open_page
    for context in contexts:
        context.close()


def screenshot(watched: Watched, name: str) -> Path:
    """Save a full-page screenshot as a test artefact and return its path."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    watched.page.screenshot(path=str(path), full_page=True)
    return path
