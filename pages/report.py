"""The year-end report: `render_report()` (ability "reports").

Pick a year or a range of years (or exact dates); every figure of engine.reports, compared with the
previous period, each linked to the records behind it (`/<slug>-records?state=..&date_from=..&f_<field>=..`,
shown only for forms the user may view); the PDF (engine.prints.report_pdf) is made when downloaded.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from engine.access import form_allows
from engine.errors import EngineError
from models.spec import ltext
from ui.auth import error_text, require_ability
from ui.i18n import t, translate
from ui.state import db, lang

FIRST_YEAR = 2000


def _period(lg: str) -> tuple[date, date, bool]:
    today = date.today()
    years = list(range(today.year, FIRST_YEAR - 1, -1))
    mode = st.radio(t("report.period"), ["year", "years", "dates"], horizontal=True, key="report_mode",
                    format_func=lambda m: translate(f"report.mode_{m}", lg))
    cols = st.columns(3)
    if mode == "dates":
        lo = cols[0].date_input(t("report.date_from"), value=date(today.year, 1, 1), key="report_from")
        hi = cols[1].date_input(t("report.date_to"), value=today, key="report_to")
    elif mode == "years":
        first = cols[0].selectbox(t("report.year_from"), years, index=min(3, len(years) - 1), key="report_y1")
        last = cols[1].selectbox(t("report.year_to"), years, index=1, key="report_y2")
        lo, hi = date(min(first, last), 1, 1), date(max(first, last), 12, 31)
    else:
        year = cols[0].selectbox(t("report.year"), years, index=1, key="report_year")
        lo, hi = date(year, 1, 1), date(year, 12, 31)
    compare = cols[2].checkbox(t("report.compare"), value=True, key="report_compare")
    return lo, hi, compare


def _viewable(engine, who) -> set[str]:
    from engine.forms import get_spec, list_forms

    return {f.slug for f in list_forms(engine) if form_allows(who, get_spec(engine, f.slug), "view")}


def render_report() -> None:
    """The year-end report page (st.Page target)."""
    from engine.prints import report_pdf
    from engine.reports import year_end_report

    who = require_ability("reports")
    lg = lang()
    engine = db()
    st.title(t("report.title"))
    st.caption(t("report.intro"))
    lo, hi, compare = _period(lg)
    try:
        report = year_end_report(engine, lo, hi, compare=compare)
    except EngineError as exc:
        st.error(error_text(exc))
        return
    st.subheader(t("report.heading", period=report.period_label(lg)))
    if report.previous_from:
        st.caption(t("report.compared_with", period=report.previous_label(lg)))
    top = st.columns(4)
    for col, key in zip(top, ("cases.accepted", "cases.closed", "outreach.events", "hearings.sessions"), strict=True):
        try:
            f = report.figure(key)
        except KeyError:
            continue
        delta = None if f.change is None else int(f.change)
        col.metric(f.label_for(lg), f"{f.value:,}" if f.value is not None else "—", delta=delta, border=True)

    visible = _viewable(engine, who)
    columns = {
        "label": st.column_config.TextColumn(t("report.col_item"), width="large"),
        "value": st.column_config.TextColumn(t("report.col_value")),
        "unit": st.column_config.TextColumn(t("report.col_unit"), width="small"),
        "previous": st.column_config.TextColumn(t("report.col_previous")),
        "change": st.column_config.TextColumn(t("report.col_change")),
        "url": st.column_config.LinkColumn(t("report.col_records"), display_text=t("report.open_records")),
    }
    rows = report.to_rows(lg)
    shown_columns = columns if compare else {k: v for k, v in columns.items() if k not in ("previous", "change")}
    for section in report.sections:
        title = ltext(section.title, lg)
        st.markdown(f"#### {title}")
        shown = []
        for row in (r for r in rows if r["section"] == title):
            slug = row["url"].split("?")[0].strip("/").removesuffix("-records") if row["url"] else ""
            shown.append({k: (row[k] if k != "url" or slug in visible else None) for k in shown_columns})
        st.dataframe(shown, hide_index=True, width="stretch", column_config=shown_columns)

    with st.expander(t("report.charts"), expanded=False):
        from engine.reports import CHARTS

        for name in CHARTS:
            title, bars = report.chart(name, lg)
            if bars:
                st.markdown(f"**{title}**")
                frame = pd.DataFrame({t("report.col_value"): [v for _, v in bars]}, index=[k for k, _ in bars])
                st.bar_chart(frame, horizontal=True)

    st.download_button(
        t("report.download_pdf"),
        data=lambda: report_pdf(report, lg),
        file_name=f"report-{lo.isoformat()}-{hi.isoformat()}.pdf",
        mime="application/pdf",
        icon=":material/picture_as_pdf:",
        key="report_pdf",
        on_click="ignore",
    )
