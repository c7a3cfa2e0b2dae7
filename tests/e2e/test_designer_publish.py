"""The designer in headless Chromium against a real Streamlit server: an admin (desktop browser) adds
an option to the intake form's channel question and publishes; a staff member already working on a
tablet (a second browser context, logged in before the publish) sees the new option on the intake
entry page at the next page run — no restart, no new login."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    INTAKE_CHANNEL,
    TIMEOUT_MS,
    VIEWPORTS,
    channel_options,
    keyed,
    see,
    wait_idle,
    wait_loaded,
)

pytestmark = pytest.mark.browser

ADMIN = ("admin", "Admin-Pass-2026", "管理员")
STAFF = ("li.gan", "Staff-Pass-2026", "李干事")
NEW = ("community_office", "社区工作站转交", "Community office")


def _setup(server) -> None:
    from engine import auth
    from engine.forms import init_database

    eng = server.engine
    init_database(eng)
    admin = auth.create_first_admin(eng, *ADMIN)
    auth.create_user(eng, STAFF[0], STAFF[1], "staff", STAFF[2], admin.actor())


def _context(browser, device: str):
    context = browser.new_context(viewport=VIEWPORTS[device], locale="zh-CN", timezone_id="Asia/Shanghai",
                                  has_touch=device == "tablet")
    context.set_default_timeout(TIMEOUT_MS)
    return context


def login(page, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="登录", exact=True).first.wait_for()
    wait_loaded(page)
    form = page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="登录", exact=True))
    form.get_by_role("textbox", name="用户名", exact=True).fill(username)
    form.get_by_role("textbox", name="密码", exact=True).fill(password)
    form.get_by_role("button", name="登录", exact=True).click()
    page.get_by_role("button", name="退出登录").wait_for()
    wait_idle(page)


def open_sidebar(page) -> None:
    sidebar = page.locator('[data-testid="stSidebar"]')
    if sidebar.get_attribute("aria-expanded") == "false":
        page.locator('[data-testid="stExpandSidebarButton"], [data-testid="stSidebarCollapsedControl"] button'
                     ).first.click()
        page.wait_for_timeout(300)


def nav_to(page, title: str) -> None:
    open_sidebar(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).first.click()
    wait_idle(page)


def test_admin_adds_a_choice_and_staff_sees_it_without_restart(server, browser) -> None:
    from engine.forms import get_spec

    _setup(server)
    admin_ctx, staff_ctx = _context(browser, "desktop"), _context(browser, "tablet")
    try:
        # the staff member is already at work on the intake form (tablet)
        staff = staff_ctx.new_page()
        login(staff, server.url, STAFF[0], STAFF[1])
        nav_to(staff, "法律援助申请登记")
        keyed(staff, INTAKE_CHANNEL).wait_for()
        before = channel_options(staff)
        assert "窗口申请" in before and NEW[1] not in before

        # the admin opens the intake form in the designer and adds an option
        admin = admin_ctx.new_page()
        login(admin, server.url, ADMIN[0], ADMIN[1])
        admin.goto(f"{server.url}/form-designer?form=intake")
        wait_loaded(admin)
        see(admin, "法律援助申请登记")
        admin.get_by_role("tab", name="选项·清单项·计数").click()
        keyed(admin, "designer__intake__0__new_choice_value_intake_channel").fill(NEW[0])
        keyed(admin, "designer__intake__0__new_choice_zh_intake_channel").fill(NEW[1])
        keyed(admin, "designer__intake__0__new_choice_en_intake_channel").fill(NEW[2])
        admin.get_by_role("button", name="添加选项").click()
        see(admin, f"选项「{NEW[0]}」已添加到草稿。")
        assert get_spec(server.engine, "intake").field("intake_channel").choices[-1].value != NEW[0]  # draft only

        # publish: the impact first, then the button
        admin.get_by_role("tab", name="发布").click()
        see(admin, "字段「intake_channel」的选项有变化")
        keyed(admin, "designer__intake__1__publish_note").fill("增加社区工作站转交渠道")
        admin.get_by_role("button", name="发布新版本").click()
        see(admin, "已发布第 2 版")
        spec = get_spec(server.engine, "intake")
        assert spec.field("intake_channel").choices[-1].value == NEW[0]

        # the staff member's next page run offers it (same session: no restart, no new login)
        nav_to(staff, "首页")
        nav_to(staff, "法律援助申请登记")
        keyed(staff, INTAKE_CHANNEL).wait_for()
        after = channel_options(staff)
        assert NEW[1] in after and after[: len(before)] == before
    finally:
        admin_ctx.close()
        staff_ctx.close()
