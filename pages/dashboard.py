"""Dashboards: `render_dashboard()` (ability "dashboards"; forms the user may view).

One form at a time: records per month, a chart per dashboard dimension (the spec's `summary`), the
workflow funnel with overdue counts; filters for the date range, the liaison point (when the form
has one) and the creator. All numbers come from engine.dashboards (SQL aggregates, cached on the
database's change stamps), never from a loaded table.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from engine.errors import EngineError
from models.spec import ltext
from ui.auth import error_text, require_ability
from ui.i18n import t, translate
from ui.state import db, lang
from ui.widgets import md_escape


def _filters(engine, who, slug: str, spec, lg: str):
    from engine.dashboards import DashboardFilter, creators, liaison_field
    from engine.forms import choice_lists

    with st.expander(t("dashboard.filters"), expanded=False, icon=":material/filter_alt:"):
        cols = st.columns(4)
        lo = cols[0].date_input(t("dashboard.date_from"), value=None, key=f"dash_from_{slug}")
        hi = cols[1].date_input(t("dashboard.date_to"), value=None, key=f"dash_to_{slug}")
        point = None
        lf = liaison_field(spec)
        if lf is not None:
            items = choice_lists(engine).get(lf.choice_list or "", []) if lf.choice_list else []
            labels = {c.value: ltext(c.label, lg) or c.value for c in items}
            point = cols[2].selectbox(t("dashboard.liaison_point"), [None, *labels], key=f"dash_lp_{slug}",
                                      format_func=lambda v: translate("dashboard.all", lg) if v is None else labels.get(v, v))
        people = dict(creators(engine, slug, actor=who))
        creator = cols[3].selectbox(t("dashboard.created_by"), [None, *people], key=f"dash_by_{slug}",
                                    format_func=lambda v: translate("dashboard.all", lg) if v is None else people.get(v, v))
    if lo and hi and lo > hi:
        lo, hi = hi, lo
    return DashboardFilter(lo if isinstance(lo, date) else None, hi if isinstance(hi, date) else None,
                           point, creator)


def _records_link(slug: str, flt) -> str:
    params = {}
    if flt.date_from:
        params["date_from"] = flt.date_from.isoformat()
    if flt.date_to:
        params["date_to"] = flt.date_to.isoformat()
    if flt.liaison_point:
        params["f_liaison_point"] = flt.liaison_point
    return f"/{slug}-records" + (f"?{urlencode(params)}" if params else "")


def render_dashboard() -> None:
    """The dashboards page (st.Page target)."""
    from engine.dashboards import dashboard_forms, form_dashboard
    from engine.forms import get_spec

    who = require_ability("dashboards")
    lg = lang()
    engine = db()
    st.title(t("dashboard.title"))
    forms = dashboard_forms(engine, who)
    if not forms:
        st.info(t("dashboard.no_forms"))
        return
    titles = {slug: ltext(title, lg) or slug for slug, title in forms}
    wanted = st.query_params.get("form")
    index = list(titles).index(wanted) if wanted in titles else 0
    slug = st.selectbox(t("dashboard.form"), list(titles), index=index, format_func=titles.get, key="dash_form")
    spec = get_spec(engine, slug)
    flt = _filters(engine, who, slug, spec, lg)
    try:
        dash = form_dashboard(engine, slug, flt, actor=who)
    except EngineError as exc:
        st.error(error_text(exc))
        return

    cols = st.columns(3)
    cols[0].metric(t("dashboard.total"), f"{dash.total:,}", border=True)
    if dash.funnel:
        cols[1].metric(t("dashboard.open"), f"{dash.open:,}", border=True)
        cols[2].metric(t("dashboard.overdue"), f"{dash.overdue:,}", border=True,
                       delta=t("dashboard.needs_attention") if dash.overdue else None, delta_color="inverse",
                       delta_arrow="off")
    st.markdown(f"[{t('dashboard.open_records')}]({_records_link(slug, flt)})")
    basis = t("dashboard.by_created") if dash.date_basis == "created_at" else t(
        "dashboard.by_field", field=md_escape(ltext(spec.field(dash.date_basis).label, lg)
                                              if spec.field(dash.date_basis) else dash.date_basis))

    st.subheader(t("dashboard.per_month"))
    st.caption(basis)
    if dash.by_month:
        frame = pd.DataFrame({t("dashboard.records"): [n for _, n in dash.by_month]},
                             index=[m for m, _ in dash.by_month])
        st.line_chart(frame)
    else:
        st.caption(t("dashboard.no_data"))

    if dash.funnel:
        st.subheader(t("dashboard.funnel"))
        rows = [{t("dashboard.state"): ltext(s.label, lg) or s.state, t("dashboard.records"): s.count,
                 t("dashboard.overdue"): s.overdue} for s in dash.funnel]
        frame = pd.DataFrame({t("dashboard.records"): [s.count for s in dash.funnel]},
                             index=[ltext(s.label, lg) or s.state for s in dash.funnel])
        st.bar_chart(frame, horizontal=True, sort=False)
        st.dataframe(rows, hide_index=True, width="stretch")

    for b in dash.breakdowns:
        st.subheader(md_escape(ltext(b.label, lg) or b.key))
        data = b.rows(lg)
        if not any(n for _, n in data):
            st.caption(t("dashboard.no_data"))
            continue
        frame = pd.DataFrame({t("dashboard.records"): [n for _, n in data]}, index=[label for label, _ in data])
        st.bar_chart(frame, horizontal=True, sort=False)
        if b.truncated:
            st.caption(t("dashboard.truncated", n=len(data)))
