"""Legal Aid Console: page config, one-time init, login gate, navigation from role + published forms.

Run: `streamlit run app.py`. Order matters (../shared/STACK_NOTES.md): the login gate runs at the
top, before st.navigation, and nothing calls st.rerun() right after login() or logout().
"""

from __future__ import annotations

import streamlit as st

from engine import auth
from pages.placeholder import render_placeholder
from pages.setup import render_setup
from ui.auth import cookie_key_or_stop, gate
from ui.i18n import t
from ui.layout import inject_css
from ui.nav import LOGIN_URL, SETUP_URL, build_navigation
from ui.state import db, lang

st.set_page_config(page_title=t("common.app_name"), page_icon=":material/balance:", layout="wide")
inject_css()
cookie_key_or_stop()  # a placeholder or short cookie key: refuse to start, before anything else
engine = db()

if not auth.has_users(engine):
    # First run: the only page is the setup of the first administrator.
    page = st.navigation([st.Page(render_setup, title=t("auth.setup_title"), url_path=SETUP_URL,
                                  icon=":material/admin_panel_settings:")], position="hidden")
else:
    actor = gate(engine)
    if actor is None:
        page = st.navigation([st.Page(render_placeholder, title=t("auth.login_title"), url_path=LOGIN_URL,
                                      icon=":material/login:")], position="hidden")
    else:
        page = st.navigation(build_navigation(engine, actor, lang()), expanded=True)
page.run()
