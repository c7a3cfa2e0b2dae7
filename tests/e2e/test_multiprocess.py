"""Two console processes, one PostgreSQL database, headless Chromium.

Two `streamlit run app.py` processes on two ports share one fresh PostgreSQL database, the same
cookie key and test mode: what a reverse proxy in front of several processes looks like to them.
- Starting together: both first page loads run the first start at the same time; the database ends
  up with one copy of the built-in forms.
- A choice added and published in the form designer of process A is offered on B's entry page to a
  staff member already at work there (same session, no restart). A form published by a third
  process (engine.forms.publish from this test) appears in both processes' navigation, and a
  changed label on their entry pages, within a few seconds, although both had the old version cached.
- Tallies tapped through both processes on the live-tally page at the same moment sum exactly.
- A logout through A refuses the same login cookie on B (set explicitly for B's origin, as a proxy
  would send it); a user deactivated elsewhere is logged out of B's open session at its next action
  and B's cookie no longer works on A.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from engine.access import Actor
from tests.e2e.conftest import (
    INTAKE_CHANNEL,
    ROOT,
    TIMEOUT_MS,
    Server,
    _free_port,
    _stop,
    _wait_healthy,
    channel_options,
    keyed,
    see,
    wait_idle,
    wait_loaded,
)
from tests.e2e.conftest import form_login as login

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

PG_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
COOKIE = "lac_auth"
ADMIN = ("admin", "Admin-Pass-2026", "管理员老周")
STAFF = ("li.gan", "Staff-Pass-2026", "李干事")
STAFF2 = ("wang.gz", "Staff2-Pass-2026", "王干事")
NEW_CHOICE = ("community_office", "社区工作站转交", "Community office")
DESKTOP = {"width": 1366, "height": 900}
SEE_WITHIN_S = 10.0  # a publish made elsewhere shows at the next run; a reload is one
TAPS = 12
NEW_FORM = {
    "slug": "district_visit",
    "title": {"zh": "驻村走访记录", "en": "Village visit"},
    "category": "general",
    "access": {"submit": ["admin", "manager", "staff"], "view": ["admin", "manager", "staff"],
               "edit": ["admin", "manager", "staff"], "reveal": ["admin", "manager"]},
    "fields": [
        {"key": "visit_date", "type": "date", "label": {"zh": "走访日期", "en": "Date"}, "required": True},
        {"key": "village", "type": "text", "label": {"zh": "走访村（社区）", "en": "Village"}, "required": True},
    ],
}


@dataclass
class Cluster:
    a: Server
    b: Server
    db_url: str

    @property
    def engine(self):
        return self.a.engine


def _start(port: int, env: dict, log: Path) -> subprocess.Popen:
    streamlit = str(Path(sys.executable).parent / "streamlit")
    with open(log, "wb") as out:
        return subprocess.Popen(
            [streamlit, "run", "app.py", "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A fresh PostgreSQL database and two console processes serving it (stopped by PID afterwards)."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set: two console processes need one PostgreSQL server (CI sets it)")
    from engine.db import dispose_engine
    from tests.conftest import drop_pg_database, make_pg_database

    tmp = tmp_path_factory.mktemp("multiprocess")
    db_url = make_pg_database()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "LAC_TEST_MODE": "1",
        "LAC_COOKIE_KEY": secrets.token_urlsafe(36),  # the same key in every process
        "LAC_DATA_DIR": str(tmp / "data"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("LAC_BCRYPT_ROUNDS", None)
    servers: list[Server] = []
    try:
        for name in ("a", "b"):
            port = _free_port()
            log = tmp / f"streamlit-{name}.log"
            servers.append(Server(url=f"http://127.0.0.1:{port}", db_url=db_url, process=_start(port, env, log),
                                  log=log))
        for srv in servers:
            _wait_healthy(srv.url, srv.process, srv.log)
        yield Cluster(servers[0], servers[1], db_url)
    finally:
        for srv in servers:
            _stop(srv.process)
        dispose_engine(db_url)
        drop_pg_database(db_url)


@pytest.fixture
def contexts(browser) -> Iterator[Callable[..., object]]:
    made = []

    def make(cookies: list[dict] | None = None):
        context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(TIMEOUT_MS)
        if cookies:
            context.add_cookies(cookies)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture(scope="module")
def ready(cluster: Cluster, browser) -> Cluster:
    """Both processes loaded their first page at the same time (first start raced), then the users."""
    from sqlalchemy import func, select

    from engine import auth
    from engine.db import session_scope
    from models.tables import Form, FormVersion

    pages, made = [], []
    for srv in (cluster.a, cluster.b):
        context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        page = context.new_page()
        page.goto(srv.url, wait_until="commit")  # both scripts start while the other is starting
        pages.append(page)
    try:
        for page in pages:
            page.get_by_text("初始设置：创建系统管理员").wait_for(timeout=120_000)
    finally:
        for context in made:
            context.close()
    with session_scope(cluster.engine, write=False) as s:
        forms = s.execute(select(func.count()).select_from(Form)).scalar_one()
        versions = s.execute(select(func.count()).select_from(FormVersion)).scalar_one()
    builtins = len(list((ROOT / "data" / "forms").glob("*.yaml")))
    assert (forms, versions) == (builtins, builtins), "one copy of each built-in form"

    admin = auth.create_first_admin(cluster.engine, *ADMIN).actor()
    auth.create_user(cluster.engine, STAFF[0], STAFF[1], "staff", STAFF[2], admin)
    auth.create_user(cluster.engine, STAFF2[0], STAFF2[1], "staff", STAFF2[2], admin)
    return cluster


# --- helpers ------------------------------------------------------------------------------------
def _logout_button(page):
    return page.get_by_role("button", name="退出登录")


def cookie_for(context, base: str, seconds: float = 10.0) -> list[dict]:
    """The login cookie of `context`, addressed to `base` (another process's origin). The cookie
    component sets it in the browser after the run that shows the logged-in page: wait for it."""
    deadline = time.monotonic() + seconds
    while not (found := [c for c in context.cookies() if c["name"] == COOKIE]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found, "the login set the auth cookie"
    return [{"name": COOKIE, "value": found[0]["value"], "url": base}]


def logged_in(page) -> bool:
    return _logout_button(page).count() > 0


def login_page_shown(page) -> None:
    page.get_by_role("button", name="登录", exact=True).first.wait_for()  # a stale copy may linger a moment
    wait_loaded(page)


def open_logged_in(contexts, base: str, cookies: list[dict], path: str = "") -> object:
    page = contexts(cookies).new_page()
    page.goto(base + path)
    _logout_button(page).wait_for()
    wait_idle(page)
    return page


def nav_text(page) -> str:
    return page.locator('[data-testid="stSidebarNav"]').inner_text()


def reload_until(page, predicate: Callable[[], bool], seconds: float) -> float:
    """Reload until `predicate()`; the seconds it took (fails after `seconds`)."""
    start = time.monotonic()
    while True:
        page.reload()
        _logout_button(page).wait_for()
        wait_idle(page)
        if predicate():
            return time.monotonic() - start
        assert time.monotonic() - start < seconds, "not seen in time"
        page.wait_for_timeout(500)


def nav_click(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).first.click()
    wait_idle(page)


# --- tests --------------------------------------------------------------------------------------
def test_a_choice_published_in_the_designer_on_a_is_offered_on_b(ready: Cluster, contexts) -> None:
    from playwright.sync_api import expect

    from engine.forms import get_spec

    # a fresh option per try: a rerun after a failed try finds the first try's option in the draft
    tag = secrets.token_hex(3)
    new_choice = (f"{NEW_CHOICE[0]}_{tag}", f"{NEW_CHOICE[1]}{tag}", f"{NEW_CHOICE[2]} {tag}")
    # a staff member at work on B, on the intake form (B has the current version cached)
    staff = contexts().new_page()
    login(staff, ready.b.url, STAFF2[0], STAFF2[1])
    nav_click(staff, "法律援助申请登记")
    keyed(staff, INTAKE_CHANNEL).wait_for()
    before = channel_options(staff)
    assert before and new_choice[1] not in before

    # the admin adds an option in A's designer and publishes it
    admin = contexts().new_page()
    login(admin, ready.a.url, ADMIN[0], ADMIN[1])
    admin.goto(f"{ready.a.url}/form-designer?form=intake")
    wait_loaded(admin)
    see(admin, "法律援助申请登记")
    admin.get_by_role("tab", name="选项·清单项·计数").click()
    keyed(admin, "designer__intake__0__new_choice_value_intake_channel").fill(new_choice[0])
    keyed(admin, "designer__intake__0__new_choice_zh_intake_channel").fill(new_choice[1])
    keyed(admin, "designer__intake__0__new_choice_en_intake_channel").fill(new_choice[2])
    expect(keyed(admin, "designer__intake__0__new_choice_value_intake_channel")).to_have_value(new_choice[0])
    admin.get_by_role("button", name="添加选项").click()
    see(admin, f"选项「{new_choice[0]}」已添加到草稿。")
    admin.get_by_role("tab", name="发布").click()
    see(admin, "字段「intake_channel」的选项有变化")
    keyed(admin, "designer__intake__1__publish_note").fill("增加社区工作站转交渠道")
    admin.get_by_role("button", name="发布新版本").click()
    see(admin, "填写页面立即使用新版本")  # the header's "已发布第 N 版" is there before the click
    published = time.monotonic()
    assert get_spec(ready.engine, "intake").field("intake_channel").choices[-1].value == new_choice[0]

    # B offers it at the staff member's next page run (same session: no restart, no new login)
    nav_click(staff, "首页")
    nav_click(staff, "法律援助申请登记")
    keyed(staff, INTAKE_CHANNEL).wait_for()
    after = channel_options(staff)
    assert time.monotonic() - published <= SEE_WITHIN_S + 10  # two page runs on a loaded machine
    assert new_choice[1] in after and after[: len(before)] == before

def test_a_form_published_elsewhere_appears_in_both_processes(ready: Cluster, contexts) -> None:
    from engine.forms import get_spec, publish

    # a fresh form and label per try: a rerun after a failed try finds the first try's publications
    tag = secrets.token_hex(3)
    new_form = {**NEW_FORM, "slug": f"{NEW_FORM['slug']}_{tag}",
                "title": {"zh": f"{NEW_FORM['title']['zh']}{tag}", "en": f"{NEW_FORM['title']['en']} {tag}"}}
    title, label = new_form["title"]["zh"], f"学习内容与主题{tag}"
    context = contexts()
    page_a = context.new_page()
    login(page_a, ready.a.url, ADMIN[0], ADMIN[1])
    page_b = open_logged_in(contexts, ready.b.url, cookie_for(context, ready.b.url))
    for page in (page_a, page_b):  # both processes have built (and cached) the navigation
        assert "学习培训记录" in nav_text(page) and title not in nav_text(page)
    entry_b = open_logged_in(contexts, ready.b.url, cookie_for(context, ready.b.url), "/training_record")
    entry_b.get_by_text("学习内容").first.wait_for()  # B has the current spec cached
    assert entry_b.get_by_text(label).count() == 0

    admin = Actor(ADMIN[0], "admin", True)
    publish(ready.engine, new_form, actor=admin, note="新表单")
    spec = get_spec(ready.engine, "training_record").to_dict()
    spec["fields"] = [{**f, "label": {"zh": label, "en": "Topic"}} if f["key"] == "topic" else f
                      for f in spec["fields"]]
    publish(ready.engine, spec, actor=admin, note="改标签")

    for page in (page_b, page_a):
        took = reload_until(page, lambda p=page: title in nav_text(p), SEE_WITHIN_S)
        assert took <= SEE_WITHIN_S
    took = reload_until(entry_b, lambda: entry_b.get_by_text(label).count() > 0, SEE_WITHIN_S)
    assert took <= SEE_WITHIN_S
    new_b = open_logged_in(contexts, ready.b.url, cookie_for(context, ready.b.url), f"/{new_form['slug']}")
    new_b.get_by_text("走访村（社区）").first.wait_for()


def test_tallies_tapped_through_both_processes_sum_exactly(ready: Cluster, contexts) -> None:
    from playwright.sync_api import expect

    from engine import tally
    from engine.storage import create
    from ui.records_view import LOCAL_TZ

    event = create(ready.engine, "outreach_event", {
        "title": "法援惠民生——两台服务器", "event_date": datetime.now(LOCAL_TZ).date().isoformat(),
        "place_type": "village", "place_name": "新建村委会", "target_group": "general",
    }, actor=Actor(ADMIN[0], "admin"))
    context = contexts()
    login(context.new_page(), ready.a.url, ADMIN[0], ADMIN[1])
    path = f"/live-tally?event={event.id}"
    pages = [open_logged_in(contexts, srv.url, cookie_for(context, srv.url), path) for srv in (ready.a, ready.b)]
    buttons = [p.locator(".st-key-tally_tap_brochures_1 button") for p in pages]
    mine = [p.locator('.st-key-tally_mine_brochures [data-testid="stMetricValue"]') for p in pages]
    for page, button, count in zip(pages, buttons, mine, strict=True):
        button.wait_for()
        wait_idle(page)
        expect(count).to_have_text("0")
    for i in range(1, TAPS + 1):
        for button in buttons:  # A and B write at the same moment
            button.click()
        for count in mine:
            expect(count).to_have_text(str(i), timeout=TIMEOUT_MS)
    for page in pages:  # each shows the total of both processes (live refresh every 2 s)
        total = page.locator('.st-key-tally_total_brochures [data-testid="stMetricValue"]')
        expect(total).to_have_text(str(2 * TAPS), timeout=10_000)
    assert tally.totals(ready.engine, event.id) == {"brochures": 2 * TAPS}
    rows = tally.timeline(ready.engine, event.id, limit=1000)
    assert len(rows) == 2 * TAPS and {r.delta for r in rows} == {1} and len({r.device for r in rows}) == 2


def test_logout_and_deactivation_on_one_process_hold_on_the_other(ready: Cluster, contexts) -> None:
    from engine import auth

    # a login through A; its cookie also opens B
    context_a = contexts()
    page_a = context_a.new_page()
    login(page_a, ready.a.url, STAFF[0], STAFF[1])
    cookie = cookie_for(context_a, ready.b.url)
    open_logged_in(contexts, ready.b.url, cookie)

    # logging out through A: the same cookie no longer logs in on B, not even by a deep link
    _logout_button(page_a).click()
    login_page_shown(page_a)
    stolen = contexts(cookie).new_page()
    stolen.goto(ready.b.url)
    login_page_shown(stolen)
    assert not logged_in(stolen)
    stolen.goto(f"{ready.b.url}/my-account")
    login_page_shown(stolen)
    assert not logged_in(stolen)

    # deactivated elsewhere: B's open session ends at its next action, B's cookie fails on A
    context_b = contexts()
    page_b = context_b.new_page()
    login(page_b, ready.b.url, STAFF[0], STAFF[1])
    other_a = open_logged_in(contexts, ready.a.url, cookie_for(context_b, ready.a.url))
    admin = auth.get_user(ready.engine, ADMIN[0]).actor()
    auth.set_active(ready.engine, STAFF[0], False, admin)
    try:
        page_b.locator('[data-testid="stSidebarNav"] a[href$="/my-account"]').first.click()
        login_page_shown(page_b)
        assert not logged_in(page_b)
        other_a.reload()
        login_page_shown(other_a)
        assert not logged_in(other_a)
    finally:
        auth.set_active(ready.engine, STAFF[0], True, admin)


# --- the nginx example (deploy/nginx/legal-aid-console.conf) in front of the two processes --------
NGINX_CONF = ROOT / "deploy" / "nginx" / "legal-aid-console.conf"


def _sub(pattern: str, repl: str, text_: str, count: int = 0) -> str:
    new, n = re.subn(pattern, repl, text_, count=count, flags=re.MULTILINE)
    assert n, f"the nginx example no longer has {pattern!r}"
    return new


def _nginx_site(cluster: Cluster, https_port: int, http_port: int, ssl_dir: Path) -> str:
    """The example config, pointed at the two test processes, test ports and a throw-away certificate."""
    site = NGINX_CONF.read_text(encoding="utf-8")
    site = _sub(r"^\s*server 127\.0\.0\.1:85\d\d .*;\n", "", site)
    backends = "".join(f"    server 127.0.0.1:{srv.url.rsplit(':', 1)[1]} max_fails=3 fail_timeout=10s;\n"
                       for srv in (cluster.a, cluster.b))
    site = _sub(r"^(\s*hash \$lac_node consistent;\n)", r"\1" + backends.replace("\\", "\\\\"), site, 1)
    site = _sub(r"^\s*listen \[::\]:.*\n", "", site)
    site = _sub(r"listen 80;", f"listen 127.0.0.1:{http_port};", site)
    site = _sub(r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", site)
    return _sub(r"/etc/ssl/legal-aid-console", str(ssl_dir), site)


@pytest.fixture
def nginx(ready: Cluster, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """nginx with the example config in front of A and B: (https base URL, access log of upstreams)."""
    import shutil
    import socket

    if not shutil.which("nginx") or not shutil.which("openssl"):
        pytest.skip("nginx or openssl is not installed: the reverse-proxy example is not exercised")
    ssl_dir = tmp_path / "ssl"
    ssl_dir.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(ssl_dir / "privkey.pem"), "-out", str(ssl_dir / "fullchain.pem")],
                   check=True, capture_output=True)
    https_port, http_port = _free_port(), _free_port()
    (tmp_path / "site.conf").write_text(_nginx_site(ready, https_port, http_port, ssl_dir), encoding="utf-8")
    log = tmp_path / "upstreams.log"
    temp = "".join(f"  {kind}_temp_path {tmp_path / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\n  log_format upstreams '$upstream_addr $cookie_lac_node $uri';\n"
        f"  access_log {log} upstreams;\n{temp}  include {tmp_path / 'site.conf'};\n}}\n", encoding="utf-8")
    process = subprocess.Popen(["nginx", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()[0].decode(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield f"https://127.0.0.1:{https_port}", log
    finally:
        _stop(process)


def _upstreams(log: Path, node: str | None = None, uri: str | None = None) -> set[str]:
    out = set()
    for line in log.read_text().splitlines():
        upstream, cookie, path = (line.split(" ") + ["", "", ""])[:3]
        if (node is None or cookie == node) and (uri is None or path == uri) and upstream != "-":
            out.add(upstream)
    return out


def test_the_nginx_example_keeps_each_browser_on_one_process(ready: Cluster, nginx, browser) -> None:
    import ssl
    import urllib.request

    base, log = nginx
    # browsers without the cookie are spread over both processes (20 of them: all on one is ~2e-6)
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    for i in range(20):
        request = urllib.request.Request(f"{base}/", headers={"Cookie": f"lac_node=probe{i}"})
        with urllib.request.urlopen(request, context=insecure, timeout=10) as response:
            assert response.status == 200
    backends = {srv.url.removeprefix("http://") for srv in (ready.a, ready.b)}
    assert _upstreams(log, uri="/") == backends

    # one browser over HTTPS: the websocket works through the proxy, a login holds over reloads, and
    # every request of that browser reached the same process
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai",
                                  ignore_https_errors=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        login(page, base, ADMIN[0], ADMIN[1])
        for _ in range(3):
            page.reload()
            _logout_button(page).wait_for()
            wait_idle(page)
        node = next(c["value"] for c in context.cookies() if c["name"] == "lac_node")
        used = _upstreams(log, node=node)
        assert len(used) == 1 and used <= backends
        assert _upstreams(log, node=node, uri="/_stcore/stream") == used
    finally:
        context.close()
