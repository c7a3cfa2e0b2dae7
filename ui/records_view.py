"""Helpers shared by the entry, records and home pages: record titles, displayed values (masked unless
revealed), local times, links between pages, the read-only record view and its history."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from models.spec import FieldSpec, FormSpec, ltext
from ui.i18n import translate
from ui.render import grouped
from ui.widgets import md_escape, record_title

__all__ = [
    "cell_text", "display_value", "local_time", "page_for", "record_link", "record_title", "render_record",
    "url_path", "user_names",
]

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def local_time(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    local = value.astimezone(LOCAL_TZ)
    return local.strftime("%Y-%m-%d %H:%M") if with_time else local.strftime("%Y-%m-%d")


def display_value(field: FieldSpec, value: Any, lang: str, *, reveal: bool = False,
                  choice_lists: Mapping[str, Any] | None = None) -> str:
    """A stored value as screen text (FieldType.display), masked when sensitive and not revealed."""
    from engine.fields import REGISTRY, is_empty, mask_value

    if value is None or is_empty(value):
        return ""
    ftype = REGISTRY.get(field.type)
    try:
        text = ftype.display(value, _with_list_choices(field, choice_lists), lang) if ftype else str(value)
    except Exception:
        text = str(value)
    if field.sensitive and not reveal:
        try:
            return mask_value(field, text)
        except Exception:
            return "****"
    return text


def _with_list_choices(field: FieldSpec, choice_lists: Mapping[str, Any] | None) -> FieldSpec:
    """Give a field that picks from a reference list its items, so display() can show labels."""
    if field.choice_list and not field.choices and choice_lists and field.choice_list in choice_lists:
        return field.model_copy(update={"choices": list(choice_lists[field.choice_list])})
    return field


def cell_text(field: FieldSpec, value: Any, lang: str, *, choice_lists: Mapping[str, Any] | None = None) -> str:
    """A list cell: always masked for sensitive fields (revealing happens on the record page only)."""
    return display_value(field, value, lang, reveal=False, choice_lists=choice_lists)


def user_names(engine: Any) -> dict[str, str]:
    """username -> display name (for 'created by' columns and messages)."""
    try:
        from engine.auth import list_users

        return {u.username: u.name for u in list_users(engine)}
    except Exception:
        return {}


# --- links between pages ---------------------------------------------------------------------------


def _no_op() -> None:  # the target of link-only Page objects (the real page is registered by ui.nav)
    return None


def url_path(kind: str, slug: str | None = None) -> str:
    """The url path ui.nav gives a page kind ('records', 'entry', 'home')."""
    from ui.nav import HOME_URL, entry_url, records_url

    if kind == "records" and slug:
        return records_url(slug)
    if kind == "entry" and slug:
        return entry_url(slug)
    return HOME_URL


def page_for(kind: str, slug: str | None = None, title: str = "") -> Any:
    """An st.Page with the url path of a registered page. Streamlit identifies a page by its url path
    alone, so page_link / switch_page with this object reach the page ui.nav registered."""
    return st.Page(_no_op, title=title or url_path(kind, slug), url_path=url_path(kind, slug))


def record_link(slug: str, sub_id: int, label: str, *, kind: str = "records", param: str = "id") -> None:
    """A link to a record's page (or, kind='entry', to a child entry page with ?parent=)."""
    st.page_link(page_for(kind, slug, label), label=md_escape(label), query_params={param: str(sub_id)},
                 icon=":material/open_in_new:")


# --- read-only record view ------------------------------------------------------------------------


def render_record(spec: FormSpec, data: Mapping[str, Any], lang: str, *, reveal: bool,
                  choice_lists: Mapping[str, Any] | None = None, counters: Mapping[str, int] | None = None) -> None:
    """Every field of the record's own form version, retired ones included and marked."""
    from engine.fields import is_empty
    from engine.validate import visible_fields

    retired_mark = translate("widgets.retired", lang)
    visible = {f.key for f in visible_fields(spec, dict(data))}
    fields = [f for f in spec.fields if f.type not in ("note",)]
    for section, group in grouped(spec, fields):
        # a field is shown when it holds a value, or when it applies to this record (show_if true)
        rows = [f for f in group if not is_empty(data.get(f.key)) or f.key in visible]
        if not rows:
            continue
        if section is not None:
            st.markdown(f"##### {md_escape(ltext(section.title, lang) or section.key)}")
        for f in rows:
            label = md_escape(ltext(f.label, lang) or f.key)
            if f.retired:
                label += f" :gray-badge[{md_escape(retired_mark)}]"
            if f.type == "counter":
                text = str((counters or {}).get(f.key, 0))
            else:
                text = display_value(f, data.get(f.key), lang, reveal=reveal, choice_lists=choice_lists)
            shown = md_escape(text) if text else translate("widgets.empty", lang)
            cols = st.columns([2, 5])
            cols[0].markdown(f"**{label}**")
            cols[1].markdown(shown)
