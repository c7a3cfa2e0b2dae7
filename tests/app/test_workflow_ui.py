"""The workflow panel of a record (pages/records.py) for the built-in intake workflow, in AppTest over a
real SQLite file: every step in order, refusal and termination with a reason, the lawyer picker of
the assignment, a step the role may not take, due dates and the overdue mark."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from engine.db import session_scope
from engine.errors import PermissionDenied
from engine.storage import get_record, transition
from models.tables import AuditEvent, Submission, utcnow
from tests.app.entry_helpers import (
    PageEnv,
    add_lawyers,
    button,
    has_button,
    make_intake,
    make_template,
    page_env,
    records_page,
    texts,
    unescape,
)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("workflow_tpl") / "console.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    for e in page_env(monkeypatch, tmp_path, template):
        add_lawyers(e.engine)
        yield e


def _state(env: PageEnv, rid: int) -> str | None:
    with session_scope(env.engine, write=False) as s:
        return s.get(Submission, rid).state


def _sub(env: PageEnv, rid: int) -> Submission:
    with session_scope(env.engine, write=False) as s:
        return s.get(Submission, rid)


def _shown(at) -> str:
    return unescape(texts(at))


def _step(at, label: str) -> None:
    button(at, label).click().run()
    assert not at.exception


def _to(env: PageEnv, rid: int, *keys: str, **kw) -> None:
    for key in keys:
        transition(env.engine, rid, key, actor=env.actor("manager"), **kw)


def test_every_intake_step_in_order(env: PageEnv) -> None:
    rid = make_intake(env, "流程甲", 131)
    at = env.app(records_page, "manager", "intake", id=rid).run()
    assert "当前状态：**申请**" in _shown(at)

    _step(at, "受理")
    assert _state(env, rid) == "accepted" and "已办理：受理" in _shown(at)
    _step(at, "开始审查")
    assert _state(env, rid) == "reviewing"
    due = _sub(env, rid).due_at
    assert due is not None and timedelta(days=6, hours=23) < due - utcnow() <= timedelta(days=7)
    assert "办理期限" in _shown(at) and "逾期" not in _shown(at)

    _step(at, "决定给予法律援助")
    assert _state(env, rid) == "granted"

    # assigning needs the lawyer: refused without, done with
    _step(at, "指派承办律师")
    assert _state(env, rid) == "granted"
    assert any("承办律师" in unescape(e.value) for e in at.error)
    picker = at.selectbox(key=f"record__{rid}__wf__assign__field")
    assert picker.options == ["陈志强", "梁晓珊"]
    picker.set_value("lw002").run()
    _step(at, "指派承办律师")
    assert _state(env, rid) == "assigned"
    assert get_record(env.engine, rid, actor=env.actor("admin")).data["lawyer"] == "lw002"

    _step(at, "开始承办")
    assert _state(env, rid) == "handling"
    _step(at, "结案")
    assert _state(env, rid) == "closed"
    _step(at, "归档")
    assert _state(env, rid) == "archived"
    assert "当前状态：**归档**" in _shown(at)
    assert "您当前没有可办理的步骤" in _shown(at)

    with session_scope(env.engine, write=False) as s:
        steps = s.exec(select(AuditEvent).where(AuditEvent.action == "transition", AuditEvent.entity_id == str(rid))
                       .order_by(AuditEvent.id)).all()
    assert [e.detail["transition"] for e in steps] == ["accept", "review", "grant", "assign", "handle", "close",
                                                       "archive"]
    assert all(e.username == "manager" for e in steps)
    history = "\n".join(df.value.to_string() for df in at.dataframe)
    assert "申请 → 受理" in history and "承办 → 结案" in history and "承办律师" in history


def test_refuse_needs_a_reason(env: PageEnv) -> None:
    rid = make_intake(env, "流程乙", 133)
    _to(env, rid, "accept", "review")
    at = env.app(records_page, "manager", "intake", id=rid).run()
    _step(at, "决定不予法律援助")
    assert _state(env, rid) == "reviewing"
    assert any("理由" in unescape(e.value) for e in at.error)
    at.text_area(key=f"record__{rid}__wf__refuse__reason").input("不符合经济困难标准").run()
    _step(at, "决定不予法律援助")
    assert _state(env, rid) == "refused"
    with session_scope(env.engine, write=False) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "transition")
                       .order_by(AuditEvent.id.desc())).first()
    assert event.detail["transition"] == "refuse" and event.detail["reason"] == "不符合经济困难标准"
    assert "理由：不符合经济困难标准" in "\n".join(df.value.to_string() for df in at.dataframe)
    assert "当前状态：**不予**" in _shown(at)


def test_terminate_with_a_reason(env: PageEnv) -> None:
    rid = make_intake(env, "流程丙", 135)
    _to(env, rid, "accept")
    at = env.app(records_page, "admin", "intake", id=rid).run()
    at.text_area(key=f"record__{rid}__wf__terminate__reason").input("受援人自行委托律师").run()
    _step(at, "终止法律援助")
    assert _state(env, rid) == "terminated"
    with session_scope(env.engine, write=False) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "transition")
                       .order_by(AuditEvent.id.desc())).first()
    assert event.detail["reason"] == "受援人自行委托律师"


def test_staff_cannot_grant(env: PageEnv) -> None:
    rid = make_intake(env, "流程丁", 137)
    _to(env, rid, "accept", "review")
    at = env.app(records_page, "staff", "intake", id=rid).run()
    assert not has_button(at, "决定给予法律援助")
    assert not has_button(at, "决定不予法律援助") and not has_button(at, "终止法律援助")
    assert has_button(at, "通知补充材料")  # what staff may do from here is offered
    with pytest.raises(PermissionDenied):
        transition(env.engine, rid, "grant", actor=env.actor("staff"))
    assert _state(env, rid) == "reviewing"


def test_overdue_mark_and_paused_clock(env: PageEnv) -> None:
    rid = make_intake(env, "流程戊", 139)
    _to(env, rid, "accept", "review")
    with session_scope(env.engine) as s:
        s.execute(update(Submission).where(Submission.id == rid).values(due_at=utcnow() - timedelta(days=2)))
    at = env.app(records_page, "staff", "intake", id=rid).run()
    assert "逾期" in _shown(at)
    listing = env.app(records_page, "staff", "intake").run()
    assert "审查 (逾期)" in "\n".join(df.value.to_string() for df in listing.dataframe)
    _step(at, "通知补充材料")
    assert _state(env, rid) == "waiting_materials"
    assert "暂停计时" in _shown(at) and "逾期" not in _shown(at)


def test_english_step_labels(env: PageEnv) -> None:
    rid = make_intake(env, "流程己", 141)
    at = env.app(records_page, "manager", "intake", lang="en", id=rid).run()
    assert has_button(at, "Accept")
    assert "Current state: **Applied**" in _shown(at)
