"""The outreach event page: `render_event()`.

Query param `id=<event record id>`: that event — its details, live counter totals, its sign-ups
(phones masked; roles that may reveal do so with a reason, and the reveal is audited), actions
(open tally mode, export the sign-ups as CSV, a one-page PDF summary) and its summary (totals,
sign-ups by group and topic, staff present, timeline of taps). Without `id`: a picker of events.
Both show the campaign / period summary (events by target group, tallies summed across events,
events per liaison point), from SQL aggregates in engine.outreach.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

import pandas as pd
import streamlit as st

from engine import outreach
from engine.access import form_allows, may_reveal
from engine.errors import EngineError, NotFound, PermissionDenied
from models.spec import FormSpec, ltext
from ui.auth import error_text, require_login
from ui.i18n import t
from ui.records_view import LOCAL_TZ, local_time, render_record
from ui.state import db, lang
from ui.widgets import md_escape

REFRESH_SECONDS = 3
SIGNUP_PAGE_SIZE = 50
TIMELINE_ROWS = 200
EVENT_URL = "outreach-event"  # this page's url path in ui.nav
TALLY_URL = "live-tally"  # pages/tally.py's url path in ui.nav
SS_REVEALED = "event_revealed"  # event ids whose sign-up phones this session revealed (audited)


def _no_op() -> None:
    return None


def event_link(event_id: int, label: str) -> None:
    """A link to this page for one event (for the outreach records list and other pages)."""
    st.page_link(st.Page(_no_op, title=label, url_path=EVENT_URL), label=md_escape(label),
                 query_params={"id": str(event_id)}, icon=":material/event_note:")


def render_event() -> None:
    """The event page (st.Page target)."""
    who = require_login()
    eng = db()
    from engine.forms import get_spec

    try:
        spec = get_spec(eng, outreach.EVENT_FORM)
    except EngineError:
        st.error(t("event.no_form"))
        return
    if not form_allows(who, spec, "view"):
        st.error(t("common.forbidden"), icon=":material/block:")
        st.stop()
    wanted = st.query_params.get("id")
    if wanted:
        try:
            rec = outreach.load_event(eng, int(wanted), who)
        except (ValueError, NotFound, PermissionDenied):
            st.error(t("event.missing"), icon=":material/event_busy:")
            _picker(who)
        else:
            _event(rec, who)
    else:
        st.title(t("event.list_title"))
        _picker(who)
    _campaign_section()


def _picker(who: Any) -> None:
    today = datetime.now(LOCAL_TZ).date()
    try:
        rows = outreach.todays_events(db(), today, who, limit=50)
    except EngineError as exc:
        st.error(error_text(exc))
        return
    if not rows:
        st.info(t("event.none"))
        return
    options = {r.id: f"{r.event_date.isoformat() if r.event_date else '?'} · {r.title}" for r in rows}
    picked = st.selectbox(t("event.pick"), list(options), index=None, format_func=options.get,
                          key="event_pick", placeholder=t("event.pick_placeholder"))
    if picked is not None:
        st.query_params["id"] = str(picked)
        st.rerun()


# --- one event -----------------------------------------------------------------------------------
def _event(rec: Any, who: Any) -> None:
    from engine.forms import choice_lists

    lg = lang()
    data = rec.data
    st.title(md_escape(str(data.get("title") or f"#{rec.id}")))
    st.caption(md_escape(" · ".join(x for x in (str(data.get("event_date") or ""), str(data.get("place_name") or ""))
                                    if x)))
    _actions(rec, who)
    _live_totals(rec.id)
    with st.expander(t("event.details"), expanded=False, icon=":material/info:"):
        details = rec.spec.model_copy(update={"fields": [f for f in rec.spec.fields if f.type != "counter"]})
        render_record(details, data, lg, reveal=False, choice_lists=choice_lists(db()))
    try:
        summary = outreach.event_summary(db(), rec.id, timeline_limit=TIMELINE_ROWS)
    except EngineError as exc:
        st.error(error_text(exc))
        return
    _summary(summary)
    _signups(rec, who)


def _actions(rec: Any, who: Any) -> None:
    cols = st.columns(3)
    if who.can("tally"):
        with cols[0]:
            st.page_link(st.Page(_no_op, title=t("event.open_tally"), url_path=TALLY_URL), label=t("event.open_tally"),
                         query_params={"event": str(rec.id)}, icon=":material/touch_app:")
    with cols[1]:
        # deferred: made on click, outside the script run (so everything it needs is bound here)
        st.download_button(t("event.pdf"), data=functools.partial(outreach.event_pdf, db(), rec.id, lang=lang()),
                           file_name=f"event-{rec.id}.pdf",
                           mime="application/pdf", icon=":material/picture_as_pdf:", key="event_pdf",
                           on_click="ignore", width="stretch")
    signup_spec = _signup_spec()
    if signup_spec is None or not who.can("export") or not form_allows(who, signup_spec, "view"):
        return
    with cols[2]:
        reveal = False
        reason = ""
        if may_reveal(who, signup_spec):
            reveal = st.checkbox(t("event.export_reveal"), key="event_export_reveal")
            if reveal:  # full phone numbers leave the console: say why (kept in the audit log)
                reason = st.text_input(t("event.reveal_reason"), key="event_export_reason").strip()
        st.download_button(t("event.export"), data=functools.partial(outreach.signups_csv, db(), rec.id, actor=who,
                                                                      lang=lang(), reveal=reveal, reason=reason),
                           file_name=f"event-{rec.id}-signups.csv",
                           mime="text/csv", icon=":material/download:", key="event_export", on_click="ignore",
                           width="stretch", disabled=reveal and not reason)


def _signup_spec() -> FormSpec | None:
    from engine.forms import get_spec

    try:
        return get_spec(db(), outreach.SIGNUP_FORM)
    except EngineError:
        return None


@st.fragment(run_every=REFRESH_SECONDS)
def _live_totals(event_id: int) -> None:
    """The counters' totals over every tablet, refreshed while the page is open."""
    from engine import tally
    from engine.forms import get_spec

    lg = lang()
    try:
        totals = tally.totals(db(), event_id)
        spec = get_spec(db(), outreach.EVENT_FORM)
    except Exception as exc:
        st.warning(md_escape(str(exc).splitlines()[0][:200]))
        return
    counters = spec.counters
    if not counters:
        return
    with st.container(key="event_totals"):
        cols = st.columns(len(counters))
        for col, f in zip(cols, counters, strict=True):
            with col, st.container(key=f"event_total_{f.key}"):
                st.metric(ltext(f.label, lg) or f.key, int(totals.get(f.key, 0)), border=True)
        st.caption(t("event.live_note", seconds=REFRESH_SECONDS))


