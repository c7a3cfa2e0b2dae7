"""Retention of closed cases (admin): `render_retention()`.

Shows which closed intake cases are older than the retention period (a count, by state, a sample of
record ids; never a name), and applies anonymise or purge only when the admin types that count.
Nothing here or anywhere runs on its own: the Setting "retention_years" is just this page's default.
"""

from __future__ import annotations

import streamlit as st

from engine import retention
from engine.errors import EngineError
from ui.auth import error_text, require_ability
from ui.i18n import t
from ui.records_view import local_time
from ui.state import db

SS_FLASH = "retention_flash"
K_YEARS, K_MODE, K_CONFIRM = "retention_years", "retention_mode", "retention_confirm"


def render_retention() -> None:
    actor = require_ability("settings")
    engine = db()
    st.title(t("retention.title"))
    st.markdown(t("retention.help"))
    flash = st.session_state.pop(SS_FLASH, None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    default = retention.retention_years(engine)
    st.caption(t("retention.default_is", years=default) if default else t("retention.default_none"))
    years = st.number_input(t("retention.years"), min_value=retention.MIN_YEARS, max_value=retention.MAX_YEARS,
                            value=default, step=1, key=K_YEARS, help=t("retention.years_help"),
                            placeholder=t("retention.pick_years"))
    _default_buttons(engine, actor, default, years)
    if years is None:
        st.info(t("retention.pick_years"))
        return
    try:
        plan = retention.plan_retention(engine, int(years))
    except EngineError as exc:
        st.error(error_text(exc))
        return
    st.subheader(t("retention.plan_title"), divider="gray")
    st.metric(t("retention.count"), plan.count)
    st.caption(t("retention.cutoff", cutoff=local_time(plan.cutoff)))
    if not plan.count:
        st.success(t("retention.nothing"))
        return
    st.caption(t("retention.span", oldest=local_time(plan.oldest), newest=local_time(plan.newest)))
    st.dataframe([{t("retention.col_state"): _state_label(engine, s), t("retention.col_count"): n}
                  for s, n in sorted(plan.by_state.items())], hide_index=True)
    st.caption(t("retention.sample", ids=", ".join(f"#{i}" for i in plan.sample_ids)))
    mode = st.radio(t("retention.mode"), list(retention.MODES), key=K_MODE,
                    format_func=lambda m: t(f"retention.mode_{m}"))
    (st.warning if mode == "purge" else st.info)(t(f"retention.explain_{mode}"))
    typed = st.text_input(t("retention.confirm", n=plan.count), key=K_CONFIRM, max_chars=12)
    ready = typed.strip() == str(plan.count)
    if st.button(t("retention.apply"), type="primary", key="retention_apply", disabled=not ready,
                 icon=":material/auto_delete:"):
        try:
            result = retention.apply_retention(engine, int(years), mode, actor=actor, confirm_count=typed)
        except EngineError as exc:
            st.error(error_text(exc))
            return
        st.session_state[SS_FLASH] = t("retention.done", n=result.count, mode=t(f"retention.mode_{mode}"))
        st.session_state.pop(K_CONFIRM, None)
        st.rerun()


def _default_buttons(engine, actor, default: int | None, years: int | None) -> None:
    cols = st.columns(2)
    if years is not None and years != default and cols[0].button(t("retention.save_default"),
                                                                 key="retention_save_default"):
        retention.set_retention_years(engine, int(years), actor=actor)
        st.session_state[SS_FLASH] = t("retention.default_saved")
        st.rerun()
    if default is not None and cols[1].button(t("retention.clear_default"), key="retention_clear_default"):
        retention.set_retention_years(engine, None, actor=actor)
        st.session_state.pop(K_YEARS, None)
        st.rerun()


def _state_label(engine, state: str) -> str:
    from engine.forms import get_spec
    from engine.workflow import state_label
    from ui.state import lang

    try:
        return state_label(get_spec(engine, retention.DEFAULT_SLUG), state, lang())
    except EngineError:
        return state


__all__ = ["render_retention"]
