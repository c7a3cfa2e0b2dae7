"""My account: UI language (stored in User.language) and password change."""

from __future__ import annotations

import streamlit as st

from engine import auth
from engine.access import Actor
from engine.errors import EngineError
from ui.auth import SS_ACTOR, error_text, require_login, role_label
from ui.i18n import t
from ui.layout import language_switch
from ui.state import db


def _store_language(engine, actor: Actor):
    def store(language: str) -> None:
        try:
            auth.set_language(engine, actor.username, language, actor)
        except EngineError as exc:
            st.session_state["lac_account_error"] = error_text(exc)
            return
        st.session_state[SS_ACTOR] = Actor(actor.username, actor.role, actor.form_editor, language)

    return store


def render_account() -> None:
    actor = require_login()
    engine = db()
    st.title(t("auth.account_title"))
    user = auth.get_user(engine, actor.username)
    if user is None:
        st.error(t("common.forbidden"))
        st.stop()
    st.write(f"**{user.name}** · `{user.username}` · {role_label(user.role)}")
    error = st.session_state.pop("lac_account_error", None)
    if error:
        st.error(error)

    st.subheader(t("auth.language_title"))
    language_switch(_store_language(engine, actor), key="lac_account_lang")

    st.subheader(t("auth.change_password_title"))
    with st.form("lac_change_password", clear_on_submit=True):
        current = st.text_input(t("auth.current_password"), type="password", key="account_current_password")
        new = st.text_input(t("users.new_password"), type="password", key="account_new_password",
                            help=t("auth.password_rules"))
        again = st.text_input(t("auth.password_confirm"), type="password", key="account_confirm_password")
        submitted = st.form_submit_button(t("auth.change_password_submit"), type="primary")
    st.caption(t("auth.password_rules"))
    if not submitted:
        return
    if new != again:
        st.error(t("auth.password_mismatch"))
        return
    try:
        auth.change_own_password(engine, actor, current, new)
    except EngineError as exc:
        st.error(error_text(exc))
        return
    st.success(t("auth.password_changed_relogin"))
