"""The records of one form: `render_records(slug)`.

Query params: none -> the list (paged, searched, filtered and sorted in SQL);
`id=<record id>` -> that record: its own form version, history, edit, workflow, children,
delete / restore (admins). A record the user may not view is refused, also when typed in the URL.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from engine.access import form_allows, may_reveal
from engine.errors import ConflictError, EngineError, NotFound, PermissionDenied, ValidationFailed
from models.spec import FieldSpec, FormSpec, ltext
from pages.intake_tools import render_intake_panel
from ui.i18n import t
from ui.render import forget_widgets, render_form
from ui.state import actor, db, lang
from ui.widgets import WidgetContext, choices_for, md_escape, render_widget

PAGE_SIZES = (20, 50, 100)
CHILD_ROWS = 20
_LIST_SKIP = {"note", "counter", "checklist", "textarea"}


def _deny(message: str) -> None:
    st.error(message, icon=":material/block:")
    st.stop()


def render_records(slug: str) -> None:
    """The records page of form `slug` (st.Page target): list, or one record with ?id=."""
    from engine.forms import get_spec

    lg = lang()
    try:
        who = actor()
    except PermissionDenied:
        _deny(t("records.login_required"))
        return
    eng = db()
    try:
        spec = get_spec(eng, slug)
    except NotFound:
        _deny(t("records.no_form"))
        return
    if not form_allows(who, spec, "view"):
        _deny(t("records.no_view", form=md_escape(ltext(spec.title, lg) or slug)))
        return
    wanted = st.query_params.get("id")
    if wanted:
        _detail(eng, who, lg, slug, spec, wanted)
    else:
        _list(eng, who, lg, slug, spec)


# =====================================================================================================
# The list
# =====================================================================================================
def list_fields(spec: FormSpec) -> list[FieldSpec]:
    """The list columns of a spec (list_columns, else the first 6 storing fields)."""
    if spec.list_columns:
        return [f for f in (spec.field(k) for k in spec.list_columns) if f is not None]
    return [f for f in spec.active_fields if f.type not in _LIST_SKIP][:6]


def filter_fields(spec: FormSpec) -> list[FieldSpec]:
    """Fields offered as filters: every select / multiselect (and choice-list reference) field."""
    return [
        f for f in spec.active_fields
        if (f.type in ("select", "multiselect") or (f.type == "reference" and f.choice_list)) and not f.sensitive
    ]


def _go(record_id: int | None) -> None:
    if record_id is None:
        st.query_params.pop("id", None)
    else:
        st.query_params["id"] = str(record_id)
    st.rerun()


def _list(eng: Any, who: Any, lg: str, slug: str, spec: FormSpec) -> None:
    from engine.fields import display_lists
    from engine.forms import choice_lists
    from engine.queries import ListQuery, list_records
    from engine.workflow import is_overdue, state_label
    from ui.records_view import cell_text, local_time, page_for, user_names

    title = ltext(spec.title, lg) or slug
    base = f"records__{slug}"
    head = st.columns([4, 1], vertical_alignment="bottom")
    head[0].title(t("records.title", form=md_escape(title)))
    if form_allows(who, spec, "submit") and not spec.parent:
        with head[1]:
            st.page_link(page_for("entry", slug, t("records.new")), label=t("records.new"), icon=":material/add:")

    lists = choice_lists(eng)
    names = user_names(eng)
    bar = st.columns([3, 2, 2])
    search = bar[0].text_input(t("records.search"), key=f"{base}__search", placeholder=t("records.search_hint"),
                               icon=":material/search:")
    state = None
    if spec.workflow is not None:
        states = [s.key for s in spec.workflow.states]
        state = bar[1].selectbox(t("records.state"), states, index=None, key=f"{base}__state",
                                 format_func=lambda k: state_label(spec, k, lg), placeholder=t("records.all"))
    sortable = _sort_options(spec, lg)
    sort = bar[2].selectbox(t("records.sort"), list(sortable), key=f"{base}__sort", format_func=sortable.get)

    filters: dict[str, Any] = {}
    with st.expander(t("records.filters"), icon=":material/filter_list:"):
        dates = st.columns(3)
        date_from = dates[0].date_input(t("records.date_from"), value=None, key=f"{base}__from",
                                        min_value=date(1900, 1, 1))
        date_to = dates[1].date_input(t("records.date_to"), value=None, key=f"{base}__to",
                                      min_value=date(1900, 1, 1))
        created_by = dates[2].selectbox(t("records.created_by"), list(names), index=None, key=f"{base}__by",
                                        format_func=lambda u: names.get(u, u), placeholder=t("records.all"))
        ff = filter_fields(spec)
        grid = st.columns(3) if ff else []
        ctx = WidgetContext(choice_lists=lists)
        for i, f in enumerate(ff):
            opts = {c.value: ltext(c.label, lg) or c.value for c in choices_for(f, ctx)}
            picked = grid[i % 3].multiselect(md_escape(ltext(f.label, lg) or f.key), list(opts),
                                             key=f"{base}__f__{f.key}", format_func=lambda v, o=opts: o.get(v, v),
                                             placeholder=t("records.all"))
            if picked:
                filters[f.key] = picked
        include_deleted = False
        if who.can("records.delete"):
            include_deleted = st.toggle(t("records.include_deleted"), key=f"{base}__deleted")
    size_cols = st.columns([2, 2, 2, 4], vertical_alignment="bottom")
    desc = size_cols[0].toggle(t("records.desc"), value=True, key=f"{base}__desc")
    page_size = size_cols[1].selectbox(t("records.page_size"), PAGE_SIZES, key=f"{base}__size")

    signature = (search, state, sort, desc, page_size, date_from, date_to, created_by, repr(sorted(filters.items())),
                 include_deleted)
    page_key = f"{base}__page"
    if st.session_state.get(f"{base}__sig") != signature:
        st.session_state[f"{base}__sig"] = signature
        st.session_state[page_key] = 1
    page_no = size_cols[2].number_input(t("records.page"), min_value=1, step=1, key=page_key)

    query = ListQuery(page=int(page_no), page_size=int(page_size), search=search.strip() or None, state=state,
                      date_from=date_from, date_to=date_to, created_by=created_by, filters=filters, sort=sort,
                      desc=bool(desc), include_deleted=include_deleted)
    try:
        result = list_records(eng, slug, query, actor=who)
        if result.total and not result.items and query.page > result.pages:
            query.page = result.pages
            result = list_records(eng, slug, query, actor=who)
    except EngineError as exc:
        st.error(md_escape(exc.message(lg)))
        return
    size_cols[3].caption(t("records.count", n=result.total, page=query.page, pages=result.pages))
    if not result.items:
        st.info(t("records.empty"))
        return

    columns = list_fields(spec)
    rows = []
    with display_lists(lists):
        for sub in result.items:
            row: dict[str, Any] = {t("records.col_number"): sub.number or f"#{sub.id}"}
            for f in columns:
                row[ltext(f.label, lg) or f.key] = cell_text(f, sub.data.get(f.key), lg, choice_lists=lists)
            if spec.workflow is not None:
                mark = f" ({t('workflow.overdue')})" if is_overdue(sub) else ""
                row[t("records.col_state")] = state_label(spec, sub.state, lg) + mark
            row[t("records.col_created_by")] = names.get(sub.created_by, sub.created_by)
            row[t("records.col_created_at")] = local_time(sub.created_at)
            if sub.deleted_at is not None:
                row[t("records.col_deleted")] = t("records.deleted_mark")
            rows.append(row)
    frame = pd.DataFrame(rows)
    ids = [int(sub.id) for sub in result.items]
    table_key = f"{base}__table"
    event = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="single-row", key=table_key)
    chosen = getattr(getattr(event, "selection", None), "rows", None) or []
    if chosen:
        st.session_state.pop(table_key, None)
        _go(ids[chosen[0]])
    labels = {int(sub.id): f"{sub.number or '#' + str(sub.id)}" for sub in result.items}
    opened = st.selectbox(t("records.open"), ids, index=None, key=f"{base}__open",
                          format_func=lambda i: labels.get(i, f"#{i}"), placeholder=t("records.open_hint"))
    if opened is not None:
        st.session_state.pop(f"{base}__open", None)
        _go(int(opened))


def _sort_options(spec: FormSpec, lg: str) -> dict[str, str]:
    out = {"id": t("records.sort_newest"), "created_at": t("records.sort_created"),
           "updated_at": t("records.sort_updated")}
    if spec.workflow is not None:
        out["state"] = t("records.state")
    for f in list_fields(spec):
        if not f.sensitive and f.type not in _LIST_SKIP and f.key not in out:
            out[f.key] = ltext(f.label, lg) or f.key
    return out


# =====================================================================================================
# One record
# =====================================================================================================
def _detail(eng: Any, who: Any, lg: str, slug: str, spec: FormSpec, wanted: str) -> None:
    from engine.storage import get_record

    if st.button(t("records.back"), icon=":material/arrow_back:", key=f"records__{slug}__back"):
        _go(None)
    try:
        rec = get_record(eng, int(wanted), actor=who)
    except (ValueError, NotFound, PermissionDenied):
        st.error(t("records.not_found"), icon=":material/block:")
        _unsaved_edit(lg, spec, wanted)
        return
    if rec.slug != slug:
        st.error(t("records.not_found"), icon=":material/block:")
        return
    base = f"record__{rec.id}"
    revealed = bool(st.session_state.get(f"{base}__revealed")) and may_reveal(who, spec)
    view_spec = rec.edit_spec
    _header(eng, lg, rec, view_spec, revealed)
    flash = st.session_state.pop(f"{base}__flash", None)
    if flash:
        st.success(md_escape(flash), icon=":material/check_circle:")
    if rec.deleted:
        _deleted_banner(eng, who, lg, rec)
    _workflow_panel(eng, who, lg, rec)
    render_intake_panel(rec)  # eligibility, conflicts, number, deadlines, notices (intake only)
    editing = (st.session_state.get(f"{base}__edit") is not None and not rec.deleted
               and _may_edit(who, _current_spec(eng, slug), rec.submission))  # never for a replayed edit state
    if editing:
        _edit_form(slug, rec.id)
    else:
        _view(eng, who, lg, rec, view_spec, revealed)
    _children(eng, who, lg, rec)
    _history(eng, lg, rec)
    if who.can("records.delete") and not rec.deleted:
        _delete_controls(eng, who, lg, rec)


def _safe_title(spec: FormSpec, sub: Any, lg: str, revealed: bool) -> str:
    from ui.records_view import display_value

    head = sub.number or f"#{sub.id}"
    f = spec.field(spec.title_field) if spec.title_field else None
    if f is None:
        return str(head)
    text = display_value(f, sub.data.get(f.key), lg, reveal=revealed)
    return f"{head} {text}" if text else str(head)


def _header(eng: Any, lg: str, rec: Any, view_spec: FormSpec, revealed: bool) -> None:
    from ui.records_view import local_time, user_names

    sub = rec.submission
    names = user_names(eng)
    st.title(md_escape(_safe_title(view_spec, sub, lg, revealed)))
    version = t("records.version", v=rec.version)
    if rec.outdated:
        version += " " + t("records.version_current", v=rec.current_version)
    st.caption(" · ".join([
        md_escape(ltext(view_spec.title, lg) or rec.slug),
        version,
        t("records.created", by=md_escape(names.get(sub.created_by, sub.created_by)), at=local_time(sub.created_at)),
        t("records.updated", by=md_escape(names.get(sub.updated_by, sub.updated_by)), at=local_time(sub.updated_at)),
    ]))


def _sensitive_with_values(spec: FormSpec, data: dict) -> list[FieldSpec]:
    from engine.fields import is_empty

    return [f for f in spec.fields if f.sensitive and not is_empty(data.get(f.key))]


def _view(eng: Any, who: Any, lg: str, rec: Any, view_spec: FormSpec, revealed: bool) -> None:
    from engine.fields import display_lists
    from engine.forms import choice_lists
    from ui.records_view import render_record

    base = f"record__{rec.id}"
    lists = choice_lists(eng)
    with st.container(border=True), display_lists(lists):
        render_record(view_spec, rec.data, lg, reveal=revealed, choice_lists=lists, counters=_totals(eng, rec))
    cols = st.columns([1, 1, 2])
    current_spec = _current_spec(eng, rec.slug)
    if not rec.deleted and _may_edit(who, current_spec, rec.submission) and cols[0].button(
        t("records.edit"), key=f"{base}__edit_btn", icon=":material/edit:", type="primary"
    ):
        _start_edit(rec)
        st.rerun()
    sensitive = _sensitive_with_values(view_spec, rec.data)
    if not sensitive or not may_reveal(who, current_spec):
        return
    if revealed:
        if cols[1].button(t("records.hide"), key=f"{base}__hide", icon=":material/visibility_off:"):
            st.session_state.pop(f"{base}__revealed", None)
            st.rerun()
        return
    with st.container(border=True):
        reason = st.text_input(t("records.reveal_reason"), key=f"{base}__reveal_reason",
                               placeholder=t("records.reveal_reason_hint"))
        if st.button(t("records.reveal"), key=f"{base}__reveal", icon=":material/visibility:"):
            if not reason.strip():
                st.error(t("records.reveal_need_reason"))
                return
            _log_reveal(eng, who, rec, [f.key for f in sensitive], reason.strip())
            st.session_state[f"{base}__revealed"] = reason.strip()  # truthy; the notices' audit reuses it
            st.rerun()


def _totals(eng: Any, rec: Any) -> dict[str, int]:
    """Tally totals of an event record's counters (SUM in SQL)."""
    if not rec.spec.counters:
        return {}
    from engine.tally import totals

    return totals(eng, rec.id)


