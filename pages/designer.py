"""The form designer (admins and users with the form-editor right): `render_designer()`.

Everything edits the form's *draft* (engine.designer); the published version changes only when
"publish" is pressed, after the impact is shown. Each tab saves what it edits into the draft at once
(audited), and every problem of the draft is shown next to its field, with its coded message in the
user's language. Texts typed by users are shown escaped (never with unsafe_allow_html).

Tabs: fields (a spreadsheet grid, an "add field" form for tablets, one field's settings), display
conditions (pick field → controlling field → comparison → value), options / checklist items / counter
steps, workflow, access, list columns and dashboard dimensions, preview (the real entry renderer,
can be filled in and tried), publish (impact, refusals, note), backfill, export / import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import date
from typing import Any

import streamlit as st

from engine import designer as dz
from engine.errors import ConflictError, EngineError, Problem
from engine.fields import REGISTRY
from engine.messages import render
from models.spec import ROLES, FormSpec, as_ltext, ltext
from ui.auth import error_text, require_ability, role_label
from ui.i18n import t, translate
from ui.state import db, lang
from ui.widgets import md_escape

P = "designer"  # session-state prefix
FLASH = f"{P}__flash"
PICK = f"{P}__pick"
ACCESS_ACTIONS = ("submit", "view", "edit", "reveal")
_SHOWN_TYPES_WITH_CHOICES = ("select", "multiselect")
_NO_CONTROL_TYPES = ("note", "counter", "checklist")


# =====================================================================================================
# small helpers
# =====================================================================================================
def _gen(slug: str) -> int:
    return int(st.session_state.get(f"{P}__gen__{slug}", 0))


def _bump(slug: str) -> None:
    st.session_state[f"{P}__gen__{slug}"] = _gen(slug) + 1


def _k(slug: str, name: str) -> str:
    """A widget key that changes whenever the draft is saved (so editors reload from the new draft)."""
    return f"{P}__{slug}__{_gen(slug)}__{name}"


def _flash(message: str) -> None:
    st.session_state[FLASH] = message


def _type_label(name: str, lg: str) -> str:
    ftype = REGISTRY.get(name)
    return f"{ltext(ftype.label, lg)} ({name})" if ftype else str(name)


def _field_label(f: Mapping[str, Any], lg: str) -> str:
    return ltext(as_ltext(f.get("label")), lg) or str(f.get("key") or "?")


def _problem_lines(problems: list[Problem], lg: str) -> str:
    return "\n".join(f"- `{p.code}` {md_escape(p.message(lg))}" for p in problems)


def _save(slug: str, draft: dict[str, Any], token: str, done: str) -> bool:
    """Save the draft (audited); on success remember `done`, reload the editors and rerun."""
    eng, who = db(), require_ability("forms.design")
    try:
        dz.save_draft(eng, slug, draft, actor=who, token=token)
    except ConflictError as exc:
        st.error(md_escape(error_text(exc)), icon=":material/sync_problem:")
        return False
    except EngineError as exc:
        st.error(md_escape(error_text(exc)), icon=":material/error:")
        return False
    _flash(done)
    _bump(slug)
    st.rerun()
    return True  # pragma: no cover - st.rerun() does not return


def _apply(slug: str, info: dz.DraftInfo, change, done: str) -> None:
    """Run a pure draft edit (engine.designer helpers) and save it; show its coded refusal if any."""
    try:
        draft = change(info.draft)
    except EngineError as exc:
        st.error(md_escape(error_text(exc)), icon=":material/error:")
        return
    _save(slug, draft, info.token, done)


def _fields(info: dz.DraftInfo) -> list[dict[str, Any]]:
    return dz.field_dicts(info.draft)


def _active(info: dz.DraftInfo) -> list[dict[str, Any]]:
    return [f for f in _fields(info) if not f.get("retired") and f.get("key")]


def _parsed(draft: Mapping[str, Any]) -> FormSpec | None:
    from engine.spec import check_spec

    spec, _problems = check_spec(dict(draft))
    return spec


# =====================================================================================================
# page
# =====================================================================================================
def render_designer() -> None:
    """The designer page (st.Page target; ability "forms.design")."""
    who = require_ability("forms.design")
    eng, lg = db(), lang()
    st.title(t("designer.title"))
    message = st.session_state.pop(FLASH, None)
    if message:
        st.success(md_escape(message), icon=":material/check_circle:")
    slug = _pick_form(eng, lg)
    _create_panel(eng, who, lg)
    if slug is None:
        st.info(t("designer.pick_or_create"), icon=":material/info:")
        return
    try:
        info = dz.draft_info(eng, slug)
    except EngineError:
        st.session_state.pop(f"{P}__slug", None)
        st.info(t("designer.pick_or_create"))
        return
    problems = dz.check_draft(eng, info.draft)
    grouped = dz.group_problems(problems, info.draft)
    _header(info, problems, grouped, lg)
    names = ["tab_fields", "tab_conditions", "tab_options", "tab_workflow", "tab_access", "tab_lists",
             "tab_preview", "tab_publish", "tab_backfill", "tab_export"]
    tabs = st.tabs([t(f"designer.{n}") for n in names])
    with tabs[0]:
        _fields_tab(info, grouped, lg)
    with tabs[1]:
        _conditions_tab(info, grouped, lg)
    with tabs[2]:
        _options_tab(info, lg)
    with tabs[3]:
        _workflow_tab(info, grouped, lg)
    with tabs[4]:
        _access_tab(info, lg)
    with tabs[5]:
        _lists_tab(info, lg)
    with tabs[6]:
        _preview_tab(info.slug, lg)
    with tabs[7]:
        _publish_tab(info, lg)
    with tabs[8]:
        _backfill_tab(info, lg)
    with tabs[9]:
        _export_tab(info, lg)


def _pick_form(eng: Any, lg: str) -> str | None:
    entries = dz.list_designable(eng)
    by_slug = {e.slug: e for e in entries}
    wanted = st.session_state.get(f"{P}__slug") or st.query_params.get("form")
    if wanted not in by_slug:
        wanted = None
    if st.session_state.get(PICK) not in by_slug:
        st.session_state.pop(PICK, None)
        if wanted:
            st.session_state[PICK] = wanted

    def fmt(slug: str) -> str:
        e = by_slug[slug]
        parts = [f"{e.label(lg)} ({slug})"]
        parts.append(translate("designer.version_n", lg, v=e.version) if e.version else
                     translate("designer.unpublished", lg))
        if e.has_draft:
            parts.append(translate("designer.has_draft", lg))
        return " · ".join(parts)

    picked = st.selectbox(t("designer.pick_form"), list(by_slug), format_func=fmt, index=None, key=PICK,
                          placeholder=t("designer.pick_placeholder"))
    st.session_state[f"{P}__slug"] = picked
    return picked


def _create_panel(eng: Any, who: Any, lg: str) -> None:
    with st.expander(t("designer.create_title"), icon=":material/add_box:"):
        sources = ("blank", "copy", "template", "upload")
        source = st.radio(t("designer.create_from"), sources, key=f"{P}__new_source", horizontal=True,
                          format_func=lambda s: translate(f"designer.from_{s}", lg))
        cols = st.columns(3)
        slug = cols[0].text_input(t("designer.new_slug"), key=f"{P}__new_slug", help=t("designer.new_slug_help"))
        zh = cols[1].text_input(t("designer.new_title_zh"), key=f"{P}__new_title_zh")
        en = cols[2].text_input(t("designer.new_title_en"), key=f"{P}__new_title_en")
        kwargs: dict[str, Any] = {}
        if source == "copy":
            entries = dz.list_designable(eng)
            labels = {e.slug: f"{e.label(lg)} ({e.slug})" for e in entries}
            kwargs["copy_of"] = st.selectbox(t("designer.copy_of"), list(labels), key=f"{P}__new_copy",
                                             format_func=lambda s: labels.get(s, s))
        elif source == "template":
            tpls = dict(dz.templates())
            kwargs["from_template"] = st.selectbox(
                t("designer.template"), list(tpls), key=f"{P}__new_template",
                format_func=lambda n: f"{ltext(tpls.get(n, {}), lg) or n} ({n})")
        elif source == "upload":
            upload = st.file_uploader(t("designer.upload_file"), type=["yaml", "yml", "json", "xlsx"],
                                      key=f"{P}__new_upload")
            kwargs["upload"] = upload
        if not st.button(t("designer.create_button"), key=f"{P}__create", type="primary", icon=":material/add:"):
            return
        upload = kwargs.pop("upload", None)
        if source == "upload":
            if upload is None:
                st.error(t("designer.upload_missing"))
                return
            data, problems = dz.import_source(upload.getvalue(), upload.name, slug=slug.strip() or None)
            if data is None:
                st.error(translate("designer.upload_refused", lg, name=md_escape(upload.name)) + "\n\n"
                         + "\n".join(f"- {md_escape(p.describe(lg))}" for p in problems[:50]))
                return
            kwargs["source"] = data
            # a form moved from another console keeps its identifier and title unless new ones are typed
            slug = slug.strip() or str(data.get("slug") or "")
            if not zh.strip():
                file_title = as_ltext(data.get("title"))
                zh, en = file_title.get("zh", ""), en.strip() or file_title.get("en", "")
        try:
            dz.new_form_draft(eng, slug.strip(), {"zh": zh.strip(), "en": en.strip()}, actor=who, **kwargs)
        except EngineError as exc:
            st.error(md_escape(error_text(exc)) + ("\n\n" + _problem_lines(exc.problems, lg) if exc.problems else ""))
            return
        st.session_state[f"{P}__slug"] = slug.strip()
        st.session_state.pop(PICK, None)
        _flash(translate("designer.created", lg, slug=slug.strip()))
        st.rerun()


def _header(info: dz.DraftInfo, problems: list[Problem], grouped: dict, lg: str) -> None:
    from ui.records_view import local_time

    title = ltext(as_ltext(info.draft.get("title")), lg) or info.slug
    st.header(md_escape(title))
    facts = [translate("designer.version_n", lg, v=info.version) if info.version
             else translate("designer.unpublished", lg)]
    if info.has_draft:
        facts.append(translate("designer.draft_by", lg, by=md_escape(info.updated_by or "?"),
                               at=local_time(info.updated_at)))
    else:
        facts.append(translate("designer.no_draft", lg))
    st.caption(" · ".join(facts))
    if problems:
        st.warning(translate("designer.problem_count", lg, n=len(problems)), icon=":material/warning:")
        general = grouped.get(None) or []
        if general:
            st.markdown(_problem_lines(general, lg))
    else:
        st.success(t("designer.no_problems"), icon=":material/task_alt:")
    if info.has_draft or not info.published:
        label = t("designer.discard") if info.published else t("designer.discard_new")
        with st.popover(label, icon=":material/delete:"):
            st.write(t("designer.discard_confirm"))
            if st.button(t("designer.discard_yes"), key=f"{P}__discard", type="primary"):
                removed = dz.discard_draft(db(), info.slug, actor=require_ability("forms.design"))
                if removed:
                    st.session_state.pop(f"{P}__slug", None)
                    st.session_state.pop(PICK, None)
                _flash(t("designer.discarded"))
                _bump(info.slug)
                st.rerun()


# =====================================================================================================
# Fields
# =====================================================================================================
def _fields_tab(info: dz.DraftInfo, grouped: dict, lg: str) -> None:
    _form_settings(info, lg)
    _sections_editor(info, lg)
    st.subheader(t("designer.fields_grid"))
    st.caption(t("designer.grid_help"))
    _grid(info, grouped, lg)
    _field_problems(info, grouped, lg)
    c1, c2 = st.columns(2)
    with c1:
        _add_field_form(info, lg)
    with c2:
        _one_field(info, grouped, lg)


def _form_settings(info: dz.DraftInfo, lg: str) -> None:
    d = info.draft
    with st.expander(t("designer.form_settings"), icon=":material/settings:"), \
            st.form(_k(info.slug, "settings"), border=False):
        title, desc = as_ltext(d.get("title")), as_ltext(d.get("description"))
        c1, c2 = st.columns(2)
        tz = c1.text_input(t("designer.title_zh"), value=title.get("zh", ""))
        te = c2.text_input(t("designer.title_en"), value=title.get("en", ""))
        dzh = c1.text_area(t("designer.description_zh"), value=desc.get("zh", ""))
        den = c2.text_area(t("designer.description_en"), value=desc.get("en", ""))
        category = c1.text_input(t("designer.category"), value=str(d.get("category") or "general"),
                                 help=t("designer.category_help"))
        keys = [f["key"] for f in dz.field_dicts(d) if not f.get("retired") and f.get("key")]
        dates = [f["key"] for f in dz.field_dicts(d) if f.get("type") in ("date", "datetime") and f.get("key")]
        title_field = c2.selectbox(t("designer.title_field"), [""] + keys,
                                   index=([""] + keys).index(d.get("title_field")) if d.get("title_field") in keys else 0)
        date_field = c2.selectbox(t("designer.date_field"), [""] + dates,
                                  index=([""] + dates).index(d.get("date_field")) if d.get("date_field") in dates else 0)
        if st.form_submit_button(t("designer.save_settings"), type="primary"):
            new = dict(d)
            for name, value in (("title", {k: v.strip() for k, v in (("zh", tz), ("en", te)) if v.strip()}),
                                ("description", {k: v.strip() for k, v in (("zh", dzh), ("en", den)) if v.strip()}),
                                ("category", category.strip() or None), ("title_field", title_field or None),
                                ("date_field", date_field or None)):
                if value:
                    new[name] = value
                else:
                    new.pop(name, None)
            _save(info.slug, new, info.token, t("designer.saved"))


def _frame(rows: list[dict[str, Any]], columns: list[str]):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


def _records(df: Any) -> list[dict[str, Any]]:
    return df.to_dict("records") if hasattr(df, "to_dict") else list(df or [])


def _sections_editor(info: dz.DraftInfo, lg: str) -> None:
    cc = st.column_config
    with st.expander(t("designer.sections"), icon=":material/view_agenda:"):
        rows = dz.sections_to_rows(info.draft)
        edited = st.data_editor(
            _frame(rows, ["key", "title_zh", "title_en"]), key=_k(info.slug, "sections"), num_rows="dynamic",
            hide_index=True, width="stretch",
            column_config={"key": cc.TextColumn(t("designer.col_key"), required=True),
                           "title_zh": cc.TextColumn(t("designer.col_label_zh")),
                           "title_en": cc.TextColumn(t("designer.col_label_en"))})
        if st.button(t("designer.save_sections"), key=_k(info.slug, "save_sections")):
            new = dict(info.draft)
            sections = dz.rows_to_sections(_records(edited), info.draft.get("sections"))
            if sections:
                new["sections"] = sections
            else:
                new.pop("sections", None)
            _save(info.slug, new, info.token, t("designer.saved"))


GRID_EXTRA = ["problems"]


def _grid(info: dz.DraftInfo, grouped: dict, lg: str) -> None:
    cc = st.column_config
    rows = dz.fields_to_rows(info.draft, lg, grouped)
    sections = [""] + [s["key"] for s in dz.sections_to_rows(info.draft) if s["key"]]
    types = list(REGISTRY)
    config = {
        "key": cc.TextColumn(t("designer.col_key"), required=True, help=t("designer.col_key_help")),
        "type": cc.SelectboxColumn(t("designer.col_type"), options=types, required=True,
                                   format_func=lambda n, _lg=lg: _type_label(n, _lg)),
        "label_zh": cc.TextColumn(t("designer.col_label_zh")),
        "label_en": cc.TextColumn(t("designer.col_label_en")),
        "required": cc.CheckboxColumn(t("designer.col_required")),
        "choices": cc.TextColumn(t("designer.col_choices"), help=t("designer.col_choices_help")),
        "help_zh": cc.TextColumn(t("designer.col_help_zh")),
        "help_en": cc.TextColumn(t("designer.col_help_en")),
        "default": cc.TextColumn(t("designer.col_default")),
        "min": cc.NumberColumn(t("designer.col_min")),
        "max": cc.NumberColumn(t("designer.col_max")),
        "pattern": cc.TextColumn(t("designer.col_pattern"), help=t("designer.col_pattern_help")),
        "sensitive": cc.CheckboxColumn(t("designer.col_sensitive")),
        "section": cc.SelectboxColumn(t("designer.col_section"), options=sections),
        "retired": cc.CheckboxColumn(t("designer.col_retired"), disabled=True),
        "order": cc.NumberColumn(t("designer.col_order"), step=1, help=t("designer.col_order_help")),
        "problems": cc.TextColumn(t("designer.col_problems"), disabled=True, width="large"),
    }
    edited = st.data_editor(_frame(rows, list(dz.GRID_COLUMNS) + GRID_EXTRA), key=_k(info.slug, "grid"),
                            num_rows="dynamic", hide_index=True, width="stretch", column_config=config)
    changed = [dz.plain(r) for r in _records(edited)] != [dz.plain(r) for r in rows]
    c1, c2, _ = st.columns([1, 1, 2])
    if changed:
        st.info(t("designer.grid_unsaved"), icon=":material/edit:")
    if c1.button(t("designer.save_grid"), key=_k(info.slug, "save_grid"), type="primary", icon=":material/save:",
                 disabled=not changed):
        keep = dz.published_keys(db(), info.slug)
        fields = dz.rows_to_fields(_records(edited), info.draft, keep=keep)
        new = dict(info.draft)
        new["fields"] = fields
        _save(info.slug, new, info.token, t("designer.grid_saved"))
    if c2.button(t("designer.undo_grid"), key=_k(info.slug, "undo_grid"), disabled=not changed):
        _bump(info.slug)
        st.rerun()


def _field_problems(info: dz.DraftInfo, grouped: dict, lg: str) -> None:
    labels = {str(f.get("key")): _field_label(f, lg) for f in _fields(info)}
    keyed = [(k, v) for k, v in grouped.items() if k is not None]
    if not keyed:
        return
    with st.container(border=True):
        st.markdown(f"**{t('designer.problems_by_field')}**")
        for key, problems in keyed:
            st.markdown(f"**{md_escape(labels.get(key, key))}** ({md_escape(key)})\n" + _problem_lines(problems, lg))


def _add_field_form(info: dz.DraftInfo, lg: str) -> None:
    st.subheader(t("designer.add_field"))
    sections = [""] + [s["key"] for s in dz.sections_to_rows(info.draft) if s["key"]]
    with st.form(_k(info.slug, "add"), clear_on_submit=False):
        key = st.text_input(t("designer.col_key"), key=_k(info.slug, "add_key"), help=t("designer.col_key_help"))
        ftype = st.selectbox(t("designer.col_type"), list(REGISTRY), key=_k(info.slug, "add_type"),
                             format_func=lambda n: _type_label(n, lg))
        zh = st.text_input(t("designer.col_label_zh"), key=_k(info.slug, "add_label_zh"))
        en = st.text_input(t("designer.col_label_en"), key=_k(info.slug, "add_label_en"))
        choices = st.text_input(t("designer.col_choices"), key=_k(info.slug, "add_choices"),
                                help=t("designer.col_choices_help"))
        required = st.checkbox(t("designer.col_required"), key=_k(info.slug, "add_required"))
        section = st.selectbox(t("designer.col_section"), sections, key=_k(info.slug, "add_section"))
        if st.form_submit_button(t("designer.add_button"), type="primary", icon=":material/add:"):
            _apply(info.slug, info, lambda d: dz.add_field(
                d, key=key, type=ftype, label_zh=zh, label_en=en, choices=choices, required=required,
                section=section or None), translate("designer.field_added", lg, field=key.strip()))


def _one_field(info: dz.DraftInfo, grouped: dict, lg: str) -> None:
    st.subheader(t("designer.one_field"))
    fields = _fields(info)
    keys = [str(f.get("key")) for f in fields if f.get("key")]
    if not keys:
        st.caption(t("designer.no_fields"))
        return
    by_key = {str(f.get("key")): f for f in fields}
    key = st.selectbox(t("designer.pick_field"), keys, key=f"{P}__{info.slug}__one",
                       format_func=lambda k: f"{_field_label(by_key[k], lg)} ({k})"
                       + (f" · {translate('designer.retired', lg)}" if by_key[k].get("retired") else ""))
    f = by_key[key]
    for p in grouped.get(key, []):
        st.error(f"`{p.code}` {md_escape(p.message(lg))}", icon=":material/error:")
    published = dz.published_keys(db(), info.slug)
    c = st.columns(4)
    if c[0].button("↑", key=_k(info.slug, f"up_{key}"), help=t("designer.move_up")):
        _apply(info.slug, info, lambda d: dz.move_field(d, key, -1), t("designer.saved"))
    if c[1].button("↓", key=_k(info.slug, f"down_{key}"), help=t("designer.move_down")):
        _apply(info.slug, info, lambda d: dz.move_field(d, key, 1), t("designer.saved"))
    if f.get("retired"):
        if c[2].button(t("designer.restore"), key=_k(info.slug, f"restore_{key}")):
            _apply(info.slug, info, lambda d: dz.restore_field(d, key), t("designer.saved"))
    else:
        label = t("designer.retire") if key in published else t("designer.delete")
        if c[2].button(label, key=_k(info.slug, f"remove_{key}"), icon=":material/block:"):
            _apply(info.slug, info, lambda d: dz.remove_field(d, key, published), t("designer.saved"))
    if key in published and not f.get("retired"):
        st.caption(t("designer.retire_help"))
    _field_settings(info, f, lg)


def _field_settings(info: dz.DraftInfo, f: dict[str, Any], lg: str) -> None:
    """Every setting of one field allowed for its type (the grid's and the others), as one small form."""
    key = str(f["key"])
    ftype = REGISTRY.get(str(f.get("type")))
    allowed = ftype.allowed_attrs if ftype else frozenset()
    selects = [str(g.get("key")) for g in _fields(info) if g.get("type") == "select" and g.get("key") != key]
    with st.form(_k(info.slug, f"field_{key}")):
        label, help_ = as_ltext(f.get("label")), as_ltext(f.get("help"))
        c1, c2 = st.columns(2)
        out: dict[str, Any] = {
            "label": {"zh": c1.text_input(t("designer.col_label_zh"), value=label.get("zh", "")),
                      "en": c2.text_input(t("designer.col_label_en"), value=label.get("en", ""))},
            "help": {"zh": c1.text_input(t("designer.col_help_zh"), value=help_.get("zh", "")),
                     "en": c2.text_input(t("designer.col_help_en"), value=help_.get("en", ""))},
        }
        for flag in ("required", "sensitive", "unique"):
            if flag in allowed:
                out[flag] = st.checkbox(t(f"designer.col_{flag}"), value=bool(f.get(flag)))
        if "min" in allowed:
            out["min"] = c1.number_input(t("designer.col_min"), value=f.get("min"))
            out["max"] = c2.number_input(t("designer.col_max"), value=f.get("max"))
        if "min_length" in allowed:
            out["min_length"] = c1.number_input(t("designer.col_min_length"), value=f.get("min_length"), step=1,
                                                min_value=0)
            out["max_length"] = c2.number_input(t("designer.col_max_length"), value=f.get("max_length"), step=1,
                                                min_value=0)
        if "pattern" in allowed:
            out["pattern"] = st.text_input(t("designer.col_pattern"), value=str(f.get("pattern") or ""),
                                           help=t("designer.col_pattern_help"))
            pm = as_ltext(f.get("pattern_message"))
            out["pattern_message"] = {"zh": c1.text_input(t("designer.pattern_message_zh"), value=pm.get("zh", "")),
                                      "en": c2.text_input(t("designer.pattern_message_en"), value=pm.get("en", ""))}
        if "choice_list" in allowed:
            lists = sorted(_lists())
            current = f.get("choice_list")
            out["choice_list"] = st.selectbox(t("designer.choice_list"), [""] + lists,
                                              index=([""] + lists).index(current) if current in lists else 0,
                                              help=t("designer.choice_list_help"))
        if "reference_form" in allowed:
            forms_ = [e.slug for e in dz.list_designable(db())]
            current = f.get("reference_form")
            out["reference_form"] = st.selectbox(t("designer.reference_form"), [""] + forms_,
                                                 index=([""] + forms_).index(current) if current in forms_ else 0)
        for name in ("sex_field", "doc_type_field"):
            if name in allowed:
                current = f.get(name)
                out[name] = st.selectbox(t(f"designer.{name}"), [""] + selects,
                                         index=([""] + selects).index(current) if current in selects else 0)
        if "section" in allowed:
            sections = [""] + [s["key"] for s in dz.sections_to_rows(info.draft) if s["key"]]
            current = f.get("section")
            out["section"] = st.selectbox(t("designer.col_section"), sections,
                                          index=sections.index(current) if current in sections else 0)
        if not st.form_submit_button(t("designer.save_field"), type="primary"):
            return
    changes: dict[str, Any] = {}
    for name, value in out.items():
        if isinstance(value, dict):
            value = {k: v.strip() for k, v in value.items() if isinstance(v, str) and v.strip()}
        elif isinstance(value, str):
            value = value.strip() or None
        elif isinstance(value, float) and name in ("min_length", "max_length"):
            value = int(value)
        changes[name] = value
    if "choice_list" in changes and changes["choice_list"]:
        changes["choices"] = None
    _apply(info.slug, info, lambda d: dz.update_field(d, key, changes), t("designer.saved"))


def _lists() -> dict[str, list[Any]]:
    from engine.forms import choice_lists

    return choice_lists(db())


# =====================================================================================================
# Display conditions
# =====================================================================================================
def _conditions_tab(info: dz.DraftInfo, grouped: dict, lg: str) -> None:
    st.caption(t("designer.conditions_help"))
    active = _active(info)
    if len(active) < 2:
        st.info(t("designer.conditions_need_fields"))
        return
    by_key = {f["key"]: f for f in active}
    lists = _lists()
    overview = [{t("designer.col_field"): f"{_field_label(f, lg)} ({f['key']})",
                 t("designer.col_condition"): dz.describe_condition(f.get("show_if"), info.draft, lg, lists)}
                for f in active if f.get("show_if")]
    if overview:
        st.dataframe(overview, hide_index=True, width="stretch")
    target = st.selectbox(t("designer.cond_target"), list(by_key), key=f"{P}__{info.slug}__cond_target",
                          format_func=lambda k: f"{_field_label(by_key[k], lg)} ({k})")
    f = by_key[target]
    for p in [p for p in grouped.get(target, []) if "show_if" in p.code]:
        st.error(f"`{p.code}` {md_escape(p.message(lg))}", icon=":material/error:")
    st.markdown(t("designer.cond_now", text=md_escape(dz.describe_condition(f.get("show_if"), info.draft, lg, lists))))
    parts = dz.split_condition(f.get("show_if"))
    base = _k(info.slug, f"cond_{target}")
    if parts is None:
        st.warning(t("designer.cond_complex"))
        parts = ("all", [])
    mode0, leaves = parts
    if f"{base}__n" not in st.session_state:
        st.session_state[f"{base}__n"] = max(1, len(leaves))
    controls = {k: g for k, g in by_key.items() if k != target and g.get("type") not in _NO_CONTROL_TYPES}
    n = int(st.session_state[f"{base}__n"])
    mode = st.radio(t("designer.cond_mode"), ("all", "any"), key=f"{base}__mode", horizontal=True,
                    index=0 if mode0 == "all" else 1, format_func=lambda m: translate(f"designer.cond_{m}", lg))
    built: list[dict[str, Any]] = []
    complete = True
    for i in range(n):
        leaf = leaves[i] if i < len(leaves) else {}
        with st.container(border=True):
            part = _condition_row(base, i, leaf, controls, lists, lg)
        if part is None:
            complete = False
        else:
            built.append(part)
    c = st.columns(4)
    if c[0].button(t("designer.cond_add"), key=f"{base}__add", icon=":material/add:"):
        st.session_state[f"{base}__n"] = n + 1
        st.rerun()
    if n > 1 and c[1].button(t("designer.cond_remove_last"), key=f"{base}__pop"):
        st.session_state[f"{base}__n"] = n - 1
        st.rerun()
    if c[2].button(t("designer.cond_save"), key=f"{base}__save", type="primary"):
        if not complete or not built:
            st.error(translate("designer.cond_incomplete", lg))
        else:
            cond = dz.combine(built, mode)
            _apply(info.slug, info, lambda d: dz.update_field(d, target, {"show_if": cond}),
                   t("designer.cond_saved"))
    if f.get("show_if") and c[3].button(t("designer.cond_clear"), key=f"{base}__clear"):
        _apply(info.slug, info, lambda d: dz.update_field(d, target, {"show_if": None}), t("designer.cond_saved"))


def _condition_row(base: str, i: int, leaf: Mapping[str, Any], controls: dict[str, dict], lists: dict,
                   lg: str) -> dict[str, Any] | None:
    keys = list(controls)
    fkey = f"{base}__{i}__field"
    if fkey not in st.session_state and leaf.get("field") in controls:
        st.session_state[fkey] = leaf["field"]
    if st.session_state.get(fkey) not in controls:
        st.session_state.pop(fkey, None)
    c1, c2, c3 = st.columns([3, 2, 3])
    ctrl = c1.selectbox(t("designer.cond_field"), keys, key=fkey, index=None,
                        format_func=lambda k: f"{_field_label(controls[k], lg)} ({k})",
                        placeholder=t("designer.cond_pick_field"))
    if ctrl is None:
        return None
    g = controls[ctrl]
    ops = list(dz.ops_for(g))
    okey = f"{base}__{i}__op__{ctrl}"
    if okey not in st.session_state and leaf.get("field") == ctrl and leaf.get("op") in ops:
        st.session_state[okey] = leaf["op"]
    if st.session_state.get(okey) not in ops:
        st.session_state.pop(okey, None)
    op = c2.selectbox(t("designer.cond_op"), ops, key=okey, format_func=lambda o: render("cond." + o, lg))
    if op in dz.NO_VALUE_OPS:
        return dz.condition_from_parts(ctrl, op)
    seed = leaf.get("value") if leaf.get("field") == ctrl and leaf.get("op") == op else None
    with c3:
        value = _condition_value(f"{base}__{i}__value__{ctrl}__{op}", g, op, seed, lists, lg)
    try:
        return dz.condition_from_parts(ctrl, op, value)
    except EngineError:
        return None


def _condition_value(key: str, g: Mapping[str, Any], op: str, seed: Any, lists: dict, lg: str) -> Any:
    """The value widget for a controlling field: its options when it has options, else by its type."""
    label = t("designer.cond_value")
    choices = list(g.get("choices") or []) or [c.model_dump() for c in lists.get(str(g.get("choice_list") or ""), [])]
    ftype = g.get("type")
    if choices:
        labels = {str(c.get("value")): ltext(as_ltext(c.get("label")), lg) or str(c.get("value")) for c in choices}
        values = list(labels)
        if op in dz.LIST_OPS:
            if key not in st.session_state and isinstance(seed, list):
                st.session_state[key] = [v for v in seed if v in labels]
            return st.multiselect(label, values, key=key, format_func=lambda v: labels.get(v, v))
        if key not in st.session_state and seed in labels:
            st.session_state[key] = seed
        return st.selectbox(label, values, key=key, index=None, format_func=lambda v: labels.get(v, v),
                            placeholder=t("designer.cond_pick_value"))
    if ftype == "boolean":
        if key not in st.session_state and isinstance(seed, bool):
            st.session_state[key] = seed
        return st.selectbox(label, [True, False], key=key, index=None,
                            format_func=lambda v: render("cond.yes" if v else "cond.no", lg))
    if ftype in ("integer", "decimal", "money", "rating"):
        if key not in st.session_state and isinstance(seed, int | float):
            st.session_state[key] = float(seed)
        number = st.number_input(label, key=key, value=None)
        if number is None:
            return None
        return int(number) if ftype in ("integer", "rating") and float(number).is_integer() else number
    if ftype == "date":
        if key not in st.session_state and isinstance(seed, str):
            with contextlib.suppress(ValueError):
                st.session_state[key] = date.fromisoformat(seed)
        day = st.date_input(label, key=key, value=None)
        return day.isoformat() if isinstance(day, date) else None
    if key not in st.session_state and seed is not None:
        st.session_state[key] = str(seed)
    text = st.text_input(label, key=key)
    return text.strip() or None


# =====================================================================================================
# Options, checklist items, counter steps
# =====================================================================================================
def _options_tab(info: dz.DraftInfo, lg: str) -> None:
    cc = st.column_config
    fields = [f for f in _fields(info) if f.get("key")]
    with_choices = [f for f in fields if f.get("type") in _SHOWN_TYPES_WITH_CHOICES and not f.get("choice_list")]
    checklists = [f for f in fields if f.get("type") == "checklist"]
    counters = [f for f in fields if f.get("type") == "counter"]
    if not (with_choices or checklists or counters):
        st.info(t("designer.options_none"))
    if with_choices:
        st.subheader(t("designer.options_title"))
        by_choice = {f["key"]: f for f in with_choices}
        key = st.selectbox(t("designer.pick_field"), list(by_choice), key=f"{P}__{info.slug}__opt_field",
                           format_func=lambda k: f"{_field_label(by_choice[k], lg)} ({k})")
        f = by_choice[key]
        st.caption(t("designer.options_help"))
        edited = st.data_editor(
            _frame(dz.choices_to_rows(f), ["value", "label_zh", "label_en", "active"]),
            key=_k(info.slug, f"choices_{key}"), num_rows="dynamic", hide_index=True, width="stretch",
            column_config={"value": cc.TextColumn(t("designer.col_value"), required=True),
                           "label_zh": cc.TextColumn(t("designer.col_label_zh")),
                           "label_en": cc.TextColumn(t("designer.col_label_en")),
                           "active": cc.CheckboxColumn(t("designer.col_active"), default=True)})
        if st.button(t("designer.save_options"), key=_k(info.slug, f"save_choices_{key}")):
            published = _published_field(info.slug, key)
            choices = dz.rows_to_choices(_records(edited), (published or {}).get("choices") or [])
            _apply(info.slug, info, lambda d: dz.update_field(d, key, {"choices": choices}), t("designer.saved"))
        with st.form(_k(info.slug, f"add_choice_{key}")):
            st.markdown(f"**{t('designer.add_choice')}**")
            c1, c2, c3 = st.columns(3)
            value = c1.text_input(t("designer.col_value"), key=_k(info.slug, f"new_choice_value_{key}"),
                                  help=t("designer.choice_value_help"))
            zh = c2.text_input(t("designer.col_label_zh"), key=_k(info.slug, f"new_choice_zh_{key}"))
            en = c3.text_input(t("designer.col_label_en"), key=_k(info.slug, f"new_choice_en_{key}"))
            if st.form_submit_button(t("designer.add_choice_button"), icon=":material/add:"):
                _apply(info.slug, info, lambda d: dz.add_choice(d, key, value, zh, en),
                       translate("designer.choice_added", lg, value=(value or zh or en).strip()))
    if checklists:
        st.subheader(t("designer.items_title"))
        by_check = {f["key"]: f for f in checklists}
        key = st.selectbox(t("designer.pick_field"), list(by_check), key=f"{P}__{info.slug}__item_field",
                           format_func=lambda k: f"{_field_label(by_check[k], lg)} ({k})")
        st.caption(t("designer.items_help"))
        edited = st.data_editor(
            _frame(dz.items_to_rows(by_check[key]), ["key", "label_zh", "label_en", "group"]),
            key=_k(info.slug, f"items_{key}"), num_rows="dynamic", hide_index=True, width="stretch",
            column_config={"key": cc.TextColumn(t("designer.col_key"), required=True),
                           "label_zh": cc.TextColumn(t("designer.col_label_zh")),
                           "label_en": cc.TextColumn(t("designer.col_label_en")),
                           "group": cc.TextColumn(t("designer.col_group"))})
        if st.button(t("designer.save_items"), key=_k(info.slug, f"save_items_{key}")):
            items = dz.rows_to_items(_records(edited))
            _apply(info.slug, info, lambda d: dz.update_field(d, key, {"items": items}), t("designer.saved"))
    if counters:
        st.subheader(t("designer.steps_title"))
        for f in counters:
            steps = ", ".join(str(s) for s in f.get("steps") or [])
            text = st.text_input(f"{_field_label(f, lg)} ({f['key']})", value=steps,
                                 key=_k(info.slug, f"steps_{f['key']}"), help=t("designer.steps_help"))
            if st.button(t("designer.save_steps"), key=_k(info.slug, f"save_steps_{f['key']}")):
                parts = [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]
                steps_v: list[Any] = [int(p) if p.lstrip("-").isdigit() else p for p in parts]
                k = f["key"]
                _apply(info.slug, info, lambda d, k=k, s=steps_v: dz.update_field(d, k, {"steps": s or None}),
                       t("designer.saved"))


def _published_field(slug: str, key: str) -> dict[str, Any] | None:
    from engine.forms import get_spec

    try:
        f = get_spec(db(), slug).field(key)
    except EngineError:
        return None
    return f.model_dump(mode="json", by_alias=True, exclude_defaults=True) if f else None


# =====================================================================================================
# Workflow
# =====================================================================================================
def _workflow_tab(info: dz.DraftInfo, grouped: dict, lg: str) -> None:
    cc = st.column_config
    wf = info.draft.get("workflow")
    general = [p for p in grouped.get(None, []) if "workflow" in p.code or "transition" in p.code
               or "state" in p.code or "due_days" in p.code or "keep_due" in p.code or "needs_field" in p.code]
    if general:
        st.markdown(_problem_lines(general, lg))
    if not wf:
        st.info(t("designer.workflow_none"))
        if st.button(t("designer.workflow_add"), key=_k(info.slug, "wf_add"), icon=":material/add:"):
            new = dict(info.draft)
            new["workflow"] = {"initial": "new", "states": [{"key": "new", "label": {"zh": "新建", "en": "New"}}]}
            _save(info.slug, new, info.token, t("designer.saved"))
        return
    st.caption(t("designer.workflow_help"))
    st.markdown(f"**{t('designer.states')}**")
    states = st.data_editor(
        _frame(dz.states_to_rows(wf), ["key", "label_zh", "label_en", "terminal"]), key=_k(info.slug, "wf_states"),
        num_rows="dynamic", hide_index=True, width="stretch",
        column_config={"key": cc.TextColumn(t("designer.col_key"), required=True),
                       "label_zh": cc.TextColumn(t("designer.col_label_zh")),
                       "label_en": cc.TextColumn(t("designer.col_label_en")),
                       "terminal": cc.CheckboxColumn(t("designer.col_terminal"))})
    state_keys = [r["key"] for r in _records(states) if isinstance(r.get("key"), str) and r["key"]]
    initial = st.selectbox(t("designer.initial_state"), state_keys or [""], key=_k(info.slug, "wf_initial"),
                           index=state_keys.index(wf.get("initial")) if wf.get("initial") in state_keys else 0)
    st.markdown(f"**{t('designer.transitions')}**")
    st.caption(t("designer.transitions_help"))
    # The steps grid offers the *saved* states: options that changed while typing would make Streamlit
    # treat the grid as a new one and drop its unsaved edits.
    state_keys = [r["key"] for r in dz.states_to_rows(wf) if r["key"]]
    field_keys = [""] + [f["key"] for f in _active(info)]
    transitions = st.data_editor(
        _frame(dz.transitions_to_rows(wf), ["key", "label_zh", "label_en", "from", "to", "roles", "due_days",
                                            "keep_due", "needs_reason", "needs_field", "pause"]),
        key=_k(info.slug, "wf_transitions"), num_rows="dynamic", hide_index=True, width="stretch",
        column_config={
            "key": cc.TextColumn(t("designer.col_key"), required=True),
            "label_zh": cc.TextColumn(t("designer.col_label_zh")),
            "label_en": cc.TextColumn(t("designer.col_label_en")),
            "from": cc.MultiselectColumn(t("designer.col_from"), options=state_keys),
            "to": cc.SelectboxColumn(t("designer.col_to"), options=state_keys),
            "roles": cc.MultiselectColumn(t("designer.col_roles"), options=list(ROLES),
                                          format_func=lambda r, _lg=lg: role_label(r, _lg)),
            "due_days": cc.NumberColumn(t("designer.col_due_days"), min_value=0, step=1,
                                        help=t("designer.col_due_days_help")),
            "keep_due": cc.CheckboxColumn(t("designer.col_keep_due"), help=t("designer.col_keep_due_help")),
            "needs_reason": cc.CheckboxColumn(t("designer.col_needs_reason")),
            "needs_field": cc.SelectboxColumn(t("designer.col_needs_field"), options=field_keys),
            "pause": cc.CheckboxColumn(t("designer.col_pause"), help=t("designer.col_pause_help")),
        })
    c1, c2 = st.columns(2)
    if c1.button(t("designer.save_workflow"), key=_k(info.slug, "wf_save"), type="primary"):
        new = dict(info.draft)
        new["workflow"] = dz.rows_to_workflow(initial, _records(states), _records(transitions), wf)
        _save(info.slug, new, info.token, t("designer.saved"))
    if c2.button(t("designer.workflow_remove"), key=_k(info.slug, "wf_remove")):
        new = dict(info.draft)
        new.pop("workflow", None)
        _save(info.slug, new, info.token, t("designer.saved"))


# =====================================================================================================
# Access, list columns and dashboard dimensions
# =====================================================================================================
def _access_tab(info: dz.DraftInfo, lg: str) -> None:
    from models.spec import AccessSpec

    st.caption(t("designer.access_help"))
    defaults = AccessSpec().model_dump()
    current = {a: list((info.draft.get("access") or {}).get(a, defaults[a])) for a in ACCESS_ACTIONS}
    with st.form(_k(info.slug, "access")):
        head = st.columns([2] + [1] * len(ACCESS_ACTIONS))
        head[0].markdown(f"**{t('designer.col_role')}**")
        for col, action in zip(head[1:], ACCESS_ACTIONS, strict=True):
            col.markdown(f"**{t(f'designer.access_{action}')}**")
        picked: dict[str, list[str]] = {a: [] for a in ACCESS_ACTIONS}
        for role in ROLES:
            cols = st.columns([2] + [1] * len(ACCESS_ACTIONS))
            cols[0].write(role_label(role, lg))
            for col, action in zip(cols[1:], ACCESS_ACTIONS, strict=True):
                if col.checkbox(f"{role} {action}", value=role in current[action], label_visibility="collapsed",
                                key=_k(info.slug, f"access_{role}_{action}")):
                    picked[action].append(role)
        if st.form_submit_button(t("designer.save_access"), type="primary"):
            new = dict(info.draft)
            access = {a: picked[a] for a in ACCESS_ACTIONS if picked[a] != defaults[a]}
            if access:
                new["access"] = access
            else:
                new.pop("access", None)
            _save(info.slug, new, info.token, t("designer.saved"))


def _lists_tab(info: dz.DraftInfo, lg: str) -> None:
    active = _active(info)
    labels = {f["key"]: f"{_field_label(f, lg)} ({f['key']})" for f in active}
    dims = [f["key"] for f in active if f.get("type") in ("select", "multiselect", "boolean", "reference", "user",
                                                            "rating", "date")]
    with st.form(_k(info.slug, "lists")):
        cols = st.multiselect(t("designer.list_columns"), list(labels), help=t("designer.list_columns_help"),
                              default=[k for k in info.draft.get("list_columns") or [] if k in labels],
                              format_func=lambda k: labels.get(k, k))
        summary = st.multiselect(t("designer.summary"), dims, help=t("designer.summary_help"),
                                 default=[k for k in info.draft.get("summary") or [] if k in dims],
                                 format_func=lambda k: labels.get(k, k))
        if st.form_submit_button(t("designer.save_lists"), type="primary"):
            new = dict(info.draft)
            for name, value in (("list_columns", cols), ("summary", summary)):
                if value:
                    new[name] = list(value)
                else:
                    new.pop(name, None)
            _save(info.slug, new, info.token, t("designer.saved"))


# =====================================================================================================
# Preview: the real renderer, fillable; "try" validates and keeps nothing
# =====================================================================================================
@st.fragment
def _preview_tab(slug: str, lg: str) -> None:
    from engine.forms import choice_lists
    from engine.validate import ValidationContext, validate
    from ui.render import forget_widgets, initial_values, render_form

    eng, who = db(), require_ability("forms.design")
    draft = dz.get_draft(eng, slug)
    spec = _parsed(draft)
    if spec is None:
        st.warning(t("designer.preview_blocked"), icon=":material/warning:")
        return
    st.caption(t("designer.preview_help"))
    base = f"{P}__{slug}__preview"
    run = int(st.session_state.get(f"{base}__run", 0))
    prefix = f"{base}__{_gen(slug)}__{run}"
    errors = st.session_state.get(f"{base}__errors") or {}
    lists = choice_lists(eng)
    with st.container(border=True):
        st.subheader(md_escape(ltext(spec.title, lg) or slug))
        if ltext(spec.description, lg):
            st.caption(md_escape(ltext(spec.description, lg)))
        raw = render_form(spec, initial_values(spec), errors, prefix, lg, lists, engine=eng, actor=who)
    c1, c2 = st.columns(2)
    if c1.button(t("designer.preview_try"), key=f"{base}__try", type="primary", icon=":material/fact_check:"):
        _clean, problems = validate(spec, raw, ValidationContext(lang=lg, choice_lists=lists))
        st.session_state[f"{base}__errors"] = dict(problems)
        st.session_state[f"{base}__result"] = len(problems)
        st.rerun()
    if c2.button(t("designer.preview_clear"), key=f"{base}__clear"):
        forget_widgets(prefix)
        st.session_state[f"{base}__run"] = run + 1
        st.session_state.pop(f"{base}__errors", None)
        st.session_state.pop(f"{base}__result", None)
        st.rerun()
    result = st.session_state.get(f"{base}__result")
    if result == 0:
        st.success(t("designer.preview_ok"), icon=":material/check_circle:")
    elif result:
        st.error(t("designer.preview_errors", n=result), icon=":material/error:")


# =====================================================================================================
# Publish: impact first
# =====================================================================================================
def _change_detail(change: Any, lg: str) -> str:
    d = change.detail or {}
    bits = []
    for name in ("added", "deactivated", "reactivated", "relabelled", "items_added", "items_kept",
                 "transitions_added", "transitions_removed", "transitions_changed"):
        if isinstance(d.get(name), list) and d[name]:
            bits.append(f"{translate(f'designer.detail_{name}', lg)}: {', '.join(map(str, d[name]))}")
    if d.get("new_entries_only"):
        bits.append(translate("designer.detail_new_entries_only", lg))
    return "；".join(bits)


def _publish_tab(info: dz.DraftInfo, lg: str) -> None:
    from ui.records_view import page_for

    eng = db()
    result = dz.impact(eng, info.slug, info.draft, lang=lg)
    if result.plan is None:
        st.error(t("designer.publish_blocked"), icon=":material/block:")
        st.markdown(_problem_lines(result.problems, lg))
        return
    if result.unchanged:
        st.info(t("designer.publish_nothing"), icon=":material/info:")
    else:
        st.subheader(t("designer.changes"))
        for change in result.changes:
            label = change.describe(lg)
            more = _change_detail(change, lg)
            st.markdown(f"- {md_escape(label)}" + (f" — {md_escape(more)}" if more else ""))
    st.metric(t("designer.affected"), result.affected)
    if result.affected:
        st.caption(t("designer.affected_help"))
    if result.problems:
        st.error(t("designer.refused"), icon=":material/block:")
        for p in result.problems:
            where = f" ({md_escape(p.field)})" if p.field else ""
            st.markdown(f"- `{p.code}`{where} {md_escape(p.message(lg))}")
    if result.samples:
        st.subheader(t("designer.samples"))
        status = {"retired": t("designer.status_retired"), "new": t("designer.status_new"), "": ""}
        for sample in result.samples:
            with st.expander(t("designer.sample_title", id=sample.id, v=sample.version)):
                st.dataframe([{t("designer.col_field"): r.label, t("designer.col_value"): r.text,
                               t("designer.col_status"): status.get(r.status, r.status)} for r in sample.rows],
                             hide_index=True, width="stretch")
    note = st.text_input(t("designer.publish_note"), key=_k(info.slug, "publish_note"), help=t("designer.publish_note_help"))
    disabled = bool(result.problems) or result.unchanged
    if st.button(t("designer.publish_button"), key=_k(info.slug, "publish"), type="primary",
                 icon=":material/publish:", disabled=disabled):
        try:
            fv = dz.publish_draft(eng, info.slug, actor=require_ability("forms.design"), note=note.strip())
        except EngineError as exc:
            st.error(md_escape(error_text(exc)) + ("\n\n" + _problem_lines(exc.problems, lg) if exc.problems else ""))
            return
        _flash(translate("designer.published", lg, v=fv.version))
        st.session_state[f"{P}__published"] = info.slug
        _bump(info.slug)
        st.rerun()
    if st.session_state.get(f"{P}__published") == info.slug and info.published:
        title = ltext(as_ltext(info.draft.get("title")), lg) or info.slug
        st.page_link(page_for("entry", info.slug, title), label=t("designer.open_entry"),
                     icon=":material/open_in_new:")


# =====================================================================================================
# Backfill (explicit, audited)
# =====================================================================================================
def _backfill_tab(info: dz.DraftInfo, lg: str) -> None:
    from engine.backfill import backfill_fields, run_backfill
    from engine.forms import choice_lists, get_spec
    from engine.queries import ListQuery
    from ui.widgets import WidgetContext, render_widget

    st.caption(t("designer.backfill_help"))
    if not info.published:
        st.info(t("designer.backfill_unpublished"))
        return
    eng, who = db(), require_ability("forms.design")
    if not who.can("records.all"):
        st.info(t("designer.backfill_admin_only"))
        return
    spec = get_spec(eng, info.slug)
    fields = {f.key: f for f in backfill_fields(spec)}
    if not fields:
        st.info(t("designer.backfill_no_fields"))
        return
    base = _k(info.slug, "bf")
    key = st.selectbox(t("designer.backfill_field"), list(fields), key=f"{base}__field",
                       format_func=lambda k: f"{ltext(fields[k].label, lg) or k} ({k})")
    target = fields[key].model_copy(update={"required": False, "show_if": None, "default": None})
    ctx = WidgetContext(choice_lists=choice_lists(eng), engine=eng, actor=who)
    value = render_widget(target, None, f"{base}__value__{key}", lg, False, ctx)
    st.markdown(f"**{t('designer.backfill_filter')}**")
    c1, c2, c3 = st.columns(3)
    state = None
    if spec.workflow:
        states = {s.key: ltext(s.label, lg) or s.key for s in spec.workflow.states}
        state = c1.selectbox(t("designer.backfill_state"), list(states), index=None, key=f"{base}__state",
                             format_func=lambda s: states.get(s, s), placeholder=t("designer.backfill_any"))
    d_from = c2.date_input(t("designer.backfill_from"), value=None, key=f"{base}__from")
    d_to = c3.date_input(t("designer.backfill_to"), value=None, key=f"{base}__to")
    filterable = {f.key: f for f in spec.active_fields if f.type in ("select", "boolean") and f.key != key}
    filters: dict[str, Any] = {}
    if filterable:
        fc1, fc2 = st.columns(2)
        fkey = fc1.selectbox(t("designer.backfill_where"), list(filterable), index=None, key=f"{base}__where",
                             format_func=lambda k: f"{ltext(filterable[k].label, lg) or k} ({k})",
                             placeholder=t("designer.backfill_any"))
        if fkey:
            with fc2:
                fv = render_widget(filterable[fkey].model_copy(update={"required": False, "default": None}), None,
                                   f"{base}__where_value__{fkey}", lg, False, ctx)
            if fv not in (None, "", []):
                filters[fkey] = fv
    q = ListQuery(state=state, date_from=d_from, date_to=d_to, filters=filters)
    confirm = st.checkbox(t("designer.backfill_confirm"), key=f"{base}__confirm")
    b1, b2 = st.columns(2)
    count_clicked = b1.button(t("designer.backfill_count"), key=f"{base}__count")
    run_clicked = b2.button(t("designer.backfill_run"), key=f"{base}__run", type="primary", disabled=not confirm)
    if not (count_clicked or run_clicked):
        return
    try:
        result = run_backfill(eng, info.slug, key, value, filters=q, actor=who, dry_run=not run_clicked)
    except EngineError as exc:
        st.error(md_escape(error_text(exc)), icon=":material/error:")
        return
    if run_clicked:
        _flash(translate("designer.backfill_done", lg, n=result.count))
        _bump(info.slug)
        st.rerun()
    st.info(t("designer.backfill_would", n=result.count), icon=":material/info:")


# =====================================================================================================
# Export / import
# =====================================================================================================
def _export_tab(info: dz.DraftInfo, lg: str) -> None:
    from engine.spec import dump_spec
    from engine.xlsform import export_xlsform

    spec = _parsed(info.draft)
    st.subheader(t("designer.export_title"))
    if spec is None:
        st.warning(t("designer.export_blocked"))
    else:
        c = st.columns(3)
        c[0].download_button("YAML", dump_spec(spec, "yaml").encode("utf-8"), f"{info.slug}.yaml",
                             mime="application/x-yaml", key=_k(info.slug, "dl_yaml"), icon=":material/download:")
        c[1].download_button("JSON", dump_spec(spec, "json").encode("utf-8"), f"{info.slug}.json",
                             mime="application/json", key=_k(info.slug, "dl_json"), icon=":material/download:")
        c[2].download_button("XLSForm (.xlsx)", export_xlsform(spec), f"{info.slug}.xlsx",
                             mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                             key=_k(info.slug, "dl_xlsx"), icon=":material/download:")
        st.caption(t("designer.export_help"))
    st.subheader(t("designer.import_title"))
    st.caption(t("designer.import_help"))
    upload = st.file_uploader(t("designer.upload_file"), type=["yaml", "yml", "json", "xlsx"],
                              key=_k(info.slug, "import"))
    if upload is not None and st.button(t("designer.import_button"), key=_k(info.slug, "import_go")):
        data, problems = dz.import_source(upload.getvalue(), upload.name, slug=info.slug)
        if data is None:
            st.error(translate("designer.upload_refused", lg, name=md_escape(upload.name)) + "\n\n"
                     + "\n".join(f"- {md_escape(p.describe(lg))}" for p in problems[:50]))
            return
        _save(info.slug, data, info.token, t("designer.imported"))


__all__ = ["render_designer"]
