"""The retention page (pages/retention.py) in AppTest over a real SQLite file: admins only; shows the
plan (a count, never a name); applies only after the admin types that count; audited; the default
period is only a default."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy import update as sql_update

from engine.db import session_scope
from engine.retention import MARKER
from engine.storage import get_record
from models.tables import AuditEvent, Submission, utcnow
from tests.app.entry_helpers import PageEnv, button, has_button, make_intake, page_env, texts, unescape


def retention_page() -> None:
    from pages.retention import render_retention

    render_retention()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template_db: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template_db)


def _closed_long_ago(env: PageEnv, name: str, seq: int, years: int = 8) -> int:
    rid = make_intake(env, name, seq)
    with session_scope(env.engine) as s:
        s.execute(sql_update(Submission).where(Submission.id == rid).values(
            state="archived", state_since=utcnow() - timedelta(days=366 * years)))
    return rid


@pytest.mark.parametrize("username", ["manager", "staff", "outreach", "viewer"])
def test_only_admins_reach_the_page(env: PageEnv, username: str) -> None:
    _closed_long_ago(env, "甲某", 201)
    at = env.app(retention_page, username).run()
    assert not at.exception
    assert not at.button and not at.number_input and not at.metric


def test_admin_sees_the_plan_and_must_type_the_count(env: PageEnv) -> None:
    first = _closed_long_ago(env, "欧阳老案", 202)
    second = _closed_long_ago(env, "司马旧案", 204)
    recent = make_intake(env, "近期新案", 206)
    at = env.app(retention_page, "admin").run()
    assert not at.exception
    assert any("尚未设置默认" in c.value for c in at.caption)
    at.number_input(key="retention_years").set_value(5).run()
    assert at.metric[0].value == "2"
    shown = unescape(texts(at)) + "\n".join(str(df.value) for df in at.dataframe)
    assert "欧阳老案" not in shown and "司马旧案" not in shown  # the page names no one
    assert f"#{first}" in shown and f"#{second}" in shown
    apply = next(b for b in at.button if b.key == "retention_apply")
    assert apply.disabled  # nothing typed
    at.text_input(key="retention_confirm").input("3").run()
    assert next(b for b in at.button if b.key == "retention_apply").disabled
    at.text_input(key="retention_confirm").input("2").run()
    button(at, "执行处理").click().run()
    assert not at.exception
    assert any("已处理 2 条记录" in s.value for s in at.success)
    assert get_record(env.engine, first, actor=env.actor("admin")).data["name"] == MARKER
    assert get_record(env.engine, recent, actor=env.actor("admin")).data["name"] == "近期新案"
    with session_scope(env.engine, write=False) as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "retention")).scalars().all()
    assert {e.entity_id for e in events} == {str(first), str(second), "intake"}
    assert {e.username for e in events} == {"admin"}
    assert at.metric[0].value == "0"  # done: nothing left to process


def test_the_default_period_is_only_a_default(env: PageEnv) -> None:
    rid = _closed_long_ago(env, "诸葛旧案", 208)
    at = env.app(retention_page, "admin").run()
    at.number_input(key="retention_years").set_value(3).run()
    button(at, "设为默认年限").click().run()
    assert any("默认保留年限已保存" in s.value for s in at.success)
    again = env.app(retention_page, "admin").run()
    assert again.number_input(key="retention_years").value == 3
    assert any("默认保留年限：3 年" in c.value for c in again.caption)
    assert get_record(env.engine, rid, actor=env.actor("admin")).data["name"] == "诸葛旧案"  # nothing ran
    assert has_button(again, "清除默认年限")
    button(again, "清除默认年限").click().run()
    assert any("尚未设置默认" in c.value for c in again.caption)