def _label(labels: dict[str, Any], value: str, lg: str) -> str:
    if value == outreach.NONE_KEY:
        return t("event.none_given")
    return ltext(labels.get(value, {}), lg) or value


def _summary(s: outreach.EventSummary) -> None:
    lg = lang()
    st.subheader(t("event.summary"), divider="gray")
    st.markdown(t("event.signup_line", n=s.signups, referred=s.referred))
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{t('event.by_group')}**")
        if s.by_group:
            st.dataframe(pd.DataFrame({t("event.col_group"): [_label(s.group_labels, k, lg) for k in s.by_group],
                                       t("event.col_people"): list(s.by_group.values())}), hide_index=True)
        else:
            st.caption(t("event.no_signups"))
    with right:
        st.markdown(f"**{t('event.by_topic')}**")
        if s.by_topic:
            st.dataframe(pd.DataFrame({t("event.col_topic"): [_label(s.topic_labels, k, lg) for k in s.by_topic],
                                       t("event.col_people"): list(s.by_topic.values())}), hide_index=True)
        else:
            st.caption(t("event.no_signups"))
    st.markdown(f"**{t('event.staff')}**")
    if s.staff_listed:
        st.markdown(md_escape("、".join(s.staff_listed) if lg == "zh" else ", ".join(s.staff_listed)))
    if s.staff:
        st.dataframe(pd.DataFrame({
            t("event.col_name"): [r.name for r in s.staff],
            t("event.col_taps"): [r.taps for r in s.staff],
            t("event.col_signups"): [r.signups for r in s.staff],
            t("event.col_tablets"): [r.devices for r in s.staff],
        }), hide_index=True)
    elif not s.staff_listed:
        st.caption(t("event.no_staff"))
    with st.expander(t("event.timeline", n=len(s.timeline)), icon=":material/timeline:"):
        if s.hours:
            hours: dict[str, int] = {}
            for h in s.hours:
                label = h.hour.astimezone(LOCAL_TZ).strftime("%m-%d %H:00")
                hours[label] = hours.get(label, 0) + h.taps
            st.bar_chart(pd.DataFrame({t("event.col_taps"): list(hours.values())}, index=list(hours)))
        if s.timeline:
            st.dataframe(pd.DataFrame({
                t("event.col_time"): [local_time(r.at).split(" ")[-1] if r.at else "" for r in s.timeline],
                t("event.col_counter"): [s.counter_label(r.counter, lg) for r in s.timeline],
                t("event.col_delta"): [f"{r.delta:+d}" for r in s.timeline],
                t("event.col_name"): [r.username for r in s.timeline],
                t("event.col_tablet"): [r.device[-6:] for r in s.timeline],
            }), hide_index=True)
        else:
            st.caption(t("event.no_taps"))


