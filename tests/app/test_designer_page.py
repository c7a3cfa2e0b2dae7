"""The form designer (pages/designer.py) driven by AppTest over a real SQLite file.

- create a form with a field of every type through the grid (st.data_editor, its edit state seeded as
  a browser would send it) and a show_if built by picking field → operator → value; preview it (the
  real renderer, fillable, "try" validates and saves nothing); publish; fill a record on the entry page;
- retire one field, relabel another and add a third through the grid; the publish tab shows the impact;
  publish v2; the v1 record is intact in the detail view and in the export;
- an unsafe change (a type change) is shown next to its row and refused on publish with its message;
- the tablet path: the "add field" form, one field's settings, options and access without the grid.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from engine import designer as dz
from engine.access import SYSTEM
from engine.db import session_scope
from engine.forms import get_spec, publish
from models.tables import AuditEvent, Form, Submission
from tests.app.entry_helpers import (
    PageEnv,
    button,
    entry_page,
    make_template,
    page_env,
    records_page,
    texts,
    unescape,
)

SLUG = "all_kinds"
TYPES = {  # key -> (type, zh label, choices cell)
    "name": ("text", "姓名", ""),
    "story": ("textarea", "经过", ""),
    "people": ("integer", "人数", ""),
    "ratio": ("decimal", "比例", ""),
    "amount": ("money", "金额", ""),
    "day": ("date", "日期", ""),
    "moment": ("datetime", "时刻", ""),
    "clock": ("time", "时间", ""),
    "kind": ("select", "类别", "a=甲类/Kind A; b=乙类/Kind B; other=其他/Other"),
    "kind_other": ("text", "其他类别说明", ""),
    "tags": ("multiselect", "标签", "x=标签甲; y=标签乙"),
    "agree": ("boolean", "同意", ""),
    "checks": ("checklist", "核对", "c1=材料一; c2=材料二"),
    "score": ("rating", "评分", ""),
    "phone": ("phone", "电话", ""),
    "mail": ("email", "邮箱", ""),
    "idno": ("id_number", "身份证号", ""),
    "court": ("reference", "法院", "@courts"),
    "owner": ("user", "经办人", ""),
    "hint": ("note", "填写说明", ""),
    "taps": ("counter", "计数", ""),
}


def designer_page() -> None:
    from pages.designer import render_designer

    render_designer()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("designer_tpl") / "console.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template)


# --- helpers ---------------------------------------------------------------------------------------------
def by_suffix(elements, suffix: str):
    found = [e for e in elements if e.key and e.key.endswith(suffix)]
    assert len(found) == 1, f"{len(found)} elements with a key ending {suffix!r}: {[e.key for e in elements]}"
    return found[0]


def row(key: str, type_: str, zh: str, choices: str = "", **more) -> dict:
    base = {c: None for c in dz.GRID_COLUMNS}
    base.update({"key": key, "type": type_, "label_zh": zh, "label_en": "", "choices": choices, "required": False,
                 "sensitive": False, "retired": False, "help_zh": "", "help_en": "", "default": "", "pattern": "",
                 "section": ""})
    base.update(more)
    return base


def edit_grid(at, *, edited: dict | None = None, added: list | None = None, deleted: list | None = None):
    """Send the grid's edit state as the browser does, then press "save table changes"."""
    grid = by_suffix(at.data_editor, "__grid")
    at.session_state[grid.key] = {"edited_rows": edited or {}, "added_rows": added or [],
                                  "deleted_rows": deleted or []}
    at.run()
    assert not at.exception, at.exception
    by_suffix(at.button, "__save_grid").click().run()
    assert not at.exception, at.exception
    return at


def grid_rows(at) -> list[dict]:
    return by_suffix(at.data_editor, "__grid").value.to_dict("records")


def open_form(env: PageEnv, slug: str, username: str = "admin", lang: str = "zh"):
    at = env.app(designer_page, username, lang=lang)
    at.session_state["designer__slug"] = slug
    return at.run()


def form_rows(env: PageEnv, slug: str) -> list[Submission]:
    with session_scope(env.engine, write=False) as s:
        fid = s.exec(select(Form.id).where(Form.slug == slug)).one()
        return list(s.exec(select(Submission).where(Submission.form_id == fid).order_by(Submission.id)).all())


