"""The console's gate in AppTest over real SQLite files: first-run setup, the real login form of
streamlit-authenticator, generic errors, lockout, logout, deactivation, password reset, the
language switch, and the users and account pages."""

from __future__ import annotations

import pytest
from sqlmodel import select

from engine import auth
from engine.db import session_scope
from models.tables import AuditEvent
from tests.app.conftest import NAMES, PASSWORDS, by_label, texts

GENERIC_ZH = auth.LoginResult(auth.LoginStatus.BAD).message("zh")


def login_form(at, username: str, password: str, *, user_label="用户名", password_label="密码", button="登录"):
    by_label(at.text_input, user_label).input(username)
    by_label(at.text_input, password_label).input(password)
    return by_label(at.button, button).click().run()


def actions(engine, action: str) -> list[AuditEvent]:
    with session_scope(engine, write=False) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


# --- first run ----------------------------------------------------------------------------------
def test_first_run_setup_creates_the_admin_once(empty_env):
    at = empty_env.app().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["初始设置：创建系统管理员"]
    assert not auth.has_users(empty_env.engine)

    # a weak password is refused with the policy message, nothing is created
    at.text_input(key="lac_setup_username").input("boss")
    at.text_input(key="lac_setup_display_name").input("主任")
    at.text_input(key="lac_setup_password").input("passwordpassword")
    at.text_input(key="lac_setup_confirm").input("passwordpassword")
    at.button[0].click().run()
    assert "密码必须同时包含字母和数字。" in texts(at)
    assert not auth.has_users(empty_env.engine)

    # the two passwords must match
    at.text_input(key="lac_setup_password").input("Strong-Pass-2026")
    at.text_input(key="lac_setup_confirm").input("Strong-Pass-2027")
    at.button[0].click().run()
    assert "两次输入的密码不一致。" in texts(at)
    assert not auth.has_users(empty_env.engine)

    at.text_input(key="lac_setup_confirm").input("Strong-Pass-2026")
    at.button[0].click().run()
    assert "管理员账户「boss」已创建。请用它登录。" in texts(at)
    user = auth.get_user(empty_env.engine, "boss")
    assert user is not None and user.role == "admin" and user.display_name == "主任"

    # the next run has no setup page: the login form instead, and the new admin can log in
    by_label(at.button, "前往登录").click().run()
    assert "初始设置：创建系统管理员" not in texts(at)
    assert {ti.label for ti in at.text_input} == {"用户名", "密码"}
    login_form(at, "boss", "Strong-Pass-2026")
    assert at.session_state["actor"].username == "boss"
    assert at.session_state["actor"].role == "admin"


def test_setup_page_refuses_once_a_user_exists(app_env):
    def setup_page():
        from pages.setup import render_setup

        render_setup()

    at = app_env.page(setup_page, None).run()
    assert "系统已经设置完成，请登录。" in texts(at)
    assert not at.text_input  # no form to create another admin
    fresh = app_env.app().run()  # and app.py never routes to it
    assert "初始设置" not in texts(fresh)


# --- login ----------------------------------------------------------------------------------------
def test_login_with_the_real_form(app_env):
    at = app_env.app().run()
    assert not at.exception
    assert "actor" not in at.session_state
    login_form(at, "Staff", PASSWORDS["staff"])  # user names are not case sensitive
    assert not at.exception
    actor = at.session_state["actor"]
    assert (actor.username, actor.role, actor.language) == ("staff", "staff", "zh")
    assert at.session_state["authentication_status"] is True
    sidebar = " ".join(str(m.value) for m in at.sidebar.markdown)
    assert NAMES["staff"] in sidebar and "工作人员" in sidebar
    assert [e.entity_id for e in actions(app_env.engine, "login")] == ["staff"]
    at.run()  # the next action: still logged in, with a logout button
    assert at.session_state["actor"].username == "staff"
    assert [b.label for b in at.sidebar.button] == ["退出登录"]


@pytest.mark.parametrize(("username", "password"), [("staff", "Wrong-Pass-1"), ("nobody", PASSWORDS["staff"])])
def test_wrong_password_and_unknown_user_get_the_same_generic_error(app_env, username, password):
    at = login_form(app_env.app().run(), username, password)
    assert [e.value for e in at.error] == [GENERIC_ZH]
    assert "actor" not in at.session_state
    assert not at.session_state["authentication_status"]


