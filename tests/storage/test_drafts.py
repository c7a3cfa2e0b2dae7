"""Drafts (engine.designer) on SQLite and PostgreSQL: a draft never touches the published version
until it is published; every draft write is audited; new forms from scratch, templates, copies and
uploads; the impact shown before publishing; unsafe changes refused with their coded message."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import designer
from engine.db import session_scope
from engine.errors import ConflictError, EngineError, PermissionDenied
from engine.forms import get_spec, list_forms, publish
from engine.storage import create, get_record
from models.tables import Form, FormVersion
from tests.storage.conftest import ADMIN, CASE_SPEC, STAFF, audit_rows, count_rows

EDITOR = type(ADMIN)("editor1", "staff", form_editor=True)


def _draft_with_label(engine, slug: str, key: str, zh: str) -> dict:
    draft = designer.get_draft(engine, slug)
    return designer.update_field(draft, key, {"label": {"zh": zh, "en": "Changed"}})


def test_draft_edits_leave_the_published_version_alone_until_publish(cases):
    engine = cases
    before = get_spec(engine, "case").to_dict()
    info = designer.draft_info(engine, "case")
    assert not info.has_draft and info.version == 1 and info.draft == before

    draft = _draft_with_label(engine, "case", "name", "申请人姓名")
    draft = designer.add_field(draft, key="mediated", type="boolean", label_zh="是否调解", label_en="Mediated")
    saved = designer.save_draft(engine, "case", draft, actor=ADMIN, token=info.token)
    assert saved.has_draft and saved.updated_by == "admin1"

    # the published version, the entry form and new records are unchanged
    assert get_spec(engine, "case").to_dict() == before
    assert count_rows(engine, FormVersion) == 3
    sub = create(engine, "case", {"name": "张三"}, actor=STAFF)
    assert sub.form_version == 1
    assert get_record(engine, sub.id, actor=ADMIN).spec.field("mediated") is None

    # the draft is what the designer reopens
    again = designer.get_draft(engine, "case")
    assert again["fields"][0]["label"]["zh"] == "申请人姓名"
    assert again["fields"][-1]["key"] == "mediated"

    fv = designer.publish_draft(engine, "case", actor=ADMIN, note="加调解字段")
    assert fv.version == 2
    spec = get_spec(engine, "case")
    assert spec.field("name").label["zh"] == "申请人姓名" and spec.field("mediated") is not None
    assert not designer.draft_info(engine, "case").has_draft  # published: the draft is gone
    assert get_record(engine, sub.id, actor=ADMIN).version == 1  # the old record keeps its version


def test_every_draft_write_is_audited(cases):
    engine = cases
    draft = _draft_with_label(engine, "case", "kind", "案件类别")
    designer.save_draft(engine, "case", draft, actor=ADMIN)
    events = audit_rows(engine, "update", "case")
    assert [e.entity for e in events] == ["form_draft"]
    assert events[0].detail["fields_changed"] == ["kind"]
    assert designer.discard_draft(engine, "case", actor=ADMIN) is False
    assert [e.entity for e in audit_rows(engine, "delete", "case")] == ["form_draft"]
    assert not designer.draft_info(engine, "case").has_draft
    assert get_spec(engine, "case").field("kind").label["zh"] == "类别"


def test_a_draft_reverted_to_the_published_spec_is_no_draft(cases):
    engine = cases
    published = get_spec(engine, "case").to_dict()
    designer.save_draft(engine, "case", _draft_with_label(engine, "case", "name", "X"), actor=ADMIN)
    assert designer.draft_info(engine, "case").has_draft
    designer.save_draft(engine, "case", published, actor=ADMIN)
    assert not designer.draft_info(engine, "case").has_draft


def test_a_stale_save_is_refused_and_names_who_changed_the_draft(cases):
    engine = cases
    token = designer.draft_info(engine, "case").token
    designer.save_draft(engine, "case", _draft_with_label(engine, "case", "name", "甲"), actor=ADMIN, token=token)
    with pytest.raises(ConflictError) as err:
        designer.save_draft(engine, "case", _draft_with_label(engine, "case", "name", "乙"), actor=EDITOR,
                            token=token)
    assert err.value.code == "designer.draft_conflict" and err.value.params["by"] == "admin1"
    assert designer.get_draft(engine, "case")["fields"][0]["label"]["zh"] == "甲"


def test_only_form_designers_may_write_drafts(cases):
    with pytest.raises(PermissionDenied):
        designer.save_draft(cases, "case", designer.get_draft(cases, "case"), actor=STAFF)
    with pytest.raises(PermissionDenied):
        designer.new_form_draft(cases, "visit", "回访", actor=STAFF)
    info = designer.save_draft(cases, "case", _draft_with_label(cases, "case", "name", "姓名2"), actor=EDITOR)
    assert info.updated_by == "editor1"


def test_new_form_from_scratch_is_invisible_until_published_and_discarding_removes_it(engine):
    info = designer.new_form_draft(engine, "home_visit", {"zh": "上门走访", "en": "Home visit"}, actor=ADMIN)
    assert info.version == 0 and info.has_draft and info.draft["fields"] == []
    assert [e.entity for e in audit_rows(engine, "create", "home_visit")] == ["form_draft"]
    assert "home_visit" not in {f.slug for f in list_forms(engine)}
    assert "home_visit" in {f.slug for f in designer.list_designable(engine)}
    with pytest.raises(EngineError) as err:
        designer.new_form_draft(engine, "home_visit", "重复", actor=ADMIN)
    assert err.value.code == "designer.slug_taken"
    assert designer.discard_draft(engine, "home_visit", actor=ADMIN) is True
    assert count_rows(engine, Form, Form.slug == "home_visit") == 0


def test_new_form_as_copy_template_or_upload(cases):
    engine = cases
    publish(engine, dict(CASE_SPEC, fields=CASE_SPEC["fields"][:-1]), actor=ADMIN)  # old_note retired in v2
    copy = designer.new_form_draft(engine, "case_copy", "案件副本", actor=ADMIN, copy_of="case").draft
    keys = [f["key"] for f in copy["fields"]]
    assert "old_note" not in keys and keys[0] == "name"  # a new form carries no retired field
    assert copy["workflow"]["initial"] == "applied" and copy["slug"] == "case_copy"

    tpl = designer.new_form_draft(engine, "visit2", "回访2", actor=ADMIN, from_template="return_visit").draft
    assert tpl["slug"] == "visit2" and tpl["title"] == {"zh": "回访2"} and tpl["fields"]
    with pytest.raises(EngineError):
        designer.new_form_draft(engine, "visit3", "回访3", actor=ADMIN, from_template="../secrets")

    source, problems = designer.import_source(
        "slug: x\ntitle: 上传\nfields:\n  - {key: q1, type: text, label: 问题}\n".encode(), "f.yaml")
    assert problems == []
    up = designer.new_form_draft(engine, "uploaded", "上传的表", actor=ADMIN, source=source)
    assert up.draft["fields"] == [{"key": "q1", "type": "text", "label": {"zh": "问题"}}]
    data, problems = designer.import_source(b"slug: [unclosed", "bad.yaml")
    assert data is None and problems[0].code == "spec.syntax"


def test_check_draft_groups_problems_by_field_and_impact_shows_refusals(cases):
    engine = cases
    draft = designer.get_draft(engine, "case")
    draft = designer.update_field(draft, "amount", {"type": "integer"})  # money -> integer: refused
    draft = designer.add_field(draft, key="pick", type="select", label_zh="选择")  # no options yet
    problems = designer.check_draft(engine, draft)
    grouped = designer.group_problems(problems)
    assert [p.code for p in grouped["pick"]] == ["spec.choices_missing"]
    draft = designer.update_field(draft, "pick", {"choice_list": "no_such_list"})
    grouped = designer.group_problems(designer.check_draft(engine, draft))
    assert [p.code for p in grouped["pick"]] == ["spec.choice_list_unknown"]
    draft = designer.update_field(draft, "pick", {"choice_list": None, "choices": [{"value": "a"}]})
    grouped = designer.group_problems(designer.check_draft(engine, draft))
    assert [p.code for p in grouped["amount"]] == ["version.type_changed"]
    assert "retire" in grouped["amount"][0].message("en").lower()

    result = designer.impact(engine, "case", draft)
    assert not result.ok and [p.code for p in result.problems] == ["version.type_changed"]
    designer.save_draft(engine, "case", draft, actor=ADMIN)  # a draft may hold problems
    with pytest.raises(EngineError) as err:
        designer.publish_draft(engine, "case", actor=ADMIN)
    assert [p.code for p in err.value.problems] == ["version.type_changed"]
    assert designer.draft_info(engine, "case").has_draft  # the refused draft is kept for fixing
    assert get_spec(engine, "case").field("amount").type == "money"


def test_impact_counts_records_and_shows_samples_with_the_new_spec(cases):
    engine = cases
    for name in ("甲", "乙", "丙", "丁"):
        create(engine, "case", {"name": name, "kind": "civil", "old_note": "旧"}, actor=STAFF)
    draft = designer.get_draft(engine, "case")
    draft = designer.remove_field(draft, "old_note", published=designer.published_keys(engine, "case"))
    draft = designer.update_field(draft, "kind", {"label": {"zh": "案件种类", "en": "Case kind"}})
    draft = designer.add_field(draft, key="mediated", type="boolean", label_zh="是否调解")
    result = designer.impact(engine, "case", draft, lang="zh")
    assert result.ok and result.affected == 4
    kinds = {c.kind for c in result.changes}
    assert {"added", "retired", "relabelled"} <= kinds
    assert len(result.samples) == 3 and result.samples[0].id > result.samples[-1].id
    rows = {r.key: r for r in result.samples[0].rows}
    assert rows["old_note"].status == "retired" and rows["old_note"].text == "旧"
    assert rows["mediated"].status == "new" and rows["mediated"].text == ""
    assert rows["kind"].label == "案件种类" and rows["kind"].text == "民事"
    assert rows["id_no"].status == ""


def test_publish_of_an_unchanged_draft_makes_no_version(cases):
    engine = cases
    result = designer.impact(engine, "case", designer.get_draft(engine, "case"))
    assert result.unchanged
    designer.publish_draft(engine, "case", actor=ADMIN)
    with session_scope(engine, write=False) as s:
        assert s.execute(select(Form.current_version).where(Form.slug == "case")).scalar_one() == 1
