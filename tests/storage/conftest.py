"""Storage fixtures: small inline forms published into the real `engine` (SQLite file / PostgreSQL),
and `loaded`: an engine with the built-in forms and reference lists loaded."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from engine.access import Actor
from engine.db import session_scope
from models.tables import AuditEvent, Submission

ADMIN = Actor("admin1", "admin")
MANAGER = Actor("boss", "manager")
STAFF = Actor("li", "staff")
STAFF2 = Actor("wang", "staff")
OUTREACH = Actor("tablet", "outreach")
VIEWER = Actor("viewer1", "viewer")

CHOICES_KIND = [
    {"value": "civil", "label": {"zh": "民事", "en": "Civil"}},
    {"value": "criminal", "label": {"zh": "刑事", "en": "Criminal"}},
    {"value": "labour", "label": {"zh": "劳动", "en": "Labour"}},
]
CHOICES_TAGS = [
    {"value": "elderly", "label": {"zh": "老年人", "en": "Elderly"}},
    {"value": "migrant", "label": {"zh": "农民工", "en": "Migrant worker"}},
    {"value": "minor", "label": {"zh": "未成年人", "en": "Minor"}},
]

CASE_SPEC: dict[str, Any] = {
    "slug": "case",
    "title": {"zh": "援助案件", "en": "Aid case"},
    "category": "cases",
    "date_field": "applied_on",
    "title_field": "name",
    "access": {"submit": ["admin", "manager", "staff"], "view": ["admin", "manager", "staff", "viewer"],
               "edit": ["admin", "manager", "staff"], "reveal": ["admin", "manager"]},
    "fields": [
        {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True},
        {"key": "id_no", "type": "text", "label": {"zh": "证件号", "en": "Document no."}, "sensitive": True,
         "unique": True},
        {"key": "kind", "type": "select", "label": {"zh": "类别", "en": "Kind"}, "choices": CHOICES_KIND},
        {"key": "tags", "type": "multiselect", "label": {"zh": "群体", "en": "Groups"}, "choices": CHOICES_TAGS},
        {"key": "amount", "type": "money", "label": {"zh": "金额", "en": "Amount"}},
        {"key": "applied_on", "type": "date", "label": {"zh": "申请日期", "en": "Applied on"}},
        {"key": "lawyer", "type": "text", "label": {"zh": "承办律师", "en": "Lawyer"}},
        {"key": "old_note", "type": "text", "label": {"zh": "旧备注", "en": "Old note"}},
    ],
    "workflow": {
        "initial": "applied",
        "states": [
            {"key": "applied", "label": {"zh": "申请", "en": "Applied"}},
            {"key": "reviewing", "label": {"zh": "审查", "en": "Reviewing"}},
            {"key": "waiting", "label": {"zh": "等待补充材料", "en": "Waiting for materials"}},
            {"key": "granted", "label": {"zh": "给予", "en": "Granted"}},
            {"key": "refused", "label": {"zh": "不予", "en": "Refused"}, "terminal": True},
            {"key": "assigned", "label": {"zh": "指派", "en": "Assigned"}},
        ],
        "transitions": [
            {"key": "review", "label": {"zh": "开始审查", "en": "Review"}, "from": ["applied"], "to": "reviewing",
             "roles": ["admin", "manager", "staff"], "due_days": 7},
            {"key": "request", "label": {"zh": "通知补充材料", "en": "Request materials"}, "from": ["reviewing"],
             "to": "waiting", "roles": ["admin", "manager", "staff"], "pause": True},
            {"key": "resume", "label": {"zh": "材料已补齐", "en": "Materials in"}, "from": ["waiting"],
             "to": "reviewing", "roles": ["admin", "manager", "staff"]},
            {"key": "grant", "label": {"zh": "给予", "en": "Grant"}, "from": ["reviewing"], "to": "granted",
             "roles": ["admin", "manager"], "due_days": 3},
            {"key": "refuse", "label": {"zh": "不予", "en": "Refuse"}, "from": ["reviewing"], "to": "refused",
             "roles": ["admin", "manager"], "needs_reason": True},
            {"key": "assign", "label": {"zh": "指派", "en": "Assign"}, "from": ["granted"], "to": "assigned",
             "roles": ["admin", "manager"], "needs_field": "lawyer"},
        ],
    },
}

EVENT_SPEC: dict[str, Any] = {
    "slug": "evt",
    "title": {"zh": "活动", "en": "Event"},
    "access": {"submit": ["admin", "outreach"], "view": ["admin", "manager", "outreach"],
               "edit": ["admin", "outreach"]},
    "fields": [{"key": "title", "type": "text", "label": {"zh": "名称", "en": "Title"}, "required": True}],
}

SIGNUP_SPEC: dict[str, Any] = {
    "slug": "signup",
    "title": {"zh": "登记", "en": "Sign-up"},
    "parent": "evt",
    "access": {"submit": ["admin", "outreach"], "view": ["admin", "manager", "outreach"],
               "edit": ["admin", "outreach"]},
    "fields": [
        {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True},
        {"key": "case_ref", "type": "reference", "label": {"zh": "关联案件", "en": "Case"},
         "reference_form": "case"},
    ],
}


def case_spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(CASE_SPEC)
    spec.update(changes)
    return spec


def count_rows(engine: Engine, model: Any, *where: Any) -> int:
    with session_scope(engine, write=False) as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def audit_rows(engine: Engine, action: str | None = None, entity_id: Any = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if entity_id is not None:
        stmt = stmt.where(AuditEvent.entity_id == str(entity_id))
    with session_scope(engine, write=False) as s:
        return list(s.execute(stmt).scalars().all())


def submissions(engine: Engine) -> int:
    return count_rows(engine, Submission)


@pytest.fixture
def cases(engine: Engine) -> Engine:
    """`engine` with the inline forms case, evt and signup published."""
    from engine.forms import publish

    publish(engine, CASE_SPEC, actor=ADMIN)
    publish(engine, EVENT_SPEC, actor=ADMIN)
    publish(engine, SIGNUP_SPEC, actor=ADMIN)
    return engine


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    """`engine` with data/reference and data/forms loaded (fails if a built-in does not load)."""
    from engine.forms import load_builtins

    result = load_builtins(engine)
    assert result["problems"] == {}, result["problems"]
    return engine
