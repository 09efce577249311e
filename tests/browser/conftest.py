"""Browser-test fixtures: the test app served on 127.0.0.1 by werkzeug, and Debian's Chromium through Playwright.

No browser is ever downloaded: Playwright launches the system Chromium (`make browser` installs it).
"""
import contextvars
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path():
    """Debian's Chromium, or None when it is not installed."""
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.fixture
def live_server(app):
    """Serve `app` on 127.0.0.1 (free port) in a background thread; yields the base URL.

    Each request runs in the server thread with its own app context, so it gets its own Flask-SQLAlchemy session
    (sessions are scoped per app context); the test's pushed context keeps its own. Shut down before `app`'s
    teardown disposes of the engine.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # An empty contextvars context, even where threads inherit their creator's (Python 3.14's option): the test's
    # pushed app context must never become the requests' context.
    thread = threading.Thread(target=contextvars.Context().run, args=(server.serve_forever,), name="live-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def browser():
    """Headless Debian Chromium; skips when it is absent."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's Chromium is not installed (/usr/bin/chromium or `chromium` on PATH): "
                    "run `make browser` or `apt-get install chromium`")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
