"""Render a form spec as live widgets (no st.form: `show_if` reacts as the user types).

`render_form` draws the sections in spec order with only the visible fields, shows each field's
error right under it (in the user's language) and the facts derived from an ID number as it is
typed, and returns the raw answers. Callers wrap it (with their buttons) in `@st.fragment`, so a
change reruns only the form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import streamlit as st

from engine.errors import Problem
from models.spec import Choice, FieldSpec, FormSpec, ltext
from ui.i18n import translate
from ui.widgets import WidgetContext, md_escape, peek, render_widget

# Types answered by something other than a single text box: a protected (masked) value of these
# types is kept as stored, it cannot be re-typed blind.
_NOT_RETYPABLE = {"boolean", "checklist", "multiselect", "rating", "counter", "note"}
_TEXT_LIKE = {"text", "textarea", "phone", "email", "id_number"}


def widget_key(key_prefix: str, field_key: str) -> str:
    """The stable Streamlit key of one field's widget (form + field; the prefix names the form)."""
    return f"{key_prefix}__{field_key}"


def initial_values(spec: FormSpec) -> dict[str, Any]:
    """Defaults for a new record."""
    return {f.key: f.default for f in spec.active_fields if f.default is not None}


def grouped(spec: FormSpec, fields: Sequence[FieldSpec]) -> list[tuple[Any, list[FieldSpec]]]:
    """Fields grouped by section in spec order: unsectioned first, then each section in order."""
    known = [s.key for s in spec.sections]
    groups: dict[str | None, list[FieldSpec]] = {None: []}
    for key in known:
        groups[key] = []
    for f in fields:
        groups.setdefault(f.section if f.section in known else None, []).append(f)
    by_key = {s.key: s for s in spec.sections}
    return [(by_key.get(k) if k else None, fs) for k, fs in groups.items() if fs]


def _visible_keys(spec: FormSpec, values: Mapping[str, Any]) -> set[str]:
    from engine.validate import visible_fields

    return {f.key for f in visible_fields(spec, dict(values))}


def live_values(spec: FormSpec, values: Mapping[str, Any], key_prefix: str) -> dict[str, Any]:
    """The stored/initial values overlaid with what the widgets on screen hold right now."""
    merged = dict(values)
    for f in spec.active_fields:
        found, value = peek(f, widget_key(key_prefix, f.key))
        if found:
            merged[f.key] = value
    return merged


def show_problem(problem: Problem | str | None, lang: str) -> None:
    if problem is None:
        return
    text = problem.message(lang) if isinstance(problem, Problem) else str(problem)
    st.error(md_escape(text), icon=":material/error:")


def derived_hint(spec: FormSpec, field: FieldSpec, text: Any, values: Mapping[str, Any], lang: str) -> None:
    """Birth date, sex and age (and the 60+ hint) read from an ID number as it is typed."""
    if not isinstance(text, str) or len(text.strip()) not in (15, 18):
        return
    if field.doc_type_field and values.get(field.doc_type_field) not in (None, "", "resident_id"):
        return
    facts = _derive(spec, field, text.strip(), values)
    if not facts:
        return
    parts = []
    birth = facts.get("birth_date")
    if birth:
        parts.append(translate("widgets.derived_birth", lang, date=birth.isoformat() if isinstance(birth, date) else birth))
    sex = facts.get("sex")
    if sex:
        parts.append(translate("widgets.derived_sex", lang, sex=translate(f"widgets.sex_{sex}", lang)))
    age = facts.get("age")
    if age is not None:
        parts.append(translate("widgets.derived_age", lang, age=age))
    if parts:
        st.caption(" · ".join(md_escape(p) for p in parts))
    groups = facts.get("groups") or []
    if "elderly" in groups or (age is not None and age >= 60):
        st.info(translate("widgets.derived_elderly", lang), icon=":material/elderly:")
    if "minor" in groups or (age is not None and age < 18):
        st.info(translate("widgets.derived_minor", lang), icon=":material/child_care:")


def _derive(spec: FormSpec, field: FieldSpec, text: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """engine.validate.derive on the live values (nothing for an invalid or non-resident-ID number)."""
    from engine.validate import derive

    return dict(derive(spec, {**values, field.key: text}).get(field.key) or {})


def _render_protected(field: FieldSpec, stored: Any, masked: str, key: str, lang: str, disabled: bool,
                      ctx: WidgetContext) -> Any:
    """A sensitive value the user may not see: shown masked; typing a new value replaces it."""
    if field.type in _NOT_RETYPABLE:
        st.text_input(md_escape(ltext(field.label, lang) or field.key), value=masked, key=key + "__masked",
                      disabled=True, help=translate("widgets.protected_kept", lang))
        return stored
    if field.type in _TEXT_LIKE:
        typed = st.text_input(
            md_escape(ltext(field.label, lang) or field.key) + (" :red[\\*]" if field.required else ""),
            value="",
            key=key,
            placeholder=masked,
            disabled=disabled,
            help=translate("widgets.protected_replace", lang),
        )
        return typed if typed.strip() else stored
    raw = render_widget(field, None, key, lang, disabled, ctx)
    st.caption(translate("widgets.protected_current", lang, value=md_escape(masked)))
    return stored if raw in (None, "", [], {}) else raw


def render_form(
    spec: FormSpec,
    values: Mapping[str, Any] | None,
    errors: Mapping[str, Problem] | None,
    key_prefix: str,
    lang: str,
    choice_lists: Mapping[str, Sequence[Choice]] | None = None,
    *,
    disabled: bool = False,
    engine: Any = None,
    actor: Any = None,
    protected: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Draw the form and return the raw answers of the visible fields.

    values: stored or initial values; errors: field key -> Problem (shown under the field);
    protected: field key -> masked text for sensitive values this user may not see (kept unless
    the user types a replacement).
    """
    values = dict(values or {})
    errors = errors or {}
    protected = protected or {}
    ctx = WidgetContext(choice_lists=choice_lists or {}, engine=engine, actor=actor)
    live = live_values(spec, values, key_prefix)
    visible = _visible_keys(spec, live)
    raw: dict[str, Any] = {}
    for section, fields in grouped(spec, spec.active_fields):
        shown = [f for f in fields if f.key in visible]
        if not shown:
            continue
        if section is not None:
            st.subheader(md_escape(ltext(section.title, lang) or section.key), divider="gray")
            if ltext(section.help, lang):
                st.caption(md_escape(ltext(section.help, lang)))
        for f in shown:
            key = widget_key(key_prefix, f.key)
            if f.key in protected and values.get(f.key) not in (None, ""):
                answer = _render_protected(f, values.get(f.key), protected[f.key], key, lang, disabled, ctx)
            else:
                answer = render_widget(f, values.get(f.key), key, lang, disabled, ctx)
            if f.type not in ("note", "counter"):
                raw[f.key] = answer
                live[f.key] = answer
            if f.type == "id_number" and f.key not in protected:
                derived_hint(spec, f, answer, live, lang)
            show_problem(errors.get(f.key), lang)
    return raw


def forget_widgets(key_prefix: str) -> None:
    """Drop the widget state of one rendered form (after saving, cancelling or reloading)."""
    prefix = key_prefix + "__"
    for name in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        del st.session_state[name]
