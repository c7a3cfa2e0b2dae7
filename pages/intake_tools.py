"""Legal-aid intake tools (thin: every decision is made in the engine).

- `render_intake_panel(record)`: on an intake record's page — its application number, the eligibility
  screen (criteria with pass / fail / n.a. and reasons, the proposal, the staff decision: a reason is
  required against the proposal), the conflict and duplicate check (confirm / clear each match with a
  reason), the statutory deadlines with overdue marks, and the notice PDFs to download.
- `render_deadlines_page()`: overdue and due-soon deadlines, the user's own and (managers) everyone's.
- `render_deadline_summary()`: a few lines for the home page.
- `render_notice_templates()`: the admin's editor of the notice templates (placeholders checked).
- `render_intake_settings()`: the admin's settings page: office profile, eligibility thresholds per
  city and year, application-number patterns, holiday calendar, and the notice templates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import streamlit as st

from engine.errors import EngineError, PermissionDenied
from models.spec import ltext
from ui.i18n import t
from ui.state import actor, db, lang
from ui.widgets import md_escape

BADGES = {"pass": "green", "fail": "red", "na": "gray"}
KIND_BADGES = {"conflict": "red", "duplicate": "orange", "previous": "gray"}


def _outcome(outcome: str) -> str:
    return f":{BADGES.get(outcome, 'gray')}-badge[{t(f'intake.outcome_{outcome}')}]"


def _when(value: Any) -> str:
    from ui.records_view import local_time

    return local_time(value)


def _day(value: date) -> str:
    return value.isoformat()


def _names(eng: Any) -> dict[str, str]:
    from ui.records_view import user_names

    return user_names(eng)


# =====================================================================================================
# The panel on a record
# =====================================================================================================
def render_intake_panel(record: Any) -> None:
    """The intake tools of one record (engine.storage.Record). Other forms: nothing."""
    from engine.eligibility import INTAKE

    if getattr(record, "slug", None) != INTAKE or record.deleted:
        return
    eng, who, lg = db(), actor(), lang()
    st.subheader(t("intake.panel_title"), divider="gray")
    _number(record)
    tabs = st.tabs([t("intake.tab_eligibility"), t("intake.tab_conflicts"), t("intake.tab_deadlines"),
                    t("intake.tab_notices")])
    with tabs[0]:
        _eligibility(eng, who, lg, record)
    with tabs[1]:
        _conflicts(eng, who, lg, record)
    with tabs[2]:
        _deadlines(eng, lg, record)
    with tabs[3]:
        _notices(eng, who, lg, record)


def _number(record: Any) -> None:
    number = record.submission.number
    if number:
        st.markdown(t("intake.number", number=md_escape(number)))
    else:
        st.caption(t("intake.no_number"))


def _may_edit(eng: Any, who: Any) -> bool:
    from engine.access import form_allows
    from engine.eligibility import INTAKE
    from engine.forms import get_spec

    return form_allows(who, get_spec(eng, INTAKE), "edit")


def _save(base: str, lg: str, done: str, action: Callable[[], Any]) -> bool:
    """Run a save; flash `done` or the engine's message under `base` on the next run (which starts now).
    True when it saved (for a caller that clears its inputs first)."""
    try:
        action()
    except EngineError as exc:
        st.session_state[f"{base}__error"] = exc.message(lg)
        saved = False
    else:
        st.session_state[f"{base}__ok"] = done
        saved = True
    return saved


def _flash(base: str) -> None:
    ok = st.session_state.pop(f"{base}__ok", None)
    if ok:
        st.success(md_escape(ok), icon=":material/check_circle:")
    bad = st.session_state.pop(f"{base}__error", None)
    if bad:
        st.error(md_escape(bad), icon=":material/error:")


# --- eligibility -----------------------------------------------------------------------------------
def _eligibility(eng: Any, who: Any, lg: str, record: Any) -> None:
    from engine.eligibility import PROPOSAL_LABELS, latest_decision, record_decision, screen_submission

    base = f"intake__{record.id}__elig"
    _flash(base)
    result = screen_submission(eng, record.submission, spec=record.spec)
    rows = [f"| {t('intake.criterion')} | {t('intake.outcome')} | {t('intake.reason')} |", "|---|---|---|"]
    for c in result.criteria:
        rows.append(f"| {md_escape(c.label_in(lg))} | {_outcome(c.outcome)} | "
                    f"{md_escape(c.reason_in(lg))} |")
    st.markdown("\n".join(rows))
    proposal = ltext(PROPOSAL_LABELS[result.proposal], lg)
    st.markdown(t("intake.proposal", proposal=f":{'green' if result.proposal == 'grant' else 'red'}-badge[{proposal}]"))
    if result.mandatory:
        st.caption(t("intake.mandatory"))
    if result.grounds:
        st.markdown(t("intake.grounds") + "\n" + "\n".join("- " + md_escape(ltext(g, lg)) for g in result.grounds))
    for note in result.notes:
        st.info(md_escape(ltext(note, lg)), icon=":material/info:")
    if "economic" in result.undetermined:
        st.warning(t("intake.threshold_missing"), icon=":material/warning:")
    latest = latest_decision(eng, record.id)
    names = _names(eng)
    if latest is not None:
        text = t("intake.decided", outcome=ltext(PROPOSAL_LABELS.get(latest.outcome, {}), lg) or latest.outcome,
                 by=md_escape(names.get(latest.username, latest.username)), at=_when(latest.at))
        if latest.reason:
            text += "  \n" + t("intake.decided_reason", reason=md_escape(latest.reason))
        if (latest.data or {}).get("against_proposal"):
            text += " " + ":orange-badge[" + t("intake.against") + "]"
        st.markdown(text)
        if (latest.data or {}).get("proposal") not in (None, result.proposal):
            st.warning(t("intake.decision_stale"), icon=":material/update:")
    if not _may_edit(eng, who):
        return
    with st.form(f"{base}__form", border=True):
        options = ["grant", "refuse"]
        choice = st.radio(t("intake.decision"), options, index=options.index(result.proposal), horizontal=True,
                          format_func=lambda k: ltext(PROPOSAL_LABELS[k], lg), key=f"{base}__choice")
        reason = st.text_area(t("intake.decision_reason"), key=f"{base}__reason",
                              placeholder=t("intake.decision_reason_hint"))
        submitted = st.form_submit_button(t("intake.record_decision"), type="primary")
    if submitted:
        _save(base, lg, t("intake.decision_saved"), lambda: record_decision(eng, record.id, choice, reason, who))
        st.rerun()


# --- conflicts -------------------------------------------------------------------------------------
def _conflict_status(eng: Any, record: Any) -> Any:
    """engine.conflicts.status, kept in the session until any intake record changes."""
    from engine import stamps
    from engine.conflicts import status
    from engine.eligibility import INTAKE

    stamp = stamps.current(eng, stamps.data_scope(INTAKE))
    key = f"intake__{record.id}__conf_cache"
    cached = st.session_state.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    found = status(eng, record.id)
    st.session_state[key] = (stamp, found)
    return found


def _conflicts(eng: Any, who: Any, lg: str, record: Any) -> None:
    from engine.conflicts import CLEARED, CONFIRMED, decide
    from engine.workflow import state_label
    from ui.records_view import record_link

    base = f"intake__{record.id}__conf"
    _flash(base)
    found = _conflict_status(eng, record)
    if found.reset:
        st.warning(t("intake.conflicts_reset", n=found.reset), icon=":material/restart_alt:")
    if not found.matches:
        st.success(t("intake.no_conflicts"), icon=":material/verified_user:")
        return
    open_count = len(found.open)
    st.markdown(t("intake.conflicts_summary", n=len(found.matches), open=open_count))
    names = _names(eng)
    editable = _may_edit(eng, who)
    for i, ms in enumerate(found.matches):
        m = ms.match
        with st.container(border=True):
            head = [f":{KIND_BADGES[m.kind]}-badge[{t(f'intake.kind_{m.kind}')}]",
                    t(f"intake.strength_{m.strength}"), t(f"intake.basis_{m.basis}")]
            st.markdown(" · ".join(head))
            st.markdown(t("intake.match_line", our_role=t(f"intake.role_{m.our_role}"), our=md_escape(m.our_name),
                          their_role=t(f"intake.role_{m.their_role}"), their=md_escape(m.their_name),
                          state=md_escape(state_label(record.spec, m.other_state, lg))))
            record_link(record.slug, m.other_id, m.other_number or f"#{m.other_id}")
            if ms.decision is not None:
                d = ms.decision
                st.markdown(t("intake.match_decided", outcome=t(f"intake.outcome_{d.outcome}"),
                              by=md_escape(names.get(d.username, d.username)), at=_when(d.at),
                              reason=md_escape(d.reason)))
            if not editable:
                continue
            reason = st.text_input(t("intake.match_reason"), key=f"{base}__{i}__reason",
                                   placeholder=t("intake.match_reason_hint"))
            cols = st.columns(2)
            clicked = None
            if cols[0].button(t("intake.confirm"), key=f"{base}__{i}__confirm", icon=":material/report:"):
                clicked = CONFIRMED
            if cols[1].button(t("intake.clear"), key=f"{base}__{i}__clear", icon=":material/done:"):
                clicked = CLEARED
            if clicked is not None:
                if _save(base, lg, t("intake.match_saved"),
                         lambda m=m, c=clicked, r=reason: decide(eng, record.id, m.key, c, r, who)):
                    st.session_state.pop(f"{base}__{i}__reason", None)
                st.rerun()


# --- deadlines -------------------------------------------------------------------------------------
def _deadline_line(d: Any, lg: str) -> str:
    parts = [f"**{md_escape(d.label_in(lg))}**", t("intake.due_on", day=_day(d.due_date))]
    if d.met_at is not None:
        parts.append(t("intake.met_at", at=_when(d.met_at)))
        if d.late:
            parts.append(":orange-badge[" + t("intake.late") + "]")
    elif d.paused:
        parts.append(":gray-badge[" + t("intake.paused") + "]")
    elif d.overdue:
        parts.append(":red-badge[" + t("intake.overdue") + "]")
    elif d.due_soon:
        parts.append(":orange-badge[" + t("intake.due_soon") + "]")
    if d.paused_days:
        parts.append(t("intake.paused_days", n=d.paused_days))
    return " · ".join(parts)


def _deadlines(eng: Any, lg: str, record: Any) -> None:
    from engine.deadlines import deadlines

    found = deadlines(eng, record.id)
    if not found:
        st.caption(t("intake.no_deadlines"))
        return
    st.markdown("\n".join("- " + _deadline_line(d, lg) for d in found))
    st.caption(t("intake.deadline_rule"))


# --- notices ---------------------------------------------------------------------------------------
def _notices(eng: Any, who: Any, lg: str, record: Any) -> None:
    from engine.access import may_reveal
    from engine.forms import get_spec
    from engine.notices import available, notice_pdf

    why = st.session_state.get(f"record__{record.id}__revealed")  # the reason given on the records page
    reveal = bool(why) and may_reveal(who, get_spec(eng, record.slug))
    why = why if isinstance(why, str) else None
    st.caption(t("intake.notices_revealed") if reveal else t("intake.notices_masked"))
    kinds = available(eng, record.submission)
    cols = st.columns(min(3, max(1, len(kinds))))
    stem = record.submission.number or f"{record.id}"
    for i, kind in enumerate(kinds):
        def make(k: str = kind.key) -> bytes:
            return notice_pdf(eng, record.id, k, actor=who, reveal=reveal, reason=why)

        cols[i % len(cols)].download_button(
            ltext(kind.label, lg), data=make, file_name=f"{ltext(kind.label, 'zh')}-{stem}.pdf",
            mime="application/pdf", key=f"intake__{record.id}__notice__{kind.key}", icon=":material/picture_as_pdf:",
            on_click="ignore")


# =====================================================================================================
# Deadlines page
# =====================================================================================================
def _deny(message: str) -> None:
    st.error(message, icon=":material/block:")
    st.stop()


def _who() -> Any:
    try:
        return actor()
    except PermissionDenied:
        _deny(t("intake.login_required"))
        raise


def _due_table(items: list[Any], lg: str, names: dict[str, str]) -> None:
    from engine.eligibility import INTAKE
    from ui.records_view import record_link

    if not items:
        st.caption(t("intake.none"))
        return
    for it in items:
        d = it.deadline
        cols = st.columns([3, 5], vertical_alignment="center")
        with cols[0]:
            record_link(INTAKE, it.sub_id, f"{it.number or '#' + str(it.sub_id)} {it.name}")
        cols[1].markdown(_deadline_line(d, lg) + " · " + t("intake.by", name=md_escape(
            names.get(it.created_by, it.created_by))))


def render_deadlines_page() -> None:
    """Overdue and due-soon statutory deadlines: mine, and (roles that see all records) everyone's."""
    from engine.deadlines import overdue_and_due_soon

    who = _who()
    if not who.can("workflow"):
        _deny(t("intake.forbidden"))
    eng, lg = db(), lang()
    st.title(t("intake.deadlines_title"))
    st.caption(t("intake.deadline_rule"))
    lists = overdue_and_due_soon(eng, actor=who)
    names = _names(eng)
    st.subheader(t("intake.mine"), divider="gray")
    st.markdown("**" + t("intake.overdue_n", n=len(lists.mine_overdue)) + "**")
    _due_table(lists.mine_overdue, lg, names)
    st.markdown("**" + t("intake.due_soon_n", n=len(lists.mine_due_soon)) + "**")
    _due_table(lists.mine_due_soon, lg, names)
    if lists.manager:
        st.subheader(t("intake.everyone"), divider="gray")
        st.markdown("**" + t("intake.overdue_n", n=len(lists.all_overdue)) + "**")
        _due_table(lists.all_overdue, lg, names)
        st.markdown("**" + t("intake.due_soon_n", n=len(lists.all_due_soon)) + "**")
        _due_table(lists.all_due_soon, lg, names)


