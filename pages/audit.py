"""Audit log (admin): who did what and when. Read-only: the UI offers no way to change it."""

from __future__ import annotations

import json
from datetime import datetime, time

import streamlit as st

from engine.audit_log import PAGE_SIZES, AuditQuery, actions_in_use, search
from ui.auth import require_ability
from ui.i18n import t
from ui.state import db


def _filters(engine) -> AuditQuery:
    cols = st.columns(4)
    action = cols[0].selectbox(t("audit.action"), ["", *actions_in_use(engine)], key="audit_action")
    username = cols[1].text_input(t("audit.user"), key="audit_user", max_chars=64)
    entity_id = cols[2].text_input(t("audit.record_id"), key="audit_entity", max_chars=64)
    size = cols[3].selectbox(t("audit.page_size"), PAGE_SIZES, index=1, key="audit_size")
    span = st.date_input(t("audit.dates"), value=(), key="audit_dates")
    start = datetime.combine(span[0], time.min).astimezone() if len(span) >= 1 else None
    end = datetime.combine(span[1], time.max).astimezone() if len(span) == 2 else None
    page = st.number_input(t("audit.page"), min_value=1, value=1, step=1, key="audit_page")
    return AuditQuery(action=action or None, username=username or None, entity_id=entity_id or None,
                      date_from=start, date_to=end, page=int(page), page_size=int(size))


def render_audit() -> None:
    require_ability("audit.view")
    st.title(t("audit.title"))
    st.caption(t("audit.append_only"))
    engine = db()
    result = search(engine, _filters(engine))
    st.caption(t("audit.count", n=result.total, page=result.page, pages=result.pages))
    rows = [
        {
            t("audit.at"): e.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            t("audit.user"): e.username,
            t("audit.action"): e.action,
            t("audit.entity"): f"{e.entity} {e.entity_id}".strip(),
            t("audit.form"): e.form_slug or "",
            t("audit.detail"): json.dumps(e.detail, ensure_ascii=False)[:500] if e.detail else "",
        }
        for e in result.rows
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