def _log_reveal(eng: Any, who: Any, rec: Any, keys: list[str], reason: str) -> None:
    from engine import audit
    from engine.db import session_scope

    with session_scope(eng) as session:
        audit.record(session, who, "reveal", "submission", rec.id, form_slug=rec.slug,
                     detail={"fields": keys, "reason": reason[:500]})


def _current_spec(eng: Any, slug: str) -> FormSpec:
    from engine.forms import get_spec

    return get_spec(eng, slug)


def _may_edit(who: Any, current_spec: FormSpec, sub: Any) -> bool:
    return form_allows(who, current_spec, "edit") and (sub.created_by == who.username or who.can("records.all"))


# --- edit --------------------------------------------------------------------------------------------
def _start_edit(rec: Any) -> None:
    base = f"record__{rec.id}"
    generation = int(st.session_state.get(f"{base}__gen", 0)) + 1
    st.session_state[f"{base}__gen"] = generation
    st.session_state[f"{base}__edit"] = {"revision": rec.submission.revision, "data": dict(rec.data)}
    st.session_state.pop(f"{base}__errors", None)
    st.session_state.pop(f"{base}__conflict", None)


def _unsaved_edit(lg: str, spec: FormSpec, wanted: str) -> None:
    """The record went away (deleted) while this user was editing it: show what they had typed and
    not saved, so that it is not silently lost (kept until they leave the record)."""
    from engine.fields import is_empty
    from ui.render import live_values

    try:
        base = f"record__{int(wanted)}"
    except ValueError:
        return
    snapshot = st.session_state.get(f"{base}__edit")
    if snapshot is None:
        return
    stored = snapshot["data"]
    live = live_values(spec, stored, f"{base}__form{st.session_state.get(f'{base}__gen', 0)}")
    typed = {k: v for k, v in live.items() if v != stored.get(k) and not is_empty(v)}
    unsaved = st.session_state.setdefault(f"{base}__unsaved", {})
    unsaved.update(typed)
    if not unsaved:
        return
    st.warning(t("records.unsaved_edit"), icon=":material/content_copy:")
    for key, value in unsaved.items():
        f = spec.field(key)
        st.markdown(f"**{md_escape((ltext(f.label, lg) if f else '') or key)}**")
        st.code("、".join(map(str, value)) if isinstance(value, list) else str(value), language=None)


