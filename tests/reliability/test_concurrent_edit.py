"""Concurrent editing: two sessions edit the same record. The second save gets the conflict message
naming the first user, and no edit is silently lost.

- engine, SQLite and PostgreSQL: a stale save is refused with ConflictError naming who saved first;
  the refused edit can be re-applied after a reload and then both edits are in the record's history;
  eight threads saving the same revision at the same instant: exactly one wins (the guarded UPDATE,
  not the early check, decides); an edit racing a workflow step or a delete: one wins, the other is
  told, and the record's revision counts every write that happened;
- pages (AppTest): the second user sees the conflict message with the first user's name, their
  typed values are still on screen, and nothing of theirs was written; the same for workflow steps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.access import Actor
from engine.db import get_engine, session_scope
from engine.errors import ConflictError, NotFound
from engine.storage import create, get_record, soft_delete, transition, update
from models.tables import AuditEvent, Submission
from tests.app.entry_helpers import (
    PageEnv,
    button,
    intake_values,
    make_intake,
    page_env,
    records_page,
    unescape,
)

MANAGER = Actor("manager", "manager")
STAFF = Actor("staff", "staff")
ADMIN = Actor("admin", "admin")


def _events(engine: Any, sid: int, action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.entity == "submission", AuditEvent.entity_id == str(sid))
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    with session_scope(engine, write=False) as s:
        return list(s.execute(stmt.order_by(AuditEvent.id)).scalars().all())


def _new(engine: Any, name: str, seq: int) -> int:
    return int(create(engine, "intake", intake_values(name, seq), actor=STAFF).id)


def _edited(engine: Any, sid: int, facts: str) -> dict[str, Any]:
    data = dict(get_record(engine, sid, actor=ADMIN).data)
    data["facts"] = facts
    return data


# --- engine ----------------------------------------------------------------------------------------
def test_stale_save_is_refused_naming_the_first_user_and_can_be_reapplied(loaded_url: str) -> None:
    engine = get_engine(loaded_url)
    sid = _new(engine, "并发甲", 301)
    first = _edited(engine, sid, "王主任补充的案情：申请人已提交户籍与收入证明。")
    second = _edited(engine, sid, "李干事补充的案情：申请人另有一名未成年子女。")
    update(engine, sid, first, actor=MANAGER, revision=1)
    with pytest.raises(ConflictError) as info:
        update(engine, sid, second, actor=STAFF, revision=1)
    assert info.value.code == "record.conflict" and info.value.params["by"] == "manager"
    assert "manager" in info.value.message("zh") and "manager" in info.value.message("en")
    rec = get_record(engine, sid, actor=ADMIN)
    assert rec.data["facts"] == first["facts"] and rec.submission.revision == 2
    # the refused user reloads and saves again: both edits are kept in the history, nothing lost
    merged = dict(rec.data)
    merged["facts"] = first["facts"] + second["facts"]
    update(engine, sid, merged, actor=STAFF, revision=rec.submission.revision)
    updates = _events(engine, sid, "update")
    assert [e.username for e in updates] == ["manager", "staff"]
    assert [e.detail["changes"]["facts"][1] for e in updates] == [first["facts"], merged["facts"]]


@pytest.mark.parametrize("writers", [8])
def test_simultaneous_saves_of_one_revision_exactly_one_wins(loaded_url: str, writers: int) -> None:
    engine = get_engine(loaded_url)
    sid = _new(engine, "并发乙", 302)
    base = get_record(engine, sid, actor=ADMIN).data
    gate = threading.Barrier(writers)
    won: list[int] = []
    lost: list[tuple[int, str]] = []
    other: list[BaseException] = []

    def save(n: int) -> None:
        data = dict(base)
        data["facts"] = f"第 {n} 位同事写下的案情摘要，内容足够长。"
        gate.wait()
        try:
            update(engine, sid, data, actor=Actor(f"staff{n}", "manager"), revision=1)
            won.append(n)
        except ConflictError as exc:
            lost.append((n, exc.params.get("by", "")))
        except BaseException as exc:  # pragma: no cover - reported below
            other.append(exc)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert other == []
    assert len(won) == 1 and len(lost) == writers - 1
    winner = won[0]
    assert {by for _n, by in lost} == {f"staff{winner}"}  # every loser is told who won
    rec = get_record(engine, sid, actor=ADMIN)
    assert rec.submission.revision == 2 and rec.data["facts"].startswith(f"第 {winner} 位")
    assert [e.username for e in _events(engine, sid, "update")] == [f"staff{winner}"]


def test_edit_racing_a_workflow_step_and_a_delete(loaded_url: str) -> None:
    engine = get_engine(loaded_url)
    sid = _new(engine, "并发丙", 303)
    data = _edited(engine, sid, "编辑与流程同时进行时写下的案情摘要。")
    transition(engine, sid, "accept", actor=MANAGER, revision=1)
    with pytest.raises(ConflictError) as info:
        update(engine, sid, data, actor=STAFF, revision=1)
    assert info.value.params["by"] == "manager"
    sub = get_record(engine, sid, actor=ADMIN).submission
    assert sub.state == "accepted" and sub.data["facts"] != data["facts"]
    update(engine, sid, _edited(engine, sid, data["facts"]), actor=STAFF, revision=sub.revision)
    soft_delete(engine, sid, actor=ADMIN)
    with pytest.raises(NotFound) as info:  # refused, and said so: "deleted, cannot be changed"
        update(engine, sid, _edited(engine, sid, "删除之后的修改。" * 3), actor=STAFF, revision=3)
    assert info.value.code == "record.deleted"
    with session_scope(engine, write=False) as s:
        row = s.get(Submission, sid)
        assert row.revision == 4 and row.data["facts"] == data["facts"]
    assert [e.action for e in _events(engine, sid)] == ["create", "transition", "update", "delete"]


# --- pages -----------------------------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template_db: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template_db)


def test_second_user_sees_who_saved_first_and_keeps_their_typing(env: PageEnv) -> None:
    rid = make_intake(env, "并发丁", 304)
    first = env.app(records_page, "manager", "intake", id=rid).run()
    second = env.app(records_page, "staff", "intake", id=rid).run()
    button(first, "编辑").click().run()
    button(second, "编辑").click().run()
    prefix = f"record__{rid}__form1__"
    first.text_area(key=prefix + "facts").input("王主任的修改：申请人已补齐材料，案情清楚。").run()
    button(first, "保存修改").click().run()
    second.text_area(key=prefix + "facts").input("李干事的修改：申请人另有两名未成年子女。").run()
    second.text_input(key=prefix + "occupation").input("木工").run()
    button(second, "保存修改").click().run()
    assert not second.exception
    errors = [unescape(e.value) for e in second.error]
    assert any("王主任" in e and "请重新加载" in e for e in errors), errors  # names the first user
    # what the second user typed is still there, unsaved, and can be copied into the reloaded record
    assert second.text_area(key=prefix + "facts").value == "李干事的修改：申请人另有两名未成年子女。"
    assert second.text_input(key=prefix + "occupation").value == "木工"
    data = get_record(env.engine, rid, actor=env.actor("admin")).data
    assert data["facts"] == "王主任的修改：申请人已补齐材料，案情清楚。" and data.get("occupation") != "木工"
    assert [e.username for e in _events(env.engine, rid, "update")] == ["manager"]


def test_second_workflow_step_on_a_changed_record_names_who_changed_it(env: PageEnv) -> None:
    rid = make_intake(env, "并发戊", 305)
    first = env.app(records_page, "manager", "intake", id=rid).run()
    second = env.app(records_page, "admin", "intake", id=rid).run()
    button(first, "受理").click().run()
    assert get_record(env.engine, rid, actor=env.actor("admin")).submission.state == "accepted"
    button(second, "受理").click().run()  # a stale button: the step was taken meanwhile
    assert not second.exception
    warnings = [unescape(w.value) for w in second.warning]
    assert any("王主任" in w and "没有执行" in w for w in warnings), warnings
    assert [e.action for e in _events(env.engine, rid)] == ["create", "transition"]


def test_record_deleted_while_being_edited_keeps_the_typing_on_screen(env: PageEnv) -> None:
    rid = make_intake(env, "并发己", 306)
    editor = env.app(records_page, "staff", "intake", id=rid).run()
    button(editor, "编辑").click().run()
    key = f"record__{rid}__form1__facts"
    editor.text_area(key=key).input("删除之后才保存的修改，内容足够长。").run()
    admin = env.app(records_page, "admin", "intake", id=rid).run()
    button(admin, "删除记录").click().run()
    button(admin, "确认删除").click().run()
    button(editor, "保存修改").click().run()
    assert not editor.exception
    assert any("尚未保存" in unescape(w.value) for w in editor.warning)
    assert "删除之后才保存的修改，内容足够长。" in [c.value for c in editor.code]
    editor.run()  # still there on the next rerun
    assert "删除之后才保存的修改，内容足够长。" in [c.value for c in editor.code]
    assert [e.action for e in _events(env.engine, rid)] == ["create", "delete"]
