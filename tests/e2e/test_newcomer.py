"""The newcomer path in headless Chromium, on a desktop and a tablet viewport:

first-run setup → the admin logs in → creates a staff user and a manager → logs out → a reload shows
the login page → the admin's old cookie replayed into a fresh browser does not log in.
Then the casework path: staff fills the intake form (an invalid ID number is refused beside the
field, then fixed), saves and sees the record number; the list masks the ID; the manager reveals it
(audited) and moves the case to 受理.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from engine.db import session_scope
from models.tables import AuditEvent, Submission
from tests.e2e.conftest import wait_idle, wait_loaded

pytestmark = pytest.mark.browser

ADMIN = ("admin", "Admin-Pass-2026", "管理员老周")
STAFF = ("li.gan", "Staff-Pass-2026", "李干事")
MANAGER = ("wang.zr", "Manager-Pass-2026", "王主任")
COOKIE = "lac_auth"


# --- small helpers --------------------------------------------------------------------------------
def keyed(page, key: str, inner: str = "input"):
    """The widget with Streamlit key `key` (its container has the class st-key-<key>)."""
    return page.locator(f".st-key-{key} {inner}").first


def see(page, text: str) -> None:
    page.get_by_text(text).first.wait_for()
    wait_idle(page)


def open_sidebar(page) -> None:
    """On narrow screens Streamlit collapses the sidebar: open it."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    if sidebar.get_attribute("aria-expanded") == "false":
        page.locator('[data-testid="stExpandSidebarButton"], [data-testid="stSidebarCollapsedControl"] button').first.click()
        page.wait_for_timeout(300)


def nav_to(page, title: str) -> None:
    open_sidebar(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).first.click()
    wait_idle(page)