def _stop_edit(record_id: int) -> None:
    base = f"record__{record_id}"
    forget_widgets(f"{base}__form{st.session_state.get(f'{base}__gen', 0)}")
    for suffix in ("edit", "errors", "conflict"):
        st.session_state.pop(f"{base}__{suffix}", None)


@st.fragment
def _edit_form(slug: str, record_id: int) -> None:
    """The edit form (same renderer as entry), prefilled from the record as it was when editing began."""
    from engine.forms import choice_lists
    from engine.storage import get_record, update
    from ui.records_view import local_time, user_names

    eng, who, lg = db(), actor(), lang()
    base = f"record__{record_id}"
    snapshot = st.session_state.get(f"{base}__edit")
    if snapshot is None:
        return
    try:
        rec = get_record(eng, record_id, actor=who)
    except (NotFound, PermissionDenied):  # deleted while being edited: the whole page says so
        st.rerun(scope="app")
    spec = rec.edit_spec
    current_spec = _current_spec(eng, slug)
    protected = {}
    revealed = bool(st.session_state.get(f"{base}__revealed")) and may_reveal(who, current_spec)
    if not revealed:  # cleartext only after an audited reveal, and never for roles that may not reveal
        from ui.records_view import display_value

        protected = {f.key: display_value(f, snapshot["data"].get(f.key), lg, reveal=False)
                     for f in _sensitive_with_values(spec, snapshot["data"])}
    prefix = f"{base}__form{st.session_state.get(f'{base}__gen', 0)}"
    errors = st.session_state.get(f"{base}__errors") or {}
    st.subheader(t("records.editing"))
    conflict = st.session_state.get(f"{base}__conflict")
    if conflict:
        st.error(t("records.conflict", by=md_escape(conflict["by"]), at=conflict["at"]), icon=":material/sync_problem:")
        if st.button(t("records.reload"), key=f"{prefix}__reload", icon=":material/refresh:"):
            _stop_edit(record_id)
            _start_edit(get_record(eng, record_id, actor=who))
            st.rerun()
    raw = render_form(spec, snapshot["data"], errors, prefix, lg, choice_lists(eng), engine=eng, actor=who,
                      protected=protected)
    if errors:
        st.error(t("records.fix_errors", n=len(errors)), icon=":material/warning:")
    cols = st.columns(2)
    save = cols[0].button(t("records.save"), key=f"{prefix}__save", type="primary", icon=":material/save:",
                          width="stretch", disabled=bool(conflict))
    if cols[1].button(t("records.cancel"), key=f"{prefix}__cancel", width="stretch"):
        _stop_edit(record_id)
        st.rerun()
    if not save:
        return
    try:
        update(eng, record_id, raw, actor=who, revision=int(snapshot["revision"]))
    except ValidationFailed as exc:
        st.session_state[f"{base}__errors"] = dict(exc.errors)
        st.rerun()
    except ConflictError as exc:
        try:
            latest = get_record(eng, record_id, actor=who).submission
        except (NotFound, PermissionDenied):  # e.g. deleted meanwhile: hidden from this role
            latest = None
        by = (latest.deleted_by or latest.updated_by) if latest is not None else str(exc.params.get("by") or "?")
        at = (latest.deleted_at or latest.updated_at) if latest is not None else None
        st.session_state[f"{base}__conflict"] = {"by": user_names(eng).get(by, by),
                                                 "at": local_time(at) if at else str(exc.params.get("at") or "?")}
        st.rerun()
    except (NotFound, PermissionDenied, EngineError) as exc:
        st.error(md_escape(exc.message(lg)))
        return
    _stop_edit(record_id)
    st.session_state[f"{base}__flash"] = t("records.saved")
    st.rerun()