# --- the whole path: every type, show_if, preview, publish, fill ------------------------------------------
def test_create_every_type_with_a_show_if_preview_publish_and_fill(env: PageEnv) -> None:
    at = env.app(designer_page, "admin").run()
    assert not at.exception
    at.text_input(key="designer__new_slug").input(SLUG)
    at.text_input(key="designer__new_title_zh").input("全类型表单")
    at.text_input(key="designer__new_title_en").input("Every type")
    at.button(key="designer__create").click().run()
    assert not at.exception, at.exception
    assert "表单「all_kinds」的草稿已创建" in unescape(texts(at))
    assert dz.draft_info(env.engine, SLUG).version == 0

    # one field of every type, typed into the grid
    added = [row(k, ty, zh, ch, required=(k == "name")) for k, (ty, zh, ch) in TYPES.items()]
    edit_grid(at, added=added)
    draft = dz.get_draft(env.engine, SLUG)
    assert [f["key"] for f in draft["fields"]] == list(TYPES)
    assert {f["type"] for f in draft["fields"]} == set(dz.REGISTRY)  # every registered type
    assert dz.check_draft(env.engine, draft) == []
    assert "草稿没有问题" in texts(at)
    assert [r["key"] for r in grid_rows(at)] == list(TYPES)

    # show_if: pick the field, the controlling field, the operator, the value (nobody types an expression)
    by_suffix(at.selectbox, f"{SLUG}__cond_target").select("kind_other").run()
    by_suffix(at.selectbox, "cond_kind_other__0__field").select("kind").run()
    op = by_suffix(at.selectbox, "cond_kind_other__0__op__kind")
    assert op.value == "equals" and "是以下之一" in op.options
    value = by_suffix(at.selectbox, "cond_kind_other__0__value__kind__equals")
    assert value.options == ["甲类", "乙类", "其他"]  # the controlling field's options, by label
    value.select("other").run()
    by_suffix(at.button, "cond_kind_other__save").click().run()
    assert not at.exception, at.exception
    draft = dz.get_draft(env.engine, SLUG)
    assert draft["fields"][9]["show_if"] == {"field": "kind", "op": "equals", "value": "other"}
    assert "「类别」等于「其他」" in texts(at)

    # preview: the entry renderer; the conditional field appears live; "try" validates, nothing is saved
    prefix = f"designer__{SLUG}__preview__{dz_gen(at)}__0__"
    keys = {w.key for kind in ("text_input", "selectbox", "number_input") for w in getattr(at, kind)}
    assert prefix + "name" in keys and prefix + "kind_other" not in keys
    assert at.text_input(key=prefix + "name").label.endswith(":red[\\*]")
    by_suffix(at.button, "__preview__try").click().run()
    assert "此项必填" in [e.value for e in at.error]
    assert "有 1 处填写有误" in texts(at)
    at.text_input(key=prefix + "name").input("试填")
    at.selectbox(key=prefix + "kind").select("other").run()
    at.text_input(key=prefix + "kind_other").input("其他情况")
    by_suffix(at.button, "__preview__try").click().run()
    assert "填写内容全部有效" in texts(at)
    assert form_rows_count(env) == 0

    # publish: the impact lists the new fields; the form is live at once
    assert "新增字段「name」" in texts(at)
    by_suffix(at.text_input, "__publish_note").input("新表单")
    by_suffix(at.button, "__publish").click().run()
    assert not at.exception, at.exception
    assert "已发布第 1 版" in texts(at)
    spec = get_spec(env.engine, SLUG)
    assert [f.key for f in spec.fields] == list(TYPES) and spec.field("kind_other").show_if is not None
    assert not dz.draft_info(env.engine, SLUG).has_draft
    with session_scope(env.engine, write=False) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "publish", AuditEvent.entity_id == SLUG)).one()
    assert event.username == "admin" and event.detail["note"] == "新表单"

    # fill a record on the entry page
    entry = env.app(entry_page, "staff", SLUG).run()
    assert not entry.exception
    p = f"entry__{SLUG}__0__"
    assert p + "kind_other" not in {w.key for w in entry.text_input}
    entry.text_input(key=p + "name").input("王五")
    entry.number_input(key=p + "people").set_value(3)
    entry.text_area(key=p + "story").input("旧的经过")
    entry.selectbox(key=p + "kind").select("other").run()
    entry.text_input(key=p + "kind_other").input("邻里纠纷")
    entry.multiselect(key=p + "tags").set_value(["x"])
    entry.run()
    button(entry, "保存").click().run()
    assert not entry.exception, entry.exception
    rows = form_rows(env, SLUG)
    assert len(rows) == 1 and rows[0].form_version == 1
    assert rows[0].data["name"] == "王五" and rows[0].data["kind_other"] == "邻里纠纷"
    assert rows[0].data["people"] == 3 and rows[0].data["tags"] == ["x"]


