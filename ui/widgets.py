"""Widget renderers, one per field type (`WIDGETS[type_name]`).

Each renderer is ``fn(field, value, key, lang, disabled, ctx=None) -> raw`` where `value` is the stored
(clean) value or the field default, `key` the stable Streamlit widget key for this form + field, and the
return value the raw answer in the storage format of docs/ARCHITECTURE.md (ISO strings for dates and
times, decimal strings for decimal/money, int, bool, list of str, checklist dict). Labels coming from a
form spec are escaped: a label is Markdown in Streamlit, and no spec or record text ever reaches
``unsafe_allow_html``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import streamlit as st

from engine.errors import EngineError
from models.spec import Choice, FieldSpec, ltext
from ui.i18n import translate

MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2100, 12, 31)
REFERENCE_LIMIT = 200
CHECK_ANSWERS = ("yes", "no", "na")

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:])")


def md_escape(text: Any) -> str:
    """Escape text so that Streamlit Markdown shows it literally (labels, record values, notes)."""
    if text is None:
        return ""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")


@dataclass
class WidgetContext:
    """What some widgets need beyond the field: reference lists, the database and the actor."""

    choice_lists: Mapping[str, Sequence[Choice]] = dc_field(default_factory=dict)
    engine: Any = None
    actor: Any = None


def field_label(field: FieldSpec, lang: str) -> str:
    """The widget label: the escaped spec label plus a red * when the field is required."""
    text = md_escape(ltext(field.label, lang) or field.key)
    return f"{text} :red[\\*]" if field.required else text


def field_help(field: FieldSpec, lang: str) -> str | None:
    """The help tooltip (Markdown in Streamlit): escaped like the label, so a spec's text shows literally."""
    text = ltext(field.help, lang)
    return md_escape(text) if text else None


def choices_for(field: FieldSpec, ctx: WidgetContext | None) -> list[Choice]:
    if field.choices:
        return list(field.choices)
    if field.choice_list and ctx is not None:
        return list(ctx.choice_lists.get(field.choice_list, []))
    return []


def _labeller(field: FieldSpec, ctx: WidgetContext | None, lang: str) -> Callable[[Any], str]:
    labels = {c.value: c.label for c in choices_for(field, ctx)}

    def fmt(value: Any) -> str:
        return ltext(labels.get(value), lang) or str(value)

    return fmt


def _choice_values(field: FieldSpec, ctx: WidgetContext | None, current: Sequence[str]) -> list[str]:
    values = [c.value for c in choices_for(field, ctx) if c.active or c.value in current]
    values += [v for v in current if v not in values]
    return values


# --- value conversions (stored format <-> widget value) --------------------------------------------


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str) and value.strip():
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _as_time(value: Any) -> time | None:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _as_number(value: Any, integer: bool) -> int | float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return int(number) if integer else float(number)


def _decimal_text(value: float | int | None, places: int | None) -> str | None:
    if value is None:
        return None
    if places is not None:
        return f"{float(value):.{places}f}"
    text = repr(float(value)) if isinstance(value, float) else str(value)
    return str(Decimal(text))


# --- renderers ---------------------------------------------------------------------------------------

Renderer = Callable[..., Any]