# --- deleted / delete -------------------------------------------------------------------------------
def _deleted_banner(eng: Any, who: Any, lg: str, rec: Any) -> None:
    from engine.storage import restore
    from ui.records_view import local_time, user_names

    sub = rec.submission
    by = user_names(eng).get(sub.deleted_by or "", sub.deleted_by or "?")
    st.warning(t("records.is_deleted", by=md_escape(by), at=local_time(sub.deleted_at)), icon=":material/delete:")
    if who.can("records.restore") and st.button(t("records.restore"), key=f"record__{rec.id}__restore",
                                                icon=":material/restore_from_trash:"):
        try:
            restore(eng, rec.id, actor=who)
        except EngineError as exc:
            st.error(md_escape(exc.message(lg)))
            return
        st.session_state[f"record__{rec.id}__flash"] = t("records.restored")
        st.rerun()


def _delete_controls(eng: Any, who: Any, lg: str, rec: Any) -> None:
    from engine.storage import soft_delete

    base = f"record__{rec.id}"
    st.divider()
    if not st.session_state.get(f"{base}__confirm_delete"):
        if st.button(t("records.delete"), key=f"{base}__delete", icon=":material/delete:"):
            st.session_state[f"{base}__confirm_delete"] = True
            st.rerun()
        return
    st.warning(t("records.delete_confirm_text"))
    cols = st.columns(2)
    if cols[0].button(t("records.delete_confirm"), key=f"{base}__delete_yes", type="primary"):
        st.session_state.pop(f"{base}__confirm_delete", None)
        try:
            soft_delete(eng, rec.id, actor=who)
        except EngineError as exc:
            st.error(md_escape(exc.message(lg)))
            return
        _stop_edit(rec.id)
        st.session_state[f"{base}__flash"] = t("records.deleted")
        st.rerun()
    if cols[1].button(t("records.cancel"), key=f"{base}__delete_no"):
        st.session_state.pop(f"{base}__confirm_delete", None)
        st.rerun()