def dz_gen(at) -> int:
    return int(at.session_state[f"designer__gen__{SLUG}"]) if f"designer__gen__{SLUG}" in at.session_state else 0


def form_rows_count(env: PageEnv) -> int:
    with session_scope(env.engine, write=False) as s:
        return len(s.exec(select(Submission)).all())


# --- version 2: retire, relabel, add; v1 records intact ----------------------------------------------------
V1 = {
    "slug": "visit", "title": {"zh": "回访登记", "en": "Return visit"},
    "fields": [
        {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True},
        {"key": "story", "type": "textarea", "label": {"zh": "经过", "en": "Story"}},
        {"key": "people", "type": "integer", "label": {"zh": "人数", "en": "People"}, "min": 0},
        {"key": "kind", "type": "select", "label": {"zh": "类别", "en": "Kind"},
         "choices": [{"value": "a", "label": {"zh": "甲类"}}, {"value": "b", "label": {"zh": "乙类"}}]},
    ],
}


@pytest.fixture
def visit(env: PageEnv) -> tuple[PageEnv, int]:
    from engine.storage import create

    publish(env.engine, V1, actor=SYSTEM)
    sub = create(env.engine, "visit", {"name": "赵六", "story": "旧事一件", "people": 3, "kind": "b"},
                 actor=env.actor("staff"))
    return env, int(sub.id)


def test_retire_relabel_add_then_publish_v2_keeps_v1_records(visit) -> None:
    env, rid = visit
    at = open_form(env, "visit")
    assert not at.exception, at.exception
    keys = [r["key"] for r in grid_rows(at)]
    edit_grid(at, edited={keys.index("people"): {"label_zh": "参加人数"}}, deleted=[keys.index("story")],
              added=[row("mediated", "boolean", "是否调解")])
    draft = dz.get_draft(env.engine, "visit")
    assert [(f["key"], f.get("retired", False)) for f in draft["fields"]] == [
        ("name", False), ("story", True), ("people", False), ("kind", False), ("mediated", False)]
    assert get_spec(env.engine, "visit").field("people").label["zh"] == "人数"  # published: untouched
    shown = texts(at)
    assert "新增字段「mediated」" in shown and "字段「story」停用" in shown and "字段「people」的名称已修改" in shown
    assert [m.value for m in at.metric] == ["1"]  # records of this form
    sample = [df.value for df in at.dataframe if "状态" in df.value.columns]
    assert sample, "the sample record table"
    table = sample[0].set_index("字段")
    assert table.loc["经过", "状态"] == "已停用" and table.loc["经过", "值"] == "旧事一件"
    assert table.loc["是否调解", "状态"] == "新字段（空）" and table.loc["参加人数", "值"] == "3"
    by_suffix(at.button, "__publish").click().run()
    assert "已发布第 2 版" in texts(at)
    spec = get_spec(env.engine, "visit")
    assert spec.field("story").retired and spec.field("people").label["zh"] == "参加人数"

    # the entry page shows v2 at once
    entry = env.app(entry_page, "staff", "visit").run()
    p = "entry__visit__0__"
    keys_shown = {w.key for kind in ("text_input", "text_area", "number_input", "toggle") for w in getattr(entry, kind)}
    assert p + "mediated" in keys_shown and p + "story" not in keys_shown
    assert entry.number_input(key=p + "people").label == "参加人数"

    # v1 record: intact in the detail view (its own version, the retired field marked) ...
    detail = env.app(records_page, "admin", "visit", id=rid).run()
    assert not detail.exception
    shown = unescape(texts(detail))
    assert "旧事一件" in shown and "已停用" in shown and "赵六" in shown and "乙类" in shown
    rec = form_rows(env, "visit")[0]
    assert rec.form_version == 1 and rec.revision == 1
    assert rec.data == {"name": "赵六", "story": "旧事一件", "people": 3, "kind": "b"}

    # ... and in the export
    from engine.exporters import export_records

    out = io.BytesIO()
    export_records(env.engine, "visit", out, "csv", actor=env.actor("admin"), headers="key")
    lines = out.getvalue().decode("utf-8-sig").splitlines()
    header = lines[0].split(",")
    cells = dict(zip(header, lines[1].split(","), strict=False))
    assert cells["story"] == "旧事一件" and cells["people"] == "3" and cells["kind"] == "b"
    assert cells["mediated"] == "" and cells["form_version"] == "1"