def render_deadline_summary() -> None:
    """Two counts for the home page (nothing for roles without the workflow ability)."""
    from engine.deadlines import overdue_and_due_soon

    try:
        who = actor()
    except PermissionDenied:
        return
    if not who.can("workflow"):
        return
    lists = overdue_and_due_soon(db(), actor=who)
    over = lists.all_overdue if lists.manager else lists.mine_overdue
    soon = lists.all_due_soon if lists.manager else lists.mine_due_soon
    if over:
        st.error(t("intake.summary_overdue", n=len(over)), icon=":material/alarm:")
    if soon:
        st.warning(t("intake.summary_due_soon", n=len(soon)), icon=":material/schedule:")


# =====================================================================================================
# Admin: notice templates and intake settings
# =====================================================================================================
def _admin() -> Any:
    who = _who()
    if not who.can("settings"):
        _deny(t("intake.forbidden"))
    return who


def render_notice_templates() -> None:
    """Edit the notice templates (text with placeholders); reset to the built-in text."""
    who = _admin()
    st.title(t("intake.templates_title"))
    _templates(db(), who, lang())


def _templates(eng: Any, who: Any, lg: str) -> None:
    from engine.notices import KINDS, PLACEHOLDERS, reset_template, save_template, template_text

    base = "intake__templates"
    _flash(base)
    kind = st.selectbox(t("intake.template_kind"), list(KINDS), format_func=lambda k: ltext(KINDS[k].label, lg),
                        key=f"{base}__kind")
    text, custom = template_text(eng, kind)
    st.caption(t("intake.template_custom") if custom else t("intake.template_default"))
    area_key = f"{base}__text__{kind}"
    edited = st.text_area(t("intake.template_text"), value=text, height=360, key=area_key)
    cols = st.columns([1, 1, 3])
    if cols[0].button(t("intake.save"), key=f"{base}__save", type="primary", icon=":material/save:"):
        _save(base, lg, t("intake.template_saved"), lambda: save_template(eng, kind, edited, actor=who))
        st.rerun()
    if custom and cols[1].button(t("intake.reset"), key=f"{base}__reset", icon=":material/restart_alt:"):
        reset_template(eng, kind, actor=who)
        st.session_state.pop(area_key, None)
        st.session_state[f"{base}__ok"] = t("intake.template_reset_done")
        st.rerun()
    with st.expander(t("intake.placeholders"), icon=":material/data_object:"):
        st.markdown("\n".join(f"- `{{{k}}}` {md_escape(ltext(v, lg))}" for k, v in PLACEHOLDERS.items()))
        st.markdown(t("intake.template_syntax"))