# --- workflow ----------------------------------------------------------------------------------------
def _workflow_panel(eng: Any, who: Any, lg: str, rec: Any) -> None:
    from engine import workflow
    from engine.forms import choice_lists
    from engine.storage import transition
    from ui.records_view import local_time

    spec, sub = rec.spec, rec.submission
    if spec.workflow is None:
        return
    base = f"record__{rec.id}"
    st.subheader(t("workflow.title"), divider="gray")
    parts = [t("workflow.state", state=md_escape(workflow.state_label(spec, sub.state, lg)))]
    if sub.due_at is not None:
        parts.append(t("workflow.due", at=local_time(sub.due_at, with_time=False)))
    if workflow.is_overdue(sub):
        parts.append(":red-badge[" + t("workflow.overdue") + "]")
    elif workflow.due_soon(sub):
        parts.append(":orange-badge[" + t("workflow.due_soon") + "]")
    if workflow.is_paused(sub):
        parts.append(":gray-badge[" + t("workflow.paused") + "]")
    st.markdown(" · ".join(parts))
    _changed_since_seen(eng, who, rec)
    if rec.deleted or st.session_state.get(f"{base}__edit") is not None:
        return
    steps = workflow.available(spec, sub, who)
    if not steps:
        st.caption(t("workflow.no_steps"))
        return
    failed = st.session_state.pop(f"{base}__wf_error", None)
    if failed:
        st.error(md_escape(failed), icon=":material/error:")
    ctx = WidgetContext(choice_lists=choice_lists(eng), engine=eng, actor=who)
    simple = [s for s in steps if not s.needs_reason and not s.needs_field]
    clicked: tuple[Any, str | None, dict | None] | None = None
    if simple:
        cols = st.columns(min(len(simple), 4))
        for i, step in enumerate(simple):
            if cols[i % 4].button(md_escape(workflow.transition_label(step, lg)), key=f"{base}__wf__{step.key}",
                                  width="stretch"):
                clicked = (step, None, None)
    for step in steps:
        if step in simple:
            continue
        icon = ":material/person_add:" if step.needs_field else ":material/edit_note:"
        with st.expander(md_escape(workflow.transition_label(step, lg)), icon=icon):
            values = None
            reason = None
            if step.needs_field:
                f = rec.edit_spec.field(step.needs_field) or spec.field(step.needs_field)
                if f is not None:
                    picked = render_widget(f.model_copy(update={"required": True}), sub.data.get(f.key),
                                           f"{base}__wf__{step.key}__field", lg, False, ctx)
                    values = {f.key: picked}
            if step.needs_reason:
                reason = st.text_area(t("workflow.reason") + " :red[\\*]", key=f"{base}__wf__{step.key}__reason",
                                      placeholder=t("workflow.reason_hint"))
            if st.button(md_escape(workflow.transition_label(step, lg)), key=f"{base}__wf__{step.key}",
                         type="primary" if step.needs_field else "secondary"):
                clicked = (step, reason, values)
    if clicked is None:
        return
    step, reason, values = clicked
    try:
        transition(eng, rec.id, step.key, actor=who, reason=reason, values=values, revision=sub.revision)
    except ValidationFailed as exc:
        st.session_state[f"{base}__wf_error"] = "；".join(p.message(lg) for p in exc.errors.values())
        st.rerun()
    except ConflictError as exc:
        from ui.records_view import user_names

        by = str(exc.params.get("by") or "?")
        st.session_state[f"{base}__wf_error"] = t("workflow.conflict", by=user_names(eng).get(by, by))
        st.rerun()
    except EngineError as exc:
        st.session_state[f"{base}__wf_error"] = exc.message(lg)
        st.rerun()
    for suffix in ("__reason", "__field"):
        st.session_state.pop(f"{base}__wf__{step.key}{suffix}", None)
    st.session_state[f"{base}__flash"] = t("workflow.done", step=workflow.transition_label(step, lg))
    st.rerun()


