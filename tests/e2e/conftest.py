"""Browser tests: a real `streamlit run app.py` server per test on a fresh SQLite file, driven by
headless Chromium through Playwright (never `playwright install`: /usr/bin/chromium is used).

Fixtures:
- `server`: base URL of a fresh server (DATABASE_URL in tmp, LAC_TEST_MODE=1, random LAC_COOKIE_KEY),
  stopped by its PID afterwards; `server.engine` reaches the same database for checks.
- `browser` (tests/conftest.py): one Chromium per worker; `device` is "desktop" (1366×900) or "tablet" (820×1180);
  `new_context()` makes a browser context of that size; `page` is a page in one.
- `wait_idle(page)`: wait until the script run has finished.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402,F401  (the `browser` fixture lives there too)

VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "tablet": {"width": 820, "height": 1180}}
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
START_TIMEOUT = 60.0
TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    db_url: str
    process: subprocess.Popen
    log: Path
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The server's database, for checks made behind the browser's back."""
        if self._engine is None:
            from engine.db import get_engine

            self._engine = get_engine(self.db_url)
        return self._engine


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"streamlit did not become healthy in {START_TIMEOUT}s:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh console server (empty database: the first-run setup page)."""
    port = _free_port()
    db_url = f"sqlite:///{tmp_path / 'console.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "LAC_TEST_MODE": "1",
        "LAC_COOKIE_KEY": secrets.token_urlsafe(36),
        "LAC_DATA_DIR": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("LAC_BCRYPT_ROUNDS", None)  # the real bcrypt cost in the browser tests
    log = tmp_path / "streamlit.log"
    streamlit = str(Path(sys.executable).parent / "streamlit")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [streamlit, "run", "app.py", "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    srv = Server(url=url, db_url=db_url, process=process, log=log)
    try:
        _wait_healthy(url, process, log)
        yield srv
    finally:
        _stop(process)
        if srv._engine is not None:
            from engine.db import dispose_engine

            dispose_engine(db_url)


@pytest.fixture(params=list(VIEWPORTS))
def device(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def new_context(browser, device: str) -> Iterator[Callable[..., object]]:
    """Make browser contexts of the device's size (closed at the end of the test)."""
    made = []

    def make(**options):
        context = browser.new_context(
            viewport=VIEWPORTS[device], locale="zh-CN", timezone_id="Asia/Shanghai",
            has_touch=device == "tablet", **options,
        )
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def page(new_context):
    return new_context().new_page()


def wait_idle(page, timeout: float = TIMEOUT_MS) -> None:
    """Wait until the app's script run has finished (call it after waiting for the expected content)."""
    page.wait_for_selector(IDLE, timeout=timeout)


COOKIE_COMPONENT = 'iframe[title="extra_streamlit_components.CookieManager.cookie_manager"]'


def wait_loaded(page) -> None:
    """After a page load: the login's cookie component mounts after the first run and reports the
    browser's cookies, which starts one more run. Wait for that run too, else a form filled in the
    meantime can be swallowed by it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    wait_idle(page)
    page.locator(COOKIE_COMPONENT).first.wait_for(state="attached")
    with contextlib.suppress(PlaywrightTimeout):  # else it had already finished
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=2000)
    wait_idle(page)


# --- helpers shared by the browser tests of several folders ------------------------------------------
INTAKE_CHANNEL = "entry__intake__0__intake_channel"  # the intake entry page's channel select


def keyed(page, key: str, inner: str = "input"):
    """The widget with Streamlit key `key` (its container has the class st-key-<key>)."""
    return page.locator(f".st-key-{key} {inner}").first


def see(page, text_: str) -> None:
    """Wait for `text_` on the page (and the run to end); else fail naming the alerts the page showed."""
    try:
        page.get_by_text(text_).first.wait_for()
    except Exception as exc:
        shown = page.locator('[data-testid="stAlert"], [data-testid="stException"], [data-testid="stToast"]')
        texts = [t.strip() for t in shown.all_inner_texts()][:8]
        raise AssertionError(f"{text_!r} not shown; the page shows: {texts}") from exc
    wait_idle(page)


def channel_options(page, key: str = INTAKE_CHANNEL) -> list[str]:
    """Open a select box, read its options, close it."""
    keyed(page, key).click()
    page.get_by_role("option").first.wait_for()
    names = [o.inner_text().strip() for o in page.get_by_role("option").all()]
    page.keyboard.press("Escape")
    wait_idle(page)
    return names


def form_login(page, base: str, username: str, password: str, path: str = "") -> None:
    """Log in through the form (the login page may rerun once more after loading: fill, check, submit)."""
    page.goto(f"{base}/{path}" if path else base)
    page.get_by_role("button", name="登录", exact=True).first.wait_for()  # a stale copy may linger a moment
    wait_loaded(page)
    form = page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="登录", exact=True))
    name = form.get_by_role("textbox", name="用户名", exact=True)
    secret = form.get_by_role("textbox", name="密码", exact=True)
    logout = page.get_by_role("button", name="退出登录")
    for _attempt in range(4):
        name.fill(username)
        secret.fill(password)
        page.wait_for_timeout(300)
        if name.input_value() != username or secret.input_value() != password:
            continue
        form.get_by_role("button", name="登录", exact=True).click()
        try:
            logout.wait_for(timeout=15_000)
            break
        except Exception:
            continue
    logout.wait_for()
    wait_idle(page)