def choose(page, key: str, option: str) -> None:
    """Pick `option` in the selectbox with key `key` (a click during a rerun may not open the list:
    try again)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    wait_idle(page)
    for attempt in range(3):
        keyed(page, key, "input").click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=3000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            wait_idle(page)
    page.wait_for_timeout(200)  # the change starts a (fragment) rerun
    wait_idle(page)


def login_page_shown(page) -> None:
    page.get_by_role("button", name="登录", exact=True).first.wait_for()
    wait_loaded(page)


def login(page, username: str, password: str) -> None:
    form = page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="登录", exact=True))
    form.get_by_role("textbox", name="用户名", exact=True).fill(username)
    form.get_by_role("textbox", name="密码", exact=True).fill(password)
    form.get_by_role("button", name="登录", exact=True).click()
    page.get_by_role("button", name="退出登录").wait_for()
    wait_idle(page)


def logout(page) -> None:
    open_sidebar(page)
    page.get_by_role("button", name="退出登录").click()
    login_page_shown(page)


def logged_in(page) -> bool:
    return page.get_by_role("button", name="退出登录").count() > 0


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")


def create_user(page, username: str, password: str, name: str, role_label: str) -> None:
    keyed(page, "users_new_username").fill(username)
    keyed(page, "users_new_display_name").fill(name)
    choose(page, "users_new_role", role_label)
    keyed(page, "users_new_password").fill(password)
    keyed(page, "users_new_confirm").fill(password)
    page.get_by_role("button", name="创建用户").click()
    see(page, f"用户「{username}」已创建。")


# --- the newcomer path --------------------------------------------------------------------------------
def test_newcomer_setup_login_users_logout_and_old_cookie(server, new_context, device):
    context = new_context()
    page = context.new_page()
    page.goto(server.url)
    see(page, "初始设置：创建系统管理员")

    # first run: a weak password is refused, a strong one creates the admin
    keyed(page, "lac_setup_username").fill(ADMIN[0])
    keyed(page, "lac_setup_display_name").fill(ADMIN[2])
    keyed(page, "lac_setup_password").fill("short1")
    keyed(page, "lac_setup_confirm").fill("short1")
    page.get_by_role("button", name="创建管理员").click()
    see(page, "密码至少需要 10 个字符。")
    keyed(page, "lac_setup_password").fill(ADMIN[1])
    keyed(page, "lac_setup_confirm").fill(ADMIN[1])
    page.get_by_role("button", name="创建管理员").click()
    see(page, f"管理员账户「{ADMIN[0]}」已创建。")
    page.get_by_role("button", name="前往登录").click()
    login_page_shown(page)
    assert page.get_by_text("初始设置：创建系统管理员").count() == 0

    # the admin logs in and creates a staff user and a manager
    login(page, ADMIN[0], ADMIN[1])
    assert not page.get_by_role("button", name="登录", exact=True).is_visible()  # the form is gone
    open_sidebar(page)
    assert page.locator('[data-testid="stSidebar"]').get_by_text(ADMIN[2]).count() == 1
    nav_to(page, "用户管理")
    see(page, "新建用户")
    create_user(page, *STAFF[:2], STAFF[2], "工作人员")
    create_user(page, *MANAGER[:2], MANAGER[2], "负责人")
    if device == "tablet":
        assert no_horizontal_overflow(page)

    # the login cookie works in another browser while the admin is logged in ...
    cookies = [c for c in context.cookies() if c["name"] == COOKIE]
    assert cookies, "the login set the auth cookie"
    before = new_context()
    before.add_cookies(cookies)
    other = before.new_page()
    other.goto(server.url)
    other.get_by_role("button", name="退出登录").wait_for()  # logged in by the cookie alone
    before.close()

    # ... logging out ends it: a reload shows the login page
    logout(page)
    page.reload()
    login_page_shown(page)
    assert not logged_in(page)

    # and the old cookie, replayed into a fresh browser, does not log in
    replay = new_context()
    replay.add_cookies(cookies)
    stolen = replay.new_page()
    stolen.goto(server.url)
    login_page_shown(stolen)
    assert not logged_in(stolen)
    stolen.goto(f"{server.url}/user-admin")  # a deep link does not help either
    login_page_shown(stolen)
    assert not logged_in(stolen)
    assert stolen.get_by_text("新建用户").count() == 0


# --- the casework path: intake by staff, reveal and accept by the manager --------------------------
INTAKE_VALUES = {  # select-type answers of a valid civil intake (values, shown by their zh labels)
    "sex": "male",
    "case_category": "civil",
    "legal_position": "plaintiff",
    "service_type": "litigation_agency",
    "case_cause": "support_maintenance",
    "hardship_route": "exempt",
    "exemption_ground": "social_assistance",
}
E = "entry__intake__0__"  # widget keys of the first intake form of the session


def option_labels(engine) -> dict[str, dict[str, str]]:
    """field key -> {value: zh label} for the select fields above (from the published spec)."""
    from engine.forms import choice_lists, get_spec
    from models.spec import ltext

    spec, lists = get_spec(engine, "intake"), choice_lists(engine)
    out = {}
    for key in INTAKE_VALUES:
        field = spec.field(key)
        choices = field.choices or lists.get(field.choice_list or "", [])
        out[key] = {c.value: ltext(c.label, "zh") for c in choices}
    return out


def type_date(page, key: str, digits: str) -> None:
    """Date inputs are segmented: click the year part, type yyyymmdd, Tab (STACK_NOTES)."""
    keyed(page, key, '[data-type="year"]').click()
    page.keyboard.type(digits)
    page.keyboard.press("Tab")


def seed_users(engine) -> None:
    from engine import auth
    from engine.forms import init_database

    init_database(engine)
    admin = auth.create_first_admin(engine, ADMIN[0], ADMIN[1], ADMIN[2]).actor()
    auth.create_user(engine, STAFF[0], STAFF[1], "staff", STAFF[2], admin)
    auth.create_user(engine, MANAGER[0], MANAGER[1], "manager", MANAGER[2], admin)


def intake_rows(engine) -> list[Submission]:
    from engine.forms import form_ref

    form_id = form_ref(engine, "intake").id
    with session_scope(engine, write=False) as s:
        return list(s.exec(select(Submission).where(Submission.form_id == form_id)).all())


def test_casework_intake_mask_reveal_and_accept(server, new_context, device):
    from engine.idnumber import make_id, mask_id

    seed_users(server.engine)
    labels = option_labels(server.engine)
    good_id = make_id("440803", "19800101", 123)
    bad_id = good_id[:-1] + ("0" if good_id[-1] != "0" else "1")  # wrong check character

    # staff fills the intake form; the wrong ID number is refused beside its field
    page = new_context().new_page()
    page.goto(server.url)
    login_page_shown(page)
    login(page, STAFF[0], STAFF[1])
    nav_to(page, "法律援助申请登记")
    see(page, "申请人")
    type_date(page, E + "application_date", "20260315")
    keyed(page, E + "name").fill("陈小明")
    keyed(page, E + "id_number").fill(bad_id)
    keyed(page, E + "facts", "textarea").fill("申请人因赡养纠纷申请法律援助。")
    for key, value in INTAKE_VALUES.items():
        choose(page, E + key, labels[key][value])
    page.get_by_role("button", name="保存", exact=True).click()
    page.locator('[data-testid="stAlertContentError"]').first.wait_for()
    wait_idle(page)
    beside = page.locator(f".st-key-{E}id_number").locator("xpath=following-sibling::div[1]")
    assert beside.locator('[data-testid="stAlertContentError"]').count() == 1, "the ID error under the field"
    assert "身份证" in beside.inner_text() or "校验" in beside.inner_text()
    assert keyed(page, E + "name").input_value() == "陈小明"  # what was typed is kept
    assert not intake_rows(server.engine)

    keyed(page, E + "id_number").fill(good_id)
    page.keyboard.press("Tab")
    wait_idle(page)
    page.get_by_role("button", name="保存", exact=True).click()
    page.get_by_text("已保存，记录编号").first.wait_for()
    wait_idle(page)
    rows = intake_rows(server.engine)
    assert len(rows) == 1 and rows[0].data["id_number"] == good_id
    number = rows[0].number or f"#{rows[0].id}"
    assert page.get_by_text(number).count() >= 1

    # the list shows the ID masked, never in clear
    nav_to(page, "法律援助申请登记·记录")
    page.get_by_text("陈小明").first.wait_for(state="attached")
    wait_idle(page)
    content = page.content()
    assert good_id not in content
    assert mask_id(good_id) in content, "440***********123X style"
    if device == "tablet":
        assert no_horizontal_overflow(page)
    logout(page)

    # the manager reveals the ID (audited) and accepts the case
    page.goto(server.url)
    login_page_shown(page)
    login(page, MANAGER[0], MANAGER[1])
    page.goto(f"{server.url}/intake-records?id={rows[0].id}")
    page.get_by_role("button", name="显示敏感信息").wait_for()
    wait_idle(page)
    assert good_id not in page.content()
    page.get_by_placeholder(re.compile("核对申请人身份")).fill("核对申请人身份")
    page.get_by_role("button", name="显示敏感信息").click()
    page.get_by_text(good_id).first.wait_for()
    wait_idle(page)
    with session_scope(server.engine, write=False) as s:
        reveals = s.exec(select(AuditEvent).where(AuditEvent.action == "reveal")).all()
    assert [(e.username, e.entity_id) for e in reveals] == [(MANAGER[0], str(rows[0].id))]

    page.get_by_role("button", name="受理", exact=True).click()
    wait_idle(page)
    page.wait_for_timeout(500)
    wait_idle(page)
    assert intake_rows(server.engine)[0].state == "accepted"
    logout(page)