def test_an_unsafe_change_is_refused_with_its_message(visit) -> None:
    env, _rid = visit
    at = open_form(env, "visit")
    assert "表格有尚未保存的修改" not in texts(at)  # a fresh grid (numbers and blanks) is not "changed"
    assert by_suffix(at.button, "__save_grid").disabled
    keys = [r["key"] for r in grid_rows(at)]
    edit_grid(at, edited={keys.index("people"): {"type": "text"}})
    assert not at.exception
    people = next(r for r in grid_rows(at) if r["key"] == "people")
    assert "[version.type_changed] 字段「people」的类型不能" in people["problems"]  # next to its row
    assert "[spec.attr_not_allowed]" in people["problems"]  # and min means nothing for text
    assert "version.type_changed" in texts(at)  # the publish tab names the refusal too
    edit_grid(at, edited={keys.index("people"): {"min": None}})
    people = next(r for r in grid_rows(at) if r["key"] == "people")
    assert people["problems"].startswith("[version.type_changed]") and "attr_not_allowed" not in people["problems"]
    shown = texts(at)
    assert "字段「people」的类型不能从「integer」改为「text」" in unescape(shown)
    assert "另外新增一个使用新标识的字段" in shown  # what to do instead
    assert "这些修改会让已保存的数据被误读" in shown
    assert by_suffix(at.button, "__publish").disabled
    assert get_spec(env.engine, "visit").field("people").type == "integer"

    # English users read the same refusal in English
    en = open_form(env, "visit", lang="en")
    assert "Retire this field (remove it) and add a new field with a new key instead." in unescape(texts(en))


# --- the tablet path: no grid needed ----------------------------------------------------------------------
def test_add_field_form_field_settings_options_and_access(visit) -> None:
    env, _rid = visit
    at = open_form(env, "visit")
    by_suffix(at.text_input, "__add_key").input("visit_day")
    by_suffix(at.selectbox, "__add_type").select("date")
    by_suffix(at.text_input, "__add_label_zh").input("回访日期")
    by_suffix(at.text_input, "__add_label_en").input("Visit day")
    by_suffix(at.checkbox, "__add_required").check()
    button(at, "添加字段").click().run()
    assert not at.exception, at.exception
    assert "字段「visit_day」已添加到草稿" in unescape(texts(at))
    f = dz.get_draft(env.engine, "visit")["fields"][-1]
    assert f == {"key": "visit_day", "type": "date", "label": {"zh": "回访日期", "en": "Visit day"}, "required": True}

    # a key already used is refused with its coded message
    by_suffix(at.text_input, "__add_key").input("story")
    by_suffix(at.selectbox, "__add_type").select("text")
    button(at, "添加字段").click().run()
    assert any("标识不能重复使用" in e.value for e in at.error)

    # one field's settings: move up, then relabel in its own small form
    at.selectbox(key="designer__visit__one").select("visit_day").run()
    by_suffix(at.button, "__up_visit_day").click().run()
    assert [f["key"] for f in dz.get_draft(env.engine, "visit")["fields"]][-2:] == ["visit_day", "kind"]

    # options: add one, the select's values stay; access: outreach may submit
    at.selectbox(key="designer__visit__opt_field").select("kind").run()
    by_suffix(at.text_input, "__new_choice_value_kind").input("c")
    by_suffix(at.text_input, "__new_choice_zh_kind").input("丙类")
    button(at, "添加选项").click().run()
    assert not at.exception, at.exception
    kind = next(f for f in dz.get_draft(env.engine, "visit")["fields"] if f["key"] == "kind")
    assert [c["value"] for c in kind["choices"]] == ["a", "b", "c"]
    by_suffix(at.checkbox, "__access_outreach_submit").check()
    button(at, "保存权限").click().run()
    assert "outreach" in dz.get_draft(env.engine, "visit")["access"]["submit"]
    assert get_spec(env.engine, "visit").access.submit == ["admin", "manager", "staff"]  # draft only

    # export the draft as YAML / JSON / XLSForm
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["YAML", "JSON", "XLSForm (.xlsx)"]


def test_only_designers_reach_the_page(env: PageEnv) -> None:
    at = env.app(designer_page, "staff").run()
    assert "表单设计" not in [t.value for t in at.title]
    assert at.error and not at.data_editor