def _changed_since_seen(eng: Any, who: Any, rec: Any) -> None:
    """Someone else changed the record since this page last showed it (e.g. took the workflow step
    this user just clicked: that click then does nothing): say who, so it is not silently dropped."""
    from engine import workflow
    from ui.records_view import local_time, user_names

    sub = rec.submission
    key = f"record__{rec.id}__wf_seen"
    seen = st.session_state.get(key)
    st.session_state[key] = sub.revision
    if seen is None or seen >= sub.revision or sub.updated_by == who.username:
        return
    by = user_names(eng).get(sub.updated_by, sub.updated_by)
    st.warning(t("workflow.changed_meanwhile", by=md_escape(by), at=local_time(sub.updated_at),
                 state=md_escape(workflow.state_label(rec.spec, sub.state, lang()))), icon=":material/sync_problem:")


# --- children -----------------------------------------------------------------------------------------
def _children(eng: Any, who: Any, lg: str, rec: Any) -> None:
    from engine.fields import display_lists
    from engine.forms import choice_lists
    from engine.home_queries import viewable_forms
    from engine.queries import ListQuery
    from engine.storage import children
    from ui.records_view import cell_text, local_time, record_link

    # forms the user may view whose records hang under this form's records (no record counts needed)
    kids = [(slug, spec) for slug, _id, spec in viewable_forms(eng, who) if spec.parent == rec.slug]
    for child_slug, child_spec in kids:
        label = ltext(child_spec.title, lg) or child_slug
        st.subheader(md_escape(label), divider="gray")
        if form_allows(who, child_spec, "submit") and not rec.deleted:
            record_link(child_slug, rec.id, t("records.add_child", form=label), kind="entry", param="parent")
        page = children(eng, rec.id, child_slug, ListQuery(page=1, page_size=CHILD_ROWS), actor=who)
        if not page.items:
            st.caption(t("records.no_children"))
            continue
        st.caption(t("records.child_count", n=page.total))
        lists = choice_lists(eng)
        columns = list_fields(child_spec)
        rows = []
        with display_lists(lists):
            for sub in page.items:
                row = {t("records.col_number"): sub.number or f"#{sub.id}"}
                for f in columns:
                    row[ltext(f.label, lg) or f.key] = cell_text(f, sub.data.get(f.key), lg, choice_lists=lists)
                row[t("records.col_created_at")] = local_time(sub.created_at)
                rows.append(row)
        st.dataframe(pd.DataFrame(rows), hide_index=True)