def render_intake_settings() -> None:
    """Office profile, thresholds, number patterns, holiday calendar and notice templates (admins)."""
    who = _admin()
    eng, lg = db(), lang()
    st.title(t("intake.settings_title"))
    tabs = st.tabs([t("intake.tab_office"), t("intake.tab_thresholds"), t("intake.tab_numbers"),
                    t("intake.tab_calendar"), t("intake.tab_templates")])
    with tabs[0]:
        _office(eng, who, lg)
    with tabs[1]:
        _thresholds(eng, who, lg)
    with tabs[2]:
        _patterns(eng, who, lg)
    with tabs[3]:
        _calendar(eng, who, lg)
    with tabs[4]:
        _templates(eng, who, lg)


def _office(eng: Any, who: Any, lg: str) -> None:
    from engine.eligibility import office, set_office
    from engine.pdf import office_name

    base = "intake__office"
    _flash(base)
    current = office(eng)
    st.caption(t("intake.office_name_is", name=md_escape(office_name(eng))))
    with st.form(f"{base}__form"):
        city = st.text_input(t("intake.city"), value=current["city"])
        bureau = st.text_input(t("intake.justice_bureau"), value=current["justice_bureau"])
        address = st.text_input(t("intake.address"), value=current["address"])
        phone = st.text_input(t("intake.phone"), value=current["phone"])
        days = st.number_input(t("intake.materials_days"), min_value=1, max_value=90,
                               value=int(current["materials_days"]))
        if st.form_submit_button(t("intake.save"), type="primary"):
            _save(base, lg, t("intake.saved"), lambda: set_office(eng, {
                "city": city, "justice_bureau": bureau, "address": address, "phone": phone,
                "materials_days": int(days)}, actor=who))
            st.rerun()


