"""Reference lists (admins): liaison points, courts, lawyers, case causes, any list — `render_reference_lists()`.

Add an item, rename it (zh / en labels), deactivate / reactivate it, create a list, and import a list
from a spreadsheet column (CSV / XLSX). Everything goes through engine.forms (audited, "choice_lists"
stamp bumped, so entry pages offer the change at their next run). A stored value never changes: a
deactivated item stays valid and is displayed on old records, it is only no longer offered for new ones.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine import designer as dz
from engine import forms
from engine.errors import EngineError
from models.spec import ltext
from ui.auth import error_text, require_ability
from ui.i18n import t, translate
from ui.state import db, lang
from ui.widgets import md_escape

P = "reflists"
FLASH = f"{P}__flash"
PICK = f"{P}__pick"


def _flash(message: str) -> None:
    st.session_state[FLASH] = message


def _gen() -> int:
    return int(st.session_state.get(f"{P}__gen", 0))


def _done(message: str) -> None:
    _flash(message)
    st.session_state[f"{P}__gen"] = _gen() + 1
    st.rerun()


def _k(name: str) -> str:
    return f"{P}__{_gen()}__{name}"


def _item_label(item: Any, lg: str) -> str:
    return ltext(item.label, lg) or item.value


def render_reference_lists() -> None:
    """The reference-lists page (st.Page target; ability "reference.edit")."""
    who = require_ability("reference.edit")
    eng, lg = db(), lang()
    st.title(t("reflists.title"))
    st.caption(t("reflists.intro"))
    message = st.session_state.pop(FLASH, None)
    if message:
        st.success(md_escape(message), icon=":material/check_circle:")
    lists = {lst.name: lst for lst in forms.list_choice_lists(eng)}
    wanted = st.session_state.pop(f"{P}__want", None)
    if wanted in lists:
        st.session_state[PICK] = wanted
    if st.session_state.get(PICK) not in lists:
        st.session_state.pop(PICK, None)
    name = st.selectbox(t("reflists.pick"), list(lists), key=PICK, index=None,
                        format_func=lambda n: f"{ltext(lists[n].title, lg) or n} ({n})",
                        placeholder=t("reflists.pick_placeholder"))
    _new_list(eng, who, lg)
    if name is None:
        st.info(t("reflists.pick_or_create"))
        return
    info = forms.get_choice_list(eng, name)
    _items_table(info, lg)
    c1, c2 = st.columns(2)
    with c1:
        _add_item(eng, who, info, lg)
        _activation(eng, who, info, lg)
    with c2:
        _rename(eng, who, info, lg)
    _import(eng, who, info, lg)


def _new_list(eng: Any, who: Any, lg: str) -> None:
    with st.expander(t("reflists.new_list"), icon=":material/playlist_add:"), st.form(f"{P}__new_list"):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input(t("reflists.list_name"), key=f"{P}__new_name", help=t("reflists.list_name_help"))
        zh = c2.text_input(t("reflists.title_zh"), key=f"{P}__new_title_zh")
        en = c3.text_input(t("reflists.title_en"), key=f"{P}__new_title_en")
        if not st.form_submit_button(t("reflists.create"), type="primary", icon=":material/add:"):
            return
        name = name.strip()
        if name in {lst.name for lst in forms.list_choice_lists(eng)}:
            st.error(translate("reflists.exists", lg, name=md_escape(name)))
            return
        try:
            forms.save_choice_list(eng, name, {k: v.strip() for k, v in (("zh", zh), ("en", en)) if v.strip()}
                                   or name, [], actor=who)
        except EngineError as exc:
            st.error(md_escape(error_text(exc)))
            return
        st.session_state[f"{P}__want"] = name
        _done(translate("reflists.created", lg, name=name))


def _items_table(info: Any, lg: str) -> None:
    st.subheader(md_escape(ltext(info.title, lg) or info.name))
    active = sum(1 for i in info.items if i.active)
    st.caption(t("reflists.counts", n=len(info.items), active=active))
    rows = [{t("reflists.col_value"): i.value, t("reflists.col_zh"): i.label.get("zh", ""),
             t("reflists.col_en"): i.label.get("en", ""),
             t("reflists.col_status"): t("reflists.active") if i.active else t("reflists.inactive")}
            for i in info.items]
    st.dataframe(rows, hide_index=True, width="stretch")


def _save_all(eng: Any, who: Any, info: Any, items: list[dict[str, Any]]) -> None:
    forms.save_choice_list(eng, info.name, info.title, items, actor=who)


def _as_items(info: Any) -> list[dict[str, Any]]:
    return [{"value": i.value, "label": dict(i.label), "active": i.active, "extra": i.extra} for i in info.items]


def _add_item(eng: Any, who: Any, info: Any, lg: str) -> None:
    st.markdown(f"**{t('reflists.add_title')}**")
    with st.form(_k(f"add_{info.name}")):
        zh = st.text_input(t("reflists.col_zh"), key=_k("add_zh"))
        en = st.text_input(t("reflists.col_en"), key=_k("add_en"))
        value = st.text_input(t("reflists.col_value"), key=_k("add_value"), help=t("reflists.value_help"))
        if not st.form_submit_button(t("reflists.add"), type="primary", icon=":material/add:"):
            return
        if not (zh.strip() or en.strip()):
            st.error(t("reflists.label_missing"))
            return
        fresh = forms.get_choice_list(eng, info.name)  # re-read just before saving: keep others' additions
        value = value.strip() or dz.next_list_value(info.name, fresh.items, zh, en)
        if value in {i.value for i in fresh.items}:
            st.error(translate("reflists.value_exists", lg, value=md_escape(value)))
            return
        label = {k: v.strip() for k, v in (("zh", zh), ("en", en)) if v.strip()}
        label.setdefault("zh", label.get("en", value))
        try:
            _save_all(eng, who, fresh, _as_items(fresh) + [{"value": value, "label": label, "active": True}])
        except EngineError as exc:
            st.error(md_escape(error_text(exc)))
            return
        _done(translate("reflists.added", lg, label=label["zh"], value=value))


def _pick_item(info: Any, key: str, lg: str, *, only: bool | None = None) -> Any:
    items = {i.value: i for i in info.items if only is None or i.active == only}
    if not items:
        return None
    value = st.selectbox(t("reflists.item"), list(items), key=key, index=None,
                         format_func=lambda v: f"{_item_label(items[v], lg)} ({v})",
                         placeholder=t("reflists.item_placeholder"))
    return items.get(value) if value is not None else None


def _rename(eng: Any, who: Any, info: Any, lg: str) -> None:
    st.markdown(f"**{t('reflists.rename_title')}**")
    st.caption(t("reflists.rename_help"))
    item = _pick_item(info, _k(f"rename_pick_{info.name}"), lg)
    if item is None:
        return
    with st.form(_k(f"rename_{info.name}_{item.value}")):
        zh = st.text_input(t("reflists.col_zh"), value=item.label.get("zh", ""), key=_k(f"rename_zh_{item.value}"))
        en = st.text_input(t("reflists.col_en"), value=item.label.get("en", ""), key=_k(f"rename_en_{item.value}"))
        if not st.form_submit_button(t("reflists.rename"), type="primary"):
            return
        label = {k: v.strip() for k, v in (("zh", zh), ("en", en)) if v.strip()}
        if not label.get("zh"):
            st.error(t("reflists.label_missing"))
            return
        try:
            forms.rename_choice(eng, info.name, item.value, label, actor=who)
        except EngineError as exc:
            st.error(md_escape(error_text(exc)))
            return
        _done(translate("reflists.renamed", lg, value=item.value))


def _activation(eng: Any, who: Any, info: Any, lg: str) -> None:
    st.markdown(f"**{t('reflists.activation_title')}**")
    st.caption(t("reflists.activation_help"))
    item = _pick_item(info, _k(f"active_pick_{info.name}"), lg)
    if item is None:
        return
    label = t("reflists.deactivate") if item.active else t("reflists.reactivate")
    if st.button(label, key=_k(f"toggle_{info.name}_{item.value}"),
                 icon=":material/block:" if item.active else ":material/check_circle:"):
        try:
            forms.set_choice_active(eng, info.name, item.value, not item.active, actor=who)
        except EngineError as exc:
            st.error(md_escape(error_text(exc)))
            return
        done = "reflists.deactivated" if item.active else "reflists.reactivated"
        _done(translate(done, lg, label=_item_label(item, lg)))


def _import(eng: Any, who: Any, info: Any, lg: str) -> None:
    from engine.importers import read_table

    with st.expander(t("reflists.import_title"), icon=":material/upload_file:"):
        st.caption(t("reflists.import_help"))
        upload = st.file_uploader(t("reflists.import_file"), type=["csv", "xlsx"], key=_k(f"upload_{info.name}"))
        if upload is None:
            return
        try:
            table = read_table(upload)
            rows = [cells for _n, cells in table.rows()]
        except EngineError as exc:
            st.error(md_escape(error_text(exc)))
            return
        headers = [h or f"#{i + 1}" for i, h in enumerate(table.headers)]
        idx = list(range(len(headers)))
        c1, c2, c3 = st.columns(3)
        zh_col = c1.selectbox(t("reflists.import_zh"), idx, key=_k("imp_zh"), format_func=lambda i: headers[i])
        en_col = c2.selectbox(t("reflists.import_en"), idx, key=_k("imp_en"), index=None,
                              format_func=lambda i: headers[i], placeholder=t("reflists.none"))
        value_col = c3.selectbox(t("reflists.import_value"), idx, key=_k("imp_value"), index=None,
                                 format_func=lambda i: headers[i], placeholder=t("reflists.generated"))

        def cell(cells: list[str], i: int | None) -> str:
            return cells[i] if i is not None and i < len(cells) else ""

        merged = dz.merge_list_items(info.name, _as_items(info), (
            {"label_zh": cell(r, zh_col), "label_en": cell(r, en_col), "value": cell(r, value_col)} for r in rows))
        st.info(t("reflists.import_preview", added=len(merged.added), relabelled=len(merged.relabelled),
                  skipped=merged.skipped), icon=":material/info:")
        preview = [i for i in merged.items if i["value"] in set(merged.added)][:20]
        if preview:
            st.dataframe([{t("reflists.col_value"): i["value"], t("reflists.col_zh"): i["label"].get("zh", ""),
                           t("reflists.col_en"): i["label"].get("en", "")} for i in preview],
                         hide_index=True, width="stretch")
        if st.button(t("reflists.import_button"), key=_k(f"import_{info.name}"), type="primary",
                     disabled=not (merged.added or merged.relabelled)):
            try:
                _save_all(eng, who, info, merged.items)
            except EngineError as exc:
                st.error(md_escape(error_text(exc)) + "\n\n" + "\n".join(f"- {md_escape(p.describe(lg))}"
                                                              for p in exc.problems[:20]))
                return
            _done(translate("reflists.imported", lg, added=len(merged.added), relabelled=len(merged.relabelled)))


__all__ = ["render_reference_lists"]
