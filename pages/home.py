"""Home: what needs this user now. `render_home()` (the default page).

Overdue records and records awaiting the user's action (from the workflow rules of each form the
user may view), today's outreach events, and this month's counts per form — all SQL counts and
short lists (engine.home_queries), never a table load.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.errors import PermissionDenied
from models.spec import ltext
from ui.i18n import t
from ui.state import actor, db, lang
from ui.widgets import md_escape

SHOWN = 10


def render_home() -> None:
    """The home page (st.Page target, default page)."""
    from engine import home_queries as hq

    lg = lang()
    try:
        who = actor()
    except PermissionDenied:
        st.error(t("home.login_required"), icon=":material/block:")
        st.stop()
        return
    eng = db()
    from ui.records_view import user_names

    name = user_names(eng).get(who.username, who.username)
    st.title(t("home.title"))
    st.caption(t("home.greeting", name=md_escape(name)))

    forms = hq.viewable_forms(eng, who)
    waiting_total, late_total = hq.count_awaiting(eng, who, forms=forms)
    events = hq.todays_events(eng, who, forms=forms)
    cols = st.columns(3)
    cols[0].metric(t("home.metric_waiting"), waiting_total, border=True)
    cols[1].metric(t("home.metric_overdue"), late_total, border=True,
                   delta=t("home.needs_attention") if late_total else None, delta_color="inverse",
                   delta_arrow="off")
    cols[2].metric(t("home.metric_events"), len(events), border=True)

    late = hq.overdue(eng, who, limit=SHOWN, forms=forms)
    st.subheader(t("home.overdue"), divider="red" if late else "gray")
    if late:
        for item in late:
            _item_line(item, lg, who, overdue=True)
        if late_total > len(late):
            st.caption(t("home.more", n=late_total - len(late)))
    else:
        st.caption(t("home.none_overdue"))

    waiting = hq.awaiting(eng, who, limit=SHOWN, forms=forms, include_overdue=False)[:SHOWN]
    st.subheader(t("home.waiting"), divider="gray")
    if waiting:
        for item in waiting:
            _item_line(item, lg, who, overdue=False)
        rest = waiting_total - late_total - len(waiting)
        if rest > 0:
            st.caption(t("home.more", n=rest))
    else:
        st.caption(t("home.none_waiting"))

    st.subheader(t("home.events_today"), divider="gray")
    if events:
        for item in events:
            _item_line(item, lg, who, overdue=False, with_state=False)
    else:
        st.caption(t("home.none_events"))

    st.subheader(t("home.this_month"), divider="gray")
    counts = hq.month_counts(eng, who, forms=forms)
    if counts:
        grid = st.columns(min(4, len(counts)))
        for i, (slug, spec, n) in enumerate(counts):
            grid[i % len(grid)].metric(md_escape(ltext(spec.title, lg) or slug), n)
    else:
        st.caption(t("home.no_forms"))


def _item_line(item: Any, lg: str, who: Any, *, overdue: bool, with_state: bool = True) -> None:
    from engine.workflow import state_label
    from ui.records_view import display_value, local_time, record_link

    sub, spec = item.submission, item.spec
    head = sub.number or f"#{sub.id}"
    title = ""
    f = spec.field(spec.title_field) if spec.title_field else None
    if f is not None:
        title = display_value(f, sub.data.get(f.key), lg, reveal=False)  # sensitive titles stay masked here
    parts = [ltext(spec.title, lg) or item.slug, f"{head} {title}".strip()]
    if with_state and spec.workflow is not None:
        parts.append(state_label(spec, sub.state, lg))
    if sub.due_at is not None:
        parts.append(t("home.due", at=local_time(sub.due_at, with_time=False)))
    if overdue:
        parts.append(t("home.overdue_mark"))
    record_link(item.slug, int(sub.id), " · ".join(parts))
