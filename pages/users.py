"""Users (admin only): list, create, change role, reset password, deactivate/activate, unlock.

Every action goes through engine.auth (which checks the role again, audits and bumps "users")."""

from __future__ import annotations

import functools
from collections.abc import Callable

import streamlit as st

from engine import auth
from engine.errors import EngineError
from ui.auth import error_text, require_ability, role_label
from ui.i18n import t
from ui.state import db, lang

FLASH_KEY = "lac_users_flash"


def _run(action: Callable[[], object], done: str) -> bool:
    """Run an engine action; show its error in the user's language, or remember a success note."""
    try:
        action()
    except EngineError as exc:
        st.error(error_text(exc))
        return False
    st.session_state[FLASH_KEY] = done
    return True


def _role_format():
    return functools.partial(role_label, language=lang())


def _local(value) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


def _table(users: list[auth.UserInfo]) -> None:
    rows = [
        {
            t("auth.username"): u.username,
            t("auth.display_name"): u.display_name,
            t("users.role"): role_label(u.role),
            t("users.form_editor"): u.form_editor,
            t("users.active"): u.active,
            t("users.locked_until"): _local(u.locked_until) if u.locked() else "",
            t("users.failed_logins"): u.failed_logins,
            t("users.created_at"): _local(u.created_at),
        }
        for u in users
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def _create_form(engine, actor) -> None:
    with st.form("lac_user_create", clear_on_submit=False):
        st.subheader(t("users.create_title"))
        username = st.text_input(t("auth.username"), key="users_new_username", help=t("auth.username_help"))
        display_name = st.text_input(t("auth.display_name"), key="users_new_display_name")
        role = st.selectbox(t("users.role"), auth.ROLES, index=auth.ROLES.index("staff"),
                            format_func=_role_format(), key="users_new_role")
        form_editor = st.checkbox(t("users.form_editor"), key="users_new_form_editor",
                                  help=t("users.form_editor_help"))
        password = st.text_input(t("auth.password"), type="password", key="users_new_password",
                                 help=t("auth.password_rules"))
        confirm = st.text_input(t("auth.password_confirm"), type="password", key="users_new_confirm")
        submitted = st.form_submit_button(t("users.create_submit"), type="primary")
    if not submitted:
        return
    if password != confirm:
        st.error(t("auth.password_mismatch"))
        return
    if _run(lambda: auth.create_user(engine, username, password, role, display_name, actor,
                                     form_editor=form_editor),
            t("users.created", username=auth.normalize_username(username))):
        st.rerun()


def _manage(engine, actor, users: list[auth.UserInfo]) -> None:
    st.subheader(t("users.manage_title"))
    names = [u.username for u in users]
    picked = st.selectbox(t("users.pick"), names, key="users_pick",
                          format_func=lambda n: f"{n} · {next(u.name for u in users if u.username == n)}")
    user = next((u for u in users if u.username == picked), None)
    if user is None:
        return
    status = t("users.status_active") if user.active else t("users.status_inactive")
    if user.locked():
        status += " · " + t("users.status_locked", until=_local(user.locked_until))
    st.caption(f"{role_label(user.role)} · {status}")

    with st.form("lac_user_role"):
        role = st.selectbox(t("users.role"), auth.ROLES, index=auth.ROLES.index(user.role),
                            format_func=_role_format(), key=f"users_role_{user.username}")
        editor = st.checkbox(t("users.form_editor"), value=user.form_editor, key=f"users_editor_{user.username}")
        if st.form_submit_button(t("users.role_submit")) and _run(
            lambda: auth.set_role(engine, user.username, role, actor, form_editor=editor),
            t("users.role_changed", username=user.username),
        ):
            st.rerun()

    with st.form("lac_user_password", clear_on_submit=True):
        new = st.text_input(t("users.new_password"), type="password", key="users_reset_password",
                            help=t("auth.password_rules"))
        again = st.text_input(t("auth.password_confirm"), type="password", key="users_reset_confirm")
        if st.form_submit_button(t("users.reset_submit")):
            if new != again:
                st.error(t("auth.password_mismatch"))
            elif _run(lambda: auth.set_password(engine, user.username, new, actor),
                      t("users.password_reset", username=user.username)):
                st.rerun()

    left, right = st.columns(2)
    with left:
        label = t("users.deactivate") if user.active else t("users.activate")
        if st.button(label, key="users_toggle_active", width="stretch") and _run(
            lambda: auth.set_active(engine, user.username, not user.active, actor),
            t("users.deactivated" if user.active else "users.activated", username=user.username),
        ):
            st.rerun()
    with right:
        if st.button(t("users.unlock"), key="users_unlock", disabled=not (user.locked() or user.failed_logins),
                     width="stretch") and _run(
            lambda: auth.unlock(engine, user.username, actor), t("users.unlocked", username=user.username)
        ):
            st.rerun()


def render_users() -> None:
    actor = require_ability("users")
    engine = db()
    st.title(t("users.title"))
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash)
    users = auth.list_users(engine)
    _table(users)
    _create_form(engine, actor)
    _manage(engine, actor, users)