# --- history -----------------------------------------------------------------------------------------
ACTION_KEYS = {
    "create": "records.action_create", "update": "records.action_update", "delete": "records.action_delete",
    "restore": "records.action_restore", "transition": "records.action_transition",
    "reveal": "records.action_reveal", "import": "records.action_import", "backfill": "records.action_backfill",
    "retention": "records.action_retention",
}


def _history(eng: Any, lg: str, rec: Any) -> None:
    from ui.records_view import local_time, user_names

    if not rec.history:
        return
    names = user_names(eng)
    rows = []
    for event in rec.history:
        key = ACTION_KEYS.get(event.action)
        rows.append({
            t("records.h_when"): local_time(event.at),
            t("records.h_who"): names.get(event.username, event.username),
            t("records.h_action"): t(key) if key else event.action,
            t("records.h_detail"): history_summary(rec, event, lg),
        })
    with st.expander(t("records.history", n=len(rows)), icon=":material/history:"):
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def _label_of(rec: Any, key: str, lg: str) -> str:
    f = rec.edit_spec.field(key) or rec.spec.field(key)
    return (ltext(f.label, lg) if f else "") or key


def _short(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    text = "、".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def history_summary(rec: Any, event: Any, lg: str) -> str:
    """One line about an audit event: changed fields with old → new (values as the audit stored them:
    sensitive ones were masked by the engine before they were written)."""
    from engine import workflow

    detail = event.detail or {}
    parts: list[str] = []
    if event.action == "transition":
        parts.append(f"{workflow.state_label(rec.spec, detail.get('from'), lg)} → "
                     f"{workflow.state_label(rec.spec, detail.get('to'), lg)}")
        if detail.get("reason"):
            parts.append(t("records.h_reason", reason=detail["reason"]))
    if event.action == "reveal":
        keys = detail.get("fields") or []
        parts.append("、".join(_label_of(rec, k, lg) for k in keys))
        if detail.get("reason"):
            parts.append(t("records.h_reason", reason=detail["reason"]))
    changes = detail.get("changes") or {}
    for key, pair in list(changes.items())[:8]:
        old, new = (pair + [None, None])[:2] if isinstance(pair, list) else (None, pair)
        parts.append(f"{_label_of(rec, key, lg)}: {_short(old)} → {_short(new)}")
    if len(changes) > 8:
        parts.append(t("records.h_more", n=len(changes) - 8))
    return "；".join(parts)


__all__ = ["filter_fields", "history_summary", "list_fields", "render_records"]
