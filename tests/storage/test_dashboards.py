"""Dashboards (engine.dashboards) on real databases: every figure equals a hand-written SQL query on
the same data; filters (dates, liaison point, creator) narrow them; the cache follows writes (the
"data:<slug>" change stamp); roles without the ability, or without view access, are refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from engine import dashboards
from engine.access import SYSTEM, Actor
from engine.dashboards import DashboardFilter, form_dashboard
from engine.errors import PermissionDenied
from engine.forms import load_builtins, publish
from engine.storage import bulk_create, create, soft_delete, transition

MANAGER = Actor("boss", "manager")
STAFF = Actor("li", "staff")
OUTREACH = Actor("tablet", "outreach")

MINI: dict[str, Any] = {
    "slug": "mini",
    "title": {"zh": "小表", "en": "Mini"},
    "date_field": "day",
    "summary": ["kind", "tags", "urgent", "liaison_point", "remark"],
    "access": {"submit": ["admin", "manager", "staff"], "view": ["admin", "manager", "staff"]},
    "fields": [
        {"key": "day", "type": "date", "label": {"zh": "日期", "en": "Day"}, "required": True},
        {"key": "kind", "type": "select", "label": {"zh": "类别", "en": "Kind"}, "choices": [
            {"value": "civil", "label": {"zh": "民事", "en": "Civil"}},
            {"value": "criminal", "label": {"zh": "刑事", "en": "Criminal"}},
            {"value": "labour", "label": {"zh": "劳动", "en": "Labour"}}]},
        {"key": "tags", "type": "multiselect", "label": {"zh": "群体", "en": "Groups"}, "choices": [
            {"value": "elderly", "label": {"zh": "老年人", "en": "Elderly"}},
            {"value": "women", "label": {"zh": "妇女", "en": "Women"}},
            {"value": "minor", "label": {"zh": "未成年人", "en": "Minor"}}]},
        {"key": "urgent", "type": "boolean", "label": {"zh": "紧急", "en": "Urgent"}},
        {"key": "liaison_point", "type": "reference", "label": {"zh": "联络点", "en": "Liaison point"},
         "choice_list": "liaison_points"},
        {"key": "remark", "type": "textarea", "label": {"zh": "备注", "en": "Remark"}},
    ],
    "workflow": {
        "initial": "new",
        "states": [{"key": "new", "label": {"zh": "新建", "en": "New"}},
                   {"key": "doing", "label": {"zh": "办理", "en": "Doing"}},
                   {"key": "done", "label": {"zh": "完成", "en": "Done"}, "terminal": True}],
        "transitions": [
            {"key": "start", "label": {"zh": "开始", "en": "Start"}, "from": ["new"], "to": "doing",
             "roles": ["admin", "manager", "staff"], "due_days": 3},
            {"key": "finish", "label": {"zh": "完成", "en": "Finish"}, "from": ["doing"], "to": "done",
             "roles": ["admin", "manager", "staff"]}],
    },
}

PAST = (datetime.now(UTC) - timedelta(days=2)).isoformat()
FUTURE = (datetime.now(UTC) + timedelta(days=5)).isoformat()


@pytest.fixture
def mini(engine: Engine) -> Engine:
    load_builtins(engine)
    publish(engine, MINI, actor=SYSTEM)
    rows = []
    kinds = ["civil", "criminal", "labour", None]
    tags = [["elderly"], ["elderly", "women"], [], ["women", "minor"], None]
    for i in range(40):
        row: dict[str, Any] = {"day": (date(2025, 1, 5) + timedelta(days=9 * i)).isoformat(),
                               "_created_by": ("li", "wang", "chen")[i % 3],
                               "_state": ("new", "doing", "done")[i % 3]}
        if kinds[i % 4]:
            row["kind"] = kinds[i % 4]
        if tags[i % 5]:
            row["tags"] = tags[i % 5]
        if i % 2:
            row["urgent"] = i % 4 == 1
        if i % 6 == 0:
            row["liaison_point"] = "lp03" if i % 12 == 0 else "lp07"
        if row["_state"] == "doing":
            row["_due_at"] = PAST if i % 2 else FUTURE
        rows.append(row)
    bulk_create(engine, "mini", rows, actor=SYSTEM)
    return engine


def sql(engine: Engine, pg: str, lite: str, **params: Any) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(pg if engine.dialect.name == "postgresql" else lite), params)]


def form_id(engine: Engine) -> int:
    return sql(engine, "SELECT id FROM forms WHERE slug = 'mini'", "SELECT id FROM forms WHERE slug = 'mini'")[0][0]


def test_figures_equal_hand_written_sql(mini):
    fid = form_id(mini)
    dash = form_dashboard(mini, "mini", actor=MANAGER)
    total = sql(mini, "SELECT count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL",
                "SELECT count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL", f=fid)[0][0]
    assert dash.total == total == 40
    months = sql(mini,
                 "SELECT substr(data->>'day', 1, 7) m, count(*) FROM submissions WHERE form_id = :f "
                 "AND deleted_at IS NULL GROUP BY m ORDER BY m",
                 "SELECT substr(json_extract(data, '$.day'), 1, 7) m, count(*) FROM submissions WHERE form_id = :f "
                 "AND deleted_at IS NULL GROUP BY m ORDER BY m", f=fid)
    assert dash.by_month == [(m, n) for m, n in months]
    kinds = dict(sql(mini,
                     "SELECT data->>'kind', count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL "
                     "GROUP BY 1",
                     "SELECT json_extract(data, '$.kind'), count(*) FROM submissions WHERE form_id = :f "
                     "AND deleted_at IS NULL GROUP BY 1", f=fid))
    by = {b.key: b for b in dash.breakdowns}
    assert {bar.value: bar.count for bar in by["kind"].bars} == kinds
    assert [bar.label_for("zh") for bar in by["kind"].bars] == ["民事", "刑事", "劳动", "（未填写）"]
    tags = dict(sql(mini,
                    "SELECT t, count(*) FROM submissions, jsonb_array_elements_text(data->'tags') t "
                    "WHERE form_id = :f AND deleted_at IS NULL AND jsonb_typeof(data->'tags') = 'array' GROUP BY t",
                    "SELECT j.value, count(*) FROM submissions, json_each(submissions.data, '$.tags') j "
                    "WHERE form_id = :f AND deleted_at IS NULL GROUP BY j.value", f=fid))
    assert {bar.value: bar.count for bar in by["tags"].bars} == {"elderly": tags["elderly"], "women": tags["women"],
                                                                 "minor": tags["minor"]}
    urgent = dict(sql(mini,
                      "SELECT (data->>'urgent')::boolean, count(*) FROM submissions WHERE form_id = :f "
                      "AND deleted_at IS NULL GROUP BY 1",
                      "SELECT json_extract(data, '$.urgent'), count(*) FROM submissions WHERE form_id = :f "
                      "AND deleted_at IS NULL GROUP BY 1", f=fid))
    assert {bar.value: bar.count for bar in by["urgent"].bars} == {
        True: urgent.get(True, urgent.get(1)), False: urgent.get(False, urgent.get(0)), None: urgent[None]}
    assert {bar.value for bar in by["liaison_point"].bars} == {"lp03", "lp07", None}
    assert "remark" not in by  # free text is no dashboard dimension
    states = dict(sql(mini, "SELECT state, count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL "
                            "GROUP BY state",
                      "SELECT state, count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL "
                      "GROUP BY state", f=fid))
    assert {s.state: s.count for s in dash.funnel} == states
    late = sql(mini, "SELECT count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL "
                     "AND due_at < now() AND paused_at IS NULL",
               "SELECT count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL "
               "AND due_at < :now AND paused_at IS NULL", f=fid,
               now=datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" "))[0][0]
    assert dash.overdue == late > 0
    assert {s.state: s.overdue for s in dash.funnel}["doing"] == late
    assert dash.open == states["new"] + states["doing"]


def test_filters_narrow_every_figure(mini):
    fid = form_id(mini)
    flt = DashboardFilter(date(2025, 3, 1), date(2025, 8, 31), created_by="wang")
    dash = form_dashboard(mini, "mini", flt, actor=MANAGER)
    expected = sql(mini,
                   "SELECT count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL AND created_by = 'wang' "
                   "AND data->>'day' >= '2025-03-01' AND data->>'day' < '2025-09-01'",
                   "SELECT count(*) FROM submissions WHERE form_id = :f AND deleted_at IS NULL AND created_by = 'wang' "
                   "AND json_extract(data, '$.day') >= '2025-03-01' AND json_extract(data, '$.day') < '2025-09-01'",
                   f=fid)[0][0]
    assert dash.total == expected > 0
    assert sum(n for _m, n in dash.by_month) == expected
    assert all("2025-03" <= m <= "2025-08" for m, _n in dash.by_month)
    point = form_dashboard(mini, "mini", DashboardFilter(liaison_point="lp03"), actor=MANAGER)
    assert point.total == 4 and point.liaison_field == "liaison_point"
    assert {b.key: b for b in point.breakdowns}["liaison_point"].bars[0].count == 4


def test_cache_follows_writes(mini):
    dashboards.clear_cache()
    first = form_dashboard(mini, "mini", actor=MANAGER)
    misses = dashboards.STATS["misses"]
    again = form_dashboard(mini, "mini", actor=MANAGER)
    assert again is first and dashboards.STATS["misses"] == misses  # served from the cache
    sub = create(mini, "mini", {"day": "2025-06-01", "kind": "civil"}, actor=STAFF)
    after = form_dashboard(mini, "mini", actor=MANAGER)
    assert after.total == first.total + 1
    assert {b.value: b.count for b in {x.key: x for x in after.breakdowns}["kind"].bars}["civil"] == \
        {b.value: b.count for b in {x.key: x for x in first.breakdowns}["kind"].bars}["civil"] + 1
    transition(mini, sub.id, "start", actor=STAFF)
    moved = form_dashboard(mini, "mini", actor=MANAGER)
    assert {s.state: s.count for s in moved.funnel}["doing"] == {s.state: s.count for s in after.funnel}["doing"] + 1
    soft_delete(mini, sub.id, actor=SYSTEM)
    assert form_dashboard(mini, "mini", actor=MANAGER).total == first.total


def test_intake_dashboard_counts_every_version_and_skips_sensitive_dimensions(engine):
    load_builtins(engine)
    from tests.fixtures.seed_dataset import Case, _intake_row

    rows = [_intake_row(i, Case(date(2025, 1 + i, 3), ("civil", "labour")[i % 2], None, "handling",
                                ["elderly"] if i % 2 else [])) for i in range(6)]
    bulk_create(engine, "intake", rows, actor=SYSTEM)
    dash = form_dashboard(engine, "intake", actor=MANAGER)
    assert dash.total == 6 and dash.date_basis == "application_date"
    by = {b.key: b for b in dash.breakdowns}
    assert {b.value: b.count for b in by["case_category"].bars if b.count} == {"civil": 3, "labour": 3}
    assert {b.value: b.count for b in by["special_groups"].bars if b.count} == {"elderly": 3}
    assert len(dash.by_month) == 6


def test_the_total_counts_records_without_a_date_and_the_months_do_not(mini):
    # records stored without the date (as older versions or the unvalidated seed path may leave them)
    bulk_create(mini, "mini", [{"kind": "civil"}, {"kind": "labour", "day": None}], actor=SYSTEM, validate=False)
    dash = form_dashboard(mini, "mini", actor=MANAGER)
    assert dash.total == 42 and sum(n for _m, n in dash.by_month) == 40
    assert {b.value: b.count for b in {b.key: b for b in dash.breakdowns}["kind"].bars}["civil"] == 11


def test_roles_without_the_ability_or_view_access_are_refused(mini):
    with pytest.raises(PermissionDenied):
        form_dashboard(mini, "mini", actor=OUTREACH)  # no "dashboards" ability
    with pytest.raises(PermissionDenied):
        form_dashboard(mini, "mini", actor=Actor("v", "viewer"))  # may not view the form
    assert "mini" in [slug for slug, _t in dashboards.dashboard_forms(mini, STAFF)]
    assert dashboards.dashboard_forms(mini, OUTREACH) == []
