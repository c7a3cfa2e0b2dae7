"""The only page while logged out: the login form itself is drawn by app.py's gate above it."""

from __future__ import annotations

import streamlit as st

from ui.i18n import t


def render_placeholder() -> None:
    st.caption(t("auth.login_hint"))
