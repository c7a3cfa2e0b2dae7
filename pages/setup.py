"""First-run setup: create the first administrator. Only reachable while no user exists; the
engine refuses too (engine.auth.create_first_admin) once any user exists."""

from __future__ import annotations

import streamlit as st

from engine import auth
from engine.errors import EngineError
from ui.auth import error_text
from ui.i18n import t
from ui.layout import language_switch
from ui.state import db, lang

DONE_KEY = "lac_setup_done"  # username created in this session (to show the next step)


def render_setup() -> None:
    engine = db()
    st.title(t("auth.setup_title"))
    language_switch()
    done = st.session_state.get(DONE_KEY)
    if done:
        st.success(t("auth.setup_created", username=done))
        st.button(t("auth.go_to_login"), type="primary", key="lac_setup_go_login")
        return
    if auth.has_users(engine):
        st.info(t("auth.setup_already"))
        return
    st.write(t("auth.setup_intro"))
    with st.form("lac_setup_form"):
        username = st.text_input(t("auth.username"), key="lac_setup_username", help=t("auth.username_help"))
        display_name = st.text_input(t("auth.display_name"), key="lac_setup_display_name")
        password = st.text_input(t("auth.password"), type="password", key="lac_setup_password",
                                 help=t("auth.password_rules"))
        confirm = st.text_input(t("auth.password_confirm"), type="password", key="lac_setup_confirm")
        submitted = st.form_submit_button(t("auth.setup_submit"), type="primary")
    st.caption(t("auth.password_rules"))
    if not submitted:
        return
    if password != confirm:
        st.error(t("auth.password_mismatch"))
        return
    try:
        user = auth.create_first_admin(engine, username, password, display_name, language=lang())
    except EngineError as exc:
        st.error(error_text(exc))
        return
    st.session_state[DONE_KEY] = user.username
    st.success(t("auth.setup_created", username=user.username))
    st.button(t("auth.go_to_login"), type="primary", key="lac_setup_go_login")