def test_locked_account_shows_the_same_error_even_with_the_right_password(app_env, monkeypatch):
    monkeypatch.setenv("LAC_MAX_FAILED_LOGINS", "2")
    at = app_env.app().run()
    for _ in range(2):
        login_form(at, "staff", "Wrong-Pass-1")
    assert auth.get_user(app_env.engine, "staff").locked()
    login_form(at, "staff", PASSWORDS["staff"])
    assert [e.value for e in at.error] == [GENERIC_ZH]
    assert "actor" not in at.session_state


def test_deactivated_user_cannot_log_in(app_env):
    admin = auth.get_user(app_env.engine, "admin").actor()
    auth.set_active(app_env.engine, "viewer", False, admin)
    at = login_form(app_env.app().run(), "viewer", PASSWORDS["viewer"])
    assert [e.value for e in at.error] == ["此账户已停用，请联系管理员。"]
    assert "actor" not in at.session_state


def test_login_page_language_switch(app_env):
    at = app_env.app().run()
    at.radio(key="lac_lang_pick").set_value("en").run()
    assert {ti.label for ti in at.text_input} == {"Username", "Password"}
    at = login_form(at, "nobody", "Wrong-Pass-1", user_label="Username", password_label="Password",
                    button="Log in")
    assert [e.value for e in at.error] == [auth.LoginResult(auth.LoginStatus.BAD).message("en")]


# --- logout and forced logout -------------------------------------------------------------------------
def test_logout_ends_the_session_and_is_recorded(app_env):
    at = app_env.app("manager").run()
    assert at.session_state["actor"].role == "manager"
    assert auth.get_user(app_env.engine, "manager").last_logout_at is None
    by_label(at.sidebar.button, "退出登录").click().run()
    assert not at.exception
    assert "actor" not in at.session_state
    assert {ti.label for ti in at.text_input} == {"用户名", "密码"}  # the login form, in the same run
    assert auth.get_user(app_env.engine, "manager").last_logout_at is not None
    assert [e.entity_id for e in actions(app_env.engine, "logout")] == ["manager"]


def test_deactivated_user_is_logged_out_at_the_next_action(app_env):
    at = app_env.app("staff").run()
    assert at.session_state["actor"].username == "staff"
    admin = auth.get_user(app_env.engine, "admin").actor()
    auth.set_active(app_env.engine, "staff", False, admin)
    at.run()
    assert "actor" not in at.session_state
    assert "您的登录已失效" in texts(at)
    assert {ti.label for ti in at.text_input} == {"用户名", "密码"}


def test_password_reset_ends_a_live_session(app_env):
    at = app_env.app("staff").run()
    admin = auth.get_user(app_env.engine, "admin").actor()
    auth.set_password(app_env.engine, "staff", "Brand-New-Pass-1", admin)
    at.run()
    assert "actor" not in at.session_state


def test_role_change_takes_effect_at_the_next_action(app_env):
    at = app_env.app("staff").run()
    admin = auth.get_user(app_env.engine, "admin").actor()
    auth.set_role(app_env.engine, "staff", "viewer", admin)
    at.run()
    assert at.session_state["actor"].role == "viewer"


# --- users page -------------------------------------------------------------------------------------
def users_page():
    from pages.users import render_users

    render_users()


def account_page():
    from pages.account import render_account

    render_account()


def test_admin_creates_a_user_and_sees_policy_errors_in_zh(app_env):
    at = app_env.page(users_page, "admin").run()
    assert not at.exception
    assert at.dataframe, "the user list"
    at.text_input(key="users_new_username").input("chen")
    at.text_input(key="users_new_display_name").input("陈干事")
    at.selectbox(key="users_new_role").set_value("manager")
    at.text_input(key="users_new_password").input("short")
    at.text_input(key="users_new_confirm").input("short")
    by_label(at.button, "创建用户").click().run()
    assert "密码至少需要 10 个字符。" in texts(at)
    assert auth.get_user(app_env.engine, "chen") is None

    at.text_input(key="users_new_password").input("Chen-Pass-2026")
    at.text_input(key="users_new_confirm").input("Chen-Pass-2026")
    by_label(at.button, "创建用户").click().run()
    assert not at.exception
    assert "用户「chen」已创建。" in texts(at)
    user = auth.get_user(app_env.engine, "chen")
    assert (user.role, user.display_name, user.form_editor) == ("manager", "陈干事", False)