def _thresholds(eng: Any, who: Any, lg: str) -> None:
    from engine.eligibility import list_thresholds, office, set_threshold_from_input

    base = "intake__thresholds"
    _flash(base)
    st.caption(t("intake.threshold_help"))
    rows = list_thresholds(eng)
    if rows:
        lines = [f"| {t('intake.city')} | {t('intake.year')} | {t('intake.threshold')} | {t('intake.basis')} |",
                 "|---|---|---|---|"]
        lines += [f"| {md_escape(r.city)} | {r.year} | {r.threshold} | {md_escape(r.basis)} |" for r in rows]
        st.markdown("\n".join(lines))
    else:
        st.warning(t("intake.no_thresholds"), icon=":material/warning:")
    with st.form(f"{base}__form"):
        cols = st.columns(2)
        city = cols[0].text_input(t("intake.city"), value=office(eng)["city"])
        year = cols[1].number_input(t("intake.year"), min_value=2000, max_value=2100, value=date.today().year, step=1)
        annual = st.text_input(t("intake.urban_annual"), placeholder="51600")
        amount = st.text_input(t("intake.threshold"), placeholder="2150.00")
        basis = st.text_input(t("intake.basis"))
        if st.form_submit_button(t("intake.save"), type="primary"):
            _save(base, lg, t("intake.saved"), lambda: set_threshold_from_input(
                eng, city, int(year), amount=amount, urban_annual=annual, basis=basis, actor=who))
            st.rerun()


