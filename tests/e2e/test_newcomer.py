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
from tests.e2e.conftest import wait_idle

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
    """Pick `option` in the selectbox with key `key`."""
    keyed(page, key, "input").click()
    page.get_by_role("option", name=option, exact=True).click()


def login_page_shown(page) -> None:
    page.get_by_role("button", name="登录", exact=True).wait_for()
    wait_idle(page)


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
    other.get_by_role("button", name="退出登录").wait_for()
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