def _signups(rec: Any, who: Any) -> None:
    from engine import audit
    from engine.db import session_scope
    from engine.fields import display_lists
    from engine.forms import choice_lists
    from engine.queries import ListQuery
    from engine.storage import children
    from ui.records_view import display_value

    spec = _signup_spec()
    if spec is None or not form_allows(who, spec, "view"):
        return
    lg = lang()
    st.subheader(t("event.signups"), divider="gray")
    revealed_ids: set[int] = st.session_state.setdefault(SS_REVEALED, set())
    reveal = rec.id in revealed_ids and may_reveal(who, spec)
    first = children(db(), rec.id, outreach.SIGNUP_FORM, ListQuery(page=1, page_size=SIGNUP_PAGE_SIZE), actor=who)
    if not first.total:
        st.caption(t("event.no_signups"))
        return
    page_no = 1
    if first.pages > 1:
        page_no = int(st.number_input(t("event.page", pages=first.pages), min_value=1, max_value=first.pages, value=1,
                                      key=f"event_signup_page_{rec.id}"))
    page = first if page_no == 1 else children(db(), rec.id, outreach.SIGNUP_FORM,
                                                ListQuery(page=page_no, page_size=SIGNUP_PAGE_SIZE), actor=who)
    st.caption(t("event.signup_count", n=first.total))
    lists = choice_lists(db())
    keys = ["name", "phone", "village_community", "group", "topic", "referred_to_application"]
    fields = [f for f in (spec.field(k) for k in keys) if f is not None]
    rows = []
    with display_lists(lists):
        for sub in page.items:
            row = {}
            for f in fields:
                row[ltext(f.label, lg) or f.key] = display_value(f, sub.data.get(f.key), lg, reveal=reveal,
                                                                 choice_lists=lists)
            row[t("event.col_time")] = local_time(sub.created_at)
            rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if not may_reveal(who, spec) or reveal:
        return
    with st.container(border=True, key="event_reveal"):
        reason = st.text_input(t("event.reveal_reason"), key=f"event_reveal_reason_{rec.id}")
        if st.button(t("event.reveal"), key=f"event_reveal_btn_{rec.id}", icon=":material/visibility:"):
            if not reason.strip():
                st.error(t("event.reveal_need_reason"))
                return
            with session_scope(db()) as session:
                audit.record(session, who, "reveal", "submission", rec.id, form_slug=outreach.SIGNUP_FORM, detail={
                    "fields": ["phone"], "reason": reason.strip()[:500], "parent_id": rec.id,
                    "ids": [int(s.id) for s in page.items],
                })
            revealed_ids.add(rec.id)
            st.rerun()


# --- campaign / period ---------------------------------------------------------------------------
def _campaign_section() -> None:
    lg = lang()
    st.subheader(t("event.campaign_title"), divider="gray")
    today = datetime.now(LOCAL_TZ).date()
    cols = st.columns(2)
    picked = cols[0].date_input(t("event.period"), value=(date(today.year, 1, 1), today), key="event_period",
                                format="YYYY-MM-DD")
    try:
        names = outreach.campaigns(db())
    except EngineError:
        names = []
    campaign = cols[1].selectbox(t("event.campaign"), [""] + names, key="event_campaign",
                                 format_func=lambda v: v or t("event.all_campaigns"))
    if not isinstance(picked, tuple | list) or len(picked) != 2:
        st.caption(t("event.pick_period"))
        return
    date_from, date_to = picked
    try:
        s = outreach.campaign_summary(db(), date_from, date_to, campaign or None)
    except EngineError as exc:
        st.error(error_text(exc))
        return
    st.markdown(f"**{md_escape(s.headline(lg))}**")
    with st.container(key="event_campaign_totals"):
        metrics = [(t("event.events"), s.events)]
        metrics += [(ltext(label, lg) or key, s.total(key)) for key, label in s.counter_labels.items()]
        metrics.append((t("event.signups"), s.signups))
        for start in range(0, len(metrics), 3):
            row = st.columns(3)
            for col, (label, value) in zip(row, metrics[start:start + 3], strict=False):
                col.metric(label, value, border=True)
    if not s.events:
        return
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{t('event.by_target')}**")
        st.dataframe(pd.DataFrame({
            t("event.col_target"): [s.group_label(k, lg) for k in s.by_target_group],
            t("event.events"): list(s.by_target_group.values()),
        }), hide_index=True)
    with right:
        st.markdown(f"**{t('event.by_point')}**")
        st.dataframe(pd.DataFrame({
            t("event.col_point"): [s.point_label(k, lg) for k in s.by_liaison_point],
            t("event.events"): list(s.by_liaison_point.values()),
        }), hide_index=True)