def _patterns(eng: Any, who: Any, lg: str) -> None:
    from engine.forms import list_forms
    from engine.numbering import pattern_info, preview, set_pattern

    base = "intake__patterns"
    _flash(base)
    st.caption(t("intake.pattern_help"))
    forms = {f.slug: f.label(lg) for f in list_forms(eng)}
    slug = st.selectbox(t("intake.form"), list(forms), format_func=lambda s: forms.get(s, s), key=f"{base}__slug",
                        index=list(forms).index("intake") if "intake" in forms else 0)
    if slug is None:
        return
    info = pattern_info(eng, slug)
    if info.pattern:
        st.markdown(t("intake.pattern_now", pattern=md_escape(info.pattern),
                      example=md_escape(preview(info.pattern, seq=sum(info.last.values()) + 1))))
    else:
        st.caption(t("intake.pattern_none"))
    with st.form(f"{base}__form"):
        pattern = st.text_input(t("intake.pattern"), value=info.pattern or "")
        cols = st.columns(2)
        save = cols[0].form_submit_button(t("intake.save"), type="primary")
        reset = cols[1].form_submit_button(t("intake.reset"))
    if save or reset:
        _save(base, lg, t("intake.saved"), lambda: set_pattern(eng, slug, None if reset else pattern, actor=who))
        st.rerun()


def _calendar(eng: Any, who: Any, lg: str) -> None:
    from engine.deadlines import calendar, parse_dates, set_calendar

    base = "intake__calendar"
    _flash(base)
    st.caption(t("intake.calendar_help"))
    cal = calendar(eng)
    with st.form(f"{base}__form"):
        holidays = st.text_area(t("intake.holidays"), value="\n".join(sorted(d.isoformat() for d in cal.holidays)))
        workdays = st.text_area(t("intake.workdays"), value="\n".join(sorted(d.isoformat() for d in cal.workdays)))
        if st.form_submit_button(t("intake.save"), type="primary"):
            _save(base, lg, t("intake.saved"),
                  lambda: set_calendar(eng, parse_dates(holidays), parse_dates(workdays), actor=who))
            st.rerun()