def w_text(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str:
    return st.text_input(
        field_label(field, lang),
        value="" if value is None else str(value),
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
        max_chars=field.max_length,
    )


def w_textarea(
    field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None
) -> str:
    return st.text_area(
        field_label(field, lang),
        value="" if value is None else str(value),
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
        max_chars=field.max_length,
    )


def _number(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, *, integer: bool, step: Any,
            fmt: str | None) -> int | float | None:
    cast = int if integer else float
    return st.number_input(
        field_label(field, lang),
        min_value=cast(field.min) if field.min is not None else None,
        max_value=cast(field.max) if field.max is not None else None,
        value=_as_number(value, integer),
        step=step,
        format=fmt,
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
    )


def w_integer(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> int | None:
    number = _number(field, value, key, lang, disabled, integer=True, step=1, fmt="%d")
    return None if number is None else int(number)


def w_decimal(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str | None:
    number = _number(field, value, key, lang, disabled, integer=False, step=0.1, fmt=None)
    return _decimal_text(number, None)


def w_money(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str | None:
    number = _number(field, value, key, lang, disabled, integer=False, step=0.01, fmt="%.2f")
    return _decimal_text(number, 2)


def w_date(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str | None:
    picked = st.date_input(
        field_label(field, lang),
        value=_as_date(value),
        min_value=MIN_DATE,
        max_value=MAX_DATE,
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
    )
    return picked.isoformat() if isinstance(picked, date) else None


def w_datetime(
    field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None
) -> str | None:
    picked = st.datetime_input(
        field_label(field, lang),
        value=_as_datetime(value),
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2100, 12, 31, 23, 59),
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
        step=60,
    )
    return picked.replace(tzinfo=None).isoformat(timespec="seconds") if isinstance(picked, datetime) else None


def w_time(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str | None:
    picked = st.time_input(
        field_label(field, lang),
        value=_as_time(value),
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
        step=300,
    )
    return picked.strftime("%H:%M") if isinstance(picked, time) else None


def _select_from(field: FieldSpec, options: list[Any], fmt: Callable[[Any], str], value: Any, key: str, lang: str,
                 disabled: bool) -> Any:
    index = options.index(value) if value in options else None
    return st.selectbox(
        field_label(field, lang),
        options,
        index=index,
        format_func=fmt,
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
        placeholder=translate("widgets.choose", lang),
    )


def w_select(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str | None:
    current = [str(value)] if value not in (None, "") else []
    options = _choice_values(field, ctx, current)
    return _select_from(field, options, _labeller(field, ctx, lang), current[0] if current else None, key, lang,
                        disabled)


def w_multiselect(
    field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None
) -> list[str]:
    current = [str(v) for v in value] if isinstance(value, list | tuple) else []
    options = _choice_values(field, ctx, current)
    picked = st.multiselect(
        field_label(field, lang),
        options,
        default=[v for v in current if v in options],
        format_func=_labeller(field, ctx, lang),
        key=key,
        help=field_help(field, lang),
        disabled=disabled,
        placeholder=translate("widgets.choose", lang),
    )
    return list(picked)


def w_boolean(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> bool:
    return bool(
        st.toggle(field_label(field, lang), value=bool(value), key=key, help=field_help(field, lang), disabled=disabled)
    )


def w_checklist(
    field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None
) -> dict[str, dict[str, str]]:
    stored = value if isinstance(value, dict) else {}
    st.markdown(f"**{field_label(field, lang)}**", help=field_help(field, lang))
    answer_label = {a: translate(f"widgets.answer_{a}", lang) for a in CHECK_ANSWERS}
    out: dict[str, dict[str, str]] = {}
    group = None
    for item in field.items or []:
        if item.group and item.group != group:
            group = item.group
            st.caption(md_escape(group))
        old = stored.get(item.key) if isinstance(stored.get(item.key), dict) else {}
        old_answer = old.get("answer") if old else None
        cols = st.columns([5, 4, 4], vertical_alignment="center")
        with cols[0]:
            st.markdown(md_escape(ltext(item.label, lang) or item.key))
        with cols[1]:
            answer = st.radio(
                md_escape(ltext(item.label, lang) or item.key),
                CHECK_ANSWERS,
                index=CHECK_ANSWERS.index(old_answer) if old_answer in CHECK_ANSWERS else None,
                format_func=answer_label.get,
                horizontal=True,
                key=f"{key}__{item.key}__answer",
                label_visibility="collapsed",
                disabled=disabled,
            )
        with cols[2]:
            note = st.text_input(
                translate("widgets.note", lang),
                value=str(old.get("note") or "") if old else "",
                key=f"{key}__{item.key}__note",
                label_visibility="collapsed",
                placeholder=translate("widgets.note", lang),
                disabled=disabled,
            )
        if answer or note:
            out[item.key] = {"answer": answer or "", "note": note or ""}
    return out


def rating_bounds(field: FieldSpec) -> tuple[int, int]:
    low = int(field.min) if field.min is not None else 1
    high = int(field.max) if field.max is not None else 5
    return low, high


def _stars(field: FieldSpec) -> bool:
    """A 1-5 rating is five stars (st.feedback); any other range is a row of numbers."""
    return rating_bounds(field) == (1, 5)


def w_rating(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> int | None:
    current = _as_number(value, integer=True)
    low, high = rating_bounds(field)
    if not _stars(field):
        options = list(range(low, high + 1))
        picked = st.segmented_control(
            field_label(field, lang), options, default=current if current in options else None, key=key,
            help=field_help(field, lang), disabled=disabled,
        )
        return None if picked is None else int(picked)
    st.markdown(field_label(field, lang), help=field_help(field, lang))
    default = int(current) - 1 if current is not None and 1 <= current <= 5 else None
    picked = st.feedback("stars", key=key, default=default, disabled=disabled)
    return None if picked is None else int(picked) + 1


def _text_kind(kind: str) -> Renderer:
    def render(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str:
        return st.text_input(
            field_label(field, lang),
            value="" if value is None else str(value),
            key=key,
            help=field_help(field, lang),
            disabled=disabled,
            max_chars=field.max_length or (64 if kind != "email" else 254),
            placeholder=translate(f"widgets.placeholder_{kind}", lang),
        )

    render.__name__ = f"w_{kind}"
    return render


def _reference_records(ctx: WidgetContext, slug: str, search: str, lang: str) -> dict[int, str]:
    """Up to REFERENCE_LIMIT recent records of form `slug` (matching `search`), id -> title."""
    from engine.forms import get_spec
    from engine.queries import PAGE_SIZES, ListQuery, list_records

    spec = get_spec(ctx.engine, slug)
    size = max(PAGE_SIZES)
    out: dict[int, str] = {}
    for page_no in range(1, REFERENCE_LIMIT // size + 1):
        page = list_records(ctx.engine, slug, ListQuery(page=page_no, page_size=size, search=search or None),
                            actor=ctx.actor)
        out.update({int(row.id): record_title(spec, row, lang) for row in page.items})
        if page_no >= page.pages:
            break
    return out


def record_title(spec: Any, row: Any, lang: str) -> str:
    """'#12 张三' style title of a record row (Submission or list row with .id / .data / .number)."""
    data = getattr(row, "data", None) or {}
    head = getattr(row, "number", None) or f"#{row.id}"
    title = data.get(spec.title_field) if spec is not None and spec.title_field else None
    if title in (None, "") and spec is not None:
        for f in spec.fields:
            if f.type in ("text",) and not f.sensitive and data.get(f.key):
                title = data.get(f.key)
                break
    return f"{head} {title}" if title not in (None, "") else str(head)


def w_reference(
    field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None
) -> Any:
    if field.choice_list or field.choices or not field.reference_form:
        return w_select(field, value, key, lang, disabled, ctx)
    current = _as_number(value, integer=True)
    options: dict[int, str] = {}
    if ctx is not None and ctx.engine is not None:
        search = st.text_input(
            translate("widgets.search_records", lang),
            key=f"{key}__search",
            placeholder=translate("widgets.search_placeholder", lang),
            disabled=disabled,
        )
        try:
            options = _reference_records(ctx, field.reference_form, search.strip(), lang)
        except EngineError:  # the referenced form is missing or hidden from this user
            options = {}
    if current is not None and current not in options:
        options = {current: f"#{current}", **options}
    picked = _select_from(field, list(options), lambda v: options.get(v, f"#{v}"), current, key, lang, disabled)
    return None if picked is None else int(picked)


def w_user(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> str | None:
    users: dict[str, str] = {}
    if ctx is not None and ctx.engine is not None:
        from engine.auth import list_users

        users = {u.username: u.name for u in list_users(ctx.engine) if u.active}
    if value not in (None, "") and str(value) not in users:
        users = {str(value): str(value), **users}
    return _select_from(field, list(users), lambda v: users.get(v, str(v)), value, key, lang, disabled)


def w_note(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> None:
    label = ltext(field.label, lang)
    body = ltext(field.help, lang)
    if label:
        st.markdown(f"**{md_escape(label)}**")
    if body:
        st.markdown(md_escape(body))
    return None


def w_counter(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool, ctx: WidgetContext | None = None) -> None:
    total = _as_number(value, integer=True)
    st.metric(md_escape(ltext(field.label, lang) or field.key), total if total is not None else 0,
              help=field_help(field, lang))
    return None


WIDGETS: dict[str, Renderer] = {
    "text": w_text,
    "textarea": w_textarea,
    "integer": w_integer,
    "decimal": w_decimal,
    "money": w_money,
    "date": w_date,
    "datetime": w_datetime,
    "time": w_time,
    "select": w_select,
    "multiselect": w_multiselect,
    "boolean": w_boolean,
    "checklist": w_checklist,
    "rating": w_rating,
    "phone": _text_kind("phone"),
    "email": _text_kind("email"),
    "id_number": _text_kind("id_number"),
    "reference": w_reference,
    "user": w_user,
    "note": w_note,
    "counter": w_counter,
}

# Types whose answer is not the plain session-state value of the widget key (used to peek at the
# live answers before the widgets are drawn, so that show_if reacts on the same rerun).
_PEEK: dict[str, Callable[[Any], Any]] = {
    "date": lambda v: v.isoformat() if isinstance(v, date) else v,
    "datetime": lambda v: v.replace(tzinfo=None).isoformat(timespec="seconds") if isinstance(v, datetime) else v,
    "time": lambda v: v.strftime("%H:%M") if isinstance(v, time) else v,
    "money": lambda v: _decimal_text(v, 2) if isinstance(v, int | float) else v,
    "decimal": lambda v: _decimal_text(v, None) if isinstance(v, int | float) else v,
}


def peek(field: FieldSpec, key: str) -> tuple[bool, Any]:
    """The live answer of a widget already on screen (found, value), read from session state."""
    if field.type in ("checklist", "note", "counter") or key not in st.session_state:
        return False, None
    value = st.session_state[key]
    if field.type == "rating" and _stars(field):
        return True, None if value is None else int(value) + 1
    convert = _PEEK.get(field.type)
    return True, convert(value) if convert else value


def render_widget(field: FieldSpec, value: Any, key: str, lang: str, disabled: bool = False,
                  ctx: WidgetContext | None = None) -> Any:
    renderer = WIDGETS.get(field.type, w_text)
    return renderer(field, value, key, lang, disabled, ctx)
