"""Three tablets at one event, in headless Chromium against a real Streamlit server.

One outreach user logs in once through the login form; the login cookie is copied into three
browsers (one per thread, each its own Chromium) at tablet sizes: 820×1180 and 768×1024 portrait,
1180×820 landscape. All three open the same event in tally mode and tap "+1" on brochures 30 times
at the same time (each tap waits for its visible confirmation, as a person would). Then every
screen shows the exact total, 90, within a few seconds (the live refresh), the database holds
exactly 90 taps, and no screen scrolls sideways.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from engine.access import Actor
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, form_login, wait_idle

pytestmark = pytest.mark.browser

USER = ("zhang.xc", "Outreach-Pass-2026", "张宣传")
TABLETS = {"portrait-820": (820, 1180), "portrait-768": (768, 1024), "landscape-1180": (1180, 820)}
TAPS = 30
SEE_TOTAL_WITHIN_S = 8.0  # the totals refresh every 2 s
COOKIE = "lac_auth"


def _setup(server) -> int:
    """Users and today's event, made behind the browser's back in the server's database."""
    from engine import auth
    from engine.forms import init_database
    from engine.storage import create
    from ui.records_view import LOCAL_TZ

    eng = server.engine
    init_database(eng)
    admin = auth.create_first_admin(eng, "admin", "Admin-Pass-2026", "管理员")
    auth.create_user(eng, USER[0], USER[1], "outreach", USER[2], admin.actor())
    event = create(eng, "outreach_event", {
        "title": "法援惠民生 扶贫奔小康——走进新建村", "event_date": datetime.now(LOCAL_TZ).date().isoformat(),
        "place_type": "village", "place_name": "新建村委会", "target_group": "general",
    }, actor=Actor(USER[0], "outreach"))
    return int(event.id)


