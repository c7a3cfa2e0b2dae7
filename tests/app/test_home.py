"""The home page (pages/home.py) in AppTest over a real SQLite file: overdue records and records
awaiting the user's action (by role), today's outreach events, this month's counts per form."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from engine.access import SYSTEM
from engine.db import session_scope
from engine.forms import choice_lists, get_spec
from engine.home_queries import LOCAL_TZ, actionable_states, month_start
from engine.storage import bulk_create, create, transition
from models.tables import Submission, utcnow
from tests.app.entry_helpers import (
    PageEnv,
    home_page,
    intake_values,
    make_intake,
    make_template,
    page_env,
    texts,
    unescape,
)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("home_tpl") / "console.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template)


def _links(at) -> list:
    return [(unescape(pl.proto.label), pl.proto.page, pl.proto.query_string) for pl in at.page_link]


def _metric(at, label: str):
    return next(m.value for m in at.metric if m.label == label)


def _event(env: PageEnv, title: str, day: str) -> int:
    spec = get_spec(env.engine, "outreach_event")
    lists = choice_lists(env.engine)
    values: dict = {}
    for f in spec.active_fields:
        if not f.required or f.show_if is not None:
            continue
        if f.type in ("text", "textarea"):
            values[f.key] = "测试"
        elif f.type in ("select", "reference") and f.choices:
            values[f.key] = f.choices[0].value
        elif f.type == "reference" and f.choice_list:
            values[f.key] = lists[f.choice_list][0].value
        elif f.type == "multiselect" and f.choices:
            values[f.key] = [f.choices[0].value]
        elif f.type == "integer":
            values[f.key] = 1
    values[spec.title_field] = title
    values[spec.date_field] = day
    return int(create(env.engine, "outreach_event", values, actor=env.actor("outreach")).id)


def test_home_shows_an_overdue_record_first_with_a_link(env: PageEnv) -> None:
    late = make_intake(env, "逾期案", 151)
    for key in ("accept", "review"):
        transition(env.engine, late, key, actor=env.actor("manager"))
    with session_scope(env.engine) as s:
        s.execute(update(Submission).where(Submission.id == late).values(due_at=utcnow() - timedelta(days=3)))
    fresh = make_intake(env, "新申请", 153)
    at = env.app(home_page, "manager").run()
    assert not at.exception
    assert _metric(at, "已逾期") == "1"
    assert _metric(at, "待我办理") == "2"
    links = _links(at)
    overdue = [link for link in links if "逾期案" in link[0]]
    assert len(overdue) == 1 and "逾期" in overdue[0][0].split("逾期案", 1)[1]  # listed once, marked
    assert overdue[0][1] == "intake-records" and overdue[0][2] == f"id={late}"
    assert links[0] == overdue[0]  # the overdue section comes first
    waiting = [link for link in links if "新申请" in link[0]]
    assert waiting and waiting[0][2] == f"id={fresh}" and "申请" in waiting[0][0]
    assert "没有逾期的事项" not in unescape(texts(at))


def test_awaiting_follows_the_roles_of_the_workflow(env: PageEnv) -> None:
    granted = make_intake(env, "待指派", 155)
    for key in ("accept", "review", "grant"):
        transition(env.engine, granted, key, actor=env.actor("manager"))
    spec = get_spec(env.engine, "intake")
    assert "granted" in actionable_states(spec, env.actor("manager"))
    assert "granted" not in actionable_states(spec, env.actor("staff"))
    manager = env.app(home_page, "manager").run()
    assert any("待指派" in label for label, _p, _q in _links(manager))
    staff = env.app(home_page, "staff").run()
    assert not any("待指派" in label for label, _p, _q in _links(staff))
    assert "目前没有等待您办理的记录" in unescape(texts(staff))
    # a role that may not view intake records sees none of them
    outreach = env.app(home_page, "outreach").run()
    assert not any(page == "intake-records" for _l, page, _q in _links(outreach))


def test_todays_events_and_month_counts(env: PageEnv) -> None:
    today = datetime.now(LOCAL_TZ).date()
    event = _event(env, "今天的普法活动", today.isoformat())
    _event(env, "昨天的活动", (today - timedelta(days=1)).isoformat())
    make_intake(env, "本月一", 157)
    make_intake(env, "本月二", 159)
    old = intake_values("上月的", 161)
    old["_created_at"] = (month_start() - timedelta(days=2)).isoformat()
    bulk_create(env.engine, "intake", [old], actor=SYSTEM)
    at = env.app(home_page, "staff").run()
    assert not at.exception
    assert _metric(at, "今日活动") == "1"
    links = _links(at)
    assert ("今天的普法活动" in " ".join(label for label, _p, _q in links))
    assert not any("昨天的活动" in label for label, _p, _q in links)
    assert any(q == f"id={event}" and page == "outreach_event-records" for _l, page, q in links)
    assert _metric(at, "法律援助申请登记") == "2"
    assert _metric(at, "法律援助宣传活动") == "2"


def test_home_in_english(env: PageEnv) -> None:
    at = env.app(home_page, "viewer", lang="en").run()
    assert not at.exception
    shown = unescape(texts(at))
    assert "Nothing is overdue." in shown and "No outreach event today." in shown
