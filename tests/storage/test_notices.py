"""Notice PDFs of an intake record, read back with pdftotext: each holds the record's data (name, number,
cause, materials, deadline, decision reason and how to object, lawyer); sensitive values masked unless
revealed by a role that may; admin-edited templates with placeholder checks, reset and audit."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from engine.access import Actor
from engine.db import session_scope
from engine.eligibility import set_office
from engine.errors import EngineError, PermissionDenied
from engine.idnumber import make_id
from engine.notices import (
    KINDS,
    PLACEHOLDERS,
    available,
    blocks,
    check_template,
    default_template,
    notice_pdf,
    reset_template,
    save_template,
    template_text,
)
from engine.numbering import assign_number
from engine.storage import create, transition
from models.tables import AuditEvent, Submission
from tests.storage.conftest import ADMIN, MANAGER, STAFF

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")

TODAY = date(2026, 3, 18)
APPLICANT_ID = make_id("440803", "19800101", 123)


def pdf_text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF")
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return re.sub(r"\s+", "", out.decode("utf-8"))


def _record(engine, **extra: Any) -> int:
    values = {"application_date": "2026-03-16", "intake_channel": "window", "name": "王小明", "sex": "male",
              "id_doc_type": "resident_id", "id_number": APPLICANT_ID, "phone": "13802715634",
              "case_category": "civil", "legal_position": "plaintiff", "service_type": "litigation_agency",
              "case_cause": "labour_remuneration", "stage": "arbitration", "opposing_parties": "湛江市某建筑有限公司",
              "facts": "申请人被拖欠工资三个月，多次讨要未果。", "hardship_route": "exempt",
              "exemption_ground": "migrant_worker_wages_injury", "special_groups": ["migrant_worker"],
              "materials": {"application_form": {"answer": "yes", "note": ""},
                            "identity_proof": {"answer": "yes", "note": "复印件"},
                            "case_documents": {"answer": "no", "note": ""}},
              "missing_materials": "劳动合同复印件\n工资欠条"}
    values.update(extra)
    rid = int(create(engine, "intake", values, actor=STAFF).id)
    with session_scope(engine) as s:  # number it (storage.create does this once the hook is wired)
        sub = s.get(Submission, rid)
        if sub.number is None:
            sub.number = assign_number(s, "intake", 2026, "霞援申字〔{year}〕第{seq:04d}号")
            s.add(sub)
    return rid


@pytest.fixture
def office_set(loaded):
    from engine.forms import save_choice_list

    set_office(loaded, {"address": "湛江市霞山区人民大道南 1 号", "phone": "0759-1234567",
                        "justice_bureau": "湛江市霞山区司法局"}, actor=ADMIN)
    save_choice_list(loaded, "lawyers", {"zh": "律师"}, [
        {"value": "lw001", "label": {"zh": "陈志强", "en": "Chen Zhiqiang"}, "extra": {"law_firm": "广东某某律师事务所"}}],
        actor=ADMIN)
    return loaded


def test_receipt_lists_the_materials_received(office_set) -> None:
    rid = _record(office_set)
    text = pdf_text(notice_pdf(office_set, rid, "receipt", actor=STAFF, today=TODAY))
    for expected in ("法律援助申请材料接收凭证", "霞援申字〔2026〕第0001号", "王小明", "2026年3月16日", "劳动报酬",
                     "法律援助申请表", "申请人身份证明（复印件）", "共2项", "0759-1234567", "申请人签收", "2026年3月18日"):
        assert expected in text, expected
    assert "与案件相关的材料" not in text  # answered "no": not received
    assert APPLICANT_ID not in text and "440***********" + APPLICANT_ID[-4:] in text  # masked by default


def test_missing_materials_notice_lists_them_once_with_a_deadline(office_set) -> None:
    rid = _record(office_set)
    text = pdf_text(notice_pdf(office_set, rid, "missing_materials", actor=STAFF, today=TODAY))
    for expected in ("补充材料通知书", "王小明：", "第四十三条", "劳动合同复印件", "工资欠条",
                     "与案件相关的材料（起诉状、判决书、证据等）", "2026年4月2日前（15日内）", "视为撤回申请"):
        assert expected in text, expected


def test_grant_decision_cites_the_grounds(office_set) -> None:
    rid = _record(office_set)
    for step in ("accept", "review"):
        transition(office_set, rid, step, actor=STAFF)
    transition(office_set, rid, "grant", actor=MANAGER)
    assert {k.key for k in available(office_set, _sub(office_set, rid))} == {"receipt", "missing_materials", "grant"}
    text = pdf_text(notice_pdf(office_set, rid, "grant", actor=MANAGER, today=TODAY))
    for expected in ("给予法律援助决定书", "王小明：", "决定给予法律援助", "第四十二条第（三）项", "三日内指派律师",
                     "霞援申字〔2026〕第0001号"):
        assert expected in text, expected


def test_refusal_decision_gives_the_reason_and_how_to_object(office_set) -> None:
    rid = _record(office_set, refusal_reason="not_eligible_economic")
    for step in ("accept", "review"):
        transition(office_set, rid, step, actor=STAFF)
    transition(office_set, rid, "refuse", actor=MANAGER, reason="家庭月人均可支配收入高于本市标准")
    text = pdf_text(notice_pdf(office_set, rid, "refusal", actor=MANAGER, today=TODAY))
    for expected in ("不予法律援助决定书", "理由：不符合经济困难标准：家庭月人均可支配收入高于本市标准",
                     "可在收到本决定之日起十五日内向湛江市霞山区司法局提出异议", "王小明"):
        assert expected in text, expected


def test_assignment_notice_to_the_lawyer(office_set) -> None:
    rid = _record(office_set)
    for step in ("accept", "review"):
        transition(office_set, rid, step, actor=STAFF)
    transition(office_set, rid, "grant", actor=MANAGER)
    transition(office_set, rid, "assign", actor=MANAGER, values={"lawyer": "lw001"})
    text = pdf_text(notice_pdf(office_set, rid, "assignment", actor=MANAGER, reveal=True, today=TODAY))
    for expected in ("指派通知书", "广东某某律师事务所：", "指派你所陈志强律师承办", "王小明", "13802715634",
                     "湛江市某建筑有限公司", "仲裁", "三十日内"):
        assert expected in text, expected
    masked = pdf_text(notice_pdf(office_set, rid, "assignment", actor=STAFF, reveal=True, today=TODAY))
    assert "13802715634" not in masked and "138****5634" in masked  # staff may not reveal
    with session_scope(office_set, write=False) as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "export", AuditEvent.entity_id == str(rid))
                           .order_by(AuditEvent.id)).scalars().all()
    assert [(e.username, e.detail["notice"], e.detail["revealed"]) for e in events] == [
        ("boss", "assignment", True), ("li", "assignment", False)]


def _sub(engine, rid: int) -> Submission:
    with session_scope(engine, write=False) as s:
        return s.get(Submission, rid)


def test_default_templates_hold_only_known_placeholders() -> None:
    for kind in KINDS:
        assert check_template(default_template(kind)) == default_template(kind)


def test_template_editing_refuses_unknown_placeholders_and_can_be_reset(office_set) -> None:
    rid = _record(office_set)
    with pytest.raises(EngineError) as info:
        save_template(office_set, "receipt", "# 收据\n{name}{applicant_age}{name.upper}{phone!r}", actor=ADMIN)
    assert info.value.code == "notices.unknown_placeholder"
    message = info.value.message("zh")
    assert "{applicant_age}" in message and "{name.upper}" in message and "{phone!r}" in message
    assert "{name}" in message.split("可用的占位符：")[1] and "{materials_received}" in message
    with pytest.raises(EngineError) as info:
        save_template(office_set, "receipt", "# 收据 {name", actor=ADMIN)
    assert info.value.code == "notices.bad_template"
    with pytest.raises(PermissionDenied):
        save_template(office_set, "receipt", "# 收据\n{name}", actor=STAFF)

    save_template(office_set, "receipt", "# 收件回执（自定义）\n兹收到 {name} 的材料 {{共 {materials_count} 项}}：\n"
                  "- {materials_received}\n>> {office_name}", actor=ADMIN)
    assert template_text(office_set, "receipt")[1] is True
    text = pdf_text(notice_pdf(office_set, rid, "receipt", actor=STAFF, today=TODAY))
    assert "收件回执（自定义）" in text and "兹收到王小明的材料{共2项}" in text and "法律援助申请表" in text
    assert "本凭证仅证明" not in text
    reset_template(office_set, "receipt", actor=ADMIN)
    assert template_text(office_set, "receipt") == (default_template("receipt"), False)
    assert "本凭证仅证明" in pdf_text(notice_pdf(office_set, rid, "receipt", actor=STAFF, today=TODAY))
    with session_scope(office_set, write=False) as s:
        keys = s.execute(select(AuditEvent.entity_id, AuditEvent.detail).where(
            AuditEvent.action == "setting_update", AuditEvent.entity_id.like("notice_template:%"))).all()
    assert [(k, d.get("reset", False)) for k, d in keys] == [("notice_template:receipt", False),
                                                              ("notice_template:receipt", True)]


def test_blocks_layout_language() -> None:
    out = blocks("%% note\n# 标题\n| 姓名 | {name} |\n| 案由 | {case_cause} |\n\n- {grounds}\n- 固定项 {name}\n"
                 "[sign] 甲 | 乙\n>> {office_name}\n正文{opposing_parties}", {
                     "name": "张三", "case_cause": "工伤", "grounds": ["第一条", "第二条"], "office_name": "某处",
                     "opposing_parties": ["甲公司", "乙公司"]})
    assert [(b.kind, b.text, b.rows, b.labels) for b in out] == [
        ("heading", "标题", (), ()),
        ("kv", "", (("姓名", "张三"), ("案由", "工伤")), ()),
        ("item", "第一条", (), ()),
        ("item", "第二条", (), ()),
        ("item", "固定项 张三", (), ()),
        ("sign", "", (), ("甲", "乙")),
        ("right", "某处", (), ()),
        ("paragraph", "正文甲公司、乙公司", (), ()),
    ]
    assert set(PLACEHOLDERS) >= {"name", "number", "case_cause", "materials_received", "lawyer", "refusal_reason"}


def test_viewer_cannot_print(office_set) -> None:
    rid = _record(office_set)
    with pytest.raises(PermissionDenied):
        notice_pdf(office_set, rid, "receipt", actor=Actor("v", "outreach"))
    with pytest.raises(EngineError):
        notice_pdf(office_set, rid, "no_such_notice", actor=STAFF)
