"""Shared look: touch-friendly CSS for tablets (768–1180 px) and the zh/en language switch."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from ui.i18n import LANGS, t

LANG_LABELS = {"zh": "中文", "en": "English"}

# Buttons at least 48 px high and inputs 44 px (fingers on tablets); nothing wider than the
# viewport at 768 px: long words wrap, media and tables shrink, the main block uses the width.
_CSS = """
<style>
.stButton button, .stFormSubmitButton button, .stDownloadButton button, .stLinkButton a,
[data-testid="stBaseButton-primary"], [data-testid="stBaseButton-secondary"],
[data-testid="stBaseButton-primaryFormSubmit"], [data-testid="stBaseButton-secondaryFormSubmit"] {
  min-height: 48px;
  touch-action: manipulation;
}
.stTextInput input, .stNumberInput input, .stDateInput input, .stTimeInput input,
.stTextArea textarea, .stSelectbox [data-baseweb="select"] > div,
.stMultiSelect [data-baseweb="select"] > div {
  min-height: 44px;
}
[data-testid="stSidebarNav"] a, [data-testid="stSidebarNavLink"] {
  min-height: 44px;
  align-items: center;
}
.stCheckbox label, .stRadio label { min-height: 44px; align-items: center; }
.stMarkdown, .stAlert, .stCaption, [data-testid="stMetricValue"] { overflow-wrap: anywhere; }
[data-testid="stMain"] img, [data-testid="stMain"] svg { max-width: 100%; height: auto; }
[data-testid="stAppViewContainer"] { overflow-x: hidden; }
@media (max-width: 1180px) {
  [data-testid="stMainBlockContainer"], .block-container {
    padding-left: 1rem; padding-right: 1rem; max-width: 100%;
  }
}
@media (max-width: 900px) {
  [data-testid="stHorizontalBlock"] { flex-wrap: wrap; }
  [data-testid="stColumn"] { min-width: min(100%, 320px); }
}
</style>
"""


def inject_css() -> None:
    """Once per run, at the top of app.py."""
    st.html(_CSS)


def language_switch(on_change: Callable[[str], None] | None = None, *, key: str = "lac_lang_pick") -> str:
    """A zh/en switch. Sets session_state["lang"]; `on_change(lang)` also stores it (e.g. for a user)."""
    current = st.session_state.get("lang") if st.session_state.get("lang") in LANGS else None
    if current is None:
        from ui.state import lang

        current = lang()
    st.session_state[key] = current  # follow changes made elsewhere (login, the account page)

    def _changed() -> None:
        chosen = st.session_state.get(key)
        if chosen in LANGS:
            st.session_state["lang"] = chosen
            if on_change is not None:
                on_change(chosen)

    st.radio(
        t("common.language"),
        LANGS,
        format_func=LANG_LABELS.get,
        horizontal=True,
        key=key,
        on_change=_changed,
    )
    return st.session_state.get("lang", current)