def _xlsform(rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "survey"
    for r in rows:
        ws.append(r)
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label::中文", "label::English"])
    choices.append(["yn", "yes", "是", "Yes"])
    choices.append(["yn", "no", "否", "No"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_new_form_from_an_xlsform_upload_or_refused_row_by_row(env: PageEnv) -> None:
    at = env.app(designer_page, "admin").run()
    at.radio(key="designer__new_source").set_value("upload").run()
    at.text_input(key="designer__new_slug").input("kobo_visit")
    at.text_input(key="designer__new_title_zh").input("走访（Kobo）")
    bad = _xlsform([["type", "name", "label::中文"], ["text", "who", "姓名"], ["geopoint", "where", "位置"],
                    ["select_one yn", "ok", "满意吗"]])
    at.file_uploader(key="designer__new_upload").set_value(("visit.xlsx", bad, "application/vnd.ms-excel")).run()
    at.button(key="designer__create").click().run()
    assert not at.exception, at.exception
    refused = "\n".join(e.value for e in at.error)
    assert "不能导入" in refused and "survey" in refused and "3" in refused  # sheet and row named
    with session_scope(env.engine, write=False) as s:
        assert s.exec(select(Form).where(Form.slug == "kobo_visit")).first() is None  # nothing half-imported

    good = _xlsform([["Type", "Name", "Label::中文", "Label::English", "Required"], ["text", "who", "姓名", "Name", "yes"],
                     ["select_one yn", "ok", "满意吗", "Satisfied?", ""]])
    at.file_uploader(key="designer__new_upload").set_value(("visit.xlsx", good, "application/vnd.ms-excel")).run()
    at.button(key="designer__create").click().run()
    assert not at.exception, at.exception
    draft = dz.get_draft(env.engine, "kobo_visit")
    assert [(f["key"], f["type"]) for f in draft["fields"]] == [("who", "text"), ("ok", "select")]
    assert draft["fields"][0]["label"] == {"zh": "姓名", "en": "Name"} and draft["fields"][0]["required"] is True
    assert draft["title"] == {"zh": "走访（Kobo）"}
    assert "草稿没有问题" in texts(at)


def test_workflow_grids_and_list_columns(visit) -> None:
    env, _rid = visit
    at = open_form(env, "visit")
    button(at, "添加流程").click().run()
    assert dz.get_draft(env.engine, "visit")["workflow"]["initial"] == "new"
    states = by_suffix(at.data_editor, "__wf_states")
    at.session_state[states.key] = {"edited_rows": {}, "deleted_rows": [], "added_rows": [
        {"key": "done", "label_zh": "已回访", "label_en": "Done", "terminal": True}]}
    at.run()
    button(at, "保存流程").click().run()
    transitions = by_suffix(at.data_editor, "__wf_transitions")
    at.session_state[transitions.key] = {"edited_rows": {}, "deleted_rows": [], "added_rows": [
        {"key": "finish", "label_zh": "完成回访", "from": ["new"], "to": "done", "roles": ["admin", "staff"],
         "due_days": 3, "needs_reason": False, "needs_field": "people", "pause": False}]}
    at.run()
    button(at, "保存流程").click().run()
    assert not at.exception, at.exception
    wf = dz.get_draft(env.engine, "visit")["workflow"]
    assert [s["key"] for s in wf["states"]] == ["new", "done"] and wf["states"][1]["terminal"] is True
    assert wf["transitions"] == [{"key": "finish", "label": {"zh": "完成回访"}, "from": ["new"], "to": "done",
                                  "roles": ["admin", "staff"], "due_days": 3, "needs_field": "people"}]
    assert dz.check_draft(env.engine, dz.get_draft(env.engine, "visit")) == []

    lists = [m for m in at.multiselect if m.label == "记录列表显示的列"][0]
    lists.set_value(["kind", "name"])
    button(at, "保存").click().run()
    assert dz.get_draft(env.engine, "visit")["list_columns"] == ["kind", "name"]


def test_keep_due_column_round_trips_through_the_draft_and_publish(visit) -> None:
    """The steps grid's "keep the running time limit" checkbox: saved into the draft, shown again, refused
    together with a number of days, reported as a changed step on the publish tab, published."""
    env, _rid = visit
    workflow_v2 = {"initial": "applied", "states": [{"key": "applied"}, {"key": "accepted"}, {"key": "reviewing"}],
                   "transitions": [{"key": "accept", "from": ["applied"], "to": "accepted", "due_days": 7},
                                   {"key": "review", "from": ["accepted"], "to": "reviewing", "due_days": 7}]}
    publish(env.engine, dict(V1, workflow=workflow_v2), actor=SYSTEM)
    at = open_form(env, "visit")
    grid = by_suffix(at.data_editor, "__wf_transitions")
    assert grid.value[["key", "keep_due"]].values.tolist() == [["accept", False], ["review", False]]

    # ticked while the days are still there: a coded problem naming the step, nothing publishable
    at.session_state[grid.key] = {"edited_rows": {1: {"keep_due": True}}, "added_rows": [], "deleted_rows": []}
    at.run()
    button(at, "保存流程").click().run()
    assert not at.exception, at.exception
    review = dz.get_draft(env.engine, "visit")["workflow"]["transitions"][1]
    assert review["keep_due"] is True and review["due_days"] == 7
    assert "spec.keep_due_with_due_days" in texts(at) and "「review」" in texts(at)
    assert "草稿还有问题，不能发布" in texts(at) and not [b for b in at.button if b.key.endswith("__publish")]

    # days cleared: the draft keeps the running limit, the grid shows the tick again
    grid = by_suffix(at.data_editor, "__wf_transitions")
    at.session_state[grid.key] = {"edited_rows": {1: {"due_days": None}}, "added_rows": [], "deleted_rows": []}
    at.run()
    button(at, "保存流程").click().run()
    assert not at.exception, at.exception
    review = dz.get_draft(env.engine, "visit")["workflow"]["transitions"][1]
    assert review == {"key": "review", "from": ["accepted"], "to": "reviewing", "keep_due": True}
    shown = by_suffix(at.data_editor, "__wf_transitions").value
    assert shown[["key", "keep_due", "due_days"]].fillna(-1).values.tolist() == [["accept", False, 7],
                                                                                ["review", True, -1]]
    assert "spec.keep_due_with_due_days" not in texts(at)
    assert "流程有变化 — 设置有变化的步骤（对按新版本登记的记录生效，已有记录按各自的版本办理）: review" in unescape(texts(at))

    by_suffix(at.button, "__publish").click().run()
    assert not at.exception, at.exception
    assert "已发布第 3 版" in texts(at)
    steps = {t.key: t for t in get_spec(env.engine, "visit").workflow.transitions}
    assert steps["review"].keep_due and steps["review"].due_days is None
    assert not steps["accept"].keep_due and steps["accept"].due_days == 7


def test_backfill_tab_counts_then_fills_only_after_confirmation(visit) -> None:
    env, rid = visit
    publish(env.engine, dict(V1, fields=V1["fields"] + [
        {"key": "outcome", "type": "select", "label": {"zh": "回访结果"},
         "choices": [{"value": "ok", "label": {"zh": "满意"}}, {"value": "bad", "label": {"zh": "不满意"}}]}]),
        actor=SYSTEM)
    at = open_form(env, "visit")
    by_suffix(at.selectbox, "__bf__field").select("outcome").run()
    by_suffix(at.selectbox, "__bf__value__outcome").select("ok").run()
    assert by_suffix(at.button, "__bf__run").disabled  # nothing without the confirmation
    by_suffix(at.button, "__bf__count").click().run()
    assert "有 1 条记录会被填写（还没有修改任何记录）" in texts(at)
    assert "outcome" not in form_rows(env, "visit")[0].data
    by_suffix(at.checkbox, "__bf__confirm").check().run()
    by_suffix(at.button, "__bf__run").click().run()
    assert not at.exception, at.exception
    assert "已回填 1 条记录" in texts(at)
    rec = form_rows(env, "visit")[0]
    assert rec.id == rid and rec.data["outcome"] == "ok" and rec.revision == 2 and rec.form_version == 1


def test_a_form_moves_between_consoles_as_yaml(visit) -> None:
    """Export on one console (the YAML download), import on another: same identifier, title and fields."""
    from engine.spec import dump_spec

    env, _rid = visit
    text = dump_spec(get_spec(env.engine, "visit"), "yaml").replace("slug: visit", "slug: visit_copy")
    at = env.app(designer_page, "admin").run()
    at.radio(key="designer__new_source").set_value("upload").run()
    at.file_uploader(key="designer__new_upload").set_value(("visit.yaml", text.encode(), "application/x-yaml")).run()
    at.button(key="designer__create").click().run()
    assert not at.exception, at.exception
    draft = dz.get_draft(env.engine, "visit_copy")
    assert draft["title"] == V1["title"]
    assert draft["fields"] == get_spec(env.engine, "visit").to_dict()["fields"]