def _login_cookies(browser, url: str) -> list[dict]:
    context = browser.new_context(viewport={"width": 820, "height": 1180}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        form_login(page, url, USER[0], USER[1])
        deadline = time.monotonic() + 15  # the cookie is written by a JS component, just after the run
        cookies = [c for c in context.cookies() if c["name"] == COOKIE]
        while not cookies and time.monotonic() < deadline:
            page.wait_for_timeout(200)
            cookies = [c for c in context.cookies() if c["name"] == COOKIE]
        assert cookies, "the login set the auth cookie"
        return cookies
    finally:
        context.close()


@dataclass
class Tablet:
    name: str
    size: tuple[int, int]
    errors: list[str] = field(default_factory=list)
    counted: int = 0
    tapped_at: float = 0.0
    seen_total_after_s: float | None = None
    own_count: str = ""
    overflow: list[tuple[str, int, int]] = field(default_factory=list)  # layout problems


def _value(page, key: str) -> str:
    return page.locator(f'.st-key-{key} [data-testid="stMetricValue"]').first.inner_text().strip()


LAYOUT_CHECK = """() => {
  const out = [];
  const inner = window.innerWidth;
  const doc = document.scrollingElement;
  if (doc.scrollWidth > inner) out.push(["document", doc.scrollWidth, inner]);
  const main = document.querySelector('[data-testid="stMain"]');
  if (main && main.scrollWidth > main.clientWidth + 1) out.push(["main", main.scrollWidth, main.clientWidth]);
  for (const b of document.querySelectorAll('[class*="st-key-tally_"] button[data-testid^="stBaseButton"]')) {
    const r = b.getBoundingClientRect();
    if (r.right > inner + 1) out.push(["beyond the right edge: " + b.innerText, Math.round(r.right), inner]);
    if (r.height < 56) out.push(["lower than 56 px: " + b.innerText, Math.round(r.height), 56]);
  }
  return out;
}"""


def _no_sideways_scroll(page, tablet: Tablet, where: str, settle_s: float = 10.0) -> None:
    """No sideways scrolling (document and the app's own scroll container), every tally button
    inside the screen and at least 56 px high — once the page has settled: right after a cookie
    login the page is drawn twice and its CSS can be missing for a moment."""
    deadline = time.monotonic() + settle_s
    problems = page.evaluate(LAYOUT_CHECK)
    while problems and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        problems = page.evaluate(LAYOUT_CHECK)
    for what, got, limit in problems:
        tablet.overflow.append((f"{where}: {what}", got, limit))


def _run_tablet(tablet: Tablet, url: str, cookies: list[dict], ready: threading.Barrier,
                done: threading.Barrier) -> None:
    from playwright.sync_api import expect, sync_playwright

    page = None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                width, height = tablet.size
                context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                              timezone_id="Asia/Shanghai", has_touch=True, is_mobile=False)
                context.set_default_timeout(TIMEOUT_MS)
                context.add_cookies(cookies)
                page = context.new_page()
                page.goto(url)
                plus_one = page.locator(".st-key-tally_tap_brochures_1 button")
                plus_one.wait_for()
                mine = page.locator('.st-key-tally_mine_brochures [data-testid="stMetricValue"]')
                expect(mine).to_have_text("0")
                wait_idle(page)
                _no_sideways_scroll(page, tablet, "loaded")
                ready.wait(timeout=120)
                for i in range(1, TAPS + 1):
                    plus_one.tap()
                    expect(mine).to_have_text(str(i), timeout=TIMEOUT_MS)  # confirmed before the next tap
                    tablet.counted = i
                tablet.tapped_at = time.monotonic()
                done.wait(timeout=300)
                start = time.monotonic()
                total = page.locator('.st-key-tally_total_brochures [data-testid="stMetricValue"]')
                expect(total).to_have_text(str(3 * TAPS), timeout=int(SEE_TOTAL_WITHIN_S * 1000))
                tablet.seen_total_after_s = time.monotonic() - start
                tablet.own_count = _value(page, "tally_mine_brochures")
                _no_sideways_scroll(page, tablet, "after taps")
                page.screenshot(path=f"/tmp/tally-{tablet.name}.png", full_page=True)
                context.close()
            except BaseException:
                if page is not None:
                    page.screenshot(path=f"/tmp/tally-failed-{tablet.name}.png", full_page=True)
                raise
            finally:
                browser.close()
    except BaseException as exc:  # reported by the test, with the other tablets' results
        tablet.errors.append(f"{type(exc).__name__}: {exc}"[:2000])
        ready.abort()
        done.abort()


def test_three_tablets_tap_the_same_event_and_all_show_the_exact_total(server, browser):
    from engine import tally

    event_id = _setup(server)
    cookies = _login_cookies(browser, server.url)
    url = f"{server.url}/live-tally?event={event_id}"
    tablets = [Tablet(name, size) for name, size in TABLETS.items()]
    ready = threading.Barrier(len(tablets))
    done = threading.Barrier(len(tablets))
    threads = [threading.Thread(target=_run_tablet, args=(tb, url, cookies, ready, done), name=tb.name)
               for tb in tablets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    assert not any(th.is_alive() for th in threads), "a tablet did not finish"
    errors = {tb.name: tb.errors for tb in tablets if tb.errors}
    assert not errors, errors
    assert [tb.counted for tb in tablets] == [TAPS] * len(tablets)
    # every screen shows the exact total of all tablets, and its own 30
    assert all(tb.seen_total_after_s is not None and tb.seen_total_after_s <= SEE_TOTAL_WITHIN_S for tb in tablets)
    assert [tb.own_count for tb in tablets] == [str(TAPS)] * len(tablets)
    # the database agrees: 90 taps of +1 from three devices, nothing more
    assert tally.totals(server.engine, event_id) == {"brochures": 3 * TAPS}
    rows = tally.timeline(server.engine, event_id, limit=1000)
    assert len(rows) == 3 * TAPS and {r.delta for r in rows} == {1}
    assert len({r.device for r in rows}) == 3 and {r.username for r in rows} == {USER[0]}
    # no sideways scrolling at any of the three sizes; big buttons, all on screen
    assert {tb.name: tb.overflow for tb in tablets if tb.overflow} == {}
