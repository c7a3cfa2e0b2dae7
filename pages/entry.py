"""Data entry for one form: `render_entry(slug)`.

Query param `parent=<id>`: for a child form (spec.parent), the parent record the new record is
attached to. Without it, the user picks the parent from recent records of the parent form.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.access import form_allows
from engine.errors import EngineError, NotFound, PermissionDenied, ValidationFailed
from models.spec import FormSpec, ltext
from ui.i18n import t
from ui.render import forget_widgets, initial_values, render_form
from ui.state import actor, db, lang
from ui.widgets import md_escape, record_title

PARENT_CHOICES = 50


def _state_key(slug: str) -> str:
    return f"entry__{slug}"


def _deny(message: str) -> None:
    st.error(message, icon=":material/block:")
    st.stop()


def render_entry(slug: str) -> None:
    """The entry page of form `slug` (st.Page target)."""
    from engine.forms import get_spec

    lg = lang()
    try:
        who = actor()
    except PermissionDenied:
        _deny(t("entry.login_required"))
        return
    eng = db()
    try:
        spec = get_spec(eng, slug)
    except NotFound:
        _deny(t("entry.no_form"))
        return
    if not form_allows(who, spec, "submit"):
        _deny(t("entry.no_submit", form=md_escape(ltext(spec.title, lg) or slug)))
        return
    st.title(md_escape(ltext(spec.title, lg) or slug))
    if ltext(spec.description, lg):
        st.caption(md_escape(ltext(spec.description, lg)))
    parent_id = _parent(eng, spec, who, lg)
    _entry_form(slug, parent_id)


def _parent(eng: Any, spec: FormSpec, who: Any, lg: str) -> int | None:
    """The parent record of a child form (from ?parent=, else picked here); None for other forms."""
    if not spec.parent:
        return None
    from engine.forms import get_spec
    from engine.queries import ListQuery, list_records
    from engine.storage import get_record

    parent_spec = get_spec(eng, spec.parent)
    parent_title = md_escape(ltext(parent_spec.title, lg) or spec.parent)
    wanted = st.query_params.get("parent")
    if wanted:
        try:
            rec = get_record(eng, int(wanted), actor=who)
        except (ValueError, NotFound, PermissionDenied):
            _deny(t("entry.parent_missing", form=parent_title))
            return None
        if rec.slug != spec.parent or rec.submission.deleted_at is not None:
            _deny(t("entry.parent_missing", form=parent_title))
            return None
        st.info(t("entry.parent_is", form=parent_title, title=md_escape(record_title(rec.spec, rec.submission, lg))),
                icon=":material/link:")
        return int(rec.submission.id)
    page = list_records(eng, spec.parent, ListQuery(page=1, page_size=PARENT_CHOICES), actor=who)
    options = {int(row.id): record_title(parent_spec, row, lg) for row in page.items}
    if not options:
        _deny(t("entry.no_parents", form=parent_title))
        return None
    picked = st.selectbox(
        t("entry.pick_parent", form=parent_title),
        list(options),
        index=None,
        format_func=lambda v: options.get(v, f"#{v}"),
        key=f"{_state_key(spec.slug)}__parent",
        placeholder=t("entry.pick_parent_placeholder"),
    )
    if picked is None:
        st.info(t("entry.pick_parent_first", form=parent_title))
        st.stop()
    return int(picked)


@st.fragment
def _entry_form(slug: str, parent_id: int | None) -> None:
    """The form and its buttons; a fragment, so typing reruns only this part."""
    from engine.forms import choice_lists, get_spec
    from engine.storage import create

    eng, who, lg = db(), actor(), lang()
    spec = get_spec(eng, slug)
    base = _state_key(slug)
    generation = st.session_state.setdefault(f"{base}__gen", 0)
    prefix = f"{base}__{generation}"

    done = st.session_state.get(f"{base}__done")
    if done:
        _saved_banner(slug, done, lg)
        if st.button(t("entry.new_record"), key=f"{prefix}__again", icon=":material/add:", type="primary"):
            st.session_state.pop(f"{base}__done", None)
            _fresh(base)
            st.rerun()
        return
    flash = st.session_state.pop(f"{base}__flash", None)
    if flash:
        _saved_banner(slug, flash, lg)

    failed = st.session_state.get(f"{base}__errors") or {}
    raw = render_form(spec, initial_values(spec), failed, prefix, lg, choice_lists(eng), engine=eng, actor=who)
    if failed:
        _error_summary(spec, failed, lg)
    problem = st.session_state.pop(f"{base}__problem", None)
    if problem:
        st.error(md_escape(problem), icon=":material/error:")

    cols = st.columns(2)
    save = cols[0].button(t("entry.save"), key=f"{prefix}__save", type="primary", icon=":material/save:",
                          width="stretch")
    save_new = cols[1].button(t("entry.save_new"), key=f"{prefix}__save_new", icon=":material/library_add:",
                              width="stretch")
    if not (save or save_new):
        return
    try:
        sub = create(eng, slug, raw, actor=who, parent_id=parent_id)
    except ValidationFailed as exc:
        st.session_state[f"{base}__errors"] = dict(exc.errors)
        st.rerun()
    except (EngineError, PermissionDenied) as exc:
        st.session_state[f"{base}__problem"] = exc.message(lg)
        st.rerun()
    st.session_state.pop(f"{base}__errors", None)
    saved = {"id": int(sub.id), "number": sub.number, "title": record_title(spec, sub, lg)}
    if save_new:
        st.session_state[f"{base}__flash"] = saved
    else:
        st.session_state[f"{base}__done"] = saved
    _fresh(base)
    st.rerun()


def _fresh(base: str) -> None:
    """Start an empty form: new widget keys, and forget the old widgets' state."""
    old = st.session_state.get(f"{base}__gen", 0)
    forget_widgets(f"{base}__{old}")
    st.session_state[f"{base}__gen"] = old + 1


def _saved_banner(slug: str, saved: dict, lg: str) -> None:
    from engine.forms import get_spec
    from ui.records_view import record_link

    number = saved.get("number") or f"#{saved['id']}"
    st.success(t("entry.saved", number=md_escape(number)), icon=":material/check_circle:")
    if form_allows(actor(), get_spec(db(), slug), "view"):  # the records page exists for this role
        record_link(slug, saved["id"], t("entry.open_record", number=number))


def _error_summary(spec: FormSpec, errors: dict, lg: str) -> None:
    labels = {f.key: ltext(f.label, lg) or f.key for f in spec.fields}
    lines = [f"- **{md_escape(labels.get(k, k))}**: {md_escape(p.message(lg))}" for k, p in errors.items()]
    st.error(t("entry.fix_errors", n=len(errors)) + "\n\n" + "\n".join(lines), icon=":material/warning:")


__all__ = ["render_entry"]