def test_admin_manages_a_user(app_env):
    at = app_env.page(users_page, "admin").run()
    at.selectbox(key="users_pick").set_value("staff").run()
    by_label(at.button, "停用账户").click().run()
    assert not auth.get_user(app_env.engine, "staff").active
    assert "将在下一次操作时退出登录" in texts(at)
    by_label(at.button, "启用账户").click().run()
    assert auth.get_user(app_env.engine, "staff").active

    at.selectbox(key="users_role_staff").set_value("manager")
    by_label(at.button, "保存角色").click().run()
    assert auth.get_user(app_env.engine, "staff").role == "manager"

    at.text_input(key="users_reset_password").input("Reset-Pass-2026")
    at.text_input(key="users_reset_confirm").input("Reset-Pass-2026")
    by_label(at.button, "重置密码").click().run()
    assert auth.verify_login(app_env.engine, "staff", "Reset-Pass-2026").ok


def test_admin_sees_engine_refusals_in_their_language(app_env):
    auth.set_language(app_env.engine, "admin", "en", auth.get_user(app_env.engine, "admin").actor())
    at = app_env.page(users_page, "admin")
    at.session_state["lang"] = "en"
    at.run()
    at.selectbox(key="users_pick").set_value("admin").run()
    by_label(at.button, "Deactivate").click().run()
    assert "You cannot deactivate your own account." in texts(at)
    assert auth.get_user(app_env.engine, "admin").active


def test_unlock_from_the_users_page(app_env):
    for _ in range(auth.max_failed()):
        auth.verify_login(app_env.engine, "outreach", "Wrong-Pass-1")
    assert auth.get_user(app_env.engine, "outreach").locked()
    at = app_env.page(users_page, "admin").run()
    at.selectbox(key="users_pick").set_value("outreach").run()
    by_label(at.button, "解除锁定").click().run()
    assert not auth.get_user(app_env.engine, "outreach").locked()


@pytest.mark.parametrize("role", ["manager", "staff", "outreach", "viewer"])
def test_users_page_refuses_other_roles(app_env, role):
    at = app_env.page(users_page, role).run()
    assert [e.value for e in at.error] == ["您的角色无权使用此页面。"]
    assert not at.dataframe and not at.text_input and not at.button


def test_users_page_refuses_without_login(app_env):
    at = app_env.page(users_page, None).run()
    assert [e.value for e in at.error] == ["您的角色无权使用此页面。"]
    assert not at.dataframe


# --- account page -------------------------------------------------------------------------------------
def test_account_language_is_stored_for_the_user(app_env):
    at = app_env.page(account_page, "staff").run()
    assert "我的账户" in texts(at)
    at.radio(key="lac_account_lang").set_value("en").run()
    assert auth.get_user(app_env.engine, "staff").language == "en"
    assert "My account" in texts(at)
    # the whole console follows at the next run
    app = app_env.app("staff").run()
    assert app.session_state["actor"].language == "en"
    assert [b.label for b in app.sidebar.button] == ["Log out"]


def test_account_password_change(app_env):
    at = app_env.page(account_page, "staff").run()
    at.text_input(key="account_current_password").input("Wrong-Pass-1")
    at.text_input(key="account_new_password").input("Next-Pass-2027")
    at.text_input(key="account_confirm_password").input("Next-Pass-2027")
    at.button[0].click().run()
    assert "当前密码不正确。" in texts(at)
    at.text_input(key="account_current_password").input(PASSWORDS["staff"])
    at.text_input(key="account_new_password").input("Next-Pass-2027")
    at.text_input(key="account_confirm_password").input("Next-Pass-2027")
    at.button[0].click().run()
    assert "密码已修改" in texts(at)
    assert auth.verify_login(app_env.engine, "staff", "Next-Pass-2027").ok


def test_a_placeholder_cookie_key_stops_the_console(app_env, monkeypatch):
    monkeypatch.setenv("LAC_COOKIE_KEY", "change-me")
    at = app_env.app().run()
    assert not at.exception
    assert len(at.error) == 1 and "LAC_COOKIE_KEY" in at.error[0].value
    assert not at.text_input  # no login form, no setup form


def test_an_overlong_password_at_login_says_so(app_env):
    at = login_form(app_env.app().run(), "staff", "a1" * 40)
    assert [e.value for e in at.error] == [auth.LoginResult(
        auth.LoginStatus.BAD, code="auth.password_too_long", params={"max": 72, "bytes": 80}).message("zh")]
    assert "80" in at.error[0].value
